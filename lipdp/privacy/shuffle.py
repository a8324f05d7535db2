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
      eps = log(1 + (e^{eps0} - 1)/(e^{eps0} + 1)
                    * (8 sqrt(e^{eps0} log(4/delta)) / sqrt(n) + 8 e^{eps0} / n)).
  We evaluate the slightly more conservative form of the authors' reference
  implementation (apple/ml-shuffling-amplification, `closedformanalysis`):
      a = 8 sqrt(e^{eps0} log(4/delta) / n),  b = 8 e^{eps0} / n,  e1 = log(1 + a + b),
      eps = log(1 + (1 - e^{-eps0}) / (1 + e^{-eps0 - e1}) * (a + b)),
  which is never smaller than the statement above (e1 >= 0 makes the factor
  >= (e^{eps0} - 1)/(e^{eps0} + 1)), and its stricter validity check
  eps0 <= log(n / (16 log(4/delta))). Its output reproduces the number in the
  authors' README (n = 1e5, eps0 = 4, delta = 1e-6: eps <= 0.5378).
* Approximate-DP randomizers (FMT's extension to (eps0, delta0)-DP local
  randomizers, as cited by the first version of this module: Theorem 3.8 of the
  arXiv version; not re-derived here): under the same validity condition the
  shuffled output is (eps, delta + (e^eps + 1)(1 + e^{-eps0}/2) n delta0)-DP
  with eps the closed form above (`clones_approximate_dp`). No claim rests on
  it: its constants are transcribed, not checked independently, and the
  Gaussian clone bound below was smaller wherever both applied (at least 3
  times in tests/privacy/test_privacy_shuffle.py; an independent review's scan
  of 992 settings never found it smaller), so the Gaussian release no longer
  falls back to it.

The shuffled Gaussian release: a clone bound for Gaussian randomizers.

The Gaussian randomizer is not eps0-DP for any eps0, and FMT's (eps0, delta0)
route pays for the tails of every record's output. The bound below keeps FMT's
clone idea but takes the clones' probability and their price from the
Gaussian itself. It is proved here in full, so that it does not rest on a
theorem number we could not check against the paper's text.

Setting. k latents per record: the k-tuple's mean is a sufficient statistic,
and the k-tuple is its mean plus a residual whose law does not depend on the
record, so the shuffled k-tuples are a post-processing of the shuffled means
N(mu(x), (sigma^2 / k) I). In units of sigma / sqrt(k) the means lie in a set
of diameter mu = sqrt(k) Delta / sigma. Neighbours differ in record 1, with
means a (dataset X) and b (dataset X'), |a - b| <= mu; the other records have
means m_i with |m_i - a| <= mu and |m_i - b| <= mu, in any dimension and any
configuration (nothing else is used). phi_m is the density of N(m, I),
M = (phi_a + phi_b) / 2, and delta_G(r; t) = Phi(r/2 - t/r) - e^t Phi(-r/2 - t/r)
is the hockey-stick divergence int (phi_0 - e^t phi_r)_+ of two unit Gaussians
at distance r (Balle and Wang 2018, Theorem 8; `gaussian.py`).

Theorem. For every p in (0, 1] and eps >= 0 the shuffled release is
(eps, delta)-DP (replace-one) with
    delta = E_{C ~ Bin(n-1, p)} D_{e^eps}(P_C || Q_C) + (1 + e^eps)(n - 1) p delta_G(mu; log(1/p)),
where P_c (Q_c) is the law of the multiset of one draw of phi_a (phi_b) and c
independent draws of M, with |a - b| = mu.

Proof.
1. Clones, with slack. For each other record let
   eta_i = int (p M - phi_{m_i})_+ and R~_i = p M + (1 - p) L_i with
   L_i = (phi_{m_i} - p M)_+ / (1 - p + eta_i), a probability density. The
   difference R~_i - phi_{m_i} is -(1 - (1-p)/(1-p+eta_i))(phi_{m_i} - pM)_+
   where phi_{m_i} >= pM and (pM - phi_{m_i})_+ elsewhere; both parts have
   mass eta_i, so TV(R~_i, phi_{m_i}) = eta_i. From
   (x + y - z)_+ <= (x - z/2)_+ + (y - z/2)_+,
       eta_i <= (1/2) int (p phi_a - phi_{m_i})_+ + (1/2) int (p phi_b - phi_{m_i})_+
             = (p/2) (delta_G(|a - m_i|; L) + delta_G(|b - m_i|; L)) <= p delta_G(mu; L),
   with L = log(1/p): by rotation invariance each integral only depends on
   the distance, and delta_G(r; L) increases with r.
2. Hybrid. Replacing every other record's output law phi_{m_i} by R~_i moves
   the law of the shuffled output by at most sum_i eta_i in total variation,
   under X (P -> P~) and under X' (Q -> Q~): TV is subadditive over
   independent coordinates and shuffling is a post-processing. For every
   event A, P(A) - e^eps Q(A) <= P~(A) - e^eps Q~(A) + TV(P, P~) + e^eps TV(Q, Q~),
   so D_{e^eps}(P || Q) <= D_{e^eps}(P~ || Q~) + (1 + e^eps)(n - 1) p delta_G(mu; L).
3. Hiding among the clones (FMT's argument, specialised). Under R~ each other
   record independently outputs a draw of M ("clone") with probability p, and
   otherwise a draw of L_i, which does not depend on record 1. Given the set
   of clones, the shuffled output is obtained from the multiset of record 1's
   output and the C clone outputs, C ~ Bin(n - 1, p), by one Markov kernel
   (add the non-clone outputs, shuffle) that is the same under X and X'. By
   joint convexity of the hockey-stick divergence and post-processing,
   D_{e^eps}(P~ || Q~) <= E_C D_{e^eps}(P_C || Q_C), for the pair (a, b).
4. Distance. For |a - b| = nu <= mu the pair (phi_a, phi_b) is the image of
   the pair at distance mu by one kernel (on the line through a and b,
   y -> (nu / mu) y + N(0, 1 - nu^2 / mu^2)), which also maps M to M; applied
   to every element of the multiset it maps (P_C, Q_C) at mu to (P_C, Q_C) at
   nu, so the worst case is |a - b| = mu. The bound is symmetric in a and b,
   so it also bounds D_{e^eps}(Q || P).  []

Evaluation (`gaussian_clones_delta`; every step errs on the safe side).
5. Likelihood ratio. Let l = log(phi_a / phi_b) and u = phi_a / (phi_a + phi_b)
   = 1 / (1 + e^-l). The multiset's divergence is that of the uniformly
   ordered (c+1)-tuple, whose densities with respect to M^(c+1) are
   (2 / (c+1)) sum_j u(y_j) under P_c and (2 / (c+1)) sum_j (1 - u(y_j)) under Q_c. So
       D_{e^eps}(P_c || Q_c) = 2 (1 + e^eps) / (c + 1) E[(X_0 + ... + X_c)_+],
   X_j = u(Y_j) - e^eps / (1 + e^eps), Y_j i.i.d. M. (For c = 0 this is
   delta_G(mu; eps).) Size-biasing, Bin(c; n-1, p) / (c+1) = Bin(c+1; n, p) / (n p):
       E_C D_{e^eps}(P_C || Q_C) = 2 (1 + e^eps) / (n p) E[(X_1 + ... + X_N)_+],   N ~ Bin(n, p).
   Under phi_a (phi_b) l ~ N(mu^2/2, mu^2) (N(-mu^2/2, mu^2)); since
   M u = phi_a / 2, an interval I of l has P_M(I) = (P_a(I) + P_b(I)) / 2 and
   E_M[u; I] = P_a(I) / 2: differences of Phi, no quadrature.
6. X is replaced by X' on a lattice h Z (h ~ sd(X) / 8) by moving each cell's
   mass to the cell's two ends with the cell's mean kept; X' = X + noise with
   E[noise | X] = 0, so for the convex (.)_+ and any independent N,
   E[(X_1 + ... + X_N)_+] <= E[(X'_1 + ... + X'_N)_+] (Jensen). The law of the
   compound sum is computed by FFT after an exponential tilt that centres it
   (the tilted law is again a compound binomial); aliasing on the FFT window
   only adds mass; the mass above the window is bounded by a Chernoff bound
   with the exact moment generating function; a generous bound on the
   floating-point error of every entry is added (numpy's complex log1p loses
   ~1e-7 relative at |z| = 1e-10 and is not used).
7. Cross-check: the same machinery with the randomized-response pair and
   p = e^{-eps0} (`randomized_response_clones_delta`) reproduces FMT's numerical
   bound `clones_numerical_delta` from above, within 1e-4 relative wherever
   that delta exceeds 1e-9.

Choice of p and of eps. Every p gives a valid statement. `shuffled_gaussian_epsilon`
tries the p whose slack is 3%, 12%, 35% or 65% of delta, finds the smallest eps
whose bound is <= delta by root-finding on log eps, and verifies the bound at
the eps it returns.

What the bound does not capture. Clones must reproduce phi_a's tails, so p is
about e^{-eps0'} with eps0' the per-record epsilon at a delta of order
delta / (n p): amplification needs n e^{-eps0'} clones, i.e. a per-record
epsilon below roughly log(n) minus a few (about 8 at n = 1e6, delta = 1e-5).
The true privacy of the shuffled Gaussian release is much better: exact
computations for n = 2 and Monte Carlo estimates with all other means at one
end of the interval (tests) give far smaller deltas, because the other
records' outputs overlap record 1's output much more than clones capture (the
"privacy blanket" of Balle, Bell, Gascon and Nissim, CRYPTO 2019). A blanket
bound needs a density below every other record's output density, i.e. an
infimum over the whole image mu(X), whose mass shrinks like
exp(-c sqrt(d) Delta / sigma) in d latent dimensions; we could not establish a
dimension-free analysis that captures the overlap, so none is claimed.

The central epsilon is never reported above the per-record epsilon at the same
delta (that is also a valid central guarantee: with replace-one, the dataset
release is as private as one record's release), so we report the min.
"""

import dataclasses
import math
from typing import Optional

import numpy as np
from scipy import optimize
from scipy import special
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


def clones_approximate_dp(
  eps0: float, delta0: float, n: int, delta: float
) -> Optional[tuple[float, float]]:
  """FMT for (eps0, delta0)-DP randomizers: (eps, delta + (e^eps+1)(1+e^-eps0/2) n delta0).

  For comparison only (module docstring): no reported epsilon rests on it.

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


# --------------------------------------------------------------------------------------
# The shuffled Gaussian release: a numerical clone bound for Gaussian randomizers.

_CELLS_PER_SD = 8.0  # lattice spacing h <= sd(W) / 8: the spread adds <= h^2 / 4 of variance.
_MAX_SPACING = 1.0 / 32.0
_WINDOW_SDS = 8.0  # FFT window: mean +- 8 sd (and a margin); beyond it a Chernoff bound.
_FFT_ERROR_FACTOR = 16.0  # generous constant of the floating-point error bound of the FFT.
# Candidate clone probabilities p: those whose slack is fraction * delta.
_SLACK_FRACTIONS = (0.03, 0.12, 0.35, 0.65)
_RELATIVE_SAFETY = 1e-9  # relative inflation of closed-form terms (rounding of Phi, exp).
_UNIT_ROUNDOFF = float(np.finfo(np.float64).eps)
# Added to E[(Y)_+]: cell masses below ~1e-308 underflow to 0 (at most n cells x 1e-308 each).
_ABSOLUTE_FLOOR = 1e-250


def _clone_probability(value) -> float:
  value = _validation.finite(value, "clone_probability")
  if not 0.0 < value <= 1.0:
    raise ValueError(f"clone_probability must lie in (0, 1], got {value}.")
  return value


def _one_plus_exp(x: float) -> float:
  return math.inf if x > 700.0 else 1.0 + math.exp(x)


def _phi_interval(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
  """Phi(z2) - Phi(z1) for z1 <= z2, accurate in both tails."""
  upper = special.ndtr(-z1) - special.ndtr(-z2)
  lower = special.ndtr(z2) - special.ndtr(z1)
  return np.where(z1 > 0.0, upper, lower)


def _log_gaussian_hockey_stick(mu: float, epsilon: float) -> float:
  """log of int (phi_0 - e^eps phi_mu)_+ for unit noise (Balle and Wang 2018, Theorem 8)."""
  a = mu / 2.0 - epsilon / mu
  b = -mu / 2.0 - epsilon / mu
  log_first = float(special.log_ndtr(a))
  log_second = epsilon + float(special.log_ndtr(b))
  if log_second >= log_first:
    return -math.inf
  return log_first + math.log1p(-math.exp(log_second - log_first))


def _lattice_spacing(mu: float) -> float:
  """h for the Gaussian pair at distance mu: sd(W) / 8, with sd(W) ~ sqrt(mu^2 + mu^4/4) / 4."""
  sd_w = min(0.5, math.sqrt(mu * mu + mu**4 / 4.0) / 4.0)
  return min(_MAX_SPACING, sd_w / _CELLS_PER_SD)


def _spread(edges: np.ndarray, mass: np.ndarray, moment: np.ndarray, spacing: float) -> np.ndarray:
  """Mean-preserving spread of each cell [x_k, x_k + h] onto its two endpoints.

  A cell of mass m and first moment f gets (f - x_k m) / h at x_k + h and the
  rest at x_k. Given X in the cell, X' = x_k + h with probability (X - x_k) / h
  is a martingale coupling (E[X' | X] = X), so X' dominates X in convex order.
  """
  right = np.clip((moment - edges[:-1] * mass) / spacing, 0.0, mass)
  pmf = np.zeros(edges.size)
  pmf[:-1] += mass - right
  pmf[1:] += right
  return pmf


def _gaussian_increments(mu: float, epsilon: float, spacing: float):
  """Lattice law of X' >=cx X = u(Y) - e^eps/(1+e^eps), Y ~ M, Gaussian pair at distance mu.

  With l = log(phi_a / phi_b)(Y), V = 1 - u = 1/(1 + e^l) and
  kappa = 1/(1 + e^eps), X = kappa - V (computed this way, not as u - 1/2 - tanh(eps/2)/2,
  which rounds to <= 0 for eps above ~37). The cell {x_k <= X < x_k + h} is the
  interval l in [log((1 - V)/V) at V = kappa - x_k + h, same at V = kappa - x_k), with
      P_M(cell) = (P_a(cell) + P_b(cell)) / 2,   E_M[X; cell] = kappa P_M(cell) - P_b(cell) / 2
  (because M (1 - u) = phi_b / 2), where l ~ N(mu^2/2, mu^2) under phi_a and
  N(-mu^2/2, mu^2) under phi_b: both are differences of Phi.

  Returns:
    (kmin, pmf): pmf[j] = P(X' = (kmin + j) h).
  """
  kappa = float(special.expit(-epsilon))
  kmin = math.floor((kappa - 1.0) / spacing)
  kmax = math.ceil(kappa / spacing)
  edges = np.arange(kmin, kmax + 1) * spacing
  v = np.clip(kappa - edges, 0.0, 1.0)  # decreasing along the edges
  with np.errstate(divide="ignore"):
    ell = np.log1p(-v) - np.log(v)  # increasing; -inf at v = 1, +inf at v = 0.
  half = mu * mu / 2.0
  pa = _phi_interval((ell[:-1] - half) / mu, (ell[1:] - half) / mu)
  pb = _phi_interval((ell[:-1] + half) / mu, (ell[1:] + half) / mu)
  mass = 0.5 * (pa + pb)
  moment = kappa * mass - 0.5 * pb
  return kmin, _spread(edges, mass, moment, spacing)


def _randomized_response_increments(eps0: float, epsilon: float, spacing: float):
  """Same as `_gaussian_increments` for binary randomized response with eps0.

  Under M, u = 1 - kappa0 or kappa0 (kappa0 = 1/(1 + e^eps0)) with probability
  1/2 each, so X = kappa - kappa0 or kappa + kappa0 - 1; each atom is spread
  onto its two neighbouring lattice points (mean-preserving).
  """
  kappa = float(special.expit(-epsilon))
  kappa0 = float(special.expit(-eps0))
  kmin = math.floor((kappa - 1.0) / spacing)
  kmax = math.ceil(kappa / spacing)
  pmf = np.zeros(kmax - kmin + 1)
  for x in (kappa - kappa0, kappa + kappa0 - 1.0):
    k = math.floor(x / spacing)
    frac = x / spacing - k
    pmf[k - kmin] += 0.5 * (1.0 - frac)
    pmf[k + 1 - kmin] += 0.5 * frac
  return kmin, pmf


def _log_mgf(values: np.ndarray, pmf: np.ndarray, s: float) -> float:
  support = pmf > 0.0
  exponents = s * values[support]
  top = float(np.max(exponents))
  return top + math.log(float(np.sum(pmf[support] * np.exp(exponents - top))))


def _log_compound_mgf(values: np.ndarray, pmf: np.ndarray, n: int, p: float, s: float) -> float:
  """log E e^{sY}, Y = sum_{j <= N} X_j, N ~ Bin(n, p): n log(1 - p + p E e^{sX})."""
  log_mx = _log_mgf(values, pmf, s)
  if p >= 1.0:
    return n * log_mx
  return n * float(np.logaddexp(math.log1p(-p), math.log(p) + log_mx))


def _zero_mean_tilt(values: np.ndarray, pmf: np.ndarray) -> float:
  """s >= 0 with E[X e^{sX}] = 0 (0 if E[X] >= 0); the tilted law is centred."""
  support = pmf > 0.0
  v, q = values[support], pmf[support]
  if float(np.sum(q * v)) >= 0.0:
    return 0.0
  top = float(np.max(v))

  def tilted_sign(s):
    return float(np.sum(q * v * np.exp(s * (v - top))))

  high = 1.0
  while tilted_sign(high) < 0.0:
    high *= 2.0
  return float(optimize.brentq(tilted_sign, 0.0, high, xtol=1e-12, rtol=1e-10))


def _log1p_complex(z: np.ndarray) -> np.ndarray:
  """log(1 + z) for complex z, accurate for small |z|.

  (numpy's complex log1p forms 1 + z first and loses the low bits: at
  |z| = 1e-10 its real part is off by ~1e-7 relative.) Real part
  log|1 + z| = log1p(2x + x^2 + y^2) / 2, imaginary part atan2(y, 1 + x).
  """
  x, y = z.real, z.imag
  return 0.5 * np.log1p(2.0 * x + x * x + y * y) + 1j * np.arctan2(y, 1.0 + x)


def _expm1_complex(w: np.ndarray) -> np.ndarray:
  """exp(w) - 1 for complex w, accurate for small |w|.

  expm1(x + iy) = expm1(x) cos y - 2 sin^2(y/2) + i e^x sin y.
  """
  x, y = w.real, w.imag
  return (np.expm1(x) * np.cos(y) - 2.0 * np.sin(y / 2.0) ** 2) + 1j * np.exp(x) * np.sin(y)


def _mean_over_spectrum(half: np.ndarray, size: int) -> float:
  """(1/L) sum over all L frequencies of a real array given on the rfft half (symmetric)."""
  return (2.0 * float(np.sum(half)) - float(half[0]) - float(half[-1])) / size


def _compound_law(circular: np.ndarray, n: int, p_s: float):
  """Circular law of Y = sum_{j <= N} X_j, N ~ Bin(n, p_s), minus its atom {N = 0}.

  Returns (law, entry_error): law[y mod L] >= P(Y = y, N >= 1) up to
  entry_error, a generous bound on the floating-point error of each entry.
  With F the FFT of X's law and z = p_s (F - 1), the transform of the law is
  (1 + z)^n = e^w. When n p_s <= 50 and p_s < 1/2 the atom (1 - p_s)^n is
  removed exactly, in relative precision, as
      (1 - p_s)^n expm1(n log1p(a F)),   a = p_s / (1 - p_s),
  so that the error is relative to P(N >= 1) (which matters when the expected
  number of clones is small and the result is divided by it); otherwise the
  atom is at most e^{-50} and is kept (it sits at y = 0 and adds nothing).
  Error bound (errors of the FFTs ~ c u log2 L, of log1p / exp ~ u, c = 16):
      16 u (log2 L + 4) mean_k[|1 + z_k|^{n-1} (3 n p_s + n a / (1 - a)) + |G_k| (|w_k| + 2)],
  with the a-term only in the atom-free branch; in the other branch the
  coefficients whose n-th power underflows (|1 + z|^n < e^{-745}) are set to 0
  and add e^{-745} each.
  """
  size = circular.size
  spectrum = np.fft.rfft(circular)
  z = p_s * (spectrum - 1.0)
  log_modulus = 0.5 * np.log1p(2.0 * z.real + z.real**2 + z.imag**2)  # log|1 + z|
  if n * p_s <= 50.0 and p_s < 0.5:
    # |a F| <= a < 1 and Re w <= n a <= 100: every coefficient is computed.
    a = p_s / (1.0 - p_s)
    w = n * _log1p_complex(a * spectrum)
    power = math.exp(n * math.log1p(-p_s)) * _expm1_complex(w)
    extra = n * a / (1.0 - a)
  else:
    alive = n * log_modulus > -745.0
    power = np.zeros(z.size, dtype=np.complex128)
    w = np.zeros(z.size, dtype=np.complex128)
    w[alive] = n * _log1p_complex(z[alive])
    power[alive] = np.exp(w[alive])
    extra = 0.0
  law = np.fft.irfft(power, size)
  modulus = np.exp((n - 1) * np.maximum(log_modulus, -800.0))
  terms = modulus * (3.0 * n * p_s + extra) + np.abs(power) * (np.abs(w) + 2.0)
  entry_error = _FFT_ERROR_FACTOR * _UNIT_ROUNDOFF * (math.log2(size) + 4.0) * _mean_over_spectrum(
    terms, size
  ) + math.exp(-745.0)
  return law, entry_error


def _expected_positive_part(increments, spacing: float, n: int, p: float) -> float:
  """Upper bound on E[(Y)_+], Y = sum_{j=1}^N X'_j, N ~ Bin(n, p) independent of the X'_j.

  Exponential tilting (Y's law times e^{sY} / E e^{sY} is again a compound
  binomial, with p_s = p m / (1 - p + p m), m = E e^{sX'}, and tilted
  increments) centres the law on 0, so that the FFT is accurate where the
  positive part lives: E[(Y)_+] = E e^{sY} sum_{y > 0} y e^{-sy} P_s(Y = y).
  The FFT computes the circular (aliased) law on a window, which is pointwise
  >= the true law (aliasing only adds mass). Added to it: the floating-point
  error bound of `_compound_law` (negative entries are clipped to 0), and the
  mass beyond the window's top A, bounded by
      E[Y; Y > A] <= 2 e^{-rA/2} E e^{rY} / (e r)   for every r > 0
  (from y <= 2 e^{ry/2} / (e r)), minimised over a grid of r.
  """
  kmin, pmf = increments
  values = (kmin + np.arange(pmf.size)) * spacing
  support = pmf > 0.0
  if float(np.max(values[support])) <= 0.0:
    return _ABSOLUTE_FLOOR
  s = _zero_mean_tilt(values, pmf)
  log_m = _log_mgf(values, pmf, s)
  tilted = np.zeros_like(pmf)
  tilted[support] = pmf[support] * np.exp(s * values[support] - log_m)
  tilted /= float(np.sum(tilted))
  m = math.exp(log_m)
  p_s = 1.0 if p >= 1.0 else p * m / (1.0 - p + p * m)
  log_my = _log_compound_mgf(values, pmf, n, p, s)
  mean_x = float(np.sum(tilted * values))
  mean_y = n * p_s * mean_x
  sd_y = math.sqrt(
    max(n * p_s * float(np.sum(tilted * values * values)) - n * p_s**2 * mean_x**2, 0.0)
  )
  # The margin covers a few increments when N is small (then sd_y is not the scale).
  margin = 2.0 * float(np.max(np.abs(values[support]))) + spacing
  bottom = min(mean_y, 0.0) - _WINDOW_SDS * sd_y - margin
  top = max(mean_y, 0.0) + _WINDOW_SDS * sd_y + margin
  j_low, j_top = math.floor(bottom / spacing), math.ceil(top / spacing)
  size = 1 << int(math.ceil(math.log2(j_top - j_low + 1 + pmf.size)))
  circular = np.zeros(size)
  circular[(kmin + np.arange(pmf.size)) % size] = tilted
  law, entry_error = _compound_law(circular, n, p_s)
  j = np.arange(1, j_top + 1)
  weights = j * spacing * np.exp(-s * spacing * j)
  window = float(np.sum((np.maximum(law[j % size], 0.0) + entry_error) * weights))
  # The right tail beyond the window, in the untilted measure (Chernoff, r on a grid).
  edge = j_top * spacing
  rates = np.concatenate(
    [np.geomspace(1e-3, 1e3, 61) / max(sd_y, spacing), s * np.array([0.5, 1.0, 1.5, 2.0])]
  )
  rates = rates[rates > 0.0]
  log_tail = min(
    math.log(2.0 / (math.e * r)) - r * edge / 2.0 + _log_compound_mgf(values, pmf, n, p, float(r))
    for r in rates
  )
  tail = math.exp(min(log_tail, 700.0))
  return math.exp(log_my) * window + tail + _ABSOLUTE_FLOOR


def _clone_experiment_delta(increments, spacing: float, n: int, p: float, epsilon: float) -> float:
  """E_{C ~ Bin(n-1, p)} D_{e^eps}(P_C || Q_C) = 2 (1 + e^eps) / (n p) E[(Y)_+] (upper bound)."""
  value = _expected_positive_part(increments, spacing, n, p)
  return min(1.0, 2.0 * _one_plus_exp(epsilon) / (n * p) * value * (1.0 + _RELATIVE_SAFETY))


def gaussian_clone_slack(mu: float, n: int, clone_probability: float, epsilon: float) -> float:
  """(1 + e^eps)(n - 1) p delta_G(mu; log(1/p)): the price of the clone decomposition.

  Args:
    mu: sqrt(k) Delta / sigma, the Gaussian pair's distance in noise units (> 0).
    n: number of records (>= 1).
    clone_probability: p in (0, 1].
    epsilon: central epsilon (>= 0).

  Returns:
    The slack term of `shuffled_gaussian_delta` (see the module docstring).
  """
  mu = _validation.positive(mu, "mu")
  n = _validation.positive_int(n, "n")
  p = _clone_probability(clone_probability)
  epsilon = _validation.nonnegative(epsilon, "epsilon")
  if n == 1:
    return 0.0
  log_hs = _log_gaussian_hockey_stick(mu, -math.log(p))
  if log_hs == -math.inf:
    return 0.0
  return min(
    1e300, _one_plus_exp(epsilon) * (n - 1) * p * math.exp(log_hs) * (1.0 + _RELATIVE_SAFETY)
  )


def gaussian_clones_delta(mu: float, n: int, clone_probability: float, epsilon: float) -> float:
  """Upper bound on E_{C ~ Bin(n-1, p)} D_{e^eps}(P_C || Q_C) for the Gaussian pair at mu.

  P_C (Q_C): the multiset of one draw of phi_a (phi_b) and C draws of
  M = (phi_a + phi_b) / 2, |a - b| = mu, unit noise. This is the first term of
  `shuffled_gaussian_delta`; without the slack it is not a privacy bound.
  """
  mu = _validation.positive(mu, "mu")
  n = _validation.positive_int(n, "n")
  p = _clone_probability(clone_probability)
  epsilon = _validation.nonnegative(epsilon, "epsilon")
  spacing = _lattice_spacing(mu)
  return _clone_experiment_delta(_gaussian_increments(mu, epsilon, spacing), spacing, n, p, epsilon)


def randomized_response_clones_delta(
  eps0: float, n: int, clone_probability: float, epsilon: float, spacing: float = 1.0 / 1024.0
) -> float:
  """The same clone experiment for binary randomized response (a cross-check).

  With p = e^{-eps0} this is FMT's numerical bound for eps0-DP randomizers
  (`clones_numerical_delta`), computed through the convex-order lattice and
  the FFT instead of binomial CDFs; tests compare the two.
  """
  eps0 = _validation.positive(eps0, "eps0")
  n = _validation.positive_int(n, "n")
  p = _clone_probability(clone_probability)
  epsilon = _validation.nonnegative(epsilon, "epsilon")
  spacing = _validation.positive(spacing, "spacing")
  return _clone_experiment_delta(
    _randomized_response_increments(eps0, epsilon, spacing), spacing, n, p, epsilon
  )


def _gaussian_bound(
  mu: float, n: int, epsilon: float, p: float, increments=None, spacing: Optional[float] = None
) -> tuple[float, float]:
  """(total delta bound, slack) at epsilon for clone probability p."""
  if spacing is None:
    spacing = _lattice_spacing(mu)
  if increments is None:
    increments = _gaussian_increments(mu, epsilon, spacing)
  slack = gaussian_clone_slack(mu, n, p, epsilon)
  if slack >= 1.0:
    return 1.0, slack
  main = _clone_experiment_delta(increments, spacing, n, p, epsilon)
  # D(P_c || Q_c) <= D(P_0 || Q_0) = delta_G(mu; eps) (adding clones is a post-processing);
  # the lattice can lose this at large eps, where h is coarse next to 1 / (1 + e^eps).
  single = math.exp(_log_gaussian_hockey_stick(mu, epsilon)) * (1.0 + _RELATIVE_SAFETY)
  return min(1.0, min(main, single) + slack), slack


def _clone_probability_for_slack(mu: float, n: int, epsilon: float, budget: float) -> float:
  """Largest p (on the safe side) with slack(p) <= budget; slack is increasing in p."""
  if gaussian_clone_slack(mu, n, 1.0, epsilon) <= budget:
    return 1.0

  def excess(log_p):
    return gaussian_clone_slack(mu, n, math.exp(log_p), epsilon) - budget

  low = -1.0
  while excess(low) > 0.0:
    low *= 2.0
    if low < -600.0:
      return 0.0
  log_p = float(optimize.brentq(excess, low, 0.0, xtol=1e-9, rtol=1e-12))
  while excess(log_p) > 0.0:
    log_p -= 1e-9
  return math.exp(log_p)


def _best_gaussian_bound(
  mu: float, n: int, epsilon: float, delta: float, fractions=_SLACK_FRACTIONS
) -> tuple[float, float, float, float]:
  """min over p = p(fraction) of the delta bound: (delta bound, p, slack, fraction).

  p(fraction) is the clone probability whose slack is fraction * delta.
  """
  spacing = _lattice_spacing(mu)
  increments = _gaussian_increments(mu, epsilon, spacing)
  best = (math.inf, 1.0, math.inf, fractions[0])
  for fraction in fractions:
    p = _clone_probability_for_slack(mu, n, epsilon, fraction * delta)
    if p <= 0.0:
      continue
    total, slack = _gaussian_bound(mu, n, epsilon, p, increments, spacing)
    if total < best[0]:
      best = (total, p, slack, fraction)
  return best


def _noise_distance(sigma: float, sensitivity: float, k: int) -> float:
  """mu = sqrt(k) Delta / sigma: the worst pair's distance in units of sigma / sqrt(k)."""
  return sensitivity * math.sqrt(k) / sigma


def shuffled_gaussian_delta(
  sigma: float,
  sensitivity: float,
  n: int,
  epsilon: float,
  k: int = 1,
  clone_probability: Optional[float] = None,
) -> float:
  """Upper bound on delta(eps) of n shuffled Gaussian releases (Gaussian clones, see above).

  delta(eps) <= E_{C ~ Bin(n-1, p)} D_{e^eps}(P_C || Q_C)
                + (1 + e^eps)(n - 1) p delta_G(mu; log(1/p)),   mu = sqrt(k) Delta / sigma,
  for every p in (0, 1]; the first term is computed by `gaussian_clones_delta`.

  Args:
    sigma: noise std per coordinate (> 0).
    sensitivity: Delta = L D (> 0).
    n: number of records shuffled together (>= 1).
    epsilon: central epsilon (>= 0).
    k: latents per record (>= 1).
    clone_probability: p; None minimises over a log grid of p.

  Returns:
    delta such that the shuffled release is (epsilon, delta)-DP (replace-one).
  """
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  n = _validation.positive_int(n, "n")
  epsilon = _validation.nonnegative(epsilon, "epsilon")
  k = _validation.positive_int(k, "k")
  mu = _noise_distance(sigma, sensitivity, k)
  single = math.exp(_log_gaussian_hockey_stick(mu, epsilon))
  if n == 1:
    return min(1.0, single * (1.0 + _RELATIVE_SAFETY))
  if clone_probability is not None:
    return _gaussian_bound(mu, n, epsilon, _clone_probability(clone_probability))[0]
  spacing = _lattice_spacing(mu)
  increments = _gaussian_increments(mu, epsilon, spacing)
  best = 1.0
  for exponent in range(1, 31):
    p = _clone_probability_for_slack(mu, n, epsilon, 10.0 ** (-exponent / 2.0))
    if p > 0.0:
      best = min(best, _gaussian_bound(mu, n, epsilon, p, increments, spacing)[0])
  return best


@dataclasses.dataclass(frozen=True)
class ShuffleResult:
  """Central guarantee of a shuffled Gaussian release.

  Attributes:
    central_epsilon: min(shuffled bound, per-record epsilon) at `delta`.
    per_record_epsilon: the per-record (unshuffled) epsilon at `delta`.
    delta: total delta of both statements.
    n: number of records.
    amplified: whether the shuffle bound was smaller than the per-record one.
    method: which statement gave `central_epsilon`: "gaussian_clones" (the
      numerical Gaussian clone bound) or "per_record" (no amplification claimed).
    clone_probability: p of the Gaussian clone bound (method "gaussian_clones").
    clone_slack: the part of `delta` spent on the decomposition's slack,
      (1 + e^eps)(n - 1) p delta_G(mu; log(1/p)) (method "gaussian_clones").
  """

  central_epsilon: float
  per_record_epsilon: float
  delta: float
  n: int
  amplified: bool
  method: str = "per_record"
  clone_probability: Optional[float] = None
  clone_slack: Optional[float] = None


_EPSILON_RTOL = 1e-4


def _gaussian_clones_statement(mu, n, delta, upper):
  """Smallest eps in [0, upper] (to a relative 1e-4) certified by the Gaussian clone bound.

  Root-finding on log eps of log(bound(eps) / delta), where bound(eps) is the
  smallest over the candidate clone probabilities; the root is then moved up
  until the bound is verified <= delta there. Returns (eps, p, slack) or None.
  """
  certified = _best_gaussian_bound(mu, n, upper, delta)
  if certified[0] > delta:
    return None
  floor = upper * 1e-6
  at_floor = _best_gaussian_bound(mu, n, floor, delta)
  if at_floor[0] <= delta:
    return floor, at_floor[1], at_floor[2]

  def gap(log_eps):
    bound = _best_gaussian_bound(mu, n, math.exp(log_eps), delta)[0]
    return math.log(max(bound, 1e-300) / delta)

  root = math.exp(
    float(optimize.brentq(gap, math.log(floor), math.log(upper), xtol=_EPSILON_RTOL, maxiter=100))
  )
  eps = root * (1.0 + _EPSILON_RTOL)
  while eps < upper:
    candidate = _best_gaussian_bound(mu, n, eps, delta)
    if candidate[0] <= delta:
      return eps, candidate[1], candidate[2]
    eps *= 1.0 + 10.0 * _EPSILON_RTOL
  return upper, certified[1], certified[2]


def shuffled_gaussian_epsilon(
  sigma: float, sensitivity: float, n: int, delta: float, k: int = 1
) -> ShuffleResult:
  """Central (eps, delta) of n shuffled per-record Gaussian releases.

  The smaller of two valid statements at the same delta: the per-record
  epsilon (no amplification) and the Gaussian clone bound (root-finding on eps
  of `shuffled_gaussian_delta`'s bound over the candidate clone probabilities).
  Each is a valid upper bound, so their min is. (FMT's closed form with the
  delta0 term is no longer a third: module docstring.)

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
  result = ShuffleResult(
    central_epsilon=per_record, per_record_epsilon=per_record, delta=delta, n=n, amplified=False
  )
  if n == 1 or per_record <= 0.0:
    return result
  clones = _gaussian_clones_statement(_noise_distance(sigma, sensitivity, k), n, delta, per_record)
  if clones is not None and clones[0] < per_record:
    return ShuffleResult(
      central_epsilon=clones[0],
      per_record_epsilon=per_record,
      delta=delta,
      n=n,
      amplified=True,
      method="gaussian_clones",
      clone_probability=clones[1],
      clone_slack=clones[2],
    )
  return result


def calibrate_sigma_shuffled(
  epsilon: float, delta: float, sensitivity: float, n: int, k: int = 1, rtol: float = 1e-6
) -> float:
  """Per-record sigma whose shuffled release meets a central (epsilon, delta).

  Bisection on log sigma between 1e-3 and 1 times the unshuffled calibration
  (which always meets the target), with a fast certificate: the Gaussian
  clone bound evaluated at the target epsilon (`shuffled_gaussian_delta`'s
  bound with the candidate clone probabilities) is <= delta. Any sigma passing
  it is valid; bisection only needs the two ends of the bracket, not
  monotonicity. The result is then checked with `shuffled_gaussian_epsilon`
  (whose root-finding on epsilon lands up to a relative 1e-4 above the
  root) and raised by small steps until that check passes too, so the
  returned sigma is one at which `shuffled_gaussian_epsilon` reports at most
  `epsilon`.

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
  if n == 1:
    return high
  low = high * 1e-3

  def certified(sigma):
    mu = _noise_distance(sigma, sensitivity, k)
    return _best_gaussian_bound(mu, n, epsilon, delta)[0] <= delta

  def reported(sigma):
    return shuffled_gaussian_epsilon(sigma, sensitivity, n, delta, k).central_epsilon <= epsilon

  if certified(low):
    high = low
  else:
    while high / low > 1.0 + rtol:
      mid = math.sqrt(high * low)
      if certified(mid):
        high = mid
      else:
        low = mid
  step = max(rtol, 10.0 * _EPSILON_RTOL)
  while not reported(high):
    high *= 1.0 + step
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
  noise_multiplier: float,
  sampling_rate: float,
  steps: int,
  sigma: float,
  sensitivity: float,
  n: int,
  delta: float,
  k: int = 1,
  shuffle_delta_fraction: float = 0.5,
  value_discretization_interval: float = composition.DEFAULT_VALUE_DISCRETIZATION,
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
  shuffle_delta_fraction = _validation.probability_open(
    shuffle_delta_fraction, "shuffle_delta_fraction"
  )
  shuffle_delta = shuffle_delta_fraction * delta
  shuffled = shuffled_gaussian_epsilon(sigma, sensitivity, n, shuffle_delta, k)
  with_shuffle = composition.compose_dpsgd_and_dp_mechanism(
    noise_multiplier,
    sampling_rate,
    steps,
    shuffled.central_epsilon,
    shuffle_delta,
    delta,
    value_discretization_interval,
  )
  plain = composition.compose_dpsgd_and_release(
    noise_multiplier,
    sampling_rate,
    steps,
    sigma,
    sensitivity,
    delta,
    k,
    value_discretization_interval,
  )
  return ShuffledCompositionResult(
    dpsgd_epsilon=plain.dpsgd_epsilon,
    per_record_epsilon=plain.release_epsilon,
    central_epsilon=shuffled.central_epsilon,
    shuffle_delta=shuffle_delta,
    total_epsilon=min(with_shuffle, plain.total_epsilon),
    delta=delta,
  )
