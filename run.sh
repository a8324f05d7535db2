#!/usr/bin/env bash
# The main job: Lipschitz VAE on scikit-learn's digits (offline), private synthesis, report.
# Any flag is passed through, e.g.
#   ./run.sh --config.total_epsilon=4 --workdir=runs/eps4   (end to end, the default scope)
#   ./run.sh --config=experiments/configs/default.py:conditional --config.epsilon=4 --workdir=runs/paper
#   ./run.sh --config=experiments/configs/default.py:mnist_idx --config.data_dir=/path/to/mnist-test
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
exec "$PYTHON" experiments/main.py "$@"
