"""The one reader interface every dataset format implements."""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from typing import Iterator

from .. import emotions as E
from .images import DEFAULT_MAX_PIXELS, decode_image
from .records import BadInput, Entry, FaceRecord, ReadReport


class DatasetReader:
    """Streams `FaceRecord`s from one dataset without holding it in memory.

    Subclasses implement `_entries()`, which indexes the dataset (labels, ids, how to load
    the pixels) without decoding images; everything else is shared:

        reader = open_dataset("affectnet/")        # or a concrete reader class
        print(reader.description)                  # what was found
        counts = reader.class_counts()             # cheap: no image is decoded
        for rec in reader:                         # decodes lazily, one record at a time
            ...
        print(reader.report.summary())             # what was skipped / converted, and why

    Bad files and rows are recorded once each in `reader.report` and reading goes on.
    `emotions` restricts to those classes; `splits` to those split names. Inputs are only read.
    """

    format: str = ""

    def __init__(
        self,
        *,
        color: str = "rgb",
        emotions: list[str] | str | None = None,
        splits: list[str] | str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        report: ReadReport | None = None,
    ):
        self.color = color
        self.emotions = None if emotions is None else set(E.parse_list(emotions))
        if isinstance(splits, str):
            splits = [s for s in splits.split(",") if s]
        self.splits = None if splits is None else {s.lower() for s in splits}
        self.max_pixels = max_pixels
        self.report = report if report is not None else ReadReport()

    # -- implemented by each format -------------------------------------------------------
    def _entries(self) -> Iterator[Entry]:
        raise NotImplementedError

    @property
    def description(self) -> str:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------
    def entries(self) -> Iterator[Entry]:
        """Index entries passing the emotion/split filters (no image decoded)."""
        for entry in self._entries():
            if self.emotions is not None and entry.emotion not in self.emotions:
                continue
            if self.splits is not None and (entry.split or "").lower() not in self.splits:
                continue
            yield entry

    def __iter__(self) -> Iterator[FaceRecord]:
        for entry in self.entries():
            record = self.load(entry)
            if record is not None:
                yield record

    def load(self, entry: Entry) -> FaceRecord | None:
        """Decode one entry; a bad one is reported and gives None."""
        try:
            image, notes = entry.load()
        except BadInput as e:
            self.report.add(entry.where, str(e))
            return None
        if notes:
            self.report.add(entry.where, "; ".join(notes), kind="converted")
        self.report.read += 1
        return entry.record(image)

    def class_counts(self) -> Counter:
        """Images per emotion from the index, in canonical order (undecoded, so files that
        later fail to decode are still counted here)."""
        counts = Counter(entry.emotion for entry in self.entries())
        return Counter({name: counts[name] for name in E.EMOTIONS if counts[name]})

    def _file_loader(self, path: str):
        color, max_pixels = self.color, self.max_pixels
        return lambda: decode_image(path, color=color, max_pixels=max_pixels)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


def inside(root: str, relative: str) -> str | None:
    """The real path of `relative` under `root`, or None where it escapes the root
    (`../`, an absolute path, or a symbolic link leading out)."""
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        return None
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, relative))
    if os.path.commonpath([real_root, target]) != real_root:
        return None
    return target


def within(real_root: str, real_path: str) -> bool:
    """Whether an already resolved path is `real_root` or lies under it."""
    return os.path.commonpath([real_root, real_path]) == real_root


def link_problem(path: str, real_root: str | None) -> str | None:
    """Why the symbolic link at `path` must not be followed (dangling, a loop, or leading out
    of `real_root`), or None. Links that stay inside the root are fine."""
    try:
        target = os.path.realpath(path, strict=True)
    except FileNotFoundError:
        try:
            to = os.readlink(path)
        except OSError:
            to = "?"
        return f"dangling symbolic link (to {to!r}, which does not exist)"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop (too many levels of links)"
        return f"cannot resolve symbolic link ({err.strerror or err})"
    if real_root is not None and not within(real_root, target):
        return f"symbolic link to {target}, outside the dataset root {real_root}; not followed"
    return None


def special_file_kind(mode: int) -> str:
    """What a non-regular, non-directory file is, for a message."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def path_kind(path: str, real_root: str | None) -> tuple[str | None, str | None]:
    """("dir" | "file", None) for a folder or regular file that may be read, or (None, reason):
    a link that is dangling, loops or leads out of `real_root`, a FIFO, device or socket (reading
    a FIFO would block for ever), or a path that cannot be examined. Never opens the path."""
    if os.path.islink(path):
        problem = link_problem(path, real_root)
        if problem:
            return None, problem
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None, "file not found"
    except OSError as err:
        return None, f"cannot access ({err.strerror or err})"
    if stat.S_ISDIR(mode):
        return "dir", None
    if stat.S_ISREG(mode):
        return "file", None
    return None, f"not a regular file ({special_file_kind(mode)})"
