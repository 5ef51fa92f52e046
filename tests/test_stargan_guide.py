"""StarGAN with --guide (issue #18, defect 5): G's expression term is the frozen guide
classifier's cross-entropy on its outputs towards their targets, the guide never changes, and D
keeps only its realism head. Without --guide the paper's D-classifier path is unchanged
(tests/test_trainers.py covers it)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import write_fer_classes

from fxaug.trainers import TrainConfig, make_trainer
from fxaug.trainers.guide import GuideClassifier, guide_indices

DOMAINS = ("neutral", "happy", "sad")
# more classes than the run's domains, in another order: the domain -> class mapping matters
GUIDE_CLASSES = ("sad", "surprise", "neutral", "happy")


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory, fer):
    return write_fer_classes(tmp_path_factory.mktemp("faces"), fer, DOMAINS, 24)


def _guide(folder, size: int):
    """An untrained guide (its weights are what a test needs, not its accuracy)."""
    torch.manual_seed(7)
    GuideClassifier(image_size=size, classes=GUIDE_CLASSES, widths=(4, 8), blocks=(1, 1)).save_pretrained(folder)
    return folder


def _cfg(faces_dir, tmp_path, **kw):
    base = dict(model="stargan", data=str(faces_dir), domains=",".join(DOMAINS), size=16, width=4, n_res=1, d_width=4,
                batch=4, steps=4, n_critic=2, log_every=1, sample_every=100, snapshot_every=100, tensorboard=False,
                cache_dir=str(tmp_path / "cache"))
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("guide_size", [16, 24])  # 24: G's 16 px outputs are resized to the guide's side
def test_g_step_trains_against_the_guides_cross_entropy(faces_dir, tmp_path, guide_size):
    guide_dir = _guide(tmp_path / "guide", guide_size)
    trainer = make_trainer(_cfg(faces_dir, tmp_path, guide=str(guide_dir), lambda_guide=2.5), tmp_path / "run")
    assert trainer.nets["D"].classifier is None  # D keeps its realism head only
    G = copy.deepcopy(trainer.nets["G"])
    sampler_state = copy.deepcopy(trainer.sampler.state_dict())
    trainer.set_critic_noise(0.0)
    losses = trainer.g_step()
    # the same batch and targets again, from the sampler's saved stream, through G as it was
    trainer.sampler.load_state_dict(sampler_state)
    x, src, _ = trainer.batch()
    trg = trainer._targets(src)
    guide = GuideClassifier.from_pretrained(guide_dir).eval()
    with torch.no_grad():
        fake = G(x, trg)
        if guide_size != fake.shape[-1]:
            fake = F.interpolate(fake, size=guide_size, mode="bilinear", align_corners=False)
        classes = torch.tensor([GUIDE_CLASSES.index(DOMAINS[t]) for t in trg.tolist()])
        expected = F.cross_entropy(guide(fake), classes).item()
    assert "G/cls" not in losses
    assert losses["G/guide"] == pytest.approx(expected, rel=1e-5)
    # weighted by lambda_guide (no warp: no paint or flow terms)
    assert losses["G/loss"] == pytest.approx(losses["G/adv"] + 2.5 * expected + 5.0 * losses["G/rec"], rel=1e-5)


def test_the_guide_never_changes(faces_dir, tmp_path):
    guide_dir = _guide(tmp_path / "guide", 16)
    trainer = make_trainer(_cfg(faces_dir, tmp_path, guide=str(guide_dir)), tmp_path / "run")
    before = {k: v.clone() for k, v in trainer.guide.state_dict().items()}
    g_before = {k: v.clone() for k, v in trainer.nets["G"].state_dict().items()}
    losses = trainer.train(progress=False)
    assert "G/guide" in losses and "D/cls" not in losses
    # weights and BatchNorm statistics (which train mode would move) as loaded; no gradients kept
    after = trainer.guide.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not trainer.guide.training and all(p.grad is None and not p.requires_grad for p in trainer.guide.parameters())
    assert any(not torch.equal(g_before[k], v) for k, v in trainer.nets["G"].state_dict().items())


def test_guide_options_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cls_warmup"):
        TrainConfig(model="stargan", guide="g", cls_warmup=10)
    with pytest.raises(ValueError, match="parts"):
        TrainConfig(model="stargan", guide="g", method="parts")
    guide = GuideClassifier(image_size=16, classes=("neutral", "happy"), widths=(4,), blocks=(1,))
    assert guide_indices(guide, ("happy", "neutral")).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"does not classify \['sad'\]"):
        guide_indices(guide, DOMAINS)
