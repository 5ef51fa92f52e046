"""The inference engine and `fxaug transfer`, with small (untrained) generators saved and
loaded as checkpoints, on real faces: the mechanics, not the expressions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from faces_data import news_photos
from PIL import Image

from fxaug.faces import face_mask
from fxaug.methods import FACE_MARGIN, crops_for
from fxaug.models import CycleGANGenerators, StarGANGenerator, TwoCETGAN
from fxaug.pipeline import ExpressionPipeline

TINY = dict(width=8, n_res=1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    out = {}
    for method, size in (("image", 32), ("face", 32), ("parts", 16)):
        path = root / f"stargan-{method}"
        StarGANGenerator(**TINY, image_size=size, method=method, domains=("neutral", "happy", "sad")).save_pretrained(path)
        out[f"stargan-{method}"] = path
    CycleGANGenerators(**TINY, image_size=32, method="image", domains=("neutral", "happy")).save_pretrained(root / "cyclegan")
    out["cyclegan"] = root / "cyclegan"
    TwoCETGAN(image_size=32, width=8, n_res=1, code_dim=8).save_pretrained(root / "2cet")
    out["2cet"] = root / "2cet"
    return out


@pytest.fixture(scope="module")
def photos():
    return list(news_photos()[:6])


def test_image_method_keeps_size_and_mode(checkpoints):
    # random pixels hold no face: assume_face takes each frame as one (as for aligned crops)
    pipe = ExpressionPipeline(checkpoints["stargan-image"], assume_face=True)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (50, 70), np.uint8), rng.integers(0, 256, (32, 32, 3), np.uint8)]
    results = pipe.transfer(images, "happy")
    assert [r.image.shape for r in results] == [(50, 70), (32, 32, 3)]
    assert all(r.found and r.target == "happy" for r in results)
    # Strength 0 leaves an image of the generator's size exactly as it was.
    same = pipe.transfer([images[1]], "happy", strength=0.0)[0].image
    assert np.array_equal(same, images[1])
    with pytest.raises(ValueError, match="cannot produce 'contempt'; its targets: neutral, happy, sad"):
        pipe.transfer(images, "contempt")


@pytest.mark.parametrize("method", ["face", "parts"])
def test_face_methods_on_real_photos(checkpoints, photos, method):
    pipe = ExpressionPipeline(checkpoints[f"stargan-{method}"])
    blank = np.full((80, 80, 3), 127, np.uint8)  # no face
    results = pipe.transfer([*photos, blank], ["happy", "sad"] * 3 + ["happy"])
    assert all(r.found for r in results[:-1])
    assert not results[-1].found and results[-1].reason and results[-1].image is not None
    assert np.array_equal(results[-1].image, blank)
    for photo, r in zip(photos, results):
        assert r.image.shape == photo.shape and r.image.dtype == np.uint8
        changed = np.any(r.image != photo, axis=-1) if photo.ndim == 3 else r.image != photo
        assert changed.any()
        # Only where the method cuts: the part boxes, or the face mask's bounding box.
        touched = np.zeros(photo.shape[:2], bool)
        if method == "parts":
            for crop in crops_for("parts", photo, r.landmarks, pipe.size):
                x, y, w, h = crop.box
                touched[y : y + h, x : x + w] = True
        else:
            ys, xs = np.nonzero(face_mask(photo.shape, r.landmarks, margin=FACE_MARGIN))
            touched[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
        assert not changed[~touched].any()


def test_batches_match_single_images(checkpoints, photos):
    """Batching across images gives the same outputs as one image at a time."""
    pipe = ExpressionPipeline(checkpoints["stargan-parts"], batch_size=5)
    together = pipe.transfer(photos[:3], "happy")
    for photo, r in zip(photos[:3], together):
        alone = pipe.transfer([photo], "happy")[0]
        assert np.abs(alone.image.astype(int) - r.image.astype(int)).max() <= 1


def test_cyclegan_mixed_targets(checkpoints):
    pipe = ExpressionPipeline(checkpoints["cyclegan"], assume_face=True)  # random pixels: no face to find
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, 32), np.uint8) for _ in range(4)]
    results = pipe.transfer(images, ["happy", "neutral", "happy", "neutral"])
    m = pipe.model
    x = torch.from_numpy(np.stack(images))[:, None].float() / 127.5 - 1
    with torch.no_grad():
        expect = [m.a_to_b(x[:1]), m.b_to_a(x[1:2])]
    for r, e in zip(results[:2], expect):
        np.testing.assert_array_equal(r.image, e.add(1).mul(127.5).round().clamp(0, 255).byte()[0, 0].numpy())


def test_2cet_reference_and_strength(checkpoints, photos):
    pipe = ExpressionPipeline(checkpoints["2cet"], method="image", assume_face=True)  # random pixels: no face
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (32, 32), np.uint8) for _ in range(3)]
    neutral = pipe.transfer(images, "neutral")
    zero = pipe.transfer(images, reference=photos[0], strength=0.0)
    for a, b in zip(neutral, zero):
        assert np.array_equal(a.image, b.image)
    full = pipe.transfer(images, reference=[photos[0], photos[1]])
    assert any(not np.array_equal(a.image, b.image) for a, b in zip(full, zero))
    with pytest.raises(ValueError, match="needs a model with an expression encoder"):
        ExpressionPipeline(checkpoints["stargan-image"]).transfer(images, reference=photos[0])


def test_cli_transfer(checkpoints, photos, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i, photo in enumerate(photos[:3]):
        Image.fromarray(photo).save(src / f"face{i}.jpg", quality=95)
    Image.fromarray(photos[3]).save(src / "sub" / "face3.png")
    Image.new("RGB", (64, 64), (127, 127, 127)).save(src / "blank.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    fxaug = Path(sys.executable).parent / "fxaug"
    run = subprocess.run([str(fxaug), "transfer", str(src), "--to", "happy", "--model", str(checkpoints["stargan-parts"]),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["blank.png", "face0.jpg", "face1.jpg", "face2.jpg", "sub/face3.png"]
    assert "broken.jpg" in run.stderr and "corrupt" in run.stderr
    assert "blank.png" in run.stderr and "written unchanged" in run.stderr
    assert "wrote 5 images" in run.stdout
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    refused = subprocess.run([str(fxaug), "transfer", str(src / "face0.jpg"), "--to", "happy", "--model",
                              str(checkpoints["stargan-parts"]), "--out", str(src)], capture_output=True, text=True)
    assert refused.returncode == 2 and "overwrite the input" in refused.stderr
    unknown = subprocess.run([str(fxaug), "transfer", str(src), "--to", "contempt", "--model",
                              str(checkpoints["stargan-parts"]), "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert unknown.returncode == 2 and "cannot produce 'contempt'" in unknown.stderr
