"""Hugging Face `datasets`: an in-memory `Dataset`, a parquet file, or a `save_to_disk` folder,
with an image column and a label column (names configurable)."""

from __future__ import annotations

import os
from typing import Any, Iterator

from .. import emotions as E
from .base import DatasetReader
from .images import decode_image
from .records import BadInput, Entry

BATCH = 256


def load_hf(path: str):
    """Open a parquet file / folder of parquet files / `save_to_disk` folder as a Dataset."""
    import datasets

    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "state.json")):
        return datasets.load_from_disk(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet"))
        if not files:
            raise FileNotFoundError(f"{path}: no parquet files and no save_to_disk dataset")
        return datasets.load_dataset("parquet", data_files=files, split="train")
    return datasets.load_dataset("parquet", data_files=path, split="train")


class HFDatasetReader(DatasetReader):
    """Records from a `datasets.Dataset`. Labels may be a ClassLabel, emotion names, or integer
    codes of a named `scheme` (affectnet, fer2013, rafdb). Images are decoded by fxaug's own
    decoder (not PIL-through-datasets), so bad rows are reported like bad files elsewhere."""

    format = "hf"

    def __init__(
        self,
        dataset,
        *,
        image_column: str = "image",
        label_column: str = "label",
        scheme: str | None = None,
        name: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(dataset, (str, os.PathLike)):
            name = name or os.fspath(dataset)
            dataset = load_hf(os.fspath(dataset))
        self.name = name or "in-memory datasets.Dataset"
        columns = dataset.column_names
        for role, column in (("image", image_column), ("label", label_column)):
            if column not in columns:
                raise ValueError(
                    f"{self.name}: no {role} column {column!r} (columns: {', '.join(columns)}); "
                    f"pass {role}_column="
                )
        self.image_column, self.label_column, self.scheme = image_column, label_column, scheme
        self.dataset = dataset
        feature = dataset.features[label_column]
        self._label_names = getattr(feature, "names", None)
        dtype = getattr(feature, "dtype", "")
        if self._label_names is None and scheme is None and ("int" in dtype or "float" in dtype):
            raise ValueError(
                f"{self.name}: label column {label_column!r} holds {dtype} codes without class names; "
                f"integer labels need scheme= (affectnet, fer2013 or rafdb) to say which emotion each code is"
            )

    @property
    def description(self) -> str:
        return (
            f"Hugging Face dataset {self.name} ({len(self.dataset)} rows; "
            f"image column {self.image_column!r}, label column {self.label_column!r})"
        )

    def _emotion(self, value: Any) -> str:
        if self._label_names is not None and isinstance(value, int):
            value = self._label_names[value]
        if isinstance(value, str):
            return E.canonical(value)
        if self.scheme is None:
            raise E.UnknownEmotionError(value, "integer labels need scheme= (affectnet, fer2013 or rafdb)")
        return E.from_code(int(value), self.scheme)

    def _entries(self) -> Iterator[Entry]:
        import datasets

        ds = self.dataset.select_columns([self.image_column, self.label_column])
        if isinstance(ds.features[self.image_column], datasets.Image):
            ds = ds.cast_column(self.image_column, datasets.Image(decode=False))
        split = str(ds.split) if getattr(ds, "split", None) is not None else None
        row = 0
        for batch in ds.iter(batch_size=BATCH):
            for value, label in zip(batch[self.image_column], batch[self.label_column]):
                where = f"{self.name} row {row}"
                try:
                    emotion = self._emotion(label)
                except (E.UnknownEmotionError, ValueError) as err:
                    self.report.add(where, f"label: {err}")
                else:
                    yield Entry(source_id=str(row), emotion=emotion, load=self._loader(value), split=split, origin=where)
                row += 1

    def _loader(self, value: Any):
        color, max_pixels = self.color, self.max_pixels

        def load():
            if value is None:
                raise BadInput("no image in this row")
            if isinstance(value, dict):
                data, path = value.get("bytes"), value.get("path")
                if data:
                    return decode_image(data, color=color, max_pixels=max_pixels)
                if path:
                    return decode_image(path, color=color, max_pixels=max_pixels)
                raise BadInput("image cell has neither bytes nor path")
            if isinstance(value, (bytes, bytearray, str, os.PathLike)):
                return decode_image(value, color=color, max_pixels=max_pixels)
            raise BadInput(f"image cell of type {type(value).__name__} is not an image")

        return load
