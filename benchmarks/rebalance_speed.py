"""How fast `fxaug rebalance` synthesizes faces with a shipped generator, and where the time goes.

For 48 px FER crops and for news photos (up to 128 px, colour or grey): faces/s of a whole
`rebalance` run (read, detect, landmarks, align, generate, paste back, write PNGs, manifest),
faces/s of the bare generator forward at the same batch size (the ceiling), their ratio, peak
RSS, and a breakdown measured stage by stage on the same faces (detection, landmarks, generator,
paste-back).

    .venv/bin/python benchmarks/rebalance_speed.py --faces 300 --out docs/runs/rebalance-speed.json
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fer import fer_faces


def _write_dataset(root: Path, sources: list[np.ndarray], n_target: int) -> None:
    """neutral: the sources; happy: n_target - len(sources)... enough real faces that rebalance
    makes exactly len(sources) happy faces from the neutral ones."""
    from PIL import Image

    for cls in ("neutral", "happy"):
        (root / cls).mkdir(parents=True)
    for i, face in enumerate(sources):
        Image.fromarray(face).save(root / "neutral" / f"{i:05d}.png")
    for i in range(n_target):
        Image.fromarray(sources[i % len(sources)]).save(root / "happy" / f"real{i:05d}.png")


def measure(name: str, faces: list[np.ndarray], model: str, batch: int) -> dict:
    from fxaug.faces import FaceDetector, FaceLandmarker
    from fxaug.methods import crops_for, paste_region
    from fxaug.pipeline import ExpressionPipeline
    from fxaug.rebalance import rebalance

    pipe = ExpressionPipeline(model, device="cpu", batch_size=batch)
    n = len(faces)
    # whole rebalance: neutral has 2n faces, happy n: it makes n happy faces from neutral ones
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "data"
        _write_dataset(root, faces + faces, n)
        started = time.perf_counter()
        result = rebalance(root, Path(work) / "out", model=model, classes=["happy"], batch_size=batch, progress=False)
        whole = time.perf_counter() - started
        made = result["made"].get("happy", 0)
    # stage by stage on the same faces
    detector, landmarker = FaceDetector(), FaceLandmarker()
    t = time.perf_counter()
    boxes = [detector(f).face for f in faces]
    detect_s = time.perf_counter() - t
    keep = [i for i, b in enumerate(boxes) if b is not None]
    t = time.perf_counter()
    points = landmarker.batch([faces[i] for i in keep], [boxes[i].box for i in keep])
    landmarks_s = time.perf_counter() - t
    crops = [crops_for(pipe.method, faces[i], p, pipe.size)[0] for i, p in zip(keep, points)]
    x = pipe._to_model(crops)
    t = time.perf_counter()
    with torch.inference_mode():
        y, alpha = pipe._generate(x, ["happy"] * len(crops), crops, torch.ones(len(crops)), None)
    generator_s = time.perf_counter() - t
    pixels = y.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    t = time.perf_counter()
    for c, i, p, a in zip(crops, keep, pixels, alpha[:, 0].numpy()):
        paste_region(faces[i], c, p[0] if p.shape[0] == 1 else p.transpose(1, 2, 0), a)
    paste_s = time.perf_counter() - t
    bare = len(crops) / generator_s
    return {
        "faces": name, "n": n, "made": made, "batch": batch,
        "rebalance_faces_per_s": round(made / whole, 2),
        "generator_forward_faces_per_s": round(bare, 1),
        "ratio_to_generator": round(made / whole / bare, 4),
        "stages_s_per_face": {k: round(v / max(1, len(keep)), 5) for k, v in
                              (("detection", detect_s), ("landmarks", landmarks_s), ("generator", generator_s),
                               ("paste_back", paste_s))},
        "sizes": sorted({f"{f.shape[1]}x{f.shape[0]}" for f in faces})[:5],
    }


def main(argv=None) -> int:
    from news_photos import load_photos

    from fxaug.models import select_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="default: the shipped generator for happy")
    p.add_argument("--faces", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    model = args.model or select_model("happy")
    fer = list(fer_faces("PublicTest", emotion="neutral")[0][: args.faces])
    news, _ = load_photos("neutral", args.faces, seed=0, exclude=set())
    rows = [measure("FER 48 px crops", fer, model, args.batch), measure("news photos", news, model, args.batch)]
    record = {"model": str(model), "threads": torch.get_num_threads(), "rows": rows,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
