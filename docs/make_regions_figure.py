"""Draw docs/images/regions.png: 16 real faces (8 news photos, 8 FER2013) with their 68 landmarks,
face mask outline, part masks and fixed-size part boxes, as fxaug.faces computes them.

    .venv/bin/python docs/make_regions_figure.py [--shared ../shared] [--out docs/images/regions.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fxaug.faces import FaceDetector, FaceLandmarker, face_polygon, part_boxes, part_masks

REPO = Path(__file__).resolve().parents[1]
TILE = 224
COLOURS = {  # RGB
    "right_eye": (0, 170, 255),
    "left_eye": (0, 255, 170),
    "right_brow": (255, 170, 0),
    "left_brow": (255, 90, 200),
    "nose": (255, 255, 0),
    "mouth": (255, 60, 60),
}


def load_faces(shared: Path, n_news: int, n_fer: int, seed: int) -> list[tuple[str, np.ndarray]]:
    from datasets import load_dataset

    rng = np.random.default_rng(seed)
    news = load_dataset("parquet", data_files=str(shared / "data" / "lfw_expressions.parquet"), split="train")
    rows = sorted(rng.choice(len(news), n_news, replace=False).tolist())
    faces = [("news", np.array(news[r]["image"].convert("RGB"))) for r in rows]
    fer = np.load(shared / "data" / "fer2013_ferplus.npz")
    public = np.flatnonzero(fer["usage"] == 1)
    faces += [("FER", fer["images"][r]) for r in sorted(rng.choice(public, n_fer, replace=False).tolist())]
    return faces


def draw(image: np.ndarray, points: np.ndarray, label: str) -> np.ndarray:
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    scale = TILE / max(rgb.shape[:2])
    canvas = np.zeros((TILE, TILE, 3), np.uint8)
    big = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    canvas[: big.shape[0], : big.shape[1]] = big

    def px(p):  # image pixel centre -> canvas coordinate
        return (np.asarray(p) + 0.5) * scale

    overlay = canvas.copy()
    for name, mask in part_masks(rgb.shape, points).items():
        big_mask = cv2.resize(mask.astype(np.uint8), (big.shape[1], big.shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
        overlay[: big.shape[0], : big.shape[1]][big_mask] = COLOURS[name]
    canvas = cv2.addWeighted(overlay, 0.35, canvas, 0.65, 0)
    outline = np.round(px(face_polygon(points)) * 16).astype(np.int32)
    cv2.polylines(canvas, [outline], True, (255, 255, 255), 1, cv2.LINE_AA, shift=4)
    for name, (x, y, w, h) in part_boxes(points, rgb.shape).items():
        # box edges: pixel x spans [x, x + w) -> canvas [x * scale, (x + w) * scale)
        cv2.rectangle(canvas, (round(x * scale), round(y * scale)), (round((x + w) * scale) - 1, round((y + h) * scale) - 1), COLOURS[name], 1)
    for p in px(points):
        cv2.circle(canvas, (round(p[0] * 16), round(p[1] * 16)), 24, (255, 0, 0), -1, cv2.LINE_AA, shift=4)  # 1.5 px
    cv2.putText(canvas, label, (4, TILE - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def legend(width: int) -> np.ndarray:
    """A strip naming the colours: part masks (filled) and boxes (outlines) share a part's colour."""
    strip = np.full((56, width, 3), 255, np.uint8)
    x = 8
    for name, colour in COLOURS.items():
        cv2.rectangle(strip, (x, 8), (x + 14, 22), colour, -1)
        cv2.putText(strip, name.replace("_", " "), (x + 20, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 20 + 8 * len(name) + 16
    note = "red: 68 landmarks   white: face mask outline   filled: part masks   rectangles: part boxes"
    cv2.putText(strip, note, (8, 45), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "regions.png")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    detector, landmarker = FaceDetector(), FaceLandmarker()
    tiles = []
    for source, image in load_faces(args.shared, 8, 8, args.seed):
        found = detector(image)
        if not found.found:
            print(f"{source}: {found.reason}; skipped")
            continue
        points = landmarker(image, found.face.box)
        h, w = image.shape[:2]
        tiles.append(draw(image, points, f"{source} {w}x{h}"))
    tiles = tiles[:16]
    while len(tiles) % 4:
        tiles.append(np.zeros((TILE, TILE, 3), np.uint8))
    rows = [np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)]
    grid = np.vstack(rows + [legend(rows[0].shape[1])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({len(tiles)} faces)")


if __name__ == "__main__":
    main()
