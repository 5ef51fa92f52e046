"""`fxaug train {stargan,cyclegan,2cet,inpaint,2cet-inpaint}`: each family's parser offers the TrainConfig
options its trainer reads (config.OPTIONS), grouped by component, each with a line of help; a
config file (--config, JSON or YAML) sets defaults that flags override. Multi-GPU (or
multi-process CPU):

    torchrun --nproc_per_node 2 -m fxaug.trainers stargan --data ... --out runs/x
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing

from .config import MODELS, OPTION_GROUPS, OPTIONS, TrainConfig

FAMILIES = {
    "stargan": "StarGAN: one conditional G for every domain, WGAN-GP (the paper's settings)",
    "cyclegan": "CycleGAN: a G each way between exactly two domains, WGAN-GP (the paper's settings)",
    "2cet": "2CET-GAN: neutral <-> emotional with a continuous expression code",
    "inpaint": "the in-context generator (the shipped family): redraws expression regions; needs --guide",
    "2cet-inpaint": "2CET's expression encoder driving the in-context generator: reference-guided, continuous; needs --guide",
}


def _flag_type(field: dataclasses.Field):
    hint = typing.get_type_hints(TrainConfig)[field.name]
    if hint is bool:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    if typing.get_origin(base) is tuple:
        return str  # comma-separated, parsed by TrainConfig
    return base


class FamilyParser(argparse.ArgumentParser):
    """A family's parser; its help states the family's own defaults (registered beside its
    trainer), looked up only when help is shown, so that building the parser imports no trainer."""

    family: str = ""

    def format_help(self) -> str:
        if self.family:
            from .config import trainer_class

            defaults = trainer_class(self.family).defaults
            for action in self._actions:
                if action.dest in defaults and action.help and "(default" not in action.help:
                    action.help += f" (default: {defaults[action.dest]})"
        return super().format_help()


def add_family_arguments(p: argparse.ArgumentParser, family: str) -> None:
    """The flags of one family, in argument groups by component."""
    groups: dict[str, argparse._ArgumentGroup] = {}

    def group(name: str) -> argparse._ArgumentGroup:
        if name not in groups:
            groups[name] = p.add_argument_group(name, OPTION_GROUPS[name])
        return groups[name]

    # the groups in their order, whichever option comes first
    for name in OPTION_GROUPS:
        if name in ("run", "output") or any(o.group == name and family in o.families for o in OPTIONS.values()):
            group(name)
    group("run").add_argument("--config", help="JSON or YAML file of options; flags override it")
    group("run").add_argument("--resume", action="store_true", help="continue the run in --out from its latest snapshot, exactly")
    group("output").add_argument("--out", required=True, help="run directory: options.json, metrics.jsonl, samples/, snapshots/, generator/")
    group("output").add_argument("--no-progress", action="store_true", help="no progress bars (-q: no bars and no log)")
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for field in dataclasses.fields(TrainConfig):
        option = OPTIONS.get(field.name)
        if option is None or family not in option.families:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = defaults[field.name]
        shown = "" if default in (None, dataclasses.MISSING) or field.name == "data" else f" (default: {_shown(default)})"
        kind = _flag_type(field)
        if kind is None:
            group(option.group).add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None,
                                             help=option.help + shown)
        else:
            group(option.group).add_argument(flag, dest=field.name, type=kind, default=None, metavar=field.name.upper(),
                                             help=option.help + shown)
    p.set_defaults(model=family, run=run_train)


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    if value == "":
        return "none"
    return str(value)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """One sub-command per family: `train stargan ...`, `train inpaint ...`."""
    families = p.add_subparsers(title="families", dest="model", metavar="FAMILY", parser_class=FamilyParser,
                                description="`%(prog)s FAMILY --help` lists that family's options")
    for family in MODELS:
        sub = families.add_parser(family, help=FAMILIES[family], description=FAMILIES[family] + ".")
        sub.family = family
        add_family_arguments(sub, family)
    p.set_defaults(run=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


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
    quiet = getattr(args, "quiet", False)
    if not quiet:  # the preparation's and the run's progress reports are logged at info
        logging.getLogger("fxaug").setLevel(logging.INFO)
    out = train(cfg, args.out, resume=args.resume, progress=not (args.no_progress or quiet))
    print(f"generator written to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an expression generator (StarGAN, CycleGAN, 2CET-GAN, or the in-context inpaint family)",
        description="Train StarGAN or CycleGAN (WGAN-GP, the paper's configuration by default), 2CET-GAN, or "
        "the in-context expression generator (inpaint: needs --guide, a classifier trained by "
        "python -m fxaug.trainers.guide) on any dataset fxaug reads. Each family has its own options: "
        "`fxaug train FAMILY --help`.",
    )
    add_train_arguments(p)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxaug.trainers", description="Train an expression generator.")
    p.add_argument("-q", "--quiet", action="store_true", help="log errors only, no progress bars")
    add_train_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, format="fxaug: %(levelname)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, FileExistsError, ValueError) as err:  # one line, as `fxaug train` says it
        print(f"fxaug: error: {err}", file=sys.stderr)
        return 2
