"""Peak memory (RSS) of `fxaug transfer`: over N real news photos, and on one 7999 x 7999 photo.

1. photos: writes N face photos from ../shared/data/lfw_expressions.parquet (JPEG bytes as
   stored, 49-128 px; repeated when N exceeds the file's 10,718 rows) to a scratch folder, then
   runs `fxaug transfer FOLDER --to happy --out OUT --batch-size B` with the shipped generator in
   a child process and reports its peak RSS (getrusage RUSAGE_CHILDREN ru_maxrss), wall time and
   the command's last line. A second run with --n-small photos shows whether memory grows with N.
2. large (--large): one 7999 x 7999 RGB PNG holding a face ~5000 px wide, through `fxaug
   transfer` with the shipped generator (regions method) and with an untrained grey image-method
   StarGAN (the case that peaked at 7.6 GB before issue #19: whole-image float64 copies).

Usage (about 3 minutes on 2 CPU cores for 2,000 photos):

    .venv/bin/python benchmarks/peak_rss.py [--n 2000] [--n-small 200] [--batch-size 64] [--large] \
        [--workdir /tmp/fxaug-peak-rss] [--out docs/runs/peak-rss.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARQUET = Path(os.environ.get("FXAUG_SHARED", REPO.parent / "shared")) / "data" / "lfw_expressions.parquet"
FXAUG = Path(sys.executable).parent / "fxaug"


def write_photos(folder: Path, n: int) -> int:
    """n photo files (the parquet's own JPEG bytes), repeating the file's rows if needed."""
    import pyarrow.parquet as pq

    table = pq.read_table(PARQUET, columns=["image"])
    cells = table.column("image").to_pylist()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"photo{i:05d}.jpg").write_bytes(cells[i % len(cells)]["bytes"])
    return n


def measure(command: list[str]) -> dict:
    """Run command in a child process; its peak RSS, time and last output line. Each call
    is made from a fresh Python process, so RUSAGE_CHILDREN holds this child only."""
    code = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "run = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(json.dumps({'rc': run.returncode, 'seconds': round(time.perf_counter() - start, 1),\n"
        "  'peak_rss_mib': round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),\n"
        "  'stdout': run.stdout.strip().splitlines()[-1:] , 'stderr': run.stderr.strip().splitlines()[-3:]}))\n"
    )
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def transfer(inputs: Path, out: Path, batch_size: int, model: str | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [str(FXAUG), "-q", "transfer", str(inputs), "--to", "happy", "--out", str(out),
               "--batch-size", str(batch_size), "--device", "cpu"]
    if model:
        command += ["--model", model]
    result = measure(command)
    result["command"] = " ".join(["fxaug", *command[1:]])
    return result


def large_photo(path: Path) -> None:
    """7999 x 7999 RGB: grey background, a real sample face upscaled to 5000 px in the middle."""
    import cv2
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(sorted((REPO / "examples" / "sample" / "anger").glob("*.png"))[0]).convert("RGB"))
    canvas = np.full((7999, 7999, 3), 120, np.uint8)
    canvas[1500:6500, 1500:6500] = cv2.resize(face, (5000, 5000), interpolation=cv2.INTER_CUBIC)
    Image.fromarray(canvas).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--n-small", type=int, default=200, help="a smaller run, to see whether memory grows with N (0: skip)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--large", action="store_true", help="also one 7999 x 7999 photo")
    parser.add_argument("--workdir", default="/tmp/fxaug-peak-rss")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    results: dict = {"batch_size": args.batch_size, "cpu_count": os.cpu_count()}
    imports = measure([sys.executable, "-c", "import fxaug.cli, fxaug.pipeline, torch"])
    results["imports_only_peak_rss_mib"] = imports["peak_rss_mib"]
    for n in [m for m in (args.n_small, args.n) if m]:
        folder = work / f"photos-{n}"
        write_photos(folder, n)
        result = transfer(folder, work / f"out-{n}", args.batch_size)
        results[f"photos_{n}"] = result
        print(f"{n} photos: peak RSS {result['peak_rss_mib']} MiB, {result['seconds']} s; {result['stdout']}", file=sys.stderr)
    if args.large:
        import torch

        from fxaug.models import StarGANGenerator

        photo = work / "large" / "large.png"
        photo.parent.mkdir(parents=True, exist_ok=True)
        large_photo(photo)
        torch.manual_seed(0)
        image_model = work / "stargan-image"
        StarGANGenerator(width=8, n_res=1, image_size=32, method="image", domains=("neutral", "happy")).save_pretrained(image_model)
        for name, model in (("shipped", None), ("image_method_grey", str(image_model))):
            result = transfer(photo, work / f"out-large-{name}", 1, model)
            results[f"large_7999_{name}"] = result
            print(f"7999x7999 ({name}): peak RSS {result['peak_rss_mib']} MiB, {result['seconds']} s", file=sys.stderr)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        from fxaug.io import write_text

        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
