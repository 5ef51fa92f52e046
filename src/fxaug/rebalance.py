"""`fxaug rebalance`: fill rare emotion classes with synthesized faces.

Plan: count the classes (from the dataset's index), set a goal per class (default: the largest
class's count; `target`), and list, for every missing face, a job (source face, target emotion,
seed) in a fixed order: sources of the classes the model translates from, neutral first, each
class's sources in a seeded shuffled order, cycling (at most `max_per_source` uses each).
Run: jobs go through the pipeline in batches; an output is kept unless it has no face or the
judge's confidence in its target is below `min_confidence`, in which case the next spare job
of that class takes its place. Everything is deterministic, so a run can stop anywhere
(Ctrl-C, kill -9) and `resume=True` finishes it with exactly the files an uninterrupted run
writes: every output is written atomically under a name fixed by its job, then recorded in
manifest.jsonl (one line per job, kept or not), and a resumed run skips recorded jobs.

Output: OUT/<class>/ holds the originals (copied, or hard-linked with link=True) and the
synthesized faces (fxaug-<class>-<job>.png); OUT/manifest.jsonl; OUT/summary.json.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import emotions as E
from .data import open_dataset
from .data.records import Entry
from .io import atomic_write, write_image, write_text

log = logging.getLogger("fxaug.rebalance")
MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"
PLAN = "plan.json"


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


@dataclass
class Plan:
    counts: dict[str, int]  # images found per class
    goal: dict[str, int]  # images wanted per class after rebalancing
    to_make: dict[str, int] = field(default_factory=dict)  # synthesized faces per class
    sources: dict[str, list[str]] = field(default_factory=dict)  # target -> source classes

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "plan": self.to_make, "goal": self.goal, "sources": self.sources}


def make_plan(counts: Counter, translations: list[tuple[str | None, str]], target: int | None = None,
              classes: list[str] | None = None) -> Plan:
    """How many faces each class needs, and which classes can feed it."""
    counts = {name: int(counts.get(name, 0)) for name in E.EMOTIONS if counts.get(name, 0) or name in (classes or [])}
    reachable = {t for _, t in translations}
    goal_n = target if target is not None else max(counts.values(), default=0)
    wanted = classes or [c for c in counts if c in reachable]
    plan = Plan(counts=counts, goal={})
    for name in counts:
        plan.goal[name] = max(counts[name], goal_n) if name in wanted else counts[name]
    for name in wanted:
        if name not in reachable:
            raise ValueError(f"the model cannot produce {name!r}; it produces: {', '.join(sorted(reachable))}")
        need = max(0, goal_n - counts.get(name, 0))
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


def _read_manifest(path: Path) -> list[dict]:
    """Recorded jobs; a torn last line (a kill mid-write) is dropped and truncated away."""
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    records, good = [], 0
    for line in lines:
        if not line.strip():
            good += len(line) + 1
            continue
        try:
            records.append(json.loads(line))
            good += len(line) + 1
        except json.JSONDecodeError:
            break
    size = path.stat().st_size
    if good < size:
        with open(path, "r+b") as f:
            f.truncate(min(good, size))
    return records


def original_name(source_id: str, ext: str, class_folders: bool) -> str:
    """A copied original's file name: class folders keep the file's name (split folders above
    the class become a prefix: train__x.png); other formats flatten the whole id."""
    parts = source_id.replace("\\", "/").split("/")
    if class_folders and len(parts) >= 2:
        parts = parts[:-2] + parts[-1:]  # drop the class folder: the output has its own
    stem = "__".join(parts).replace(":", "_")
    return stem if os.path.splitext(stem)[1] else stem + ext


def rebalance(
    dataset,
    out: str | os.PathLike,
    *,
    model=None,
    method: str | None = None,
    target: int | None = None,
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
    format: str = "auto",
    progress: bool = True,
    **reader_kwargs,
) -> dict[str, Any]:
    """Rebalance `dataset` into `out`; returns the summary (with dry_run, the plan)."""
    from .models import select_model
    from .pipeline import ExpressionPipeline

    out = Path(out)
    reader = open_dataset(dataset, format=format, **reader_kwargs)
    entries: dict[str, Entry] = {}
    by_class: dict[str, list[str]] = {}
    for entry in reader.entries():
        entries[entry.source_id] = entry
        by_class.setdefault(entry.emotion, []).append(entry.source_id)
    counts = Counter({k: len(v) for k, v in by_class.items()})
    # The shipped model that can fill the most of the classes to fill (default: those below the goal).
    goal = target or max(counts.values(), default=0)
    wanted = classes or [c for c in E.EMOTIONS if counts.get(c, 0) < goal] or ["happy"]
    model = model or select_model(wanted, method)
    pipe = ExpressionPipeline(model, method=method, device=device, batch_size=batch_size)
    plan = make_plan(counts, pipe.model.translations(), target, [E.canonical(c) for c in classes] if classes else None)
    if dry_run:
        return {"format": reader.format, "description": reader.description, **plan.to_dict()}

    if out.exists() and any(out.iterdir()) and not resume:
        raise FileExistsError(f"{out} is not empty; use resume=True (--resume) to continue a run there")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"dataset": str(dataset), "model": str(model), "method": pipe.method, "plan": plan.to_dict(),
                "max_per_source": max_per_source, "min_confidence": min_confidence, "strength": strength, "seed": seed}
    plan_path = out / PLAN
    if plan_path.is_file():
        saved = json.loads(plan_path.read_text())
        if saved != settings:
            raise ValueError(f"{out} holds a run with other settings ({plan_path}); use a new --out")
    else:
        write_text(plan_path, json.dumps(settings, indent=2) + "\n")

    judge_model = None
    if min_confidence is not None:
        from .metrics import load_judge

        judge_model = judge if judge is not None and not isinstance(judge, (str, os.PathLike)) else load_judge(judge or "ferplus-resnet", device=pipe.device)

    # Originals first (skipped when already there: a resumed run).
    copied = _copy_originals(reader, entries, out, link)

    manifest_path = out / MANIFEST
    done = _read_manifest(manifest_path)
    seen = {(r["target"], r["job"]) for r in done}
    kept = Counter(r["target"] for r in done if r["kept"])
    total = sum(plan.to_make.values())
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=sum(kept.values()), disable=not progress, desc="rebalance", unit="face")
    with open(manifest_path, "a") as manifest:
        for name, need in plan.to_make.items():
            jobs = candidate_jobs(name, plan.sources[name], by_class, seed, max_per_source)
            pool = sum(len(by_class.get(c, [])) for c in plan.sources[name])
            misses = 0  # jobs since the last kept face: a whole cycle of sources without one ends it
            while kept[name] < need and misses < pool:
                # Fixed windows of consecutive jobs: a resumed run sends the generator the very
                # same batches as an uninterrupted one, so its outputs are the same bytes.
                window = [job for _, job in zip(range(batch_size), jobs)]
                if not window:
                    break
                if all((name, j.job) in seen for j in window):
                    continue
                made = _run_window(window, seen, need - kept[name], entries, reader, pipe, judge_model,
                                   min_confidence, strength, out, manifest, bar)
                kept[name] += made
                misses = 0 if made else misses + len(window)
    bar.close()
    short = {c: n - kept[c] for c, n in plan.to_make.items() if kept[c] < n}
    summary = {
        "format": reader.format,
        "counts": plan.counts,
        "plan": plan.to_make,
        "made": {c: kept[c] for c in plan.to_make},
        "final": {c: plan.counts.get(c, 0) + kept.get(c, 0) for c in plan.counts},
        "short": short,
        "originals_copied": copied,
        "read_report": {k: v for k, v in reader.report.to_dict().items() if k != "problems"},
        "model": str(model),
        "method": pipe.method,
    }
    write_text(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    if short:
        log.warning("could not make enough faces for %s (sources exhausted or rejected)", short)
    return summary


def _run_window(window, seen, still_needed, entries, reader, pipe, judge, min_confidence, strength, out, manifest,
                bar) -> int:
    """Generate and judge a window of jobs; write and record those not done yet, until the
    class has what it needs (later outputs of the window are dropped unrecorded). Returns how
    many were kept."""
    loaded = [(job, reader.load(entries[job.source_id])) for job in window]
    usable = [(job, rec) for job, rec in loaded if rec is not None]
    results = pipe.transfer([r.image for _, r in usable], [j.target for j, _ in usable], strength,
                            boxes=[r.box for _, r in usable], landmarks=[r.landmarks for _, r in usable]) if usable else []
    outcome = {job.job: res for (job, _), res in zip(usable, results)}
    scores: dict[int, float] = {}
    if judge is not None:
        found = [(job, res) for (job, _), res in zip(usable, results) if res.found]
        if found:
            probs = judge.predict_proba([res.image for _, res in found])
            for k, (job, _) in enumerate(found):
                scores[job.job] = float(probs[k, judge.config.classes.index(job.target)])
    n_kept = 0
    for job in window:
        if n_kept >= still_needed:
            break
        if (job.target, job.job) in seen:
            continue
        result, score = outcome.get(job.job), scores.get(job.job)
        if result is None:
            _record(manifest, job, kept=False, reason="source unreadable", method=pipe.method)
        elif not result.found:
            _record(manifest, job, kept=False, reason=result.reason or "no face", method=pipe.method)
        elif min_confidence is not None and score < min_confidence:
            _record(manifest, job, kept=False, reason=f"judge confidence {score:.3f} < {min_confidence}", score=score,
                    method=pipe.method)
        else:
            write_image(out / job.target / job.filename, result.image)
            _record(manifest, job, kept=True, score=score, method=pipe.method, file=f"{job.target}/{job.filename}")
            n_kept += 1
            bar.update(1)
    return n_kept


def _record(manifest, job: Job, *, kept: bool, method: str, reason: str | None = None, score: float | None = None,
            file: str | None = None) -> None:
    line = {**asdict(job), "kept": kept, "method": method, "judge_score": score, "file": file}
    if reason:
        line["reason"] = reason
    manifest.write(json.dumps(line) + "\n")
    manifest.flush()
    os.fsync(manifest.fileno())


def _copy_originals(reader, entries: dict[str, Entry], out: Path, link: bool) -> int:
    n = 0
    for entry in entries.values():
        ext = os.path.splitext(entry.path)[1].lower() if entry.path else ".png"
        dest = out / entry.emotion / original_name(entry.source_id, ext, reader.format == "folders")
        if dest.exists():
            n += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if entry.path:
            if link:
                try:
                    os.link(entry.path, dest)
                except OSError:
                    os.symlink(os.path.abspath(entry.path), dest)
            else:
                atomic_write(dest, lambda tmp, src=entry.path: shutil.copyfile(src, tmp))
        else:  # pixels from a table (fer2013.csv): write them out
            record = reader.load(entry)
            if record is None:
                continue
            write_image(dest, record.image)
        n += 1
    return n
