"""Metrics of expression transfer: the emotion judge, FID/KID, identity preservation, a registry
of metrics by name, and `evaluate` (what `fxaug eval` runs).

    from fxaug.metrics import evaluate, results_markdown, results_figure, list_metrics
    from fxaug.metrics import fid, kid, identity_distance, load_judge

Heavy parts (torchmetrics, the Inception and identity networks) load on first use.
"""

from .evaluate import DEFAULT_METRICS, evaluate, parse_pairs, results_figure, results_markdown
from .fid import extract_features, fid, kid
from .identity import SAME_PERSON, IdentityEncoder, identity_distance, identity_preservation
from .judge import DEFAULT_JUDGE, EmotionJudge, JudgeConfig, load_judge
from .registry import METRICS, MetricContext, TransferSet, compute_metrics, judge_accuracy, list_metrics, register_metric

__all__ = [
    "DEFAULT_JUDGE",
    "DEFAULT_METRICS",
    "METRICS",
    "SAME_PERSON",
    "EmotionJudge",
    "IdentityEncoder",
    "JudgeConfig",
    "MetricContext",
    "TransferSet",
    "compute_metrics",
    "evaluate",
    "extract_features",
    "fid",
    "identity_distance",
    "identity_preservation",
    "judge_accuracy",
    "kid",
    "list_metrics",
    "load_judge",
    "parse_pairs",
    "register_metric",
    "results_figure",
    "results_markdown",
]
