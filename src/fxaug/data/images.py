"""Decoding any common image file into uint8 RGB or grayscale, or saying exactly why not.

One function, `decode_image`, used by every reader so that every format treats odd files the
same way: EXIF orientation applied, CMYK / palette / alpha / 16-bit converted (and noted),
truncated, empty, oversized and non-image files refused with a reason.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .records import BadInput

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)
# Faces never need more; a larger file is far more likely a mistake or a decompression bomb.
DEFAULT_MAX_PIXELS = 64_000_000
COLORS = ("rgb", "gray", "native")  # native: grey sources stay grey, others RGB
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _claimed_format(head: bytes) -> str | None:
    """The format a file's first bytes claim, to tell a damaged image from a non-image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        # 16-bit (and 32-bit integer containers of 16-bit data): full scale is 65535.
        return np.clip(np.rint(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    scale = 255.0 if float(np.nanmax(arr)) <= 1.0 else 1.0
    return np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8)


def decode_image(
    source: str | os.PathLike | bytes,
    color: str = "rgb",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[np.ndarray, list[str]]:
    """Decode a file path or encoded bytes.

    Returns (pixels, notes): pixels is H x W x 3 (color="rgb") or H x W (color="gray") uint8
    (color="native": H x W for grey sources, H x W x 3 otherwise);
    notes lists the conversions applied (empty for a plain 8-bit RGB/L image).
    Raises BadInput with the reason when the data is not a usable image. Never writes.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise BadInput("empty file (0 bytes)")
        stream = io.BytesIO(data)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise BadInput("file not found") from None
        except OSError as e:
            raise BadInput(f"cannot access file ({e.strerror or e})") from None
        if size == 0:
            raise BadInput("empty file (0 bytes)")
        try:
            stream = io.BytesIO(path.read_bytes())
        except OSError as e:
            raise BadInput(f"cannot read file ({e.strerror or e})") from None
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces PIL's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(stream)
            w, h = img.size
            if max_pixels is not None and w * h > max_pixels:
                raise BadInput(f"image too large ({w}x{h} = {w * h} pixels; limit max_pixels={max_pixels})")
            img.load()
    except BadInput:
        raise
    except UnidentifiedImageError:
        claimed = _claimed_format(stream.getvalue()[:12])
        if claimed:
            raise BadInput(f"corrupt image ({claimed} signature, but the data cannot be decoded)") from None
        raise BadInput("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as e:
        raise BadInput(f"image too large ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        text = str(e)
        if "truncated" in text.lower() or "broken data stream" in text.lower():
            raise BadInput(f"truncated or corrupt image data ({text})") from None
        raise BadInput(f"corrupt image ({text or type(e).__name__})") from None

    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not cost the pixels
        orientation = 1
    if orientation not in (0, 1):
        img = ImageOps.exif_transpose(img)
        notes.append(f"EXIF orientation {orientation} applied")

    mode = img.mode
    if mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        notes.append("palette expanded")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        base = img.convert("RGBA")
        flat = Image.new("RGBA", base.size, (0, 0, 0, 255))
        flat.alpha_composite(base)
        img = flat.convert("RGB")
        notes.append("alpha composited onto black")
        mode = "RGB"
    if mode == "CMYK":
        img = img.convert("RGB")
        notes.append("CMYK converted to RGB")
        mode = "RGB"
    if mode == "YCbCr" or mode == "LAB" or mode == "HSV":
        img = img.convert("RGB")
        notes.append(f"{mode} converted to RGB")
        mode = "RGB"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = _to_uint8(np.asarray(img))
        notes.append(f"{'16-bit' if mode.startswith('I') else 'floating-point'} ({mode}) scaled to 8-bit")
        img = Image.fromarray(arr, mode="L")
        mode = "L"
    if mode == "1":
        img = img.convert("L")
        mode = "L"

    if color == "native":
        color = "gray" if mode == "L" else "rgb"
    if color == "gray":
        out = np.asarray(img if mode == "L" else img.convert("L"))
    else:
        out = np.asarray(img if mode == "RGB" else img.convert("RGB"))
    return np.ascontiguousarray(_to_uint8(out)), notes
