"""Blending a part back: each mode leaves everything outside the box untouched and adds no step
at its border, on real faces with real patches (the same part of another face); luminance-only
pasting into colour photos; the torch batch version."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from fxaug.faces import blend as B
from fxaug.faces.alignment import align_face, eye_centres, transform_points
from fxaug.faces.regions import part_boxes, part_mask

from faces_data import detector, fer_faces, landmarker, news_photos

MODES = B.MODES


@pytest.fixture(scope="module")
def aligned_faces():
    """(aligned 128 px grey face, its landmarks) for 8 real faces (4 FER2013, 4 news photos)."""
    images = list(fer_faces(100)[30:34]) + [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im for im in news_photos(100)[30:34]]
    out = []
    for image in images:
        found = detector()(image)
        if found.found:
            points = landmarker()(image, found.face.box)
            aligned, M = align_face(image, eye_centres(points), 128)
            out.append((aligned, transform_points(points, M)))
    assert len(out) >= 7
    return out


def ring_step(image: np.ndarray, box, k: int) -> float:
    """Mean |difference| between ring k of the box (k px in from its edge) and the ring just
    outside it (k = 0: across the box border)."""
    img = image.astype(np.float64)
    x, y, w, h = box
    x0, y0, x1, y1 = x + k, y + k, x + w - 1 - k, y + h - 1 - k
    steps = []
    if y0 >= 1:
        steps.append(np.abs(img[y0, x0 : x1 + 1] - img[y0 - 1, x0 : x1 + 1]))
    if y1 + 1 < img.shape[0]:
        steps.append(np.abs(img[y1, x0 : x1 + 1] - img[y1 + 1, x0 : x1 + 1]))
    if x0 >= 1:
        steps.append(np.abs(img[y0 : y1 + 1, x0] - img[y0 : y1 + 1, x0 - 1]))
    if x1 + 1 < img.shape[1]:
        steps.append(np.abs(img[y0 : y1 + 1, x1] - img[y0 : y1 + 1, x1 + 1]))
    return float(np.concatenate(steps).mean())


def outside(shape, box) -> np.ndarray:
    x, y, w, h = box
    mask = np.ones(shape[:2], bool)
    mask[y : y + h, x : x + w] = False
    return mask


def pastes(aligned_faces):
    """(face, patch from the next face, box, part mask) for every part of every face."""
    for i, (face, points) in enumerate(aligned_faces):
        donor = aligned_faces[(i + 1) % len(aligned_faces)][0]
        for name, (x, y, w, h) in part_boxes(points, face.shape).items():
            yield face, donor[y : y + h, x : x + w], (x, y, w, h), part_mask(face.shape, points, name)


@pytest.mark.parametrize("mode", MODES)
def test_outside_the_box_is_untouched_and_the_border_adds_no_step(aligned_faces, mode):
    border_excess, ring_excess = [], []
    for face, patch, box, mask in pastes(aligned_faces):
        out = B.paste(face, patch, box, mode, mask=None if mode == "ramp" else mask)
        assert out.dtype == face.dtype and out.shape == face.shape
        keep = outside(face.shape, box)
        np.testing.assert_array_equal(out[keep], face[keep])
        assert (out != face).any()  # the patch did go in
        border_excess.append(ring_step(out, box, 0) - ring_step(face, box, 0))
        ring_excess.append(max(ring_step(out, box, k) - ring_step(face, box, k) for k in range(4)))
    assert np.mean(border_excess) <= 2.0 and max(border_excess) <= 2.0
    # and no seam just inside it: within 3 px of the border steps grow by <= 2 grey levels on average
    assert np.mean(ring_excess) <= 2.0, np.mean(ring_excess)


def test_ramp_matches_brightness_first(aligned_faces):
    """A brightness-shifted copy of the region itself goes back (almost) invisibly."""
    face, points = aligned_faces[0]
    x, y, w, h = part_boxes(points, face.shape)["mouth"]
    brighter = np.clip(face[y : y + h, x : x + w].astype(np.int16) + 40, 0, 255).astype(np.uint8)
    out = B.blend_ramp(face, brighter, (x, y, w, h))
    assert np.abs(out.astype(int) - face.astype(int)).max() <= 1
    unmatched = B.blend_ramp(face, brighter, (x, y, w, h), match=None)
    assert np.abs(unmatched.astype(int) - face.astype(int)).max() > 30


def test_ramp_weights_fall_linearly_to_zero_at_the_edges():
    w = B.ramp_weights(9, 15)
    assert w.shape == (9, 15) and w.dtype == np.float32
    assert (w[0] == 0).all() and (w[-1] == 0).all() and (w[:, 0] == 0).all() and (w[:, -1] == 0).all()
    assert w.max() == 1.0 and w[4, 7] == 1.0
    np.testing.assert_allclose(w[:5, 7], [0, 0.25, 0.5, 0.75, 1.0])
    half = B.ramp_weights(9, 15, ramp=0.5)
    np.testing.assert_allclose(half[:5, 7], [0, 0.5, 1, 1, 1])
    with pytest.raises(ValueError):
        B.ramp_weights(9, 9, ramp=0)


def test_feather_weights_are_soft_inside_the_mask_and_zero_at_the_edge():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 15:45] = True
    alpha = B.feather_weights(mask)
    assert alpha[20, 30] > 0.9 and alpha[2, 2] < 0.01
    assert (alpha[0] == 0).all() and (alpha[:, -1] == 0).all()
    assert 0.2 < alpha[10, 30] < 0.8  # soft at the mask's edge


def test_match_brightness_equalises_means():
    rng = np.random.default_rng(0)
    patch, reference = rng.uniform(0, 100, (8, 8, 1)), rng.uniform(100, 200, (8, 8, 1))
    assert B.match_brightness(patch, reference).mean() == pytest.approx(reference.mean())
    weights = np.zeros((8, 8))
    weights[0] = 1
    matched = B.match_brightness(patch, reference, weights)
    assert matched[0].mean() == pytest.approx(reference[0].mean())


def _colour_photo():
    for image in news_photos(100):
        if image.ndim == 3 and np.abs(image[:, :, 0].astype(int) - image[:, :, 2]).mean() > 8:
            return image
    pytest.skip("no colour photo among the sampled news photos")


@pytest.mark.parametrize("mode", MODES)
def test_grey_patch_into_a_colour_photo_replaces_only_luminance(mode):
    photo = _colour_photo()
    found = detector()(photo)
    points = landmarker()(photo, found.face.box)
    box = part_boxes(points, photo.shape)["mouth"]
    x, y, w, h = box
    donor = cv2.cvtColor(news_photos(100)[31], cv2.COLOR_RGB2GRAY) if news_photos(100)[31].ndim == 3 else news_photos(100)[31]
    patch = cv2.resize(donor, (w, h))
    mask = part_mask(photo.shape, points, "mouth")
    out = B.paste(photo, patch, box, mode, mask=None if mode == "ramp" else mask)
    keep = outside(photo.shape, box)
    np.testing.assert_array_equal(out[keep], photo[keep])
    before = cv2.cvtColor(photo, cv2.COLOR_RGB2YCrCb).astype(int)[y : y + h, x : x + w]
    after = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb).astype(int)[y : y + h, x : x + w]
    unclipped = ((out[y : y + h, x : x + w] > 0) & (out[y : y + h, x : x + w] < 255)).all(axis=2)
    assert np.abs(after[:, :, 1:] - before[:, :, 1:])[unclipped].max() <= 2  # chroma kept (8-bit rounding)
    assert np.abs(after[:, :, 0] - before[:, :, 0]).max() > 10  # luminance replaced
    # pixels the blend gave no weight stay bit-identical (no colour-space round trip)
    same = (out[y : y + h, x : x + w] == photo[y : y + h, x : x + w]).all(axis=2)
    assert same[0].all() and same[-1].all()


def test_colour_patch_into_a_grey_image_goes_in_as_grey(aligned_faces):
    face, points = aligned_faces[0]
    box = part_boxes(points, face.shape)["left_eye"]
    patch = np.zeros((box[3], box[2], 3), np.uint8)
    patch[:, :, 1] = 200
    out = B.blend_ramp(face, patch, box, ramp=0.5, match=None)  # weight 1 in the middle
    assert out.shape == face.shape
    x, y, w, h = box
    assert out[y + h // 2, x + w // 2] == pytest.approx(0.587 * 200, abs=2)


def test_float_images_stay_float_and_in_range(aligned_faces):
    face, points = aligned_faces[1]
    box = part_boxes(points, face.shape)["mouth"]
    x, y, w, h = box
    image = face.astype(np.float32) / 255
    patch = np.full((h, w), 0.9, np.float32)
    for mode in MODES:
        out = B.paste(image, patch, box, mode, mask=np.ones((h, w), bool))
        assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        np.testing.assert_array_equal(out[outside(image.shape, box)], image[outside(image.shape, box)])


def test_patch_is_resized_to_the_box(aligned_faces):
    face, points = aligned_faces[2]
    box = part_boxes(points, face.shape)["nose"]
    x, y, w, h = box
    region = face[y : y + h, x : x + w]
    big = cv2.resize(region, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
    out = B.blend_ramp(face, big, box)
    assert np.abs(out.astype(int) - face.astype(int)).max() <= 12


def test_seamless_clone_lands_where_the_box_is():
    """A bright dot at the patch's (x, y) = (9, 6) lands at the image's (30 + 9, 20 + 6). (OpenCV
    takes the patch's gradients only from 3 px inside the mask, so the dot sits deeper in.)"""
    image = np.full((60, 80), 100, np.uint8)
    patch = np.full((15, 21), 100, np.uint8)
    patch[6, 9] = 250
    out = B.blend_seamless(image, patch, (30, 20, 21, 15))
    y, x = np.unravel_index(np.argmax(out), out.shape)
    assert (x, y) == (39, 26) and out[y, x] > 200


def test_bad_arguments_are_refused():
    image = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError):
        B.blend_ramp(image, np.zeros((5, 5), np.uint8), (18, 0, 5, 5))
    with pytest.raises(ValueError):
        B.paste(image, np.zeros((5, 5), np.uint8), (0, 0, 5, 5), "feather")
    with pytest.raises(ValueError):
        B.paste(image, np.zeros((5, 5), np.uint8), (0, 0, 5, 5), "poisson")
    with pytest.raises(ValueError):
        B.blend_ramp(image, np.zeros((5, 5), np.uint8), (0, 0, 5, 5), match="median")
    with pytest.raises(TypeError):
        B.blend_ramp(image.astype(np.int32), np.zeros((5, 5), np.uint8), (0, 0, 5, 5))


@pytest.mark.parametrize("channels", [1, 3])
def test_torch_batch_matches_the_numpy_blend(aligned_faces, channels):
    faces, patches, boxes = [], [], []
    size = None
    for face, points in aligned_faces:
        x, y, w, h = part_boxes(points, face.shape)["mouth"]
        size = size or (w, h)
        assert (w, h) == size  # aligned faces: one box size
        faces.append(face if channels == 1 else np.repeat(face[:, :, None], 3, axis=2) // np.array([1, 2, 3], np.uint8))
        patches.append(aligned_faces[(len(patches) + 1) % len(aligned_faces)][0][y : y + h, x : x + w])
        boxes.append((x, y, w, h))
    images = torch.from_numpy(np.stack(faces))
    images = images.unsqueeze(1) if channels == 1 else images.permute(0, 3, 1, 2)
    out = B.blend_batch(images, torch.from_numpy(np.stack(patches)).unsqueeze(1), boxes)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    for i in range(len(faces)):
        expected = B.blend_ramp(faces[i], patches[i], boxes[i])
        got = out[i, 0].numpy() if channels == 1 else out[i].permute(1, 2, 0).numpy()
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        keep = outside(faces[i].shape, boxes[i])
        np.testing.assert_array_equal(got[keep], faces[i][keep])
    # float images and a per-sample alpha (feathered masks) work the same way
    alphas = torch.stack([torch.from_numpy(B.feather_weights(np.ones((size[1], size[0]), bool)))] * len(faces))
    out_f = B.blend_batch(images.float() / 255, torch.from_numpy(np.stack(patches)).unsqueeze(1).float() / 255, boxes, alphas)
    assert out_f.dtype == torch.float32 and float(out_f.min()) >= 0 and float(out_f.max()) <= 1
