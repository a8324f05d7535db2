"""The runs tests/training/test_multihost.py compares across process counts (shared with the
worker)."""

import jax
import numpy as np

from lipdp import nn as lnn
from lipdp import training
from lipdp.data import Block
from lipdp.models import decoders
from lipdp.models import vae as vae_lib
from lipdp.training import sharding

BLOCKS = (Block("image", "image", 0, 12), Block("label", "categorical", 12, 15))
_DP = training.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.25, chunk_size=8)
# (name, config, stop_after): plain; DP-SGD; DP-SGD killed after a checkpoint at step 3.
SCENARIOS = (
  (
    "plain",
    training.TrainConfig(num_steps=6, batch_size=16, seed=3, progress_bar=False, retract_every=2),
    None,
  ),
  (
    "dpsgd",
    training.TrainConfig(num_steps=6, seed=5, dp=_DP, progress_bar=False, retract_every=2),
    None,
  ),
  (
    "dpsgd_killed",
    training.TrainConfig(
      num_steps=6, seed=5, dp=_DP, progress_bar=False, retract_every=2, checkpoint_every=3
    ),
    3,
  ),
)


def model():
  return vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp([8, 4], lipschitz_target=2.0),
    decoder=decoders.MLPDecoder((16,), 15),
  )


def records(n=64, seed=0):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n)
  patterns = np.random.default_rng(99).random((3, 12))
  image = np.clip(patterns[labels] + 0.05 * rng.standard_normal((n, 12)), 0, 1)
  return np.concatenate([image, np.eye(3)[labels]], axis=1).astype(np.float32)


def flat(tree) -> np.ndarray:
  return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(sharding.host_value(tree))])
