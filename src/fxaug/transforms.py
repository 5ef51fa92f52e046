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
    An image without a face is returned unchanged, with a warning.
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
        squeeze = [im.ndim == 3 and im.shape[2] == 1 for im in images]
        inputs = [im[:, :, 0] if s else im for im, s in zip(images, squeeze)]
        out = []
        for result, s in zip(self.pipeline.transfer(inputs, target, strength), squeeze):
            if not result.found:
                warnings.warn(f"ExpressionTransfer: no face found ({result.reason}); image returned unchanged", stacklevel=3)
            out.append(result.image[:, :, None] if s else result.image)
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("target", "method", "model", "strength", "source", "device")
