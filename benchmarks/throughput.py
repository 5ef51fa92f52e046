"""Throughput of `fxaug rebalance` against the bare generator forward at the same batch size:
64 px parts method, the paper's generator width (64, 6 residual blocks), on real FER faces.

Weights are random: speed does not depend on training. The bare forward runs the generator on
6 part crops per face; rebalance does everything else too (reading, landmarks, crops, pasting
back, writing PNGs, the manifest).

    .venv/bin/python benchmarks/throughput.py [--faces 128] [--batch 32] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fer import fer_faces


def main() -> None:
    from PIL import Image

    from fxaug.models import StarGANGenerator
    from fxaug.pipeline import resolve_device
    from fxaug.rebalance import rebalance

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--faces", type=int, default=128, help="faces to synthesize")
    p.add_argument("--batch", type=int, default=32, help="faces per generator batch")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="fxaug-throughput-"))
    # A two-class set: neutral sources and `faces` missing happy faces.
    neutral = fer_faces("Training", emotion="neutral")[0][: args.faces + 8]
    happy = fer_faces("Training", emotion="happy")[0][:8]
    for cls, faces in (("neutral", neutral), ("happy", happy)):
        (work / "data" / cls).mkdir(parents=True)
        for i, face in enumerate(faces):
            Image.fromarray(face).save(work / "data" / cls / f"{i:05d}.png")
    torch.manual_seed(0)
    model = StarGANGenerator(image_size=64, width=64, n_res=6, method="parts", domains=("neutral", "happy"))
    model.save_pretrained(work / "model")
    model = model.to(device).eval()

    # Bare forward: 6 part crops per face, `batch` faces at a time.
    crops = args.batch * 6
    x = torch.rand(crops, 1, 64, 64, device=device) * 2 - 1
    parts = [model.config.parts[i % 6] for i in range(crops)]
    with torch.inference_mode():
        model(x, "happy", parts=parts)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, n = time.perf_counter(), 0
        while n < args.faces:
            model(x, "happy", parts=parts)
            n += args.batch
        if device.type == "cuda":
            torch.cuda.synchronize()
    bare = n / (time.perf_counter() - start)

    start = time.perf_counter()
    summary = rebalance(work / "data", work / "out", model=work / "model", target=len(neutral), classes=["happy"],
                        batch_size=args.batch, device=str(device), progress=False)
    whole = time.perf_counter() - start
    made = summary["made"]["happy"]
    result = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "batch_faces": args.batch,
        "bare_generator_faces_per_s": round(bare, 2),
        "rebalance_faces_per_s": round(made / whole, 2),
        "ratio": round(made / whole / bare, 3),
        "faces_made": made,
        "rebalance_seconds": round(whole, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
