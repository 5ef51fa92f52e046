"""`fxaug rebalance`: fill rare emotion classes with synthesized faces.

Plan: count the classes (the readable images of each), set a goal per class (default: the
largest class's count; `target`), and list, for every missing face, a job (source face, target
emotion, seed) in a fixed order: sources of the classes the model translates from, neutral
first, each class's sources in a seeded shuffled order, cycling (at most `max_per_source` uses
each). Run: jobs go through the pipeline in windows of consecutive jobs (at most `batch_size`
jobs and `window_pixels` source pixels, so a few huge photos do not take 64 places in memory);
an output is kept unless it has no face or the judge's confidence in its target is below
`min_confidence`, in which case the next spare job of that class takes its place.

Everything is deterministic (windows depend only on the plan and the data, never on what a run
did before), so a run can stop anywhere (Ctrl-C, kill -9, a full disk) and `resume=True`
finishes it with exactly the files an uninterrupted run writes: every output is written
atomically under a name fixed by its job, then recorded in manifest.jsonl with its content
digest (one line per job, kept or not), and a resumed run skips recorded jobs whose files are
still there, unchanged. One run at a time: OUT/.fxaug.lock is held (an OS lock, released
by the kernel when the process dies, so a killed run never blocks its --resume).

Output: OUT/<class>/ holds the originals (copied, or hard-linked with link=True) at their path
below their class folder (neutral/s1/img1.png -> OUT/neutral/s1/img1.png) and the synthesized
faces (OUT/<class>/fxaug-<class>-<job>.png, a name space no original takes); OUT/plan.json
(the settings, the model's content digest and the plan); OUT/originals.jsonl (each copied
original with its digest); OUT/manifest.jsonl; OUT/summary.json, with OUT/class_histogram.png
(each class before and after) and OUT/contact_sheet.png (synthesized faces beside their sources)
drawn from what OUT holds. Each manifest line of a face records `identity_distance`, the
descriptor distance between source and output (fxaug.metrics.identity), when measured: by
default on a GPU only (on CPU it about doubles the time; identity=True measures it there too).
Files fxaug did not write are never overwritten nor counted.

Beyond one process (docs/distributed.md): shards (`num_shards`, `shard_index`) and Ray Data
actors (`engine="ray"`, fxaug.rebalance_ray) make windows elsewhere, into OUT/.fxaug-shards/;
the merge replays the single-process walk over what they recorded, so OUT ends with the files
one process writes.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import logging
import os
import re
import socket
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import emotions as E
from .data import BATCH_PIXELS, IMAGE_EXTENSIONS, image_size, open_dataset
from .data.records import Entry
from .io import atomic_write, write_text

log = logging.getLogger("fxaug.rebalance")
MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"
PLAN = "plan.json"
ORIGINALS = "originals.jsonl"
LOCK = ".fxaug.lock"
# Source pixels decoded at once: the budget `fxaug transfer` batches by too (one place).
WINDOW_PIXELS = BATCH_PIXELS
# fxaug.io.atomic_write's temporary files: ".<name>.<8 random characters>.tmp" (tempfile.mkstemp)
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# the synthesized faces' name space (first path component below a class folder), and names an
# original must be moved out of (one more leading "_": an injective escape)
_SYNTHESIZED_SPACE = re.compile(r"^_*fxaug-", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LIST_LIMIT = 200  # problems listed one by one in summary.json; the count is always whole
HISTOGRAM = "class_histogram.png"
CONTACT_SHEET = "contact_sheet.png"
CONTACT_PER_CLASS = 8  # synthesized faces shown per class on the contact sheet
# Scratch of a distributed run (shards, Ray workers): OUT/.fxaug-shards/<name>/ holds each one's
# faces and manifest until the merge moves them into place; RUN_RECORD says how the run is split
# and with which settings, so `--merge OUT` needs nothing else.
SHARDS = ".fxaug-shards"
SHARDS_REMOVED = ".fxaug-shards.removed"  # renamed there, then deleted: a kill mid-delete leaves no half scratch
RUN_RECORD = "run.json"
SHARD_STATE = "shard.json"


class OutputInUse(RuntimeError):
    """Another process holds the output folder's lock."""


class ForeignFile(FileExistsError):
    """A file fxaug did not write stands where this run would write (never overwritten)."""


@dataclass
class Job:
    job: int  # index in the class's candidate list: names the output file
    target: str
    source_id: str
    source_label: str
    seed: int

    @property
    def filename(self) -> str:
        return f"fxaug-{self.target}-{self.job:06d}.png"

    @property
    def file(self) -> str:
        """The output's path relative to OUT."""
        return f"{self.target}/{self.filename}"


@dataclass
class Plan:
    counts: dict[str, int]  # images found per class
    goal: dict[str, int]  # images wanted per class after rebalancing
    to_make: dict[str, int] = field(default_factory=dict)  # synthesized faces per class
    sources: dict[str, list[str]] = field(default_factory=dict)  # target -> source classes
    pool: dict[str, int] = field(default_factory=dict)  # target -> its sources' count (set by the run)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "plan": self.to_make, "goal": self.goal, "sources": self.sources}


def make_plan(counts: Counter, translations: list[tuple[str | None, str]], target: int | None = None,
              classes: list[str] | None = None, sampling_strategy=None) -> Plan:
    """How many faces each class needs, and which classes can feed it. The goal: `target` faces
    in each class (default: the largest class's count), or imbalanced-learn's `sampling_strategy`
    (fxaug.sampling: 'not majority', a float ratio, a dict per class, ...); `classes` limits
    the classes filled."""
    named = _strategy_classes(sampling_strategy)  # a dict's classes, even those the data lacks
    counts = {name: int(counts.get(name, 0)) for name in E.EMOTIONS
              if counts.get(name, 0) or name in (classes or []) or name in named}
    reachable = {t for _, t in translations}
    if sampling_strategy is not None:
        from .sampling import samples_to_add

        if target is not None:
            raise ValueError("give a target or a sampling_strategy, not both: both say how many faces each class gets")
        add = samples_to_add(counts, sampling_strategy)
        # Classes a dict names are wanted (an error if the model cannot make them); a named
        # strategy ('not majority', 'all', a ratio) fills those the model can make.
        wanted = [c for c in add if (c in named or c in reachable) and (not classes or c in classes)]
        goals = {c: counts[c] + add[c] for c in wanted}
    else:
        goal_n = target if target is not None else max(counts.values(), default=0)
        wanted = classes or [c for c in counts if c in reachable]
        goals = {c: max(counts.get(c, 0), goal_n) for c in wanted}
    plan = Plan(counts=counts, goal={})
    for name in counts:
        plan.goal[name] = goals.get(name, counts[name])
    for name in wanted:
        if name not in reachable:
            raise ValueError(f"the model cannot produce {name!r}; it produces: {', '.join(sorted(reachable))}")
        need = max(0, goals[name] - counts.get(name, 0))
        froms = []
        for src, dst in translations:
            if dst != name:
                continue
            if src is None:  # from any class but the target itself
                froms.extend(c for c in counts if c != name)
            elif src in counts:
                froms.append(src)
        froms = sorted(set(froms), key=lambda c: (c != "neutral", E.EMOTIONS.index(c)))
        if need and not froms:
            raise ValueError(f"no source images for {name!r}: the model makes it from {', '.join(s or 'any' for s, d in translations if d == name)}")
        plan.to_make[name] = need
        plan.sources[name] = froms
        plan.goal[name] = counts.get(name, 0) + need
    return plan


def _strategy_classes(sampling_strategy) -> set[str]:
    """The emotions a dict sampling_strategy names (aliases read as their emotion)."""
    if not isinstance(sampling_strategy, dict):
        return set()
    named = set()
    for key in sampling_strategy:
        try:
            named.add(E.canonical(key))
        except (KeyError, ValueError, TypeError):
            pass  # not an emotion: fxaug.sampling names it in its error
    return named


def strategy_setting(sampling_strategy):
    """How plan.json records a sampling_strategy (compared when a run is resumed): a name or
    ratio as given, a dict with its classes' emotion names, a callable by its name."""
    if isinstance(sampling_strategy, dict):
        named = {}
        for key, n in sampling_strategy.items():
            try:
                named[E.canonical(key)] = n
            except (KeyError, ValueError, TypeError):
                named[str(key)] = n
        return dict(sorted(named.items()))
    if callable(sampling_strategy):
        return f"<callable {getattr(sampling_strategy, '__qualname__', type(sampling_strategy).__name__)}>"
    return sampling_strategy


def candidate_jobs(target: str, sources: list[str], by_class: dict[str, list[str]], seed: int,
                   max_per_source: int | None) -> Iterator[Job]:
    """Every job that may serve `target`, in order: neutral sources first (then the other
    source classes), each class's in a seeded shuffle, cycling over the sources."""
    rng = np.random.default_rng([seed, E.index(target)])
    pool: list[tuple[str, str]] = []
    for cls in sources:
        ids = list(by_class.get(cls, []))
        order = rng.permutation(len(ids))
        pool.extend((ids[i], cls) for i in order)
    if not pool:
        return
    job, rounds = 0, 0
    while max_per_source is None or rounds < max_per_source:
        for source_id, cls in pool:
            yield Job(job, target, source_id, cls, seed=int(rng.integers(2**31)))
            job += 1
        rounds += 1


def job_windows(jobs: Iterable[Job], pixels_of: Callable[[str], int], batch_size: int,
                window_pixels: int | None) -> Iterator[list[Job]]:
    """Consecutive jobs in windows of at most `batch_size` jobs and `window_pixels` source
    pixels (a window always takes its first job, however large). A window's composition
    depends only on the job order (the plan) and the sources' sizes (the data): a resumed run
    cuts the very same windows as an uninterrupted one, so the generator sees the same batches."""
    window: list[Job] = []
    pixels = 0
    for job in jobs:
        n = pixels_of(job.source_id)
        if window and (len(window) >= batch_size or (window_pixels is not None and pixels + n > window_pixels)):
            yield window
            window, pixels = [], 0
        window.append(job)
        pixels += n
    if window:
        yield window


# -- the manifest ----------------------------------------------------------------------------

def _record_problem(record: Any) -> str | None:
    """Why a manifest line cannot be trusted, or None when it can: every key of the right type,
    and a kept face's file exactly the one its job writes, with a content digest."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, kind in (("target", str), ("job", int), ("source_id", str), ("source_label", str), ("seed", int),
                      ("kept", bool)):
        if key not in record:
            return f"no {key!r}"
        value = record[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{key!r} is {value!r}, not {({str: 'a string', int: 'an integer', bool: 'true or false'})[kind]}"
    if record["target"] not in E.EMOTIONS:
        return f"'target' {record['target']!r} is not an emotion"
    if record["job"] < 0:
        return f"'job' {record['job']} is negative"
    if record["kept"]:
        expected = f"{record['target']}/fxaug-{record['target']}-{record['job']:06d}.png"
        if record.get("file") != expected:
            return f"'file' is {record.get('file')!r}, not {expected!r}, the only file its job writes"
        digest = record.get("sha256")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            return "a kept face without a content digest ('sha256'; written by an older fxaug?): made again"
    return None


def _read_manifest(path: Path) -> tuple[dict[tuple[str, int], dict], list[str], int]:
    """Recorded jobs by (target, job) (a job recorded twice: the last line wins), the lines
    that were ignored and why, and how many duplicate lines there were. A torn last line (a kill
    mid-write) is truncated away; a whole last line missing only its newline gets one."""
    if not path.is_file():
        return {}, [], 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # what follows the last newline: b"" in a whole file
    records: dict[tuple[str, int], dict] = {}
    problems: list[str] = []
    duplicates = 0

    def take(number: int, line: bytes) -> bool:
        nonlocal duplicates
        try:
            record = json.loads(line)
        except ValueError:
            return False
        why = _record_problem(record)
        if why:
            problems.append(f"{path} line {number}: {why}; ignored")
            return True
        key = (record["target"], record["job"])
        duplicates += key in records
        records[key] = record
        return True

    for number, line in enumerate(lines, 1):
        if line.strip() and not take(number, line):
            problems.append(f"{path} line {number}: not JSON; ignored")
    if tail.strip():
        if take(len(lines) + 1, tail):
            with open(path, "ab") as f:
                f.write(b"\n")
        else:
            with open(path, "r+b") as f:
                f.truncate(len(data) - len(tail))
    return records, problems, duplicates


def _record(manifest, job: Job, *, kept: bool, method: str, model: str, reason: str | None = None,
            score: float | None = None, sha256: str | None = None, identity: float | None = None) -> None:
    line = {**asdict(job), "kept": kept, "method": method, "model": model, "judge_score": score,
            "identity_distance": identity, "file": job.file if kept else None}
    if kept:
        line["sha256"] = sha256
    if reason:
        line["reason"] = reason
    _write_row(manifest, line)


def _write_row(manifest, line: dict, sync: bool = True) -> None:
    """One manifest line: appended to the open file (fsync'ed unless `sync` is False: the caller
    syncs later), or to a list (a Ray worker returns its rows to the driver, which writes them)."""
    if isinstance(manifest, list):
        manifest.append(line)
        return
    manifest.write(json.dumps(line) + "\n")
    if sync:
        manifest.flush()
        os.fsync(manifest.fileno())


# -- names of the copied originals -----------------------------------------------------------

def original_name(source_id: str, ext: str, class_folders: bool, split: str | None = None) -> str:
    """A copied original's path below OUT/<class>/ ("/"-separated), before name clashes are
    settled (`original_names`). Class folders: the path below the class folder (the split
    folder, when there is one, comes first: train/neutral/s1/x.png -> train/s1/x.png). Tables:
    "file.csv:ROW" -> file-ROW.png; AffectNet "file.csv:REL/PATH" -> REL/PATH. A first
    component in the synthesized faces' name space (fxaug-...) gets one more leading "_"."""
    text = source_id.replace("\\", "/")
    if class_folders:
        parts = [p for p in text.split("/") if p not in ("", ".")]
        if len(parts) >= 2:
            del parts[1 if split is not None and len(parts) >= 3 else 0]  # the output has its own class folder
    else:
        head, sep, tail = text.partition(":")
        if sep and tail.isdigit():
            parts = [f"{Path(head).stem}-{tail}"]
        else:
            parts = [p for p in (tail if sep else text).split("/") if p not in ("", ".")]
    # hidden names would be skipped by every reader, and ".." must not climb out of the folder
    parts = ["_" + p if p.startswith(".") else p.replace(":", "_") for p in parts] or ["unnamed"]
    if _SYNTHESIZED_SPACE.match(parts[0]):
        parts[0] = "_" + parts[0]
    name = "/".join(parts)
    return name if os.path.splitext(parts[-1])[1].lower() in IMAGE_EXTENSIONS else name + ext


def original_names(entries: Iterable[Entry], class_folders: bool) -> dict[str, str]:
    """source_id -> path below OUT/<class>/ for every entry: unique (also where a file system
    ignores case), and stable (a function of the dataset's ids only). Sources that would still
    meet (class folders that are aliases, happy/ and Happiness/; names differing only in case)
    each get a short digest of their id before the extension."""
    names, emotion = {}, {}
    for entry in entries:
        ext = os.path.splitext(entry.path)[1].lower() if entry.path else ".png"
        name = original_name(entry.source_id, ext, class_folders, entry.split)
        if not entry.path and not name.lower().endswith(".png"):
            name += ".png"  # written from pixels: always PNG
        names[entry.source_id], emotion[entry.source_id] = name, entry.emotion

    def clashes() -> set[str]:
        by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
        folders: set[tuple[str, str]] = set()
        for sid, name in names.items():
            by_key[(emotion[sid], name.casefold())].append(sid)
            parts = name.casefold().split("/")
            folders.update((emotion[sid], "/".join(parts[:i])) for i in range(1, len(parts)))
        return {sid for key, ids in by_key.items() for sid in ids if len(ids) > 1 or key in folders}

    for sid in clashes():
        stem, ext = os.path.splitext(names[sid])
        names[sid] = f"{stem}~{hashlib.sha1(sid.encode()).hexdigest()[:10]}{ext}"
    left = clashes()
    if left:
        raise ValueError(f"cannot give {len(left)} originals unique names (e.g. {sorted(left)[:3]})")
    return names


# -- the output folder -----------------------------------------------------------------------

@contextmanager
def output_lock(out: Path, wait: bool = False):
    """Hold OUT/.fxaug.lock for the run: an OS lock (flock), which the kernel releases when the
    process ends however it ends, so a lock file left by a killed run never blocks. The file
    names the holder (pid, host, start, command) for the message another run prints. wait=True
    waits for the holder to let go (shards take turns at the plan and the originals) instead of
    raising OutputInUse."""
    path = out / LOCK
    try:
        import fcntl
    except ImportError:  # not POSIX: a portable lock, without the holder's details
        from filelock import FileLock, Timeout

        lock = FileLock(str(path) + ".portable")
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            raise OutputInUse(f"{out} is in use by another fxaug run (it holds {path}.portable); wait for it "
                              f"to end, or stop it, then run again with --resume") from None
        try:
            yield
        finally:
            lock.release()
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = _lock_holder(fd)
            if not wait:
                os.close(fd)
                raise OutputInUse(f"{out} is in use by another fxaug run ({holder}; it holds {path}); wait for "
                                  f"it to end, or stop it, then run again with --resume") from None
            log.info("waiting for %s to end (%s; it holds %s)", out, holder, path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # a run that just ended may have removed the file we locked: lock the one in place
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def _lock_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return (f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: "
                f"{holder.get('command') or 'fxaug'}")
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is just starting"


def _overlap(out: Path, dataset, reader) -> str | None:
    """Why --out may not be used with this dataset: it is the dataset, lies inside it, or holds it."""
    if not isinstance(dataset, (str, os.PathLike)):
        return None
    roots = {os.path.realpath(dataset)} | {os.path.realpath(getattr(reader, a)) for a in ("root", "image_root")
                                          if isinstance(getattr(reader, a, None), (str, os.PathLike))}
    target = os.path.realpath(out)
    for root in sorted(roots):
        if target == root:
            return f"--out {out} is the dataset ({root}); write the rebalanced set elsewhere"
        common = os.path.commonpath([target, root])
        if common == root:
            return f"--out {out} lies inside the dataset ({root}): its outputs would become inputs; choose a folder outside it"
        if common == target:
            return f"the dataset ({root}) lies inside --out {out}; choose a folder that does not hold the dataset"
    return None


def _stale_temp_files(out: Path) -> tuple[int, int]:
    """Remove the temporary files (atomic_write's pattern) that killed runs left in OUT (not in
    the shards' folders, which each shard cleans under its own lock while others may write)."""
    n = size = 0
    for folder, dirs, files in os.walk(out):
        if folder == os.fspath(out):
            dirs[:] = [d for d in dirs if d not in (SHARDS, SHARDS_REMOVED)]
        for name in files:
            if _TEMP_NAME.match(name):
                path = os.path.join(folder, name)
                try:
                    size += os.lstat(path).st_size
                    os.unlink(path)
                    n += 1
                except FileNotFoundError:
                    pass
    if n:
        log.warning("removed %d temporary files (%.1f MB) left in %s by an interrupted run", n, size / 1e6, out)
    return n, size


def _sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_new(path: Path, data: bytes, what: str) -> str:
    """Write `data` at `path` atomically, unless a file is there: one with these very bytes is
    this run's own (written before a kill, not yet recorded); any other is never replaced."""
    digest = hashlib.sha256(data).hexdigest()
    if path.is_symlink() or path.exists():
        if path.is_symlink() or not path.is_file() or _sha256_file(path) != digest:
            raise ForeignFile(f"{path}: a file fxaug did not write stands where {what} goes (fxaug never replaces "
                              f"it); move it away, then run again with --resume")
        return digest
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return digest


# -- the model -------------------------------------------------------------------------------

def _model_reference(model) -> str:
    """How plan.json, summary.json and the manifest name the model: a shipped model's name or
    a checkpoint's absolute path (never a relative path, wrong from any other folder)."""
    from .models import model_reference

    if isinstance(model, (str, os.PathLike)):
        return model_reference(model)
    path = getattr(model, "checkpoint_path", None)
    return model_reference(path) if path else f"<{type(model).__name__} in memory>"


def _model_config(model) -> dict[str, Any]:
    config = {k: v for k, v in model.config_dict().items() if not k.startswith("_")}
    return json.loads(json.dumps(config))


def model_digest(model) -> str:
    """The content digest of a loaded generator: its config and every tensor (names, dtypes,
    shapes, bytes). The same weights and config give the same digest however the model was
    named (shipped name, relative or absolute path, a copy elsewhere)."""
    import torch

    h = hashlib.sha256(json.dumps(_model_config(model), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"\n{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


# The most tensor memory _model_contract builds a generator with on the CPU (16 M float32 numbers;
# the shipped inpaint-ferplus-48 needs 2.8 MB): a larger one is built on the meta device instead.
CONTRACT_CPU_BYTES = 64 << 20


class _TooLarge(Exception):
    """A model whose tensors pass CONTRACT_CPU_BYTES: not to be allocated to read its contract."""


def _build_for_contract(model_cls, config):
    """`model_cls(config)` built on the CPU (its own __init__, a few ms for a small model) while
    its tensors fit in CONTRACT_CPU_BYTES, else on PyTorch's meta device (no memory for its
    tensors). The meta device is the fallback only: initialising a parameter there (normal_,
    and most ops PyTorch implements in Python for meta tensors) imports torch._dynamo, 2-3 s of
    every process. The global RNG is left as it was (the CPU build draws initial weights)."""
    import torch
    from torch.overrides import TorchFunctionMode

    sized = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn}  # size first
    try:  # every factory function (torch.tensor, arange, eye, ...): counted after the call
        from torch.utils._device import _device_constructors

        factories = set(_device_constructors())
    except ImportError:
        factories = set()

    class Budget(TorchFunctionMode):
        """Counts the bytes factory functions allocate; raises _TooLarge before a sized factory
        (every layer's parameters come from torch.empty) would pass the limit, after any other."""

        used = 0

        def _add(self, numel: int, dtype) -> None:
            self.used += numel * (dtype or torch.get_default_dtype()).itemsize
            if self.used > CONTRACT_CPU_BYTES:
                raise _TooLarge

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in sized:
                size = kwargs.get("size")
                if size is None:
                    size = args[0] if args and isinstance(args[0], (tuple, list, torch.Size)) else args
                numel = 1
                for n in size:
                    numel *= int(n)
                self._add(numel, kwargs.get("dtype"))
                return func(*args, **kwargs)
            out = func(*args, **kwargs)
            if func in factories and isinstance(out, torch.Tensor):
                self._add(out.numel(), out.dtype)
            return out

    try:
        with torch.random.fork_rng(devices=[]), torch.device("cpu"), Budget():
            return model_cls(config)
    except _TooLarge:
        pass
    with torch.device("meta"):
        return model_cls(config)


def _model_contract(model) -> tuple[list[tuple[str | None, str]], tuple[str, ...]]:
    """(translations, methods) of a model, for the dry run: read from its config.json and the
    model built from it without its weights (`_build_for_contract`: on the CPU when small, on the
    meta device when large), so a plan needs no generator."""
    if not isinstance(model, (str, os.PathLike)):
        return model.translations(), model.methods
    from .models import CONFIG_NAME, MODEL_CLASSES, load_model, model_dir
    from .models.base import _check_config_types, _read_config

    path = model_dir(model)  # a checkpoint folder, a shipped model or a Hub repo's cached snapshot; else its error
    config_path = path / CONFIG_NAME
    config = _read_config(config_path)
    model_cls = MODEL_CLASSES.get(config.get("_class_name"))
    if model_cls is None:
        built = load_model(path)  # raises the loader's own error, naming the file
        return built.translations(), built.methods
    fields = {f.name for f in dataclasses.fields(model_cls.config_class)}
    config = {k: v for k, v in config.items() if k in fields}
    _check_config_types(config_path, model_cls.config_class, config)
    try:
        built = _build_for_contract(model_cls, model_cls.config_class(**config))
    except Exception:  # a family that cannot be built without data: load it whole
        built = load_model(path)
    return built.translations(), built.methods


def _settings_differences(saved: dict, now: dict) -> list[str]:
    """What differs between the run in OUT (plan.json) and this one; keys an older fxaug did
    not record are not compared. The model is compared by content: the same weights and config
    under another name or path are the same model."""
    diffs = []
    if "model_digest" in saved:
        if saved["model_digest"] != now["model_digest"]:
            old_config, new_config = saved.get("model_config"), now["model_config"]
            if isinstance(old_config, dict) and old_config != new_config:
                fields = sorted(k for k in set(old_config) | set(new_config) if old_config.get(k) != new_config.get(k))
                what = f"another config (fields {', '.join(fields)})"
            else:
                what = "other weights (the same config)"
            diffs.append(f"model: the run used {saved.get('model')} ({saved['model_digest'][:19]}...), "
                         f"{now['model']} has {what} ({now['model_digest'][:19]}...)")
    elif saved.get("model") not in (now["model"], None) and _model_reference(saved["model"]) != now["model"]:
        diffs.append(f"model: the run used {saved.get('model')}, this one {now['model']}")
    for key, value in now.items():
        if key in ("model", "model_digest", "model_config", "plan") or key not in saved:
            continue
        old = saved[key]
        if key == "dataset" and isinstance(old, str) and isinstance(value, str):
            if old == value or os.path.realpath(old) == os.path.realpath(value):
                continue
        if old != json.loads(json.dumps(value)):
            diffs.append(f"{key}: {old!r} in the run, {value!r} now")
    return diffs


# -- the run ---------------------------------------------------------------------------------

def rebalance(
    dataset,
    out: str | os.PathLike,
    *,
    model=None,
    method: str | None = None,
    target: int | None = None,
    sampling_strategy=None,
    classes: list[str] | None = None,
    max_per_source: int | None = None,
    min_confidence: float | None = None,
    judge=None,
    strength: float = 1.0,
    link: bool = False,
    resume: bool = False,
    dry_run: bool = False,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 64,
    window_pixels: int | None = WINDOW_PIXELS,
    format: str = "auto",
    progress: bool = True,
    identity: bool | None = None,
    num_shards: int | None = None,
    shard_index: int | None = None,
    merge: bool = False,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    **reader_kwargs,
) -> dict[str, Any]:
    """Rebalance `dataset` into `out`; returns the summary (with dry_run, the plan, made from
    the dataset's index and the model's config: no image decoded, no generator loaded).

    Raises OutputInUse (another run holds `out`), ForeignFile (a file fxaug did not write is in
    the way), FileExistsError / ValueError (an unusable `out`, other settings than the run in
    it) and OSError (a full or read-only disk: resume=True continues once it is fixed).
    identity: record each face's identity_distance to its source in the manifest. None (default):
    only when the generator runs on a GPU, because on CPU the identity net about doubles a
    48 px run's time (docs/runs/rebalance-identity-cost.json); True / False: always / never.
    Not a setting of the run: a resume may choose otherwise.

    Beyond one process (docs/distributed.md): num_shards=N, shard_index=I plans the whole run
    (the first shard to arrive copies the originals; the others check them) and makes only
    shard I's windows of jobs, in OUT/.fxaug-shards/I (each shard resumes on its own); merge=True
    (or `rebalance_merge(out)`) then writes what one process writes, byte for byte: manifest.jsonl
    in its order, summary.json, figures. engine="ray" sends the windows to Ray Data actors
    (`address`: a cluster, e.g. "auto"; default: the Ray already initialised in this process,
    else a local one; `workers`: actors, default one per GPU, else per CPU) and merges at the end.
    Returns a shard's own account for a shard, the summary otherwise."""
    from .models import select_model
    from .pipeline import ExpressionPipeline

    if (num_shards is None) != (shard_index is None):
        raise ValueError("give num_shards and shard_index together (shard I of N)")
    if num_shards is not None:
        if not (isinstance(num_shards, int) and isinstance(shard_index, int) and 0 <= shard_index < num_shards):
            raise ValueError(f"shard_index must be 0..num_shards-1 (got shard {shard_index} of {num_shards})")
        if merge or engine != "local":
            raise ValueError("a shard makes its own windows: merge and engine='ray' are separate runs")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', not {engine!r}")
    if merge and engine != "local":
        raise ValueError("engine='ray' merges by itself at its end: merge=True is for shards")
    out = Path(out)
    reader_kwargs.setdefault("color", "native")  # grey sources stay grey, and so do their fakes
    reader = open_dataset(dataset, format=format, **reader_kwargs)
    entries: dict[str, Entry] = {}
    by_class: dict[str, list[str]] = {}
    for entry in reader.entries():
        entries[entry.source_id] = entry
        by_class.setdefault(entry.emotion, []).append(entry.source_id)
    counts = Counter({k: len(v) for k, v in by_class.items()})
    # The shipped model that can fill the most of the classes to fill (default: those below the goal).
    goal = target or max(counts.values(), default=0)
    if sampling_strategy is not None and len(counts) > 1 and not classes:
        from .sampling import samples_to_add

        wanted = [c for c, n in samples_to_add({**{c: 0 for c in _strategy_classes(sampling_strategy)}, **counts},
                                                sampling_strategy).items() if n > 0] or ["happy"]
    else:
        wanted = classes or [c for c in E.EMOTIONS if counts.get(c, 0) < goal] or ["happy"]
    model = model or select_model(wanted, method)
    reference = _model_reference(model)
    wanted_classes = [E.canonical(c) for c in classes] if classes else None
    translations, methods = _model_contract(model)
    if method is not None and method not in methods:
        raise ValueError(f"this model works by the {' or '.join(repr(m) for m in methods)} method, not {method!r}")
    index_plan = make_plan(counts, translations, target, wanted_classes, sampling_strategy)  # errors before any write
    if dry_run:
        return {"format": reader.format, "description": reader.description, **index_plan.to_dict(),
                "model": reference, "method": method or methods[0],
                "counted_from": "the dataset's index: files that cannot be decoded are found (and left out) by the run"}

    why = _overlap(out, dataset, reader)
    if why:
        raise ValueError(why)
    if merge and (out / SHARDS / RUN_RECORD).is_file():
        _read_shards(out, [])  # a shard running or unfinished: said before the generator loads
    pipe = ExpressionPipeline(model, method=method, device=device, batch_size=batch_size)
    judge_reference = None
    if min_confidence is not None:
        judge_reference = os.fspath(judge) if isinstance(judge, (str, os.PathLike)) else (
            "ferplus-resnet" if judge is None else f"<{type(judge).__name__} in memory>")
        if isinstance(judge, (str, os.PathLike)) and Path(judge, "config.json").is_file():
            judge_reference = str(Path(judge).resolve())
    if identity is None:
        identity = pipe.device.type == "cuda"
    settings = {
        "dataset": str(Path(dataset).resolve()) if isinstance(dataset, (str, os.PathLike)) else reader.description,
        "model": reference, "model_digest": model_digest(pipe.model), "model_config": _model_config(pipe.model),
        "method": pipe.method, "plan": None, "max_per_source": max_per_source, "min_confidence": min_confidence,
        "judge": judge_reference, "strength": strength, "seed": seed, "batch_size": batch_size,
        "window_pixels": window_pixels,
        # how the goal was set: a resume that sets it otherwise is told so (not "the dataset changed")
        "target": target, "classes": wanted_classes, "sampling_strategy": strategy_setting(sampling_strategy),
    }
    # What a merge or a Ray worker needs to build this very run again (run.json), when it can be written down.
    recipe = {
        "dataset": os.fspath(Path(dataset).resolve()) if isinstance(dataset, (str, os.PathLike)) else None,
        "format": format, "reader_kwargs": reader_kwargs, "model": reference, "model_digest": settings["model_digest"],
        "method": method, "target": target, "sampling_strategy": sampling_strategy, "classes": classes,
        "max_per_source": max_per_source, "min_confidence": min_confidence, "strength": strength,
        "judge": os.fspath(Path(judge).resolve()) if isinstance(judge, (str, os.PathLike)) and Path(judge).exists()
        else judge if isinstance(judge, str) or judge is None else None,
        "link": link, "seed": seed, "batch_size": batch_size, "window_pixels": window_pixels, "identity": identity,
    }
    run = _Run(reader, entries, by_class, out, pipe, settings, translations, target, wanted_classes, judge,
               min_confidence, strength, link, resume, seed, max_per_source, batch_size, window_pixels, progress,
               identity, sampling_strategy, recipe)
    out.mkdir(parents=True, exist_ok=True)
    if num_shards is not None:
        with output_lock(out, wait=True):  # shards take turns at the plan and the originals
            run.prepare("shard", {"engine": "shards", "num_shards": num_shards})
        return run.shard(shard_index, num_shards)
    with output_lock(out):
        if engine == "ray":
            from .rebalance_ray import make_windows_on_ray

            run.prepare("ray", {"engine": "ray"})
            make_windows_on_ray(run, address=address, workers=workers, device=device)
            return run.synthesize_and_finish(merge=True)
        run.prepare("merge" if merge else "run")
        return run.synthesize_and_finish(merge=merge)


def rebalance_merge(out: str | os.PathLike, *, progress: bool = True, device: str = "auto") -> dict[str, Any]:
    """Merge the finished shards in `out` (`fxaug rebalance --merge OUT`) with the settings the
    shards recorded in OUT/.fxaug-shards/run.json; returns the summary."""
    out = Path(out)
    path = out / SHARDS / RUN_RECORD
    if not path.is_file():
        done = " (it holds a finished run: summary.json)" if (out / SUMMARY).is_file() else ""
        raise FileNotFoundError(f"{out} holds no shards to merge: no {path}{done}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        recipe = record["recipe"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: damaged ({err}); merge with rebalance(..., merge=True) and the run's settings") from None
    if not isinstance(recipe, dict):
        raise ValueError(f"{path}: the shards' settings hold Python objects (a callable sampling_strategy, a judge in "
                         f"memory) that a file cannot: merge from Python with rebalance(DATASET, OUT, merge=True, ...) "
                         f"and the shards' settings")
    recipe = dict(recipe)
    missing = [k for k in ("dataset", "model") if not isinstance(recipe.get(k), str) or recipe[k].startswith("<")]
    if missing:
        raise ValueError(f"{path}: the run's {' and '.join(missing)} was given in memory, not as a path; merge from "
                         f"Python with rebalance(DATASET, OUT, merge=True, ...) and the shards' settings")
    recipe.pop("model_digest", None)
    reader_kwargs = recipe.pop("reader_kwargs", {}) or {}
    dataset = recipe.pop("dataset")
    return rebalance(dataset, out, merge=True, resume=True, progress=progress, device=device, **recipe, **reader_kwargs)


def windows_to_make(plan: Plan, class_windows: Callable[[str], Iterator[list[Job]]],
                    records: dict[tuple[str, int], dict], spare: int = 0) -> Iterator[list[Job]]:
    """The windows a run still has to generate, given the jobs already recorded (`records`,
    (target, job) -> a line with "kept"): the single run's walk (`_Run.synthesize_and_finish`)
    replayed on the records; at a class's first window not recorded, that window and the next ones until
    they hold as many jobs as the class still needs (what it takes if none is rejected).
    With no records: the windows of a run without rejections, which the shards share out;
    rejections leave a class short, and the next call (the merge, Ray's next round) names the
    windows that follow. `spare`: that many more windows per class (made in the same round,
    used only if rejections call for them)."""
    for name, need in plan.to_make.items():
        pool = plan_pool(plan, name)
        kept = misses = 0
        windows = class_windows(name)
        while kept < need and misses < pool:
            window = next(windows, None)
            if window is None:
                break
            made = _replay(window, records, need - kept)
            if made is None:  # not recorded: make it, and enough after it for the rest
                yield window
                left, extra = need - kept - len(window), spare
                while left > 0 or extra > 0:
                    window = next(windows, None)
                    if window is None:
                        break
                    yield window
                    if left <= 0:
                        extra -= 1
                    left -= len(window)
                break
            kept += made
            misses = 0 if made else misses + len(window)


def plan_pool(plan: Plan, name: str) -> int:
    """How many sources feed `name` (a whole cycle of them without a kept face ends the class)."""
    return plan.pool.get(name, 0)


def _replay(window: list[Job], records: dict[tuple[str, int], dict], still_needed: int) -> int | None:
    """The faces a window keeps as the run records them (up to `still_needed`), or None when a
    job the run would record is not recorded."""
    n_kept = 0
    for job in window:
        if n_kept >= still_needed:
            break
        record = records.get((job.target, job.job))
        if record is None:
            return None
        n_kept += bool(record["kept"])
    return n_kept


class _Run:
    """One rebalance of a dataset into OUT: `prepare` (OUT's checks, plan.json, the originals, the
    plan), then `synthesize_and_finish` (the windows of jobs in order; manifest, summary, figures)
    or, for a shard, `shard` (its share of the windows, into its scratch folder)."""

    def __init__(self, reader, entries, by_class, out: Path, pipe, settings, translations, target, wanted_classes,
                 judge, min_confidence, strength, link, resume, seed, max_per_source, batch_size, window_pixels,
                 progress, identity, sampling_strategy, recipe):
        self.reader, self.entries, self.by_class, self.out, self.pipe = reader, entries, by_class, out, pipe
        self.settings, self.translations, self.target, self.wanted_classes = settings, translations, target, wanted_classes
        self.judge, self.min_confidence, self.strength, self.link = judge, min_confidence, strength, link
        self.resume, self.seed, self.max_per_source, self.batch_size = resume, seed, max_per_source, batch_size
        self.window_pixels, self.progress, self.identity = window_pixels, progress, identity
        self.sampling_strategy, self.recipe = sampling_strategy, recipe
        self.sizes: dict[str, int] = {}
        self.plan: Plan | None = None
        self.removed = (0, 0)

    # -- OUT, plan.json, originals, plan --------------------------------------------------------

    def prepare(self, mode: str, split: dict | None = None) -> None:
        """mode: "run" (one process), "shard", "merge" or "ray"; `split`: the run record of a
        shard or Ray run ({"engine": ..., "num_shards": ...}), written once and checked after."""
        out, resume = self.out, self.resume
        plan_path = out / PLAN
        scratch = out / SHARDS
        if (out / SHARDS_REMOVED).exists():
            import shutil

            shutil.rmtree(out / SHARDS_REMOVED, ignore_errors=True)  # a merge killed while deleting its scratch
        present = [p.name for p in out.iterdir() if p.name not in (LOCK, SHARDS_REMOVED) and not _TEMP_NAME.match(p.name)]
        if mode == "merge":
            if not (scratch / RUN_RECORD).is_file():
                raise FileNotFoundError(f"{out} holds no shards to merge (no {scratch / RUN_RECORD})")
        elif mode == "shard":
            if (out / MANIFEST).exists():
                raise FileExistsError(f"{out} holds a manifest ({out / MANIFEST}): a single-process run, or the shards' "
                                      f"merge has begun; shards write only before the merge (finish it with "
                                      f"`fxaug rebalance --merge {out}`), or choose a new --out")
        else:
            if present and not resume:
                if plan_path.is_file():
                    raise FileExistsError(f"{out} is not empty: it holds an fxaug run ({plan_path}); add --resume to "
                                          f"continue it, or choose a new --out")
                raise FileExistsError(f"{out} is not empty and holds no fxaug run (no {PLAN}); choose an empty or new --out")
            if scratch.exists():
                record = _read_run_record(scratch)
                if mode == "run" or (record or {}).get("engine") != "ray":
                    raise FileExistsError(f"{out} holds the shards of a distributed run ({scratch}): merge them with "
                                          f"`fxaug rebalance --merge {out}` (after each shard has finished)")
        if present and not plan_path.is_file():
            raise FileExistsError(f"{out} is not empty and holds no fxaug run (no {PLAN}; it holds e.g. "
                                  f"{', '.join(sorted(present)[:3])}): --resume continues only fxaug's own runs; "
                                  f"choose an empty or new --out")
        self.removed = _stale_temp_files(out)
        settings = self.settings
        saved = None
        if plan_path.is_file():
            try:
                saved = json.loads(plan_path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as err:
                raise ValueError(f"{plan_path}: damaged ({err}); this run's settings cannot be checked: use a new --out") from None
            if not isinstance(saved, dict):
                raise ValueError(f"{plan_path}: not a JSON object; this run's settings cannot be checked: use a new --out")
            diffs = _settings_differences(saved, settings)
            if diffs:
                raise ValueError(f"{out} holds a run with other settings ({plan_path}): {'; '.join(diffs)}. Resume "
                                 f"with the run's own settings, or use a new --out")
        else:
            write_text(plan_path, json.dumps(settings, indent=2) + "\n")
        if split is not None:
            _check_run_record(scratch, split, self.recipe)

        # Originals first: each checked (decoded), copied, recorded; a resumed run checks the record.
        names = original_names(self.entries.values(), self.reader.format == "folders")
        self.readable, self.unreadable = _copy_originals(self.reader, self.entries, names, out, self.link, self.progress)
        by_class = {cls: [i for i in ids if i in self.readable] for cls, ids in self.by_class.items()}
        self.by_class = {cls: ids for cls, ids in by_class.items() if ids}
        plan = make_plan(Counter({c: len(ids) for c, ids in self.by_class.items()}), self.translations, self.target,
                         self.wanted_classes, self.sampling_strategy)
        plan.pool = {name: sum(len(self.by_class.get(c, [])) for c in plan.sources[name]) for name in plan.to_make}
        plan_dict = json.loads(json.dumps(plan.to_dict()))
        if saved is not None and saved.get("plan") is not None:
            if saved["plan"] != plan_dict:
                then = saved["plan"].get("counts") if isinstance(saved["plan"], dict) else saved["plan"]
                raise ValueError(f"{out}: the dataset changed since the run began (counts then: {then}, now: "
                                 f"{plan_dict['counts']}); use a new --out")
        else:
            write_text(plan_path, json.dumps({**(saved or settings), "plan": plan_dict}, indent=2) + "\n")
        self.plan = plan

    def pixels_of(self, source_id: str) -> int:
        """A source's pixel count from its header (the same in every run: a window never
        depends on what was decoded before)."""
        if source_id not in self.sizes:
            entry = self.entries[source_id]
            try:
                if entry.path:  # header only; refuses a FIFO without blocking
                    w, h = image_size(entry.path)
                    self.sizes[source_id] = w * h
                else:
                    self.sizes[source_id] = int(np.prod(entry.load()[0].shape[:2]))
            except Exception:  # unreadable now: it fails to load in its window, where it is recorded
                self.sizes[source_id] = 0
        return self.sizes[source_id]

    def class_windows(self, name: str) -> Iterator[list[Job]]:
        """The windows of jobs for class `name`, in the run's order (a function of the plan and
        the data only)."""
        jobs = candidate_jobs(name, self.plan.sources[name], self.by_class, self.seed, self.max_per_source)
        return job_windows(jobs, self.pixels_of, self.batch_size, self.window_pixels)

    def _judge_model(self):
        if self.min_confidence is None:
            return None
        from .metrics import load_judge

        judge = self.judge
        return judge if judge is not None and not isinstance(judge, (str, os.PathLike)) else load_judge(
            judge or "ferplus-resnet", device=self.pipe.device)

    def _load_done(self, root: Path) -> tuple[dict, dict, list[str], int]:
        """The jobs recorded in root/manifest.jsonl whose kept faces are there, unchanged: (done,
        their files' (size, mtime), problems, duplicate lines)."""
        records, problems, duplicates = _read_manifest(root / MANIFEST)
        done: dict[tuple[str, int], dict] = {}
        fingerprint: dict[tuple[str, int], tuple[int, int]] = {}
        for key, record in records.items():
            if record["kept"]:
                file = root / record["file"]
                state = _check_file(file, record["sha256"])
                if state != "ok":
                    problems.append(f"{file}: recorded as kept but {state}; its job is made again")
                    continue
                fingerprint[key] = _stat_key(file)
            done[key] = record
        return done, fingerprint, problems, duplicates

    # -- one process, or the merge --------------------------------------------------------------

    def synthesize_and_finish(self, merge: bool = False) -> dict[str, Any]:
        from tqdm.auto import tqdm

        out, plan = self.out, self.plan
        done, fingerprint, problems, duplicates = self._load_done(out)
        pending = _read_shards(out, problems) if merge else None
        for line in problems[:10]:
            log.warning("%s", line)
        if len(problems) > 10:
            log.warning("... and %d more manifest problems (listed in %s)", len(problems) - 10, SUMMARY)

        total = sum(plan.to_make.values())
        already = min(total, sum(1 for r in done.values() if r["kept"]))
        tally = Counter()
        bar = tqdm(total=total, initial=already, disable=not self.progress, desc="rebalance", unit="face")
        kept_files: dict[tuple[str, int], Path] = {}
        with open(out / MANIFEST, "a") as manifest:
            runner = _WindowRunner(self.entries, self.reader, self.pipe, None, self.min_confidence, self.strength, out,
                                   manifest, bar, tally, self.settings["model"], done, kept_files, fingerprint, problems,
                                   identity=self.identity, pending=pending, judge_loader=self._judge_model)
            for name, need in plan.to_make.items():
                pool = plan_pool(plan, name)
                kept, misses = 0, 0  # misses: jobs since the last kept face; a whole cycle without one ends it
                windows = self.class_windows(name)
                while kept < need and misses < pool:
                    window = next(windows, None)
                    if window is None:
                        break
                    made = runner.run(window, need - kept)
                    kept += made
                    misses = 0 if made else misses + len(window)
        bar.close()
        summary = self.finish(done, kept_files, fingerprint, problems, tally, duplicates)
        if merge:
            _remove_scratch(out)
        return summary

    def finish(self, done, kept_files, fingerprint, problems, tally, duplicates) -> dict[str, Any]:
        # Count what is there: every kept face's file, unchanged since it was checked or written.
        out, plan, reader = self.out, self.plan, self.reader
        made = Counter()
        for key, file in kept_files.items():
            if fingerprint.get(key) == _stat_key(file) or _check_file(file, done[key]["sha256"]) == "ok":
                made[key[0]] += 1
            else:
                problems.append(f"{file}: changed or removed during the run; not counted")
        foreign = _foreign_files(out, {out / r["file"] for r in done.values() if r["kept"]} | set(kept_files.values()))
        if foreign:
            log.warning("%d files in %s were not written by fxaug and are not counted (e.g. %s)", len(foreign), out,
                        ", ".join(foreign[:3]))
        short = {c: n - made[c] for c, n in plan.to_make.items() if made[c] < n}
        skipped = reader.report.by_kind("skipped")
        summary = {
            "format": reader.format,
            "counts": plan.counts,
            "plan": plan.to_make,
            "made": {c: made[c] for c in plan.to_make},
            "final": {c: plan.counts.get(c, 0) + made.get(c, 0) for c in plan.counts},
            "short": short,
            "originals_copied": len(self.readable),
            "unreadable": len(self.unreadable),
            "skipped_inputs": [{"source": p.source, "reason": p.reason} for p in skipped],
            # per image, not per decode: the same figures whichever process (a resume, a shard) read what
            "read_report": {"read": len(self.readable), **{
                kind: len({p.source for p in reader.report.problems if p.kind == kind}) for kind in reader.report.KINDS}},
            "attempts": tally["attempts"],
            "rejected": tally["rejected"],
            "manifest_problems": len(problems),
            "manifest_problem_list": problems[:_LIST_LIMIT],
            "manifest_duplicate_lines": duplicates,
            "foreign_files": len(foreign),
            "foreign_file_list": foreign[:_LIST_LIMIT],
            "stale_temp_files_removed": self.removed[0],
            "model": self.settings["model"],
            "model_digest": self.settings["model_digest"],
            "method": self.pipe.method,
        }
        summary["figures"] = write_figures(out, summary)  # from what OUT holds: a resumed run draws the same
        write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
        if short:
            log.warning("could not make enough faces for %s (sources exhausted or rejected)", short)
        return summary

    # -- a shard ----------------------------------------------------------------------------------

    def shard(self, index: int, count: int) -> dict[str, Any]:
        """Make shard `index` of `count`: every count-th window (from the index-th) of a run
        without rejections, whole (all its jobs recorded: the merge takes what one process
        would), into OUT/.fxaug-shards/<index>/ under that folder's own lock."""
        from tqdm.auto import tqdm

        scratch = self.out / SHARDS / str(index)
        scratch.mkdir(parents=True, exist_ok=True)
        with output_lock(scratch):
            if (scratch / MANIFEST).exists() and not self.resume:
                raise FileExistsError(f"shard {index} of {count} has begun in {scratch}; add --resume to continue it")
            _stale_temp_files(scratch)
            windows = [w for k, w in enumerate(windows_to_make(self.plan, self.class_windows, {})) if k % count == index]
            state = {"shard_index": index, "num_shards": count, "windows": len(windows),
                     "jobs": sum(map(len, windows)), "finished": False}
            write_text(scratch / SHARD_STATE, json.dumps(state, indent=2) + "\n")
            done, fingerprint, problems, _ = self._load_done(scratch)
            for line in problems[:10]:
                log.warning("%s", line)
            tally = Counter()
            bar = tqdm(total=state["jobs"], initial=sum(1 for w in windows for j in w if (j.target, j.job) in done),
                       disable=not self.progress, desc=f"shard {index}/{count}", unit="job")
            with open(scratch / MANIFEST, "a") as manifest:
                runner = _WindowRunner(self.entries, self.reader, self.pipe, None, self.min_confidence, self.strength,
                                       scratch, manifest, bar, tally, self.settings["model"], done, {}, fingerprint,
                                       problems, identity=self.identity, judge_loader=self._judge_model, count_jobs=True)
                for window in windows:
                    runner.run(window, len(window))  # every job of the window recorded
            bar.close()
            records = [done[(j.target, j.job)] for w in windows for j in w if (j.target, j.job) in done]
            state.update(finished=True, kept=sum(1 for r in records if r["kept"]),
                         rejected=sum(1 for r in records if not r["kept"]), attempts_now=tally["attempts"])
            write_text(scratch / SHARD_STATE, json.dumps(state, indent=2) + "\n")
            return {**state, "scratch": str(scratch), "out": str(self.out)}


def _read_run_record(scratch: Path) -> dict | None:
    try:
        record = json.loads((scratch / RUN_RECORD).read_text(encoding="utf-8"))
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def _check_run_record(scratch: Path, split: dict, recipe: dict) -> None:
    """Write OUT/.fxaug-shards/run.json (how the run is split, and its settings for the merge),
    or check that this shard belongs to the split recorded there."""
    path = scratch / RUN_RECORD
    record = _read_run_record(scratch) if path.exists() else None
    if path.exists() and record is None:
        raise ValueError(f"{path}: damaged; the run's split cannot be checked: use a new --out")
    if record is not None:
        then = {k: record.get(k) for k in split}
        if then != split:
            raise ValueError(f"{scratch} holds a run split otherwise ({then}, this one: {split}): run the shards as "
                             f"they began, or use a new --out")
        return
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps({**split, "recipe": recipe}, indent=2)
    except TypeError:  # a setting given as a Python object: --merge OUT cannot rebuild it
        text = json.dumps({**split, "recipe": None}, indent=2)
    write_text(path, text + "\n")


def _read_shards(out: Path, problems: list[str]) -> dict[tuple[str, int], tuple[dict, Path]]:
    """Every job the shards (or Ray's workers) recorded: (target, job) -> (manifest line, its
    scratch folder). Refuses while a shard runs or has not finished."""
    scratch = out / SHARDS
    record = _read_run_record(scratch)
    if record is None:
        raise ValueError(f"{scratch / RUN_RECORD}: missing or damaged; the shards cannot be merged")
    names = ["ray"] if record.get("engine") == "ray" else [str(i) for i in range(int(record.get("num_shards", 0)))]
    running, unfinished = [], []
    pending: dict[tuple[str, int], tuple[dict, Path]] = {}
    for name in names:
        folder = scratch / name
        if record.get("engine") != "ray":
            if folder.is_dir():
                try:
                    with output_lock(folder):
                        pass
                except OutputInUse:
                    running.append(name)
                    continue
            try:
                state = json.loads((folder / SHARD_STATE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                state = {}
            if not state.get("finished"):
                unfinished.append(name)
                continue
        records, lines, _ = _read_manifest(folder / MANIFEST)
        problems.extend(lines)
        for key, line in records.items():
            pending[key] = (line, folder)
    if running or unfinished:
        what = "; ".join(part for part in (
            f"running: {', '.join(running)}" if running else "",
            f"not finished: {', '.join(unfinished)} (run each again with --resume)" if unfinished else "") if part)
        raise ValueError(f"cannot merge {out} yet: shards of {len(names)} {what}")
    return pending


def _remove_scratch(out: Path) -> None:
    """Delete the shards' folders once merged: renamed first, so a kill mid-delete leaves no
    half scratch that looks like shards (the next run deletes the rest)."""
    import shutil

    if (out / SHARDS).exists():
        os.replace(out / SHARDS, out / SHARDS_REMOVED)
    shutil.rmtree(out / SHARDS_REMOVED, ignore_errors=True)


def write_figures(out: Path, summary: dict[str, Any]) -> dict[str, str]:
    """Draw OUT/class_histogram.png (each class found, and after: `summary`'s counts and final)
    and OUT/contact_sheet.png (per class filled, its first CONTACT_PER_CLASS kept faces in job
    order beside their sources, from the manifest and the originals ledger), atomically; returns
    their names for summary.json. Drawn from what OUT holds, so a resumed run draws the figures
    of an uninterrupted one."""
    from .data import BadInput, decode_image
    from .figures import class_histogram, contact_sheet
    from .io import write_image

    out = Path(out)
    goal = {c: summary["counts"].get(c, 0) + n for c, n in summary["plan"].items()}
    write_image(out / HISTOGRAM, class_histogram(summary["counts"], summary["final"], goal=goal))
    records, _, _ = _read_manifest(out / MANIFEST)
    ledger, _ = _read_ledger(out / ORIGINALS)
    groups = []
    for target, made in summary["made"].items():
        if not summary["plan"].get(target):
            continue  # at its goal already
        pairs = []
        for key in sorted(k for k, r in records.items() if k[0] == target and r["kept"]):
            record, original = records[key], ledger.get(records[key]["source_id"])
            if len(pairs) == CONTACT_PER_CLASS:
                break
            if original is None or _check_file(out / record["file"], record["sha256"]) != "ok":
                continue  # a source not copied, a face changed since: not shown
            try:
                faces = [decode_image(out / f, color="native")[0] for f in (original["file"], record["file"])]
            except (BadInput, OSError):
                continue
            distance = record.get("identity_distance")
            caption = f"from {record['source_label']}" + (f", identity {distance:.2f}" if isinstance(distance, float) else "")
            pairs.append((*faces, caption))
        groups.append((f"{target}: {made} made, {len(pairs)} shown", pairs))
    write_image(out / CONTACT_SHEET, contact_sheet(groups or [("no class needed faces", [])]))
    return {"class_histogram": HISTOGRAM, "contact_sheet": CONTACT_SHEET}


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _check_file(path: Path, digest: str) -> str:
    """'ok' when `path` is a regular file with this content digest; else 'missing' or 'changed'."""
    if path.is_symlink() or not path.exists():
        return "missing" if not path.is_symlink() else "replaced by a link"
    if not path.is_file():
        return "replaced by a folder"
    return "ok" if _sha256_file(path) == digest else "changed (its content digest differs)"


def _foreign_files(out: Path, ours: set[Path]) -> list[str]:
    """Files in OUT's class folders that neither the originals ledger nor the manifest names."""
    recorded = set(ours)
    ledger, _ = _read_ledger(out / ORIGINALS)
    recorded |= {out / r["file"] for r in ledger.values()}
    found = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                if not name.startswith(".") and path not in recorded:
                    found.append(str(path.relative_to(out)))
    return found


def _unrecorded_before_done(window: list[Job], recorded: dict[int, dict], still_needed: int) -> bool:
    """Whether replaying the window meets a job not recorded before the class has what it needs
    (only then is the window generated: a finished run resumes without the generator)."""
    n_kept = 0
    for job in window:
        if n_kept >= still_needed:
            return False
        record = recorded.get(job.job)
        if record is None:
            return True
        n_kept += bool(record["kept"])
    return False


class _WindowRunner:
    """Generates, judges, writes and records the jobs of one window (see `run`)."""

    def __init__(self, entries, reader, pipe, judge, min_confidence, strength, out: Path, manifest, bar, tally: Counter,
                 model: str, done: dict, kept_files: dict, fingerprint: dict, problems: list[str],
                 identity: bool = True, pending: dict | None = None, judge_loader: Callable | None = None,
                 count_jobs: bool = False):
        self.entries, self.reader, self.pipe, self.judge = entries, reader, pipe, judge
        self.min_confidence, self.strength, self.out, self.manifest = min_confidence, strength, out, manifest
        self.bar, self.tally, self.model = bar, tally, model  # model: its reference, for the manifest
        # shared with the run: recorded jobs, kept faces' files and their (size, mtime), problems met
        self.done, self.kept_files, self.fingerprint, self.problems = done, kept_files, fingerprint, problems
        self.identity = identity  # measure identity_distance (the net loads on first use)
        self._encoder, self._descriptors = None, {}  # source_id -> descriptor (CPU: see _identity)
        # the merge: jobs the shards recorded, (target, job) -> (line, scratch folder), taken over in order
        self.pending = pending
        self.judge_loader = judge_loader  # loads the judge on the first window generated (a merge may need none)
        self.count_jobs = count_jobs  # the bar counts jobs (a shard), not kept faces

    def run(self, window: list[Job], still_needed: int) -> int:
        """Replay the window's recorded jobs and make the others, in job order, until the class
        has what it needs (later jobs of the window are left unrecorded, as in an uninterrupted
        run). The whole window goes to the generator, recorded jobs too: the same batch as in an
        uninterrupted run, so the same bytes. A merge takes over what a shard recorded (its face
        moved into place, its line written here) as if it were made now. Returns the window's
        kept faces, old and new."""
        recorded = {}
        for job in window:
            record = self.done.get((job.target, job.job))
            if record is not None and (record["source_id"], record["source_label"], record["seed"]) != (
                    job.source_id, job.source_label, job.seed):
                self.problems.append(f"{MANIFEST}: job {job.target} {job.job} is recorded for another source or seed "
                                     f"than this plan's; made again")
                del self.done[(job.target, job.job)]
                record = None
            if record is None and self.pending:
                record = self._adoptable(job)
            if record is not None:
                recorded[job.job] = record
        outcome, scores, distances = self._generate(window) if _unrecorded_before_done(window, recorded, still_needed) \
            else ({}, {}, {})
        n_kept = adopted = 0
        for job in window:
            if n_kept >= still_needed:
                break
            record = recorded.get(job.job)
            if record is not None:
                if "_adopt" in record:
                    self._adopt(job, record)
                    adopted += 1
                if record["kept"]:
                    n_kept += 1
                    self.kept_files[(job.target, job.job)] = self.out / job.file
                continue
            result, score = outcome.get(job.job), scores.get(job.job)
            common = {"method": self.pipe.method, "model": self.model, "identity": distances.get(job.job)}
            self.tally["attempts"] += 1
            if result is None:
                self._reject(job, "source unreadable", None, common)
            elif not result.found:
                self._reject(job, result.reason or "no face", None, common)
            elif self.min_confidence is not None and score < self.min_confidence:
                self._reject(job, f"judge confidence {score:.3f} < {self.min_confidence}", score, common)
            else:
                path = self.out / job.target / job.filename
                digest = _write_new(path, _png_bytes(result.image), f"the face of job {job.target} {job.job}")
                _record(self.manifest, job, kept=True, score=score, sha256=digest, **common)
                self.done[(job.target, job.job)] = {"kept": True, "sha256": digest, "file": job.file}
                self.fingerprint[(job.target, job.job)] = _stat_key(path)
                self.kept_files[(job.target, job.job)] = path
                n_kept += 1
                self.bar.update(1)
            self.bar.set_postfix(attempts=self.tally["attempts"], rejected=self.tally["rejected"], refresh=False)
        if adopted and not isinstance(self.manifest, list):  # taken-over lines: one sync per window
            self.manifest.flush()
            os.fsync(self.manifest.fileno())
        return n_kept

    def _adoptable(self, job: Job) -> dict | None:
        """A shard's record of `job`, if it is this plan's job and its face is at hand (in the
        shard's folder, or already moved into OUT by a merge that was interrupted), unchanged."""
        key = (job.target, job.job)
        if key not in self.pending:
            return None
        line, folder = self.pending[key]
        if (line["source_id"], line["source_label"], line["seed"]) != (job.source_id, job.source_label, job.seed):
            self.problems.append(f"{folder / MANIFEST}: job {job.target} {job.job} is recorded for another source or "
                                 f"seed than this plan's; made again")
            return None
        move = None
        if line["kept"]:
            dest, source = self.out / line["file"], folder / line["file"]
            if dest.is_symlink() or dest.exists():
                if _check_file(dest, line["sha256"]) != "ok":
                    raise ForeignFile(f"{dest}: a file fxaug did not write stands where the face of job {job.target} "
                                      f"{job.job} goes (fxaug never replaces it); move it away, then merge again")
            elif _check_file(source, line["sha256"]) == "ok":
                move = source
            else:
                self.problems.append(f"{source}: recorded by its shard as kept but missing or changed; made again")
                return None
        return {"kept": line["kept"], "_adopt": (line, move)}

    def _adopt(self, job: Job, record: dict) -> None:
        line, move = record.pop("_adopt")
        key = (job.target, job.job)
        if move is not None:
            dest = self.out / line["file"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(move, dest)  # the same file system: OUT holds the scratch
        _write_row(self.manifest, line, sync=False)
        self.done[key] = line
        self.tally["attempts"] += 1
        if line["kept"]:
            path = self.out / line["file"]
            self.fingerprint[key] = _stat_key(path)
            self.kept_files[key] = path
            self.bar.update(1)
        else:
            self.tally["rejected"] += 1

    def _reject(self, job: Job, reason: str, score, common) -> None:
        self.tally["rejected"] += 1
        _record(self.manifest, job, kept=False, reason=reason, score=score, **common)
        self.done[(job.target, job.job)] = {"kept": False}
        if self.count_jobs:
            self.bar.update(1)

    def _generate(self, window: list[Job]):
        if self.judge is None and self.judge_loader is not None:
            self.judge, self.judge_loader = self.judge_loader(), None
        loaded = [(job, self.reader.load(self.entries[job.source_id])) for job in window]
        usable = [(job, rec) for job, rec in loaded if rec is not None]
        results = self.pipe.transfer([r.image for _, r in usable], [j.target for j, _ in usable], self.strength,
                                     boxes=[r.box for _, r in usable], landmarks=[r.landmarks for _, r in usable]) \
            if usable else []
        outcome = {job.job: res for (job, _), res in zip(usable, results)}
        scores: dict[int, float] = {}
        distances = self._identity([(job, rec.image, res.image) for (job, rec), res in zip(usable, results) if res.found])
        if self.judge is not None:
            found = [(job, res) for (job, _), res in zip(usable, results) if res.found]
            if found:
                probs = self.judge.predict_proba([res.image for _, res in found])
                for k, (job, _) in enumerate(found):
                    scores[job.job] = float(probs[k, self.judge.config.classes.index(job.target)])
        return outcome, scores, distances

    def _identity(self, faces: list) -> dict[int, float]:
        """job -> descriptor distance between its source and its output (`faces`: (job, source,
        output)), measured on the whole images as `fxaug eval` does; {} when not measured. A
        value must not depend on which window first met its source (a shard or a Ray worker
        makes the window elsewhere), and a descriptor differs in its last bits with the batch it
        was computed in (3.9e-7 measured on CPU): on a GPU the window's sources are encoded
        together (batched, cheap), on a CPU each source alone, once, and cached (a source feeds
        many jobs; alone costs 1.4x a batched face there, encoding it again per window more)."""
        if not self.identity or not faces:
            return {}
        if self._encoder is None:
            from .metrics.identity import IdentityEncoder

            self._encoder = IdentityEncoder(self.pipe.device)
        if self.pipe.device.type == "cpu":
            for job, source, _ in faces:
                if job.source_id not in self._descriptors:
                    self._descriptors[job.source_id] = self._encoder([source])[0]
            descriptors = self._descriptors
        else:
            sources: dict[str, np.ndarray] = {}
            for job, source, _ in faces:
                sources.setdefault(job.source_id, source)
            descriptors = dict(zip(sources, self._encoder(list(sources.values()))))
        outputs = self._encoder([output for _, _, output in faces])
        return {job.job: round(float(np.linalg.norm(descriptors[job.source_id] - d)), 4)
                for (job, _, _), d in zip(faces, outputs)}


# -- originals -------------------------------------------------------------------------------

def _read_ledger(path: Path) -> tuple[dict[str, dict], int]:
    """originals.jsonl: source_id -> its record (the last line wins); and how many lines were
    ignored (torn by a kill, or not a record of this form)."""
    ledger, bad = {}, 0
    if not path.is_file():
        return ledger, bad
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if (isinstance(record, dict) and isinstance(record.get("source_id"), str) and isinstance(record.get("file"), str)
                and isinstance(record.get("sha256"), str) and _SHA256.match(record["sha256"])
                and all(isinstance(record.get(k), int) for k in ("size", "mtime_ns"))):
            ledger[record["source_id"]] = record
        else:
            bad += 1
    return ledger, bad


def _copy_originals(reader, entries: dict[str, Entry], names: dict[str, str], out: Path, link: bool,
                    progress: bool) -> tuple[set[str], list[str]]:
    """Check, copy (or link) and record every original; returns (ids of the readable ones, ids
    of the unreadable ones). An original recorded in OUT/originals.jsonl is checked by its size
    and time, or its digest; an unrecorded file at its place is adopted only when it holds the
    very bytes (a copy a kill left unrecorded); any other file there stops the run (ForeignFile)."""
    from tqdm.auto import tqdm

    ledger_path = out / ORIGINALS
    ledger, _ = _read_ledger(ledger_path)
    readable, unreadable, foreign = set(), [], []
    if ledger_path.is_file() and not ledger_path.read_bytes().endswith(b"\n") and ledger_path.stat().st_size:
        with open(ledger_path, "ab") as f:
            f.write(b"\n")  # a line torn by a kill stays one bad line
    with open(ledger_path, "a") as f, tqdm(total=len(entries), desc="originals", unit="file",
                                              disable=not progress) as bar:
        for entry in entries.values():
            bar.update(1)
            rel = f"{entry.emotion}/{names[entry.source_id]}"
            dest = out.joinpath(*rel.split("/"))
            record = ledger.get(entry.source_id)
            if record is not None and record["file"] == rel:
                key = _stat_key(dest)
                if not dest.is_symlink() and key == (record["size"], record["mtime_ns"]):
                    readable.add(entry.source_id)
                    continue
                state = _check_file(dest, record["sha256"]) if not (link and _same_file(dest, entry.path)) else "ok"
                if state == "ok":
                    readable.add(entry.source_id)
                    continue
                if state != "missing":
                    foreign.append(f"{dest} ({state} since fxaug copied it)")
                    continue
            loaded = reader.load(entry)
            if loaded is None:
                unreadable.append(entry.source_id)
                continue
            data = None if entry.path else _png_bytes(loaded.image)  # pixels from a table: written as PNG
            if dest.is_symlink() or dest.exists():
                digest = hashlib.sha256(data).hexdigest() if data is not None else _sha256_file(entry.path)
                ours = (link and _same_file(dest, entry.path)) or (
                    not dest.is_symlink() and dest.is_file() and _sha256_file(dest) == digest)
                if not ours:
                    foreign.append(f"{dest} (holds other content than {entry.where})")
                    continue
            elif data is not None:
                atomic_write(dest, lambda tmp: Path(tmp).write_bytes(data))
                digest = hashlib.sha256(data).hexdigest()
            elif link:
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(entry.path, dest)
                    digest = _sha256_file(entry.path)
                except OSError:  # another device: copy (a symlink would point back into the dataset)
                    copied = hashlib.sha256()
                    atomic_write(dest, lambda tmp, src=entry.path: _copy_bytes(src, tmp, copied))
                    digest = copied.hexdigest()
            else:
                copied = hashlib.sha256()
                atomic_write(dest, lambda tmp, src=entry.path: _copy_bytes(src, tmp, copied))
                digest = copied.hexdigest()
            size, mtime_ns = _stat_key(dest)
            f.write(json.dumps({"source_id": entry.source_id, "file": rel, "sha256": digest, "size": size,
                                "mtime_ns": mtime_ns, "how": "link" if link and entry.path else "copy"}) + "\n")
            f.flush()
            readable.add(entry.source_id)
        os.fsync(f.fileno())
    if unreadable:
        log.warning("%d unreadable inputs left out (not copied, not counted, not used as sources; listed in %s)",
                    len(unreadable), SUMMARY)
    if foreign:
        raise ForeignFile(f"{len(foreign)} files in {out} stand where originals go and were not written by fxaug "
                          f"(fxaug never replaces them): {'; '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}. "
                          f"Move them away, then run again with --resume")
    return readable, unreadable


def _same_file(a: Path, b: str | None) -> bool:
    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _copy_bytes(src: str, dst: str, digest) -> None:
    """Copy src to dst, feeding the bytes to `digest` (hashlib) on the way: one read of each file."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            digest.update(chunk)
            fout.write(chunk)
