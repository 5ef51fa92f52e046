"""Model files shipped inside the package, so nothing is downloaded at run time.

Licences: see LICENSES.md beside these files (MIT; the face mesh Apache-2.0).
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent

YUNET_ONNX = ASSETS / "face_detection_yunet_2023mar.onnx"
LANDMARK68_MANIFEST = ASSETS / "face_landmark_68_model-weights_manifest.json"
LANDMARK68_WEIGHTS = ASSETS / "face_landmark_68_model.bin"
FACE_RECOGNITION_WEIGHTS = ASSETS / "face_recognition_model.safetensors"
FACE_MESH_WEIGHTS = ASSETS / "face_mesh_landmark.safetensors"


def asset(name: str) -> Path:
    """Path of a bundled file; FileNotFoundError names what is missing (a broken install)."""
    path = ASSETS / name
    if not path.is_file():
        raise FileNotFoundError(f"fxaug asset {name!r} missing at {path}; reinstall fxaug")
    return path
