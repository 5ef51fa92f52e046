"""Real faces for the fxaug.faces tests, read once per session from ../shared (the tests using
them skip with the reason when it is absent)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from conftest import FER_NPZ, LFW_PARQUET


def _need(path) -> None:
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is missing (../shared beside the repository)")


@lru_cache(maxsize=None)
def news_photos(n: int = 100, seed: int = 10) -> tuple[np.ndarray, ...]:
    """n news-photo face crops (lfw_expressions.parquet), as decoded (grey or RGB)."""
    _need(LFW_PARQUET)
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(LFW_PARQUET), split="train")
    rows = sorted(np.random.default_rng(seed).choice(len(ds), n, replace=False).tolist())
    return tuple(np.array(ds[r]["image"]) for r in rows)


@lru_cache(maxsize=None)
def fer_faces(n: int = 100, seed: int = 10, usage: int = 1) -> np.ndarray:
    """n FER2013 faces (48 x 48 grey) of one split (1 = PublicTest)."""
    _need(FER_NPZ)
    data = np.load(FER_NPZ)
    rows = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(data["usage"] == usage), n, replace=False))
    return data["images"][rows]


@lru_cache(maxsize=None)
def detector():
    from fxaug.faces import FaceDetector

    return FaceDetector()


@lru_cache(maxsize=None)
def landmarker():
    import torch

    from fxaug.faces import FaceLandmarker

    # The tests run the net on small batches; on a shared 2-core machine one torch thread is
    # several times faster than two that wait on each other.
    torch.set_num_threads(1)
    return FaceLandmarker()


def rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
