"""DP-SGD (Abadi et al. 2016): per-example clipping, Gaussian noise on the sum, then the mean.

One DP-SGD step on a Poisson batch B (sampled on the host, `lipdp.training.batching`):

    g = ( sum_{i in B} clip_C(grad l(theta; x_i)) + N(0, (z C)^2 I) ) / (q n),

with clip_C(v) = v min(1, C / |v|), z the noise multiplier and q n the *expected* batch size, a
data-independent constant. The jax_privacy "sharp edges" are the checklist:

- the sensitivity matches the clipping: each clipped gradient has l2 norm <= C *exactly*, also
  after float32 rounding (`per_example_norms` shrinks the target by a proven margin), and an
  example whose gradient is not finite contributes zero (one NaN would otherwise poison, and
  reveal itself in, the whole sum);
- the noise is calibrated to the sum and added to the sum; the division by q n comes after;
- the noise is drawn in float64 on the host (`dpsgd_noise`, reaching 12.2 standard deviations;
  JAX's float32 sampler stops near 5.2, which would break delta at every step) from the secret
  seed, and depends only on (seed, step), so every host of a multi-host run draws the same
  noise and the jitted step adds it once to the global sum;
- the per-example computation reads the model state (e.g. spectral power-iteration vectors) and
  never writes it, so no per-example information leaks through it.

The batch is processed in fixed-size microbatches (`chunk_size` examples, vmapped) by one
`lax.fori_loop` inside one jitted step (`lipdp.training.steps.DPSGDStep`), whose trip count is the
number of microbatches actually holding examples: nothing is truncated, and no compute is spent on
padding beyond the last partial microbatch.
"""

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lipdp import privacy
from lipdp import randomness
from lipdp.training import batching

# loss_fn(params, model_state, records, rng, mutable) -> (per-example losses (b,), aux, new
# model state): aux maps names to per-example (b,) arrays; new model state is {} unless
# `mutable` names collections to update.
LossFn = Callable[..., tuple[jax.Array, dict, Any]]


CLIPPING_METHODS = ("vmap", "ghost")
# Microbatch sizes measured on CPU (docs/performance.md): the vmap path's microbatch of
# per-example gradients is memory-bound beyond 64; the ghost path's holds activations only.
DEFAULT_CHUNK_SIZES = {"vmap": 64, "ghost": 128}


@dataclasses.dataclass(frozen=True)
class DPSGDConfig:
  """DP-SGD hyper-parameters. `sampling_rate` q: each record joins a batch with probability q.

  `clipping` chooses how the per-example norms and the clipped sum are computed: 'vmap'
  (per-example gradients, `clipped_gradient_sum`) or 'ghost' (`lipdp.training.ghost_clipping`: from
  each layer's inputs and output gradients, without per-example gradients; the same result to
  float rounding, for models made of the layers it recognises).

  `chunk_size` is the microbatch size (examples processed at once); it changes speed and memory,
  never the result beyond float rounding. None picks `DEFAULT_CHUNK_SIZES[clipping]`: the vmap
  path holds a microbatch of per-example gradients, the ghost path only activations.
  """

  noise_multiplier: float
  clip_norm: float
  sampling_rate: float
  chunk_size: Optional[int] = None
  clipping: str = "ghost"

  def __post_init__(self):
    if not np.isfinite(self.noise_multiplier) or self.noise_multiplier <= 0:
      raise ValueError(f"noise_multiplier must be positive, got {self.noise_multiplier}")
    if not np.isfinite(self.clip_norm) or self.clip_norm <= 0:
      raise ValueError(f"clip_norm must be positive, got {self.clip_norm}")
    if not 0 < self.sampling_rate <= 1:
      raise ValueError(f"sampling_rate must be in (0, 1], got {self.sampling_rate}")
    if self.chunk_size is not None and self.chunk_size < 1:
      raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
    if self.clipping not in CLIPPING_METHODS:
      raise ValueError(f"clipping must be one of {CLIPPING_METHODS}, got {self.clipping!r}")

  @property
  def microbatch_size(self) -> int:
    """`chunk_size`, or the clipping method's default."""
    return self.chunk_size or DEFAULT_CHUNK_SIZES[self.clipping]

  def event(self, steps: int) -> privacy.DPSGDEvent:
    """The accounting event of `steps` steps of this DP-SGD (the clip norm does not enter it)."""
    return privacy.DPSGDEvent(self.noise_multiplier, self.sampling_rate, steps)


_NORM_BLOCK = 1024


def per_example_norms(grads: Any) -> tuple[jax.Array, float]:
  """l2 norms of per-example gradients (leading axis) and the clipping margin they need.

  The squared norm is summed in two levels: blocks of at most _NORM_BLOCK squares, then the
  block sums. Whatever order XLA adds each level in, a sum of m non-negative floats has relative
  error at most gamma_m = m u / (1 - m u) (u the unit roundoff; Higham 2002, Lemma 3.1 and
  eq. 4.4), so the computed squared norm is within gamma_{B + M} of the exact one (B the block
  length, M the number of block sums, squaring adding u), and its square root within about
  gamma_{B+M} / 2 + u. Scaling by min(1, C' / norm) then rounds the scale and each coordinate
  (u each). Hence with

      m = gamma_{B + M + 1} + 8 u       (twice the first-order total, for safety),

  the clipped gradient's exact norm is at most C' (1 + u)^2 / (1 - gamma/2 - u) <= C when
  C' = C (1 - m). For a million parameters in float32, m is about 1e-4: a negligible change.

  Returns:
    (norms of shape (batch,), m), m a Python float fixed by the shapes and dtypes.
  """
  squares, num_blocks = blocked_sum_of_squares(grads)
  unit = max(float(jnp.finfo(leaf.dtype).eps) / 2 for leaf in jax.tree_util.tree_leaves(grads))
  norms = jnp.sqrt(squares)
  terms = _NORM_BLOCK + num_blocks + 1
  margin = terms * unit / (1.0 - terms * unit) + 8.0 * unit
  return norms, margin


def blocked_sum_of_squares(tree: Any) -> tuple[jax.Array, int]:
  """Per-row sums of squares of the leaves of `tree` (each (batch, ...)), and the block count.

  Summed in two levels, blocks of `_NORM_BLOCK` squares, then the block sums, so that the
  relative error is at most gamma_{_NORM_BLOCK + blocks + 1} whatever order XLA adds in (see
  `per_example_norms`; `lipdp.training.ghost_clipping` uses the same bound).
  """
  leaves = jax.tree_util.tree_leaves(tree)
  batch = leaves[0].shape[0]
  partial_sums, num_blocks = [], 0
  for leaf in leaves:
    flat = leaf.reshape(batch, -1)
    size = flat.shape[1]
    blocks = -(-size // _NORM_BLOCK)
    flat = jnp.pad(flat, ((0, 0), (0, blocks * _NORM_BLOCK - size)))
    partial_sums.append(jnp.sum(jnp.square(flat.reshape(batch, blocks, _NORM_BLOCK)), axis=-1))
    num_blocks += blocks
  return jnp.sum(jnp.concatenate(partial_sums, axis=1), axis=1), num_blocks


def clipped_gradient_sum(loss_fn: LossFn, clip_norm: float, clipping: str = "vmap"):
  """Builds `f(params, model_state, chunk, mask, rng) -> (sum of clipped grads, stats)`.

  `clipping='ghost'` returns `lipdp.training.ghost_clipping.clipped_gradient_sum` (same interface
  and result, no per-example gradients); the rest of this docstring is the vmap path.

  Per-example gradients by vmap (example i uses key i of `jax.random.split(rng, len(chunk))`);
  each is scaled by min(1, C' / |g_i|) with C' = C (1 - m) (`per_example_norms`), so its exact
  l2 norm is at most C despite float rounding; rows with mask 0 (padding) contribute exactly
  zero, and so does an example whose gradient is not finite. `stats` holds sums over the real
  rows: `loss_sum` (finite losses), `clipped_fraction_sum` (examples whose norm exceeded C) and
  `count`; they are not covered by the accounting and must stay private.
  """

  if clipping == "ghost":
    # Not at the top: ghost_clipping imports this module.
    from lipdp.training import ghost_clipping  # pylint: disable=g-import-not-at-top

    return ghost_clipping.clipped_gradient_sum(loss_fn, clip_norm)
  if clipping != "vmap":
    raise ValueError(f"clipping must be one of {CLIPPING_METHODS}, got {clipping!r}")

  def example_loss(params, model_state, record, rng):
    losses, _, _ = loss_fn(params, model_state, record[None], rng, False)
    return losses[0]

  def clipped_sum(params, model_state, chunk, mask, rng):
    keys = jax.random.split(rng, chunk.shape[0])
    losses, grads = jax.vmap(jax.value_and_grad(example_loss), in_axes=(None, None, 0, 0))(
      params, model_state, chunk, keys
    )
    norms, margin = per_example_norms(grads)
    target = clip_norm * (1.0 - margin)  # provably <= C after rounding (see per_example_norms)
    finite = jnp.isfinite(norms)
    scale = jnp.where(finite, jnp.minimum(1.0, target / jnp.maximum(norms, 1e-30)), 0.0) * mask
    summed = jax.tree_util.tree_map(
      lambda g: jnp.tensordot(
        scale, jnp.where(finite.reshape((-1,) + (1,) * (g.ndim - 1)), g, 0.0), axes=1
      ),
      grads,
    )
    stats = {
      "loss_sum": jnp.sum(jnp.where(finite, losses, 0.0) * mask),
      "clipped_fraction_sum": jnp.sum((norms > clip_norm) * mask),
      "count": jnp.sum(mask),
    }
    return summed, stats

  return clipped_sum


def dpsgd_noise(params: Any, dp: DPSGDConfig, seed: int, step: int) -> Any:
  """The DP-SGD noise of `step`: N(0, (z C)^2) per coordinate, drawn in float64 on the host.

  Drawn with `lipdp.randomness.standard_normal` (reaches 12.2 standard deviations; JAX's float32
  sampler stops near 5.2, which would break delta at every step), then stored as float32.
  Depends only on (seed, step), so a resumed run, and every host, adds the same noise. `params`
  may be arrays or shape/dtype structs (only shapes are read).
  """
  rng = randomness.numpy_rng(seed, step, batching.NOISE_STREAM)
  scale = dp.noise_multiplier * dp.clip_norm
  return jax.tree_util.tree_map(
    lambda p: (scale * randomness.standard_normal(rng, np.shape(p))).astype(np.float32), params
  )


def noisy_mean(grad_sum: Any, noise: Any, expected_batch_size: float) -> Any:
  """(sum of clipped gradients + noise) / (q n): the noise goes on the sum, then the division."""
  return jax.tree_util.tree_map(lambda g, e: (g + e) / expected_batch_size, grad_sum, noise)
