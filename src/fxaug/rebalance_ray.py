"""`fxaug rebalance --engine ray`: the windows of jobs made by Ray Data actors.

The driver (the `fxaug rebalance` process) does what one process does first: OUT's checks,
plan.json, the originals, the plan. It then turns the windows of jobs a run without rejections
makes into a Ray dataset, one row per window, and `map_batches` hands the rows to a pool of
actors (`_WindowWorker`, a callable class: each loads the generator once, on a GPU when the
cluster has them, `num_gpus=1` per actor, otherwise one CPU each). An actor reads the window's
sources with fxaug's own reader (the very decoding of the single-process run: colour modes, EXIF,
conversions), generates the window as one batch, writes each kept face into
OUT/.fxaug-shards/ray/ and returns the window's manifest lines; the driver appends them to that
folder's manifest as they stream back. Rejections leave a class short: the driver asks for the
windows that follow, round after round, until every class has what it needs. Then the ordinary
merge writes manifest.jsonl in the single-process order, summary.json and the figures.

A window is the unit of determinism (the generator sees the same batch wherever it runs), so the
files are those of the single-process run, byte for byte. The workers need the dataset and the
model at the same paths as the driver (a shared file system) and fxaug installed (`fxaug[ray]`).
An interrupted run continues with --resume: windows whose lines reached the driver are not made
again; a face written but not yet reported is found, with its very bytes, and kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("fxaug.rebalance")
SCRATCH_NAME = "ray"


class _WindowWorker:
    """A Ray Data actor: the generator (and judge, identity net) loaded once; each call makes
    the windows of its batch and returns their manifest lines, one JSON list per window."""

    def __init__(self, recipe: dict[str, Any], scratch: str, device: str):
        from collections import Counter

        from tqdm.auto import tqdm

        from .data import open_dataset
        from .pipeline import ExpressionPipeline
        from .rebalance import _WindowRunner, model_digest

        reader = open_dataset(recipe["dataset"], format=recipe["format"], **(recipe["reader_kwargs"] or {}))
        entries = {entry.source_id: entry for entry in reader.entries()}
        pipe = ExpressionPipeline(recipe["model"], method=recipe["method"], device=device,
                                  batch_size=recipe["batch_size"])
        digest = model_digest(pipe.model)
        if digest != recipe["model_digest"]:
            raise RuntimeError(f"the model {recipe['model']} on this Ray node ({os.uname().nodename}) is not the "
                               f"driver's ({digest[:19]}... here, {recipe['model_digest'][:19]}... there): give every "
                               f"node the same checkpoint")
        judge = None
        if recipe["min_confidence"] is not None:
            from .metrics import load_judge

            judge = load_judge(recipe["judge"] or "ferplus-resnet", device=pipe.device)
        self.lines: list[dict] = []
        self.runner = _WindowRunner(entries, reader, pipe, judge, recipe["min_confidence"], recipe["strength"],
                                    Path(scratch), self.lines, tqdm(disable=True), Counter(), recipe["model"], {}, {},
                                    {}, [], identity=recipe["identity"])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .rebalance import Job

        made, seconds = [], []
        for text in batch["jobs"]:
            started = time.perf_counter()
            window = [Job(**job) for job in json.loads(str(text))]
            self.lines.clear()
            self.runner.done.clear()  # each window whole: its lines go back to the driver
            self.runner.run(window, len(window))
            made.append(json.dumps(self.lines))
            seconds.append(time.perf_counter() - started)
        return {"lines": np.array(made, dtype=object), "seconds": np.array(seconds)}


def make_windows_on_ray(run, *, address: str | None = None, workers: int | None = None, device: str = "auto") -> dict:
    """Make, on Ray, every window the run needs (rounds until rejections are made up for),
    into OUT/.fxaug-shards/ray/; `run` is a prepared `fxaug.rebalance._Run`. Returns an account
    (rounds, windows, workers, device) for the log."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError("--engine ray needs Ray Data: pip install 'fxaug[ray]'") from None
    from .rebalance import MANIFEST, SHARDS, _read_manifest, _stale_temp_files, _write_row, windows_to_make

    recipe = run.recipe
    for key, what in (("dataset", "a dataset path (folders, a CSV, parquet)"), ("model", "a model name or path")):
        if not isinstance(recipe.get(key), str) or recipe[key].startswith("<"):
            raise ValueError(f"--engine ray needs {what} that its workers can open, not an object in memory")
    if recipe["min_confidence"] is not None and recipe["judge"] is not None and not isinstance(recipe["judge"], str):
        raise ValueError("--engine ray needs the judge as a name or path, not an object in memory")
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=run.progress, configure_logging=False)
    elif address:
        log.info("Ray is already initialised in this process: using it (address=%s not used)", address)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = run.progress
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    use_gpu = str(device).startswith("cuda") or (device == "auto" and gpus > 0)
    if use_gpu and not gpus:
        raise ValueError(f"device {device!r}: the Ray cluster has no GPU")
    worker_device = "cuda" if use_gpu else "cpu"
    n_workers = workers or (gpus if use_gpu else max(1, int(resources.get("CPU", 1))))

    scratch = run.out / SHARDS / SCRATCH_NAME
    scratch.mkdir(parents=True, exist_ok=True)
    _stale_temp_files(scratch)  # no worker runs yet: the driver holds OUT's lock
    known: dict[tuple[str, int], dict] = {}
    for path in (run.out / MANIFEST, scratch / MANIFEST):  # a merge begun, and the windows made
        records, _, _ = _read_manifest(path)
        known.update(records)
    rounds = windows = 0
    stage_s = busy_s = 0.0  # the rounds' wall time; the actors' time in windows (not starting, not loading)
    with open(scratch / MANIFEST, "a") as manifest:
        while True:
            # one spare window per class: a few rejections are made up in the same round (a new
            # round starts new actors, which load the generator again)
            todo = list(windows_to_make(run.plan, run.class_windows, known, spare=1))
            if not todo:
                break
            rounds += 1
            windows += len(todo)
            log.info("Ray round %d: %d windows (%d jobs) on %d %s workers", rounds, len(todo), sum(map(len, todo)),
                     n_workers, worker_device.upper())
            rows = ray.data.from_items([{"jobs": json.dumps([asdict(job) for job in window])} for window in todo],
                                       override_num_blocks=len(todo))
            made = rows.map_batches(
                _WindowWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(n_workers, len(todo))),
                fn_constructor_kwargs={"recipe": recipe, "scratch": str(scratch), "device": worker_device},
                **({"num_gpus": 1} if use_gpu else {"num_cpus": 1}))
            started = time.perf_counter()
            for row in made.iter_rows():
                for line in json.loads(row["lines"]):
                    _write_row(manifest, line, sync=False)
                    known[(line["target"], line["job"])] = line
                manifest.flush()
                busy_s += float(row["seconds"])
            os.fsync(manifest.fileno())
            stage_s += time.perf_counter() - started
    account = {"rounds": rounds, "windows": windows, "workers": n_workers, "device": worker_device,
               "ray_s": round(stage_s, 2), "workers_busy_s": round(busy_s, 2)}
    log.info("Ray account: %s", json.dumps(account))
    return account
