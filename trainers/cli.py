"""`fxaug train {stargan,cyclegan,2cet,inpaint}`: every TrainConfig field is a --flag; a config file
(--config, JSON or YAML) sets defaults that flags override. Multi-GPU (or multi-process CPU):

    torchrun --nproc_per_node 2 -m fxaug.trainers stargan --data ... --out runs/x
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing

from .config import MODELS, TrainConfig



def _flag_type(field: dataclasses.Field):
    hint = typing.get_type_hints(TrainConfig)[field.name]
    if hint is bool:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    if typing.get_origin(base) is tuple:
        return str  # comma-separated, parsed by TrainConfig
    return base


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=MODELS, help="which generator family to train")
    p.add_argument("--out", required=True, help="run directory (options.json, metrics.jsonl, samples/, snapshots/, generator/)")
    p.add_argument("--config", help="JSON or YAML file of options; flags override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest snapshot, exactly")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for field in dataclasses.fields(TrainConfig):
        if field.name == "model":
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = _flag_type(field)
        if kind is None:
            p.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            p.add_argument(flag, dest=field.name, type=kind, default=None, metavar=field.name.upper())


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name != "model" and getattr(args, f.name, None) is not None
    }
    overrides["model"] = args.model
    if args.config:
        return TrainConfig.from_file(args.config, **overrides)
    return TrainConfig.from_dict(overrides)


def run_train(args: argparse.Namespace) -> int:
    from . import train

    cfg = config_from_args(args)
    if not cfg.data:
        raise ValueError("--data is required (a dataset path, any format fxaug.data reads)")
    logging.getLogger("fxaug").setLevel(logging.INFO)
    out = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"generator written to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an expression generator (StarGAN, CycleGAN, 2CET-GAN, or the in-context inpaint family)",
        description="Train StarGAN or CycleGAN (WGAN-GP, the paper's configuration by default), 2CET-GAN, or "
        "the in-context expression generator (inpaint: needs --guide, a classifier trained by "
        "python -m fxaug.trainers.guide) on any dataset fxaug reads. Each family's defaults sit beside its "
        "trainer; see `fxaug train MODEL --help`.",
    )
    add_train_arguments(p)
    p.set_defaults(run=run_train)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxaug.trainers")
    add_train_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="fxaug: %(levelname)s: %(message)s")
    return run_train(args)
