"""FiftyOne integration: browse synthesized faces beside the faces they came from.

    from fxaug.integrations.fiftyone import to_fiftyone
    ds = to_fiftyone("balanced/")                    # a `fxaug rebalance` output folder
    ds = to_fiftyone("balanced/manifest.jsonl")      # ... or its manifest
    ds = to_fiftyone(augmented)                      # a datasets.Dataset made by fxaug.augment
    fo.launch_app(ds)

The result is a grouped dataset: one group per source face, with the face itself in the slice
"original" and each synthesized face made from it in a slice named after its target ("happy",
"sad", ...). A face that fed one target several times (rebalance cycles its sources when a
class needs more faces than it has sources) gets one slice per output, numbered in job order:
"happy", "happy_2", "happy_3". Faces that fed no job are imported too, as groups with the
"original" slice alone, so the dataset is the whole rebalanced dataset. Rejected jobs (no face,
judge below --min-confidence) have no image and are not imported; manifest.jsonl lists them.

Every sample carries: emotion (fo.Classification: its label, the target for a synthesized
face), source_emotion, target, synthesized, method, model, strength, seed, judge_confidence,
identity_distance (None unless the manifest records it), fxaug_job and fxaug_source (the
source face's id in the rebalanced dataset, or its row in the augmented one). Originals have
None for everything that describes a synthesis.

Importing is idempotent: a sample is keyed by its file path, and a re-import (of the same
folder, or of a resumed run that made more faces) adds only files not yet in the dataset,
into the groups of their source faces.

`transfer_expression` is the logic of the App operator in fxaug.integrations.fiftyone_plugin,
kept here as a plain function so that it runs (and is tested) without the App.

FiftyOne is imported lazily: fxaug works without it, and asks for the `fiftyone` extra when
one of these functions is called.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

log = logging.getLogger("fxaug.integrations.fiftyone")

ORIGINAL_SLICE = "original"
GROUP_FIELD = "group"
PLUGIN_NAME = "@fxaug/expression"
OPERATOR_URI = f"{PLUGIN_NAME}/transfer_expression"
_SYNTHESIZED_NAME = re.compile(r"^fxaug-(?P<target>[a-z]+)-(?P<job>\d+)\.png$")
_IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


class FiftyOneMissing(ImportError):
    """FiftyOne is not installed."""


def require_fiftyone():
    """The fiftyone module, or an error that names the extra to install."""
    try:
        import fiftyone
    except ImportError as err:
        raise FiftyOneMissing(
            "the FiftyOne integration needs FiftyOne, which is not installed: "
            "pip install 'fxaug[fiftyone]'"
        ) from err
    return fiftyone


# -- what gets imported, independent of FiftyOne ---------------------------------------------

@dataclass
class Face:
    """One future sample: a file and what fxaug knows about it."""

    filepath: str
    emotion: str
    source_emotion: str | None
    target: str | None = None  # None: an original
    method: str | None = None
    model: str | None = None
    strength: float | None = None
    seed: int | None = None
    judge_confidence: float | None = None
    identity_distance: float | None = None
    fxaug_job: int | None = None
    fxaug_source: str | None = None

    @property
    def synthesized(self) -> bool:
        return self.target is not None


@dataclass
class FaceGroup:
    original: Face | None  # None when the source face's file is not in the output
    synthesized: list[Face] = field(default_factory=list)

    def members(self) -> list[Face]:
        return ([self.original] if self.original else []) + self.synthesized


def read_rebalance_output(path: str | os.PathLike) -> tuple[list[FaceGroup], dict[str, Any]]:
    """The groups of a `fxaug rebalance` output folder (or of the folder of a manifest.jsonl
    path), and the run's settings for the dataset's info.

    Every path is confined to the output folder: a manifest line naming a file elsewhere
    ("../x.png", an absolute path, a link that leads out), a link among the originals that
    leads out, and a manifest line of the wrong form are each reported (a warning naming the
    manifest's line or the file) and skipped. FiftyOne serves the files a dataset names, so an
    output folder never makes it serve another."""
    from fxaug import emotions as E
    from fxaug.models import model_reference
    from fxaug.rebalance import MANIFEST, PLAN, SUMMARY, original_name

    path = Path(path)
    out = path.parent if path.is_file() else path
    manifest_path = path if path.is_file() else out / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: no rebalance manifest; give a `fxaug rebalance --out` folder "
                                f"or its manifest.jsonl")
    out = out.resolve()
    plan = _read_json_object(out / PLAN)
    summary = _read_json_object(out / SUMMARY)
    ledger = _read_originals_ledger(out / "originals.jsonl")  # source_id -> file below OUT (rebalance's record)

    # Originals: every image below a class folder that rebalance did not synthesize.
    originals: dict[str, Face] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        try:
            emotion = E.canonical(folder.name)
        except (KeyError, ValueError):
            continue  # not a class folder (an App export, notes, ...)
        for root, dirs, names in os.walk(folder):  # links to folders are not followed
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                file = Path(root, name)
                if name.startswith(".") or file.suffix.lower() not in _IMAGE_EXTENSIONS:
                    continue
                if file.parent == folder and _SYNTHESIZED_NAME.match(name):
                    continue
                confined = _confined(out, file.relative_to(out), str(file))
                if confined is not None:
                    originals[str(confined)] = Face(str(confined), emotion, emotion)

    # Without originals.jsonl (older runs), originals are matched by class and path below the
    # class folder without extension: rebalance gives a name the extension of the source's
    # file, or .png when the pixels came from a table.
    by_stem = {(face.emotion, _stem(Path(p).relative_to(out).as_posix().split("/", 1)[1])): p
               for p, face in originals.items()}
    # Where rebalance copied each source face (the manifest names sources by their id in the
    # input dataset). Class-folder inputs drop the class folder from the name; other formats
    # flatten the id. Without summary.json (an interrupted run) both are tried.
    formats = [summary["format"] == "folders"] if isinstance(summary.get("format"), str) else [True, False]
    run_model = plan.get("model") or summary.get("model")
    run_model = model_reference(run_model) if isinstance(run_model, str) else None
    groups: dict[str, FaceGroup] = {}
    for number, record in _read_jsonl(manifest_path):
        where = f"{manifest_path}:{number}"
        if not isinstance(record, dict):
            log.warning("%s: not a JSON object; skipped", where)
            continue
        if record.get("kept") is not True:
            continue  # a rejected job: no image
        why = _record_problem(record)
        if why:
            log.warning("%s: %s; skipped", where, why)
            continue
        source_id = record["source_id"]
        source_label, target = E.canonical(record["source_label"]), E.canonical(record["target"])
        file = _confined(out, Path(record["file"]), where)
        if file is None:
            continue
        original_path = None
        if source_id in ledger:
            recorded = _confined(out, Path(ledger[source_id]), f"{out / 'originals.jsonl'} ({source_id})")
            original_path = str(recorded) if recorded is not None and str(recorded) in originals else None
        if original_path is None:
            original_path = next((by_stem[k] for folders in formats
                                  if (k := (source_label, _stem(original_name(source_id, "", folders)))) in by_stem), None)
        key = original_path or f"missing:{source_id}"
        if key not in groups:
            original = originals.get(original_path) if original_path else None
            if original is None:
                log.warning("%s: source face %s is not in %s; its outputs form a group without an original",
                            where, source_id, out)
            else:
                original.fxaug_source = source_id
            groups[key] = FaceGroup(original)
        model = record.get("model")
        groups[key].synthesized.append(Face(
            str(file), emotion=target, source_emotion=source_label, target=target,
            method=record.get("method") or plan.get("method"),
            model=model_reference(model) if isinstance(model, str) and model else run_model,
            strength=plan.get("strength"), seed=record.get("seed"), judge_confidence=record.get("judge_score"),
            identity_distance=record.get("identity_distance"), fxaug_job=record.get("job"), fxaug_source=source_id,
        ))
    for filepath, original in originals.items():
        groups.setdefault(filepath, FaceGroup(original))
    method = plan.get("method") or summary.get("method")
    info = {"source": str(out), "kind": "rebalance", "model": run_model,
            "method": method if isinstance(method, str) else None}
    return [groups[k] for k in sorted(groups)], info


def _confined(out: Path, rel: Path, where: str) -> Path | None:
    """OUT/rel (normalised) when it is a regular file inside `out` (a resolved folder), links
    followed; otherwise None, with a warning naming `where`."""
    if rel.is_absolute():
        log.warning("%s: %s is an absolute path, not a file below %s; skipped", where, rel, out)
        return None
    path = Path(os.path.normpath(out / rel))
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        log.warning("%s: %s is recorded but missing; skipped", where, path)
        return None
    except (OSError, RuntimeError) as err:  # a link loop, a name too long
        log.warning("%s: %s cannot be resolved (%s); skipped", where, rel, err)
        return None
    if not real.is_relative_to(out) or not path.is_relative_to(out):
        log.warning("%s: %s leads outside %s (to %s); skipped: fxaug imports only files inside the output folder",
                    where, rel, out, real)
        return None
    if not real.is_file():
        log.warning("%s: %s is not a regular file; skipped", where, path)
        return None
    return path


_RECORD_TYPES = {"file": str, "source_id": str, "source_label": str, "target": str}
_OPTIONAL_TYPES = {"job": int, "seed": int, "judge_score": (int, float), "identity_distance": (int, float),
                   "method": str, "model": str}


def _record_problem(record: dict) -> str | None:
    """Why a kept manifest record cannot be imported, or None."""
    from fxaug import emotions as E

    for key, kind in _RECORD_TYPES.items():
        if not isinstance(record.get(key), kind) or not record[key]:
            return f"{key} is {record.get(key)!r}, not a non-empty string"
    for key, kind in _OPTIONAL_TYPES.items():
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            return f"{key} is {value!r}, of the wrong type"
    for key in ("source_label", "target"):
        try:
            E.canonical(record[key])
        except (KeyError, ValueError):
            return f"{key} {record[key]!r} is not an emotion"
    return None


def _read_json_object(path: Path) -> dict:
    """A JSON object file (plan.json, summary.json), or {} with a warning when it is absent,
    not JSON or not an object."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        log.warning("%s: cannot be read (%s); its settings are not imported", path, err)
        return {}
    if not isinstance(data, dict):
        log.warning("%s: not a JSON object; its settings are not imported", path)
        return {}
    return data


def _read_originals_ledger(path: Path) -> dict[str, str]:
    """rebalance's originals.jsonl: source_id -> the original's file below OUT."""
    ledger = {}
    if path.is_file():
        for _, record in _read_jsonl(path):
            if isinstance(record, dict) and isinstance(record.get("source_id"), str) and isinstance(record.get("file"), str):
                ledger[record["source_id"]] = record["file"]
    return ledger


def augmented_content_key(dataset, image_column: str = "image") -> str:
    """A digest of a dataset's rows (pixels and provenance), the same for a copy saved with
    save_to_disk and loaded back, whose `datasets` fingerprint differs."""
    import numpy as np
    from PIL import Image

    from fxaug.hf import PROVENANCE

    digest = hashlib.sha1()
    for example in dataset:
        image = example[image_column]
        pixels = np.asarray(image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image)))
        digest.update(repr((pixels.shape, str(pixels.dtype), [example.get(c) for c in PROVENANCE])).encode())
        digest.update(pixels.tobytes())
    return digest.hexdigest()[:16]


def read_augmented_dataset(dataset, media_dir: str | os.PathLike, image_column: str = "image",
                           label_column: str = "label", key: str | None = None,
                           progress: bool = False) -> tuple[list[FaceGroup], dict[str, Any]]:
    """The groups of a `datasets.Dataset` that fxaug.augment extended: each original row and
    the synthesized rows after it. Images are written once to media_dir/<content key>/ (FiftyOne
    shows files), named by row, so a re-import (also of a saved and reloaded copy) finds the
    same paths. progress: a tqdm bar (stderr) over the rows."""
    import numpy as np
    from PIL import Image
    from tqdm.auto import tqdm

    from fxaug import emotions as E
    from fxaug.hf import PROVENANCE
    from fxaug.io import write_image

    missing = [c for c in (image_column, label_column, *PROVENANCE) if c not in dataset.column_names]
    if missing:
        raise ValueError(f"this dataset was not made by fxaug.augment: no column(s) {', '.join(missing)} "
                         f"(columns: {', '.join(dataset.column_names)})")
    names = getattr(dataset.features[label_column], "names", None)
    fingerprint = key or augmented_content_key(dataset, image_column)
    folder = Path(media_dir) / fingerprint
    groups: list[FaceGroup] = []
    by_source: dict[int, FaceGroup] = {}
    rows = tqdm(dataset, total=len(dataset), desc="reading rows", unit="row", disable=not progress)
    for row, example in enumerate(rows):
        label = example[label_column]
        emotion = E.canonical(label if isinstance(label, str) else names[int(label)])
        file = folder / f"{row:07d}.png"
        if not file.is_file():
            image = example[image_column]
            image = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
            write_image(file, np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image))
        source_index = example["fxaug_source_index"]
        source = None if source_index is None or source_index < 0 else str(source_index)
        if example["fxaug_target"] is None:
            group = FaceGroup(Face(str(file), emotion, example["fxaug_source_label"] or emotion, fxaug_source=source))
            groups.append(group)
            if source is not None:
                by_source[int(source)] = group
            continue
        # A synthesized row belongs to its source row (by index when the map passed indices,
        # otherwise to the original just before it, as fxaug.augment writes them).
        group = by_source.get(int(source)) if source is not None else None
        group = group or (groups[-1] if groups else None)
        if group is None:
            group = FaceGroup(None)
            groups.append(group)
        group.synthesized.append(Face(
            str(file), emotion=emotion, source_emotion=example["fxaug_source_label"], target=example["fxaug_target"],
            method=example["fxaug_method"], model=example["fxaug_model"], fxaug_source=source,
        ))
    info = {"source": f"datasets.Dataset {fingerprint}", "kind": "augment",
            "model": next((f.model for g in groups for f in g.synthesized), None)}
    return groups, info


def _stem(name: str) -> str:
    base, ext = os.path.splitext(name)
    return base if ext.lower() in _IMAGE_EXTENSIONS else name


def _read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """(line number, value) for each JSON line of `path`; a line that is not JSON is reported."""
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError:
            # rebalance drops a torn last line itself when it resumes; here it is only skipped
            log.warning("%s:%d: not JSON (an interrupted write?); skipped", path, number)
    return records


def slice_name(target: str, taken: Iterable[str]) -> str:
    """The slice for another output of `target` in a group whose slices are `taken`: the
    target's name, then target_2, target_3, ..."""
    taken = set(taken)
    if target not in taken:
        return target
    k = 2
    while f"{target}_{k}" in taken:
        k += 1
    return f"{target}_{k}"


# -- FiftyOne --------------------------------------------------------------------------------

_FIELDS = {  # name -> fiftyone.core.fields class name, declared up front: None-only fields keep a type
    "source_emotion": "StringField",
    "target": "StringField",
    "synthesized": "BooleanField",
    "method": "StringField",
    "model": "StringField",
    "strength": "FloatField",
    "seed": "IntField",
    "judge_confidence": "FloatField",
    "identity_distance": "FloatField",
    "fxaug_job": "IntField",
    "fxaug_source": "StringField",
}


def _open_dataset(name: str, overwrite: bool, persistent: bool):
    fo = require_fiftyone()
    if overwrite or not fo.dataset_exists(name):
        dataset = fo.Dataset(name, overwrite=overwrite)
    else:
        dataset = fo.load_dataset(name)
        if dataset.media_type not in (None, "group") or (dataset.media_type == "group" and dataset.group_field != GROUP_FIELD):
            raise ValueError(f"FiftyOne dataset {name!r} exists and is not an fxaug grouped dataset; "
                             f"choose another name or overwrite=True (--overwrite)")
    if dataset.media_type is None:
        dataset.add_group_field(GROUP_FIELD, default=ORIGINAL_SLICE)
    import fiftyone.core.fields as fof

    dataset.add_sample_field("emotion", fof.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    for field_name, kind in _FIELDS.items():
        dataset.add_sample_field(field_name, getattr(fof, kind))
    if persistent:
        dataset.persistent = True
    return dataset


def all_slices(dataset):
    """Every sample of a grouped dataset, whatever its slice."""
    return dataset.select_group_slices(_allow_mixed=True) if dataset.media_type == "group" else dataset


def _group_index(dataset) -> tuple[dict[str, str], dict[str, set[str]]]:
    """filepath -> group id, and group id -> its slice names, for what the dataset holds."""
    if not len(dataset):
        return {}, {}
    view = all_slices(dataset)
    paths, ids, slices = view.values("filepath"), view.values(f"{GROUP_FIELD}.id"), view.values(f"{GROUP_FIELD}.name")
    taken: dict[str, set[str]] = {}
    for gid, name in zip(ids, slices):
        taken.setdefault(str(gid), set()).add(name)
    return {p: str(g) for p, g in zip(paths, ids)}, taken


def _sample(face: Face, group, slice_: str):
    fo = require_fiftyone()
    values = {name: getattr(face, name) for name in _FIELDS if name != "synthesized"}
    return fo.Sample(filepath=face.filepath, emotion=fo.Classification(label=face.emotion), synthesized=face.synthesized,
                     **{GROUP_FIELD: group.element(slice_)}, **values)


_ADD_CHUNK = 500  # samples per add_samples call: the bar moves, and FiftyOne batches its writes anyway


def add_groups(dataset, groups: Sequence[FaceGroup], progress: bool = False) -> int:
    """Add the faces not yet in `dataset`, into the groups of their source faces. Returns how
    many samples were added. progress: a tqdm bar (stderr) over the samples added."""
    from tqdm.auto import tqdm

    fo = require_fiftyone()
    group_of, taken = _group_index(dataset)
    samples = []
    for face_group in groups:
        gid = next((group_of[f.filepath] for f in face_group.members() if f.filepath in group_of), None)
        group = fo.Group(id=gid) if gid else fo.Group()
        names = taken.setdefault(str(group.id), set())
        if face_group.original and face_group.original.filepath not in group_of:
            samples.append(_sample(face_group.original, group, ORIGINAL_SLICE))
            names.add(ORIGINAL_SLICE)
        for face in face_group.synthesized:
            if face.filepath in group_of:
                continue
            name = slice_name(face.target, names)
            names.add(name)
            samples.append(_sample(face, group, name))
    with tqdm(total=len(samples), desc="adding samples", unit="sample", disable=not progress) as bar:
        for start in range(0, len(samples), _ADD_CHUNK):
            chunk = samples[start:start + _ADD_CHUNK]
            dataset.add_samples(chunk, progress=False)  # fxaug's bar, not FiftyOne's (stdout) as well
            bar.update(len(chunk))
    if dataset.media_type == "group" and ORIGINAL_SLICE in dataset.group_slices:
        dataset.default_group_slice = ORIGINAL_SLICE
        dataset.group_slice = ORIGINAL_SLICE
    return len(samples)


def default_name(source, key: str | None = None) -> str:
    """A folder's name, or an augmented dataset's content key (computed when not given)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).resolve()
        return "fxaug-" + (path.parent.name if path.is_file() else path.name)
    return "fxaug-augmented-" + (key or augmented_content_key(source))[:12]


def to_fiftyone(source, name: str | None = None, persistent: bool = False, overwrite: bool = False, *,
                media_dir: str | os.PathLike | None = None, image_column: str = "image", label_column: str = "label",
                progress: bool = False):
    """Import fxaug's output as a grouped FiftyOne dataset (see the module's docstring).

    source:     a `fxaug rebalance` output folder, its manifest.jsonl, a datasets.Dataset made
                by fxaug.augment, or the folder it was saved to (save_to_disk).
    name:       the FiftyOne dataset (default: fxaug-<folder name>); an existing one made by
                this function gets what it lacks, nothing twice.
    persistent: keep the dataset when Python exits (FiftyOne deletes non-persistent ones).
    overwrite:  delete an existing dataset of that name first.
    media_dir:  where images of a datasets.Dataset are written (default: FiftyOne's
                default_dataset_dir/<name>); rebalance outputs are used where they are.
    progress:   tqdm bars on stderr while a datasets.Dataset's rows are read and while samples
                are added (`fxaug fiftyone` shows them unless -q / --no-progress).
    """
    source = _load_saved_dataset(source)
    # Read the source before touching the database: a bad source leaves no empty dataset behind
    # (and a rebalance folder is read before FiftyOne's slow import: a wrong path fails at once).
    if isinstance(source, (str, os.PathLike)):
        groups, info = read_rebalance_output(source)
        require_fiftyone()
        name = name or default_name(source)
    elif hasattr(source, "column_names") and hasattr(source, "features"):
        fo = require_fiftyone()
        key = augmented_content_key(source, image_column)
        name = name or default_name(source, key)
        media = Path(media_dir) if media_dir else Path(fo.config.default_dataset_dir) / name
        groups, info = read_augmented_dataset(source, media, image_column=image_column, label_column=label_column, key=key,
                                              progress=progress)
    else:
        raise TypeError(f"to_fiftyone: cannot import a {type(source).__name__}; give a rebalance output folder, "
                        f"its manifest.jsonl or a datasets.Dataset made by fxaug.augment")
    dataset = _open_dataset(name, overwrite, persistent)
    added = add_groups(dataset, groups, progress=progress)
    sources = list(dataset.info.get("fxaug_sources", []))
    if info["source"] not in sources:
        sources.append(info["source"])
    dataset.info["fxaug_sources"] = sources
    if info.get("model"):
        dataset.info["fxaug_model"] = info["model"]  # the operator's default generator
    dataset.save()
    log.info("%s: added %d samples (%d groups in the source)", name, added, len(groups))
    return dataset


def _load_saved_dataset(source):
    """A folder written by datasets' save_to_disk becomes its Dataset; anything else is kept."""
    if isinstance(source, (str, os.PathLike)) and Path(source, "dataset_info.json").is_file() \
            and not Path(source, "manifest.jsonl").is_file():
        import datasets

        return datasets.load_from_disk(str(source))
    return source


# -- the App operator's work -----------------------------------------------------------------

def transfer_expression(dataset, sample_ids: Sequence[str], target: str, *, model: str | None = None,
                        method: str | None = None, strength: float = 1.0, device: str = "auto",
                        media_dir: str | os.PathLike | None = None, batch_size: int = 64,
                        progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Give the source face of each selected sample's group the target expression, and add each
    result to that group as a new slice (the target's name, numbered if taken). A selected
    synthesized face stands for its group: the transfer always starts from the original.

    model: a shipped model's name or a checkpoint folder; default: the generator the dataset
    was made with (info["fxaug_model"]), else a shipped one that can. Outputs are written to
    media_dir (default: FiftyOne's default_dataset_dir/<dataset>/fxaug-operator/<target>/),
    named by source, target and settings: running the same request twice adds nothing.
    progress: called as progress(share done, label) before the first batch and after each one
    (the App operator passes FiftyOne's ctx.set_progress).
    Returns counts: added, no_face, already (outputs that were in the dataset), and the slices.
    """
    fo = require_fiftyone()
    from fxaug import emotions as E
    from fxaug.data import decode_image
    from fxaug.io import write_image
    from fxaug.models import select_model
    from fxaug.pipeline import ExpressionPipeline

    from fxaug.models import model_reference

    target = E.canonical(target)
    method = method or None
    # recorded resolved (a checkpoint folder) or by name (a shipped model): found from any folder
    model = model_reference(model or dataset.info.get("fxaug_model") or select_model(target, method))
    pipe = ExpressionPipeline(model, method=method, device=device, batch_size=batch_size)
    pipe.check_target(target)
    media = Path(media_dir) if media_dir else Path(fo.config.default_dataset_dir) / dataset.name / "fxaug-operator"

    if dataset.media_type != "group":
        raise ValueError(f"{dataset.name!r} is not a grouped dataset; import fxaug's outputs with to_fiftyone first")
    selected = all_slices(dataset).select(list(sample_ids))
    sources: dict[str, Any] = {}  # group id -> the sample to transfer from
    for sample in selected.iter_samples():
        group = sample[GROUP_FIELD]
        gid = str(group.id)
        if gid not in sources:
            original = dataset.get_group(group.id).get(ORIGINAL_SLICE) if group.name != ORIGINAL_SLICE else sample
            sources[gid] = original or sample
    if len(sources) == 0 and len(sample_ids):
        raise ValueError(f"none of the {len(sample_ids)} selected ids is a sample of {dataset.name!r}")

    group_of, taken = _group_index(dataset)
    digest = hashlib.sha256(f"{model}|{pipe.method}|{strength:g}".encode()).hexdigest()[:10]
    todo = []  # (group id, source sample, output path)
    already = 0
    for gid, source in sources.items():
        output = media / target / f"{Path(source.filepath).stem}-{target}-{digest}.png"
        if str(output) in group_of:
            already += 1
            continue
        todo.append((gid, source, output))

    added, no_face, slices = [], 0, set()

    def report(done: int) -> None:
        if progress is not None:
            progress(done / len(todo) if todo else 1.0,
                     f"{done} of {len(todo)} faces to {target}: {len(added)} added, {no_face} without a face"
                     + (f", {already} already there" if already else ""))

    report(0)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        images = [decode_image(source.filepath, color="native")[0] for _, source, _ in chunk]
        for (gid, source, output), result in zip(chunk, pipe.transfer(images, target, strength)):
            if not result.found:
                log.warning("%s: %s; nothing added", source.filepath, result.reason)
                no_face += 1
                continue
            write_image(output, result.image)
            source_emotion = source["emotion"].label if source["emotion"] is not None else None
            face = Face(str(output), emotion=target, source_emotion=source_emotion, target=target, method=pipe.method,
                        model=str(model), strength=float(strength), fxaug_source=source["fxaug_source"])
            names = taken.setdefault(gid, set())
            slice_ = slice_name(target, names)
            names.add(slice_)
            slices.add(slice_)
            added.append(_sample(face, fo.Group(id=gid), slice_))
        report(start + len(chunk))
    if added:
        dataset.add_samples(added, progress=False)
    return {"added": len(added), "no_face": no_face, "already": already, "slices": sorted(slices),
            "model": str(model), "method": pipe.method}


# -- serving the App --------------------------------------------------------------------------

def address_warning(address: str, port: int) -> str | None:
    """A warning when the App would listen beyond this machine (None for a loopback address):
    FiftyOne's media server hands any file path it is asked for to whoever reaches the port."""
    import ipaddress

    try:
        loopback = ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        loopback = address.lower() in ("localhost", "localhost.localdomain", "ip6-localhost")
    if loopback:
        return None
    return (f"the FiftyOne App will listen on {address}:{port}, beyond this machine: anyone who can reach that port "
            f"can browse this dataset and, through FiftyOne's media server, download every file this user can read. "
            f"Use --address 127.0.0.1 (the default) and an SSH tunnel (ssh -N -L {port}:127.0.0.1:{port} HOST) to look "
            f"from elsewhere")


def quiet_duplicate_logging() -> None:
    """FiftyOne gives its loggers ("fiftyone", "eta") handlers of their own and lets records
    propagate too, so under a root handler (the fxaug CLI's) every line, its banner included,
    printed twice. Its own handlers print them once."""
    import logging

    for name in ("fiftyone", "eta"):
        logging.getLogger(name).propagate = False


# -- registering the App plugin --------------------------------------------------------------

def plugin_dir() -> Path:
    """The folder of the FiftyOne plugin that ships with fxaug (fiftyone.yml + __init__.py)."""
    return Path(__file__).resolve().parent / "fiftyone_plugin"


def install_plugin(plugins_dir: str | os.PathLike | None = None) -> Path:
    """Link the shipped plugin into FiftyOne's plugins directory (default: fo.config.plugins_dir,
    set by FIFTYONE_PLUGINS_DIR), so the App lists its operator. Returns the link."""
    if plugins_dir is None:
        plugins_dir = require_fiftyone().config.plugins_dir
    link = Path(plugins_dir) / "fxaug-expression"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == plugin_dir():
        return link
    if link.exists() or link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a link to {plugin_dir()}; remove it first")
    link.symlink_to(plugin_dir(), target_is_directory=True)
    return link
