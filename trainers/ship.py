"""Turn a finished run's exported generator into a model shipped inside the package:

    python -m fxaug.trainers.ship runs/stargan-image-48 --name stargan-ferplus-image-48 \
        --scores results.json

Writes `fxaug/assets/models/<name>/` (config.json + model.safetensors, float16 by default: half
the bytes, and the generator's outputs move by at most a grey level or two, checked and
printed here) with the run's training record and the given scores in config.json's
"_metadata", which docs/models.md quotes. `--snapshot STEP` ships the EMA generator of one of
the run's snapshots instead (a run stopped early, or an earlier, better step);
`export_snapshot` alone writes such a checkpoint anywhere, for scoring before shipping.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from fxaug.models import BUNDLED_DIR, load_model


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


def ship(run_dir: str | Path, name: str, dest: Path = BUNDLED_DIR, dtype: str = "float16",
         scores: dict | None = None, snapshot: int | None = None) -> Path:
    run_dir = Path(run_dir)
    if snapshot is not None:
        with tempfile.TemporaryDirectory() as scratch:
            model = load_model(export_snapshot(run_dir, snapshot, Path(scratch) / "generator"))
    else:
        model = load_model(run_dir / "generator")
    metadata = dict(model.metadata)
    metadata["run"] = run_dir.name
    if scores:
        metadata["scores"] = scores
    out = model.save_pretrained(dest / name, dtype=dtype, metadata=metadata)
    shipped = load_model(out)
    change = output_change(model, shipped, model.config.image_size, model.config.channels)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"{out}: {size / 1e6:.2f} MB ({dtype}); largest output change vs float32 {change:.2f} grey levels")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxaug.trainers.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory with generator/ (written when training finishes)")
    p.add_argument("--name", required=True, help="shipped model name, e.g. stargan-ferplus-parts-32")
    p.add_argument("--dest", type=Path, default=BUNDLED_DIR)
    p.add_argument("--dtype", default="float16", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--scores", help="a JSON file of scores to record in the model's metadata")
    p.add_argument("--snapshot", type=int, help="ship this snapshot step's EMA generator instead of generator/")
    args = p.parse_args(argv)
    scores = json.loads(Path(args.scores).read_text()) if args.scores else None
    ship(args.run, args.name, args.dest, args.dtype, scores, args.snapshot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
