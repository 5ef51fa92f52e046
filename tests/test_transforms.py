"""ExpressionTransfer inside albumentations 2.0.8 pipelines, on real faces, with a small
(untrained) generator checkpoint: determinism, serialisation, pass-through targets, batching."""

from __future__ import annotations

import pickle
import warnings

import albumentations as A
import numpy as np
import pytest
from faces_data import news_photos

from fxaug.transforms import ExpressionTransfer


@pytest.fixture(scope="module")
def photo():
    return next(p for p in news_photos() if p.ndim == 3)


def _compose(tiny_parts_model, seed=137, **kw):
    return A.Compose(
        [A.HorizontalFlip(p=0.5), ExpressionTransfer(["happy", "sad"], model=str(tiny_parts_model), strength=(0.5, 1.0), p=1.0, **kw)],
        seed=seed,
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy"),
    )


def test_same_seed_same_output(tiny_parts_model, photo):
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[10:40, 20:60] = 1
    kwargs = dict(image=photo, mask=mask, bboxes=[(10, 12, 50, 60)], labels=[1], keypoints=[(30.0, 40.0)])
    a = _compose(tiny_parts_model)(**kwargs)
    b = _compose(tiny_parts_model)(**kwargs)
    assert np.array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], photo) and a["image"].shape == photo.shape
    # Masks, boxes and keypoints pass through ExpressionTransfer untouched (only the flip moves them).
    flipped = np.array_equal(a["mask"], mask[:, ::-1])
    assert flipped or np.array_equal(a["mask"], mask)
    assert len(a["bboxes"]) == 1 and len(a["keypoints"]) == 1
    alone = ExpressionTransfer("happy", model=str(tiny_parts_model), p=1.0)(image=photo, mask=mask, bboxes=[(1, 2, 3, 4)])
    assert np.array_equal(alone["mask"], mask) and alone["bboxes"] == [(1, 2, 3, 4)]


def test_targets_and_strengths_are_sampled_from_albumentations_rng(tiny_parts_model):
    t = ExpressionTransfer(["happy", "sad"], model=str(tiny_parts_model), strength=(0.2, 0.8))
    t.set_random_seed(5)
    first = [t.get_params() for _ in range(20)]
    t.set_random_seed(5)
    assert [t.get_params() for _ in range(20)] == first
    assert {p["target"] for p in first} == {"happy", "sad"}
    assert all(0.2 <= p["strength"] <= 0.8 for p in first)


def test_save_load_round_trip(tiny_parts_model, photo, tmp_path):
    aug = _compose(tiny_parts_model)
    A.save(aug, str(tmp_path / "aug.json"))
    text = (tmp_path / "aug.json").read_text()
    assert "ExpressionTransfer" in text and str(tiny_parts_model) in text and "state_dict" not in text
    loaded = A.load(str(tmp_path / "aug.json"))
    loaded.set_random_seed(137)
    aug.set_random_seed(137)
    kwargs = dict(image=photo, bboxes=[], labels=[], keypoints=[])
    assert np.array_equal(loaded(**kwargs)["image"], aug(**kwargs)["image"])


def test_model_is_lazy_and_not_pickled(tiny_parts_model, photo):
    t = ExpressionTransfer("happy", model=str(tiny_parts_model), p=1.0)
    assert t._pipeline is None
    t(image=photo)
    assert t._pipeline is not None
    clone = pickle.loads(pickle.dumps(t))
    assert clone._pipeline is None and len(pickle.dumps(t)) < 10_000
    assert np.array_equal(clone(image=photo)["image"], t(image=photo)["image"])


def test_batched_images(tiny_parts_model):
    import cv2

    photos = [cv2.resize(p, (112, 112), interpolation=cv2.INTER_AREA) for p in news_photos() if p.ndim == 3][:3]
    batch = np.stack(photos)
    t = ExpressionTransfer("happy", model=str(tiny_parts_model), p=1.0)
    out = t(images=batch)["images"]
    assert out.shape == batch.shape
    for i, photo in enumerate(photos):
        assert np.abs(out[i].astype(int) - t(image=photo)["image"].astype(int)).max() <= 1


def test_no_face_unchanged_with_warning(tiny_parts_model):
    blank = np.full((64, 64, 3), 100, np.uint8)
    t = ExpressionTransfer("happy", model=str(tiny_parts_model), p=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = t(image=blank)["image"]
    assert np.array_equal(out, blank)
    assert len([w for w in caught if "no face found" in str(w.message)]) == 1


def test_grey_single_channel_images(tiny_parts_model, photo):
    grey = photo.mean(axis=2).astype(np.uint8)[:, :, None]
    out = ExpressionTransfer("happy", model=str(tiny_parts_model), p=1.0)(image=grey)["image"]
    assert out.shape == grey.shape and out.dtype == np.uint8


def test_unknown_target_and_source_are_refused(tiny_parts_model, photo):
    with pytest.raises(ValueError, match="cannot produce 'contempt'"):
        ExpressionTransfer("contempt", model=str(tiny_parts_model), p=1.0)(image=photo)
    from fxaug.emotions import UnknownEmotionError

    with pytest.raises(UnknownEmotionError):
        ExpressionTransfer("bored")
