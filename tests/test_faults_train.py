"""The new user's path to a trained model (issue 19, items 16-17): preparing a training set shows
progress, warns once per face-less image, states its speed, and survives a kill -9 (it resumes
where it stopped and ends with the cache an uninterrupted run writes); `fxaug train FAMILY --help`
shows that family's own flags, each with a line of help."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fxaug.trainers import data as training_data
from fxaug.trainers.config import MODELS, OPTIONS, TrainConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample"
FXAUG = Path(sys.executable).parent / "fxaug"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _gradient() -> np.ndarray:
    """A smooth grey ramp: an image without a face."""
    return np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))


@pytest.fixture()
def tiny_faces(tmp_path) -> Path:
    """Three real sample faces of each of two classes, and one face-less image among them."""
    root = tmp_path / "faces"
    for emotion in ("neutral", "happy"):
        (root / emotion).mkdir(parents=True)
        faces = [p for p in sorted((SAMPLE / emotion).glob("*.png")) if p.name != "fer29469.png"][:3]
        for path in faces:
            shutil.copy(path, root / emotion / path.name)
    cv2.imwrite(str(root / "neutral" / "gradient.png"), _gradient())
    return root


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    tiny = ["--size", "16", "--width", "4", "--n-res", "1", "--d-width", "4", "--batch", "2", "--steps", "1",
            "--no-tensorboard"]
    return subprocess.run([str(FXAUG), *args, *tiny], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300)


def test_preparation_shows_progress_one_warning_per_faceless_image_a_count_and_its_speed(tiny_faces, tmp_path):
    out = _train(["train", "stargan", "--data", str(tiny_faces), "--method", "face", "--cache-dir", str(tmp_path / "cache"),
                  "--out", str(tmp_path / "run")], tmp_path)
    assert out.returncode == 0, out.stderr
    err = out.stderr
    # the preparation's bar, to its end
    assert re.search(r"preparing training set: 100%.*\b7/7\b", err), err
    about_gradient = [line for line in err.splitlines() if "gradient.png" in line]
    assert len(about_gradient) == 1, err
    assert about_gradient[0].count("no face found") == 1, about_gradient[0]
    assert "1 of 7 images without a face were left out" in err, err
    assert re.search(r"prepared 6 faces from 7 images in [\d.]+ s \([\d.]+ faces/s\)", err), err

    # a second run reads the cache: no preparation, no warnings about faces; --no-progress: no bar at all
    again = _train(["train", "stargan", "--data", str(tiny_faces), "--method", "face", "--cache-dir", str(tmp_path / "cache"),
                    "--out", str(tmp_path / "run2"), "--no-progress"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "training set from cache" in again.stderr and "no face" not in again.stderr, again.stderr
    assert "%|" not in again.stderr, again.stderr


def test_quiet_silences_the_preparation(tiny_faces, tmp_path):
    out = _train(["-q", "train", "stargan", "--data", str(tiny_faces), "--method", "face", "--cache-dir",
                  str(tmp_path / "cache"), "--out", str(tmp_path / "run")], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr
    assert "generator written to" in out.stdout


# -- kill -9 and resume ---------------------------------------------------------------------

def _sample_config(cache_dir: Path) -> TrainConfig:
    # every class of the bundled sample (100 images), small chunks: many chances to be cut
    return TrainConfig(model="stargan", data=str(SAMPLE), method="face", domains="all", size=16,
                       cache_dir=str(cache_dir))


PREPARE = """
import sys
from fxaug.trainers import data
from fxaug.trainers.config import TrainConfig
data.CHUNK_RECORDS = 4
data.build_training_set(TrainConfig(model="stargan", data=sys.argv[1], method="face", domains="all", size=16,
                                    cache_dir=sys.argv[2]), progress=False)
"""


def test_a_killed_preparation_resumes_where_it_stopped_and_ends_with_the_uninterrupted_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(training_data, "CHUNK_RECORDS", 4)
    cut = tmp_path / "cut"
    cache = training_data.cache_path(_sample_config(cut))
    partial = training_data.partial_path(cache)
    proc = subprocess.Popen([sys.executable, "-c", PREPARE, str(SAMPLE), str(cut)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while len(list(partial.glob("chunk-*.npz"))) < 3 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not cache.exists(), "the preparation finished before it could be killed"
    done = sorted(partial.glob("chunk-*.npz"))
    assert len(done) >= 3
    stamps = {p.name: p.stat().st_mtime_ns for p in done}
    (partial / ".chunk-000099.npz.abc.tmp").write_bytes(b"half a chunk")  # what a kill inside a write leaves

    with caplog.at_level("INFO", logger="fxaug.trainers"):
        resumed = training_data.build_training_set(_sample_config(cut), progress=False)
    assert re.search(r"resuming the preparation: \d+ images already prepared", caplog.text), caplog.text
    assert cache.is_file() and not partial.exists()  # the chunks were folded into the cache and removed
    whole = training_data.build_training_set(_sample_config(tmp_path / "whole"), progress=False)
    for name in ("images", "domains"):
        assert torch.equal(getattr(resumed, name), getattr(whole, name)), name
    assert resumed.domain_names == whole.domain_names
    assert cache.read_bytes() == training_data.cache_path(_sample_config(tmp_path / "whole")).read_bytes()
    # and the chunks done before the kill were not prepared again
    assert all(stamps[name] == stamp for name, stamp in stamps.items())


# -- per-family help -------------------------------------------------------------------------

def _family_parsers() -> dict[str, argparse.ArgumentParser]:
    from fxaug.cli import build_parser

    parser = build_parser()
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    families = next(a for a in train._actions if isinstance(a, argparse._SubParsersAction))
    return dict(families.choices)


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_every_family_has_its_parser_and_every_flag_has_help():
    parsers = _family_parsers()
    assert set(MODELS) <= set(parsers)
    for name, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS and action.help.strip(), (name, action.option_strings)
            assert "\n" not in action.help, (name, action.option_strings)
        titles = {g.title for g in parser._action_groups if g._group_actions}
        assert {"data", "generator", "schedule", "output"} <= titles, (name, titles)


def test_a_family_shows_only_the_flags_it_uses():
    parsers = _family_parsers()
    unused = {
        "stargan": ["--lambda-cyc", "--lambda-id", "--code-dim", "--lambda-l1", "--d-features", "--r1-every",
                    "--embed-dim", "--schedule-reference-steps"],
        "cyclegan": ["--lambda-cls", "--lambda-rec", "--cls-warmup", "--code-dim", "--guide", "--mask-jitter"],
        "2cet": ["--warp", "--max-flow", "--lambda-gp", "--lambda-cls", "--part-margin", "--guide", "--noise-std", "--d-layers"],
        "inpaint": ["--method", "--warp", "--lambda-gp", "--n-res", "--code-dim", "--lambda-cyc", "--noise-std", "--part-margin",
                    "--cls-warmup"],
        "2cet-inpaint": ["--method", "--lambda-guide", "--unspecified-p", "--lambda-cyc-n", "--lambda-ds", "--lambda-r1",
                         "--code-ramp-steps", "--cls-warmup"],
    }
    used = {
        "stargan": ["--lambda-cls", "--lambda-rec", "--lambda-gp", "--warp", "--part-margin", "--cls-warmup", "--noise-std",
                    "--guide", "--lambda-guide"],
        "cyclegan": ["--lambda-cyc", "--lambda-id", "--lambda-gp", "--warp"],
        "2cet": ["--code-dim", "--lambda-r1", "--r1-every", "--d-features", "--cls-warmup", "--schedule-reference-steps"],
        "inpaint": ["--guide", "--lambda-l1", "--lambda-perc", "--mask-jitter", "--embed-dim"],
        "2cet-inpaint": ["--guide", "--code-dim", "--encoder-width", "--lambda-code", "--lambda-consist", "--lambda-neutral",
                         "--lambda-div", "--view-aug", "--target-regions"],
    }
    for name in MODELS:
        flags = _flags(parsers[name])
        help_text = parsers[name].format_help()
        for flag in unused[name]:
            assert flag not in flags and f"{flag} " not in help_text, (name, flag)
        for flag in used[name] + ["--data", "--out", "--steps", "--batch", "--resume", "--config", "--max-per-class"]:
            assert flag in flags, (name, flag)


def test_every_option_is_offered_by_some_family_and_parsed_back():
    """Each TrainConfig field has its help and families; a family's flags fill its config."""
    from fxaug.cli import build_parser
    from fxaug.trainers.cli import config_from_args

    fields = {f for f in TrainConfig.__dataclass_fields__ if f != "model"}
    assert fields == set(OPTIONS)
    assert all(OPTIONS[f].families for f in fields)
    args = build_parser().parse_args(["train", "2cet", "--data", "x", "--out", "o", "--code-dim", "8", "--no-balance",
                                      "--domains", "neutral,happy"])
    cfg = config_from_args(args)
    assert (cfg.model, cfg.code_dim, cfg.balance, cfg.domains) == ("2cet", 8, False, ("neutral", "happy"))


def test_train_help_lists_the_families_not_their_flags():
    out = subprocess.run([str(FXAUG), "train", "--help"], capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in MODELS:
        assert re.search(rf"^\s+{re.escape(name)}\s+\S", out.stdout, re.M), (name, out.stdout)
    assert "--lambda-gp" not in out.stdout and "--code-dim" not in out.stdout


def test_a_damaged_or_foreign_chunk_is_prepared_again(tiny_faces, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(training_data, "CHUNK_RECORDS", 3)
    cfg = TrainConfig(model="stargan", data=str(tiny_faces), method="face", size=16, cache_dir=str(tmp_path / "c"))
    whole = training_data.build_training_set(
        TrainConfig(model="stargan", data=str(tiny_faces), method="face", size=16, cache_dir=str(tmp_path / "w")), progress=False)
    partial = training_data.partial_path(training_data.cache_path(cfg))
    partial.mkdir(parents=True)
    (partial / "chunk-000000.npz").write_bytes(b"not an npz")
    with open(partial / "chunk-000001.npz", "wb") as f:  # another chunking's chunk: other entries
        np.savez(f, span=np.array([8, 8, 99]), queued=np.array([5, 5]))
    with caplog.at_level("WARNING", logger="fxaug.trainers"):
        again = training_data.build_training_set(cfg, progress=False)
    assert "chunk-000000.npz: unreadable" in caplog.text and "chunk-000001.npz: from another chunking" in caplog.text
    assert torch.equal(again.images, whole.images) and torch.equal(again.domains, whole.domains)
