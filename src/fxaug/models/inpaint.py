"""In-context expression synthesis: a generator that redraws the regions an expression lives in
(mouth; brows and eyes) of an aligned face under an emotion label, seeing the rest of the face as
context, and leaves every pixel outside its soft mask exactly as it was.

Why this family exists: the papers' unpaired recipes (StarGAN/CycleGAN with WGAN-GP, 2CET-GAN)
need about 100x a 2-core CPU to learn an expression (docs/models.md). Masking the regions and
redrawing them gives training a supervised signal from the first step (a face's own regions
under its own label are the target), so a small U-Net learns on a CPU what the unpaired GANs
could not; the label-swapped branch is trained by a class-conditional discriminator and a frozen
guide classifier (fxaug.trainers.inpaint).

    model = ExpressionInpainter(image_size=48)
    masks = model.masks_for(landmarks, targets)                    # (B, 1, S, S) soft, per target
    y = model(x, targets, masks=masks, strength=1.0)               # outside the masks, y == x

Strength interpolates the label embedding from the source's (`sources`, or the learnt
"unspecified" label when unknown) to the target's: 0 is the face's own redraw, 1 the target,
above 1 an exaggeration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import emotions as E
from ..faces import regions
from .base import ExpressionGenerator, PretrainedModel, register_model

# Where each target's expression lives. Happy is a mouth (cheeks measured no better); the others
# move the brows and eyes as well. Neutral, as a target, redraws both.
DEFAULT_TARGET_REGIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("neutral", ("mouth", "eyes")),
    ("happy", ("mouth",)),
    ("sad", ("mouth", "eyes")),
    ("surprise", ("mouth", "eyes")),
    ("fear", ("mouth", "eyes")),
    ("disgust", ("mouth", "eyes")),
    ("anger", ("mouth", "eyes")),
    ("contempt", ("mouth", "eyes")),
)


def parse_target_regions(spec: str | None, base=DEFAULT_TARGET_REGIONS) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`base` with some targets' regions replaced: "happy=mouth+eyes;fear=mouth" (the form a
    training option takes). Unknown emotions or regions are refused, naming them."""
    out = {E.canonical(e): tuple(r) for e, r in base}
    for item in filter(None, (part.strip() for part in (spec or "").replace(",", ";").split(";"))):
        emotion, sep, names = item.partition("=")
        if not sep or not names.strip():
            raise ValueError(f"target regions {item!r}: expected EMOTION=REGION[+REGION], e.g. happy=mouth+eyes")
        chosen = tuple(n.strip() for n in names.split("+") if n.strip())
        unknown = set(chosen) - set(regions.EXPRESSION_REGIONS)
        if unknown:
            raise ValueError(f"target regions {item!r}: unknown regions {sorted(unknown)}; "
                             f"known: {', '.join(regions.EXPRESSION_REGIONS)}")
        out[E.canonical(emotion.strip())] = chosen
    return tuple(out.items())


@dataclass(frozen=True)
class InpainterConfig:
    """image_size: side of the aligned face (fxaug.methods "regions" crops); channels: 1 or 3;
    width: channels at half resolution (x2 per further downsampling, at most 4x; full resolution
    has width / 2); n_down: downsamplings;
    embed_dim: size of the label embedding; domains: the emotions it draws (plus a learnt
    "unspecified" label for a source of unknown class); target_regions: (emotion, regions) pairs,
    which expression regions (fxaug.faces.regions.EXPRESSION_REGIONS) each target redraws;
    feather: the masks' soft edge, in inter-ocular distances."""

    image_size: int = 48
    channels: int = 1
    width: int = 24
    n_down: int = 3
    embed_dim: int = 64
    domains: tuple[str, ...] = E.EMOTIONS
    target_regions: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_TARGET_REGIONS
    feather: float = 0.08
    method: str = "regions"
    # targets the network was trained on but that review found to be artifacts, not expressions
    # (docs/models.md): not offered by translations(), refused by generate()
    withheld: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "domains", tuple(E.canonical(d) for d in self.domains))
        pairs = tuple((E.canonical(e), tuple(r)) for e, r in self.target_regions)
        object.__setattr__(self, "target_regions", pairs)
        object.__setattr__(self, "withheld", tuple(E.canonical(w) for w in self.withheld))
        if self.method != "regions":
            raise ValueError(f"an ExpressionInpainter works on 'regions' crops, not {self.method!r}")
        for emotion, names in pairs:
            unknown = set(names) - set(regions.EXPRESSION_REGIONS)
            if unknown:
                raise ValueError(f"target_regions[{emotion!r}]: unknown regions {sorted(unknown)}; "
                                 f"known: {', '.join(regions.EXPRESSION_REGIONS)}")
        missing = set(self.domains) - {e for e, _ in pairs}
        if missing:
            raise ValueError(f"target_regions has no entry for {sorted(missing)}")


class FiLMBlock(nn.Module):
    """conv -> GroupNorm -> scale and shift from the label embedding -> SiLU, twice, residual."""

    def __init__(self, dim: int, embed_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.norm1 = nn.GroupNorm(min(8, dim), dim, affine=False)
        self.norm2 = nn.GroupNorm(min(8, dim), dim, affine=False)
        self.film = nn.Linear(embed_dim, 4 * dim)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        g1, b1, g2, b2 = self.film(emb)[:, :, None, None].chunk(4, 1)
        y = F.silu(self.norm1(self.conv1(x)) * (1 + g1) + b1)
        y = self.norm2(self.conv2(y)) * (1 + g2) + b2
        return F.silu(x + y)


@register_model
class ExpressionInpainter(ExpressionGenerator):
    """U-Net over (masked face, mask), FiLM-conditioned on an emotion embedding at every level."""

    config_class = InpainterConfig

    def __init__(self, config: InpainterConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        n = len(c.domains)
        self.embed = nn.Embedding(n + 1, c.embed_dim)  # row n: "unspecified"
        self.embed_mlp = nn.Sequential(nn.Linear(c.embed_dim, c.embed_dim), nn.SiLU(), nn.Linear(c.embed_dim, c.embed_dim))
        # Full resolution has only a thin stem and head (width / 2): the CPU budget goes to the
        # levels below it, where a mouth's shape is decided; the skip keeps the context's detail.
        half = max(c.width // 2, 4)
        widths = [c.width * min(2**i, 4) for i in range(c.n_down)]  # at S/2, S/4, ...
        self.stem = nn.Conv2d(c.channels + 1, half, 3, 1, 1)
        self.stem_down = nn.Conv2d(half, widths[0], 4, 2, 1)
        self.enc = nn.ModuleList(FiLMBlock(w, c.embed_dim) for w in widths[:-1])
        self.down = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip(widths[:-1], widths[1:]))
        self.mid = nn.ModuleList([FiLMBlock(widths[-1], c.embed_dim), FiLMBlock(widths[-1], c.embed_dim)])
        self.up = nn.ModuleList(nn.Conv2d(b, a, 3, 1, 1) for a, b in zip(widths[:-1], widths[1:]))
        self.merge = nn.ModuleList(nn.Conv2d(2 * a, a, 1) for a in widths[:-1])
        self.dec = nn.ModuleList(FiLMBlock(w, c.embed_dim) for w in widths[:-1])
        self.head_up = nn.Conv2d(widths[0], half, 3, 1, 1)
        self.head = nn.Sequential(nn.Conv2d(2 * half, half, 3, 1, 1), nn.SiLU(), nn.Conv2d(half, c.channels, 3, 1, 1))
        self._regions = dict(c.target_regions)

    # -- the inference contract --------------------------------------------------------------
    def translations(self) -> list[tuple[str | None, str]]:
        """Any face to any of its domains but the withheld ones."""
        return [(None, d) for d in self.domains if d not in self.config.withheld]

    def generate(self, x, targets, strength, *, parts=None, landmarks=None, code=None):
        """Masks from each crop's landmarks (aligned frame) for its target; returned as alpha, so
        only the redrawn regions go back into the photo."""
        if landmarks is None:
            raise ValueError("an ExpressionInpainter needs each face's landmarks (the regions method gives them)")
        withheld = sorted({E.canonical(t) for t in targets if isinstance(t, str)} & set(self.config.withheld))
        if withheld:
            raise ValueError(f"this model withholds {', '.join(withheld)}: review found its outputs to be artifacts, "
                             "not expressions (docs/models.md)")
        masks = self.masks_for(landmarks, targets).to(x.device)
        return self(x, list(targets), masks=masks, strength=strength), masks

    def regions_for(self, target) -> tuple[str, ...]:
        """The expression regions a target (a name, or an index into `domains`) redraws."""
        return self._regions[self.config.domains[self._domain(target)]]

    def masks_for(self, landmarks, targets, *, scale: float = 1.0, shifts=None) -> torch.Tensor:
        """(B, 1, S, S) float masks: each face's target regions, from its landmarks in the aligned
        frame ((B, 68, 2) pixels). `scale` / `shifts` ((B, 2), IOD) jitter them in training."""
        points = np.asarray(landmarks.detach().cpu() if isinstance(landmarks, torch.Tensor) else landmarks, np.float64)
        targets = self._names(targets, len(points))
        s = self.config.image_size
        scales = np.broadcast_to(np.asarray(scale, np.float64), (len(points),))
        out = np.stack([
            regions.expression_mask((s, s), p, self.regions_for(t), feather=self.config.feather, scale=float(k),
                                    shift=(0.0, 0.0) if shifts is None else tuple(shifts[i]))
            for i, (p, t, k) in enumerate(zip(points, targets, scales))
        ])
        return torch.from_numpy(out)[:, None]

    def label_index(self, labels, batch: int, device) -> torch.Tensor:
        """Domain indices for names / indices; None (or "unspecified") -> the unspecified row."""
        if isinstance(labels, torch.Tensor):
            return labels.to(device, torch.int64).expand(batch) if labels.dim() == 0 else labels.to(device, torch.int64)
        names = self._names(labels, batch)
        unspecified = len(self.config.domains)
        index = [unspecified if n is None else self._domain(n) for n in names]
        return torch.tensor(index, dtype=torch.int64, device=device)

    def embedding(self, targets, sources=None, strength=1.0, *, batch: int, device) -> torch.Tensor:
        """The conditioning: source's embedding + strength * (target's - source's)."""
        t = self.embed(self.label_index(targets, batch, device))
        src = self.embed(self.label_index(sources, batch, device))
        s = torch.as_tensor(strength, dtype=t.dtype, device=device).reshape(-1, 1).expand(batch, 1)
        # lerp is exact at both ends: strength 0 is the source's embedding, 1 the target's, bit for bit
        return self.embed_mlp(torch.lerp(src, t, s))

    def forward(self, x: torch.Tensor, targets, *, masks: torch.Tensor, sources=None, strength=1.0) -> torch.Tensor:
        """x: (B, C, S, S) aligned faces in [-1, 1]; masks: (B, 1, S, S) in [0, 1]. Returns the
        faces with the masked regions redrawn; pixels where the mask is 0 are x's, exactly."""
        masks = masks.to(x.device, x.dtype)
        emb = self.embedding(targets, sources, strength, batch=x.shape[0], device=x.device)
        known = (masks <= 0).to(x.dtype)  # the generator sees only what it may not change
        full = F.silu(self.stem(torch.cat([x * known, masks], 1)))
        h = self.stem_down(full)
        skips = []
        for block, down in zip(self.enc, self.down):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, emb)
        for up, merge, block, skip in zip(reversed(self.up), reversed(self.merge), reversed(self.dec), reversed(skips)):
            h = up(F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            h = block(merge(torch.cat([h, skip], 1)), emb)
        h = F.silu(self.head_up(F.interpolate(h, size=full.shape[-2:], mode="bilinear", align_corners=False)))
        drawn = torch.tanh(self.head(torch.cat([h, full], 1)))
        return torch.where(masks > 0, x + masks * (drawn - x), x)

    # -- helpers -----------------------------------------------------------------------------
    def _domain(self, name) -> int:
        if isinstance(name, (int, np.integer)):
            return int(name)
        canonical = E.canonical(name)
        if canonical not in self.config.domains:
            raise ValueError(f"this model draws {', '.join(self.config.domains)}, not {canonical!r}")
        return self.config.domains.index(canonical)

    @staticmethod
    def _names(labels, batch: int) -> list:
        if labels is None or isinstance(labels, (str, int, np.integer)):
            return [labels] * batch
        labels = list(labels)
        if len(labels) != batch:
            raise ValueError(f"{batch} faces but {len(labels)} labels")
        return labels


@dataclass(frozen=True)
class ProjectionDiscriminatorConfig:
    image_size: int = 48
    channels: int = 1
    width: int = 32
    n_layers: int = 3
    n_classes: int = 8


@register_model
class ProjectionDiscriminator(PretrainedModel):
    """Spectral-norm PatchGAN with a class projection (Miyato & Koyama 2018): sees the face and the
    mask of the regions in question, returns a hinge score per patch plus <features, embed(label)>."""

    config_class = ProjectionDiscriminatorConfig

    def __init__(self, config: ProjectionDiscriminatorConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        sn = nn.utils.spectral_norm
        layers, cin = [], c.channels + 1
        for i in range(c.n_layers):
            cout = c.width * min(2**i, 4)
            layers += [sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin = cout
        layers += [sn(nn.Conv2d(cin, cin, 3, 1, 1)), nn.LeakyReLU(0.2)]
        self.trunk = nn.Sequential(*layers)
        self.score = sn(nn.Conv2d(cin, 1, 1))
        self.project = sn(nn.Embedding(c.n_classes, cin))

    def forward(self, x: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.trunk(torch.cat([x, masks.to(x.dtype)], 1))
        return self.score(h) + (h * self.project(labels)[:, :, None, None]).sum(1, keepdim=True)
