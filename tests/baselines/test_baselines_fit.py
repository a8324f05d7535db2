"""Each baseline on a tiny table: runs in seconds, stays in the domain, its epsilon recomputes.

MST and AIM need the optional mbi package: their tests skip cleanly without it.
"""

import inspect
import sys

import numpy as np
import pytest

from lipdp import baselines
from lipdp import evaluation
from lipdp import privacy
from lipdp.baselines import _pgm
from lipdp.baselines import aim
from lipdp.baselines import base
from lipdp.baselines import mst
from lipdp.baselines import non_private
from lipdp.baselines import private_measure
from lipdp.data import CategoricalColumn, NumericColumn, TabularDomain

DOMAIN = TabularDomain(
  [
    NumericColumn("a", 0.0, 10.0),
    CategoricalColumn("b", ["x", "y", "z"]),
    NumericColumn("c", -1.0, 1.0),
    CategoricalColumn("label", [0, 1]),
  ],
  label_column="label",
)
BINS = {"a": [0, 2.5, 5, 7.5, 10], "c": 4}


def _table(n, seed):
  rng = np.random.default_rng(seed)
  a = rng.uniform(0, 10, n)
  b = rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1])
  c = np.tanh(a / 5 - 1 + rng.normal(0, 0.3, n))
  label = (a + rng.normal(0, 2, n) > 5).astype(int)
  return DOMAIN.encode({"a": a, "b": b, "c": c, "label": label})


TRAIN, HOLDOUT = _table(400, 0), _table(200, 1)


def _check_private_release(release, epsilon, n):
  assert release.private and release.report is not None
  assert release.records.shape == (n, DOMAIN.dim)
  assert np.array_equal(DOMAIN.project(release.records), release.records)  # in the domain
  report = release.report
  report.verify(rtol=0.0)
  assert report.recompute_epsilon() == report.epsilon
  assert report.epsilon <= epsilon * (1 + 1e-9)
  assert report.epsilon == pytest.approx(epsilon, rel=1e-6)  # the whole budget, no more
  assert report.scope is privacy.Scope.DP_MEASUREMENTS
  assert report.noise_seeded
  assert privacy.PrivacyReport.from_json(report.to_json()) == report


def test_registry_and_common_signature():
  assert set(baselines.BASELINES) == {"mst", "aim", "private_measure", "dp_merf", "copy_train"}
  for name, fit in baselines.BASELINES.items():
    params = inspect.signature(fit).parameters
    for arg in ("epsilon", "delta", "seed"):
      assert params[arg].kind is inspect.Parameter.KEYWORD_ONLY, (name, arg)
  assert set(baselines.PRIVATE_BASELINES) | {"copy_train"} == set(baselines.BASELINES)


def test_mst_on_a_tiny_table():
  pytest.importorskip("mbi")
  release = mst.fit(TRAIN, DOMAIN, epsilon=2.0, delta=1e-5, seed=0, bins=BINS)
  _check_private_release(release, 2.0, len(TRAIN))
  assert len(release.info["tree"]) == 3  # a spanning tree of the 4 attributes
  kinds = [m.kind for m in release.report.release.measurements]
  assert kinds == ["gaussian", "exponential", "gaussian"]
  assert release.report.release.measurements[0].count == 4
  assert release.report.release.exact_noise  # its histograms' noise: exact, on a lattice
  _check_exact_selections(release.report, mst.budget(release.info["rho"], 4)["select_epsilon"])
  again = mst.fit(TRAIN, DOMAIN, epsilon=2.0, delta=1e-5, seed=0, bins=BINS)
  assert np.array_equal(again.records, release.records)  # seeded: reproducible, and says so
  metrics = evaluation.evaluate_release(DOMAIN, release.records, TRAIN, HOLDOUT, seed=0, fast=True)
  assert 0.0 <= metrics["tstr/logreg"] <= 1.0
  assert metrics["privacy/exact_match_train"] < 1.0


def test_aim_on_a_tiny_table():
  pytest.importorskip("mbi")
  release = aim.fit(
    TRAIN,
    DOMAIN,
    epsilon=2.0,
    delta=1e-5,
    seed=0,
    bins=BINS,
    rounds=8,
    round_iters=100,
    final_iters=200,
  )
  _check_private_release(release, 2.0, len(TRAIN))
  event = release.report.release
  assert event.rho_budget == pytest.approx(release.info["rho"])
  assert event.rho_spent <= event.rho_budget * (1 + 1e-12)
  assert event.rho_spent == pytest.approx(event.rho_budget, rel=1e-6)  # the last round
  assert release.info["rounds"] >= 1
  _check_exact_selections(release.report)


def _check_exact_selections(report, planned_epsilon=None):
  """Selections drawn exactly: sensitivities raised by the scores' rounding bound (here at
  most 1e-9 relative), epsilon at most what the raw sensitivity and the
  planned temperature give, and the report says so."""
  event = report.release
  assert event.exact_selections and event.as_dict()["exact_selections"] is True
  assert privacy.report.CAVEAT_CENTRAL_EXACT_SELECTIONS in report.caveats
  assert privacy.report.CAVEAT_CENTRAL_OTHER_NOISE not in report.caveats
  for m in event.measurements:
    if m.kind != "exponential":
      continue
    eps = privacy.zcdp.exponential_epsilon(m.scale, m.sensitivity)
    if planned_epsilon is not None:  # MST: the replace-one l1 sensitivity 2, raised
      assert 2.0 < m.sensitivity < 2.0 * (1 + 1e-9)
      assert planned_epsilon * (1 - 1e-12) <= eps <= planned_epsilon


def test_private_measure_on_a_square():
  domain = TabularDomain([NumericColumn("u", 0.0, 1.0), NumericColumn("v", 0.0, 1.0)])
  rng = np.random.default_rng(0)
  points = domain.encode({"u": rng.beta(2, 5, 500), "v": rng.beta(5, 2, 500)})
  release = private_measure.fit(points, domain, epsilon=1.0, delta=1e-5, seed=3)
  assert release.private and release.records.shape == (500, 2)
  assert np.array_equal(domain.project(release.records), release.records)
  report = release.report
  report.verify(rtol=0.0)
  assert report.epsilon == pytest.approx(1.0, rel=1e-12)
  assert report.headline == privacy.accounting.HEADLINE_CENTRAL_PURE
  assert report.release.exact_noise  # discrete Laplace noise on a lattice
  assert [m.sensitivity for m in report.release.measurements] == [2.0] * release.info["depth"]


def test_copy_train_has_no_guarantee():
  release = non_private.fit(TRAIN, DOMAIN)
  assert not release.private and release.report is None and release.epsilon is None
  assert np.array_equal(release.records, TRAIN)
  with pytest.raises(ValueError, match="not differentially private"):
    non_private.fit(TRAIN, DOMAIN, epsilon=1.0, delta=1e-5)
  assert non_private.fit(TRAIN, DOMAIN, epsilon=float("inf"), delta=1e-5).report is None
  with pytest.raises(ValueError, match="PrivacyReport"):
    baselines.BaselineRelease("x", TRAIN, None, True)


@pytest.mark.parametrize("name", ["mst", "aim", "private_measure"])
@pytest.mark.parametrize(
  "epsilon,delta,match",
  [
    (0.0, 1e-5, "epsilon must be positive"),
    (-1.0, 1e-5, "epsilon must be positive"),
    (float("nan"), 1e-5, "epsilon must be positive"),
    (float("inf"), 1e-5, "finite"),
    (1.0, 0.0, "delta must be in"),
    (1.0, 1.5, "delta must be in"),
  ],
)
def test_infeasible_budgets_fail_clearly(name, epsilon, delta, match):
  data, domain = (TRAIN, DOMAIN)
  if name == "private_measure":
    domain = TabularDomain([NumericColumn("u", 0.0, 1.0), NumericColumn("v", 0.0, 1.0)])
    data = np.full((50, 2), 0.5, np.float32)
  with pytest.raises(ValueError, match=match):
    baselines.BASELINES[name](data, domain, epsilon=epsilon, delta=delta, seed=0)


def test_budgets_too_small_for_the_mechanism_fail_clearly():
  domain = TabularDomain([NumericColumn("u", 0.0, 1.0), NumericColumn("v", 0.0, 1.0)])
  with pytest.raises(ValueError, match="epsilon \\* n = 1 is infeasible"):
    private_measure.fit(np.full((100, 2), 0.5, np.float32), domain, epsilon=0.01, delta=1e-5)
  with pytest.raises(ValueError, match="rounds=3 is infeasible"):
    aim.fit(TRAIN, DOMAIN, epsilon=1.0, delta=1e-5, rounds=3)


def test_wrong_inputs_are_refused():
  with pytest.raises(ValueError, match="outside the domain"):
    mst.fit(TRAIN * 2, DOMAIN, epsilon=1.0, delta=1e-5)
  with pytest.raises(ValueError, match="categorical"):
    private_measure.fit(TRAIN, DOMAIN, epsilon=1.0, delta=1e-5)
  five = TabularDomain([NumericColumn(f"x{i}", 0.0, 1.0) for i in range(5)])
  with pytest.raises(ValueError, match="2- to 4-dimensional"):
    private_measure.fit(np.zeros((10, 5), np.float32), five, epsilon=1.0, delta=1e-5)
  with pytest.raises(ValueError, match="not numeric columns"):
    mst.fit(TRAIN, DOMAIN, epsilon=1.0, delta=1e-5, bins={"b": 3})


def test_mst_and_aim_say_how_to_get_mbi(monkeypatch):
  monkeypatch.setitem(sys.modules, "mbi", None)  # import mbi now raises ImportError
  for fit in (mst.fit, aim.fit):
    with pytest.raises(ImportError, match=r"lipdp\[baselines\]"):
      fit(TRAIN, DOMAIN, epsilon=1.0, delta=1e-5)
  assert "pip install" in _pgm.MBI_MISSING


def test_noise_is_secret_unless_seeded():
  report = private_measure.fit(
    np.random.default_rng(0).random((200, 2)).astype(np.float32),
    TabularDomain([NumericColumn("u", 0.0, 1.0), NumericColumn("v", 0.0, 1.0)]),
    epsilon=1.0,
    delta=1e-5,
  ).report
  assert not report.noise_seeded
  assert "operating-system entropy" in report.noise_statement


def test_post_processing_draws_are_independent_of_secret_noise():
  """Its draws show in the records: with secret noise its generator has its own seed, not one
  drawn from the noise's generator; a seeded run derives it from the noise generator."""
  twin_a, twin_b = np.random.default_rng(3), np.random.default_rng(3)
  secret_a = base.post_processing_rng(twin_a, None).integers(2**63, size=4)
  secret_b = base.post_processing_rng(twin_b, None).integers(2**63, size=4)
  assert not np.array_equal(secret_a, secret_b)
  assert twin_a.integers(2**63) == np.random.default_rng(3).integers(2**63)  # noise untouched
  seeded_a = base.post_processing_rng(np.random.default_rng(3), 5).integers(2**63, size=4)
  seeded_b = base.post_processing_rng(np.random.default_rng(3), 5).integers(2**63, size=4)
  np.testing.assert_array_equal(seeded_a, seeded_b)
