"""Issue #18: the StarGAN/CycleGAN trainers' defects, one section each, each test failing
before its fix. Tiny networks on 36 real FER2013 faces (48 px)."""

from __future__ import annotations

import pytest
import torch
from conftest import write_fer_classes

from fxaug.trainers import TrainConfig, make_trainer
from fxaug.trainers import losses as L


@pytest.fixture(scope="module")
def faces48(tmp_path_factory, fer):
    """36 FER2013 faces (48 px) of neutral, happy and sad, in class folders."""
    return write_fer_classes(tmp_path_factory.mktemp("faces48"), fer, ("neutral", "happy", "sad"), 36)


def tiny_config(faces, tmp_path, **kw) -> TrainConfig:
    base = dict(size=48, width=4, n_res=1, d_width=4, batch=4, domains="neutral,happy,sad", data=str(faces),
                cache_dir=str(tmp_path / "cache"), steps=1000, tensorboard=False)
    return TrainConfig(**(base | kw))


# -- defect 1: the gradient penalty holds the score the adversarial losses see -----------------


def test_gradient_penalty_holds_each_images_mean_patch_score():
    """A 6x6 patch map whose every patch is the same unit-slope score: the per-image mean (what
    critic_loss and generator_adversarial_loss see) has slope 1, so the penalty is 0. On the
    map's sum (slope 36) it was (36 - 1)^2."""
    w = torch.randn(1, 3, 8, 8)
    w /= w.norm()
    critic = lambda x: (x * w).flatten(1).sum(1)[:, None, None, None].expand(-1, 1, 6, 6)  # noqa: E731
    real, fake = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    assert L.gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-8)


def test_stargan_realism_gradient_at_g_is_not_muted(faces48, tmp_path):
    """The realism gradient reaching G's output against the reconstruction's, at G's
    initialisation once D's penalty has shaped its slope (150 D steps)."""
    trainer = make_trainer(tiny_config(faces48, tmp_path), tmp_path / "run")
    for _ in range(150):
        trainer.d_step()
    G, D, lambda_rec = trainer.nets["G"], trainer.nets["D"], trainer.cfg.lambda_rec
    trainer.set_critic_noise(0.0)  # as in G's steps
    x, src, _ = trainer.batch(size=16)
    trg = trainer._targets(src)
    with torch.no_grad():
        fake = G(x, trg)
    fake.requires_grad_(True)
    (realism,) = torch.autograd.grad(L.generator_adversarial_loss(D(fake)[0]), fake)
    (reconstruction,) = torch.autograd.grad(lambda_rec * L.l1(G(fake, src), x), fake)
    ratio = (realism.flatten(1).norm(dim=1).mean() / reconstruction.flatten(1).norm(dim=1).mean()).item()
    # Per face, with the configured lambda_rec (5), over seeds 0-3: the penalty holds D's slope
    # near 1 (D's loss pushes past it: realism 1.3-1.9 at this point) against a reconstruction
    # gradient of 0.7-1.2, a ratio of 1.3-2.1 (this seed: 1.28); the band leaves a factor ~2.5
    # each way. The sum-penalised critic gave realism 0.03 a face, a ratio of 0.028-0.049.
    # (Unweighted, 6-11:1 now against 0.14-0.25:1; StarGAN's reference at 128 px: ~5:1.)
    assert 0.5 < ratio < 5, ratio


# -- defect 2: instance noise regularises D, not G's gradients ----------------------------------


@pytest.mark.parametrize("model, domains", [("stargan", "neutral,happy,sad"), ("cyclegan", "neutral,happy")])
def test_instance_noise_only_in_d_steps(faces48, tmp_path, model, domains):
    """Every critic call scores its input twice: equal in G's steps, noisy in D's."""
    cfg = tiny_config(faces48, tmp_path, model=model, domains=domains, size=16, noise_std=0.5, n_critic=1, steps=2)
    trainer = make_trainer(cfg, tmp_path / "run")
    phase, seen = [None], []
    for name in ("d_step", "g_step"):
        def tagged(step=getattr(trainer, name), name=name):
            phase[0] = name
            return step()

        setattr(trainer, name, tagged)
    for name in (n for n in trainer.nets if n.startswith("D")):
        def twice(*args, forward=trainer.nets[name].forward, **kwargs):
            first, second = forward(*args, **kwargs), forward(*args, **kwargs)
            seen.append((phase[0], torch.equal(first[0], second[0])))
            return first

        trainer.nets[name].forward = twice
    trainer.train(progress=False)
    assert {p for p, _ in seen} == {"d_step", "g_step"}
    assert all(same for p, same in seen if p == "g_step")
    assert not any(same for p, same in seen if p == "d_step")
