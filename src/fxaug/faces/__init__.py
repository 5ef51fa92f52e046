"""Face analysis for fxaug. See docs/faces.md.

Modules: `detection` (YuNet), `landmarks` (face-api.js 68 points; imports torch), `alignment`,
`regions`.
"""

from __future__ import annotations

from . import alignment, regions
from .alignment import CANONICAL_EYES, align_batch, align_face, alignment_matrix, eye_centres, invert_affine, transform_points, warp_back, warp_back_batch
from .detection import Detection, Face, FaceDetector
from .regions import PARTS, PartSpec, face_mask, face_polygon, inter_ocular_distance, part_box, part_boxes, part_mask, part_masks

_LAZY = {"FaceLandmarker", "FaceLandmarks", "LandmarkNet", "FLIP_PERMUTATION", "ENSEMBLE_CROPS", "landmarks_for", "landmarks_for_records", "load_landmark_net"}


def __getattr__(name: str):
    if name in _LAZY or name == "landmarks":
        import importlib

        landmarks = importlib.import_module(".landmarks", __name__)  # not `from . import`: that recurses here
        return landmarks if name == "landmarks" else getattr(landmarks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
