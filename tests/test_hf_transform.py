"""fxaug's on-the-fly mode for datasets' set_transform / with_transform, on real FER faces with
the shipped generator: faces replaced as rows are read, labels following the face, draws that
replay within an epoch and change across epochs."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from PIL import Image

import fxaug


@pytest.fixture(scope="module")
def fer_ds(fer):
    rows = fer.sample(16, seed=5)
    names = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    labels = [names.index({"happy": "happiness", "sad": "sadness"}.get(fer.emotion(r), fer.emotion(r))) for r in rows]
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(fer.images[r]) for r in rows], "label": labels},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)}))


def _read(ds):
    rows = ds[:]
    return [np.asarray(im) for im in rows["image"]], rows


def test_transform_replaces_faces_and_labels_follow(fer_ds):
    aug = fxaug.Augmenter(targets=["happy", "sad", "surprise"], seed=1)
    transform = aug.as_transform(p=0.5, dataset=fer_ds, provenance=True)
    train = fer_ds.with_transform(transform)
    plain = [np.asarray(im) for im in fer_ds["image"]]
    names = fer_ds.features["label"].names
    images, rows = _read(train)
    made = [i for i, t in enumerate(rows["fxaug_target"]) if t is not None]
    assert 3 <= len(made) <= 13  # p=0.5 of 16 rows, seeded
    for i in range(len(fer_ds)):
        source = rows["fxaug_source_label"][i]
        assert source == fxaug.emotions.canonical(names[fer_ds[i]["label"]])
        if i in made:
            target = rows["fxaug_target"][i]
            assert target != source and fxaug.emotions.canonical(names[rows["label"][i]]) == target
            assert images[i].shape == plain[i].shape and np.abs(images[i].astype(int) - plain[i]).max() > 10
        else:
            assert rows["label"][i] == fer_ds[i]["label"] and np.array_equal(images[i], plain[i])
    # A row read again in the same epoch (alone, or in another batch) is the same draw.
    again = train[made[0]]
    assert again["label"] == rows["label"][made[0]] and np.array_equal(np.asarray(again["image"]), images[made[0]])
    assert _read(train)[1]["fxaug_target"] == rows["fxaug_target"]
    # Another epoch is a fresh draw; going back replays the first.
    transform.set_epoch(1)
    assert _read(train)[1]["fxaug_target"] != rows["fxaug_target"]
    transform.set_epoch(0)
    assert _read(train)[1]["fxaug_target"] == rows["fxaug_target"]


def test_transform_row_ids_from_a_column_survive_shuffle(fer_ds):
    ds = fer_ds.add_column("id", list(range(len(fer_ds))))
    transform = fxaug.Augmenter(targets=["happy", "sad"], seed=2).as_transform(p=0.5, dataset=ds, index_column="id",
                                                                             provenance=True)
    straight = ds.with_transform(transform)[:]
    shuffled = ds.shuffle(seed=0).with_transform(transform)[:]
    by_id = dict(zip(straight["id"], straight["fxaug_target"]))
    assert {i: t for i, t in zip(shuffled["id"], shuffled["fxaug_target"])} == by_id
    assert any(t is not None for t in by_id.values())
    with pytest.raises(KeyError, match="no column 'id'.*add_column"):
        fer_ds.with_transform(transform)[:2]


def test_transform_in_a_dataloader_with_workers(fer_ds):
    """The recipe of docs/datasets.md: a DataLoader with 2 workers (each loads the generator on
    the CPU), labels following the faces through collate."""
    import torch

    transform = fxaug.Augmenter(targets=["happy", "sad"], seed=3).as_transform(p=1.0, dataset=fer_ds)

    def collate(rows):
        images = torch.stack([torch.from_numpy(np.asarray(r["image"], np.uint8)) for r in rows])
        return images, torch.tensor([r["label"] for r in rows])

    loader = torch.utils.data.DataLoader(fer_ds.with_transform(transform), batch_size=4, num_workers=2,
                                         collate_fn=collate)
    images, labels = map(torch.cat, zip(*loader))
    names = [fxaug.emotions.canonical(n) for n in fer_ds.features["label"].names]
    expected = transform(fer_ds[:])  # the same draws, in this process
    assert labels.tolist() == expected["label"]
    assert all(names[a] != names[b] for a, b in zip(labels.tolist(), fer_ds["label"]) if names[b] not in ("happy", "sad"))
    assert np.array_equal(images.numpy(), np.stack([np.asarray(im) for im in expected["image"]]))


def test_transform_p_zero_and_bad_p(fer_ds):
    transform = fxaug.Augmenter(targets=["happy"]).as_transform(p=0.0, dataset=fer_ds)
    assert fer_ds.with_transform(transform)[:]["label"] == fer_ds["label"]
    with pytest.raises(ValueError, match="not a probability"):
        fxaug.Augmenter().as_transform(p=1.5)
    with pytest.raises(TypeError, match="class names.*dataset=ds"):
        fer_ds.with_transform(fxaug.Augmenter(targets=["happy"]).as_transform(p=1.0))[:2]
