"""The capacity bound on what a per-record release carries about its record."""

import math

import numpy as np
import pytest

from lipdp import privacy
from lipdp.privacy import information


def _binary_input_information(half_distance: float, sigma: float) -> float:
  """I(X; Z) in nats for X = +-a equally likely and Z = X + sigma xi in one dimension, by
  Gauss-Hermite quadrature: log 2 - E[log(1 + exp(-2 a Z / sigma^2))], Z ~ N(a, sigma^2)."""
  nodes, weights = np.polynomial.hermite_e.hermegauss(200)
  z = half_distance + sigma * nodes
  integrand = np.logaddexp(0.0, -2.0 * half_distance * z / sigma**2)
  return math.log(2.0) - float(np.sum(weights * integrand) / math.sqrt(2.0 * math.pi))


@pytest.mark.parametrize("ratio", [0.05, 0.3, 1.0, 3.0])
def test_two_records_at_the_diameter_stay_under_the_bound(ratio):
  # Two records whose means are Delta apart, each with probability 1/2: the exact mutual
  # information of the release is below the bound for d = 1, and below the dimension-free one.
  sensitivity, sigma = ratio, 1.0
  exact = _binary_input_information(sensitivity / 2.0, sigma)
  assert 0.0 < exact <= privacy.release_information_bound(sigma, sensitivity, latent_dim=1)
  assert exact <= privacy.release_information_bound(sigma, sensitivity)


def test_the_bound_is_tight_at_small_signal_to_noise():
  # At low signal-to-noise the two-point input attains the d = 1 capacity to first order
  # (Delta^2 / (8 sigma^2)): a bound off by a constant factor would fail here.
  sensitivity, sigma = 0.05, 1.0
  exact = _binary_input_information(sensitivity / 2.0, sigma)
  bound = privacy.release_information_bound(sigma, sensitivity, latent_dim=1)
  assert exact / bound > 0.999
  assert bound == pytest.approx(sensitivity**2 / (8.0 * sigma**2), rel=1e-3)


def test_three_records_on_a_triangle_monte_carlo():
  # d = 2: three means at the vertices of an equilateral triangle of side Delta, whose
  # circumradius is Jung's radius; Monte Carlo estimate of I(X; Z) against the bound.
  sensitivity, sigma, n = 2.0, 1.0, 200_000
  radius = sensitivity / math.sqrt(3.0)
  assert radius**2 == pytest.approx(information.jung_radius_squared(sensitivity, 2))
  angles = 2.0 * math.pi * np.arange(3) / 3.0
  means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
  rng = np.random.default_rng(0)
  which = rng.integers(0, 3, size=n)
  z = means[which] + sigma * rng.standard_normal((n, 2))
  log_lik = -np.sum((z[:, None, :] - means[None]) ** 2, axis=-1) / (2.0 * sigma**2)
  pointwise = log_lik[np.arange(n), which] - (np.logaddexp.reduce(log_lik, axis=1) - math.log(3))
  estimate, error = pointwise.mean(), 4.0 * pointwise.std() / math.sqrt(n)
  bound = privacy.release_information_bound(sigma, sensitivity, latent_dim=2)
  assert estimate - error <= bound
  assert estimate > 0.5 * bound  # the bound is of the right size, not merely true


def test_k_latents_are_one_latent_with_less_noise():
  sigma, sensitivity = 3.0, 1.7
  for k in (1, 2, 4, 9):
    for dim in (None, 1, 16):
      assert privacy.release_information_bound(
        sigma, sensitivity, k=k, latent_dim=dim
      ) == pytest.approx(
        privacy.release_information_bound(sigma / math.sqrt(k), sensitivity, latent_dim=dim)
      )


def test_dimension_free_bound_is_the_limit_of_the_dimensional_ones():
  sigma, sensitivity = 1.0, 1.5
  free = privacy.release_information_bound(sigma, sensitivity)
  assert free == pytest.approx(sensitivity**2 / (4.0 * sigma**2))
  previous = 0.0
  for dim in (1, 2, 8, 64, 4096, 10**7):
    bounded = privacy.release_information_bound(sigma, sensitivity, latent_dim=dim)
    assert previous < bounded < free
    previous = bounded
  assert previous == pytest.approx(free, rel=1e-5)


def test_calibrated_release_depends_on_the_per_record_privacy_alone():
  # sigma calibrated to (epsilon, delta) for any Delta and k gives the same bound: mu^2 / 4.
  for epsilon in (1.0, 5.0):
    bounds = [
      privacy.release_information_bound(
        privacy.calibrate_sigma(epsilon, 1e-5, sensitivity, k=k), sensitivity, k=k
      )
      for sensitivity in (0.1, 21.0)
      for k in (1, 4)
    ]
    assert max(bounds) == pytest.approx(min(bounds), rel=1e-6)
  # The numbers docs/privacy.md quotes: under a third of a nat at per-record epsilon 5, and
  # about 2 nats (a digit's label holds log 10 = 2.3) only near epsilon 16.
  assert privacy.release_information_bound(privacy.calibrate_sigma(5.0, 1e-5, 1.0), 1.0) < 0.32
  assert 2.0 < privacy.release_information_bound(privacy.calibrate_sigma(16.0, 1e-5, 1.0), 1.0)


def test_fano():
  assert privacy.fano_error_lower_bound(0.0, 2) == 0.0  # log 2 / log 2: no bound for two classes
  assert privacy.fano_error_lower_bound(0.0, 10) == pytest.approx(1.0 - math.log(2) / math.log(10))
  assert privacy.fano_error_lower_bound(0.31, 10) == pytest.approx(0.5643, abs=1e-4)
  assert privacy.fano_error_lower_bound(100.0, 10) == 0.0
  with pytest.raises(ValueError, match="at least 2"):
    privacy.fano_error_lower_bound(0.1, 1)
  with pytest.raises(ValueError):
    privacy.fano_error_lower_bound(-0.1, 10)


def test_invalid_arguments():
  with pytest.raises(ValueError):
    privacy.release_information_bound(0.0, 1.0)
  with pytest.raises(ValueError):
    privacy.release_information_bound(1.0, -1.0)
  with pytest.raises(ValueError):
    privacy.release_information_bound(1.0, 1.0, k=0)
  with pytest.raises(ValueError):
    privacy.release_information_bound(1.0, 1.0, latent_dim=0)


def _report(release, **overrides):
  settings = dict(
    lipschitz=0.5,
    domain="a test domain",
    diameter=4.0,
    delta=1e-5,
    num_records=1000,
    scope="public",
    certificate={"layer_bounds": [0.5]},
  )
  settings.update(overrides)
  return privacy.make_report(release, **settings)


def test_the_report_states_the_bound():
  report = _report(privacy.GaussianRelease(3.0, k=2))
  expected = 2 * (0.5 * 4.0) ** 2 / (4.0 * 3.0**2)
  assert report.release_information_nats == pytest.approx(expected)
  assert f"at most {expected:.3g} nats" in report.summary()
  hetero = privacy.HeteroscedasticRelease(
    sigma_min=4.0, sigma_max=8.0, lipschitz_log_sigma=0.05, latent_dim=16
  )
  hetero_report = _report(
    hetero, certificate={"layer_bounds": [0.5], "log_sigma_lipschitz": 0.05}, shuffled=True
  )
  assert hetero_report.release_information_nats is None  # not stated: sigma(x) varies
  assert "nats" not in hetero_report.summary()


def test_the_bound_from_a_per_record_epsilon_matches_the_report():
  for k in (1, 3):
    report = _report(privacy.GaussianRelease(2.5, k=k))
    from_epsilon = information.per_record_information_bound(report.per_record_epsilon, 1e-5)
    assert from_epsilon == pytest.approx(report.release_information_nats, rel=1e-6)


def test_identical_means_say_nothing_about_which_record():
  estimate, error = information.uniform_mixture_information(np.ones((50, 3)), 0.7)
  assert estimate == pytest.approx(0.0, abs=1e-9) and error == pytest.approx(0.0, abs=1e-9)


def test_far_apart_means_say_which_record():
  means = 100.0 * np.eye(20)  # 141 noise standard deviations apart
  estimate, _ = information.uniform_mixture_information(means, 1.0, chunk=7)  # chunks too
  assert estimate == pytest.approx(math.log(20), abs=1e-6)


def test_two_means_match_the_exact_two_point_information():
  for distance in (0.5, 2.0):
    means = np.array([[0.0, 0.0], [distance, 0.0]])
    exact = _binary_input_information(distance / 2.0, 1.0)
    estimate, error = information.uniform_mixture_information(means, 1.0, draws=40_000)
    assert abs(estimate - exact) < 4.0 * error + 1e-3


def test_k_latents_and_the_bound_for_means_inside_the_sensitivity():
  rng = np.random.default_rng(3)
  means = rng.standard_normal((300, 4))
  means /= np.maximum(1.0, np.linalg.norm(means, axis=1, keepdims=True))  # diameter <= 2
  one, _ = information.uniform_mixture_information(means, 2.0, k=4, seed=1)
  same, _ = information.uniform_mixture_information(means, 1.0, k=1, seed=1)
  assert one == pytest.approx(same)  # k = 4 at sigma 2 is one latent at sigma 1
  estimate, error = information.uniform_mixture_information(means, 0.5, draws=8)
  assert estimate - 4 * error <= privacy.release_information_bound(0.5, 2.0, latent_dim=4)
  assert estimate < math.log(300)
  with pytest.raises(ValueError, match="shape"):
    information.uniform_mixture_information(np.ones(5), 1.0)
  with pytest.raises(ValueError, match="finite"):
    information.uniform_mixture_information(np.full((2, 2), np.nan), 1.0)
