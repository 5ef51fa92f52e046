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


# ----------------------------------------------------------- item 14: no face, or several faces
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Small untrained StarGAN checkpoints, one per crop method (the mechanics, not expressions)."""
    import torch

    from fxaug.models import StarGANGenerator

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    out = {}
    for method, size in (("image", 32), ("face", 32), ("parts", 16)):
        path = root / f"stargan-{method}"
        StarGANGenerator(width=8, n_res=1, image_size=size, method=method, domains=("neutral", "happy", "sad")).save_pretrained(path)
        out[method] = str(path)
    out["regions"] = "inpaint-ferplus-48"  # the shipped generator
    return out


def _gradient(height=120, width=160, colour=True) -> np.ndarray:
    ramp = np.linspace(0, 255, width)[None, :] * np.linspace(0.3, 1.0, height)[:, None]
    grey = np.rint(ramp).astype(np.uint8)
    return np.stack([grey, grey[::-1], 255 - grey], axis=2) if colour else grey


@pytest.mark.parametrize("method", ["image", "face", "parts", "regions"])
def test_no_face_means_unchanged_bit_for_bit_for_every_method(tiny_models, method):
    from fxaug.pipeline import ExpressionPipeline

    pipe = ExpressionPipeline(tiny_models[method], method=method, device="cpu")
    for image in (_gradient(), _gradient(colour=False)):
        result = pipe.transfer([image], "happy")[0]
        assert not result.found and result.faces == 0 and "no face" in result.reason
        assert result.image.dtype == image.dtype and np.array_equal(result.image, image)


def _two_faces() -> tuple[np.ndarray, tuple, tuple]:
    """Two real news-photo faces side by side, the second smaller: (image, big box, small box)."""
    import cv2
    from faces_data import news_photos

    colour = [p for p in news_photos() if p.ndim == 3]
    a, b = colour[0], cv2.resize(colour[1], None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    canvas = np.full((max(a.shape[0], b.shape[0]) + 40, a.shape[1] + b.shape[1] + 60, 3), 128, np.uint8)
    canvas[20 : 20 + a.shape[0], 20 : 20 + a.shape[1]] = a
    x_b = 40 + a.shape[1]
    canvas[20 : 20 + b.shape[0], x_b : x_b + b.shape[1]] = b
    return canvas, (20, 20, a.shape[1], a.shape[0]), (x_b, 20, b.shape[1], b.shape[0])


def test_several_faces_say_which_was_edited(tiny_models, caplog):
    from fxaug.pipeline import ExpressionPipeline

    image, big, small = _two_faces()
    pipe = ExpressionPipeline(tiny_models["regions"], device="cpu")
    result = pipe.transfer([image], "happy")[0]
    assert result.found and result.faces == 2
    x, y, w, h = result.box
    assert big[0] <= x + w / 2 <= big[0] + big[2]  # the larger face was edited ...
    sx, sy, sw, sh = small
    assert np.array_equal(result.image[sy : sy + sh, sx : sx + sw], image[sy : sy + sh, sx : sx + sw])  # ... not the other
    assert not np.array_equal(result.image, image)
    assert result.note.startswith("2 faces found; edited the face at x=")
    # The Albumentations entry point says so too.
    from fxaug.transforms import ExpressionTransfer

    with pytest.warns(UserWarning, match="2 faces found; edited the face at"):
        ExpressionTransfer("happy", model=tiny_models["regions"], device="cpu", p=1.0)(image=image)


# ------------------------------------------------- item 12: ExpressionTransfer's dtype contract
@pytest.fixture(scope="module")
def colour_face() -> np.ndarray:
    from faces_data import news_photos

    return next(p for p in news_photos() if p.ndim == 3)


def test_expression_transfer_keeps_dtype_and_layout(tiny_parts_model, colour_face):
    from fxaug.transforms import ExpressionTransfer

    t = ExpressionTransfer("happy", model=str(tiny_parts_model), device="cpu", p=1.0)
    rgb = t(image=colour_face)["image"]
    assert rgb.dtype == np.uint8 and rgb.shape == colour_face.shape and not np.array_equal(rgb, colour_face)

    # float32 in 0..1 (albumentations' other dtype): float32 in 0..1 out, the same edit.
    as_float = colour_face.astype(np.float32) / 255.0
    out = t(image=as_float)["image"]
    assert out.dtype == np.float32 and out.shape == colour_face.shape
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0.5
    assert np.abs(out * 255.0 - rgb).max() < 0.51
    unchanged = rgb == colour_face
    assert np.array_equal(out[unchanged], as_float[unchanged])  # untouched pixels keep their exact values

    # RGBA: the RGB is transferred, the alpha kept.
    alpha = np.random.default_rng(0).integers(0, 256, colour_face.shape[:2], np.uint8)
    rgba = t(image=np.dstack([colour_face, alpha]))["image"]
    assert rgba.shape == (*colour_face.shape[:2], 4) and np.array_equal(rgba[:, :, 3], alpha)
    assert np.array_equal(rgba[:, :, :3], rgb)
    rgba_f = t(image=np.dstack([as_float, alpha.astype(np.float32) / 255]))["image"]
    assert rgba_f.dtype == np.float32 and rgba_f.shape[2] == 4

    # Grey, with and without the channel axis, in both dtypes.
    grey = colour_face.mean(axis=2).round().astype(np.uint8)
    for image in (grey, grey[:, :, None], grey.astype(np.float32) / 255, grey[:, :, None].astype(np.float32) / 255):
        out = t(image=image)["image"]
        assert out.dtype == image.dtype and out.shape == image.shape


@pytest.mark.parametrize(
    "image, why",
    [
        (np.zeros((64, 64, 3), np.uint16), "uint16"),
        (np.zeros((0, 0, 3), np.uint8), "too small"),
        (np.zeros((0, 0), np.float32), "too small"),
        (np.zeros((64, 64, 5), np.uint8), r"\(64, 64, 5\)"),
        (np.full((64, 64, 3), 255.0, np.float32), "0..1"),
        (np.zeros((64, 64, 3), np.float64), "float64"),
    ],
)
def test_expression_transfer_refuses_other_inputs_saying_what_it_accepts(tiny_parts_model, image, why):
    from fxaug.transforms import ExpressionTransfer

    t = ExpressionTransfer("happy", model=str(tiny_parts_model), device="cpu", p=1.0)
    with pytest.raises(ValueError, match=why) as err:
        t(image=image)
    assert "ExpressionTransfer" in str(err.value)
    if why != "0..1":
        assert "uint8 (0..255) or float32 (0..1)" in str(err.value)


# ------------------------------------------------------------- item 15: memory on large photos
_PEAK_CHILD = r"""
import sys, re
import numpy as np, cv2
from fxaug.pipeline import ExpressionPipeline

def status(key):
    return int(re.search(key + r":\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024

face = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(sys.argv[2]).convert("RGB"))
image = np.full((4000, 4000, 3), 120, np.uint8)
image[1000:3000, 1000:3000] = cv2.resize(face, (2000, 2000), interpolation=cv2.INTER_CUBIC)
pipe = ExpressionPipeline(sys.argv[1], device="cpu")
pipe.transfer([face], "happy")  # warm: the detector and nets are loaded
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) counts from here
result = pipe.transfer([image], "happy")[0]
assert result.found and result.image.shape == image.shape
print((status("VmHWM") - before) / image.nbytes)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak memory")
def test_large_photo_costs_memory_in_proportion_to_the_face_not_float_copies(tiny_models):
    """A 4000 x 4000 RGB photo (48 MB) through the image method with a grey generator: the
    luminance paste-back went through whole-image float64 copies (7.6 GB peak for 7999 x 7999)."""
    face = next(p for p in sorted((SAMPLE / "happy").glob("*.png")))
    run = subprocess.run([sys.executable, "-c", _PEAK_CHILD, tiny_models["image"], str(face)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    growth = float(run.stdout.strip().splitlines()[-1])
    # The output copy, the detector's copy and YuNet's own buffers: well under 10x the photo.
    assert growth < 10, f"transfer's peak grew by {growth:.1f}x the photo's size"


# ------------------------------------------------------------------- item 13: fxaug.augment
@pytest.fixture
def faulty_ds(colour_face):
    """Four rows: a real face, a truncated PNG, no image at all (None), another real face."""
    import io

    import datasets

    def png(pixels) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        return buf.getvalue()

    good = png(colour_face)
    cells = [{"bytes": good, "path": None}, {"bytes": good[: len(good) // 2], "path": None}, None,
             {"bytes": good, "path": None}]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string"), "who": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": cells, "label": ["neutral"] * 4, "who": [0, 1, 2, 3]}, features=features)


def _raw_images(ds) -> list:
    import datasets

    return ds.cast_column("image", datasets.Image(decode=False))["image"]


def test_augment_keeps_corrupt_and_missing_images_and_goes_on(tiny_parts_model, faulty_ds, caplog):
    import fxaug

    aug = fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"])
    with caplog.at_level(logging.WARNING, logger="fxaug.hf"):
        out = faulty_ds.map(aug, batched=True, with_indices=True)
    # every row kept, in order; a synthesized row after each good face only
    assert out["who"] == [0, 0, 1, 2, 3, 3]
    assert out["fxaug_target"] == [None, "happy", None, None, None, "happy"]
    raw_in, raw_out = _raw_images(faulty_ds), _raw_images(out)
    assert raw_out[2]["bytes"] == raw_in[1]["bytes"] and raw_out[3] is None  # kept as they were
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "row 1:" in text and "truncated" in text and "row 2: no image (None)" in text


def test_augment_without_batching_replaces_rows_one_by_one(tiny_parts_model, faulty_ds):
    import fxaug

    out = faulty_ds.map(fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"]), with_indices=True)
    assert out["who"] == [0, 1, 2, 3]
    assert out["fxaug_target"] == ["happy", None, None, "happy"]
    assert out["label"] == ["happy", "neutral", "neutral", "happy"]
    assert out["fxaug_source_index"] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="per_image=2 adds rows.*batched=True"):
        faulty_ds.map(fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy", "sad"], per_image=2))


def test_augment_names_a_target_the_model_lacks(tiny_parts_model, faulty_ds):
    import fxaug

    with pytest.raises(ValueError, match="cannot produce contempt; it offers neutral, happy, sad"):
        faulty_ds.map(fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy", "contempt"]), batched=True)


def test_a_fifo_named_like_a_csv_does_not_block_format_detection(tmp_path):
    from fxaug.data import detect_format

    os.mkfifo(tmp_path / "training.csv")
    shutil.copytree(SAMPLE / "happy", tmp_path / "happy")
    shutil.copytree(SAMPLE / "sad", tmp_path / "sad")
    code = f"from fxaug.data import detect_format; print(detect_format({str(tmp_path)!r}))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "folders", run.stderr
