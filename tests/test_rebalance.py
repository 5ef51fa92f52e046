"""fxaug rebalance on 300 real FER2013 faces in class folders, with a small (untrained)
parts generator over all eight emotions: plan, balanced output, manifest, kill -9 + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from dataset_writers import write_class_folders

from fxaug import emotions as E
from fxaug.models import StarGANGenerator

PER_CLASS = {"neutral": 100, "happy": 80, "sad": 40, "surprise": 30, "anger": 25, "fear": 12, "disgust": 8, "contempt": 5}
FXAUG = str(Path(sys.executable).parent / "fxaug")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, fer):
    import numpy as np

    root = tmp_path_factory.mktemp("fer300")
    rng = np.random.default_rng(3)
    faces = []
    for name, n in PER_CLASS.items():
        rows = rng.choice(np.flatnonzero((fer.usage == 0) & (fer.majority == E.index(name))), n, replace=False)
        faces += [(int(r), fer.images[r], name) for r in rows]
    write_class_folders(root, faces)
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "stargan-parts-all"
    StarGANGenerator(width=8, n_res=1, image_size=16, method="parts", domains=E.EMOTIONS).save_pretrained(path)
    return path


def _run(*args, check=True):
    run = subprocess.run([FXAUG, *map(str, args)], capture_output=True, text=True)
    if check:
        assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_dry_run_json_plan(dataset, model_dir, tmp_path):
    out = json.loads(_run("rebalance", dataset, "--out", tmp_path / "o", "--model", model_dir, "--dry-run", "--json").stdout)
    assert out["counts"] == PER_CLASS
    assert out["plan"] == {c: 100 - n for c, n in PER_CLASS.items()}
    assert out["sources"]["contempt"][0] == "neutral"  # neutral sources first
    assert not (tmp_path / "o").exists()
    capped = json.loads(_run("rebalance", dataset, "--out", tmp_path / "o", "--model", model_dir, "--dry-run", "--json",
                             "--target", "30", "--classes", "fear,disgust").stdout)
    assert capped["plan"] == {"fear": 18, "disgust": 22}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_rebalance_balances_and_manifest_matches(dataset, model_dir, tmp_path):
    before = _files(dataset)
    out = tmp_path / "balanced"
    run = _run("rebalance", dataset, "--out", out, "--model", model_dir, "--target", "45", "--batch-size", "16",
               "--no-progress")
    assert "made" in run.stdout and "look in" in run.stdout
    counts = Counter(p.parent.name for p in out.rglob("*.png"))
    assert counts == Counter({c: max(n, 45) for c, n in PER_CLASS.items()})
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    kept = [m for m in manifest if m["kept"]]
    synthesized = sorted(str(p.relative_to(out)) for p in out.rglob("fxaug-*.png"))
    assert sorted(m["file"] for m in kept) == synthesized
    assert len({(m["target"], m["job"]) for m in manifest}) == len(manifest)  # no job twice
    for m in kept:
        assert m["source_label"] != m["target"] and m["method"] == "parts"
        assert (dataset / m["source_id"]).is_file()
    for m in manifest:
        if not m["kept"]:
            assert m["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"] == {c: max(n, 45) for c, n in PER_CLASS.items()} and not summary["short"]
    # Originals copied byte for byte; inputs untouched.
    for rel, data in before.items():
        assert (out / Path(rel).parent.name / Path(rel).name).read_bytes() == data
    assert _files(dataset) == before
    refused = _run("rebalance", dataset, "--out", out, "--model", model_dir, "--target", "45", check=False)
    assert refused.returncode == 2 and "not empty" in refused.stderr


@pytest.mark.slow
def test_kill_dash_9_then_resume_gives_the_uninterrupted_files(dataset, model_dir, tmp_path):
    args = ["--model", model_dir, "--target", "45", "--batch-size", "8", "--no-progress"]
    _run("rebalance", dataset, "--out", tmp_path / "whole", *args)
    out = tmp_path / "killed"
    proc = subprocess.Popen([FXAUG, "rebalance", str(dataset), "--out", str(out), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if manifest.is_file() and manifest.read_text().count("\n") >= 40:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list(out.rglob("fxaug-*.png")))
    assert 0 < partial < sum(max(0, 45 - n) for n in PER_CLASS.values())
    _run("rebalance", dataset, "--out", out, "--resume", *args)
    whole, resumed = _files(tmp_path / "whole"), _files(out)
    assert resumed.keys() == whole.keys()
    assert all(resumed[k] == whole[k] for k in whole)
    a = [json.loads(x) for x in (tmp_path / "whole" / "manifest.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in manifest.read_text().splitlines()]
    key = lambda m: (m["target"], m["job"])  # noqa: E731
    assert sorted(map(key, a)) == sorted(map(key, b)) and len(b) == len({key(m) for m in b})
