"""The emotion judge: a small ResNet classifier over the eight emotions, trained on FERPlus
(majority labels) as the paper's judge was, shipped inside the package.

It judges whether a synthesized face shows its target emotion (emotion accuracy), filters
`fxaug rebalance` outputs by confidence, and its penultimate layer is a quick feature space
for FID-like checks (not comparable to published FID).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import emotions as E
from ..models.base import PretrainedModel, register_model

JUDGE_DIR = Path(__file__).resolve().parent.parent / "assets" / "judge"
DEFAULT_JUDGE = "ferplus-resnet"


@dataclass(frozen=True)
class JudgeConfig:
    image_size: int = 48
    channels: int = 1
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    stem_stride: int = 2
    classes: tuple[str, ...] = E.EMOTIONS

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "classes", tuple(E.canonical(c) for c in self.classes))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


@register_model
class EmotionJudge(PretrainedModel):
    """ResNet over grayscale faces; `forward` takes (B, C, S, S) in [-1, 1] and returns logits."""

    config_class = JudgeConfig

    def __init__(self, config: JudgeConfig | dict | None = None, **overrides):
        super().__init__(config, **overrides)
        c = self.config
        self.stem = nn.Sequential(
            nn.Conv2d(c.channels, c.widths[0], 3, c.stem_stride, 1, bias=False), nn.BatchNorm2d(c.widths[0]), nn.ReLU()
        )
        stages, cin = [], c.widths[0]
        for i, (width, n) in enumerate(zip(c.widths, c.blocks)):
            for j in range(n):
                stages.append(BasicBlock(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, len(c.classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding (B, widths[-1])."""
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    # -- convenience on arbitrary images -----------------------------------------------------
    def prepare(self, images) -> torch.Tensor:
        """Faces of any size, gray or RGB, -> (B, C, S, S) in [-1, 1] on the model's device.

        images: a float tensor (B, C, H, W) already in [-1, 1]; a uint8 array (B, H, W) of gray
        faces or (B, H, W, C); or a list of uint8 HxW / HxWxC arrays (sizes may differ)."""
        size, channels = self.config.image_size, self.config.channels
        if isinstance(images, torch.Tensor) and images.is_floating_point():
            batch = [images.to(self.device)]
        else:
            if isinstance(images, np.ndarray):
                images = images[..., None] if images.ndim == 3 else images
            batch = []
            for a in images:
                a = np.asarray(a)
                # a copy: inputs may be read-only (memory-mapped or datasets arrays)
                t = torch.from_numpy(np.array(a[:, :, None] if a.ndim == 2 else a, copy=True))
                batch.append(t.permute(2, 0, 1)[None].to(self.device, torch.float32).div(127.5).sub(1.0))
        out = []
        for x in batch:
            if x.shape[1] == 3 and channels == 1:
                x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
            elif x.shape[1] == 1 and channels == 3:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-2:] != (size, size):
                if x.shape[-1] > size:
                    x = F.interpolate(x, size=(size, size), mode="area")
                else:
                    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            out.append(x)
        return torch.cat(out)

    @torch.no_grad()
    def predict_proba(self, images, flip: bool = True, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities (B, n_classes), averaged with the mirrored face when flip=True."""
        self.eval()
        x = self.prepare(images)
        out = []
        for chunk in x.split(batch_size):
            probs = self(chunk).softmax(1)
            if flip:
                probs = (probs + self(chunk.flip(-1)).softmax(1)) / 2
            out.append(probs)
        return torch.cat(out).cpu()

    def predict(self, images, flip: bool = True) -> list[str]:
        return [self.config.classes[i] for i in self.predict_proba(images, flip=flip).argmax(1).tolist()]


def load_judge(name_or_path: str = DEFAULT_JUDGE, device="cpu") -> EmotionJudge:
    """The shipped FERPlus judge (or any EmotionJudge checkpoint directory)."""
    path = Path(name_or_path)
    if not (path / "config.json").is_file():
        path = JUDGE_DIR / str(name_or_path)
    if not (path / "config.json").is_file():
        shipped = sorted(p.name for p in JUDGE_DIR.iterdir()) if JUDGE_DIR.is_dir() else []
        raise FileNotFoundError(f"no judge {name_or_path!r}; shipped judges: {', '.join(shipped) or 'none'}")
    return EmotionJudge.from_pretrained(path, device=device)
