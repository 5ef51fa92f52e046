"""What recording identity_distance (fxaug.metrics.identity) and drawing the figures cost a
`fxaug rebalance` run: the same run (real FER faces, the shipped generator) with and without
identity, alternated `--repeats` times; and the time of write_figures alone on the finished run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rebalance_identity_cost.py --faces 128 \
        --out docs/runs/rebalance-identity-cost.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fer import fer_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=128, help="faces each run synthesizes")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out")
    args = parser.parse_args()
    from PIL import Image

    from fxaug.rebalance import rebalance, write_figures

    neutral, _ = fer_faces("PublicTest", "neutral")
    happy, _ = fer_faces("PublicTest", "happy")
    seconds: dict[str, list[float]] = {"identity": [], "no_identity": []}
    figures_s, distances = [], []
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "data"
        for cls, faces, n in (("neutral", neutral, 2 * args.faces), ("happy", happy, args.faces)):
            (root / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(faces[i]).save(root / cls / f"{i:05d}.png")
        for k in range(args.repeats):
            for identity in (k % 2 == 0, k % 2 == 1):  # alternate which goes first
                out = Path(work) / f"out-{k}-{identity}"
                started = time.perf_counter()
                summary = rebalance(root, out, classes=["happy"], device=args.device, progress=False, identity=identity)
                seconds["identity" if identity else "no_identity"].append(time.perf_counter() - started)
                assert summary["made"]["happy"] == args.faces
                if identity:
                    distances += [d for x in (out / "manifest.jsonl").read_text().splitlines()
                                  if (d := json.loads(x)["identity_distance"]) is not None]
                    started = time.perf_counter()
                    write_figures(out, summary)
                    figures_s.append(time.perf_counter() - started)
    best = {k: min(v) for k, v in seconds.items()}
    result = {
        "faces_per_run": args.faces, "device": args.device, "threads": torch.get_num_threads(),
        "model": summary["model"], "seconds": seconds,
        "identity_overhead": round(best["identity"] / best["no_identity"] - 1, 3),
        "identity_ms_per_face": round((best["identity"] - best["no_identity"]) / args.faces * 1000, 1),
        "write_figures_seconds": round(min(figures_s), 2),
        "identity_distance_mean": round(float(np.mean(distances)), 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
