"""Face alignment: a similarity transform (rotation, uniform scale, shift) that puts the two eye
centres on a canonical template, and its exact inverse.

    eyes = eye_centres(landmarks)                      # (2, 2), image-left eye first
    aligned, M = align_face(image, eyes, size=64)      # M maps image pixels -> aligned pixels
    back, inside = warp_back(aligned, M, image.shape)  # the aligned image in the original frame
    points_aligned = transform_points(landmarks, M)

Coordinates are pixel centres at integer positions (OpenCV's convention), so `transform_points`
and `cv2.warpAffine` agree exactly. `align_batch` / `warp_back_batch` do the same for torch tensors
(N, C, H, W) with `grid_sample`, on any device.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

# Eye centres in the aligned face, as fractions of its side: where FER2013 has them (medians of
# YuNet's eye points over FER2013 faces), so aligned faces look like FER crops: inter-ocular
# distance 0.38 of the side, the jaw and brows inside the frame.
CANONICAL_EYES = ((0.31, 0.38), (0.69, 0.38))

RIGHT_EYE = slice(36, 42)  # the subject's right eye: the image's left (iBUG 300-W)
LEFT_EYE = slice(42, 48)


def eye_centres(points: np.ndarray) -> np.ndarray:
    """(2, 2) eye centres, the image-left eye first: means of iBUG points 36-41 and 42-47 for 68
    landmarks; the first two points for YuNet's 5."""
    points = np.asarray(points, np.float64)
    if points.shape == (68, 2):
        return np.stack([points[RIGHT_EYE].mean(axis=0), points[LEFT_EYE].mean(axis=0)])
    if points.shape == (5, 2):
        return points[:2].copy()
    raise ValueError(f"expected (68, 2) landmarks or (5, 2) YuNet points, got shape {points.shape}")


def similarity_from_pairs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix taking two points `src` exactly onto two points `dst`."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    vs, vd = src[1] - src[0], dst[1] - dst[0]
    norm = vs @ vs
    if norm <= 1e-12:
        raise ValueError("the two eye centres coincide; no alignment is defined")
    a = (vs @ vd) / norm                              # s cos(theta)
    b = (vs[0] * vd[1] - vs[1] * vd[0]) / norm        # s sin(theta)
    R = np.array([[a, -b], [b, a]])
    return np.hstack([R, (dst[0] - R @ src[0])[:, None]])


def template_eyes(size: int | tuple[int, int], template: Sequence[Sequence[float]] = CANONICAL_EYES) -> np.ndarray:
    """Template eye centres in pixels of an aligned image of `size` (side, or (width, height))."""
    width, height = (size, size) if np.isscalar(size) else size
    t = np.asarray(template, np.float64)
    return t * (width, height) - 0.5  # fractions of the edges -> pixel centres


def alignment_matrix(eyes: np.ndarray, size: int | tuple[int, int], template: Sequence[Sequence[float]] = CANONICAL_EYES) -> np.ndarray:
    """2x3 matrix mapping image pixels to the aligned image, eyes onto the template."""
    return similarity_from_pairs(eyes, template_eyes(size, template))


def invert_affine(M: np.ndarray) -> np.ndarray:
    """The exact inverse of a 2x3 affine matrix (float64)."""
    M = np.asarray(M, np.float64)
    A_inv = np.linalg.inv(M[:, :2])
    return np.hstack([A_inv, (-A_inv @ M[:, 2])[:, None]])


def transform_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Points (..., 2) through a 2x3 affine matrix."""
    points = np.asarray(points, np.float64)
    M = np.asarray(M, np.float64)
    return points @ M[:, :2].T + M[:, 2]


def _antialiased_warp(image: np.ndarray, M: np.ndarray, dsize: tuple[int, int], interpolation: int, border: int) -> np.ndarray:
    """warpAffine, with a Gaussian pre-blur of just the needed source region when the warp shrinks
    (bilinear sampling alone aliases when shrinking more than ~1.5x)."""
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(np.asarray(M, np.float64)[:, :2])))
    if shrink <= 1.5:
        return cv2.warpAffine(image, M, dsize, flags=interpolation, borderMode=border)
    sigma = 0.5 * np.sqrt(shrink * shrink - 1.0)
    w, h = dsize
    corners = transform_points(np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]]), invert_affine(M))
    pad = int(np.ceil(3 * sigma)) + 2
    x0 = max(int(np.floor(corners[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + pad + 1, image.shape[1])
    y1 = min(int(np.ceil(corners[:, 1].max())) + pad + 1, image.shape[0])
    if x1 <= x0 or y1 <= y0:  # the output lies wholly outside the image
        return cv2.warpAffine(image, M, dsize, flags=interpolation, borderMode=border)
    region = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    shifted = np.asarray(M, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ (x0, y0)  # the region's pixel (0, 0) is the image's (x0, y0)
    # outside the region: replicate the region's edge (as the whole image would, near the border)
    return cv2.warpAffine(region, shifted, dsize, flags=interpolation, borderMode=border)


def align_face(
    image: np.ndarray,
    eyes: np.ndarray,
    size: int = 64,
    template: Sequence[Sequence[float]] = CANONICAL_EYES,
    interpolation: int = cv2.INTER_LINEAR,
    border: int = cv2.BORDER_REPLICATE,
) -> tuple[np.ndarray, np.ndarray]:
    """The face warped so its eye centres (`eye_centres`) land on the template, in a size x size
    image; returns (aligned, M) with M the 2x3 image -> aligned matrix."""
    M = alignment_matrix(eyes, size, template)
    return _antialiased_warp(np.asarray(image), M, (size, size), interpolation, border), M


def warp_back(
    aligned: np.ndarray,
    M: np.ndarray,
    shape: Sequence[int],
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray]:
    """An aligned image returned to the original frame (`shape` = the original's (H, W, ...)),
    through the exact inverse of M. Returns (image, inside): `inside` is a bool (H, W) mask of
    the pixels the aligned image covers (outside it the returned pixels are 0)."""
    height, width = int(shape[0]), int(shape[1])
    back = cv2.warpAffine(aligned, M, (width, height), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ones = np.ones(aligned.shape[:2], np.uint8)
    inside = cv2.warpAffine(ones, M, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return back, inside.astype(bool)


# --------------------------------------------------------------------------------------------
# torch, batched


def _pixel_to_normalised(width: int, height: int) -> np.ndarray:
    """3x3 matrix: pixel centres -> grid_sample coordinates (align_corners=False)."""
    return np.array([[2.0 / width, 0, 1.0 / width - 1], [0, 2.0 / height, 1.0 / height - 1], [0, 0, 1]])


def affine_grid_theta(M: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """`affine_grid` theta (N, 2, 3) sampling a source of src_size (W, H) into dst_size (W, H)
    so that output pixel p shows source pixel M^-1 p (M: (N, 2, 3) source -> output pixels)."""
    M = np.asarray(M, np.float64).reshape(-1, 2, 3)
    Ns, Nd = _pixel_to_normalised(*src_size), _pixel_to_normalised(*dst_size)
    thetas = []
    for m in M:
        inv = np.vstack([invert_affine(m), [0, 0, 1]])
        thetas.append((Ns @ inv @ np.linalg.inv(Nd))[:2])
    return np.stack(thetas)


def _warp_batch(images, M, dst_size: tuple[int, int], padding_mode: str):
    import torch
    import torch.nn.functional as F

    n, c, h, w = images.shape
    theta = torch.as_tensor(affine_grid_theta(M, (w, h), dst_size), dtype=images.dtype if images.is_floating_point() else torch.float32, device=images.device)
    grid = F.affine_grid(theta, (n, c, dst_size[1], dst_size[0]), align_corners=False)
    src = images if images.is_floating_point() else images.float()
    return F.grid_sample(src, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def align_batch(images, eyes, size: int = 64, template: Sequence[Sequence[float]] = CANONICAL_EYES):
    """Torch version of `align_face` for a batch: images (N, C, H, W) (any device, float or
    uint8 -> float), eyes (N, 2, 2). Returns (aligned (N, C, size, size) float, M (N, 2, 3)
    numpy). Bilinear, edge pixels repeated outside the image; no anti-alias pre-blur."""
    eyes = np.asarray(eyes.detach().cpu() if hasattr(eyes, "detach") else eyes, np.float64).reshape(-1, 2, 2)
    M = np.stack([alignment_matrix(e, size, template) for e in eyes])
    return _warp_batch(images, M, (size, size), "border"), M


def warp_back_batch(aligned, M, height: int, width: int):
    """Torch version of `warp_back`: aligned (N, C, S, S) -> ((N, C, H, W), inside (N, 1, H, W)
    bool) in the original frames."""
    import torch

    M = np.asarray(M, np.float64).reshape(-1, 2, 3)
    inverse = np.stack([invert_affine(m) for m in M])
    n, _, s_h, s_w = aligned.shape
    back = _warp_batch(aligned, inverse, (width, height), "zeros")
    ones = torch.ones((n, 1, s_h, s_w), dtype=back.dtype, device=back.device)
    inside = _warp_batch(ones, inverse, (width, height), "zeros") > 0.5
    return back, inside
