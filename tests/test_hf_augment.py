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
    with pytest.raises(TypeError, match="class names"):
        ds.map(fxaug.Augmenter(model=str(tiny_parts_model)), batched=True)
    out = ds.map(fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy"]).for_dataset(ds), batched=True, with_indices=True)
    made = [r for r in out if r["fxaug_target"]]
    assert len(made) == 3 and all(r["label"] == names.index("happiness") for r in made)


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
