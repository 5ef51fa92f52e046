"""YuNet face detection on real faces: tight dataset crops and photos, grey and RGB, no face,
several faces, bad inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fxaug.faces import Detection, Face, FaceDetector
from fxaug.faces.detection import faces_from_yunet, plan_detection, prepare_for_detection

from faces_data import detector, fer_faces, news_photos, rgb


def test_fer_crops_are_found():
    """48 x 48 grey crops: the face fills the frame; padding and upscaling make it findable.
    (benchmarks/faces_accuracy.py: 98.6% of 500 PublicTest faces.)"""
    found = [detector()(face) for face in fer_faces(100)]
    rate = np.mean([f.found for f in found])
    assert rate >= 0.96, rate
    for f in found:
        if f.found:
            x, y, w, h = f.face.box
            assert 20 < w < 80 and 20 < h < 80, f.face.box  # about the crop's size, in its pixels
            assert -10 < x + w / 2 < 58 and -10 < y + h / 2 < 58


def test_news_photos_are_found():
    found = [detector()(image) for image in news_photos(100)]
    assert np.mean([f.found for f in found]) >= 0.97


def test_face_in_a_large_photo_is_found_where_it_is():
    """A news face upscaled 3x and placed in a 1000 x 700 frame: detected without upscaling,
    at its place in the frame."""
    face = rgb(news_photos(100)[0])
    reference = detector()(face).face
    big = cv2.resize(face, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((700, 1000, 3), 90, np.uint8)
    canvas[200 : 200 + big.shape[0], 550 : 550 + big.shape[1]] = big
    found = detector()(canvas)
    assert found.found
    expected = (np.array(reference.points) + 0.5) * 3 - 0.5 + (550, 200)
    iod = np.linalg.norm(expected[1] - expected[0])
    assert np.abs(found.face.points - expected).max() < 0.25 * iod


def test_points_are_in_original_pixels_and_ordered():
    """Eyes above the nose above the mouth; the first eye on the image's left."""
    for image in news_photos(100)[:20]:
        face = detector()(image).face
        p = face.points
        assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0]
        assert max(p[0, 1], p[1, 1]) < p[2, 1] < min(p[3, 1], p[4, 1])
        assert 0 <= face.score <= 1 and face.source == "yunet"


def test_grey_and_rgb_inputs_agree():
    for face in fer_faces(100)[:10]:
        grey, colour = detector()(face), detector()(rgb(face))
        assert grey.found == colour.found
        if grey.found:
            np.testing.assert_allclose(grey.face.box, colour.face.box, atol=1e-3)
    three_d = detector()(fer_faces(100)[0][:, :, None])
    assert three_d.found == detector()(fer_faces(100)[0]).found


def test_float_images_in_0_1_are_accepted():
    face = fer_faces(100)[1]
    a, b = detector()(face), detector()(face.astype(np.float32) / 255)
    assert a.found and b.found
    np.testing.assert_allclose(a.face.box, b.face.box, atol=1e-3)


def test_no_face_gives_a_reason_not_an_exception():
    rng = np.random.default_rng(0)
    for image in (np.zeros((48, 48), np.uint8), np.full((300, 400, 3), 200, np.uint8), rng.integers(0, 256, (120, 120), np.uint8)):
        result = detector()(image)
        assert isinstance(result, Detection)
        assert not result.found and result.face is None and len(result) == 0
        assert result.reason and "no face found" in result.reason
        assert result.image_size == (image.shape[1], image.shape[0])


def test_bad_inputs_give_a_reason_and_the_batch_goes_on():
    good = fer_faces(100)[2]
    batch = [good, None, np.zeros((0, 5), np.uint8), np.zeros((4, 4, 7), np.uint8), "not an image", np.zeros((30, 30), np.int32), good]
    results = detector().batch(batch)
    assert len(results) == len(batch)
    assert results[0].found and results[-1].found
    for r in results[1:-1]:
        assert not r.found and r.reason.startswith("not an image"), r.reason


def test_whole_image_is_the_face_only_when_asked():
    blank = np.full((48, 48), 128, np.uint8)
    assert not detector()(blank).found
    assumed = detector()(blank, assume_face=True)
    assert assumed.found and assumed.reason is None
    face = assumed.face
    assert face.source == "whole-image" and face.score == 0.0
    assert face.box == (0.0, 0.0, 48.0, 48.0)
    assert face.points[0, 0] < face.points[1, 0] < 48
    # a real face is still detected, not assumed
    real = detector()(fer_faces(100)[3], assume_face=True)
    assert real.face.source == "yunet"


def _two_face_canvas():
    """Two different real news faces side by side, the right one 1.6x larger."""
    photos = news_photos(100)
    small, large = rgb(photos[4]), rgb(photos[5])
    large = cv2.resize(large, None, fx=1.6, fy=1.6, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((large.shape[0] + 60, small.shape[1] + large.shape[1] + 120, 3), 110, np.uint8)
    canvas[30 : 30 + small.shape[0], 30 : 30 + small.shape[1]] = small
    x_large = small.shape[1] + 90
    canvas[30 : 30 + large.shape[0], x_large : x_large + large.shape[1]] = large
    return canvas, x_large


def test_several_faces_largest_by_default_all_on_request():
    canvas, x_large = _two_face_canvas()
    default = detector()(canvas)
    assert len(default.faces) == 1
    assert default.face.box[0] + default.face.box[2] / 2 > x_large  # the larger, right-hand face
    every = detector()(canvas, all_faces=True)
    assert len(every.faces) == 2
    assert every.faces[0].area > every.faces[1].area  # largest first
    assert every.faces[0] == default.face
    centres = sorted(f.box[0] + f.box[2] / 2 for f in every.faces)
    assert centres[0] < x_large < centres[1]


def test_mapping_back_undoes_padding_and_scaling():
    """The prepared copy's coordinates map back onto the original's pixels (pixel centres)."""
    image = rgb(news_photos(100)[6])
    plan = plan_detection(*image.shape[:2], pad=0.25, target_size=320, max_size=1280)
    copy, sx, sy = prepare_for_detection(image, plan)
    assert copy.shape[1] == 320 and plan.scale > 1
    # a point at original pixel (10, 20) sits at (10 + border + 0.5) * s - 0.5 in the copy
    x_copy = (10 + plan.border + 0.5) * sx - 0.5
    y_copy = (20 + plan.border + 0.5) * sy - 0.5
    row = np.array([[x_copy, y_copy, 40 * sx, 50 * sy] + [x_copy, y_copy] * 5 + [0.9]])
    (face,) = faces_from_yunet(row, plan.border, sx, sy)
    np.testing.assert_allclose(face.box, (10, 20, 40, 50), atol=1e-6)
    np.testing.assert_allclose(face.points, [[10, 20]] * 5, atol=1e-5)


def test_detection_plan_upscales_crops_and_shrinks_large_photos():
    crop = plan_detection(48, 48, 0.25, 320, 1280)
    assert crop.border == 12 and crop.scale == pytest.approx(320 / 72)
    photo = plan_detection(600, 800, 0.25, 320, 1280)
    assert photo.scale == 1.0
    huge = plan_detection(3000, 4000, 0.25, 320, 1280)
    assert huge.scale == pytest.approx(1280 / 6000)


def test_face_properties():
    face = Face((1.0, 2.0, 10.0, 20.0), np.array([[3, 4], [7, 4], [5, 6], [4, 8], [6, 8]], np.float32), 0.9)
    assert face.area == 200.0
    assert face.inter_ocular_distance == pytest.approx(4.0)
    np.testing.assert_array_equal(face.eyes, [[3, 4], [7, 4]])
