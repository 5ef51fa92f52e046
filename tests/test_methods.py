"""Crops the generators see and the way their outputs go back, on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from faces_data import news_photos

from fxaug.faces import FaceDetector, FaceLandmarker, face_mask
from fxaug.methods import METHODS, PART_NAMES, crops_for, paste_back


@pytest.fixture(scope="module")
def faces():
    """Six colour news photos with their landmarks (found by fxaug.faces)."""
    photos = [p for p in news_photos() if p.ndim == 3][:6]
    detector, landmarker = FaceDetector(), FaceLandmarker()
    boxes = [detector(p).face.box for p in photos]
    return list(zip(photos, landmarker.batch(photos, boxes)))


@pytest.mark.parametrize("method", METHODS)
def test_crop_shapes(faces, method):
    image, points = faces[0]
    crops = crops_for(method, image, points, 32)
    assert len(crops) == (6 if method == "parts" else 1)
    for crop in crops:
        assert crop.pixels.shape == (32, 32, 3) and crop.pixels.dtype == np.uint8
    if method == "parts":
        assert [c.part for c in crops] == list(PART_NAMES)
        for c in crops:
            x, y, w, h = c.box
            assert w == h and 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]


@pytest.mark.parametrize("method", ["face", "parts"])
def test_pasting_the_crops_back_changes_nothing_outside_and_little_inside(faces, method):
    for image, points in faces:
        out = image.copy()
        touched = np.zeros(image.shape[:2], bool)
        for crop in crops_for(method, image, points, 64):
            out = paste_back(out, crop, crop.pixels)
            if method == "parts":
                x, y, w, h = crop.box
                touched[y : y + h, x : x + w] = True
            else:  # the feathered face mask reaches out to the mask's bounding box, no further
                ys, xs = np.nonzero(face_mask(image.shape, points, margin=0.05))
                touched[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
        assert np.array_equal(out[~touched], image[~touched])
        diff = np.abs(out.astype(int) - image.astype(int))[touched]
        assert diff.mean() < 4, diff.mean()


def test_grey_output_into_colour_keeps_chroma(faces):
    image, points = faces[0]
    crop = crops_for("image", image, points, image.shape[0])[0]
    grey = cv2.cvtColor(crop.pixels, cv2.COLOR_RGB2GRAY)
    out = paste_back(image, crop, grey)
    ycc_in, ycc_out = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb), cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)
    assert np.abs(ycc_in[..., 1:].astype(int) - ycc_out[..., 1:]).mean() < 1.5
    assert np.abs(ycc_in[..., 0].astype(int) - ycc_out[..., 0]).mean() < 1.5


def test_face_method_needs_landmarks(faces):
    with pytest.raises(ValueError, match="needs the face's 68 landmarks"):
        crops_for("face", faces[0][0], None, 32)
