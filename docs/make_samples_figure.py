"""Make docs/images/samples.png: real FER2013 PublicTest faces (FERPlus labels) through every
target of the given generators, one column per (model, target).

    .venv/bin/python docs/make_samples_figure.py                 # every shipped model
    .venv/bin/python docs/make_samples_figure.py --source happy --out docs/images/samples-happy.png

The faces are the first --n of the source class in file order (no picking), so the figure
shows typical, not best, results. Below them, --news photos of the source class from the news-photo
set (../shared/data/lfw_expressions.parquet; one per person, seeded order, no picking) at their full
size and colour, through the whole-photo path, towards --news-targets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from fxaug import emotions as E
from fxaug.models import list_models, load_model
from fxaug.pipeline import ExpressionPipeline

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from fer import fer_faces  # noqa: E402  (the benchmarks' FER loader)


def test_faces(source: str, n: int) -> np.ndarray:
    return fer_faces("PublicTest", emotion=source)[0][:n]


def label_cell(text: str, width: int, height: int = 34) -> np.ndarray:
    cell = np.full((height, width), 255, np.uint8)
    lines = text.split("\n")
    for k, line in enumerate(lines):
        scale = 0.42
        (tw, th), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(cell, line, ((width - tw) // 2, 13 + 15 * k), cv2.FONT_HERSHEY_SIMPLEX, scale, 0, 1, cv2.LINE_AA)
    return cell


def news_block(args, width: int, gap: int) -> np.ndarray:
    """Rows of (original, one output per target) news photos at full size, BGR, `width` wide."""
    from news_photos import load_photos

    photos, _ = load_photos(args.source, args.news, seed=0, exclude=set())
    pipe = ExpressionPipeline(list_models()[0] if not args.models else args.models[0], device="cpu")
    targets = [t for t in args.news_targets.split(",") if t in pipe.targets]
    outs = {t: [r.image for r in pipe.transfer(photos, t)] for t in targets}
    side = max(max(p.shape[:2]) for p in photos)
    rgb = lambda im: cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_RGB2BGR)  # noqa: E731
    title = cv2.cvtColor(label_cell("news photos at full size: original, " + ", ".join(targets), width, 22), cv2.COLOR_GRAY2BGR)
    rows = [title]
    for i, photo in enumerate(photos):
        cells = []
        for im in [photo] + [outs[t][i] for t in targets]:
            cell = np.full((side, side, 3), 255, np.uint8)
            cell[: im.shape[0], : im.shape[1]] = rgb(im)
            cells += [cell, np.full((side, gap, 3), 255, np.uint8)]
        rows.append(np.hstack(cells))
    per = max(1, width // rows[1].shape[1])  # photos side by side, as many as the width takes
    pairs = [np.hstack(rows[1 + k : 1 + k + per]) for k in range(0, len(rows) - 1, per)]
    block = [np.full((gap, width, 3), 255, np.uint8), title]
    for row in pairs:
        canvas = np.full((row.shape[0] + gap, width, 3), 255, np.uint8)
        canvas[: row.shape[0], : min(width, row.shape[1])] = row[:, :width]  # (a last, shorter row is padded)
        block.append(canvas)
    return np.vstack(block)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", help="model names or paths (default: every shipped model)")
    p.add_argument("--source", default="neutral", help="class of the test faces (default neutral)")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--scale", type=int, default=2, help="pixel upscaling for display")
    p.add_argument("--out", default=str(ROOT / "docs" / "images" / "samples.png"))
    p.add_argument("--news", type=int, default=8, help="news photos below the faces (0: none)")
    p.add_argument("--news-targets", default="happy,surprise,sad,anger")
    p.add_argument("--targets", help="comma-separated targets of the faces' columns (default: every target a model offers)")
    args = p.parse_args(argv)

    faces = test_faces(args.source, args.n)
    side = faces.shape[1] * args.scale
    columns = [("original", faces)]
    for name in args.models or list_models():
        model = load_model(name)
        if not hasattr(model.config, "method"):
            continue  # not a StarGAN/CycleGAN generator
        pipe = ExpressionPipeline(model, device="cpu")
        short = Path(name).name
        wanted = {E.canonical(t) for t in args.targets.split(",")} if args.targets else None
        for target in pipe.targets:
            if target == E.canonical(args.source) or (wanted is not None and target not in wanted):
                continue
            outs = pipe.transfer(list(faces), target)
            columns.append((f"{pipe.method}\n{target}", np.stack([r.image for r in outs])))
        print(f"{short}: {', '.join(t for t in pipe.targets if t != args.source)}")
    gap = 4
    header = [label_cell(title, side) for title, _ in columns]
    body = []
    for i in range(len(faces)):
        row = []
        for _, imgs in columns:
            row.append(cv2.resize(imgs[i], (side, side), interpolation=cv2.INTER_NEAREST))
            row.append(np.full((side, gap), 255, np.uint8))
        body.append(np.hstack(row))
        body.append(np.full((gap, body[-1].shape[1]), 255, np.uint8))
    head = np.hstack([np.hstack([h, np.full((h.shape[0], gap), 255, np.uint8)]) for h in header])
    figure = cv2.cvtColor(np.vstack([head, *body]), cv2.COLOR_GRAY2BGR)
    if args.news:
        figure = np.vstack([figure, news_block(args, figure.shape[1], gap)])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, figure)
    print(f"wrote {args.out} ({len(faces)} {args.source} PublicTest faces x {len(columns) - 1} outputs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
