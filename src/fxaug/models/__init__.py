"""Generator and discriminator architectures, the checkpoint format, and the model registry.

    from fxaug.models import list_models, load_model
    list_models()                       # names of the generators shipped inside the package
    model = load_model("stargan-fer-64-parts")   # or a checkpoint directory path
    model.save_pretrained("my-model/")  # config.json + model.safetensors

Shipped models live in `fxaug/assets/models/<name>/`; any directory with a config.json and a
model.safetensors (written by `save_pretrained`, or downloaded from the Hugging Face Hub) loads
the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import (
    CONFIG_NAME,
    MODEL_CLASSES,
    WEIGHTS_NAME,
    CheckpointError,
    ExpressionGenerator,
    PretrainedModel,
    register_model,
)
from .gan import (
    METHODS,
    PART_NAMES,
    CycleGANGenerators,
    DiscriminatorConfig,
    GeneratorConfig,
    PatchDiscriminator,
    StarGANGenerator,
)
from .inpaint import ExpressionInpainter, InpainterConfig, ProjectionDiscriminator
from .twocet import TwoCETConfig, TwoCETDiscriminator, TwoCETDiscriminatorConfig, TwoCETGAN

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"

__all__ = [
    "BUNDLED_DIR",
    "CONFIG_NAME",
    "CheckpointError",
    "METHODS",
    "MODEL_CLASSES",
    "PART_NAMES",
    "WEIGHTS_NAME",
    "CycleGANGenerators",
    "DiscriminatorConfig",
    "ExpressionGenerator",
    "ExpressionInpainter",
    "InpainterConfig",
    "ProjectionDiscriminator",
    "GeneratorConfig",
    "PatchDiscriminator",
    "PretrainedModel",
    "StarGANGenerator",
    "TwoCETConfig",
    "TwoCETDiscriminator",
    "TwoCETDiscriminatorConfig",
    "TwoCETGAN",
    "list_models",
    "model_reference",
    "select_model",
    "load_model",
    "register_model",
]


def list_models() -> list[str]:
    """Names of the models shipped inside the package, sorted."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file())


def select_model(targets, method: str | None = None) -> str:
    """The shipped model that can produce the most of `targets` (one emotion or several) by
    `method` (any when None), the first by name among equals; asked through each model's own
    contract (`methods`, and the targets of `translations()`). A caller that needs every target
    checks the model's (the pipeline does)."""
    from .. import emotions as E

    wanted = {E.canonical(t) for t in ([targets] if isinstance(targets, str) else targets)}
    best, covered = None, 0
    for name in list_models():
        model = load_model(name)
        if method is not None and method not in model.methods:
            continue
        n = len(wanted & {t for _, t in model.translations()})
        if n > covered:
            best, covered = name, n
    if best is None:
        raise FileNotFoundError(
            f"no shipped model produces {', '.join(sorted(wanted))}" + (f" by the {method} method" if method else "")
            + f" (shipped: {', '.join(list_models()) or 'none'}); pass --model PATH to a trained generator"
        )
    return best


def load_model(name_or_path: str | os.PathLike, device="cpu") -> PretrainedModel:
    """Load a shipped model by name, or any checkpoint directory by path, in eval mode."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if not (path / CONFIG_NAME).is_file():
        bundled = BUNDLED_DIR / text
        if (bundled / CONFIG_NAME).is_file():
            path = bundled
        else:
            names = list_models()
            raise FileNotFoundError(
                f"no model {text!r}: neither a checkpoint directory (config.json + model.safetensors) nor a "
                f"shipped model; shipped models: {', '.join(names) if names else 'none'}"
            )
    return PretrainedModel.from_pretrained(path, device=device)


def model_reference(name_or_path: str | os.PathLike) -> str:
    """How to record a model so that it is found again from any folder: a checkpoint directory
    by its absolute path, a shipped model by its name (a folder of that name in the working
    directory wins, as in `load_model`); anything else as given."""
    text = os.fspath(name_or_path)
    if (Path(text) / CONFIG_NAME).is_file():
        return str(Path(text).resolve())
    return text
