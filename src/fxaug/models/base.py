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
import logging
import math
import os
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ..io import atomic_write, write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

MODEL_CLASSES: dict[str, type["PretrainedModel"]] = {}
M = TypeVar("M", bound="PretrainedModel")
log = logging.getLogger("fxaug.models")

# Integer config fields that size a network: 0 or less cannot build one (every other integer
# field must be at least 0).
POSITIVE_FIELDS = frozenset({"image_size", "channels", "width", "embed_dim", "code_dim", "max_width", "stem_stride"})


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded: its config.json or model.safetensors is
    damaged, of the wrong shape, or does not match the other. The message names the file."""


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

    def push_to_hub(self, repo_id: str, *, dtype: str = "float32", metadata: dict | None = None,
                    card: str | None = None, commit_message: str | None = None, private: bool | None = None,
                    token: str | bool | None = None, revision: str | None = None, create_pr: bool = False) -> str:
        """Upload this model to the Hugging Face Hub repo `repo_id` (created if needed) as one
        commit holding exactly what `save_pretrained(dtype=, metadata=)` writes plus a README.md
        model card: `card`, else the card of the folder it was loaded from, else one made from
        its config (`fxaug.models.card`). Needs huggingface_hub (the `hub` extra) and a login
        (`hf auth login` or token=). Returns the commit's URL."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, dtype=dtype, metadata=metadata, card=card, commit_message=commit_message,
                           private=private, token=token, revision=revision, create_pr=create_pr)

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike, device: str | torch.device = "cpu",
                        torch_dtype: str | torch.dtype | None = None, *, revision: str | None = None,
                        **hub_options) -> M:
        """Load a checkpoint directory, or a Hugging Face Hub model repo by id ("owner/name",
        "owner/name@revision" or revision=; a local folder of that name wins), downloaded into
        the Hugging Face cache and read from it alone under HF_HUB_OFFLINE=1 (`fxaug.models.hub`;
        hub_options: cache_dir, token, local_files_only). Called on the base class, builds
        whatever class the checkpoint names; on a subclass, refuses a checkpoint of another
        class. A damaged or inconsistent checkpoint raises CheckpointError naming the file and
        the reason; config keys the class does not know are ignored with a warning (a newer
        fxaug may add some).

        torch_dtype: the floating dtype to run in. None or "float32" (the default), "float16" /
        "fp16", "bfloat16" / "bf16", a torch.dtype, or "auto": the dtype the weights are stored
        in on a GPU, float32 on the CPU (where float16 convolutions are slow; docs/models.md)."""
        path = Path(directory)
        hub_reference = None
        if not (path / CONFIG_NAME).is_file() and not path.is_dir():
            from .hub import resolve, split_repo_id

            if split_repo_id(os.fspath(directory)) is not None:
                path, hub_reference = resolve(os.fspath(directory), revision, **hub_options)
        config_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(f"{path}: not an fxaug checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
        config = _read_config(config_path)
        name = config.pop("_class_name", None)
        metadata = config.pop("_metadata", {})
        model_cls = MODEL_CLASSES.get(name) if isinstance(name, str) else None
        if model_cls is None:
            raise CheckpointError(f"{config_path}: unknown model class {name!r}; known: {', '.join(sorted(MODEL_CLASSES))}")
        if cls is not PretrainedModel and not issubclass(model_cls, cls):
            raise TypeError(f"{path} holds a {name}, not a {cls.__name__}")
        fields = {f.name for f in dataclasses.fields(model_cls.config_class)}
        # diffusers' rule: keys starting with "_" are bookkeeping; other unknown keys are ignored
        # with a warning, so a checkpoint written by a newer version still loads
        unknown = sorted(k for k in config if k not in fields and not k.startswith("_"))
        if unknown:
            log.warning("%s: ignoring config keys %s unknown to %s", config_path, unknown, name)
        config = {k: v for k, v in config.items() if k in fields}
        _check_config_types(config_path, model_cls.config_class, config)
        try:
            model = model_cls(model_cls.config_class(**config))
        except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as err:
            raise CheckpointError(f"{config_path}: cannot build a {name} from it: {err}") from None
        model.load_state_dict(_read_weights(weights_path, config_path, model.state_dict()), strict=True)
        model.metadata = metadata
        model.checkpoint_path = str(path.resolve())  # absolute: provenance read from elsewhere still finds it
        from .hub import reference_from_cache_path

        # owner/name@commit for a Hub model (None otherwise): the exact weights, from any machine
        model.hub_reference = hub_reference or reference_from_cache_path(path.resolve())
        dtype = resolve_dtype(torch_dtype, stored=stored_dtype(weights_path), device=torch.device(device))
        return model.to(device=device, dtype=dtype).eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype the model runs in (its first floating parameter's)."""
        return next((p.dtype for p in self.parameters() if p.is_floating_point()), torch.float32)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def resolve_dtype(torch_dtype: str | torch.dtype | None, stored: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> torch.dtype:
    """The floating dtype for `torch_dtype` (see `PretrainedModel.from_pretrained`): "auto" is the
    stored dtype on a GPU and float32 on the CPU."""
    if torch_dtype is None:
        return torch.float32
    if isinstance(torch_dtype, torch.dtype):
        if not torch_dtype.is_floating_point:
            raise ValueError(f"torch_dtype must be a floating dtype, not {torch_dtype}")
        return torch_dtype
    text = str(torch_dtype).lower().removeprefix("torch.")
    if text == "auto":
        return stored if torch.device(device).type != "cpu" else torch.float32
    if text not in DTYPES:
        raise ValueError(f"torch_dtype must be one of auto, float32, float16, bfloat16 (or fp32, fp16, bf16), "
                         f"not {torch_dtype!r}")
    return DTYPES[text]


def stored_dtype(weights_path: Path) -> torch.dtype:
    """The floating dtype a model.safetensors holds: what save_pretrained recorded in its header,
    else its first floating tensor's; float32 when it has none."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as f:
            recorded = (f.metadata() or {}).get("dtype")
            if recorded in DTYPES:
                return DTYPES[recorded]
            for key in f.keys():
                t = f.get_slice(key).get_dtype()
                if t in ("F16", "BF16", "F32", "F64"):
                    return {"F16": torch.float16, "BF16": torch.bfloat16}.get(t, torch.float32)
    except Exception:  # an unreadable file was already refused by _read_weights
        pass
    return torch.float32


def _read_config(path: Path) -> dict[str, Any]:
    """config.json as a dict, or a CheckpointError that says what is wrong with the file."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: holds a JSON {_json_kind(config)}, not an object of config fields")
    return config


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__)


def _type_error(hint: Any, value: Any) -> str | None:
    """Why `value` (read from JSON) is not of the type `hint`, or None when it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"must be an integer, not {value!r}"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, not {value!r}"
        return None if math.isfinite(value) else f"must be a finite number, not {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"must be a string, not {value!r}"
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return f"must be a list, not {value!r}"
        items = list(zip(value, [args[0]] * len(value))) if len(args) == 2 and args[1] is Ellipsis else None
        if items is None:
            if len(value) != len(args):
                return f"must be a list of {len(args)} items, not {value!r}"
            items = list(zip(value, args))
        for i, (item, item_hint) in enumerate(items):
            why = _type_error(item_hint, item)
            if why:
                return f"item {i} {why}"
            if item_hint is int and item < 0:
                return f"item {i} must be at least 0, not {item}"
        return None
    return None  # a type this check does not know: the class's own checks decide


def _check_config_types(path: Path, config_class: type, config: dict[str, Any]) -> None:
    """Each field of `config` against its type in `config_class`, and sizes against their
    range: a config.json with "width": "wide" or "image_size": -4 fails here, naming the file
    and the field, not deep inside the network's constructor."""
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:  # an annotation that cannot be resolved: leave the checks to the class
        return
    for key, value in config.items():
        hint = hints.get(key)
        why = _type_error(hint, value) if hint is not None else None
        if why is None and hint is int:
            least = 1 if key in POSITIVE_FIELDS else 0
            if value < least:
                why = f"must be at least {least}, not {value}"
        if why:
            raise CheckpointError(f"{path}: {key} {why}")


def _read_weights(path: Path, config_path: Path, own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """model.safetensors as tensors of the model's dtypes, after checking they are the
    model's tensors, every one, each of its shape."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file, truncated or damaged ({err})") from None
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} instead of {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        problems = [f"{len(items)} {what}: {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
                    for what, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes))
                    if items]
        raise CheckpointError(f"{path}: does not match {config_path} ({'; '.join(problems)})")
    return {k: v.to(own[k].dtype) for k, v in state.items()}


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
