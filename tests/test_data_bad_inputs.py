"""A dataset salted with every kind of bad input reads to completion: each bad file reported
once with its reason, every good file read, and nothing under the input written to."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from dataset_writers import write_affectnet, write_class_folders, write_fer2013_csv
from PIL import Image

from fxaug.data import BadInput, decode_image, open_dataset


def _snapshot(root: Path) -> dict[str, tuple[str, float]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
    return out


def _png_bytes(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, **kw)
    return buf.getvalue()


@pytest.fixture
def salted(tmp_path, fer):
    """Class folders with 60 good faces plus one of every bad kind; returns (root, good, bad, odd)."""
    rows = fer.sample(60, seed=11)
    good = write_class_folders(tmp_path, [(int(r), fer.images[r], fer.emotion(r)) for r in rows])
    face = Image.fromarray(fer.images[rows[0]]).resize((96, 96))
    d = tmp_path / "happy"
    d.mkdir(exist_ok=True)
    full_png = _png_bytes(face.convert("RGB"), format="PNG")
    full_jpg = _png_bytes(face.convert("RGB"), format="JPEG", quality=95)
    bad = {
        d / "corrupt.jpg": b"\xff\xd8\xff\xe0" + os.urandom(2000),  # JPEG magic, garbage body
        d / "truncated.png": full_png[: len(full_png) // 2],
        d / "truncated.jpg": full_jpg[: len(full_jpg) // 2],
        d / "empty.png": b"",
        d / "webpage.jpg": b"<html><body>404 not found</body></html>",  # a non-image named .jpg
        d / "notes.txt": b"not an image",
        tmp_path / "stray.png": full_png,  # outside any class folder
        tmp_path / "bored" / "x.png": full_png,  # folder name outside the vocabulary
    }
    for path, data in bad.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    huge = d / "huge.png"
    Image.new("L", (9000, 8000)).save(huge)  # 72 Mpx, over the default limit
    bad[huge] = None
    # Odd but valid modes: read after conversion, and reported as converted.
    rgb = face.convert("RGB")
    odd = {
        d / "cmyk.jpg": lambda p: rgb.convert("CMYK").save(p, quality=95),
        d / "sixteen.png": lambda p: Image.fromarray((np.asarray(face.convert("L")).astype(np.uint16) * 257)).save(p),
        d / "palette.png": lambda p: rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(p),
        d / "alpha.png": lambda p: face.convert("RGBA").save(p),
        d / "gray_alpha.png": lambda p: face.convert("LA").save(p),
    }
    for path, save in odd.items():
        save(path)
    # EXIF orientation 6 (rotate 90 CW to display): stored 96x64 landscape, shown 64x96 portrait.
    stored = Image.fromarray(np.tile(np.arange(96, dtype=np.uint8)[None, :], (64, 1))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = d / "exif_rotated.jpg"
    stored.save(rotated, exif=exif.tobytes(), quality=95)
    odd[rotated] = None
    return tmp_path, good, bad, odd


def test_salted_folder_reads_to_completion(salted, caplog):
    root, good, bad, odd = salted
    before = _snapshot(root)
    reader = open_dataset(root)
    with caplog.at_level(logging.INFO, logger="fxaug.data"):
        records = list(reader)
        counts = reader.class_counts()  # a second pass must not report anything twice
        records_again = list(reader)
    # No good file lost; the odd-but-valid ones read too.
    ids = {r.source_id for r in records}
    rel = lambda p: str(Path(p).relative_to(root)).replace(os.sep, "/")  # noqa: E731
    assert ids == set(good) | {rel(p) for p in odd}
    assert len(records_again) == len(records)
    assert sum(counts.values()) >= len(records)
    # Each bad file reported exactly once, as skipped, with a reason.
    skipped = reader.report.by_kind("skipped")
    sources = [p.source.rstrip(os.sep) for p in skipped]
    assert len(sources) == len(set(sources))
    expect_skipped = {str(p) for p in bad if p.parent.name != "bored"} | {str(root / "bored")}
    assert set(sources) == expect_skipped
    reasons = {Path(p.source.rstrip(os.sep)).name: p.reason for p in skipped}
    assert reasons["empty.png"].startswith("empty file")
    assert "truncated" in reasons["truncated.png"] or "corrupt" in reasons["truncated.png"]
    assert "truncated" in reasons["truncated.jpg"] or "corrupt" in reasons["truncated.jpg"]
    assert reasons["webpage.jpg"].startswith("not an image")
    assert reasons["notes.txt"].startswith("not an image file")
    assert reasons["huge.png"].startswith("image too large")
    assert "not an emotion" in reasons["bored"] and "'bored'" in reasons["bored"]
    assert "outside any class folder" in reasons["stray.png"]
    # Odd modes are converted, each noted once.
    converted = {Path(p.source).name: p.reason for p in reader.report.by_kind("converted")}
    assert set(converted) == {p.name for p in odd}
    assert "CMYK" in converted["cmyk.jpg"] and "16-bit" in converted["sixteen.png"]
    assert "palette" in converted["palette.png"] and "alpha" in converted["alpha.png"]
    assert "EXIF orientation 6" in converted["exif_rotated.jpg"]
    # Messages name the file, once each.
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == len(expect_skipped)
    for path in expect_skipped:
        assert sum(path in m for m in warned) >= 1
    # Inputs untouched.
    assert _snapshot(root) == before
    summary = reader.report.summary()
    assert f"skipped {len(expect_skipped)}" in summary and f"converted {len(odd)}" in summary


def test_odd_modes_give_right_pixels(salted):
    root, _, _, _ = salted
    d = root / "happy"
    rgb, notes = decode_image(d / "exif_rotated.jpg")
    assert rgb.shape == (96, 64, 3) and notes == ["EXIF orientation 6 applied"]
    # Rotated 90 CW: the stored left-to-right ramp now runs top to bottom.
    col = rgb[:, 32, 0].astype(int)
    assert col[0] < 10 and col[-1] > 85
    reference, _ = decode_image(d / "alpha.png", color="gray")
    sixteen, _ = decode_image(d / "sixteen.png", color="gray")
    np.testing.assert_array_equal(sixteen, reference)  # 16-bit scaled back exactly
    cmyk, _ = decode_image(d / "cmyk.jpg")
    assert cmyk.shape == (96, 96, 3) and np.abs(cmyk.astype(int).mean(2) - reference).mean() < 12


def test_alpha_is_composited_on_black():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:2, ..., 3] = 255  # top half opaque, bottom half transparent
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    out, notes = decode_image(buf.getvalue())
    assert (out[:2] == 200).all() and (out[2:] == 0).all() and "alpha composited onto black" in notes


@pytest.mark.parametrize("data, reason", [(b"", "empty file"), (b"GIF89a" + b"\0" * 3, "corrupt"), (b"hello", "not an image")])
def test_decode_image_reasons(data, reason):
    with pytest.raises(BadInput, match=reason):
        decode_image(data)


def test_decode_missing_file(tmp_path):
    with pytest.raises(BadInput, match="file not found"):
        decode_image(tmp_path / "nope.png")


def test_affectnet_bad_rows(tmp_path, fer):
    rows = fer.sample(20, seed=12)
    outside = tmp_path / "secret.png"
    Image.new("L", (8, 8)).save(outside)
    extra = [
        ("training.csv", ["1/missing.png", 0, 0, 48, 48, "", 1, 0, 0]),
        ("training.csv", ["../secret.png", 0, 0, 48, 48, "", 1, 0, 0]),
        ("training.csv", ["/etc/passwd", 0, 0, 48, 48, "", 1, 0, 0]),
        ("training.csv", ["1/x.png", 0, 0, 48, 48, "", 12, 0, 0]),
        ("validation.csv", ["1/y.png", 0, 0, 48, 48, "", "happy?", 0, 0]),
        ("validation.csv", ["1/z.png", 0, 0, 48, 48, "", 9, 0, 0]),
    ]
    expected = write_affectnet(tmp_path, [(int(r), fer.images[r], fer.emotion(r)) for r in rows], extra)
    before = _snapshot(tmp_path)
    reader = open_dataset(tmp_path)
    got = {r.source_id.split(":", 1)[1] for r in reader}
    assert got == set(expected)
    skipped = reader.report.by_kind("skipped")
    assert len(skipped) == 5
    text = "\n".join(f"{p.source}: {p.reason}" for p in skipped)
    assert "missing.png" in text and "image file missing" in text
    assert "'../secret.png' escapes the image root" in text and "'/etc/passwd' escapes" in text
    assert "unknown emotion label 12" in text and "'happy?' is not an AffectNet code" in text
    assert all(p.source.startswith(str(tmp_path)) for p in skipped)  # names the CSV and line
    assert reader.report.count("excluded") == 1
    assert _snapshot(tmp_path) == before


def test_fer2013_bad_rows(tmp_path, fer):
    rows = fer.sample(10, seed=13)
    write_fer2013_csv(tmp_path / "fer2013.csv", fer, rows, extra=[[3, "1 2 3", "Training"], [9, "0 " * 2304, "Training"]])
    reader = open_dataset(tmp_path / "fer2013.csv")
    assert len(list(reader)) == 10
    skipped = {p.source: p.reason for p in reader.report.by_kind("skipped")}
    csv_path = str(tmp_path / "fer2013.csv")
    assert set(skipped) == {f"{csv_path}:12", f"{csv_path}:13"}  # header is line 1
    assert skipped[f"{csv_path}:12"].startswith("pixels column has 3 values")
    assert skipped[f"{csv_path}:13"].startswith("emotion '9' is not a FER2013 code")


def test_hf_bad_rows():
    import datasets

    good = io.BytesIO()
    Image.new("L", (48, 48), 128).save(good, format="PNG")
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": good.getvalue(), "path": None}, {"bytes": b"garbage", "path": None},
                   {"bytes": good.getvalue(), "path": None}],
         "label": ["happy", "happy", "bored"]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}),
    )
    reader = open_dataset(ds)
    assert [r.source_id for r in reader] == ["0"]
    reasons = {p.source: p.reason for p in reader.report.by_kind("skipped")}
    assert reasons["in-memory datasets.Dataset row 1"].startswith("not an image")
    assert "unknown emotion label 'bored'" in reasons["in-memory datasets.Dataset row 2"]
