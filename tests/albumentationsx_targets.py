"""The AlbumentationsX versions the suite runs ExpressionTransfer's tests under, each pip-installed
(--no-deps: the rest comes from the suite's environment) into a folder of its own in .venv, to be
put first on a subprocess's PYTHONPATH so the suite's own albumentations (2.0.8) stays.

One version of each sampling API ExpressionTransfer implements: 2.3, the last line with
Albumentations 2.0's hook (get_params_dependent_on_data) but its own record of applied parameters;
2.4.0, sample_parameters(params, data, sampling) returning a dict; 2.5 (and later 2.4 releases),
sample_parameters(params, data, targets, sampling) returning SampledParams.

`make setup` builds them (`python tests/albumentationsx_targets.py`), so the test run does not pay
for three pip installs; a test that finds one missing builds it then.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALBUMENTATIONSX = {
    "2.3.10": ["albumentationsx==2.3.10", "albucore==0.2.12", "numkong==7.8.6", "stringzilla==5.3.2"],
    "2.4.0": ["albumentationsx==2.4.0", "albucore==0.2.12", "numkong==7.8.6", "stringzilla==5.3.2"],
    "2.5.1": ["albumentationsx==2.5.1", "albucore==0.2.21", "numkong==7.8.6", "stringzilla==5.3.2"],
}


def target_folder(version: str) -> Path:
    return REPO / ".venv" / f"albumentationsx-{version}"


def build(version: str) -> Path | str:
    """The version's folder, built once (into a scratch folder renamed into place, so an
    interrupted build is never taken for a finished one); or pip's last error line."""
    target = target_folder(version)
    if (target / "albumentations" / "__init__.py").is_file():
        return target
    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(scratch),
                            *ALBUMENTATIONSX[version]], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        return (built.stderr.strip().splitlines() or ["pip failed"])[-1]
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    return target


if __name__ == "__main__":
    with ThreadPoolExecutor(len(ALBUMENTATIONSX)) as pool:
        for version, result in zip(ALBUMENTATIONSX, pool.map(build, ALBUMENTATIONSX)):
            ok = isinstance(result, Path)
            print(f"AlbumentationsX {version}: " + (str(result.relative_to(REPO)) if ok else f"not built ({result}); "
                  "its tests will try again"), file=sys.stdout if ok else sys.stderr)
