"""kill -9 and --resume, again and again: does `fxaug rebalance` end with exactly the files of an
uninterrupted run, and a summary that says what is on disk?

One uninterrupted reference run on the bundled sample (100 real FER faces, the shipped
generator), then a second run into another folder that is killed with SIGKILL after a random
delay (seeded), resumed, killed again, ... `--cycles` times, and finally resumed to the end. Every
fourth kill lands in start-up (model loading, the originals' copy), the others after a random
number of newly recorded jobs plus a random fraction of a window's time (mid-window, between a
face's write and its manifest line, between windows). The result compares
the two folders file by file (names and bytes), checks summary.json against the files (every
class folder's count, every kept face's digest), the manifest (no job twice, the same jobs), the
lock file and stale temporary files, and writes it as JSON.

    .venv/bin/python benchmarks/rebalance_kill_resume.py --cycles 20 --seed 0 \\
        --out docs/runs/rebalance-kill-resume.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FXAUG = str(Path(sys.executable).parent / "fxaug")


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _files(root: Path) -> dict[str, str]:
    """Every image below `root`, by relative path, with its sha256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".") and p.suffix == ".png"}


def _truthful(out: Path) -> dict:
    """Whether summary.json says what is on disk, and what differs where it does not."""
    summary = json.loads((out / "summary.json").read_text())
    on_disk = Counter(p.relative_to(out).parts[0] for p in out.rglob("*.png") if p.parent != out)  # not the figures
    made_on_disk = Counter(p.parent.name for p in out.rglob("fxaug-*.png"))
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    kept = {(m["target"], m["job"]): m for m in lines if m["kept"]}
    bad_digests = [m["file"] for m in kept.values()
                   if hashlib.sha256((out / m["file"]).read_bytes()).hexdigest() != m.get("sha256")]
    checks = {
        "final_matches_class_folders": {c: n for c, n in summary["final"].items() if n} == dict(on_disk),
        "made_matches_synthesized_files": {c: n for c, n in summary["made"].items() if n} == dict(made_on_disk),
        "kept_jobs_match_files": len(kept) == sum(made_on_disk.values()),
        "kept_digests_match": not bad_digests,
    }
    return {"truthful": all(checks.values()), **checks, "bad_digests": bad_digests[:10]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default=str(REPO / "examples" / "sample"))
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="seeds the kill delays")
    p.add_argument("--target", type=int, default=60, help="images per class (default 60: 268 faces to make)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--work", help="folder for the two runs (default: a temporary one)")
    p.add_argument("--out", default=str(REPO / "docs" / "runs" / "rebalance-kill-resume.json"))
    args = p.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    work = Path(args.work or tempfile.mkdtemp(prefix="fxaug-kill-resume-"))
    reference, killed = work / "reference", work / "killed"
    run_args = [args.dataset, "--target", str(args.target), "--batch-size", str(args.batch_size), "--device", "cpu",
                "--no-progress"]

    t = time.perf_counter()
    proc = subprocess.Popen([FXAUG, "rebalance", run_args[0], "--out", str(reference), *run_args[1:]], env=env,
                            stdout=subprocess.DEVNULL)
    startup_s = None  # until the first face is recorded: imports, model, detector, originals
    while proc.poll() is None:
        if startup_s is None and _lines(reference / "manifest.jsonl"):
            startup_s = time.perf_counter() - t
        time.sleep(0.01)
    if proc.returncode:
        raise SystemExit(f"the reference run failed (exit {proc.returncode})")
    whole_s = time.perf_counter() - t
    startup_s = startup_s or whole_s
    # Every fourth kill lands in start-up (imports, model loading, the originals' copy and
    # checks): a random time before the first face. The others land in the synthesis: after a
    # random number of faces the resumed run records (about 60% of the jobs over all cycles, the
    # rest left to the last resume), plus a random fraction of a window's time, so that kills
    # fall mid-window and between a face's write and its manifest line.
    jobs = _lines(reference / "manifest.jsonl")
    synthesis_cycles = args.cycles - (args.cycles + 3) // 4
    per_cycle = max(1.0, 0.6 * jobs / max(1, synthesis_cycles) - args.batch_size)  # a window in flight ends too
    window_s = (whole_s - startup_s) / max(1, jobs) * args.batch_size
    rng = random.Random(args.seed)
    cycles = []
    manifest = killed / "manifest.jsonl"
    for cycle in range(args.cycles):
        in_startup = cycle % 4 == 0
        faces = 0 if in_startup else rng.randint(1, max(1, round(2 * per_cycle)))
        delay = rng.uniform(0.2, startup_s) if in_startup else rng.uniform(0, window_s)
        before = {"manifest_lines": _lines(manifest), "originals": _lines(killed / "originals.jsonl")}
        proc = subprocess.Popen([FXAUG, "rebalance", run_args[0], "--out", str(killed), "--resume", *run_args[1:]],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        t = time.perf_counter()
        if not in_startup:  # wait until this run has recorded `faces` jobs
            while proc.poll() is None and _lines(manifest) < before["manifest_lines"] + faces and \
                    time.perf_counter() - t < 300:
                time.sleep(0.002)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
        killed_at_s = time.perf_counter() - t
        proc.wait()
        was_killed = proc.returncode == -signal.SIGKILL
        stderr = proc.stderr.read().decode(errors="replace")
        cycles.append({
            "cycle": cycle, "aimed_at": "start-up" if in_startup else "synthesis",
            "after_faces": None if in_startup else faces, "delay_s": round(delay, 3),
            "killed": was_killed, "killed_after_s": round(killed_at_s, 2) if was_killed else None,
            "exit": proc.returncode,
            "manifest_lines": _lines(manifest) - before["manifest_lines"],
            "originals_recorded": _lines(killed / "originals.jsonl") - before["originals"],
            "error": stderr.strip().splitlines()[-1] if (not was_killed and proc.returncode) else None,
        })
        print(json.dumps(cycles[-1]), flush=True)
    t = time.perf_counter()
    final = subprocess.run([FXAUG, "rebalance", run_args[0], "--out", str(killed), "--resume", *run_args[1:]],
                           capture_output=True, text=True, env=env)
    final_s = time.perf_counter() - t

    whole, resumed = _files(reference), _files(killed)
    lines = [json.loads(line) for line in (killed / "manifest.jsonl").read_text().splitlines()]
    keys = Counter((m["target"], m["job"]) for m in lines)
    reference_keys = {(m["target"], m["job"]) for m in
                      map(json.loads, (reference / "manifest.jsonl").read_text().splitlines())}
    result = {
        "what": "fxaug rebalance killed with SIGKILL after random delays and resumed, against an uninterrupted run",
        "dataset": os.path.relpath(args.dataset, REPO) if args.dataset.startswith(str(REPO)) else args.dataset,
        "model": json.loads((reference / "plan.json").read_text())["model"],
        "target": args.target, "batch_size": args.batch_size, "seed": args.seed,
        "cycles": args.cycles, "killed": sum(c["killed"] for c in cycles),
        "killed_in_start_up": sum(c["killed"] and c["aimed_at"] == "start-up" for c in cycles),
        "killed_in_synthesis": sum(c["killed"] and c["aimed_at"] == "synthesis" for c in cycles),
        "ended_before_the_kill": sum(not c["killed"] for c in cycles),
        "cycles_that_recorded_faces": sum(c["manifest_lines"] > 0 for c in cycles),
        "faces_recorded_before_the_last_resume": sum(c["manifest_lines"] for c in cycles),
        "uninterrupted_run_s": round(whole_s, 1), "its_startup_s": round(startup_s, 1),
        "last_resume_s": round(final_s, 1),
        "last_resume_exit": final.returncode,
        "reference_files": len(whole), "resumed_files": len(resumed),
        "same_names": sorted(whole) == sorted(resumed),
        "same_bytes": whole == resumed,
        "differing": sorted(k for k in whole if k in resumed and whole[k] != resumed[k])[:20],
        "missing": sorted(set(whole) - set(resumed))[:20],
        "extra": sorted(set(resumed) - set(whole))[:20],
        "manifest": {"lines": len(lines), "jobs": len(keys), "jobs_recorded_twice": sum(n > 1 for n in keys.values()),
                     "same_jobs_as_reference": set(keys) == reference_keys},
        "summary": _truthful(killed),
        "summary_made_equals_reference": json.loads((killed / "summary.json").read_text())["made"]
        == json.loads((reference / "summary.json").read_text())["made"],
        "stale_temp_files_left": len(list(killed.rglob(".*.tmp"))),
        "lock_file_left": (killed / ".fxaug.lock").exists(),
        "per_cycle": cycles,
    }
    result["passed"] = bool(result["same_names"] and result["same_bytes"] and result["summary"]["truthful"]
                            and result["summary_made_equals_reference"] and not result["manifest"]["jobs_recorded_twice"]
                            and result["manifest"]["same_jobs_as_reference"] and final.returncode == 0
                            and not result["stale_temp_files_left"] and not result["lock_file_left"])
    from fxaug.io import write_text

    write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_cycle"}, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
