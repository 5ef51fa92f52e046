"""Shared fixtures. Real data comes from ../shared (beside the repository); tests that need it
skip with the reason when it is absent, as on a machine without the project's data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Offline and quiet, also when pytest is run directly rather than through `make test`.
for key, value in {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "FIFTYONE_DO_NOT_TRACK": "true",
    "FIFTYONE_DATABASE_VALIDATION": "false",
}.items():
    os.environ.setdefault(key, value)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FXAUG_SHARED", REPO.parent / "shared"))
FER_NPZ = SHARED / "data" / "fer2013_ferplus.npz"
LFW_PARQUET = SHARED / "data" / "lfw_expressions.parquet"


class FerData:
    """FER2013 + FERPlus arrays, with FERPlus majority labels as canonical emotion names."""

    def __init__(self, path: Path):
        from fxaug import emotions as E

        d = np.load(path)
        self.images = d["images"]
        self.fer_label = d["fer_label"]
        self.usage = d["usage"]
        self.votes = d["ferplus_votes"]
        self.has_name = d["ferplus_has_name"]
        names = [str(n) for n in d["ferplus_majority_names"]]
        self.majority = np.array([E.index(names[m]) if m >= 0 else -1 for m in d["ferplus_majority"]], np.int8)
        self.fer_names = [E.canonical(str(n)) for n in d["fer_label_names"]]

    def emotion(self, row: int) -> str:
        from fxaug import emotions as E

        return E.EMOTIONS[self.majority[row]]

    def sample(self, n: int, seed: int = 0, labelled: bool = True, usage: int | None = 0) -> np.ndarray:
        """n row indices, spread over every FERPlus class (sorted)."""
        rng = np.random.default_rng(seed)
        mask = np.ones(len(self.images), bool)
        if usage is not None:
            mask &= self.usage == usage
        if labelled:
            mask &= self.majority >= 0
        rows = []
        classes = np.unique(self.majority[mask])
        per = -(-n // len(classes))
        for c in classes:
            pool = np.flatnonzero(mask & (self.majority == c))
            rows.extend(rng.choice(pool, size=min(per, len(pool)), replace=False))
        rows = rng.permutation(np.array(rows))[:n]
        return np.sort(rows)


@pytest.fixture(scope="session")
def fer() -> FerData:
    if not FER_NPZ.is_file():
        pytest.skip(f"real data not available: {FER_NPZ} is missing (../shared beside the repository)")
    return FerData(FER_NPZ)


@pytest.fixture(scope="session")
def lfw_parquet() -> Path:
    if not LFW_PARQUET.is_file():
        pytest.skip(f"real data not available: {LFW_PARQUET} is missing")
    return LFW_PARQUET


@pytest.fixture(scope="session")
def tiny_parts_model(tmp_path_factory) -> Path:
    """A small, untrained StarGAN parts generator (neutral, happy, sad) saved as a checkpoint:
    for tests of the machinery around generators, not of expressions."""
    import torch

    from fxaug.models import StarGANGenerator

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "stargan-parts"
    StarGANGenerator(width=8, n_res=1, image_size=16, method="parts", domains=("neutral", "happy", "sad")).save_pretrained(path)
    return path


def write_fer_classes(root: Path, fer: FerData, emotions, n: int) -> Path:
    """The first `n` faces of `emotions` in a seeded sample of 200 FER2013 training faces, written
    as class folders under `root`: the trainers' tests' small real training set."""
    from dataset_writers import write_class_folders

    rows = [r for r in fer.sample(200, seed=21) if fer.emotion(r) in emotions][:n]
    write_class_folders(root, [(int(r), fer.images[r], fer.emotion(r)) for r in rows])
    return root


# -- rebalance beyond one process (tests/test_rebalance_shards.py, tests/test_rebalance_ray.py) --

# 300 real FER2013 training faces in class folders (FERPlus majority labels), 6 of them FER
# images that FERPlus' taggers call "not a face", filed under neutral: the detector finds no face
# in them, so their jobs are rejected and the run needs windows beyond its plan, as real data does.
REBALANCE_300 = {"neutral": 94, "happy": 80, "sad": 40, "surprise": 30, "anger": 25, "fear": 12, "disgust": 8,
                 "contempt": 5}
NOT_A_FACE_ROWS = (59, 501, 1303, 2059, 2171, 2809)
# The settings every run of the 300 faces uses (the shipped 48 px generator, chosen by default):
# windows of 8 jobs, identity_distance measured (its values must not depend on where a window runs).
REBALANCE_300_CLI = ["--batch-size", "8", "--device", "cpu", "--identity", "--no-progress"]


@pytest.fixture(scope="session")
def fer300_dataset(fer, tmp_path_factory) -> Path:
    from dataset_writers import write_class_folders

    root = tmp_path_factory.mktemp("fer300") / "faces"
    write_class_folders(root, fer300_faces(fer))
    return root


def fer300_faces(fer: FerData) -> list[tuple[int, np.ndarray, str]]:
    """The 300 faces (row, pixels, class) of `fer300_dataset`, seeded: also the faces of
    benchmarks/rebalance_ray_throughput.py."""
    from fxaug import emotions as E

    rng = np.random.default_rng(3)
    faces = []
    for name, n in REBALANCE_300.items():
        rows = rng.choice(np.flatnonzero((fer.usage == 0) & (fer.majority == E.index(name))), n, replace=False)
        faces += [(int(r), fer.images[r], name) for r in rows]
    return faces + [(r, fer.images[r], "neutral") for r in NOT_A_FACE_ROWS]


def block_imports(module: str) -> str:
    """Python source to put first in a subprocess's code: `module` (and its submodules) then
    fail to import, as when its extra is not installed."""
    return f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r} or name.startswith({module + "."!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="session")
def rebalance_300_reference(fer300_dataset, tmp_path_factory) -> Path:
    """The single-process `fxaug rebalance` of the 300 faces, made once per test run, by the
    command in a process with OMP_NUM_THREADS=1 (however the suite was started): results on CPU
    may differ in the last bit with the thread count, and the shards and Ray's CPU actors
    compute with one thread each, in that same environment."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("rebalance300") / "single"
    run = subprocess.run([str(Path(sys.executable).parent / "fxaug"), "rebalance", str(fer300_dataset), "--out", str(out),
                          *REBALANCE_300_CLI], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    return out


def rebalance_output_files(root: Path) -> dict[str, bytes]:
    """Every file of a rebalance output by relative path, with its bytes: the faces, the
    figures, plan.json, manifest.jsonl, summary.json; originals.jsonl with each copy's time left
    out (a copy made at another moment is the same copy)."""
    import json

    files = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if rel == "originals.jsonl":
            lines = [json.loads(line) for line in data.decode().splitlines()]
            data = json.dumps([{k: v for k, v in line.items() if k != "mtime_ns"} for line in lines]).encode()
        files[rel] = data
    return files


def assert_resumes_bit_exact(cfg, straight, run_dir, until: int) -> None:
    """A run of `cfg` stopped after `until` steps and resumed from its snapshot in `run_dir` ends
    with the weights of `straight` (the same cfg trained without a stop), bit for bit."""
    import torch

    from fxaug.trainers import make_trainer

    make_trainer(cfg, run_dir).train(until=until, progress=False)
    resumed = make_trainer(cfg, run_dir, resume=True)
    assert resumed.step == until
    resumed.train(progress=False)
    for name in ("G", "D"):
        a, b = straight.nets[name].state_dict(), resumed.nets[name].state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
