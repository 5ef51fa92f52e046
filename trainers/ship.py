"""Turn a finished run's exported generator into a model shipped inside the package:

    python -m fxaug.trainers.ship runs/stargan-image-48 --name stargan-ferplus-image-48 \
        --scores results.json --card docs/runs/card-stargan-ferplus-image-48.json

Writes `fxaug/assets/models/<name>/` (config.json + model.safetensors, float16 by default: half
the bytes, and the generator's outputs move by at most a grey level or two, checked and
printed here) with the run's training record and the given scores in config.json's
"_metadata", which docs/models.md quotes, and a model card README.md (`fxaug.models.card`:
the Hugging Face Hub's YAML header, then data, licence, training command, steps, time, scores,
samples), so the folder is a Hub model repo as it stands (`fxaug.models.hub.push_folder`).
`--card FACTS.json` gives what the run cannot know (`CardFacts`: license, datasets, data,
training_command, cpu_time, evaluations = `fxaug eval` JSON files relative to FACTS.json,
samples = an image copied beside the weights, summary, limitations); `--rewrite-card MODEL_DIR`
writes the card of a model already shipped. `--snapshot STEP` ships the EMA generator of one
of the run's snapshots instead (a run stopped early, or an earlier, better step);
`export_snapshot` alone writes such a checkpoint anywhere, for scoring before shipping.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from fxaug.models import BUNDLED_DIR, load_model
from fxaug.models.card import SAMPLES_NAME, CardFacts, model_card
from fxaug.models.hub import CARD_NAME


def output_change(reference, candidate, size: int, channels: int) -> float:
    """Largest absolute output difference in grey levels (0..255) on random faces, through the
    generators' common contract (`generate`); a region model redraws everything (an all-ones mask
    stands in for landmarks it would need)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, channels, size, size, generator=g) * 2 - 1
    parts = getattr(reference.config, "parts", ())
    targets = [reference.domains[-1]] * 8
    with torch.no_grad():
        if "regions" in reference.methods:
            ones = torch.ones(8, 1, size, size)
            a, b = reference(x, targets, masks=ones), candidate(x, targets, masks=ones)
        else:
            kwargs = {"parts": [parts[i % len(parts)] for i in range(8)]} if parts else {}
            a = reference.generate(x, targets, torch.ones(8), **kwargs)[0]
            b = candidate.generate(x, targets, torch.ones(8), **kwargs)[0]
    return float((a - b).abs().max() * 127.5)


def export_snapshot(run_dir: str | Path, step: int, out: str | Path) -> Path:
    """Write the EMA generator of `run_dir/snapshots/snapshot-<step>.pt` to `out` as a
    checkpoint, exactly as the run would have exported it at that step."""
    from . import make_trainer
    from .config import TrainConfig
    from .loop import SNAPSHOTS

    path = Path(run_dir) / SNAPSHOTS / f"snapshot-{int(step):07d}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such snapshot")
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = TrainConfig.from_dict({**state["config"], "device": "cpu", "tensorboard": False})
    with tempfile.TemporaryDirectory() as scratch:  # the trainer writes options.json to its run dir
        trainer = make_trainer(cfg, scratch)
        trainer.load_snapshot(path)
        return trainer.export(Path(out))


def training_time(run_dir: str | Path) -> float | None:
    """Wall-clock seconds the run trained, from its metrics.jsonl: each record's time_s counts
    from the start of its session, so a resumed run adds each session's last time."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    total, last = 0.0, None
    for line in path.read_text().splitlines():
        try:
            t = float(json.loads(line)["time_s"])
        except (ValueError, KeyError, TypeError):
            continue
        if last is not None and t < last:  # a new session began
            total += last
        last = t
    return total + (last or 0.0) if last is not None else None


def read_facts(path: str | Path | None, run_dir: str | Path | None = None) -> CardFacts:
    """The card facts of a JSON file (`CardFacts` fields; `evaluations` and `samples` are paths
    relative to the file), with the run's training time when the file gives none."""
    facts = CardFacts()
    base = Path(".")
    if path is not None:
        path = Path(path)
        data = json.loads(path.read_text())
        unknown = sorted(set(data) - set(CardFacts.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{path}: unknown card facts {', '.join(unknown)}; known: "
                             f"{', '.join(CardFacts.__dataclass_fields__)}")
        base = path.parent
        evaluations = [json.loads((base / e).read_text()) for e in data.pop("evaluations", [])]
        facts = CardFacts(**data, evaluations=evaluations)
    if facts.samples:
        facts.samples = str(base / facts.samples)
    if facts.cpu_time is None and run_dir is not None:
        seconds = training_time(run_dir)
        if seconds:
            took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
            facts.cpu_time = f"{took} wall-clock (metrics.jsonl)"
    return facts


def write_card(model_dir: str | Path, facts: CardFacts, run_dir: str | Path | None = None) -> Path:
    """README.md of `model_dir` from its config.json and `facts`; a samples image named in the
    facts is copied beside the weights (as samples.png, at most 1024 px wide)."""
    from fxaug.io import atomic_write, write_text

    model_dir = Path(model_dir)
    if facts.samples and Path(facts.samples).resolve() != (model_dir / SAMPLES_NAME).resolve():
        from PIL import Image

        with Image.open(facts.samples) as im:
            im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
            if im.width > 1024:
                im = im.resize((1024, round(im.height * 1024 / im.width)), Image.LANCZOS)
            atomic_write(model_dir / SAMPLES_NAME, lambda p: im.save(p, format="PNG", optimize=True))
    facts = CardFacts(**{**facts.__dict__, "samples": SAMPLES_NAME if facts.samples else None})
    if facts.training_command is None and run_dir is not None:
        facts.training_command = (f"fxaug train --config {Path(run_dir).as_posix()}/options.json "
                                  f"--out {Path(run_dir).as_posix()}   # repeats the run's options")
    return write_text(model_dir / CARD_NAME, model_card(model_dir, facts=facts))


def withhold_targets(model, targets) -> None:
    """Mark trained targets that review found to be artifacts as withheld (the model's
    `translations()` stops offering them and `generate` refuses them; docs/models.md)."""
    import dataclasses

    from fxaug import emotions as E

    if "withheld" not in {f.name for f in dataclasses.fields(model.config)}:
        raise ValueError(f"a {type(model).__name__} cannot withhold targets")
    names = tuple(E.canonical(t) for t in targets)
    unknown = sorted(set(names) - set(model.config.domains))
    if unknown:
        raise ValueError(f"cannot withhold {', '.join(unknown)}: the model draws {', '.join(model.config.domains)}")
    model.config = dataclasses.replace(model.config, withheld=names)


def ship(run_dir: str | Path, name: str, dest: Path = BUNDLED_DIR, dtype: str = "float16",
         scores: dict | None = None, snapshot: int | None = None, facts: CardFacts | None = None,
         withhold=()) -> Path:
    run_dir = Path(run_dir)
    if snapshot is not None:
        with tempfile.TemporaryDirectory() as scratch:
            model = load_model(export_snapshot(run_dir, snapshot, Path(scratch) / "generator"))
    else:
        model = load_model(run_dir / "generator")
    if withhold:
        withhold_targets(model, withhold)
    metadata = dict(model.metadata)
    metadata["run"] = run_dir.name
    if scores:
        metadata["scores"] = scores
    out = model.save_pretrained(dest / name, dtype=dtype, metadata=metadata)
    if facts is None:
        facts = read_facts(None, run_dir)
    write_card(out, facts, run_dir)
    shipped = load_model(out)
    change = output_change(model, shipped, model.config.image_size, model.config.channels)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {size / 1e6:.2f} MB ({dtype}); largest output change vs float32 {change:.2f} grey levels")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxaug.trainers.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="run directory with generator/ (written when training finishes)")
    p.add_argument("--name", help="shipped model name, e.g. stargan-ferplus-parts-32")
    p.add_argument("--dest", type=Path, default=BUNDLED_DIR)
    p.add_argument("--dtype", default="float16", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--scores", help="a JSON file of scores to record in the model's metadata")
    p.add_argument("--snapshot", type=int, help="ship this snapshot step's EMA generator instead of generator/")
    p.add_argument("--card", help="a JSON file of model card facts (CardFacts: license, datasets, training_command, "
                   "cpu_time, evaluations, samples, ...)")
    p.add_argument("--withhold", default="", help="comma-separated targets the shipped model must not offer "
                   "(trained, but review found artifacts, not expressions), e.g. disgust,contempt")
    p.add_argument("--rewrite-card", metavar="MODEL_DIR", type=Path,
                   help="only (re)write the README.md model card of this model folder, from --card")
    args = p.parse_args(argv)
    if args.rewrite_card is not None:
        out = write_card(args.rewrite_card, read_facts(args.card, args.run))
        print(out)
        return 0
    if not args.run or not args.name:
        p.error("give RUN and --name (or --rewrite-card MODEL_DIR)")
    scores = json.loads(Path(args.scores).read_text()) if args.scores else None
    ship(args.run, args.name, args.dest, args.dtype, scores, args.snapshot, read_facts(args.card, args.run),
         withhold=[t for t in args.withhold.split(",") if t.strip()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
