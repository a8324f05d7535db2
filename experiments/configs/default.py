"""Configuration of the main job: Lipschitz VAE on scikit-learn's digits.

The default (no variant) releases digits end to end: DP-SGD training and the release at one
total epsilon of 10 (scope 'dp-sgd'), with the steps that reach logistic-regression TSTR 0.7 on
digits (docs/results.md, "Digits with more DP-SGD steps"). `:conditional` is the original
paper's setting (per-record epsilon 1, weights not covered) and the base the other variants
change.

Configs are code (big_vision style): `get_config(arg)` takes an optional variant name,
e.g. `--config=experiments/configs/default.py:mnist_idx` or `:smoke` for a seconds-long run.
Any field can be overridden on the command line, e.g. `--config.total_epsilon=4`. The fields and
their defaults, each with its meaning, are the settings of lipdp/spec.py; the variants below
change a few.
"""

import os

import ml_collections

from lipdp import spec

# Data shipped beside the project (not with it): found through this environment variable.
_DATA_DIR_ENV = "LIPDP_DATA_DIR"
_SCHEMAS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = spec.table_config() if arg in ("table", "bank") else spec.base_config()

  if arg == "":
    # End to end on digits: frontier.py:digits_e2e_steps8000's lipdp-e2e with noise multiplicity
    # 4 (knobs.py:noise-samples-digits: 0.811 against 0.714 over three seeds; by its rule, the
    # digits default).
    c.scope = "dp-sgd"
    c.total_epsilon = 10.0
    c.train.num_steps = 8000
    c.train.dp_sampling_rate = 0.09  # about 130 of the 1,438 training records per step
    c.train.noise_samples = 4
    c.model.style_dim = 16
  elif arg == "conditional":
    pass  # the paper's setting: every setting at its lipdp.spec default
  elif arg == "smoke":
    c.train.num_steps = 50
    c.train.log_every = 10
    c.train.checkpoint_every = 50
    c.model.encoder_hidden = (64,)
    c.model.decoder_hidden = (64,)
    c.evaluation.fast = True
  elif arg == "quick":
    # Digits for sweeps (the public proxy the defaults are chosen on; docs/results.md).
    c.train.num_steps = 500
    c.train.dp_sampling_rate = 0.09  # about 130 of the 1,438 training records per step
  elif arg == "table":
    # A table of your own (--config.dataset=csv:PATH --config.schema=SCHEMA.json) with the
    # table model of `lipdp synthesize` (lipdp.spec.table_config), but in the main job's
    # default scope, conditional (the weights not covered); `lipdp synthesize` and
    # --config.scope=dp-sgd --config.total_epsilon=E are end to end.
    pass
  elif arg == "bank":
    # UCI bank-marketing (45,211 records, 17 mixed columns) from $LIPDP_DATA_DIR/bank-marketing
    # with the declared schema experiments/schemas/bank_marketing.json; 80/20 split. The table
    # model, in the conditional scope as ':table' (--config.scope=dp-sgd for end to end);
    # DP-SGD's default sampling rate takes about 360 of the 36,169 training records per step.
    c.dataset = "csv:" + os.path.join(
      os.environ.get(_DATA_DIR_ENV, ""), "bank-marketing", "bank-full.csv.gz"
    )
    c.data_options.schema = os.path.join(_SCHEMAS, "bank_marketing.json")
  elif arg == "breast_cancer":
    # scikit-learn's Wisconsin breast-cancer table (569 records, 30 numeric columns and the
    # label; bounds from the data set's published statistics, docs/data.md); 80/20 split.
    c.dataset = "breast_cancer"
    c.train.num_steps = 500
    c.train.batch_size = 64
    c.train.dp_sampling_rate = 0.15  # about 68 of the 455 training records per step
  elif arg in ("mnist_idx", "mnist"):
    # mnist_idx: the 10,000 IDX test images split 8,000 / 2,000 (seed 0); mnist: TFDS, 60,000.
    c.dataset = "mnist_idx" if arg == "mnist_idx" else "tfds:mnist"
    c.model.decoder = "conv"
    c.train.num_steps = 3000
    # Public pretraining before DP-SGD (--config.train.public_pretrain_steps=N): scikit-learn's
    # digits drawn in MNIST's frame, with --config.public_dataset=digits
    # --config.public_options.frame=mnist (docs/results.md, "MNIST with public pretraining").
    c.public_options.frame = ml_collections.config_dict.placeholder(str)
  elif arg:
    raise ValueError(
      f"unknown config variant {arg!r}; use '', 'conditional', 'smoke', 'quick', 'table', 'bank', "
      "'breast_cancer', 'mnist_idx' or 'mnist'"
    )
  return c
