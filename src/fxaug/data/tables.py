"""CSV-described datasets: AffectNet's official layout, fer2013.csv and FERPlus fer2013new.csv.

All three are streamed row by row with the csv module (fer2013.csv is ~300 MB of pixel text),
so memory stays flat however large the file.
"""

from __future__ import annotations

import csv
import os
from typing import Iterator

import numpy as np

from .. import emotions as E
from .base import DatasetReader, inside, path_kind
from .records import BadInput, Entry

AFFECTNET_COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
AFFECTNET_CSVS = {"training.csv": "train", "validation.csv": "validation"}
AFFECTNET_IMAGE_ROOTS = ("Manually_Annotated_Images", "Manually_Annotated", "Automatically_Annotated_Images")
FER2013_COLUMNS = ("emotion", "pixels")
FERPLUS_NAME_COLUMN = "Image name"


def _check_regular(path: str) -> None:
    """A FIFO or device named like a CSV would block or never end: refuse it before opening."""
    kind, reason = path_kind(os.fspath(path), None)
    if kind != "file":
        raise OSError(f"{path}: {reason or 'a folder, not a CSV file'}")


def csv_header(path: str) -> list[str]:
    _check_regular(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [h.strip() for h in next(csv.reader(f), [])]


def _open_rows(path: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(0-based data-row number, row) pairs."""
    _check_regular(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [h.strip() for h in reader.fieldnames or []]
        for i, row in enumerate(reader):
            yield i, row


# ---------------------------------------------------------------------------------- AffectNet
def affectnet_landmarks(text: str) -> np.ndarray | None:
    """AffectNet's 'x1;y1;x2;y2;...' (68 points) -> (68, 2) float32, None where absent."""
    text = (text or "").strip()
    if not text:
        return None
    values = [float(v) for v in text.replace(",", ";").split(";") if v.strip()]
    if len(values) != 136:
        raise ValueError(f"facial_landmarks has {len(values)} numbers, expected 136")
    return np.asarray(values, dtype=np.float32).reshape(68, 2)


class AffectNetReader(DatasetReader):
    """AffectNet's official layout: an image root plus training.csv / validation.csv.

    `csvs` maps CSV paths to split names; `image_root` is the folder that subDirectory_filePath
    is relative to. Expression codes 8-10 (None, Uncertain, No-Face) are excluded as AffectNet's
    own rules intend; face box, 68 landmarks, valence and arousal are carried on each record.
    """

    format = "affectnet"

    def __init__(self, csvs: dict[str, str], image_root: str, **kwargs):
        super().__init__(**kwargs)
        self.csvs = {os.fspath(k): v for k, v in csvs.items()}
        self.image_root = os.fspath(image_root)
        for path in self.csvs:
            missing = [c for c in ("subDirectory_filePath", "expression") if c not in csv_header(path)]
            if missing:
                raise ValueError(f"{path}: not an AffectNet CSV (missing columns {', '.join(missing)})")

    @classmethod
    def from_path(cls, path: str, image_root: str | None = None, **kwargs) -> "AffectNetReader":
        path = os.fspath(path)
        if os.path.isdir(path):
            csvs = {os.path.join(path, n): s for n, s in AFFECTNET_CSVS.items() if os.path.isfile(os.path.join(path, n))}
            base = path
        else:
            csvs = {path: AFFECTNET_CSVS.get(os.path.basename(path).lower(), os.path.splitext(os.path.basename(path))[0])}
            base = os.path.dirname(path) or "."
        if not csvs:
            raise FileNotFoundError(f"{path}: no training.csv or validation.csv")
        if image_root is None:
            image_root = next(
                (os.path.join(base, n) for n in AFFECTNET_IMAGE_ROOTS if os.path.isdir(os.path.join(base, n))), base
            )
        return cls(csvs, image_root, **kwargs)

    @property
    def description(self) -> str:
        names = ", ".join(f"{os.path.basename(p)} ({s})" for p, s in self.csvs.items())
        return f"AffectNet CSV layout: {names}; images under {self.image_root}"

    def _entries(self) -> Iterator[Entry]:
        for csv_path, split in self.csvs.items():
            if self.splits is not None and split.lower() not in self.splits:
                continue
            name = os.path.basename(csv_path)
            for i, row in _open_rows(csv_path):
                # Row numbers as a spreadsheet shows them: the header is line 1.
                where = f"{csv_path}:{i + 2}"
                rel = (row.get("subDirectory_filePath") or "").strip()
                code_text = (row.get("expression") or "").strip()
                try:
                    code = int(code_text)
                except ValueError:
                    self.report.add(where, f"expression {code_text!r} is not an AffectNet code")
                    continue
                if code in E.AFFECTNET_NON_EMOTIONS:
                    self.report.add(where, f"AffectNet label {code} ({E.AFFECTNET_NON_EMOTIONS[code]})", "excluded")
                    continue
                try:
                    emotion = E.from_code(code, "affectnet")
                except E.UnknownEmotionError as err:
                    self.report.add(where, str(err))
                    continue
                if not rel:
                    self.report.add(where, "empty subDirectory_filePath")
                    continue
                full = inside(self.image_root, rel)
                if full is None:
                    self.report.add(where, f"path {rel!r} escapes the image root {self.image_root}; not read")
                    continue
                kind, reason = path_kind(os.path.join(self.image_root, rel), os.path.realpath(self.image_root))
                if kind != "file":
                    missing = kind is None and reason == "file not found"
                    self.report.add(f"{where} ({rel})", "image file missing" if missing else reason or "a folder, not an image")
                    continue
                try:
                    box = self._box(row)
                    landmarks = affectnet_landmarks(row.get("facial_landmarks", ""))
                except ValueError as err:
                    self.report.add(where, f"bad annotation: {err}")
                    continue
                meta = {k: float(row[k]) for k in ("valence", "arousal") if _is_number(row.get(k))}
                yield Entry(
                    source_id=f"{name}:{rel}",
                    emotion=emotion,
                    load=self._file_loader(full),
                    split=split,
                    path=full,
                    box=box,
                    landmarks=landmarks,
                    meta=meta,
                )

    @staticmethod
    def _box(row: dict[str, str]) -> tuple[float, float, float, float] | None:
        values = [row.get(k, "") for k in ("face_x", "face_y", "face_width", "face_height")]
        if not all(v and v.strip() for v in values):
            return None
        x, y, w, h = (float(v) for v in values)
        if w <= 0 or h <= 0:
            raise ValueError(f"face box has non-positive size {w}x{h}")
        return (x, y, w, h)


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------- FER2013 / FERPlus
def _pixels_loader(text: str, color: str):
    def load() -> tuple[np.ndarray, list[str]]:
        try:
            values = np.array(text.split(), dtype=np.int64)
        except ValueError:
            raise BadInput("pixels column holds non-numbers") from None
        side = int(round(len(values) ** 0.5))
        if len(values) == 0 or side * side != len(values):
            raise BadInput(f"pixels column has {len(values)} values, not a square image")
        if values.min() < 0 or values.max() > 255:
            raise BadInput("pixel values outside 0..255")
        gray = values.astype(np.uint8).reshape(side, side)
        return (gray if color == "gray" else np.repeat(gray[:, :, None], 3, axis=2)), []

    return load


class Fer2013Reader(DatasetReader):
    """fer2013.csv (emotion, pixels, Usage), optionally relabelled by FERPlus fer2013new.csv.

    With `ferplus_csv`, labels follow Microsoft's majority rule (`emotions.ferplus_majority`):
    rows without a majority, or whose majority is unknown / not-a-face, or that FERPlus left
    unnamed, are excluded; each record's meta holds the FER2013 label and the ten vote counts.
    Source ids are "fer2013.csv:ROW" with ROW the 0-based data row, the index both files share.
    """

    format = "fer2013"

    def __init__(self, csv_path: str, ferplus_csv: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.csv_path = os.fspath(csv_path)
        self.ferplus_csv = None if ferplus_csv is None else os.fspath(ferplus_csv)
        missing = [c for c in FER2013_COLUMNS if c not in csv_header(self.csv_path)]
        if missing:
            raise ValueError(f"{self.csv_path}: not a fer2013.csv (missing columns {', '.join(missing)})")
        if self.ferplus_csv is not None:
            self.format = "ferplus"
            header = csv_header(self.ferplus_csv)
            missing = [c for c in E.FERPLUS_COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{self.ferplus_csv}: not a FERPlus fer2013new.csv (missing {', '.join(missing)})")

    @classmethod
    def from_path(cls, path: str, ferplus: bool | None = None, **kwargs) -> "Fer2013Reader":
        """From a folder holding fer2013.csv (and fer2013new.csv), or either file. `ferplus`
        None uses FERPlus labels when fer2013new.csv is given or lies in the given folder."""
        path = os.fspath(path)
        folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
        plus = os.path.join(folder, "fer2013new.csv")
        given_plus = os.path.isfile(path) and FERPLUS_NAME_COLUMN in csv_header(path)
        fer = os.path.join(folder, "fer2013.csv") if os.path.isdir(path) or given_plus else path
        if given_plus:
            plus = path
        if ferplus is None:
            ferplus = given_plus or (os.path.isdir(path) and os.path.isfile(plus))
        if not os.path.isfile(fer):
            raise FileNotFoundError(f"{path}: no fer2013.csv (FERPlus takes its pixels from fer2013.csv beside it)")
        if ferplus and not os.path.isfile(plus):
            raise FileNotFoundError(f"{path}: FERPlus labels need fer2013new.csv beside fer2013.csv")
        return cls(fer, plus if ferplus else None, **kwargs)

    @property
    def description(self) -> str:
        if self.ferplus_csv:
            return f"FERPlus: pixels from {self.csv_path}, majority-vote labels from {self.ferplus_csv}"
        return f"fer2013.csv at {self.csv_path}"

    def _entries(self) -> Iterator[Entry]:
        plus_rows = _open_rows(self.ferplus_csv) if self.ferplus_csv else None
        name = os.path.basename(self.csv_path)
        for i, row in _open_rows(self.csv_path):
            where = f"{self.csv_path}:{i + 2}"
            split = (row.get("Usage") or "").strip() or None
            code_text = (row.get("emotion") or "").strip()
            meta: dict = {}
            try:
                fer_emotion = E.from_code(int(code_text), "fer2013")
            except (ValueError, E.UnknownEmotionError):
                fer_emotion = None
            if plus_rows is not None:
                plus = next(plus_rows, None)
                if plus is None:
                    self.report.add(self.ferplus_csv, f"ends before {self.csv_path} (row {i}); remaining rows not read")
                    return
                votes = [_vote(plus[1].get(c)) for c in E.FERPLUS_COLUMNS]
                meta = {"fer2013_emotion": fer_emotion, "ferplus_votes": votes}
                if not (plus[1].get(FERPLUS_NAME_COLUMN) or "").strip():
                    self.report.add(where, "not in FERPlus (no image name)", "excluded")
                    continue
                label = E.ferplus_majority(votes)
                if label < 0:
                    self.report.add(where, "no FERPlus majority (or unknown / not a face)", "excluded")
                    continue
                emotion = E.EMOTIONS[label]
                split = (plus[1].get("Usage") or "").strip() or split
            else:
                if fer_emotion is None:
                    self.report.add(where, f"emotion {code_text!r} is not a FER2013 code (0-6)")
                    continue
                emotion = fer_emotion
            yield Entry(
                source_id=f"{name}:{i}",
                emotion=emotion,
                load=_pixels_loader(row.get("pixels") or "", self.color),
                split=split,
                meta=meta,
                origin=where,
            )


def _vote(text: str | None) -> int:
    try:
        return int(float(text or 0))
    except ValueError:
        return 0

