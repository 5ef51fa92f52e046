"""Write real faces into each on-disk layout fxaug reads, the way those datasets ship them.
Used by the tests to check that readers return exactly what was written."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fxaug import emotions as E

FER_CODE = {name: code for code, name in E.SCHEMES["fer2013"].items()}


def write_class_folders(root: Path, faces, ext: str = ".png", splits: dict[int, str] | None = None, name_style=str):
    """faces: iterable of (row, image, emotion). Returns {relative path: (image, emotion, split)}."""
    written = {}
    for row, image, emotion in faces:
        split = splits.get(row) if splits else None
        folder = root / split / name_style(emotion) if split else root / name_style(emotion)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"fer{row:05d}{ext}"
        Image.fromarray(image).save(path, quality=95)  # quality is ignored by lossless formats
        written[str(path.relative_to(root)).replace(os.sep, "/")] = (image, emotion, split)
    return written


def write_affectnet(root: Path, faces, extra_rows=()):
    """AffectNet's official layout: Manually_Annotated_Images/<sub>/<file> + training.csv and
    validation.csv. Each face gets a box and 68 landmarks; returns {subDirectory_filePath: (...)}."""
    images = root / "Manually_Annotated_Images"
    rng = np.random.default_rng(7)
    rows = {"training.csv": [], "validation.csv": []}
    expected = {}
    for i, (row, image, emotion) in enumerate(faces):
        sub = f"{row % 7 + 1}"
        (images / sub).mkdir(parents=True, exist_ok=True)
        rel = f"{sub}/fer{row:05d}.png"
        Image.fromarray(image).save(images / rel)
        box = (float(row % 5), float(row % 3), 40.0 + row % 8, 41.0 + row % 6)
        landmarks = np.round(rng.uniform(0, 48, size=(68, 2)), 2).astype(np.float32)
        csv_name = "validation.csv" if i % 5 == 0 else "training.csv"
        rows[csv_name].append(
            [rel, *box, ";".join(f"{v:.2f}" for v in landmarks.ravel()), E.index(emotion), 0.25, -0.5]
        )
        expected[rel] = (image, emotion, "validation" if csv_name == "validation.csv" else "train", box, landmarks)
    for csv_name, row in extra_rows:
        rows[csv_name].append(row)
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
              "facial_landmarks", "expression", "valence", "arousal"]
    for csv_name, body in rows.items():
        with open(root / csv_name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(body)
    return expected


USAGE = ("Training", "PublicTest", "PrivateTest")


def write_fer2013_csv(path: Path, fer, rows, extra=()):
    """fer2013.csv with the original FER2013 labels: emotion,pixels,Usage."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for row in rows:
            w.writerow([int(fer.fer_label[row]), " ".join(map(str, fer.images[row].ravel())), USAGE[fer.usage[row]]])
        for line in extra:
            w.writerow(line)


def write_ferplus_csv(path: Path, fer, rows):
    """fer2013new.csv: Usage, Image name, then the ten vote columns; unnamed rows left blank."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Usage", "Image name", *E.FERPLUS_COLUMNS])
        for row in rows:
            name = f"fer{row:07d}.png" if fer.has_name[row] else ""
            w.writerow([USAGE[fer.usage[row]], name, *map(int, fer.votes[row])])
