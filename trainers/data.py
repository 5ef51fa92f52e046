"""Training tensors from any fxaug.data source, prepared once and cached.

A GAN step needs random batches of one or several domains many thousand times; decoding and
resizing files each time would dominate a CPU run. So the chosen domains are read once,
turned into uint8 tensors at training size (whole image, aligned face, or part crops, by
method) and cached on disk keyed by everything that affects them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from fxaug.data import open_dataset
from fxaug.io import atomic_write
from fxaug.faces.landmarks import landmarks_for_records
from fxaug.methods import PART_NAMES, crops_for

from .config import TrainConfig

log = logging.getLogger("fxaug.trainers")
CACHE_VERSION = 3  # 3: landmarks from the face-api.js + face-mesh average


@dataclass
class TrainingSet:
    images: torch.Tensor  # uint8 (N, C, S, S)
    domains: torch.Tensor  # int64 (N,): index into domain_names
    domain_names: tuple[str, ...]
    parts: torch.Tensor | None = None  # int64 (N,): index into part_names (parts method)
    part_names: tuple[str, ...] = ()
    landmarks: torch.Tensor | None = None  # float32 (N, 68, 2) in the crop's frame (regions method)

    def __len__(self) -> int:
        return len(self.images)

    def counts(self) -> dict[str, int]:
        return {name: int((self.domains == i).sum()) for i, name in enumerate(self.domain_names)}

    def to_model_range(self, index: torch.Tensor, device) -> torch.Tensor:
        """uint8 -> float in [-1, 1] on `device`, for the given rows."""
        return self.images[index].to(device, torch.float32).div_(127.5).sub_(1.0)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then resize (area when shrinking, bicubic when enlarging)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top : top + side, left : left + side]
    if side == size:
        return image
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)


def _cache_key(cfg: TrainConfig) -> str:
    source = os.path.realpath(cfg.data)
    stat = os.stat(source)
    fields = {
        "v": CACHE_VERSION,
        "source": source,
        "mtime": stat.st_mtime_ns,
        "format": cfg.format,
        "splits": cfg.splits,
        "method": cfg.method,
        "domains": list(cfg.domains),
        "size": cfg.size,
        "channels": cfg.channels,
        "max_per_class": cfg.max_per_class,
        "part_margin": cfg.part_margin if cfg.method == "parts" else None,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    return Path(os.environ.get("FXAUG_CACHE", Path.home() / ".cache" / "fxaug")) / "training-sets"


TRAINING_SET_SUFFIX = ".npz"


def save_training_set(data: TrainingSet, path: str | os.PathLike) -> Path:
    """A prepared training set as one compressed file (images, labels, landmarks in float16),
    to train on a machine without the source data (e.g. a lent GPU): pass it as --data."""
    path = Path(path)
    arrays = {"images": data.images.numpy(), "domains": data.domains.numpy(),
              "domain_names": np.array(data.domain_names)}
    if data.landmarks is not None:
        arrays["landmarks"] = data.landmarks.numpy().astype(np.float16)
    if data.parts is not None:
        arrays.update(parts=data.parts.numpy(), part_names=np.array(data.part_names))
    atomic_write(path, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))
    return path


def load_training_set(path: str | os.PathLike, cfg: TrainConfig) -> TrainingSet:
    """A file written by `save_training_set`, narrowed to cfg.domains (allow_pickle stays off)."""
    with np.load(path, allow_pickle=False) as d:
        names = [str(n) for n in d["domain_names"]]
        missing = [x for x in cfg.domains if x not in names]
        if missing:
            raise ValueError(f"{path}: a prepared training set without {', '.join(missing)} (it holds {', '.join(names)})")
        domains = d["domains"]
        keep = np.isin(domains, [names.index(x) for x in cfg.domains])
        if cfg.max_per_class is not None:  # the first max_per_class of each class, in file order
            rank = np.zeros(len(domains), np.int64)
            for k in np.unique(domains):
                rank[domains == k] = np.arange(int((domains == k).sum()))
            keep &= rank < cfg.max_per_class
        remap = np.full(len(names), -1, np.int64)
        remap[[names.index(x) for x in cfg.domains]] = np.arange(len(cfg.domains))
        return TrainingSet(
            images=torch.from_numpy(d["images"][keep]),
            domains=torch.from_numpy(remap[domains[keep]]),
            domain_names=tuple(cfg.domains),
            parts=torch.from_numpy(d["parts"][keep]) if "parts" in d else None,
            part_names=tuple(str(n) for n in d["part_names"]) if "part_names" in d else (),
            landmarks=torch.from_numpy(d["landmarks"][keep].astype(np.float32)) if "landmarks" in d else None,
        )


# Images per chunk of the preparation: the landmark net's batch, and the unit a killed preparation
# resumes from (each chunk is written atomically beside the cache, then all are joined into it).
CHUNK_RECORDS = 256


def cache_path(cfg: TrainConfig) -> Path:
    """Where cfg's prepared training set is cached (keyed by everything that shapes it)."""
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    return cache_dir / f"{_cache_key(cfg)}.pt"


def partial_path(cache: Path) -> Path:
    """The folder of finished chunks of a preparation still under way (or cut short)."""
    return cache.with_name(cache.stem + ".partial")


def _read_cache(cache: Path) -> TrainingSet:
    data = torch.load(cache, weights_only=True)
    log.info("training set from cache %s", cache)
    return TrainingSet(
        images=data["images"],
        domains=data["domains"],
        domain_names=tuple(data["domain_names"]),
        parts=data.get("parts"),
        part_names=tuple(data.get("part_names", ())),
        landmarks=data.get("landmarks"),
    )


def build_training_set(cfg: TrainConfig, progress: bool = True) -> TrainingSet:
    """Read cfg.data's records of cfg.domains and prepare them for cfg.method (cached). A
    prepared training set (`save_training_set`, .npz) is read as it is. The preparation shows a
    progress bar (progress=True) and resumes where a killed one stopped."""
    if str(cfg.data).endswith(TRAINING_SET_SUFFIX) and os.path.isfile(cfg.data):
        return load_training_set(cfg.data, cfg)
    cache = cache_path(cfg)
    if cache.is_file():
        return _read_cache(cache)
    from filelock import FileLock, Timeout

    cache.parent.mkdir(parents=True, exist_ok=True)
    # one preparer per cache (torchrun ranks, two runs on one data set): the others wait, then read it
    lock = FileLock(str(cache) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process that is preparing this training set (%s)", cache)
        lock.acquire()
    try:
        if cache.is_file():
            return _read_cache(cache)
        return _prepare(cfg, cache, progress)
    finally:
        lock.release()


def _no_face_reason(reason: str | None) -> str:
    reason = reason or "no face found"
    return reason if reason.startswith("no face") else f"no face found ({reason})"


def _prepare(cfg: TrainConfig, cache: Path, progress: bool) -> TrainingSet:
    import time

    from tqdm.auto import tqdm

    partial = partial_path(cache)
    partial.mkdir(parents=True, exist_ok=True)
    for stale in partial.glob(".*.tmp"):  # a chunk whose write a kill cut short
        stale.unlink()
    color = "gray" if cfg.channels == 1 else "rgb"
    reader = open_dataset(cfg.data, format=cfg.format, splits=cfg.splits, emotions=list(cfg.domains), color=color)
    log.info("reading %s", reader.description)
    # The index, in the reader's fixed order: chunk k holds the same entries in every run.
    entries = list(reader.entries())
    cap = cfg.max_per_class
    per_class = Counter(entry.emotion for entry in entries)
    total = sum(n if cap is None else min(n, cap) for n in per_class.values())
    n_domains = len(cfg.domains)
    queued = np.zeros(n_domains, np.int64)  # images taken from the index, per domain (at most cap)
    chunks: list[dict[str, np.ndarray]] = []
    face_models: dict = {}
    done_before = prepared_images = prepared_faces = 0
    announced = False
    started = time.time()
    bar = tqdm(total=total, desc="preparing training set", unit="image", disable=not progress, dynamic_ncols=True)
    with bar, _logging_beside(bar):
        for k, first in enumerate(range(0, len(entries), CHUNK_RECORDS)):
            if cap is not None and (queued >= cap).all():
                break
            path = partial / f"chunk-{k:06d}.npz"
            # which entries of how large an index the chunk holds: one cut from another chunking or
            # another index is prepared afresh
            span = np.array([first, min(CHUNK_RECORDS, len(entries) - first), len(entries)], np.int64)
            chunk = _read_chunk(path, span)
            if chunk is not None:
                done_before += int(chunk["queued"].sum())
            else:
                if done_before and not announced:
                    log.info("resuming the preparation: %d images already prepared (%s)", done_before, partial)
                    announced = True
                if cfg.method != "image" and not face_models:
                    from fxaug.faces import FaceDetector, FaceLandmarker

                    face_models = {"detector": FaceDetector(), "landmarker": FaceLandmarker()}
                chunk = _prepare_chunk(cfg, reader, entries[first : first + CHUNK_RECORDS], queued, face_models)
                chunk["span"] = span
                atomic_write(path, lambda tmp, chunk=chunk: _save_arrays(tmp, chunk))
                prepared_images += int(chunk["queued"].sum())
                prepared_faces += int(chunk["taken"].sum())
            queued += chunk["queued"]
            chunks.append(chunk)
            bar.update(int(chunk["queued"].sum()))
    elapsed = time.time() - started
    if done_before and not announced:
        log.info("resuming the preparation: all %d images were already prepared (%s)", done_before, partial)
    taken_per_domain = np.zeros(n_domains, np.int64)
    for chunk in chunks:
        taken_per_domain += chunk["taken"]
    taken = dict(zip(cfg.domains, taken_per_domain.tolist()))
    missing = [d for d, n in taken.items() if n == 0]
    if missing:
        raise ValueError(f"{cfg.data}: no usable images of {', '.join(missing)} (splits={cfg.splits}); found {taken}")
    no_face = sum(len(c["no_face"]) for c in chunks)
    if no_face:
        log.warning("%d of %d images without a face were left out", no_face, int(queued.sum()))
    if prepared_images and cfg.method == "image":  # no face is looked for
        log.info("prepared %d images in %.1f s (%.1f images/s)", prepared_images, elapsed, prepared_images / max(elapsed, 1e-9))
    elif prepared_images:
        log.info("prepared %d faces from %d images in %.1f s (%.1f faces/s)", prepared_faces, prepared_images,
                 elapsed, prepared_faces / max(elapsed, 1e-9))

    def joined(name: str) -> np.ndarray:
        return np.concatenate([c[name] for c in chunks])

    landmarks = joined("landmarks")
    data = TrainingSet(
        images=torch.from_numpy(joined("images")),
        domains=torch.from_numpy(joined("domains")),
        domain_names=tuple(cfg.domains),
        parts=torch.from_numpy(joined("parts")) if cfg.method == "parts" else None,
        part_names=PART_NAMES if cfg.method == "parts" else (),
        landmarks=torch.from_numpy(landmarks) if len(landmarks) else None,
    )
    saved = {"images": data.images, "domains": data.domains, "domain_names": list(data.domain_names)}
    if data.parts is not None:
        saved.update(parts=data.parts, part_names=list(data.part_names))
    if data.landmarks is not None:
        saved.update(landmarks=data.landmarks)
    atomic_write(cache, lambda tmp: _save_tensors(tmp, saved))
    shutil.rmtree(partial, ignore_errors=True)
    log.info("training set: %s; cached at %s", data.counts(), cache)
    return data


def _read_chunk(path: Path, span: np.ndarray) -> dict[str, np.ndarray] | None:
    """A chunk a previous run wrote, if it holds the entries `span` names; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            chunk = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, EOFError) as e:  # written atomically, so only a foreign or damaged file
        log.warning("%s: unreadable (%s); preparing its images again", path, e)
        return None
    if not np.array_equal(chunk.get("span"), span):
        log.warning("%s: from another chunking or index (entries %s, not %s); preparing its images again",
                    path, chunk.get("span", np.array([])).tolist(), span.tolist())
        return None
    return chunk


def _save_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to a name
        np.savez(f, **arrays)


def _save_tensors(path: str, tensors: dict) -> None:
    with open(path, "wb") as f:  # a file object: torch.save would name the archive after the temporary file
        torch.save(tensors, f)


def _prepare_chunk(cfg: TrainConfig, reader, entries: list, queued: np.ndarray, face_models: dict) -> dict[str, np.ndarray]:
    """One chunk of the index, decoded (up to cfg.max_per_class a class, counting `queued` from the
    chunks before it), its faces found and cropped: arrays to save as they are (no pickle)."""
    records = []
    counts = np.zeros(len(cfg.domains), np.int64)
    for entry in entries:
        d = cfg.domains.index(entry.emotion)
        if cfg.max_per_class is not None and queued[d] + counts[d] >= cfg.max_per_class:
            continue
        record = reader.load(entry)  # a bad file is reported by the reader and left out
        if record is None:
            continue
        counts[d] += 1
        records.append(record)
    found = landmarks_for_records(records, **face_models) if cfg.method != "image" and records else [None] * len(records)
    images, domains, parts, points_aligned, no_face = [], [], [], [], []
    taken = np.zeros(len(cfg.domains), np.int64)
    for record, marks in zip(records, found):
        points = None if marks is None else marks.points
        if cfg.method != "image" and points is None:
            source = record.path or record.source_id
            reader.report.add(source, f"{_no_face_reason(marks.reason)}; not used")
            no_face.append(source)
            continue
        for crop in crops_for(cfg.method, record.image, points, cfg.size, cfg.part_margin):
            pixels = crop.pixels
            images.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
            domains.append(cfg.domains.index(record.emotion))
            if crop.part is not None:
                parts.append(PART_NAMES.index(crop.part))
            if crop.aligned_landmarks is not None:
                points_aligned.append(crop.aligned_landmarks.astype(np.float32))
        taken[cfg.domains.index(record.emotion)] += 1
    side = (cfg.channels, cfg.size, cfg.size)
    return {
        "images": np.stack(images) if images else np.zeros((0, *side), np.uint8),
        "domains": np.array(domains, np.int64),
        "parts": np.array(parts, np.int64),
        "landmarks": np.stack(points_aligned) if points_aligned else np.zeros((0, 68, 2), np.float32),
        "queued": counts,
        "taken": taken,
        "no_face": np.array(no_face, dtype=str),
    }


@contextlib.contextmanager
def _logging_beside(bar):
    """Log lines printed above the progress bar rather than through it."""
    if bar.disable:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield


class DomainSampler:
    """Random batch indices from its own torch.Generator (so a resumed run replays exactly).
    balance=True draws each sample's domain uniformly, then an image of that domain."""

    def __init__(self, data: TrainingSet, seed: int, balance: bool = True):
        self.generator = torch.Generator().manual_seed(seed)
        self.by_domain = [torch.nonzero(data.domains == i).flatten() for i in range(len(data.domain_names))]
        self.balance = balance

    def sample(self, batch: int, domain: int | list[int] | None = None) -> torch.Tensor:
        """Indices of `batch` images: of one domain, of a list of domains, or of any."""
        g = self.generator
        if isinstance(domain, int):
            pool = self.by_domain[domain]
            return pool[torch.randint(len(pool), (batch,), generator=g)]
        domains = list(range(len(self.by_domain))) if domain is None else list(domain)
        if not self.balance:
            pool = torch.cat([self.by_domain[d] for d in domains])
            return pool[torch.randint(len(pool), (batch,), generator=g)]
        which = torch.tensor(domains)[torch.randint(len(domains), (batch,), generator=g)]
        out = torch.empty(batch, dtype=torch.int64)
        for d in domains:
            mask = which == d
            pool = self.by_domain[d]
            out[mask] = pool[torch.randint(len(pool), (int(mask.sum()),), generator=g)]
        return out

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
