"""2CET-GAN acceptance figures: reference-guided transfer per class, and continuity in strength.

    .venv/bin/python benchmarks/twocet_eval.py runs/2cet-48/generator \
        --out docs/runs/twocet-eval.json --plot docs/images/continuity.png

Reference-guided: each of the first --n PublicTest neutral faces (FERPlus majority labels) takes
the expression code of one PublicTest face of class k (references drawn without repeats while
they last, seeded), and the FERPlus judge says whether the output is class k. "before" is the
share of the untouched neutral faces the judge already calls k.

Continuity: the same neutral faces towards each class's named expression (the mean code of its
references, stored in the model) at strengths 0, 0.25, 0.5, 0.75, 1, 1.25; the judge's mean probability
of the class at each strength, and whether it rises monotonically. Strength 0 must equal the
neutral reconstruction G(x, 0) exactly ("strength0_equals_neutral").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fer import fer_faces
from fxaug import emotions as E
from fxaug.metrics.judge import load_judge
from fxaug.models import load_model
from fxaug.pipeline import ExpressionPipeline

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)  # issue #17: up to an exaggeration


def reference_guided(pipe: ExpressionPipeline, judge, sources: np.ndarray, classes, split: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    before = judge.predict_proba(list(sources))
    out = {}
    for name in classes:
        refs = fer_faces(split, emotion=name)[0]
        if not len(refs):
            continue
        order = np.concatenate([rng.permutation(len(refs)) for _ in range(-(-len(sources) // len(refs)))])
        outputs = [pipe.transfer([face], reference=refs[j])[0].image for face, j in zip(sources, order)]
        k = judge.config.classes.index(name)
        probs = judge.predict_proba(outputs)
        out[name] = {
            "references": int(min(len(refs), len(sources))),
            "rate": round(float((probs.argmax(1) == k).float().mean()), 4),
            "mean_probability": round(float(probs[:, k].mean()), 4),
            "rate_before": round(float((before.argmax(1) == k).float().mean()), 4),
        }
    return out


def continuity(pipe: ExpressionPipeline, judge, sources: np.ndarray, classes) -> dict:
    neutral = np.stack([r.image for r in pipe.transfer(list(sources), "neutral")])
    out = {}
    for name in classes:
        k = judge.config.classes.index(name)
        means, zero = [], None
        for s in STRENGTHS:
            images = np.stack([r.image for r in pipe.transfer(list(sources), name, s)])
            zero = images if s == 0 else zero
            means.append(round(float(judge.predict_proba(list(images))[:, k].mean()), 4))
        out[name] = {
            "strengths": list(STRENGTHS),
            "mean_probability": means,
            "monotonic": bool(all(b > a for a, b in zip(means, means[1:]))),
            "strength0_equals_neutral": bool(np.array_equal(zero, neutral)),
        }
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, row in result["continuity"].items():
        ax.plot(row["strengths"], row["mean_probability"], marker="o", label=name)
    ax.set_xlabel("strength (code scale)")
    ax.set_ylabel(f"judge probability of the class (mean, {result['faces']} faces)")
    ax.set_title(f"2CET continuity: {Path(result['model']).name}, {result['split']} neutral faces")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def evaluate(model, n: int = 100, split: str = "PublicTest", classes=None, seed: int = 0, device: str = "cpu") -> dict:
    g = load_model(model) if isinstance(model, (str, Path)) else model
    if not callable(getattr(g, "encode", None)):  # the contract's expression encoder (2cet, 2cet-inpaint)
        raise ValueError(f"{model}: not a 2CET model, it has no expression encoder (got {type(g).__name__})")
    classes = [E.canonical(c) for c in (classes or [d for d in g.domains if d != "neutral"])]
    pipe = ExpressionPipeline(g, device=device)
    judge = load_judge(device=device)
    sources = fer_faces(split, emotion="neutral")[0][:n]
    return {
        "model": str(model), "split": split, "faces": len(sources), "judge": "ferplus-resnet", "method": pipe.method,
        "reference_guided": reference_guided(pipe, judge, sources, classes, split, seed),
        "continuity": continuity(pipe, judge, sources, classes),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a 2CET model: shipped name or checkpoint directory")
    p.add_argument("--n", type=int, default=100, help="neutral source faces")
    p.add_argument("--split", default="PublicTest")
    p.add_argument("--classes", help="comma-separated target classes (default: the model's expressions)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write the JSON here too")
    p.add_argument("--plot", help="write the continuity plot (PNG) here")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    classes = E.parse_list(args.classes) if args.classes else None
    result = evaluate(args.model, args.n, args.split, classes, args.seed, args.device)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.plot:
        plot(result, Path(args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
