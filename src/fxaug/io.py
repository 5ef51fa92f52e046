"""Writing outputs safely: atomically (a reader never sees half a file, an interrupted run never
leaves one), never over an input. Every file fxaug writes goes through `atomic_write`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place; on any
    error the temporary file is removed and `path` is left as it was. The file gets the usual
    permissions (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def image_output_path(path: str | os.PathLike) -> Path:
    """The file `write_image(path, ...)` writes: `path`, or `path` with .png when its extension
    names no format fxaug writes (a .gif input comes out as .png)."""
    path = Path(path)
    return path if path.suffix.lower() in _FORMATS else path.with_suffix(".png")


def write_image(path: str | os.PathLike, pixels: np.ndarray, quality: int = 95) -> Path:
    """Save uint8 H x W or H x W x 3 pixels in the format the extension names (PNG when it names
    none we write; `image_output_path` says which file that is)."""
    from PIL import Image

    path = image_output_path(path)
    fmt = _FORMATS[path.suffix.lower()]
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    return atomic_write(path, lambda tmp: Image.fromarray(np.asarray(pixels)).save(tmp, format=fmt, **options))
