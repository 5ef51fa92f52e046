"""`fxaug rebalance` on 300 real faces: one process against `--engine ray` with 1 and 2 CPU
workers on this machine (issue #21, item 4). The faces are the test suite's 300 (FER2013 training
faces in class folders, FERPlus labels; 6 of them FER images FERPlus' taggers call "not a face",
whose jobs are rejected); the shipped 48 px generator, windows of 16 jobs, identity off (the CPU
default). Each configuration runs `--repeats` times, alternating; a run's time is its wall time
from the call to the summary (for Ray: the driver's plan and originals, the actors' start and
model loading, the windows, the merge), the local Ray being started once beforehand (its start is
reported apart). Every run's files are checked against the first single-process run's, byte for
byte. images/s = synthesized faces / wall time.

    .venv/bin/python benchmarks/rebalance_ray_throughput.py --repeats 2 \\
        --out docs/runs/rebalance-ray-throughput.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test suite's 300 faces and its file comparison


def _digests(out: Path) -> dict[str, str]:
    from conftest import rebalance_output_files

    return {name: hashlib.sha256(data).hexdigest() for name, data in rebalance_output_files(out).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default=str(REPO / "docs" / "runs" / "rebalance-ray-throughput.json"))
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"  # one torch thread in every process: Ray's CPU actors have one each
    import ray
    import torch

    from conftest import FER_NPZ, FerData, fer300_faces
    from dataset_writers import write_class_folders

    from fxaug.rebalance import rebalance

    torch.set_num_threads(1)
    faces = fer300_faces(FerData(FER_NPZ))
    settings = {"batch_size": args.batch_size, "device": "cpu", "identity": False, "progress": False}

    load_before = os.getloadavg()
    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}, log_to_driver=False, configure_logging=False)
    ray_start_s = time.perf_counter() - started
    configs = {"single_process": {}, "ray_1_worker": {"engine": "ray", "workers": 1},
               "ray_2_workers": {"engine": "ray", "workers": 2}}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    accounts: dict[str, list[dict]] = {name: [] for name in configs if name != "single_process"}

    class _Accounts(logging.Handler):  # the driver's "Ray account" log line: rounds, Ray's wall time, actors' busy time
        def emit(self, record):
            if record.getMessage().startswith("Ray account: "):
                self.last = json.loads(record.getMessage().split(": ", 1)[1])

    catcher = _Accounts(level=logging.INFO)
    logger = logging.getLogger("fxaug.rebalance")
    logger.addHandler(catcher)
    logger.setLevel(logging.INFO)
    made = reference = None
    identical: dict[str, list[bool]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="fxaug-ray-bench-") as work:
        data = Path(work) / "faces"
        write_class_folders(data, faces)
        for k in range(args.repeats):
            order = list(configs) if k % 2 == 0 else list(reversed(configs))  # alternate which goes first
            for name in order:
                out = Path(work) / f"{name}-{k}"
                started = time.perf_counter()
                summary = rebalance(data, out, **settings, **configs[name])
                seconds[name].append(round(time.perf_counter() - started, 2))
                if name in accounts:
                    accounts[name].append(catcher.last)
                made = sum(summary["made"].values())
                digests = _digests(out)
                reference = reference or digests
                identical[name].append(digests == reference)
                print(json.dumps({"run": name, "repeat": k, "s": seconds[name][-1], "made": made,
                                  "identical": identical[name][-1]}), flush=True)
    ray.shutdown()
    best = {name: min(v) for name, v in seconds.items()}
    rate = {name: round(made / s, 1) for name, s in best.items()}
    result = {
        "faces_in": 300, "faces_made": made, "batch_size": args.batch_size, "identity": False,
        "model": summary["model"], "device": "cpu", "torch_threads_per_process": 1,
        "ray": {"version": ray.__version__, "num_cpus": 2, "start_s": round(ray_start_s, 2)},
        "seconds": seconds, "best_s": best, "images_per_s": rate,
        # per Ray run: rounds, windows, "ray_s" (the rounds' wall time: actors' start and model
        # loading, the windows) and "workers_busy_s" (the actors' time in windows, summed)
        "ray_accounts": accounts,
        "ratio_to_single_process": {name: round(rate[name] / rate["single_process"], 2) for name in rate},
        "all_outputs_identical_to_single_process": all(all(v) for v in identical.values()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "command": "benchmarks/rebalance_ray_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("best_s", "images_per_s", "ratio_to_single_process",
                                              "all_outputs_identical_to_single_process")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
