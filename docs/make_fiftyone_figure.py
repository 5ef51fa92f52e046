"""Make docs/images/fiftyone.png: a rebalance output, imported as a grouped FiftyOne dataset,
in the FiftyOne App, photographed by headless Chromium.

    # an existing `fxaug rebalance --out` folder
    python docs/make_fiftyone_figure.py --rebalanced runs/balanced
    # or rebalance first (into a temporary folder), with a trained generator
    python docs/make_fiftyone_figure.py --dataset examples/sample --model runs/x/generator --classes sad

Steps: import with fxaug.integrations.fiftyone.to_fiftyone, fo.launch_app on 127.0.0.1 (no
browser opened), `chromium --headless --dump-dom` to check that the App shows the grouped
dataset (its slice names and group count), then `chromium --headless --screenshot`. Needs the
`fiftyone` extra and a Chromium (Debian: apt-get install chromium). The database is the
usual FiftyOne one unless FIFTYONE_DATABASE_DIR / FIFTYONE_DATABASE_URI say otherwise; the
figure's dataset is not persistent, so it goes when the script ends.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "images" / "fiftyone.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}); "
                                f"Debian: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="fxaug-chromium-") as profile:
        # A throwaway profile: no first-run state, no clash with a running browser.
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--hide-scrollbars", f"--user-data-dir={profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def dump_dom(url: str, budget_ms: int = 20000, timeout: float = 300) -> str:
    """The page's DOM after `budget_ms` of (virtual) time: what the App rendered."""
    return _chromium(["--window-size=1600,1000", f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                     timeout).stdout


def screenshot(url: str, png: Path, budget_ms: int = 20000, timeout: float = 300) -> Path:
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    run = _chromium(["--window-size=1600,1000", f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", url],
                    timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot ({run.returncode}): {run.stderr[-2000:]}")
    return png


def wait_for_app(url: str, dataset_name: str, slices: list[str], tries: int = 6, budget_ms: int = 20000) -> str:
    """Load the App until its DOM names the dataset and its slices (a loaded App, not a spinner);
    returns that DOM, or raises with what was seen."""
    dom = ""
    for _ in range(tries):
        dom = dump_dom(url, budget_ms)
        text = re.sub(r"<[^>]+>", " ", dom)
        if dataset_name in text and all(name in text for name in slices):
            return dom
        time.sleep(2)
    seen = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))[:1500]
    raise RuntimeError(f"the App at {url} never showed {dataset_name!r} with slices {slices}; last page text: {seen}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_figure(rebalanced: Path, out: Path = DEFAULT_OUT, name: str = "fxaug-figure", port: int | None = None,
                budget_ms: int = 20000) -> dict:
    """Import, launch, check, photograph. Returns what was checked (dataset, counts, url, dom)."""
    import fiftyone as fo

    from fxaug.integrations.fiftyone import ORIGINAL_SLICE, all_slices, to_fiftyone

    dataset = to_fiftyone(rebalanced, name=name, overwrite=True)
    slices = sorted(set(all_slices(dataset).values("group.name")), key=lambda s: (s != ORIGINAL_SLICE, s))
    # The session's view is one synthesized slice's groups: the grid shows synthesized faces,
    # the group slice selector lists every slice.
    port = port or free_port()
    session = fo.launch_app(dataset, port=port, address="127.0.0.1", remote=True)
    try:
        url = f"http://127.0.0.1:{port}/datasets/{dataset.name}"
        dom = wait_for_app(url, dataset.name, [ORIGINAL_SLICE], budget_ms=budget_ms)
        screenshot(url, out, budget_ms)
    finally:
        session.close()
    return {"dataset": dataset.name, "groups": len(dataset.distinct("group.id")),
            "samples": len(all_slices(dataset)), "slices": slices, "url": url, "dom": dom, "png": str(out)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--rebalanced", type=Path, help="a `fxaug rebalance --out` folder")
    src.add_argument("--dataset", type=Path, help="rebalance this dataset first (needs --model)")
    p.add_argument("--model", help="generator for --dataset (a checkpoint folder or shipped name)")
    p.add_argument("--classes", help="classes to fill, for --dataset (comma-separated)")
    p.add_argument("--target", type=int, help="faces per class, for --dataset")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG (default {DEFAULT_OUT.relative_to(REPO)})")
    p.add_argument("--name", default="fxaug-figure", help="FiftyOne dataset name (replaced)")
    p.add_argument("--port", type=int, help="App port (default: a free one)")
    p.add_argument("--budget-ms", type=int, default=20000, help="Chromium's virtual time for the App to load")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fxaug-figure-") as tmp:
        rebalanced = args.rebalanced
        if rebalanced is None:
            if not args.model:
                p.error("--dataset needs --model")
            from fxaug.rebalance import rebalance

            rebalanced = Path(tmp) / "rebalanced"
            rebalance(args.dataset, rebalanced, model=args.model, target=args.target, progress=False,
                      classes=args.classes.split(",") if args.classes else None)
        result = make_figure(rebalanced, args.out, args.name, args.port, args.budget_ms)
    print(f"{result['png']}: dataset {result['dataset']!r}, {result['groups']} groups, {result['samples']} samples, "
          f"slices {', '.join(result['slices'])}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    sys.exit(main())
