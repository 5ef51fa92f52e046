"""2CET-GAN training: both cycles in every step.

N -> E -> N: a neutral face x_n gets a random code c ~ U(-0.5, 0.5)^d; G(x_n, c) must look
emotional to D, give back c through E (code loss), differ for different codes
(diversity-sensitive loss) and return to x_n under code 0 (cycle).
E -> N -> E: an emotional face x_e is neutralised by G(x_e, 0), must look neutral to D, and
returns to x_e under its own code E(x_e) (cycle).
D: non-saturating logistic loss with R1 on real images, one head per group.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from fxaug.models import TwoCETDiscriminator, TwoCETGAN

from . import losses as L
from .config import register_trainer
from .loop import GANTrainer

NEUTRAL, EMOTIONAL = 0, 1


def r1_gamma(size: int, batch: int) -> float:
    """StyleGAN2's R1 weight for a resolution and minibatch, 2cet's default --lambda-r1 (Karras et
    al. 2020, the "auto" config of StyleGAN2-ADA: gamma = 0.0002 * res^2 / minibatch; 0.0128 at
    64 px and batch 64, where the 1.0 used before was 78x it). It carries over as it is: r1_penalty
    holds StyleGAN2's 1/2, and D's loss sums the two heads' R1 terms as it sums their real-image
    terms. `batch` is one process's; a multi-GPU run's minibatch is larger: set --lambda-r1 there."""
    return 0.0002 * size**2 / batch


def r1_penalty(logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return 0.5 * grad.pow(2).flatten(1).sum(1).mean()


def neutral_vs_emotional_loss(D, x_n: torch.Tensor, x_e: torch.Tensor) -> torch.Tensor:
    """Each head of D tells real faces of its group from real faces of the other."""
    return (F.softplus(-D(x_n, NEUTRAL)).mean() + F.softplus(D(x_e, NEUTRAL)).mean()
            + F.softplus(-D(x_e, EMOTIONAL)).mean() + F.softplus(D(x_n, EMOTIONAL)).mean())


# 2CET-GAN (non-saturating loss + R1, as StarGAN v2) alternates every step with Adam(0, 0.99).
@register_trainer("2cet", method="image", n_critic=1, beta1=0.0, width=32, d_width=32, lr=1e-4)
class TwoCETTrainer(GANTrainer):
    def build(self) -> None:
        cfg = self.cfg
        if self.data.domain_names[0] != "neutral":
            raise ValueError("2cet needs neutral as its first domain")
        self.emotional = list(range(1, len(self.data.domain_names)))
        self.nets["G"] = TwoCETGAN(image_size=cfg.size, channels=cfg.channels, code_dim=cfg.code_dim,
                                   width=cfg.width, n_res=cfg.n_res, method=cfg.method,
                                   residual=cfg.residual)
        self.nets["D"] = TwoCETDiscriminator(image_size=cfg.size, channels=cfg.channels, width=cfg.d_width,
                                               features=cfg.d_features)
        self.opts = {k: self.adam(v) for k, v in self.nets.items()}

    # Loss weights on their schedules (linear, scaled for short runs).
    def weights(self) -> dict[str, float]:
        cfg = self.cfg
        t = max(0, self.step - cfg.cls_warmup)  # the schedules start with G's first update
        code = cfg.lambda_code * min(1.0, t / cfg.ramp(cfg.code_ramp_steps))
        ds = cfg.lambda_ds * max(0.0, 1.0 - t / cfg.ramp(cfg.ds_decay_steps))
        frac = min(1.0, t / cfg.ramp(cfg.cyc_e_ramp_steps))
        cyc_e = cfg.lambda_cyc_e + (cfg.lambda_cyc_e_final - cfg.lambda_cyc_e) * frac
        return {"code": code, "ds": ds, "cyc_e": cyc_e}

    def random_code(self, n: int) -> torch.Tensor:
        return torch.rand(n, self.cfg.code_dim, device=self.device) - 0.5

    def zero_code(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.cfg.code_dim, device=self.device)

    def classifier_step(self) -> dict[str, float]:
        """Warm-up (--cls-warmup): each head tells real faces of its group from real faces of the
        other, which is D's whole task while G is still (near) the identity."""
        half = self.cfg.batch // 2
        x_n = self.augment(self.batch(domain=NEUTRAL, size=half)[0])
        x_e = self.augment(self.batch(domain=self.emotional, size=half)[0])
        loss = neutral_vs_emotional_loss(self.nets["D"], x_n, x_e)
        self.optimize("D", loss)
        return {"D/cls": loss.item()}

    def d_step(self) -> dict[str, float]:
        G, D = self.nets["G"], self.nets["D"]
        half = self.cfg.batch // 2
        lazy = self.cfg.r1_every
        with_r1 = self.step % lazy == 0
        x_n = self.batch(domain=NEUTRAL, size=half)[0].requires_grad_(with_r1)
        x_e = self.batch(domain=self.emotional, size=half)[0].requires_grad_(with_r1)
        real_n, real_e = D(self.augment(x_n), NEUTRAL), D(self.augment(x_e), EMOTIONAL)
        loss_real = F.softplus(-real_n).mean() + F.softplus(-real_e).mean()
        r1 = lazy * (r1_penalty(real_n, x_n) + r1_penalty(real_e, x_e)) if with_r1 else torch.zeros((), device=self.device)
        with torch.no_grad():
            fake_e = G.generator(x_n, self.random_code(half))
            fake_n = G.generator(x_e, self.zero_code(half))
        loss_fake = F.softplus(D(self.augment(fake_e), EMOTIONAL)).mean() + F.softplus(D(self.augment(fake_n), NEUTRAL)).mean()
        loss = loss_real + loss_fake + self.cfg.lambda_r1 * r1
        self.optimize("D", loss)
        return {"D/loss": loss.item(), "D/real": loss_real.item(), "D/fake": loss_fake.item(), "D/r1": r1.item()}

    def g_step(self) -> dict[str, float]:
        cfg, G, D = self.cfg, self.nets["G"], self.nets["D"]
        w = self.weights()
        half = cfg.batch // 2
        x_n = self.batch(domain=NEUTRAL, size=half)[0]
        x_e = self.batch(domain=self.emotional, size=half)[0]
        # N -> E -> N
        c1, c2 = self.random_code(half), self.random_code(half)
        fake_e1 = G.generator(x_n, c1)
        fake_e2 = G.generator(x_n, c2)
        adv_e = F.softplus(-D(self.augment(fake_e1), EMOTIONAL)).mean()
        code = L.l1(G.encoder(fake_e1), c1)
        ds = L.l1(fake_e1, fake_e2)
        cyc_n = L.l1(G.generator(fake_e1, self.zero_code(half)), x_n)
        # E -> N -> E
        code_e = G.encoder(x_e)
        fake_n = G.generator(x_e, self.zero_code(half))
        adv_n = F.softplus(-D(self.augment(fake_n), NEUTRAL)).mean()
        cyc_e = L.l1(G.generator(fake_n, code_e), x_e)
        loss = adv_e + adv_n + w["code"] * code - w["ds"] * ds + cfg.lambda_cyc_n * cyc_n + w["cyc_e"] * cyc_e
        self.optimize("G", loss)
        return {"G/loss": loss.item(), "G/adv": (adv_e + adv_n).item(), "G/code": code.item(), "G/ds": ds.item(),
                "G/cyc_n": cyc_n.item(), "G/cyc_e": cyc_e.item(), **{f"lambda/{k}": v for k, v in w.items()}}

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """Rows: fixed neutral faces. Columns: input, code 0, three fixed random codes, then the
        expression of each of the first emotional references (reference-guided)."""
        neutral = torch.nonzero(self.data.domains == NEUTRAL).flatten()[:6]
        refs = torch.cat([torch.nonzero(self.data.domains == d).flatten()[:1] for d in self.emotional])[:4]
        x = self.data.to_model_range(neutral, self.device)
        r = self.data.to_model_range(refs, self.device)
        g = torch.Generator().manual_seed(1234)  # fixed codes without touching the training RNG
        codes = (torch.rand(3, self.cfg.code_dim, generator=g) - 0.5).to(self.device)
        G = self.G_ema
        cols = [x, G(x, self.zero_code(1)[0])] + [G(x, c) for c in codes]
        cols += [G(x, reference=r[i : i + 1]) for i in range(len(r))]
        blank = torch.full_like(x[:1], -1)
        header = torch.cat([blank] * (len(cols) - len(r)) + [r])  # the references above their columns
        return torch.cat([header, torch.stack(cols, 1).flatten(0, 1)]).cpu(), len(cols)

    def export(self, directory=None):
        """The EMA model with an expression named per emotional class: its encoder's mean code
        over that class's training faces (up to 512). Named on a copy, so that snapshots keep
        the training state's shape."""
        from .loop import EXPORT

        model = copy.deepcopy(self.G_ema)
        for d in self.emotional:
            idx = torch.nonzero(self.data.domains == d).flatten()[:512]
            model.set_expression(self.data.domain_names[d], self.data.to_model_range(idx, self.device))
        return model.save_pretrained(directory or self.run_dir / EXPORT, metadata=self.export_metadata())
