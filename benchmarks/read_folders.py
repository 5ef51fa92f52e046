"""Read throughput and memory of the class-folder reader on 30,000 real faces.

Writes N FER2013 faces (PNG, class folders by FERPlus majority label) to a scratch folder,
then reads them all in a fresh process and reports images/s and peak RSS, against the RSS of
the same process before reading (imports only). Usage:

    .venv/bin/python benchmarks/read_folders.py [--n 30000] [--workdir /tmp/fxaug-read-bench]
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

from fer import fer_faces



def write_tree(root: Path, n: int) -> None:
    from PIL import Image

    images, labels = fer_faces("Training")
    for i, (image, label) in enumerate(zip(images[:n], labels[:n])):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"fer{i:05d}.png")
    print(f"wrote {min(n, len(images))} faces to {root}", file=sys.stderr)


def read_tree(root: str) -> dict:
    from fxaug.data import open_dataset

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reader = open_dataset(root)
    start = time.perf_counter()
    n = 0
    checksum = 0
    for record in reader:
        n += 1
        checksum += int(record.image[0, 0, 0])
    seconds = time.perf_counter() - start
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "images": n,
        "seconds": round(seconds, 2),
        "images_per_s": round(n / seconds, 1),
        "rss_before_read_mib": round(rss_before / 1024, 1),
        "rss_peak_mib": round(rss_peak / 1024, 1),
        "skipped": reader.report.count("skipped"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=30000)
    p.add_argument("--workdir", default="/tmp/fxaug-read-bench")
    p.add_argument("--read-only", metavar="ROOT", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.read_only:
        print(json.dumps(read_tree(args.read_only)))
        return
    root = Path(args.workdir) / f"faces{args.n}"
    if not root.exists():
        write_tree(root, args.n)
    out = subprocess.run([sys.executable, __file__, "--read-only", str(root)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    result["cpu"] = f"{os.cpu_count()} cores"
    print(json.dumps(result, indent=2))
    if os.environ.get("FXAUG_BENCH_KEEP") != "1":
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
