"""What readers yield (`FaceRecord`), what they index before decoding (`Entry`), and the
per-read account of every file that was skipped, converted or excluded (`ReadReport`)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

log = logging.getLogger("fxaug.data")


@dataclass(frozen=True)
class FaceRecord:
    """One labelled face image.

    image:      uint8 array, H x W x 3 RGB (or H x W for color="gray").
    emotion:    canonical emotion name (see `fxaug.emotions.EMOTIONS`).
    source_id:  stable id within the dataset (relative path, or "file.csv:ROW").
    box:        face box (x, y, w, h) in image pixels when the dataset gives one.
    landmarks:  (68, 2) float32 iBUG-68 points in image pixels when the dataset gives them.
    split:      the dataset's split name (train, validation, PublicTest, ...) if any.
    path:       the file the pixels came from, if they came from one.
    meta:       format-specific extras (AffectNet valence/arousal, FERPlus votes, ...).
    """

    image: np.ndarray
    emotion: str
    source_id: str
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    split: str | None = None
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """An indexed, not yet decoded record: enough to count classes and plan work cheaply."""

    source_id: str
    emotion: str
    load: Callable[[], tuple[np.ndarray, list[str]]]  # -> (pixels, conversion notes)
    split: str | None = None
    path: str | None = None
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None  # where a problem is reported ("file.csv:LINE"); default: path or id

    @property
    def where(self) -> str:
        return self.origin or self.path or self.source_id

    def record(self, image: np.ndarray) -> FaceRecord:
        return FaceRecord(
            image=image,
            emotion=self.emotion,
            source_id=self.source_id,
            box=self.box,
            landmarks=self.landmarks,
            split=self.split,
            path=self.path,
            meta=self.meta,
        )


class BadInput(Exception):
    """A file or row that cannot be read; the message is the reason, for the report."""


@dataclass(frozen=True)
class Problem:
    source: str  # the file (or "file.csv:ROW") concerned
    reason: str
    kind: str  # "skipped" | "converted" | "excluded"


class ReadReport:
    """Every file that did not read as-is, each reported once however often it is met.

    skipped:   unreadable or invalid; left out (logged as a warning).
    converted: read after a conversion (CMYK, 16-bit, palette, alpha, EXIF rotation; logged at info).
    excluded:  deliberately left out by the format's own rules (AffectNet None/Uncertain/No-Face,
               FERPlus rows without a majority); counted, not logged one by one.
    """

    KINDS = ("skipped", "converted", "excluded")

    def __init__(self, log_limit: int | None = None):
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str]] = set()
        self.read = 0
        self.log_limit = log_limit
        self._logged = Counter()

    def add(self, source: str, reason: str, kind: str = "skipped") -> bool:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        key = (source, kind)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.problems.append(Problem(source, reason, kind))
        if kind != "excluded" and (self.log_limit is None or self._logged[kind] < self.log_limit):
            self._logged[kind] += 1
            (log.warning if kind == "skipped" else log.info)("%s %s: %s", kind, source, reason)
        return True

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)

    def by_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def reasons(self, kind: str) -> Counter:
        """Reasons grouped by their general form (text before the first ':' or '(')."""
        return Counter(p.reason.split(":")[0].split(" (")[0] for p in self.by_kind(kind))

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            **{kind: self.count(kind) for kind in self.KINDS},
            "problems": [{"source": p.source, "reason": p.reason, "kind": p.kind} for p in self.problems],
        }

    def summary(self) -> str:
        lines = [
            f"read {self.read} images; skipped {self.count('skipped')}, "
            f"converted {self.count('converted')}, excluded {self.count('excluded')}"
        ]
        for kind in self.KINDS:
            for reason, n in self.reasons(kind).most_common():
                lines.append(f"  {kind}: {n} x {reason}")
        return "\n".join(lines)
