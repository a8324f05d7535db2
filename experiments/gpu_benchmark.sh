#!/usr/bin/env bash
# The benchmark's train-step sections (mlp_step, vae_step, memory) at batch 1024 on an
# accelerator, with the table written to a file:
#
#   experiments/gpu_benchmark.sh [TABLE] [extra benchmark flags]
#
# TABLE defaults to $OUT/gpu_benchmark.md when $OUT is set (the device tool's output folder),
# else ./gpu_benchmark.md; the full log goes beside it (.log). About 3-5 minutes, mostly
# compilation. Needs jax with the accelerator's plugin, flax, optax, orbax-checkpoint, absl-py,
# scipy and dp-accounting. Wheels found in .whl/ are installed first (into /tmp/site); on a
# machine without dp-accounting, fetch it beforehand where pip works:
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl dp-accounting==0.6.0
# and carry .whl (ignore it in git: echo /.whl/ >> .git/info/exclude).
set -euo pipefail
cd "$(dirname "$0")/.."
TABLE="${1:-${OUT:-.}/gpu_benchmark.md}"
shift || true
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import jax; print('devices:', jax.devices())"
python3 experiments/benchmark.py --sections=mlp_step,vae_step,memory --batch_size=1024 \
  --output="$TABLE" "$@" 2>&1 | tee "${TABLE%.md}.log"
