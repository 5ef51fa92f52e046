"""Albumentations transform: `ExpressionTransfer`, for albumentations 2.0.x (the MIT line).

    import albumentations as A
    from fxaug.transforms import ExpressionTransfer
    aug = A.Compose([A.HorizontalFlip(), ExpressionTransfer("happy", p=0.5)], seed=137)
    out = aug(image=image, mask=mask, bboxes=bboxes)   # masks, boxes, keypoints pass through

As albumentations' own transforms do, the class only samples parameters (the target emotion
and strength, from albumentations' seeded generators) and dispatches; the work is done by
`fxaug.pipeline.ExpressionPipeline`. The generator loads lazily on first use, is never part of
the serialised transform (`A.save` / `A.load` store its name or path), and is dropped when the
transform is pickled to a DataLoader worker, which loads its own.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np
from albumentations.core.transforms_interface import ImageOnlyTransform

from . import emotions as E


class ExpressionTransfer(ImageOnlyTransform):
    """Give the face in the image a target expression.

    target:   an emotion, or a list to sample one from per call.
    method:   "image", "face", "parts" or "regions"; None = the model's own.
    model:    a shipped model's name or a checkpoint folder (a loaded model also works, but is
              serialised by its checkpoint path); None = a shipped model that can.
    strength: a float, or a (low, high) range sampled per call.
    source:   the images' own emotion when known; checked against what the model translates.
    device:   "auto" (GPU when there is one), "cpu", "cuda", ...
    Images: albumentations' dtype contract, uint8 or float32 in 0..1 in, the same dtype and
    layout out: grey H x W or H x W x 1, RGB, or RGBA (the RGB is transferred, the alpha kept).
    Other dtypes, channel counts or empty images are refused with a ValueError saying so.
    An image without a face is returned unchanged, with a warning; with several faces the
    largest is edited, and a warning says which.
    """

    def __init__(
        self,
        target: str | Sequence[str] = "happy",
        method: str | None = None,
        model: Any = None,
        strength: float | tuple[float, float] = 1.0,
        source: str | None = None,
        device: str = "auto",
        p: float = 0.5,
    ):
        super().__init__(p=p)
        targets = [target] if isinstance(target, str) else list(target)
        if not targets:
            raise ValueError("ExpressionTransfer needs at least one target emotion")
        self.target = target if isinstance(target, str) else [E.canonical(t) for t in targets]
        self._target_names = [E.canonical(t) for t in targets]
        self.method = method
        self._loaded = None
        if model is not None and not isinstance(model, (str, bytes)) and hasattr(model, "state_dict"):
            self._loaded = model
            model = getattr(model, "checkpoint_path", None)
        # Serialised (albumentations' to_dict, worker pickles) so that it is found again from any
        # folder: a checkpoint folder by its absolute path, a shipped model by its name.
        if isinstance(model, (str, bytes, os.PathLike)):
            from .models import model_reference

            model = model_reference(os.fsdecode(model))
        self.model = None if model is None else str(model)
        if isinstance(strength, (list, tuple)):
            if len(strength) != 2 or strength[0] > strength[1]:
                raise ValueError(f"strength range must be (low, high), got {strength}")
            strength = (float(strength[0]), float(strength[1]))
        self.strength = strength
        self.source = None if source is None else E.canonical(source)
        self.device = device
        self._pipeline = None

    # -- the engine, loaded lazily ----------------------------------------------------------
    @property
    def pipeline(self):
        if self._pipeline is None:
            from .models import select_model
            from .pipeline import ExpressionPipeline

            model = self._loaded if self._loaded is not None else (self.model or select_model(self._target_names, self.method))
            self._pipeline = ExpressionPipeline(model, method=self.method, device=self.device)
            for t in self._target_names:
                self._pipeline.check_target(t)
            if self.source is not None:
                pairs = self._pipeline.model.translations()
                for t in self._target_names:
                    if not any(s in (None, self.source) and d == t for s, d in pairs):
                        raise ValueError(f"this model does not translate {self.source} -> {t}")
        return self._pipeline

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pipeline"] = None  # workers load their own generator
        return state

    # -- albumentations protocol ------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        target = self._target_names[0] if len(self._target_names) == 1 else self.py_random.choice(self._target_names)
        strength = self.strength if not isinstance(self.strength, tuple) else self.py_random.uniform(*self.strength)
        return {"target": target, "strength": float(strength)}

    def apply(self, img: np.ndarray, target: str = "happy", strength: float = 1.0, **params: Any) -> np.ndarray:
        return self._run([img], target, strength)[0]

    def apply_to_images(self, images: np.ndarray, target: str = "happy", strength: float = 1.0, **params: Any) -> np.ndarray:
        """A batch goes through the generator together (same sampled target and strength)."""
        return np.stack(self._run(list(images), target, strength))

    def _run(self, images: list[np.ndarray], target: str, strength: float) -> list[np.ndarray]:
        inputs = [_as_pipeline_input(im) for im in images]
        out = []
        for image, pixels, result in zip(images, inputs, self.pipeline.transfer(inputs, target, strength)):
            if not result.found:
                warnings.warn(f"ExpressionTransfer: no face found ({result.reason}); image returned unchanged", stacklevel=3)
                out.append(image)
                continue
            if result.note:
                warnings.warn(f"ExpressionTransfer: {result.note}", stacklevel=3)
            out.append(_like_input(result.image, pixels, image))
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("target", "method", "model", "strength", "source", "device")


ACCEPTED = ("uint8 (0..255) or float32 (0..1) pixels, shaped H x W, H x W x 1 (grey), H x W x 3 (RGB) "
            "or H x W x 4 (RGBA: RGB transferred, alpha kept), at least 2 x 2 px")


def _as_pipeline_input(image: np.ndarray) -> np.ndarray:
    """The uint8 H x W or H x W x 3 pixels the pipeline works on, from what albumentations
    passes (its dtype contract: uint8, or float32 in 0..1, converted as its own `uint8_io`
    transforms do); anything else refused, saying what is accepted."""
    image = np.asarray(image)
    channels = image.shape[2] if image.ndim == 3 else 1
    if image.dtype not in (np.uint8, np.float32) or image.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise ValueError(f"ExpressionTransfer: cannot take a {image.dtype} image of shape {image.shape}; it accepts {ACCEPTED}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"ExpressionTransfer: image of shape {image.shape} is too small; it accepts {ACCEPTED}")
    if image.dtype == np.float32:
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        if not np.isfinite(image).all() or low < 0.0 or high > 1.0:
            raise ValueError(f"ExpressionTransfer: float32 pixels must be finite and in 0..1 (albumentations' "
                             f"convention; Normalize belongs after it), got {low:g}..{high:g}")
        pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    else:
        pixels = image
    if pixels.ndim == 3 and channels == 1:
        return pixels[:, :, 0]
    if pixels.ndim == 3 and channels == 4:
        return np.ascontiguousarray(pixels[:, :, :3])
    return pixels


def _like_input(result: np.ndarray, pixels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The pipeline's uint8 output back in the input's dtype and layout: float32 in 0..1 (pixels
    the transfer left alone keep their exact input values), the grey channel axis restored, the
    alpha channel put back."""
    if image.dtype == np.float32:
        colour = image[:, :, :3] if image.ndim == 3 and image.shape[2] == 4 else image.reshape(result.shape)
        out = np.where(result == pixels, colour, result.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    else:
        out = result
    if image.ndim == 3 and image.shape[2] == 1:
        return out.reshape(image.shape)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.concatenate([out, image[:, :, 3:]], axis=2)
    return out
