"""`ExpressionBatchTransfer`: expression transfer over a collated batch, on the batch's device.

    from fxaug.batch import ExpressionBatchTransfer
    synth = ExpressionBatchTransfer(classes, p=0.3, class_counts=train_counts, seed=0)
    for images, labels in loader:                    # B x C x H x W, uint8 or float in 0..1
        images, labels = synth(images.cuda(), labels.cuda())
        synth.last_params["target"]                  # what each sample became (None: left alone)

An `nn.Module`, as torchvision.transforms.v2.MixUp and kornia's augmentations are, for the
main process after collate: the generator runs on the device of the images (the GPU stays out
of DataLoader workers) and faces are found on the CPU. Each sample is chosen with probability
`p` and given a target emotion by one of three policies:

- fixed: `target="happy"`, every chosen sample (but happy ones) becomes happy;
- uniform: `target=None` (every class the model can produce) or a list, drawn evenly among the
  targets other than the sample's own class;
- fill rare classes: `class_counts={class: count}` (the training set's) and a
  `sampling_strategy` in imbalanced-learn's vocabulary (`fxaug.sampling.samples_to_add`):
  targets drawn in proportion to how many samples each class lacks, so over an epoch the
  synthesized faces go where the data is short. Classes the generator cannot make are left out,
  with a warning.

The labels of the samples actually synthesized become their targets; a sample without a face
is left unchanged with its label (`last_params["face_found"]`). Draws come from the module's
own seeded generator (`seed=`), and `forward(images, labels, params=last_params)` replays a
batch exactly.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch

from . import emotions as E
from .sampling import SamplingStrategy, samples_to_add

log = logging.getLogger("fxaug.batch")


class ExpressionBatchTransfer(torch.nn.Module):
    """classes: the class names of the int labels, in label order (any emotion aliases).
    p: the probability that a sample is synthesized. target: one emotion (fixed), a list, or
    None (uniform over what the model can make among `classes`). class_counts (+ sampling_strategy):
    fill rare classes instead. strength: a float or a (low, high) range drawn per sample.
    model / method: as for ExpressionTransfer (None: the shipped model that can make the most of
    the targets). same_emotion: also draw a sample's own class. seed: the draws' generator.
    torch_dtype: the generator's dtype (fxaug.models.load_model): float32 by default; "bfloat16",
    "float16", or "auto" (the checkpoint's stored dtype on a GPU, float32 on the CPU)."""

    def __init__(
        self,
        classes: Sequence[str],
        p: float = 0.5,
        target: str | Sequence[str] | None = None,
        class_counts: Mapping[Hashable, int] | None = None,
        sampling_strategy: SamplingStrategy = "auto",
        strength: float | tuple[float, float] = 1.0,
        model: Any = None,
        method: str | None = None,
        same_emotion: bool = False,
        seed: int | None = None,
        torch_dtype: str | torch.dtype | None = None,
    ):
        super().__init__()
        self.classes = [E.canonical(c) for c in classes]
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ValueError(f"classes must name each class once, in label order; got {list(classes)}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p is a probability in [0, 1], got {p}")
        self.p = float(p)
        if isinstance(strength, (list, tuple)):
            if len(strength) != 2 or strength[0] > strength[1]:
                raise ValueError(f"strength range must be (low, high), got {strength}")
            strength = (float(strength[0]), float(strength[1]))
        self.strength = strength
        self.same_emotion = bool(same_emotion)
        self.method = method
        if target is not None and class_counts is not None:
            raise ValueError("give a target (fixed or uniform) or class_counts (fill rare classes), not both")
        asked = None if target is None else [E.canonical(t) for t in ([target] if isinstance(target, str) else target)]
        for name in asked or []:
            if name not in self.classes:
                raise ValueError(f"target {name!r} is not among classes ({', '.join(self.classes)}), so no label could name it")

        from .models import load_model, select_model

        if model is None:
            model = select_model(asked or self.classes, method)
        # Kept out of the module's submodules: its weights are no part of this module's
        # parameters or state_dict (an optimizer over a model holding this must not train it).
        self.__dict__["generator_model"] = load_model(model) if not isinstance(model, torch.nn.Module) else model
        # float32 by default; "bfloat16" / "float16", or "auto": the checkpoint's stored dtype once the
        # batches are on a GPU (float32 on the CPU), applied where the engine is made
        from .models.base import WEIGHTS_NAME, resolve_dtype, stored_dtype

        path = getattr(self.generator_model, "checkpoint_path", None)
        stored = stored_dtype(Path(path) / WEIGHTS_NAME) if path and (Path(path) / WEIGHTS_NAME).is_file() else \
            next((q.dtype for q in self.generator_model.parameters() if q.is_floating_point()), torch.float32)
        self._dtypes = {kind: resolve_dtype(torch_dtype, stored, kind) for kind in ("cpu", "cuda")}
        if torch_dtype is None:
            self._dtypes = {kind: None for kind in self._dtypes}  # as given: a module keeps its dtype
        made = {t for _, t in self.generator_model.translations()}
        if asked is not None:
            missing = [t for t in asked if t not in made]
            if missing:
                raise ValueError(f"this model cannot produce {', '.join(map(repr, missing))}; its targets: {', '.join(sorted(made))}")
            self.targets = asked
            self.weights = [1.0] * len(asked)
            self.policy = "fixed" if isinstance(target, str) else "uniform"
        elif class_counts is None:
            self.targets = [c for c in self.classes if c in made]
            if not self.targets:
                raise ValueError(f"the model produces none of the classes ({', '.join(self.classes)})")
            self.weights = [1.0] * len(self.targets)
            self.policy = "uniform"
        else:
            self.policy = "fill"
            self.to_add = samples_to_add(self._counts_by_name(class_counts), sampling_strategy)
            unmade = [c for c, n in self.to_add.items() if n > 0 and c not in made]
            if unmade:
                warnings.warn(f"ExpressionBatchTransfer: the model cannot produce {', '.join(unmade)}; those classes are "
                              "not filled", stacklevel=2)
            self.targets = [c for c, n in self.to_add.items() if n > 0 and c in made]
            self.weights = [float(self.to_add[c]) for c in self.targets]
            if not self.targets:
                warnings.warn(f"ExpressionBatchTransfer: sampling_strategy={sampling_strategy!r} adds nothing the model can "
                              f"make to these counts; no sample will be synthesized", stacklevel=2)
        self._rng = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
        self._pipeline = None
        self.last_params: dict[str, list] | None = None

    def _counts_by_name(self, counts: Mapping[Hashable, int]) -> dict[str, int]:
        """Class counts keyed by class name, in class order: keys may be names or int labels."""
        named: dict[str, int] = {c: 0 for c in self.classes}
        for key, n in counts.items():
            name = self._name_of(key)
            named[name] = int(n) + named[name]
        return named

    def _name_of(self, label: Any) -> str:
        if isinstance(label, str):
            name = E.canonical(label)
            if name not in self.classes:
                raise ValueError(f"class {label!r} is not among classes ({', '.join(self.classes)})")
            return name
        index = int(label)
        if not 0 <= index < len(self.classes):
            raise ValueError(f"label {index} is out of range for {len(self.classes)} classes ({', '.join(self.classes)})")
        return self.classes[index]

    def pipeline(self, device: torch.device):
        """The engine, on the device the batch is on (moved when the batches move)."""
        if self._pipeline is None or self._pipeline.device != torch.device(device):
            from .pipeline import ExpressionPipeline

            kind = "cpu" if torch.device(device).type == "cpu" else "cuda"
            self._pipeline = ExpressionPipeline(self.generator_model, method=self.method, device=device,
                                                torch_dtype=self._dtypes[kind])
        return self._pipeline

    # -- the draws -------------------------------------------------------------------------
    def sample_params(self, labels: Sequence[str]) -> dict[str, list]:
        """Per sample: whether it is synthesized, its target (None: left alone), its strength."""
        n = len(labels)
        chosen = (torch.rand(n, generator=self._rng) < self.p).tolist() if n else []
        targets: list[str | None] = []
        for own, pick in zip(labels, chosen):
            options = [(t, w) for t, w in zip(self.targets, self.weights) if self.same_emotion or t != own]
            if not pick or not options:
                targets.append(None)
                continue
            weights = torch.tensor([w for _, w in options], dtype=torch.float64)
            targets.append(options[int(torch.multinomial(weights, 1, generator=self._rng))][0])
        if isinstance(self.strength, tuple):
            low, high = self.strength
            strengths = (low + (high - low) * torch.rand(n, generator=self._rng, dtype=torch.float64)).tolist()
        else:
            strengths = [float(self.strength)] * n
        return {"target": targets, "source": list(labels), "strength": strengths}

    # -- the module ------------------------------------------------------------------------
    def forward(self, images: torch.Tensor, labels: torch.Tensor, params: dict[str, list] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """New (images, labels): the chosen samples with a face given their target expression
        and label; the rest as they were. params: a batch's `last_params`, to replay it."""
        _check_batch(images, labels)
        names = [self._name_of(v) for v in labels.tolist()]
        if params is None:
            params = self.sample_params(names)
        elif len(params.get("target", ())) != len(names) or len(params.get("strength", ())) != len(names):
            raise ValueError(f"params are for {len(params.get('target', ()))} samples, the batch has {len(names)}")
        todo = [i for i, t in enumerate(params["target"]) if t is not None]
        found: list[bool | None] = [None] * len(names)
        images_out, labels_out = images.clone(), labels.clone()
        if todo:
            pixels = _to_uint8_hwc(images[todo])
            results = self.pipeline(images.device).transfer(
                list(pixels), [params["target"][i] for i in todo], [params["strength"][i] for i in todo])
            done = []
            for k, (i, result) in enumerate(zip(todo, results)):
                found[i] = bool(result.found)
                if result.found:
                    done.append(k)
                    labels_out[i] = self.classes.index(params["target"][i])
            if done:
                new = torch.from_numpy(np.stack([_chw(results[k].image) for k in done])).to(images.device)
                rows = [todo[k] for k in done]
                images_out[rows] = _like_images(new, images[rows])
            missed = len(todo) - len(done)
            if missed:
                warnings.warn(f"ExpressionBatchTransfer: no face found in {missed} of {len(todo)} images chosen; they keep "
                              "their pixels and labels", stacklevel=2)
        self.last_params = {**params, "face_found": found}
        return images_out, labels_out

    def extra_repr(self) -> str:
        return f"policy={self.policy}, p={self.p}, targets={self.targets}, strength={self.strength}"


def _check_batch(images: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"ExpressionBatchTransfer takes images as a B x C x H x W tensor with C = 1 or 3, got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"ExpressionBatchTransfer takes uint8 images or floats in 0..1, got {images.dtype}")
    if images.is_floating_point() and images.numel():
        low, high = float(images.min()), float(images.max())
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise ValueError(f"ExpressionBatchTransfer: float images must be in 0..1 (Normalize after it), got {low:g}..{high:g}")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point() or len(labels) != len(images):
        got = (tuple(labels.shape), labels.dtype) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"ExpressionBatchTransfer takes one int label per image (a tensor of {len(images)}), got {got}; "
                         "for one-hot or mixed labels apply it before MixUp / CutMix")


def _to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """B x H x W (grey) or B x H x W x 3 uint8 pixels on the CPU, rounded as albumentations does."""
    if images.is_floating_point():
        images = images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    pixels = images.cpu().numpy()
    return pixels[:, 0] if pixels.shape[1] == 1 else pixels.transpose(0, 2, 3, 1)


def _chw(image: np.ndarray) -> np.ndarray:
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


def _like_images(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """uint8 outputs in the inputs' dtype: floats in 0..1, pixels the transfer left alone keeping
    their exact input values."""
    if not old.is_floating_point():
        return new
    before = old.mul(255.0).round().clamp(0, 255).to(torch.uint8)
    return torch.where(new == before, old, new.to(old.dtype) / 255.0)
