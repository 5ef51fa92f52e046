"""Training options: one dataclass, filled from defaults (the paper's), a JSON/YAML config
file, then command-line overrides; written to the run directory as options.json, grouped by
component as stylegan3 groups its kwargs (data, generator, discriminator, loss, schedule, run,
output), each group holding only the options the family's trainer reads.

A config file may be flat (`steps: 7000`) or grouped (`schedule: {steps: 7000}`), and a run's
own options.json is a config file: `fxaug train inpaint --config runs/x/options.json` repeats it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fxaug import emotions as E

# Each model's trainer lives in its own module, registered under the model's name with its
# defaults beside it (`register_trainer`); these are the modules to import to find them.
TRAINER_MODULES = {"stargan": "gans", "cyclegan": "gans", "2cet": "twocet", "inpaint": "inpaint",
                   "2cet-inpaint": "twocet_inpaint"}
MODELS = tuple(TRAINER_MODULES)
TRAINERS: dict[str, type] = {}


def register_trainer(name: str, **defaults):
    """Register a trainer class as `name`'s, with the option values that default for it (options
    left None in TrainConfig take them)."""

    def wrap(cls):
        cls.name, cls.defaults = name, dict(defaults)
        TRAINERS[name] = cls
        return cls

    return wrap


def trainer_class(name: str) -> type:
    """The trainer registered for model `name` (importing its module on first use)."""
    if name not in TRAINER_MODULES:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    if name not in TRAINERS:
        import importlib

        importlib.import_module(f"{__package__}.{TRAINER_MODULES[name]}")
    return TRAINERS[name]


# Each option's place in `fxaug train FAMILY --help`: its group, the families whose trainers
# read it (a family's parser offers only those), and one line of help.
@dataclass(frozen=True)
class Option:
    group: str  # one of OPTION_GROUPS
    families: tuple[str, ...]
    help: str


OPTION_GROUPS = {
    "data": "what to train on, and how it is prepared (cached, resumable)",
    "generator": "G, the network that is exported",
    "discriminator": "D, the critic",
    "loss": "loss terms and their weights",
    "schedule": "optimiser, steps and their schedules",
    "run": "where a run starts from",
    "output": "what a run writes to --out, and how often",
}
ALL = MODELS
GANS = ("stargan", "cyclegan")
REGIONS = ("inpaint", "2cet-inpaint")  # the in-context families: aligned faces, masked regions
OPTIONS: dict[str, Option] = {
    # data
    "data": Option("data", ALL, "the dataset (required): any layout fxaug reads (see fxaug inspect), or a prepared .npz"),
    "format": Option("data", ALL, "the dataset's layout; auto recognises it"),
    "splits": Option("data", ALL, "splits to read, comma-separated (e.g. Training for FERPlus; default: all)"),
    "method": Option("data", GANS + ("2cet",), "what G translates: image (whole image), face (aligned face) or parts (part crops; not 2cet)"),
    "domains": Option("data", ALL, "emotions to train, comma-separated, or all (cyclegan: two; 2cet: with neutral)"),
    "size": Option("data", ALL, "G's input side in pixels (image/face: the face; parts: each part crop)"),
    "channels": Option("data", ALL, "1: grey, 3: colour"),
    "max_per_class": Option("data", ALL, "at most this many images of each class (a quicker preparation and run)"),
    "balance": Option("data", ALL, "draw every class equally often (--no-balance: as often as the data has it)"),
    "part_margin": Option("data", GANS, "parts method: margin around each part, relative to its size"),
    "cache_dir": Option("data", ALL, "where prepared training sets are cached (default: training-sets/ in $FXAUG_CACHE, else in ~/.cache/fxaug)"),
    # generator
    "width": Option("generator", ALL, "G's first-layer channels"),
    "n_res": Option("generator", GANS + ("2cet",), "residual blocks in G"),
    "residual": Option("generator", GANS + ("2cet",), "G outputs its input plus a learnt change (starts as the identity)"),
    "warp": Option("generator", GANS, "G moves its input's pixels along a smooth flow field instead of redrawing them"),
    "max_flow": Option("generator", GANS, "--warp: the largest displacement, as a share of the image side"),
    "flow_cells": Option("generator", GANS, "--warp: the flow field's resolution per side (fewer: smoother)"),
    "label_injection": Option("generator", GANS, "how G is told its target (and part): concat (the paper's: one-hot planes beside the input, which InstanceNorm mostly washes out) or film (a scale and shift of every residual block's norms)"),
    "code_dim": Option("generator", ("2cet", "2cet-inpaint"), "size of the continuous expression code"),
    "embed_dim": Option("generator", REGIONS, "size of the conditioning embedding (inpaint: of the emotion label; 2cet-inpaint: of the code)"),
    "encoder_width": Option("generator", ("2cet-inpaint",), "the expression encoder E's first-layer channels"),
    "target_regions": Option("generator", REGIONS, "the regions some targets redraw instead of the model's defaults, e.g. happy=mouth+eyes;sad=mouth"),
    # discriminator
    "d_width": Option("discriminator", ALL, "D's first-layer channels"),
    "d_layers": Option("discriminator", GANS, "D's downsampling layers (default: to a 4x4 patch map at 64 px, 6x6 at 48 px)"),
    "d_features": Option("discriminator", ("2cet",), "'landmarks': extra D heads on the frozen landmark net's features"),
    "noise_std": Option("discriminator", GANS, "instance noise added before every D convolution"),
    "noise_decay": Option("discriminator", GANS, "instance noise falls by this much per epoch, down to 0"),
    "diffaug": Option("discriminator", ALL, "DiffAugment policy for D's inputs, e.g. color,translation,cutout"),
    # loss
    "lambda_gp": Option("loss", GANS, "weight of the WGAN gradient penalty"),
    "lambda_cls": Option("loss", ("stargan",), "weight of D's domain classification (unused with --guide)"),
    "lambda_rec": Option("loss", ("stargan",), "weight of the reconstruction (translated back to the source)"),
    "lambda_cyc": Option("loss", ("cyclegan",), "weight of the cycle consistency"),
    "lambda_id": Option("loss", ("cyclegan",), "weight of the identity loss"),
    "lambda_paint": Option("loss", GANS, "--warp --residual: weight of the mean |painted change|"),
    "lambda_flow": Option("loss", GANS, "--warp: weight of the mean displacement"),
    "lambda_code": Option("loss", ("2cet", "2cet-inpaint"), "weight of the code loss E(G(x, c)) ~ c (2cet: reached over --code-ramp-steps)"),
    "lambda_ds": Option("loss", ("2cet",), "weight of the diversity loss, decayed to 0 over --ds-decay-steps"),
    "lambda_cyc_n": Option("loss", ("2cet",), "weight of the neutral -> emotional -> neutral cycle"),
    "lambda_cyc_e": Option("loss", ("2cet",), "weight of the emotional -> neutral -> emotional cycle at the start"),
    "lambda_cyc_e_final": Option("loss", ("2cet",), "...and after --cyc-e-ramp-steps"),
    "lambda_r1": Option("loss", ("2cet",), "weight of the R1 penalty on real images (default: StyleGAN2's 0.0002 * size^2 / batch)"),
    "r1_every": Option("loss", ("2cet",), "lazy R1: the penalty every k-th D step, weighted by k"),
    "guide": Option("loss", REGIONS + ("stargan",), "the guide classifier (python -m fxaug.trainers.guide writes it; required by the in-context families; stargan: G's expression signal instead of D's classifier, which is then dropped)"),
    "lambda_l1": Option("loss", REGIONS, "weight of the masked L1 reconstruction of a face's own regions"),
    "lambda_perc": Option("loss", REGIONS, "weight of the perceptual distance in the guide's features"),
    "lambda_adv": Option("loss", REGIONS, "weight of the adversarial (hinge) loss"),
    "lambda_guide": Option("loss", ("inpaint", "stargan"), "weight of the guide's cross-entropy on label-swapped (stargan: translated) faces"),
    "unspecified_p": Option("loss", ("inpaint",), "share of own-label redraws under the 'unspecified' label"),
    "mask_jitter": Option("loss", REGIONS, "masks scaled by 1 +- this and shifted by up to half of it"),
    "view_aug": Option("loss", ("2cet-inpaint",), "what differs between E's view of a face and G's: any of flip,shift,blur,color"),
    "lambda_consist": Option("loss", ("2cet-inpaint",), "weight of the KL between the guide's softmaxes of a reference and of its transfer"),
    "lambda_neutral": Option("loss", ("2cet-inpaint",), "weight of pulling neutral faces' codes to 0"),
    "lambda_div": Option("loss", ("2cet-inpaint",), "weight of the diversity-sensitive term (two references' transfers differ; off until measured)"),
    # schedule
    "steps": Option("schedule", ALL, "D steps to train (G steps: steps / n-critic)"),
    "batch": Option("schedule", ALL, "images per batch"),
    "lr": Option("schedule", ALL, "Adam learning rate"),
    "beta1": Option("schedule", ALL, "Adam beta1"),
    "beta2": Option("schedule", ALL, "Adam beta2"),
    "n_critic": Option("schedule", ALL, "D steps per G step"),
    "cls_warmup": Option("schedule", ("stargan", "2cet"), "the first N steps train D's classification alone, on real faces"),
    "lr_decay_start": Option("schedule", ALL, "share of the steps after which lr falls linearly to 0"),
    "ema": Option("schedule", ALL, "decay of the average of G's weights (the G that is exported)"),
    "ema_rampup": Option("schedule", ALL, "the average's half-life is at most this share of the images seen"),
    "code_ramp_steps": Option("schedule", ("2cet",), "steps of the code loss's ramp (for a run of --schedule-reference-steps)"),
    "ds_decay_steps": Option("schedule", ("2cet",), "steps of the diversity loss's decay (likewise)"),
    "cyc_e_ramp_steps": Option("schedule", ("2cet",), "steps of the emotional cycle's ramp (likewise)"),
    "schedule_reference_steps": Option("schedule", ("2cet",), "the run length the ramps are given for; shorter runs scale them"),
    # run
    "init_from": Option("run", ALL, "start from another run's networks (its latest snapshot, or a snapshot file), or G alone from a generator (a model folder, a shipped name, a Hub repo id) to fine-tune it"),
    "init_nets": Option("run", ALL, "--init-from: only these networks, comma-separated (e.g. D)"),
    "seed": Option("run", ALL, "random seed"),
    "device": Option("run", ALL, "auto, cpu, cuda or cuda:N"),
    # output
    "log_every": Option("output", ALL, "append the losses to metrics.jsonl every N steps"),
    "sample_every": Option("output", ALL, "write a sample grid to samples/ every N steps"),
    "snapshot_every": Option("output", ALL, "write a snapshot (for --resume) and export G every N steps"),
    "tensorboard": Option("output", ALL, "TensorBoard logs in --out/tensorboard"),
}


@dataclass
class TrainConfig:
    model: str = "stargan"  # stargan | cyclegan | 2cet | inpaint | 2cet-inpaint (TRAINER_MODULES)
    data: str = ""  # any fxaug.data source
    format: str = "auto"
    splits: str | None = None  # e.g. "Training" for FER2013/FERPlus, "train" for folders
    method: str | None = None  # image | face | parts | regions (model default: image; inpaint: regions)
    domains: tuple[str, ...] = ("neutral", "happy")
    size: int = 64  # generator input side (image/face: the face; parts: the part crop)
    channels: int = 1
    width: int | None = None  # G first-layer channels (model default)
    n_res: int = 6
    residual: bool = False  # G outputs input + change (starts as the identity); see ResNetGenerator
    # stargan/cyclegan: G moves pixels along a smooth flow (then adds a change if --residual,
    # penalised by lambda_paint); see ResNetGenerator
    warp: bool = False
    max_flow: float = 0.125  # largest displacement, as a share of the image side
    flow_cells: int = 12  # the flow field's resolution per side (smoothness)
    label_injection: str = "concat"  # stargan/cyclegan: concat | film; see fxaug.models.gan.ResidualBlock
    lambda_paint: float = 10.0  # weight of mean |painted change| in G's loss (warp + residual)
    lambda_flow: float = 0.0  # weight of the mean displacement (share of the image side) in G's loss
    d_width: int | None = None
    d_features: str = ""  # 2cet: "landmarks" adds heads on frozen landmark-net features to D
    d_layers: int | None = None  # default: downsample to a 4x4 (64 px) / 6x6 (48 px) patch map
    steps: int = 200_000  # discriminator steps; G steps = steps / n_critic
    batch: int = 64
    lr: float | None = None  # model default
    beta1: float | None = None
    beta2: float = 0.99
    n_critic: int | None = None  # D steps per G step (model default)
    # The first cls_warmup D steps train only D's classification on real faces (StarGAN: its
    # domain classifier; 2CET: its neutral and emotional heads, neutral against emotional) while G
    # waits, so G's first updates follow "looks like the emotion" rather than a D still at chance,
    # which a short run answers with painted patches (StarGAN) or by not moving at all (2CET).
    cls_warmup: int = 0
    # Start from another run's networks (its latest snapshot, or a snapshot file): fine-tuning.
    # Optimizers, step and schedules start afresh; --resume of this run ignores it.
    init_from: str | None = None
    init_nets: tuple[str, ...] = ()  # which of its networks (e.g. D); default: all
    lambda_gp: float = 10.0
    lambda_cls: float = 1.0  # StarGAN domain classification
    lambda_rec: float = 5.0  # StarGAN reconstruction
    lambda_cyc: float = 10.0  # CycleGAN cycle consistency
    lambda_id: float = 5.0  # CycleGAN identity
    noise_std: float = 0.1  # instance noise before every D conv...
    noise_decay: float = 0.01  # ...reduced by this much per epoch (linear), floored at 0
    ema: float = 0.999  # EMA of G's weights, the one sampled and exported
    ema_rampup: float | None = 0.05  # EMA half-life <= this share of the images seen (StyleGAN's)
    lr_decay_start: float = 0.5  # fraction of steps after which lr falls linearly to 0
    diffaug: str = ""  # DiffAugment policy for D's inputs: "color,translation,cutout"
    balance: bool = True  # sample domains equally (rare classes are the point)
    max_per_class: int | None = None
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    sample_every: int = 1000
    snapshot_every: int = 5000
    # 2CET-GAN: code size, loss weights and their schedules. Ramps are given for a run of
    # schedule_reference_steps and scale down proportionally for shorter runs.
    code_dim: int = 32
    lambda_code: float = 1.0  # ramps 0 -> lambda_code over code_ramp_steps
    lambda_ds: float = 1.0  # decays lambda_ds -> 0 over ds_decay_steps
    lambda_cyc_n: float = 1.0
    lambda_cyc_e: float = 1.0  # ramps lambda_cyc_e -> lambda_cyc_e_final over cyc_e_ramp_steps
    lambda_cyc_e_final: float = 1.5
    lambda_r1: float | None = None  # 2cet default: StyleGAN2's heuristic for size and batch (trainers.twocet.r1_gamma)
    r1_every: int = 1  # lazy R1 (StyleGAN2): the penalty every k-th D step, weighted by k
    code_ramp_steps: int = 5000
    ds_decay_steps: int = 10000
    cyc_e_ramp_steps: int = 10000
    schedule_reference_steps: int = 100_000
    # inpaint (in-context synthesis, fxaug.models.inpaint): masked L1 and perceptual (guide
    # features) reconstruction of a face's own regions, hinge adversarial and guide
    # cross-entropy on the label-swapped branch
    guide: str | None = None  # a GuideClassifier checkpoint (python -m fxaug.trainers.guide); stargan: optional
    lambda_l1: float = 10.0
    lambda_perc: float = 1.0
    lambda_adv: float = 1.0
    lambda_guide: float = 1.0
    unspecified_p: float = 0.15  # share of own-label redraws under the "unspecified" label
    mask_jitter: float = 0.15  # masks scaled by 1 +- this and shifted by up to half of it (IOD)
    embed_dim: int = 64
    target_regions: str = ""  # "happy=mouth+eyes;...": overrides fxaug.models.inpaint.DEFAULT_TARGET_REGIONS
    # 2cet-inpaint (fxaug.trainers.twocet_inpaint): 2CET's encoder drives the in-context generator
    encoder_width: int = 16
    view_aug: str = "flip,shift,blur,color"
    lambda_consist: float = 1.0
    lambda_neutral: float = 1.0
    lambda_div: float = 0.0
    part_margin: float = 0.25  # parts method: margin around each part, relative to its size
    cache_dir: str | None = None  # where preprocessed training tensors are cached
    tensorboard: bool = True

    def __post_init__(self):
        for key, value in trainer_class(self.model).defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if isinstance(self.domains, str):
            self.domains = tuple(E.parse_list(self.domains))
        self.domains = tuple(E.canonical(d) for d in self.domains)
        if self.model == "cyclegan" and len(self.domains) != 2:
            raise ValueError(f"cyclegan trains exactly two domains, got {', '.join(self.domains)}")
        if self.model == "2cet" and "neutral" not in self.domains:
            raise ValueError("2cet learns neutral <-> emotional: domains must include neutral")
        if self.model == "2cet" and self.method == "parts":
            raise ValueError("2cet transfers whole faces: method image or face")
        if self.method not in ("image", "face", "parts", "regions"):
            raise ValueError(f"method must be image, face, parts or regions, got {self.method!r}")
        if (self.model in REGIONS) != (self.method == "regions"):
            raise ValueError(f"the {self.model if self.model in REGIONS else 'inpaint'} model redraws expression regions: "
                             "it trains (only) by --method regions")
        if self.model == "2cet-inpaint" and "neutral" not in self.domains:
            raise ValueError("2cet-inpaint pulls neutral faces' codes to 0: domains must include neutral")
        if self.r1_every < 1:
            raise ValueError("r1_every >= 1 is required")
        if self.warp and self.model == "2cet":
            raise ValueError("warp is a stargan/cyclegan generator option")
        if isinstance(self.init_nets, str):
            self.init_nets = tuple(n for n in self.init_nets.split(",") if n)
        self.init_nets = tuple(self.init_nets)
        if self.d_features and self.model != "2cet":
            raise ValueError("d_features is a 2cet discriminator option")
        if self.cls_warmup and self.model == "cyclegan":
            raise ValueError("cls_warmup trains a classifying D (stargan, 2cet); CycleGAN's has no classes")
        if self.guide and self.model == "stargan":
            if self.cls_warmup:
                raise ValueError("cls_warmup trains D's classifier, which a stargan --guide replaces")
            if self.method == "parts":
                raise ValueError("a guide classifies whole faces: stargan --guide trains by --method image or face, not parts")
        if self.batch < 2 or self.n_critic < 1 or self.steps < 1:
            raise ValueError("batch >= 2, n_critic >= 1 and steps >= 1 are required")
        if self.lambda_r1 is None:
            # 2cet's follows the run's size and batch. The families that do not read it keep the 1.0
            # their snapshots saved, since a resume compares every option.
            if self.model == "2cet":
                from .twocet import r1_gamma

                self.lambda_r1 = r1_gamma(self.size, self.batch)
            else:
                self.lambda_r1 = 1.0

    def ramp(self, steps: int) -> float:
        """A schedule length, scaled for runs shorter than schedule_reference_steps (counting
        only the steps after the --cls-warmup, when G trains)."""
        return max(1.0, steps * min(1.0, (self.steps - self.cls_warmup) / self.schedule_reference_steps))

    @property
    def n_layers(self) -> int:
        if self.d_layers is not None:
            return self.d_layers
        layers, side = 0, self.size
        while side > 6 and side % 2 == 0:
            side //= 2
            layers += 1
        return max(2, layers)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["domains"] = list(self.domains)
        return d

    def grouped(self) -> dict[str, Any]:
        """The options by component: {"model": ..., "data": {...}, "generator": {...}, ...},
        each group holding the options this family's trainer reads (OPTIONS), in OPTIONS order."""
        flat = self.to_dict()
        out: dict[str, Any] = {"model": self.model}
        for group in OPTION_GROUPS:
            out[group] = {k: flat[k] for k, o in OPTIONS.items() if o.group == group and self.model in o.families}
        return out

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainConfig":
        """From a JSON or YAML file: flat, grouped, or a run's options.json ({"config": ...})."""
        text = Path(path).read_text()
        try:
            if str(path).endswith((".yaml", ".yml")):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except ValueError as err:  # json.JSONDecodeError and yaml.YAMLError's parse errors
            raise ValueError(f"{path}: not a readable training config ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config is a mapping of options, got {type(data).__name__}")
        if isinstance(data.get("config"), dict) and "training_set" in data:  # a run's options.json
            data = data["config"]
        return cls.from_dict({**flatten_options(data, str(path)), **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """From flat or grouped options (see `grouped`); an unknown option is an error naming it."""
        data = flatten_options(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**data)


def flatten_options(data: dict[str, Any], where: str = "training config") -> dict[str, Any]:
    """Grouped options ({"schedule": {"steps": 10}}) to flat ones ({"steps": 10}); flat ones pass
    through. An option under a group it does not belong to is an error naming its group, so a
    config file reads as `--help` lists it."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in OPTION_GROUPS and isinstance(value, dict):
            for name, v in value.items():
                option = OPTIONS.get(name)
                if option is not None and option.group != key:
                    raise ValueError(f"{where}: option {name!r} belongs to the {option.group!r} group, not {key!r}")
                if name in flat:
                    raise ValueError(f"{where}: option {name!r} is given twice")
                flat[name] = v
        else:
            if key in flat:
                raise ValueError(f"{where}: option {key!r} is given twice")
            flat[key] = value
    return flat

