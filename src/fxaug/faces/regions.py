"""Face regions from 68 iBUG landmarks: the face mask, and masks plus fixed-size crop boxes for
the parts the expression-transfer generators work on (eyes, brows, nose, mouth).

    mask = face_mask(image.shape, landmarks)                 # bool (H, W): jaw line + brows
    boxes = part_boxes(landmarks, image.shape)               # {"mouth": (x, y, w, h), ...}
    masks = part_masks(image.shape, landmarks)               # {"mouth": bool (H, W), ...}

Left and right are the subject's, as in dlib and the iBUG 300-W documentation: the right eye is
points 36-41, on the image's left.

Box sizes are fixed per part, in units of the inter-ocular distance (IOD, between the eye centres)
or of any `unit` given in pixels: on aligned faces (constant IOD) or with a fixed `unit`, every
face gives the same crop size for a part, which is what a part generator wants. A box is centred
on its part's points and kept inside the image by shifting it, never by shrinking it (unless it is
larger than the image itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np

JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))


@dataclass(frozen=True)
class PartSpec:
    """A face part: its landmark indices, its crop box size (width, height) and mask margin, both
    in IOD units, and where the box centre sits relative to the points' bounding-box centre
    (`offset`, IOD units, +y down)."""

    name: str
    indices: tuple[int, ...]
    width: float
    height: float
    mask_margin: float
    offset: tuple[float, float] = (0.0, 0.0)


# Sizes cover the part with a margin on an average face (IOD ~ 1): an eye is ~0.5 IOD wide, a brow
# ~0.75 (and arched, tilted with the head), the mouth ~0.9 and up to ~0.6 tall when open; the nose
# runs ~0.8 from bridge to base. On 300 news photos, >= 90% of each part mask lies inside its box
# for 97-99% of faces.
PARTS: dict[str, PartSpec] = {
    spec.name: spec
    for spec in (
        PartSpec("right_eye", RIGHT_EYE, 0.80, 0.50, 0.10),
        PartSpec("left_eye", LEFT_EYE, 0.80, 0.50, 0.10),
        PartSpec("right_brow", RIGHT_BROW, 1.00, 0.45, 0.08),
        PartSpec("left_brow", LEFT_BROW, 1.00, 0.45, 0.08),
        PartSpec("nose", NOSE, 0.70, 1.00, 0.08),
        PartSpec("mouth", OUTER_LIPS, 1.30, 0.80, 0.10),
    )
}


def _check(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected (68, 2) iBUG landmarks, got shape {points.shape}")
    return points


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres (means of points 36-41 and 42-47)."""
    points = _check(landmarks)
    return float(np.linalg.norm(points[list(LEFT_EYE)].mean(axis=0) - points[list(RIGHT_EYE)].mean(axis=0)))


def points_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box (x, y, w, h) of points."""
    points = np.asarray(points, np.float64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def _shape_hw(shape: Sequence[int]) -> tuple[int, int]:
    return int(shape[0]), int(shape[1])


def fit_inside(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Shift a box so it lies inside a width x height image; shrink it only where it is larger."""
    w, h = min(w, width), min(h, height)
    x = min(max(x, 0), width - w)
    y = min(max(y, 0), height - h)
    return x, y, w, h


def part_size(part: str | PartSpec, unit: float, margin: float = 0.0) -> tuple[int, int]:
    """The (width, height) in pixels of a part's box for a unit (IOD or fixed pixels): the spec's
    size plus `margin` units on every side, rounded, at least 2 px."""
    spec = PARTS[part] if isinstance(part, str) else part
    return (
        max(int(round((spec.width + 2 * margin) * unit)), 2),
        max(int(round((spec.height + 2 * margin) * unit)), 2),
    )


def part_box(
    landmarks: np.ndarray,
    part: str | PartSpec,
    shape: Sequence[int],
    *,
    margin: float = 0.0,
    unit: float | None = None,
) -> tuple[int, int, int, int]:
    """Integer crop box (x, y, w, h) of one part, inside the image of `shape` (H, W, ...).

    Size: `part_size(part, unit, margin)`, unit = the face's IOD unless given (pixels).
    Centre: the centre of the part's points' bounding box, plus the spec's offset.
    """
    points = _check(landmarks)
    spec = PARTS[part] if isinstance(part, str) else part
    unit = inter_ocular_distance(points) if unit is None else float(unit)
    w, h = part_size(spec, unit, margin)
    bx, by, bw, bh = points_box(points[list(spec.indices)])
    cx = bx + bw / 2 + spec.offset[0] * unit
    cy = by + bh / 2 + spec.offset[1] * unit
    # pixel centres at integers: a box of w pixels centred on cx starts at cx - (w - 1) / 2
    x, y = int(np.floor(cx - (w - 1) / 2 + 0.5)), int(np.floor(cy - (h - 1) / 2 + 0.5))
    height, width = _shape_hw(shape)
    return fit_inside(x, y, w, h, width, height)


def part_boxes(
    landmarks: np.ndarray,
    shape: Sequence[int],
    parts: Mapping[str, PartSpec] | Sequence[str] = PARTS,
    *,
    margin: float = 0.0,
    unit: float | None = None,
) -> dict[str, tuple[int, int, int, int]]:
    """`part_box` for several parts (all six by default), by name."""
    specs = [PARTS[p] for p in parts] if not isinstance(parts, Mapping) else list(parts.values())
    unit = inter_ocular_distance(landmarks) if unit is None else unit
    return {spec.name: part_box(landmarks, spec, shape, margin=margin, unit=unit) for spec in specs}


def _polygon_mask(shape: Sequence[int], polygon: np.ndarray, grow: float) -> np.ndarray:
    height, width = _shape_hw(shape)
    mask = np.zeros((height, width), np.uint8)
    shift = 4  # sub-pixel vertices: fillPoly takes fixed-point coordinates with 4 fractional bits
    vertices = np.round(np.asarray(polygon, np.float64) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [vertices], 1, lineType=cv2.LINE_8, shift=shift)
    radius = int(round(grow))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel)
    elif radius < 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (-2 * radius + 1, -2 * radius + 1))
        mask = cv2.erode(mask, kernel)
    return mask.astype(bool)


def face_polygon(landmarks: np.ndarray) -> np.ndarray:
    """The closed face outline: the jaw line (0 -> 16) then the brows back (26 -> 17)."""
    points = _check(landmarks)
    return np.concatenate([points[list(JAW)], points[list(LEFT_BROW)[::-1]], points[list(RIGHT_BROW)[::-1]]])


def face_mask(shape: Sequence[int], landmarks: np.ndarray, *, margin: float = 0.0) -> np.ndarray:
    """bool (H, W) mask inside the face outline (`face_polygon`), grown by `margin` IOD (shrunk
    if negative)."""
    return _polygon_mask(shape, face_polygon(landmarks), margin * inter_ocular_distance(landmarks))


def part_polygon(landmarks: np.ndarray, part: str | PartSpec) -> np.ndarray:
    """The convex hull of a part's points (brows are a thin sliver; the mask margin gives them
    area)."""
    points = _check(landmarks)
    spec = PARTS[part] if isinstance(part, str) else part
    hull = cv2.convexHull(points[list(spec.indices)].astype(np.float32))
    return hull.reshape(-1, 2).astype(np.float64)


def part_mask(shape: Sequence[int], landmarks: np.ndarray, part: str | PartSpec, *, margin: float | None = None) -> np.ndarray:
    """bool (H, W) mask of one part: its points' convex hull grown by `margin` IOD (the spec's
    `mask_margin` unless given)."""
    spec = PARTS[part] if isinstance(part, str) else part
    grow = spec.mask_margin if margin is None else margin
    return _polygon_mask(shape, part_polygon(landmarks, spec), grow * inter_ocular_distance(landmarks))


def part_masks(
    shape: Sequence[int],
    landmarks: np.ndarray,
    parts: Mapping[str, PartSpec] | Sequence[str] = PARTS,
    *,
    margin: float | None = None,
) -> dict[str, np.ndarray]:
    """`part_mask` for several parts (all six by default), by name."""
    specs = [PARTS[p] for p in parts] if not isinstance(parts, Mapping) else list(parts.values())
    return {spec.name: part_mask(shape, landmarks, spec, margin=margin) for spec in specs}


def crop(image: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """The pixels of an integer box (x, y, w, h) (a view; the box must lie inside the image)."""
    x, y, w, h = (int(v) for v in box)
    if x < 0 or y < 0 or x + w > image.shape[1] or y + h > image.shape[0]:
        raise ValueError(f"box {tuple(box)} leaves the {image.shape[1]} x {image.shape[0]} image")
    return image[y : y + h, x : x + w]


# --------------------------------------------------------------------------------------------
# Expression regions: where an expression lives, as soft masks for in-context synthesis


@dataclass(frozen=True)
class ExpressionRegion:
    """A region an expression changes: the convex hulls of groups of landmarks (one group, or one
    per side where a single hull would swallow the nose), grown by margins in IOD units
    (left/right, up, down: a smile widens the mouth, surprise drops the jaw and lifts the brows)."""

    name: str
    hulls: tuple[tuple[int, ...], ...]
    side: float
    up: float
    down: float


# one side's cheek: the lower lid (outer corner, lower lid points, inner corner), the nose wing,
# and the mouth corner
_RIGHT_CHEEK = (36, 41, 40, 39, 31, 48)
_LEFT_CHEEK = (45, 46, 47, 42, 35, 54)

EXPRESSION_REGIONS: dict[str, ExpressionRegion] = {
    r.name: r
    for r in (
        # the lips, room for the corners to widen and lift and the jaw to drop; the nasolabial
        # folds stay outside (they carry identity and measured no gain for happy)
        ExpressionRegion("mouth", (OUTER_LIPS,), side=0.22, up=0.16, down=0.30),
        # both brows and eyes and the brow ridge between them (frowns, raised brows, widened eyes)
        ExpressionRegion("eyes", (RIGHT_BROW + LEFT_BROW + RIGHT_EYE + LEFT_EYE,), side=0.10, up=0.18, down=0.15),
        # a smile's cheek raise (AU6): cheeks, nasolabial folds and the lower half of each eye up to
        # the line between its corners, so the lower lids can rise while the upper lids, lashes and
        # brows stay the source's pixels (redrawn whole eyes came out soft: session 11)
        ExpressionRegion("cheeks", (_RIGHT_CHEEK, _LEFT_CHEEK), side=0.12, up=0.0, down=0.04),
    )
}


def region_polygons(landmarks: np.ndarray, region: str | ExpressionRegion, scale: float = 1.0,
                    shift: tuple[float, float] = (0.0, 0.0)) -> list[np.ndarray]:
    """The region's outlines, one per hull: the convex hull of its points swept over an
    ellipse-like set of offsets (its margins times `scale`, in IOD), moved by `shift` (IOD)."""
    points = _check(landmarks)
    spec = EXPRESSION_REGIONS[region] if isinstance(region, str) else region
    iod = inter_ocular_distance(points)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    dx = np.cos(angles) * spec.side
    dy = np.where(np.sin(angles) < 0, np.sin(angles) * spec.up, np.sin(angles) * spec.down)
    offsets = np.stack([dx, dy], 1) * scale * iod + np.asarray(shift, np.float64) * iod
    outlines = []
    for group in spec.hulls:
        swept = (points[list(group)][:, None, :] + offsets[None]).reshape(-1, 2)
        outlines.append(cv2.convexHull(swept.astype(np.float32)).reshape(-1, 2).astype(np.float64))
    return outlines


def expression_mask(shape: Sequence[int], landmarks: np.ndarray, regions: Sequence[str], *, feather: float = 0.08,
                    scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """float32 (H, W) mask in [0, 1] of the union of expression `regions`: 1 inside, falling to 0
    over `feather` IOD at the edge (a box blur of finite support, so the mask is exactly 0 a
    little way outside the outline and a generator's output can never reach further)."""
    points = _check(landmarks)
    height, width = _shape_hw(shape)
    hard = np.zeros((height, width), np.uint8)
    shift_px = 4
    for region in regions:
        for polygon in region_polygons(points, region, scale, shift):
            cv2.fillPoly(hard, [np.round(polygon * (1 << shift_px)).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=shift_px)
    radius = int(round(feather * inter_ocular_distance(points)))
    if radius < 1:
        return hard.astype(np.float32)
    # erode by the radius first, so the blurred edge straddles the outline (about half in, half out)
    half = max(radius // 2, 0)
    if half:
        hard = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * half + 1, 2 * half + 1)))
    k = 2 * radius + 1
    soft = cv2.boxFilter(hard.astype(np.float32), -1, (k, k), normalize=True, borderType=cv2.BORDER_CONSTANT)
    soft = cv2.boxFilter(soft, -1, (k, k), normalize=True, borderType=cv2.BORDER_CONSTANT)
    soft[soft < 1e-6] = 0.0
    return soft
