"""fxaug.augment / fxaug.Augmenter as a datasets map function, on real faces, with a small
(untrained) generator checkpoint: appended rows, provenance, labels, multiprocessing, caching."""

from __future__ import annotations

import subprocess
import sys

import datasets
import numpy as np
import pytest
from faces_data import news_photos
from PIL import Image

import fxaug


@pytest.fixture(scope="module")
def saved_ds(tmp_path_factory):
    photos = list(news_photos()[:8])
    labels = ["neutral", "happy", "neutral", "sad", "neutral", "happy", "neutral", "sad"]
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(p) for p in photos], "label": labels, "who": list(range(8))},
                                    features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string"),
                                                                "who": datasets.Value("int64")}))
    path = tmp_path_factory.mktemp("ds") / "faces"
    ds.save_to_disk(str(path))
    return path


def test_map_appends_synthesized_rows_with_provenance(tiny_parts_model, saved_ds):
    ds = datasets.load_from_disk(str(saved_ds))
    aug = fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy", "sad"])
    out = ds.map(aug, batched=True, batch_size=3, with_indices=True)
    assert len(out) == 16  # every face found: one synthesized row after each original
    originals = [r for r in out if r["fxaug_target"] is None]
    made = [r for r in out if r["fxaug_target"] is not None]
    assert [r["who"] for r in originals] == list(range(8))
    for r in made:
        assert r["label"] == r["fxaug_target"] != r["fxaug_source_label"]
        assert r["fxaug_method"] == "parts" and r["fxaug_model"] == str(tiny_parts_model)
        assert ds[r["fxaug_source_index"]]["who"] == r["who"]
        assert r["image"].size == ds[r["fxaug_source_index"]]["image"].size
    # Batch size does not change the result (targets are seeded by source index).
    again = ds.map(aug, batched=True, batch_size=8, with_indices=True)
    assert again["fxaug_target"] == out["fxaug_target"]


def test_classlabel_datasets(tiny_parts_model):
    photos = list(news_photos()[:4])
    names = ["anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(p) for p in photos], "label": [5, 5, 4, 6]},
                                    features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)}))
    # The map reads the ClassLabel's names from the dataset's features; for_dataset binds them too.
    for aug in (fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"]),
                fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"]).for_dataset(ds)):
        out = ds.map(aug, batched=True, with_indices=True)
        assert out.features["label"] == ds.features["label"]
        made = [r for r in out if r["fxaug_target"]]
        assert len(made) == 3 and all(r["label"] == names.index("happiness") for r in made)
    # A batch that is a plain dict (no Dataset behind it) says what it needs.
    with pytest.raises(TypeError, match="class names"):
        fxaug.Augmenter(model=str(tiny_parts_model))({"image": [photos[0]], "label": [5]})


def test_fingerprint_is_stable_across_processes(tiny_parts_model):
    code = ("import fxaug; from datasets.fingerprint import Hasher; "
            f"print(Hasher.hash(fxaug.Augmenter(model={str(tiny_parts_model)!r}, targets=['happy'])))")
    hashes = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(2)}
    assert len(hashes) == 1
    from datasets.fingerprint import Hasher

    aug = fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"])
    before = Hasher.hash(aug)
    aug.pipeline()  # loading the model must not change the hash
    assert Hasher.hash(aug) == before == hashes.pop()
    assert Hasher.hash(fxaug.Augmenter(model=str(tiny_parts_model), targets=["sad"])) != before


def test_cache_is_reused_without_random_hash_warning(tiny_parts_model, saved_ds, caplog):
    ds = datasets.load_from_disk(str(saved_ds))
    aug = fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"])
    with caplog.at_level("WARNING"):
        first = ds.map(aug, batched=True, with_indices=True)
        second = ds.map(fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"]), batched=True, with_indices=True)
    assert first._fingerprint == second._fingerprint
    assert first.cache_files == second.cache_files
    assert not [r for r in caplog.records if "hash" in r.getMessage().lower()]


@pytest.mark.slow
def test_num_proc_with_rank(tiny_parts_model, saved_ds):
    ds = datasets.load_from_disk(str(saved_ds))
    aug = fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy", "sad"])
    parallel = ds.map(aug, batched=True, batch_size=2, with_indices=True, with_rank=True, num_proc=2)
    single = ds.map(aug, batched=True, batch_size=2, with_indices=True)
    assert parallel["fxaug_target"] == single["fxaug_target"]
    for a, b in zip(parallel["image"], single["image"]):
        assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1


def test_missing_column_is_named(tiny_parts_model):
    ds = datasets.Dataset.from_dict({"img": [Image.new("L", (8, 8))], "label": ["happy"]})
    with pytest.raises(KeyError, match="no column 'image'"):
        ds.map(fxaug.Augmenter(model=str(tiny_parts_model)), batched=True)


# ------------------------------------------------ typed provenance: a first batch that makes nothing
@pytest.fixture(scope="module")
def fer_ds(fer):
    """12 FER2013 faces (Training split) with FERPlus labels: the first four happy, so a map
    whose only target is happy synthesizes nothing in a first batch of four."""
    rows = fer.sample(60, seed=3)
    happy = [r for r in rows if fer.emotion(r) == "happy"][:4]
    other = [r for r in rows if fer.emotion(r) in ("neutral", "sad", "surprise", "anger")][:8]
    rows = happy + other
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(fer.images[r]) for r in rows], "label": [fer.emotion(r) for r in rows],
         "row": [int(r) for r in rows]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string"), "row": datasets.Value("int64")}))


def test_first_batch_without_synthesis_keeps_provenance_types(fer_ds):
    """Was: TypeError "Couldn't write column 'fxaug_target': its type in this file is null"."""
    aug = fxaug.Augmenter(targets=["happy"])  # the shipped generator
    out = fer_ds.map(aug, batched=True, batch_size=4, with_indices=True)
    assert out.features == aug.features(fer_ds)
    assert {k: out.features[k].dtype for k in fxaug.hf.PROVENANCE} == {
        "fxaug_source_index": "int64", "fxaug_source_label": "string", "fxaug_target": "string",
        "fxaug_method": "string", "fxaug_model": "string"}
    assert out["fxaug_target"][:4] == [None] * 4  # the first batch: nothing synthesized
    made = [r for r in out if r["fxaug_target"] is not None]
    assert len(made) == 8 and len(out) == 20  # every face found: 12 originals, 8 happy faces
    for r in made:
        assert r["label"] == r["fxaug_target"] == "happy" and r["fxaug_model"] == "inpaint-ferplus-48"
        assert r["row"] == fer_ds[r["fxaug_source_index"]]["row"]
    # Declaring the features to datasets gives the same dataset.
    declared = fer_ds.map(aug, batched=True, batch_size=4, with_indices=True, features=aug.features(fer_ds))
    assert declared.features == out.features and declared["fxaug_target"] == out["fxaug_target"]
    # Originals are copied as stored: their bytes are not decoded and encoded again.
    raw = lambda d: d.cast_column("image", datasets.Image(decode=False))["image"]  # noqa: E731
    originals = [i for i, t in enumerate(out["fxaug_target"]) if t is None]
    assert [raw(out)[i]["bytes"] for i in originals] == [c["bytes"] for c in raw(fer_ds)]


def test_with_rank_with_or_without_indices(tiny_parts_model, saved_ds):
    """datasets calls fn(batch, rank) when with_rank is set without with_indices: the rank must
    not be taken for the indices (it was: every source index read 0 or None)."""
    ds = datasets.load_from_disk(str(saved_ds)).select(range(4))
    aug = fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy", "sad"])
    with_both = ds.map(aug, batched=True, batch_size=2, with_indices=True, with_rank=True)
    rank_only = ds.map(aug, batched=True, batch_size=2, with_rank=True)
    assert sorted(set(with_both["fxaug_source_index"])) == [0, 1, 2, 3]
    assert set(rank_only["fxaug_source_index"]) == {-1} and len(rank_only) == len(with_both)
    # Not batched: index and rank are both ints, told apart by the map's own flags.
    assert ds.map(aug, with_rank=True)["fxaug_source_index"] == [-1] * 4
    assert ds.map(aug, with_indices=True, with_rank=True)["fxaug_source_index"] == [0, 1, 2, 3]
    assert ds.map(aug, with_indices=True)["fxaug_source_index"] == [0, 1, 2, 3]
    # A direct call: a lone int after a batch is the rank, and picks that rank's engine.
    batch = {"image": [np.asarray(ds[0]["image"])], "label": ["neutral"]}
    assert aug(batch, 1)["fxaug_source_index"][0] == -1 and 1 in aug._pipelines
    assert aug(batch, [7], 1)["fxaug_source_index"][0] == 7


def test_shard_start_matches_dataset_shard():
    from fxaug.hf import shard_start

    ds = datasets.Dataset.from_dict({"i": list(range(23))})
    for shards in (1, 2, 3, 5, 23):
        for index in range(shards):
            assert ds.shard(shards, index)[0]["i"] == shard_start(len(ds), shards, index)
    with pytest.raises(ValueError, match="shard index 2 is not in 0..1"):
        shard_start(10, 2, 2)


@pytest.mark.parametrize("fmt", ["numpy", "torch"])
def test_formatted_dataset_with_declared_features(fer_ds, fmt):
    """A formatted dataset hands the function arrays or (channels-first) tensors, not its Arrow
    table: with features=aug.features(ds) the map works and originals keep their pixels."""
    aug = fxaug.Augmenter(targets=["happy"])
    ds = fer_ds.select(range(2, 8))  # two happy rows first
    out = ds.with_format(fmt).map(aug, batched=True, batch_size=2, with_indices=True,
                                  features=aug.features(ds)).with_format(None)
    assert out.features == aug.features(ds)
    originals = [r for r in out if r["fxaug_target"] is None]
    assert len(originals) == 6 and len(out) == 10
    for r, want in zip(originals, ds):
        assert r["image"].mode == "L" and np.array_equal(np.asarray(r["image"]), np.asarray(want["image"]))
    assert all(r["label"] == "happy" for r in out if r["fxaug_target"] is not None)


def test_features_of_a_dataset_dict_and_an_iterable_dataset(fer_ds):
    aug = fxaug.Augmenter(targets=["happy"])
    splits = datasets.DatasetDict(train=fer_ds, test=fer_ds.select(range(2)))
    assert aug.features(splits) == aug.features(fer_ds) == aug.features(fer_ds.features)
    assert list(aug.features(fer_ds))[:3] == ["image", "label", "row"]
    # An IterableDataset maps batches of plain values: declared features name the output's types.
    stream = fer_ds.to_iterable_dataset().map(aug, batched=True, batch_size=4, with_indices=True,
                                              features=aug.features(fer_ds))
    assert stream.features == aug.features(fer_ds)
    rows = list(stream)
    assert [r["fxaug_target"] for r in rows[:4]] == [None] * 4 and len(rows) == 20
