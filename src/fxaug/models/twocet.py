"""2CET-GAN (Hu, Aldausari, Mohammadi): unsupervised, continuous expression transfer.

An encoder E maps a face (grayscale) to a 32-d expression code; a generator G(x, c) gives x
the expression of code c, with c = 0 meaning neutral. Codes are injected by adaptive instance
normalisation (AdaIN) in G's residual blocks. One discriminator has two heads, neutral and
emotional. The runtime model (`TwoCETGAN`) holds G and E together, plus named expressions:
the mean code of a class's reference faces, so "disgust" can be asked for by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import emotions as E
from .base import ExpressionGenerator, PretrainedModel, register_model


@dataclass(frozen=True)
class TwoCETConfig:
    image_size: int = 64
    channels: int = 1
    code_dim: int = 32
    width: int = 32  # first-layer channels of G and E
    n_down: int = 2
    n_res: int = 4  # AdaIN residual blocks at the bottleneck
    max_width: int = 256
    expressions: tuple[str, ...] = ()  # named codes held in the `expression_codes` buffer
    method: str = "face"  # what it was trained on: "image" (whole images) or "face" (aligned crops)
    # G outputs x + change (zero-initialised, so it starts as the identity) instead of redrawing
    # the face: on a short schedule a direct G blurs faces and loses who they are.
    residual: bool = False

    def __post_init__(self):
        object.__setattr__(self, "expressions", tuple(E.canonical(e) for e in self.expressions))
        if self.method not in ("image", "face"):
            raise ValueError(f"a 2CET model transfers whole faces: method image or face, not {self.method!r}")


@dataclass(frozen=True)
class TwoCETDiscriminatorConfig:
    image_size: int = 64
    channels: int = 1
    width: int = 32
    max_width: int = 256
    # "landmarks": add heads on the frozen features of the bundled face-api 68-point landmark net
    # (a projected discriminator, Sauer et al. 2021). A pixel-space D must first learn what an
    # expression is from scratch, which a CPU schedule does not reach (at 500 steps it was still at
    # chance, and G stayed the identity); a linear probe on these features already tells neutral
    # from emotional FER faces 77% of the time, at the net's 112 px (on 600 faces: 0.71 at 112 px,
    # 0.63 on 48 px faces fed as they are; benchmarks/landmark_probe_size.py). Its logits add to the
    # pixel trunk's.
    features: str = ""
    # Side the faces are resized to for the landmark net. 0: the net's native input (112 px), which
    # checkpoints saved with 0 before issue #18 also get now (they fed it image_size faces).
    features_size: int = 0

    def __post_init__(self):
        if self.features not in ("", "landmarks"):
            raise ValueError(f"discriminator features must be '' or 'landmarks', not {self.features!r}")


class ResBlock(nn.Module):
    """Pre-activation residual block (InstanceNorm), optionally halving resolution."""

    def __init__(self, cin: int, cout: int, down: bool = False, norm: bool = True):
        super().__init__()
        self.down = down
        self.norm1 = nn.InstanceNorm2d(cin, affine=True) if norm else nn.Identity()
        self.norm2 = nn.InstanceNorm2d(cin, affine=True) if norm else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(self.norm1(x), 0.2))
        if self.down:
            h = F.avg_pool2d(h, 2)
        h = self.conv2(F.leaky_relu(self.norm2(h), 0.2))
        s = self.skip(x)
        if self.down:
            s = F.avg_pool2d(s, 2)
        return (s + h) / 2**0.5


class AdaIN(nn.Module):
    def __init__(self, dim: int, code_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(dim, affine=False)
        self.fc = nn.Linear(code_dim, dim * 2)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(code)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdaINBlock(nn.Module):
    """Residual block whose normalisations take their scale and shift from the code;
    optionally doubling resolution (bilinear)."""

    def __init__(self, cin: int, cout: int, code_dim: int, up: bool = False):
        super().__init__()
        self.up = up
        self.norm1, self.norm2 = AdaIN(cin, code_dim), AdaIN(cout, code_dim)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norm1(x, code), 0.2)
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        h = self.conv2(F.leaky_relu(self.norm2(self.conv1(h), code), 0.2))
        return (self.skip(x) + h) / 2**0.5


class CodeGenerator(nn.Module):
    def __init__(self, c: TwoCETConfig):
        super().__init__()
        dim = c.width
        self.stem = nn.Conv2d(c.channels, dim, 3, 1, 1)
        self.down = nn.ModuleList()
        for _ in range(c.n_down):
            out = min(dim * 2, c.max_width)
            self.down.append(ResBlock(dim, out, down=True))
            dim = out
        self.middle = nn.ModuleList([AdaINBlock(dim, dim, c.code_dim) for _ in range(c.n_res)])
        self.up = nn.ModuleList()
        for i in range(c.n_down):
            out = c.width if i == c.n_down - 1 else max(dim // 2, c.width)
            self.up.append(AdaINBlock(dim, out, c.code_dim, up=True))
            dim = out
        self.to_image = nn.Sequential(nn.InstanceNorm2d(dim, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(dim, c.channels, 1))
        self.residual = c.residual
        if c.residual:
            nn.init.zeros_(self.to_image[-1].weight)
            nn.init.zeros_(self.to_image[-1].bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        source = x
        h = self.stem(x)
        for block in self.down:
            h = block(h)
        for block in self.middle:
            h = block(h, code)
        for block in self.up:
            h = block(h, code)
        if self.residual:
            return (source + self.to_image(h)).clamp(-1, 1)
        return torch.tanh(self.to_image(h))


class ExpressionEncoder(nn.Module):
    """Grayscale face -> expression code (colour inputs are reduced to luminance first)."""

    def __init__(self, c: TwoCETConfig):
        super().__init__()
        dim = c.width
        layers: list[nn.Module] = [nn.Conv2d(1, dim, 3, 1, 1)]
        side = c.image_size
        while side > 4:
            out = min(dim * 2, c.max_width)
            layers.append(ResBlock(dim, out, down=True, norm=False))
            dim, side = out, side // 2
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(dim, dim, side), nn.LeakyReLU(0.2)]
        self.trunk = nn.Sequential(*layers)
        self.fc = nn.Linear(dim, c.code_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 3:
            x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        return self.fc(self.trunk(x).flatten(1))


@register_model
class TwoCETGAN(ExpressionGenerator):
    """Generator + expression encoder (+ named expression codes): the runtime 2CET model.

    model(x, target, strength=1.0): target is an emotion name (a named expression), a code
    tensor (B, code_dim) or (code_dim,), or reference faces via `reference=`.
    """

    config_class = TwoCETConfig

    def __init__(self, config: TwoCETConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.generator = CodeGenerator(c)
        self.encoder = ExpressionEncoder(c)
        self.register_buffer("expression_codes", torch.zeros(len(c.expressions), c.code_dim))

    @property
    def domains(self) -> tuple[str, ...]:
        return ("neutral", *[e for e in self.config.expressions if e != "neutral"])

    @property
    def methods(self) -> tuple[str, ...]:
        """Whole faces: the method it was trained on first, the other whole-face one too."""
        return (self.config.method, *[m for m in ("image", "face") if m != self.config.method])

    def translations(self) -> list[tuple[str | None, str]]:
        """Code 0 neutralises any face; each named expression applies to (neutral) faces."""
        return [(None, "neutral")] + [("neutral", d) for d in self.domains if d != "neutral"]

    def generate(self, x, targets, strength, *, parts=None, landmarks=None, code=None):
        """Strength scales the expression code (0 = neutral); `code` (a reference's) replaces the
        named targets."""
        return self(x, code if code is not None else list(targets), strength=strength), None

    def encode(self, faces: torch.Tensor) -> torch.Tensor:
        return self.encoder(faces)

    def set_expression(self, name: str, references: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Name the mean code of `references` (B, C, S, S in [-1, 1]) as expression `name`."""
        import dataclasses

        name = E.canonical(name)
        with torch.no_grad():
            code = torch.cat([self.encoder(chunk) for chunk in references.split(batch_size)]).mean(0)
        names = list(self.config.expressions)
        codes = self.expression_codes
        if name in names:
            codes = codes.clone()
            codes[names.index(name)] = code
        else:
            names.append(name)
            codes = torch.cat([codes, code[None].to(codes)])
        self.config = dataclasses.replace(self.config, expressions=tuple(names))
        self.expression_codes = codes
        return code

    def code_for(self, target, batch: int, device) -> torch.Tensor:
        if isinstance(target, torch.Tensor):
            code = target.to(device, torch.float32)
            return code.expand(batch, -1) if code.ndim == 1 else code
        names = [target] * batch if isinstance(target, str) else list(target)
        rows = []
        for name in names:
            name = E.canonical(name)
            if name == "neutral":
                rows.append(torch.zeros(self.config.code_dim, device=device))
            elif name in self.config.expressions:
                rows.append(self.expression_codes[self.config.expressions.index(name)].to(device))
            else:
                known = ", ".join(self.domains)
                raise ValueError(f"this 2CET model has no expression {name!r}; named: {known} "
                                 f"(name one with set_expression(name, reference_faces), or pass reference=)")
        return torch.stack(rows)

    def forward(self, x: torch.Tensor, target=None, parts=None, *, reference: torch.Tensor | None = None,
                strength: float | torch.Tensor = 1.0) -> torch.Tensor:
        if parts is not None:
            raise ValueError("2CET models translate whole faces; they take no parts=")
        if reference is not None:
            code = self.encoder(reference.to(x.device))
            code = code.expand(x.shape[0], -1) if code.shape[0] == 1 else code
        elif target is None:
            raise ValueError("give a target (emotion name or code tensor) or reference= faces")
        else:
            code = self.code_for(target, x.shape[0], x.device)
        if isinstance(strength, torch.Tensor):
            strength = strength.to(x.device).view(-1, 1)
        return self.generator(x, code * strength)


@register_model
class TwoCETDiscriminator(PretrainedModel):
    """Shared trunk, two logit heads: index 0 = neutral, 1 = emotional."""

    config_class = TwoCETDiscriminatorConfig

    def __init__(self, config: TwoCETDiscriminatorConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        dim = c.width
        layers: list[nn.Module] = [nn.Conv2d(c.channels, dim, 3, 1, 1)]
        side = c.image_size
        while side > 4:
            out = min(dim * 2, c.max_width)
            layers.append(ResBlock(dim, out, down=True, norm=False))
            dim, side = out, side // 2
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(dim, dim, side), nn.LeakyReLU(0.2), nn.Conv2d(dim, 2, 1)]
        self.net = nn.Sequential(*layers)
        if c.features == "landmarks":
            from ..faces.landmarks import INPUT_SIZE, load_landmark_net

            self.landmark_net = load_landmark_net().requires_grad_(False)
            self.features_size = c.features_size or INPUT_SIZE
            self.feature_heads = nn.ModuleList(
                nn.Sequential(nn.Conv2d(ch, c.width * 2, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c.width * 2, 2, 1))
                for ch in (128, 256)  # the outputs of dense blocks 2 and 3
            )

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.features:
            self.landmark_net.eval()  # frozen
        return self

    def landmark_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The frozen landmark net's dense blocks 2 and 3 on faces x (B, C, S, S in [-1, 1]),
        resized to `features_size`: bilinear, antialiased only when shrinking (upsampling has
        nothing to filter)."""
        rgb = (x.mean(1, keepdim=True) if x.shape[1] == 3 else x).expand(-1, 3, -1, -1)
        rgb = (rgb + 1) * 127.5
        size = self.features_size
        if rgb.shape[-1] != size:
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=size < rgb.shape[-1])
        return self.landmark_net.features(rgb)[2:]

    def feature_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits of the heads on the landmark net's features, averaged: (B, 2)."""
        return sum(head(h).mean((2, 3)) for head, h in zip(self.feature_heads, self.landmark_features(x)))

    def forward(self, x: torch.Tensor, head: torch.Tensor | int) -> torch.Tensor:
        logits = self.net(x).flatten(1)  # (B, 2)
        if self.config.features:
            logits = logits + self.feature_logits(x)
        if isinstance(head, int):
            return logits[:, head]
        return logits.gather(1, head.view(-1, 1).long()).squeeze(1)
