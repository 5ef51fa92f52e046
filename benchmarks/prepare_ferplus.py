"""Materialise ../shared/data/fer2013_ferplus.npz as a FERPlus class-folder tree, the layout
fxaug.data reads natively:  OUT/<Training|PublicTest|PrivateTest>/<emotion>/fer<row>.png
(labels: FERPlus majority vote; rows FERPlus drops are left out). Lossless PNG, so pixels
equal the npz's. Idempotent: an existing complete tree is kept.

    .venv/bin/python benchmarks/prepare_ferplus.py --out data/ferplus
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fer2013_ferplus.npz"


def prepare(out: Path, npz: Path = SHARED) -> Path:
    from PIL import Image

    from fxaug import emotions as E

    done = out / "complete.json"
    if done.is_file():
        return out
    with np.load(npz) as d:
        images, usage, majority = d["images"], d["usage"], d["ferplus_majority"]
        usage_names = [str(n) for n in d["usage_names"]]
        names = [E.canonical(str(n)) for n in d["ferplus_majority_names"]]
    counts: dict[str, dict[str, int]] = {}
    for row in np.flatnonzero(majority >= 0):
        split, emotion = usage_names[usage[row]], names[majority[row]]
        folder = out / split / emotion
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"fer{row:05d}.png"
        if not path.exists():
            tmp = folder / f".fer{row:05d}.tmp.png"
            Image.fromarray(images[row]).save(tmp)
            os.replace(tmp, path)
        counts.setdefault(split, {}).setdefault(emotion, 0)
        counts[split][emotion] += 1
    done.write_text(json.dumps(counts, indent=2) + "\n")
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="data/ferplus")
    p.add_argument("--npz", default=str(SHARED))
    args = p.parse_args()
    out = prepare(Path(args.out), Path(args.npz))
    print(json.dumps(json.loads((out / "complete.json").read_text()), indent=1))
