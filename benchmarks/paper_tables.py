"""The paper's Table 1 (neutral -> happy) and Table 2 (happy -> sad) on FER2013: every
generator named in a spec scored by `fxaug.metrics.evaluate` (judge accuracy, FID, KID,
identity), one table per pair, one row per GAN x method.

    .venv/bin/python benchmarks/paper_tables.py benchmarks/paper_tables_cpu.json \
        --out docs/runs/paper-tables-cpu.json

The spec (JSON) lists the rows: {"gan", "method", "model" (a checkpoint folder or shipped
name), "pairs" (which of the tables it has a generator for), "train" (the command that makes
it), "note"}. A row whose model does not exist is printed as "not trained" with its command,
so a table always shows every cell the paper has. Each model is scored once per pair and
cached in `<out>.cache/` (scoring with TF-Inception on a CPU takes minutes per cell): rerunning
after training one more model scores only that one. The untouched sources ("none") are scored
once per pair. The paper's own figures (AffectNet, 64 px) stand beside ours where the paper
reports them; they are not the same data and not directly comparable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

from fxaug.io import write_text
from fxaug.metrics import MetricContext, evaluate
from fxaug.metrics.evaluate import COLUMNS, format_cell
from fxaug.models import list_models

TABLES = {"neutral:happy": "Table 1: neutral -> happy", "happy:sad": "Table 2: happy -> sad"}
# The figures the paper reports (AffectNet, 64 px, neutral -> happy); nothing else is quoted.
PAPER = {("neutral:happy", "StarGAN", "parts"): {"fid": 17.37, "accuracy": 0.97},
         ("neutral:happy", "StarGAN", "image"): {"fid": 21.67, "accuracy": 0.68}}


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _model_id(path: str) -> str:
    """What identifies a checkpoint's weights for the cache: its weights file's size and mtime."""
    folder = Path(path)
    weights = folder / "model.safetensors"
    if weights.is_file():
        st = weights.stat()
        return f"{folder.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return path  # a shipped model's name


def _scored(cache: Path, key: str, compute) -> dict:
    path = cache / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    write_text(path, json.dumps(result, indent=2) + "\n")
    return result


def build_tables(spec: dict, cache: Path, *, data: str, split: str, n: int, metrics: str, device: str) -> dict:
    protocol = dict(data=data, split=split, n=n, metrics=metrics)
    context = MetricContext(device=device)  # one for all models: each pair's reference is embedded once
    tables = {}
    for pair, title in TABLES.items():
        entries = [r for r in spec["rows"] if pair in r.get("pairs", [])]
        if not entries:
            continue
        shipped = set(list_models())
        scored = [r for r in entries if Path(r["model"]).is_dir() or r["model"] in shipped]
        rows = []
        baseline = None
        for r in entries:
            row = {"gan": r["gan"], "method": r["method"], "model": r["model"], "note": r.get("note", ""),
                   "train": r.get("train", ""), "paper": PAPER.get((pair, r["gan"], r["method"]))}
            if r in scored:
                # The first scored model of a table also scores the untouched sources.
                key = _key(protocol, pair, r["method"], _model_id(r["model"]), baseline is None)
                result = _scored(cache, key, lambda r=r: evaluate(
                    r["model"], data, pair, methods=r["method"], n=n, metrics=metrics, baseline=baseline is None,
                    device=device, context=context, splits=split))
                for res in result["rows"]:
                    if res["method"] == "none":
                        baseline = res
                    else:
                        row["scores"] = res
                row["seconds"] = result["seconds"]
            rows.append(row)
        tables[pair] = {"title": title, "baseline": baseline, "rows": rows}
    return {"protocol": protocol, "tables": tables}


def tables_markdown(result: dict) -> str:
    out = []
    metrics_present = {k for t in result["tables"].values() for r in t["rows"] + [{"scores": t["baseline"]}]
                       for k in (r.get("scores") or {})}
    columns = [c for c in COLUMNS if c[0] in metrics_present]
    for pair, table in result["tables"].items():
        out.append(f"### {table['title']}\n")
        header = ["GAN", "method", "N", *[h for _, h, _ in columns], "paper (AffectNet): acc. / FID", "model"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 4) + ["---"] * 2) + "|")
        base = table["baseline"]
        if base:
            out.append("| untouched sources | none | " + str(base["n_scored"]) + " | "
                       + " | ".join(format_cell(base.get(k), f) for k, _, f in columns) + " | | |")
        for r in table["rows"]:
            paper = f"{r['paper']['accuracy']:.2f} / {r['paper']['fid']:.2f}" if r["paper"] else ""
            s = r.get("scores")
            if s is None:
                cells = ["not trained"] + [""] * (len(columns) - 1)
                n = "–"
            else:
                cells = [format_cell(s.get(k), f) for k, _, f in columns]
                n = str(s["n_scored"]) + (f" ({s['n_no_face']} no face)" if s.get("n_no_face") else "")
            model = f"`{r['model']}`" + (f" ({r['note']})" if r["note"] else "")
            out.append("| " + " | ".join([r["gan"], r["method"], n, *cells, paper, model]) + " |")
        out.append("")
    p = result["protocol"]
    out.append(f"Sources: up to {p['n']} seeded {p['split']} faces of the source class per pair; FID/KID "
               f"reference: as many real target-class faces of the same split (TF-Inception, 299 px bilinear). "
               "† judge-FID: the judge's feature space, not comparable to published FID. Identity: face-descriptor "
               "distance to the source; \"same person\": share below 0.6.")
    missing = [r for t in result["tables"].values() for r in t["rows"] if r.get("scores") is None and r["train"]]
    if missing:
        out.append("\nTo fill the rows not trained:\n")
        seen = set()
        for r in missing:
            if r["train"] not in seen:
                seen.add(r["train"])
                out.append(f"    {r['train']}")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="JSON file listing the rows (see benchmarks/paper_tables_cpu.json)")
    p.add_argument("--data", default="data/ferplus", help="FERPlus as prepared by benchmarks/prepare_ferplus.py")
    p.add_argument("--split", default="PublicTest")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--metrics", default="accuracy,fid,kid,identity,judge_fid")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="JSON path; the Markdown tables go beside it (.md)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    spec = json.loads(Path(args.spec).read_text())
    out = Path(args.out)
    result = build_tables(spec, out.with_name(out.name + ".cache"), data=args.data, split=args.split, n=args.n,
                          metrics=args.metrics, device=args.device)
    result["spec"] = args.spec
    markdown = tables_markdown(result)
    write_text(out, json.dumps(result, indent=2) + "\n")
    write_text(out.with_suffix(".md"), markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
