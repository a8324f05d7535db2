"""The exact (analytic) Gaussian mechanism of Balle and Wang (2018).

Setting. A record x is released as z = mu(x) + sigma * xi, xi ~ N(0, I_d), and
||mu(x) - mu(x')||_2 <= Delta for every pair of records the neighbouring
relation allows (Delta = L * D, `sensitivity.sensitivity`). By rotation
invariance of the isotropic Gaussian the worst pair reduces to the 1-D pair
N(0, sigma^2) vs N(Delta, sigma^2), and the tight privacy profile is

    delta(eps) = Phi(Delta / (2 s) - eps s / Delta)
                 - e^eps Phi(-Delta / (2 s) - eps s / Delta),          (BW)

with s = sigma (Balle and Wang, "Improving the Gaussian Mechanism for
Differential Privacy: Analytical Calibration and Optimal Denoising", ICML 2018,
Theorem 8; Phi is the standard normal CDF). The mechanism is (eps, delta)-DP
iff delta(eps) <= delta, and (BW) is exact (the hockey-stick divergence of the
worst pair), not an upper bound: no PLD discretisation is involved. The
function only depends on the ratio s / Delta (scale invariance: scaling mu by
c scales L, hence Delta, by c).

k latents per record. Releasing k independent draws z_j = mu(x) + sigma xi_j is
equivalent (their mean is a sufficient statistic, and it is
mu(x) + (sigma / sqrt(k)) xi) to one Gaussian mechanism with noise
sigma / sqrt(k) and the same Delta, so k composes *exactly*:
s = sigma / sqrt(k) in (BW). (Equivalently: the k draws stacked form a Gaussian
mechanism with sensitivity Delta sqrt(k) and noise sigma.)

Neighbouring relation. Delta bounds the distance between the means of *any*
two records of the domain, so these epsilons are for the replace-one relation
(bounded DP) and need no extra factor 2.

Implementation. epsilon and sigma are found by root-finding on (BW) with
`dp_accounting.get_epsilon_gaussian` / `get_sigma_gaussian` (which implement
the same formula, in log space, Balle and Wang's Eq. (6)); `gaussian_delta`
evaluates (BW) directly. Calibration results are nudged up by a few ulps when
needed so that the returned sigma meets the target as evaluated in float64
(root-finding stops within a tolerance on either side of the root); the formula's
own float64 rounding can leave the true delta about 1e-13 of delta above the
target (an independent review, in 50-digit arithmetic), far below any margin.

The classic bound sigma = Delta sqrt(2 ln(1.25 / delta)) / eps (Dwork and Roth
2014, Theorem A.1; only proven for eps < 1) is in `classic_gaussian_sigma`,
for comparison only.
"""

import math

import dp_accounting
import numpy as np
from scipy import special

from lipdp.privacy import _validation


def _log_ndtr(x: float) -> float:
  return float(special.log_ndtr(x))


def _log_delta_unit(noise_ratio: float, epsilon: float) -> float:
  """log delta(eps) of (BW) for noise ratio r = s / Delta (Delta = 1)."""
  a = 1.0 / (2.0 * noise_ratio) - epsilon * noise_ratio
  b = -1.0 / (2.0 * noise_ratio) - epsilon * noise_ratio
  log_first = _log_ndtr(a)
  log_second = epsilon + _log_ndtr(b)
  if log_second >= log_first:
    return -math.inf
  return log_first + math.log1p(-math.exp(log_second - log_first))


def _effective_sigma(sigma: float, k: int) -> float:
  return sigma / math.sqrt(k)


def _delta_of(sigma: float, sensitivity: float, epsilon: float, k: int) -> float:
  """(BW) for validated arguments; the one evaluation every check goes through."""
  return math.exp(_log_delta_unit(_effective_sigma(sigma, k) / sensitivity, epsilon))


def gaussian_delta(sigma: float, sensitivity: float, epsilon: float, k: int = 1) -> float:
  """Tight delta(eps) of the Gaussian mechanism, formula (BW).

  Args:
    sigma: noise standard deviation per coordinate (> 0).
    sensitivity: l2 sensitivity Delta >= 0 (replace-one), e.g. L * D.
    epsilon: the epsilon at which to evaluate the privacy profile (> 0).
    k: number of independent latents released per record (>= 1).

  Returns:
    The smallest delta such that releasing the k latents is (epsilon, delta)-DP.
  """
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.nonnegative(sensitivity, "sensitivity")
  epsilon = _validation.positive(epsilon, "epsilon")
  k = _validation.positive_int(k, "k")
  if sensitivity == 0.0:
    return 0.0
  return _delta_of(sigma, sensitivity, epsilon, k)


def gaussian_epsilon(sigma: float, sensitivity: float, delta: float, k: int = 1) -> float:
  """Smallest epsilon with delta(eps) <= delta in (BW): exact, not a bound.

  Args:
    sigma: noise standard deviation (> 0).
    sensitivity: l2 sensitivity Delta >= 0 (replace-one). 0 gives epsilon 0.
    delta: target delta in (0, 1).
    k: number of latents per record (>= 1); composes exactly as sigma/sqrt(k).

  Returns:
    epsilon >= 0 (0 when the mechanism is already (0, delta)-DP), nudged up by
    a few ulps if needed so that delta(epsilon) <= delta holds for the float.
  """
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.nonnegative(sensitivity, "sensitivity")
  delta = _validation.probability_open(delta, "delta")
  k = _validation.positive_int(k, "k")
  if sensitivity == 0.0:
    return 0.0
  ratio = _effective_sigma(sigma, k) / sensitivity
  with np.errstate(divide="ignore"):  # log1p(-1) inside dp_accounting at the boundary.
    epsilon = float(dp_accounting.get_epsilon_gaussian(ratio, delta))
  # Root-finding stops within a tolerance of the root, on either side: make sure
  # the float returned satisfies delta(epsilon) <= delta.
  while epsilon > 0.0 and _delta_of(sigma, sensitivity, epsilon, k) > delta:
    epsilon = float(np.nextafter(epsilon, math.inf)) * (1.0 + 1e-15)
  return epsilon


def calibrate_sigma(epsilon: float, delta: float, sensitivity: float, k: int = 1) -> float:
  """Smallest sigma making the k-latent release (epsilon, delta)-DP (exact).

  sigma = sqrt(k) * Delta * r*(eps, delta), where r* solves delta(eps) = delta
  in (BW) for Delta = 1. The returned value is checked against (BW) and
  increased by a few ulps if root-finding landed on the wrong side of the
  root, so the guarantee holds for the float returned.

  Args:
    epsilon: target epsilon (> 0).
    delta: target delta in (0, 1).
    sensitivity: l2 sensitivity Delta > 0.
    k: number of latents per record (>= 1).

  Returns:
    The noise standard deviation sigma.
  """
  epsilon = _validation.positive(epsilon, "epsilon")
  delta = _validation.probability_open(delta, "delta")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  k = _validation.positive_int(k, "k")
  with np.errstate(divide="ignore"):
    ratio = float(dp_accounting.get_sigma_gaussian(epsilon, delta))
  sigma = ratio * sensitivity * math.sqrt(k)
  while _delta_of(sigma, sensitivity, epsilon, k) > delta:
    sigma = float(np.nextafter(sigma, math.inf)) * (1.0 + 1e-15)
  return float(sigma)


def max_lipschitz(sigma: float, epsilon: float, delta: float, diameter: float, k: int = 1) -> float:
  """Largest certified Lipschitz bound L allowed at a given sigma.

  By scale invariance only sigma / (L D) matters: the release is
  (epsilon, delta)-DP iff L D <= sigma / (sqrt(k) r*(eps, delta)), with r* as in
  `calibrate_sigma`. The result is nudged down by a few ulps if needed so that
  `gaussian_epsilon(sigma, L * D, delta, k) <= epsilon` holds for the float.

  Args:
    sigma: the noise standard deviation (> 0).
    epsilon: the target epsilon (> 0).
    delta: the target delta in (0, 1).
    diameter: the domain diameter D (> 0).
    k: number of latents per record (>= 1).

  Returns:
    The largest L with (epsilon, delta)-DP.
  """
  sigma = _validation.positive(sigma, "sigma")
  epsilon = _validation.positive(epsilon, "epsilon")
  delta = _validation.probability_open(delta, "delta")
  diameter = _validation.positive(diameter, "diameter")
  k = _validation.positive_int(k, "k")
  unit_sigma = calibrate_sigma(epsilon, delta, 1.0, k)  # sigma needed for Delta = 1.
  lipschitz = sigma / (unit_sigma * diameter)
  while _delta_of(sigma, lipschitz * diameter, epsilon, k) > delta:
    lipschitz = float(np.nextafter(lipschitz, 0.0)) * (1.0 - 1e-15)
  return float(lipschitz)


def classic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float, k: int = 1) -> float:
  """The classic calibration sigma = sqrt(k) Delta sqrt(2 ln(1.25/delta)) / eps.

  Dwork and Roth, "The Algorithmic Foundations of Differential Privacy"
  (2014), Theorem A.1. It is only proven for eps < 1 and is always larger than
  the analytic sigma; lipdp never uses it for accounting, it is here for the
  comparison table in docs/privacy.md.

  Args:
    epsilon: target epsilon (> 0).
    delta: target delta in (0, 1).
    sensitivity: l2 sensitivity Delta > 0.
    k: number of latents per record (>= 1).

  Returns:
    The classic sigma.
  """
  epsilon = _validation.positive(epsilon, "epsilon")
  delta = _validation.probability_open(delta, "delta")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  k = _validation.positive_int(k, "k")
  return math.sqrt(k) * sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon
