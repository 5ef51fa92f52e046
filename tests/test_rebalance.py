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
TARGET = 30  # the runs that make faces: classes below it filled to it (70 faces), the others left as they are


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


def _cli(capsys, *args, check=True) -> tuple[int, str, str]:
    """fxaug in this process, for runs whose outcome is a plan or a refusal (no face made, so no
    interpreter start per call): (exit code, stdout, stderr); an argparse refusal exits 2 too."""
    from fxaug.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    if check:
        assert code == 0, err[-2000:]
    return code, out, err


def test_dry_run_json_plan(dataset, model_dir, tmp_path, capsys):
    out = json.loads(_cli(capsys, "rebalance", dataset, "--out", tmp_path / "o", "--model", model_dir, "--dry-run",
                          "--json")[1])
    assert out["counts"] == PER_CLASS
    assert out["plan"] == {c: 100 - n for c, n in PER_CLASS.items()}
    assert out["sources"]["contempt"][0] == "neutral"  # neutral sources first
    assert not (tmp_path / "o").exists()
    capped = json.loads(_cli(capsys, "rebalance", dataset, "--out", tmp_path / "o", "--model", model_dir, "--dry-run",
                             "--json", "--target", "30", "--classes", "fear,disgust")[1])
    assert capped["plan"] == {"fear": 18, "disgust": 22}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_rebalance_balances_and_manifest_matches(dataset, model_dir, tmp_path, capsys):
    # --target 30: anger, fear, disgust and contempt filled (70 faces), surprise at it already,
    # sad, happy and neutral above it and left as they are
    before = _files(dataset)
    out = tmp_path / "balanced"
    run = _run("rebalance", dataset, "--out", out, "--model", model_dir, "--target", TARGET, "--batch-size", "16",
               "--no-progress", "--identity")
    assert "made" in run.stdout and "look in" in run.stdout
    counts = Counter(p.parent.name for p in out.rglob("*.png") if p.parent != out)
    assert counts == Counter({c: max(n, TARGET) for c, n in PER_CLASS.items()})
    assert "class_histogram.png" in run.stdout and "contact_sheet.png" in run.stdout
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
    assert summary["final"] == {c: max(n, TARGET) for c, n in PER_CLASS.items()} and not summary["short"]
    # The figures beside summary.json, named in it, and nothing else at the top (atomic writes).
    assert summary["figures"] == {"class_histogram": "class_histogram.png", "contact_sheet": "contact_sheet.png"}
    assert sorted(p.name for p in out.glob("*.png")) == ["class_histogram.png", "contact_sheet.png"]
    assert not list(out.glob(".*.tmp"))
    for m in kept:  # every kept face measured against its source with fxaug's identity net
        assert isinstance(m["identity_distance"], float) and 0 <= m["identity_distance"] < 2
    # Originals copied byte for byte; inputs untouched.
    for rel, data in before.items():
        assert (out / Path(rel).parent.name / Path(rel).name).read_bytes() == data
    assert _files(dataset) == before
    code, _, err = _cli(capsys, "rebalance", dataset, "--out", out, "--model", model_dir, "--target", TARGET, check=False)
    assert code == 2 and "not empty" in err


@pytest.mark.slow
def test_kill_dash_9_then_resume_gives_the_uninterrupted_files(dataset, model_dir, tmp_path):
    args = ["--model", model_dir, "--target", TARGET, "--batch-size", "8", "--no-progress"]  # 70 faces, 9 windows
    _run("rebalance", dataset, "--out", tmp_path / "whole", *args)
    out = tmp_path / "killed"
    proc = subprocess.Popen([FXAUG, "rebalance", str(dataset), "--out", str(out), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if manifest.is_file() and manifest.read_text().count("\n") >= 20:  # in the third window
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list(out.rglob("fxaug-*.png")))
    assert 0 < partial < sum(max(0, TARGET - n) for n in PER_CLASS.values())
    _run("rebalance", dataset, "--out", out, "--resume", *args)
    whole, resumed = _files(tmp_path / "whole"), _files(out)
    assert resumed.keys() == whole.keys()
    assert all(resumed[k] == whole[k] for k in whole)
    a = [json.loads(x) for x in (tmp_path / "whole" / "manifest.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in manifest.read_text().splitlines()]
    key = lambda m: (m["target"], m["job"])  # noqa: E731
    assert sorted(map(key, a)) == sorted(map(key, b)) and len(b) == len({key(m) for m in b})


# -- figures and identity_distance, on the bundled sample with the shipped generator -----------

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample"
# windows of 8 jobs: 14 faces to make (the default 64 would decode and detect 64 sources per class)
SAMPLE_ARGS = {"target": 14, "classes": ["sad", "fear", "anger"], "device": "cpu", "progress": False, "identity": True,
               "batch_size": 8}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    from fxaug.rebalance import rebalance

    out = tmp_path_factory.mktemp("sample") / "out"
    summary = rebalance(SAMPLE, out, **SAMPLE_ARGS)
    return out, summary


def test_identity_distance_is_the_nets_distance_to_its_own_source(sample_run):
    import numpy as np

    from fxaug.data import decode_image
    from fxaug.metrics.identity import IdentityEncoder, identity_distance

    out, summary = sample_run
    kept = [m for m in map(json.loads, (out / "manifest.jsonl").read_text().splitlines()) if m["kept"]]
    assert len(kept) == sum(summary["plan"].values()) == 14
    sources = [decode_image(SAMPLE / m["source_id"], color="native")[0] for m in kept]
    outputs = [decode_image(out / m["file"], color="native")[0] for m in kept]
    encoder = IdentityEncoder("cpu")
    own = identity_distance(sources, outputs, encoder)
    recorded = np.array([m["identity_distance"] for m in kept])
    assert recorded == pytest.approx(own, abs=2e-3)
    # Each face is nearer its own source than another person's (the sample's faces are all different people).
    others = identity_distance(sources[1:] + sources[:1], outputs, encoder)
    assert recorded.mean() < others.mean() - 0.1


def test_resumed_run_draws_the_figures_of_the_uninterrupted_one(sample_run, tmp_path):
    import shutil

    import numpy as np
    from PIL import Image

    from fxaug.rebalance import rebalance

    whole, summary = sample_run
    histogram, sheet = (whole / summary["figures"][k] for k in ("class_histogram", "contact_sheet"))
    assert Image.open(histogram).size[0] > 300 and Image.open(sheet).size[1] > 3 * 96
    # The contact sheet shows each filled class: 2 sad, 8 fear, 4 anger pairs of 96 px tiles in 4 columns.
    pixels = np.asarray(Image.open(sheet).convert("RGB"))
    assert pixels.shape[0] > (1 + 2 + 1) * 96
    # An interruption after half the jobs: the later lines and their faces gone, no summary, no figures.
    out = tmp_path / "out"
    shutil.copytree(whole, out)
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    for line in lines[len(lines) // 2:]:
        record = json.loads(line)
        if record["kept"]:
            (out / record["file"]).unlink()
    (out / "manifest.jsonl").write_text("".join(lines[: len(lines) // 2]))
    for name in ("summary.json", "class_histogram.png", "contact_sheet.png"):
        (out / name).unlink()
    resumed = rebalance(SAMPLE, out, resume=True, **SAMPLE_ARGS)
    assert resumed["figures"] == summary["figures"]
    for name in summary["figures"].values():
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def test_identity_is_measured_on_a_gpu_by_default_and_when_asked(dataset, model_dir, tmp_path, capsys):
    for flag, measured in (("--no-identity", False), (None, torch.cuda.is_available())):
        out = tmp_path / str(flag)
        _cli(capsys, "rebalance", dataset, "--out", out, "--model", model_dir, "--classes", "contempt", "--target", "8",
             "--batch-size", "4", "--no-progress", *([flag] if flag else []))
        manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        assert sum(m["kept"] for m in manifest) == 3
        assert all((m["identity_distance"] is not None) == measured for m in manifest if m["kept"]), flag


# -- sampling_strategy (imbalanced-learn's vocabulary, resolved by fxaug.sampling) --------------

def test_sampling_strategy_plans(dataset, model_dir, tmp_path, capsys):
    def plan(*args):
        out = _cli(capsys, "rebalance", dataset, "--out", tmp_path / "o", "--model", model_dir, "--dry-run", "--json", *args)[1]
        return json.loads(out)["plan"]

    default = {c: 100 - n for c, n in PER_CLASS.items()}
    assert plan("--sampling-strategy", "not majority") == {c: n for c, n in default.items() if c != "neutral"}
    assert plan() == default  # the same faces (the default lists the largest class too, with 0)
    assert plan("--sampling-strategy", "minority") == {"contempt": 95}
    assert plan("--sampling-strategy", "0.5") == {c: max(0, 50 - n) for c, n in PER_CLASS.items() if c != "neutral"}
    assert plan("--sampling-strategy", "sad=60,Fear=20") == {"sad": 20, "fear": 8}  # aliases and case read
    assert plan("--sampling-strategy", '{"disgust": 10}') == {"disgust": 2}
    assert plan("--sampling-strategy", "all", "--classes", "fear") == {"fear": 88}
    for args, message in ((["--sampling-strategy", "minority", "--target", "50"], "not both"),
                          (["--sampling-strategy", "sad=10"], "below the 40 samples"),
                          (["--sampling-strategy", "most"], "unknown sampling_strategy"),
                          (["--sampling-strategy", "sad=lots"], "CLASS=COUNT")):
        code, _, err = _cli(capsys, "rebalance", dataset, "--out", tmp_path / "o", "--model", model_dir, "--dry-run", *args,
                            check=False)
        assert code == 2 and message in err, (args, err)


def test_sampling_strategy_runs_and_is_checked_on_resume(dataset, model_dir, tmp_path):
    from fxaug.rebalance import rebalance

    out = tmp_path / "o"
    args = {"model": model_dir, "device": "cpu", "progress": False, "batch_size": 4}  # 3 faces to make
    summary = rebalance(dataset, out, sampling_strategy={"contempt": 8}, **args)
    assert summary["made"] == {"contempt": 3} and summary["final"]["contempt"] == 8
    assert json.loads((out / "plan.json").read_text())["sampling_strategy"] == {"contempt": 8}
    assert rebalance(dataset, out, sampling_strategy={"contempt": 8}, resume=True, **args)["made"] == {"contempt": 3}
    with pytest.raises(ValueError, match="sampling_strategy: {'contempt': 8} in the run, {'contempt': 9} now"):
        rebalance(dataset, out, sampling_strategy={"contempt": 9}, resume=True, **args)
    with pytest.raises(ValueError, match="target: None in the run, 8 now"):
        rebalance(dataset, out, target=8, classes=["contempt"], resume=True, **args)
