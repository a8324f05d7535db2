"""Empirical audit: below the claim when the claim is right, above it when it is not."""

import math

import numpy as np
import pytest

from lipdp import privacy

DELTA = 1e-5


def _mean_fn(x):
  return np.asarray(x, dtype=np.float64)


def test_clopper_pearson_edges():
  n, level = 1000, 0.975
  assert privacy.clopper_pearson_upper(0, n, level) == pytest.approx(
    1 - (1 - level) ** (1 / n), rel=1e-10
  )
  assert privacy.clopper_pearson_lower(n, n, level) == pytest.approx(
    (1 - level) ** (1 / n), rel=1e-10
  )
  assert privacy.clopper_pearson_lower(0, n, level) == 0.0
  assert (
    privacy.clopper_pearson_lower(300, n, level)
    < 0.3
    < privacy.clopper_pearson_upper(300, n, level)
  )


def test_audit_has_power_and_stays_below_claim():
  claimed = 1.0
  sigma = privacy.calibrate_sigma(claimed, DELTA, 1.0)  # 3.7306 for sensitivity 1
  mechanism = privacy.gaussian_mechanism(_mean_fn, sigma)
  result = privacy.audit_mechanism(
    mechanism,
    np.array([0.0]),
    np.array([1.0]),
    DELTA,
    claimed_epsilon=claimed,
    num_samples=1_000_000,
    seed=0,
  )
  assert result.epsilon_lower_bound < claimed
  assert not result.violates_claim
  assert result.epsilon_lower_bound >= claimed / 2, result


def test_audit_flags_noise_calibrated_for_half_the_sensitivity():
  claimed = 1.0
  # The bug: sigma calibrated for Delta / 2 while the means really differ by Delta.
  sigma = privacy.calibrate_sigma(claimed, DELTA, 0.5)
  mechanism = privacy.gaussian_mechanism(_mean_fn, sigma)
  result = privacy.audit_mechanism(
    mechanism,
    np.array([0.0]),
    np.array([1.0]),
    DELTA,
    claimed_epsilon=claimed,
    num_samples=1_000_000,
    seed=1,
  )
  assert result.epsilon_lower_bound > claimed
  assert result.violates_claim


def test_audit_multidimensional_k_latents():
  # d = 3, k = 2 latents per record, worst-case pair along a diagonal.
  sens, k = 1.0, 2
  sigma = privacy.calibrate_sigma(1.0, DELTA, sens, k)
  x0 = np.zeros(3)
  x1 = np.ones(3) / math.sqrt(3.0) * sens
  mechanism = privacy.gaussian_mechanism(_mean_fn, sigma, k)
  claimed = privacy.gaussian_epsilon(sigma, sens, DELTA, k)
  result = privacy.audit_mechanism(
    mechanism, x0, x1, DELTA, claimed_epsilon=claimed, num_samples=400_000, seed=2
  )
  assert 0.3 < result.epsilon_lower_bound < claimed


def test_audit_of_a_constant_mechanism_finds_nothing():
  mechanism = privacy.gaussian_mechanism(lambda x: np.zeros(2), 1.0)
  result = privacy.audit_mechanism(mechanism, 0.0, 1.0, DELTA, num_samples=200_000, seed=3)
  assert result.epsilon_lower_bound < 0.1


def test_custom_statistic_and_bad_arguments():
  mechanism = privacy.gaussian_mechanism(_mean_fn, 2.0)
  result = privacy.audit_mechanism(
    mechanism,
    np.array([0.0]),
    np.array([1.0]),
    DELTA,
    num_samples=100_000,
    seed=4,
    statistic=lambda out: out.reshape(len(out), -1)[:, 0],
  )
  assert result.num_samples == 100_000 and result.confidence == 0.95
  with pytest.raises(ValueError, match="delta"):
    privacy.audit_mechanism(mechanism, 0.0, 1.0, 1.5)
  with pytest.raises(ValueError, match="num_samples"):
    privacy.audit_mechanism(mechanism, 0.0, 1.0, DELTA, num_samples=10)
  with pytest.raises(ValueError, match="confidence"):
    privacy.audit_mechanism(mechanism, 0.0, 1.0, DELTA, confidence=1.0)
