#!/usr/bin/env bash
# The accelerator check: one JSON file of speed, FLOPs, memory and an end-to-end run.
#
#   experiments/gpu_check.sh [--cpu] [OUT_JSON]      # OUT_JSON: docs/results/gpu_check.json
#
# With a GPU (nvidia-smi lists one) it first installs JAX's CUDA 12 build into the repo's
# .venv (`pip install -U "jax[cuda12]==<the installed jax version>"`, so that flax and the
# rest keep the JAX they were tested with), then runs `python -m experiments.gpu_check`:
# experiments.benchmark for beta_vae and gem (Burgess and paper networks, batch 32 and 256),
# the PyTorch step of the same β-VAE network (experiments/torch_reference.py; skipped with
# "torch not installed"), batched seeds (S = 1, 4, 16 seeds' steps vmapped in one step
# against S sequential steps: does a batched-seeds trainer pay on a GPU?), the tf.data input
# pipeline alone and a short synthetic_gem run.
# Estimated at 6-9 minutes on one H100-class GPU (not yet run on one). Without a GPU, or
# with --cpu, it runs the same steps at tiny sizes on the CPU (2 min 36 s on 2 idle cores)
# and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
OUT=docs/results/gpu_check.json
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE=cpu ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) OUT="$arg" ;;
  esac
done

PY=${PY:-.venv/bin/python}
if [[ ! -x "$PY" ]]; then PY=python3; fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

NOTE=""
if [[ "$MODE" == gpu ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
    JAX_VERSION=$("$PY" -c 'import jax; print(jax.__version__)')
    if "$PY" -m pip install -q -U "jax[cuda12]==${JAX_VERSION}"; then
      NOTE="GPU: ${GPU_NAME}; installed jax[cuda12]==${JAX_VERSION}"
    else
      NOTE="GPU: ${GPU_NAME}; pip install jax[cuda12]==${JAX_VERSION} FAILED"
    fi
  else
    MODE=cpu
    NOTE="no GPU found (nvidia-smi): ran the CPU smoke mode"
  fi
else
  NOTE="--cpu: the CPU smoke mode"
fi

ARGS=(--out "$OUT" --note "$NOTE")
if [[ "$MODE" == cpu ]]; then ARGS+=(--cpu); fi
exec "$PY" -m experiments.gpu_check "${ARGS[@]}"
