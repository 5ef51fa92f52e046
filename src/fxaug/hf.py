"""Hugging Face `datasets`: append synthesized faces with a map, or replace faces per epoch
with a transform.

    import fxaug
    ds = ds.map(fxaug.augment, batched=True, with_indices=True)            # shipped generator
    aug = fxaug.Augmenter(model="runs/x/generator", targets=["disgust"])
    ds = ds.map(aug, batched=True, with_indices=True, with_rank=True, num_proc=2,
                features=aug.features(ds))                                  # one process per GPU
    train = ds.with_transform(aug.as_transform(p=0.5, dataset=ds))          # a fresh draw per epoch

The map keeps each input row and follows it with `per_image` synthesized rows (targets sampled
from `targets`, never the row's own label), with provenance columns of declared types
(`PROVENANCE_FEATURES`): fxaug_source_index (-1 unless the map passes indices: use
with_indices=True), fxaug_source_label, fxaug_target, fxaug_method, fxaug_model; originals
carry their own label as source and None elsewhere. Under `Dataset.map` the function returns an
Arrow table whose schema declares those types, so a first batch that synthesizes nothing (all
None) no longer fixes them as null; `features=aug.features(ds)` declares them to datasets up
front as well (needed only when the dataset is formatted, e.g. with_format("torch")). Originals
are copied from the input table as stored (an image's bytes are not re-encoded), and a ClassLabel
column's names are read from the dataset's features.

Sampling is seeded by (seed, source index), so results do not depend on batch size or process;
a shard of a dataset maps with fn_kwargs={"offset": shard_start(...)} to keep the whole
dataset's indices (docs/datasets.md). A row whose image is missing (None) or cannot be decoded
is kept as it is, with a warning naming the row and the reason, and nothing is synthesized from
it; the rest of the map goes on. A target the model cannot produce is an error naming what it
offers. With batched=False (datasets cannot add rows then) each row is replaced by its
synthesized version instead.

The augmenter pickles (and so hashes, for `datasets`' fingerprint and cache) as its settings
alone, model id included, never the loaded generator: the fingerprint is stable across
processes and sessions, and no "random hash" warning appears.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import emotions as E
from .data.images import decode_image
from .data.records import BadInput

log = logging.getLogger("fxaug.hf")
_IMPORT_PID = os.getpid()  # differs from os.getpid() only in a forked child (a map worker)
PROVENANCE = ("fxaug_source_index", "fxaug_source_label", "fxaug_target", "fxaug_method", "fxaug_model")
_PROVENANCE_TYPES = ("int64", "string", "string", "string", "string")


def provenance_features():
    """The declared `datasets` types of the columns the map appends (PROVENANCE)."""
    from datasets import Features, Value

    return Features({name: Value(dtype) for name, dtype in zip(PROVENANCE, _PROVENANCE_TYPES)})


def shard_start(num_rows: int, num_shards: int, index: int) -> int:
    """The first row of `Dataset.shard(num_shards, index)` (contiguous, datasets' default) in the
    whole dataset: pass it as fn_kwargs={"offset": ...} so a shard's map seeds and records the
    whole dataset's row numbers, and the shards' union equals a single-process map."""
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} is not in 0..{num_shards - 1}")
    div, mod = divmod(num_rows, num_shards)
    return div * index + min(index, mod)


@dataclass
class _Made:
    """One output row of the map: a copy of batch row `row`, synthesized when `image` is set."""

    row: int
    index: int
    source: str | None
    target: str | None = None
    image: np.ndarray | None = None


class Augmenter:
    def __init__(
        self,
        model: str | None = None,
        targets: Sequence[str] | str | None = None,
        per_image: int = 1,
        method: str | None = None,
        strength: float = 1.0,
        image_column: str = "image",
        label_column: str = "label",
        seed: int = 0,
        device: str = "auto",
        batch_size: int = 64,
        torch_dtype: str | None = None,
    ):
        # Recorded (fxaug_model column, fingerprint) so that it is found again from any folder:
        # a checkpoint folder by its absolute path, a shipped model by its name.
        if isinstance(model, (str, bytes, os.PathLike)):
            from .models import model_reference

            model = model_reference(os.fsdecode(model))
        self.model = None if model is None else str(model)
        self.targets = None if targets is None else tuple(E.parse_list(targets))
        self.per_image = int(per_image)
        self.method = method
        self.strength = float(strength)
        self.image_column = image_column
        self.label_column = label_column
        self.seed = int(seed)
        self.device = device
        self.batch_size = batch_size
        # float32 by default; "bfloat16" / "float16" / "auto" for a GPU (fxaug.models.load_model)
        self.torch_dtype = None if torch_dtype is None else str(torch_dtype).removeprefix("torch.")
        self._pipelines: dict[Any, Any] = {}

    # Settings only: the pickle (and so datasets' hash) never contains the loaded generator, nor
    # the once-only warning flags, so a hash taken after a map equals the one taken before.
    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_said")}
        state["_pipelines"] = {}
        state["_model_id"] = self.model_id()
        return state

    def __setstate__(self, state: dict) -> None:
        state.pop("_model_id", None)
        self.__dict__.update(state)

    def model_id(self) -> str:
        """The model's name or path plus a digest of its weights file (so retraining in place
        changes the fingerprint)."""
        from .models import WEIGHTS_NAME, model_dir
        from pathlib import Path

        name = self.model or self._default_model_name()
        try:  # a Hub model (owner/name@commit) from the cache only: a fingerprint never downloads
            path = model_dir(name, local_files_only=True)
        except FileNotFoundError:
            path = Path(name)
        weights = path / WEIGHTS_NAME
        stat = weights.stat() if weights.is_file() else None
        digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16] if stat else "missing"
        return f"{name}@{digest}"

    def _default_model_name(self) -> str:
        from .models import select_model

        return select_model(self.targets or ["happy"], self.method)

    def pipeline(self, rank: int | None = None):
        """The engine for this process (and GPU, with rank), loaded on first use."""
        import torch

        from .pipeline import ExpressionPipeline

        key = rank
        if key not in self._pipelines:
            if os.getpid() != _IMPORT_PID:
                # A map worker (num_proc): one intra-op thread, as torch's DataLoader workers use;
                # OpenMP's pool inherited over fork deadlocks otherwise.
                torch.set_num_threads(1)
            device = self.device
            if device == "auto" and _in_dataloader_worker():
                # A DataLoader worker is a forked process: CUDA cannot start there once the
                # parent has used it, and one generator per worker per GPU wastes its memory.
                log.warning("fxaug: in a DataLoader worker the generator runs on the CPU (CUDA cannot start in a "
                            "forked worker); for the GPU read the dataset with num_workers=0 or pass device=")
                device = "cpu"
            elif rank is not None and device == "auto" and torch.cuda.is_available():
                device = f"cuda:{rank % torch.cuda.device_count()}"
            model = self.model or self._default_model_name()
            self._pipelines[key] = ExpressionPipeline(model, method=self.method, device=device, batch_size=self.batch_size,
                                                      torch_dtype=getattr(self, "torch_dtype", None))
        return self._pipelines[key]

    def features(self, dataset):
        """The map's output Features: the dataset's own (a Dataset or its Features) plus the
        provenance columns, for ds.map(aug, ..., features=aug.features(ds))."""
        from datasets import DatasetDict, Features, IterableDatasetDict

        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):  # one map over every split
            split_features = {name: split.features for name, split in dataset.items()}
            if len({repr(f) for f in split_features.values()}) > 1:
                raise ValueError(f"fxaug: the splits' features differ ({split_features}); map each split with its own")
            dataset = next(iter(dataset.values()))
        base = dataset if isinstance(dataset, Features) else dataset.features
        if base is None:
            raise TypeError("fxaug: this dataset does not know its features (an IterableDataset read without them); "
                            "pass its Features: aug.features(features)")
        return Features({**base, **provenance_features()})

    def __call__(self, batch: dict[str, Any], *args, indices=None, rank=None, offset: int = 0):
        """datasets calls fn(batch[, indices][, rank]) positionally: with_rank without
        with_indices passes the rank second, where the indices would be."""
        if len(args) > 2:
            raise TypeError(f"fxaug.augment takes a batch, indices and a rank; got {len(args) + 1} arguments")
        for column in (self.image_column, self.label_column):
            if column not in batch:
                raise KeyError(f"fxaug.augment: no column {column!r} in the batch (columns: {', '.join(batch)}); "
                               f"set image_column= / label_column=")
        labels = batch[self.label_column]
        batched = isinstance(labels, (list, tuple)) or getattr(labels, "ndim", 0) >= 1  # also arrays, tensors
        if len(args) == 2:
            indices, rank = args
        elif len(args) == 1:
            if _is_rank(args[0], batched):
                rank = args[0]
            else:
                indices = args[0]
        if indices is not None and offset:
            indices = [int(i) + offset for i in indices] if batched else int(indices) + offset
        if batched:
            return self._augment(batch, self._image_cells(batch, single=False), indices, rank)
        return self._augment_one(batch, indices, rank)

    def _augment_one(self, example: dict[str, Any], index: int | None, rank: int | None):
        """batched=False: datasets' non-batched map cannot add rows, so each row is replaced by
        its synthesized version (provenance columns say so); a row without one stays as it was."""
        if self.per_image != 1:
            raise ValueError(f"fxaug.augment: per_image={self.per_image} adds rows, which datasets allows only in a "
                             f"batched map: ds.map(augmenter, batched=True, with_indices=True)")
        if not getattr(self, "_said_single", False):
            self._said_single = True
            log.warning("fxaug.augment with batched=False replaces each row by its synthesized version (originals are "
                        "not kept); ds.map(fxaug.augment, batched=True, with_indices=True) keeps them and adds rows")
        cells = self._image_cells(example, single=True)
        batch = _OneRowBatch({k: [cells[0] if k == self.image_column else example[k]] for k in example},
                             getattr(example, "pa_table", None))
        out = self._augment(batch, cells, None if index is None else [index], rank)
        if not isinstance(out, dict):  # an Arrow table: its last row is the synthesized one when there is one
            return out.slice(out.num_rows - 1, 1)
        row = len(out[self.image_column]) - 1
        return {k: v[row] for k, v in out.items()}

    def _image_cells(self, batch, single: bool) -> list:
        """The image column's cells. A cell datasets cannot decode (a corrupt file) fails the
        whole column, so then the raw cells ({"bytes", "path"}) are read from the batch's arrow
        table and decoded one by one here."""
        try:
            value = batch[self.image_column]
        except Exception as err:  # noqa: BLE001 - whatever the decoder raised; checked per row below
            table = getattr(batch, "pa_table", None)
            if table is None:
                raise
            log.debug("fxaug.augment: image column not decodable as a whole (%s); decoding row by row", err)
            return table.column(self.image_column).to_pylist()
        return [value] if single else list(value)

    def _class_names_for(self, table) -> list[str] | None:
        """The label names: bound by for_dataset, else a ClassLabel's names read from the
        batch's Arrow schema (datasets keeps the Features there)."""
        if hasattr(self, "_class_names"):
            return self._class_names
        features = _table_features(table)
        names = getattr(features.get(self.label_column), "names", None) if features else None
        return None if names is None else [E.canonical(n) for n in names]

    def _check_targets(self, pipe, class_names: list[str] | None) -> tuple[str, ...]:
        """The targets to sample from; a target asked for that the model (or the dataset's label
        names) lacks is an error naming what there is, not rows silently never made."""
        model_name = self.model or self._default_model_name()
        if self.targets is not None:
            missing = [t for t in self.targets if t not in pipe.targets]
            if missing:
                raise ValueError(f"fxaug.augment: the model {model_name} cannot produce {', '.join(missing)}; "
                                 f"it offers {', '.join(pipe.targets)}")
            if class_names is not None:
                missing = [t for t in self.targets if t not in class_names]
                if missing:
                    raise ValueError(f"fxaug.augment: the dataset's label names ({', '.join(class_names)}) have no "
                                     f"{', '.join(missing)}, so rows of that class cannot be labelled")
            return self.targets
        targets = tuple(t for t in pipe.targets if class_names is None or t in class_names)
        left = [t for t in pipe.targets if t not in targets]
        if left and not getattr(self, "_said_left", False):
            self._said_left = True
            log.warning("fxaug.augment: the model's targets %s are not among the dataset's label names; not synthesized",
                        ", ".join(left))
        return targets

    def _label_context(self, labels, table) -> tuple[list[str], list[str] | None]:
        """The rows' labels as emotion names, and the class names when labels are integers."""
        if all(isinstance(v, str) for v in labels):
            return [E.canonical(v) for v in labels], None
        class_names = self._class_names_for(table)
        if class_names is None:
            raise TypeError("fxaug.augment: integer labels need the dataset's class names (a ClassLabel column, or "
                            "fxaug.Augmenter(...).for_dataset(ds)), or string labels")
        return [class_names[int(v)] for v in labels], class_names

    def _augment(self, batch, cells: list, indices: Sequence[int] | None, rank: int | None):
        pipe = self.pipeline(rank)
        n = len(cells)
        table = getattr(batch, "pa_table", None)
        sources, class_names = self._label_context(list(batch[self.label_column]), table)
        targets = self._check_targets(pipe, class_names)
        images, jobs = [], []  # jobs: (row in batch, target)
        for row in range(n):
            index = -1 if indices is None else int(indices[row])
            choices = [t for t in targets if t != sources[row]]
            if not choices:
                continue
            try:
                pixels = _as_array(cells[row])
            except (BadInput, ValueError, TypeError, OSError) as err:
                log.warning("fxaug.augment: row %s: %s; kept unchanged, nothing synthesized", _row_name(index, row), err)
                continue
            rng = np.random.default_rng([self.seed, index if index >= 0 else row])
            for target in rng.choice(choices, size=min(self.per_image, len(choices)), replace=False):
                images.append(pixels)
                jobs.append((row, str(target)))
        results = pipe.transfer(images, [t for _, t in jobs], self.strength) if jobs else []
        made: dict[int, list] = {}
        for (row, target), result in zip(jobs, results):
            made.setdefault(row, []).append((target, result))
        plan: list[_Made] = []
        for row in range(n):
            index = -1 if indices is None else int(indices[row])
            plan.append(_Made(row, index, sources[row]))
            for target, result in made.get(row, []):
                if not result.found:
                    log.info("fxaug.augment: row %s: %s; nothing synthesized", _row_name(index, row), result.reason)
                    continue
                if result.note:
                    log.warning("fxaug.augment: row %s: %s", _row_name(index, row), result.note)
                plan.append(_Made(row, index, sources[row], target, result.image))
        meta = (pipe.method, self.model or self._default_model_name(), class_names)
        features = _table_features(table)
        if features is not None and _is_image_feature(features.get(self.image_column)):
            return self._as_table(table, features, plan, *meta)
        return self._as_dict(batch, cells, plan, *meta)

    def _as_dict(self, batch, cells, plan: list[_Made], method, model, class_names) -> dict[str, list]:
        """The output as python lists (a batch that did not come from a Dataset's table)."""
        from PIL import Image

        out: dict[str, list] = {k: [] for k in [*batch, *PROVENANCE]}
        for made in plan:
            for k in batch:
                if k == self.image_column:
                    cell = cells[made.row]
                    if made.image is not None:
                        cell = Image.fromarray(made.image)
                    elif hasattr(cell, "__array__") and not _is_pil(cell):
                        # An array or tensor of a formatted dataset: as a PIL image, since datasets
                        # writes a list of arrays through int64 (32-bit images) and reads
                        # torch's channels-first order as rows.
                        cell = Image.fromarray(_as_array(cell))
                    out[k].append(cell)
                elif k == self.label_column and made.target is not None:
                    out[k].append(made.target if class_names is None else class_names.index(made.target))
                else:
                    out[k].append(batch[k][made.row])
            for key, value in zip(PROVENANCE, _provenance(made, method, model)):
                out[key].append(value)
        return out

    def _as_table(self, table, features, plan: list[_Made], method, model, class_names):
        """The output as an Arrow table of the input's schema plus the provenance columns'
        declared types. Every column is taken from the input table as stored (no decode and
        re-encode of originals), then the synthesized rows' image and label are set."""
        import pyarrow as pa
        from datasets import Features
        from datasets.features import Image as ImageFeature
        from PIL import Image

        out_features = Features({**features, **provenance_features()})
        taken = table.take(pa.array([m.row for m in plan], pa.int64()))
        synthesized = [i for i, m in enumerate(plan) if m.image is not None]
        columns = {}
        for name in out_features:
            if name in PROVENANCE:
                values = [_provenance(m, method, model)[PROVENANCE.index(name)] for m in plan]
                columns[name] = pa.array(values, out_features[name].pa_type)
                continue
            column = taken.column(name)
            if synthesized and name in (self.image_column, self.label_column):
                values = column.to_pylist()
                for i in synthesized:
                    made = plan[i]
                    if name == self.image_column:
                        values[i] = ImageFeature().encode_example(Image.fromarray(made.image))
                    else:
                        values[i] = made.target if class_names is None else class_names.index(made.target)
                column = pa.array(values, column.type)
            columns[name] = column
        return pa.Table.from_arrays(list(columns.values()), schema=out_features.arrow_schema)

    def for_dataset(self, dataset) -> "Augmenter":
        """Bind a dataset's ClassLabel names, so integer labels map to emotions (and back). A map
        over a Dataset reads them itself; a formatted dataset or a transform needs this."""
        feature = dataset.features[self.label_column]
        names = getattr(feature, "names", None)
        if names is None:
            raise TypeError(f"label column {self.label_column!r} is not a ClassLabel; nothing to bind")
        self._class_names = [E.canonical(n) for n in names]
        return self

    def as_transform(self, p: float = 0.5, *, dataset=None, index_column: str | None = None,
                     provenance: bool = False) -> "OnTheFlyTransform":
        """A `set_transform` / `with_transform` function that replaces faces as rows are read
        (OnTheFlyTransform): each row with probability p, a fresh draw each epoch."""
        return OnTheFlyTransform(self, p, dataset=dataset, index_column=index_column, provenance=provenance)


class OnTheFlyTransform:
    """For `ds.set_transform(t)` / `ds.with_transform(t)`: as rows are read (ds[i], ds[i:j], a
    DataLoader), each row's face is replaced, with probability p, by the same face with another
    expression, and its label becomes that target. Which rows and which targets are drawn from
    (seed, epoch, row id), so a row read twice in an epoch is the same and every epoch replays;
    `set_epoch(epoch)` before each epoch gives a fresh draw (as with DistributedSampler). The row
    id is `index_column`'s value when given (e.g. a column made by ds.add_column("id",
    range(len(ds))), which survives shuffle and select), else a digest of the image's pixels.
    Rows keep their columns; provenance=True adds fxaug_source_label and fxaug_target (None
    where the face was kept), which torch's default collate cannot batch."""

    def __init__(self, augmenter: Augmenter, p: float = 0.5, *, dataset=None, index_column: str | None = None,
                 provenance: bool = False):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p} is not a probability")
        self.augmenter = augmenter
        self.p = float(p)
        self.index_column = index_column
        self.provenance = provenance
        self.epoch = 0
        self.class_names = None
        if dataset is not None:
            names = getattr(dataset.features.get(augmenter.label_column), "names", None)
            self.class_names = None if names is None else [E.canonical(n) for n in names]
        elif hasattr(augmenter, "_class_names"):
            self.class_names = augmenter._class_names

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _row_ids(self, batch, cells) -> list[int]:
        if self.index_column is not None:
            if self.index_column not in batch:
                raise KeyError(f"fxaug: no column {self.index_column!r} (index_column) in the batch (columns: "
                               f"{', '.join(batch)}); add one: ds = ds.add_column({self.index_column!r}, range(len(ds)))")
            return [int(v) for v in batch[self.index_column]]
        ids = []
        for cell in cells:
            try:
                pixels = _as_array(cell)
            except (BadInput, ValueError, TypeError, OSError):
                ids.append(0)
                continue
            digest = hashlib.blake2b(pixels.tobytes(), digest_size=8, person=b"fxaug-row")
            digest.update(repr(pixels.shape).encode())
            ids.append(int.from_bytes(digest.digest(), "little") >> 1)
        return ids

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        aug = self.augmenter
        for column in (aug.image_column, aug.label_column):
            if column not in batch:
                raise KeyError(f"fxaug: no column {column!r} in the batch (columns: {', '.join(batch)}); set "
                               f"image_column= / label_column= on the Augmenter, or read that column (set_transform's columns=)")
        cells = list(batch[aug.image_column])
        labels = list(batch[aug.label_column])
        string_labels = all(isinstance(v, str) for v in labels)
        if not string_labels and self.class_names is None:
            raise TypeError("fxaug: integer labels need the dataset's class names: aug.as_transform(..., dataset=ds)")
        sources = [E.canonical(v) for v in labels] if string_labels else [self.class_names[int(v)] for v in labels]
        pipe = aug.pipeline()
        targets = aug._check_targets(pipe, None if string_labels else self.class_names)
        rows, images, jobs = self._row_ids(batch, cells), [], []
        for i, source in enumerate(sources):
            rng = np.random.default_rng([aug.seed, self.epoch, rows[i]])
            choices = [t for t in targets if t != source]
            if rng.random() >= self.p or not choices:
                continue
            try:
                pixels = _as_array(cells[i])
            except (BadInput, ValueError, TypeError, OSError) as err:
                log.warning("fxaug: row %d of the batch: %s; kept unchanged", i, err)
                continue
            images.append(pixels)
            jobs.append((i, str(rng.choice(choices))))
        results = pipe.transfer(images, [t for _, t in jobs], aug.strength) if jobs else []
        out = {k: list(v) for k, v in batch.items()}
        made = [None] * len(cells)
        from PIL import Image

        for (i, target), result in zip(jobs, results):
            if not result.found:
                continue
            out[aug.image_column][i] = Image.fromarray(result.image)
            out[aug.label_column][i] = target if string_labels else self.class_names.index(target)
            made[i] = target
        if self.provenance:
            out["fxaug_source_label"] = sources
            out["fxaug_target"] = made
        return out


class _OneRowBatch(dict):
    """A one-row batch that keeps the row's Arrow table (for the typed output)."""

    def __init__(self, data: dict, pa_table):
        super().__init__(data)
        self.pa_table = pa_table


def _provenance(made: _Made, method, model) -> tuple:
    if made.image is None:
        return made.index, made.source, None, None, None
    return made.index, made.source, made.target, method, model


def _table_features(table):
    """The datasets Features a batch's Arrow table carries in its schema, or None."""
    if table is None or not (table.schema.metadata or {}).get(b"huggingface"):
        return None
    from datasets import Features

    return Features.from_arrow_schema(table.schema)


def _is_image_feature(feature) -> bool:
    from datasets.features import Image as ImageFeature

    return isinstance(feature, ImageFeature)


def _is_rank(value, batched: bool) -> bool:
    """Whether a lone extra argument is datasets' rank (with_rank without with_indices).

    Batched, indices are a list and the rank an int (or None without num_proc). Not batched,
    both are ints, so the flags of the Dataset.map running this are read from its frame."""
    if value is None:
        return True
    if batched:
        return isinstance(value, (int, np.integer))
    flags = _map_flags()
    return flags is not None and flags[1] and not flags[0]


def _map_flags() -> tuple[bool, bool] | None:
    """(with_indices, with_rank) of the datasets map calling us, or None outside one."""
    frame = sys._getframe(1)
    for _ in range(12):
        frame = frame.f_back
        if frame is None:
            return None
        if frame.f_code.co_name == "_map_single" and "datasets" in frame.f_code.co_filename:
            local = frame.f_locals
            if "with_indices" in local and "with_rank" in local:
                return bool(local["with_indices"]), bool(local["with_rank"])
    return None


def _in_dataloader_worker() -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    return torch.utils.data.get_worker_info() is not None


def _is_pil(value) -> bool:
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(value, pil.Image)


def _row_name(index: int, row: int) -> str:
    return str(index) if index >= 0 else f"{row} of the batch (map with with_indices=True for dataset row numbers)"


def _as_array(value) -> np.ndarray:
    """A datasets image cell (PIL image, array, or the raw {"bytes", "path"} of an undecoded
    image) as uint8 H x W or H x W x 3; BadInput or ValueError says why not."""
    if value is None:
        raise BadInput("no image (None)")
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return decode_image(data, color="native")[0]
        if path:
            return decode_image(path, color="native")[0]
        raise BadInput("image cell holds neither bytes nor a path")
    if _is_pil(value):
        value = value if value.mode in ("L", "RGB") else value.convert("RGB")
    elif hasattr(value, "detach"):  # a torch tensor (with_format("torch")): channels first
        value = value.detach().cpu().numpy()
        if value.ndim == 3 and value.shape[0] in (1, 3) and value.shape[2] not in (1, 3):
            value = value.transpose(1, 2, 0)
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"not an 8-bit grey or RGB image (array {array.dtype} of shape {array.shape})")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"image too small ({array.shape[1]}x{array.shape[0]} px)")
    return array


augment = Augmenter()
