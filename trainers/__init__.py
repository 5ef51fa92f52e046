"""fxaug.trainers: training loops, losses and configs for the expression-transfer GANs.

Kept out of the runtime tree (src/fxaug) so that inference never imports training code;
installed as the subpackage `fxaug.trainers`.

    from fxaug.trainers import TrainConfig, train
    train(TrainConfig(model="stargan", data="fer/", domains=("neutral", "happy")), "runs/x")
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import TrainConfig, register_trainer, trainer_class

__all__ = ["TrainConfig", "make_trainer", "register_trainer", "train", "trainer_class"]


def make_trainer(cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, data=None, progress: bool = True):
    """The trainer registered under cfg.model (fxaug.trainers.config.register_trainer);
    progress: a bar while the training set is prepared."""
    return trainer_class(cfg.model)(cfg, run_dir, data=data, resume=resume, progress=progress)


def train(cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True) -> Path:
    """Train to cfg.steps (from the latest snapshot with resume=True); returns the exported
    EMA generator's checkpoint directory."""
    trainer = make_trainer(cfg, run_dir, resume=resume, progress=progress)
    trainer.train(progress=progress)
    return Path(run_dir) / "generator"
