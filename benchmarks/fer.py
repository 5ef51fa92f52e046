"""FER2013 faces with FERPlus majority labels, from ../shared/data/fer2013_ferplus.npz: the one
loader the benchmarks and figure scripts share (the package itself never reads ../shared).

    from fer import fer_faces
    images, labels = fer_faces("PublicTest")                 # uint8 (N, 48, 48), fxaug names
    neutral = fer_faces("PublicTest", emotion="neutral")[0]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NPZ = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013_ferplus.npz"
SPLITS = ("Training", "PublicTest", "PrivateTest")


def fer_faces(split: str, emotion: str | None = None, npz: Path = NPZ) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split, in file order; labels are fxaug emotion names. Rows
    FERPlus drops (no majority, or "not a face") are left out."""
    from fxaug import emotions as E

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    with np.load(npz) as d:
        images, usage, majority = d["images"], d["usage"], d["ferplus_majority"]
        names = np.array([E.canonical(str(n)) for n in d["ferplus_majority_names"]])
        usage_names = [str(n) for n in d["usage_names"]]
    keep = (usage == usage_names.index(split)) & (majority >= 0)
    labels = names[majority[keep]]
    images = images[keep]
    if emotion is not None:
        pick = labels == E.canonical(emotion)
        images, labels = images[pick], labels[pick]
    return images, labels
