"""The privacy/utility frontier: every method at each epsilon, with several seeds.

Sweeps are data: `get_sweep(name)` returns the points; `experiments/sweep.py` runs them (one
command for all, or `--task_index/--num_tasks` shards for an array job), and
`experiments/figures.py --kind=frontier` draws TSTR against epsilon, one line per method.

  quick      digits, epsilon in {1, 10}, one seed: a smoke run of the whole harness
  digits     digits, epsilon in {0.5, 1, 2, 5, 10, 20}, three seeds, plus the non-private VAE
  mnist_idx  the MNIST IDX split (8,000 / 2,000), epsilon in {1, 2, 5, 10, 20}, three seeds
  mnist_idx_cpu  the same split sized for 2 CPU cores: epsilon 1 and 10, three seeds, an MLP
             decoder, 600 steps for every method, logistic-regression TSTR only (a study of
             where each method stands, not the full frontier)
  mnist      TFDS MNIST (60,000 records, for accelerators), as mnist_idx
  bank       UCI bank-marketing (36,169 / 9,042 records, 17 mixed columns), epsilon 1 and 10,
             three seeds; the central baselines (MST, AIM) run with experiments/baselines.py
  breast_cancer  scikit-learn's breast-cancer table (455 / 114 records, 30 numeric columns),
             epsilon 1 and 10, three seeds; 500 steps, DP-SGD sampling rate 0.15

The epsilon of a point is its method's headline: end-to-end (training and release) for
lipdp-e2e, lipdp-shuffled and dpsgd-vae; per-record, with the model NOT covered, for
lipdp-conditional (the original paper's setting). delta = 1e-5 throughout.
"""

import math
from lipdp.studies.points import point

METHODS = ("lipdp-conditional", "lipdp-e2e", "lipdp-shuffled", "dpsgd-vae")
SETTINGS = {
  # name: (config variant, epsilons, seeds, extra overrides)
  "quick": ("quick", (1.0, 10.0), (0,), {"evaluation.fast": True}),
  "digits": ("quick", (0.5, 1.0, 2.0, 5.0, 10.0, 20.0), (0, 1, 2), {}),
  "mnist_idx": ("mnist_idx", (1.0, 2.0, 5.0, 10.0, 20.0), (0, 1, 2), {}),
  "mnist_idx_cpu": (
    "mnist_idx",
    (1.0, 10.0),
    (0, 1, 2),
    {"model.decoder": "mlp", "train.num_steps": 600, "evaluation.fast": True},
  ),
  "mnist": ("mnist", (1.0, 2.0, 5.0, 10.0, 20.0), (0, 1, 2), {}),
  "bank": ("bank", (1.0, 10.0), (0, 1, 2), {}),
  "breast_cancer": ("breast_cancer", (1.0, 10.0), (0, 1, 2), {}),
}


def get_sweep(name: str):
  if name not in SETTINGS:
    raise ValueError(f"unknown frontier sweep {name!r}; choose from {sorted(SETTINGS)}")
  variant, epsilons, seeds, extra = SETTINGS[name]
  sweep = f"frontier-{name}"
  points = [
    point(sweep, method, variant, eps, seed, extra)
    for method in METHODS
    for eps in epsilons
    for seed in seeds
  ]
  points += [point(sweep, "vae", variant, math.inf, seed, extra) for seed in seeds]
  return points
