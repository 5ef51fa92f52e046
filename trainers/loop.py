"""One training loop for every fxaug GAN, in the manner of stylegan3's training_loop:
a run directory per run (options.json, metrics.jsonl, sample grids, snapshots, TensorBoard
logs, the exported EMA generator), exact resumption, and data parallelism over `torchrun`
processes (gradients averaged by hand, which unlike DDP's hooks works with the gradient
penalty's double backward).

Model-specific trainers subclass `GANTrainer` and implement `build`, `d_step` and `g_step`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from fxaug.io import atomic_write

from .config import TrainConfig
from .data import DomainSampler, TrainingSet, build_training_set
from .diffaug import diff_augment, parse_policy

log = logging.getLogger("fxaug.trainers")
SNAPSHOTS = "snapshots"
EXPORT = "generator"


def latest_snapshot(run_dir: Path) -> Path | None:
    snaps = sorted((run_dir / SNAPSHOTS).glob("snapshot-*.pt"))
    return snaps[-1] if snaps else None


class Distributed:
    """rank / world size from torchrun's environment; a no-op for a single process."""

    def __init__(self, device_kind: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, module: torch.nn.Module) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast(self, module: torch.nn.Module) -> None:
        if self.world > 1:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


class GANTrainer:
    """Subclasses fill `self.nets` (name -> module; the generator is "G"), `self.opts`
    (name -> optimizer) and implement the steps."""

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike, data: TrainingSet | None = None, resume: bool = False,
                 progress: bool = True):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        kind = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device)
        self.dist = Distributed(torch.device(kind).type)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if kind == "cuda" and self.dist.world > 1 else kind)
        self.policy = parse_policy(cfg.diffaug)
        self.data = data if data is not None else build_training_set(cfg, progress=progress and self.dist.main)
        # seeded after the data: building the cache runs the face nets, which draw from torch's
        # RNG, so a run that builds it and one that reads it must start from the same state
        torch.manual_seed(cfg.seed)
        self.nets: dict[str, torch.nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.build()
        for net in self.nets.values():
            net.to(self.device).train()
            self.dist.broadcast(net)
        self.G_ema = copy.deepcopy(self.nets["G"]).eval().requires_grad_(False)
        # Per-rank streams: different batches and noise on each process.
        self.sampler = DomainSampler(self.data, seed=cfg.seed * 1000 + self.dist.rank, balance=cfg.balance)
        torch.manual_seed(cfg.seed * 1000 + self.dist.rank)
        self.step = 0
        self.losses: dict[str, float] = {}
        self._fixed = self._fixed_batch()
        if cfg.init_from and not resume:
            self.init_networks(cfg.init_from, cfg.init_nets)
        if resume:
            snap = latest_snapshot(self.run_dir)
            if snap is None:
                raise FileNotFoundError(f"{self.run_dir}: --resume, but no snapshot in {self.run_dir / SNAPSHOTS}")
            self.load_snapshot(snap)
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "options.json").write_text(json.dumps(self.options(), indent=2) + "\n")
        self._tb = None

    # -- to implement ---------------------------------------------------------------------
    def build(self) -> None:
        raise NotImplementedError

    def d_step(self) -> dict[str, float]:
        raise NotImplementedError

    def g_step(self) -> dict[str, float]:
        raise NotImplementedError

    def classifier_step(self) -> dict[str, float]:
        """One update of D's domain classifier alone on real faces (models that have one)."""
        raise NotImplementedError(f"{type(self).__name__} has no domain classifier to warm up")

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, int]:
        """Fixed inputs and the EMA generator's output towards every domain, one row each:
        ((rows * cols, C, S, S) in [-1, 1], cols)."""
        idx = self._fixed
        x = self.data.to_model_range(idx, self.device)
        names = self.part_names(self.data.parts[idx]) if self.data.parts is not None else None
        cols = [x] + [self.G_ema(x, d, parts=names) for d in self.data.domain_names]
        return torch.stack(cols, dim=1).flatten(0, 1).cpu(), len(cols)

    # -- shared helpers -------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        return {
            "config": self.cfg.grouped(),  # by component; `--config options.json` repeats the run
            "world_size": self.dist.world,
            "device": str(self.device),
            "training_set": self.data.counts(),
            "torch": torch.__version__,
        }

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    def adam(self, module: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2))

    def batch(self, domain: int | list[int] | None = None, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(images in [-1, 1], domain indices, part indices or None) on the device."""
        index = self.sampler.sample(size or self.cfg.batch, domain)
        parts = self.data.parts[index].to(self.device) if self.data.parts is not None else None
        return self.data.to_model_range(index, self.device), self.data.domains[index].to(self.device), parts

    def part_names(self, parts: torch.Tensor | None) -> list[str] | None:
        return None if parts is None else [self.data.part_names[i] for i in parts.tolist()]

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        opt, net = self.opts[name], self.nets[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(net)
        opt.step()

    def _fixed_batch(self) -> torch.Tensor:
        """The first 8 images of the training set spread over domains: the grid's inputs."""
        picks = []
        per = max(1, 8 // len(self.data.domain_names))
        for d in range(len(self.data.domain_names)):
            picks.extend(torch.nonzero(self.data.domains == d).flatten()[:per].tolist())
        return torch.tensor(picks[:8])

    def learning_rate(self) -> float:
        start = self.cfg.lr_decay_start * self.cfg.steps
        if self.step < start:
            return self.cfg.lr
        return self.cfg.lr * max(0.0, (self.cfg.steps - self.step) / max(1.0, self.cfg.steps - start))

    def noise_std(self) -> float:
        epoch = self.step * self.cfg.batch * self.dist.world / max(1, len(self.data))
        return max(0.0, self.cfg.noise_std - self.cfg.noise_decay * math.floor(epoch))

    def set_critic_noise(self, std: float) -> None:
        """The instance noise of every network that has it (the GANs' critics)."""
        for net in self.nets.values():
            if hasattr(net, "set_noise_std"):
                net.set_noise_std(std)

    def ema_beta(self) -> float:
        """StyleGAN's ramp-up: the average's half-life (in images) is at most `ema_rampup` of the
        images G has been trained on, up to the one `ema` sets; without it a short run's export
        would still carry much of its random start (0.999 ** 2000 G steps = 0.14)."""
        if not self.cfg.ema_rampup:
            return self.cfg.ema
        batch = self.cfg.batch * self.dist.world
        seen = (self.step // self.cfg.n_critic) * batch
        halflife = min(batch * math.log(0.5) / math.log(self.cfg.ema), seen * self.cfg.ema_rampup)
        return 0.5 ** (batch / halflife) if halflife > 0 else 0.0

    def update_ema(self) -> None:
        beta = self.ema_beta()
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.nets["G"].parameters()):
                p_ema.lerp_(p, 1.0 - beta)
            for b_ema, b in zip(self.G_ema.buffers(), self.nets["G"].buffers()):
                b_ema.copy_(b)

    # -- snapshots ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "step": self.step,
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "opts": {k: v.state_dict() for k, v in self.opts.items()},
            "G_ema": self.G_ema.state_dict(),
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_snapshot(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = dict(state["config"])
        current = self.cfg.to_dict()
        # Everything but the schedule's length and the logging cadence must match.
        free = {"steps", "log_every", "sample_every", "snapshot_every", "device", "tensorboard", "cache_dir"}
        # An option newer than the snapshot (absent from it) takes its default from here on.
        differs = {k for k in current if k not in free and k in saved and saved[k] != current[k]}
        if differs:
            raise ValueError(f"{path}: snapshot options differ from this run's in {sorted(differs)}")
        self._load_networks(state)
        for k, opt in self.opts.items():
            opt.load_state_dict(state["opts"][k])
        self.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step = int(state["step"])
        self.load_extra_state(state)
        log.info("resumed from %s at step %d", path, self.step)

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """What a subclass added to `state_dict` beyond the shared state (nothing here)."""

    def _load_networks(self, state: dict[str, Any], names=()) -> None:
        names = tuple(names) or tuple(self.nets)
        unknown = set(names) - set(self.nets)
        if unknown:
            raise ValueError(f"no networks {sorted(unknown)} in this model; it has {', '.join(self.nets)}")
        for k in names:
            self.nets[k].load_state_dict(state["nets"][k])
        if "G" in names:
            self.G_ema.load_state_dict(state["G_ema"])

    def init_networks(self, source: str | os.PathLike, names=()) -> None:
        """Networks (and G's average) from another run's snapshot, all or those in `names` (e.g.
        a trained D for a new kind of G); nothing else of its state. `source` may also name a
        generator (a model folder, a shipped model, a Hub repo id): G and its average start from
        its weights and the other networks from scratch, to fine-tune a model whose run is gone."""
        path = Path(source)
        if not (path.is_dir() and (path / SNAPSHOTS).is_dir()) and not path.is_file():
            from fxaug.models import model_dir

            try:
                folder = model_dir(source)
            except FileNotFoundError:
                folder = None
            if folder is not None:
                self._init_generator(folder, names)
                return
        if path.is_dir():
            snap = latest_snapshot(path)
            if snap is None:
                raise FileNotFoundError(f"{path}: init_from names a run without snapshots ({path / SNAPSHOTS})")
            path = snap
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self._load_networks(state, names)
        except (KeyError, RuntimeError) as e:
            raise ValueError(f"{path}: its networks do not fit this run's model, domains and sizes ({e})") from e
        for net in self.nets.values():
            self.dist.broadcast(net)
        log.info("networks initialised from %s (step %d of that run)", path, int(state["step"]))

    def _init_generator(self, folder: Path, names=()) -> None:
        from fxaug.models import load_model

        if names and tuple(names) != ("G",):
            raise ValueError(f"{folder}: a generator folder holds G alone; --init-nets {','.join(names)} needs a run")
        model = load_model(folder)
        try:
            self.nets["G"].load_state_dict(model.state_dict())
        except RuntimeError as e:
            raise ValueError(f"{folder}: this generator does not fit this run's model, domains and sizes ({e})") from e
        self.G_ema.load_state_dict(model.state_dict())
        self.dist.broadcast(self.nets["G"])
        log.info("G and its average initialised from the generator in %s; the other networks from scratch", folder)

    def save_snapshot(self) -> Path:
        folder = self.run_dir / SNAPSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"snapshot-{self.step:07d}.pt"
        state = self.state_dict()
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        return path

    def export_metadata(self) -> dict[str, Any]:
        return {"steps": self.step, "training": self.cfg.to_dict(), "training_set": self.data.counts()}

    def export(self, directory: Path | None = None) -> Path:
        """The EMA generator as a `from_pretrained` checkpoint, with its training record."""
        return self.G_ema.save_pretrained(directory or self.run_dir / EXPORT, metadata=self.export_metadata())

    # -- the loop -------------------------------------------------------------------------
    def _log(self, values: dict[str, float], started: float) -> None:
        record = {"step": self.step, "time_s": round(time.time() - started, 2), **{k: round(v, 5) for k, v in values.items()}}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, self.step)

    def _write_grid(self) -> None:
        from torchvision.utils import save_image

        images, cols = self.sample_grid()
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        grid = images.add(1).div(2).clamp(0, 1)
        atomic_write(folder / f"step-{self.step:07d}.png",
                     lambda tmp: save_image(grid, tmp, nrow=cols, padding=1, format="png"))
        if self._tb is not None:
            from torchvision.utils import make_grid

            self._tb.add_image("samples", make_grid(images.add(1).div(2).clamp(0, 1), nrow=cols), self.step)

    def _open_tensorboard(self) -> None:
        if not (self.cfg.tensorboard and self.dist.main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
            return
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step or None)

    def train(self, until: int | None = None, progress: bool = True) -> dict[str, float]:
        """Run D steps up to `until` (default cfg.steps); G every n_critic-th. Returns the last losses."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        until = cfg.steps if until is None else min(until, cfg.steps)
        self._open_tensorboard()
        started = time.time()
        bar = tqdm(total=until, initial=self.step, disable=not (progress and self.dist.main), desc="train", dynamic_ncols=True)
        try:
            while self.step < until:
                lr = self.learning_rate()
                for opt in self.opts.values():
                    for group in opt.param_groups:
                        group["lr"] = lr
                self.set_critic_noise(self.noise_std())
                warming = self.step < cfg.cls_warmup
                losses = self.classifier_step() if warming else self.d_step()
                if not warming and (self.step + 1) % cfg.n_critic == 0:
                    # Instance noise regularises D's training (the paper's option); G learns
                    # from D's noiseless scores, so its gradients carry none of that noise.
                    self.set_critic_noise(0.0)
                    losses.update(self.g_step())
                    self.update_ema()
                self.losses.update(losses)
                self.step += 1
                bar.update(1)
                if self.dist.main:
                    if self.step % cfg.log_every == 0 or self.step == until:
                        bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in self.losses.items() if k.endswith("loss")})
                        self._log({**self.losses, "lr": lr, "noise_std": self.noise_std()}, started)
                    if self.step % cfg.sample_every == 0 or self.step == until:
                        self._write_grid()
                    if self.step % cfg.snapshot_every == 0 or self.step == until:
                        self.save_snapshot()
                        self.export()
                if self.step % cfg.snapshot_every == 0:
                    self.dist.barrier()  # no rank runs ahead of a snapshot being written
        finally:
            bar.close()
            if self._tb is not None:
                self._tb.close()
        return dict(self.losses)
