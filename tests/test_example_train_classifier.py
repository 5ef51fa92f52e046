"""examples/train_classifier.py (issue #20 acceptance): a short epoch with 2 DataLoader workers,
ExpressionTransfer per sample and ExpressionBatchTransfer after collate, on real faces; the
example itself asserts every synthesized label equals its target."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO


def _run(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "examples" / "train_classifier.py"), *args], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    made = re.search(r"synthesized (\d+) faces in DataLoader workers and (\d+) after collate", done.stdout)
    assert made and int(made[1]) > 0 and int(made[2]) > 0, done.stdout
    assert done.stdout.count("step ") == 3


def test_runs_on_the_bundled_sample():
    _run("--data", str(REPO / "examples" / "sample"), "--limit", "64", "--max-steps", "3", "--p", "0.5")
