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

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None, rank: int | None = None) -> dict[str, list]:
        for column in (self.image_column, self.label_column):
            if column not in batch:
                raise KeyError(f"fxaug.augment: no column {column!r} in the batch (columns: {', '.join(batch)}); "
                               f"set image_column= / label_column=")
        pipe = self.pipeline(rank)
        n = len(batch[self.image_column])
        labels = batch[self.label_column]
        string_labels = all(isinstance(v, str) for v in labels)
        if not string_labels and not hasattr(self, "_class_names"):
            raise TypeError("fxaug.augment: integer labels need the dataset's class names; use "
                            "fxaug.Augmenter(...).for_dataset(ds) or string labels")
        sources = self._label_names(labels) if n else []
        targets = self.targets or pipe.targets
        model_name = self.model or self._default_model_name()
        images, jobs = [], []  # jobs: (row in batch, target)
        for row in range(n):
            index = -1 if indices is None else int(indices[row])
            choices = [t for t in targets if t != sources[row] and t in pipe.targets
                       and (string_labels or t in self._class_names)]
            if not choices:
                continue
            rng = np.random.default_rng([self.seed, index if index >= 0 else row])
            for target in rng.choice(choices, size=min(self.per_image, len(choices)), replace=False):
                images.append(_as_array(batch[self.image_column][row]))
                jobs.append((row, str(target)))
        results = pipe.transfer(images, [t for _, t in jobs], self.strength) if jobs else []
        out: dict[str, list] = {k: [] for k in [*batch, *PROVENANCE]}
        made = {}
        for (row, target), result in zip(jobs, results):
            made.setdefault(row, []).append((target, result))
        for row in range(n):
            index = -1 if indices is None else int(indices[row])
            for k in batch:
                out[k].append(batch[k][row])
            self._provenance(out, index, sources[row], None, None, None)
            for target, result in made.get(row, []):
                if not result.found:
                    continue  # no face: nothing to add
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


def _as_array(value) -> np.ndarray:
    """A datasets image cell (PIL image, or array) as uint8 H x W or H x W x 3."""
    if hasattr(value, "mode"):
        value = value if value.mode in ("L", "RGB") else value.convert("RGB")
    return np.asarray(value)


augment = Augmenter()
