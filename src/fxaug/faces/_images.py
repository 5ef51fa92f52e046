"""Input normalisation shared by the face modules: what image layouts and dtypes they accept."""

from __future__ import annotations

import numpy as np


def as_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 pixels from uint8, or from float in 0..1 (the Albumentations float convention)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    raise TypeError(f"expected uint8 or float (0..1) pixels, got {image.dtype}")


def check_image(image) -> np.ndarray:
    """The image as an H x W or H x W x C array (C in 1, 3, 4); ValueError names what is wrong."""
    if image is None:
        raise ValueError("no image (None)")
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"not an image: shape {image.shape} (expected H x W, or H x W x 1/3/4)")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image too small: {image.shape[1]} x {image.shape[0]} px")
    return image


def as_uint8_rgb(image) -> np.ndarray:
    """H x W x 3 uint8 RGB from gray (H x W or H x W x 1), RGB, or RGBA (alpha dropped)."""
    image = as_uint8(check_image(image))
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])
