"""Models on the Hugging Face Hub: a Hub model repository holds exactly what `save_pretrained`
writes (config.json + model.safetensors, plus a README.md model card), so a repo IS an fxaug
model folder.

    load_model("owner/name")                  # latest commit of the main branch
    load_model("owner/name@v1")               # a branch, tag or commit ("@" or revision=)
    model.push_to_hub("owner/name")           # save_pretrained + model card, one commit

Downloads go through `huggingface_hub.snapshot_download` into the usual Hugging Face cache
(HF_HOME / HF_HUB_CACHE), so HF_HUB_OFFLINE=1 reads that cache and never the network. A model
loaded from the Hub is recorded as `owner/name@<commit>` (`model_reference`), so a recorded run
names the exact weights it used. huggingface_hub is imported only here, when a repo id is used
(it is the `hub` extra; `datasets` brings it too).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .base import CONFIG_NAME, WEIGHTS_NAME

CARD_NAME = "README.md"
# What a model repo holds for fxaug: nothing else is downloaded (a repo may carry sample images,
# training logs or other formats beside them).
HUB_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
# What an upload takes: those, and the samples image a card shows (trainers/ship.py puts it there).
UPLOAD_FILES = (*HUB_FILES, "samples.png")

# A Hub repo id: "owner/name" (letters, digits, "-", "_", "."), optionally "@revision".
_REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@(?P<revision>[^\s@]+))?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A snapshot folder of the Hugging Face cache: .../models--owner--name/snapshots/<commit>
_CACHE_SNAPSHOT = re.compile(r"models--(?P<owner>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<commit>[0-9a-f]{40})/?$")


class HubError(FileNotFoundError):
    """A model repo id that could not be resolved: not installed, offline and not cached, not
    found, no such revision, no access. The message says which, in one line."""


def split_repo_id(text: str) -> tuple[str, str | None] | None:
    """("owner/name", revision or None) when `text` has the form of a Hub repo id
    ("owner/name" or "owner/name@revision"), else None. The form only: whether it exists is
    the Hub's (or the cache's) answer."""
    m = _REPO_ID.match(text)
    if m is None or ".." in m["repo"] or m["repo"].endswith((".", "-")):
        return None
    return m["repo"], m["revision"]


def reference_from_cache_path(path: str | os.PathLike) -> str | None:
    """`owner/name@commit` for a snapshot folder of the Hugging Face cache (where a repo id's
    files are read from), else None."""
    m = _CACHE_SNAPSHOT.search(Path(path).as_posix())
    return f"{m['owner']}/{m['name']}@{m['commit']}" if m else None


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(
            "loading or pushing a model by Hub repo id needs huggingface_hub: pip install 'fxaug[hub]'"
        ) from None
    return huggingface_hub


def download(repo_id: str, revision: str | None = None, *, cache_dir: str | os.PathLike | None = None,
             token: str | bool | None = None, local_files_only: bool = False) -> Path:
    """The local snapshot folder of `repo_id` at `revision` (default: main), downloaded into the
    Hugging Face cache when needed (only config.json, model.safetensors and README.md). Under
    HF_HUB_OFFLINE=1, or with local_files_only, only the cache is read. Every failure is one
    HubError line naming the repo and the reason."""
    hub = _hub()
    errors = _errors()
    where = f"{repo_id}" + (f"@{revision}" if revision else "")
    if revision and _COMMIT.match(revision):
        # a commit never changes: once cached (a recorded owner/name@commit, a DataLoader worker,
        # a resumed run), it is read without asking the Hub
        owner, name = repo_id.split("/")
        cached = Path(cache_dir or _cache_dir()) / f"models--{owner}--{name}" / "snapshots" / revision
        if (cached / CONFIG_NAME).is_file() and (cached / WEIGHTS_NAME).is_file():
            return cached
    try:
        folder = hub.snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only,
            allow_patterns=list(HUB_FILES), library_name="fxaug", library_version=_version(),
        )
    except errors.GatedRepoError:
        raise HubError(f"{where}: a gated repo on the Hugging Face Hub; accept its terms and log in "
                       f"(hf auth login, or token=)") from None
    except errors.RepositoryNotFoundError:
        raise HubError(f"{where}: no such model repo on the Hugging Face Hub, or it is private "
                       f"(log in with hf auth login, or pass token=)") from None
    except errors.RevisionNotFoundError:
        raise HubError(f"{where}: the repo has no revision {revision!r}") from None
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled) as err:
        offline = local_files_only or _offline()
        why = ("offline (HF_HUB_OFFLINE=1) and not in the Hugging Face cache"
               + (f" {cache_dir}" if cache_dir else f" {_cache_dir()}")
               if offline else f"cannot reach the Hugging Face Hub and not cached ({_first_line(err)})")
        raise HubError(f"{where}: {why}; download it once online (hf download {repo_id}"
                       + (f" --revision {revision}" if revision else "") + ") "
                       f"or give a local model folder") from None
    except errors.HfHubHTTPError as err:
        raise HubError(f"{where}: the Hugging Face Hub answered {_first_line(err)}") from None
    except errors.HFValidationError as err:
        raise HubError(f"{where}: not a valid Hub repo id ({_first_line(err)})") from None
    path = Path(folder)
    if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
        have = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        raise HubError(f"{where}: not an fxaug model repo: it needs {CONFIG_NAME} and {WEIGHTS_NAME} at its root "
                       f"(found: {', '.join(have) or 'nothing'})")
    return path


def resolve(name_or_path: str, revision: str | None = None, **hub_options) -> tuple[Path, str]:
    """(local folder, reference) of a repo id: the reference is `owner/name@<commit>`, the
    commit the revision resolved to (the snapshot folder's name in the cache)."""
    parts = split_repo_id(name_or_path)
    if parts is None:
        raise HubError(f"{name_or_path!r} is not a Hub repo id (owner/name or owner/name@revision)")
    repo_id, at = parts
    if at and revision and at != revision:
        raise ValueError(f"{name_or_path!r} names revision {at!r} but revision={revision!r} was given")
    path = download(repo_id, revision or at, **hub_options)
    commit = path.name if _COMMIT.match(path.name) else (revision or at or "main")
    return path, f"{repo_id}@{commit}"


def model_card_folder(model, folder: str | os.PathLike, *, dtype: str = "float32", metadata: dict | None = None,
                      card: str | None = None, name: str | None = None) -> Path:
    """Write into `folder` exactly what `push_to_hub` uploads: `model.save_pretrained(folder,
    dtype, metadata)` plus README.md: the given model card, else the card of the folder the
    model was loaded from, else one made from its config and metadata (`fxaug.models.card`)."""
    from ..io import write_text
    from .card import model_card

    out = model.save_pretrained(folder, dtype=dtype, metadata=metadata if metadata is not None else
                                (getattr(model, "metadata", None) or None))
    loaded_from = getattr(model, "checkpoint_path", None)
    if card is None and loaded_from and (Path(loaded_from) / CARD_NAME).is_file():
        card = (Path(loaded_from) / CARD_NAME).read_text(encoding="utf-8")
    text = card if card is not None else model_card(out, name=name)
    write_text(out / CARD_NAME, text)
    return out


def push_folder(folder: str | os.PathLike, repo_id: str, *, commit_message: str | None = None,
                private: bool | None = None, token: str | bool | None = None, revision: str | None = None,
                create_pr: bool = False) -> str:
    """Upload an fxaug model folder (config.json, model.safetensors, and README.md and the
    samples.png it shows when there are; nothing else) to `repo_id` as one commit, creating the
    repo if needed; checks first that the folder loads. Returns the commit's URL. The shipped
    model goes as it stands: push_folder(BUNDLED_DIR / "inpaint-ferplus-48", "me/inpaint-ferplus-48")."""
    from .base import PretrainedModel

    folder = Path(folder)
    PretrainedModel.from_pretrained(folder)  # a folder that does not load is never pushed
    hub = _hub()
    errors = _errors()
    if split_repo_id(repo_id) is None or "@" in repo_id:
        raise ValueError(f"{repo_id!r} is not a Hub repo id (owner/name)")
    try:
        api = hub.HfApi(token=token, library_name="fxaug", library_version=_version())
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), allow_patterns=list(UPLOAD_FILES), revision=revision,
            create_pr=create_pr, commit_message=commit_message or f"Upload fxaug model {folder.name}",
        )
    except errors.OfflineModeIsEnabled:
        raise HubError(f"{repo_id}: cannot push while offline (HF_HUB_OFFLINE=1)") from None
    except errors.HfHubHTTPError as err:
        raise HubError(f"{repo_id}: the Hugging Face Hub refused the upload: {_first_line(err)}") from None
    return str(getattr(info, "commit_url", info))


def push_to_hub(model, repo_id: str, *, dtype: str = "float32", metadata: dict | None = None, card: str | None = None,
                **push_options) -> str:
    """`model.save_pretrained` + a model card into a temporary folder, then that folder to
    `repo_id` as one commit (`push_folder`). A folder already on disk (a shipped model with
    its card) goes with `push_folder` as it is."""
    with tempfile.TemporaryDirectory(prefix="fxaug-push-") as scratch:
        name = repo_id.split("/")[-1]
        folder = model_card_folder(model, Path(scratch) / name, dtype=dtype, metadata=metadata, card=card, name=name)
        return push_folder(folder, repo_id, **push_options)


def _errors():
    """huggingface_hub's exception classes: in huggingface_hub.errors since 0.23 (some moved there
    later), in huggingface_hub.utils before; each looked up where it is."""
    import types

    import huggingface_hub.utils as utils

    try:
        from huggingface_hub import errors
    except ImportError:
        errors = utils
    names = ("GatedRepoError", "RepositoryNotFoundError", "RevisionNotFoundError", "LocalEntryNotFoundError",
             "OfflineModeIsEnabled", "HfHubHTTPError", "HFValidationError")
    return types.SimpleNamespace(**{n: getattr(errors, n, None) or getattr(utils, n) for n in names})


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _version() -> str:
    from .. import __version__

    return __version__


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
