"""Rebuild examples/sample/: 100 FER2013 PublicTest faces with FERPlus majority labels, in
class folders, deliberately imbalanced (as real emotion datasets are) so that the demo has
rare classes to fill. Run from the repository root: python examples/make_sample.py"""

import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from fxaug import emotions as E  # noqa: E402

NPZ = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "fer2013_ferplus.npz")
OUT = os.path.join(os.path.dirname(__file__), "sample")
PER_CLASS = {"neutral": 30, "happy": 24, "sad": 12, "surprise": 10, "anger": 10, "fear": 6, "disgust": 4, "contempt": 4}

data = dict(np.load(NPZ))  # NpzFile re-reads an array on every access
names = [str(n) for n in data["ferplus_majority_names"]]
label = np.array([E.index(names[m]) if m >= 0 else -1 for m in data["ferplus_majority"]])
rng = np.random.default_rng(2022)
for emotion, n in PER_CLASS.items():
    rows = np.flatnonzero((data["usage"] == 1) & (label == E.index(emotion)))
    os.makedirs(os.path.join(OUT, emotion), exist_ok=True)
    for row in sorted(rng.choice(rows, size=n, replace=False)):
        Image.fromarray(data["images"][row]).save(os.path.join(OUT, emotion, f"fer{row:05d}.png"))
print(f"wrote {sum(PER_CLASS.values())} faces to {OUT}")
