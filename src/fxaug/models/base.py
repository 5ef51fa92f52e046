"""Checkpoint format shared by every fxaug model: a directory holding `config.json` and
`model.safetensors` (never a pickle), written by `save_pretrained` and read by
`from_pretrained`, the layout diffusers and the Hugging Face Hub use.

config.json = {"_class_name": ..., "_fxaug_version": ..., <the model's config fields>}.
Weights may be stored in float16 (`dtype="float16"`) to keep shipped models small; they load
back into the model's float32 parameters.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ..io import atomic_write, write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

MODEL_CLASSES: dict[str, type["PretrainedModel"]] = {}
M = TypeVar("M", bound="PretrainedModel")


def register_model(cls: type[M]) -> type[M]:
    """Make a class loadable by name from a checkpoint's `_class_name`."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


class PretrainedModel(nn.Module):
    """Base of every fxaug network: a frozen dataclass config plus save/load.

    Subclasses set `config_class` (a dataclass) and build themselves from `self.config`.
    """

    config_class: ClassVar[type]

    def __init__(self, config: Any = None, **overrides):
        super().__init__()
        if config is None:
            config = self.config_class(**overrides)
        elif isinstance(config, dict):
            config = self.config_class(**{**config, **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config

    # -- persistence ----------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        from .. import __version__

        data = dataclasses.asdict(self.config)
        return {"_class_name": type(self).__name__, "_fxaug_version": __version__, **data}

    def save_pretrained(self, directory: str | os.PathLike, dtype: str = "float32", metadata: dict | None = None) -> Path:
        """Write config.json + model.safetensors into `directory` (created if needed).

        `metadata` (JSON-serialisable) is stored under "_metadata" in config.json: training
        command, data, scores, anything a model card should show.
        """
        from safetensors.torch import save_file

        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        cast = getattr(torch, dtype)
        tensors = {
            k: (v.detach().to("cpu", cast) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in self.state_dict().items()
        }
        config = self.config_dict()
        if metadata:
            config["_metadata"] = metadata
        atomic_write(out / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt", "dtype": dtype}))
        write_text(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        return out

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike, device: str | torch.device = "cpu") -> M:
        """Load a checkpoint directory. Called on the base class, builds whatever class the
        checkpoint names; on a subclass, refuses a checkpoint of another class."""
        from safetensors.torch import load_file

        path = Path(directory)
        config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(f"{path}: not an fxaug checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
        config = json.loads(config_path.read_text())
        name = config.pop("_class_name", None)
        config.pop("_fxaug_version", None)
        metadata = config.pop("_metadata", {})
        model_cls = MODEL_CLASSES.get(name)
        if model_cls is None:
            raise ValueError(f"{config_path}: unknown model class {name!r}; known: {', '.join(sorted(MODEL_CLASSES))}")
        if cls is not PretrainedModel and not issubclass(model_cls, cls):
            raise TypeError(f"{path} holds a {name}, not a {cls.__name__}")
        fields = {f.name for f in dataclasses.fields(model_cls.config_class)}
        unknown = set(config) - fields
        if unknown:
            raise ValueError(f"{config_path}: unknown config fields {sorted(unknown)} for {name}")
        model = model_cls(model_cls.config_class(**config))
        state = load_file(str(weights_path))
        own = model.state_dict()
        state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        model.metadata = metadata
        model.checkpoint_path = str(path)
        return model.to(device).eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ExpressionGenerator(PretrainedModel):
    """The one inference contract of every generator family, so the pipeline never asks which
    family it holds:

    - `methods`: the crop methods (fxaug.methods) it accepts, the one it was trained on first;
    - `domains` and `translations()`: the emotions it draws, and (source, target) pairs it can do
      (source None: from any face);
    - `generate(x, targets, strength, parts=, landmarks=, code=)` -> (outputs, alpha): a batch of
      crops in [-1, 1] given their targets, strengths and, where the family needs them, part
      names, landmarks in the crop's frame, or an expression code; `alpha` is None, or (B, 1, S, S)
      weights saying where the output may differ from its input (pasted back through them).
    """

    @property
    def methods(self) -> tuple[str, ...]:
        return (self.config.method,)

    @property
    def domains(self) -> tuple[str, ...]:
        return self.config.domains

    def translations(self) -> list[tuple[str | None, str]]:
        return [(None, d) for d in self.domains]

    def generate(self, x: torch.Tensor, targets: list[str], strength: torch.Tensor, *, parts: list[str] | None = None,
                 landmarks: Any = None, code: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError
