"""`fxaug rebalance --num-shards N --shard-index I` and `--merge` (issue #21, item 1): three
shards of 300 real FER faces run at once (they take turns at the plan and the originals), one is
killed with SIGKILL mid-synthesis and resumed, and the merge gives the single-process output
exactly: every file's bytes, manifest.jsonl line for line in the same order, summary.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REBALANCE_300_CLI, rebalance_output_files

from fxaug.rebalance import LOCK, MANIFEST, SHARDS

FXAUG = str(Path(sys.executable).parent / "fxaug")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the reference's one thread (see rebalance_300_reference)


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _shard(dataset: Path, out: Path, index: int, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([FXAUG, "rebalance", str(dataset), "--out", str(out), *REBALANCE_300_CLI,
                             "--num-shards", "3", "--shard-index", str(index), *extra], env=ENV, **popen)


def test_three_shards_one_killed_and_resumed_merge_to_the_single_process_output(
        fer300_dataset, rebalance_300_reference, tmp_path, capsys):
    from fxaug.cli import main

    out = tmp_path / "sharded"
    shards = {i: _shard(fer300_dataset, out, i, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i in range(3)}
    # Kill shard 1 once it has recorded its first window (8 jobs) and before it is through.
    victim = out / SHARDS / "1" / MANIFEST
    deadline = time.time() + 300
    while shards[1].poll() is None and time.time() < deadline and _lines(victim) < 8:
        time.sleep(0.005)
    assert shards[1].poll() is None, "shard 1 ended before it could be killed"
    os.kill(shards[1].pid, signal.SIGKILL)
    assert shards[1].wait() == -signal.SIGKILL
    for i in (0, 2):
        stdout, stderr = shards[i].communicate(timeout=300)
        assert shards[i].returncode == 0, stderr[-2000:]
        assert f"shard {i} of 3:" in stdout and f"--merge {out}" in stdout
    state = json.loads((out / SHARDS / "1" / "shard.json").read_text())
    assert not state["finished"] and 8 <= _lines(victim) < state["jobs"]

    # The merge refuses while a shard is unfinished, and says which and what to do.
    assert main(["rebalance", "--merge", str(out)]) == 2
    assert "not finished: 1 (run each again with --resume)" in capsys.readouterr().err
    assert not (out / MANIFEST).exists()

    resumed = _shard(fer300_dataset, out, 1, "--resume", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr[-2000:]
    merged = subprocess.run([FXAUG, "rebalance", "--merge", str(out), "--no-progress"], capture_output=True, text=True,
                            env=ENV)
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert "made 313 faces" in merged.stdout

    # The single-process run's files, byte for byte: faces, originals, figures, plan.json,
    # manifest.jsonl (the same lines in the same order), summary.json; no scratch, no lock.
    reference = rebalance_output_files(rebalance_300_reference)
    sharded = rebalance_output_files(out)
    assert sorted(sharded) == sorted(reference)
    assert [name for name in reference if sharded[name] != reference[name]] == []
    lines = (out / MANIFEST).read_text().splitlines()
    assert len(lines) > 313 and sum('"kept": false' in line for line in lines) > 0  # rejections were made up for
    assert not (out / SHARDS).exists() and not (out / LOCK).exists()

    # A shard after the merge is refused: the run is whole.
    assert main(["rebalance", str(fer300_dataset), "--out", str(out), *REBALANCE_300_CLI, "--num-shards", "3",
                 "--shard-index", "0", "--resume"]) == 2
    assert "shards write only before the merge" in capsys.readouterr().err


def test_shard_arguments_are_checked(fer300_dataset, tmp_path, capsys):
    from fxaug.cli import main

    cases = [
        (["rebalance", str(fer300_dataset), "--out", str(tmp_path / "o"), "--num-shards", "3"], "together"),
        (["rebalance", str(fer300_dataset), "--out", str(tmp_path / "o"), "--num-shards", "3", "--shard-index", "3"],
         "shard_index must be 0..num_shards-1"),
        (["rebalance", "--merge", str(tmp_path / "o"), "--out", str(tmp_path / "o")], "--merge OUT takes no"),
        (["rebalance", "--merge", str(tmp_path / "none")], "holds no shards to merge"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "o").exists()


def test_windows_to_make_replays_the_walk_of_one_process():
    """The windows a distributed run makes: those of a run without rejections, then, from the
    records, the windows one process would go on to (rejections), with spares when asked."""
    from fxaug.rebalance import Job, Plan, windows_to_make

    plan = Plan(counts={"neutral": 20, "happy": 15}, goal={"neutral": 20, "happy": 20}, to_make={"happy": 5},
                sources={"happy": ["neutral"]}, pool={"happy": 20})

    def class_windows(name):  # windows of 2 consecutive jobs
        jobs = [Job(j, name, f"neutral/{j % 20}.png", "neutral", seed=j) for j in range(40)]
        return iter([jobs[k:k + 2] for k in range(0, 40, 2)])

    def numbers(windows):
        return [[job.job for job in window] for window in windows]

    assert numbers(windows_to_make(plan, class_windows, {})) == [[0, 1], [2, 3], [4, 5]]
    assert numbers(windows_to_make(plan, class_windows, {}, spare=1)) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    kept = {("happy", j): {"kept": True} for j in range(6)}
    assert numbers(windows_to_make(plan, class_windows, kept)) == []  # job 5 made but not needed
    rejected = {**kept, ("happy", 1): {"kept": False}, ("happy", 4): {"kept": False}}
    # 0..5 keep 4 faces: one more face is needed, from the next window
    assert numbers(windows_to_make(plan, class_windows, rejected)) == [[6, 7]]
    # a class whose whole cycle of sources is rejected ends (one process gives up there too)
    none_kept = {("happy", j): {"kept": False} for j in range(40)}
    assert numbers(windows_to_make(plan, class_windows, none_kept)) == []
