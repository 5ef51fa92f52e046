"""Albumentations transform: `ExpressionTransfer`, for Albumentations 2.0.8 (the MIT line) and
AlbumentationsX (its AGPL-3.0 / commercial successor, same import name) 2.3 and 2.4+.

    import albumentations as A
    from fxaug.transforms import ExpressionTransfer
    aug = A.Compose([A.HorizontalFlip(), ExpressionTransfer("happy", p=0.5)], seed=137)
    out = aug(image=image, mask=mask, bboxes=bboxes)   # masks, boxes, keypoints pass through

Labels follow the face: pass the sample's emotion as a keyword target and the output carries
the new one (an int label with `classes=`; the face is never "transferred" to the class it
already has unless `same_emotion=True`; the emotion stays as it was when the transform was not
applied or found no face):

    aug = A.Compose([ExpressionTransfer(["happy", "sad", "surprise"], p=0.5)], seed=7, save_applied_params=True)
    out = aug(image=image, emotion="sad")        # out["emotion"]: "happy" or "surprise" when applied
    aug.transforms[0].get_applied_params()       # {"target", "source", "strength", "face_found", ...}

What `out["applied_transforms"]` holds is each library's own: Albumentations 2.0.8 records the
applied parameters, `[("ExpressionTransfer", {"target", "source", "strength", "face_found", ...})]`,
which replay through `apply_with_params` or ReplayCompose; AlbumentationsX records the
constructor arguments with the realized target, source and strength in place of the ranges,
`[("fxaug.transforms.ExpressionTransfer", {...})]`, which replay through
`A.Compose.from_applied_transforms` (a batch of images records its strength only, as a target
per image is no constructor argument). `get_applied_params()` gives target, source, strength
and face_found under all three, and `apply_with_params(those, image=..., emotion=...)` replays.

As albumentations' own transforms do, the class only samples parameters (the strength and the
target emotion, drawn among the targets other than the sample's own, from albumentations' seeded
generator: in `get_params_dependent_on_data` where the library calls it, Albumentations 2.0 and
AlbumentationsX to 2.3, in `sample_parameters` on AlbumentationsX 2.4+, which refuses a class
that defines the former) and dispatches; the work is done by the functions below
(`transfer_faces`, `relabel`) on `fxaug.pipeline.ExpressionPipeline`. The generator loads lazily
on first use, is never part of the serialised transform (`A.save` / `A.load` store its name or
path), and is dropped when the transform is pickled to a DataLoader worker, which loads its own:
on the CPU when device="auto", as CUDA cannot be initialised again in a forked worker (the GPU
belongs to the main process; use `fxaug.ExpressionBatchTransfer` after collate to synthesize there).
"""

from __future__ import annotations

import dataclasses
import operator
import os
import random
import warnings
from typing import Any, Mapping, Sequence

import numpy as np

try:
    from albumentations.core.transforms_interface import ImageOnlyTransform
except ModuleNotFoundError as err:
    if err.name not in ("albumentations", "albumentations.core", "albumentations.core.transforms_interface"):
        raise
    raise ModuleNotFoundError(
        "fxaug.ExpressionTransfer is an Albumentations transform: pip install 'fxaug[albumentations]' "
        "(Albumentations 2.0.8, MIT), or AlbumentationsX (pip install 'albumentationsx>=2.3,<3'; AGPL-3.0 or "
        "commercial; same import name)", name="albumentations") from None

# What this albumentations offers, told by its base class rather than by its version string:
# - SAMPLES_PARAMETERS: the sampling hook it calls. Albumentations 2.0 and AlbumentationsX up to 2.3
#   call get_params_dependent_on_data; AlbumentationsX 2.4 replaced it by sample_parameters (with
#   call-local random streams and records) and refuses, at class definition, a transform that
#   still defines the old hook.
# - SAMPLING_TAKES_TARGETS: sample_parameters(params, data, sampling) in 2.4, (params, data,
#   targets, sampling) from 2.5, which also wants its parameters as a SampledParams (else None).
SAMPLES_PARAMETERS = not hasattr(ImageOnlyTransform, "get_params_dependent_on_data")
SAMPLING_TAKES_TARGETS = False
SampledParams: Any = None
if SAMPLES_PARAMETERS:
    if not hasattr(ImageOnlyTransform, "sample_parameters"):
        import albumentations as _A

        raise ImportError(f"fxaug.ExpressionTransfer: albumentations {_A.__version__} ({_A.__file__}) has neither "
                          "sampling hook it implements (get_params_dependent_on_data, sample_parameters); "
                          "pip install 'fxaug[albumentations]' or 'albumentationsx>=2.3,<3'")
    import inspect

    from albumentations.core.invocation import get_current_invocation

    SAMPLING_TAKES_TARGETS = "targets" in inspect.signature(ImageOnlyTransform.sample_parameters).parameters
    try:
        from albumentations.core.transform_params import SampledParams
    except ModuleNotFoundError:  # 2.4: parameters are a dict, as before
        pass
# AlbumentationsX (2.3+) records an "applied config" (the constructor arguments with the values a
# call realized) for save_applied_params and Compose.from_applied_transforms.
RECORDS_APPLIED_CONFIG = hasattr(ImageOnlyTransform, "get_applied_config")

from . import emotions as E


class ExpressionTransfer(ImageOnlyTransform):
    """Give the face in the image a target expression, and the sample its label.

    target:   an emotion, or a list to sample one from per call (among those other than the
              sample's own emotion).
    method:   "image", "face", "parts" or "regions"; None = the model's own.
    model:    a shipped model's name or a checkpoint folder (a loaded model also works, but is
              serialised by its checkpoint path); None = a shipped model that can.
    strength: a float, or a (low, high) range sampled per call.
    source:   the images' own emotion when no label is passed with them; checked against what
              the model translates.
    device:   "auto" (GPU when there is one; the CPU inside DataLoader workers), "cpu", "cuda", ...
    classes:  the class names of int labels (index -> emotion, any alias), e.g. a dataset's
              `features["label"].names`; an int label comes back as the target's index.
    label_key: the keyword the sample's emotion comes in and goes out by ("emotion").
    same_emotion: also draw the sample's own emotion as a target (redraws its expression).
    Images: albumentations' dtype contract, uint8 or float32 in 0..1 in, the same dtype and
    layout out: grey H x W or H x W x 1, RGB, or RGBA (the RGB is transferred, the alpha kept).
    Other dtypes, channel counts or empty images are refused with a ValueError saying so.
    An image without a face is returned unchanged, with a warning, and keeps its label; with
    several faces the largest is edited, and a warning says which. With `images=` (a batch) the
    label is one per image (a list or array), and each image draws its own target.
    Applied parameters (`get_applied_params()`): target (None: nothing to do, the only target
    was the sample's own), source (the sample's emotion, canonical, or None), strength,
    face_found (after the call).
    """

    def __init__(
        self,
        target: str | Sequence[str] = "happy",
        method: str | None = None,
        model: Any = None,
        strength: float | tuple[float, float] = 1.0,
        source: str | None = None,
        device: str = "auto",
        classes: Sequence[str] | None = None,
        label_key: str = "emotion",
        same_emotion: bool = False,
        p: float = 0.5,
        torch_dtype: str | None = None,
    ):
        super().__init__(p=p)
        targets = [target] if isinstance(target, str) else list(target)
        if not targets:
            raise ValueError("ExpressionTransfer needs at least one target emotion")
        self.target = target if isinstance(target, str) else [E.canonical(t) for t in targets]
        self._target_names = list(dict.fromkeys(E.canonical(t) for t in targets))
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
        # a name (serialised by to_dict): float32 by default, "bfloat16" / "float16" / "auto" on a GPU
        self.torch_dtype = None if torch_dtype is None else str(torch_dtype).removeprefix("torch.")
        self.classes = None if classes is None else [E.canonical(c) for c in classes]
        if self.classes is not None:
            missing = [t for t in self._target_names if t not in self.classes]
            if missing:
                raise ValueError(f"ExpressionTransfer: target {', '.join(map(repr, missing))} is not among classes "
                                 f"({', '.join(self.classes)}), so an int label could not name it")
        if not isinstance(label_key, str) or not label_key:
            raise ValueError(f"label_key must be a non-empty keyword name, got {label_key!r}")
        self.label_key = label_key
        self.same_emotion = bool(same_emotion)
        # The label is a key the Compose accepts (strict mode too) that albumentations passes
        # through untouched; apply_with_params writes the new one once the faces are done.
        self._available_keys.add(label_key)
        self._pipeline = None

    # -- the engine, loaded lazily ----------------------------------------------------------
    @property
    def pipeline(self):
        if self._pipeline is None:
            from .models import select_model
            from .pipeline import ExpressionPipeline

            model = self._loaded if self._loaded is not None else (self.model or select_model(self._target_names, self.method))
            self._pipeline = ExpressionPipeline(model, method=self.method, device=device_for_this_process(self.device),
                                                torch_dtype=self.torch_dtype)
            for t in self._target_names:
                self._pipeline.check_target(t)
            if self.source is not None:
                pairs = self._pipeline.model.translations()
                for t in self._target_names:
                    if t != self.source and not any(s in (None, self.source) and d == t for s, d in pairs):
                        raise ValueError(f"this model does not translate {self.source} -> {t}")
        return self._pipeline

    def __getstate__(self) -> dict:
        # The library's own state where it has one (AlbumentationsX leaves out its locks), less
        # the generator: workers load their own.
        base = getattr(super(), "__getstate__", None)
        state = dict(base()) if base is not None else self.__dict__.copy()
        state["_pipeline"] = None
        return state

    # -- labels ------------------------------------------------------------------------------
    def _emotion_of(self, label: Any) -> str | None:
        """The canonical emotion a label names: a name or alias, or an int (index into classes)."""
        if label is None:
            return self.source
        if isinstance(label, str):
            return E.canonical(label)
        try:
            index = operator.index(label)
        except TypeError:
            raise ValueError(f"ExpressionTransfer: {self.label_key}={label!r} is neither an emotion name nor an int label") from None
        if self.classes is None:
            raise ValueError(f"ExpressionTransfer: {self.label_key}={index} is an int; pass classes=[...] (the class names "
                             "in label order) to say which emotion it is")
        if not 0 <= index < len(self.classes):
            raise ValueError(f"ExpressionTransfer: {self.label_key}={index} is out of range for {len(self.classes)} classes")
        return self.classes[index]

    def _labels_per_image(self, data: Mapping[str, Any]) -> tuple[list[Any], bool]:
        """(one label per image, whether the call is a batch of images)."""
        label = data.get(self.label_key)
        if "image" in data or "images" not in data:
            return [label], False
        n = len(data["images"])
        if label is None:
            return [None] * n, True
        if isinstance(label, str) or np.ndim(label) == 0:
            raise ValueError(f"ExpressionTransfer: with images= the {self.label_key} is one label per image (a list of {n})")
        labels = list(label)
        if len(labels) != n:
            raise ValueError(f"ExpressionTransfer: {n} images but {len(labels)} {self.label_key} labels")
        return labels, True

    # -- sampling: the hook this albumentations calls ----------------------------------------
    def _draw(self, rng: random.Random, data: Mapping[str, Any]) -> dict[str, Any]:
        """strength, then per image its source (the sample's emotion) and target, from `rng`:
        the one random sequence all three libraries replay from a seed."""
        labels, batch = self._labels_per_image(data)
        strength = draw_strength(rng, self.strength)
        sources = [self._emotion_of(label) for label in labels]
        targets = [draw_target(rng, self._target_names, own, self.same_emotion) for own in sources]
        if batch:
            return {"strength": strength, "target": targets, "source": sources}
        return {"strength": strength, "target": targets[0], "source": sources[0]}

    @staticmethod
    def _realized_config(drawn: Mapping[str, Any]) -> dict[str, Any]:
        """What AlbumentationsX records in place of the constructor's arguments, so that
        Compose.from_applied_transforms replays the call: the strength, and for one image its
        target and source (a target per image of a batch is no constructor argument; a None
        target, nothing to do, leaves the targets as they were, which draw nothing again)."""
        config: dict[str, Any] = {"strength": drawn["strength"]}
        if not isinstance(drawn["target"], list):
            if drawn["target"] is not None:
                config["target"] = drawn["target"]
            if drawn["source"] is not None:
                config["source"] = drawn["source"]
        return config

    def _sample(self, data: Mapping[str, Any], sampling: Any) -> Any:
        """AlbumentationsX 2.4+: drawn from the call's own generator, the realized values written
        where the library keeps them for its applied config."""
        drawn = self._draw(sampling.py_random, data)
        sampling.applied_overrides.update(self._realized_config(drawn))
        return drawn if SampledParams is None else SampledParams(params=drawn)

    if SAMPLING_TAKES_TARGETS:  # AlbumentationsX 2.5+
        def sample_parameters(self, params: dict[str, Any], data: dict[str, Any], targets: Any, sampling: Any) -> Any:
            return self._sample(data, sampling)
    elif SAMPLES_PARAMETERS:  # AlbumentationsX 2.4
        def sample_parameters(self, params: dict[str, Any], data: dict[str, Any], sampling: Any) -> Any:
            return self._sample(data, sampling)
    else:
        def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
            """Albumentations 2.0, AlbumentationsX to 2.3 (which no longer calls get_params)."""
            drawn = self._draw(self.py_random, data)
            if RECORDS_APPLIED_CONFIG:
                self.applied_config.update(self._realized_config(drawn))
            return drawn

    # -- dispatch --------------------------------------------------------------------------------
    def apply(self, img: np.ndarray, target: str | None, strength: float, face_sink: list | None = None,
              **params: Any) -> np.ndarray:
        out, found = transfer_faces(self.pipeline, [img], [target], strength)
        if face_sink is not None:
            face_sink.append(found[0])
        return out[0]

    def apply_to_images(self, images: np.ndarray, target: Any, strength: float, face_sink: list | None = None,
                        **params: Any) -> np.ndarray:
        """A batch goes through the generator together (one strength; a target per image)."""
        targets = list(target) if isinstance(target, (list, tuple)) else [target] * len(images)
        out, found = transfer_faces(self.pipeline, list(images), targets, strength)
        if face_sink is not None:
            face_sink.append(found)
        return np.stack(out)

    def apply_with_params(self, params: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """albumentations' dispatch, then the label: the target where a face was transferred.
        `params`: what the library passes (a dict; AlbumentationsX 2.4+ its SampledParams), or
        a dict from get_applied_params() to replay a call."""
        # Whether a face was found reaches here through a list handed to apply with the
        # parameters: call-local, never kept on the transform (AlbumentationsX runs a transform
        # from several threads) and never in what the library records.
        face_sink: list = []
        res = super().apply_with_params(_with_face_sink(params, face_sink), *args, **kwargs)
        found = face_sink[0] if face_sink else None
        self._record_face_found(found)
        label = kwargs.get(self.label_key)
        if label is not None:
            res[self.label_key] = relabel(label, _param_values(params).get("target"), found, self.classes)
        return res

    def _record_face_found(self, found: Any) -> None:
        """face_found into this call's applied parameters: the transform's own dict before
        AlbumentationsX 2.4, the invocation's record from it (a SampledParams record from 2.5;
        an empty dict, dropped, when the Compose keeps none; none when apply_with_params is
        called outside a call, a replay by hand, where the last call's record must stay)."""
        if SAMPLES_PARAMETERS and get_current_invocation() is None:
            return
        record = self.params
        if SampledParams is not None and isinstance(record.get("params"), dict):
            record = record["params"]
        record["face_found"] = found

    def get_applied_params(self) -> dict[str, Any]:
        """The last call's parameters, target, source, strength and face_found among them: on
        AlbumentationsX 2.4+ the sampled values out of its SampledParams record."""
        params = super().get_applied_params()
        if SampledParams is not None and isinstance(params.get("params"), dict):
            return dict(params["params"])
        return params

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("target", "method", "model", "strength", "source", "device", "classes", "label_key", "same_emotion",
                "torch_dtype")


def _param_values(params: Any) -> Mapping[str, Any]:
    """The sampled values, from a dict or AlbumentationsX 2.4+'s SampledParams."""
    return params.params if SampledParams is not None and isinstance(params, SampledParams) else params


def _with_face_sink(params: Any, face_sink: list) -> Any:
    """`params` as the library's dispatch takes them, plus the call-local face_sink."""
    if SampledParams is None:
        return {**params, "face_sink": face_sink}
    if not isinstance(params, SampledParams):
        params = SampledParams(params=dict(params))
    return dataclasses.replace(params, params={**params.params, "face_sink": face_sink})


# -- the kernels: sampling and work as plain functions, the transform's methods call them -----------

def draw_strength(rng: random.Random, strength: float | tuple[float, float]) -> float:
    """The strength of one call: the fixed value, or uniform in (low, high)."""
    return float(rng.uniform(*strength)) if isinstance(strength, tuple) else float(strength)


def draw_target(rng: random.Random, targets: Sequence[str], own: str | None, same_emotion: bool) -> str | None:
    """One image's target among `targets` other than its own emotion (any with `same_emotion`);
    None when nothing is left. A single choice draws nothing from `rng`."""
    choices = [t for t in targets if same_emotion or t != own]
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else rng.choice(choices)


def transfer_faces(pipeline: Any, images: list[np.ndarray], targets: list[str | None],
                   strength: float) -> tuple[list[np.ndarray], list[bool | None]]:
    """Each image with its face given its target through `pipeline` (an ExpressionPipeline), in
    the image's dtype and layout; and per image whether a face was found (None: its target is
    None, nothing asked of it). An image without a face comes back unchanged, with a warning."""
    out: list[np.ndarray] = list(images)
    found: list[bool | None] = [None] * len(images)
    todo = [i for i, t in enumerate(targets) if t is not None]
    if not todo:
        return out, found
    inputs = [_as_pipeline_input(images[i]) for i in todo]
    results = pipeline.transfer(inputs, [targets[i] for i in todo], strength)
    for i, pixels, result in zip(todo, inputs, results):
        found[i] = bool(result.found)
        if not result.found:
            # the reason starts with "no face found" and says where fxaug looked
            warnings.warn(f"ExpressionTransfer: {result.reason or 'no face found'}; image returned unchanged", stacklevel=3)
            continue
        if result.note:
            warnings.warn(f"ExpressionTransfer: {result.note}", stacklevel=3)
        out[i] = _like_input(result.image, pixels, images[i])
    return out, found


def relabel(label: Any, target: Any, found: Any, classes: Sequence[str] | None) -> Any:
    """The label after the transfer: the target where a face was transferred, the old label
    elsewhere, in the form it came in (a name, an int of the same type as an index into
    `classes`; for a batch a list, tuple or array of them)."""
    if isinstance(target, list):
        labels = list(label)
        new = [label_like(old, t, classes) if t is not None and f else old
               for old, t, f in zip(labels, target, found or [False] * len(labels))]
        if isinstance(label, np.ndarray):
            return np.asarray(new, dtype=label.dtype)
        return type(label)(new) if isinstance(label, (list, tuple)) else new
    return label_like(label, target, classes) if target is not None and found else label


def label_like(label: Any, emotion: str, classes: Sequence[str] | None) -> Any:
    """`emotion` in the form `label` came in: a name, or an index into `classes` of the same type."""
    if label is None or isinstance(label, str):
        return emotion
    index = list(classes).index(emotion)  # type: ignore[arg-type]
    if hasattr(label, "new_tensor"):  # a torch tensor
        return label.new_tensor(index)
    return type(label)(index) if isinstance(label, (int, np.integer)) else index


_WARNED_WORKER = False


def device_for_this_process(device: str) -> str:
    """The device a generator loads on here: "auto" inside a DataLoader worker is the CPU, as a
    worker forked from a process that has used CUDA cannot initialise it again; said once."""
    global _WARNED_WORKER
    if device != "auto":
        return device
    from torch.utils.data import get_worker_info

    if get_worker_info() is None:
        return device
    import torch

    if torch.cuda.is_available() and not _WARNED_WORKER:
        _WARNED_WORKER = True
        warnings.warn("ExpressionTransfer runs on the CPU inside DataLoader workers (device='auto'): CUDA cannot be "
                      "initialised again in a forked worker ('Cannot re-initialize CUDA in forked subprocess'), and each "
                      "worker would load its own generator onto the GPU. To synthesize on the GPU, apply "
                      "fxaug.ExpressionBatchTransfer to the collated batch in the main process; device='cuda' forces it "
                      "(with the 'spawn' start method).", stacklevel=3)
    return "cpu"


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
