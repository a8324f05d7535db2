"""A toy VAE and its records, shared by the training tests."""

import flax.linen as nn
import jax
import numpy as np

from lipdp.data import Block
from lipdp.models import decoders
from lipdp.models import vae as vae_lib

BLOCKS = (Block("image", "image", 0, 12), Block("label", "categorical", 12, 15))


def records(n=64, seed=0):
  """Three classes, each with its own pixel pattern plus a little noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n)
  patterns = np.random.default_rng(99).random((3, 12))
  image = np.clip(patterns[labels] + 0.05 * rng.standard_normal((n, 12)), 0, 1)
  label = np.eye(3, dtype=np.float32)[labels]
  return np.concatenate([image, label], axis=1).astype(np.float32)


def model(sigma=1.0):
  return vae_lib.LipschitzVAE(
    encoder_mean=nn.Dense(4), decoder=decoders.MLPDecoder((16,), 15), sigma=sigma
  )


def flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])
