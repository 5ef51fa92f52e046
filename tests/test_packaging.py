"""trainers/ and integrations/ install as fxaug.trainers / fxaug.integrations, editable and wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The face models ship inside the package with their licence notices (nothing is fetched at run time).
BUNDLED_MODELS = (
    "fxaug/assets/face_detection_yunet_2023mar.onnx",
    "fxaug/assets/face_landmark_68_model-weights_manifest.json",
    "fxaug/assets/face_landmark_68_model.bin",
    "fxaug/assets/face_recognition_model.safetensors",
    "fxaug/assets/LICENSES.md",
)


def test_editable_install_maps_top_level_folders():
    import fxaug.integrations
    import fxaug.trainers

    assert Path(fxaug.trainers.__file__).resolve() == REPO / "trainers" / "__init__.py"
    assert Path(fxaug.integrations.__file__).resolve() == REPO / "integrations" / "__init__.py"


@pytest.mark.slow
def test_wheel_contains_and_imports_subpackages(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = dist.glob("fxaug-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("fxaug/__init__.py", "fxaug/data/__init__.py", "fxaug/trainers/__init__.py",
                     "fxaug/integrations/__init__.py", "fxaug/cli.py", *BUNDLED_MODELS):
        assert required in names, f"{required} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "trainers/", "integrations/", "src/")) for n in names)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    code = (
        "import fxaug, fxaug.trainers, fxaug.integrations, fxaug.data, fxaug.faces, fxaug.assets; "
        "fxaug.faces.FaceDetector(); fxaug.faces.load_landmark_net(); "
        "print(fxaug.__file__); print(fxaug.trainers.__file__); print(fxaug.assets.YUNET_ONNX)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    for line in out.stdout.split():
        assert line.startswith(str(site)), out.stdout


def test_bundled_models_match_their_recorded_checksums():
    """The shipped files are the ones LICENSES.md describes (YuNet's sha256 as OpenCV Zoo lists it)."""
    import hashlib

    from fxaug import assets

    assert hashlib.sha256(assets.YUNET_ONNX.read_bytes()).hexdigest() == (
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    )
    notices = (assets.ASSETS / "LICENSES.md").read_text()
    assert hashlib.sha256(assets.FACE_RECOGNITION_WEIGHTS.read_bytes()).hexdigest() == (
        "0e32fdb6346dd1a074b26c16fca229a3d7b04e3786ab5a6ad444b6ce5cef4ca1"
    )
    for name in ("face_detection_yunet_2023mar.onnx", "face_landmark_68_model.bin", "face_recognition_model.safetensors",
                 "Shiqi Yu", "Vincent Mühler", "Vladimir Mandic"):
        assert name in notices


def test_import_fxaug_stays_light():
    """`import fxaug` (and fxaug.faces' numpy parts) must not pull in torch."""
    code = "import sys, fxaug, fxaug.faces; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
