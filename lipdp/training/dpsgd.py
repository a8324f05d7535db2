"""DP-SGD (Abadi et al. 2016): per-example clipping, Gaussian noise on the sum, then the mean.

One DP-SGD step on a Poisson batch B (sampled on the host, `lipdp.training.batching`):

    g = ( sum_{i in B} clip_C(grad l(theta; x_i)) + N(0, (z C)^2 I) ) / (q n),

with clip_C(v) = v min(1, C / |v|), z the noise multiplier and q n the *expected* batch size, a
data-independent constant. The jax_privacy "sharp edges" are the checklist:

- the sensitivity matches the clipping: each clipped gradient has l2 norm <= C *exactly*, also
  after float32 rounding (`per_example.per_example_norms` shrinks the target by a proven
  margin), and an example whose gradient is not finite contributes zero (one NaN would
  otherwise poison, and reveal itself in, the whole sum);
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
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lipdp import privacy
from lipdp import randomness
from lipdp.training import batching
from lipdp.training import per_example
from lipdp.training import ghost_clipping

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


def clipped_gradient_sum(loss_fn: per_example.LossFn, clip_norm: float, clipping: str = "vmap"):
  """Builds `f(params, model_state, chunk, mask, rng) -> (sum of clipped grads, stats)`.

  `clipping='ghost'` returns `lipdp.training.ghost_clipping.clipped_gradient_sum` (same interface
  and result, no per-example gradients); the rest of this docstring is the vmap path.

  Per-example gradients by vmap (example i uses key i of `jax.random.split(rng, len(chunk))`);
  each is scaled by min(1, C' / |g_i|) with C' = C (1 - m) (`per_example.per_example_norms`),
  so its exact l2 norm is at most C despite float rounding; rows with mask 0 (padding)
  contribute exactly zero, and so does an example whose gradient is not finite. `stats` holds
  sums over the real rows: `loss_sum` (finite losses), `clipped_fraction_sum` (examples whose
  norm exceeded C) and `count`; they are not covered by the accounting and must stay private.
  """

  if clipping == "ghost":
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
    norms, margin = per_example.per_example_norms(grads)
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
