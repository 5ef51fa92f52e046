"""Evaluate a generator: for each (source class -> target class) pair and each transfer method,
transfer real faces of the source class to the target and score the outputs (`fxaug eval`).

    from fxaug.metrics import evaluate, results_markdown, results_figure
    result = evaluate("stargan-fer-48-parts", "data/ferplus", pairs="neutral:happy,happy:sad",
                      splits="PublicTest", n=500)
    print(results_markdown(result))
    write_image("results.png", results_figure(result))    # fxaug.io.write_image: the table as bar charts

Protocol (docs/evaluation.md):
- sources: `n` faces of the source class, a seeded random sample of the dataset (after `splits`).
- reference: `n_reference` (default `n`) real faces of the target class, sampled the same way
  from the same data: FID/KID compare the outputs with them.
- outputs: `ExpressionPipeline(model, method).transfer(sources, target)`. Faces in which no face
  was found (face/parts methods) are left out of the scores and counted (`n_no_face`).
- baseline (method "none"): the sources themselves, unchanged, scored the same way: what the
  scores are when the generator does nothing.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

import numpy as np

from .. import emotions as E
from .registry import MetricContext, TransferSet, compute_metrics, get_metric

log = logging.getLogger("fxaug.metrics")

DEFAULT_METRICS = ("accuracy", "fid", "kid", "identity")
BASELINE = "none"


def parse_pairs(pairs: str | Sequence) -> list[tuple[str, str]]:
    """"neutral:happy,happy:sad" (or [("neutral", "happy"), ...]) -> canonical (source, target)s."""
    items = [p for p in pairs.split(",") if p.strip()] if isinstance(pairs, str) else list(pairs)
    out = []
    for item in items:
        parts = item.split(":") if isinstance(item, str) else list(item)
        if len(parts) != 2:
            raise ValueError(f"pair {item!r}: write it as source:target, e.g. neutral:happy")
        source, target = (E.canonical(p.strip()) for p in parts)
        if source == target:
            raise ValueError(f"pair {item!r}: source and target are the same emotion")
        out.append((source, target))
    if not out:
        raise ValueError("no pairs given (e.g. neutral:happy,happy:sad)")
    return out


def metric_names(metrics: Sequence[str] | str | None, fid_features: str) -> list[str]:
    """The metrics to compute; with fid_features="judge", "fid"/"kid" mean judge_fid/judge_kid."""
    if fid_features not in ("inception", "judge"):
        raise ValueError(f"fid_features: inception or judge, not {fid_features!r}")
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics or DEFAULT_METRICS)
    if fid_features == "judge":
        names = [{"fid": "judge_fid", "kid": "judge_kid"}.get(m, m) for m in names]
    for name in names:
        get_metric(name)
    return list(dict.fromkeys(names))


class FaceSampler:
    """Seeded samples of each class's faces from a dataset reader, decoded once and kept. A class's
    order depends on the seed and the class only, so adding a pair never changes another's faces."""

    def __init__(self, reader, seed: int = 0, progress: bool = False):
        self.reader = reader
        self.seed = seed
        self.progress = progress  # a tqdm bar (stderr) while faces are decoded
        self.by_class: dict[str, list] = {}
        for entry in reader.entries():
            self.by_class.setdefault(entry.emotion, []).append(entry)
        self._faces: dict[str, list[np.ndarray]] = {}

    def count(self, emotion: str) -> int:
        return len(self.by_class.get(emotion, []))

    def faces(self, emotion: str, n: int | None) -> list[np.ndarray]:
        entries = self.by_class.get(emotion, [])
        if not entries:
            found = ", ".join(f"{c} {len(v)}" for c, v in self.by_class.items()) or "none"
            raise ValueError(f"the data has no {emotion!r} faces (classes found: {found})")
        cached = self._faces.setdefault(emotion, [])
        want = len(entries) if n is None else min(n, len(entries))
        if len(cached) < want:
            from tqdm.auto import tqdm

            order = np.random.default_rng([self.seed, E.index(emotion)]).permutation(len(entries))
            cached.clear()
            tried = 0
            with tqdm(total=want, desc=f"reading {emotion}", unit="face", disable=not self.progress) as bar:
                for i in order:
                    tried += 1
                    record = self.reader.load(entries[i])  # a bad file is reported and skipped
                    if record is not None:
                        cached.append(record.image)
                        bar.update()
                    bar.set_postfix_str(f"tried={tried}, unreadable={tried - len(cached)}", refresh=False)
                    if len(cached) == want:
                        break
        return cached[:want]


def _summary(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The table's columns from one metric's result."""
    if "error" in result:
        return {name: None}
    if name == "identity":
        return {"identity_mean": result["mean"], "identity_share_below": result["share_below"]}
    if name in ("kid", "judge_kid"):
        return {name: result["value"], f"{name}_std": result["std"]}
    return {name: result["value"]}


def evaluate(
    model,
    data,
    pairs: str | Sequence,
    *,
    methods: str | Sequence[str] | None = None,
    n: int | None = 200,
    n_reference: int | None = None,
    metrics: Sequence[str] | str | None = None,
    fid_features: str = "inception",
    baseline: bool = True,
    strength: float = 1.0,
    device: str = "auto",
    batch_size: int = 64,
    seed: int = 0,
    format: str = "auto",
    inception_path: str | None = None,
    trust_inception: bool = False,
    context: MetricContext | None = None,
    progress: bool = False,
    **reader_kwargs,
) -> dict[str, Any]:
    """Score `model` on every pair x method; returns {"rows": [...], "protocol": {...}, ...}.

    model: a name, checkpoint path or loaded generator. data: any dataset fxaug reads (reader
    kwargs such as splits="PublicTest" go to `open_dataset`). methods: default the model's own.
    n: sources per pair (None: all); n_reference: real target faces for FID/KID (default n).
    inception_path / trust_inception: the TF-Inception TorchScript, and whether to load one
    whose digest is not the known one (TorchScript is code; see fxaug.metrics.fid).
    context: a MetricContext to reuse across calls (its networks and reference features).
    progress: tqdm bars on stderr while faces are read, transferred and scored."""
    from tqdm.auto import tqdm

    from ..data import open_dataset
    from ..models import model_reference
    from ..pipeline import ExpressionPipeline, resolve_device

    start = time.perf_counter()
    pair_list = parse_pairs(pairs)
    names = metric_names(metrics, fid_features)
    n_reference = n if n_reference is None else n_reference
    device = str(resolve_device(device))
    reader = open_dataset(data, format=format, **reader_kwargs)
    sampler = FaceSampler(reader, seed, progress=progress)
    ctx = context or MetricContext(device=device, batch_size=batch_size, inception_path=inception_path,
                                   trust_inception=trust_inception)
    if any(m.endswith(("fid", "kid")) for m in names):
        from .fid import require_torchmetrics

        require_torchmetrics()  # the eval extra: said before the long part, not after it
    if any(m in ("fid", "kid") for m in names):
        # Checked (digest) and loaded now, not after the transfers: a refused or missing file
        # stops the run before its long part, rather than becoming an error in every row.
        ctx.feature_module("inception")

    method_list = [methods] if isinstance(methods, str) and "," not in methods else (
        [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods or [None]))
    pipes = [ExpressionPipeline(model, method=m, device=device, batch_size=batch_size) for m in method_list]
    for pipe in pipes:
        for source, target in pair_list:
            pipe.check_target(target)
            if (source, target) not in pipe.model.translations() and (None, target) not in pipe.model.translations():
                raise ValueError(f"the model does not translate {source} -> {target}; it does "
                                 + ", ".join(f"{s or 'any'}->{t}" for s, t in pipe.model.translations()))

    rows = []
    for source, target in pair_list:
        sources = sampler.faces(source, n)
        reference = sampler.faces(target, n_reference)
        reference_description = f"{len(reference)} real {target} faces from {reader.description}"
        runs: list[tuple[str, list, list, int]] = []
        if baseline:
            runs.append((BASELINE, list(sources), list(sources), 0))
        for pipe in pipes:
            results = []
            with tqdm(total=len(sources), desc=f"{source}->{target} {pipe.method}", unit="face",
                      disable=not progress) as bar:
                for first in range(0, len(sources), batch_size):
                    results += pipe.transfer(sources[first:first + batch_size], target, strength)
                    bar.update(len(results) - bar.n)
                    bar.set_postfix_str(f"no face={sum(not r.found for r in results)}", refresh=False)
            kept = [i for i, r in enumerate(results) if r.found]
            runs.append((pipe.method, [sources[i] for i in kept], [results[i].image for i in kept], len(results) - len(kept)))
        scoring = tqdm(total=len(runs) * len(names), desc=f"scoring {source}->{target}", unit="metric",
                       disable=not progress)
        for method, srcs, outs, no_face in runs:
            log.info("scoring %s -> %s, method %s: %d faces", source, target, method, len(outs))
            s = TransferSet(target, srcs, outs, reference, reference_description,
                            outputs_description=f"{source} faces transferred to {target} ({method})"
                            if method != BASELINE else f"{source} faces, unchanged")
            details = {}
            for name in names:
                scoring.set_postfix_str(f"{method} {name}")
                try:
                    details.update(compute_metrics([name], s, ctx))
                except ValueError as err:  # e.g. fewer than 2 faces left for FID
                    details[name] = {"error": str(err)}
                scoring.update()
            row = {"pair": f"{source}:{target}", "source": source, "target": target, "method": method,
                   "n": len(sources), "n_no_face": no_face, "n_scored": len(outs), "n_reference": len(reference)}
            for name in names:
                row.update(_summary(name, details[name]))
            row["details"] = details
            rows.append(row)
        scoring.close()

    distance = [m for m in names if m in ("fid", "kid", "judge_fid", "judge_kid")]
    protocol: dict[str, Any] = {
        "sources": f"up to {n if n is not None else 'all'} faces of the source class per pair, seeded sample (seed {seed})",
        "reference": f"up to {n_reference if n_reference is not None else 'all'} real faces of the target class from the same data",
    }
    if distance:
        module = ctx.feature_module("judge" if fid_features == "judge" else "inception")
        protocol["fid"] = {"feature_space": module.description, "resize": module.resize,
                           "comparable_to_published": module.comparable_to_published}
    if "identity" in names:
        from .identity import SAME_PERSON

        protocol["identity"] = {"net": "face-api.js FaceRecognitionNet (dlib ResNet-34), 128-d, Euclidean distance",
                                "same_person_below": SAME_PERSON}
    return _finite({
        # a path resolved (found again from any folder), a shipped model by its name
        "model": model_reference(model) if not hasattr(model, "config")
        else getattr(model, "checkpoint_path", None) or type(model).__name__,
        "data": reader.description,
        "reader_options": {k: v for k, v in reader_kwargs.items() if isinstance(v, (str, int, float, list))},
        "pairs": [f"{s}:{t}" for s, t in pair_list],
        "methods": [p.method for p in pipes],
        "metrics": names,
        "strength": strength,
        "device": device,
        "seed": seed,
        "protocol": protocol,
        "rows": rows,
        "read_report": {k: v for k, v in reader.report.to_dict().items() if k != "problems"},
        "seconds": round(time.perf_counter() - start, 1),
    })


def _finite(value):
    """NaN/inf -> None, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


COLUMNS = [  # (row key, header, format)
    ("accuracy", "accuracy", "{:.3f}"),
    ("fid", "FID", "{:.2f}"),
    ("kid", "KID ×10³", "x1000"),
    ("judge_fid", "judge-FID†", "{:.2f}"),
    ("judge_kid", "judge-KID ×10³†", "x1000"),
    ("identity_mean", "identity dist.", "{:.3f}"),
    ("identity_share_below", "same person (<0.6)", "{:.3f}"),
]


def format_cell(value, fmt: str) -> str:
    """A table cell: "–" for a missing value, "x1000" for KID's x10^3, else a format string."""
    if value is None:
        return "–"
    if fmt == "x1000":
        return f"{value * 1000:.2f}"
    return fmt.format(value)


def results_markdown(result: dict[str, Any]) -> str:
    """The rows of an `evaluate` result as a Markdown table, with the protocol underneath."""
    rows = result["rows"]
    columns = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    header = ["pair", "method", "N", *[h for _, h, _ in columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]

    for r in rows:
        n = f"{r['n_scored']}" + (f" ({r['n_no_face']} no face)" if r.get("n_no_face") else "")
        lines.append("| " + " | ".join([r["pair"], r["method"], n, *[format_cell(r.get(k), f) for k, _, f in columns]]) + " |")
    notes = [f"Model: {result['model']}. Data: {result['data']}."]
    protocol = result.get("protocol", {})
    notes.append(f"Sources: {protocol.get('sources')}; reference: {protocol.get('reference')}.")
    if "fid" in protocol:
        notes.append(f"FID/KID features: {protocol['fid']['feature_space']}; resize: {protocol['fid']['resize']}.")
    if any(k.startswith("judge_") for k, _, _ in columns):
        notes.append("† judge-FID/KID: the emotion judge's feature space, not comparable to published FID/KID.")
    if "identity" in protocol:
        notes.append(f"Identity: {protocol['identity']['net']}; same person below {protocol['identity']['same_person_below']}.")
    notes.append(f"Method \"{BASELINE}\": the sources unchanged (what the scores are when nothing is done).")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


# Which way is better, for the figure's panel titles.
_BETTER = {"accuracy": "higher is better", "fid": "lower is better", "kid": "lower is better",
           "judge_fid": "lower is better", "judge_kid": "lower is better",
           "identity_mean": "lower is better", "identity_share_below": "higher is better"}


def results_figure(result: dict[str, Any]) -> np.ndarray:
    """The table of `results_markdown` as bar charts (an RGB uint8 array; fxaug.io.write_image
    writes it): one panel per metric column, one bar per pair and method, the baseline row
    ("none") beside each method's. Each panel is scaled to its own largest value; a missing
    value (a metric that failed, e.g. too few faces for FID) has no bar and reads "–". Drawn by
    fxaug.figures: the same result always gives the same pixels."""
    from ..figures import bar_panels

    rows = result["rows"]
    if not rows:
        raise ValueError("results_figure: the result has no rows to draw")
    panels = []
    for key, header, fmt in COLUMNS:
        if not any(key in r for r in rows):
            continue
        bars = []
        for r in rows:
            value = r.get(key)
            shown = None if value is None else value * 1000 if fmt == "x1000" else value
            bars.append((f"{r['source']} -> {r['target']}  {r['method']}", shown, format_cell(value, fmt)))
        panels.append((f"{header} ({_BETTER.get(key, '')})" if key in _BETTER else header, bars))
    notes = [f"Method \"{BASELINE}\": the sources unchanged." if any(r["method"] == BASELINE for r in rows) else "",
             "† the judge's features, not comparable to published FID/KID." if any(
                 k.startswith("judge_") and any(k in r for r in rows) for k, _, _ in COLUMNS) else "",
             "Each panel is scaled to its largest value."]
    note = " ".join(n for n in notes if n)
    return bar_panels(panels, title=f"fxaug eval: {result.get('model')}", note=note)
