"""StarGAN and CycleGAN training steps (WGAN-GP), per the paper's configuration."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fxaug.models import CycleGANGenerators, PatchDiscriminator, StarGANGenerator
from fxaug.models.gan import ResNetGenerator, saturated_share

from . import losses as L
from .config import register_trainer
from .guide import guide_indices, load_guide
from .loop import GANTrainer


def _generator_kwargs(cfg, data) -> dict:
    return dict(
        image_size=cfg.size, channels=cfg.channels, width=cfg.width, n_res=cfg.n_res, residual=cfg.residual,
        warp=cfg.warp, max_flow=cfg.max_flow, flow_cells=cfg.flow_cells, label_injection=cfg.label_injection,
        domains=tuple(data.domain_names), method=cfg.method, parts=tuple(data.part_names),
    )


def _translate(net: ResNetGenerator, x: torch.Tensor, cond) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G's output, its mean |painted change| and its mean displacement as a share of the image
    side (both 0 unless G warps). Weighting the paint above the warp makes moving pixels the
    cheap way to an expression; weighting the warp keeps the moves to what the expression needs
    (a weak critic does not stop a warp G from bending whole faces)."""
    if not net.warp:
        zero = x.new_zeros(())
        return net(x, cond), zero, zero
    out, flow, change = net.decompose(x, cond)
    return out, (change.abs().mean() if change is not None else x.new_zeros(())), flow.abs().mean() / 2


def _discriminator(cfg, data, n_classes: int) -> PatchDiscriminator:
    return PatchDiscriminator(
        image_size=cfg.size, channels=cfg.channels, width=cfg.d_width, n_layers=cfg.n_layers,
        n_classes=n_classes, parts=tuple(data.part_names), noise_std=cfg.noise_std,
    )


def _warp_terms(cfg, paint: torch.Tensor, move: torch.Tensor) -> dict[str, float]:
    """The warp G's penalty terms for the log (none for other generators)."""
    if not cfg.warp:
        return {}
    return {"G/flow": move.item(), **({"G/paint": paint.item()} if cfg.residual else {})}


def _saturation(cfg, fake: torch.Tensor, source: torch.Tensor) -> dict[str, float]:
    """A residual G's share of output pixels it drove to pure black or white (for the log)."""
    return {"G/saturated": saturated_share(fake, source)} if cfg.residual else {}


# The paper's GANs (WGAN-GP) update G every 5th step with Adam(0.5, 0.99).
@register_trainer("stargan", method="image", n_critic=5, beta1=0.5, width=64, d_width=64, lr=1e-4)
class StarGANTrainer(GANTrainer):
    """One conditional G over all domains; D scores realism per patch and classifies the domain
    (the paper's). With --guide, G's expression signal is the frozen guide classifier's instead,
    and D scores realism alone: D's small classifier, trained beside the critic on noisy inputs,
    reached 0.53-0.59 balanced accuracy on three classes in 1,500 steps, and G learnt its
    shortcuts (issue #18)."""

    def build(self) -> None:
        cfg = self.cfg
        self.nets["G"] = StarGANGenerator(**_generator_kwargs(cfg, self.data))
        # with a guide D has no classifier head: nothing would train it, and G does not read it
        self.nets["D"] = _discriminator(cfg, self.data, 0 if cfg.guide else len(self.data.domain_names))
        self.opts = {k: self.adam(v) for k, v in self.nets.items()}
        self.guide = None
        if cfg.guide:
            self.guide = load_guide(cfg.guide, device=self.device)
            if self.guide.config.channels != cfg.channels:
                raise ValueError(f"{cfg.guide}: the guide reads {self.guide.config.channels}-channel faces, "
                                 f"this run trains {cfg.channels}-channel ones")
            self.to_guide = guide_indices(self.guide, self.data.domain_names, self.device)

    def guide_loss(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The frozen guide's cross-entropy on G's outputs towards their targets, read at the
        guide's own size (bilinear, antialiased only when shrinking)."""
        size = self.guide.config.image_size
        if fake.shape[-1] != size:
            fake = F.interpolate(fake, size=size, mode="bilinear", align_corners=False, antialias=size < fake.shape[-1])
        return F.cross_entropy(self.guide(fake), self.to_guide[target])

    def _targets(self, source: torch.Tensor) -> torch.Tensor:
        """A random domain other than each sample's own (from the seeded sampler stream)."""
        k = len(self.data.domain_names)
        shift = torch.randint(1, k, source.shape, generator=self.sampler.generator).to(source.device)
        return (source + shift) % k

    def d_step(self) -> dict[str, float]:
        cfg, G, D = self.cfg, self.nets["G"], self.nets["D"]
        x, src, parts = self.batch()
        names = self.part_names(parts)
        trg = self._targets(src)
        with torch.no_grad():
            fake = G(x, trg, parts=names)
        real_score, real_logits = D(self.augment(x), parts=names)
        fake_score, _ = D(self.augment(fake), parts=names)
        gp = L.gradient_penalty(lambda z: D(self.augment(z), parts=names)[0], x, fake)
        cls = L.classification_loss(real_logits, src) if real_logits is not None else None  # None: a guide's run
        adv = L.critic_loss(real_score, fake_score)
        loss = adv + (cfg.lambda_cls * cls if cls is not None else 0.0) + cfg.lambda_gp * gp
        self.optimize("D", loss)
        out = {"D/loss": loss.item(), "D/adv": adv.item(), "D/gp": gp.item()}
        return out | ({"D/cls": cls.item()} if cls is not None else {})

    def classifier_step(self) -> dict[str, float]:
        x, src, parts = self.batch()
        _, logits = self.nets["D"](self.augment(x), parts=self.part_names(parts))
        cls = L.classification_loss(logits, src)
        self.optimize("D", cls)
        return {"D/cls": cls.item()}

    def g_step(self) -> dict[str, float]:
        cfg, G, D = self.cfg, self.nets["G"], self.nets["D"]
        x, src, parts = self.batch()
        names = self.part_names(parts)
        trg = self._targets(src)
        fake, paint, move = _translate(G.net, x, G.condition(trg, len(x), x.device, names))
        fake_score, fake_logits = D(self.augment(fake), parts=names)
        adv = L.generator_adversarial_loss(fake_score)
        # the expression term: D's classifier (the paper's) or the frozen guide's
        if self.guide is None:
            expr, lambda_expr, expr_name = L.classification_loss(fake_logits, trg), cfg.lambda_cls, "G/cls"
        else:
            expr, lambda_expr, expr_name = self.guide_loss(fake, trg), cfg.lambda_guide, "G/guide"
        back, paint_back, move_back = _translate(G.net, fake, G.condition(src, len(x), x.device, names))
        rec = L.l1(back, x)
        paint, move = (paint + paint_back) / 2, (move + move_back) / 2
        loss = adv + lambda_expr * expr + cfg.lambda_rec * rec + cfg.lambda_paint * paint + cfg.lambda_flow * move
        self.optimize("G", loss)
        out = {"G/loss": loss.item(), "G/adv": adv.item(), expr_name: expr.item(), "G/rec": rec.item()}
        return out | _warp_terms(cfg, paint, move) | _saturation(cfg, fake, x)


@register_trainer("cyclegan", method="image", n_critic=5, beta1=0.5, width=64, d_width=64, lr=1e-4)
class CycleGANTrainer(GANTrainer):
    """G: a -> b and F: b -> a, a critic per domain; cycle and identity losses."""

    def build(self) -> None:
        cfg = self.cfg
        self.nets["G"] = CycleGANGenerators(**_generator_kwargs(cfg, self.data))
        self.nets["D_a"] = _discriminator(cfg, self.data, 0)
        self.nets["D_b"] = _discriminator(cfg, self.data, 0)
        self.opts = {k: self.adam(v) for k, v in self.nets.items()}

    def _pair(self):
        half = self.cfg.batch // 2
        xa, _, pa = self.batch(domain=0, size=half)
        xb, _, pb = self.batch(domain=1, size=half)
        return xa, self.part_names(pa), xb, self.part_names(pb)

    def d_step(self) -> dict[str, float]:
        cfg, G = self.cfg, self.nets["G"]
        xa, pa, xb, pb = self._pair()
        with torch.no_grad():
            fake_b = G.a_to_b(xa, G.part_condition(pa, len(xa), xa.device))
            fake_a = G.b_to_a(xb, G.part_condition(pb, len(xb), xb.device))
        out = {}
        for name, real, fake, real_parts, fake_parts in (("D_a", xa, fake_a, pa, pb), ("D_b", xb, fake_b, pb, pa)):
            D = self.nets[name]
            real_score, _ = D(self.augment(real), parts=real_parts)
            fake_score, _ = D(self.augment(fake), parts=fake_parts)
            # Interpolates mix two part types when parts differ; condition on the real one's.
            gp = L.gradient_penalty(lambda z, D=D, p=real_parts: D(self.augment(z), parts=p)[0], real, fake)
            adv = L.critic_loss(real_score, fake_score)
            loss = adv + cfg.lambda_gp * gp
            self.optimize(name, loss)
            out.update({f"{name}/loss": loss.item(), f"{name}/gp": gp.item()})
        return out

    def g_step(self) -> dict[str, float]:
        cfg, G = self.cfg, self.nets["G"]
        xa, pa, xb, pb = self._pair()
        ca, cb = G.part_condition(pa, len(xa), xa.device), G.part_condition(pb, len(xb), xb.device)
        fake_b, paint_b, move_b = _translate(G.a_to_b, xa, ca)
        fake_a, paint_a, move_a = _translate(G.b_to_a, xb, cb)
        adv = L.generator_adversarial_loss(self.nets["D_b"](self.augment(fake_b), parts=pa)[0])
        adv = adv + L.generator_adversarial_loss(self.nets["D_a"](self.augment(fake_a), parts=pb)[0])
        cyc = L.l1(G.b_to_a(fake_b, ca), xa) + L.l1(G.a_to_b(fake_a, cb), xb)
        idt = L.l1(G.a_to_b(xb, cb), xb) + L.l1(G.b_to_a(xa, ca), xa)
        paint, move = (paint_a + paint_b) / 2, (move_a + move_b) / 2
        loss = adv + cfg.lambda_cyc * cyc + cfg.lambda_id * idt + cfg.lambda_paint * paint + cfg.lambda_flow * move
        self.optimize("G", loss)
        out = {"G/loss": loss.item(), "G/adv": adv.item(), "G/cyc": cyc.item(), "G/id": idt.item()}
        return out | _warp_terms(cfg, paint, move) | _saturation(cfg, torch.cat([fake_b, fake_a]), torch.cat([xa, xb]))
