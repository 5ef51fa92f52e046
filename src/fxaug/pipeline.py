"""The inference engine behind every entry point: face analysis -> method crops -> batched
generator -> paste back. Batches run across images (all crops of a call go through the
generator together, in device-sized chunks), on any device.

    from fxaug.pipeline import ExpressionPipeline
    pipe = ExpressionPipeline("path/to/generator")        # or a loaded model
    results = pipe.transfer(images, "happy")               # one TransferResult per image
    results[0].image, results[0].found, results[0].reason

Images are uint8 H x W (grey) or H x W x 3 (RGB); outputs keep each input's size and mode. An
image without a face comes back unchanged (bit for bit, whatever the method: the image method
too looks for a face first) with `found=False` and the reason. With several faces the largest
is edited (or the one a dataset's box names): `faces` counts them, `box` says which, `note` puts
it in words. Large photos cost memory in proportion to the face, not the photo: faces are found
on a copy at most WORK_SIDE px wide, landmarks read a window around the face, and outputs are
pasted back window by window (fxaug.methods.paste_into). Every generator
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
from .methods import Crop, crops_for, paste_into
from .models import PretrainedModel, load_model
from .models.base import resolve_dtype

log = logging.getLogger("fxaug.pipeline")
# Faces are found on a copy whose longer side is at most this: YuNet reads a padded image of at
# most 1280 px (2x that in its fallback), so a larger copy would be shrunk again anyway.
WORK_SIDE = 2048
# Landmarks of a face in a large photo are read from a window 3x the face box, shrunk to this.
LANDMARK_SIDE = 1024


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TransferResult:
    image: np.ndarray  # the output (the input itself when nothing was done)
    target: str
    found: bool  # a face was found (the image method too needs one)
    reason: str | None = None  # why nothing was done
    landmarks: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None  # the edited face's box (x, y, w, h)
    faces: int = 0  # faces found in the image (the largest, or the dataset's, was edited)

    @property
    def note(self) -> str | None:
        """A line for the user when the image held several faces (which one was edited)."""
        if self.faces <= 1 or self.box is None:
            return None
        x, y, w, h = (int(round(v)) for v in self.box)
        return f"{self.faces} faces found; edited the face at x={x} y={y} ({w}x{h} px)"


@dataclass
class _Analysis:
    """What face analysis found in one image: the face edited and how many there were."""

    points: np.ndarray | None  # (68, 2), or None (no face, or the image method)
    box: tuple[float, float, float, float] | None
    faces: int
    reason: str | None = None

    @property
    def found(self) -> bool:
        return self.box is not None


def _shrunk(image: np.ndarray, side: int) -> tuple[np.ndarray, float, float]:
    """The image with its longer side at most `side` (area-averaged), and the x, y factors."""
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return image, 1.0, 1.0
    scale = side / max(height, width)
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / width, size[1] / height


def _unscaled_box(box, sx: float, sy: float) -> tuple[float, float, float, float]:
    """A box found in a copy scaled by (sx, sy) in the original's pixels (centres at integers)."""
    x, y, w, h = (float(v) for v in box)
    return ((x + 0.5) / sx - 0.5, (y + 0.5) / sy - 0.5, w / sx, h / sy)


def _overlap(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _given_points(points) -> np.ndarray | None:
    if points is None:
        return None
    points = np.asarray(points, np.float32)
    return points if points.shape == (68, 2) and np.isfinite(points).all() else None


def _landmark_view(image: np.ndarray, box) -> tuple[np.ndarray, tuple, tuple[float, float, float, float]]:
    """(pixels, box in them, (x0, y0, sx, sy)) for the landmark nets: the image itself when it is
    small, else a window 3x the face box (the nets' crops reach ~0.8 box beyond it), shrunk to
    LANDMARK_SIDE px at most."""
    height, width = image.shape[:2]
    if max(height, width) <= WORK_SIDE:
        return image, tuple(box), (0, 0, 1.0, 1.0)
    x, y, w, h = box
    side = max(w, h)
    x0, y0 = max(int(np.floor(x - side)), 0), max(int(np.floor(y - side)), 0)
    x1, y1 = min(int(np.ceil(x + w + side)), width), min(int(np.ceil(y + h + side)), height)
    window, sx, sy = _shrunk(image[y0:y1, x0:x1], LANDMARK_SIDE)
    return window, _scaled_box((x - x0, y - y0, w, h), sx, sy), (x0, y0, sx, sy)


def _scaled_box(box, sx: float, sy: float) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, w * sx, h * sy)


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
                 blend: str = "ramp", detector=None, landmarker=None, assume_face: bool = False, torch_dtype=None):
        self.device = resolve_device(device)
        if isinstance(model, torch.nn.Module):
            stored = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
            self.model = model.to(self.device) if torch_dtype is None else model.to(
                self.device, resolve_dtype(torch_dtype, stored, self.device))
        else:
            # torch_dtype: float32 unless asked (fxaug.models.load_model); crops go in in the model's dtype
            self.model = load_model(model, device=self.device, torch_dtype=torch_dtype)
        self.model.eval()
        accepted = self.model.methods
        self.method = method or accepted[0]
        if self.method not in accepted:
            raise ValueError(f"this model works by the {' or '.join(repr(m) for m in accepted)} method, not {self.method!r}")
        self.size = self.model.config.image_size
        self.channels = self.model.config.channels
        self.batch_size = batch_size
        self.blend = blend
        # assume_face: an image in which no face is found is taken as one face filling the frame
        # (for aligned face crops); by default it is returned unchanged.
        self.assume_face = assume_face
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
    def _analyse(self, images, boxes, landmarks) -> list[_Analysis]:
        """Find each image's face (every method: an image without one is left alone), count the
        faces, and for the face-based methods read its 68 landmarks. A dataset's landmarks are
        used as given; a dataset's box picks the detected face overlapping it most."""
        from .faces import FaceDetector, FaceLandmarker

        results: list[_Analysis | None] = [None] * len(images)
        todo = []
        for i, image in enumerate(images):
            box = None if boxes is None else boxes[i]
            given = _given_points(None if landmarks is None else landmarks[i])
            if given is not None:
                x0, y0 = given.min(axis=0)
                x1, y1 = given.max(axis=0)
                face_box = tuple(float(v) for v in box) if box is not None else (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
                results[i] = _Analysis(given, face_box, 1)
                continue
            self._detector = self._detector or FaceDetector()
            small, sx, sy = _shrunk(image, WORK_SIDE)
            found = self._detector(small, all_faces=True, assume_face=self.assume_face and box is None)
            faces = [_unscaled_box(f.box, sx, sy) for f in found.faces]
            count = sum(f.source != "whole-image" for f in found.faces)
            if box is not None:
                best = max(faces, key=lambda f: _overlap(f, box), default=None)
                face_box = best if best is not None and _overlap(best, box) > 0.3 else tuple(float(v) for v in box)
                count = max(count, 1)
            elif faces:
                face_box = faces[0]
                count = max(count, 1)
            else:
                results[i] = _Analysis(None, None, 0, found.reason or "no face found")
                continue
            results[i] = _Analysis(None, face_box, count)
            if self.method != "image":
                todo.append(i)
        if todo:
            self._landmarker = self._landmarker or FaceLandmarker(device=self.device)
            views = [_landmark_view(images[i], results[i].box) for i in todo]
            points = self._landmarker.batch([v[0] for v in views], [v[1] for v in views])
            for i, p, (_, _, (x0, y0, sx, sy)) in zip(todo, points, views):
                p = np.asarray(p, np.float64)
                results[i].points = ((p + 0.5) / (sx, sy) - 0.5 + (x0, y0)).astype(np.float32)
        return results  # type: ignore[return-value]

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
        dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        return torch.from_numpy(np.stack(batch)).to(self.device, torch.float32).div_(127.5).sub_(1.0).to(dtype)

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
        found = self._analyse(images, boxes, landmarks)
        results: list[TransferResult | None] = [None] * n
        crops: list[Crop] = []
        owner: list[int] = []
        for i, image in enumerate(images):
            if not found[i].found:
                results[i] = TransferResult(image, targets[i], False, found[i].reason or "no face found")
                continue
            for crop in crops_for(self.method, image, found[i].points, self.size):
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
            pixels = y.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
            alpha = None if alpha is None else alpha[:, 0].float().cpu().numpy()
            outputs = {i: images[i].copy() for i in dict.fromkeys(owner)}  # inputs are never written
            for k, (crop, i, p) in enumerate(zip(crops, owner, pixels)):
                p = p[0] if p.shape[0] == 1 else p.transpose(1, 2, 0)
                paste_into(outputs[i], crop, p, None if alpha is None else alpha[k], blend_mode=self.blend)
            for i, out in outputs.items():
                results[i] = TransferResult(out, targets[i], True, None, found[i].points, found[i].box, found[i].faces)
                if results[i].note:
                    log.info("%s", results[i].note)
        return results  # type: ignore[return-value]

    def _reference_crop(self, image: np.ndarray) -> Crop:
        found = self._analyse([image], None, None)[0]
        if not found.found:
            raise ValueError(f"no face in the reference image ({found.reason})")
        return crops_for(self.method, image, found.points, self.size)[0]
