"""Metrics of expression transfer by name, as StyleGAN3's metric registry does it.

Each metric takes one `TransferSet` (source faces, the generator's outputs for them, the target
emotion, and real faces of the target for reference) and a `MetricContext` (device, and the
networks and reference features it loads once and reuses), and returns a dict with a "value".

    ctx = MetricContext(device="cpu")
    compute_metrics(["accuracy", "identity", "judge_fid"], transfer_set, ctx)

Names: see `list_metrics()` (accuracy, identity, fid, kid, judge_fid, judge_kid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .. import emotions as E


@dataclass
class TransferSet:
    """What one (source class -> target class, method) evaluation looks at.

    sources / outputs: uint8 faces, row-aligned (outputs[i] was made from sources[i]).
    reference: real faces of the target class (FID/KID compare the outputs with them).
    """

    target: str
    sources: Sequence[np.ndarray]
    outputs: Sequence[np.ndarray]
    reference: Sequence[np.ndarray] = ()
    reference_description: str = ""
    outputs_description: str = ""

    def __post_init__(self):
        self.target = E.canonical(self.target)
        if len(self.sources) != len(self.outputs):
            raise ValueError(f"{len(self.sources)} sources but {len(self.outputs)} outputs")


@dataclass
class MetricContext:
    """Device, batch size and the metric networks, loaded on first use and kept. Reference
    features are cached by (feature space, reference description), so a target's real faces are
    embedded once however many methods, source classes and models (one context passed to several
    `evaluate` calls) are compared with them; a set of outputs' features are kept per feature
    space while the same set is scored (FID and KID share one TF-Inception pass)."""

    device: str | torch.device = "cpu"
    batch_size: int = 64
    inception_path: str | None = None
    trust_inception: bool = False  # load an Inception file whose digest is not the known one
    judge: Any = None
    _identity: Any = field(default=None, repr=False)
    _feature_modules: dict = field(default_factory=dict, repr=False)
    _reference_features: dict = field(default_factory=dict, repr=False)
    _output_features: dict = field(default_factory=dict, repr=False)

    def get_judge(self):
        if self.judge is None:
            from .judge import load_judge

            self.judge = load_judge(device=self.device)
        return self.judge

    def get_identity_encoder(self):
        if self._identity is None:
            from .identity import IdentityEncoder

            self._identity = IdentityEncoder(self.device, batch_size=self.batch_size)
        return self._identity

    def feature_module(self, space: str):
        if space not in self._feature_modules:
            from .fid import feature_module

            judge = self.get_judge() if space == "judge" else None
            self._feature_modules[space] = feature_module(space, inception_path=self.inception_path, judge=judge,
                                                          trust_inception=self.trust_inception)
        return self._feature_modules[space]

    def features(self, space: str, images, description: str = ""):
        from .fid import extract_features

        return extract_features(images, self.feature_module(space), device=self.device, batch_size=self.batch_size,
                                description=description)

    def reference_features(self, space: str, s: TransferSet):
        if not len(s.reference):
            raise ValueError("this metric needs reference faces of the target class (TransferSet.reference)")
        key = (space, s.reference_description or id(s.reference))
        if key not in self._reference_features:
            self._reference_features[key] = self.features(space, s.reference, s.reference_description)
        return self._reference_features[key]

    def output_features(self, space: str, s: TransferSet):
        held = self._output_features.get(space)
        if held is None or held[0] is not s.outputs:  # the set itself is held, so `is` is safe
            held = self._output_features[space] = (s.outputs, self.features(space, s.outputs, s.outputs_description))
        return held[1]


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    compute: Callable[[TransferSet, MetricContext], dict[str, Any]]


METRICS: dict[str, Metric] = {}


def register_metric(name: str, description: str):
    def wrap(fn: Callable[[TransferSet, MetricContext], dict[str, Any]]):
        METRICS[name] = Metric(name, description, fn)
        return fn

    return wrap


def list_metrics() -> list[str]:
    return list(METRICS)


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]


def compute_metrics(names: Sequence[str], s: TransferSet, ctx: MetricContext | None = None) -> dict[str, dict[str, Any]]:
    """Every named metric of one transfer set: {name: result dict}."""
    ctx = ctx or MetricContext()
    metrics = [get_metric(n) for n in names]  # unknown names fail before any work
    return {m.name: m.compute(s, ctx) for m in metrics}


# --------------------------------------------------------------------------------------------
# the metrics


def judge_accuracy(images, target: str, judge, flip: bool = True) -> dict[str, Any]:
    """Share of faces the judge classifies as `target` (argmax of its flip-averaged
    probabilities), and its mean probability for the target."""
    target = E.canonical(target)
    classes = list(judge.config.classes)
    if target not in classes:
        raise ValueError(f"the judge does not know {target!r}; its classes: {', '.join(classes)}")
    if not len(images):
        return {"value": float("nan"), "mean_probability": float("nan"), "n": 0, "target": target}
    probs = judge.predict_proba(list(images), flip=flip)
    k = classes.index(target)
    return {
        "value": float((probs.argmax(1) == k).float().mean()),
        "mean_probability": float(probs[:, k].mean()),
        "n": len(images),
        "target": target,
        "judge": "fxaug FERPlus emotion judge (ferplus-resnet), flip-averaged",
    }


@register_metric("accuracy", "share of outputs the emotion judge classifies as the target emotion")
def _accuracy(s: TransferSet, ctx: MetricContext) -> dict[str, Any]:
    return judge_accuracy(s.outputs, s.target, ctx.get_judge())


@register_metric("identity", "face-descriptor distance of each output to its source (mean, share < 0.6)")
def _identity(s: TransferSet, ctx: MetricContext) -> dict[str, Any]:
    from .identity import identity_preservation

    return identity_preservation(list(s.sources), list(s.outputs), ctx.get_identity_encoder())


def _distance(kind: str, space: str):
    def compute(s: TransferSet, ctx: MetricContext) -> dict[str, Any]:
        from .fid import fid, kid

        reference = ctx.reference_features(space, s)
        outputs = ctx.output_features(space, s)
        return (fid if kind == "fid" else kid)(reference, outputs)

    return compute


register_metric("fid", "FID of the outputs against real target faces, TF-Inception features")(_distance("fid", "inception"))
register_metric("kid", "KID of the outputs against real target faces, TF-Inception features")(_distance("kid", "inception"))
register_metric("judge_fid", "FID in the emotion judge's feature space (not comparable to published FID)")(
    _distance("fid", "judge"))
register_metric("judge_kid", "KID in the emotion judge's feature space (not comparable to published KID)")(
    _distance("kid", "judge"))
