"""torch_dtype on the CPU: speed and output difference of the shipped generator in float16 and
bfloat16 against float32, on real FER faces at batch 16.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dtype_cpu.py --n 64 --repeats 5 --out docs/runs/dtype-cpu.json

Two timings per dtype: the generator alone (`model.generate` on the aligned crops and masks the
pipeline made, the part torch_dtype changes) and the whole `ExpressionPipeline.transfer` (face
detection and landmarks stay float32). Differences are in grey levels (0..255) of the final
images, against float32's, over every pixel of every face.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FER = REPO.parent / "shared" / "data" / "fer2013_ferplus.npz"


def fer_faces(n: int) -> np.ndarray:
    data = np.load(FER)
    names = [str(x) for x in data["ferplus_majority_names"]]
    rows = np.flatnonzero((data["usage"] == 1) & (data["ferplus_majority"] == names.index("neutral")))[:n]
    return data["images"][rows]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="inpaint-ferplus-48")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--target", default="happy")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    from fxaug.faces import FaceDetector, FaceLandmarker
    from fxaug.pipeline import ExpressionPipeline

    faces = list(fer_faces(args.n))
    detector, landmarker = FaceDetector(), FaceLandmarker()
    results, reference = {}, None
    for dtype in ("float32", "bfloat16", "float16"):
        pipe = ExpressionPipeline(args.model, device="cpu", batch_size=args.batch, torch_dtype=dtype,
                                  detector=detector, landmarker=landmarker)
        row: dict = {"dtype": str(pipe.model.dtype).removeprefix("torch.")}
        try:
            out = pipe.transfer(faces, args.target)
        except RuntimeError as err:  # an op without a kernel for this dtype on the CPU
            results[dtype] = {**row, "error": str(err).splitlines()[0]}
            print(dtype, "failed:", results[dtype]["error"])
            continue
        row["pipeline_s_per_face"] = best_of(lambda: pipe.transfer(faces, args.target), args.repeats) / len(faces)
        # the generator alone, on the crops and masks the pipeline made
        from fxaug.methods import crops_for

        found = pipe._analyse(faces, None, None)
        crops = [c for f, im in zip(found, faces) if f.found for c in crops_for(pipe.method, im, f.points, pipe.size)]
        x = pipe._to_model(crops)
        strengths = torch.ones(len(crops))
        targets = [args.target] * len(crops)
        row["generator_s_per_face"] = best_of(
            lambda: pipe._generate(x, targets, crops, strengths, None), args.repeats) / len(crops)
        images = np.stack([r.image for r in out]).astype(np.int16)
        if reference is None:
            reference = images
        else:
            diff = np.abs(images - reference)
            row["max_grey_level_diff"] = int(diff.max())
            row["mean_grey_level_diff"] = float(diff.mean())
            row["share_pixels_differing"] = float((diff > 0).mean())
        row["faces"] = len(crops)
        results[dtype] = row
        print(json.dumps(row))
    report = {"model": args.model, "n": args.n, "batch": args.batch, "target": args.target,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "results": results,
              "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dtype_cpu.py "
                         f"--n {args.n} --batch {args.batch} --repeats {args.repeats}"}
    if args.out:
        from fxaug.io import write_text

        write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
