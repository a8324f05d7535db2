"""The lattice release's accounting (lipdp.privacy.lattice): the post-processing argument,
the grid and scale it chooses, and how reports carry it."""

import fractions
import math

import numpy as np
import pytest
from scipy import integrate

from lipdp import privacy
from lipdp.privacy import lattice as lattice_lib

F = fractions.Fraction


def _theta(scale, x, span=60):
  """sum_v g_s(v - x) over the integers, by direct summation."""
  v = np.arange(math.floor(x) - span, math.floor(x) + span + 1)
  return np.sum(np.exp(-((v - x) ** 2) / (2 * scale**2))) / (scale * math.sqrt(2 * math.pi))


@pytest.mark.parametrize("s", [0.6, 1.0])
def test_eta_bounds_the_distance_of_theta_from_one(s):
  eta = lattice_lib.smoothing_eta(s)
  worst = max(abs(_theta(s, x) - 1.0) for x in np.linspace(0, 1, 41))
  assert worst <= eta + 1e-15  # 1e-15: the float64 sum's rounding
  assert worst > 0.5 * eta  # tight: the bound is not vacuous
  assert lattice_lib.smoothing_eta(lattice_lib.SMOOTHING) < 2e-77


def test_discrete_gaussian_is_post_processing_of_the_smoothed_continuous_gaussian():
  """The module's argument, numerically, at a smoothing where eta is visible (s = 0.6,
  eta = 1.6e-3): the discrete Gaussian's pmf is within exp(+-3 eta) of the output law of the
  kernel K applied to N(c, s_g^2 - s^2); applied to N(c, s_g^2) (the smoothing's variance not
  taken off) it is not."""
  s, scale, centre = 0.6, 4.0, 2
  eta = lattice_lib.smoothing_eta(s)
  support = np.arange(centre - 40, centre + 41)
  dg = np.exp(-((support - centre) ** 2) / (2 * scale**2))
  dg /= dg.sum()
  inner = np.abs(support - centre) <= 12  # where both pmfs are far above quadrature error

  def worst_log_ratio(sigma_c):
    law = np.array([kernel_law(v, sigma_c) for v in support])
    return np.max(np.abs(np.log(dg[inner] / law[inner])))

  def kernel_law(v, sigma_c):
    def integrand(x):
      density = math.exp(-((x - centre) ** 2) / (2 * sigma_c**2)) / (
        sigma_c * math.sqrt(2 * math.pi)
      )
      g = math.exp(-((v - x) ** 2) / (2 * s**2)) / (s * math.sqrt(2 * math.pi))
      return density * g / _theta(s, x)

    return integrate.quad(integrand, v - 12 * s, v + 12 * s, epsabs=0, epsrel=1e-13, limit=200)[0]

  assert worst_log_ratio(math.sqrt(scale**2 - s**2)) <= 3 * eta
  assert worst_log_ratio(scale) > 10 * eta


def test_accounted_sigma_and_sensitivity_are_rounded_the_safe_way():
  for scale, dim, exponent in [(70_001, 5, -17), (131_071, 32, 3), (4, 1, 0)]:
    lat = privacy.LatticeNoise(exponent, scale, dim)
    sigma = F(lat.accounted_sigma())
    exact_sq = F(scale**2 - lat.smoothing**2) * F(2) ** (2 * exponent)
    assert sigma**2 <= exact_sq
    assert F(math.nextafter(lat.accounted_sigma(), math.inf)) ** 2 > exact_sq
    sens = F(lat.rounded_sensitivity(1.3))
    assert (sens - F(1.3)) ** 2 >= F(2) ** (2 * exponent) * dim


@pytest.mark.parametrize("seed", range(4))
def test_covering_is_never_less_private_and_loses_at_most_two_to_the_minus_14(seed):
  rng = np.random.default_rng(seed)
  for _ in range(50):
    sigma = float(np.exp(rng.uniform(-8, 8)))
    ratio = float(np.exp(rng.uniform(np.log(1e-4), np.log(20))))
    sensitivity = ratio * sigma
    dim = int(rng.integers(1, 65))
    lat = privacy.LatticeNoise.covering(sigma, sensitivity, dim)
    # The grid is the largest power of two at most 2^-16 of sigma and of Delta / sqrt(d).
    assert lat.grid <= 2**-16 * min(sigma, sensitivity / math.sqrt(dim)) < 2 * lat.grid
    accounted = F(lat.rounded_sensitivity(sensitivity)) / F(lat.accounted_sigma())
    wanted = F(sensitivity) / F(sigma)
    assert accounted <= wanted
    assert accounted >= wanted / (1 + F(1, 2**14))


def test_lattice_parameters_are_validated():
  with pytest.raises(ValueError, match="scale must exceed"):
    privacy.LatticeNoise(0, 3, 4)
  with pytest.raises(ValueError, match="must be an int"):
    privacy.LatticeNoise(0, 100.0, 4)
  with pytest.raises(ValueError, match="dim"):
    privacy.LatticeNoise(0, 100, 0)
  with pytest.raises(ValueError, match="unknown lattice fields"):
    privacy.LatticeNoise.from_dict({"grid_exponent": 0, "scale": 100, "dim": 2, "gamma": 1})


def _report(release, num_records=500, shuffled=True):
  return privacy.make_report(
    release,
    lipschitz=0.8,
    diameter=3.0,
    domain="test box",
    domain_description={"kind": "test"},
    delta=1e-5,
    scope="public",
    num_records=num_records,
    shuffled=shuffled,
    certificate={"layer_bounds": [0.8], "arithmetic": "float64"},
  )


def test_a_lattice_release_is_accounted_with_its_rounded_sensitivity_and_round_trips():
  sigma = privacy.calibrate_sigma(2.0, 1e-5, 0.8 * 3.0, k=2)
  lat = privacy.LatticeNoise.covering(sigma, 0.8 * 3.0, 16)
  release = privacy.GaussianRelease(lat.accounted_sigma(), 2, lat)
  report = _report(release)
  assert report.sensitivity == lat.rounded_sensitivity(0.8 * 3.0) > 2.4
  assert 2.0 * (1 - 1e-4) < report.per_record_epsilon <= 2.0
  continuous = _report(privacy.GaussianRelease(sigma, 2))
  assert report.epsilon <= continuous.epsilon
  assert report.caveats != continuous.caveats
  assert lattice_lib.__name__ and privacy.report.CAVEAT_LATTICE_NOISE in report.caveats
  assert "lattice" not in continuous.release.as_dict()  # float64 reports as before
  again = privacy.PrivacyReport.from_dict(report.to_dict())
  assert again.release == release
  again.verify(rtol=0.0)
  assert "exact discrete Gaussian" in report.summary()


def test_a_lattice_release_cannot_claim_another_sigma_or_a_large_slack():
  lat = privacy.LatticeNoise(-10, 70_000, 8)
  with pytest.raises(ValueError, match="accounted_sigma"):
    privacy.GaussianRelease(lat.accounted_sigma() * 1.001, 1, lat)
  coarse = privacy.LatticeNoise(-10, 70_000, 8, smoothing=1)  # eta 5e-9: not negligible
  with pytest.raises(ValueError, match="slack"):
    _report(privacy.GaussianRelease(coarse.accounted_sigma(), 1, coarse))


def test_a_central_release_says_which_noise_its_measurements_drew():
  gauss = privacy.NoisyMeasurement("gaussian", 2.0, math.sqrt(2.0), 3, "histogram")
  select = privacy.NoisyMeasurement("exponential", 1.0, 1.0, 2, "score")
  old = privacy.CentralRelease("mst", (gauss, select), 100)
  new = privacy.CentralRelease("mst", (gauss, select), 100, exact_noise=True)
  merf = privacy.CentralRelease("dp_merf", (gauss,), 100, exact_noise=True)
  exact = privacy.CentralRelease(
    "mst", (gauss, select), 100, exact_noise=True, exact_selections=True
  )
  assert "exact_noise" not in old.as_dict()  # the reports before it, unchanged
  assert "exact_selections" not in new.as_dict()
  reports = {}
  for name, event in (("old", old), ("new", new), ("merf", merf), ("exact", exact)):
    report = privacy.make_report(
      event,
      lipschitz=None,
      diameter=None,
      domain="test",
      domain_description={"kind": "test"},
      delta=1e-5,
      scope="dp-measurements",
      num_records=100,
    )
    again = privacy.PrivacyReport.from_dict(report.to_dict())
    assert again.release == event
    reports[name] = set(report.caveats)
  central = privacy.report
  assert central.CAVEAT_CENTRAL_NOISE in reports["old"]
  assert central.CAVEAT_CENTRAL_EXACT_NOISE in reports["new"] & reports["merf"]
  assert central.CAVEAT_CENTRAL_OTHER_NOISE in reports["new"] - reports["merf"]
  assert central.CAVEAT_CENTRAL_NOISE not in reports["new"] | reports["merf"]
  assert central.CAVEAT_CENTRAL_EXACT_SELECTIONS in reports["exact"] - reports["new"]
  assert central.CAVEAT_CENTRAL_OTHER_NOISE not in reports["exact"]
  with pytest.raises(ValueError, match="exact_noise"):
    privacy.CentralRelease("mst", (gauss,), 100, exact_noise=1)
  with pytest.raises(ValueError, match="exact_selections"):
    privacy.CentralRelease("mst", (gauss,), 100, exact_selections=1)
  with pytest.raises(ValueError, match="exact_selections needs exact_noise"):
    privacy.CentralRelease("mst", (gauss,), 100, exact_selections=True)
