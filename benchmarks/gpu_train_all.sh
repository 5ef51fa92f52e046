#!/usr/bin/env bash
# One call on a lent GPU trains fxaug's generators on the carried FERPlus training set, in about
# 9 minutes: the guide classifier, the in-context generator (inpaint, the shipped family) at the
# GPU batch, then the papers' StarGAN and CycleGAN (WGAN-GP, the paper's optimiser settings) on
# the same aligned faces. Every run leaves its run directory (options, metrics, samples,
# snapshots, exported generator) under $OUT, which the device tool brings back.
#
# Prepare here (once; ~57 MiB, within the 64 MiB carry):
#   .venv/bin/python tools/pack_training_set.py --data data/ferplus --out training/gpu/ferplus-regions-48.npz
# Rehearse on the CPU (a few steps of everything, ~2 minutes):
#   REHEARSE=1 OUT=/tmp/gpu-rehearsal bash benchmarks/gpu_train_all.sh
# On the device (the `run` tool): command "bash benchmarks/gpu_train_all.sh", carry ["training/gpu"],
#   timeout_s 600. The device has torch, numpy, opencv and safetensors; fxaug installs from this
#   checkout without dependencies.
# RUNS picks the stages (default "guide inpaint stargan cyclegan", which fill the 600 s). The
#   2cet-inpaint family (2CET's encoder driving the in-context generator, issue #17) needs the guide
#   trained in the same call: command 'RUNS="guide 2cet-inpaint" bash benchmarks/gpu_train_all.sh'. So
#   does stargan-guided, the StarGAN with issue #18's guide and FiLM: RUNS="guide stargan-guided".
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-training/gpu/ferplus-regions-48.npz}
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1

if python3 -c "import fxaug.trainers" 2>/dev/null; then PY=python3
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else
  python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/fxaug-site . >/dev/null
  export PYTHONPATH=/tmp/fxaug-site
  PY=python3
fi
[ -f "$DATA" ] || { echo "gpu_train_all: $DATA is missing (tools/pack_training_set.py writes it; carry training/gpu)" >&2; exit 2; }

if [ "${REHEARSE:-0}" = 1 ]; then
  GUIDE_EPOCHS=1; INPAINT_STEPS=6; TWOCET_STEPS=6; GAN_STEPS=10; BATCH=8; EVERY=3; LIMIT=120; SUBSET=(--max-per-class 40); GUIDE_BATCH=64
else
  # H200 budget (~540 s in all): guide ~40 s, inpaint ~4 min, StarGAN ~2 min, CycleGAN ~1.5 min.
  GUIDE_EPOCHS=${GUIDE_EPOCHS:-12}; INPAINT_STEPS=${INPAINT_STEPS:-20000}; GAN_STEPS=${GAN_STEPS:-15000}
  TWOCET_STEPS=${TWOCET_STEPS:-20000}  # 2cet-inpaint: untimed on a GPU; LIMIT stops it at its share
  BATCH=64; EVERY=2500; LIMIT=${LIMIT:-250}; SUBSET=(); GUIDE_BATCH=256
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/device.txt"
RUNS=${RUNS:-guide inpaint stargan cyclegan}
run() {  # a run that overstays its share is stopped; its last snapshot and samples remain
  local name=$1; shift
  [[ " $RUNS " == *" $name "* ]] || return 0
  echo "== $name: $*" | tee -a "$OUT/commands.txt"
  local start=$SECONDS status=0
  timeout --signal=INT "$LIMIT" "$@" > "$OUT/$name.log" 2>&1 || status=$?
  echo "$name: exit $status after $((SECONDS - start)) s" | tee -a "$OUT/commands.txt"
}
COMMON=(--data "$DATA" "${SUBSET[@]}" --size 48 --batch "$BATCH" --snapshot-every "$EVERY" --sample-every "$EVERY" --log-every 50 --no-progress --no-tensorboard)

run guide $PY -m fxaug.trainers.guide --data "$DATA" --out "$OUT/guide" "${SUBSET[@]}" --epochs "$GUIDE_EPOCHS" --batch "$GUIDE_BATCH" --lr 0.1
run inpaint $PY -m fxaug.trainers inpaint "${COMMON[@]}" --domains all --steps "$INPAINT_STEPS" \
  --guide "$OUT/guide/guide" --out "$OUT/inpaint-fer-48"
run 2cet-inpaint $PY -m fxaug.trainers 2cet-inpaint "${COMMON[@]}" --domains all --steps "$TWOCET_STEPS" \
  --guide "$OUT/guide/guide" --out "$OUT/2cet-inpaint-fer-48"
# The papers' configurations as far as this data allows (FERPlus, not AffectNet; 48 px aligned faces):
run stargan $PY -m fxaug.trainers stargan "${COMMON[@]}" --method image --domains neutral,happy,sad \
  --steps "$GAN_STEPS" --out "$OUT/stargan-image-48"
run cyclegan $PY -m fxaug.trainers cyclegan "${COMMON[@]}" --method image --domains neutral,happy \
  --steps "$GAN_STEPS" --out "$OUT/cyclegan-image-48"
# StarGAN with issue #18's departures from the paper: FiLM label injection and the guide's expression
# signal instead of D's classifier (the CPU run of session 12, docs/models.md); needs the guide stage.
run stargan-guided $PY -m fxaug.trainers stargan "${COMMON[@]}" --method image --domains neutral,happy,sad \
  --residual --label-injection film --guide "$OUT/guide/guide" --steps "$GAN_STEPS" --out "$OUT/stargan-guided-48"
ls -R "$OUT" | head -50
