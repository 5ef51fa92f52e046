"""The three transfer methods of Upenieks & Urtans (2022), as geometry: which square crop a
generator sees, and how its output goes back into the photo. Training (fxaug.trainers) and
inference (fxaug.pipeline) both cut crops here, so a generator always sees at run time what it
saw in training.

- image: the whole image, resized to the generator's size, and back.
- face:  the face aligned by its eye centres onto a canonical template; pixels outside the face
         outline (jaw line and brows) set to mid-grey. Back: warped by the exact inverse and
         alpha-blended through the face mask, feathered.
- parts: a square box per part (eyes, brows, nose, mouth) sized in inter-ocular distances,
         resized to the generator's size. Back: the paper's blend (brightness matched, weights
         falling linearly to zero towards the box's edges).
- regions: the face aligned as for `face`, with all its context (nothing greyed out); the
         generator redraws only the expression regions of a soft mask (fxaug.models.inpaint).
         Back: warped by the exact inverse and mixed in through the same mask warped back, so
         pixels outside it are the photo's own, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .faces import alignment, blend, regions

METHODS = ("image", "face", "parts", "regions")
PART_NAMES: tuple[str, ...] = tuple(regions.PARTS)
FACE_MARGIN = 0.05  # IOD: the face mask reaches a little past the jaw line and brows
MID_GREY = 128


@dataclass
class Crop:
    """A generator input cut from an image, with what is needed to put its output back."""

    pixels: np.ndarray  # size x size (gray) or size x size x 3, uint8
    method: str
    part: str | None = None
    box: tuple[int, int, int, int] | None = None  # parts: the part's box in the image
    matrix: np.ndarray | None = None  # face: 2x3 image -> aligned
    landmarks: np.ndarray | None = None  # face: the image's landmarks (for the mask going back)
    aligned_landmarks: np.ndarray | None = None  # regions: the landmarks in the crop's frame


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.resize to (w, h), area-averaging when shrinking, bicubic when enlarging."""
    w, h = size
    shrinking = w * h < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def image_crop(image: np.ndarray, size: int) -> Crop:
    return Crop(_resize(np.asarray(image), (size, size)), "image")


def face_crop(image: np.ndarray, landmarks: np.ndarray, size: int, margin: float = FACE_MARGIN) -> Crop:
    aligned, M = alignment.align_face(image, alignment.eye_centres(landmarks), size)
    mask = regions.face_mask((size, size), alignment.transform_points(landmarks, M), margin=margin)
    aligned = aligned.copy()
    aligned[~mask] = MID_GREY
    return Crop(aligned, "face", matrix=M, landmarks=np.asarray(landmarks, np.float64))


def region_crop(image: np.ndarray, landmarks: np.ndarray, size: int) -> Crop:
    """The aligned face with its context, and its landmarks in the aligned frame (for masks)."""
    aligned, M = alignment.align_face(image, alignment.eye_centres(landmarks), size)
    return Crop(aligned, "regions", matrix=M, landmarks=np.asarray(landmarks, np.float64),
                aligned_landmarks=alignment.transform_points(landmarks, M))


def paste_region(image: np.ndarray, crop: Crop, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A redrawn aligned face back into the photo through `mask` ((S, S) in 0..1, the regions
    the generator was allowed to change), warped back with the face. Only pixels under the
    warped mask can differ; a grey output in a colour photo changes its luminance only."""
    image = np.asarray(image)
    alpha, inside = alignment.warp_back(np.asarray(mask, np.float32), crop.matrix, image.shape)
    alpha = np.where(inside, np.clip(alpha, 0.0, 1.0), 0.0)
    if not (alpha > 0).any():
        return image.copy()
    ys, xs = np.nonzero(alpha > 0)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    back, _ = alignment.warp_back(np.asarray(generated), crop.matrix, image.shape)
    box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    return blend.blend_alpha(image, back[y0:y1, x0:x1], box, alpha[y0:y1, x0:x1])


def part_box_square(landmarks: np.ndarray, part: str, shape, margin: float = 0.0) -> tuple[int, int, int, int]:
    """The part's box made square (its longer side), same centre, shifted inside the image."""
    x, y, w, h = regions.part_box(landmarks, part, shape, margin=margin)
    side = min(max(w, h), shape[0], shape[1])
    cx, cy = x + w / 2, y + h / 2
    height, width = shape[0], shape[1]
    return regions.fit_inside(int(round(cx - side / 2)), int(round(cy - side / 2)), side, side, width, height)


def part_crops(
    image: np.ndarray, landmarks: np.ndarray, size: int, parts=PART_NAMES, margin: float = 0.0
) -> list[Crop]:
    image = np.asarray(image)
    out = []
    for part in parts:
        box = part_box_square(landmarks, part, image.shape, margin)
        x, y, w, h = box
        out.append(Crop(_resize(image[y : y + h, x : x + w], (size, size)), "parts", part=part, box=box))
    return out


def crops_for(method: str, image: np.ndarray, landmarks: np.ndarray | None, size: int, part_margin: float = 0.0) -> list[Crop]:
    """Every generator input the method cuts from one image (one, or one per part)."""
    if method == "image":
        return [image_crop(image, size)]
    if landmarks is None:
        raise ValueError(f"method {method!r} needs the face's 68 landmarks")
    if method == "face":
        return [face_crop(image, landmarks, size)]
    if method == "parts":
        return part_crops(image, landmarks, size, margin=part_margin)
    if method == "regions":
        return [region_crop(image, landmarks, size)]
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def paste_back(image: np.ndarray, crop: Crop, generated: np.ndarray, *, blend_mode: str = "ramp") -> np.ndarray:
    """Put a generator output (size x size [x C], uint8) back where `crop` was cut from; returns
    a new image. blend_mode applies to parts: "ramp" (the paper's), "feather", "seamless"."""
    image = np.asarray(image)
    generated = np.asarray(generated)
    if crop.method == "image":
        return _match_channels(_resize(generated, (image.shape[1], image.shape[0])), image)
    if crop.method == "face":
        back, inside = alignment.warp_back(generated, crop.matrix, image.shape)
        mask = regions.face_mask(image.shape, crop.landmarks, margin=FACE_MARGIN) & inside
        if not mask.any():
            return image.copy()
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
        return blend.blend_feathered(image, back[y0:y1, x0:x1], box, mask)
    if crop.method == "parts":
        if blend_mode == "ramp":
            return blend.blend_ramp(image, generated, crop.box)
        x, y, w, h = crop.box
        mask = np.ones((h, w), bool)
        return blend.paste(image, generated, crop.box, mode=blend_mode, mask=mask)
    raise ValueError(f"unknown method {crop.method!r}")


def _match_channels(pixels: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A grey generator output for a colour image replaces only its luminance."""
    if like.ndim == 3 and (pixels.ndim == 2 or pixels.shape[2] == 1):
        return blend.replace(like, pixels.reshape(like.shape[:2]))
    if like.ndim == 2 and pixels.ndim == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return pixels


# --------------------------------------------------------------------------------------------
# pasting into a working copy, one window at a time (what the pipeline uses)

STRIP_ROWS = 256  # rows blended at a time where the blend is per pixel: float copies stay small


def _shifted(matrix: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The image -> aligned matrix for a window whose pixel (0, 0) is the image's (x0, y0)."""
    m = np.asarray(matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ (x0, y0)
    return m


def crop_window(crop: Crop, shape, pad: int = 2) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of an image of `shape` that pasting `crop` back can change."""
    height, width = int(shape[0]), int(shape[1])
    if crop.method == "parts" and crop.box is not None:
        x, y, w, h = crop.box
        return x, y, x + w, y + h
    if crop.matrix is None:
        return 0, 0, width, height
    s = crop.pixels.shape[0]
    corners = alignment.transform_points(np.array([[-1, -1], [s, -1], [-1, s], [s, s]], np.float64),
                                         alignment.invert_affine(crop.matrix))
    x0 = max(int(np.floor(corners[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + pad + 1, width)
    y1 = min(int(np.ceil(corners[:, 1].max())) + pad + 1, height)
    return x0, y0, max(x1, x0), max(y1, y0)


def paste_into(out: np.ndarray, crop: Crop, generated: np.ndarray, mask: np.ndarray | None = None,
               *, blend_mode: str = "ramp") -> None:
    """`paste_back` (or, with the generator's `mask`, `paste_region`) written into `out` in
    place, touching only the crop's window: memory follows the face, not the photo. Per-pixel
    blends (regions, and the image method's luminance replacement) go through in strips of
    STRIP_ROWS rows, so their float copies stay a few MB however large the image."""
    generated = np.asarray(generated)
    height, width = out.shape[:2]
    if crop.method == "image":
        full = _resize(generated, (width, height))
        if out.ndim == 3 and (full.ndim == 2 or full.shape[2] == 1):
            full = full.reshape(height, width)
            for r0 in range(0, height, STRIP_ROWS):
                r1 = min(r0 + STRIP_ROWS, height)
                out[r0:r1] = blend.replace(out[r0:r1], full[r0:r1])
        elif out.ndim == 2 and full.ndim == 3:
            out[...] = cv2.cvtColor(full, cv2.COLOR_RGB2GRAY)
        else:
            out[...] = full.reshape(out.shape)
        return
    x0, y0, x1, y1 = crop_window(crop, out.shape)
    if x1 <= x0 or y1 <= y0:
        return
    if mask is not None:  # regions: exact weights, per pixel
        mask = np.asarray(mask, np.float32)
        for r0 in range(y0, y1, STRIP_ROWS):
            r1 = min(r0 + STRIP_ROWS, y1)
            m = _shifted(crop.matrix, x0, r0)
            alpha, inside = alignment.warp_back(mask, m, (r1 - r0, x1 - x0))
            alpha = np.where(inside, np.clip(alpha, 0.0, 1.0), 0.0)
            if not (alpha > 0).any():
                continue
            back, _ = alignment.warp_back(generated, m, (r1 - r0, x1 - x0))
            view = out[r0:r1, x0:x1]
            view[...] = blend.blend_alpha(view, back, (0, 0, x1 - x0, r1 - r0), alpha)
        return
    if crop.method == "parts" and blend_mode == "seamless":
        # Poisson blending reads the image around the box: the whole image, as before
        out[...] = paste_back(out, crop, generated, blend_mode=blend_mode)
        return
    view = out[y0:y1, x0:x1]
    if crop.method == "parts":
        local = Crop(crop.pixels, "parts", part=crop.part, box=(0, 0, x1 - x0, y1 - y0))
    else:
        landmarks = None if crop.landmarks is None else crop.landmarks - (x0, y0)
        local = Crop(crop.pixels, crop.method, part=crop.part, matrix=_shifted(crop.matrix, x0, y0),
                     landmarks=landmarks, aligned_landmarks=crop.aligned_landmarks)
    view[...] = paste_back(view, local, generated, blend_mode=blend_mode)
