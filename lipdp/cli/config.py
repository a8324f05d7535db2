"""The configuration `lipdp synthesize` runs `lipdp.pipeline.run` with.

It starts from `lipdp.config.base_config()`, as experiments/configs/default.py does, with the
training settings of that file's 'bank' variant, the study's model for mixed tables: a 32-d
latent plus an 8-d style latent, 2,000 steps of batch 256, DP-SGD sampling rate 0.01.
"""

from typing import Optional

import ml_collections

from lipdp import config as lipdp_config


def table_config(
  data: str,
  schema: str,
  *,
  epsilon: Optional[float],
  delta: float,
  k: int = 1,
  scope: str = "conditional",
  total_epsilon: Optional[float] = None,
  steps: int = 2000,
  batch_size: int = 256,
  holdout_fraction: float = 0.2,
  evaluation: bool = True,
  strict: bool = False,
  encoding: str = "utf-8",
  delimiter: str = ",",
  replace_release: bool = False,
  public_data: Optional[str] = None,
  dp_noise_multiplier: float = 1.0,
  dp_sampling_rate: float = 0.01,
  noise_seed: Optional[int] = None,
  train_seed: Optional[int] = None,
) -> ml_collections.ConfigDict:
  """A pipeline configuration for a CSV table (see the module docstring)."""
  c = lipdp_config.base_config()
  c.dataset = "csv:" + data
  c.schema = schema
  c.data_options.strict = bool(strict)
  c.data_options.encoding = encoding
  c.data_options.delimiter = delimiter
  c.holdout_fraction = float(holdout_fraction)

  # epsilon is unused when total_epsilon is given; the pipeline needs a number there.
  c.epsilon = float(epsilon) if epsilon is not None else 1.0
  c.delta = float(delta)
  c.k = int(k)
  if total_epsilon is not None:
    c.total_epsilon = float(total_epsilon)
  c.scope = scope
  if public_data is not None:
    c.public_dataset = "csv:" + public_data
    c.public_options.schema = schema
    c.public_options.strict = bool(strict)
    c.public_options.encoding = encoding
    c.public_options.delimiter = delimiter
  c.replace_release = bool(replace_release)
  if noise_seed is not None:
    c.noise_seed = int(noise_seed)

  c.train.num_steps = int(steps)
  c.train.batch_size = int(batch_size)
  if train_seed is not None:
    c.train.seed = int(train_seed)
  c.train.dp_noise_multiplier = float(dp_noise_multiplier)
  c.train.dp_sampling_rate = float(dp_sampling_rate)
  c.evaluation.enabled = bool(evaluation)
  return c
