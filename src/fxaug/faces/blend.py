"""Putting a generated face part back into the photo it was cut from.

Three ways, each a pure function of (image, patch, box) that returns a new image in which only the
pixels inside `box` (x, y, w, h) may differ from the input:

- `blend_ramp`: the method of Upenieks & Urtans (2022): the patch's mean brightness is matched to
  the original crop's, then it is mixed in with weights that fall linearly to zero towards the
  crop's edges (`ramp_weights`; by default a pyramid, 1 at the centre), so the crop's outermost
  pixels stay the original's.
- `blend_feathered`: alpha blending through a soft-edged mask (e.g. a part mask from
  `fxaug.faces.regions`), blurred by `feather` and brought to zero at the crop's edges.
- `blend_seamless`: OpenCV's Poisson image editing (`cv2.seamlessClone`), which keeps the patch's
  gradients and takes its brightness from the surroundings.

`paste(image, patch, box, mode=...)` picks one by name; `blend_batch` is the torch version of the
ramp / feathered blends for a batch of images (any device).

Colour. A grey patch (the generators work on grey faces) pasted into a colour photo replaces only
the luminance: Y of YCrCb (BT.601, as `cv2.COLOR_RGB2YCrCb`) is blended, Cr and Cb are kept.
Changing Y alone changes R, G and B by the same amount, so this is done by adding the change in Y
to every channel, which leaves pixels whose Y did not change bit-identical (no colour-space
round trip). A colour patch in a colour image is blended per channel; a colour patch in a grey
image is turned to grey first.

Images are H x W (grey), H x W x 1 or H x W x 3 (RGB), uint8 or float in 0..1. A patch whose size
differs from the box is resized to it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])  # BT.601 Y from R, G, B (OpenCV's YCrCb)
MODES = ("ramp", "feather", "seamless")


# --------------------------------------------------------------------------------------------
# weights


def edge_distance(height: int, width: int) -> np.ndarray:
    """(h, w) distance in pixels of each pixel from the box's outermost ring (0 on it)."""
    ys = np.minimum(np.arange(height), np.arange(height)[::-1])
    xs = np.minimum(np.arange(width), np.arange(width)[::-1])
    return np.minimum(ys[:, None], xs[None, :]).astype(np.float64)


def ramp_weights(height: int, width: int, ramp: float = 1.0) -> np.ndarray:
    """(h, w) float32 weights: 0 on the box's outermost pixels, rising linearly inwards to 1.

    ramp: the share of the way from the edge to the centre (of the smaller side) over which the
    weights rise; 1.0 (the default) makes a pyramid peaking at the centre, 0.5 reaches 1 halfway
    in. A steeper ramp keeps more of the patch but makes the seam show: pasting real mouths and
    eyes from other faces, 1.0 keeps the extra step between neighbouring pixels near the crop's
    edge at ~1.3 grey levels on average, 0.5 at ~3.5 (benchmarks/faces_accuracy.py)."""
    if not 0 < ramp <= 1:
        raise ValueError(f"ramp must be in (0, 1], got {ramp}")
    half = max((min(height, width) - 1) / 2, 1.0)
    return np.clip(edge_distance(height, width) / (ramp * half), 0.0, 1.0).astype(np.float32)


def feather_weights(mask: np.ndarray, feather: float = 0.25) -> np.ndarray:
    """Soft alpha (h, w) float32 from a box-sized mask (bool, 0/1, 0/255 or float): blurred with
    a Gaussian of radius `feather` x the box's smaller side, then multiplied by a linear ramp over
    the same radius from the box's edges, so alpha is 0 on its outermost pixels."""
    m = np.asarray(mask)
    m = m.astype(np.float32) / (255.0 if m.dtype == np.uint8 and m.max() > 1 else 1.0)
    height, width = m.shape[:2]
    radius = max(feather * min(height, width), 1.0)
    soft = cv2.GaussianBlur(m, (0, 0), radius / 2, borderType=cv2.BORDER_CONSTANT)
    edge = np.clip(edge_distance(height, width) / radius, 0.0, 1.0)
    return np.clip(soft * edge, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# shared plumbing: where the blend happens (grey, per channel, or luminance) and writing back


def _box(box: Sequence[float], shape: Sequence[int]) -> tuple[int, int, int, int]:
    x, y, w, h = (int(round(v)) for v in box)
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
        raise ValueError(f"box {(x, y, w, h)} must lie inside the {shape[1]} x {shape[0]} image")
    return x, y, w, h


def _box_mask(mask: np.ndarray, shape: Sequence[int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A mask given at the box's size, or at the whole image's (then its box region)."""
    x, y, w, h = box
    mask = np.asarray(mask)
    if mask.shape[:2] == tuple(shape[:2]) and (h, w) != tuple(shape[:2]):
        mask = mask[y : y + h, x : x + w]
    if mask.shape[:2] != (h, w):
        raise ValueError(f"mask of shape {mask.shape} fits neither the box ({h} x {w}) nor the image")
    return mask


def _scale(image: np.ndarray) -> float:
    if image.dtype == np.uint8:
        return 255.0
    if np.issubdtype(image.dtype, np.floating):
        return 1.0
    raise TypeError(f"expected uint8 or float (0..1) pixels, got {image.dtype}")


def _fit_patch(patch: np.ndarray, width: int, height: int, scale: float) -> np.ndarray:
    """The patch as float in the image's value scale, resized to the box."""
    patch = np.asarray(patch)
    patch_scale = _scale(patch)
    if patch.ndim == 3 and patch.shape[2] == 1:
        patch = patch[:, :, 0]
    patch = patch.astype(np.float32) * np.float32(scale / patch_scale)
    if patch.shape[:2] != (height, width):
        shrink = patch.shape[0] > height or patch.shape[1] > width
        patch = cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return patch


class _Work:
    """The box region as the planes the blend works on, and the way back to pixels.

    planes: (h, w, k) float64, k = 1 (grey, or the luminance of a colour image) or 3 (colour)."""

    def __init__(self, image: np.ndarray, box: tuple[int, int, int, int], patch: np.ndarray):
        self.image, self.box, self.scale = image, box, _scale(image)
        x, y, w, h = box
        region = image[y : y + h, x : x + w].astype(np.float64)
        if region.ndim == 2:
            region = region[:, :, None]
        if region.shape[2] not in (1, 3):
            raise ValueError(f"expected a grey or RGB image, got {region.shape[2]} channels")
        self.region = region
        self.luminance_only = region.shape[2] == 3 and patch.ndim == 2
        if region.shape[2] == 1 and patch.ndim == 3:
            patch = patch[:, :, :3] @ LUMA  # a colour patch in a grey image: its grey
        if self.luminance_only:
            self.planes = (region @ LUMA)[:, :, None]
        else:
            self.planes = region
        self.patch = (patch[:, :, None] if patch.ndim == 2 else patch[:, :, :3]).astype(np.float64)

    def write(self, planes: np.ndarray) -> np.ndarray:
        """A copy of the image with the blended planes in the box."""
        if self.luminance_only:
            new = self.region + (planes - self.planes)  # same change of Y on R, G and B
        else:
            new = planes
        if self.image.dtype == np.uint8:
            new = np.clip(np.rint(new), 0, 255)
        else:
            new = np.clip(new, 0.0, 1.0)
        out = self.image.copy()
        x, y, w, h = self.box
        out[y : y + h, x : x + w] = new.reshape(out[y : y + h, x : x + w].shape).astype(out.dtype)
        return out


def match_brightness(patch: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The patch shifted so its (weighted) mean per plane equals the reference's.
    patch, reference: (h, w, k) float; weights: (h, w) or None (plain means)."""
    if weights is None:
        weights = np.ones(patch.shape[:2])
    wsum = float(weights.sum())
    if wsum <= 0:
        return patch
    w = weights[:, :, None]
    shift = (reference * w).sum(axis=(0, 1)) / wsum - (patch * w).sum(axis=(0, 1)) / wsum
    return patch + shift


def _brightness_weights(match: str | None, alpha: np.ndarray) -> np.ndarray | None:
    if match == "inside":
        return np.ones_like(alpha, dtype=np.float64)
    if match == "border":  # where the original dominates: the seam
        return 1.0 - alpha.astype(np.float64)
    if match == "patch":  # where the patch dominates
        return alpha.astype(np.float64)
    raise ValueError(f"match must be 'inside', 'border', 'patch' or None, got {match!r}")


def _alpha_blend(image: np.ndarray, patch: np.ndarray, box: Sequence[float], alpha_for: Callable[[int, int], np.ndarray], match: str | None) -> np.ndarray:
    image = np.asarray(image)
    box = _box(box, image.shape)
    _, _, w, h = box
    work = _Work(image, box, _fit_patch(patch, w, h, _scale(image)))
    alpha = np.asarray(alpha_for(h, w), np.float64)
    source = work.patch
    if match is not None:
        source = match_brightness(source, work.planes, _brightness_weights(match, alpha))
    blended = work.planes + alpha[:, :, None] * (source - work.planes)
    return work.write(blended)


# --------------------------------------------------------------------------------------------
# the three blends


def blend_ramp(image: np.ndarray, patch: np.ndarray, box: Sequence[float], *, ramp: float = 1.0, match: str | None = "inside") -> np.ndarray:
    """The paper's blend: match the patch's mean brightness to the original crop's (`match`:
    "inside" = the whole crop, "border" = weighted towards its edges, None = off), then mix it in
    with `ramp_weights(ramp)`, 0 on the crop's outermost pixels."""
    return _alpha_blend(image, patch, box, lambda h, w: ramp_weights(h, w, ramp), match)


def blend_feathered(
    image: np.ndarray,
    patch: np.ndarray,
    box: Sequence[float],
    mask: np.ndarray,
    *,
    feather: float = 0.25,
    match: str | None = "patch",
) -> np.ndarray:
    """Alpha blending through `feather_weights(mask)`. mask: the box's size, or the whole image's
    (then its box region is used). `match` as in `blend_ramp`; by default over the mask
    ("patch"), the region the patch replaces."""
    image = np.asarray(image)
    box = _box(box, image.shape)
    mask = _box_mask(mask, image.shape, box)
    return _alpha_blend(image, patch, box, lambda h, w: feather_weights(mask, feather), match)


def blend_alpha(image: np.ndarray, patch: np.ndarray, box: Sequence[float], alpha: np.ndarray) -> np.ndarray:
    """Mix the patch in through exact weights `alpha` (the box's size, 0..1), no brightness
    matching: where alpha is 0 the image keeps its pixels bit for bit. For patches whose own
    mask already says where they may differ (in-context synthesis)."""
    return _alpha_blend(image, patch, box, lambda h, w: np.asarray(alpha, np.float64).reshape(h, w), None)


def blend_seamless(image: np.ndarray, patch: np.ndarray, box: Sequence[float], mask: np.ndarray | None = None, *, mixed: bool = False) -> np.ndarray:
    """Poisson blending with `cv2.seamlessClone` (NORMAL_CLONE; MIXED_CLONE with `mixed`).

    mask: the region to clone (box- or image-sized; default the whole box). OpenCV ignores the
    mask's outermost pixels, so the crop's edges keep the original's values, and takes the
    patch's gradients only from 3 px inside the mask (nearer its edge the image's own). Works in
    8 bits (a float image is quantised inside the box)."""
    image = np.asarray(image)
    box = _box(box, image.shape)
    x, y, w, h = box
    scale = _scale(image)
    work = _Work(image, box, _fit_patch(patch, w, h, scale))
    mask = np.ones((h, w), np.uint8) if mask is None else _box_mask(mask, image.shape, box)
    mask8 = np.where(mask > 0, 255, 0).astype(np.uint8)
    mask8[[0, -1], :] = 0  # OpenCV would clear the outer ring itself; do it here so the
    mask8[:, [0, -1]] = 0  # bounding box used for `center` below is the one it uses
    if not mask8.any() or h < 3 or w < 3:
        return image.copy()
    bx, by, bw, bh = cv2.boundingRect(mask8)
    # seamlessClone places the mask's bounding box centred on `center` (integer halves), here
    # in the box region's coordinates: exactly where the mask is
    center = (bx + bw // 2, by + bh // 2)
    # Clone within the box region alone: its outer ring (outside the mask) is the Poisson
    # boundary, so nothing outside the box is read or written. seamlessClone wants 3 channels:
    # one plane (grey, or luminance) goes in three times.
    to8 = 255.0 / scale
    k = work.planes.shape[2]
    dst = np.clip(np.rint(work.planes * to8), 0, 255).astype(np.uint8)
    src = np.clip(np.rint(work.patch * to8), 0, 255).astype(np.uint8)
    if k == 1:
        dst, src = np.repeat(dst, 3, axis=2), np.repeat(src, 3, axis=2)
    cloned = cv2.seamlessClone(src, dst, mask8, center, cv2.MIXED_CLONE if mixed else cv2.NORMAL_CLONE)[:, :, :k]
    # unchanged 8-bit values mean unchanged pixels: keep them exactly (no quantisation)
    planes = np.where(cloned == dst[:, :, :k], work.planes, cloned / to8)
    return work.write(planes)


def replace(image: np.ndarray, patch: np.ndarray, box: Sequence[float] | None = None) -> np.ndarray:
    """The patch put in the box (default: the whole image) with no blending. A grey patch in a
    colour image replaces the luminance only, so a patch equal to the region's own grey gives
    back the image bit for bit."""
    image = np.asarray(image)
    box = _box(box if box is not None else (0, 0, image.shape[1], image.shape[0]), image.shape)
    work = _Work(image, box, _fit_patch(patch, box[2], box[3], _scale(image)))
    return work.write(work.patch)


def paste(image: np.ndarray, patch: np.ndarray, box: Sequence[float], mode: str = "ramp", mask: np.ndarray | None = None, **options) -> np.ndarray:
    """One of the blends by name: "ramp" (`blend_ramp`), "feather" (`blend_feathered`, needs
    `mask`), "seamless" (`blend_seamless`)."""
    if mode == "ramp":
        return blend_ramp(image, patch, box, **options)
    if mode == "feather":
        if mask is None:
            raise ValueError("mode='feather' needs a mask")
        return blend_feathered(image, patch, box, mask, **options)
    if mode == "seamless":
        return blend_seamless(image, patch, box, mask, **options)
    raise ValueError(f"unknown blend mode {mode!r}; known: {', '.join(MODES)}")


# --------------------------------------------------------------------------------------------
# torch, batched


def blend_batch(images, patches, boxes, alpha=None, *, ramp: float = 1.0, match: str | None = "inside"):
    """Alpha-blend N patches into N images at once (torch, any device).

    images:  (N, C, H, W) uint8 (0..255) or float (0..1); C = 1 or 3.
    patches: (N, P, h, w), P = 1 or 3, the same scale as the images; all boxes are h x w (the
             fixed part size) and lie inside their images. A grey patch in a colour image
             replaces the luminance only, as in the numpy blends.
    boxes:   (N, 4) integer (x, y, w, h).
    alpha:   (h, w) or (N, h, w) weights; default `ramp_weights(h, w, ramp)` (the paper's).
    match:   brightness matching as in `blend_ramp`.
    Returns a new (N, C, H, W) tensor of the images' dtype; pixels outside the boxes are unchanged.
    """
    import torch

    n, c, height, width = images.shape
    p, h, w = patches.shape[1:]
    boxes = torch.as_tensor(boxes).to("cpu", torch.int64).reshape(-1, 4)
    if len(boxes) != n or len(patches) != n:
        raise ValueError(f"{n} images, {len(patches)} patches and {len(boxes)} boxes")
    if bool(((boxes[:, 2] != w) | (boxes[:, 3] != h)).any()):
        raise ValueError(f"every box must be {w} x {h}, the patches' size")
    if bool(((boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 0] + w > width) | (boxes[:, 1] + h > height)).any()):
        raise ValueError("every box must lie inside its image")
    is_uint8 = images.dtype == torch.uint8
    work_dtype = torch.float32 if images.dtype in (torch.uint8, torch.float16, torch.bfloat16) else images.dtype
    if alpha is None:
        alpha = torch.from_numpy(ramp_weights(h, w, ramp))
    alpha = torch.as_tensor(alpha, dtype=work_dtype, device=images.device)
    alpha = alpha.expand(n, h, w).unsqueeze(1)  # (N, 1, h, w)

    regions = torch.stack([images[i, :, y : y + h, x : x + w] for i, (x, y, _, _) in enumerate(boxes.tolist())]).to(work_dtype)
    source = patches.to(device=images.device, dtype=work_dtype)
    luminance_only = c == 3 and p == 1
    if c == 1 and p == 3:
        source = (source * torch.as_tensor(LUMA, dtype=work_dtype, device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    planes = regions
    if luminance_only:
        planes = (regions * torch.as_tensor(LUMA, dtype=work_dtype, device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if match is not None:
        if match not in ("inside", "border", "patch"):
            raise ValueError(f"match must be 'inside', 'border', 'patch' or None, got {match!r}")
        weights = {"inside": torch.ones_like(alpha), "border": 1 - alpha, "patch": alpha}[match]
        wsum = weights.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        shift = (planes * weights).sum(dim=(2, 3), keepdim=True) / wsum - (source * weights).sum(dim=(2, 3), keepdim=True) / wsum
        source = source + shift
    blended = planes + alpha * (source - planes)
    new = regions + (blended - planes) if luminance_only else blended
    new = new.round().clamp(0, 255) if is_uint8 else new.clamp(0, 1)
    out = images.clone()
    for i, (x, y, _, _) in enumerate(boxes.tolist()):
        out[i, :, y : y + h, x : x + w] = new[i].to(images.dtype)
    return out
