"""Training 2CET on the in-context engine (fxaug.models.TwoCETInpainter, family "2cet-inpaint").

Each G step, on a batch of aligned faces x with their code masks (mouth and eyes, jittered as
the in-context trainer jitters them):
- self-supervised redraw: x's masked regions are redrawn from E(v), the code of another view v of
  the same face (flip, small shift / scale / rotation, blur, brightness and contrast: `view_aug`),
  with masked L1 plus the perceptual distance in the guide's features. The view changes what the
  code must not carry (pose, sharpness, lighting, side) and keeps what the regions show, so E
  learns expression rather than identity;
- neutral anchor: neutral faces' codes are pulled to 0 (`lambda_neutral`), so code 0 means
  neutral and strength, which scales the code, runs from neutral to the expression;
- reference-guided (swapped): G(x, E(r)) for a reference r, another sampled face, trained by
  the projection discriminator of fxaug.models.inpaint conditioned on r's label (hinge), by the
  guide classifying the output as it classifies r (KL between the guide's softmaxes,
  `lambda_consist`), and by 2CET's code loss E(G(x, E(r))) ~ E(r) (`lambda_code`);
- optional, off by default until a measurement says it helps: 2CET's diversity-sensitive term
  (`lambda_div`: two references' transfers of the same face differ).
2CET's pixel cycle G(G(x, c), E(x)) ~ x is not a term here: the second redraw sees exactly the
context the first one kept (outside the mask G(x, c) is x), so it is the self-supervised redraw
already; its code cycle is the code loss.

The guide is the project's own classifier (fxaug.trainers.guide), never the evaluation judge.
The export names an expression per class: the mean code of (up to 512 of) its training faces.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from fxaug.models.inpaint import parse_target_regions
from fxaug.models.twocet_inpaint import TwoCETInpainter

from . import losses as L
from .config import register_trainer
from .inpaint import InpaintTrainer, masked_l1

VIEW_AUGMENTATIONS = ("flip", "shift", "blur", "color")


def parse_view_aug(spec: str) -> tuple[str, ...]:
    """"flip,shift,blur,color" (any subset, "" for none) -> the names; unknown ones are refused."""
    names = tuple(n.strip() for n in (spec or "").split(",") if n.strip())
    unknown = sorted(set(names) - set(VIEW_AUGMENTATIONS))
    if unknown:
        raise ValueError(f"view_aug: unknown augmentations {unknown}; known: {', '.join(VIEW_AUGMENTATIONS)}")
    return names


def augmented_view(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Another view of each face for E: a horizontal flip (half of them), a shift of up to 3 px
    (at 48 px) with +-5% scale and +-6 degrees, a 3x3 binomial blur blended in by a random amount,
    contrast x(1 +- 0.3) and brightness +-0.2 (of [-1, 1]). Random draws come from `generator`,
    all of them whatever the policy, so a run's stream does not depend on it."""
    n, channels, size = x.shape[0], x.shape[1], x.shape[-1]
    u = torch.rand(n, 8, generator=generator).to(x.device, x.dtype)
    if "flip" in policy:
        x = torch.where((u[:, 0] < 0.5).view(-1, 1, 1, 1), x.flip(-1), x)
    if "shift" in policy:
        scale = 1 + (u[:, 1] * 2 - 1) * 0.05
        angle = (u[:, 2] * 2 - 1) * math.radians(6)
        shift = (u[:, 3:5] * 2 - 1) * 6 / 48  # up to 3 px at 48 px, in normalised coordinates (2 = the side)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "blur" in policy:
        k = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
        kernel = (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3)
        blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)
        x = x + u[:, 5].view(-1, 1, 1, 1) * (blurred - x)
    if "color" in policy:
        mean = x.mean((1, 2, 3), keepdim=True)
        contrast = (1 + (u[:, 6] * 2 - 1) * 0.3).view(-1, 1, 1, 1)
        brightness = ((u[:, 7] * 2 - 1) * 0.2).view(-1, 1, 1, 1)
        x = ((x - mean) * contrast + mean + brightness).clamp(-1, 1)
    return x


# the in-context trainer's schedule (hinge loss, spectral norm, Adam(0.5, 0.99) at 2e-4); E has
# 2CET's encoder width at half the paper's (16: a CPU budget), code_dim 32 as the paper
@register_trainer("2cet-inpaint", method="regions", n_critic=1, beta1=0.5, width=24, d_width=32, lr=2e-4)
class TwoCETInpaintTrainer(InpaintTrainer):
    def build(self) -> None:
        domains = self.check_regions_data()
        cfg = self.cfg
        if "neutral" not in domains:
            raise ValueError("2cet-inpaint needs neutral among its domains (its faces' codes are pulled to 0)")
        self.neutral = domains.index("neutral")
        self.view_policy = parse_view_aug(cfg.view_aug)
        self.build_networks(TwoCETInpainter(image_size=cfg.size, channels=cfg.channels, width=cfg.width,
                                            embed_dim=cfg.embed_dim, domains=domains, code_dim=cfg.code_dim,
                                            encoder_width=cfg.encoder_width,
                                            target_regions=parse_target_regions(cfg.target_regions)))

    def code_masks(self, landmarks: torch.Tensor) -> torch.Tensor:
        """Each face's code regions (mouth and eyes), jittered in scale and position."""
        return self.masks(landmarks, None)

    # -- the steps ---------------------------------------------------------------------------
    def d_step(self) -> dict[str, float]:
        G, D = self.nets["G"], self.nets["D"]
        x, own, points = self.faces()
        r, r_label, _ = self.faces()
        masks = self.code_masks(points)
        with torch.no_grad():
            fake = G(x, G.encode(r), masks=masks)
        real_score = D(self.augment(x), masks, own)
        fake_score = D(self.augment(fake), masks, r_label)
        loss = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
        self.optimize("D", loss)
        return {"D/loss": loss.item(), "D/real": real_score.mean().item(), "D/fake": fake_score.mean().item()}

    def g_step(self) -> dict[str, float]:
        cfg, G, D = self.cfg, self.nets["G"], self.nets["D"]
        x, own, points = self.faces()
        masks = self.code_masks(points)
        # self-supervised: redraw the face's regions from the code of another view of it
        code_own = G.encode(augmented_view(x, self.view_policy, self.sampler.generator))
        rec = G(x, code_own, masks=masks)
        l1 = masked_l1(rec, x, masks)
        perc = self.perceptual(rec, x)
        is_neutral = own == self.neutral
        neutral = code_own[is_neutral].pow(2).mean() if bool(is_neutral.any()) else code_own.new_zeros(())
        # reference-guided: another face's expression, judged for r's class and by the guide as r is
        r, r_label, _ = self.faces()
        code_ref = G.encode(r)
        fake = G(x, code_ref, masks=masks)
        adv = -D(self.augment(fake), masks, r_label).mean()
        with torch.no_grad():
            p_ref = F.softmax(self.guide(r), 1)
        consist = F.kl_div(F.log_softmax(self.guide(fake), 1), p_ref, reduction="batchmean")
        code = L.l1(G.encode(fake), code_ref.detach())
        loss = (cfg.lambda_l1 * l1 + cfg.lambda_perc * perc + cfg.lambda_neutral * neutral + cfg.lambda_adv * adv
                + cfg.lambda_consist * consist + cfg.lambda_code * code)
        out = {"G/l1": l1.item(), "G/perc": perc.item(), "G/neutral": neutral.item(), "G/adv": adv.item(),
               "G/consist": consist.item(), "G/code": code.item()}
        if cfg.lambda_div:
            other = G(x, G.encode(self.faces()[0]), masks=masks)
            div = masked_l1(fake, other, masks)
            loss = loss - cfg.lambda_div * div
            out["G/div"] = div.item()
        self.optimize("G", loss)
        return {"G/loss": loss.item(), **out}

    def _init_generator(self, folder, names=()) -> None:
        """--init-from a generator folder: as for any family, except that a 2cet-inpaint export's
        named codes (its classes' mean codes, not training state) are left out; the export names
        them again from this run's faces."""
        from fxaug.models import load_model

        if names and tuple(names) != ("G",):
            raise ValueError(f"{folder}: a generator folder holds G alone; --init-nets {','.join(names)} needs a run")
        state = load_model(folder).state_dict()
        state["expression_codes"] = self.nets["G"].expression_codes
        try:
            self.nets["G"].load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{folder}: this generator does not fit this run's model, domains and sizes ({e})") from e
        self.G_ema.load_state_dict(self.nets["G"].state_dict())
        self.dist.broadcast(self.nets["G"])

    # -- samples and export ----------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """Rows: fixed faces. Columns: input, code 0 (the neutral redraw), its own code, then the
        expression of one reference of each emotional class (up to 5), shown above its column."""
        G = self.G_ema
        idx = self._fixed
        x = self.data.to_model_range(idx, self.device)
        masks = G.masks_for(self.data.landmarks[idx], None).to(self.device)
        emotional = [d for d in range(len(self.data.domain_names)) if d != self.neutral]
        refs = torch.cat([torch.nonzero(self.data.domains == d).flatten()[:1] for d in emotional])[:5]
        r = self.data.to_model_range(refs, self.device)
        zero = torch.zeros(1, G.config.code_dim, device=self.device)
        cols = [x, G(x, zero, masks=masks), G(x, G.encode(x), masks=masks)]
        cols += [G(x, G.encode(r[i : i + 1]), masks=masks) for i in range(len(r))]
        header = torch.cat([torch.full_like(x[:1], -1)] * (len(cols) - len(r)) + [r])
        return torch.cat([header, torch.stack(cols, 1).flatten(0, 1)]).cpu(), len(cols)

    def export(self, directory=None):
        """The EMA model with an expression named per class but neutral (code 0): the mean code
        of up to 512 of its training faces. Named on a copy, so snapshots keep the training
        state's shape; the neutral faces' mean code's norm is recorded beside the others'."""
        from .loop import EXPORT

        model = copy.deepcopy(self.G_ema)
        norms = {}
        for d, name in enumerate(self.data.domain_names):
            idx = torch.nonzero(self.data.domains == d).flatten()[:512]
            if not len(idx):
                continue
            faces = self.data.to_model_range(idx, self.device)
            if d == self.neutral:
                with torch.no_grad():
                    norms[name] = float(model.encode(faces).mean(0).norm())
            else:
                norms[name] = float(model.set_expression(name, faces).norm())
        metadata = {**self.export_metadata(), "mean_code_norms": {k: round(v, 4) for k, v in norms.items()}}
        return model.save_pretrained(directory or self.run_dir / EXPORT, metadata=metadata)
