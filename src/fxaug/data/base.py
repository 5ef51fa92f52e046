"""The one reader interface every dataset format implements."""

from __future__ import annotations

import os
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
