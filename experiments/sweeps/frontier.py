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

End to end, with the DP-SGD recipe (docs/results.md, "The DP-SGD recipe study") and DP-MERF:

  mnist_idx_e2e  mnist_idx, epsilon in {1, 2, 5, 10}, three seeds: lipdp-e2e (release share
             0.5), lipdp-shuffled (central share 0.1), the DP-SGD VAE, DP-MERF, and the
             conditional scope and the non-private VAE as reference lines; the recipe's model
             (16 latents, a 512-256 encoder, 16 style latents, label weight 5 in the record),
             1,500 DP-SGD steps of 256 expected records
  digits_e2e  digits (the public proxy, where ./run.sh's end-to-end rule is judged), epsilon 1
             and 10, three seeds, the quick variant's 500 steps
  mnist_idx_e2e_cvae  mnist_idx_e2e's DP-SGD-trained methods (lipdp-e2e, lipdp-shuffled, the
             DP-SGD VAE) with a label-conditioned decoder (`model.label_conditioned`): the
             decoder reads the record's label in training and a uniformly drawn one at synthesis,
             the one change from mnist_idx_e2e
  digits_e2e_cvae  digits_e2e's DP-SGD-trained methods with the label-conditioned decoder
  mnist_idx_e2e_cvae_steps6000  mnist_idx_e2e_cvae with 6,000 DP-SGD steps instead of 1,500,
             epsilon 1 and 10: the step count from digits' steps study (knobs.py:steps-digits,
             the proxy), probed first on MNIST with one seed (knobs.py:steps-mnist)
  digits_e2e_steps8000  digits_e2e with 8,000 DP-SGD steps (knobs.py:steps-digits found the
             steps to matter on the proxy): the setting ./run.sh's rule is judged on
  bank_e2e, breast_cancer_e2e  the tables at epsilon 1 and 10, three seeds: the same methods
             (MST and AIM are in results/baselines.jsonl)
  breast_cancer_e2e_auto  breast_cancer_e2e with the default numeric likelihood since it became
             'auto' (bins for the columns a schema declares integer, a Gaussian for the others:
             every breast-cancer column is real-valued, so a Gaussian for each), the one change;
             breast cancer's other sweeps pin the bins they were measured with
             (BINNED_NUMERIC). Fixed before any run. breast_cancer_e2e_auto_cvae is it
             with the label-conditioned decoder (built like every _cvae setting).
  bank_e2e_cvae, breast_cancer_e2e_cvae  their DP-SGD-trained methods with a label-conditioned
             decoder whose labels come from a label prior learned with the weights under DP-SGD
             (`model.label_prior` unset: 'learned' for tables), the one change

Every method of these settings has 16 style latents (the default is 8): in lipdp's methods the
released latent can move by only about one noise standard deviation across the whole domain,
so the unconstrained style latent has to carry what the DP-SGD VAE's latent carries. Chosen on
digits before these runs: lipdp-shuffled at total epsilon 10 went from TSTR 0.22 / 0.29 with 8
style latents to 0.39 / 0.44 with 16 (seeds 0 / 1), the DP-SGD VAE from 0.48 / 0.43 to 0.49 /
0.54.

lipdp-shuffled's central share 0.1 is fixed from the accounting alone, before any run: it is
about the largest share that raises DP-SGD's calibrated noise multiplier by no more than 10%
over the DP-SGD VAE's at every epsilon (at total epsilon 1: 10.2 against 9.3; at 10: 1.39
against 1.26; 8,000 records, sampling rate 0.032, 1,500 steps).

The epsilon of a point is its method's headline: end-to-end (training and release) for
lipdp-e2e, lipdp-shuffled and dpsgd-vae; per-record, with the model NOT covered, for
lipdp-conditional (the original paper's setting). delta = 1e-5 throughout.
"""

import math
from lipdp.studies.points import point

METHODS = ("lipdp-conditional", "lipdp-e2e", "lipdp-shuffled", "dpsgd-vae")
# Breast cancer's rows before model.numeric_likelihood 'auto' became the default were measured
# with every numeric column binned; the older sweeps pin that, so their points reproduce their
# rows (breast cancer declares no integer column, so 'auto' makes every column Gaussian).
BINNED_NUMERIC = {"model.numeric_likelihood": "binned"}
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
  "breast_cancer": ("breast_cancer", (1.0, 10.0), (0, 1, 2), dict(BINNED_NUMERIC)),
}


# The recipe's model for the MNIST end-to-end frontier (knobs.py:RECIPE with the style latent).
_MNIST_RECIPE = {
  "model.decoder": "mlp",
  "model.style_dim": 16,
  "label_weight": 5.0,
  "model.latent_dim": 16,
  "model.encoder_hidden": (512, 256),
  "train.dp_sampling_rate": 0.032,
  "train.num_steps": 1500,
  "evaluation.fast": True,
}
# Per method, the overrides on top of a setting's (end-to-end frontiers).
E2E_METHODS = {
  "lipdp-conditional": {},
  "lipdp-e2e": {},
  "lipdp-shuffled": {"release_share": 0.1},
  "dpsgd-vae": {},
  "dp-merf": {},
}
# The label-conditioned study changes the decoder of the methods that train one with DP-SGD.
_CVAE_METHODS = {m: E2E_METHODS[m] for m in ("lipdp-e2e", "lipdp-shuffled", "dpsgd-vae")}
E2E_SETTINGS = {
  "mnist_idx_e2e": ("mnist_idx", (1.0, 2.0, 5.0, 10.0), (0, 1, 2), _MNIST_RECIPE),
  "digits_e2e": ("quick", (1.0, 10.0), (0, 1, 2), {"evaluation.fast": True, "model.style_dim": 16}),
  # digits_e2e with 8,000 DP-SGD steps instead of 500 (knobs.py:steps-digits, on the proxy).
  "digits_e2e_steps8000": (
    "quick",
    (1.0, 10.0),
    (0, 1, 2),
    {"evaluation.fast": True, "model.style_dim": 16, "train.num_steps": 8000},
  ),
  "bank_e2e": ("bank", (1.0, 10.0), (0, 1, 2), {"evaluation.fast": True, "model.style_dim": 16}),
  "breast_cancer_e2e": (
    "breast_cancer",
    (1.0, 10.0),
    (0, 1, 2),
    {"evaluation.fast": True, "model.style_dim": 16, **BINNED_NUMERIC},
  ),
  # breast_cancer_e2e with the default numeric likelihood ('auto': a Gaussian for each of its
  # 30 real-valued columns), the one change; fixed before any run.
  "breast_cancer_e2e_auto": (
    "breast_cancer",
    (1.0, 10.0),
    (0, 1, 2),
    {"evaluation.fast": True, "model.style_dim": 16},
  ),
}
# The label-conditioned studies: each base setting with the decoder's conditioning, the one change.
E2E_SETTINGS.update(
  {
    f"{name}_cvae": (variant, epsilons, seeds, {**extra, "model.label_conditioned": True})
    for name, (variant, epsilons, seeds, extra) in list(E2E_SETTINGS.items())
  }
)
# The label-conditioned MNIST frontier with four times the DP-SGD steps (the one change).
# Epsilon 1 and 10 first; 2 and 5 added after those rows, to complete the frontier.
E2E_SETTINGS["mnist_idx_e2e_cvae_steps6000"] = (
  "mnist_idx",
  (1.0, 2.0, 5.0, 10.0),
  (0, 1, 2),
  {**E2E_SETTINGS["mnist_idx_e2e_cvae"][3], "train.num_steps": 6000},
)


def get_sweep(name: str):
  if name in E2E_SETTINGS:
    variant, epsilons, seeds, extra = E2E_SETTINGS[name]
    sweep = f"frontier-{name}"
    methods = _CVAE_METHODS if "_cvae" in name else E2E_METHODS
    points = [
      point(sweep, method, variant, eps, seed, {**extra, **over})
      for method, over in methods.items()
      for eps in epsilons
      for seed in seeds
    ]
    points += [point(sweep, "vae", variant, math.inf, seed, extra) for seed in seeds]
    return points
  if name not in SETTINGS:
    raise ValueError(
      f"unknown frontier sweep {name!r}; choose from {sorted(SETTINGS) + sorted(E2E_SETTINGS)}"
    )
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
