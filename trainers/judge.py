"""Train the emotion judge (fxaug.metrics.EmotionJudge) on FERPlus majority labels.

    python -m fxaug.trainers.judge --data data/ferplus --out runs/judge
    (data/ferplus from benchmarks/prepare_ferplus.py; any fxaug.data source with splits works)

Writes OUT/options.json, OUT/metrics.jsonl (one line per epoch), and, each time validation
accuracy improves, OUT/judge/ (config.json + model.safetensors, fp16) and OUT/result.json
(validation and test accuracy, per-class recall, confusion matrix).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fxaug import emotions as E
from fxaug.data import open_dataset
from fxaug.metrics.judge import EmotionJudge

from .data import resize_square


def load_split(data: str, split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    reader = open_dataset(data, splits=split, color="gray")
    images, labels = [], []
    for rec in reader:
        images.append(resize_square(rec.image, size))
        labels.append(E.index(rec.emotion))
    if not images:
        raise ValueError(f"{data}: split {split!r} is empty")
    return torch.from_numpy(np.stack(images))[:, None], torch.tensor(labels)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flip, rotation (+-10 deg), scale (0.9-1.1), shift (+-8%), brightness and
    contrast (+-20%) and a random erased square, on a float batch in [-1, 1]."""
    b = x.shape[0]
    u = lambda lo, hi: torch.rand(b, generator=g) * (hi - lo) + lo  # noqa: E731
    angle, scale = u(-10, 10) * math.pi / 180, u(0.9, 1.1)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, u(-0.16, 0.16)], 1), torch.stack([sin * flip, cos, u(-0.16, 0.16)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.8, 1.2)[:, None, None, None] + mean + u(-0.2, 0.2)[:, None, None, None]
    side = x.shape[-1]
    erase = torch.rand(b, generator=g) < 0.25
    cy, cx = torch.randint(0, side, (2, b), generator=g)
    half = side // 6
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    box = ((yy[None] - cy[:, None, None]).abs() <= half) & ((xx[None] - cx[:, None, None]).abs() <= half)
    x = torch.where((box & erase[:, None, None])[:, None], torch.zeros_like(x), x)
    return x.clamp(-1, 1)


@torch.no_grad()
def evaluate(model: EmotionJudge, images: torch.Tensor, labels: torch.Tensor) -> dict:
    probs = model.predict_proba(images.float().div(127.5).sub(1.0), flip=True)
    pred = probs.argmax(1)
    n = len(model.config.classes)
    confusion = torch.zeros(n, n, dtype=torch.int64)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    recall = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    return {
        "accuracy": round(float((pred == labels).float().mean()), 4),
        "recall": {c: round(r, 4) for c, r in zip(model.config.classes, recall)},
        "confusion": confusion.tolist(),
        "n": len(labels),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train the FERPlus emotion judge.")
    p.add_argument("--data", required=True, help="a dataset with splits, any layout fxaug reads (e.g. data/ferplus)")
    p.add_argument("--out", required=True, help="run directory: options.json, metrics.jsonl, judge/, result.json")
    p.add_argument("--train-split", default="Training", help="split to train on (default: Training)")
    p.add_argument("--val-split", default="PublicTest", help="split that picks the best epoch (default: PublicTest)")
    p.add_argument("--test-split", default="PrivateTest", help="split scored once per best epoch (default: PrivateTest)")
    p.add_argument("--size", type=int, default=48, help="image side in pixels (default: 48)")
    p.add_argument("--epochs", type=int, default=25, help="passes over the training split (default: 25)")
    p.add_argument("--batch", type=int, default=128, help="images per batch (default: 128)")
    p.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate, one-cycle schedule (default: 0.1)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay (default: 5e-4)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="cross-entropy label smoothing (default: 0.1)")
    p.add_argument("--widths", default="32,64,128,256", help="channels of each stage, comma-separated (default: 32,64,128,256)")
    p.add_argument("--stem-stride", type=int, default=2, help="stride of the first convolution (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda (default: cuda if available)")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "options.json").write_text(json.dumps(vars(args), indent=2) + "\n")
    xtr, ytr = load_split(args.data, args.train_split, args.size)
    xva, yva = load_split(args.data, args.val_split, args.size)
    model = EmotionJudge(image_size=args.size, widths=tuple(int(w) for w in args.widths.split(",")),
                         stem_stride=args.stem_stride).to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    steps_per_epoch = len(xtr) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15)
    xte, yte = load_split(args.data, args.test_split, args.size)
    best_acc = -1.0
    for epoch in range(args.epochs):
        model.train()
        started, total, seen = time.time(), 0.0, 0
        order = torch.randperm(len(xtr), generator=g)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch : (i + 1) * args.batch]
            x = augment(xtr[idx].float().div(127.5).sub(1.0), g).to(args.device)
            loss = F.cross_entropy(model(x), ytr[idx].to(args.device), label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        val = evaluate(model, xva, yva)
        record = {"epoch": epoch + 1, "loss": round(total / seen, 4), "val_accuracy": val["accuracy"],
                  "lr": sched.get_last_lr()[0], "epoch_s": round(time.time() - started, 1)}
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        if val["accuracy"] > best_acc:
            # Keep the best epoch by validation accuracy on disk as it is found, test score included,
            # so an interrupted run still leaves its best judge.
            best_acc = val["accuracy"]
            result = {"epoch": epoch + 1, "validation": val, "test": evaluate(model, xte, yte),
                      "splits": {"train": args.train_split, "validation": args.val_split, "test": args.test_split}}
            meta = {"trained_on": f"{args.data} ({args.train_split}, FERPlus majority labels)", "epoch": epoch + 1,
                    "test_accuracy": result["test"]["accuracy"], "validation_accuracy": val["accuracy"],
                    "command": "python -m fxaug.trainers.judge " + " ".join(argv if argv is not None else sys.argv[1:])}
            model.save_pretrained(out / "judge", dtype="float16", metadata=meta)
            (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    result = json.loads((out / "result.json").read_text())
    print(json.dumps({"best_epoch": result["epoch"], "validation": result["validation"]["accuracy"],
                      "test": result["test"]["accuracy"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
