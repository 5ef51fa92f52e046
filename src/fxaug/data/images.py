"""Decoding any common image file into uint8 RGB or grayscale, or saying exactly why not.

One function, `decode_image`, used by every reader so that every format treats odd files the
same way: EXIF orientation applied, CMYK / palette / alpha / 16-bit converted (and noted),
truncated, empty, oversized and non-image files refused with a reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
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
# The most bytes a file may have, and its decoded pixels may take, before anything is read or
# decoded (a 64 Mpx 16-bit RGBA TIFF is 512 MB either way).
DEFAULT_MAX_BYTES = 1 << 30
# Source pixels decoded at once by one `fxaug transfer` batch or one rebalance window, whatever
# their count: 64 FER faces are 0.15 M; 16 M is 16 one-megapixel photos (the pipeline needs
# ~120 bytes a pixel at its peak: ~2 GB).
BATCH_PIXELS = 16_000_000
_STRIP_PIXELS = 1 << 22  # large images are converted this many pixels at a time
# Bytes per pixel of each PIL mode, to know an image's decoded size from its header alone.
# (PIL keeps 3- and 2-band images in 4 bytes a pixel.)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 4, "PA": 4, "La": 4, "RGB": 4, "YCbCr": 4, "LAB": 4, "HSV": 4,
               "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2,
               "I;16N": 2}
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
    out = np.empty(arr.shape, np.uint8)
    rows = max(1, _STRIP_PIXELS // max(1, arr[0].size)) if arr.ndim > 1 else arr.shape[0]
    if np.issubdtype(arr.dtype, np.integer):
        # 16-bit (and 32-bit integer containers of 16-bit data): full scale is 65535.
        # (x + 128) // 257 rounds x / 257 exactly as rint does, in integers.
        wide = np.uint32 if arr.dtype.itemsize <= 2 and not np.issubdtype(arr.dtype, np.signedinteger) else np.int64
        for y in range(0, arr.shape[0], rows):  # in strips: the wide copy stays small
            out[y : y + rows] = np.clip((arr[y : y + rows].astype(wide) + 128) // 257, 0, 255)
        return out
    scale = 255.0 if float(np.nanmax(arr)) <= 1.0 else 1.0
    for y in range(0, arr.shape[0], rows):
        out[y : y + rows] = np.clip(np.rint(np.nan_to_num(arr[y : y + rows]) * scale), 0, 255)
    return out


def _size_text(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _open_regular(path: Path, max_bytes: int | None):
    """The file opened for reading, refused first if it is not a regular file or is larger than
    `max_bytes`. Opened non-blocking and checked on the open descriptor, so a FIFO (whose read
    would block for ever), device or socket is refused even if it replaced the file meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise BadInput("file not found") from None
    except OSError as e:
        raise BadInput(f"cannot open file ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            from .base import special_file_kind

            kind = "a folder" if stat.S_ISDIR(st.st_mode) else special_file_kind(st.st_mode)
            raise BadInput(f"not a regular file ({kind})")
        if st.st_size == 0:
            raise BadInput("empty file (0 bytes)")
        if max_bytes is not None and st.st_size > max_bytes:
            raise BadInput(f"file too large ({_size_text(st.st_size)}; limit {_size_text(max_bytes)}, max_bytes={max_bytes})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def decode_image(
    source: str | os.PathLike | bytes,
    color: str = "rgb",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
) -> tuple[np.ndarray, list[str]]:
    """Decode a file path or encoded bytes.

    Returns (pixels, notes): pixels is H x W x 3 (color="rgb") or H x W (color="gray") uint8
    (color="native": H x W for grey sources, H x W x 3 otherwise);
    notes lists the conversions applied (empty for a plain 8-bit RGB/L image).
    Raises BadInput with the reason when the data is not a usable image. Never writes.
    Limits, checked before the pixels are decoded: the file's size (max_bytes, before it is
    read), and from the header the pixel count (max_pixels) and the decoded size (max_bytes).
    A FIFO, device or socket is refused without reading it.
    """
    if color not in COLORS:
        raise ValueError(f"color must be one of {COLORS}, got {color!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise BadInput("empty file (0 bytes)")
        if max_bytes is not None and len(data) > max_bytes:
            raise BadInput(f"file too large ({_size_text(len(data))}; limit {_size_text(max_bytes)}, max_bytes={max_bytes})")
        stream = io.BytesIO(data)
    else:
        # PIL reads the header from the open file and the pixels on load(): nothing is read
        # whole before the checks.
        stream = _open_regular(Path(source), max_bytes)
    with stream:
        img, notes = _decode(stream, max_pixels, max_bytes)
    return _convert(img, notes, color)


def image_size(path: str | os.PathLike, max_bytes: int | None = DEFAULT_MAX_BYTES) -> tuple[int, int]:
    """(width, height) of an image file from its header alone, nothing decoded: to plan work by
    pixels before decoding. Raises BadInput as decode_image would for a file that is not a
    regular file (a FIFO is refused without blocking), is too large, or is not an image."""
    with _open_regular(Path(path), max_bytes) as stream, _pil_errors(stream):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as img:
                return img.size


@contextlib.contextmanager
def _pil_errors(stream):
    """PIL's errors while reading `stream` as BadInput with the reason (one wording for every reader)."""
    try:
        yield
    except BadInput:
        raise
    except UnidentifiedImageError:
        stream.seek(0)
        claimed = _claimed_format(stream.read(12))
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


def _decode(stream, max_pixels: int | None, max_bytes: int | None):
    notes: list[str] = []
    with _pil_errors(stream):
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces PIL's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(stream)
            w, h = img.size
            if max_pixels is not None and w * h > max_pixels:
                raise BadInput(f"image too large ({w}x{h} = {w * h} pixels; limit max_pixels={max_pixels})")
            # Decoding keeps PIL's pixels and (for conversions) a copy side by side.
            decoded = w * h * _MODE_BYTES.get(img.mode, 4)
            if max_bytes is not None and decoded + w * h * 3 > max_bytes:
                raise BadInput(f"image too large to decode ({w}x{h} {img.mode} takes {_size_text(decoded)} decoded, "
                               f"{_size_text(decoded + w * h * 3)} with its 8-bit copy; limit max_bytes={max_bytes})")
            img.load()
    return img, notes


def _convert(img: Image.Image, notes: list[str], color: str) -> tuple[np.ndarray, list[str]]:
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
        base = img if mode == "RGBA" else img.convert("RGBA")
        img = None  # each intermediate goes as soon as the next exists (large images)
        flat = Image.new("RGBA", base.size, (0, 0, 0, 255))
        flat.alpha_composite(base)
        base = None
        img = flat.convert("RGB")
        flat = None
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
        arr = _to_uint8(_pixels(img))
        notes.append(f"{'16-bit' if mode.startswith('I') else 'floating-point'} ({mode}) scaled to 8-bit")
        img = Image.fromarray(arr, mode="L")
        mode = "L"
    if mode == "1":
        img = img.convert("L")
        mode = "L"

    if color == "native":
        color = "gray" if mode == "L" else "rgb"
    if color == "gray":
        img = img if mode == "L" else img.convert("L")
    else:
        img = img if mode == "RGB" else img.convert("RGB")
    return np.ascontiguousarray(_to_uint8(_pixels(img))), notes


def _pixels(img: Image.Image) -> np.ndarray:
    """np.asarray(img) without its two transient copies of the whole image (PIL's tobytes
    gathers chunks, then joins them): a large image is copied over in strips."""
    width, height = img.size
    if width * height <= _STRIP_PIXELS:
        return np.asarray(img)
    rows = max(1, _STRIP_PIXELS // width)
    first = np.asarray(img.crop((0, 0, width, min(rows, height))))
    out = np.empty((height, *first.shape[1:]), first.dtype)
    out[: first.shape[0]] = first
    for y in range(first.shape[0], height, rows):
        out[y : y + rows] = np.asarray(img.crop((0, y, width, min(y + rows, height))))
    return out
