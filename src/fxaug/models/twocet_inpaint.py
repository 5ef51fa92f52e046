"""2CET on the in-context engine ("2cet-inpaint"): 2CET-GAN's expression encoder E (grey aligned
face -> 32-d code, 0 = neutral) drives the in-context generator (fxaug.models.inpaint) in place
of its emotion label, so an expression can be copied from a reference face, dialled by a
continuous strength, or asked for by name (the mean code of a class's real faces).

Why a family of its own: the unpaired 2CET-GAN (fxaug.models.twocet) redraws whole faces and its
CPU runs left codes that smudge. The in-context engine gives it a supervised signal: a face's
masked regions are redrawn from the code of an augmented view of that same face
(fxaug.trainers.twocet_inpaint), so E must carry what the regions show, the expression, and
not identity or lighting, which the augmentations change between E's view and G's.

    model = TwoCETInpainter(image_size=48)
    code = model.encode(reference_faces)                        # (B, 32)
    y, alpha = model.generate(x, ["reference"] * B, strength, landmarks=points, code=code)
    y, alpha = model.generate(x, ["contempt"] * B, strength, landmarks=points)   # a named code

The network is ExpressionInpainter's U-Net, unchanged: only the conditioning differs, an MLP of
`strength * code` where the label embedding went (`embed` becomes a linear map of the code).
Strength 0 is code 0, the neutral redraw, exactly. Outside the mask every pixel is the input's.
A code redraws mouth and eyes (`code_regions`); a named expression redraws its class's regions
(`target_regions`, as the in-context generator does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import emotions as E
from ..faces import regions
from .base import register_model
from .inpaint import ExpressionInpainter, InpainterConfig
from .twocet import ExpressionEncoder, TwoCETConfig, TwoCETGAN


@dataclass(frozen=True)
class TwoCETInpainterConfig(InpainterConfig):
    """InpainterConfig (the U-Net; `domains`: the classes it was trained on) plus: code_dim, the
    expression code's size; encoder_width / encoder_max_width: E's first and widest channels
    (2CET's encoder, fxaug.models.twocet.ExpressionEncoder); code_regions: the regions a code
    (a reference's, or an explicit one) redraws; expressions: the named codes held in the
    `expression_codes` buffer (each class's mean code, set after training)."""

    code_dim: int = 32
    encoder_width: int = 16
    encoder_max_width: int = 128
    code_regions: tuple[str, ...] = ("mouth", "eyes")
    expressions: tuple[str, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "expressions", tuple(E.canonical(e) for e in self.expressions))
        object.__setattr__(self, "code_regions", tuple(self.code_regions))
        unknown = set(self.code_regions) - set(regions.EXPRESSION_REGIONS)
        if unknown or not self.code_regions:
            raise ValueError(f"code_regions: unknown regions {sorted(unknown)}; known: {', '.join(regions.EXPRESSION_REGIONS)}")

    def encoder_config(self) -> TwoCETConfig:
        return TwoCETConfig(image_size=self.image_size, channels=self.channels, code_dim=self.code_dim,
                            width=self.encoder_width, max_width=self.encoder_max_width)


@register_model
class TwoCETInpainter(ExpressionInpainter):
    """ExpressionInpainter conditioned on an expression code from 2CET's encoder (see the module)."""

    config_class = TwoCETInpainterConfig

    def __init__(self, config: TwoCETInpainterConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        # the label table gives way to a linear map of the code; embed_mlp and the U-Net stay
        self.embed = nn.Linear(c.code_dim, c.embed_dim)
        self.encoder = ExpressionEncoder(c.encoder_config())
        self.register_buffer("expression_codes", torch.zeros(len(c.expressions), c.code_dim))

    # -- the inference contract --------------------------------------------------------------
    @property
    def domains(self) -> tuple[str, ...]:
        """Neutral (code 0) and each named expression."""
        return ("neutral", *[e for e in self.config.expressions if e != "neutral"])

    def translations(self) -> list[tuple[str | None, str]]:
        """Any face to neutral or a named expression: the regions are redrawn from the code alone."""
        return [(None, d) for d in self.domains if d not in self.config.withheld]

    def generate(self, x, targets, strength, *, parts=None, landmarks=None, code=None):
        """`code` (a reference's, (1 or B, code_dim)) replaces the named targets and redraws
        `code_regions`; otherwise each target's named code redraws its class's regions. Strength
        scales the code (0: the neutral redraw). Returns (outputs, masks as alpha)."""
        if landmarks is None:
            raise ValueError("a 2cet-inpaint model needs each face's landmarks (the regions method gives them)")
        n = x.shape[0]
        if code is not None:
            regions_of = [None] * n
            codes = self.code_for(code, n, x.device)
        else:
            names = [E.canonical(t) for t in self._names(targets, n)]
            withheld = sorted(set(names) & set(self.config.withheld))
            if withheld:
                raise ValueError(f"this model withholds {', '.join(withheld)}: review found its outputs to be artifacts, "
                                 "not expressions (docs/models.md)")
            codes = self.code_for(names, n, x.device)
            regions_of = names
        masks = self.masks_for(landmarks, regions_of).to(x.device)
        return self(x, codes, masks=masks, strength=strength), masks

    def regions_for(self, target) -> tuple[str, ...]:
        """A named class's regions (`target_regions`); a code's (None, "reference", a tensor)
        are `code_regions`."""
        if isinstance(target, str) and target != "reference":
            name = E.canonical(target)
            table = dict(self.config.target_regions)
            if name in table:
                return table[name]
        return self.config.code_regions

    # -- codes ---------------------------------------------------------------------------------
    def encode(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) aligned faces in [-1, 1] -> (B, code_dim) expression codes."""
        return self.encoder(faces)

    # 2CET's named expressions, the same functions: a name's code is its class's mean code
    # (neutral: 0), a tensor is a code, and set_expression names the mean code of references
    set_expression = TwoCETGAN.set_expression
    code_for = TwoCETGAN.code_for

    def embedding(self, targets, sources=None, strength=1.0, *, batch: int, device) -> torch.Tensor:
        """The conditioning: an MLP of strength * code (a code tensor, or names: their codes)."""
        if sources is not None:
            raise ValueError("a 2cet-inpaint model takes codes, not source labels")
        code = self.code_for(targets, batch, device).to(self.embed.weight.dtype)
        s = torch.as_tensor(strength, dtype=code.dtype, device=device).reshape(-1, 1).expand(batch, 1)
        return self.embed_mlp(self.embed(code * s))

    def forward(self, x: torch.Tensor, code, *, masks: torch.Tensor, strength=1.0) -> torch.Tensor:
        """x: (B, C, S, S) aligned faces in [-1, 1]; code: (B or 1, code_dim), (code_dim,) or
        expression names; masks: (B, 1, S, S). Pixels where the mask is 0 are x's, exactly."""
        return super().forward(x, code, masks=masks, strength=strength)
