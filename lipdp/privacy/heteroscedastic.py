"""Rényi DP of the heteroscedastic Gaussian release (learned sigma(x)).

Mechanism. z = mu(x) + sigma(x) xi, xi ~ N(0, I_d), with
  * mu certified L-Lipschitz, so ||mu(x) - mu(x')|| <= Delta := L D;
  * sigma(x) isotropic, clamped to [sigma_min, sigma_max], with log sigma(x)
    certified L_s-Lipschitz, so |log sigma(x) - log sigma(x')| <= B := L_s D;
  * records in a domain of l2 diameter D (replace-one relation: x, x' any two
    points of the domain).

Rényi divergence between isotropic Gaussians (Gil, Alajaji, Linder 2013,
"Rényi divergence measures for commonly used univariate continuous
distributions", and its multivariate form). For P = N(mu_a, s_a^2 I_d),
Q = N(mu_b, s_b^2 I_d), order alpha > 1 and s_alpha^2 := (1 - alpha) s_a^2 +
alpha s_b^2,

  D_alpha(P || Q) = alpha |mu_a - mu_b|^2 / (2 s_alpha^2)
                    + d * [alpha log(s_b / s_a) - (1/2) log(s_alpha^2 / s_a^2)] / (alpha - 1)
                                                                         (GAL)

if s_alpha^2 > 0, and +inf otherwise (the integral diverges). The bracket is
the variance term V_alpha(r) with r = s_b / s_a:
V_alpha(r) = [2 alpha log r - log((1 - alpha) + alpha r^2)] / (2 (alpha - 1)),
which is D_alpha(N(0, 1) || N(0, r^2)) >= 0 and vanishes at r = 1.

The mechanism is (alpha, eps_alpha)-RDP (Mironov 2017) with eps_alpha the
supremum of (GAL) over every pair of records, in both orders. We bound it by
the supremum over every (mu_a, mu_b, s_a, s_b) the constraints admit:
|mu_a - mu_b| <= Delta, s_a, s_b in [sigma_min, sigma_max],
|log s_a - log s_b| <= B. (Relaxing the joint dependence on x, x' to
independent constraints can only enlarge the set, so this is an upper bound.)

Closed-form maximiser (derived in docs/privacy.md, section "Heteroscedastic").
Write s_a = s, s_b = r s. The admissible ratios are r in [1/R, R] with
R := min(exp(B), sigma_max / sigma_min) (a symmetric interval: both orders of
every pair are admissible).
  1. (GAL) increases with |mu_a - mu_b| (s_alpha^2 > 0), so |dmu| = Delta.
  2. For fixed r, the mean term alpha Delta^2 / (2 s^2 ((1-alpha) + alpha r^2))
     decreases in s and V_alpha depends on r only, so s is as small as the box
     allows: s = sigma_min max(1, 1/r).
  3. For t >= 1, r = 1/t beats r = t: the mean term's denominator is
     sigma_min^2 (alpha - (alpha-1) t^2) at r = 1/t versus
     sigma_min^2 ((1 - alpha) + alpha t^2) at r = t, and their difference is
     (1 - 2 alpha)(t^2 - 1) <= 0; for the variance term,
     2 (alpha - 1) [V(1/t) - V(t)] = h(u) with u = t^2,
     h(u) = -(2 alpha - 1) log u - log(alpha - (alpha-1) u) + log(alpha u - (alpha-1)),
     h(1) = 0 and h'(u) u p q = (2 alpha - 1) alpha (alpha - 1) (u - 1)^2 >= 0
     (p, q the two log arguments), so h >= 0.
  4. On r = 1/t, t in [1, R], both terms increase with t (the denominator
     alpha - (alpha-1) t^2 decreases; d/dt V(1/t) = -1/t + t / (alpha - (alpha-1) t^2) >= 0
     iff t >= 1).
So the supremum is attained at s_b = sigma_min, s_a = R sigma_min, |dmu| = Delta:

  eps_alpha = alpha Delta^2 / (2 sigma_min^2 (alpha - (alpha - 1) R^2))
              + d [ -log R - log(alpha - (alpha - 1) R^2) / (2 (alpha - 1)) ],

finite iff alpha < R^2 / (R^2 - 1) (any alpha when R = 1). With L_s = 0 or
sigma_min = sigma_max, R = 1 and eps_alpha = alpha Delta^2 / (2 sigma^2), the
homoscedastic RDP (Mironov 2017, Proposition 7). k latents per record compose
additively: k eps_alpha.

Conversion to (epsilon, delta): for every order, (alpha, eps_alpha)-RDP implies
(epsilon, delta)-DP with
epsilon = eps_alpha + log((alpha - 1) / alpha) - (log delta + log alpha) / (alpha - 1)
(Canonne, Kamath, Steinke 2020, Proposition 12; Asoodeh et al. 2021), which we
minimise over a dense grid of orders inside the finite range (each order gives a
valid bound) using `dp_accounting.rdp.compute_epsilon`.
"""

import dataclasses
import functools
import math
from typing import Optional, Sequence

import numpy as np
from dp_accounting.rdp import rdp_privacy_accountant

from lipdp.privacy import _validation
from lipdp.privacy import gaussian


def isotropic_gaussian_renyi_divergence(
  alpha: float, mean_distance: float, sigma_a: float, sigma_b: float, dim: int
) -> float:
  """D_alpha(N(mu_a, s_a^2 I_d) || N(mu_b, s_b^2 I_d)), formula (GAL).

  Args:
    alpha: the order (> 1).
    mean_distance: |mu_a - mu_b| (>= 0).
    sigma_a: std of the first Gaussian (> 0).
    sigma_b: std of the second Gaussian (> 0).
    dim: dimension d (>= 1).

  Returns:
    The divergence, +inf when (1 - alpha) s_a^2 + alpha s_b^2 <= 0.
  """
  alpha = _validation.renyi_order(alpha)
  mean_distance = _validation.nonnegative(mean_distance, "mean_distance")
  sigma_a = _validation.positive(sigma_a, "sigma_a")
  sigma_b = _validation.positive(sigma_b, "sigma_b")
  dim = _validation.positive_int(dim, "dim")
  ratio_sq = (sigma_b / sigma_a) ** 2
  g = (1.0 - alpha) + alpha * ratio_sq  # s_alpha^2 / s_a^2
  if g <= 0.0:
    return math.inf
  s_alpha_sq = sigma_a**2 * g
  mean_term = alpha * mean_distance**2 / (2.0 * s_alpha_sq)
  variance_term = (alpha * math.log(ratio_sq) - math.log(g)) / (2.0 * (alpha - 1.0))
  return mean_term + dim * variance_term


def max_sigma_ratio(
  lipschitz_log_sigma: float, diameter: float, sigma_min: float, sigma_max: float
) -> float:
  """R = min(exp(L_s D), sigma_max / sigma_min): the largest admissible s_a / s_b."""
  lipschitz_log_sigma = _validation.nonnegative(lipschitz_log_sigma, "lipschitz_log_sigma")
  diameter = _validation.nonnegative(diameter, "diameter")
  sigma_min, sigma_max = _check_sigma_range(sigma_min, sigma_max)
  return min(math.exp(min(lipschitz_log_sigma * diameter, 700.0)), sigma_max / sigma_min)


def _check_sigma_range(sigma_min, sigma_max):
  sigma_min = _validation.positive(sigma_min, "sigma_min")
  sigma_max = _validation.positive(sigma_max, "sigma_max")
  if sigma_max < sigma_min:
    raise ValueError(f"sigma_max ({sigma_max}) must be >= sigma_min ({sigma_min}).")
  return sigma_min, sigma_max


def max_finite_order(
  lipschitz_log_sigma: float, diameter: float, sigma_min: float, sigma_max: float
) -> float:
  """Supremum of the orders with finite RDP: R^2 / (R^2 - 1) (inf when R = 1)."""
  ratio = max_sigma_ratio(lipschitz_log_sigma, diameter, sigma_min, sigma_max)
  if ratio == 1.0:
    return math.inf
  # R^2 / (R^2 - 1) = 1 + 1 / expm1(2 log R), written to avoid overflow of R^2.
  return 1.0 + 1.0 / math.expm1(min(2.0 * math.log(ratio), 700.0))


@dataclasses.dataclass(frozen=True)
class WorstCasePair:
  """The admissible pair maximising D_alpha (see the module docstring).

  Attributes:
    mean_distance: |mu_a - mu_b| = L D.
    sigma_a: std of the first (numerator) Gaussian, R sigma_min.
    sigma_b: std of the second Gaussian, sigma_min.
  """

  mean_distance: float
  sigma_a: float
  sigma_b: float


def heteroscedastic_worst_case(
  lipschitz: float, lipschitz_log_sigma: float, diameter: float, sigma_min: float, sigma_max: float
) -> WorstCasePair:
  """The maximising pair: |dmu| = L D, s_b = sigma_min, s_a = R sigma_min (any alpha)."""
  lipschitz = _validation.nonnegative(lipschitz, "lipschitz")
  diameter = _validation.nonnegative(diameter, "diameter")
  ratio = max_sigma_ratio(lipschitz_log_sigma, diameter, sigma_min, sigma_max)
  return WorstCasePair(
    mean_distance=lipschitz * diameter, sigma_a=ratio * sigma_min, sigma_b=sigma_min
  )


def heteroscedastic_rdp(
  alpha: float,
  lipschitz: float,
  lipschitz_log_sigma: float,
  diameter: float,
  sigma_min: float,
  sigma_max: float,
  latent_dim: int,
  k: int = 1,
) -> float:
  """RDP eps_alpha of releasing k latents with learned, bounded sigma(x).

  Args:
    alpha: Rényi order (> 1).
    lipschitz: certified Lipschitz bound L of the mean (>= 0).
    lipschitz_log_sigma: certified Lipschitz bound L_s of log sigma(x) (>= 0).
    diameter: domain diameter D (>= 0).
    sigma_min: lower clamp of sigma(x) (> 0).
    sigma_max: upper clamp of sigma(x) (>= sigma_min).
    latent_dim: latent dimension d (>= 1).
    k: latents per record (>= 1); RDP adds up.

  Returns:
    k * eps_alpha (closed form above); +inf when alpha >= R^2 / (R^2 - 1).
  """
  alpha = _validation.renyi_order(alpha)
  k = _validation.positive_int(k, "k")
  latent_dim = _validation.positive_int(latent_dim, "latent_dim")
  pair = heteroscedastic_worst_case(lipschitz, lipschitz_log_sigma, diameter, sigma_min, sigma_max)
  return k * isotropic_gaussian_renyi_divergence(
    alpha, pair.mean_distance, pair.sigma_a, pair.sigma_b, latent_dim
  )


def gaussian_rdp(alpha: float, sigma: float, sensitivity: float, k: int = 1) -> float:
  """Homoscedastic Gaussian RDP: k alpha Delta^2 / (2 sigma^2) (Mironov 2017, Prop. 7)."""
  alpha = _validation.renyi_order(alpha)
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.nonnegative(sensitivity, "sensitivity")
  k = _validation.positive_int(k, "k")
  return k * alpha * sensitivity**2 / (2.0 * sigma**2)


def default_orders(max_order: float = math.inf) -> np.ndarray:
  """A dense grid of orders in (1, max_order): fine near 1, geometric above."""
  grid = np.concatenate(
    [
      1.0 + np.geomspace(1e-3, 1.0, 200),
      np.geomspace(2.0, 1e4, 400),
    ]
  )
  grid = np.unique(grid)
  if math.isfinite(max_order):
    inner = 1.0 + (max_order - 1.0) * (1.0 - np.geomspace(1e-6, 1.0, 200)[::-1])
    grid = np.unique(
      np.concatenate([grid[grid < max_order], inner[(inner > 1.0) & (inner < max_order)]])
    )
  return grid


def rdp_to_epsilon(orders: Sequence[float], rdp: Sequence[float], delta: float):
  """Tight RDP -> (epsilon, delta) conversion, minimised over the orders.

  Canonne, Kamath, Steinke 2020, Proposition 12, as implemented by
  `dp_accounting.rdp.compute_epsilon` (which also uses the KL bound for
  tiny divergences). Orders with infinite RDP are skipped.

  Args:
    orders: the Rényi orders (> 1).
    rdp: the RDP values at those orders.
    delta: the target delta in (0, 1).

  Returns:
    (epsilon, best_order).
  """
  delta = _validation.probability_open(delta, "delta")
  orders = np.asarray(orders, dtype=np.float64)
  rdp = np.asarray(rdp, dtype=np.float64)
  if orders.shape != rdp.shape or orders.ndim != 1:
    raise ValueError("orders and rdp must be 1-D arrays of the same length.")
  if np.any(np.isnan(rdp)):
    raise ValueError("rdp must not contain NaN.")
  finite_mask = np.isfinite(rdp)
  if not np.any(finite_mask):
    return math.inf, float("nan")
  eps, order = rdp_privacy_accountant.compute_epsilon(
    orders[finite_mask].tolist(), rdp[finite_mask].tolist(), delta
  )
  return float(eps), float(order)


@dataclasses.dataclass(frozen=True)
class HeteroscedasticResult:
  """(epsilon, delta) of the heteroscedastic release.

  Attributes:
    epsilon: the DP epsilon at `delta`.
    delta: the delta.
    order: the Rényi order that gave it.
    rdp_at_order: k eps_alpha at that order.
    sigma_ratio: R = min(exp(L_s D), sigma_max / sigma_min).
  """

  epsilon: float
  delta: float
  order: float
  rdp_at_order: float
  sigma_ratio: float


def heteroscedastic_epsilon(
  delta: float,
  lipschitz: float,
  lipschitz_log_sigma: float,
  diameter: float,
  sigma_min: float,
  sigma_max: float,
  latent_dim: int,
  k: int = 1,
  orders: Optional[Sequence[float]] = None,
) -> HeteroscedasticResult:
  """(epsilon, delta)-DP of the heteroscedastic release via RDP.

  Args:
    delta: target delta in (0, 1).
    lipschitz: certified L of the mean (>= 0).
    lipschitz_log_sigma: certified L_s of log sigma (>= 0).
    diameter: domain diameter D (>= 0).
    sigma_min: lower clamp of sigma (> 0).
    sigma_max: upper clamp of sigma (>= sigma_min).
    latent_dim: latent dimension d (>= 1).
    k: latents per record (>= 1).
    orders: Rényi orders to optimise over; default `default_orders` restricted
      to the finite range.

  Returns:
    A `HeteroscedasticResult`.
  """
  delta = _validation.probability_open(delta, "delta")
  ratio = max_sigma_ratio(lipschitz_log_sigma, diameter, sigma_min, sigma_max)
  max_order = max_finite_order(lipschitz_log_sigma, diameter, sigma_min, sigma_max)
  if orders is None:
    orders = default_orders(max_order)
  else:
    orders = np.asarray([_validation.renyi_order(a, "orders[i]") for a in orders])
  rdp = np.array(
    [
      heteroscedastic_rdp(
        a, lipschitz, lipschitz_log_sigma, diameter, sigma_min, sigma_max, latent_dim, k
      )
      for a in orders
    ]
  )
  epsilon, order = rdp_to_epsilon(orders, rdp, delta)
  rdp_at_order = (
    float(rdp[np.argmin(np.abs(orders - order))]) if math.isfinite(epsilon) else math.inf
  )
  return HeteroscedasticResult(
    epsilon=epsilon, delta=delta, order=order, rdp_at_order=rdp_at_order, sigma_ratio=ratio
  )


# A bisection of RDP conversions (about 0.13 s) and a pure function of its arguments: a run asks
# for it when it checks the budget, plans and builds the model, and gets one answer.
@functools.lru_cache(maxsize=256)
def calibrate_lipschitz(
  epsilon: float,
  delta: float,
  lipschitz_log_sigma: float,
  diameter: float,
  sigma_min: float,
  sigma_max: float,
  latent_dim: int,
  k: int = 1,
  rtol: float = 1e-6,
) -> float:
  """The largest L of the mean (to a relative `rtol`, rounded down) whose heteroscedastic
  release meets `epsilon` at `delta`: `heteroscedastic_epsilon(delta, L, ...) <= epsilon`.

  The release's epsilon grows with L (the RDP of every admissible pair grows with its mean
  distance), so a bisection finds it; the search starts from the homoscedastic L at sigma_min,
  an upper bound (the variance term only adds). Calibrating L makes the heteroscedastic release
  honour a requested epsilon, as the Gaussian one does through sigma / (L D).

  Raises:
    ValueError: when even L = 0 exceeds `epsilon`: the variance term alone (sigma(x) may vary
      by up to `max_sigma_ratio` between neighbours, on every latent coordinate) costs more.
  """
  epsilon = _validation.positive(epsilon, "epsilon")

  def cost(lipschitz):
    return heteroscedastic_epsilon(
      delta, lipschitz, lipschitz_log_sigma, diameter, sigma_min, sigma_max, latent_dim, k
    ).epsilon

  floor = cost(0.0)
  if not floor <= epsilon:
    raise ValueError(
      f"the heteroscedastic release costs per-record epsilon {floor:.4g} at delta {delta:g} "
      f"even with a constant mean: sigma(x) may vary by a factor up to "
      f"{max_sigma_ratio(lipschitz_log_sigma, diameter, sigma_min, sigma_max):.4g} between "
      f"neighbours on each of {latent_dim * k} latent coordinates, above the requested {epsilon:g}"
    )
  high = gaussian.max_lipschitz(sigma_min, epsilon, delta, diameter, k=k)
  if cost(high) <= epsilon:  # only when the variance term is nil (sigma_min == sigma_max, ...)
    return float(high)
  low = 0.0
  while high - low > rtol * high:
    mid = 0.5 * (low + high)
    low, high = (mid, high) if cost(mid) <= epsilon else (low, mid)
  return float(low)
