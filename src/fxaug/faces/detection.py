"""Face detection with YuNet (OpenCV Zoo, MIT) through `cv2.FaceDetectorYN`.

    detector = FaceDetector()
    result = detector(image)                 # a `Detection`, never an exception for a bad image
    if result.found:
        face = result.face                   # the largest face: box, 5 points, score
    all_faces = detector(image, all_faces=True).faces
    results = detector.batch(images)         # one `Detection` per image

Images are RGB (H x W x 3), gray (H x W or H x W x 1) or RGBA, uint8 or float in 0..1.

Padding and upscaling. YuNet finds faces of roughly 10 to 300 px and, like most detectors, needs
some context around a face: on a tight dataset crop (48-224 px, the face filling the frame) it
fails far more often than on a photo. So every image is detected on a prepared copy:

1. pad: a border of `pad` x the image's longer side on every side, filled with the image's mean
   colour (a flat border adds no edges; a mirrored one would add mirrored half-faces);
2. scale: the padded copy is resized so its longer side is `target_size` px (320 by default):
   a 48 px FER face, padded to 72 px, is upscaled 4.4 x and becomes a ~200 px face; a 128 px
   news crop becomes a ~140 px face. Photos larger than `target_size` are shrunk only if their
   padded side exceeds `max_size` (faces in a large photo are small relative to it);
3. fallback: if that finds nothing, the detector tries again at half and then at double the scale
   (a face larger or smaller than usual for its frame), before giving up.

Boxes and points are mapped back to the original image's pixels (pixel centres at integer
coordinates) and may extend past its border. Only with `assume_face=True` does an image in which
nothing was found count as one face filling the frame (`Face.source == "whole-image"`), which
suits datasets whose every image is known to be an aligned face crop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from ..assets import YUNET_ONNX
from ._images import as_uint8_rgb

# YuNet's five points, in its output order. "right"/"left" are the subject's: the subject's right
# eye appears on the image's left.
POINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left")

# Where YuNet finds its five points in a FER2013 crop, as fractions of the frame (medians over
# 986 Training faces, made left-right symmetric); the points of an assumed whole-image face.
WHOLE_IMAGE_POINTS = np.array(
    [[0.31, 0.38], [0.69, 0.38], [0.50, 0.59], [0.35, 0.76], [0.65, 0.76]], np.float32
)


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the pixels of the image it was found in.

    box:    (x, y, w, h), top-left corner and size; may extend past the image border.
    points: (5, 2) float32 x, y of `POINT_NAMES` (eyes, nose tip, mouth corners).
    score:  YuNet's confidence (0..1); 0.0 for an assumed whole-image face.
    source: "yunet", or "whole-image" when the frame was taken as the face (assume_face=True).
    """

    box: tuple[float, float, float, float]
    points: np.ndarray
    score: float
    source: str = "yunet"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Face):
            return NotImplemented
        return (self.box, self.score, self.source) == (other.box, other.score, other.source) and np.array_equal(self.points, other.points)

    __hash__ = object.__hash__

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def eyes(self) -> np.ndarray:
        """(2, 2): the eye on the image's left, then the one on its right."""
        return self.points[:2]

    @property
    def inter_ocular_distance(self) -> float:
        return float(np.linalg.norm(self.points[1] - self.points[0]))


@dataclass(frozen=True)
class Detection:
    """What detection found in one image: faces, largest first; `reason` says why none."""

    faces: tuple[Face, ...]
    image_size: tuple[int, int]  # (width, height); (0, 0) when the input was not an image
    reason: str | None = None

    @property
    def found(self) -> bool:
        return bool(self.faces)

    @property
    def face(self) -> Face | None:
        """The largest face, or None."""
        return self.faces[0] if self.faces else None

    def __len__(self) -> int:
        return len(self.faces)


@dataclass(frozen=True)
class DetectionPlan:
    """How one image is prepared for YuNet: pad by `border` px, then resize by `scale`."""

    border: int
    scale: float


def plan_detection(height: int, width: int, pad: float, target_size: int, max_size: int) -> DetectionPlan:
    """The padding and scale for an image of this size (see the module docstring)."""
    border = int(round(pad * max(height, width)))
    padded = max(height, width) + 2 * border
    if padded < target_size:
        scale = target_size / padded
    elif padded > max_size:
        scale = max_size / padded
    else:
        scale = 1.0
    return DetectionPlan(border, scale)


def prepare_for_detection(rgb: np.ndarray, plan: DetectionPlan) -> tuple[np.ndarray, float, float]:
    """The padded, resized BGR copy YuNet reads, and its exact x and y scale factors."""
    fill = tuple(float(v) for v in rgb.reshape(-1, 3).mean(axis=0))
    b = plan.border
    padded = cv2.copyMakeBorder(rgb, b, b, b, b, cv2.BORDER_CONSTANT, value=fill)
    h, w = padded.shape[:2]
    size = (max(1, int(round(w * plan.scale))), max(1, int(round(h * plan.scale))))
    if size != (w, h):
        interpolation = cv2.INTER_AREA if plan.scale < 1 else cv2.INTER_LINEAR
        padded = cv2.resize(padded, size, interpolation=interpolation)
    return cv2.cvtColor(padded, cv2.COLOR_RGB2BGR), size[0] / w, size[1] / h


def faces_from_yunet(rows: np.ndarray | None, border: int, sx: float, sy: float) -> list[Face]:
    """YuNet output rows (x, y, w, h, 5 x (x, y), score) in the prepared copy -> `Face`s in
    the original image, largest first."""
    if rows is None:
        return []
    faces = []
    for row in np.asarray(rows, np.float64).reshape(-1, 15):
        # pixel centres at integer coordinates: x_original + 0.5 = (x_copy + 0.5) / s - border
        xy = row[:14].reshape(7, 2)
        xy = (xy + 0.5) / (sx, sy) - 0.5 - border
        w, h = row[2] / sx, row[3] / sy
        box = (float(xy[0, 0]), float(xy[0, 1]), float(w), float(h))
        faces.append(Face(box, xy[2:].astype(np.float32), float(row[14])))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def whole_image_face(height: int, width: int) -> Face:
    """The whole frame as one face (for aligned crops in which detection found nothing)."""
    points = WHOLE_IMAGE_POINTS * np.array([width, height], np.float32) - 0.5  # fractions of edges -> centres
    return Face((0.0, 0.0, float(width), float(height)), points.astype(np.float32), 0.0, "whole-image")


def _quietly(make):
    """Call `make` with OpenCV's warnings muted: OpenCV 5 warns on every YuNet load that its new
    DNN engine ignores compute targets, which says nothing about the detector's results."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        return make()
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        return make()
    finally:
        logging.setLogLevel(level)


class FaceDetector:
    """YuNet face detector (stateful: holds the OpenCV model). See the module docstring.

    score_threshold: minimum YuNet confidence of a face.
    nms_threshold:   overlap above which the weaker of two boxes is dropped.
    pad:             border added on every side, as a fraction of the image's longer side.
    target_size:     padded images smaller than this (longer side, px) are upscaled to it.
    max_size:        padded images larger than this are shrunk to it.
    fallback_scales: further scale factors (relative to the first) tried when nothing is found.
    """

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 100,
        pad: float = 0.25,
        target_size: int = 320,
        max_size: int = 1280,
        fallback_scales: Sequence[float] = (0.5, 2.0),
        model: str | Path | None = None,
    ):
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.pad = pad
        self.target_size = target_size
        self.max_size = max_size
        self.fallback_scales = tuple(fallback_scales)
        self.model = str(model or YUNET_ONNX)
        self._net = _quietly(lambda: cv2.FaceDetectorYN.create(self.model, "", (target_size, target_size), score_threshold, nms_threshold, top_k))
        self._lock = threading.Lock()  # the OpenCV object holds its input size: one call at a time

    def _run(self, rgb: np.ndarray, plan: DetectionPlan) -> list[Face]:
        bgr, sx, sy = prepare_for_detection(rgb, plan)
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._net.detect(bgr)
        return faces_from_yunet(rows, plan.border, sx, sy)

    def __call__(self, image, *, all_faces: bool = False, assume_face: bool = False) -> Detection:
        """Faces in one image: the largest only, or all (largest first) with `all_faces=True`.

        Never raises for a bad or faceless image: the `Detection` then holds no face and a reason.
        """
        try:
            rgb = as_uint8_rgb(image)
        except (TypeError, ValueError) as err:
            return Detection((), (0, 0), f"not an image: {err}")
        height, width = rgb.shape[:2]
        plan = plan_detection(height, width, self.pad, self.target_size, self.max_size)
        faces = self._run(rgb, plan)
        for factor in self.fallback_scales:
            if faces:
                break
            faces = self._run(rgb, DetectionPlan(plan.border, plan.scale * factor))
        if not faces:
            if assume_face:
                return Detection((whole_image_face(height, width),), (width, height))
            tried = ", ".join(f"{plan.scale * f:.2f}" for f in (1.0, *self.fallback_scales))
            return Detection(
                (), (width, height),
                f"no face found (YuNet score >= {self.score_threshold}, padded by {plan.border} px, scales {tried})",
            )
        return Detection(tuple(faces if all_faces else faces[:1]), (width, height))

    def batch(self, images: Iterable, *, all_faces: bool = False, assume_face: bool = False) -> list[Detection]:
        """One `Detection` per image, in order; a bad image gives a result with its reason."""
        return [self(image, all_faces=all_faces, assume_face=assume_face) for image in images]

    def __repr__(self) -> str:
        return f"FaceDetector(score_threshold={self.score_threshold}, pad={self.pad}, target_size={self.target_size})"
