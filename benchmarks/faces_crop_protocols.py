"""How the landmark net's input crop is prepared, compared: the default single square crop
(`SINGLE_CROP`), re-cropping from the net's own landmarks (2 and 3 passes), face-api.js's own input
convention on a YuNet box mapped to a face-api.js-style box, and a mean-colour border instead of
black. Same figures as benchmarks/faces_accuracy.py (eye centres within 10% IOD of one-pass YuNet
and of YuNet's median over 9 other passes; flip consistency within 5% IOD, 68 and 51 points).

    .venv/bin/python benchmarks/faces_crop_protocols.py --sample tune      # 400 held-out photos
    .venv/bin/python benchmarks/faces_crop_protocols.py --sample eval200   # faces_accuracy.py's 200
    .venv/bin/python benchmarks/faces_crop_protocols.py --sample eval1000  # its --seed 123 1000
    .venv/bin/python benchmarks/faces_crop_protocols.py --placements       # + single-crop placements

The "tune" sample (seed 2024, 400 rows) is drawn from the parquet rows outside both evaluation
samples and outside the test suite's 100 photos (tests/faces_data.py, seed 10); the alternatives'
parameters were chosen on it. docs/faces.md gives the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faces_accuracy import OTHER_PASSES, eye_error, mirror_box, mirror_points, yunet_eyes  # noqa: E402

from fxaug.faces import FLIP_PERMUTATION, FaceDetector, FaceLandmarker, eye_centres  # noqa: E402
from fxaug.faces._images import as_uint8_rgb  # noqa: E402
from fxaug.faces.landmarks import INPUT_SIZE, crop_square, crop_to_image, square_crop_box  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def sample_rows(n_rows: int, sample: str) -> list[int]:
    def draw(seed, n, skip=()):
        pool = np.setdiff1d(np.arange(n_rows), np.array(sorted(skip), dtype=np.int64))
        return sorted(np.random.default_rng(seed).choice(pool, n, replace=False).tolist())

    eval200, eval1000, tests = draw(0, 200), draw(123, 1000), draw(10, 100)
    if sample == "eval200":
        return eval200
    if sample == "eval1000":
        return eval1000
    return draw(2024, 400, skip=set(eval200) | set(eval1000) | set(tests))


# ------------------------------------------------------------------------------------------
# crop protocols: each maps (images, YuNet boxes) to (N, 68, 2) image pixels


def run_squares(lm: FaceLandmarker, rgbs, squares, crop=crop_square) -> np.ndarray:
    rel = lm.run_crops(np.stack([crop(im, *sq) for im, sq in zip(rgbs, squares)]))
    return np.stack([crop_to_image(p, *sq) for p, sq in zip(rel, squares)]).astype(np.float64)


def landmark_square(points: np.ndarray, down: float, scale: float) -> tuple[int, int, int]:
    """A square from the landmarks' bounding box: side `scale` x its longer side, centre `down` x
    that side below the box centre (mirror-equivariant: the box is permutation-invariant)."""
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    s = max(x1 - x0, y1 - y0)
    side = max(int(np.round(s * scale)), 8)
    return int(np.round((x0 + x1) / 2 - side / 2)), int(np.round((y0 + y1) / 2 + down * s - side / 2)), side


def multipass(lm, passes: int, down: float = 0.12, scale: float = 1.35):
    def run(rgbs, boxes):
        points = run_squares(lm, rgbs, [square_crop_box(b) for b in boxes])
        for _ in range(passes - 1):
            points = run_squares(lm, rgbs, [landmark_square(p, down, scale) for p in points])
        return points

    return run


def resize_bilinear_tf1(image: np.ndarray, size: int) -> np.ndarray:
    """tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false): source = dst x in/out."""
    def axis(n_in):
        s = np.arange(size) * (n_in / size)
        i0 = np.floor(s).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), (s - i0).astype(np.float32)

    (y0, y1, fy), (x0, x1, fx) = axis(image.shape[0]), axis(image.shape[1])
    a = image.astype(np.float32)
    fx3 = fx[None, :, None]
    top = a[y0][:, x0] * (1 - fx3) + a[y0][:, x1] * fx3
    bottom = a[y1][:, x0] * (1 - fx3) + a[y1][:, x1] * fx3
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def faceapi_style(lm, down: float = 0.15, width: float = 1.1, height: float = 0.9):
    """face-api.js's convention on a face-api-style box made from the YuNet box (same centre x,
    centre `down` box heights lower, `width` x w by `height` x h): floor the box, clip it to the
    image, slice, padToSquare (centred, zeros), TF1 bilinear resize to 112, and map the output back
    as face-api's postProcess does (relative to the unpadded slice)."""
    def run(rgbs, boxes):
        crops, geometry = [], []
        for im, (x, y, w, h) in zip(rgbs, boxes):
            cx, cy = x + w / 2, y + h / 2 + down * h
            fx0, fy0 = int(np.floor(cx - width * w / 2)), int(np.floor(cy - height * h / 2))
            fx1, fy1 = int(np.floor(cx + width * w / 2)), int(np.floor(cy + height * h / 2))
            x0, y0, x1, y1 = max(fx0, 0), max(fy0, 0), min(fx1, im.shape[1]), min(fy1, im.shape[0])
            cw, ch = x1 - x0, y1 - y0
            diff, side = abs(ch - cw), max(cw, ch)
            before = diff - int(np.round(diff * 0.5))
            square = np.zeros((side, side, 3), np.uint8)
            if ch > cw:
                square[:, before : before + cw] = im[y0:y1, x0:x1]
            else:
                square[before : before + ch, :] = im[y0:y1, x0:x1]
            crops.append(resize_bilinear_tf1(square, INPUT_SIZE))
            geometry.append((x0, y0, cw, ch, side))
        rel = lm.run_crops(np.stack(crops))
        out = []
        for p, (x0, y0, cw, ch, side) in zip(rel, geometry):
            iw, ih = cw * INPUT_SIZE / side, ch * INPUT_SIZE / side
            px, py = (abs(iw - ih) / 2 if iw < ih else 0), (abs(iw - ih) / 2 if ih < iw else 0)
            rx, ry = (p[:, 0] * INPUT_SIZE - px) / iw, (p[:, 1] * INPUT_SIZE - py) / ih
            out.append(np.stack([rx * cw + x0 - 0.5, ry * ch + y0 - 0.5], 1))
        return np.stack(out)

    return run


def mean_colour_crop(rgb, x0, y0, side, size=INPUT_SIZE):
    h, w = rgb.shape[:2]
    t, l, b, r = max(0, -y0), max(0, -x0), max(0, y0 + side - h), max(0, x0 + side - w)
    big = cv2.copyMakeBorder(rgb, t, b, l, r, cv2.BORDER_CONSTANT, value=[float(v) for v in rgb.reshape(-1, 3).mean(0)])
    crop = big[y0 + t : y0 + t + side, x0 + l : x0 + l + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


# ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("FXAUG_SHARED", REPO.parent / "shared")))
    parser.add_argument("--sample", choices=("tune", "eval200", "eval1000"), default="tune")
    parser.add_argument("--placements", action="store_true",
                        help="also single crops at other (down, scale), and how far the eyes follow a shifted crop")
    args = parser.parse_args()

    import torch
    from datasets import load_dataset

    torch.set_num_threads(1)
    ds = load_dataset("parquet", data_files=str(args.shared / "data" / "lfw_expressions.parquet"), split="train")
    rows = sample_rows(len(ds), args.sample)
    detector = FaceDetector()
    images, boxes, one_pass, steady = [], [], [], []
    for r in rows:
        image = as_uint8_rgb(np.array(ds[r]["image"]))
        found = detector(image)
        if not found.found:
            continue
        passes = [e for e in (yunet_eyes(image, *key) for key in OTHER_PASSES) if e is not None]
        images.append(image)
        boxes.append(found.face.box)
        one_pass.append(found.face.points[:2].astype(np.float64))
        steady.append(np.median(np.stack(passes), axis=0))
    one_pass, steady = np.stack(one_pass), np.stack(steady)
    widths = np.array([im.shape[1] for im in images])
    print(f"{args.sample}: {len(images)} faces of {len(rows)} rows (first rows {rows[:5]})")

    lm = FaceLandmarker(nets=("faceapi",))  # the crop protocols are those of the face-api.js net
    protocols = {
        "single crop (default)": lambda rgbs, bxs: run_squares(lm, rgbs, [square_crop_box(b) for b in bxs]),
        "2 passes (landmark box)": multipass(lm, 2),
        "3 passes (landmark box)": multipass(lm, 3),
        "face-api.js convention": faceapi_style(lm),
        "single crop, mean-colour border": lambda rgbs, bxs: run_squares(lm, rgbs, [square_crop_box(b) for b in bxs], mean_colour_crop),
    }
    def square_at(down, scale):
        return lambda rgbs, bxs: run_squares(lm, rgbs, [square_crop_box(b, down, scale) for b in bxs])

    if args.placements:
        for down, scale in [(0.15, 1.1), (0.2, 1.0), (0.2, 1.2), (0.25, 1.1), (0.3, 1.1)]:
            protocols[f"single crop, down {down} scale {scale}"] = square_at(down, scale)
        base = np.stack([eye_centres(p) for p in square_at(0.2, 1.1)(images[:100], boxes[:100])])
        for down in (0.1, 0.15, 0.25, 0.3):
            eyes = np.stack([eye_centres(p) for p in square_at(down, 1.1)(images[:100], boxes[:100])])
            shift = np.array([(down - 0.2) * b[3] for b in boxes[:100]])
            moved = (eyes - base)[:, :, 1].mean(axis=1)
            print(f"  crop {down - 0.2:+.2f} box heights lower (median {np.median(shift):+.1f} px, 100 faces): "
                  f"eye centres move {np.median(moved):+.2f} px ({np.median(moved / shift):.0%} of the shift)")
    for name, run in protocols.items():
        t = time.perf_counter()
        points = run(images, boxes)
        ms = (time.perf_counter() - t) / len(images) * 1000
        mirrored = run([im[:, ::-1].copy() for im in images], [mirror_box(b, w) for b, w in zip(boxes, widths)])
        back = np.stack([mirror_points(m, w, FLIP_PERMUTATION) for m, w in zip(mirrored, widths)])
        eyes = np.stack([eye_centres(p) for p in points])
        iod = np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1)
        per_point = np.linalg.norm(back - points, axis=2) / iod[:, None]
        print(f"  {name:32s} eyes vs YuNet {np.mean(eye_error(eyes, one_pass) < 0.1):6.1%}  vs 9-pass median {np.mean(eye_error(eyes, steady) < 0.1):6.1%}"
              f"  flip {np.mean(per_point.mean(1) < 0.05):6.1%}  flip 51 {np.mean(per_point[:, 17:].mean(1) < 0.05):6.1%}  ({ms:.1f} ms/face)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
