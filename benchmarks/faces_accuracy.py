"""Accuracy of fxaug.faces on the project's real data: detection rate, landmark agreement with
YuNet, landmark flip consistency, and the blend border step.

    .venv/bin/python benchmarks/faces_accuracy.py                 # all figures (~3 min on 1-2 cores)
    .venv/bin/python benchmarks/faces_accuracy.py --landmark-faces 1000 --seed 123 --landmarkers default
    .venv/bin/python benchmarks/faces_accuracy.py --landmarkers all   # + each net alone, flip averaging
    .venv/bin/python benchmarks/faces_accuracy.py --json out/faces_accuracy.json

Figures (docs/faces.md explains each):
- detection rate: share of images in which FaceDetector finds a face: 500 FER2013 PublicTest faces
  (48 x 48 grey) and 500 news photos (lfw_expressions.parquet).
- landmarkers: "default" is FaceLandmarker() (face-api.js net and face mesh averaged); with
  --landmarkers all also each net alone, face-api.js's 9-crop ensemble, and flip averaging (the
  landmarker run on the photo and on its mirror image, the latter mirrored back and averaged:
  flip-consistent by construction, so only its eye agreement says anything).
- eye agreement: on 200 news photos, the share of faces whose landmark eye centres (means of iBUG
  points 36-41 and 42-47) both lie within 10% of the inter-ocular distance (IOD) of YuNet's eye
  points: YuNet as the detector returns them (one pass), and YuNet's median over 9 other passes
  (4 other input sizes x {image, mirror image}, and the mirror image at the same size), a
  steadier reference. YuNet's agreement with itself (one pass against the mirror-image pass, the
  448 px pass, and that median) is printed too: it bounds what any landmark method can reach
  against one-pass YuNet.
- flip consistency: the share of those faces whose landmarks on the mirrored image (mirrored box),
  mirrored back with the iBUG left/right permutation, lie within 5% IOD of the landmarks on the
  image (mean over the 68 points; also over the 51 inner points, without the jaw line).
- blend border step: 50 real faces (25 FER2013, 25 news photos) aligned to 128 px, each of the six
  parts replaced by the same part of another face, or by a +40 grey-level copy of itself; for each
  blend mode, the mean absolute step between the box's outermost pixels and their outside
  neighbours minus the original's step there (acceptance: <= 2 grey levels), the same excess
  between neighbouring pixel rings within 3 px inside the border (the largest of the 4 rings,
  averaged over pastes: a seam just inside the box), and the largest change outside the box
  (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fxaug.faces import FLIP_PERMUTATION, ENSEMBLE_CROPS, FaceDetector, FaceLandmarker, align_face, eye_centres, part_boxes
from fxaug.faces import blend as B

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------
# data


def news_images(shared: Path, n: int, seed: int, skip: set[int] = frozenset()) -> tuple[list[int], list[np.ndarray]]:
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(shared / "data" / "lfw_expressions.parquet"), split="train")
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(len(ds)), np.array(sorted(skip), dtype=np.int64))
    rows = sorted(rng.choice(pool, n, replace=False).tolist())
    return rows, [np.array(ds[r]["image"]) for r in rows]


def fer_images(shared: Path, n: int, seed: int, usage: int = 1) -> tuple[list[int], np.ndarray]:
    fer = np.load(shared / "data" / "fer2013_ferplus.npz")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(fer["usage"] == usage), n, replace=False))
    return rows.tolist(), fer["images"][rows]


# ------------------------------------------------------------------------------------------
# figures


def detection_rate(detector: FaceDetector, images) -> float:
    return float(np.mean([detector(image).found for image in images]))


def mirror_box(box, width: int):
    x, y, w, h = box
    return (width - x - w, y, w, h)


def mirror_points(points: np.ndarray, width: int, permutation: np.ndarray | None = None) -> np.ndarray:
    out = np.array(points, np.float64)
    if permutation is not None:
        out = out[..., permutation, :]
    out[..., 0] = width - 1 - out[..., 0]
    return out


def yunet_eyes(image: np.ndarray, target_size: int = 320, mirrored: bool = False) -> np.ndarray | None:
    """YuNet's eye points (image-left eye first) at one input scale, optionally found on the
    mirror image and mirrored back."""
    found = FaceDetector(target_size=target_size)(image[:, ::-1] if mirrored else image)
    if not found.found:
        return None
    eyes = found.face.points[:2].astype(np.float64)
    return mirror_points(eyes[::-1], image.shape[1]) if mirrored else eyes


# The steadier YuNet reference: the median over 9 passes other than the detector's own one
# (target size 320, unmirrored): 4 other input scales x {image, mirror image} + the mirror at 320.
OTHER_PASSES = [(size, mirrored) for size in (256, 384, 448, 512) for mirrored in (False, True)] + [(320, True)]


class FlipAveraged:
    """A landmarker run on each photo and on its mirror image (mirrored box), the second result
    mirrored back (iBUG left/right permutation) and the two averaged: test-time flip averaging."""

    def __init__(self, landmarker):
        self.landmarker = landmarker

    def batch(self, images, boxes) -> np.ndarray:
        widths = [image.shape[1] for image in images]
        points = self.landmarker.batch(images, boxes).astype(np.float64)
        mirrored = self.landmarker.batch([image[:, ::-1] for image in images], [mirror_box(b, w) for b, w in zip(boxes, widths)])
        back = np.stack([mirror_points(m, w, FLIP_PERMUTATION) for m, w in zip(mirrored, widths)])
        return ((points + back) / 2).astype(np.float32)


def eye_error(eyes: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per face, the larger of the two eye distances, in units of the reference's IOD."""
    iod = np.linalg.norm(reference[:, 1] - reference[:, 0], axis=1)
    return np.linalg.norm(eyes - reference, axis=2).max(axis=1) / iod


def landmark_figures(images: list[np.ndarray], landmarkers: dict[str, FaceLandmarker]) -> dict:
    detector = FaceDetector()
    found = [detector(image) for image in images]
    keep = [i for i, f in enumerate(found) if f.found]
    images = [images[i] for i in keep]
    faces = [found[i].face for i in keep]
    widths = np.array([image.shape[1] for image in images])

    one_pass = np.stack([f.points[:2] for f in faces]).astype(np.float64)
    passes = {key: [yunet_eyes(image, *key) for image in images] for key in OTHER_PASSES}
    steady = np.stack([
        np.median(np.stack([passes[key][i] for key in OTHER_PASSES if passes[key][i] is not None]), axis=0)
        for i in range(len(images))
    ])
    mirror = passes[(320, True)]
    has_mirror = np.array([m is not None for m in mirror])
    figures = {
        "faces": len(images),
        "detected_of": len(found),
        "yunet_self_agreement": {
            "one_pass_vs_mirror_image_within_10pct": float(np.mean(eye_error(np.stack([m for m in mirror if m is not None]), one_pass[has_mirror]) < 0.10)),
            "one_pass_vs_target_448_within_10pct": float(np.nanmean([
                np.nan if e is None else float(eye_error(e[None], one_pass[i : i + 1])[0] < 0.10) for i, e in enumerate(passes[(448, False)])
            ])),
            "one_pass_vs_other_passes_median_within_10pct": float(np.mean(eye_error(one_pass, steady) < 0.10)),
        },
    }
    for name, landmarker in landmarkers.items():
        points = landmarker.batch(images, [f.box for f in faces])
        mirrored = landmarker.batch([image[:, ::-1] for image in images], [mirror_box(f.box, w) for f, w in zip(faces, widths)])
        net_eyes = np.stack([eye_centres(p) for p in points])
        vs_one_pass, vs_steady = eye_error(net_eyes, one_pass), eye_error(net_eyes, steady)
        back = np.stack([mirror_points(m, w, FLIP_PERMUTATION) for m, w in zip(mirrored, widths)])
        iod = np.linalg.norm(net_eyes[:, 1] - net_eyes[:, 0], axis=1)
        per_point = np.linalg.norm(back - points, axis=2) / iod[:, None]
        flip_all, flip_inner = per_point.mean(axis=1), per_point[:, 17:].mean(axis=1)
        figures[name] = {
            "eye_within_10pct_iod_of_yunet": float(np.mean(vs_one_pass < 0.10)),
            "eye_error_median_iod_vs_yunet": float(np.median(vs_one_pass)),
            "eye_within_10pct_iod_of_yunet_other_passes_median": float(np.mean(vs_steady < 0.10)),
            "eye_error_median_iod_vs_yunet_other_passes_median": float(np.median(vs_steady)),
            "flip_within_5pct_iod": float(np.mean(flip_all < 0.05)),
            "flip_error_median_iod": float(np.median(flip_all)),
            "flip_within_5pct_iod_inner51": float(np.mean(flip_inner < 0.05)),
        }
    return figures


def border_steps(original: np.ndarray, out: np.ndarray, box) -> tuple[float, float, float]:
    """(excess step at the border, largest excess step between rings within 3 px, largest change
    outside the box), grey levels (luminance for colour)."""
    def grey(a):
        a = a.astype(np.float64)
        return a @ B.LUMA if a.ndim == 3 else a

    o, r = grey(original), grey(out)
    x, y, w, h = box
    outside = np.ones(o.shape, bool)
    outside[y : y + h, x : x + w] = False
    changed_outside = float(np.abs(out.astype(np.float64) - original.astype(np.float64))[outside].max()) if outside.any() else 0.0

    def ring_step(img, k):  # mean |step| between ring k (inside, k px from the edge) and ring k-1
        steps = []
        x0, y0, x1, y1 = x + k, y + k, x + w - 1 - k, y + h - 1 - k
        if x1 <= x0 or y1 <= y0:
            return None
        pairs = []
        if y0 - 1 >= 0:
            pairs.append((img[y0, x0 : x1 + 1], img[y0 - 1, x0 : x1 + 1]))
        if y1 + 1 < img.shape[0]:
            pairs.append((img[y1, x0 : x1 + 1], img[y1 + 1, x0 : x1 + 1]))
        if x0 - 1 >= 0:
            pairs.append((img[y0 : y1 + 1, x0], img[y0 : y1 + 1, x0 - 1]))
        if x1 + 1 < img.shape[1]:
            pairs.append((img[y0 : y1 + 1, x1], img[y0 : y1 + 1, x1 + 1]))
        for a, b in pairs:
            steps.append(np.abs(a - b))
        return float(np.concatenate(steps).mean()) if steps else None

    border = ring_step(r, 0) - ring_step(o, 0)
    inner = [ring_step(r, k) - ring_step(o, k) for k in range(0, 4) if ring_step(o, k) is not None]
    return border, max(inner), changed_outside


def blend_figures(images: list[np.ndarray], detector: FaceDetector, landmarker: FaceLandmarker, size: int = 128) -> dict:
    aligned, points = [], []
    for image in images:
        found = detector(image)
        if not found.found:
            continue
        p = landmarker(image, found.face.box)
        a, M = align_face(image, eye_centres(p), size)
        aligned.append(a)
        points.append(p @ M[:, :2].T + M[:, 2])
    results: dict[str, dict[str, list[float]]] = {}
    for i, (a, p) in enumerate(zip(aligned, points)):
        donor = aligned[(i + 1) % len(aligned)]
        for part, box in part_boxes(p, a.shape).items():
            x, y, w, h = box
            patches = {
                "other face": donor[y : y + h, x : x + w],
                "+40 copy": np.clip(a[y : y + h, x : x + w].astype(np.int16) + 40, 0, 255).astype(np.uint8),
            }
            from fxaug.faces import part_mask

            mask = part_mask(a.shape, p, part)
            for kind, patch in patches.items():
                for mode in B.MODES:
                    out = B.paste(a, patch, box, mode, mask=mask if mode != "ramp" else None)
                    border, inner, outside = border_steps(a, out, box)
                    r = results.setdefault(f"{mode} / {kind}", {"border": [], "inner": [], "outside": []})
                    r["border"].append(border)
                    r["inner"].append(inner)
                    r["outside"].append(outside)
    return {
        key: {
            "pastes": len(v["border"]),
            "border_step_excess_mean": float(np.mean(v["border"])),
            "border_step_excess_max": float(np.max(v["border"])),
            "ring_step_excess_max_mean": float(np.mean(v["inner"])),
            "changed_outside_max": float(np.max(v["outside"])),
        }
        for key, v in results.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("FXAUG_SHARED", REPO.parent / "shared")))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--landmark-faces", type=int, default=200)
    parser.add_argument("--detection-faces", type=int, default=500)
    parser.add_argument("--blend-faces", type=int, default=50)
    parser.add_argument("--landmarkers", choices=("default", "all"), default="default",
                        help="default: FaceLandmarker() only; all: also each net alone, the 9-crop ensemble, flip averaging")
    parser.add_argument("--landmarks-only", action="store_true", help="skip the detection and blend figures")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: fair on a shared machine)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.shared / "data").is_dir():
        print(f"real data not found under {args.shared}/data (pass --shared)", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(args.threads)
    landmarker = FaceLandmarker(args.device)
    landmarkers = {"default (face-api.js net + face mesh)": landmarker}
    if args.landmarkers == "all":
        faceapi = FaceLandmarker(args.device, nets=("faceapi",), net=landmarker.net)
        mesh = FaceLandmarker(args.device, nets=("mesh",), mesh_net=landmarker.mesh_net)
        landmarkers.update({
            "face-api.js net, single crop": faceapi,
            "face-api.js net, 9-crop ensemble": FaceLandmarker(args.device, crops=ENSEMBLE_CROPS, nets=("faceapi",), net=landmarker.net),
            "face mesh": mesh,
            "face-api.js net + flip averaging": FlipAveraged(faceapi),
            "face mesh + flip averaging": FlipAveraged(mesh),
            "default + flip averaging": FlipAveraged(landmarker),
        })
    detector = FaceDetector()
    report: dict = {"seed": args.seed}
    t = time.time()

    _, news = news_images(args.shared, args.landmark_faces, args.seed)
    report["landmarks_news"] = landmark_figures(news, landmarkers)

    if not args.landmarks_only:
        _, fer = fer_images(args.shared, args.detection_faces, args.seed)
        _, news_det = news_images(args.shared, args.detection_faces, args.seed + 1)
        report["detection"] = {
            "fer_publictest_rate": detection_rate(detector, fer),
            "fer_publictest_n": len(fer),
            "news_rate": detection_rate(detector, news_det),
            "news_n": len(news_det),
        }

        half = args.blend_faces // 2
        _, fer_blend = fer_images(args.shared, half, args.seed + 2)
        _, news_blend = news_images(args.shared, args.blend_faces - half, args.seed + 2)
        report["blend"] = blend_figures(list(fer_blend) + news_blend, detector, landmarker)
    report["seconds"] = round(time.time() - t, 1)

    lm = report["landmarks_news"]
    yn = lm["yunet_self_agreement"]
    print(f"landmarks on {lm['faces']} news photos (YuNet found {lm['faces']} of {lm['detected_of']}):")
    for name in landmarkers:
        f = lm[name]
        print(f"  {name}:")
        print(f"    eye centres within 10% IOD of YuNet's eye points (one pass):       {f['eye_within_10pct_iod_of_yunet']:6.1%}  (median error {f['eye_error_median_iod_vs_yunet']:.3f} IOD)")
        print(f"    eye centres within 10% IOD of YuNet's median over 9 other passes: {f['eye_within_10pct_iod_of_yunet_other_passes_median']:6.1%}  (median error {f['eye_error_median_iod_vs_yunet_other_passes_median']:.3f} IOD)")
        print(f"    flip consistency within 5% IOD (mean over 68 points):             {f['flip_within_5pct_iod']:6.1%}  (median {f['flip_error_median_iod']:.3f} IOD)")
        print(f"    flip consistency within 5% IOD (51 inner points, no jaw line):    {f['flip_within_5pct_iod_inner51']:6.1%}")
    print("  YuNet against itself (the ceiling for agreement with one-pass YuNet):")
    print(f"    one-pass eye points within 10% IOD of those found on the mirror image: {yn['one_pass_vs_mirror_image_within_10pct']:6.1%}")
    print(f"    one-pass eye points within 10% IOD of those at input size 448:        {yn['one_pass_vs_target_448_within_10pct']:6.1%}")
    print(f"    one-pass eye points within 10% IOD of the 9 other passes' median:      {yn['one_pass_vs_other_passes_median_within_10pct']:6.1%}")
    if not args.landmarks_only:
        det = report["detection"]
        print(f"detection: FER2013 PublicTest {det['fer_publictest_rate']:.1%} of {det['fer_publictest_n']}, news photos {det['news_rate']:.1%} of {det['news_n']}")
        print("blend (grey levels; border = step at the box edge minus the original's there):")
        for key, v in report["blend"].items():
            print(f"  {key:24s} border excess mean {v['border_step_excess_mean']:+.2f} max {v['border_step_excess_max']:+.2f}; "
                  f"rings<=3px excess {v['ring_step_excess_max_mean']:+.2f}; changed outside {v['changed_outside_max']:.0f}  ({v['pastes']} pastes)")
    print(f"({report['seconds']} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
