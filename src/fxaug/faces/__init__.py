"""Face analysis: detection, 68-point landmarks, alignment, part regions, blending back.

    from fxaug.faces import FaceDetector, FaceLandmarker, align_face, part_boxes, blend

    detector, landmarker = FaceDetector(), FaceLandmarker()      # YuNet; 68 points (two nets averaged)
    found = detector(image)                                      # Detection: .face / .faces / .reason
    points = landmarker(image, found.face.box)                   # (68, 2) image pixels
    aligned, M = align_face(image, eye_centres(points), size=64) # eyes onto a canonical template
    boxes = part_boxes(points, image.shape)                      # fixed-size part crop boxes
    image = blend.blend_ramp(image, generated_mouth, boxes["mouth"])

Modules: `detection` (YuNet), `landmarks` (the landmark net; imports torch), `alignment`,
`regions`, `blend`. Apart from `FaceDetector` and `FaceLandmarker`, which hold models, everything
is a pure function of numpy arrays (torch tensors for the `*_batch` functions). The model files
ship inside the package (fxaug/assets, MIT licences in assets/LICENSES.md). See docs/faces.md.
"""

from __future__ import annotations

from . import alignment, blend, regions
from .alignment import (
    CANONICAL_EYES,
    align_batch,
    align_face,
    alignment_matrix,
    eye_centres,
    invert_affine,
    transform_points,
    warp_back,
    warp_back_batch,
)
from .blend import blend_batch, blend_feathered, blend_ramp, blend_seamless, paste
from .detection import Detection, Face, FaceDetector
from .regions import (
    PARTS,
    PartSpec,
    face_mask,
    face_polygon,
    inter_ocular_distance,
    part_box,
    part_boxes,
    part_mask,
    part_masks,
)

# The landmark net needs torch; load it only when asked for.
_LAZY = {
    "FaceLandmarker": "landmarks",
    "FaceLandmarks": "landmarks",
    "LandmarkNet": "landmarks",
    "FLIP_PERMUTATION": "landmarks",
    "ENSEMBLE_CROPS": "landmarks",
    "landmarks_for": "landmarks",
    "landmarks_for_records": "landmarks",
    "load_landmark_net": "landmarks",
    "load_face_mesh_net": "landmarks",
    "FaceMeshNet": "landmarks",
    "MESH_TO_IBUG68": "landmarks",
    "landmarks": None,
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(".landmarks", __name__)  # not `from . import`: that recurses here
        return module if _LAZY[name] is None else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CANONICAL_EYES",
    "Detection",
    "ENSEMBLE_CROPS",
    "FLIP_PERMUTATION",
    "Face",
    "FaceDetector",
    "FaceLandmarker",
    "FaceLandmarks",
    "FaceMeshNet",
    "LandmarkNet",
    "MESH_TO_IBUG68",
    "PARTS",
    "PartSpec",
    "align_batch",
    "align_face",
    "alignment",
    "alignment_matrix",
    "blend",
    "blend_batch",
    "blend_feathered",
    "blend_ramp",
    "blend_seamless",
    "eye_centres",
    "face_mask",
    "face_polygon",
    "inter_ocular_distance",
    "invert_affine",
    "landmarks",
    "landmarks_for",
    "landmarks_for_records",
    "load_face_mesh_net",
    "load_landmark_net",
    "part_box",
    "part_boxes",
    "part_mask",
    "part_masks",
    "paste",
    "regions",
    "transform_points",
    "warp_back",
    "warp_back_batch",
]
