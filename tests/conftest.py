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
