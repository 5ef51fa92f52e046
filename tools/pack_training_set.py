"""Write a prepared training set (aligned faces, labels, landmarks) as one compressed .npz, to
carry to a machine without the source data, e.g. the lent GPU (benchmarks/gpu_train_all.sh):

    .venv/bin/python tools/pack_training_set.py --data data/ferplus --splits Training \
        --method regions --size 48 --out training/gpu/ferplus-regions-48.npz

The file is what `fxaug train ... --data FILE.npz` reads directly (no landmarks are recomputed).
FER2013 pixels are research-only: keep the file out of the repository (training/gpu/ is ignored).
"""

from __future__ import annotations

import argparse

from fxaug import emotions as E
from fxaug.trainers.config import TrainConfig
from fxaug.trainers.data import build_training_set, save_training_set


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--splits", default="Training")
    p.add_argument("--method", default="regions")
    p.add_argument("--domains", default=",".join(E.EMOTIONS))
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--cache-dir", default="training/cache")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    model = "inpaint" if args.method == "regions" else "stargan"
    cfg = TrainConfig(model=model, method=args.method, data=args.data, splits=args.splits, domains=args.domains,
                      size=args.size, cache_dir=args.cache_dir)
    data = build_training_set(cfg)
    path = save_training_set(data, args.out)
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB, {data.counts()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
