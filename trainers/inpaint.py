"""Training the in-context expression generator (fxaug.models.ExpressionInpainter).

Each G step has two branches on a batch of aligned faces:
- own label: the face's target regions are masked and redrawn under its own label (or, with
  probability `unspecified_p`, the "unspecified" label); its real pixels are the target: masked
  L1 plus a perceptual distance in the guide classifier's feature maps. A supervised signal from
  the first step, which is what lets a CPU run learn (docs/models.md).
- label-swapped: the regions of another emotion are redrawn under it; a class-conditional
  projection discriminator (hinge loss, spectral norm) says whether the face looks real *for that
  emotion*, and the frozen guide classifier (the project's own, never the evaluation judge:
  fxaug.trainers.guide) says whether it shows the emotion.
Masks come from each face's landmarks in the aligned frame, per target, jittered in scale and
position so the generator does not learn one mask outline.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fxaug.models.inpaint import ExpressionInpainter, ProjectionDiscriminator, parse_target_regions

from .guide import guide_indices, load_guide
from .config import register_trainer
from .loop import GANTrainer


def masked_l1(a: torch.Tensor, b: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference inside the (soft) masks, per channel."""
    return ((a - b).abs() * masks).sum() / (masks.sum() * a.shape[1]).clamp(min=1)


# hinge loss and spectral norm: alternate every step, Adam(0.5, 0.99) at 2e-4 (supervised
# reconstruction carries the early steps, so the faster rate is safe)
@register_trainer("inpaint", method="regions", n_critic=1, beta1=0.5, width=24, d_width=32, lr=2e-4)
class InpaintTrainer(GANTrainer):
    def build(self) -> None:
        domains = self.check_regions_data()
        cfg = self.cfg
        self.build_networks(ExpressionInpainter(image_size=cfg.size, channels=cfg.channels, width=cfg.width,
                                                embed_dim=cfg.embed_dim, domains=domains,
                                                target_regions=parse_target_regions(cfg.target_regions)))
        # the generator's domain index -> the guide's class index
        self.to_guide = guide_indices(self.guide, domains, self.device)

    def check_regions_data(self) -> tuple[str, ...]:
        """The in-context families need a guide and each face's landmarks; returns the domains."""
        if not self.cfg.guide:
            raise ValueError(f"{self.cfg.model} needs --guide: a GuideClassifier trained by python -m fxaug.trainers.guide")
        if self.data.landmarks is None:
            raise ValueError(f"the {self.cfg.model} trainer needs landmarks with its faces (--method regions)")
        return tuple(self.data.domain_names)

    def build_networks(self, generator) -> None:
        """G as given, then (in this order, which seeds replay) the class-conditional D, their
        optimisers, the frozen guide and the mask jitter's generator."""
        cfg = self.cfg
        self.nets["G"] = generator
        self.nets["D"] = ProjectionDiscriminator(image_size=cfg.size, channels=cfg.channels, width=cfg.d_width,
                                                 n_layers=3, n_classes=len(generator.config.domains))
        self.opts = {k: self.adam(v) for k, v in self.nets.items()}
        self.guide = load_guide(cfg.guide, device=self.device)
        self.mask_rng = np.random.default_rng(cfg.seed * 1000 + self.dist.rank)

    # -- batches and masks ---------------------------------------------------------------
    def faces(self, domain=None):
        """(faces in [-1, 1], own labels, aligned landmarks) of a sampled batch."""
        index = self.sampler.sample(self.cfg.batch, domain)
        return (self.data.to_model_range(index, self.device), self.data.domains[index].to(self.device),
                self.data.landmarks[index])

    def masks(self, landmarks: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Each face's regions for its label (None: G's regions for a code), jittered in scale and
        position."""
        j = self.cfg.mask_jitter
        n = len(landmarks)
        scale = self.mask_rng.uniform(1 - j, 1 + j, n) if j else 1.0
        shifts = self.mask_rng.uniform(-j / 2, j / 2, (n, 2)) if j else None
        G = self.nets["G"]
        targets = None if labels is None else labels.tolist()
        return G.masks_for(landmarks, targets, scale=scale, shifts=shifts).to(self.device)

    def _targets(self, source: torch.Tensor) -> torch.Tensor:
        k = len(self.data.domain_names)
        shift = torch.randint(1, k, source.shape, generator=self.sampler.generator).to(source.device)
        return (source + shift) % k

    # -- the steps ---------------------------------------------------------------------------
    def d_step(self) -> dict[str, float]:
        G, D = self.nets["G"], self.nets["D"]
        x, own, points = self.faces()
        trg = self._targets(own)
        m_trg = self.masks(points, trg)
        with torch.no_grad():
            fake = G(x, trg, masks=m_trg)
        real_score = D(self.augment(x), self.masks(points, own), own)
        fake_score = D(self.augment(fake), m_trg, trg)
        real_loss, fake_loss = F.relu(1 - real_score).mean(), F.relu(1 + fake_score).mean()
        loss = real_loss + fake_loss
        self.optimize("D", loss)
        return {"D/loss": loss.item(), "D/real": real_score.mean().item(), "D/fake": fake_score.mean().item()}

    def perceptual(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return sum(F.l1_loss(fa, fb) for fa, fb in zip(self.guide.feature_maps(a), self.guide.feature_maps(b)))

    def g_step(self) -> dict[str, float]:
        cfg, G, D = self.cfg, self.nets["G"], self.nets["D"]
        x, own, points = self.faces()
        # own label: redraw what is there
        m_own = self.masks(points, own)
        unspecified = torch.rand(len(own), generator=self.sampler.generator).to(own.device) < cfg.unspecified_p
        labels = torch.where(unspecified, torch.full_like(own, len(self.data.domain_names)), own)
        rec = G(x, labels, masks=m_own)
        l1 = masked_l1(rec, x, m_own)
        perc = self.perceptual(rec, x)
        # label-swapped: draw another emotion
        trg = self._targets(own)
        m_trg = self.masks(points, trg)
        fake = G(x, trg, masks=m_trg)
        adv = -D(self.augment(fake), m_trg, trg).mean()
        guide = F.cross_entropy(self.guide(fake), self.to_guide[trg])
        loss = cfg.lambda_l1 * l1 + cfg.lambda_perc * perc + cfg.lambda_adv * adv + cfg.lambda_guide * guide
        self.optimize("G", loss)
        return {"G/loss": loss.item(), "G/l1": l1.item(), "G/perc": perc.item(), "G/adv": adv.item(), "G/guide": guide.item()}

    # -- samples -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        idx = self._fixed
        x = self.data.to_model_range(idx, self.device)
        points = self.data.landmarks[idx]
        cols = [x]
        for d in range(len(self.data.domain_names)):
            target = torch.full((len(idx),), d, dtype=torch.int64)
            cols.append(self.G_ema(x, target.to(self.device), masks=self.G_ema.masks_for(points, target.tolist()).to(self.device)))
        return torch.stack(cols, dim=1).flatten(0, 1).cpu(), len(cols)

    def state_dict(self):
        state = super().state_dict()
        state["mask_rng"] = self.mask_rng.bit_generator.state
        return state

    def load_extra_state(self, state) -> None:
        self.mask_rng.bit_generator.state = state["mask_rng"]
