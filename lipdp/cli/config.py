"""The configuration `lipdp synthesize` runs `lipdp.pipeline.run` with.

It has the fields of experiments/configs/default.py (the console script cannot import
experiments/, which is not installed; tests/test_cli.py checks that the two keep the same
fields) with the settings of its 'bank' variant, the study's model for mixed tables: a 32-d
latent plus an 8-d style latent, 2,000 steps of batch 256, DP-SGD sampling rate 0.01.
"""

from typing import Optional

import ml_collections

placeholder = ml_collections.config_dict.placeholder


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
  c = ml_collections.ConfigDict()
  c.dataset = "csv:" + data
  c.data_dir = placeholder(str)
  c.radius = placeholder(float)
  c.label_weight = 1.0
  c.schema = schema
  c.data_options = ml_collections.ConfigDict()
  c.data_options.strict = bool(strict)
  c.data_options.encoding = encoding
  c.data_options.delimiter = delimiter
  c.holdout_fraction = float(holdout_fraction)
  c.split_seed = 0

  # epsilon is unused when total_epsilon is given; the pipeline needs a number there.
  c.epsilon = float(epsilon) if epsilon is not None else 1.0
  c.delta = float(delta)
  c.k = int(k)
  c.method = "lipdp"
  c.total_epsilon = placeholder(float)
  if total_epsilon is not None:
    c.total_epsilon = float(total_epsilon)
  c.release_share = 0.5
  c.calibration = "per-record"
  c.scope = scope
  c.public_dataset = placeholder(str)
  c.public_options = ml_collections.ConfigDict()
  if public_data is not None:
    c.public_dataset = "csv:" + public_data
    c.public_options.schema = schema
    c.public_options.strict = bool(strict)
    c.public_options.encoding = encoding
    c.public_options.delimiter = delimiter
  c.replace_release = bool(replace_release)
  c.shuffled_release = True
  c.noise_seed = placeholder(int)
  if noise_seed is not None:
    c.noise_seed = int(noise_seed)

  c.model = ml_collections.ConfigDict()
  c.model.latent_dim = 32
  c.model.encoder_hidden = (256, 128)
  c.model.encoder_dense = "bjorck"
  c.model.activation = "maxmin"
  c.model.sigma = 1.0
  c.model.lipschitz_target = placeholder(float)
  c.model.decoder = "mlp"
  c.model.decoder_lipschitz = 10.0
  c.model.decoder_dense = "bjorck"
  c.model.decoder_hidden = (256, 512)
  c.model.decoder_channels = 32
  c.model.image_likelihood = "bernoulli"
  c.model.style_dim = 8
  c.model.style_hidden = (256,)
  c.model.heteroscedastic = False
  c.model.sigma_min = 0.5
  c.model.sigma_max = 2.0
  c.model.log_sigma_lipschitz = 0.1

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = int(steps)
  c.train.batch_size = int(batch_size)
  c.train.learning_rate = 1e-3
  c.train.beta = 1.0
  c.train.seed = placeholder(int)
  if train_seed is not None:
    c.train.seed = int(train_seed)
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.dp_noise_multiplier = float(dp_noise_multiplier)
  c.train.dp_clip_norm = 1.0
  c.train.dp_sampling_rate = float(dp_sampling_rate)

  c.num_figure_samples = 32

  c.evaluation = ml_collections.ConfigDict()
  c.evaluation.enabled = bool(evaluation)
  c.evaluation.fast = False
  c.evaluation.seed = 0
  return c
