"""Fault injection on the inputs (issue #19, items 8 and 12-15): links that leave the dataset,
dangling links, link loops and FIFOs; odd arrays in ExpressionTransfer; corrupt and missing
images in fxaug.augment; images without a face, or with several; oversized files and images.
Every bad case is built in tmp_path; the faces are the bundled sample faces and the shared news
photos, the generators small untrained checkpoints."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fxaug.data import BadInput, decode_image, open_dataset

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample"


def _sample_faces(emotion: str, n: int) -> list[Path]:
    return sorted((SAMPLE / emotion).glob("*.png"))[:n]


# ------------------------------------------------------------------------------- item 8: links
@pytest.fixture
def linked_dataset(tmp_path):
    """Class folders of real faces salted with links out of the root, a dangling link, a link
    loop, a FIFO named .png, a folder link back into the tree and a link that stays inside."""
    root = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes((SAMPLE / "happy").glob("*.png").__next__().read_bytes())
    (outside / "sad").mkdir()
    shutil.copy(_sample_faces("sad", 1)[0], outside / "sad" / "elsewhere.png")
    for emotion in ("happy", "neutral"):
        (root / emotion).mkdir(parents=True)
        for path in _sample_faces(emotion, 3):
            shutil.copy(path, root / emotion / path.name)
    happy = root / "happy"
    os.symlink("/etc/passwd", happy / "passwd.png")  # a file link out of the root
    os.symlink(outside / "secret.png", happy / "secret.png")  # an image, but outside
    os.symlink(tmp_path / "missing.png", happy / "dangling.png")
    os.symlink(happy / "loop-b.png", happy / "loop-a.png")
    os.symlink(happy / "loop-a.png", happy / "loop-b.png")
    os.mkfifo(happy / "fifo.png")
    os.symlink(root, happy / "again")  # a folder link back to the root: a loop
    os.symlink(outside / "sad", root / "sad")  # a whole class folder outside the root
    inside_target = sorted((root / "neutral").glob("*.png"))[0]
    os.symlink(os.path.relpath(inside_target, happy), happy / "inside.png")  # stays inside: fine
    bad = {
        "passwd.png": "outside the dataset",
        "secret.png": "outside the dataset",
        "dangling.png": "dangling",
        "loop-a.png": "loop",
        "loop-b.png": "loop",
        "fifo.png": "not a regular file",
    }
    return root, bad


def _read_in_child(root: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Read the dataset in a child process, so that a hang (a FIFO read) fails the test rather
    than blocking it."""
    code = (
        "import json, sys\n"
        "from fxaug.data import open_dataset\n"
        "r = open_dataset(sys.argv[1])\n"
        "ids = [rec.source_id for rec in r]\n"
        "print(json.dumps({'ids': ids, 'report': r.report.to_dict()}))\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=timeout)


def test_links_out_of_the_root_loops_and_fifos_are_reported_and_skipped(linked_dataset):
    import json

    root, bad = linked_dataset
    run = _read_in_child(root)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    ids = result["ids"]
    # The real faces and the link that stays inside are read; nothing from outside.
    assert sorted(i for i in ids if i.startswith("neutral/")) == sorted(f"neutral/{p.name}" for p in _sample_faces("neutral", 3))
    assert "happy/inside.png" in ids
    assert not any(name in i for i in ids for name in bad), ids
    assert not any(i.startswith("sad/") or "/again/" in i for i in ids), ids
    problems = {Path(p["source"].rstrip(os.sep)).name: p["reason"] for p in result["report"]["problems"]}
    for name, reason in bad.items():
        assert name in problems, f"{name} not reported: {problems}"
        assert reason in problems[name], (name, problems[name])
    assert "outside the dataset" in problems["sad"]
    assert "again" in problems
    # One line each, naming the file: every problem is "skipped".
    assert all(p["kind"] == "skipped" for p in result["report"]["problems"])
    assert "Traceback" not in run.stderr


def test_decode_image_refuses_fifos_and_devices_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(BadInput, match="not a regular file"):
        decode_image(fifo)
    with pytest.raises(BadInput, match="not a regular file"):
        decode_image("/dev/zero")
    assert time.monotonic() - started < 5


def test_affectnet_rows_naming_links_out_of_the_root_or_fifos_are_skipped(tmp_path):
    images = tmp_path / "Manually_Annotated_Images"
    (images / "1").mkdir(parents=True)
    face = _sample_faces("happy", 1)[0]
    shutil.copy(face, images / "1" / "good.png")
    os.symlink("/etc/passwd", images / "1" / "passwd.png")
    os.mkfifo(images / "1" / "fifo.png")
    os.symlink(images / "1" / "nowhere.png", images / "1" / "dangling.png")
    rows = ["subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"]
    for name in ("good", "passwd", "fifo", "dangling"):
        rows.append(f"1/{name}.png,,,,,,1,0.5,0.5")
    (tmp_path / "training.csv").write_text("\n".join(rows) + "\n")
    reader = open_dataset(tmp_path, format="affectnet")
    assert [r.source_id for r in reader] == ["training.csv:1/good.png"]
    reasons = " | ".join(p.reason for p in reader.report.problems)
    assert "escapes the image root" in reasons and "not a regular file" in reasons and "dangling" in reasons


def test_image_files_helper_for_command_line_walks(linked_dataset):
    """The walk the CLI's `transfer` uses over folders of images: same rules as the readers."""
    from fxaug.data import ReadReport, image_files

    root, bad = linked_dataset
    report = ReadReport()
    found = [str(p.relative_to(root)) for p in image_files(root, report)]
    assert "happy/inside.png" in found and not any(name in f for f in found for name in bad)
    assert not any(f.startswith("sad/") or "again" in f for f in found)
    reported = {Path(p.source.rstrip(os.sep)).name for p in report.problems}
    assert set(bad) | {"sad", "again"} <= reported


# ----------------------------------------------------------------- item 15: sizes before decoding
def test_file_size_is_checked_before_reading(tmp_path):
    """A 3 GB file (sparse: it costs no disk) is refused from its size, without reading it."""
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(3 * 1024**3)
    started = time.monotonic()
    with pytest.raises(BadInput, match=r"file too large \(3\.0 GiB; limit 1\.0 GiB"):
        decode_image(big)
    assert time.monotonic() - started < 2


def test_header_dimensions_are_checked_before_decoding(tmp_path):
    """The decoded size comes from the header: a 186 KB PNG of 7999 x 7999 is refused under a
    budget before its 192 MB of pixels exist."""
    path = tmp_path / "wide.png"
    Image.new("RGB", (7999, 7999), (90, 100, 110)).save(path)
    assert path.stat().st_size < 400_000
    with pytest.raises(BadInput, match=r"7999x7999.*max_bytes"):
        decode_image(path, max_bytes=100_000_000)
    with pytest.raises(BadInput, match=r"image too large \(7999x7999"):
        decode_image(path, max_pixels=10_000_000)
    # Within both budgets the same file decodes.
    pixels, _ = decode_image(path, max_bytes=None)
    assert pixels.shape == (7999, 7999, 3)
