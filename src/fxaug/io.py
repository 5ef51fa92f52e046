"""Writing outputs safely: atomically (a reader never sees half a file, an interrupted run never
leaves one), never over an input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


def write_image(path: str | os.PathLike, pixels: np.ndarray, quality: int = 95) -> Path:
    """Save uint8 H x W or H x W x 3 pixels in the format the extension names (PNG when it names
    none we write), via a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        path = path.with_suffix(".png")
        fmt = "PNG"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(np.asarray(pixels)).save(f, format=fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
