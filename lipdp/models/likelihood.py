"""Record likelihoods for the VAE decoder, block by block.

A record is a flat vector made of blocks (see `lipdp.data.domain.Block`): an image block with
values in [0, 1], numeric columns rescaled to [0, 1], and one-hot categorical blocks. The decoder
emits one logit per coordinate; each block has its own likelihood:

- image: Bernoulli (continuous cross-entropy against values in [0, 1], as in Kingma and Welling
  2014's MNIST experiments) or Gaussian with a fixed unit variance on sigmoid(logit);
- numeric: Gaussian with a fixed variance on sigmoid(logit) (the column lives in [0, 1]);
- categorical: softmax cross-entropy against the one-hot block.

Blocks are static (Python tuples), so these functions trace once under `jax.jit`.
"""

from typing import Mapping, Optional, Sequence

import jax
import jax.numpy as jnp

IMAGE_LIKELIHOODS = ("bernoulli", "gaussian")

# Fixed observation scale for Gaussian blocks on [0, 1]; 0.1 keeps the reconstruction term of a
# numeric column comparable in size to a Bernoulli pixel.
NUMERIC_SCALE = 0.1


def _check_image_likelihood(image_likelihood: str) -> None:
  if image_likelihood not in IMAGE_LIKELIHOODS:
    raise ValueError(
      f"image_likelihood must be one of {IMAGE_LIKELIHOODS}, got {image_likelihood!r}"
    )


def negative_log_likelihood(
  logits: jax.Array,
  records: jax.Array,
  blocks: Sequence,
  image_likelihood: str = "bernoulli",
  block_weights: Optional[Mapping[str, float]] = None,
) -> jax.Array:
  """Per-record negative log-likelihood, summed over blocks: shape (batch,).

  Args:
    logits: decoder outputs, shape (batch, dim).
    records: targets in the domain, shape (batch, dim).
    blocks: the domain's blocks, each with `kind`, `start`, `stop`.
    image_likelihood: 'bernoulli' or 'gaussian' for image blocks.
    block_weights: optional weight per block name (default 1): the sum is then
      sum_b w_b * nll_b. A heavily weighted label term makes the decoder keep the label
      consistent with the rest of the record, which a 784-pixel image term would otherwise
      drown (a training choice only: it changes no privacy accounting).
  """
  weights = dict(block_weights or {})
  unknown = set(weights) - {block.name for block in blocks}
  if unknown:
    raise ValueError(f"block_weights names no block of the domain: {sorted(unknown)}")
  _check_image_likelihood(image_likelihood)
  if logits.shape != records.shape:
    raise ValueError(f"logits {logits.shape} and records {records.shape} differ in shape")
  total = jnp.zeros(records.shape[:-1], dtype=logits.dtype)
  for block in blocks:
    lg = logits[..., block.start : block.stop]
    x = records[..., block.start : block.stop]
    if block.kind == "image" and image_likelihood == "bernoulli":
      # -x log p - (1 - x) log(1 - p), with log p = -softplus(-l), log(1 - p) = -softplus(l).
      nll = jnp.sum(x * jax.nn.softplus(-lg) + (1.0 - x) * jax.nn.softplus(lg), axis=-1)
    elif block.kind == "image":
      nll = 0.5 * jnp.sum(jnp.square(jax.nn.sigmoid(lg) - x), axis=-1)
    elif block.kind == "numeric":
      nll = 0.5 * jnp.sum(jnp.square((jax.nn.sigmoid(lg) - x) / NUMERIC_SCALE), axis=-1)
    elif block.kind == "categorical":
      # The block is scale * one-hot (a declared weight); the likelihood is of the category.
      nll = -jnp.sum((x / block.scale) * jax.nn.log_softmax(lg, axis=-1), axis=-1)
    else:
      raise ValueError(f"unknown block kind {block.kind!r} in block {block.name!r}")
    total = total + float(weights.get(block.name, 1.0)) * nll
  return total


def decoded_mean(logits: jax.Array, blocks: Sequence) -> jax.Array:
  """Maps decoder logits to a point of record space (post-processing of the latent).

  Image and numeric blocks become sigmoid(logit) in [0, 1]; categorical blocks become their
  softmax probabilities times the block's scale (the domain's `project` turns them into
  scaled one-hot records).
  """
  parts = []
  for block in blocks:
    lg = logits[..., block.start : block.stop]
    if block.kind in ("image", "numeric"):
      parts.append(jax.nn.sigmoid(lg))
    elif block.kind == "categorical":
      parts.append(block.scale * jax.nn.softmax(lg, axis=-1))
    else:
      raise ValueError(f"unknown block kind {block.kind!r} in block {block.name!r}")
  return jnp.concatenate(parts, axis=-1)
