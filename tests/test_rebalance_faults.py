"""fxaug rebalance under faults (issue #19, items 1, 2, 4-7, 11, 15, 18, 19): kill -9 and
--resume cycles, two runs on one --out, name clashes, foreign files, --out inside the dataset,
another model on resume, stale temporary files, unreadable inputs, a full or read-only disk,
crafted manifest lines, windows bounded by pixels, the dry run without weights, progress, and
provenance. Real parts throughout: the shipped generator and 12 real faces of the bundled
sample; every bad case is built in a temp dir."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fxaug.cli import main
from fxaug.rebalance import LOCK, MANIFEST, PLAN, SUMMARY, Job, job_windows, original_names, rebalance

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample"
FXAUG = str(Path(sys.executable).parent / "fxaug")
SMALL = {"neutral": 4, "happy": 3, "sad": 2, "surprise": 2, "anger": 1}  # 12 faces
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# kill test: 18 faces to make, in windows of 2 jobs, so a kill lands mid-run
KILL_ARGS = ["--target", "6", "--batch-size", "2", "--no-progress", "--device", "cpu"]


def _faces(root: Path, per_class: dict[str, int] = SMALL) -> Path:
    for name, n in per_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for file in sorted((SAMPLE / name).glob("*.png"))[:n]:
            shutil.copyfile(file, root / name / file.name)
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return _faces(tmp_path_factory.mktemp("small") / "data")


def _run(*args, check=True, cwd=None):
    run = subprocess.run([FXAUG, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd)
    if check:
        assert run.returncode == 0, run.stderr[-3000:]
    return run


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a run's output that is data (images), by path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix == ".png"}


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


def _trusted(out: Path) -> list[dict]:
    """The manifest lines a run may trust (a test may have added crafted ones)."""
    lines = []
    for text in (out / MANIFEST).read_text().splitlines():
        try:
            m = json.loads(text)
        except ValueError:
            continue
        if isinstance(m, dict) and isinstance(m.get("job"), int) and m.get("target") and (
                not m.get("kept") or m.get("file") == f"{m['target']}/fxaug-{m['target']}-{m['job']:06d}.png"):
            lines.append(m)
    return lines


def _cli(capsys, *args) -> tuple[int, str]:
    """fxaug in this process: (exit code, stderr)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _summary(out: Path) -> dict:
    return json.loads((out / SUMMARY).read_text())


def _assert_truthful(out: Path) -> dict:
    """summary.json says what is on disk: each class folder holds `final` images, `made` of them
    synthesized, each with one manifest line whose digest matches."""
    import hashlib

    summary = _summary(out)
    on_disk = Counter(p.relative_to(out).parts[0] for p in out.rglob("*.png") if p.parent != out)  # not the figures
    assert {c: n for c, n in summary["final"].items() if n} == dict(on_disk)
    made = Counter(p.parent.name for p in out.rglob("fxaug-*.png"))
    assert {c: n for c, n in summary["made"].items() if n} == dict(made)
    kept = [m for m in _trusted(out) if m["kept"]]
    assert len({(m["target"], m["job"]) for m in kept}) == sum(made.values())
    for m in kept:
        assert hashlib.sha256((out / m["file"]).read_bytes()).hexdigest() == m["sha256"]
    assert not list(out.rglob(".*.tmp"))
    return summary


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory) -> Path:
    """The uninterrupted run the interrupted ones must end up equal to."""
    out = tmp_path_factory.mktemp("ref") / "whole"
    _run("rebalance", small, "--out", out, *KILL_ARGS)
    return out


# -- item 1: kill -9, --resume, concurrent runs ------------------------------------------------

def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_dash_9_and_resume_cycles_end_with_the_uninterrupted_files(small, reference, tmp_path):
    out = tmp_path / "killed"
    kills = 0
    for cycle in range(2):  # a run killed, then its resume killed too; the third run finishes
        start = _lines(out / MANIFEST)
        proc = subprocess.Popen([FXAUG, "rebalance", str(small), "--out", str(out), "--resume", *KILL_ARGS],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline and _lines(out / MANIFEST) < start + 2 + cycle:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 2, "the runs ended before they could be killed"
    assert len(list(out.rglob("fxaug-*.png"))) < sum(_summary(reference)["made"].values())
    _run("rebalance", small, "--out", out, "--resume", *KILL_ARGS)
    whole, resumed = _files(reference), _files(out)
    assert resumed.keys() == whole.keys()
    assert [k for k in whole if resumed[k] != whole[k]] == []
    key = lambda m: (m["target"], m["job"])  # noqa: E731
    lines = _manifest(out)
    assert sorted(map(key, lines)) == sorted(map(key, _manifest(reference))) and len(lines) == len(set(map(key, lines)))
    summary = _assert_truthful(out)
    assert summary["made"] == _summary(reference)["made"] and not summary["short"]
    assert not (out / LOCK).exists()


def _wait_for_lock(out: Path, pid: int, proc) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((out / LOCK).read_text() or "{}").get("pid") == pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    raise AssertionError("the first run never held the lock")


def test_a_second_run_on_the_same_out_is_refused_while_the_first_holds_it(small, reference, tmp_path, capsys):
    out = tmp_path / "shared"
    first = subprocess.Popen([FXAUG, "rebalance", str(small), "--out", str(out), "--resume", *KILL_ARGS],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        _wait_for_lock(out, first.pid, first)
        os.kill(first.pid, signal.SIGSTOP)  # the first run holds the lock, frozen mid-run
        for extra in (["--resume"], []):  # in this process: another process than the first run's
            code, err = _cli(capsys, "rebalance", small, "--out", out, *KILL_ARGS, *extra)
            assert code == 2
            assert f"in use by another fxaug run (pid {first.pid} on" in err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert _files(out) == _files(reference)
    _assert_truthful(out)


def test_a_killed_runs_lock_file_does_not_block_resume(small, reference, tmp_path):
    """The lock is an OS lock: the file a killed run leaves (naming a dead pid) is no lock. And
    what a kill leaves between a file's write and its record (an original not in originals.jsonl,
    a face not in the manifest) is adopted, since it holds the very bytes the run writes there."""
    out = tmp_path / "stale"
    shutil.copytree(reference, out)
    (out / SUMMARY).unlink()
    (out / LOCK).write_text(json.dumps({"pid": 999999, "host": "gone", "started": "then", "command": "fxaug"}))
    ledger = (out / "originals.jsonl").read_text().splitlines(keepends=True)
    (out / "originals.jsonl").write_text("".join(ledger[:-3]))
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    (out / MANIFEST).write_text("".join(lines[:-1]))
    _run("rebalance", small, "--out", out, "--resume", *KILL_ARGS)
    assert _summary(out)["made"] == _summary(reference)["made"] and not (out / LOCK).exists()
    assert _files(out) == _files(reference) and _summary(out)["foreign_files"] == 0
    assert (out / "originals.jsonl").read_text().count("\n") == len(ledger)
    assert (out / MANIFEST).read_text() == "".join(lines)
    _assert_truthful(out)


def test_duplicate_manifest_lines_and_missing_files_are_not_counted(small, reference, tmp_path):
    out = tmp_path / "dup"
    shutil.copytree(reference, out)
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    (out / MANIFEST).write_text("".join(lines + lines[:5]))  # two runs that both appended
    kept = [m for m in _manifest(reference) if m["kept"]]
    gone = out / kept[-1]["file"]
    gone.unlink()
    _run("rebalance", small, "--out", out, "--resume", *KILL_ARGS)
    summary = _summary(out)
    assert summary["manifest_duplicate_lines"] == 5
    assert gone.read_bytes() == (reference / kept[-1]["file"]).read_bytes()  # made again, the same bytes
    assert summary["made"] == _summary(reference)["made"]
    _assert_truthful(out)


# -- item 2: names of the originals ----------------------------------------------------------------

def test_originals_keep_unique_names_and_never_meet_the_synthesized_ones(tmp_path):
    data = _faces(tmp_path / "data", {"neutral": 3, "happy": 2, "sad": 1})
    neutral = sorted((SAMPLE / "neutral").glob("*.png"))
    for sub, src in (("s1", neutral[5]), ("s2", neutral[6])):
        (data / "neutral" / sub).mkdir()
        shutil.copyfile(src, data / "neutral" / sub / "img1.png")
    happy = sorted((SAMPLE / "happy").glob("*.png"))
    shutil.copyfile(happy[5], data / "happy" / "fxaug-happy-000000.png")  # an original in fxaug's name space
    (data / "happiness").mkdir()  # an alias of happy/, holding a file of the same name as one there
    shutil.copyfile(happy[6], data / "happiness" / sorted((data / "happy").glob("fer*.png"))[0].name)
    before = {p: p.read_bytes() for p in data.rglob("*.png")}

    out = tmp_path / "out"
    summary = rebalance(data, out, target=6, classes=["happy", "sad"], device="cpu", progress=False, batch_size=4)
    assert (out / "neutral" / "s1" / "img1.png").read_bytes() == before[data / "neutral" / "s1" / "img1.png"]
    assert (out / "neutral" / "s2" / "img1.png").read_bytes() == before[data / "neutral" / "s2" / "img1.png"]
    assert (out / "happy" / "_fxaug-happy-000000.png").read_bytes() == before[data / "happy" / "fxaug-happy-000000.png"]
    # every original's bytes are in OUT exactly once, in its class folder
    copied = Counter(p.read_bytes() for p in out.rglob("*.png") if not p.name.startswith("fxaug-") and p.parent != out)
    assert copied == Counter(before.values())
    assert summary["originals_copied"] == len(before) == 10
    assert summary["counts"]["happy"] == 4 and summary["made"]["happy"] == 2
    _assert_truthful(out)
    assert {p: p.read_bytes() for p in data.rglob("*.png")} == before  # inputs untouched


def test_names_are_stable_and_unique_for_every_layout():
    from fxaug.data.records import Entry

    def entry(sid, emotion, split=None, path="x"):
        return Entry(source_id=sid, emotion=emotion, load=lambda: None, split=split, path=path and sid)

    entries = [entry("train/happy/a.png", "happy", "train"), entry("test/happy/a.png", "happy", "test"),
               entry("happy/A.png", "happy"), entry("happy/a.png", "happy"), entry("happy/s/.b.png", "happy")]
    names = original_names(entries, class_folders=True)
    assert names["train/happy/a.png"] == "train/a.png" and names["test/happy/a.png"] == "test/a.png"
    assert names["happy/A.png"] != names["happy/a.png"]  # one file on a case-insensitive disk otherwise
    assert names["happy/a.png"].startswith("a~") and names["happy/s/.b.png"] == "s/_.b.png"
    assert original_names(entries, class_folders=True) == names  # stable
    table = [entry(f"fer2013.csv:{i}", "sad", path=None) for i in range(3)] + [
        entry("training.csv:1/fxaug-sad-000001.jpg", "sad"), entry("validation.csv:../x.jpg", "sad")]
    names = original_names(table, class_folders=False)
    assert [names[f"fer2013.csv:{i}"] for i in range(3)] == ["fer2013-0.png", "fer2013-1.png", "fer2013-2.png"]
    assert names["training.csv:1/fxaug-sad-000001.jpg"] == "1/fxaug-sad-000001.jpg"
    assert names["validation.csv:../x.jpg"] == "_../x.jpg"


def test_table_rows_become_one_original_each(tmp_path):
    """fer2013.csv rows: every row used to be written to the same fer2013.png."""
    from fxaug import emotions as E

    code = {name: c for c, name in E.SCHEMES["fer2013"].items()}
    faces = [(name, np.asarray(Image.open(f).convert("L"))) for name, n in SMALL.items()
             for f in sorted((SAMPLE / name).glob("*.png"))[:n]]
    csv = tmp_path / "fer2013.csv"
    csv.write_text("emotion,pixels,Usage\n" + "".join(
        f"{code[name]},{' '.join(map(str, pixels.ravel()))},Training\n" for name, pixels in faces))
    out = tmp_path / "out"
    summary = rebalance(csv, out, target=4, device="cpu", progress=False, batch_size=4)
    originals = sorted(p for p in out.rglob("*.png") if not p.name.startswith("fxaug-") and p.parent != out)
    assert [p.name for p in originals if p.parent.name == "anger"] == ["fer2013-11.png"]
    assert len(originals) == summary["originals_copied"] == 12
    by_row = {int(p.stem.split("-")[1]): np.asarray(Image.open(p).convert("L")) for p in originals}
    assert all(np.array_equal(by_row[i], pixels) for i, (_, pixels) in enumerate(faces))
    _assert_truthful(out)


def test_linked_originals_resume_as_their_own(small, tmp_path):
    out = tmp_path / "linked"
    first = rebalance(small, out, target=4, link=True, device="cpu", progress=False, batch_size=4)
    for p in small.rglob("*.png"):
        assert os.path.samefile(p, out / p.relative_to(small))
    again = rebalance(small, out, target=4, link=True, resume=True, device="cpu", progress=False, batch_size=4)
    assert again["made"] == first["made"] and again["originals_copied"] == 12 and again["foreign_files"] == 0


# -- item 4: --out and the dataset, foreign files -----------------------------------------------

def test_out_may_not_be_inside_the_dataset_nor_hold_it(small, tmp_path, capsys):
    data = shutil.copytree(small, tmp_path / "data")
    before = _files(data)
    for out, why in ((data, "is the dataset"), (data / "happy" / "o", "lies inside the dataset"),
                     (tmp_path, "lies inside --out")):
        code, err = _cli(capsys, "rebalance", data, "--out", out, "--resume", "--target", "4", "--no-progress")
        assert code == 2 and why in err
    assert _files(data) == before and not (data / PLAN).exists() and not (data / "happy" / "o").exists()


def test_resume_refuses_an_out_that_holds_no_fxaug_run_and_never_adopts_foreign_files(small, reference, tmp_path,
                                                                                     capsys):
    foreign = tmp_path / "foreign"
    (foreign / "happy").mkdir(parents=True)
    name = sorted((small / "happy").glob("*.png"))[0].name
    odd = sorted((SAMPLE / "sad").glob("*.png"))[-1].read_bytes()
    (foreign / "happy" / name).write_bytes(odd)
    for extra in ([], ["--resume"]):
        code, err = _cli(capsys, "rebalance", small, "--out", foreign, "--target", "4", "--no-progress", *extra)
        assert code == 2 and "holds no fxaug run" in err and "--resume to" not in err
    assert (foreign / "happy" / name).read_bytes() == odd and not (foreign / PLAN).exists()

    # an fxaug run, and a foreign file where an original goes: reported, left as it is
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    lines = (out / "originals.jsonl").read_text().splitlines(keepends=True)
    (out / "originals.jsonl").write_text("".join(l for l in lines if f'"happy/{name}"' not in l))
    (out / "happy" / name).write_bytes(odd)
    code, err = _cli(capsys, "rebalance", small, "--out", out, "--resume", *KILL_ARGS)
    assert code == 2 and f"happy/{name}" in err and "never replaces" in err
    assert (out / "happy" / name).read_bytes() == odd
    code, err = _cli(capsys, "rebalance", small, "--out", out, *KILL_ARGS)
    assert code == 2 and "holds an fxaug run" in err and "--resume" in err

    # a foreign file where a synthesized face goes (its job not recorded): never adopted
    out2 = tmp_path / "run2"
    shutil.copytree(reference, out2)
    kept = [m for m in _manifest(reference) if m["kept"]]
    target = kept[-1]
    (out2 / MANIFEST).write_text("".join(json.dumps(m) + "\n" for m in _manifest(reference) if m != target))
    (out2 / target["file"]).write_bytes(odd)
    code, err = _cli(capsys, "rebalance", small, "--out", out2, "--resume", *KILL_ARGS)
    assert code == 2 and target["file"] in err and "never replaces" in err
    assert (out2 / target["file"]).read_bytes() == odd


# -- item 5: the model, by content ------------------------------------------------------------

def test_resume_compares_the_model_by_content_not_by_name(small, tmp_path, monkeypatch):
    import torch

    from fxaug.models import BUNDLED_DIR, load_model

    monkeypatch.chdir(tmp_path)
    shutil.copytree(BUNDLED_DIR / "inpaint-ferplus-48", tmp_path / "m")
    out = tmp_path / "o"
    args = dict(target=4, device="cpu", progress=False, batch_size=4)
    first = rebalance(small, out, model="m", **args)
    plan = json.loads((out / PLAN).read_text())
    assert plan["model"] == str((tmp_path / "m").resolve()) and first["model"] == plan["model"]  # absolute, not "m"
    assert plan["model_digest"].startswith("sha256:")
    assert {m["model"] for m in _manifest(out)} == {plan["model"]}
    # the same content, spelled otherwise: the same model
    for same in (str(tmp_path / "m"), "./m/", "inpaint-ferplus-48"):
        assert rebalance(small, out, model=same, resume=True, **args)["made"] == first["made"]
    # other weights in the same folder, or another config: refused, saying what differs
    model = load_model("m")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="other weights"):
        rebalance(small, out, model="m", resume=True, **args)
    config = json.loads((BUNDLED_DIR / "inpaint-ferplus-48" / "config.json").read_text())
    shutil.copytree(BUNDLED_DIR / "inpaint-ferplus-48", tmp_path / "m2")
    (tmp_path / "m2" / "config.json").write_text(json.dumps({**config, "feather": 0.1}))
    with pytest.raises(ValueError, match=r"another config \(fields feather\)"):
        rebalance(small, out, model="m2", resume=True, **args)


# -- item 6: stale temporary files ------------------------------------------------------------

def test_resume_removes_the_temporary_files_of_killed_runs(small, reference, tmp_path):
    out = tmp_path / "tmpfiles"
    shutil.copytree(reference, out)
    stale = [out / "happy" / ".fxaug-happy-000009.png.k2j_x9qa.tmp", out / ".manifest.jsonl.abcd1234.tmp",
             out / "neutral" / f".{sorted((small / 'neutral').glob('*.png'))[0].name}.zz00zz00.tmp"]
    for path in stale:
        path.write_bytes(os.urandom(100_000))
    keep = out / "happy" / ".notes"
    keep.write_text("mine")
    summary = rebalance(small, out, target=6, batch_size=2, resume=True, device="cpu", progress=False)
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"
    assert summary["stale_temp_files_removed"] == 3


# -- item 7: unreadable inputs ----------------------------------------------------------------

def test_unreadable_inputs_are_reported_and_left_out(small, tmp_path):
    data = shutil.copytree(small, tmp_path / "data")
    good = sorted((data / "happy").glob("*.png"))[0].read_bytes()
    (data / "happy" / "broken.png").write_bytes(good[:300])
    (data / "sad" / "text.png").write_text("not an image")
    out = tmp_path / "out"
    summary = rebalance(data, out, target=4, device="cpu", progress=False, batch_size=4)
    assert not (out / "happy" / "broken.png").exists() and not (out / "sad" / "text.png").exists()
    assert summary["counts"]["happy"] == 3 and summary["counts"]["sad"] == 2
    assert summary["unreadable"] == 2 and summary["originals_copied"] == 12
    reasons = {Path(p["source"]).name: p["reason"] for p in summary["skipped_inputs"]}
    assert "truncated" in reasons["broken.png"] and "not an image" in reasons["text.png"]
    assert not any(m["source_id"].endswith(("broken.png", "text.png")) for m in _manifest(out))
    _assert_truthful(out)


# -- item 11: a full or read-only disk, crafted manifest lines ----------------------------------

def _failing_replace(monkeypatch, code: int, when) -> None:
    """Fault injection: os.replace (every atomic write's last step) fails with `code` on the
    paths `when` picks, as a full or read-only disk makes it fail."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if when(str(dst)):
            raise OSError(code, os.strerror(code), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


# A real fxaug process whose disk fills up at one file (fault injection: os.replace, every atomic
# write's last step, fails there with ENOSPC).
FULL_DISK = """
import errno, os, sys
from fxaug.cli import main
real = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == sys.argv[1]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
    return real(src, dst, *args, **kwargs)
os.replace = replace
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_stops_with_one_line_and_resume_finishes_the_same_files(small, reference, tmp_path):
    out = tmp_path / "full"
    run = subprocess.run([sys.executable, "-c", FULL_DISK, "fxaug-anger-000001.png", "rebalance", str(small), "--out",
                          str(out), *KILL_ARGS], capture_output=True, text=True, env=ENV)
    assert run.returncode == 2
    err = run.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fxaug: error: ") and "No space left on device" in err[0]
    assert "fxaug-anger-000001.png" in err[0] and "--resume" in err[0]
    assert not (out / "anger" / "fxaug-anger-000001.png").exists()
    _run("rebalance", small, "--out", out, "--resume", *KILL_ARGS)
    assert _files(out) == _files(reference)
    _assert_truthful(out)


def test_a_read_only_out_stops_with_one_line(small, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ro"
    _failing_replace(monkeypatch, errno.EROFS, lambda dst: dst.startswith(str(out)))
    assert main(["rebalance", str(small), "--out", str(out), "--target", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Read-only file system" in err[0] and "writable --out" in err[0]


def test_crafted_manifest_lines_are_reported_and_never_trusted(small, reference, tmp_path, capsys):
    out = tmp_path / "crafted"
    shutil.copytree(reference, out)
    outside = tmp_path / "outside.png"
    outside.write_bytes((SAMPLE / "happy" / sorted(os.listdir(SAMPLE / "happy"))[0]).read_bytes())
    lines = _manifest(reference)
    kept = [m for m in lines if m["kept"]]
    crafted = [{"target": "happy", "job": "x"}, [1, 2], "text",
               {**kept[0], "job": 900, "file": "../../outside.png"},
               {**kept[1], "file": str(outside)}]  # a known job pointed at a file outside OUT
    with open(out / MANIFEST, "a") as f:
        for line in crafted:
            f.write(json.dumps(line) + "\n")
        f.write("{not json\n")
    # in this process: every job is recorded already, so nothing is generated (no thread count to match)
    code, err = _cli(capsys, "rebalance", small, "--out", out, "--resume", *KILL_ARGS)
    assert code == 0 and "Traceback" not in err, err[-3000:]
    summary = _summary(out)
    assert summary["manifest_problems"] >= 6
    assert any("outside.png" in p for p in summary["manifest_problem_list"])
    assert summary["made"] == _summary(reference)["made"]
    assert _files(out) == _files(reference)
    _assert_truthful(out)


# -- item 15: windows bounded by pixels ---------------------------------------------------------

def test_windows_are_bounded_by_pixels_and_depend_only_on_the_plan_and_the_data():
    jobs = [Job(i, "happy", f"s{i % 5}", "neutral", i) for i in range(40)]
    sizes = {f"s{k}": (k + 1) * 1_000_000 for k in range(5)}
    windows = list(job_windows(iter(jobs), sizes.__getitem__, 64, 6_000_000))
    assert [j for w in windows for j in w] == jobs  # every job once, in order
    for w in windows:
        assert len(w) == 1 or sum(sizes[j.source_id] for j in w) <= 6_000_000
    assert list(job_windows(iter(jobs), sizes.__getitem__, 64, 6_000_000)) == windows
    assert [len(w) for w in job_windows(iter(jobs), sizes.__getitem__, 8, None)] == [8] * 5


def test_rebalance_decodes_at_most_window_pixels_of_sources_at_once(tmp_path, monkeypatch):
    from fxaug.pipeline import ExpressionPipeline

    data = tmp_path / "big"
    for name, n in (("neutral", 3), ("happy", 1)):
        (data / name).mkdir(parents=True)
        for file in sorted((SAMPLE / name).glob("*.png"))[:n]:
            Image.open(file).resize((600, 600), Image.BICUBIC).save(data / name / file.name)  # 0.36 MP each
    calls = []
    real = ExpressionPipeline.transfer

    def transfer(self, images, *args, **kwargs):  # records each window's pixels, then the real thing
        calls.append(sum(int(np.prod(im.shape[:2])) for im in images))
        return real(self, images, *args, **kwargs)

    monkeypatch.setattr(ExpressionPipeline, "transfer", transfer)
    summary = rebalance(data, tmp_path / "out", target=3, classes=["happy"], window_pixels=800_000, device="cpu",
                        progress=False)
    assert calls and max(calls) <= 800_000 and summary["made"]["happy"] == 2


# -- item 18: the dry run, progress ----------------------------------------------------------------

def test_dry_run_needs_no_weights(small, tmp_path, capsys):
    from fxaug.models import BUNDLED_DIR

    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copyfile(BUNDLED_DIR / "inpaint-ferplus-48" / "config.json", config_only / "config.json")
    capsys.readouterr()
    assert main(["rebalance", str(small), "--out", str(tmp_path / "o"), "--model", str(config_only), "--dry-run",
                 "--json", "--target", "4"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["plan"] == {"neutral": 0, "happy": 1, "sad": 2, "surprise": 2, "anger": 3}
    assert plan["model"] == str(config_only.resolve()) and not (tmp_path / "o").exists()
    (config_only / "model.safetensors").write_bytes(b"not weights")
    code, err = _cli(capsys, "rebalance", small, "--out", tmp_path / "o", "--model", config_only, "--dry-run",
                     "--target", "4")
    assert code == 0, err


def test_progress_counts_originals_attempts_and_rejections_and_quiet_silences_it(small, tmp_path, capsys):
    # the bars in this process (tqdm writes to the captured stderr); -q below in a process of its
    # own, since logging is set up once per process
    code, err = _cli(capsys, "rebalance", small, "--out", tmp_path / "o", "--target", "4", "--classes", "happy,surprise",
                     "--min-confidence", "0.5", "--device", "cpu", "--batch-size", "4")
    assert code == 0, err[-2000:]
    assert "originals: 100%" in err and "12/12" in err
    last = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("rebalance")][-1]
    assert "attempts=" in last and "rejected=" in last
    summary = _summary(tmp_path / "o")
    assert summary["attempts"] == summary["rejected"] + sum(summary["made"].values())
    quiet = _run("-q", "rebalance", small, "--out", tmp_path / "q", "--target", "4", "--classes", "happy",
                 "--device", "cpu", "--batch-size", "4")
    assert quiet.stderr == ""


# -- item 19: provenance, grey faces -------------------------------------------------------------

def test_grey_sources_give_grey_faces_and_every_line_names_the_model(reference):
    faces = [p for p in reference.rglob("*.png") if p.parent != reference]  # not the figures beside summary.json
    assert {Image.open(p).mode for p in faces} == {"L"}  # the sample's faces are grey
    plan = json.loads((reference / PLAN).read_text())
    assert plan["model"] == "inpaint-ferplus-48" == _summary(reference)["model"]
    assert {m["model"] for m in _manifest(reference)} == {"inpaint-ferplus-48"}
