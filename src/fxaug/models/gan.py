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



# How a generator receives its condition vector; see GeneratorConfig.label_injection.
LABEL_INJECTIONS = ("concat", "film")


def _as_tuple(values) -> tuple:
    return tuple(values) if values is not None else ()


@dataclass(frozen=True)
class GeneratorConfig:
    """image_size: side of the square input; channels: 1 (grayscale) or 3;
    width: channels of the first conv (doubled per downsampling); n_down: downsamplings;
    n_res: residual blocks at the bottleneck; domains: emotions it translates between, in
    one-hot order (StarGAN) or (source, target) (CycleGAN); method: image | face | parts;
    parts: the part names conditioned on (parts method only); residual: G predicts a change
    added to its input (bounded to [-1, 1] by `bounded`, last conv zero-initialised so an
    untrained G is the identity) instead of the whole image; warp: G moves its input's pixels by
    a smooth flow field (at most max_flow of the image side, flow_cells per side) before any
    change is added; with residual=False it only moves pixels; label_injection: how G is told
    its condition (target and part one-hots): "concat" as planes beside the input (the paper's),
    "film" as a per-channel scale and shift of every residual block's InstanceNorm."""

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
    # Default "concat": config.json files saved before the option existed load as they were.
    label_injection: str = "concat"

    def __post_init__(self):
        object.__setattr__(self, "domains", tuple(E.canonical(d) for d in self.domains))
        if self.label_injection not in LABEL_INJECTIONS:
            raise ValueError(f"label_injection must be one of {LABEL_INJECTIONS}, got {self.label_injection!r}")
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
    """x + (conv3 -> InstanceNorm -> ReLU -> conv3 -> InstanceNorm)(x). With cond_dim > 0
    (FiLM), each InstanceNorm's output is also scaled by 1 + gamma and shifted by beta, both
    linear in the condition: a label given as constant planes at the input reaches the interior
    of the image only through the zero padding, since every InstanceNorm removes a per-channel
    constant, while a FiLM scale and shift act on every pixel after the norm."""

    def __init__(self, dim: int, cond_dim: int = 0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(dim, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(dim, affine=True),
        )
        # Absent, not zero, without a condition: concat checkpoints keep their state_dict keys.
        self.film = nn.Linear(cond_dim, 4 * dim) if cond_dim else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.film is None:
            return x + self.body(x)
        conv1, norm1, relu, conv2, norm2 = self.body
        scale1, shift1, scale2, shift2 = self.film(cond.to(x.dtype))[:, :, None, None].chunk(4, dim=1)
        h = relu(norm1(conv1(x)) * (1 + scale1) + shift1)
        return x + norm2(conv2(h)) * (1 + scale2) + shift2


class ResNetGenerator(nn.Module):
    """conv7 -> n_down x (conv4 stride 2) -> n_res residual blocks -> n_down x (bilinear x2 +
    conv3) -> conv7 -> tanh. The condition (domain and/or part one-hots) is concatenated to the
    input as planes, as StarGAN does (label_injection="concat"), or modulates every residual
    block's norms (label_injection="film"; see ResidualBlock).

    residual=True ends in conv7 -> bounded(x + change): the network starts as the identity and
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
                 warp: bool = False, max_flow: float = 0.125, flow_cells: int = 12, label_injection: str = "concat"):
        super().__init__()
        if label_injection not in LABEL_INJECTIONS:
            raise ValueError(f"label_injection must be one of {LABEL_INJECTIONS}, got {label_injection!r}")
        self.label_injection = label_injection
        planes = cond_dim if label_injection == "concat" else 0
        layers: list[nn.Module] = [
            nn.Conv2d(channels + planes, width, 7, 1, 3, bias=False),
            nn.InstanceNorm2d(width, affine=True),
            nn.ReLU(inplace=True),
        ]
        dim = width
        for _ in range(n_down):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), nn.InstanceNorm2d(dim * 2, affine=True), nn.ReLU(True)]
            dim *= 2
        layers += [ResidualBlock(dim, cond_dim if label_injection == "film" else 0) for _ in range(n_res)]
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

    def _features(self, layers: nn.Sequential, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """`layers` applied to x, told the condition as label_injection says."""
        if self.cond_dim and (cond is None or cond.shape != (x.shape[0], self.cond_dim)):
            raise ValueError(f"expected conditioning of shape ({x.shape[0]}, {self.cond_dim}), got "
                             f"{None if cond is None else tuple(cond.shape)}")
        h = x
        if self.cond_dim and self.label_injection == "concat":
            planes = cond[:, :, None, None].to(x.dtype).expand(-1, -1, x.shape[2], x.shape[3])
            h = torch.cat([x, planes], dim=1)
        for layer in layers:
            h = layer(h, cond) if isinstance(layer, ResidualBlock) else layer(h)
        return h

    def decompose(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        """Warp model: (output, flow (B, 2, S, S) in grid units, painted change or None)."""
        if not self.warp:
            raise ValueError("decompose is for warp generators")
        h = self._features(self.trunk, x, cond)
        flow = self.max_flow * 2 * torch.tanh(self.flow(h))  # grid coordinates span 2 per side
        flow = F.interpolate(F.adaptive_avg_pool2d(flow, self.flow_cells), size=x.shape[-2:],
                             mode="bilinear", align_corners=False)
        # Pixel centres in grid_sample's coordinates (align_corners=False): zero flow = identity.
        ys, xs = (torch.linspace(-1 + 1 / n, 1 - 1 / n, n, device=x.device, dtype=x.dtype) for n in x.shape[-2:])
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None] + flow.permute(0, 2, 3, 1)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        change = self.change(h) if self.change is not None else None
        if change is not None:
            out = bounded(out + change)
        return out, flow, change

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.warp:
            return self.decompose(x, cond)[0]
        if self.residual:
            return bounded(x + self._features(self.net, x, cond))
        return self._features(self.net, x, cond)


class _InwardClamp(torch.autograd.Function):
    """clamp(-1, 1) whose gradient passes wherever descent moves the value back towards [-1, 1]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(-1, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        # Descent moves x by -grad: outward above 1 when grad < 0, below -1 when grad > 0.
        return grad.masked_fill(((x > 1) & (grad < 0)) | ((x < -1) & (grad > 0)), 0)


def bounded(x: torch.Tensor) -> torch.Tensor:
    """A residual G's output, input + change, brought into [-1, 1].

    The values are clamp(x, -1, 1), so an untrained residual G (change = 0) is exactly the
    identity. A plain clamp's gradient is 0 wherever the sum left [-1, 1], so a pixel painted
    past the bound could never be taken back (issue #18). Here a saturated pixel still passes
    every gradient that would bring it back; only the gradients that push it further out are
    dropped, since they change nothing visible and would pile up an overshoot that must be
    undone before the pixel can move again (which a plain straight-through clamp allows).
    Not a tanh: tanh(x + change) is not the identity at change = 0, tanh(atanh(x) + change)
    is, but needs x kept off +-1 (faces have pure black and white pixels) and its gradient,
    1 - out^2, is again ~0 at the bound (2e-3 at |out| = 0.999)."""
    return _InwardClamp.apply(x)


def saturated_share(images: torch.Tensor, source: torch.Tensor | None = None, level: float = 0.999) -> float:
    """The share of pixels of `images` at the bound (|value| >= level), leaving out those that
    were already there in `source` (G's input) when given: how much of a batch a residual G
    paints to pure black or white."""
    at_bound = images.detach().abs() >= level
    if source is not None:
        at_bound &= source.detach().abs() < level
    return at_bound.float().mean().item()


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
                                   c.warp, c.max_flow, c.flow_cells, c.label_injection)

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
                                   c.warp, c.max_flow, c.flow_cells, c.label_injection)
        self.b_to_a = ResNetGenerator(c.channels, len(c.parts), c.width, c.n_down, c.n_res, c.residual,
                                   c.warp, c.max_flow, c.flow_cells, c.label_injection)

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

