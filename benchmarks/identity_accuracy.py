"""Checks of fxaug's identity net (`fxaug.metrics.identity`, face-api.js FaceRecognitionNet ported
to PyTorch): face verification on real news photos, and agreement with face-api.js itself.

    .venv/bin/python benchmarks/identity_accuracy.py                       # verification (~1 min)
    .venv/bin/python benchmarks/identity_accuracy.py --pairs 1000 --json out/identity.json
    .venv/bin/python benchmarks/identity_accuracy.py --reference /tmp/faceapi-ref/node_modules

Verification: from ../shared/data/lfw_expressions.parquet, `--pairs` same-identity pairs (two photos
of one person, at most one pair per person) and as many different-identity pairs (two people
drawn at random), seeded. Reported: mean distance of each kind, the accuracy of the rule
"same person iff distance < 0.6" (dlib's threshold) over all pairs, and the best threshold's
accuracy on these pairs (an optimistic bound, as it is fitted on them).

Reference (--reference NODE_MODULES, a folder where `npm install --ignore-scripts
@vladmandic/face-api@1.7.15` was run; needs node): descriptors of real photos (whole, cropped to
non-square shapes, and random noise) from face-api.js on TF.js's pure-JavaScript CPU backend
(benchmarks/identity_reference/reference.cjs), against the port with that build's input scaling
(/255, `input_divisor=255`); and, for the record, against the default (dlib's /256).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("FXAUG_SHARED", REPO.parent / "shared")) / "data" / "lfw_expressions.parquet"
FACE_API_MODELS = Path(os.environ.get("FXAUG_SHARED", REPO.parent / "shared")) / "models" / "face-api"


def load_lfw(path: Path = LFW):
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["image", "identity"])
    return table.column("image").to_pylist(), np.array(table.column("identity").to_pylist())


def decode(cell) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("RGB"))


def verification_pairs(identities: np.ndarray, n_pairs: int, seed: int = 0) -> tuple[list, list]:
    """n same-identity pairs (one per person, people with 2+ photos) and n different-identity pairs."""
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[int]] = {}
    for row, person in enumerate(identities):
        by_person.setdefault(person, []).append(row)
    people = sorted(p for p, rows in by_person.items() if len(rows) >= 2)
    chosen = rng.choice(len(people), size=min(n_pairs, len(people)), replace=False)
    same = [tuple(rng.choice(by_person[people[i]], 2, replace=False)) for i in chosen]
    different = []
    while len(different) < len(same):
        i, j = rng.integers(0, len(identities), 2)
        if identities[i] != identities[j]:
            different.append((int(i), int(j)))
    return same, different


def verification(n_pairs: int, seed: int, device: str) -> dict:
    from fxaug.metrics.identity import SAME_PERSON, IdentityEncoder

    cells, identities = load_lfw()
    same, different = verification_pairs(identities, n_pairs, seed)
    rows = sorted({r for pair in same + different for r in pair})
    encoder = IdentityEncoder(device)
    start = time.perf_counter()
    descriptors = dict(zip(rows, encoder([decode(cells[r]) for r in rows])))
    seconds = time.perf_counter() - start

    def distances(pairs):
        return np.array([np.linalg.norm(descriptors[i] - descriptors[j]) for i, j in pairs])

    d_same, d_diff = distances(same), distances(different)
    correct = (d_same < SAME_PERSON).sum() + (d_diff >= SAME_PERSON).sum()
    thresholds = np.unique(np.concatenate([d_same, d_diff]))
    best = max(((d_same < t).sum() + (d_diff >= t).sum(), t) for t in thresholds)
    return {
        "pairs_same": len(same),
        "pairs_different": len(different),
        "mean_distance_same": float(d_same.mean()),
        "mean_distance_different": float(d_diff.mean()),
        "threshold": SAME_PERSON,
        "accuracy_at_threshold": float(correct / (len(same) + len(different))),
        "true_accept_rate": float((d_same < SAME_PERSON).mean()),
        "true_reject_rate": float((d_diff >= SAME_PERSON).mean()),
        "best_threshold_on_these_pairs": float(best[1]),
        "accuracy_at_best_threshold": float(best[0] / (len(same) + len(different))),
        "images": len(rows),
        "seconds_per_image": seconds / len(rows),
        "device": device,
    }


def reference_agreement(node_modules: Path, n_photos: int = 12) -> dict:
    from fxaug.metrics.identity import IdentityEncoder, load_face_recognition_net

    cells, _ = load_lfw()
    photos = [decode(cells[i]) for i in range(n_photos)]
    rng = np.random.default_rng(0)
    inputs = photos + [
        rng.integers(0, 256, (150, 150, 3), np.uint8),  # no resize: the net alone
        rng.integers(0, 256, (61, 97, 3), np.uint8),  # wide: padded top and bottom
        np.ascontiguousarray(photos[0][:, 10:110]),  # tall: padded left and right
        np.ascontiguousarray(photos[1][5:90]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with open(src, "wb") as f:
            f.write(struct.pack("<I", len(inputs)))
            for a in inputs:
                f.write(struct.pack("<II", *a.shape[:2]))
                f.write(a.tobytes())
        script = Path(__file__).with_name("identity_reference") / "reference.cjs"
        env = {**os.environ, "NODE_PATH": str(node_modules)}
        run = subprocess.run(["node", str(script), str(FACE_API_MODELS), str(src), str(dst)], env=env,
                             capture_output=True, text=True, check=True)
        reference = np.fromfile(dst, np.float32).reshape(-1, 128)
    out = {"inputs": len(inputs), "reference": run.stdout.strip().splitlines()[-1]}
    for divisor in (255, 256):
        encoder = IdentityEncoder(net=load_face_recognition_net(input_divisor=divisor))
        ours = np.stack([encoder([a])[0] for a in inputs])
        out[f"divisor_{divisor}"] = {
            "max_abs_difference": float(np.abs(ours - reference).max()),
            "max_descriptor_distance": float(np.linalg.norm(ours - reference, axis=1).max()),
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=300, help="same-identity pairs (and as many different ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference", type=Path, help="node_modules holding @vladmandic/face-api 1.7.15 (needs node)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if not LFW.is_file():
        print(f"missing {LFW} (the project's shared data)", file=sys.stderr)
        return 2
    result = {"verification": verification(args.pairs, args.seed, args.device)}
    if args.reference:
        result["reference_agreement"] = reference_agreement(args.reference)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
