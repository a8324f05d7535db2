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

Adaptive clipping (Andrew et al. 2021, "Differentially private learning with adaptive
clipping"), when `DPSGDConfig.clip_quantile` is set: the clip norm C_t follows a target quantile
gamma of the per-example gradient norms, from a noisy count released at each step,

    u_t = sum_{i in B} (1[|g_i| <= C_t] - 1/2) + N(0, sigma_b^2),
    C_{t+1} = C_t exp(-eta (u_t / (q n) + 1/2 - gamma)),

while the gradient sum gets noise z_D C_t. Each record then contributes the vector
(clip_C(g_i), (b_i - 1/2) z_D C / sigma_b), of norm at most C sqrt(1 + z_D^2 / (2 sigma_b)^2),
with isotropic noise z_D C on it: exactly one DP-SGD step of noise multiplier z with
z^-2 = z_D^-2 + (2 sigma_b)^-2 (Andrew et al. 2021, Theorem 1). So the accounting event is
DP-SGD's with z, unchanged, and the gradient's own noise multiplier is z_D =
(z^-2 - (2 sigma_b)^-2)^-1/2, slightly above z (`DPSGDConfig.gradient_noise_multiplier`). C_t
is a function of earlier released values only (post-processing). The centring by 1/2 uses the
batch's size inside the mechanism; what leaves it is u_t, divided by the public q n.

Per-group adaptive clipping, when `DPSGDConfig.clip_groups` is also set. Clipping's disparate
impact (Bagdasaryan et al. 2019) shrinks most the records of a group whose gradients are larger;
DPSGD-F (Xu, Du and Wu 2021, "Removing disparate impact on model accuracy in differentially
private stochastic gradient descent") answers with a clip norm per group. Here a record's group
is the argmax of a declared categorical block of the record (a function of the record alone, so
every record is in exactly one group), each group g has its own C_{t,g}, and

    u_{t,g} = sum_{i in B, g(i) = g} (1[|g_i| <= C_{t,g}] - c) + N(0, sigma_b^2),
    C_{t+1,g} = C_{t,g} exp(-eta u_{t,g} / (q n)),

with c = gamma rounded to a multiple of 1/256 (`count_centre`), so that every term, and every
partial sum below 65,536 in magnitude, is exact in float32 whatever order XLA adds in (a group
with about 65,000 records in one batch would round, as the gradient sum does).
Centring at c instead of 1/2 keeps each group's fixed point at its own quantile without the
group's batch size, which is private: the expected move is -eta (m_g / (q n)) (f_g - c), f_g
the group's unclipped fraction, so a group of share m_g / (q n) adapts that much more slowly.
The gradient sum gets noise z_D C_max, C_max = max_g C_{t,g}. A record contributes
(clip_{C_{t,g(i)}}(g_i), (b_i - c) e_{g(i)} z_D C_max / sigma_b): its count part has one non-zero
coordinate, of size at most r = max(c, 1 - c), whatever the group, so the vector's norm is at
most C_max sqrt(1 + r^2 z_D^2 / sigma_b^2), with isotropic noise z_D C_max on all of it. That is
one DP-SGD step of multiplier z with z^-2 = z_D^-2 + r^2 / sigma_b^2 for a record moving between
any two groups (replace-one), Andrew et al.'s Theorem 1 with r for 1/2 (r = 1/2 at the median,
where the two coincide). Every C_{t,g}, and C_max, is post-processing of earlier released counts.

Precision: the clipping margin is a float32 rounding bound, so the products that compute the
norms' bounds and the clipped sum run at the highest matmul precision (a platform's reduced
default, TF32 on recent NVIDIA GPUs, would round past it; docs/privacy.md).

Fixed-point sums (`DPSGDConfig.sum_arithmetic = 'fixed-point'`, `lipdp.training.fixed_point`):
each clipped gradient is rounded to the integer grid 2^e Z^d and the sum and its noise are added
in int32, exactly, so the sum's sensitivity holds in floating point, which a float32 sum's does
not (its rounding depends on the whole batch); the contribution bound becomes C' = C +
sqrt(d) 2^e / 2 and the noise z C'. vmap path only, fixed clip norm only. Bounded float sums
('bounded-float32'): the float32 sum, whose rounding is bounded (gamma_m |B| C in l2), rounded to
the grid and noised there, with C' = C (1 + 2 gamma_m cap) + sqrt(d) 2^e; either clipping path,
fixed clip norm only.

The batch is processed in fixed-size microbatches (`chunk_size` examples, vmapped) by one
`lax.fori_loop` inside one jitted step (`lipdp.training.steps.DPSGDStep`), whose trip count is the
number of microbatches actually holding examples: nothing is truncated, and no compute is spent on
padding beyond the last partial microbatch.
"""

import dataclasses
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lipdp import privacy
from lipdp import randomness
from lipdp.training import batching
from lipdp.training import fixed_point
from lipdp.training import per_example
from lipdp.training import ghost_clipping

CLIPPING_METHODS = ("vmap", "ghost")
# How the clipped gradients are summed and noised: in float32 (rounding not bounded), exactly
# on an integer grid (`lipdp.training.fixed_point`; vmap path, fixed clip norm), or in float32
# with the rounding bounded, then rounded to that grid (either path, fixed clip norm). The
# names are the accounting event's (`lipdp.privacy.DPSGDEvent.sum_arithmetic`).
SUM_ARITHMETICS = privacy.DPSGD_SUM_ARITHMETICS
# Microbatch sizes measured on CPU (docs/performance.md): the vmap path's microbatch of
# per-example gradients is memory-bound beyond 64; the ghost path's holds activations only.
DEFAULT_CHUNK_SIZES = {"vmap": 64, "ghost": 128}
# Adaptive clipping's C_t stays within these multiples of the first C (`next_clip_norm`).
CLIP_NORM_RANGE = (1e-6, 1e6)
# The smallest clip norm DP-SGD uses, fixed or adaptive. XLA on a CPU flushes float32 results
# below 2^-126 to zero, so a squared norm of T terms may lose up to T 2^-126, its norm up to
# sqrt(T) 2^-63, which no relative rounding margin covers: a record whose gradient entries are
# all below 2^-63 reads as norm 0 and is never clipped (found by a review). At C >= 1e-6 that
# loss is below 1.1e-7 C for up to 1e12 terms, inside the clipping margin's slack (the margin
# is twice its first-order rounding bound, so at least 4 u = 2.4e-7 relative is spare).
MIN_CLIP_NORM = 1e-6


def count_noise_fits(
  noise_multiplier: float, count_noise_std: Optional[float], count_sensitivity: float = 0.5
) -> bool:
  """Whether adaptive clipping's count, with noise `count_noise_std`, can take its share of the
  noise multiplier z: the gradient's own multiplier (z^-2 - r^2 / sigma_b^2)^-1/2 exists only for
  sigma_b > r z, r the most one record moves the count (1/2 for one group; max(c, 1 - c) per
  group, c the count's centre; module docstring)."""
  return (
    count_noise_std is not None
    and bool(np.isfinite(count_noise_std))
    and count_noise_std > count_sensitivity * noise_multiplier
  )


# The per-group count's centre is gamma rounded to a multiple of this: its terms and their sums
# (below 65,536 records per step) are then exact in float32's 24 bits.
COUNT_CENTRE_RESOLUTION = 1 / 256


def count_centre(clip_quantile: float, grouped: bool) -> float:
  """Where adaptive clipping's count is centred: 1/2 for Andrew et al.'s count (one group);
  gamma rounded to a multiple of 1/256 for the per-group counts (module docstring)."""
  if not grouped:
    return 0.5
  return round(clip_quantile / COUNT_CENTRE_RESOLUTION) * COUNT_CENTRE_RESOLUTION


def count_sensitivity(clip_quantile: float, grouped: bool) -> float:
  """r, the most one record moves adaptive clipping's count, max(c, 1 - c) for its centre c:
  1/2 for one group; per group, with c gamma rounded to 1/256 (`count_centre`)."""
  centre = count_centre(clip_quantile, grouped)
  return max(centre, 1.0 - centre)


def record_groups(records: jax.Array, clip_groups: tuple) -> jax.Array:
  """Per-group clipping's group of each of `records` (batch, dim): the index (int32) of the
  argmax of coordinates [start, stop) = `clip_groups`. Exactly one group per record, whatever
  the record holds (a tie goes to the first of the tied, a NaN to the first NaN), which the
  count's sensitivity needs."""
  start, stop = clip_groups
  return jnp.argmax(records[:, start:stop], axis=1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class DPSGDConfig:
  """DP-SGD hyper-parameters. `sampling_rate` q: each record joins a batch with probability q.

  `clipping` chooses how the per-example norms and the clipped sum are computed: 'vmap'
  (per-example gradients, `clipped_gradient_sum`) or 'ghost' (`lipdp.training.ghost_clipping`: from
  each layer's inputs and output gradients, without per-example gradients; the same result to
  float rounding, for models made of the layers it recognises).

  `chunk_size` is the microbatch size (examples processed at once); it changes speed, memory and,
  on the grid, the bounded float sum's C' (through its count of additions),
  and the draws of a model with noise inside its loss (a VAE's reparameterisation: row i of
  microbatch c uses key i of split(fold_in(rng, c), chunk); records placed by index,
  `on_grid`, use fold_in(rng, index) whatever the chunk), not the privacy. The step rounds it up
  to a multiple of the device count. None picks `DEFAULT_CHUNK_SIZES[clipping]`: the vmap
  path holds a microbatch of per-example gradients, the ghost path only activations; on the
  grid, a smaller one for small batches (`microbatch_for`).

  `clip_quantile` (gamma in (0, 1)) turns on adaptive clipping (module docstring): `clip_norm`
  is then the first step's C, moved by `clip_learning_rate` (eta) from a count released with
  noise `count_noise_std` (sigma_b, which must exceed z / 2). Andrew et al. 2021 use eta = 0.2
  and sigma_b = q n / 20.

  `sum_arithmetic` 'fixed-point' sums on an integer grid (module docstring; needs
  clipping='vmap' and no clip_quantile); 'bounded-float32' rounds the float32 sum, whose
  rounding is bounded, to that grid (no clip_quantile); 'float32' is the float path, this
  class's default. The entry points (lipdp.spec's train.dp_sum = 'auto') choose
  'bounded-float32' wherever the clip norm is fixed.

  `clip_groups` (start, stop), with `clip_quantile`, gives each group its own adaptive clip norm
  (per-group adaptive clipping, module docstring): a record's group is the argmax of its
  coordinates [start, stop), a categorical block (`record_groups`); sigma_b must then exceed
  r z, r = max(c, 1 - c) for the count's centre c (`count_centre`: gamma to 1/256).
  """

  noise_multiplier: float
  clip_norm: float
  sampling_rate: float
  chunk_size: Optional[int] = None
  clipping: str = "ghost"
  clip_quantile: Optional[float] = None
  clip_learning_rate: float = 0.2
  count_noise_std: Optional[float] = None
  clip_groups: Optional[tuple] = None
  sum_arithmetic: str = "float32"

  def __post_init__(self):
    if not np.isfinite(self.noise_multiplier) or self.noise_multiplier <= 0:
      raise ValueError(f"noise_multiplier must be positive, got {self.noise_multiplier}")
    if not np.isfinite(self.clip_norm) or self.clip_norm <= 0:
      raise ValueError(f"clip_norm must be positive, got {self.clip_norm}")
    if self.clip_norm < MIN_CLIP_NORM:
      raise ValueError(
        f"clip_norm must be at least {MIN_CLIP_NORM:g}, got {self.clip_norm}: below it, "
        "float32 underflow (flushed to zero) could hide a gradient's norm from the clipping"
      )
    if not 0 < self.sampling_rate <= 1:
      raise ValueError(f"sampling_rate must be in (0, 1], got {self.sampling_rate}")
    if self.chunk_size is not None and self.chunk_size < 1:
      raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
    if self.clipping not in CLIPPING_METHODS:
      raise ValueError(f"clipping must be one of {CLIPPING_METHODS}, got {self.clipping!r}")
    if self.sum_arithmetic not in SUM_ARITHMETICS:
      raise ValueError(
        f"sum_arithmetic must be one of {SUM_ARITHMETICS}, got {self.sum_arithmetic!r}"
      )
    if self.fixed_point and self.clipping != "vmap":
      raise ValueError(
        "sum_arithmetic='fixed-point' rounds each example's clipped gradient to the grid, which "
        f"needs the per-example gradients: clipping='vmap', got {self.clipping!r}"
      )
    if self.on_grid and self.clip_quantile is not None:
      raise ValueError(
        f"sum_arithmetic={self.sum_arithmetic!r} needs a fixed clip norm: adaptive clipping "
        "(clip_quantile) is not supported on the integer grid"
      )
    if self.clip_quantile is not None:
      if not 0 < self.clip_quantile < 1:
        raise ValueError(f"clip_quantile must be in (0, 1), got {self.clip_quantile}")
      if not np.isfinite(self.clip_learning_rate) or self.clip_learning_rate <= 0:
        raise ValueError(f"clip_learning_rate must be positive, got {self.clip_learning_rate}")
      sigma_b, r = self.count_noise_std, self.count_sensitivity
      if not count_noise_fits(self.noise_multiplier, sigma_b, r):
        raise ValueError(
          f"adaptive clipping needs count_noise_std > {r:g} noise_multiplier (the count's noise "
          f"takes its share of z = {self.noise_multiplier:g}), got {sigma_b}"
        )
      if not self._gradient_multiplier_ok():
        raise ValueError(
          f"adaptive clipping needs count_noise_std far enough above {r:g} noise_multiplier "
          f"(= {r * self.noise_multiplier:.17g}) that the gradient's noise multiplier "
          f"(z^-2 - (r / sigma_b)^2)^-1/2 is finite after rounding, got {sigma_b!r}"
        )
    if self.clip_groups is not None:
      if self.clip_quantile is None:
        raise ValueError("clip_groups needs clip_quantile: per-group clip norms are adaptive")
      if not 0 < self.count_centre < 1:  # a centre of 0 or 1 drives every C to its limit
        raise ValueError(
          f"per-group clipping needs a clip_quantile that rounds to a multiple of 1/256 strictly "
          f"between 0 and 1 (its count is centred there), got {self.clip_quantile}"
        )
      groups = self.clip_groups
      if not (
        isinstance(groups, tuple)
        and len(groups) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in groups)
        and 0 <= groups[0]
        and groups[1] - groups[0] >= 2
      ):
        raise ValueError(
          f"clip_groups must be a (start, stop) pair of record coordinates with at least two "
          f"groups, got {groups!r}"
        )

  @property
  def fixed_point(self) -> bool:
    """Whether each clipped gradient is rounded to the integer grid and summed there."""
    return self.sum_arithmetic == "fixed-point"

  @property
  def bounded_float(self) -> bool:
    """Whether the float32 sum, its rounding bounded, is rounded to the grid and noised there."""
    return self.sum_arithmetic == "bounded-float32"

  @property
  def on_grid(self) -> bool:
    """Whether the noise is added on an integer grid (fixed-point or bounded float sums), with
    records at places fixed by their index (`lipdp.training.fixed_point`)."""
    return self.fixed_point or self.bounded_float

  @property
  def adaptive(self) -> bool:
    """Whether the clip norm follows `clip_quantile` (adaptive clipping)."""
    return self.clip_quantile is not None

  @property
  def num_clip_groups(self) -> int:
    """G, the number of clip norms: the block's size with `clip_groups`, else 1."""
    return 1 if self.clip_groups is None else self.clip_groups[1] - self.clip_groups[0]

  @property
  def clip_norm_shape(self) -> tuple:
    """The shape of adaptive clipping's clip norm, and of its count and the count's noise: ()
    for one clip norm, (G,) per group."""
    return () if self.clip_groups is None else (self.num_clip_groups,)

  @property
  def count_centre(self) -> float:
    """Where adaptive clipping's count is centred (`count_centre`)."""
    if not self.adaptive:
      raise ValueError("count_centre needs adaptive clipping (clip_quantile set)")
    return count_centre(self.clip_quantile, self.clip_groups is not None)

  @property
  def count_sensitivity(self) -> float:
    """r, the most one record moves adaptive clipping's count (`count_sensitivity`)."""
    if not self.adaptive:
      raise ValueError("count_sensitivity needs adaptive clipping (clip_quantile set)")
    return count_sensitivity(self.clip_quantile, self.clip_groups is not None)

  def _gradient_multiplier_ok(self) -> bool:
    """Whether z_D is a finite real number of at least z: sigma_b > r z alone can leave
    z^-2 - (r / sigma_b)^2 at or below zero after rounding, where z_D would be infinite or
    complex, and complex noise would be silently dropped to its real part."""
    try:
      z_d = self.gradient_noise_multiplier
    except ZeroDivisionError:
      return False
    return isinstance(z_d, float) and math.isfinite(z_d) and z_d >= self.noise_multiplier

  @property
  def gradient_noise_multiplier(self) -> float:
    """z_D, the gradient sum's noise over C: z with a fixed clip norm; with adaptive clipping
    (z^-2 - r^2 / sigma_b^2)^-1/2 (r = 1/2 for one group: (z^-2 - (2 sigma_b)^-2)^-1/2), so that
    the gradient and the count together are one DP-SGD step of multiplier z (module
    docstring)."""
    if not self.adaptive:
      return self.noise_multiplier
    z, sigma_b = float(self.noise_multiplier), float(self.count_noise_std)
    if self.clip_groups is None:
      # The same value as (r / sigma_b)^2 at r = 1/2, but written as before per-group clipping:
      # the two round differently in the last bit for about half of all sigma_b, and earlier
      # rows reproduce bit for bit.
      return (z**-2 - (2.0 * sigma_b) ** -2) ** -0.5
    return (z**-2 - (self.count_sensitivity / sigma_b) ** 2) ** -0.5

  @property
  def microbatch_size(self) -> int:
    """`chunk_size`, or the clipping method's default (a step takes `microbatch_for`, which on
    the grid, without `chunk_size`, picks a smaller one from the batch)."""
    return self.chunk_size or DEFAULT_CHUNK_SIZES[self.clipping]

  def microbatch_for(self, num_records: int) -> int:
    """The microbatch a step on `num_records` records uses: `chunk_size`, or on the grid
    (records at places fixed by their index, whose padding grows with the microbatch) the
    smaller one of `batching.placed_chunk_size`, else the clipping method's default."""
    if self.chunk_size is not None or not self.on_grid:
      return self.microbatch_size
    return batching.placed_chunk_size(num_records, self.sampling_rate, self.microbatch_size)

  def event(self, steps: int) -> privacy.DPSGDEvent:
    """The accounting event of `steps` steps of this DP-SGD (the clip norm does not enter it;
    with adaptive clipping, the gradient and the count together: multiplier z, exactly)."""
    return privacy.DPSGDEvent(
      self.noise_multiplier, self.sampling_rate, steps, sum_arithmetic=self.sum_arithmetic
    )


def clipped_gradient_sum(
  loss_fn: per_example.LossFn,
  clip_norm: float,
  clipping: str = "vmap",
  count_centre: float = 0.5,
  grid_exponent: Optional[int] = None,
  rows_only: bool = False,
):
  """Builds `f(params, model_state, chunk, mask, rng, clip_norm=None, groups=None) -> (sum of
  clipped grads, stats)`; a `clip_norm` given to `f` (a traced scalar: adaptive clipping's C_t)
  replaces the one it was built with. With `groups` (rows,), each row's group (`record_groups`),
  `clip_norm` holds one clip norm per group and row i is clipped to its group's (per-group
  adaptive clipping).

  `clipping='ghost'` returns `lipdp.training.ghost_clipping.clipped_gradient_sum` (same interface
  and result, no per-example gradients); the rest of this docstring is the vmap path.

  Per-example gradients by vmap (example i uses key i of `jax.random.split(rng, len(chunk))`,
  or `rng[i]` when `rng` is already one key per row: `per_example.row_keys`);
  each is scaled by min(1, C' / |g_i|) with C' = C (1 - m) (`per_example.per_example_norms`),
  so its exact l2 norm is at most C despite float rounding; rows with mask 0 (padding)
  contribute exactly zero, and so does an example whose gradient is not finite. `stats` holds
  sums over the real rows: `loss_sum` (finite losses), `clipped_fraction_sum` (examples whose
  norm exceeded C) and `count`; they are not covered by the accounting and must stay private.
  `centred_unclipped_sum` is adaptive clipping's count before its noise
  (`per_example.centred_unclipped`, centred at `count_centre`; per group with `groups`).

  With `grid_exponent` e (fixed-point sums, `lipdp.training.fixed_point`), `f` also takes
  `record_ids` (rows,), each row's record index: example i's model noise is keyed by
  fold_in(rng, record_ids[i]) instead of its place in the chunk, each clipped gradient is rounded
  to the grid 2^e, and the sum is the exact int32 sum of those integers.

  `rows_only` (bounded float sums): every term of the batch's sum is one row's clipped gradient
  (the ghost path materialises layers with several positions; the vmap path always does).
  """

  if clipping == "ghost":
    return ghost_clipping.clipped_gradient_sum(loss_fn, clip_norm, count_centre, not rows_only)
  if clipping != "vmap":
    raise ValueError(f"clipping must be one of {CLIPPING_METHODS}, got {clipping!r}")

  built_with = clip_norm
  fixed = grid_exponent is not None

  def clipped_sum(
    params, model_state, chunk, mask, rng, clip_norm=None, groups=None, record_ids=None
  ):
    clip_norm, num_groups = per_example.row_clip_norms(
      built_with if clip_norm is None else clip_norm, groups
    )
    if fixed:
      # A record's noise must not depend on where the batch placed it (fixed_point docstring).
      keys = per_example.record_keys(rng, record_ids)
    else:
      keys = per_example.row_keys(rng, chunk.shape[0])
    losses, grads = jax.vmap(
      jax.value_and_grad(per_example.record_loss(loss_fn)), in_axes=(None, None, 0, 0)
    )(params, model_state, chunk, keys)
    norms, margin = per_example.per_example_norms(grads)
    target = clip_norm * (1.0 - margin)  # provably <= C after rounding (see per_example_norms)
    finite = jnp.isfinite(norms)
    scale = jnp.where(finite, jnp.minimum(1.0, target / jnp.maximum(norms, 1e-30)), 0.0) * mask
    stats = per_example.clipping_stats(
      losses, norms, finite, mask, clip_norm, count_centre, groups, num_groups
    )
    if fixed:
      # Each example's clipped gradient (exact norm <= C: the margin covers this product's
      # rounding) on the grid, then an exact int32 sum: no rounding across examples.
      def grid_sum(g):
        keep = finite.reshape((-1,) + (1,) * (g.ndim - 1))
        clipped = jnp.where(keep, g, 0.0) * scale.reshape(keep.shape)
        return jnp.sum(fixed_point.quantize(clipped, grid_exponent), axis=0, dtype=jnp.int32)

      return jax.tree_util.tree_map(grid_sum, grads), stats
    # At the highest matmul precision: a platform's reduced default (TF32 on recent GPUs)
    # would round each clipped gradient by more than the margin, past C.
    with jax.default_matmul_precision("highest"):
      summed = jax.tree_util.tree_map(
        lambda g: jnp.tensordot(
          scale, jnp.where(finite.reshape((-1,) + (1,) * (g.ndim - 1)), g, 0.0), axes=1
        ),
        grads,
      )
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


def adaptive_noise(params: Any, dp: DPSGDConfig, seed: int, step: int) -> tuple:
  """Adaptive clipping's noise of `step`: (unit normals shaped like `params`, the count's noise
  N(0, sigma_b^2)), drawn like `dpsgd_noise` (float64 on the host, from (seed, step) only, the
  count's after the parameters'), stored as float32. The step scales the first by z_D C_t,
  which it alone knows."""
  if not dp.adaptive:
    raise ValueError("adaptive_noise needs a DPSGDConfig with clip_quantile set")
  rng = randomness.numpy_rng(seed, step, batching.NOISE_STREAM)
  unit = jax.tree_util.tree_map(
    lambda p: randomness.standard_normal(rng, np.shape(p)).astype(np.float32), params
  )
  count = dp.count_noise_std * randomness.standard_normal(rng, dp.clip_norm_shape)
  count = count.astype(np.float32)  # one count per group
  return unit, count


def next_clip_norm(
  clip_norm: jax.Array, noisy_count: jax.Array, dp: DPSGDConfig, expected_batch_size: float
) -> jax.Array:
  """C_{t+1} = C_t exp(-eta (u_t / (q n) + 1/2 - gamma)), u_t the released noisy count of
  unclipped examples centred at 1/2; per group (`clip_groups`), C_{t+1,g} = C_{t,g} exp(-eta
  u_{t,g} / (q n)), each count centred at c, gamma to 1/256 (module docstring)."""
  if dp.clip_groups is None:
    unclipped_fraction = noisy_count / expected_batch_size + 0.5
    move = unclipped_fraction - dp.clip_quantile
  else:
    move = noisy_count / expected_batch_size
  moved = clip_norm * jnp.exp(-dp.clip_learning_rate * move)
  # Kept within a millionth and a million times the first C, and at least MIN_CLIP_NORM
  # (post-processing: free), so that a long drift never reaches float32's underflow, where
  # rounding could break |clip(g)| <= C, nor its overflow.
  lowest = np.float32(max(dp.clip_norm * CLIP_NORM_RANGE[0], MIN_CLIP_NORM))
  if float(lowest) < MIN_CLIP_NORM:  # float32 rounded it down: the next float32 up (a review)
    lowest = np.nextafter(lowest, np.float32(np.inf))
  return jnp.clip(moved, lowest, dp.clip_norm * CLIP_NORM_RANGE[1])


def noisy_mean(grad_sum: Any, noise: Any, expected_batch_size: float) -> Any:
  """(sum of clipped gradients + noise) / (q n): the noise goes on the sum, then the division."""
  return jax.tree_util.tree_map(lambda g, e: (g + e) / expected_batch_size, grad_sum, noise)
