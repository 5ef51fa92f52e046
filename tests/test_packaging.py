"""trainers/ and integrations/ install as fxaug.trainers / fxaug.integrations, editable and wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
                     "fxaug/integrations/__init__.py", "fxaug/cli.py"):
        assert required in names, f"{required} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "trainers/", "integrations/", "src/")) for n in names)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    code = "import fxaug, fxaug.trainers, fxaug.integrations, fxaug.data; print(fxaug.__file__); print(fxaug.trainers.__file__)"
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    for line in out.stdout.split():
        assert line.startswith(str(site)), out.stdout
