"""Zero-concentrated DP: the accounting of central mechanisms built from noisy measurements.

The baselines of `lipdp.baselines` (MST, AIM, the private measure) touch the private records
only through a list of basic DP primitives. Their privacy is accounted here, in zero-concentrated
DP (zCDP; Bun and Steinke, "Concentrated Differential Privacy: Simplifications, Extensions, and
Lower Bounds", TCC 2016): a mechanism is rho-zCDP if D_alpha(M(x) || M(x')) <= rho alpha for every
order alpha > 1 and every pair of neighbours. zCDP composes additively, also when each step's
parameters are chosen from earlier outputs, as long as the total stays within a budget fixed in
advance (a Renyi filter: Feldman and Zrnic, "Individual Privacy Accounting via a Renyi Filter",
NeurIPS 2021).

Neighbouring relation: replace-one, as everywhere in lipdp. Every sensitivity below is the
replace-one value. The papers of MST and AIM state their analysis for add/remove-one neighbours,
where a histogram moves by one count; under replace-one a record moves from one cell u to
another cell v, the histogram moves by e_v - e_u, and the sensitivities double in l1 and grow by
sqrt(2) in l2. A score that moves by at most c when a record is added or removed moves by at most
2c when one is replaced.

The three primitives (`scale` is the noise scale, `Delta` the replace-one sensitivity):

* Gaussian: y = q(x) + N(0, sigma^2 I) with ||q(x) - q(x')||_2 <= Delta is
  rho = Delta^2 / (2 sigma^2) zCDP (Bun and Steinke 2016, Proposition 1.6). It has no finite
  pure epsilon.
* Laplace: y = q(x) + Lap(b)^m with ||q(x) - q(x')||_1 <= Delta is eps = Delta / b pure DP
  (Dwork, McSherry, Nissim, Smith 2006), hence eps^2 / 2 zCDP (Bun and Steinke 2016,
  Proposition 1.4).
* Exponential mechanism: P(o) proportional to exp(q(x, o) / T) with |q(x, o) - q(x', o)| <= Delta
  for every outcome o. The privacy loss log P_x(o) / P_x'(o) = (q(x, o) - q(x', o)) / T - log(Z_x /
  Z_x') lies, over all o, in an interval of width 2 Delta / T: the mechanism is eps-bounded-range
  with eps = 2 Delta / T (Durfee and Rogers 2019), so eps-DP (McSherry and Talwar 2007) and
  eps^2 / 8 zCDP (Cesar and Rogers, "Bounding, Concentrating, and Truncating: Unifying Privacy
  Loss Composition for Data Analytics", ALT 2021). With T = 2 Delta / eps this is the usual
  exp(eps q / (2 Delta)).

Conversion to (epsilon, delta). rho-zCDP is (alpha, alpha rho)-RDP for every alpha > 1, and
(alpha, tau)-RDP implies (eps, delta)-DP with

    eps = tau + log(1 - 1/alpha) - (log delta + log alpha) / (alpha - 1)

(Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020,
Proposition 12; the same conversion as `heteroscedastic.rdp_to_epsilon`, and as the reference code
of MST and AIM, cdp2adp.py). Every alpha gives a valid bound; `zcdp_epsilon` minimises over alpha
numerically, so a less than perfect minimisation only loosens the bound.
"""

import math

import numpy as np
from scipy import optimize

from lipdp.privacy import _validation

GAUSSIAN = "gaussian"
LAPLACE = "laplace"
EXPONENTIAL = "exponential"
KINDS = (GAUSSIAN, LAPLACE, EXPONENTIAL)

# log(alpha - 1) is searched in this range; the optimum is near alpha = 1 + sqrt(log(1/delta)/rho).
_LOG_ALPHA_MINUS_ONE = (-25.0, 40.0)


def gaussian_rho(sigma: float, sensitivity: float) -> float:
  """rho = Delta^2 / (2 sigma^2) of the Gaussian mechanism (Bun and Steinke 2016, Prop. 1.6)."""
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  return sensitivity**2 / (2.0 * sigma**2)


def laplace_epsilon(scale: float, sensitivity: float) -> float:
  """Pure eps = Delta_1 / b of the Laplace mechanism with scale b."""
  scale = _validation.positive(scale, "scale")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  return sensitivity / scale


def exponential_epsilon(temperature: float, sensitivity: float) -> float:
  """eps = 2 Delta / T of the exponential mechanism P(o) ~ exp(q(o) / T): eps-DP and eps-BR."""
  temperature = _validation.positive(temperature, "temperature")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  return 2.0 * sensitivity / temperature


def primitive_rho(kind: str, scale: float, sensitivity: float) -> float:
  """The zCDP rho of one application of a primitive (module docstring)."""
  if kind == GAUSSIAN:
    return gaussian_rho(scale, sensitivity)
  if kind == LAPLACE:
    return laplace_epsilon(scale, sensitivity) ** 2 / 2.0
  if kind == EXPONENTIAL:
    return exponential_epsilon(scale, sensitivity) ** 2 / 8.0
  raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def primitive_pure_epsilon(kind: str, scale: float, sensitivity: float) -> float:
  """The pure epsilon of one application (inf for the Gaussian, which has none)."""
  if kind == GAUSSIAN:
    _validation.positive(scale, "sigma")
    _validation.positive(sensitivity, "sensitivity")
    return math.inf
  if kind == LAPLACE:
    return laplace_epsilon(scale, sensitivity)
  if kind == EXPONENTIAL:
    return exponential_epsilon(scale, sensitivity)
  raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _epsilon_at(log_alpha_minus_one: float, rho: float, log_delta: float) -> float:
  """CKS Proposition 12 at order alpha = 1 + exp(t) for (alpha, alpha rho)-RDP."""
  am1 = math.exp(log_alpha_minus_one)
  alpha = 1.0 + am1
  return alpha * rho + math.log(am1) - math.log(alpha) - (log_delta + math.log(alpha)) / am1


def zcdp_epsilon(rho: float, delta: float) -> float:
  """The smallest epsilon CKS 2020 Prop. 12 gives for rho-zCDP at delta (module docstring).

  Args:
    rho: the zCDP parameter (>= 0).
    delta: the target delta in (0, 1).

  Returns:
    epsilon >= 0 such that rho-zCDP implies (epsilon, delta)-DP. It is the bound at the order
    found by a bounded Brent search in log(alpha - 1), refined against a grid of orders; any
    order gives a valid bound, so the result is valid whatever the search returns.
  """
  rho = _validation.nonnegative(rho, "rho")
  delta = _validation.probability_open(delta, "delta")
  if rho == 0.0:
    return 0.0
  log_delta = math.log(delta)
  lo, hi = _LOG_ALPHA_MINUS_ONE
  grid = np.linspace(lo, hi, 261)
  values = [_epsilon_at(t, rho, log_delta) for t in grid]
  best = int(np.argmin(values))
  bracket_lo, bracket_hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
  result = optimize.minimize_scalar(
    _epsilon_at,
    bounds=(bracket_lo, bracket_hi),
    args=(rho, log_delta),
    method="bounded",
    options={"xatol": 1e-12},
  )
  epsilon = min(values[best], float(result.fun))
  return max(0.0, float(epsilon))


def zcdp_rho(epsilon: float, delta: float) -> float:
  """The largest rho whose `zcdp_epsilon(rho, delta)` does not exceed epsilon (bisection).

  The returned float always satisfies zcdp_epsilon(rho, delta) <= epsilon (the bisection keeps
  its lower end feasible), so a mechanism calibrated to it meets the target.
  """
  epsilon = _validation.positive(epsilon, "epsilon")
  delta = _validation.probability_open(delta, "delta")
  low, high = 0.0, epsilon + 1.0
  while zcdp_epsilon(high, delta) <= epsilon:  # double until infeasible
    low, high = high, 2.0 * high
  for _ in range(200):
    mid = 0.5 * (low + high)
    if mid in (low, high):
      break
    if zcdp_epsilon(mid, delta) <= epsilon:
      low = mid
    else:
      high = mid
  return low
