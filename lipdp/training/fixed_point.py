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

The price is the contribution bound: C' = C (1 + sqrt(d) Delta / (2 C)). The grid is coarser
for larger batches (the int32 headroom is shared by the batch's terms): for a million
parameters C' / C - 1 is 6e-5 at an expected batch of 100, 1.2e-4 at 256, 1.9e-3 at 4,096 and
3% at 100,000.

What it assumes. The accounting (replace-one, Poisson sampling) compares three computed sums:
with record i, with its replacement i', and without i when i is not sampled. They must differ
by exactly q_i, q_i' and 0 in the other records' integers, so no other record's q_j may depend
on i's content or on whether i was sampled. Three things give that: the step lays the batch out
with every record at a place fixed by its index (`lipdp.training.batching.place_by_index`), so
no record changes place when another joins or leaves (a row's float computation may depend on
its place: an independent review measured 1 to 6 grid steps between places); each record's
model noise is keyed by its record index; and XLA's vmapped per-example gradient computes each
row from that row's inputs only, which is assumed, not proven: `tests/training/
test_fixed_point.py` checks, bit for bit on a 2-device mesh, that the sums with and without a
record (and with it replaced) differ by exactly that record's integers computed alone. (On a
CPU mesh XLA's partitioned per-example gradients of convolutions were found wrong, zero on the
second device, though not dependent on other records; each device now computes its own rows
unpartitioned, `lipdp.training.steps.mesh_clipped_sum`, and `mesh_check` compares.) The noise
X is NumPy's float64 normal (`lipdp.randomness.standard_normal`, truncated at 12.2258 and
checked against delta as on the float path). In
the bulk, floor(sigma_g X + 1/2) hides X's floating-point discreteness, about 2^-30 of a grid
step, though its distribution is that of the float64 sampler, not an exact rounded Gaussian;
in the ziggurat's tail, beyond tau = r + ln(r 2^53 / sigma_g) / r standard deviations (r =
3.654, the last layer's edge; about 9.9 for the MNIST recipe, a mass of about 3.5e-23 per
coordinate and step; 8.9 for a large noise multiplier on a small batch), the sampler's outputs
lie more than a grid step apart and the rounded noise skips integers (found by the review):
there, as on the float path, the discreteness is not modelled (`tail_standard_deviations`;
the step logs tau and the mass beyond it).

A batch above `FixedPointGrid.batch_cap` (about q n + 10 standard deviations: probability
below 1e-20 a step) would overflow the grid's headroom, so it is replaced by an empty batch and
the step adds noise only. The cap depends on the batch's size alone, which under replace-one
neighbours is independent of the records (under add/remove-one it would not be: a neighbour
without record i could fall under the cap where the other is over it), and an empty batch's
output is independent of them:
given the other records' inclusions, the two neighbours' outputs are then either identical or
the usual pair, so the step is at least as private as the one accounted (joint convexity of the
hockey-stick divergence over the other records' inclusions).

Only the vmap path forms the per-example gradients this needs (the ghost path's sums are
matrix products across examples, rounded in float32), and adaptive clipping, whose clip norm
moves each step, is not supported here.

Bounded float sums (`sum_arithmetic='bounded-float32'`, either clipping path: the ghost path's
speed). The clipped gradients are summed in float32 as on the float path, and the finished sum
S~ is rounded to the grid, round(S~ / Delta), and noised there as above. What makes that a
mechanism of known sensitivity is a bound on S~'s rounding (Higham 2002, Lemma 3.1 and 3.3): an
entry of S~ is a sum of terms p_i (the exactly rounded products that make each example's
contribution, of l2 norm at most C by the clipping's margin), added in some order along
paths of at most m additions, so |S~ - sum_i p_i| <= gamma_m sum_i |p_i| entrywise and
|S~ - sum_i p_i| <= gamma_m |B| C in l2, whatever order XLA adds in. With records at places
fixed by their index and model noise keyed by it, the other examples' p_j are the same in the
three sums compared (with i, with i', without i), so the sums with and without i differ by at
most C + 2 gamma_m cap C (plus 2 m 2^-126 sqrt(d) for float32 results flushed to zero, which
Higham's relative model leaves out), and after rounding to the grid by at most C' = C (1 +
2 gamma_m cap) + sqrt(d) Delta (`FixedPointGrid.float_sum_terms` = m, cap the batch cap), the
contribution bound the noise is calibrated to; with i replaced, by at most 2 C'. m is the microbatch
size (the terms of each matrix product, rows; a layer with several positions per example is
materialised, `lipdp.training.ghost_clipping`, so that its terms are rows too) plus the
microbatches' count (capped, `batching.placed_chunks_cap`: a layout needing more adds noise only,
like a batch over the cap) plus the devices plus 8 (the rows' own products and scales).
For the MNIST recipe (microbatches of 128: m = 163, cap 424) C' / C - 1 is 0.85%; at the
microbatch a step picks when none is given (`batching.placed_chunk_size`: 16, m = 91) 0.49%.
"""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lipdp import randomness
from lipdp import rounding
from lipdp.training import batching

# The largest magnitude an int32 partial sum may reach.
INT32_MAX = 2**31 - 1
# Standard deviations above the mean at which a Poisson batch is capped (`batch_cap`): the
# Binomial tail there is below exp(-50) (Bernstein), so the cap is a utility safeguard only.
CAP_STANDARD_DEVIATIONS = 10
# Grid exponents kept inside float32's normal range, so that v / Delta is an exact scaling; that
# (S + N) Delta and a bounded float sum stay finite in float32 is checked by `fits` (a review
# found a clip norm of 1e37 accepted at e = 100, its sums past float32's largest value).
EXPONENT_RANGE = (-100, 100)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def batch_cap(num_records: int, sampling_rate: float) -> int:
  """The largest Poisson batch the fixed-point step sums: min(n, ceil(q n + 10 sd + 10))."""
  mean = sampling_rate * num_records
  sd = math.sqrt(mean * (1.0 - sampling_rate))
  return min(num_records, math.ceil(mean + CAP_STANDARD_DEVIATIONS * sd + 10))


# The edge of the last layer of NumPy's 256-layer float64 normal ziggurat: beyond it the tail
# is drawn as r - log1p(-U) / r with U on a 2^-53 grid.
ZIGGURAT_R = 3.6541528853610088


def tail_standard_deviations(noise_std_units: float) -> float:
  """tau: beyond tau standard deviations, consecutive float64 normals NumPy can draw lie more than
  1 / sigma_g apart, so floor(sigma_g X + 1/2) skips integers (module docstring). The tail's
  outputs are r + x with x = -log1p(-U) / r, whose spacing at x is about e^(r x) / (r 2^53)."""
  return ZIGGURAT_R + math.log(ZIGGURAT_R * 2.0**53 / noise_std_units) / ZIGGURAT_R


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
  float_sum_terms: int = 0  # m of a bounded float sum (module docstring); 0: fixed point

  @property
  def step(self) -> float:
    """Delta = 2^e."""
    return math.ldexp(1.0, self.exponent)

  @property
  def float_sum_error(self) -> float:
    """gamma_m: the bounded float sum's relative rounding bound (0 for fixed-point sums)."""
    if not self.float_sum_terms:
      return 0.0
    return _up(rounding.gamma(self.float_sum_terms, rounding.FLOAT32_UNIT))

  @property
  def contribution_bound(self) -> float:
    """C', rounded up: C + sqrt(d) Delta / 2, the l2 norm bound of an example's q_i Delta; for
    a bounded float sum, C (1 + 2 gamma_m cap) + sqrt(d) Delta (module docstring)."""
    root_d = _up(math.sqrt(self.num_params))
    if not self.float_sum_terms:
      return _up(self.clip_norm + _up(root_d * self.step / 2))
    rounding_error = _up(_up(2 * self.float_sum_error * self.batch_cap) * self.clip_norm)
    # XLA on a CPU flushes results below 2^-126 to zero, outside Higham's relative model: each
    # of the m additions on a path may lose 2^-126 more, 2 m 2^-126 sqrt(d) for both sums in l2.
    flushed = _up(2 * self.float_sum_terms * 2.0**-126 * root_d)
    return _up(_up(_up(self.clip_norm + rounding_error) + flushed) + _up(root_d * self.step))

  @property
  def noise_std_units(self) -> float:
    """sigma_g = z C' / Delta, rounded up: the noise std in grid units."""
    return _up(self.noise_multiplier * self.contribution_bound / self.step)

  @property
  def tail_standard_deviations(self) -> float:
    """tau, beyond which the float64 noise skips grid points (`tail_standard_deviations`)."""
    return tail_standard_deviations(self.noise_std_units)

  @property
  def tail_mass(self) -> float:
    """P(|X| > tau): the noise's mass per coordinate and step where it skips grid points."""
    return randomness.normal_tail_mass(self.tail_standard_deviations)

  def largest_magnitude(self) -> float:
    """An upper bound on |S_j + N_j| for every coordinate j of a capped batch: each |q_ij| is at
    most C / Delta + 1/2 (|v_ij| <= C), and |N_j| at most sigma_g 12.2258 + 1 (the float64
    sampler's range, its product's rounding and the floor). A bounded float sum's entry is at
    most cap C (1 + gamma_m) / Delta, plus 1/2 for its rounding to the grid."""
    noise = self.noise_std_units * randomness.FLOAT64_NORMAL_MAX * (1 + 1e-12) + 1.0
    if self.float_sum_terms:
      total = self.batch_cap * self.clip_norm * (1 + self.float_sum_error) / self.step + 0.5
      return _up(total * (1 + 1e-12) + noise)
    per_example = self.clip_norm / self.step + 0.5
    return _up(self.batch_cap * per_example + noise)

  def fits(self) -> bool:
    """Whether no partial sum, nor the sum plus the noise, can leave int32, and every float32
    value on the way (a bounded float sum, (S + N) Delta) stays below half float32's largest."""
    largest = self.largest_magnitude()
    return largest <= INT32_MAX and largest * self.step <= FLOAT32_MAX / 2

  @classmethod
  def choose(
    cls,
    clip_norm: float,
    num_params: int,
    noise_multiplier: float,
    num_records: int,
    sampling_rate: float,
    float_sum_terms: int = 0,
  ) -> "FixedPointGrid":
    """The finest grid (smallest e) on which a capped batch's sum and noise fit int32;
    `float_sum_terms` m > 0 for a bounded float sum (module docstring)."""
    if not (math.isfinite(clip_norm) and clip_norm > 0):
      raise ValueError(f"clip_norm must be a positive number, got {clip_norm!r}")
    if num_params < 1:
      raise ValueError(f"num_params must be at least 1, got {num_params!r}")
    if float_sum_terms < 0:
      raise ValueError(f"float_sum_terms must be >= 0, got {float_sum_terms!r}")
    cap = batch_cap(num_records, sampling_rate)
    # C / Delta must stay below 2^31 / (cap + 12.3 z): start there and coarsen until it fits.
    room = INT32_MAX / (cap + randomness.FLOAT64_NORMAL_MAX * noise_multiplier + 2)
    exponent = math.floor(math.log2(clip_norm / room)) if room > 0 else EXPONENT_RANGE[1]
    while exponent <= EXPONENT_RANGE[1]:
      grid = cls(
        exponent,
        float(clip_norm),
        int(num_params),
        float(noise_multiplier),
        cap,
        int(float_sum_terms),
      )
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
      **({"float_sum_terms": self.float_sum_terms} if self.float_sum_terms else {}),
      "tail_standard_deviations": self.tail_standard_deviations,
    }


def quantize(clipped: jax.Array, exponent: int) -> jax.Array:
  """q = round(v / 2^e) as int32, for float32 clipped gradients v (any shape).

  v * 2^-e is exact for the exponents `FixedPointGrid` allows (a power-of-two scaling inside
  float32's range; a subnormal v read as zero still rounds to within 1/2 of v / 2^e), and
  rounding to the nearest integer (ties to even) moves it by at most 1/2.
  """
  scaled = clipped * jnp.float32(math.ldexp(1.0, -exponent))
  return jnp.round(scaled).astype(jnp.int32)


def grid_noise(params: Any, grid: FixedPointGrid, seed: int, step: int) -> Any:
  """The integer noise of `step`: floor(sigma_g X + 1/2) per coordinate, X float64 normal drawn on
  the host from the stream the float path draws its noise from (`lipdp.training.dpsgd.
  dpsgd_noise`: the same normals), stored as int32."""
  rng = randomness.numpy_rng(seed, step, batching.NOISE_STREAM)
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
