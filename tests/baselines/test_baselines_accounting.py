"""zCDP accounting of the baselines and their report format (lipdp.privacy.zcdp, CentralRelease).

Every number is checked against a computation that does not use lipdp.privacy.zcdp: Steinke's
bisection for rho-zCDP -> (epsilon, delta) written out here from Canonne, Kamath and Steinke
(2020), dp_accounting's RDP accountant, and the published calibrations of MST and AIM with the
replace-one sensitivities put in by hand.
"""

import json
import math

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
import numpy as np
import pytest

from lipdp import privacy
from lipdp.baselines import aim
from lipdp.baselines import mst
from lipdp.baselines import private_measure
from lipdp.privacy import zcdp

ORDERS = np.concatenate(
  [np.linspace(1.001, 3, 2000), np.linspace(3.001, 50, 4000), np.linspace(50.1, 5000, 4000)]
)


def _steinke_delta(rho, eps):
  """delta of rho-zCDP at eps: CKS 2020 Prop. 12 at the alpha where its derivative vanishes."""
  lo, hi = 1.01, (eps + 1) / (2 * rho) + 2
  for _ in range(1000):
    alpha = (lo + hi) / 2
    if (2 * alpha - 1) * rho - eps + math.log1p(-1.0 / alpha) < 0:
      lo = alpha
    else:
      hi = alpha
  return min(
    1.0, math.exp((alpha - 1) * (alpha * rho - eps) + alpha * math.log1p(-1 / alpha)) / (alpha - 1)
  )


def _steinke_epsilon(rho, delta):
  lo, hi = 0.0, rho + 2 * math.sqrt(rho * math.log(1 / delta))
  for _ in range(1000):
    mid = (lo + hi) / 2
    if _steinke_delta(rho, mid) <= delta:
      hi = mid
    else:
      lo = mid
  return hi


def _rdp_epsilon(events, delta):
  accountant = rdp_privacy_accountant.RdpAccountant(ORDERS)
  accountant.compose(dp_accounting.ComposedDpEvent(list(events)))
  return accountant.get_epsilon(delta)


@pytest.mark.parametrize("rho", [1e-4, 0.0306, 0.5, 3.0, 40.0])
@pytest.mark.parametrize("delta", [1e-9, 1e-5, 1e-2])
def test_zcdp_epsilon_matches_independent_conversions(rho, delta):
  eps = privacy.zcdp_epsilon(rho, delta)
  assert eps == pytest.approx(_steinke_epsilon(rho, delta), rel=1e-6)
  # dp_accounting minimises over a grid of orders: never below ours, and close.
  rdp = _rdp_epsilon([dp_accounting.ZCDpEvent(rho)], delta)
  assert eps <= rdp * (1 + 1e-9)
  assert eps == pytest.approx(rdp, rel=1e-3)


@pytest.mark.parametrize("epsilon,delta", [(1.0, 1e-5), (10.0, 1e-5), (0.1, 1e-9)])
def test_zcdp_rho_is_the_largest_feasible(epsilon, delta):
  rho = privacy.zcdp_rho(epsilon, delta)
  assert privacy.zcdp_epsilon(rho, delta) <= epsilon
  assert privacy.zcdp_epsilon(rho * (1 + 1e-6), delta) > epsilon * (1 - 1e-9)
  # MST's own calibration table, cdp_rho(1, 1e-5) of the reference code, is about 0.0306.
  if (epsilon, delta) == (1.0, 1e-5):
    assert rho == pytest.approx(0.030557, rel=1e-4)


@pytest.mark.parametrize("sigma", [0.5, 2.0, 10.0])
def test_zcdp_conversion_is_an_upper_bound_on_the_exact_gaussian(sigma):
  """rho-zCDP of a Gaussian, converted, is never below Balle-Wang's exact epsilon."""
  sens = math.sqrt(2.0)
  rho = privacy.gaussian_rho(sigma, sens)
  assert rho == pytest.approx(sens**2 / (2 * sigma**2))
  exact = privacy.gaussian_epsilon(sigma, sens, 1e-5)
  assert exact <= privacy.zcdp_epsilon(rho, 1e-5) <= 1.5 * exact + 0.5


def test_histogram_sensitivity_must_be_replace_one():
  """The add/remove value (1) of a histogram query is refused: lipdp is replace-one."""
  with pytest.raises(ValueError, match="replace-one sensitivity at least 1.41"):
    privacy.NoisyMeasurement("gaussian", 3.0, 1.0)
  with pytest.raises(ValueError, match="replace-one sensitivity at least 2"):
    privacy.NoisyMeasurement("laplace", 3.0, 1.0)
  with pytest.raises(ValueError, match="score"):
    privacy.NoisyMeasurement("exponential", 3.0, 2.0, 1, "histogram")
  privacy.NoisyMeasurement("gaussian", 3.0, math.sqrt(2.0))


def _report(event, **kw):
  return privacy.make_report(
    event,
    lipschitz=None,
    diameter=None,
    domain="a table",
    delta=kw.pop("delta", 1e-5),
    scope="dp-measurements",
    num_records=1000,
    **kw,
  )


MST_LIKE = privacy.CentralRelease(
  "mst",
  [
    privacy.NoisyMeasurement("gaussian", 40.0, math.sqrt(2.0), 17),
    privacy.NoisyMeasurement("exponential", 30.0, 2.0, 16, "score"),
    privacy.NoisyMeasurement("gaussian", 35.0, math.sqrt(2.0), 16),
  ],
  1000,
)


def test_central_report_round_trips_and_recomputes(tmp_path):
  report = _report(MST_LIKE, noise_seeded=True)
  path = tmp_path / "privacy_report.json"
  report.save(str(path))
  loaded = privacy.PrivacyReport.load(str(path))
  assert loaded == report
  loaded.verify(rtol=0.0)
  assert loaded.recompute_epsilon() == report.epsilon
  data = json.loads(path.read_text())
  assert data["scope"] == "dp-measurements" and data["per_record_epsilon"] is None
  assert data["lipschitz"] is None and data["sensitivity"] is None
  assert privacy.report.CAVEAT_CENTRAL_RELATION in report.caveats
  assert "post-processing" in report.scope_statement
  assert "central mechanism mst" in report.summary()


def test_central_epsilon_equals_an_independent_rdp_computation():
  report = _report(MST_LIKE)
  events = (
    [dp_accounting.ZCDpEvent(2.0 / (2 * 40.0**2))] * 17
    + [dp_accounting.ZCDpEvent((2 * 2.0 / 30.0) ** 2 / 8)] * 16
    + [dp_accounting.ZCDpEvent(2.0 / (2 * 35.0**2))] * 16
  )
  assert report.epsilon == pytest.approx(_rdp_epsilon(events, 1e-5), rel=1e-3)
  assert report.components["zcdp_rho"] == pytest.approx(
    17 / 40.0**2 + 16 * (4 / 30.0) ** 2 / 8 + 16 / 35.0**2, rel=1e-12
  )


def test_pure_release_takes_the_basic_composition():
  event = privacy.CentralRelease(
    "private_measure", [privacy.NoisyMeasurement("laplace", b, 2.0) for b in (8.0, 6.0, 4.0)], 1000
  )
  report = _report(event)
  pure = 2 / 8 + 2 / 6 + 2 / 4
  assert report.epsilon == pytest.approx(pure, rel=1e-12)
  assert report.headline == privacy.accounting.HEADLINE_CENTRAL_PURE
  assert report.components["pure_epsilon"] <= report.components["zcdp_epsilon"]
  report.verify(rtol=0.0)


def _pld_epsilon(events, delta):
  """dp_accounting's PLD accountant; a GaussianDpEvent(s) there is N(0, s^2) at sensitivity 1."""
  accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
  accountant.compose(dp_accounting.ComposedDpEvent(list(events)))
  return accountant.get_epsilon(delta)


def test_gaussian_measurements_compose_exactly():
  """All-Gaussian measurements with noise fixed in advance (DP-MERF): the exact composition,
  equal to dp_accounting's PLD of the same Gaussians and below the zCDP conversion."""
  one = privacy.NoisyMeasurement("gaussian", 2.5e-3, math.sqrt(2.0) / 1000, 1, "mean_embedding")
  report = _report(privacy.CentralRelease("dp_merf", [one], 1000))
  assert report.headline == privacy.accounting.HEADLINE_CENTRAL_GAUSSIAN
  assert report.epsilon == privacy.gaussian_epsilon(2.5e-3, math.sqrt(2.0) / 1000, 1e-5)
  pld = _pld_epsilon([dp_accounting.GaussianDpEvent(2.5e-3 / (math.sqrt(2.0) / 1000))], 1e-5)
  assert report.epsilon == pytest.approx(pld, rel=1e-3)
  assert report.epsilon <= pld * (1 + 1e-9)  # PLD's pessimistic grid: never below the exact
  assert report.epsilon < report.components["zcdp_epsilon"]
  report.verify(rtol=0.0)
  # Two groups, one applied four times: one Gaussian with mu^2 = sum count (Delta / sigma)^2.
  two = [one, privacy.NoisyMeasurement("gaussian", 40.0, math.sqrt(2.0), 4)]
  report = _report(privacy.CentralRelease("x", two, 1000))
  events = [dp_accounting.GaussianDpEvent(2.5e-3 / (math.sqrt(2.0) / 1000))] + [
    dp_accounting.GaussianDpEvent(40.0 / math.sqrt(2.0))
  ] * 4
  assert report.epsilon == pytest.approx(_pld_epsilon(events, 1e-5), rel=1e-3)
  # Adaptive noise (a budget) is not a fixed Gaussian composition: the zCDP budget stays.
  budgeted = privacy.CentralRelease("x", two, 1000, rho_budget=1.0)
  assert _report(budgeted).headline == privacy.accounting.HEADLINE_CENTRAL_ZCDP
  # The exponential mechanism of MST is not Gaussian: MST keeps the zCDP headline.
  assert _report(MST_LIKE).headline == privacy.accounting.HEADLINE_CENTRAL_ZCDP


def test_tampering_and_misuse_are_refused():
  data = _report(MST_LIKE).to_dict()
  data["release"]["measurements"][0]["scale"] = 80.0  # noise that was not added
  with pytest.raises(ValueError, match="epsilon"):
    privacy.PrivacyReport.from_dict(data).verify()
  data = _report(MST_LIKE).to_dict()
  data["release"]["measurements"][0]["sensitivity"] = 1.0  # the add/remove value
  with pytest.raises(ValueError, match="replace-one"):
    privacy.PrivacyReport.from_dict(data)
  with pytest.raises(ValueError, match="dp-measurements"):
    privacy.make_report(
      MST_LIKE,
      lipschitz=None,
      diameter=None,
      domain="t",
      delta=1e-5,
      scope="public",
      num_records=10,
    )
  with pytest.raises(ValueError, match="dp-measurements"):  # a VAE release cannot claim it
    privacy.make_report(
      privacy.GaussianRelease(3.0),
      lipschitz=1.0,
      diameter=1.0,
      domain="t",
      delta=1e-5,
      scope="dp-measurements",
      num_records=10,
    )
  over = privacy.CentralRelease("aim", MST_LIKE.measurements, 1000, rho_budget=0.01)
  with pytest.raises(ValueError, match="budget"):
    _report(over)


def test_budgeted_release_reports_its_budget():
  event = privacy.CentralRelease("aim", MST_LIKE.measurements, 1000, rho_budget=0.07)
  report = _report(event)
  assert report.components["zcdp_rho"] == 0.07
  assert report.components["zcdp_rho_spent"] < 0.07
  assert report.epsilon == pytest.approx(privacy.zcdp_epsilon(0.07, 1e-5))
  assert "Renyi filter" in report.accounting_methods


@pytest.mark.parametrize("d", [3, 17, 31])
def test_mst_noise_is_the_published_noise_at_replace_one(d):
  """MST's add/remove sigma is sqrt(3 d / (2 rho)) (one-way); replace-one multiplies by sqrt(2)."""
  rho = 0.0305
  plan = mst.budget(rho, d)
  assert plan["sigma_oneway"] == pytest.approx(math.sqrt(2) * math.sqrt(3 * d / (2 * rho)))
  assert plan["sigma_pairs"] == pytest.approx(math.sqrt(2) * math.sqrt(3 * (d - 1) / (2 * rho)))
  # exp(eps q / (2 * 2)): the L1 score moves by 2 under replace-one.
  assert plan["select_temperature"] == pytest.approx(4.0 / math.sqrt(8 * rho / (3 * (d - 1))))
  total = (
    d * privacy.gaussian_rho(plan["sigma_oneway"], math.sqrt(2))
    + (d - 1) * privacy.gaussian_rho(plan["sigma_pairs"], math.sqrt(2))
    + (d - 1) * plan["select_epsilon"] ** 2 / 8
  )
  assert total == pytest.approx(rho, rel=1e-12)


def test_aim_round_noise_is_the_published_split_at_replace_one():
  sigma, eps = aim._round_noise(0.01)  # pylint: disable=protected-access
  # Paper: sigma^2 = 1 / (2 * 0.9 rho_t) at l2 sensitivity 1; here sqrt(2) -> twice.
  assert sigma**2 == pytest.approx(1 / (0.9 * 0.01))
  assert eps**2 / 8 == pytest.approx(0.1 * 0.01)
  assert aim._round_cost(sigma, eps) == pytest.approx(0.01)  # pylint: disable=protected-access


def test_private_measure_noise_spends_exactly_epsilon():
  sig = private_measure.noise_scales(2.0, 5000, 8, 3)
  assert sum(2.0 / s for s in sig) == pytest.approx(2.0, rel=1e-12)
  assert sig[0] == max(sig)  # the most noise on the coarsest level


def test_zcdp_primitives():
  assert zcdp.primitive_rho("laplace", 4.0, 2.0) == pytest.approx(0.5**2 / 2)
  assert zcdp.primitive_pure_epsilon("exponential", 4.0, 2.0) == pytest.approx(1.0)
  assert zcdp.primitive_rho("exponential", 4.0, 2.0) == pytest.approx(1 / 8)
  assert math.isinf(zcdp.primitive_pure_epsilon("gaussian", 1.0, 1.0))
  with pytest.raises(ValueError):
    privacy.zcdp_epsilon(1.0, 0.0)


def test_the_scores_rounding_bound_covers_the_float64_score():
  """AIM's score w (sum |a - x| - c), computed as the code does, against its exact value
  (Fractions): within score_rounding_bound, which is small next to the sensitivity 2 w. MST's
  (w = 1, c = 0) likewise. The covering temperature keeps epsilon at most the planned one."""
  from fractions import Fraction  # pylint: disable=g-import-not-at-top

  from lipdp.baselines import _pgm  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(3)
  cells, n = 5000, 40_000
  counts = np.bincount(rng.integers(0, cells, n), minlength=cells).astype(np.float64)
  model = rng.dirichlet(np.ones(cells)) * n * (1 + 1e-3)  # not on any grid, not summing to n
  for weight, offset in ((1.0, 0.0), (0.37, 0.1 * cells)):
    computed = weight * (np.abs(counts - model).sum() - offset)
    exact = Fraction(weight) * (
      sum(abs(Fraction(float(a)) - Fraction(float(x))) for a, x in zip(counts, model))
      - Fraction(offset)
    )
    bound = _pgm.score_rounding_bound(n, model, weight, offset)
    assert abs(Fraction(float(computed)) - exact) <= Fraction(bound)
    assert bound < 1e-7 * 2 * weight  # gamma_m (n + sum x): 2e-8 of the sensitivity here
  for temperature, sensitivity, raised in ((4.7, 2.0, 2.0 + 1e-10), (0.3, 0.74, 0.74)):
    covering = _pgm.covering_temperature(temperature, sensitivity, raised)
    planned = zcdp.exponential_epsilon(temperature, sensitivity)
    assert zcdp.exponential_epsilon(covering, raised) <= planned
    assert covering == pytest.approx(temperature * raised / sensitivity, rel=1e-15)
  with pytest.raises(ValueError, match="below"):
    _pgm.covering_temperature(1.0, 2.0, 1.0)
