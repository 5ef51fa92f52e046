"""Eye-based similarity alignment: exact geometry, exact inverse, torch = OpenCV, real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from fxaug.faces.alignment import (
    CANONICAL_EYES,
    align_batch,
    align_face,
    alignment_matrix,
    eye_centres,
    invert_affine,
    similarity_from_pairs,
    template_eyes,
    transform_points,
    warp_back,
    warp_back_batch,
)

from faces_data import detector, fer_faces, news_photos, rgb


def test_eyes_land_exactly_on_the_template():
    rng = np.random.default_rng(0)
    for size in (48, 64, 128):
        for _ in range(20):
            eyes = rng.uniform(0, 300, (2, 2))
            M = alignment_matrix(eyes, size)
            np.testing.assert_allclose(transform_points(eyes, M), template_eyes(size), atol=1e-9)


def test_the_transform_is_a_similarity_and_its_inverse_is_exact():
    rng = np.random.default_rng(1)
    eyes = np.array([[40.0, 52.0], [71.0, 47.0]])
    M = alignment_matrix(eyes, 64)
    A = M[:, :2]
    assert abs(A[0, 0] - A[1, 1]) < 1e-12 and abs(A[0, 1] + A[1, 0]) < 1e-12  # rotation x scale
    points = rng.uniform(-50, 200, (68, 2))
    np.testing.assert_allclose(transform_points(transform_points(points, M), invert_affine(M)), points, atol=1e-10)
    np.testing.assert_allclose(invert_affine(M) @ np.vstack([M, [0, 0, 1]]), np.hstack([np.eye(2), np.zeros((2, 1))]), atol=1e-12)
    with pytest.raises(ValueError):
        similarity_from_pairs(np.array([[3.0, 3.0], [3.0, 3.0]]), template_eyes(64))


def test_eye_centres_from_68_and_5_points():
    points = np.zeros((68, 2))
    points[36:42] = [10, 20]
    points[42:48] = [30, 21]
    np.testing.assert_array_equal(eye_centres(points), [[10, 20], [30, 21]])
    np.testing.assert_array_equal(eye_centres(np.arange(10.0).reshape(5, 2)), [[0, 1], [2, 3]])
    with pytest.raises(ValueError):
        eye_centres(np.zeros((10, 2)))


def test_a_rotated_face_comes_out_level():
    """A real face rotated by 25 degrees: alignment puts YuNet's eyes back on the level template."""
    face = rgb(news_photos(100)[11])
    h, w = face.shape[:2]
    R = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 25, 1.0)
    rotated = cv2.warpAffine(face, R, (w, h), borderMode=cv2.BORDER_REFLECT)
    eyes = detector()(rotated).face.points[:2]
    aligned, M = align_face(rotated, eyes, 128)
    again = detector()(aligned).face.points[:2]
    iod = np.linalg.norm(template_eyes(128)[1] - template_eyes(128)[0])
    assert np.abs(again - template_eyes(128)).max() < 0.12 * iod
    assert abs(again[1, 1] - again[0, 1]) < 0.08 * iod  # level


def test_warp_back_returns_the_face_to_its_place():
    """Align a FER face up to 128 px and back: inside the covered area the image comes back
    within a couple of grey levels (only bilinear resampling in between)."""
    face = fer_faces(100)[12]
    eyes = detector()(face).face.points[:2]
    aligned, M = align_face(face, eyes, 128)
    back, inside = warp_back(aligned, M, face.shape)
    assert inside.sum() > 0.5 * inside.size
    core = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    diff = np.abs(back.astype(np.float64) - face.astype(np.float64))[core]
    assert diff.mean() < 2.5, diff.mean()
    assert (back[~inside] == 0).all()


def test_shrinking_alignment_is_antialiased():
    """A fine stripe pattern shrunk 8x averages to grey instead of aliasing into stripes."""
    stripes = np.zeros((800, 800), np.uint8)
    stripes[:, ::2] = 255
    eyes = np.array([[250.0, 300.0], [550.0, 300.0]])
    aligned, _ = align_face(stripes, eyes, 48)
    assert aligned.std() < 4 and abs(aligned.mean() - 127.5) < 4


@pytest.mark.parametrize("size", [48, 128])
def test_torch_batch_matches_opencv(size):
    faces = [rgb(f) for f in fer_faces(100)[13:17]]
    eyes = np.stack([detector()(f).face.points[:2] for f in faces]).astype(np.float64)
    batch = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float()
    aligned, M = align_batch(batch, eyes, size)
    assert aligned.shape == (4, 3, size, size)
    for i, face in enumerate(faces):
        reference, M_cv = align_face(face.astype(np.float32), eyes[i], size)
        np.testing.assert_allclose(M[i], M_cv)
        # OpenCV 4 rounds sample positions to 1/32 px (OpenCV 5 does not): where neighbouring
        # pixels differ by g grey levels that moves a value by up to g/64: about 2 at sharp edges, 0.13 on average.
        diff = np.abs(aligned[i].permute(1, 2, 0).numpy() - reference)
        assert diff.mean() < 0.25 and diff.max() < 4, (diff.mean(), diff.max())  # 255 / 64 = 4
    back, inside = warp_back_batch(aligned, M, 48, 48)
    for i in range(4):
        reference, ref_inside = warp_back(aligned[i].permute(1, 2, 0).numpy(), M[i], (48, 48))
        both = inside[i, 0].numpy() & ref_inside
        diff = np.abs(back[i].permute(1, 2, 0).numpy()[both] - reference[both])  # OpenCV 4's 1/32 px again
        assert diff.mean() < 0.25 and diff.max() < 4, (diff.mean(), diff.max())  # 255 / 64 = 4
        assert (inside[i, 0].numpy() != ref_inside).mean() < 0.03  # the edge of the footprint may differ by a pixel


def test_canonical_template_keeps_the_face_in_frame():
    (lx, ly), (rx, ry) = CANONICAL_EYES
    assert ly == ry and lx + rx == pytest.approx(1.0)  # level, centred
    assert 0.3 < rx - lx < 0.45  # room for the jaw (~2 IOD wide) and chin (~1.4 IOD below)
