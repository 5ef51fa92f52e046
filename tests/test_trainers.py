"""Training loops on tiny configs and real faces: every step type runs, snapshots resume
bit-exactly, exports reload exactly, the CLI and torchrun (2 CPU processes, gloo) work."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_fer_classes

from fxaug.methods import PART_NAMES
from fxaug.models import load_model
from fxaug.trainers import TrainConfig, make_trainer
from fxaug.trainers import losses as L
from fxaug.trainers.diffaug import diff_augment, parse_policy

TINY = dict(size=16, width=4, n_res=1, d_width=4, batch=4, log_every=1, sample_every=2, snapshot_every=3,
            tensorboard=False)


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory, fer):
    return write_fer_classes(tmp_path_factory.mktemp("faces"), fer, ("neutral", "happy", "sad"), 36)


def _cfg(faces_dir, tmp_path, **kw):
    base = dict(TINY, data=str(faces_dir), cache_dir=str(tmp_path / "cache"), steps=6)
    base.update(kw)
    return TrainConfig(**base)


def _weights(trainer) -> dict[str, torch.Tensor]:
    out = {f"{n}.{k}": v.clone() for n, net in trainer.nets.items() for k, v in net.state_dict().items()}
    out.update({f"ema.{k}": v.clone() for k, v in trainer.G_ema.state_dict().items()})
    return out


@pytest.mark.parametrize(
    "model, domains", [("stargan", "neutral,happy,sad"), ("cyclegan", "neutral,happy"), ("2cet", "neutral,happy,sad")]
)
def test_steps_run_and_fill_the_run_directory(faces_dir, tmp_path, model, domains):
    cfg = _cfg(faces_dir, tmp_path, model=model, domains=domains, steps=5, n_critic=5, diffaug="color,translation,cutout")
    trainer = make_trainer(cfg, tmp_path / "run")
    before = _weights(trainer)
    losses = trainer.train(progress=False)
    after = _weights(trainer)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(k.startswith("G/") for k in losses) and any(k.startswith("D") for k in losses)
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"G", "ema"} <= changed and changed & {"D", "D_a", "D_b"}
    run = tmp_path / "run"
    options = json.loads((run / "options.json").read_text())
    assert options["config"]["model"] == model and options["training_set"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5] and "lr" in metrics[0]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png", "step-0000005.png"]
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["snapshot-0000003.pt", "snapshot-0000005.pt"]
    g = load_model(run / "generator")
    assert g.domains == tuple(domains.split(","))  # 2cet: an expression named per emotional class
    assert g.config.method == "image"  # so the pipeline crops as training did


def test_twocet_schedules_scale_to_short_runs(faces_dir, tmp_path):
    cfg = _cfg(faces_dir, tmp_path, model="2cet", domains="neutral,happy", steps=1000)
    trainer = make_trainer(cfg, tmp_path / "run")
    # 5k / 10k of a 100k reference run become 50 / 100 of a 1,000-step run.
    trainer.step = 0
    assert trainer.weights() == {"code": 0.0, "ds": 1.0, "cyc_e": 1.0}
    trainer.step = 25
    w = trainer.weights()
    assert w["code"] == pytest.approx(0.5) and w["ds"] == pytest.approx(0.75) and w["cyc_e"] == pytest.approx(1.125)
    trainer.step = 500
    assert trainer.weights() == {"code": 1.0, "ds": 0.0, "cyc_e": 1.5}
    assert (trainer.cfg.n_critic, trainer.cfg.beta1) == (1, 0.0)  # 2CET's own defaults
    # After a D warm-up the schedules start with G's first update, over the steps left.
    cfg = _cfg(faces_dir, tmp_path, model="2cet", domains="neutral,happy", steps=1200, cls_warmup=200)
    trainer = make_trainer(cfg, tmp_path / "warm")
    trainer.step = 200
    assert trainer.weights() == {"code": 0.0, "ds": 1.0, "cyc_e": 1.0}
    trainer.step = 225
    assert trainer.weights()["code"] == pytest.approx(0.5)


def test_ema_ramps_up_then_holds(faces_dir, tmp_path):
    trainer = make_trainer(_cfg(faces_dir, tmp_path, batch=16, n_critic=5, ema=0.999), tmp_path / "run")
    trainer.step = 0
    assert trainer.ema_beta() == 0.0  # the first update copies G
    # 100 G steps x 16 images: half-life 0.05 x 1,600 = 80 images = 5 G steps.
    trainer.step = 500
    assert trainer.ema_beta() == pytest.approx(0.5 ** (1 / 5))
    trainer.step = 10_000_000  # long runs: the configured 0.999
    assert trainer.ema_beta() == pytest.approx(0.999)
    trainer.cfg.ema_rampup = None
    trainer.step = 500
    assert trainer.ema_beta() == 0.999


@pytest.mark.parametrize("model", ["stargan", "cyclegan"])
@pytest.mark.parametrize("method", ["face", "parts"])
def test_face_and_parts_methods_train(faces_dir, tmp_path, model, method):
    """The face and parts methods cut their crops with fxaug.methods (landmarks found by
    fxaug.faces on the real 48 px faces) and train a step of each model."""
    domains = "neutral,happy"
    cfg = _cfg(faces_dir, tmp_path, model=model, method=method, domains=domains, steps=2, n_critic=1)
    trainer = make_trainer(cfg, tmp_path / "run")
    data = trainer.data
    if method == "parts":
        # Six crops per face, one of each part, every one labelled with its face's emotion.
        assert data.part_names == PART_NAMES and len(data) % 6 == 0
        assert data.parts.bincount().tolist() == [len(data) // 6] * 6
    else:
        assert data.parts is None
        # Outside the face outline the aligned crop is mid-grey.
        assert (data.images[:, :, 0, 0] == 128).all()
    assert len(data) > 0 and data.images.shape[-2:] == (16, 16)
    losses = trainer.train(progress=False)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    g = load_model(tmp_path / "run" / "generator")
    assert g.config.method == method and g.config.parts == (PART_NAMES if method == "parts" else ())


@pytest.mark.parametrize("model", ["stargan", "cyclegan", "2cet"])
def test_resume_is_bit_exact(faces_dir, tmp_path, model):
    domains = "neutral,happy" if model == "cyclegan" else "neutral,happy,sad"
    warmup = {"cls_warmup": 3} if model != "cyclegan" else {}  # the warm-up phase replays too
    cfg = _cfg(faces_dir, tmp_path, model=model, domains=domains, steps=12, n_critic=2, snapshot_every=5,
               diffaug="translation", **warmup)
    straight = make_trainer(cfg, tmp_path / "straight")
    straight.train(progress=False)
    interrupted = make_trainer(cfg, tmp_path / "resumed")
    interrupted.train(until=7, progress=False)
    # A crash after step 7: its end-of-call snapshot never got written; steps 6-7 are lost work.
    (tmp_path / "resumed" / "snapshots" / "snapshot-0000007.pt").unlink()
    resumed = make_trainer(cfg, tmp_path / "resumed", resume=True)
    assert resumed.step == 5
    resumed.train(progress=False)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("residual", [False, True])
def test_export_reload_reproduces_outputs(faces_dir, tmp_path, residual):
    from fxaug.trainers.ship import export_snapshot

    cfg = _cfg(faces_dir, tmp_path, steps=4, n_critic=2, domains="neutral,happy,sad", residual=residual)
    trainer = make_trainer(cfg, tmp_path / "run")
    x = trainer.data.to_model_range(torch.arange(4), "cpu")
    trainer.train(until=3, progress=False)
    at_3 = trainer.G_ema(x, "happy")
    trainer.train(progress=False)
    g = load_model(tmp_path / "run" / "generator")
    assert g.config.residual is residual
    assert torch.equal(g(x, "happy"), trainer.G_ema(x, "happy"))
    assert g.metadata["steps"] == 4 and g.metadata["training"]["model"] == "stargan"
    # Any snapshot exports the EMA generator it held, exactly.
    early = load_model(export_snapshot(tmp_path / "run", 3, tmp_path / "at-3"))
    assert torch.equal(early(x, "happy"), at_3) and early.metadata["steps"] == 3
    with pytest.raises(FileNotFoundError, match="snapshot-0000002.pt: no such snapshot"):
        export_snapshot(tmp_path / "run", 2, tmp_path / "at-2")


def test_twocet_residual_option_reaches_the_exported_model(faces_dir, tmp_path):
    cfg = _cfg(faces_dir, tmp_path, model="2cet", domains="neutral,happy", steps=2, n_critic=1, residual=True)
    trainer = make_trainer(cfg, tmp_path / "run")
    x = trainer.data.to_model_range(torch.arange(4), "cpu")
    trainer.train(progress=False)
    g = load_model(tmp_path / "run" / "generator")
    assert g.config.residual is True
    code = torch.rand(4, cfg.code_dim) - 0.5
    assert torch.equal(g(x, code), trainer.G_ema(x, code))


def test_twocet_lazy_r1_and_landmark_feature_discriminator(faces_dir, tmp_path):
    cfg = _cfg(faces_dir, tmp_path, model="2cet", domains="neutral,happy", steps=2, n_critic=1, r1_every=2,
               d_features="landmarks")
    trainer = make_trainer(cfg, tmp_path / "run")
    D = trainer.nets["D"]
    frozen = dict(D.landmark_net.named_parameters())
    before = {k: v.clone() for k, v in frozen.items()}
    trainer.step = 1
    assert trainer.d_step()["D/r1"] == 0.0  # lazy: no penalty off the k-th steps...
    trainer.step = 2
    assert trainer.d_step()["D/r1"] > 0.0  # ...and on them
    trainer.g_step()
    # The landmark net is frozen (no gradients, unchanged); the heads on it learn.
    assert all(p.grad is None and torch.equal(p, before[k]) for k, p in frozen.items())
    assert all(p.grad is not None for p in D.feature_heads.parameters())
    with pytest.raises(ValueError, match="d_features is a 2cet discriminator option"):
        _cfg(faces_dir, tmp_path, d_features="landmarks")
    with pytest.raises(ValueError, match="r1_every >= 1"):
        _cfg(faces_dir, tmp_path, model="2cet", domains="neutral,happy", r1_every=0)


def test_tensorboard_logs(faces_dir, tmp_path):
    cfg = _cfg(faces_dir, tmp_path, steps=2, n_critic=1, tensorboard=True)
    make_trainer(cfg, tmp_path / "run").train(progress=False)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert {"D/loss", "G/loss", "lr"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("D/loss")] == [1, 2]
    assert "samples" in acc.Tags()["images"]


def test_resume_refuses_changed_options(faces_dir, tmp_path):
    make_trainer(_cfg(faces_dir, tmp_path, steps=3), tmp_path / "run").train(progress=False)
    with pytest.raises(ValueError, match="lambda_rec"):
        make_trainer(_cfg(faces_dir, tmp_path, steps=3, lambda_rec=1.0), tmp_path / "run", resume=True)
    with pytest.raises(FileNotFoundError, match="no snapshot"):
        make_trainer(_cfg(faces_dir, tmp_path), tmp_path / "empty", resume=True)


def test_cli_with_yaml_config(faces_dir, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items()) + "steps: 2\nn_critic: 1\n")
    fxaug = Path(sys.executable).parent / "fxaug"
    out = subprocess.run(
        [str(fxaug), "train", "stargan", "--config", str(config), "--data", str(faces_dir), "--domains", "neutral,sad",
         "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--no-progress"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "generator written to" in out.stdout
    options = json.loads((tmp_path / "run" / "options.json").read_text())["config"]
    assert options["data"]["domains"] == ["neutral", "sad"] and options["schedule"]["steps"] == 2
    assert options["data"]["size"] == 16 and "lambda_cyc" not in options["loss"]  # stargan's options only
    again = subprocess.run(  # a run's options.json is a config file: it repeats the run
        [str(fxaug), "train", "stargan", "--config", str(tmp_path / "run" / "options.json"),
         "--out", str(tmp_path / "again"), "--no-progress"], capture_output=True, text=True,
    )
    assert again.returncode == 0, again.stderr
    repeated = json.loads((tmp_path / "again" / "options.json").read_text())["config"]
    assert repeated == options


@pytest.mark.slow
def test_torchrun_two_cpu_processes(faces_dir, tmp_path):
    """Data parallel over 2 gloo processes: every rank ends with identical weights."""
    script = tmp_path / "ddp.py"
    script.write_text(
        "import os, sys, torch\n"
        "from fxaug.trainers import TrainConfig, make_trainer\n"
        f"cfg = TrainConfig(**{dict(TINY, steps=4, n_critic=2, domains='neutral,happy', data=str(faces_dir), cache_dir=str(tmp_path / 'cache'))!r})\n"
        f"t = make_trainer(cfg, {str(tmp_path / 'run')!r})\n"
        "t.train(progress=False)\n"
        f"torch.save(t.nets['G'].state_dict(), os.path.join({str(tmp_path)!r}, f\"G{{os.environ['RANK']}}.pt\"))\n"
        "print('rank', os.environ['RANK'], 'world', t.dist.world)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", str(script)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "world 2" in out.stdout
    g0 = torch.load(tmp_path / "G0.pt", weights_only=True)
    g1 = torch.load(tmp_path / "G1.pt", weights_only=True)
    for k in g0:
        assert torch.equal(g0[k], g1[k]), k
    assert json.loads((tmp_path / "run" / "options.json").read_text())["world_size"] == 2


def test_gradient_penalty_of_a_unit_slope_critic_is_zero():
    w = torch.randn(1, 3, 8, 8)
    w /= w.norm()
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731  |grad| = 1 everywhere
    real, fake = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    assert L.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    steep = lambda x: 3 * (x * w).flatten(1).sum(1)  # noqa: E731  |grad| = 3 -> (3-1)^2
    assert L.gradient_penalty(steep, real, fake).item() == pytest.approx(4.0, rel=1e-5)


def test_diffaugment():
    x = torch.rand(6, 1, 16, 16, requires_grad=True)
    torch.manual_seed(0)
    y = diff_augment(x, parse_policy("color,translation,cutout"))
    y.sum().backward()
    assert y.shape == x.shape and x.grad is not None and x.grad.abs().sum() > 0
    cut = diff_augment(torch.ones(64, 1, 16, 16), ("cutout",))
    # A half-side square (a quarter of the area) centred anywhere, clipped at the borders.
    area = (cut == 0).float().mean((1, 2, 3))
    assert area.max() == 0.25 and area.min() >= 1 / 16 and (area < 0.25).any()
    torch.manual_seed(1)
    moved = diff_augment(torch.arange(256.0).view(1, 1, 16, 16).repeat(32, 1, 1, 1), ("translation",))
    assert (moved != torch.arange(256.0).view(1, 1, 16, 16)).flatten(1).any(1).float().mean() > 0.5
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        parse_policy("color,zoom")


def test_ship_writes_a_float16_model_that_loads_by_path(faces_dir, tmp_path, capsys):
    from fxaug.trainers.ship import ship

    trainer = make_trainer(_cfg(faces_dir, tmp_path, domains="neutral,happy"), tmp_path / "run")
    trainer.train(progress=False)
    out = ship(tmp_path / "run", "tiny", dest=tmp_path / "models", scores={"happy_rate": 0.5})
    shipped = load_model(out)
    assert next(shipped.parameters()).dtype == torch.float32  # stored half, computed in float32
    assert shipped.metadata["scores"] == {"happy_rate": 0.5} and shipped.metadata["run"] == "run"
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    original = load_model(tmp_path / "run" / "generator")
    assert (shipped(x, "happy") - original(x, "happy")).abs().max() * 127.5 < 2.0
    assert "float16" in capsys.readouterr().out
    # the model card the Hub reads, from the run's record alone (no facts file)
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "fxaug" and card.data.license == "mit" and "fxaug" in card.data.tags
    assert f"{shipped.metadata['steps']:,} steps" in card.text and " wall-clock (metrics.jsonl)" in card.text
    assert f"fxaug train --config {(tmp_path / 'run').as_posix()}/options.json" in card.text
    assert '"happy_rate": 0.5' in card.text  # the scores recorded in config.json


@pytest.mark.parametrize("model", ["stargan", "2cet"])
def test_classifier_warmup_trains_only_ds_classifier_first(faces_dir, tmp_path, model):
    cfg = _cfg(faces_dir, tmp_path, model=model, steps=6, n_critic=1, cls_warmup=3, domains="neutral,happy,sad")
    trainer = make_trainer(cfg, tmp_path / "run")
    before = _weights(trainer)
    losses = trainer.train(until=3, progress=False)
    warm = _weights(trainer)
    assert set(losses) == {"D/cls"}
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], warm[k])}
    assert changed == {"D"}  # G and its average wait for the classifier
    trainer.train(progress=False)
    after = _weights(trainer)
    assert {k.split(".")[0] for k in warm if not torch.equal(warm[k], after[k])} == {"D", "G", "ema"}
    with pytest.raises(ValueError, match="cls_warmup"):
        _cfg(faces_dir, tmp_path, model="cyclegan", cls_warmup=3)


def test_init_from_starts_a_new_run_from_another_runs_networks(faces_dir, tmp_path):
    base = _cfg(faces_dir, tmp_path, steps=4, n_critic=2, snapshot_every=4, domains="neutral,happy,sad")
    parent = make_trainer(base, tmp_path / "parent")
    parent.train(progress=False)
    child = make_trainer(_cfg(faces_dir, tmp_path, steps=4, n_critic=2, domains="neutral,happy,sad",
                              init_from=str(tmp_path / "parent")), tmp_path / "child")
    assert child.step == 0
    for k, v in _weights(parent).items():
        assert torch.equal(v, _weights(child)[k]), k
    assert all(not s for s in (o.state_dict()["state"] for o in child.opts.values()))  # fresh optimizers
    with pytest.raises(ValueError, match="do not fit"):
        make_trainer(_cfg(faces_dir, tmp_path, domains="neutral,happy", init_from=str(tmp_path / "parent")), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="without snapshots"):
        make_trainer(_cfg(faces_dir, tmp_path, init_from=str(tmp_path / "child")), tmp_path / "y")


@pytest.mark.parametrize("model, domains", [("stargan", "neutral,happy,sad"), ("cyclegan", "neutral,happy")])
def test_warp_generator_trains_with_its_paint_penalty(faces_dir, tmp_path, model, domains):
    cfg = _cfg(faces_dir, tmp_path, model=model, domains=domains, steps=4, n_critic=2, warp=True, residual=True,
               flow_cells=4, lambda_paint=3.0, lambda_flow=7.0)
    trainer = make_trainer(cfg, tmp_path / "run")
    losses = trainer.train(progress=False)
    # The logged total is the sum of its terms: the paint penalty is in it, with its weight.
    weights = ({"adv": 1, "cls": cfg.lambda_cls, "rec": cfg.lambda_rec} if model == "stargan"
               else {"adv": 1, "cyc": cfg.lambda_cyc, "id": cfg.lambda_id})
    total = sum(w * losses[f"G/{k}"] for k, w in weights.items()) + 3.0 * losses["G/paint"] + 7.0 * losses["G/flow"]
    assert losses["G/paint"] > 0 and losses["G/flow"] > 0 and losses["G/loss"] == pytest.approx(total, rel=1e-4)
    g = load_model(tmp_path / "run" / "generator")
    assert g.config.warp and g.config.residual and g.config.flow_cells == 4
    with pytest.raises(ValueError, match="warp is a stargan/cyclegan"):
        _cfg(faces_dir, tmp_path, model="2cet", warp=True)


def test_init_nets_takes_only_the_named_networks(faces_dir, tmp_path):
    base = dict(steps=2, n_critic=1, snapshot_every=2, domains="neutral,happy,sad")
    parent = make_trainer(_cfg(faces_dir, tmp_path, residual=True, **base), tmp_path / "parent")
    parent.train(progress=False)
    # A warp G cannot take the residual G's weights, but it can start against its trained D.
    child = make_trainer(_cfg(faces_dir, tmp_path, warp=True, init_from=str(tmp_path / "parent"), init_nets="D",
                              **base), tmp_path / "child")
    for k, v in parent.nets["D"].state_dict().items():
        assert torch.equal(v, child.nets["D"].state_dict()[k]), k
    x = child.data.to_model_range(torch.arange(4), "cpu")
    assert torch.allclose(child.G_ema(x, "happy"), x, atol=1e-5)  # G and its average: untrained
    with pytest.raises(ValueError, match="no networks \\['E'\\] in this model"):
        make_trainer(_cfg(faces_dir, tmp_path, init_from=str(tmp_path / "parent"), init_nets="E", residual=True,
                          **base), tmp_path / "x")


def test_every_training_option_has_a_group_and_help():
    from fxaug.trainers.config import OPTIONS

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    assert fields == set(OPTIONS)


@pytest.mark.parametrize("model", ["stargan", "cyclegan", "2cet", "inpaint"])
def test_grouped_options_round_trip(model, tmp_path):
    """options.json's grouped form (and a grouped YAML file) gives back the same config."""
    import yaml

    domains = ("neutral", "happy")
    cfg = TrainConfig(model=model, domains=domains, steps=7, batch=4, guide="g" if model == "inpaint" else None,
                      method="regions" if model == "inpaint" else "image")
    grouped = cfg.grouped()
    assert set(grouped) == {"model", "data", "generator", "discriminator", "loss", "schedule", "run", "output"}
    assert grouped["schedule"]["steps"] == 7 and grouped["data"]["domains"] == list(domains)
    assert ("guide" in grouped["loss"]) == (model in ("inpaint", "stargan")) and ("code_dim" in grouped["generator"]) == (model == "2cet")
    assert TrainConfig.from_dict(grouped) == cfg
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(grouped))
    assert TrainConfig.from_file(path) == cfg


def test_config_file_errors_name_the_file_and_the_group(tmp_path):
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("model: stargan\nschedule: {size: 32}\n")
    with pytest.raises(ValueError, match=r"wrong.yaml: option 'size' belongs to the 'data' group, not 'schedule'"):
        TrainConfig.from_file(wrong)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"model": "stargan", "steps": 3, "schedule": {"steps": 4}}))
    with pytest.raises(ValueError, match="'steps' is given twice"):
        TrainConfig.from_file(twice)
    broken = tmp_path / "broken.json"
    broken.write_text("{steps: ")
    with pytest.raises(ValueError, match="broken.json: not a readable training config"):
        TrainConfig.from_file(broken)
