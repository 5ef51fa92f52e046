"""Face analysis for fxaug. See docs/faces.md.

Modules: `detection` (YuNet), `alignment`.
"""

from __future__ import annotations

from . import alignment
from .alignment import CANONICAL_EYES, align_batch, align_face, alignment_matrix, eye_centres, invert_affine, transform_points, warp_back, warp_back_batch
from .detection import Detection, Face, FaceDetector

__all__ = [
    "CANONICAL_EYES", "Detection", "Face", "FaceDetector", "align_batch", "align_face", "alignment", "alignment_matrix",
    "eye_centres", "invert_affine", "transform_points", "warp_back", "warp_back_batch",
]
