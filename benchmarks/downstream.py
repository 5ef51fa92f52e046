"""Does rebalancing with fxaug help a classifier on rare classes? The downstream benchmark.

From FERPlus Training (majority labels) draw a long-tailed training set (default per class:
neutral 2000, happy 2000, surprise 800, sad 500, anger 300, fear 150, disgust 100, contempt
100), then train the same small CNN three ways, for the same number of optimizer steps:

  (a) as is: the imbalanced set, uniform sampling, no augmentation;
  (b) naive oversampling (every class drawn equally often) plus standard Albumentations
      augmentation (flip, affine, brightness/contrast);
  (c) `fxaug rebalance` (every class the generator reaches filled up to the largest with
      synthesized faces, sources neutral first), then sampled and augmented exactly as (b);
  (d) the same rebalanced set, but within a class real and synthesized faces are drawn equally
      often (a class with 150 real faces and 1,850 synthesized ones is not 92% synthesized in
      training): the usual way to use synthetic data alongside the real.

(b), (c) and (d) draw every class equally often; (b) and (c) differ only in whether a rare class's draws
repeat its few real faces or also reach synthesized ones. (With a generator that reaches every
class, (c)'s class-balanced draws are uniform draws over the rebalanced set.) Scored on every PublicTest face:
per-class recall and macro-F1, mean +- std over seeds (each seed draws its own training set,
rebalance seed and initialisation).

    .venv/bin/python benchmarks/downstream.py --model stargan-fer-image-48-all8 --seeds 0,1,2 \
        --out docs/runs/downstream.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer import fer_faces
from fxaug import emotions as E

LONG_TAIL = {"neutral": 2000, "happy": 2000, "surprise": 800, "sad": 500, "anger": 300, "fear": 150,
             "disgust": 100, "contempt": 100}
CONDITIONS = ("as_is", "oversample_aug", "fxaug_rebalance_aug", "fxaug_mix_aug")
SYNTHETIC = ("fxaug_rebalance_aug", "fxaug_mix_aug")


def long_tailed(images: np.ndarray, labels: np.ndarray, counts: dict[str, int], seed: int):
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(labels == k))[:n] for k, n in counts.items()])
    return images[pick], labels[pick]


class SmallCNN(nn.Module):
    """A stride-2 stem, three blocks of two 3x3 convs (BatchNorm, ReLU; 2x2 max-pool between
    blocks) at 24, 12 and 6 px, global average pool, linear head: small enough to train nine
    times on two CPU cores."""

    def __init__(self, n_classes: int, width: int = 16):
        super().__init__()
        layers = [nn.Conv2d(1, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        c_in = width
        for i, c in enumerate((width, width * 2, width * 4)):
            if i:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                layers += [nn.Conv2d(c_in, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def standard_augmentation(seed: int):
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A

    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.08, 0.08), rotate=(-10, 10), p=0.8),
        A.RandomBrightnessContrast(0.2, 0.2, p=0.5),
    ], seed=seed)


def fxaug_rebalanced(images, labels, model: str, seed: int, work: Path, device: str):
    """Write the set as class folders, run fxaug rebalance on it, read the result back:
    (images, labels, synthesized?)."""
    from PIL import Image

    from fxaug.rebalance import MANIFEST, rebalance

    src = work / "imbalanced"
    for i, (img, lab) in enumerate(zip(images, labels)):
        (src / lab).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(src / lab / f"{i:05d}.png")
    out = work / "rebalanced"
    rebalance(src, out, model=model, link=True, seed=seed, device=device, progress=False)
    new_images, new_labels = [images], [labels]
    for line in (out / MANIFEST).read_text().splitlines():
        row = json.loads(line)
        if not row["kept"]:
            continue
        img = np.asarray(Image.open(out / row["file"]).convert("L").resize((48, 48), Image.BILINEAR))
        new_images.append(img[None])
        new_labels.append(np.array([row["target"]]))
    synthetic = np.arange(sum(len(a) for a in new_images)) >= len(images)
    return np.concatenate(new_images), np.concatenate(new_labels), synthetic


def train_classifier(images, labels, classes, *, balanced: bool, augment, steps: int, batch: int,
                     width: int, seed: int, synthetic=None) -> SmallCNN:
    """synthetic (balanced only): a bool per image; where given, a class that has both real and
    synthesized faces draws each half the time."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.array([classes.index(k) for k in labels])
    if balanced:  # each class equally often, each class's faces uniformly within it
        by_class = [np.flatnonzero(y == k) for k in range(len(classes)) if (y == k).any()]
        if synthetic is not None:  # [real, synthesized] per class, either possibly empty
            by_class = [[i[~synthetic[i]], i[synthetic[i]]] for i in by_class]
    net = SmallCNN(len(classes), width)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(steps):
        if balanced:
            k = rng.integers(len(by_class), size=batch)
            if synthetic is None:
                idx = np.array([rng.choice(by_class[c]) for c in k])
            else:
                idx = np.array([rng.choice(_pick_half(by_class[c], rng)) for c in k])
        else:
            idx = rng.integers(len(y), size=batch)
        batch_images = images[idx]
        if augment is not None:
            batch_images = np.stack([augment(image=im)["image"] for im in batch_images])
        x = torch.from_numpy(batch_images).float().div(127.5).sub(1).unsqueeze(1)
        loss = F.cross_entropy(net(x), torch.from_numpy(y[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def _pick_half(parts, rng):
    real, synthesized = parts
    if not len(synthesized) or not len(real):
        return real if len(real) else synthesized
    return synthesized if rng.random() < 0.5 else real


@torch.no_grad()
def scores(net, images, labels, classes) -> dict:
    x = torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)
    pred = torch.cat([net(b).argmax(1) for b in x.split(512)]).numpy()
    y = np.array([classes.index(k) for k in labels])
    recall, f1 = {}, []
    for k, name in enumerate(classes):
        tp = int(((pred == k) & (y == k)).sum())
        support, predicted = int((y == k).sum()), int((pred == k).sum())
        r = tp / support if support else 0.0
        p = tp / predicted if predicted else 0.0
        recall[name] = r
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {"accuracy": float((pred == y).mean()), "macro_f1": float(np.mean(f1)), "recall": recall}


def summarize(runs: dict, classes) -> str:
    def ms(values):
        return f"{np.mean(values):.3f} +- {np.std(values):.3f}"

    head = "| condition | macro-F1 | accuracy | " + " | ".join(classes) + " |"
    lines = [head, "|" + "---|" * (3 + len(classes))]
    for cond, rs in runs.items():
        cells = [ms([r["macro_f1"] for r in rs]), ms([r["accuracy"] for r in rs])]
        cells += [ms([r["recall"][k] for r in rs]) for k in classes]
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="", help="generator for condition (c): a shipped name or a checkpoint path")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps per classifier (same for every condition)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the long-tail counts (a quick run: 0.1)")
    p.add_argument("--device", default="cpu", help="for the generator in rebalance")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--cache", default="runs/downstream", help="one result file per (condition, seed, settings)")
    p.add_argument("--out", help="write the JSON here")
    args = p.parse_args(argv)

    classes = list(E.EMOTIONS)
    counts = {k: max(2, round(n * args.scale)) for k, n in LONG_TAIL.items()}
    train_images, train_labels = fer_faces("Training")
    test_images, test_labels = fer_faces("PublicTest")
    conditions = args.conditions.split(",")
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise SystemExit(f"unknown conditions {sorted(unknown)}; known: {', '.join(CONDITIONS)}")
    if set(SYNTHETIC) & set(conditions) and not args.model:
        raise SystemExit("conditions fxaug_rebalance_aug and fxaug_mix_aug need --model (a generator that reaches the rare classes)")
    runs: dict[str, list] = {c: [] for c in conditions}
    settings = {"long_tail": counts, "steps": args.steps, "batch": args.batch, "width": args.width}
    record = {"model": args.model, **settings, "test": {"split": "PublicTest", "faces": len(test_labels)}}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        images, labels = long_tailed(train_images, train_labels, counts, seed)
        rebalanced = None  # (c) and (d) share one rebalance per seed
        for cond in conditions:
            # One result file per run, keyed by everything it depends on: an interrupted
            # benchmark resumes, and (a), (b) need not rerun when only the generator changes.
            key = {**settings, "condition": cond, "seed": seed, **({"model": args.model} if cond in SYNTHETIC else {})}
            done = cache / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}.json"
            if done.is_file():
                result = json.loads(done.read_text())
            else:
                augment = standard_augmentation(seed) if cond != "as_is" else None
                synthetic = None
                if cond in SYNTHETIC:
                    if rebalanced is None:
                        with tempfile.TemporaryDirectory() as work:
                            started = time.perf_counter()
                            rebalanced = fxaug_rebalanced(images, labels, args.model, seed, Path(work), args.device)
                            rebalance_s = time.perf_counter() - started
                    x, y, synthetic = rebalanced
                    if cond == "fxaug_rebalance_aug":
                        synthetic = None  # every face of a class equally often
                else:
                    x, y = images, labels
                started = time.perf_counter()
                net = train_classifier(x, y, classes, balanced=cond != "as_is", augment=augment,
                                       steps=args.steps, batch=args.batch, width=args.width, seed=seed,
                                       synthetic=synthetic)
                result = scores(net, test_images, test_labels, classes)
                result.update(key=key, train_s=round(time.perf_counter() - started, 1),
                              train_counts={k: int((y == k).sum()) for k in classes})
                if cond in SYNTHETIC:
                    result["rebalance_s"] = round(rebalance_s, 1)
                done.write_text(json.dumps(result, indent=2) + "\n")
            runs[cond].append(result)
            print(f"seed {seed} {cond}: macro-F1 {result['macro_f1']:.3f} accuracy {result['accuracy']:.3f} "
                  f"({result['train_s']} s)", flush=True)
    record["runs"] = runs
    record["table"] = summarize(runs, classes)
    print(record["table"])
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
