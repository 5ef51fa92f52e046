"""Class-per-folder trees: ROOT/<emotion>/*.jpg, optionally with split folders above
(ROOT/train/<emotion>/..., ROOT/test/<emotion>/...), as AffectNet, RAF-DB and FER2013 image
folders are commonly redistributed. Folder names may be any alias ("happiness", "Angry") or
a numeric code, whose scheme (affectnet 0-7, fer2013 0-6, rafdb 1-7) is detected when the
set of names is unambiguous and must be given otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from .. import emotions as E
from .base import DatasetReader, path_kind
from .images import IMAGE_EXTENSIONS
from .records import Entry, ReadReport

IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini", "license", "license.txt", "readme", "readme.md", "readme.txt"})


def _subdirs(path: str, real_root: str | None = None, report: ReadReport | None = None) -> list[str]:
    """Visible folders in `path`; links that dangle, loop or leave `real_root` are left out (and
    reported, given a report)."""
    try:
        with os.scandir(path) as it:
            items = sorted(it, key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for e in items:
        if e.name.startswith("."):
            continue
        kind, reason = path_kind(e.path, real_root)
        if kind == "dir":
            out.append(e.name)
        elif reason and report is not None and e.is_symlink():
            report.add(e.path, reason)
    return out


def detect_scheme(names: list[str]) -> str | None:
    """Which numbering scheme numeric folder names follow; None for named folders.
    Raises ValueError where the codes fit several schemes."""
    codes = {int(n) for n in names if n.isdigit()}
    if not codes:
        return None
    if codes <= set(range(1, 8)) and 0 not in codes and 7 in codes:
        return "rafdb"
    if codes <= set(range(0, 8)) and 7 in codes and 0 in codes:
        return "affectnet"
    fits = [s for s, table in E.SCHEMES.items() if codes <= set(table)]
    if len(fits) == 1:
        return fits[0]
    raise ValueError(
        f"numeric class folders {sorted(codes)} fit several label schemes ({', '.join(fits) or 'none'}); "
        f"pass scheme= one of {', '.join(E.SCHEMES)}"
    )


def class_folders(names: list[str], scheme: str | None) -> dict[str, str]:
    """Map folder name -> emotion for the names that are emotions."""
    out = {}
    for name in names:
        try:
            out[name] = E.canonical(name, scheme=scheme if name.isdigit() else None)
        except E.UnknownEmotionError:
            pass
    return out


def looks_like_class_tree(root: str) -> tuple[bool, list[str]]:
    """(is a class-folder tree, split folder names or [])."""
    real_root = os.path.realpath(root)
    subs = _subdirs(root, real_root)
    numeric_ok = [s for s in subs if s.isdigit() and int(s) <= 10]
    if len(class_folders(subs, "affectnet")) >= 2 or (subs and len(numeric_ok) == len(subs) and len(subs) >= 2):
        return True, []
    splits = [s for s in subs if len(class_folders(_subdirs(os.path.join(root, s), real_root), "affectnet")) >= 2]
    return bool(splits), splits


class ClassFolderReader(DatasetReader):
    format = "folders"

    def __init__(self, root: str | os.PathLike, *, scheme: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.root = os.fspath(root)
        self.real_root = os.path.realpath(self.root)  # links may not lead out of it
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"{self.root}: not a directory")
        is_tree, split_dirs = looks_like_class_tree(self.root)
        if not is_tree:
            raise ValueError(
                f"{self.root}: no class folders found (expected ROOT/<emotion>/images or "
                f"ROOT/<split>/<emotion>/images; emotions: {', '.join(E.EMOTIONS)})"
            )
        self.split_dirs = split_dirs
        groups = split_dirs or [""]
        names = sorted({n for g in groups for n in _subdirs(os.path.join(self.root, g), self.real_root)})
        self.scheme = scheme if scheme is not None else detect_scheme(names)
        if self.scheme is not None and self.scheme not in E.SCHEMES:
            raise ValueError(f"unknown label scheme {self.scheme!r}; known: {', '.join(E.SCHEMES)}")

    @property
    def description(self) -> str:
        layout = f"splits {', '.join(self.split_dirs)}" if self.split_dirs else "no split folders"
        scheme = f", numeric folders read as {self.scheme} codes" if self.scheme else ""
        return f"class folders at {self.root} ({layout}{scheme})"

    def _entries(self) -> Iterator[Entry]:
        for split in self.split_dirs or [""]:
            if self.splits is not None and split.lower() not in self.splits:
                continue
            base = os.path.join(self.root, split)
            folders = _subdirs(base, self.real_root, self.report)
            mapping = class_folders(folders, self.scheme)
            for folder in folders:
                if folder not in mapping:
                    self._report_unknown_folder(os.path.join(base, folder), folder)
            with os.scandir(base) as it:
                for e in sorted(it, key=lambda e: e.name):
                    if e.name.startswith(".") or e.name.lower() in IGNORED_FILES:
                        continue
                    kind, reason = path_kind(e.path, self.real_root)
                    if kind == "file":
                        self.report.add(e.path, "file outside any class folder; not read")
                    elif kind is None and e.is_symlink():
                        self.report.add(e.path, reason)
            for folder in sorted(mapping):
                yield from self._walk(os.path.join(base, folder), mapping[folder], split or None)

    def _report_unknown_folder(self, path: str, name: str) -> None:
        try:
            E.canonical(name, scheme=self.scheme if name.isdigit() else None)
        except (E.UnknownEmotionError, ValueError) as err:
            self.report.add(path + os.sep, f"folder name is not an emotion: {err}; its files are not read")

    def _walk(self, folder: str, emotion: str, split: str | None) -> Iterator[Entry]:
        for path in walk_files(folder, self.real_root, self.report):
            ext = os.path.splitext(path)[1].lower()
            if ext not in IMAGE_EXTENSIONS:
                self.report.add(path, f"not an image file (extension {ext or 'none'!r})")
                continue
            rel = os.path.relpath(path, self.root).replace(os.sep, "/")
            yield Entry(source_id=rel, emotion=emotion, load=self._file_loader(path), split=split, path=path)


def walk_files(folder: str, real_root: str, report: ReadReport) -> Iterator[str]:
    """Regular files under `folder`, depth-first and sorted (a stable order, one directory
    listing held at a time), hidden and ignored names left out. What may not be read is
    reported once and skipped, never followed: links that dangle, loop or resolve outside
    `real_root`, folder links back into a folder being walked, FIFOs, devices and sockets."""
    stack = [(folder, (os.path.realpath(folder),))]
    while stack:
        current, ancestors = stack.pop()
        try:
            with os.scandir(current) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as err:
            report.add(current + os.sep, f"cannot list folder ({err.strerror or err})")
            continue
        subdirs = []
        for item in items:
            if item.name.startswith(".") or item.name.lower() in IGNORED_FILES:
                continue
            kind, reason = path_kind(item.path, real_root)
            if kind is None:
                report.add(item.path, reason or "cannot be read")
            elif kind == "dir":
                real = os.path.realpath(item.path)
                if any(real == a or a.startswith(real + os.sep) for a in ancestors):
                    report.add(item.path + os.sep, f"folder link loops back to {real}, a folder being read; not followed")
                else:
                    subdirs.append((item.path, (*ancestors, real)))
            else:
                yield item.path
        stack.extend(reversed(subdirs))


def image_files(folder: str | os.PathLike, report: ReadReport, root: str | os.PathLike | None = None) -> Iterator[Path]:
    """Image files (by extension) under `folder`, with the readers' rules for links and special
    files (see `walk_files`); links may not lead out of `root` (default: `folder`). For command
    line walks over folders of images (`fxaug transfer DIR`)."""
    folder = os.fspath(folder)
    real_root = os.path.realpath(os.fspath(root) if root is not None else folder)
    for path in walk_files(folder, real_root, report):
        if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS:
            yield Path(path)
