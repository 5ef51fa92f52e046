"""The identity net (face-api.js FaceRecognitionNet ported to PyTorch): agreement with face-api.js
itself, input handling, and what its distances say on real news photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from fxaug.metrics import identity as I

# Descriptors face-api.js 1.7.15 computes (TF.js 4.22, pure-JavaScript CPU backend) for
# `synthetic_images()`, written by benchmarks/identity_reference/reference.cjs.
FACEAPI_JS_DESCRIPTORS = Path(__file__).with_name("data") / "faceapi_js_descriptors.npy"


def synthetic_images() -> list[np.ndarray]:
    """Deterministic RGB patterns in the shapes that exercise each input path: 150 x 150 (no
    resize: the net alone), 128 x 128 (resize), 61 x 97 and 90 x 70 (padded to square, then resized)."""
    out = []
    for h, w in ((150, 150), (128, 128), (61, 97), (90, 70)):
        y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
        out.append(((x * x * 7 + y * 13 + c * 97 + (x * y) % 23 * 11) % 256).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def encoder():
    return I.IdentityEncoder("cpu")


def test_port_matches_face_api_js():
    """With the 1.7.15 build's input scaling (/255), the port reproduces face-api.js's descriptors,
    preparation included, to float32 round-off; the default (dlib's /256) stays within 2e-3."""
    reference = np.load(FACEAPI_JS_DESCRIPTORS)
    images = synthetic_images()
    same_build = I.IdentityEncoder(net=I.load_face_recognition_net(input_divisor=255))(images)
    np.testing.assert_allclose(same_build, reference, atol=2e-5, rtol=0)
    default = I.IdentityEncoder()(images)
    assert np.linalg.norm(default - reference, axis=1).max() < 2e-3


def test_shipped_weights_are_the_tfjs_tensors(tmp_path):
    """The safetensors file holds exactly the TF.js numbers (checked when the original is at hand)."""
    from conftest import SHARED

    manifest = SHARED / "models" / "face-api" / "face_recognition_model-weights_manifest.json"
    if not manifest.is_file():
        pytest.skip(f"{manifest} not available")
    from fxaug.faces.landmarks import read_tfjs_weights

    original = read_tfjs_weights(manifest)
    shipped = I.read_weights()
    assert set(shipped) == set(original)
    for name, value in original.items():
        assert np.array_equal(shipped[name], value), name
    # and the converter reproduces the shipped file's tensors
    again = I.read_weights(I.tfjs_to_safetensors(manifest, tmp_path / "w.safetensors"))
    assert all(np.array_equal(again[k], shipped[k]) for k in shipped)


def test_distance_to_itself_is_zero_and_layouts_agree(encoder):
    images = synthetic_images()[:2]
    assert np.allclose(I.identity_distance(images, images, encoder), 0, atol=1e-6)
    gray = images[1][:, :, 0]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    d = encoder([gray, gray[:, :, None], rgb])
    np.testing.assert_allclose(d[0], d[2], atol=1e-6)
    np.testing.assert_allclose(d[1], d[2], atol=1e-6)
    nchw = np.stack([rgb, rgb]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(encoder(nchw)[0], d[2], atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        encoder([rgb.astype(np.float32)])
    with pytest.raises(ValueError, match="pairs"):
        I.identity_distance(images, images[:1], encoder)


def test_summary_counts_pairs_below_threshold():
    s = I.summarize_distances(np.array([0.1, 0.5, 0.7, 0.9]))
    assert s["n"] == 4 and s["share_below"] == 0.5 and s["mean"] == pytest.approx(0.55)


def test_same_person_closer_than_different_people_on_news_photos(lfw_parquet, encoder):
    """40 pairs of two photos of one person against 40 pairs of two people: same-person pairs are
    closer on average, and the 0.6 rule gets most of them right."""
    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(lfw_parquet, columns=["image", "identity"])
    identities = np.array(table.column("identity").to_pylist())
    rng = np.random.default_rng(1)
    people, counts = np.unique(identities, return_counts=True)
    chosen = rng.choice(people[counts >= 2], 40, replace=False)
    same = [tuple(rng.choice(np.flatnonzero(identities == p), 2, replace=False)) for p in chosen]
    different = []
    while len(different) < 40:
        i, j = rng.integers(0, len(identities), 2)
        if identities[i] != identities[j]:
            different.append((i, j))
    cells = table.column("image")

    def image(row):
        return np.asarray(Image.open(io.BytesIO(cells[int(row)].as_py()["bytes"])).convert("RGB"))

    def distances(pairs):
        return I.identity_distance([image(i) for i, _ in pairs], [image(j) for _, j in pairs], encoder)

    d_same, d_diff = distances(same), distances(different)
    assert d_same.mean() + 0.15 < d_diff.mean()
    accuracy = ((d_same < I.SAME_PERSON).sum() + (d_diff >= I.SAME_PERSON).sum()) / 80
    assert accuracy > 0.8
