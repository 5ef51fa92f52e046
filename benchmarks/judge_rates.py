"""The model-card score: the share of real test faces that the FERPlus judge classifies as the
target after transfer (the paper's "emotion accuracy"), per source:target pair.

    .venv/bin/python benchmarks/judge_rates.py runs/stargan-image-48/generator \
        --pairs neutral:happy,happy:sad --out runs/stargan-image-48/scores.json

Faces: every FER2013 PublicTest face of the source class (FERPlus majority labels) from
../shared/data/fer2013_ferplus.npz. Faces where the method finds no face count as failures
(their output is the unchanged input). "before" is the same share on the untouched faces.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fer import SPLITS, fer_faces
from fxaug import emotions as E
from fxaug.metrics.judge import load_judge
from fxaug.pipeline import ExpressionPipeline

def judge_rates(model, pairs, split="PublicTest", limit=None, device="cpu", strength=1.0) -> dict:
    pipe = ExpressionPipeline(model, device=device)
    judge = load_judge(device=device)
    out = {"model": str(model), "method": pipe.method, "split": split, "judge": "ferplus-resnet", "pairs": {}}
    for pair in pairs:
        source, target = (E.canonical(s) for s in pair.split(":"))
        faces = fer_faces(split, emotion=source)[0][:limit]
        started = time.perf_counter()
        results = pipe.transfer(list(faces), target, strength)
        seconds = time.perf_counter() - started
        k = judge.config.classes.index(target)
        after = judge.predict_proba([r.image for r in results])
        before = judge.predict_proba(list(faces))
        found = np.array([r.found for r in results])
        hit = (after.argmax(1) == k).numpy() & found
        out["pairs"][f"{source}:{target}"] = {
            "faces": len(faces),
            "face_found": int(found.sum()),
            "rate": round(float(hit.mean()), 4),
            "mean_probability": round(float(after[:, k].mean()), 4),
            "rate_before": round(float((before.argmax(1) == k).float().mean()), 4),
            "faces_per_s": round(len(faces) / seconds, 1),
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a shipped model's name or a checkpoint directory")
    p.add_argument("--pairs", default="neutral:happy,happy:sad")
    p.add_argument("--split", default="PublicTest", choices=tuple(SPLITS))
    p.add_argument("--limit", type=int, help="at most this many faces per pair")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write the JSON here too")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    result = judge_rates(args.model, args.pairs.split(","), args.split, args.limit, args.device)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
