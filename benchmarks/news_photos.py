"""The whole-photo path on news photos (../shared/data/lfw_expressions.parquet): neutral photos,
at their original size and colour, through `ExpressionPipeline` (detect, landmarks, align,
synthesize, paste back), scored like the FER benchmark:

- judge rate: the evaluation judge (`ferplus-resnet`) on each output's aligned face crop
  (eyes on the FER template, 48 px), against the same crops of the untouched photos;
- realism: TF-Inception FID and KID of the outputs' aligned face crops (112 px) against the same
  crops of real photos of the target class, and of the untouched sources likewise;
- identity: face-descriptor distance of each output's crop to its source's (same person < 0.6).

Held out by identity: sources and reference photos are of people outside the training identities
(`--train-identities`, a file with one name per line; the shipped generator saw no news photo,
so by default every identity is held out).

    .venv/bin/python benchmarks/news_photos.py --model inpaint-ferplus-48 --target happy --n 400 \
        --out docs/runs/news-photos-inpaint-ferplus-48.json
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PARQUET = ROOT.parent / "shared" / "data" / "lfw_expressions.parquet"


def load_photos(emotion: str, n: int, seed: int, exclude: set[str], parquet: Path = PARQUET):
    """Up to n photos of one class (uint8, as stored: grey or RGB), their identities; one photo per
    identity (a person's many photos would weigh the scores), seeded."""
    import pyarrow.parquet as pq
    from PIL import Image

    from fxaug import emotions as E

    table = pq.read_table(parquet, columns=["image", "label", "identity"]).to_pydict()
    rng = np.random.default_rng(seed)
    rows = [i for i, lab in enumerate(table["label"]) if E.canonical(lab) == E.canonical(emotion)
            and table["identity"][i] not in exclude]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    seen, photos, people = set(), [], []
    for i in rows:
        if table["identity"][i] in seen:
            continue
        seen.add(table["identity"][i])
        image = Image.open(io.BytesIO(table["image"][i]["bytes"]))
        photos.append(np.asarray(image.convert("RGB" if image.mode not in ("L", "I;16") else "L")))
        people.append(table["identity"][i])
        if len(photos) == n:
            break
    return photos, people


def face_crops(photos, points, size: int) -> list[np.ndarray]:
    from fxaug.faces import align_face, eye_centres

    return [align_face(p, eye_centres(q), size)[0] for p, q in zip(photos, points)]


def main(argv=None) -> int:
    from fxaug.faces import FaceDetector, FaceLandmarker
    from fxaug.faces.landmarks import landmarks_for_records
    from fxaug.metrics.registry import MetricContext, TransferSet, compute_metrics
    from fxaug.pipeline import ExpressionPipeline

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="generator (default: the shipped one for the target)")
    p.add_argument("--source", default="neutral")
    p.add_argument("--target", default="happy")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--n-reference", type=int, default=1000)
    p.add_argument("--train-identities", help="file of identities the generator trained on (left out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    started = time.time()
    exclude = set(Path(args.train_identities).read_text().split("\n")) if args.train_identities else set()

    sources, people = load_photos(args.source, args.n, args.seed, exclude)
    reference, _ = load_photos(args.target, args.n_reference, args.seed + 1, exclude | set(people))
    detector, landmarker = FaceDetector(), FaceLandmarker()

    class R:  # a record-like view for landmarks_for_records
        def __init__(self, image):
            self.image = image

    src_marks = landmarks_for_records([R(im) for im in sources], detector, landmarker)
    ok = [i for i, m in enumerate(src_marks) if m.points is not None]
    sources = [sources[i] for i in ok]
    points = [src_marks[i].points for i in ok]
    ref_marks = landmarks_for_records([R(im) for im in reference], detector, landmarker)
    reference = [im for im, m in zip(reference, ref_marks) if m.points is not None]
    ref_points = [m.points for m in ref_marks if m.points is not None]

    model = args.model
    if model is None:
        from fxaug.models import select_model

        model = select_model(args.target)
    pipe = ExpressionPipeline(model, device="cpu")
    t0 = time.time()
    results = pipe.transfer(sources, args.target, landmarks=points)
    transfer_s = time.time() - t0
    outputs = [r.image for r in results]
    unchanged_outside = None

    ctx = MetricContext(device="cpu")
    rows = {}
    for size, metrics in ((48, ["accuracy"]), (112, ["fid", "kid", "identity"])):
        src_c, out_c, ref_c = face_crops(sources, points, size), face_crops(outputs, points, size), face_crops(reference, ref_points, size)
        for name, made in (("untouched", src_c), ("transferred", out_c)):
            s = TransferSet(args.target, src_c, made, ref_c, f"{len(ref_c)} real {args.target} news photos ({size} px crops)")
            rows.setdefault(name, {}).update(compute_metrics(metrics, s, ctx))
    summary = {}
    for name, details in rows.items():
        summary[name] = {
            "judge_rate": details["accuracy"]["value"],
            "fid": details["fid"]["value"],
            "kid": details["kid"]["value"], "kid_std": details["kid"]["std"],
            "identity_mean": details["identity"]["mean"], "same_person": details["identity"]["share_below"],
        }
    result = {
        "model": str(model), "pair": f"{args.source}:{args.target}", "n_sources": len(sources),
        "n_no_face": args.n - len(sources) if len(sources) < args.n else 0, "n_reference": len(reference),
        "colour_sources": int(sum(im.ndim == 3 for im in sources)),
        "sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in sources})[:10],
        "transfer_s": round(transfer_s, 1), "summary": summary, "unchanged_outside_mask": unchanged_outside,
        "protocol": __doc__.split("\n\n")[1], "elapsed_s": round(time.time() - started, 1),
        "details": {k: {m: {kk: vv for kk, vv in v.items() if kk != "distances"} for m, v in d.items()} for k, d in rows.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps({"summary": summary, "n": len(sources), "n_reference": len(reference)}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
