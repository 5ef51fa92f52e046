"""Image batches for the metric networks: what layouts they accept, and the TF1 resize they were
trained with.

TensorFlow 1's `tf.image.resize_bilinear` (and TF.js `tf.image.resizeBilinear`, which face-api.js
uses) defaults to align_corners=False, half_pixel_centers=False: output pixel i samples the input
at i * (in / out), corner-aligned, with no half-pixel shift. PyTorch's `F.interpolate` has no such
mode (its align_corners=False shifts by half a pixel), so it is written out here. Both the FID
Inception network and the face-api.js descriptor net expect inputs resized this way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def tf1_resize_bilinear(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size): TF1 / TF.js legacy bilinear resize."""
    out_h, out_w = (size, size) if isinstance(size, int) else size
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return x

    def axis(n_in: int, n_out: int):
        # source = dst * (in / out), in double precision as TF.js computes it
        # (on the CPU: not every accelerator has float64)
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        frac = (src - lo.double()).to(x.dtype)
        return lo.to(x.device), hi.to(x.device), frac.to(x.device)

    y0, y1, fy = axis(in_h, out_h)
    x0, x1, fx = axis(in_w, out_w)
    top, bottom = x[..., y0, :], x[..., y1, :]
    rows = top + (bottom - top) * fy.view(-1, 1)
    left, right = rows[..., x0], rows[..., x1]
    return left + (right - left) * fx


def as_uint8_batch(images) -> list[np.ndarray]:
    """Images as a list of H x W x 3 uint8 arrays (sizes may differ).

    Accepts: a uint8 array (N, H, W) gray, (N, H, W, 1|3) or (N, 1|3, H, W); a uint8 tensor of the
    same layouts; or a sequence of H x W / H x W x 1|3 uint8 arrays. Gray is repeated to 3 channels.
    Floats are refused: whether they mean 0..1, -1..1 or 0..255 cannot be told apart safely.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"expected a batch (N, H, W[, C]) or (N, C, H, W); got shape {images.shape}")
        if images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
            images = images.transpose(0, 2, 3, 1)  # NCHW -> NHWC
        batch: Sequence[np.ndarray] = list(images)
    else:
        batch = [np.asarray(a) for a in images]
    out = []
    for i, a in enumerate(batch):
        if a.dtype != np.uint8:
            raise TypeError(f"image {i}: expected uint8 pixels, got {a.dtype} (convert with np.uint8 first)")
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3 or a.shape[2] not in (1, 3):
            raise ValueError(f"image {i}: expected H x W, H x W x 1 or H x W x 3; got shape {a.shape}")
        out.append(np.ascontiguousarray(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a))
    return out
