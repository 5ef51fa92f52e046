"""The in-context expression generator (fxaug.models.ExpressionInpainter), its masks, its
trainer and its guide: outside its mask nothing changes, strength 0 is the own-label redraw,
save/load and resume are exact, and the guide can never be the evaluation judge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_resumes_bit_exact
from dataset_writers import write_class_folders

from fxaug.faces import regions
from fxaug.methods import paste_region, region_crop
from fxaug.metrics.judge import JUDGE_DIR
from fxaug.models import ExpressionInpainter, load_model
from fxaug.trainers import TrainConfig, make_trainer

DOMAINS = "neutral,happy,sad"


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory, fer):
    root = tmp_path_factory.mktemp("faces")
    rows = [r for r in fer.sample(200, seed=5) if fer.emotion(r) in DOMAINS.split(",")][:30]
    write_class_folders(root, [(int(r), fer.images[r], fer.emotion(r)) for r in rows])
    return root


@pytest.fixture(scope="module")
def guide(faces_dir, tmp_path_factory):
    from fxaug.trainers.guide import main

    out = tmp_path_factory.mktemp("guide")
    main(["--data", str(faces_dir), "--splits", "", "--domains", DOMAINS, "--out", str(out), "--epochs", "1",
          "--batch", "8", "--widths", "4,8", "--cache-dir", str(out / "cache")])
    return out / "guide"


def _cfg(faces_dir, tmp_path, guide, **kw):
    base = dict(model="inpaint", method="regions", data=str(faces_dir), domains=DOMAINS, size=48, width=8, d_width=8,
                embed_dim=8, batch=4, steps=6, log_every=1, sample_every=3, snapshot_every=3, tensorboard=False,
                guide=None if guide is None else str(guide), cache_dir=str(tmp_path / "cache"))
    base.update(kw)
    return TrainConfig(**base)


def _mean_face(size=48) -> np.ndarray:
    """A plausible aligned face's 68 landmarks (a fixed template, for geometry tests)."""
    from fxaug.faces.landmarks import FaceLandmarker  # noqa: F401  (the net is not run)

    rng = np.random.default_rng(0)
    t = np.zeros((68, 2))
    t[0:17] = np.stack([np.linspace(6, 42, 17), 24 + 16 * np.sin(np.linspace(0, np.pi, 17))], 1)
    t[17:22] = np.stack([np.linspace(9, 21, 5), np.full(5, 13.0)], 1)
    t[22:27] = np.stack([np.linspace(27, 39, 5), np.full(5, 13.0)], 1)
    t[27:36] = np.stack([np.full(9, 24.0), np.linspace(18, 30, 9)], 1)
    for start, cx in ((36, 14.4), (42, 33.6)):
        a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        t[start:start + 6] = np.stack([cx + 4 * np.cos(a), 18 + 1.5 * np.sin(a)], 1)
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    t[48:60] = np.stack([24 + 8 * np.cos(a), 36 + 3 * np.sin(a)], 1)
    a = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    t[60:68] = np.stack([24 + 5 * np.cos(a), 36 + 1 * np.sin(a)], 1)
    return t * size / 48 + rng.normal(0, 0.05, t.shape)


def test_expression_mask_covers_the_mouth_and_is_zero_far_from_it():
    points = _mean_face()
    mask = regions.expression_mask((48, 48), points, ("mouth",))
    assert mask.dtype == np.float32 and 0 <= mask.min() and mask.max() == 1
    assert mask[36, 24] == 1 and mask[36, 18] > 0.9  # the lips' centre, and near a corner (the soft edge)
    assert (mask[:26] == 0).all()  # nothing above the nose tip
    both = regions.expression_mask((48, 48), points, ("mouth", "eyes"))
    assert both[18, 14] > 0.9 and both[13, 24] > 0 and (both >= mask).all()
    soft = (mask > 0) & (mask < 1)
    assert soft.any()  # a soft edge


def test_output_equals_input_outside_the_mask_whatever_the_weights():
    torch.manual_seed(0)
    g = ExpressionInpainter(image_size=48, width=8, embed_dim=8)
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.5)  # wild weights: the guarantee is structural, not learnt
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    points = np.stack([_mean_face()] * 4)
    y, alpha = g.generate(x, ["happy", "sad", "anger", "neutral"], torch.ones(4), landmarks=points)
    outside = alpha == 0
    assert outside.sum() > 0.3 * outside.numel()
    assert torch.equal(y[outside], x[outside])
    assert not torch.equal(y[~outside], x[~outside])


def test_strength_zero_is_the_own_label_redraw_and_strength_interpolates():
    torch.manual_seed(1)
    g = ExpressionInpainter(image_size=48, width=8, embed_dim=8).eval()
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.3)
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    masks = g.masks_for(np.stack([_mean_face()] * 2), ["happy", "happy"])
    with torch.no_grad():
        own = g(x, ["sad", "sad"], masks=masks)
        zero = g(x, ["happy", "happy"], masks=masks, sources=["sad", "sad"], strength=0.0)
        unknown = g(x, [None, None], masks=masks)
        zero_unknown = g(x, ["happy", "happy"], masks=masks, strength=0.0)
        half = g(x, ["happy", "happy"], masks=masks, strength=0.5)
        full = g(x, ["happy", "happy"], masks=masks, strength=1.0)
    assert torch.equal(own, zero)
    assert torch.equal(unknown, zero_unknown)
    assert not torch.equal(half, full) and not torch.equal(half, zero_unknown)


def test_save_and_load_are_exact(tmp_path):
    g = ExpressionInpainter(image_size=48, width=8, embed_dim=8, domains=("neutral", "happy"),
                            target_regions=(("neutral", ("mouth",)), ("happy", ("mouth",))))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0, 0.2)
    g.save_pretrained(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert type(back) is ExpressionInpainter and back.config == g.config
    assert back.methods == ("regions",) and back.domains == ("neutral", "happy")
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    points = np.stack([_mean_face()] * 2)
    with torch.no_grad():
        assert torch.equal(g.generate(x, ["happy"] * 2, torch.ones(2), landmarks=points)[0],
                           back.generate(x, ["happy"] * 2, torch.ones(2), landmarks=points)[0])


def test_config_refuses_unknown_regions_and_missing_targets():
    with pytest.raises(ValueError, match="unknown regions"):
        ExpressionInpainter(domains=("happy",), target_regions=(("happy", ("forehead",)),))
    with pytest.raises(ValueError, match="no entry"):
        ExpressionInpainter(domains=("happy", "sad"), target_regions=(("happy", ("mouth",)),))


def test_paste_region_changes_only_pixels_under_the_warped_mask(fer):
    import cv2

    from fxaug.faces import FaceDetector, FaceLandmarker

    face = cv2.resize(fer.images[int(fer.sample(1, seed=3)[0])], (160, 160), interpolation=cv2.INTER_CUBIC)
    photo = np.full((240, 300, 3), 90, np.uint8)
    photo[40:200, 70:230] = face[:, :, None]
    points = FaceLandmarker()(photo, FaceDetector()(photo).face.box)
    crop = region_crop(photo, points, 48)
    mask = regions.expression_mask((48, 48), crop.aligned_landmarks, ("mouth",))
    generated = np.full((48, 48), 255, np.uint8)
    out = paste_region(photo, crop, generated, mask)
    changed = (out != photo).any(2)
    assert changed.any()
    ys, xs = np.nonzero(changed)
    mouth = points[48:60]
    assert ys.min() > points[27:36, 1].min() and abs(xs.mean() - mouth[:, 0].mean()) < 8
    # a grey output in a colour photo changes luminance only: R, G, B move together
    d = out.astype(int) - photo.astype(int)
    assert (np.abs(d[..., 0] - d[..., 1]) <= 1).all() and (np.abs(d[..., 1] - d[..., 2]) <= 1).all()


def test_one_step_trains_and_resume_is_bit_exact(faces_dir, tmp_path, guide):
    cfg = _cfg(faces_dir, tmp_path, guide, steps=8)
    straight = make_trainer(cfg, tmp_path / "straight")
    before = {k: v.clone() for k, v in straight.nets["G"].state_dict().items()}
    losses = straight.train(progress=False)
    assert {"G/l1", "G/perc", "G/adv", "G/guide", "D/loss"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    assert any(not torch.equal(before[k], v) for k, v in straight.nets["G"].state_dict().items())
    assert_resumes_bit_exact(cfg, straight, tmp_path / "resumed", until=5)
    g = load_model(tmp_path / "straight" / "generator")
    assert type(g) is ExpressionInpainter and g.domains == tuple(DOMAINS.split(","))
    options = json.loads((tmp_path / "straight" / "options.json").read_text())
    assert options["config"]["loss"]["guide"] == str(guide)


def test_init_from_a_generator_folder_fine_tunes_it(faces_dir, tmp_path, guide):
    """--init-from a model folder (a run's export, a shipped model, a Hub id): G and its average
    start from its weights, D from scratch; a folder of another shape is refused naming it."""
    parent = make_trainer(_cfg(faces_dir, tmp_path, guide, steps=2, seed=3), tmp_path / "parent")
    parent.train(progress=False)
    exported = load_model(tmp_path / "parent" / "generator").state_dict()
    child = make_trainer(_cfg(faces_dir, tmp_path, guide, init_from=str(tmp_path / "parent" / "generator")),
                         tmp_path / "child")
    for k, v in child.nets["G"].state_dict().items():
        assert torch.equal(v, exported[k]) and torch.equal(child.G_ema.state_dict()[k], exported[k]), k
    fresh = make_trainer(_cfg(faces_dir, tmp_path, guide), tmp_path / "fresh")
    assert all(torch.equal(a, b) for a, b in zip(fresh.nets["D"].state_dict().values(),
                                                 child.nets["D"].state_dict().values()))
    with pytest.raises(ValueError, match="does not fit this run"):
        make_trainer(_cfg(faces_dir, tmp_path, guide, width=16, init_from=str(tmp_path / "parent" / "generator")),
                     tmp_path / "wide")
    with pytest.raises(ValueError, match="holds G alone"):
        make_trainer(_cfg(faces_dir, tmp_path, guide, init_from=str(tmp_path / "parent" / "generator"),
                          init_nets="D"), tmp_path / "d")


def test_target_regions_option_sets_what_each_target_redraws(faces_dir, tmp_path, guide):
    """--target-regions happy=mouth+eyes: the trainer's G masks the eyes for happy too, its
    export keeps that, and the other targets keep the defaults; a wrong spec names its error."""
    from fxaug.models.inpaint import parse_target_regions

    trainer = make_trainer(_cfg(faces_dir, tmp_path, guide, steps=1, target_regions="happy=mouth+eyes"), tmp_path / "r")
    points = torch.as_tensor(_mean_face())[None].expand(2, 68, 2)
    happy, default = (trainer.nets["G"].masks_for(points, t)[0, 0] for t in (["happy"] * 2, ["neutral"] * 2))
    assert torch.equal(happy, default)  # neutral redraws mouth and eyes by default: now so does happy
    assert trainer.nets["G"].regions_for("sad") == ("mouth", "eyes")
    trainer.train(progress=False)
    assert load_model(tmp_path / "r" / "generator").regions_for("happy") == ("mouth", "eyes")
    assert make_trainer(_cfg(faces_dir, tmp_path, guide, steps=1), tmp_path / "d").nets["G"].regions_for("happy") == ("mouth",)
    with pytest.raises(ValueError, match="unknown regions"):
        parse_target_regions("happy=mouth+forehead")
    with pytest.raises(ValueError, match="EMOTION=REGION"):
        parse_target_regions("happy")


def test_ship_withholds_targets_review_rejected(faces_dir, tmp_path, guide):
    """ship --withhold: the shipped model no longer offers the target and refuses to draw it."""
    from fxaug.trainers.ship import ship

    make_trainer(_cfg(faces_dir, tmp_path, guide, steps=1), tmp_path / "run").train(progress=False)
    shipped = load_model(ship(tmp_path / "run", "w", dest=tmp_path / "models", withhold=["sad"]))
    assert (None, "sad") not in shipped.translations() and (None, "happy") in shipped.translations()
    with pytest.raises(ValueError, match="withholds sad"):
        shipped.generate(torch.zeros(1, 1, 48, 48), ["sad"], torch.ones(1), landmarks=_mean_face()[None])
    with pytest.raises(ValueError, match="cannot withhold anger"):
        ship(tmp_path / "run", "w2", dest=tmp_path / "models", withhold=["anger"])


def test_the_guide_is_never_the_judge(faces_dir, tmp_path, guide):
    from fxaug.trainers.guide import GuideClassifier, check_not_judge
    from fxaug.metrics.judge import EmotionJudge

    check_not_judge(guide)  # the project's own guide passes
    judge = JUDGE_DIR / "ferplus-resnet"
    with pytest.raises(ValueError, match="evaluation judge"):
        check_not_judge(judge)
    with pytest.raises(ValueError, match="evaluation judge"):
        make_trainer(_cfg(faces_dir, tmp_path, judge), tmp_path / "run")
    # a copy of the judge elsewhere is recognised by its weights, and any other classifier class refused
    copy = EmotionJudge.from_pretrained(judge)
    copy.save_pretrained(tmp_path / "judge-copy", dtype="float16")
    with pytest.raises(ValueError, match="not a GuideClassifier|evaluation judge"):
        check_not_judge(tmp_path / "judge-copy")
    assert type(GuideClassifier.from_pretrained(guide)) is GuideClassifier
    with pytest.raises(ValueError, match="--guide"):
        make_trainer(_cfg(faces_dir, tmp_path, None), tmp_path / "run2")


def test_withheld_targets_are_neither_offered_nor_drawn():
    from fxaug.pipeline import ExpressionPipeline

    g = ExpressionInpainter(image_size=48, width=8, embed_dim=8, withheld=("Disgust",))
    assert g.config.withheld == ("disgust",)
    assert "disgust" in g.domains and (None, "disgust") not in g.translations()
    points = np.stack([_mean_face()])
    with pytest.raises(ValueError, match="withholds disgust"):
        g.generate(torch.zeros(1, 1, 48, 48), ["disgust"], torch.ones(1), landmarks=points)
    with pytest.raises(ValueError, match="cannot produce 'disgust'"):
        ExpressionPipeline(g, device="cpu").check_target("disgust")
