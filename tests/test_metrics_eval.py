"""The metric registry, judge accuracy, and `fxaug eval` end to end on a tiny generator."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from dataset_writers import write_class_folders
from figure_pixels import bar_lengths
from fxaug import emotions as E
from fxaug.cli import main
from fxaug.metrics import (
    MetricContext,
    TransferSet,
    compute_metrics,
    evaluate,
    judge_accuracy,
    list_metrics,
    load_judge,
    parse_pairs,
    results_markdown,
)


def test_registry_names_and_errors():
    assert {"fid", "kid", "judge_fid", "judge_kid", "accuracy", "identity"} <= set(list_metrics())
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(["psnr"], TransferSet("happy", [], []))
    assert parse_pairs("neutral:happy, happiness:sad") == [("neutral", "happy"), ("happy", "sad")]
    for bad in ("neutral", "happy:happy", ""):
        with pytest.raises(ValueError):
            parse_pairs(bad)


def test_judge_accuracy_equals_a_direct_count(fer):
    """On 60 labelled PublicTest faces (20 each of three classes), the accuracy metric is the share
    whose judge argmax is the target, computed here directly."""
    judge = load_judge()
    for target in ("happy", "neutral", "surprise"):
        rows = np.flatnonzero((fer.usage == 1) & (fer.majority == E.index(target)))[:20]
        faces = fer.images[rows]
        direct = float(np.mean(np.array(judge.predict(faces)) == target))
        result = judge_accuracy(faces, target, judge)
        assert result["value"] == pytest.approx(direct) and result["n"] == 20
        via_registry = compute_metrics(["accuracy"], TransferSet(target, faces, faces), MetricContext(judge=judge))
        assert via_registry["accuracy"]["value"] == result["value"]
        assert direct >= 0.6  # the judge (PublicTest accuracy 0.85) recognises real faces of each class
    with pytest.raises(ValueError, match="unknown emotion"):
        judge_accuracy(faces, "bored", judge)


@pytest.fixture(scope="module")
def folders(fer, tmp_path_factory):
    """Class folders with a PublicTest split: 10 real faces each of neutral, happy and sad (and a
    Training split the evaluation must not read)."""
    root = tmp_path_factory.mktemp("eval-data")
    faces = []
    for name in ("neutral", "happy", "sad"):
        rows = np.flatnonzero(fer.majority == E.index(name))
        public = rows[fer.usage[rows] == 1][:10]
        train = rows[fer.usage[rows] == 0][:3]
        faces += [(int(r), fer.images[r], name) for r in np.concatenate([public, train])]
    splits = {row: ("PublicTest" if fer.usage[row] == 1 else "Training") for row, _, _ in faces}
    write_class_folders(root, faces, splits=splits)
    return root


def test_eval_cli_end_to_end(folders, tiny_parts_model, tmp_path):
    out = tmp_path / "results" / "eval.json"
    code = main(["eval", "--model", str(tiny_parts_model), "--data", str(folders), "--pairs", "neutral:happy,happy:sad",
                 "--n", "6", "--split", "PublicTest", "--fid", "judge", "--device", "cpu", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    table = out.with_suffix(".md").read_text()
    assert [(r["pair"], r["method"]) for r in result["rows"]] == [
        ("neutral:happy", "none"), ("neutral:happy", "parts"), ("happy:sad", "none"), ("happy:sad", "parts")]
    for row in result["rows"]:
        assert row["n"] == 6 and row["n_reference"] == 6 and row["n_scored"] + row["n_no_face"] == 6
        assert set(row) >= {"accuracy", "judge_fid", "judge_kid", "identity_mean", "identity_share_below"}
        if row["method"] == "none":  # the unchanged sources: identity distance 0, all the same person
            assert row["identity_mean"] == pytest.approx(0, abs=1e-5) and row["identity_share_below"] == 1.0
    assert "not comparable" in result["protocol"]["fid"]["feature_space"]
    assert "PublicTest" in json.dumps(result["reader_options"]) and result["metrics"] == [
        "accuracy", "judge_fid", "judge_kid", "identity"]
    assert "| pair | method | N | accuracy | judge-FID† |" in table and "neutral:happy | parts" in table
    # The table as bar charts beside the JSON, named in it: one panel per column of the table
    # (accuracy, judge-FID, judge-KID, identity distance, same person), one bar per row, each
    # panel scaled to its largest value; drawn from the JSON alone, so redrawing gives its bytes.
    from PIL import Image

    from fxaug.figures import BAR, BAR_WIDTH
    from fxaug.metrics import results_figure

    assert result["figure"] == "eval.png"
    figure = np.asarray(Image.open(out.with_name(result["figure"])))
    assert figure.ndim == 3 and np.array_equal(figure, results_figure(result))
    expected = []  # bar lengths, panel by panel, row by row; a zero or missing value draws none
    for key in ["accuracy", "judge_fid", "judge_kid", "identity_mean", "identity_share_below"]:
        values = [row[key] * (1000 if key.endswith("kid") else 1) for row in result["rows"] if row[key] is not None]
        top = max(map(abs, values), default=0) or 1
        expected += [n for n in (round(abs(v) / top * BAR_WIDTH) for v in values) if n]
    assert bar_lengths(figure, BAR) == expected
    assert main(["eval", "--model", str(tiny_parts_model), "--data", str(folders), "--pairs", "neutral:happy",
                 "--out", str(tmp_path / "x.png")]) == 2  # the figure would overwrite the JSON: refused first


def test_evaluate_library_call_scores_the_baseline_like_a_direct_computation(folders, tiny_parts_model):
    began = time.perf_counter()
    result = evaluate(tiny_parts_model, folders, [("neutral", "happy")], n=8, metrics=["accuracy"],
                      device="cpu", splits="PublicTest")
    assert 0 < result["seconds"] <= time.perf_counter() - began + 0.1  # the run's own time, nothing else
    baseline = result["rows"][0]
    from fxaug.data import open_dataset
    from fxaug.metrics.evaluate import FaceSampler

    sources = FaceSampler(open_dataset(folders, splits="PublicTest"), seed=0).faces("neutral", 8)
    assert baseline["method"] == "none" and baseline["n"] == 8 == len(sources)
    assert baseline["accuracy"] == pytest.approx(judge_accuracy(sources, "happy", load_judge())["value"])
    assert "accuracy" in results_markdown(result)
    with pytest.raises(ValueError, match="cannot produce"):
        evaluate(tiny_parts_model, folders, "neutral:fear", n=2, metrics=["accuracy"], device="cpu")
    with pytest.raises(ValueError, match="no 'fear' faces|has no"):
        evaluate(tiny_parts_model, folders, "fear:happy", n=2, metrics=["accuracy"], device="cpu")


def test_paper_tables_score_each_model_once_and_list_what_is_missing(folders, tiny_parts_model, tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "paper_tables.py"
    spec_ = importlib.util.spec_from_file_location("paper_tables", path)
    tables = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(tables)
    spec = {"rows": [
        {"gan": "StarGAN", "method": "parts", "model": str(tiny_parts_model), "pairs": ["neutral:happy", "happy:sad"]},
        {"gan": "CycleGAN", "method": "face", "model": str(tmp_path / "absent"), "pairs": ["happy:sad"],
         "train": "fxaug train cyclegan --method face --domains happy,sad"},
    ]}
    kw = dict(data=str(folders), split="PublicTest", n=5, metrics="accuracy,identity", device="cpu")
    result = tables.build_tables(spec, tmp_path / "cache", **kw)
    assert list(result["tables"]) == ["neutral:happy", "happy:sad"]
    direct = evaluate(tiny_parts_model, folders, "happy:sad", methods="parts", n=5, metrics="accuracy,identity",
                      device="cpu", splits="PublicTest")
    sad = result["tables"]["happy:sad"]
    assert sad["baseline"]["accuracy"] == direct["rows"][0]["accuracy"]
    assert sad["rows"][0]["scores"]["accuracy"] == direct["rows"][1]["accuracy"]
    assert sad["rows"][0]["paper"] is None and "scores" not in sad["rows"][1]
    assert result["tables"]["neutral:happy"]["rows"][0]["paper"] == {"fid": 17.37, "accuracy": 0.97}
    markdown = tables.tables_markdown(result)
    assert "### Table 1: neutral -> happy" in markdown and "| untouched sources | none | 5 |" in markdown
    assert "| CycleGAN | face | – | not trained |" in markdown
    assert "    fxaug train cyclegan --method face --domains happy,sad" in markdown
    # A second build reads every score from the cache: nothing is evaluated again.
    monkeypatch.setattr(tables, "evaluate", lambda *a, **k: pytest.fail("scored twice"))
    assert tables.build_tables(spec, tmp_path / "cache", **kw)["tables"] == result["tables"]


def test_a_context_embeds_each_face_set_once(fer):
    """FID and KID of one output set share one feature pass, and a reference set is embedded once
    for every output set (and every `evaluate` call) scored against it."""
    ctx = MetricContext()
    calls = []
    embed = ctx.features
    ctx.features = lambda space, images, description="": calls.append(description) or embed(space, images, description)
    happy = fer.images[np.flatnonzero(fer.majority == E.index("happy"))[:12]]
    neutral = fer.images[np.flatnonzero(fer.majority == E.index("neutral"))[:24]]
    first = TransferSet("happy", neutral[:12], list(neutral[:12]), happy, "12 happy", "first outputs")
    second = TransferSet("happy", neutral[12:], list(neutral[12:]), happy, "12 happy", "second outputs")
    a = compute_metrics(["judge_fid", "judge_kid"], first, ctx)
    b = compute_metrics(["judge_fid", "judge_kid"], second, ctx)
    assert calls == ["12 happy", "first outputs", "second outputs"]
    fresh = compute_metrics(["judge_fid"], second, MetricContext(judge=ctx.get_judge()))
    assert b["judge_fid"]["value"] == pytest.approx(fresh["judge_fid"]["value"])
    assert a["judge_fid"]["value"] != pytest.approx(b["judge_fid"]["value"])
