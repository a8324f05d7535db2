"""Heteroscedastic RDP: the closed form, its maximisation, and its reductions."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import integrate, stats

from lipdp import privacy


def _renyi_1d_by_integration(alpha, mu_a, s_a, mu_b, s_b):
  """D_alpha(N(mu_a, s_a^2) || N(mu_b, s_b^2)) = log(int p^alpha q^(1-alpha)) / (alpha-1)."""

  def integrand(x):
    return math.exp(
      alpha * stats.norm.logpdf(x, mu_a, s_a) + (1 - alpha) * stats.norm.logpdf(x, mu_b, s_b)
    )

  scale = 60 * max(s_a, s_b)
  value, _ = integrate.quad(
    integrand, -scale + mu_a, scale + mu_a, epsabs=0, epsrel=1e-11, limit=500, points=[mu_a, mu_b]
  )
  return math.log(value) / (alpha - 1)


@pytest.mark.parametrize(
  "alpha,dmu,s_a,s_b,dim",
  [
    (2.0, 1.0, 1.0, 1.0, 1),
    (3.5, 0.7, 1.0, 1.2, 1),
    (2.0, 0.7, 1.2, 1.0, 1),
    (1.5, 2.0, 1.0, 1.3, 1),
    (4.0, 0.3, 1.0, 0.9, 3),
    (1.2, 1.0, 2.0, 1.5, 5),
  ],
)
def test_closed_form_matches_integral(alpha, dmu, s_a, s_b, dim):
  # Isotropic d-dim pair with the mean shift along e_1 = product of independent
  # coordinates, whose Rényi divergences add up.
  expected = _renyi_1d_by_integration(alpha, 0.0, s_a, dmu, s_b) + (
    dim - 1
  ) * _renyi_1d_by_integration(alpha, 0.0, s_a, 0.0, s_b)
  got = privacy.isotropic_gaussian_renyi_divergence(alpha, dmu, s_a, s_b, dim)
  assert got == pytest.approx(expected, rel=1e-7)


def test_infinite_when_s_alpha_not_positive():
  # (1 - alpha) s_a^2 + alpha s_b^2 <= 0 with alpha = 3, s_a = 2, s_b = 1: -8 + 3 < 0.
  assert privacy.isotropic_gaussian_renyi_divergence(3.0, 1.0, 2.0, 1.0, 1) == math.inf


@settings(max_examples=60, deadline=None)
@given(
  alpha=st.floats(min_value=1.01, max_value=200.0),
  lip=st.floats(min_value=0.0, max_value=5.0),
  diameter=st.floats(min_value=0.0, max_value=5.0),
  sigma=st.floats(min_value=0.1, max_value=10.0),
  dim=st.integers(min_value=1, max_value=64),
  k=st.integers(min_value=1, max_value=8),
  ls=st.floats(min_value=0.0, max_value=3.0),
)
def test_reduces_to_homoscedastic(alpha, lip, diameter, sigma, dim, k, ls):
  homo = privacy.gaussian_rdp(alpha, sigma, lip * diameter, k)
  # L_s = 0: log sigma(x) is constant, even though the clamp range [sigma, 2 sigma] is wide.
  assert privacy.heteroscedastic_rdp(
    alpha, lip, 0.0, diameter, sigma, 2 * sigma, dim, k
  ) == pytest.approx(homo, rel=1e-12, abs=1e-300)
  # sigma_min = sigma_max: any L_s.
  assert privacy.heteroscedastic_rdp(
    alpha, lip, ls, diameter, sigma, sigma, dim, k
  ) == pytest.approx(homo, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("alpha", [1.05, 1.5, 2.0, 3.0, 8.0])
@pytest.mark.parametrize(
  "ls,smin,smax,dim",
  [(0.1, 0.5, 2.0, 1), (0.3, 1.0, 1.5, 4), (0.05, 0.2, 5.0, 16), (1.0, 0.5, 0.6, 2)],
)
def test_maximisation_against_brute_force_grid(alpha, ls, smin, smax, dim):
  lip, diameter = 1.3, 1.0
  bound = privacy.heteroscedastic_rdp(alpha, lip, ls, diameter, smin, smax, dim)
  # Brute force over the admissible set, parametrised by s_b and the log-ratio
  # t = log(s_a / s_b) in [-B, B] (both orders), clipped to [sigma_min, sigma_max].
  log_range = min(ls * diameter, math.log(smax / smin))
  best = -math.inf
  for s_b in np.geomspace(smin, smax, 81):
    for t in np.linspace(-log_range, log_range, 81):
      s_a = s_b * math.exp(t)
      if not smin * (1 - 1e-12) <= s_a <= smax * (1 + 1e-12):
        continue
      for dmu in np.linspace(0.0, lip * diameter, 9):
        best = max(best, privacy.isotropic_gaussian_renyi_divergence(alpha, dmu, s_a, s_b, dim))
  if math.isinf(bound):
    assert math.isinf(best)  # the grid reaches the infinite corner too
  else:
    # No admissible grid point exceeds the closed form, and the closed-form maximiser
    # (s_b = sigma_min, t = +B) is one of the grid points.
    assert best <= bound * (1 + 1e-12)
    assert best == pytest.approx(bound, rel=1e-9)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 6.0])
def test_worst_pair_attains_the_bound(alpha):
  lip, ls, diameter, smin, smax, dim = 1.0, 0.2, 1.0, 0.5, 3.0, 8
  pair = privacy.heteroscedastic_worst_case(lip, ls, diameter, smin, smax)
  assert pair.sigma_b == smin
  assert pair.sigma_a == pytest.approx(smin * math.exp(ls * diameter), rel=1e-15)
  assert privacy.isotropic_gaussian_renyi_divergence(
    alpha, pair.mean_distance, pair.sigma_a, pair.sigma_b, dim
  ) == privacy.heteroscedastic_rdp(alpha, lip, ls, diameter, smin, smax, dim)
  # The mirrored pair (larger variance second) gives less.
  assert privacy.isotropic_gaussian_renyi_divergence(
    alpha, pair.mean_distance, pair.sigma_b, pair.sigma_a, dim
  ) <= privacy.heteroscedastic_rdp(alpha, lip, ls, diameter, smin, smax, dim)


@settings(max_examples=40, deadline=None)
@given(
  ls=st.floats(min_value=0.0, max_value=0.5),
  extra=st.floats(min_value=0.001, max_value=0.5),
  alpha=st.floats(min_value=1.01, max_value=20.0),
)
def test_monotone_in_lipschitz_log_sigma(ls, extra, alpha):
  args = dict(lipschitz=1.0, diameter=1.0, sigma_min=1.0, sigma_max=10.0, latent_dim=8)
  low = privacy.heteroscedastic_rdp(alpha, lipschitz_log_sigma=ls, **args)
  high = privacy.heteroscedastic_rdp(alpha, lipschitz_log_sigma=ls + extra, **args)
  assert high >= low


def test_epsilon_monotone_in_lipschitz_log_sigma_and_reduces():
  args = dict(delta=1e-5, lipschitz=1.0, diameter=1.0, sigma_min=4.0, sigma_max=8.0, latent_dim=8)
  eps = [
    privacy.heteroscedastic_epsilon(lipschitz_log_sigma=ls, **args).epsilon
    for ls in (0.0, 0.01, 0.05, 0.1, 0.3)
  ]
  assert all(a < b for a, b in zip(eps, eps[1:]))
  # L_s = 0: the RDP conversion of the homoscedastic Gaussian, on the same orders.
  orders = privacy.heteroscedastic.default_orders()
  homo = privacy.rdp_to_epsilon(orders, [privacy.gaussian_rdp(a, 4.0, 1.0) for a in orders], 1e-5)[
    0
  ]
  assert eps[0] == pytest.approx(homo, rel=1e-12)
  # RDP conversion is valid but looser than the exact analytic Gaussian.
  assert eps[0] >= privacy.gaussian_epsilon(4.0, 1.0, 1e-5)


def test_k_adds_rdp_and_orders_beyond_the_limit_are_infinite():
  args = (1.0, 0.3, 1.0, 1.0, 5.0, 4)
  assert privacy.heteroscedastic_rdp(2.0, *args, k=3) == pytest.approx(
    3 * privacy.heteroscedastic_rdp(2.0, *args), rel=1e-15
  )
  limit = privacy.max_finite_order(0.3, 1.0, 1.0, 5.0)
  ratio = math.exp(0.3)
  assert limit == pytest.approx(ratio**2 / (ratio**2 - 1), rel=1e-12)
  assert privacy.heteroscedastic_rdp(limit * 1.0001, *args) == math.inf
  assert math.isfinite(privacy.heteroscedastic_rdp(limit * 0.999, *args))


@pytest.mark.parametrize("epsilon,log_sigma_lipschitz", [(1.0, 0.002), (4.0, 0.01), (10.0, 0.0)])
def test_the_calibrated_mean_target_is_the_largest_that_meets_the_epsilon(
  epsilon, log_sigma_lipschitz
):
  args = (1e-5, log_sigma_lipschitz, 5.83, 0.5, 2.0, 32)
  target = privacy.heteroscedastic_lipschitz(epsilon, *args)

  def cost(lipschitz):
    delta, rest = args[0], args[1:]
    return privacy.heteroscedastic_epsilon(delta, lipschitz, *rest).epsilon

  assert 0.0 < target and cost(target) <= epsilon < cost(target * (1 + 1e-5))
  # Below the homoscedastic target at sigma_min: the variance term and RDP only add.
  assert target <= privacy.max_lipschitz(0.5, epsilon, 1e-5, 5.83)


def test_a_variance_term_above_the_epsilon_cannot_be_calibrated():
  with pytest.raises(ValueError, match=r"costs per-record epsilon 23.57 .* even with a constant"):
    privacy.heteroscedastic_lipschitz(1.0, 1e-5, 0.05, 5.83, 0.5, 2.0, 32)
