"""DP-SGD's clipped sum on an integer grid: a sum whose sensitivity holds in floating point.

The accounting of DP-SGD (`lipdp.training.dpsgd`) is about the exact sum of clipped gradients,
each of norm at most C. A float32 sum is not that sum: its rounding depends on every term and
on the order XLA adds them in, so replacing one record moves the computed sum by up to
C (1 + 2 gamma_m |B|) in the worst case (Higham 2002), not C; Casacuberta, Shoemate, Vadhan and
Wagaman 2022 ("Widespread underestimation of sensitivity in differentially private libraries
and how to fix it", CCS) show such sums break the sensitivity of DP libraries, and recommend
integer arithmetic. The batch's size is random under Poisson sampling, so no fixed factor
covers it. This module moves the sum to integers, where addition is exact and order-free:

* the grid: Delta = 2^e, a power of two (`FixedPointGrid`);
* each example's clipped gradient v_i (float32, exact norm <= C by `per_example.per_example_norms`'
  margin) becomes q_i = round(v_i / Delta) in int32: v_i / Delta is exact (a power of two), and
  rounding moves each coordinate by at most 1/2, so |q_i| <= C / Delta + sqrt(d) / 2 =
  C' / Delta with C' = C + sqrt(d) Delta / 2, the contribution bound (d parameters);
* S = sum_{i in B} q_i in int32 is exact whatever the order and the microbatch layout: the grid
  is chosen so that no partial sum, nor S plus the noise, can leave int32 (`FixedPointGrid`);
* the noise is N = floor(sigma_g X + 1/2), X standard normal, sigma_g = z C' / Delta, so that
  S + N = floor(S + sigma_g X + 1/2) (S is an integer): a function of the Gaussian mechanism
  S + sigma_g X, of sensitivity C' / Delta per record and noise multiplier z, the DP-SGD event
  that is accounted. The step then computes (S + N) Delta / (q n) in float32: post-processing.

The price is the contribution bound: C' = C (1 + sqrt(d) Delta / (2 C)), about 1e-4 above C for
a million parameters and the grids chosen here, so the noise is z C' instead of z C.

What it assumes. q_i must be a function of record i alone (and of the weights, the step and
secret randomness), whatever the rest of the batch: the step keys each example's model noise
by its record index (not its place in the batch), and XLA's vmapped per-example gradient
computes every row by the same operations, which `tests/training/test_fixed_point.py` checks
bit for bit (a record's q_i at every place in a microbatch, beside other records). The noise X
is NumPy's float64 normal (`lipdp.randomness.standard_normal`, truncated at 12.2258, checked
against delta as for the float path); rounding it to the grid hides its floating-point
discreteness, which is about 2^-30 of a grid step, but its distribution is that of the float64
sampler, not an exact rounded Gaussian.

A batch above `FixedPointGrid.batch_cap` (about q n + 10 standard deviations: probability
below 1e-20 a step) would overflow the grid's headroom, so it is replaced by an empty batch and
the step adds noise only. The cap depends on the batch's size alone, which under replace-one
neighbours is independent of the records, and an empty batch's output is independent of them:
given the other records' inclusions, the two neighbours' outputs are then either identical or
the usual pair, so the step is at least as private as the one accounted (joint convexity of the
hockey-stick divergence over the other records' inclusions).

Only the vmap path forms the per-example gradients this needs (the ghost path's sums are
matrix products across examples, rounded in float32), and adaptive clipping, whose clip norm
moves each step, is not supported here.
"""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lipdp import randomness

# The largest magnitude an int32 partial sum may reach.
INT32_MAX = 2**31 - 1
# Standard deviations above the mean at which a Poisson batch is capped (`batch_cap`): the
# Binomial tail there is below exp(-50) (Bernstein), so the cap is a utility safeguard only.
CAP_STANDARD_DEVIATIONS = 10
# Grid exponents kept well inside float32's normal range, so that v / Delta and (S + N) Delta
# are exact scalings.
EXPONENT_RANGE = (-100, 100)


def batch_cap(num_records: int, sampling_rate: float) -> int:
  """The largest Poisson batch the fixed-point step sums: min(n, ceil(q n + 10 sd + 10))."""
  mean = sampling_rate * num_records
  sd = math.sqrt(mean * (1.0 - sampling_rate))
  return min(num_records, math.ceil(mean + CAP_STANDARD_DEVIATIONS * sd + 10))


def _up(x: float) -> float:
  """The next float64 above `x`: one rounding of an upper bound, made an upper bound again."""
  return math.nextafter(x, math.inf)


@dataclasses.dataclass(frozen=True)
class FixedPointGrid:
  """The grid Delta = 2^exponent of one DP-SGD run, and what follows from it.

  Built by `FixedPointGrid.choose`, which takes the finest grid whose sums cannot overflow.

  Attributes:
    exponent: e, with Delta = 2^e.
    clip_norm: C, each clipped gradient's norm bound before rounding to the grid.
    num_params: d, the number of coordinates each example contributes.
    noise_multiplier: z, the accounted noise multiplier (noise std over the contribution bound).
    batch_cap: the largest batch summed (`batch_cap`); a larger one is replaced by an empty one.
  """

  exponent: int
  clip_norm: float
  num_params: int
  noise_multiplier: float
  batch_cap: int

  @property
  def step(self) -> float:
    """Delta = 2^e."""
    return math.ldexp(1.0, self.exponent)

  @property
  def contribution_bound(self) -> float:
    """C' = C + sqrt(d) Delta / 2, rounded up: the l2 norm bound of an example's q_i Delta."""
    return _up(self.clip_norm + _up(_up(math.sqrt(self.num_params)) * self.step / 2))

  @property
  def noise_std_units(self) -> float:
    """sigma_g = z C' / Delta, rounded up: the noise std in grid units."""
    return _up(self.noise_multiplier * self.contribution_bound / self.step)

  def largest_magnitude(self) -> float:
    """An upper bound on |S_j + N_j| for every coordinate j of a capped batch: each |q_ij| is at
    most C / Delta + 1/2 (|v_ij| <= C), and |N_j| at most sigma_g 12.2258 + 1 (the float64
    sampler's range, its product's rounding and the floor)."""
    per_example = self.clip_norm / self.step + 0.5
    noise = self.noise_std_units * randomness.FLOAT64_NORMAL_MAX * (1 + 1e-12) + 1.0
    return _up(self.batch_cap * per_example + noise)

  def fits(self) -> bool:
    """Whether no partial sum, nor the sum plus the noise, can leave int32."""
    return self.largest_magnitude() <= INT32_MAX

  @classmethod
  def choose(
    cls,
    clip_norm: float,
    num_params: int,
    noise_multiplier: float,
    num_records: int,
    sampling_rate: float,
  ) -> "FixedPointGrid":
    """The finest grid (smallest e) on which a capped batch's sum and noise fit int32."""
    if not (math.isfinite(clip_norm) and clip_norm > 0):
      raise ValueError(f"clip_norm must be a positive number, got {clip_norm!r}")
    if num_params < 1:
      raise ValueError(f"num_params must be at least 1, got {num_params!r}")
    cap = batch_cap(num_records, sampling_rate)
    # C / Delta must stay below 2^31 / (cap + 12.3 z): start there and coarsen until it fits.
    room = INT32_MAX / (cap + randomness.FLOAT64_NORMAL_MAX * noise_multiplier + 2)
    exponent = math.floor(math.log2(clip_norm / room)) if room > 0 else EXPONENT_RANGE[1]
    while exponent <= EXPONENT_RANGE[1]:
      grid = cls(exponent, float(clip_norm), int(num_params), float(noise_multiplier), cap)
      if exponent >= EXPONENT_RANGE[0] and grid.fits():
        return grid
      exponent += 1
    raise ValueError(
      f"no fixed-point grid fits int32 for clip norm {clip_norm}, noise multiplier "
      f"{noise_multiplier} and batches of up to {cap} records"
    )

  def as_dict(self) -> dict:
    """The grid and what follows from it, for logs and reports."""
    return {
      "exponent": self.exponent,
      "step": self.step,
      "contribution_bound": self.contribution_bound,
      "batch_cap": self.batch_cap,
    }


def quantize(clipped: jax.Array, exponent: int) -> jax.Array:
  """q = round(v / 2^e) as int32, for float32 clipped gradients v (any shape).

  v * 2^-e is exact for the exponents `FixedPointGrid` allows (a power-of-two scaling inside
  float32's range; a subnormal v read as zero still rounds to within 1/2 of v / 2^e), and
  rounding to the nearest integer (ties to even) moves it by at most 1/2.
  """
  scaled = clipped * jnp.float32(math.ldexp(1.0, -exponent))
  return jnp.round(scaled).astype(jnp.int32)


def grid_noise(params: Any, grid: FixedPointGrid, seed: int, step: int, stream: int) -> Any:
  """The integer noise of `step`: floor(sigma_g X + 1/2) per coordinate, X float64 normal drawn on
  the host from (seed, step, stream) as the float path draws its noise, stored as int32."""
  rng = randomness.numpy_rng(seed, step, stream)
  sigma = grid.noise_std_units

  def draw(p):
    return np.floor(sigma * randomness.standard_normal(rng, np.shape(p)) + 0.5).astype(np.int32)

  return jax.tree_util.tree_map(draw, params)


def noisy_mean(grad_sum: Any, noise: Any, exponent: int, expected_batch_size: float) -> Any:
  """(S + N) 2^e / (q n) in float32: the integer sum and noise added exactly, then scaled
  (post-processing of the noisy integer sum)."""
  scale = math.ldexp(1.0, exponent)
  return jax.tree_util.tree_map(
    lambda s, n: (s + n).astype(jnp.float32) * jnp.float32(scale) / expected_batch_size,
    grad_sum,
    noise,
  )
