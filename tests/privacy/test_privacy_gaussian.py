"""Analytic Gaussian mechanism: known values, an independent integral, properties."""

import math

import dp_accounting
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import integrate, stats

from lipdp import privacy


def test_known_values():
  assert round(privacy.calibrate_sigma(1.0, 1e-5, 1.0), 4) == 3.7306
  assert round(privacy.calibrate_sigma(10.0, 1e-5, 1.0), 4) == 0.4999
  assert round(privacy.classic_gaussian_sigma(1.0, 1e-5, 1.0), 2) == 4.84
  assert round(privacy.classic_gaussian_sigma(1.0, 1e-5, 1.0), 4) == 4.8448
  assert round(privacy.gaussian_epsilon(3.7306, 1.0, 1e-5), 4) == 1.0


def _delta_by_integration(sigma, sens, eps):
  """delta(eps) = int max(0, p(x) - e^eps q(x)) dx, P = N(0, s^2), Q = N(sens, s^2)."""
  # p > e^eps q  iff  x < sens/2 - eps s^2 / sens.
  cut = sens / 2.0 - eps * sigma**2 / sens

  def integrand(x):
    return stats.norm.pdf(x, 0.0, sigma) - math.exp(eps) * stats.norm.pdf(x, sens, sigma)

  value, _ = integrate.quad(integrand, -np.inf, cut, epsabs=1e-14, epsrel=1e-10, limit=200)
  return value


@pytest.mark.parametrize(
  "sigma,sens,eps", [(3.7306, 1.0, 1.0), (1.0, 1.0, 0.5), (0.5, 1.0, 3.0), (2.0, 3.0, 2.0)]
)
def test_delta_matches_numerical_integral(sigma, sens, eps):
  assert privacy.gaussian_delta(sigma, sens, eps) == pytest.approx(
    _delta_by_integration(sigma, sens, eps), rel=1e-7
  )


def test_k_latents_compose_exactly():
  sigma, sens, delta = 4.0, 1.0, 1e-6
  for k in (1, 2, 5, 16):
    assert privacy.gaussian_epsilon(sigma, sens, delta, k) == pytest.approx(
      privacy.gaussian_epsilon(sigma / math.sqrt(k), sens, delta), rel=1e-12
    )
  # Independent check: k-fold PLD composition of the single Gaussian (dp_accounting).
  pld = dp_accounting.pld.privacy_loss_distribution.from_gaussian_mechanism(
    standard_deviation=sigma, sensitivity=sens, value_discretization_interval=1e-4
  )
  composed = pld.self_compose(5).get_epsilon_for_delta(delta)
  exact = privacy.gaussian_epsilon(sigma, sens, delta, 5)
  assert exact <= composed <= exact * (1 + 1e-3)


def test_scale_invariance():
  for c in (0.01, 1.0, 37.0):
    assert privacy.gaussian_epsilon(2.0 * c, 0.7 * c, 1e-5) == pytest.approx(
      privacy.gaussian_epsilon(2.0, 0.7, 1e-5), rel=1e-10
    )


def test_max_lipschitz():
  sigma, eps, delta, diameter = 2.0, 1.0, 1e-5, 2.0 * math.sqrt(2.0)
  lip = privacy.max_lipschitz(sigma, eps, delta, diameter)
  assert privacy.gaussian_epsilon(sigma, lip * diameter, delta) <= eps
  assert privacy.gaussian_epsilon(sigma, lip * diameter * (1 + 1e-6), delta) > eps
  assert lip == pytest.approx(sigma / (3.730631634815937 * diameter), rel=1e-9)


def test_zero_sensitivity_is_free():
  assert privacy.gaussian_epsilon(1.0, 0.0, 1e-5) == 0.0
  assert privacy.gaussian_delta(1.0, 0.0, 0.1) == 0.0


def test_analytic_beats_classic():
  for eps in (0.1, 0.5, 0.9):
    assert privacy.calibrate_sigma(eps, 1e-5, 1.0) < privacy.classic_gaussian_sigma(eps, 1e-5, 1.0)


_sigma = st.floats(min_value=0.05, max_value=50.0)
_delta = st.floats(min_value=1e-12, max_value=1e-2)
_factor = st.floats(min_value=1.01, max_value=10.0)


def _strictly_more(larger, smaller):
  return larger > smaller or (larger == 0.0 and smaller == 0.0)


@settings(max_examples=60, deadline=None)
@given(sigma=_sigma, factor=_factor, delta=_delta)
def test_epsilon_decreases_with_sigma(sigma, factor, delta):
  assert _strictly_more(
    privacy.gaussian_epsilon(sigma, 1.0, delta),
    privacy.gaussian_epsilon(sigma * factor, 1.0, delta),
  )


@settings(max_examples=60, deadline=None)
@given(
  sigma=_sigma,
  lip=st.floats(min_value=0.01, max_value=10.0),
  factor=_factor,
  diameter=st.floats(min_value=0.1, max_value=10.0),
  delta=_delta,
)
def test_epsilon_increases_with_lipschitz_and_diameter(sigma, lip, factor, diameter, delta):
  base = privacy.gaussian_epsilon(sigma, privacy.sensitivity(lip, diameter), delta)
  more_l = privacy.gaussian_epsilon(sigma, privacy.sensitivity(lip * factor, diameter), delta)
  more_d = privacy.gaussian_epsilon(sigma, privacy.sensitivity(lip, diameter * factor), delta)
  assert _strictly_more(more_l, base)
  assert _strictly_more(more_d, base)


@settings(max_examples=60, deadline=None)
@given(sigma=_sigma, k=st.integers(min_value=1, max_value=50), delta=_delta)
def test_epsilon_increases_with_k(sigma, k, delta):
  assert _strictly_more(
    privacy.gaussian_epsilon(sigma, 1.0, delta, k + 1),
    privacy.gaussian_epsilon(sigma, 1.0, delta, k),
  )


@settings(max_examples=80, deadline=None)
@given(
  eps=st.floats(min_value=0.01, max_value=30.0),
  delta=_delta,
  sens=st.floats(min_value=1e-3, max_value=1e3),
  k=st.integers(min_value=1, max_value=20),
)
def test_calibration_round_trip(eps, delta, sens, k):
  sigma = privacy.calibrate_sigma(eps, delta, sens, k)
  achieved = privacy.gaussian_epsilon(sigma, sens, delta, k)
  assert achieved <= eps * (1 + 1e-9)
  assert achieved == pytest.approx(eps, rel=1e-7)
  # The returned float meets the target exactly by the closed form.
  assert privacy.gaussian_delta(sigma, sens, eps, k) <= delta
