"""Amplification by shuffling (Feldman, McMillan, Talwar 2021)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from lipdp import privacy


def _theorem_3_1(eps0, n, delta):
  """FMT Theorem 3.1 as stated:
  eps = log(1 + (e^eps0 - 1)/(e^eps0 + 1) * (8 sqrt(e^eps0 log(4/delta)) / sqrt(n) + 8 e^eps0 / n)).
  """
  e = math.exp(eps0)
  return math.log(1 + (e - 1) / (e + 1) *
                  (8 * math.sqrt(e * math.log(4 / delta)) / math.sqrt(n) + 8 * e / n))


def _reference_form(eps0, n, delta):
  """The authors' reference implementation (conservative form):
  a = 8 sqrt(e^eps0 log(4/delta) / n), b = 8 e^eps0 / n, e1 = log(1 + a + b),
  eps = log(1 + (1 - e^-eps0) / (1 + e^(-eps0 - e1)) * (a + b)).
  """
  a = 8 * math.sqrt(math.exp(eps0) * math.log(4 / delta) / n)
  b = 8 * math.exp(eps0) / n
  e1 = math.log(1 + a + b)
  return math.log(1 + (1 - math.exp(-eps0)) / (1 + math.exp(-eps0 - e1)) * (a + b))


# Hand computations (values to 6 decimals from the formulas above):
#   eps0 = 1, n = 1e4, delta = 1e-6: log(4/delta) = 15.201805,
#     a = 8 sqrt(e * 15.201805 / 1e4) = 0.514262, b = 8 e / 1e4 = 0.002175,
#     a + b = 0.516437; Theorem 3.1: log(1 + 0.462117 * 0.516437) = 0.214026;
#     reference form: e1 = log(1.516437) = 0.416364, factor
#     0.632121 / (1 + e^-1.416364) = 0.632121 / 1.242595 = 0.508710,
#     log(1 + 0.508710 * 0.516437) = 0.233266.
#   eps0 = 2, n = 1e5, delta = 1e-8: Theorem 3.1 0.209885; reference form 0.215319.
#   eps0 = 4, n = 1e5, delta = 1e-6: Theorem 3.1 0.534634; reference form 0.537804
#     (the number printed in the authors' README).
@pytest.mark.parametrize("eps0,n,delta,theorem,reference", [
    (1.0, 10**4, 1e-6, 0.214026, 0.233266),
    (2.0, 10**5, 1e-8, 0.209885, 0.215319),
    (4.0, 10**5, 1e-6, 0.534634, 0.537804),
])
def test_closed_form_against_hand_computation(eps0, n, delta, theorem, reference):
  assert _theorem_3_1(eps0, n, delta) == pytest.approx(theorem, abs=1e-6)
  assert _reference_form(eps0, n, delta) == pytest.approx(reference, abs=1e-6)
  got = privacy.clones_closed_form(eps0, n, delta)
  assert got == pytest.approx(_reference_form(eps0, n, delta), rel=1e-13)
  # Conservative with respect to the theorem's statement.
  assert got >= _theorem_3_1(eps0, n, delta)


def test_authors_readme_numbers():
  # apple/ml-shuffling-amplification README: n = 1e5, eps0 = 4, delta = 1e-6: the
  # numerical eps lies in [0.1675385583317841, 0.172790550755978], closed form 0.5378040242374512.
  assert privacy.clones_closed_form(4.0, 10**5, 1e-6) == pytest.approx(0.5378040242374512,
                                                                      rel=1e-12)
  eps = privacy.clones_numerical_epsilon(4.0, 10**5, 1e-6)
  assert 0.1675385583317841 <= eps <= 0.172790550755978


def test_validity_condition():
  n, delta = 10**4, 1e-6
  limit = math.log(n / (16 * math.log(4 / delta)))
  assert privacy.clones_validity_limit(n, delta) == pytest.approx(limit, rel=1e-15)
  assert privacy.clones_closed_form(limit * 1.001, n, delta) is None
  assert privacy.clones_closed_form(limit * 0.999, n, delta) is not None
  # Outside the range no amplification is claimed.
  assert privacy.shuffle_epsilon(limit * 1.001, n, delta, method="closed_form") == limit * 1.001


def _brute_force_delta(eps0, n, eps):
  """Hockey-stick divergence of FMT's (P, Q) by full enumeration (no monotonicity)."""
  alpha = math.exp(eps0) / (math.exp(eps0) + 1)
  total = 0.0
  for c in range(n):
    w = stats.binom.pmf(c, n - 1, math.exp(-eps0))
    b = stats.binom.pmf(np.arange(c + 1), c, 0.5)
    b_shift = np.concatenate([[0.0], b])  # pmf of A + 1 on 0..c+1
    b_pad = np.concatenate([b, [0.0]])  # pmf of A on 0..c+1
    p = alpha * b_pad + (1 - alpha) * b_shift  # first coordinate A + Delta
    q = (1 - alpha) * b_pad + alpha * b_shift  # first coordinate A + 1 - Delta
    total += w * np.sum(np.maximum(p - math.exp(eps) * q, 0.0))
    total_sym = np.sum(np.maximum(q - math.exp(eps) * p, 0.0))
    assert abs(np.sum(np.maximum(p - math.exp(eps) * q, 0.0)) - total_sym) < 1e-14
  return total


@pytest.mark.parametrize("eps0,n", [(0.5, 5), (1.0, 30), (2.0, 60), (3.0, 12)])
@pytest.mark.parametrize("frac", [0.0, 0.1, 0.5, 0.9])
def test_numerical_delta_against_enumeration(eps0, n, frac):
  eps = frac * eps0
  got = privacy.clones_numerical_delta(eps0, n, eps)
  expected = _brute_force_delta(eps0, n, eps)
  assert expected <= got <= expected + 1e-13


def test_single_record_is_randomized_response():
  # n = 1: no one to hide among; the pair is randomized response with eps0.
  eps0, delta = 1.5, 1e-3
  alpha = math.exp(eps0) / (math.exp(eps0) + 1)
  expected = math.log((alpha - delta) / (1 - alpha))
  assert privacy.clones_numerical_epsilon(eps0, 1, delta) == pytest.approx(expected, abs=1e-8)


@settings(max_examples=25, deadline=None)
@given(eps0=st.floats(min_value=0.05, max_value=8.0), log_n=st.floats(min_value=0.0, max_value=6.0),
       delta=st.floats(min_value=1e-10, max_value=1e-2))
def test_never_above_eps0_and_numerical_is_tighter(eps0, log_n, delta):
  n = int(10**log_n)
  numerical = privacy.shuffle_epsilon(eps0, n, delta, method="numerical")
  closed = privacy.shuffle_epsilon(eps0, n, delta, method="closed_form")
  assert 0.0 <= numerical <= eps0
  assert 0.0 <= closed <= eps0
  assert numerical <= closed + 1e-9
  assert privacy.clones_numerical_delta(eps0, n, numerical) <= delta


def test_approximate_dp_term():
  eps0, delta0, n, delta = 1.0, 1e-9, 10**4, 1e-6
  eps, total = privacy.clones_approximate_dp(eps0, delta0, n, delta)
  assert eps == privacy.clones_closed_form(eps0, n, delta)
  # delta + (e^eps + 1)(1 + e^-eps0 / 2) n delta0, by hand.
  assert total == pytest.approx(delta + (math.exp(eps) + 1) * (1 + math.exp(-1.0) / 2) * 1e-5,
                                rel=1e-14)


def test_shuffled_gaussian_release():
  sigma, sens, n, delta = 2.0, 1.0, 60000, 1e-5
  result = privacy.shuffled_gaussian_epsilon(sigma, sens, n, delta)
  assert result.per_record_epsilon == privacy.gaussian_epsilon(sigma, sens, delta)
  assert result.amplified
  assert result.central_epsilon < result.per_record_epsilon / 3
  # The statement is reproducible from its own parts.
  assert result.eps0 == privacy.gaussian_epsilon(sigma, sens, result.delta0)
  eps, total = privacy.clones_approximate_dp(result.eps0, result.delta0, n, result.delta_shuffle)
  assert eps == result.central_epsilon
  assert total <= delta
  # Few records: no amplification is claimed, the per-record epsilon is reported.
  small = privacy.shuffled_gaussian_epsilon(sigma, sens, 50, delta)
  assert not small.amplified
  assert small.central_epsilon == small.per_record_epsilon


@settings(max_examples=15, deadline=None)
@given(sigma=st.floats(min_value=0.3, max_value=20.0), log_n=st.floats(min_value=1.0, max_value=6.0))
def test_shuffled_central_never_above_per_record(sigma, log_n):
  result = privacy.shuffled_gaussian_epsilon(sigma, 1.0, int(10**log_n), 1e-6)
  assert result.central_epsilon <= result.per_record_epsilon


def test_calibrate_sigma_for_central_target():
  eps, delta, sens, n = 1.0, 1e-5, 1.0, 60000
  sigma = privacy.calibrate_sigma_shuffled(eps, delta, sens, n, rtol=1e-4)
  assert privacy.shuffled_gaussian_epsilon(sigma, sens, n, delta).central_epsilon <= eps
  assert privacy.shuffled_gaussian_epsilon(sigma * 0.99, sens, n, delta).central_epsilon > eps
  assert sigma < privacy.calibrate_sigma(eps, delta, sens) / 2


def test_compose_dpsgd_and_shuffled_release():
  result = privacy.compose_dpsgd_and_shuffled_release(
      1.0, 0.02, 100, sigma=2.0, sensitivity=1.0, n=60000, delta=1e-5,
      value_discretization_interval=1e-3)
  plain = privacy.compose_dpsgd_and_release(1.0, 0.02, 100, 2.0, 1.0, 1e-5,
                                            value_discretization_interval=1e-3)
  assert result.total_epsilon < plain.total_epsilon
  assert result.total_epsilon > result.dpsgd_epsilon
  assert result.shuffle_delta == 0.5e-5
