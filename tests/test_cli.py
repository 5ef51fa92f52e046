import json
import subprocess
import sys
from pathlib import Path

import fxaug
from fxaug.cli import main

REPO = Path(__file__).resolve().parents[1]
FXAUG = Path(sys.executable).parent / "fxaug"


def test_console_script_help_lists_subcommands():
    out = subprocess.run([str(FXAUG), "--help"], capture_output=True, text=True, check=True).stdout
    assert "inspect" in out and "commands" in out


def test_version():
    out = subprocess.run([str(FXAUG), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"fxaug {fxaug.__version__}"


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "fxaug", "--version"], capture_output=True, text=True, check=True)
    assert fxaug.__version__ in out.stdout


def test_inspect_bundled_sample(capsys):
    assert main(["inspect", str(REPO / "examples" / "sample"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = {d.name: len(list(d.glob("*.png"))) for d in (REPO / "examples" / "sample").iterdir() if d.is_dir()}
    assert out["format"] == "folders"
    assert out["counts"] == expected and sum(expected.values()) == 100
    assert out["skipped"] == 0


def test_inspect_text_histogram(capsys):
    assert main(["inspect", str(REPO / "examples" / "sample")]) == 0
    out = capsys.readouterr().out
    assert "found: class folders" in out and "100 images in 8 classes" in out and "neutral" in out


def test_inspect_bad_path_is_a_clear_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_inspect_shows_progress_unless_quiet(capsys):
    """As rebalance and transfer: a bar on stderr while images are decoded (a pipe too, not only
    a terminal), silenced by -q, --no-progress, and --json (whose stdout is for programs)."""
    sample = str(REPO / "examples" / "sample")
    assert main(["inspect", sample]) == 0
    err = capsys.readouterr().err
    assert "inspect: 100%" in err and "100/100" in err and "unreadable=0" in err
    for args in (["-q", "inspect", sample], ["inspect", sample, "--no-progress"], ["inspect", sample, "--json"],
                 ["inspect", sample, "--no-decode"]):
        assert main(args) == 0
        assert capsys.readouterr().err == "", args
