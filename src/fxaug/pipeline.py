"""The inference engine behind every entry point: face analysis -> method crops -> batched
generator -> paste back. Batches run across images (all crops of a call go through the
generator together, in device-sized chunks), on any device.

    from fxaug.pipeline import ExpressionPipeline
    pipe = ExpressionPipeline("path/to/generator")        # or a loaded model
    results = pipe.transfer(images, "happy")               # one TransferResult per image
    results[0].image, results[0].found, results[0].reason

Images are uint8 H x W (grey) or H x W x 3 (RGB); outputs keep each input's size and mode. An
image without a face comes back unchanged with `found=False` and the reason. Every generator
family answers the same contract (fxaug.models.ExpressionGenerator: methods, translations,
generate), so nothing here depends on which family it is. Strength is the family's own: the
in-context generator and 2CET interpolate their conditioning (0 = the face's own redraw / neutral),
StarGAN and CycleGAN scale their change in pixel space (0 = the input).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from . import emotions as E
from .faces.blend import LUMA
from .methods import Crop, crops_for, paste_back, paste_region
from .models import PretrainedModel, load_model

log = logging.getLogger("fxaug.pipeline")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TransferResult:
    image: np.ndarray  # the output (the input itself when nothing was done)
    target: str
    found: bool  # a face was found (always True for the image method)
    reason: str | None = None  # why nothing was done
    landmarks: np.ndarray | None = None


@dataclass
class _Face:
    """A record-like view of one input for fxaug.faces (image, box, landmarks)."""

    image: np.ndarray
    box: Any = None
    landmarks: Any = None


class ExpressionPipeline:
    """model: a loaded generator or a name/path for `load_model`. method: defaults to the one
    the model was trained for. blend: how parts go back ("ramp", the paper's; "feather";
    "seamless")."""

    def __init__(self, model: PretrainedModel | str, method: str | None = None, device="auto", batch_size: int = 64,
                 blend: str = "ramp", detector=None, landmarker=None):
        self.device = resolve_device(device)
        self.model = (load_model(model) if not isinstance(model, torch.nn.Module) else model).to(self.device).eval()
        accepted = self.model.methods
        self.method = method or accepted[0]
        if self.method not in accepted:
            raise ValueError(f"this model works by the {' or '.join(repr(m) for m in accepted)} method, not {self.method!r}")
        self.size = self.model.config.image_size
        self.channels = self.model.config.channels
        self.batch_size = batch_size
        self.blend = blend
        self._detector, self._landmarker = detector, landmarker

    # -- what the model can do -------------------------------------------------------------
    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for _, t in self.model.translations()))

    def check_target(self, target: str) -> str:
        name = E.canonical(target)
        if name not in self.targets:
            raise ValueError(f"this model cannot produce {name!r}; its targets: {', '.join(self.targets)}")
        return name

    # -- the engine ------------------------------------------------------------------------
    def _landmarks(self, images, boxes, landmarks):
        if self.method == "image":
            return [None] * len(images), [None] * len(images)
        from .faces import FaceDetector, FaceLandmarker
        from .faces.landmarks import landmarks_for_records

        self._detector = self._detector or FaceDetector()
        self._landmarker = self._landmarker or FaceLandmarker(device=self.device)
        records = [_Face(im, None if boxes is None else boxes[i], None if landmarks is None else landmarks[i])
                   for i, im in enumerate(images)]
        found = landmarks_for_records(records, self._detector, self._landmarker)
        return [f.points for f in found], [f.reason for f in found]

    def _to_model(self, crops: list[Crop]) -> torch.Tensor:
        batch = []
        for crop in crops:
            p = crop.pixels
            if self.channels == 1 and p.ndim == 3:
                # BT.601 luminance, rounded: the same Y that pasting back replaces, so a face the
                # generator leaves alone comes back bit for bit
                p = np.clip(np.rint(p @ LUMA), 0, 255).astype(np.uint8)
            elif self.channels == 3 and p.ndim == 2:
                p = cv2.cvtColor(p, cv2.COLOR_GRAY2RGB)
            batch.append(p[None] if p.ndim == 2 else p.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(batch)).to(self.device, torch.float32).div_(127.5).sub_(1.0)

    @torch.inference_mode()
    def _generate(self, x: torch.Tensor, targets: list[str], crops: list[Crop], strengths: torch.Tensor,
                  code: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model's outputs, and where each may differ from its input (None: anywhere)."""
        has_parts = bool(getattr(self.model.config, "parts", ()))
        outs, alphas = [], []
        for start in range(0, len(targets), self.batch_size):
            rows = slice(start, start + self.batch_size)
            chunk = crops[rows]
            points = [c.aligned_landmarks for c in chunk]
            y, alpha = self.model.generate(
                x[rows], targets[rows], strengths[rows],
                parts=[c.part for c in chunk] if has_parts else None,
                landmarks=np.stack(points) if all(p is not None for p in points) else None,
                code=code,
            )
            outs.append(y)
            alphas.append(alpha)
        alpha = None if any(a is None for a in alphas) else torch.cat(alphas)
        return torch.cat(outs), alpha

    def transfer(
        self,
        images: Sequence[np.ndarray],
        target: str | Sequence[str] | None = None,
        strength: float | Sequence[float] = 1.0,
        *,
        boxes: Sequence | None = None,
        landmarks: Sequence | None = None,
        reference: np.ndarray | Sequence[np.ndarray] | None = None,
    ) -> list[TransferResult]:
        """Give each image the target expression. target / strength: one for all or one each.
        boxes / landmarks: per image, when the dataset supplies them. reference (2CET models):
        faces whose expression to copy (their mean code), instead of a named target."""
        images = [np.asarray(im) for im in images]
        n = len(images)
        if target is None and reference is None:
            raise ValueError("give a target emotion, or reference= faces (2CET models)")
        targets = [target] * n if isinstance(target, str) or target is None else list(target)
        strengths = [float(strength)] * n if np.isscalar(strength) else [float(s) for s in strength]
        if len(targets) != n or len(strengths) != n:
            raise ValueError(f"{n} images but {len(targets)} targets and {len(strengths)} strengths")
        ref = None
        if reference is not None:
            if not hasattr(self.model, "encode"):
                raise ValueError("reference= needs a model with an expression encoder (2CET: it copies a reference face's code)")
            single = isinstance(reference, np.ndarray) and (reference.ndim == 2 or (reference.ndim == 3 and reference.shape[2] in (1, 3)))
            ref_crops = [self._reference_crop(r) for r in ([reference] if single else list(reference))]
            with torch.inference_mode():
                ref = self.model.encode(self._to_model(ref_crops)).mean(0, keepdim=True)
            targets = ["reference"] * n
        else:
            targets = [self.check_target(t) for t in targets]
        points, reasons = self._landmarks(images, boxes, landmarks)
        results: list[TransferResult | None] = [None] * n
        crops: list[Crop] = []
        owner: list[int] = []
        for i, image in enumerate(images):
            if self.method != "image" and points[i] is None:
                results[i] = TransferResult(image, targets[i], False, reasons[i] or "no face found")
                continue
            for crop in crops_for(self.method, image, points[i], self.size):
                crops.append(crop)
                owner.append(i)
        if crops:
            x = self._to_model(crops)
            y, alpha = self._generate(
                x,
                [targets[i] for i in owner],
                crops,
                torch.tensor([strengths[i] for i in owner], device=self.device),
                ref,
            )
            pixels = y.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
            alpha = None if alpha is None else alpha[:, 0].float().cpu().numpy()
            outputs = {i: images[i] for i in set(owner)}
            for k, (crop, i, p) in enumerate(zip(crops, owner, pixels)):
                p = p[0] if p.shape[0] == 1 else p.transpose(1, 2, 0)
                if alpha is not None:
                    outputs[i] = paste_region(outputs[i], crop, p, alpha[k])
                else:
                    outputs[i] = paste_back(outputs[i], crop, p, blend_mode=self.blend)
            for i, out in outputs.items():
                results[i] = TransferResult(out, targets[i], True, None, points[i])
        return results  # type: ignore[return-value]

    def _reference_crop(self, image: np.ndarray) -> Crop:
        points, reasons = self._landmarks([image], None, None)
        if self.method != "image" and points[0] is None:
            raise ValueError(f"no face in the reference image ({reasons[0]})")
        return crops_for(self.method, image, points[0], self.size)[0]
