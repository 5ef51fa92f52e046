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
