"""Losses of the expression-transfer GANs (WGAN-GP critic, reconstruction, classification)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def critic_loss(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    """WGAN critic: maximise D(real) - D(fake), i.e. minimise the negation."""
    return fake_score.mean() - real_score.mean()


def generator_adversarial_loss(fake_score: torch.Tensor) -> torch.Tensor:
    return -fake_score.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, **critic_kwargs) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad_x D(x_hat)||_2 - 1)^2 on random interpolates.
    `critic(x, **critic_kwargs)` returns the (patch) score map; D(x) is each image's mean of it,
    the score the adversarial losses see. Penalising the map's sum instead held that score to
    1/P of the slope the penalty allows (P patches: 1/36 at 48 px), muting the critic."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    score = critic(x_hat, **critic_kwargs)
    per_image = score.reshape(len(score), -1).mean(1)
    # Images are scored independently, so the sum's gradient holds each image's own.
    (grad,) = torch.autograd.grad(per_image.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()
