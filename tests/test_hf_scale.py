"""The scale-out recipes of docs/datasets.md, run as printed there, on CPU with two processes
over real FER faces and the shipped generator: a map with num_proc=2, spawn and with_rank, and
Dataset.shard under torchrun --nproc_per_node 2. Each must equal a single-process map, row for
row (targets are drawn from the source row's index)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

import fxaug

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
TARGETS = ["happy", "sad", "surprise"]  # as in the recipes


def doc_script(name: str, folder: Path) -> Path:
    """The ```python block of docs/datasets.md whose first line is '# NAME: ...', as a file."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    found = [b for b in blocks if b.startswith(f"# {name}:")]
    assert len(found) == 1, f"docs/datasets.md has {len(found)} blocks starting '# {name}:'"
    path = folder / name
    path.write_text(found[0])
    return path


def run(args: list[str], timeout: int = 240) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def fer_dir(fer, tmp_path_factory) -> Path:
    """10 FER2013 faces with FERPlus labels, saved as a datasets folder."""
    rows = fer.sample(10, seed=7)
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(fer.images[r]) for r in rows], "label": [fer.emotion(r) for r in rows]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}))
    path = tmp_path_factory.mktemp("fer") / "faces"
    ds.save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def single(fer_dir) -> datasets.Dataset:
    ds = datasets.load_from_disk(str(fer_dir))
    aug = fxaug.Augmenter(targets=TARGETS)
    return ds.map(aug, batched=True, batch_size=256, with_indices=True, features=aug.features(ds))


def same_rows(got: datasets.Dataset, want: datasets.Dataset) -> None:
    assert got.features == want.features and len(got) == len(want)
    for column in got.column_names:
        if column != "image":
            assert got[column] == want[column], column
    for a, b in zip(got["image"], want["image"]):
        assert a.size == b.size and np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1


@pytest.mark.slow
def test_num_proc_spawn_with_rank_recipe(fer_dir, single, tmp_path):
    out = tmp_path / "out"
    run([sys.executable, str(doc_script("augment_multi_gpu.py", tmp_path)), str(fer_dir), str(out)])
    got = datasets.load_from_disk(str(out))
    assert sum(t is not None for t in got["fxaug_target"]) >= 5  # faces were synthesized
    same_rows(got, single)


@pytest.mark.slow
def test_torchrun_shard_recipe(fer_dir, single, tmp_path):
    out, merged = tmp_path / "out", tmp_path / "merged"
    torchrun = Path(sys.executable).with_name("torchrun")
    run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", "0",
         str(doc_script("augment_shard.py", tmp_path)), str(fer_dir), str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["shard-00000-of-00002", "shard-00001-of-00002"]
    first = datasets.load_from_disk(str(out / "shard-00001-of-00002"))
    assert min(first["fxaug_source_index"]) == 5  # the whole dataset's row numbers, not the shard's
    run([sys.executable, str(doc_script("merge_shards.py", tmp_path)), str(out), str(merged)])
    same_rows(datasets.load_from_disk(str(merged)), single)
