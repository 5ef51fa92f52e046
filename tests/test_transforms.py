"""ExpressionTransfer inside albumentations pipelines, on real faces, with a small (untrained)
generator checkpoint: determinism, serialisation, pass-through targets, batching, labels.

The suite's environment has Albumentations 2.0.8; tests/test_packaging.py runs this whole module
again under AlbumentationsX 2.3 and 2.5 (same import name, from a folder first on PYTHONPATH), so
what differs between the libraries is said here where a test meets it: which sampling hook they
call, and what `save_applied_params` records."""

from __future__ import annotations

import pickle
import warnings

import albumentations as A
import numpy as np
import pytest
from faces_data import news_photos

from fxaug.transforms import RECORDS_APPLIED_CONFIG, SAMPLES_PARAMETERS, SAMPLING_TAKES_TARGETS, ExpressionTransfer


def test_the_albumentations_asked_for_samples_through_its_own_hook():
    """Which library this module runs under: FXAUG_TEST_ALBUMENTATIONS="VERSION:FOLDER" where
    tests/test_packaging.py runs it under AlbumentationsX, else the environment's albumentations
    distribution. ExpressionTransfer defines the sampling hook that library calls, and only it
    (AlbumentationsX 2.4+ refuses a class that defines the old one)."""
    import importlib.metadata
    import os

    asked = os.environ.get("FXAUG_TEST_ALBUMENTATIONS")
    if asked:
        version, folder = asked.split(":", 1)
        assert A.__version__ == version and A.__file__.startswith(folder), (A.__version__, A.__file__)
    else:
        assert A.__version__ == importlib.metadata.version("albumentations")
    major_minor = tuple(int(x) for x in A.__version__.split(".")[:2])
    assert SAMPLES_PARAMETERS is (major_minor >= (2, 4))  # 2.0.8 and AlbumentationsX to 2.3: the old hook
    hooks = {"sample_parameters", "get_params_dependent_on_data", "get_params"} & set(vars(ExpressionTransfer))
    assert hooks == ({"sample_parameters"} if SAMPLES_PARAMETERS else {"get_params_dependent_on_data"})


@pytest.fixture(scope="module")
def photo():
    return next(p for p in news_photos() if p.ndim == 3)


def _compose(tiny_parts_model, seed=137, **kw):
    return A.Compose(
        [A.HorizontalFlip(p=0.5), ExpressionTransfer(["happy", "sad"], model=str(tiny_parts_model), strength=(0.5, 1.0), p=1.0, **kw)],
        seed=seed,
        # the coordinate format positionally: `format` in Albumentations 2.0, `coord_format` in AlbumentationsX
        bbox_params=A.BboxParams("pascal_voc", label_fields=["labels"]),
        keypoint_params=A.KeypointParams("xy"),
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


def _sampled(t, **data):
    """One draw through the hook this albumentations calls, from the transform's seeded stream."""
    if not SAMPLES_PARAMETERS:
        return t.get_params_dependent_on_data({}, data)
    # AlbumentationsX 2.4+: a dict in 2.4, a SampledParams taking the call's targets from 2.5
    targets = {"targets": None} if SAMPLING_TAKES_TARGETS else {}
    drawn = t.sample_parameters(params={}, data=data, sampling=t.create_sampling_context(), **targets)
    return dict(getattr(drawn, "params", drawn))


def test_targets_and_strengths_are_sampled_from_albumentations_rng(tiny_parts_model):
    t = ExpressionTransfer(["happy", "sad"], model=str(tiny_parts_model), strength=(0.2, 0.8))
    t.set_random_seed(5)
    first = [_sampled(t) for _ in range(20)]
    t.set_random_seed(5)
    assert [_sampled(t) for _ in range(20)] == first
    assert {p["target"] for p in first} == {"happy", "sad"}
    assert all(0.2 <= p["strength"] <= 0.8 for p in first)
    # the sample's own emotion is never drawn: a sad face goes to the other targets only
    assert {_sampled(t, emotion="sad")["target"] for _ in range(20)} == {"happy"}
    assert {_sampled(t, emotion="Sadness")["target"] for _ in range(20)} == {"happy"}


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
    [message] = [str(w.message) for w in caught if "no face found" in str(w.message)]
    assert message.count("no face found") == 1 and message.startswith("ExpressionTransfer: no face found (YuNet")


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


# -- labels follow the face (issue #20, item 1), on real FER faces with the shipped generator --------

FER_CLASSES = ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer2013.csv order
TARGETS = ["happy", "sad", "surprise", "anger"]


@pytest.fixture(scope="module")
def labelled_faces(fer):
    """Six real PublicTest faces of different FERPlus classes with their labels."""
    rows = fer.sample(6, seed=3, usage=1)
    return [(fer.images[r], fer.emotion(r)) for r in rows]


def _labelled_compose(**kw):
    return A.Compose([ExpressionTransfer(TARGETS, p=1.0, **kw)], seed=11, save_applied_params=True, strict=True)


def _recorded(out):
    """The one ExpressionTransfer record of `save_applied_params`: its applied parameters in
    Albumentations 2.0 (under the class name), the constructor's arguments with the realized
    values in AlbumentationsX (under the full name, for Compose.from_applied_transforms)."""
    [(name, record)] = out["applied_transforms"]
    assert name == ("fxaug.transforms.ExpressionTransfer" if RECORDS_APPLIED_CONFIG else "ExpressionTransfer")
    assert ("face_found" in record) is not RECORDS_APPLIED_CONFIG  # an outcome, no constructor argument
    return record


def test_label_follows_the_face(labelled_faces):
    aug = _labelled_compose(strength=(0.5, 1.0))
    for image, emotion in labelled_faces:
        out = aug(image=image, emotion=emotion)
        params = aug.transforms[0].get_applied_params()
        assert params["face_found"] is True and 0.5 <= params["strength"] <= 1.0
        assert params["source"] == emotion and params["target"] in TARGETS and params["target"] != emotion
        assert out["emotion"] == params["target"]
        assert not np.array_equal(out["image"], image)
        record = _recorded(out)
        assert [record[k] for k in ("target", "source", "strength")] == [params[k] for k in ("target", "source", "strength")]


def test_int_labels_with_class_names(labelled_faces):
    aug = _labelled_compose(classes=FER_CLASSES)
    for image, emotion in labelled_faces:
        label = np.int64(FER_CLASSES.index(emotion)) if emotion in FER_CLASSES else None
        if label is None:  # contempt has no fer2013.csv code
            continue
        out = aug(image=image, emotion=label)
        target = out["applied_transforms"][0][1]["target"]
        assert type(out["emotion"]) is np.int64 and FER_CLASSES[out["emotion"]] == target != emotion
    with pytest.raises(ValueError, match="pass classes="):
        _labelled_compose()(image=labelled_faces[0][0], emotion=3)
    with pytest.raises(ValueError, match="out of range for 7 classes"):
        aug(image=labelled_faces[0][0], emotion=7)
    with pytest.raises(ValueError, match="'contempt' is not among classes"):
        ExpressionTransfer(["happy", "contempt"], classes=FER_CLASSES)


def test_never_to_the_class_it_has_unless_asked(labelled_faces):
    image, _ = labelled_faces[0]
    aug = A.Compose([ExpressionTransfer("happy", p=1.0)], seed=1, save_applied_params=True)
    out = aug(image=image, emotion="happiness")
    assert np.array_equal(out["image"], image) and out["emotion"] == "happiness"
    params = aug.transforms[0].get_applied_params()
    assert params["target"] is None and params["face_found"] is None and params["source"] == "happy"
    # nothing realized: AlbumentationsX keeps the constructor's target, which draws nothing again
    assert _recorded(out)["target"] == ("happy" if RECORDS_APPLIED_CONFIG else None)
    asked = A.Compose([ExpressionTransfer("happy", same_emotion=True, p=1.0)], seed=1, save_applied_params=True)
    out = asked(image=image, emotion="happiness")
    assert out["emotion"] == "happy" and _recorded(out)["target"] == "happy"
    assert not np.array_equal(out["image"], image)
    # source= stands in for a label the call does not pass
    alone = ExpressionTransfer(["happy", "sad"], source="happy", p=1.0)
    assert {alone(image=image)["image"].tobytes() == image.tobytes() for _ in range(3)} == {False}
    assert alone.get_applied_params()["target"] == "sad"


def test_label_unchanged_without_a_face_or_when_not_applied(labelled_faces):
    blank = np.full((48, 48), 90, np.uint8)
    aug = _labelled_compose()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out = aug(image=blank, emotion="sad")
    assert out["emotion"] == "sad" and np.array_equal(out["image"], blank)
    assert aug.transforms[0].get_applied_params()["face_found"] is False
    image, emotion = labelled_faces[0]
    never = A.Compose([ExpressionTransfer(TARGETS, p=0.0)], seed=1, save_applied_params=True)
    out = never(image=image, emotion=emotion)
    assert out["emotion"] == emotion and np.array_equal(out["image"], image) and out["applied_transforms"] == []


def test_applied_params_replay_image_and_label(labelled_faces):
    image, emotion = labelled_faces[1]
    aug = _labelled_compose(strength=(0.4, 1.0))
    out = aug(image=image, emotion=emotion)
    assert out["emotion"] != emotion
    params = aug.transforms[0].get_applied_params()
    again = ExpressionTransfer(TARGETS, p=1.0).apply_with_params(params, image=image, emotion=emotion)
    assert np.array_equal(again["image"], out["image"]) and again["emotion"] == out["emotion"]
    # the library's own record replays too: Albumentations 2.0's parameters by apply_with_params,
    # AlbumentationsX's constructor arguments by rebuilding the pipeline from them
    if RECORDS_APPLIED_CONFIG:
        rebuilt = A.Compose.from_applied_transforms(out["applied_transforms"])(image=image, emotion=emotion)
    else:
        rebuilt = ExpressionTransfer(TARGETS, p=1.0).apply_with_params(_recorded(out), image=image, emotion=emotion)
    assert np.array_equal(rebuilt["image"], out["image"]) and rebuilt["emotion"] == out["emotion"]
    replay = A.ReplayCompose([A.HorizontalFlip(p=0.5), ExpressionTransfer(TARGETS, strength=(0.4, 1.0), p=1.0)])
    replay.set_random_seed(5)
    first = replay(image=image, emotion=emotion)
    replayed = A.ReplayCompose.replay(first["replay"], image=image, emotion=emotion)
    assert np.array_equal(replayed["image"], first["image"]) and replayed["emotion"] == first["emotion"] != emotion


def test_recipe_of_the_applied_parameters_replays(labelled_faces):
    """The python block of docs/recipes.md's AlbumentationsX section, as printed, on a real face."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "recipes.md").read_text()
    section = text[text.index("## AlbumentationsX"):]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    scope = {"image": labelled_faces[0][0]}
    exec(compile(block, "docs/recipes.md", "exec"), scope)
    out, params, again = scope["out"], scope["params"], scope["again"]
    assert {"target", "source", "strength", "face_found"} <= set(params) and params["face_found"] is True
    assert params["source"] == "neutral" and out["emotion"] == params["target"] in ("happy", "sad")
    assert np.array_equal(again["image"], out["image"]) and again["emotion"] == out["emotion"]


def test_batch_of_images_with_a_label_each(labelled_faces):
    images = np.stack([im for im, _ in labelled_faces[:3]] + [np.full((48, 48), 90, np.uint8)])
    labels = [e for _, e in labelled_faces[:3]] + ["neutral"]
    t = ExpressionTransfer(TARGETS, p=1.0)
    t.set_random_seed(2)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        out = t(images=images, emotion=labels)
    params = t.get_applied_params()
    assert params["face_found"] == [True, True, True, False]
    assert out["emotion"][:3] == params["target"][:3] and out["emotion"][3] == "neutral"
    assert all(t != s for t, s in zip(params["target"], labels))
    with pytest.raises(ValueError, match="4 images but 2 emotion labels"):
        t(images=images, emotion=labels[:2])


def _worker_device(_):
    from fxaug.transforms import device_for_this_process

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        device = device_for_this_process("auto")
        again = device_for_this_process("auto")
    return device, again, [str(w.message) for w in caught]


class _Probe:
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return _worker_device(i)


def test_dataloader_workers_default_to_the_cpu_and_say_why():
    import torch
    from torch.utils.data import DataLoader

    from fxaug.transforms import device_for_this_process

    assert device_for_this_process("auto") == "auto"  # the main process: GPU when there is one
    assert device_for_this_process("cuda") == "cuda"
    items = list(DataLoader(_Probe(), batch_size=None, num_workers=1))
    assert [(d, a) for d, a, _ in items] == [("cpu", "cpu")] * 2
    messages = [m for _, _, ms in items for m in ms]
    if torch.cuda.is_available():  # said once per worker, with the reason
        assert len(messages) == 1 and "Cannot re-initialize CUDA in forked subprocess" in messages[0]
    else:
        assert messages == []
