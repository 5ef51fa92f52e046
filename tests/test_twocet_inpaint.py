"""2CET on the in-context engine (fxaug.models.TwoCETInpainter, trainer "2cet-inpaint"): outside
its mask nothing changes, strength scales the code and 0 is the neutral redraw exactly, named
expressions are class mean codes that save and load, training one step works and resumes bit
for bit, and reference faces drive it through the pipeline. Tiny configs: seconds in all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_resumes_bit_exact
from test_inpaint import DOMAINS, _mean_face, faces_dir, guide  # noqa: F401  (module fixtures)

from fxaug.models import TwoCETInpainter, load_model
from fxaug.trainers import TrainConfig, make_trainer

TINY = dict(image_size=48, width=8, embed_dim=8, code_dim=8, encoder_width=4)


def _wild(seed: int) -> TwoCETInpainter:
    """A tiny model with large random weights: the guarantees tested are structural, not learnt."""
    torch.manual_seed(seed)
    g = TwoCETInpainter(**TINY).eval()
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.3)
    return g


def test_outside_the_mask_is_the_input_and_strength_scales_the_code():
    g = _wild(0)
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    points = np.stack([_mean_face()] * 4)
    with torch.no_grad():
        code = g.encode(torch.rand(1, 1, 48, 48) * 2 - 1)
        s = torch.tensor([0.0, 0.5, 1.0, 1.25])
        y, alpha = g.generate(x, ["reference"] * 4, s, landmarks=points, code=code)
        outside = alpha == 0
        assert outside.sum() > 0.3 * outside.numel() and torch.equal(y[outside], x[outside])
        assert not torch.equal(y[~outside], x[~outside])
        # strength 0: code 0, the neutral redraw, bit for bit (and "neutral" by name is code 0)
        neutral, n_alpha = g.generate(x, ["neutral"] * 4, torch.ones(4), landmarks=points)
        assert torch.equal(y[0], neutral[0]) and torch.equal(alpha, n_alpha)  # neutral redraws mouth and eyes too
        assert torch.equal(neutral, g(x, torch.zeros(1, 8), masks=alpha))
        # strength s is the code s * c; different strengths draw differently
        assert torch.equal(y, g(x, s[:, None] * code, masks=alpha))
        assert not torch.equal(y[1], y[2])
    with pytest.raises(ValueError, match="landmarks"):
        g.generate(x, ["reference"] * 4, s, code=code)


def test_named_expressions_are_mean_codes_that_save_and_load(tmp_path):
    from collections import Counter

    from fxaug.pipeline import ExpressionPipeline
    from fxaug.rebalance import make_plan
    from fxaug.transforms import ExpressionTransfer

    g = _wild(1)
    assert g.domains == ("neutral",) and g.translations() == [(None, "neutral")]
    refs = torch.rand(6, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        contempt = g.set_expression("Contempt", refs[:3])
        g.set_expression("happy", refs[3:])
        assert torch.allclose(contempt, g.encode(refs[:3]).mean(0))
    assert g.domains == ("neutral", "contempt", "happy")
    assert (None, "contempt") in g.translations()
    points = np.stack([_mean_face()] * 2)
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        y, alpha = g.generate(x, ["contempt", "happy"], torch.ones(2), landmarks=points)
        # a name redraws its class's regions (happy: the mouth alone), with its mean code
        assert torch.equal(alpha[0], g.masks_for(points[:1], ["neutral"])[0])
        assert torch.equal(alpha[1], g.masks_for(points[:1], ["happy"])[0]) and alpha[1].sum() < alpha[0].sum()
        assert torch.equal(y[:1], g(x[:1], contempt[None], masks=alpha[:1]))
    with pytest.raises(ValueError, match="no expression 'sad'"):
        g.generate(x, ["sad", "sad"], torch.ones(2), landmarks=points)
    g.save_pretrained(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert type(back) is TwoCETInpainter and back.config == g.config and back.domains == g.domains
    assert torch.equal(back.expression_codes, g.expression_codes)
    with torch.no_grad():
        assert torch.equal(back.generate(x, ["contempt", "happy"], torch.ones(2), landmarks=points)[0], y)
    assert ExpressionPipeline(back, device="cpu").check_target("contempt") == "contempt"
    assert ExpressionTransfer("contempt", model=back, device="cpu").pipeline.model is back
    plan = make_plan(Counter(neutral=10, happy=6, contempt=2), back.translations())  # rebalance's plan
    assert plan.to_make == {"neutral": 0, "happy": 4, "contempt": 8} and plan.sources["contempt"][0] == "neutral"


def test_one_step_trains_resume_is_bit_exact_and_export_names_each_class(faces_dir, tmp_path, guide):  # noqa: F811
    cfg = TrainConfig(model="2cet-inpaint", data=str(faces_dir), domains=DOMAINS, size=48, width=8, d_width=8,
                      embed_dim=8, code_dim=8, encoder_width=4, batch=4, steps=4, log_every=1, sample_every=2,
                      snapshot_every=2, tensorboard=False, guide=str(guide), cache_dir=str(tmp_path / "cache"))
    assert cfg.method == "regions" and cfg.grouped()["loss"]["view_aug"] == "flip,shift,blur,color"
    straight = make_trainer(cfg, tmp_path / "straight")
    before = {k: v.clone() for k, v in straight.nets["G"].state_dict().items()}
    losses = straight.train(progress=False)
    assert {"G/l1", "G/perc", "G/neutral", "G/adv", "G/consist", "G/code", "D/loss"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    after = straight.nets["G"].state_dict()
    for part in ("encoder.", "embed.", "stem."):  # E, the code's map and the U-Net all learn
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part
    assert_resumes_bit_exact(cfg, straight, tmp_path / "resumed", until=2)
    g = load_model(tmp_path / "straight" / "generator")
    assert type(g) is TwoCETInpainter and g.domains == tuple(DOMAINS.split(","))
    data = straight.data
    happy = torch.nonzero(data.domains == data.domain_names.index("happy")).flatten()
    with torch.no_grad():
        expected = g.encode(data.to_model_range(happy, "cpu")).mean(0)
    torch.testing.assert_close(g.expression_codes[g.config.expressions.index("happy")], expected)
    assert set(g.metadata["mean_code_norms"]) == set(DOMAINS.split(","))
    assert (tmp_path / "straight" / "samples" / "step-0000004.png").is_file()
    # shipping a snapshot names the classes too (its export is the trainer's), in float16
    from fxaug.trainers.ship import ship

    shipped = load_model(ship(tmp_path / "straight", "2cet-tiny", dest=tmp_path / "shipped", snapshot=2))
    assert type(shipped) is TwoCETInpainter and shipped.domains == g.domains
    assert shipped.expression_codes.shape == (2, 8) and shipped.expression_codes.abs().sum() > 0
    # --init-from an export fine-tunes it: its weights, not its named codes (the export names them again)
    child = make_trainer(TrainConfig(**{**cfg.to_dict(), "init_from": str(tmp_path / "straight" / "generator")}),
                         tmp_path / "child")
    assert child.nets["G"].expression_codes.shape == (0, 8)
    for k, v in g.state_dict().items():
        if k != "expression_codes":
            assert torch.equal(child.nets["G"].state_dict()[k], v) and torch.equal(child.G_ema.state_dict()[k], v), k
    with pytest.raises(ValueError, match="does not fit"):
        make_trainer(TrainConfig(**{**cfg.to_dict(), "init_from": str(tmp_path / "straight" / "generator"), "code_dim": 4}),
                     tmp_path / "narrow")
    with pytest.raises(ValueError, match="neutral"):
        TrainConfig(model="2cet-inpaint", domains="happy,sad", guide="g")
    with pytest.raises(ValueError, match="unknown augmentations"):
        make_trainer(TrainConfig(**{**cfg.to_dict(), "view_aug": "flip,warp"}), tmp_path / "bad")


def test_the_view_augmentations_change_the_face_and_follow_their_generator():
    from fxaug.trainers.twocet_inpaint import augmented_view

    x = torch.rand(8, 1, 48, 48) * 2 - 1
    every = ("flip", "shift", "blur", "color")
    a = augmented_view(x, every, torch.Generator().manual_seed(3))
    assert torch.equal(a, augmented_view(x, every, torch.Generator().manual_seed(3)))
    assert a.shape == x.shape and a.abs().max() <= 1 and not torch.equal(a, x)
    assert torch.equal(augmented_view(x, (), torch.Generator()), x)
    for name in every:  # each alone changes the faces
        assert not torch.equal(augmented_view(x, (name,), torch.Generator().manual_seed(4)), x), name


def test_reference_faces_drive_it_through_the_pipeline():
    from faces_data import news_photos

    from fxaug.pipeline import ExpressionPipeline

    photos = list(news_photos()[:3])
    g = _wild(2)
    pipe = ExpressionPipeline(g, device="cpu")
    assert pipe.method == "regions"
    zero = pipe.transfer(photos[:2], reference=photos[2], strength=0.0)
    neutral = pipe.transfer(photos[:2], "neutral")
    full = pipe.transfer(photos[:2], reference=photos[2])
    assert all(r.found for r in full + zero)
    for a, b in zip(zero, neutral):
        assert np.array_equal(a.image, b.image)
    assert all(not np.array_equal(a.image, b.image) for a, b in zip(full, zero))
    assert all(not np.array_equal(r.image, p) for r, p in zip(full, photos))


def test_fxaug_transfer_reference_copies_a_face_s_expression(tmp_path, capsys):
    from faces_data import news_photos
    from PIL import Image

    from fxaug.cli import main

    photos = list(news_photos()[:3])
    for i, p in enumerate(photos):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
    (tmp_path / "in").mkdir()
    for i in (0, 1):
        (tmp_path / f"{i}.png").rename(tmp_path / "in" / f"{i}.png")
    _wild(3).save_pretrained(tmp_path / "m")
    common = [str(tmp_path / "in"), "--model", str(tmp_path / "m"), "--device", "cpu", "--no-progress"]
    assert main(["transfer", *common, "--reference", str(tmp_path / "2.png"), "--out", str(tmp_path / "ref")]) == 0
    assert main(["transfer", *common, "--reference", str(tmp_path / "2.png"), "--strength", "0", "--out", str(tmp_path / "zero")]) == 0
    assert main(["transfer", *common, "--to", "neutral", "--out", str(tmp_path / "neutral")]) == 0
    for i in (0, 1):
        ref, zero, neutral = (np.array(Image.open(tmp_path / d / f"{i}.png")) for d in ("ref", "zero", "neutral"))
        assert np.array_equal(zero, neutral) and not np.array_equal(ref, zero)
    capsys.readouterr()
    assert main(["transfer", *common, "--out", str(tmp_path / "none")]) == 2
    assert "--to EMOTION or --reference IMG" in capsys.readouterr().err
    assert main(["transfer", str(tmp_path / "in"), "--reference", str(tmp_path / "2.png"), "--out", str(tmp_path / "x")]) == 2
    assert "--reference needs --model" in capsys.readouterr().err
    from fxaug.models import ExpressionInpainter

    ExpressionInpainter(image_size=48, width=8, embed_dim=8).save_pretrained(tmp_path / "labels")
    assert main(["transfer", str(tmp_path / "in"), "--model", str(tmp_path / "labels"), "--reference", str(tmp_path / "2.png"),
                 "--out", str(tmp_path / "y")]) == 2
    assert "needs a model with an expression encoder" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in ("none", "x", "y"))
