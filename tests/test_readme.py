"""README.md's code runs, so the documentation cannot drift (issue #20's acceptance).

Every fenced block of code in the README (```python, ```bash, ```console) is run here, in
README order, in one working folder, unless an HTML comment on the line before it says why not:

    <!-- not-tested: trains for an hour on a GPU -->

and the README has no indented code blocks (which would escape both). ```text blocks are not
code. Python blocks run with `exec`, each in a fresh namespace holding GIVENS; shell blocks run
each `fxaug ...` command through fxaug's own entry point (`fxaug.cli.main`), and any other
command fails the test (mark its block instead). A ```console block's `$ fxaug ...` lines run
the same way and their stdout must show the lines printed under them, in order ("..." stands
for any lines).

What the README's snippets take for granted, made real from the bundled sample's FER faces
(examples/sample) so the test needs nothing outside the repository:

    AffectNet/, affectnet/   small datasets in AffectNet's official layout (images + CSVs)
    photos/                  three face photos
    data/ferplus/            class folders with a PublicTest split (what prepare_ferplus.py writes)
    runs/x/generator/        a generator checkpoint folder (the shipped one, copied)
    examples/                the repository's examples (a link)
    image, images            a face (RGB uint8) and a list of faces
    generated                `image`'s face made happy by the shipped generator
    ds                       a datasets.Dataset of faces (image, label)
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SAMPLE = REPO / "examples" / "sample"
RUN = {"python", "bash", "sh", "shell", "console"}  # code: run, or marked not-tested
NOT_CODE = {"text", "markdown", "json", "yaml", "toml", "csv"}
NOT_TESTED = re.compile(r"^<!--\s*not-tested:\s*(?P<why>.*?)\s*-->$")


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_tested: str | None  # the reason given, or None: the block is run

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.language}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each with the not-tested reason on the line before."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
        if end is None:
            raise ValueError(f"README.md:{i + 1}: a code fence that is never closed")
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        mark = NOT_TESTED.match(before)
        blocks.append(Block(i + 1, language, "\n".join(lines[i + 1:end]) + "\n", mark.group("why") if mark else None))
        i = end + 1
    return blocks


def indented_code(text: str) -> list[int]:
    """Line numbers of Markdown indented code blocks (4 spaces after a blank line, outside fences
    and lists)."""
    found, in_fence, previous = [], False, ""
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"^(`{3,}|~{3,})", line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("    ") and line.strip() and not previous.strip():
            found.append(number)
        previous = line if not in_fence else "x"
    return found


BLOCKS = readme_blocks(README.read_text())


def test_every_code_block_is_run_or_says_why_not():
    text = README.read_text()
    assert not indented_code(text), f"README.md lines {indented_code(text)}: indented code escapes this test; " \
                                    f"fence it (```bash, ```python, or ```text when it is no code)"
    for block in BLOCKS:
        assert block.language, f"{block.id}: name the block's language (```python, ```bash, ```text, ...)"
        assert block.language in RUN | NOT_CODE, f"{block.id}: a {block.language!r} block: add it to RUN or NOT_CODE"
        if block.not_tested is not None:
            assert block.language in RUN, f"{block.id}: only code is marked not-tested"
            assert len(block.not_tested.split()) >= 3, f"{block.id}: say why it is not tested"
    run = [b for b in BLOCKS if b.language in RUN and b.not_tested is None]
    assert {b.language for b in run} >= {"python", "bash", "console"}  # the parser found what it should


def test_the_parser_sees_marks_and_fences():
    blocks = readme_blocks("text\n\n<!-- not-tested: needs a GPU here -->\n```bash\nfxaug x\n```\n\n```python\n"
                           "a = 1\n```\n")
    assert [(b.line, b.language, b.code, b.not_tested) for b in blocks] == [
        (4, "bash", "fxaug x\n", "needs a GPU here"), (8, "python", "a = 1\n", None)]
    assert indented_code("para\n\n    code\n\n- item\n    more\n") == [3]


# -- the working folder -------------------------------------------------------------------------

def _faces(emotion: str, n: int, start: int = 0) -> list[tuple[str, np.ndarray]]:
    files = sorted((SAMPLE / emotion).glob("*.png"))[start:start + n]
    assert len(files) == n, f"the bundled sample has fewer than {start + n} {emotion} faces"
    return [(f.name, np.asarray(Image.open(f))) for f in files]


def _write_affectnet(root: Path, per_class: dict[str, int]) -> None:
    """AffectNet's layout: Manually_Annotated_Images/<n>/<file> and training.csv / validation.csv,
    each face's box the whole 48 px crop, no landmarks (fxaug finds them)."""
    from fxaug import emotions as E

    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
              "expression", "valence", "arousal"]
    rows = {"training.csv": [], "validation.csv": []}
    for emotion, n in per_class.items():
        for k, (name, pixels) in enumerate(_faces(emotion, n)):
            rel = f"{k % 3 + 1}/{emotion}-{name}"
            (root / "Manually_Annotated_Images" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / "Manually_Annotated_Images" / rel)
            rows["validation.csv" if k == n - 1 and n > 2 else "training.csv"].append(
                [rel, 0, 0, pixels.shape[1], pixels.shape[0], "", E.index(emotion), 0.0, 0.0])
    for name, body in rows.items():
        with open(root / name, "w", newline="") as f:
            csv.writer(f).writerows([header, *body])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    from fxaug.models import BUNDLED_DIR

    root = tmp_path_factory.mktemp("readme")
    (root / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    _write_affectnet(root / "AffectNet", {"neutral": 4, "happy": 3, "sad": 3})
    # filled to 4 by default (4 faces to make), to half the largest (2) with --sampling-strategy 0.5 (1 face)
    _write_affectnet(root / "affectnet", {"neutral": 4, "happy": 3, "sad": 1, "surprise": 4})
    (root / "photos").mkdir()
    for name, pixels in _faces("neutral", 3, start=10):
        Image.fromarray(pixels).save(root / "photos" / name)
    for emotion in ("neutral", "happy", "sad"):
        for split, faces in (("PublicTest", _faces(emotion, 4)), ("Training", _faces(emotion, 2, start=4))):
            folder = root / "data" / "ferplus" / split / emotion
            folder.mkdir(parents=True)
            for name, pixels in faces:
                Image.fromarray(pixels).save(folder / name)
    shutil.copytree(BUNDLED_DIR / "inpaint-ferplus-48", root / "runs" / "x" / "generator")
    return root


@pytest.fixture(scope="module")
def givens(workspace) -> dict:
    import datasets

    import fxaug
    from fxaug import emotions as E

    faces = [pixels for emotion in ("neutral", "sad") for _, pixels in _faces(emotion, 2)]
    image = np.stack([faces[0]] * 3, axis=-1)
    generated = fxaug.ExpressionPipeline("inpaint-ferplus-48", device="cpu").transfer([image], "happy")[0]
    assert generated.found, generated.reason
    labels = ["neutral", "neutral", "sad", "sad"]
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(f) for f in faces], "label": [E.index(c) for c in labels]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(E.EMOTIONS))}))
    return {"image": image, "images": faces, "generated": generated.image, "ds": ds}


# -- running the blocks -------------------------------------------------------------------------

def _commands(code: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comment lines dropped."""
    commands, pending = [], ""
    for line in code.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
        else:
            commands.append(pending)
            pending = ""
    return commands + ([pending] if pending else [])


def _run_fxaug(command: str, where: str) -> int:
    from fxaug.cli import main

    argv = shlex.split(command, comments=True)
    if not argv or argv[0] != "fxaug":
        pytest.fail(f"{where}: `{command}` is not an fxaug command, which is all this test runs; mark the block "
                    f"<!-- not-tested: why --> or give it a block of its own")
    return main(argv[1:])


def _shows(actual: str, expected: list[str]) -> bool:
    """Whether the lines of `actual` contain the `expected` lines in order; "..." is any lines."""
    lines = [line.rstrip() for line in actual.splitlines()]
    at, gap = 0, False
    for want in (line.rstrip() for line in expected):
        if want == "...":
            gap = True
            continue
        if gap:
            while at < len(lines) and lines[at] != want:
                at += 1
        if at >= len(lines) or lines[at] != want:
            return False
        at, gap = at + 1, False
    return gap or at == len(lines)


def test_shows_matches_lines_in_order():
    assert _shows("a\nb\nc\n", ["a", "...", "c"]) and _shows("a\nb\n", ["a", "..."])
    assert not _shows("a\nb\n", ["a"]) and not _shows("a\nc\n", ["a", "b", "..."])


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language in RUN and b.not_tested is None], ids=lambda b: b.id)
def test_readme_block_runs(block: Block, workspace, givens, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    if block.language == "python":
        namespace = {"__name__": "__readme__", **givens}
        exec(compile(block.code, block.id, "exec"), namespace)
        return
    if block.language == "console":
        steps, expected = [], None
        for line in block.code.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], expected := []))
            elif expected is None:
                pytest.fail(f"{block.id}: a console block starts with a `$ ` command line")
            else:
                expected.append(line)
        for command, lines in steps:
            capsys.readouterr()
            assert _run_fxaug(command, block.id) == 0, f"{block.id}: `{command}` failed"
            out = capsys.readouterr().out
            assert _shows(out, lines), f"{block.id}: `{command}` printed\n{out}\nnot the README's\n" + "\n".join(lines)
        return
    for command in _commands(block.code):
        code = _run_fxaug(command, block.id)
        assert code == 0, f"{block.id}: `{command}` exited {code}: {capsys.readouterr().err[-2000:]}"
