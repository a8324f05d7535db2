"""Amplification by shuffling for a synthetic dataset released as a multiset.

Model. Each record x_i is mapped, independently, by the same local randomizer
R(x) = decoder(mu(x) + sigma xi) (k latents per record: the k-tuple is one
message). If the n outputs are released as a uniformly shuffled multiset with
no record identifiers, this is the (single-message, non-interactive) shuffle
model, and the central guarantee can be far smaller than the per-record one
(Feldman, McMillan, Talwar, "Hiding Among the Clones: A Simple and Nearly
Optimal Analysis of Privacy Amplification by Shuffling", FOCS 2021,
arXiv:2012.12803; below "FMT"). Releasing the k n synthetic records shuffled
individually is a post-processing of shuffling the n k-tuples (un-bundle, then
re-shuffle), so the bound below covers it too. The neighbouring relation is
replace-one (FMT's datasets differ in one element), the same as everywhere in
lipdp. The per-record randomizer must be DP for *every* pair of inputs of the
domain (local DP), which is what Delta = L D gives.

Only claim this when the release really is shuffled and unlinked (no order, no
identifiers, no per-record side channel); `report.py` only reports a central
epsilon when the caller declares it, and always keeps the per-record epsilon.

Results used.

* Numerical bound for eps0-DP randomizers (FMT's reduction of the shuffled
  output to a pair of binomial mixtures, evaluated numerically as in their
  Appendix E and reference code): the shuffled output is (eps, delta)-DP with
  delta = D_{e^eps}(P || Q), the hockey-stick divergence of
      C ~ Bin(n - 1, e^{-eps0}),  A ~ Bin(C, 1/2),  Delta ~ Bern(e^{eps0} / (e^{eps0} + 1)),
      P = (A + Delta, C - A + 1 - Delta),  Q = (A + 1 - Delta, C - A + Delta).
  (Every other record's output is, with probability e^{-eps0}, a "clone" of
  the differing record's output under one of its two values.) We evaluate it
  exactly: given C = c, the likelihood ratio P/Q of the first coordinate j is
  (e^{eps0} + r_j) / (1 + e^{eps0} r_j) with r_j = j / (c + 1 - j), decreasing in
  j, so the positive part of P - e^eps Q is a prefix j <= m_c and
      D_{e^eps}(P || Q | c) = P(J <= m_c | c) - e^eps Q(J <= m_c | c),
  two binomial(c, 1/2) CDFs. P and Q are mirror images (swap the coordinates),
  so D(P||Q) = D(Q||P). Values of c outside the central
  1 - 2e-18 mass of Bin(n - 1, e^{-eps0}) are dropped and their mass added to
  delta (each conditional divergence is <= 1), and 1e-14 is added for floating
  point rounding: the returned delta is an upper bound. FMT's reference code
  evaluates the same quantity with interval approximations.
* Closed form for eps0-DP randomizers (FMT, Theorem 3.1): if
  eps0 <= log(n / (16 log(2/delta))) then the shuffled output is (eps, delta)-DP
  with
      eps = log(1 + (e^{eps0} - 1)/(e^{eps0} + 1) * (8 sqrt(e^{eps0} log(4/delta)) / sqrt(n) + 8 e^{eps0} / n)).
  We evaluate the slightly more conservative form of the authors' reference
  implementation (apple/ml-shuffling-amplification, `closedformanalysis`):
      a = 8 sqrt(e^{eps0} log(4/delta) / n),  b = 8 e^{eps0} / n,  e1 = log(1 + a + b),
      eps = log(1 + (1 - e^{-eps0}) / (1 + e^{-eps0 - e1}) * (a + b)),
  which is never smaller than the statement above (e1 >= 0 makes the factor
  >= (e^{eps0} - 1)/(e^{eps0} + 1)), and its stricter validity check
  eps0 <= log(n / (16 log(4/delta))). Its output reproduces the number in the
  authors' README (n = 1e5, eps0 = 4, delta = 1e-6: eps <= 0.5378).
* Approximate-DP randomizers (FMT's extension to (eps0, delta0)-DP local
  randomizers, Theorem 3.8 in the arXiv version): under the same validity condition the shuffled output
  is (eps, delta + (e^eps + 1)(1 + e^{-eps0}/2) n delta0)-DP with eps the
  closed form above. The Gaussian randomizer is not eps0-DP for any finite
  eps0, so this is the result we use for it: we choose delta0 (hence
  eps0 = eps_Gauss(delta0)) and the split of delta on a grid, keep every
  choice whose total delta fits, and report the smallest eps.

The central epsilon is never reported above the per-record epsilon at the same
delta (that is also a valid central guarantee: with replace-one, the dataset
release is as private as one record's release), so we report the min.
"""

import dataclasses
import math
from typing import Optional

import numpy as np
from scipy import optimize
from scipy import stats

from lipdp.privacy import _validation
from lipdp.privacy import composition
from lipdp.privacy import gaussian

_TAIL_MASS = 1e-18
_ROUNDING_SLACK = 1e-14


# --------------------------------------------------------------------------------------
# eps0-DP local randomizers.


def clones_validity_limit(n: int, delta: float) -> float:
  """Largest eps0 for which the closed form is used: log(n / (16 log(4/delta))).

  (FMT's Theorem 3.1 states log(n / (16 log(2/delta))); the authors' code and
  we use the stricter log(4/delta).) Returns -inf when n is too small for any
  eps0 >= 0 to qualify.
  """
  n = _validation.positive_int(n, "n")
  delta = _validation.probability_open(delta, "delta")
  ratio = n / (16.0 * math.log(4.0 / delta))
  return math.log(ratio) if ratio > 0 else -math.inf


def clones_closed_form(eps0: float, n: int, delta: float) -> Optional[float]:
  """FMT closed-form central epsilon (reference-implementation form), or None.

  Args:
    eps0: the local randomizer's pure-DP epsilon (> 0).
    n: number of records shuffled (>= 1).
    delta: target delta in (0, 1).

  Returns:
    The closed-form epsilon, or None when eps0 is outside the validity range
    (then no amplification is claimed). The value may exceed eps0; callers
    take the min.
  """
  eps0 = _validation.positive(eps0, "eps0")
  n = _validation.positive_int(n, "n")
  delta = _validation.probability_open(delta, "delta")
  if eps0 > clones_validity_limit(n, delta):
    return None
  a = 8.0 * math.sqrt(math.exp(eps0) * math.log(4.0 / delta) / n)
  b = 8.0 * math.exp(eps0) / n
  e1 = math.log1p(a + b)
  factor = -math.expm1(-eps0) / (1.0 + math.exp(-eps0 - e1))
  return math.log1p(factor * (a + b))


def _conditional_hockey_stick(c: np.ndarray, eps0: float, epsilon: float) -> np.ndarray:
  """D_{e^eps}(P || Q | C = c) for an array of c (see the module docstring)."""
  alpha = 1.0 / (1.0 + math.exp(-eps0))  # e^{eps0} / (e^{eps0} + 1)
  e_eps = math.exp(epsilon)
  # P_j > e^eps Q_j  iff  r_j < rho.
  rho = (alpha - e_eps * (1.0 - alpha)) / (e_eps * alpha - (1.0 - alpha))
  if rho <= 0.0:
    return np.zeros_like(c, dtype=np.float64)
  # r_j = j / (c + 1 - j) < rho  iff  j < rho (c + 1) / (1 + rho); m = largest such j.
  x = rho * (c + 1.0) / (1.0 + rho)
  m = np.ceil(x) - 1.0
  m = np.clip(m, 0.0, c + 1.0)  # j = 0 always qualifies (r_0 = 0 < rho).
  cdf_m = stats.binom.cdf(m, c, 0.5)
  cdf_m1 = stats.binom.cdf(m - 1.0, c, 0.5)
  p_mass = alpha * cdf_m + (1.0 - alpha) * cdf_m1
  q_mass = (1.0 - alpha) * cdf_m + alpha * cdf_m1
  return np.maximum(p_mass - e_eps * q_mass, 0.0)


def _clone_count_distribution(eps0: float, n: int):
  """Support (central 1 - 2e-18 mass), weights and dropped mass of Bin(n-1, e^-eps0)."""
  if n == 1:
    return np.array([0.0]), np.array([1.0]), 0.0
  p = math.exp(-eps0)
  lo = int(stats.binom.ppf(_TAIL_MASS, n - 1, p))
  hi = int(stats.binom.isf(_TAIL_MASS, n - 1, p))
  lo, hi = max(lo - 1, 0), min(hi + 1, n - 1)
  c = np.arange(lo, hi + 1, dtype=np.float64)
  weights = stats.binom.pmf(c, n - 1, p)
  return c, weights, max(0.0, 1.0 - float(np.sum(weights)))


def _numerical_delta(distribution, eps0: float, epsilon: float) -> float:
  if epsilon >= eps0:
    return 0.0
  c, weights, dropped = distribution
  delta = float(np.dot(weights, _conditional_hockey_stick(c, eps0, epsilon)))
  return min(1.0, delta + dropped + _ROUNDING_SLACK)


def clones_numerical_delta(eps0: float, n: int, epsilon: float) -> float:
  """Upper bound on delta(eps) of n shuffled eps0-DP randomizers (FMT, numerical).

  Args:
    eps0: the local pure-DP epsilon (> 0).
    n: number of records (>= 1).
    epsilon: the central epsilon (>= 0).

  Returns:
    delta such that the shuffled output is (epsilon, delta)-DP.
  """
  eps0 = _validation.positive(eps0, "eps0")
  n = _validation.positive_int(n, "n")
  epsilon = _validation.nonnegative(epsilon, "epsilon")
  if epsilon >= eps0:
    return 0.0
  return _numerical_delta(_clone_count_distribution(eps0, n), eps0, epsilon)


def clones_numerical_epsilon(eps0: float, n: int, delta: float) -> float:
  """Smallest eps with `clones_numerical_delta(eps0, n, eps) <= delta` (<= eps0)."""
  eps0 = _validation.positive(eps0, "eps0")
  n = _validation.positive_int(n, "n")
  delta = _validation.probability_open(delta, "delta")
  distribution = _clone_count_distribution(eps0, n)

  def delta_at(eps):
    return _numerical_delta(distribution, eps0, eps)

  if delta_at(0.0) <= delta:
    return 0.0
  # delta(eps) is non-increasing in eps; if even eps just below eps0 does not
  # reach delta, no amplification is claimed.
  top = eps0 * (1.0 - 1e-12)
  if delta_at(top) > delta:
    return eps0

  def gap(eps):
    return math.log(delta_at(eps)) - math.log(delta)

  eps = optimize.brentq(gap, 0.0, top, xtol=1e-10, rtol=1e-12)
  while delta_at(eps) > delta:  # land on the safe side of the root.
    eps = min(eps0, eps + 1e-10)
  return float(eps)


def shuffle_epsilon(eps0: float, n: int, delta: float, method: str = "numerical") -> float:
  """Central epsilon of n shuffled eps0-DP (pure) local randomizers, <= eps0.

  Args:
    eps0: the local epsilon (> 0).
    n: number of records (>= 1).
    delta: target delta in (0, 1).
    method: "numerical" (FMT's numerical bound, tighter) or "closed_form"
      (FMT Theorem 3.1).

  Returns:
    min(eps0, bound).
  """
  if method == "numerical":
    return min(float(eps0), clones_numerical_epsilon(eps0, n, delta))
  if method == "closed_form":
    bound = clones_closed_form(eps0, n, delta)
    return float(eps0) if bound is None else min(float(eps0), bound)
  raise ValueError(f"method must be 'numerical' or 'closed_form', got {method!r}.")


# --------------------------------------------------------------------------------------
# (eps0, delta0)-DP local randomizers, and the Gaussian release.


def clones_approximate_dp(eps0: float, delta0: float, n: int,
                          delta: float) -> Optional[tuple[float, float]]:
  """FMT for (eps0, delta0)-DP randomizers: (eps, delta + (e^eps+1)(1+e^-eps0/2) n delta0).

  Args:
    eps0: local epsilon (> 0).
    delta0: local delta in (0, 1).
    n: number of records (>= 1).
    delta: the shuffle-analysis delta in (0, 1).

  Returns:
    (eps, total_delta), or None outside the validity range.
  """
  delta0 = _validation.probability_open(delta0, "delta0")
  eps = clones_closed_form(eps0, n, delta)
  if eps is None:
    return None
  total = delta + (math.exp(eps) + 1.0) * (1.0 + math.exp(-eps0) / 2.0) * n * delta0
  return eps, total


@dataclasses.dataclass(frozen=True)
class ShuffleResult:
  """Central guarantee of a shuffled Gaussian release.

  Attributes:
    central_epsilon: min(shuffled bound, per-record epsilon) at `delta`.
    per_record_epsilon: the per-record (unshuffled) epsilon at `delta`.
    delta: total delta of both statements.
    n: number of records.
    amplified: whether the shuffle bound was smaller than the per-record one.
    eps0: local epsilon used in the shuffle bound (None if not amplified).
    delta0: local delta used (None if not amplified).
    delta_shuffle: the shuffle-analysis delta (None if not amplified).
  """
  central_epsilon: float
  per_record_epsilon: float
  delta: float
  n: int
  amplified: bool
  eps0: Optional[float] = None
  delta0: Optional[float] = None
  delta_shuffle: Optional[float] = None


_SHUFFLE_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
_NUM_DELTA0 = 48


def shuffled_gaussian_epsilon(sigma: float, sensitivity: float, n: int, delta: float,
                              k: int = 1) -> ShuffleResult:
  """Central (eps, delta) of n shuffled per-record Gaussian releases.

  The local randomizer (k latents, sensitivity Delta) is (eps0(delta0),
  delta0)-DP for every delta0 (analytic Gaussian). We search delta0 on a log
  grid in [1e-8, 1] delta / n and the split delta_shuffle = f delta over a few
  fractions f, keep the choices for which
  delta_shuffle + (e^eps + 1)(1 + e^{-eps0}/2) n delta0 <= delta, and take the
  smallest FMT epsilon. Every kept choice is a valid statement, so the min is.

  Args:
    sigma: noise std (> 0).
    sensitivity: Delta = L D (> 0).
    n: number of records shuffled together (>= 1).
    delta: total target delta in (0, 1).
    k: latents per record (>= 1).

  Returns:
    A `ShuffleResult`.
  """
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  n = _validation.positive_int(n, "n")
  delta = _validation.probability_open(delta, "delta")
  k = _validation.positive_int(k, "k")
  per_record = gaussian.gaussian_epsilon(sigma, sensitivity, delta, k)
  best = (math.inf, None, None, None)
  for delta0 in np.geomspace(1e-8 * delta / n, delta / n, _NUM_DELTA0):
    delta0 = float(delta0)
    eps0 = gaussian.gaussian_epsilon(sigma, sensitivity, delta0, k)
    if eps0 <= 0.0:
      continue
    for fraction in _SHUFFLE_FRACTIONS:
      delta_shuffle = fraction * delta
      result = clones_approximate_dp(eps0, delta0, n, delta_shuffle)
      if result is None:
        continue
      eps, total = result
      if total <= delta and eps < best[0]:
        best = (eps, eps0, delta0, delta_shuffle)
  if best[0] < per_record:
    return ShuffleResult(central_epsilon=best[0], per_record_epsilon=per_record, delta=delta,
                         n=n, amplified=True, eps0=best[1], delta0=best[2],
                         delta_shuffle=best[3])
  return ShuffleResult(central_epsilon=per_record, per_record_epsilon=per_record, delta=delta,
                       n=n, amplified=False)


def calibrate_sigma_shuffled(epsilon: float, delta: float, sensitivity: float, n: int,
                             k: int = 1, rtol: float = 1e-6) -> float:
  """Per-record sigma whose shuffled release meets a central (epsilon, delta).

  Bisection on log sigma between 0 and the unshuffled calibration (which always
  meets the target); the central epsilon is non-increasing in sigma for every
  fixed choice in `shuffled_gaussian_epsilon`, so bisection applies. The
  returned sigma is one at which the target was verified.

  Args:
    epsilon: target central epsilon (> 0).
    delta: target delta in (0, 1).
    sensitivity: Delta = L D (> 0).
    n: number of records shuffled together (>= 1).
    k: latents per record (>= 1).
    rtol: relative tolerance on sigma.

  Returns:
    sigma.
  """
  epsilon = _validation.positive(epsilon, "epsilon")
  delta = _validation.probability_open(delta, "delta")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  n = _validation.positive_int(n, "n")
  k = _validation.positive_int(k, "k")
  rtol = _validation.positive(rtol, "rtol")
  high = gaussian.calibrate_sigma(epsilon, delta, sensitivity, k)
  low = high * 1e-3

  def meets(sigma):
    return shuffled_gaussian_epsilon(sigma, sensitivity, n, delta, k).central_epsilon <= epsilon

  if meets(low):
    return low
  while high / low > 1.0 + rtol:
    mid = math.sqrt(high * low)
    if meets(mid):
      high = mid
    else:
      low = mid
  return float(high)


@dataclasses.dataclass(frozen=True)
class ShuffledCompositionResult:
  """DP-SGD composed with a shuffled release, replace-one.

  Attributes:
    dpsgd_epsilon: DP-SGD alone at `delta`.
    per_record_epsilon: the release alone, unshuffled, at `delta`.
    central_epsilon: the shuffled release alone at `shuffle_delta`.
    shuffle_delta: the delta of `central_epsilon`.
    total_epsilon: min of (DP-SGD o shuffled release) and (DP-SGD o unshuffled
      release), both at `delta`.
    delta: the total delta.
  """
  dpsgd_epsilon: float
  per_record_epsilon: float
  central_epsilon: float
  shuffle_delta: float
  total_epsilon: float
  delta: float


def compose_dpsgd_and_shuffled_release(
    noise_multiplier: float, sampling_rate: float, steps: int, sigma: float,
    sensitivity: float, n: int, delta: float, k: int = 1, shuffle_delta_fraction: float = 0.5,
    value_discretization_interval: float = composition.DEFAULT_VALUE_DISCRETIZATION
) -> ShuffledCompositionResult:
  """DP-SGD training, then a shuffled release, composed by PLD (scope dp-sgd).

  The shuffled release is only known through an (eps_c, delta_c) pair
  (delta_c = shuffle_delta_fraction * delta), so it enters the PLD as the
  worst (eps_c, delta_c)-DP mechanism (`composition.compose_dpsgd_and_dp_mechanism`).
  The unshuffled composition (`composition.compose_dpsgd_and_release`) is also a
  valid bound at the same delta; the min of the two is reported.

  Args:
    noise_multiplier: DP-SGD z (> 0).
    sampling_rate: DP-SGD Poisson rate q in (0, 1].
    steps: DP-SGD steps (>= 1).
    sigma: release noise std (> 0).
    sensitivity: Delta = L D (> 0).
    n: number of records shuffled together (>= 1).
    delta: total target delta in (0, 1).
    k: latents per record (>= 1).
    shuffle_delta_fraction: share of delta given to the shuffled release, in (0, 1).
    value_discretization_interval: PLD grid.

  Returns:
    A `ShuffledCompositionResult`.
  """
  delta = _validation.probability_open(delta, "delta")
  shuffle_delta_fraction = _validation.probability_open(shuffle_delta_fraction,
                                                        "shuffle_delta_fraction")
  shuffle_delta = shuffle_delta_fraction * delta
  shuffled = shuffled_gaussian_epsilon(sigma, sensitivity, n, shuffle_delta, k)
  with_shuffle = composition.compose_dpsgd_and_dp_mechanism(
      noise_multiplier, sampling_rate, steps, shuffled.central_epsilon, shuffle_delta, delta,
      value_discretization_interval)
  plain = composition.compose_dpsgd_and_release(noise_multiplier, sampling_rate, steps, sigma,
                                                sensitivity, delta, k,
                                                value_discretization_interval)
  return ShuffledCompositionResult(
      dpsgd_epsilon=plain.dpsgd_epsilon,
      per_record_epsilon=plain.release_epsilon,
      central_epsilon=shuffled.central_epsilon,
      shuffle_delta=shuffle_delta,
      total_epsilon=min(with_shuffle, plain.total_epsilon),
      delta=delta)
