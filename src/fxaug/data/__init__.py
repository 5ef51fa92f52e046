"""Dataset readers: one streaming interface over every supported layout.

    from fxaug.data import open_dataset
    reader = open_dataset("path/or/dataset")   # format="auto" says what it found
    for record in reader: ...                  # FaceRecord(image, emotion, source_id, box, landmarks, ...)
    print(reader.report.summary())

Formats: "folders" (class-per-folder trees, with or without split folders), "affectnet"
(image root + training.csv / validation.csv), "fer2013" (fer2013.csv), "ferplus" (fer2013.csv +
fer2013new.csv, majority labels), "hf" (a `datasets.Dataset`, parquet, or `save_to_disk` folder).
"""

from __future__ import annotations

import logging
import os

from .base import DatasetReader
from .folders import ClassFolderReader, image_files, looks_like_class_tree
from .hf import HFDatasetReader
from .images import BATCH_PIXELS, DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, decode_image, image_size
from .records import BadInput, Entry, FaceRecord, Problem, ReadReport
from .tables import AFFECTNET_CSVS, AffectNetReader, Fer2013Reader, csv_header

FORMATS = ("folders", "affectnet", "fer2013", "ferplus", "hf")
log = logging.getLogger("fxaug.data")

__all__ = [
    "FORMATS",
    "AffectNetReader",
    "BATCH_PIXELS",
    "BadInput",
    "ClassFolderReader",
    "DatasetReader",
    "DEFAULT_MAX_PIXELS",
    "Entry",
    "FaceRecord",
    "Fer2013Reader",
    "HFDatasetReader",
    "IMAGE_EXTENSIONS",
    "Problem",
    "ReadReport",
    "decode_image",
    "detect_format",
    "image_files",
    "image_size",
    "open_dataset",
]


def _csv_kind(path: str) -> str | None:
    try:
        header = set(csv_header(path))
    except (OSError, UnicodeDecodeError):
        return None
    if {"subDirectory_filePath", "expression"} <= header:
        return "affectnet"
    if {"emotion", "pixels"} <= header:
        return "fer2013"
    if {"neutral", "happiness", "contempt", "NF"} <= header:
        return "ferplus"
    return None


def detect_format(source) -> str:
    """Name the format of a path (or `datasets.Dataset`); ValueError says what was looked for."""
    if not isinstance(source, (str, os.PathLike)):
        if hasattr(source, "column_names") and hasattr(source, "features"):
            return "hf"
        raise TypeError(f"cannot read a {type(source).__name__}; give a path or a datasets.Dataset")
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    if os.path.isfile(path):
        low = path.lower()
        if low.endswith(".parquet"):
            return "hf"
        if low.endswith(".csv"):
            kind = _csv_kind(path)
            if kind is not None:
                return kind
            raise ValueError(f"{path}: a CSV, but neither AffectNet, fer2013.csv nor FERPlus fer2013new.csv columns")
        raise ValueError(f"{path}: not a dataset (a single file must be .csv or .parquet)")
    files = set(os.listdir(path))
    if any(n in files and _csv_kind(os.path.join(path, n)) == "affectnet" for n in AFFECTNET_CSVS):
        return "affectnet"
    if "fer2013.csv" in files:
        return "ferplus" if "fer2013new.csv" in files else "fer2013"
    if "state.json" in files and "dataset_info.json" in files:
        return "hf"
    if looks_like_class_tree(path)[0]:
        return "folders"
    if any(f.endswith(".parquet") for f in files):
        return "hf"
    raise ValueError(
        f"{path}: format not recognised. Looked for class folders (ROOT/<emotion>/ or "
        f"ROOT/<split>/<emotion>/), AffectNet training.csv/validation.csv, fer2013.csv "
        f"(+ fer2013new.csv for FERPlus), parquet or a datasets save_to_disk folder"
    )


def open_dataset(source, format: str = "auto", **kwargs) -> DatasetReader:
    """Open any supported dataset for streaming.

    Keyword arguments go to the reader: color ("rgb" | "gray"), emotions, splits, max_pixels,
    scheme (numeric class folders / integer HF labels), image_root (AffectNet),
    image_column / label_column (HF).
    """
    if format == "auto":
        format = detect_format(source)
        log.info("%s: detected format %r", source if isinstance(source, (str, os.PathLike)) else "dataset", format)
    if format == "folders":
        reader: DatasetReader = ClassFolderReader(source, **kwargs)
    elif format == "affectnet":
        reader = AffectNetReader.from_path(source, **kwargs)
    elif format in ("fer2013", "ferplus"):
        reader = Fer2013Reader.from_path(source, ferplus=format == "ferplus", **kwargs)
    elif format == "hf":
        reader = HFDatasetReader(source, **kwargs)
    else:
        raise ValueError(f"unknown format {format!r}; known: auto, {', '.join(FORMATS)}")
    return reader
