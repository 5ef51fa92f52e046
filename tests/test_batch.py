"""ExpressionBatchTransfer on collated batches of real FER faces with the shipped generator:
labels follow the faces, the three target policies, dtypes, seeds and replay, the device."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fxaug.batch import ExpressionBatchTransfer

FER_CLASSES = ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer2013.csv order


@pytest.fixture(scope="module")
def batch(fer):
    """Eight real PublicTest faces (B x 1 x 48 x 48 uint8) with their FER2013 labels."""
    rows = fer.sample(8, seed=4, usage=1)
    images = torch.from_numpy(fer.images[rows][:, None].copy())
    labels = torch.from_numpy(fer.fer_label[rows].astype(np.int64))
    return images, labels


def _names(labels):
    return [FER_CLASSES[i] for i in labels.tolist()]


def test_fixed_target_labels_follow_the_faces(batch):
    images, labels = batch
    synth = ExpressionBatchTransfer(FER_CLASSES, p=1.0, target="happy", seed=0)
    out, new = synth(images, labels)
    params = synth.last_params
    assert out.shape == images.shape and out.dtype == torch.uint8 and new.dtype == labels.dtype
    for i, own in enumerate(_names(labels)):
        if own == "happy":  # never "transferred" to the class it has
            assert params["target"][i] is None and new[i] == labels[i] and torch.equal(out[i], images[i])
        elif params["face_found"][i]:
            assert params["target"][i] == "happy" and FER_CLASSES[new[i]] == "happy"
            assert not torch.equal(out[i], images[i])
        else:
            assert new[i] == labels[i] and torch.equal(out[i], images[i])
    assert sum(bool(f) for f in params["face_found"]) >= 5  # real faces are found
    assert torch.equal(images, batch[0])  # the input batch is not written


def test_uniform_targets_among_the_others(batch):
    images, labels = batch
    synth = ExpressionBatchTransfer(FER_CLASSES, p=1.0, seed=1)
    assert synth.policy == "uniform" and set(synth.targets) == {"anger", "fear", "happy", "sad", "surprise", "neutral"}
    seen = set()
    for _ in range(3):
        out, new = synth(images, labels)
        params = synth.last_params
        for i, own in enumerate(_names(labels)):
            target = params["target"][i]
            assert target != own and target in synth.targets
            seen.add(target)
            assert FER_CLASSES[new[i]] == (target if params["face_found"][i] else own)
    assert len(seen) >= 4


def test_fill_rare_classes_from_counts(batch):
    images, labels = batch
    counts = {"anger": 2100, "disgust": 119, "fear": 532, "happy": 7287, "sad": 3014, "surprise": 3149, "neutral": 8740}
    with pytest.warns(UserWarning, match="cannot produce disgust"):
        synth = ExpressionBatchTransfer(FER_CLASSES, p=1.0, class_counts=counts, seed=2)
    assert synth.policy == "fill" and "disgust" not in synth.targets and "neutral" not in synth.targets
    assert dict(zip(synth.targets, synth.weights)) == {"anger": 6640, "fear": 8208, "happy": 1453, "sad": 5726, "surprise": 5591}
    drawn = synth.sample_params(["neutral"] * 4000)["target"]
    share = {t: drawn.count(t) / len(drawn) for t in synth.targets}
    assert abs(share["fear"] - 8208 / 27618) < 0.03 and abs(share["happy"] - 1453 / 27618) < 0.02
    # int keys and imbalanced-learn's vocabulary
    only = ExpressionBatchTransfer(FER_CLASSES, p=1.0, class_counts={i: n for i, n in enumerate(counts.values())},
                                   sampling_strategy={"fear": 1000}, seed=2)
    out, new = only(images, labels)
    assert only.targets == ["fear"]
    assert {t for t in only.last_params["target"] if t} == {"fear"}
    assert all(FER_CLASSES[n] == "fear" for n, f in zip(new.tolist(), only.last_params["face_found"]) if f)


def test_float_images_keep_dtype_and_untouched_pixels(batch):
    images, labels = batch
    floats = images.float() / 255.0
    synth = ExpressionBatchTransfer(FER_CLASSES, p=0.5, target="surprise", seed=3)
    out, new = synth(floats, labels)
    assert out.dtype == torch.float32 and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    chosen = [t is not None and f for t, f in zip(synth.last_params["target"], synth.last_params["face_found"])]
    assert 0 < sum(chosen) < len(chosen)
    for i, c in enumerate(chosen):
        assert torch.equal(out[i], floats[i]) != c
    # the same draws on uint8 give the same faces
    again = ExpressionBatchTransfer(FER_CLASSES, p=0.5, target="surprise", seed=3)
    out8, new8 = again(images, labels)
    assert torch.equal(new8, new) and torch.equal((out * 255).round().to(torch.uint8), out8)


def test_seed_and_params_replay(batch):
    images, labels = batch
    a = ExpressionBatchTransfer(FER_CLASSES, p=0.6, strength=(0.5, 1.0), seed=9)
    b = ExpressionBatchTransfer(FER_CLASSES, p=0.6, strength=(0.5, 1.0), seed=9)
    first, second = a(images, labels), b(images, labels)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    params = a.last_params
    a(images, labels)  # the generator moves on
    replayed = a(images, labels, params=params)
    assert torch.equal(replayed[0], first[0]) and torch.equal(replayed[1], first[1])
    assert a.last_params == params


def test_no_face_keeps_pixels_and_label(batch):
    images, labels = batch
    blank = torch.full((2, 1, 48, 48), 90, dtype=torch.uint8)
    synth = ExpressionBatchTransfer(FER_CLASSES, p=1.0, target="sad", seed=0)
    with pytest.warns(UserWarning, match="no face found in 2 of 2"):
        out, new = synth(blank, torch.tensor([6, 0]))
    assert torch.equal(out, blank) and new.tolist() == [6, 0] and synth.last_params["face_found"] == [False, False]
    never = ExpressionBatchTransfer(FER_CLASSES, p=0.0, seed=0)
    out, new = never(images, labels)
    assert torch.equal(out, images) and torch.equal(new, labels)


def test_not_a_trainable_part(batch):
    synth = ExpressionBatchTransfer(FER_CLASSES, p=0.5, seed=0)
    assert list(synth.parameters()) == [] and synth.state_dict() == {}
    assert "policy=uniform" in repr(synth)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target="disgust", model="inpaint-ferplus-48"), "cannot produce 'disgust'"),
        (dict(target="contempt"), "'contempt' is not among classes"),
        (dict(target="calm", classes=["happy", "sad"]), "'neutral' is not among classes"),
        (dict(target="happy", class_counts={"happy": 3, "sad": 1}), "not both"),
        (dict(p=1.5), "probability"),
        (dict(classes=["happy", "happiness"]), "each class once"),
        (dict(class_counts={"bored": 3}), "unknown emotion label 'bored'"),
        (dict(class_counts={9: 3}), "out of range for 7 classes"),
        (dict(class_counts={"happy": 10, "sad": 1}, sampling_strategy=2.0), r"range \(0, 1\]"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    kwargs = {"classes": FER_CLASSES, **kwargs}
    with pytest.raises(ValueError, match=message):
        ExpressionBatchTransfer(**kwargs)


def test_bad_batches_are_refused(batch):
    images, labels = batch
    synth = ExpressionBatchTransfer(FER_CLASSES, p=1.0, seed=0)
    for bad_images, bad_labels, message in [
        (images[:, 0], labels, "B x C x H x W"),
        (images.float() * 2, labels, "in 0..1"),
        (images.int(), labels, "uint8 images or floats"),
        (images, labels.float(), "one int label per image"),
        (images, labels[:3], "one int label per image"),
        (images, torch.full_like(labels, 7), "out of range"),
    ]:
        with pytest.raises(ValueError, match=message):
            synth(bad_images, bad_labels)
    with pytest.raises(ValueError, match="params are for 2 samples"):
        synth(images, labels, params={"target": [None, None], "strength": [1.0, 1.0]})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_the_device_of_the_images(batch):
    images, labels = batch
    synth = ExpressionBatchTransfer(FER_CLASSES, p=1.0, target="happy", seed=0)
    out, new = synth(images.cuda().float() / 255, labels.cuda())
    assert out.is_cuda and new.is_cuda and synth.pipeline(out.device).device.type == "cuda"
    cpu = ExpressionBatchTransfer(FER_CLASSES, p=1.0, target="happy", seed=0)
    out_cpu, new_cpu = cpu(images.float() / 255, labels)
    assert torch.equal(new.cpu(), new_cpu)
    assert (out.cpu() - out_cpu).abs().max() <= 2 / 255  # GPU float rounding moves a pixel by at most a level or two
