"""Exact samplers of the discrete Gaussian, from uniform 64-bit words only.

N_Z(0, s^2) is the distribution on the integers with P(y) proportional to exp(-y^2 / (2 s^2)).
The samplers are Algorithms 1-3 of Canonne, Kamath and Steinke ("The Discrete Gaussian for
Differential Privacy", NeurIPS 2020), in exact integer arithmetic: every Bernoulli(p / q) is
decided by comparing uniform 64-bit words with the binary expansion of p / q (more words only
on a tie), every uniform integer below n by rejection, so the output distribution is exactly
the target's, with no floating-point number anywhere. The words come from a NumPy Generator
(`lipdp.randomness.numpy_rng`: AES-CTR for secret seeds, PCG64 for a user's seed).

- `bernoulli_exp(p, q)`: Bernoulli(exp(-p/q)) (Algorithm 1 and its extension to p/q > 1).
- `discrete_laplace(t)`: P(y) proportional to exp(-|y| / t) (Algorithm 2).
- `discrete_gaussian(scale_squared)`: N_Z(0, s^2) for an integer s^2 (Algorithm 3: a discrete
  Laplace proposal with t = floor(s) + 1, accepted with probability
  exp(-(|y| - s^2/t)^2 / (2 s^2))).
- `lattice_release(rng, means, lattice, k)`: the release of `lipdp.privacy.lattice`.
- `exponential_mechanism(rng, scores, temperature)`: an index drawn with probability exactly
  proportional to exp(s_i / T), for the float64 scores and temperature as given (their exact
  binary values), by rejection with Algorithm 1's Bernoulli(exp(-p/q)).

`discrete_gaussian_array` runs the same algorithms on arrays in int64 where the scale allows
(an integer scale up to 2^24: a lattice release's unless L D / sigma < sqrt(d) / 128); the
scalar functions, in Python ints, are the reference, and serve larger scales.
"""

import fractions
import math
from typing import Sequence

import numpy as np

from lipdp.privacy import lattice as lattice_lib

_WORD = 1 << 64
# How a release draws its noise (`lipdp.latent_release.check_noise_sampler`): 'exact' (the
# lattice release below), 'float64' (NumPy's float64 sampler) or 'auto' (exact where allowed).
NOISE_SAMPLERS = ("auto", "exact", "float64")


class WordSource:
  """Uniform 64-bit words from a NumPy Generator, drawn in blocks (the order is fixed, so a
  seeded Generator gives reproducible samples)."""

  def __init__(self, rng: np.random.Generator, block: int = 8192):
    self._rng = rng
    self._block = block
    self._words = []

  def word(self) -> int:
    if not self._words:
      self._words = self._rng.integers(0, _WORD, size=self._block, dtype=np.uint64).tolist()
      self._words.reverse()
    return self._words.pop()

  def below(self, n: int) -> int:
    """Uniform in {0, ..., n - 1}, 1 <= n <= 2^64 (rejection: exact)."""
    limit = _WORD - _WORD % n
    while True:
      w = self.word()
      if w < limit:
        return w % n

  def bernoulli(self, p: int, q: int) -> bool:
    """True with probability exactly p / q (0 <= p <= q): a uniform U in [0, 1) read 64 bits
    at a time against the binary expansion of p / q, which decides unless the words tie."""
    while p:  # the rest of p / q is 0: U, which is not below 0, decides false
      digits, p = divmod(p << 64, q)
      w = self.word()
      if w != digits:
        return w < digits
    return False


def _bernoulli_exp_at_most_one(source: WordSource, p: int, q: int) -> bool:
  """Bernoulli(exp(-p/q)) for 0 <= p <= q (Algorithm 1): the first K with A_K = 0, where
  A_K ~ Bernoulli(p / (q K)), is odd with probability exp(-p/q)."""
  k = 1
  while source.bernoulli(p, q * k):
    k += 1
  return k % 2 == 1


def bernoulli_exp(source: WordSource, p: int, q: int) -> bool:
  """Bernoulli(exp(-p/q)) for integers p >= 0, q >= 1: floor(p/q) independent
  Bernoulli(exp(-1)), all true, then Bernoulli(exp(-(p/q - floor(p/q))))."""
  whole, rest = divmod(p, q)
  for _ in range(whole):
    if not _bernoulli_exp_at_most_one(source, 1, 1):
      return False
  return _bernoulli_exp_at_most_one(source, rest, q)


def discrete_laplace(source: WordSource, t: int) -> int:
  """P(y) proportional to exp(-|y| / t) on the integers, t >= 1 (Algorithm 2)."""
  while True:
    u = source.below(t)
    if not _bernoulli_exp_at_most_one(source, u, t):
      continue
    v = 0
    while _bernoulli_exp_at_most_one(source, 1, 1):
      v += 1
    x = u + t * v
    negative = source.word() >> 63
    if negative and x == 0:
      continue
    return -x if negative else x


def discrete_gaussian(source: WordSource, scale_squared: int) -> int:
  """One draw of N_Z(0, s^2), s^2 = scale_squared a positive integer (Algorithm 3)."""
  t = math.isqrt(scale_squared) + 1  # floor(s) + 1
  denominator = 2 * scale_squared * t * t
  while True:
    y = discrete_laplace(source, t)
    gap = abs(y) * t - scale_squared  # (|y| - s^2 / t) t
    if bernoulli_exp(source, gap * gap, denominator):
      return y


def exponential_mechanism(
  rng: np.random.Generator, scores: Sequence[float], temperature: float
) -> int:
  """Index i with probability exactly exp(s_i / T) / sum_j exp(s_j / T), where s_i and T are the
  exact values of the given float64 numbers (McSherry and Talwar 2007's mechanism, sampled
  without floating-point arithmetic).

  Rejection from the uniform proposal: draw i uniformly, keep it with probability
  exp(-(max_j s_j - s_i) / T), a Bernoulli(exp(-p/q)) on the exact rational gap (Canonne,
  Kamath and Steinke 2020, Algorithm 1), else draw again. A kept index has probability
  proportional to exp(s_i / T); the maximum, always kept, bounds the expected number of
  proposals by the number of scores. (The number of proposals, like every running time here,
  depends on the scores: timing is outside the privacy model.)
  """
  values = np.asarray(scores, dtype=np.float64)
  if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
    raise ValueError(f"scores must be a non-empty 1-D array of finite numbers, got {scores!r}")
  if not (math.isfinite(temperature) and temperature > 0):
    raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
  exact = [fractions.Fraction(float(v)) for v in values]
  top, scale = max(exact), fractions.Fraction(float(temperature))
  source = WordSource(rng, block=16)
  while True:
    i = source.below(len(exact))
    gap = (top - exact[i]) / scale
    if bernoulli_exp(source, gap.numerator, gap.denominator):
      return i


def discrete_gaussian_array(
  rng: np.random.Generator, scale_squared: int, shape, vectorised: bool = True
) -> np.ndarray:
  """int64 array of independent N_Z(0, s^2) draws: vectorised in int64 (below) when s is an
  integer up to 2^24, else one by one in Python ints (`vectorised=False` forces that; both
  are exact)."""
  if isinstance(scale_squared, bool) or not isinstance(scale_squared, int) or scale_squared < 1:
    raise ValueError(f"scale_squared must be a positive int, got {scale_squared!r}")
  size = int(np.prod(shape, dtype=np.int64))
  scale = math.isqrt(scale_squared)
  if vectorised and scale * scale == scale_squared and scale <= MAX_VECTORISED_SCALE:
    return _discrete_gaussian_vec(rng, scale, size).reshape(shape)
  source = WordSource(rng)
  return np.array(
    [discrete_gaussian(source, scale_squared) for _ in range(size)], dtype=np.int64
  ).reshape(shape)


def lattice_release(
  rng: np.random.Generator, means: np.ndarray, lattice: lattice_lib.LatticeNoise, k: int
) -> np.ndarray:
  """gamma (round(mu / gamma) + Y_j), j = 1..k, as float64 of shape (n, k, d)
  (`lipdp.privacy.lattice`). Every value is exact: mu / gamma and its rounding are exact for a
  power-of-two gamma, and gamma times an integer below 2^53 is a float64."""
  means = np.asarray(means, np.float64)
  if means.ndim != 2 or means.shape[1] != lattice.dim:
    raise ValueError(f"means must have shape (n, {lattice.dim}), got {means.shape}")
  if np.any(np.isnan(means)):  # a non-finite computation: no guarantee covers it
    raise ValueError("the encoder means are not all numbers (NaN)")
  centres = _grid_centres(means, lattice.grid_exponent)
  noise = discrete_gaussian_array(rng, lattice.scale**2, (means.shape[0], k, means.shape[1]))
  return _on_grid(centres[:, None, :], noise, lattice.grid_exponent)


_HALF_INDEX = lattice_lib.MAX_LATTICE_INDEX // 2  # |centre|, |noise| < 2^52: their sum < 2^53


def _grid_centres(values: np.ndarray, exponent: int) -> np.ndarray:
  """round(values / 2^exponent) as int64 (exact: a power-of-two scaling), clipped to 2^52 - 1
  grid steps, not refused: a refusal would depend on the private values (a review's finding).
  Clipping each coordinate is 1-Lipschitz in l1 and l2, so the sensitivity still holds; no
  trained encoder or count comes near."""
  scaled = np.clip(np.ldexp(values, -exponent), 1 - _HALF_INDEX, _HALF_INDEX - 1)
  return np.rint(scaled).astype(np.int64)


def _on_grid(centres: np.ndarray, noise: np.ndarray, exponent: int) -> np.ndarray:
  """2^exponent (centres + noise) in float64, exact for |centres + noise| < 2^53."""
  if np.any(np.abs(noise) >= _HALF_INDEX):  # beyond 2^52 steps: never, but then not exact
    raise ValueError("a noise draw exceeded 2^52 grid steps")
  return np.ldexp((centres + noise).astype(np.float64), exponent)


def _counts_exponent(scale: float, values: np.ndarray) -> int:
  """The grid 2^e <= min(2^-16 scale, 1) of a measurement of counts: integers lie on it, so
  the grid, and what the output reveals of it, never depends on the counts' values."""
  if not np.array_equal(values, np.round(values)):
    raise ValueError("counts must be integers")
  return min(math.frexp(scale)[1] - 1 - lattice_lib.SCALE_BITS, 0)


def gaussian_measurement(
  rng: np.random.Generator, values: np.ndarray, sigma: float, sensitivity: float, counts: bool
) -> np.ndarray:
  """`values` plus exact discrete Gaussian noise on a lattice, at least as private as
  `values` + N(0, sigma^2 I) with l2 sensitivity `sensitivity` (the central baselines'
  Gaussian measurements; `lipdp.privacy.lattice` for the argument, with one record's d values).

  `counts` (declared by the caller, never inferred from the values, so that the lattice the
  output lies on reveals nothing): integer values lie on the grid 2^e <= min(2^-16 sigma, 1)
  and are not moved by the rounding, so the lattice only needs its accounted sigma at least
  `sigma` (`LatticeNoise.at_least`); other values take `LatticeNoise.covering`, whose accounted
  ratio covers the rounding. Either way the mechanism is, to within a slack below 1e-60, a
  post-processing of a Gaussian one with a ratio of sensitivity to noise at most
  sensitivity / sigma."""
  values = np.asarray(values, np.float64)
  flat = values.reshape(1, -1)
  if counts:
    exponent = _counts_exponent(sigma, flat)
    lattice = lattice_lib.LatticeNoise.at_least(sigma, exponent, flat.shape[1])
  else:
    lattice = lattice_lib.LatticeNoise.covering(sigma, sensitivity, flat.shape[1])
  return lattice_release(rng, flat, lattice, 1)[0, 0].reshape(values.shape)


def laplace_measurement(rng: np.random.Generator, counts: np.ndarray, scale: float) -> np.ndarray:
  """`counts` (integers: on the grid gamma = 2^e <= min(2^-16 `scale`, 1)) plus exact discrete
  Laplace noise, P(y) proportional to exp(-|y| / t) in grid units with t = ceil(scale / gamma)
  (Algorithm 2). For two inputs at l1 distance Delta every output's probability ratio is at
  most exp(Delta / (gamma t)) <= exp(Delta / scale): at least as private as the Laplace
  measurement of scale `scale` it replaces, exactly (pure DP needs no smoothing). Values
  beyond 2^52 steps are clipped (1-Lipschitz in l1), never refused."""
  scale = float(scale)
  if not (math.isfinite(scale) and 2.0**-900 < scale):
    raise ValueError(f"scale must be finite and above 2^-900, got {scale}")
  counts = np.asarray(counts, np.float64)
  exponent = _counts_exponent(scale, counts)
  t = math.ceil(math.ldexp(scale, -exponent))
  if t >= 2**40:
    raise ValueError(f"scale {scale} is too large for the exact sampler")
  noise = _discrete_laplace_vec(rng, t, counts.size).reshape(counts.shape)
  return _on_grid(_grid_centres(counts, exponent), noise, exponent)


# --- vectorised: the same algorithms on arrays, in int64 -------------------------------------
#
# For an integer scale s <= 2^24, Algorithm 3 with t = s (any t >= 1 gives the target law; s
# is as efficient as floor(s) + 1) needs only int64 numbers: the acceptance exponent is
# (|y| - s)^2 / (2 s^2), and every Bernoulli(p / q) of Algorithm 1 is R < p for R uniform below
# q = 2 s^2 K < 2^63, drawn by rejection from 64-bit words (`_bernoulli_fraction`), so each
# vectorised step decides exactly as the scalar one does, with other words. A proposal so far in the tail that
# its exponent would not fit in int64 (|y| >= 2^31, probability below e^-127) is decided by the
# scalar Python-int path.

MAX_VECTORISED_SCALE = 2**24
_BIG_PROPOSAL = 2**31


def _bernoulli_fraction(rng, p: np.ndarray, q: int) -> np.ndarray:
  """Elementwise Bernoulli(p / q) for int64 0 <= p <= q, 1 <= q < 2^63: R < p for R uniform
  in [0, q), drawn by rejection: a uniform 64-bit word w below the largest multiple of q under
  2^64 is kept, and then w mod q is uniform (exact; a word is redrawn with probability below
  q / 2^64)."""
  top = np.uint64((1 << 64) - (1 << 64) % q - 1)
  words = rng.integers(0, 2**64, size=p.size, dtype=np.uint64)
  redraw = np.flatnonzero(words > top)
  while redraw.size:
    words[redraw] = rng.integers(0, 2**64, size=redraw.size, dtype=np.uint64)
    redraw = redraw[words[redraw] > top]
  return words % np.uint64(q) < p.astype(np.uint64)


def _bernoulli_exp_fraction(rng, p: np.ndarray, q: int) -> np.ndarray:
  """Bernoulli(exp(-p/q)) elementwise for int64 0 <= p <= q < 2^49 (Algorithm 1)."""
  p = np.asarray(p, np.int64)
  result = np.zeros(p.shape, bool)
  active = np.arange(p.size)
  k = 1
  while active.size:
    if k >= 2**13:  # q k would overflow; probability below 1 / (2^13 - 1)!
      raise RuntimeError("Algorithm 1 ran past K = 2^13")
    go_on = _bernoulli_fraction(rng, p[active], q * k)
    result[active[~go_on]] = k % 2 == 1
    active = active[go_on]
    k += 1
  return result


def _bernoulli_exp_vec(rng, p: np.ndarray, q: int) -> np.ndarray:
  """Bernoulli(exp(-p/q)) elementwise, integers 0 <= p < 2^63, 1 <= q < 2^49: floor(p/q)
  Bernoulli(exp(-1)), all true, then Algorithm 1 on the rest."""
  whole, rest = np.divmod(p, q)
  alive = np.ones(p.shape, bool)
  pending = np.flatnonzero(whole > 0)
  while pending.size:
    alive[pending] &= _bernoulli_exp_fraction(rng, np.ones(pending.size, np.int64), 1)
    whole[pending] -= 1
    pending = pending[alive[pending] & (whole[pending] > 0)]
  idx = np.flatnonzero(alive)
  alive[idx] = _bernoulli_exp_fraction(rng, rest[idx], q)
  return alive


def _discrete_laplace_vec(rng, t: int, size: int) -> np.ndarray:
  """`size` draws of P(y) proportional to exp(-|y| / t) (Algorithm 2), int64."""
  out = np.empty(size, np.int64)
  filled = 0
  while filled < size:
    m = size - filled
    # About 63% of the u pass exp(-u / t) and 1/2 m of the signs restart on 0, rarely.
    u = rng.integers(0, t, size=m * 8 // 5 + 16)  # exact: NumPy's bounded integers reject
    u = u[_bernoulli_exp_fraction(rng, u, t)]
    v = np.zeros(u.size, np.int64)
    going = np.arange(u.size)
    while going.size:  # v: the number of Bernoulli(exp(-1)) successes before a failure
      success = _bernoulli_exp_fraction(rng, np.ones(going.size, np.int64), 1)
      v[going[success]] += 1
      going = going[success]
    x = u + t * v
    negative = rng.integers(0, 2**64, size=x.size, dtype=np.uint64) >> np.uint64(63) == 1
    keep = ~(negative & (x == 0))
    y = np.where(negative, -x, x)[keep][:m]
    out[filled : filled + y.size] = y
    filled += y.size
  return out


def _discrete_gaussian_vec(rng, scale: int, size: int) -> np.ndarray:
  """`size` draws of N_Z(0, scale^2), int64 (Algorithm 3 with t = scale)."""
  source = WordSource(rng)
  denominator = 2 * scale * scale
  out = np.empty(size, np.int64)
  filled = 0
  while filled < size:
    m = size - filled
    y = _discrete_laplace_vec(rng, scale, m * 4 // 3 + 16)  # about 76% are accepted
    big = np.abs(y) >= _BIG_PROPOSAL
    gap = np.where(big, 0, np.abs(y) - scale)
    accept = _bernoulli_exp_vec(rng, gap * gap, denominator)
    for i in np.flatnonzero(big):  # exact in Python ints; essentially never
      g = abs(int(y[i])) - scale
      accept[i] = bernoulli_exp(source, g * g, denominator)
    y = y[accept][:m]
    out[filled : filled + y.size] = y
    filled += y.size
  return out
