"""fxaug.io: every output is written atomically, with ordinary permissions."""

import os

import numpy as np
import pytest

from fxaug.io import atomic_write, write_image, write_text


def test_outputs_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        text = write_text(tmp_path / "a" / "summary.json", "{}")
        image = write_image(tmp_path / "face.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    for path in (text, image):
        assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "keep.txt").write_text("old")

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "keep.txt", broken)
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_unknown_extension_is_written_as_png(tmp_path):
    path = write_image(tmp_path / "face.xyz", np.zeros((4, 4, 3), np.uint8))
    assert path.name == "face.png" and path.read_bytes()[:4] == b"\x89PNG"
