"""Models on the Hugging Face Hub, without a network: a Hugging Face cache is laid out by hand as
huggingface_hub writes it (models--owner--name/{blobs,refs,snapshots}) from the shipped
generator, and models are loaded from it by repo id under HF_HUB_OFFLINE=1, through the entry
points users name a model in. push_to_hub cannot reach the Hub here: what it would upload is
built and checked, the upload itself is not (docs/models.md says so)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import block_imports
from fxaug.models import BUNDLED_DIR, CONFIG_NAME, WEIGHTS_NAME, load_model, model_reference

SHIPPED = "inpaint-ferplus-48"
REPO_ID = "fxaug-test/inpaint-ferplus-48"
COMMIT = "5f2a3c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49"
TAGGED = "0123456789abcdef0123456789abcdef01234567"
REPO = Path(__file__).resolve().parents[1]


def lay_out_cache(hub_cache: Path, repo_id: str, commit: str, files: dict[str, bytes], refs: dict[str, str]) -> Path:
    """One model repo in the Hugging Face cache as huggingface_hub lays it out: each file's bytes
    as blobs/<sha256>, snapshots/<commit>/<file> a relative link to its blob, refs/<name> the commit."""
    owner, name = repo_id.split("/")
    root = hub_cache / f"models--{owner}--{name}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for filename, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / filename
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, link.parent))
    for ref, target in refs.items():
        (root / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(target)
    return snapshot


@pytest.fixture
def hf_home(tmp_path) -> Path:
    """HF_HOME holding REPO_ID at COMMIT (branch main) and, as tag v1, an older commit whose
    weights are the shipped ones in float32 (so the two revisions differ in their bytes)."""
    home = tmp_path / "hf-home"
    shipped = {f: (BUNDLED_DIR / SHIPPED / f).read_bytes() for f in (CONFIG_NAME, WEIGHTS_NAME)}
    lay_out_cache(home / "hub", REPO_ID, COMMIT, shipped, {"main": COMMIT})
    older = tmp_path / "older"
    load_model(SHIPPED).save_pretrained(older, dtype="float32", metadata={"run": "older"})
    lay_out_cache(home / "hub", REPO_ID, TAGGED, {f: (older / f).read_bytes() for f in (CONFIG_NAME, WEIGHTS_NAME)},
                  {"v1": TAGGED})  # refs/<revision as asked>, as huggingface_hub caches it
    return home


def run_offline(code: str, hf_home: Path, cwd: Path) -> dict:
    """Run `code` in a fresh interpreter as a user would, with HF_HOME and HF_HUB_OFFLINE=1 in its
    environment (huggingface_hub reads them at import); it prints one JSON object."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_repo_id_loads_offline_from_the_cache_and_is_recorded_by_commit(hf_home, tmp_path, fer):
    faces = fer.images[fer.sample(6, usage=1)]
    np.save(tmp_path / "faces.npy", faces)
    code = f"""
import json, warnings, numpy as np, torch, albumentations as A, fxaug
from fxaug.models import load_model, model_reference, PretrainedModel
from fxaug.models.hub import HubError
out = {{}}
hub = load_model("{REPO_ID}")
shipped = load_model("{SHIPPED}")
out["same_weights"] = all(torch.equal(a, b) for a, b in zip(hub.state_dict().values(), shipped.state_dict().values()))
out["hub_reference"] = hub.hub_reference
out["reference"] = model_reference("{REPO_ID}")
out["reference_of_cache_path"] = model_reference(hub.checkpoint_path)
tagged = PretrainedModel.from_pretrained("{REPO_ID}", revision="v1")
out["tagged"] = [tagged.hub_reference, tagged.metadata.get("run")]
out["at_commit"] = load_model("{REPO_ID}@{TAGGED}").hub_reference
out["reference_at_tag"] = model_reference("{REPO_ID}@v1")
errors = []
for bad in ("fxaug-test/no-such-model", "{REPO_ID}@v9", "runs/generator"):
    try:
        load_model(bad)
    except HubError as err:
        errors.append(str(err))
out["errors"] = errors
# the entry points that name a model
faces = np.load("faces.npy")
labels = ["neutral"] * len(faces)
by_id = fxaug.ExpressionTransfer("happy", model="{REPO_ID}", p=1.0, device="cpu")
by_name = fxaug.ExpressionTransfer("happy", model="{SHIPPED}", p=1.0, device="cpu")
out["transform_model"] = by_id.model
out["to_dict_model"] = A.Compose([by_id]).to_dict()["transform"]["transforms"][0]["model"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    a = [A.Compose([by_id], seed=3)(image=f, emotion="neutral") for f in faces]
    b = [A.Compose([by_name], seed=3)(image=f, emotion="neutral") for f in faces]
out["transform_equal"] = all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
out["transform_changed"] = sum(not np.array_equal(x["image"], f) for x, f in zip(a, faces))
out["emotions"] = sorted({{x["emotion"] for x in a}})
out["augmenter_model"] = fxaug.Augmenter(model="{REPO_ID}").model
out["augmenter_id"] = fxaug.Augmenter(model="{REPO_ID}").model_id()
print(json.dumps(out))
"""
    out = run_offline(code, hf_home, tmp_path)
    exact = f"{REPO_ID}@{COMMIT}"
    assert out["same_weights"]
    assert out["hub_reference"] == out["reference"] == out["reference_of_cache_path"] == exact
    assert out["tagged"] == [f"{REPO_ID}@{TAGGED}", "older"]  # a tag resolves to its own commit's weights
    assert out["at_commit"] == out["reference_at_tag"] == f"{REPO_ID}@{TAGGED}"
    missing, no_revision, not_a_folder = out["errors"]
    for line in out["errors"]:
        assert "\n" not in line and "HF_HUB_OFFLINE=1" in line and "not in the Hugging Face cache" in line
    assert "fxaug-test/no-such-model" in missing and "hf download fxaug-test/no-such-model" in missing
    assert "--revision v9" in no_revision
    assert "no model folder 'runs/generator' here" in not_a_folder
    # the transform, its serialised form and the map record the exact commit, and draw what the
    # shipped model draws
    assert out["transform_model"] == out["to_dict_model"] == out["augmenter_model"] == exact
    assert out["augmenter_id"].startswith(exact + "@") and not out["augmenter_id"].endswith("@missing")
    assert out["transform_equal"] and out["transform_changed"] >= 4 and out["emotions"] == ["happy"]


# fxaug's command line run several times in one fresh interpreter (HF_HOME and HF_HUB_OFFLINE
# are read at import, so the interpreter is the user's; one start instead of one per command):
# each command's exit code, stdout and stderr, logging set up afresh for each as in a process of
# its own, and an exception that escapes main() recorded as the traceback a user would see.
CLI_RUNS = """
import contextlib, io, json, logging, sys, traceback
from fxaug.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    logging.root.handlers.clear()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
        except BaseException:
            traceback.print_exc()
            code = 1
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


def test_cli_transfer_takes_a_repo_id_offline(hf_home, tmp_path, fer):
    from PIL import Image

    faces = tmp_path / "faces"
    faces.mkdir()
    for i, row in enumerate(fer.sample(3, usage=1)):
        Image.fromarray(fer.images[row]).save(faces / f"{i}.png")
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def transfer(model: str, out: str) -> list[str]:
        return ["transfer", str(faces), "--to", "happy", "--model", model, "--device", "cpu", "--no-progress", "--out",
                str(tmp_path / out)]

    # rebalance plans with the repo id (config.json from the cache) and names the exact commit
    plan = ["rebalance", str(REPO / "examples" / "sample"), "--out", str(tmp_path / "balanced"), "--model", REPO_ID,
            "--dry-run", "--json"]
    run = subprocess.run([sys.executable, "-c", CLI_RUNS, json.dumps([transfer(REPO_ID, "by-id"),
                          transfer(SHIPPED, "shipped"), transfer("fxaug-test/absent", "absent"), plan])],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    by_id, shipped, bad, plan = json.loads(run.stdout.strip().splitlines()[-1])
    assert by_id["code"] == 0 and shipped["code"] == 0, by_id["stderr"] + shipped["stderr"]
    for i in range(3):
        assert (tmp_path / "by-id" / f"{i}.png").read_bytes() == (tmp_path / "shipped" / f"{i}.png").read_bytes()
    assert bad["code"] != 0 and "Traceback" not in bad["stderr"]
    assert "fxaug-test/absent" in bad["stderr"] and "not in the Hugging Face cache" in bad["stderr"]
    assert plan["code"] == 0, plan["stderr"]
    assert json.loads(plan["stdout"])["model"] == f"{REPO_ID}@{COMMIT}"


def test_repo_id_form_and_cache_paths():
    from fxaug.models.hub import reference_from_cache_path, split_repo_id

    assert split_repo_id("owner/name") == ("owner/name", None)
    assert split_repo_id("owner/name@v1.0") == ("owner/name", "v1.0")
    for not_an_id in ("name", "a/b/c", "/abs/path", "./x/y", "owner/", "owner/../x", "owner/name@", "own er/x"):
        assert split_repo_id(not_an_id) is None, not_an_id
    snapshot = Path("/c/hub/models--own-er--na.me/snapshots") / COMMIT
    assert reference_from_cache_path(snapshot) == f"own-er/na.me@{COMMIT}"
    assert reference_from_cache_path("/c/models/inpaint") is None
    # a shipped model keeps its name, a folder its absolute path: neither goes near the Hub
    assert model_reference(SHIPPED) == SHIPPED
    assert model_reference(BUNDLED_DIR / SHIPPED) == str((BUNDLED_DIR / SHIPPED).resolve())


def test_push_uploads_what_save_pretrained_writes_plus_its_card(tmp_path):
    """What push_to_hub uploads (hub.model_card_folder) is save_pretrained's output, byte for
    byte, plus a README.md the Hub reads as a model card; the upload itself needs the network and
    is refused offline in one line."""
    from huggingface_hub import ModelCard

    from fxaug.models.hub import CARD_NAME, HubError, model_card_folder, push_folder

    model = load_model(SHIPPED)
    pushed = model_card_folder(model, tmp_path / "push", dtype="float16")
    saved = model.save_pretrained(tmp_path / "saved", dtype="float16", metadata=model.metadata)
    assert sorted(p.name for p in pushed.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, CARD_NAME])
    assert (pushed / CONFIG_NAME).read_bytes() == (saved / CONFIG_NAME).read_bytes()
    # the weights: the same tensors, bit for bit, and the same header metadata (safetensors writes
    # its metadata map in no fixed order, so two saves may differ in those bytes alone)
    from safetensors import safe_open

    with safe_open(str(pushed / WEIGHTS_NAME), "pt") as a, safe_open(str(saved / WEIGHTS_NAME), "pt") as b:
        assert a.metadata() == b.metadata() and sorted(a.keys()) == sorted(b.keys())
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) and a.get_tensor(k).dtype == b.get_tensor(k).dtype
                   for k in a.keys())
    # a model loaded from a folder with a card is pushed with that card
    assert (pushed / CARD_NAME).read_text() == (BUNDLED_DIR / SHIPPED / CARD_NAME).read_text()
    card = ModelCard.load(pushed / CARD_NAME)
    assert card.data.library_name == "fxaug" and card.data.license == "mit" and "fxaug" in card.data.tags
    assert "7,000 steps" in card.text and "| neutral | happy |" in card.text
    made = model_card_folder(load_model(saved), tmp_path / "made")  # no card beside it: one is made from the config
    made_card = ModelCard.load(made / CARD_NAME)
    assert made_card.data.library_name == "fxaug" and "7,000 steps" in made_card.text
    reloaded = load_model(pushed)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))
    with pytest.raises(HubError, match="offline") as err:
        push_folder(pushed, "fxaug-test/pushed")  # HF_HUB_OFFLINE=1 (conftest)
    assert "\n" not in str(err.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CONFIG_NAME).write_text("{}")
    (broken / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(ValueError, match="unknown model class"):
        push_folder(broken, "fxaug-test/broken")  # a folder that does not load is never pushed


def test_shipped_model_card_is_the_one_ship_writes(tmp_path):
    """The committed README.md of the shipped model is what `ship --rewrite-card` writes from its
    config.json and docs/runs/card-inpaint-ferplus-48.json, so the card cannot drift from them;
    its YAML header is what the Hub reads, and the wheel's package data takes it."""
    import shutil

    from huggingface_hub import ModelCard

    from fxaug.trainers.ship import main as ship_main

    copy = tmp_path / SHIPPED
    copy.mkdir()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copy(BUNDLED_DIR / SHIPPED / name, copy / name)
    shutil.copy(BUNDLED_DIR / SHIPPED / "samples.png", copy / "samples.png")
    facts = json.loads((REPO / "docs/runs/card-inpaint-ferplus-48.json").read_text())
    facts["samples"] = str(copy / "samples.png")
    facts["evaluations"] = [str(REPO / "docs/runs" / e) for e in facts["evaluations"]]
    (tmp_path / "facts.json").write_text(json.dumps(facts))
    assert ship_main(["--rewrite-card", str(copy), "--card", str(tmp_path / "facts.json")]) == 0
    written = (copy / "README.md").read_text()
    committed = (BUNDLED_DIR / SHIPPED / "README.md").read_text()
    # the same card but for the "ships inside fxaug" line, which only the shipped folder has
    ships_inside = next(line for line in committed.splitlines() if line.startswith("Ships inside fxaug"))
    assert written == committed.replace(ships_inside + "\n\n", "")
    card = ModelCard.load(BUNDLED_DIR / SHIPPED / "README.md")
    assert card.data.license == "mit" and card.data.library_name == "fxaug"
    assert card.data.datasets == ["FER2013", "FERPlus"] and "expression-transfer" in card.data.tags
    for fact in ("fxaug train inpaint", "7,000 steps", "about 60 min", "0.518", "49.80", "![samples](samples.png)",
                 "no licence stated"):
        assert fact in committed, fact
    from fxaug.models.hub import UPLOAD_FILES

    assert "samples.png" in UPLOAD_FILES and (BUNDLED_DIR / SHIPPED / "samples.png").is_file()  # pushed with its card
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml (tomllib)")

    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert "*.md" in package_data and "*.png" not in package_data  # the card ships; its samples image only on the Hub


def test_torch_dtype_loads_and_runs(fer):
    from fxaug.pipeline import ExpressionPipeline

    assert load_model(SHIPPED).dtype == torch.float32  # stored float16, run in float32 by default
    assert load_model(SHIPPED, torch_dtype="bf16").dtype == torch.bfloat16
    assert load_model(SHIPPED, torch_dtype=torch.float16).dtype == torch.float16
    assert load_model(SHIPPED, torch_dtype="auto").dtype == torch.float32  # on the CPU
    with pytest.raises(ValueError, match="torch_dtype must be one of"):
        load_model(SHIPPED, torch_dtype="int8")
    faces = list(fer.images[fer.sample(8, usage=1)])
    full = ExpressionPipeline(SHIPPED, device="cpu").transfer(faces, "happy")
    half = ExpressionPipeline(SHIPPED, device="cpu", torch_dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16
    for a, b in zip(full, half.transfer(faces, "happy")):
        assert a.found == b.found
        diff = np.abs(a.image.astype(int) - b.image.astype(int))
        assert diff.max() <= 4 and diff.mean() < 0.5  # measured: at most 3 grey levels (docs/models.md)


def test_stored_dtype_and_auto_on_a_gpu(tmp_path):
    from fxaug.models.base import resolve_dtype, stored_dtype

    assert stored_dtype(BUNDLED_DIR / SHIPPED / WEIGHTS_NAME) == torch.float16
    load_model(SHIPPED).save_pretrained(tmp_path / "bf", dtype="bfloat16")
    assert stored_dtype(tmp_path / "bf" / WEIGHTS_NAME) == torch.bfloat16
    assert resolve_dtype("auto", torch.float16, "cuda:0") == torch.float16
    assert resolve_dtype("auto", torch.float16, "cpu") == torch.float32
    assert resolve_dtype(None, torch.float16, "cuda") == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on the development machines)")
def test_float16_on_a_gpu_is_close_to_float32(fer):
    from fxaug.pipeline import ExpressionPipeline

    faces = list(fer.images[fer.sample(16, usage=1)])
    full = ExpressionPipeline(SHIPPED, device="cuda").transfer(faces, "happy")
    half = ExpressionPipeline(SHIPPED, device="cuda", torch_dtype="auto")
    assert half.model.dtype == torch.float16
    for a, b in zip(full, half.transfer(faces, "happy")):
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 4


def test_without_huggingface_hub_a_repo_id_says_which_extra(tmp_path):
    """huggingface_hub is the `hub` extra: without it folders and shipped names load as before,
    and a repo id fails in one line that names the extra."""
    code = block_imports("huggingface_hub") + """
from fxaug.models import load_model, model_reference
from fxaug.models.hub import HubError
load_model("inpaint-ferplus-48")
assert model_reference("owner/name") == "owner/name"   # recorded as given; loading says why not
try:
    load_model("owner/name")
except HubError as err:
    print(err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert "pip install 'fxaug[hub]'" in out.stdout and len(out.stdout.strip().splitlines()) == 1
