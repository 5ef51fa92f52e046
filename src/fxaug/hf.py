"""Hugging Face `datasets` map function: append synthesized faces to a dataset.

    import fxaug
    ds = ds.map(fxaug.augment, batched=True, with_indices=True)            # shipped generator
    ds = ds.map(fxaug.Augmenter(model="runs/x/generator", targets=["disgust"]), batched=True,
                with_indices=True, with_rank=True, num_proc=2)              # one process per GPU

Each input row is kept and followed by `per_image` synthesized rows (targets sampled from
`targets`, never the row's own label), with provenance columns: fxaug_source_index (-1 unless
the map passes indices: use with_indices=True), fxaug_source_label, fxaug_target,
fxaug_method, fxaug_model; originals carry their own label as source and None elsewhere.
Sampling is seeded by (seed, source index), so results do not depend on batch size or process.
A row whose image is missing (None) or cannot be decoded is kept as it is, with a warning naming
the row and the reason, and nothing is synthesized from it; the rest of the map goes on. A target
the model cannot produce is an error naming what it offers. With batched=False (datasets cannot
add rows then) each row is replaced by its synthesized version instead.

The augmenter pickles (and so hashes, for `datasets`' fingerprint and cache) as its settings
alone, model id included, never the loaded generator: the fingerprint is stable across
processes and sessions, and no "random hash" warning appears.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Sequence

import numpy as np

from . import emotions as E
from .data.images import decode_image
from .data.records import BadInput

log = logging.getLogger("fxaug.hf")
_IMPORT_PID = os.getpid()  # differs from os.getpid() only in a forked child (a map worker)
PROVENANCE = ("fxaug_source_index", "fxaug_source_label", "fxaug_target", "fxaug_method", "fxaug_model")


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
        self._pipelines: dict[Any, Any] = {}

    # Settings only: the pickle (and so datasets' hash) never contains the loaded generator.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pipelines"] = {}
        state["_model_id"] = self.model_id()
        return state

    def __setstate__(self, state: dict) -> None:
        state.pop("_model_id", None)
        self.__dict__.update(state)

    def model_id(self) -> str:
        """The model's name or path plus a digest of its weights file (so retraining in place
        changes the fingerprint)."""
        from .models import BUNDLED_DIR, WEIGHTS_NAME
        from pathlib import Path

        name = self.model or self._default_model_name()
        path = Path(name) if Path(name, WEIGHTS_NAME).is_file() else BUNDLED_DIR / name
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
            if rank is not None and device == "auto" and torch.cuda.is_available():
                device = f"cuda:{rank % torch.cuda.device_count()}"
            model = self.model or self._default_model_name()
            self._pipelines[key] = ExpressionPipeline(model, method=self.method, device=device, batch_size=self.batch_size)
        return self._pipelines[key]

    def _label_names(self, labels) -> list[str]:
        return [E.canonical(v) if isinstance(v, str) else self._class_names[int(v)] for v in labels]

    def __call__(self, batch: dict[str, Any], indices: Sequence[int] | int | None = None, rank: int | None = None) -> dict[str, Any]:
        for column in (self.image_column, self.label_column):
            if column not in batch:
                raise KeyError(f"fxaug.augment: no column {column!r} in the batch (columns: {', '.join(batch)}); "
                               f"set image_column= / label_column=")
        labels = batch[self.label_column]
        if isinstance(labels, (list, tuple, np.ndarray)):
            return self._augment(batch, self._image_cells(batch, single=False), indices, rank)
        return self._augment_one(batch, indices, rank)

    def _augment_one(self, example: dict[str, Any], index: int | None, rank: int | None) -> dict[str, Any]:
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
        batch = {k: [cells[0] if k == self.image_column else example[k]] for k in example}
        out = self._augment(batch, cells, None if index is None else [index], rank)
        row = len(out[self.image_column]) - 1  # the synthesized row when there is one, else the original
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

    def _check_targets(self, pipe, string_labels: bool) -> tuple[str, ...]:
        """The targets to sample from; a target asked for that the model (or the dataset's label
        names) lacks is an error naming what there is, not rows silently never made."""
        model_name = self.model or self._default_model_name()
        if self.targets is not None:
            missing = [t for t in self.targets if t not in pipe.targets]
            if missing:
                raise ValueError(f"fxaug.augment: the model {model_name} cannot produce {', '.join(missing)}; "
                                 f"it offers {', '.join(pipe.targets)}")
            if not string_labels:
                missing = [t for t in self.targets if t not in self._class_names]
                if missing:
                    raise ValueError(f"fxaug.augment: the dataset's label names ({', '.join(self._class_names)}) have no "
                                     f"{', '.join(missing)}, so rows of that class cannot be labelled")
            return self.targets
        targets = tuple(t for t in pipe.targets if string_labels or t in self._class_names)
        left = [t for t in pipe.targets if t not in targets]
        if left and not getattr(self, "_said_left", False):
            self._said_left = True
            log.warning("fxaug.augment: the model's targets %s are not among the dataset's label names; not synthesized",
                        ", ".join(left))
        return targets

    def _augment(self, batch: dict[str, Any], cells: list, indices: Sequence[int] | None, rank: int | None) -> dict[str, list]:
        pipe = self.pipeline(rank)
        n = len(cells)
        labels = batch[self.label_column]
        string_labels = all(isinstance(v, str) for v in labels)
        if not string_labels and not hasattr(self, "_class_names"):
            raise TypeError("fxaug.augment: integer labels need the dataset's class names; use "
                            "fxaug.Augmenter(...).for_dataset(ds) or string labels")
        sources = self._label_names(labels) if n else []
        targets = self._check_targets(pipe, string_labels)
        model_name = self.model or self._default_model_name()
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
        out: dict[str, list] = {k: [] for k in [*batch, *PROVENANCE]}
        made = {}
        for (row, target), result in zip(jobs, results):
            made.setdefault(row, []).append((target, result))
        for row in range(n):
            index = -1 if indices is None else int(indices[row])
            for k in batch:
                out[k].append(cells[row] if k == self.image_column else batch[k][row])
            self._provenance(out, index, sources[row], None, None, None)
            for target, result in made.get(row, []):
                if not result.found:
                    log.info("fxaug.augment: row %s: %s; nothing synthesized", _row_name(index, row), result.reason)
                    continue
                if result.note:
                    log.warning("fxaug.augment: row %s: %s", _row_name(index, row), result.note)
                for k in batch:
                    if k == self.image_column:
                        from PIL import Image

                        out[k].append(Image.fromarray(result.image))
                    elif k == self.label_column:
                        out[k].append(target if string_labels else self._class_names.index(target))
                    else:
                        out[k].append(batch[k][row])
                self._provenance(out, index, sources[row], target, pipe.method, model_name)
        return out

    @staticmethod
    def _provenance(out, index, source, target, method, model) -> None:
        for key, value in zip(PROVENANCE, (index, source, target, method, model)):
            out[key].append(value)

    def for_dataset(self, dataset) -> "Augmenter":
        """Bind a dataset's ClassLabel names, so integer labels map to emotions (and back)."""
        feature = dataset.features[self.label_column]
        names = getattr(feature, "names", None)
        if names is None:
            raise TypeError(f"label column {self.label_column!r} is not a ClassLabel; nothing to bind")
        self._class_names = [E.canonical(n) for n in names]
        return self


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
    if hasattr(value, "mode"):
        value = value if value.mode in ("L", "RGB") else value.convert("RGB")
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"not an 8-bit grey or RGB image (array {array.dtype} of shape {array.shape})")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"image too small ({array.shape[1]}x{array.shape[0]} px)")
    return array


augment = Augmenter()
