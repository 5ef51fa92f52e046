"""The guide classifier: the expression signal the in-context generator (fxaug.trainers.inpaint)
is trained against on its label-swapped branch, and the feature space of its perceptual loss.

Honest measurement needs the guide and the evaluation judge to be different networks: a generator
trained against the judge learns the judge's blind spots, and its judge rate then measures
nothing. So the guide is the project's own, trained here for this purpose alone: another
architecture (a plain VGG-style stack, where the judge is a ResNet), another seed, on the
generator's own aligned crops, with augmentation. `check_not_judge` refuses any judge checkpoint.

    python -m fxaug.trainers.guide --data data/ferplus --splits Training --out runs/guide
"""

from __future__ import annotations

import argparse
import logging
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fxaug import emotions as E
from fxaug.metrics.judge import JUDGE_DIR, EmotionJudge, JudgeConfig
from fxaug.models.base import WEIGHTS_NAME, PretrainedModel, register_model

from .judge import augment, evaluate


@dataclass(frozen=True)
class GuideConfig(JudgeConfig):
    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 2, 2)  # one conv at full resolution: the guide runs in every G step
    dropout: float = 0.3


@register_model
class GuideClassifier(EmotionJudge):
    """VGG-style: (conv-BN-ReLU) x blocks per stage, 2x2 max-pool between stages, global average
    pool, dropout, linear. `feature_maps` gives each stage's output for a perceptual loss."""

    config_class = GuideConfig

    def __init__(self, config: GuideConfig | dict | None = None, **overrides):
        # the base's config handling, not EmotionJudge's ResNet body
        PretrainedModel.__init__(self, config, **overrides)
        c = self.config
        stages, cin = [], c.channels
        for width, n in zip(c.widths, c.blocks):
            layers = []
            for _ in range(n):
                layers += [nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                cin = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(cin, len(c.classes))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            maps.append(x)
        return maps

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.feature_maps(x)[-1], 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))


def weights_digest(directory: str | Path) -> str:
    return hashlib.sha256((Path(directory) / WEIGHTS_NAME).read_bytes()).hexdigest()


def check_not_judge(directory: str | Path) -> None:
    """Refuse a guide that is (a copy of) a shipped evaluation judge, or not a GuideClassifier."""
    directory = Path(directory)
    digest = weights_digest(directory)
    for judge in JUDGE_DIR.iterdir() if JUDGE_DIR.is_dir() else []:
        if (judge / WEIGHTS_NAME).is_file() and weights_digest(judge) == digest:
            raise ValueError(f"{directory}: these are the weights of the evaluation judge {judge.name!r}; "
                             "a guide must be trained for the purpose (python -m fxaug.trainers.guide)")
    name = json.loads((directory / "config.json").read_text()).get("_class_name")
    if name != GuideClassifier.__name__:
        raise ValueError(f"{directory}: holds a {name}, not a GuideClassifier (python -m fxaug.trainers.guide)")


def load_guide(directory: str | Path, device="cpu") -> GuideClassifier:
    check_not_judge(directory)
    guide = GuideClassifier.from_pretrained(directory, device=device)
    return guide.eval().requires_grad_(False)


def guide_indices(guide: GuideClassifier, domains, device="cpu") -> torch.Tensor:
    """Each generator domain's class index in the guide (whose classes may be more, in another
    order): the targets of the guide's cross-entropy. A domain the guide does not classify is an
    error naming it."""
    classes = guide.config.classes
    missing = [d for d in domains if E.canonical(d) not in classes]
    if missing:
        raise ValueError(f"the guide does not classify {missing}; its classes: {', '.join(classes)}")
    return torch.tensor([classes.index(E.canonical(d)) for d in domains], device=device)


def main(argv: list[str] | None = None) -> int:
    from .config import TrainConfig
    from .data import build_training_set

    p = argparse.ArgumentParser(description="Train the guide classifier for in-context synthesis.")
    p.add_argument("--data", required=True, help="the dataset: any layout fxaug reads, or a prepared .npz")
    p.add_argument("--splits", default="Training", help="splits to read, comma-separated (default: Training)")
    p.add_argument("--domains", default=",".join(E.EMOTIONS), help="the classes (default: all eight FERPlus classes)")
    p.add_argument("--out", required=True, help="run directory: options.json, metrics.jsonl, guide/")
    p.add_argument("--size", type=int, default=48, help="face side in pixels, the generator's (default: 48)")
    p.add_argument("--epochs", type=int, default=8, help="passes over the training faces (default: 8)")
    p.add_argument("--batch", type=int, default=128, help="faces per batch (default: 128)")
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate, one-cycle schedule (default: 0.05)")
    p.add_argument("--widths", default="16,32,64", help="channels of each stage, comma-separated (default: 16,32,64)")
    p.add_argument("--holdout", type=float, default=0.05, help="share of the faces kept out to validate")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--cache-dir", default=None, help="where prepared training sets are cached (shared with fxaug train)")
    p.add_argument("--max-per-class", type=int, default=None, help="at most this many faces of each class")
    p.add_argument("-q", "--quiet", action="store_true", help="log errors only, no progress bar")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, format="fxaug: %(levelname)s: %(message)s")

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "options.json").write_text(json.dumps({k: v for k, v in vars(args).items() if k != "quiet"}, indent=2) + "\n")
    # the generator's own crops: aligned faces by the regions method
    cfg = TrainConfig(model="inpaint", method="regions", data=args.data, splits=args.splits or None, domains=args.domains,
                      size=args.size, cache_dir=args.cache_dir, max_per_class=args.max_per_class)
    data = build_training_set(cfg, progress=not args.quiet)
    labels = data.domains.clone()
    order = torch.randperm(len(labels), generator=g)
    n_val = int(len(order) * args.holdout)
    val, train = order[:n_val], order[n_val:]
    model = GuideClassifier(image_size=args.size, classes=tuple(data.domain_names), widths=tuple(int(w) for w in args.widths.split(",")),
                            blocks=(1,) + (2,) * (len(args.widths.split(",")) - 1))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = len(train) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15)
    # class-weighted loss: the rare classes are what the guide must tell apart
    counts = torch.bincount(labels[train], minlength=len(data.domain_names)).float().clamp(min=1)
    weight = (counts.sum() / counts).sqrt()
    weight = weight / weight.mean()
    for epoch in range(args.epochs):
        model.train()
        started, total = time.time(), 0.0
        perm = train[torch.randperm(len(train), generator=g)]
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch : (i + 1) * args.batch]
            x = augment(data.images[idx].float().div(127.5).sub(1.0), g)
            loss = F.cross_entropy(model(x), labels[idx], weight=weight, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        result = evaluate(model, data.images[val], labels[val])
        record = {"epoch": epoch + 1, "loss": round(total / steps_per_epoch, 4), "val_accuracy": result["accuracy"],
                  "val_recall": result["recall"], "epoch_s": round(time.time() - started, 1)}
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
    meta = {"purpose": "guide for fxaug.trainers.inpaint (never the evaluation judge)",
            "trained_on": f"{args.data} ({args.splits}), aligned regions crops, {len(train)} faces",
            "validation": result, "command": "python -m fxaug.trainers.guide " + " ".join(argv if argv is not None else sys.argv[1:])}
    model.save_pretrained(out / "guide", dtype="float16", metadata=meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
