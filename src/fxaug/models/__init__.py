"""Generator and discriminator architectures, the checkpoint format, and the model registry.

    from fxaug.models import list_models, load_model
    list_models()                       # names of the generators shipped inside the package
    model = load_model("stargan-fer-64-parts")   # or a checkpoint directory path
    model = load_model("owner/name")    # a Hugging Face Hub repo (fxaug.models.hub), cached
    model.save_pretrained("my-model/")  # config.json + model.safetensors
    model.push_to_hub("owner/name")     # the same files plus a model card, one commit

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
from .twocet_inpaint import TwoCETInpainter, TwoCETInpainterConfig

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
    "TwoCETInpainter",
    "TwoCETInpainterConfig",
    "list_models",
    "model_reference",
    "select_model",
    "load_model",
    "model_dir",
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


def load_model(name_or_path: str | os.PathLike, device="cpu", torch_dtype=None, *, revision: str | None = None,
               **hub_options) -> PretrainedModel:
    """Load a model in eval mode: a checkpoint directory by path, a shipped model by name, or a
    Hugging Face Hub repo by id ("owner/name", "owner/name@revision" or revision=), in that order
    of precedence. A Hub model is downloaded into the Hugging Face cache and, offline
    (HF_HUB_OFFLINE=1), read from it alone (`fxaug.models.hub`; hub_options: cache_dir, token,
    local_files_only). torch_dtype: float32 (default), "float16", "bfloat16" or "auto"
    (`PretrainedModel.from_pretrained`)."""
    return PretrainedModel.from_pretrained(model_dir(name_or_path, revision=revision, **hub_options), device=device,
                                           torch_dtype=torch_dtype)


def model_dir(name_or_path: str | os.PathLike, *, revision: str | None = None, **hub_options) -> Path:
    """The local folder (config.json + model.safetensors) a model name resolves to: a checkpoint
    directory, a shipped model, or a Hub repo's snapshot in the Hugging Face cache (downloaded
    when needed). FileNotFoundError says what was tried."""
    return _resolve(name_or_path, revision=revision, **hub_options)[0]


def _resolve(name_or_path, *, revision=None, **hub_options) -> tuple[Path, str]:
    """(folder, reference) of a model name: see `model_dir` and `model_reference`."""
    from .hub import reference_from_cache_path, resolve, split_repo_id

    text = os.fspath(name_or_path)
    path = Path(text)
    if (path / CONFIG_NAME).is_file():
        return path, reference_from_cache_path(path.resolve()) or str(path.resolve())
    bundled = BUNDLED_DIR / text
    if (bundled / CONFIG_NAME).is_file():
        return bundled, text
    if split_repo_id(text) is not None and not path.exists():
        from .hub import HubError

        try:
            return resolve(text, revision, **hub_options)
        except HubError as err:
            raise HubError(f"no model folder {text!r} here, and as a Hugging Face Hub repo: {err}") from None
    names = list_models()
    raise FileNotFoundError(
        f"no model {text!r}: neither a checkpoint directory (config.json + model.safetensors), a shipped model "
        f"nor a Hugging Face Hub repo id (owner/name); shipped models: {', '.join(names) if names else 'none'}"
    )


def model_reference(name_or_path: str | os.PathLike, **hub_options) -> str:
    """How to record a model so that it is found again from any folder: a checkpoint directory
    by its absolute path, a shipped model by its name (a folder of that name in the working
    directory wins, as in `load_model`), a Hub model as `owner/name@<commit>` (the commit its
    revision resolves to now, so a resumed run loads the very same weights; a snapshot folder of
    the Hugging Face cache is named so too); anything else as given."""
    from .hub import reference_from_cache_path, split_repo_id

    text = os.fspath(name_or_path)
    if (Path(text) / CONFIG_NAME).is_file():
        resolved = Path(text).resolve()
        return reference_from_cache_path(resolved) or str(resolved)
    if "/" in text and split_repo_id(text) is not None and not Path(text).exists():
        from .hub import HubError

        try:
            return _resolve(text, **hub_options)[1]
        except HubError:  # recorded as given: loading it says why it cannot be found
            return text
    return text
