"""StarGAN and CycleGAN networks as configured in *Let's put a smile on your face*
(Upenieks & Urtans, 2022): InstanceNorm and residual blocks in G, bilinear upsampling (no
transposed convolutions, hence no checkerboard), tanh output in [-1, 1]; in D, Gaussian
instance noise before every convolution, LayerNorm, LeakyReLU and a PatchGAN output (one
unbounded critic score per patch, as WGAN-GP wants), plus a domain-classification head for
StarGAN.

Parts-to-parts conditioning: one network serves every face part, told which part it sees by
extra one-hot planes (`parts`), rather than one network per part: six parts with shared
weights cost one model's size (the shipped budget is small), and every part's examples train
the shared texture and lighting features, which matters most for the rare classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import emotions as E
from ..methods import METHODS, PART_NAMES
from .base import ExpressionGenerator, PretrainedModel, register_model



def _as_tuple(values) -> tuple:
    return tuple(values) if values is not None else ()


@dataclass(frozen=True)
class GeneratorConfig:
    """image_size: side of the square input; channels: 1 (grayscale) or 3;
    width: channels of the first conv (doubled per downsampling); n_down: downsamplings;
    n_res: residual blocks at the bottleneck; domains: emotions it translates between, in
    one-hot order (StarGAN) or (source, target) (CycleGAN); method: image | face | parts;
    parts: the part names conditioned on (parts method only); residual: G predicts a change
    added to its input (clamped to [-1, 1], last conv zero-initialised so an untrained G is the
    identity) instead of the whole image; warp: G moves its input's pixels by a smooth flow
    field (at most max_flow of the image side, flow_cells per side) before any change is
    added; with residual=False it only moves pixels."""

    image_size: int = 64
    channels: int = 1
    width: int = 64
    n_down: int = 2
    n_res: int = 6
    domains: tuple[str, ...] = ("neutral", "happy")
    method: str = "image"
    parts: tuple[str, ...] = ()
    residual: bool = False
    warp: bool = False
    max_flow: float = 0.125
    flow_cells: int = 12

    def __post_init__(self):
        object.__setattr__(self, "domains", tuple(E.canonical(d) for d in self.domains))
        if self.warp and not (0 < self.max_flow <= 1 and 1 <= self.flow_cells <= self.image_size):
            raise ValueError(f"warp needs 0 < max_flow <= 1 and 1 <= flow_cells <= image_size, got "
                             f"max_flow={self.max_flow}, flow_cells={self.flow_cells}")
        object.__setattr__(self, "parts", _as_tuple(self.parts))
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "parts" and not self.parts:
            object.__setattr__(self, "parts", PART_NAMES)
        unknown = set(self.parts) - set(PART_NAMES)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; known: {PART_NAMES}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.image_size % (2**self.n_down):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2**n_down = {2**self.n_down}")
        if len(set(self.domains)) < 2:
            raise ValueError(f"need at least two distinct domains, got {self.domains}")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """n_layers stride-2 convolutions (width doubling, capped at 16x); PatchGAN critic map of
    image_size / 2**n_layers per side; n_classes > 0 adds StarGAN's domain classifier;
    parts conditions on part planes as the generator does."""

    image_size: int = 64
    channels: int = 1
    width: int = 64
    n_layers: int = 4
    n_classes: int = 2
    parts: tuple[str, ...] = ()
    noise_std: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "parts", _as_tuple(self.parts))
        if self.image_size % (2**self.n_layers):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2**n_layers = {2**self.n_layers}")


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(dim, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(dim, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator(nn.Module):
    """conv7 -> n_down x (conv4 stride 2) -> n_res residual blocks -> n_down x (bilinear x2 +
    conv3) -> conv7 -> tanh. Conditioning planes (domain and/or part one-hots) are
    concatenated to the input, as StarGAN does.

    residual=True ends in conv7 -> x + change, clamped: the network starts as the identity and
    only has to learn what an expression changes. A direct G must first learn to redraw the
    whole face, which on a short (CPU) schedule leaves it blurred and the identity lost.

    warp=True adds a conv7 flow head: the input is resampled along a displacement field that is
    averaged to flow_cells x flow_cells and bilinearly upsampled (so it is smooth: it bends a
    mouth, it cannot scribble) and bounded by max_flow (tanh). Expressions are mostly geometry:
    mouth corners up or down, brows raised, eyes narrowed. A residual G on a short schedule
    instead paints bright or dark patches that fool a classifier; moving pixels cannot paint.
    Both heads start at zero, so an untrained warp G is the identity too. `decompose` returns
    the parts for the trainer's penalty on the painted change."""

    def __init__(self, channels: int, cond_dim: int, width: int, n_down: int, n_res: int, residual: bool = False,
                 warp: bool = False, max_flow: float = 0.125, flow_cells: int = 12):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(channels + cond_dim, width, 7, 1, 3, bias=False),
            nn.InstanceNorm2d(width, affine=True),
            nn.ReLU(inplace=True),
        ]
        dim = width
        for _ in range(n_down):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), nn.InstanceNorm2d(dim * 2, affine=True), nn.ReLU(True)]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(n_res)]
        for _ in range(n_down):
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(dim, dim // 2, 3, 1, 1, bias=False),
                nn.InstanceNorm2d(dim // 2, affine=True),
                nn.ReLU(inplace=True),
            ]
            dim //= 2
        self.residual, self.warp = residual, warp
        self.max_flow, self.flow_cells = max_flow, flow_cells
        if warp:
            self.trunk = nn.Sequential(*layers)
            self.flow = _zero_conv(dim, 2)
            self.change = _zero_conv(dim, channels) if residual else None
        else:
            if residual:
                layers.append(_zero_conv(dim, channels))
            else:
                layers += [nn.Conv2d(dim, channels, 7, 1, 3), nn.Tanh()]
            self.net = nn.Sequential(*layers)
        self.cond_dim = cond_dim

    def _with_condition(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if not self.cond_dim:
            return x
        if cond is None or cond.shape != (x.shape[0], self.cond_dim):
            raise ValueError(f"expected conditioning of shape ({x.shape[0]}, {self.cond_dim}), got "
                             f"{None if cond is None else tuple(cond.shape)}")
        planes = cond[:, :, None, None].to(x.dtype).expand(-1, -1, x.shape[2], x.shape[3])
        return torch.cat([x, planes], dim=1)

    def decompose(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        """Warp model: (output, flow (B, 2, S, S) in grid units, painted change or None)."""
        if not self.warp:
            raise ValueError("decompose is for warp generators")
        h = self.trunk(self._with_condition(x, cond))
        flow = self.max_flow * 2 * torch.tanh(self.flow(h))  # grid coordinates span 2 per side
        flow = F.interpolate(F.adaptive_avg_pool2d(flow, self.flow_cells), size=x.shape[-2:],
                             mode="bilinear", align_corners=False)
        # Pixel centres in grid_sample's coordinates (align_corners=False): zero flow = identity.
        ys, xs = (torch.linspace(-1 + 1 / n, 1 - 1 / n, n, device=x.device, dtype=x.dtype) for n in x.shape[-2:])
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None] + flow.permute(0, 2, 3, 1)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        change = self.change(h) if self.change is not None else None
        if change is not None:
            out = (out + change).clamp(-1, 1)
        return out, flow, change

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.warp:
            return self.decompose(x, cond)[0]
        source = x
        x = self._with_condition(x, cond)
        if self.residual:
            return (source + self.net(x)).clamp(-1, 1)
        return self.net(x)


def _zero_conv(dim: int, out: int) -> nn.Conv2d:
    conv = nn.Conv2d(dim, out, 7, 1, 3)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class InstanceNoise(nn.Module):
    """Adds N(0, std^2) to its input in training mode only; the trainer anneals `std`."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.std > 0:
            return x + self.std * torch.randn_like(x)
        return x


def _part_index(parts: tuple[str, ...], names, batch: int, device) -> torch.Tensor:
    """One-hot part planes for a batch; `names` is one part name or one per sample."""
    if isinstance(names, str):
        names = [names] * batch
    if len(names) != batch:
        raise ValueError(f"got {len(names)} part names for a batch of {batch}")
    try:
        idx = torch.tensor([parts.index(n) for n in names], device=device)
    except ValueError:
        raise ValueError(f"unknown part in {sorted(set(names))}; this model knows {parts}") from None
    return F.one_hot(idx, len(parts)).float()


def _domain_index(domains: tuple[str, ...], labels, batch: int, device) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        return labels.to(device).long()
    if isinstance(labels, (str, int)):
        labels = [labels] * batch
    out = []
    for label in labels:
        name = E.canonical(label) if isinstance(label, str) else domains[int(label)]
        if name not in domains:
            raise ValueError(f"emotion {name!r} is not a domain of this model; its domains: {', '.join(domains)}")
        out.append(domains.index(name))
    return torch.tensor(out, device=device)


@register_model
class StarGANGenerator(ExpressionGenerator):
    """One generator for every domain: G(x, target one-hot [, part one-hot]). Strength scales its
    change in pixel space (0 = the input, 1 = G's output)."""

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.net = ResNetGenerator(c.channels, len(c.domains) + len(c.parts), c.width, c.n_down, c.n_res, c.residual,
                                   c.warp, c.max_flow, c.flow_cells)

    @property
    def domains(self) -> tuple[str, ...]:
        return self.config.domains

    def condition(self, target, batch: int, device, parts=None) -> torch.Tensor:
        onehot = F.one_hot(_domain_index(self.domains, target, batch, device), len(self.domains)).float()
        if self.config.parts:
            if parts is None:
                raise ValueError("a parts model needs parts= (one part name, or one per sample)")
            onehot = torch.cat([onehot, _part_index(self.config.parts, parts, batch, device)], dim=1)
        return onehot

    def forward(self, x: torch.Tensor, target, parts=None) -> torch.Tensor:
        """x: (B, C, S, S) in [-1, 1]; target: emotion name(s) or domain indices."""
        return self.net(x, self.condition(target, x.shape[0], x.device, parts))

    def translations(self) -> list[tuple[str | None, str]]:
        """(source, target) pairs it can do; None = from any of its domains."""
        return [(None, d) for d in self.domains]

    def generate(self, x, targets, strength, *, parts=None, landmarks=None, code=None):
        y = self(x, targets, parts=parts)
        return x + strength.view(-1, 1, 1, 1).to(x) * (y - x), None


@register_model
class CycleGANGenerators(ExpressionGenerator):
    """The pair of CycleGAN generators, G: a -> b and F: b -> a, for domains (a, b). Strength
    scales the change in pixel space, as for StarGAN."""

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        if len(c.domains) != 2:
            raise ValueError(f"CycleGAN translates between exactly two domains, got {c.domains}")
        self.a_to_b = ResNetGenerator(c.channels, len(c.parts), c.width, c.n_down, c.n_res, c.residual,
                                   c.warp, c.max_flow, c.flow_cells)
        self.b_to_a = ResNetGenerator(c.channels, len(c.parts), c.width, c.n_down, c.n_res, c.residual,
                                   c.warp, c.max_flow, c.flow_cells)

    @property
    def domains(self) -> tuple[str, ...]:
        return self.config.domains

    def generator_to(self, target: str) -> ResNetGenerator:
        target = E.canonical(target)
        if target not in self.domains:
            raise ValueError(f"emotion {target!r} is not a domain of this model; its domains: {', '.join(self.domains)}")
        return self.a_to_b if target == self.domains[1] else self.b_to_a

    def part_condition(self, parts, batch: int, device) -> torch.Tensor | None:
        """One-hot part planes for a parts model (None for image/face models)."""
        if not self.config.parts:
            return None
        if parts is None:
            raise ValueError("a parts model needs parts= (one part name, or one per sample)")
        return _part_index(self.config.parts, parts, batch, device)

    def forward(self, x: torch.Tensor, target, parts=None) -> torch.Tensor:
        if not isinstance(target, str):
            values = target.tolist() if isinstance(target, torch.Tensor) else list(target)
            names = {self.domains[t] if isinstance(t, int) else E.canonical(t) for t in values}
            if len(names) != 1:
                raise ValueError("CycleGAN translates a batch towards one target at a time")
            target = names.pop()
        return self.generator_to(target)(x, self.part_condition(parts, x.shape[0], x.device))

    def translations(self) -> list[tuple[str | None, str]]:
        a, b = self.domains
        return [(a, b), (b, a)]

    def generate(self, x, targets, strength, *, parts=None, landmarks=None, code=None):
        """A mixed batch goes to each direction's generator in turn (one network per target)."""
        out = torch.empty_like(x)
        for target in dict.fromkeys(targets):
            rows = [i for i, t in enumerate(targets) if t == target]
            index = torch.tensor(rows, device=x.device)
            y = self(x[index], target, parts=[parts[i] for i in rows] if parts is not None else None)
            out[index] = x[index] + strength[index].view(-1, 1, 1, 1).to(x) * (y - x[index])
        return out, None


@register_model
class PatchDiscriminator(PretrainedModel):
    """WGAN critic with PatchGAN output and, when n_classes > 0, StarGAN's domain classifier.

    forward(x[, parts]) -> (critic map (B, 1, P, P), class logits (B, n_classes) or None)."""

    config_class = DiscriminatorConfig

    def __init__(self, config: DiscriminatorConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        in_ch = c.channels + len(c.parts)
        self.noise = nn.ModuleList()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        dim, size = c.width, c.image_size
        for i in range(c.n_layers):
            out = min(c.width * 2**i, c.width * 16)
            self.noise.append(InstanceNoise(c.noise_std))
            self.convs.append(nn.Conv2d(in_ch, out, 4, 2, 1))
            size //= 2
            # LayerNorm over (C, H, W): GroupNorm with one group, per-channel affine.
            self.norms.append(nn.GroupNorm(1, out) if i > 0 else nn.Identity())
            in_ch, dim = out, out
        self.head_noise = InstanceNoise(c.noise_std)
        self.critic = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.classifier = nn.Conv2d(dim, c.n_classes, size, 1, 0, bias=False) if c.n_classes else None

    def set_noise_std(self, std: float) -> None:
        for m in self.modules():
            if isinstance(m, InstanceNoise):
                m.std = float(std)

    def forward(self, x: torch.Tensor, parts=None):
        if self.config.parts:
            if parts is None:
                raise ValueError("a parts discriminator needs parts=")
            planes = _part_index(self.config.parts, parts, x.shape[0], x.device)
            x = torch.cat([x, planes[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1)
        h = x
        for noise, conv, norm in zip(self.noise, self.convs, self.norms):
            h = F.leaky_relu(norm(conv(noise(h))), 0.2)
        h = self.head_noise(h)
        logits = self.classifier(h).flatten(1) if self.classifier is not None else None
        return self.critic(h), logits

