"""Fidelity metrics on cases with known answers."""

import numpy as np
import pytest

from lipdp.data import CategoricalColumn, NumericColumn, TabularDomain, load_dataset
from lipdp.evaluation import fidelity


@pytest.fixture(scope="module")
def cancer():
  return load_dataset("breast_cancer")


# ----------------------------------------------------------------------------------------------
# Fréchet distance and MMD.


def test_frechet_closed_form_for_diagonal_gaussians():
  # For commuting covariances: |mu_a - mu_b|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
  mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  a, b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
  expected = 1.0 + 4.0 + (1.0 + 1.0 + 0.0)
  got = fidelity.frechet_distance_from_moments(mu_a, np.diag(a), mu_b, np.diag(b))
  assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_of_rotated_covariance_against_scipy_sqrtm():
  from scipy import linalg  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  m1, m2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
  c1, c2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  expected = (
    np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2) - 2.0 * np.trace(linalg.sqrtm(c1 @ c2)).real
  )
  assert fidelity.frechet_distance_from_moments(mu1, c1, mu2, c2) == pytest.approx(
    expected, rel=1e-8
  )


def test_frechet_zero_for_identical_samples_and_grows_with_shift():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(500, 8))
  assert fidelity.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
  assert fidelity.frechet_distance(x, x + 1.0) == pytest.approx(8.0, rel=1e-9)  # |shift|^2


def test_mmd_matches_brute_force_and_is_near_zero_for_identical_sets():
  rng = np.random.default_rng(2)
  x, y, h = rng.normal(size=(12, 3)), rng.normal(0.5, 1.0, size=(9, 3)), 1.3

  def k(a, b):
    return np.exp(-np.sum((a - b) ** 2) / (2 * h * h))

  kxx = np.mean([k(x[i], x[j]) for i in range(12) for j in range(12) if i != j])
  kyy = np.mean([k(y[i], y[j]) for i in range(9) for j in range(9) if i != j])
  kxy = np.mean([k(a, b) for a in x for b in y])
  assert fidelity.mmd_squared(x, y, h) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-10)
  z = rng.normal(size=(300, 3))
  same = fidelity.mmd_squared(z, z, 1.0)
  assert -0.01 < same <= 0.0  # unbiased: only the dropped diagonal separates it from 0
  # Population value for N(0, I_3) vs N(1, I_3), h = 1: 2 (h^2/(h^2+2))^(3/2) (1 - e^(-3/6)).
  expected = 2.0 * (1.0 / 3.0) ** 1.5 * (1.0 - np.exp(-0.5))
  assert fidelity.mmd_squared(z, rng.normal(1.0, 1.0, size=(300, 3)), 1.0) == pytest.approx(
    expected, abs=0.02
  )


def test_median_heuristic_bandwidth_by_hand():
  pts = np.array([[0.0], [1.0], [3.0]])  # pairwise distances 1, 3, 2 -> median 2
  assert fidelity.median_heuristic_bandwidth(pts) == 2.0
  assert fidelity.median_heuristic_bandwidth(np.zeros((4, 2))) == 1.0  # degenerate fallback


# ----------------------------------------------------------------------------------------------
# Tables.


def test_tv_and_wasserstein_by_hand():
  # counts (2, 1, 1) vs (0, 2, 2): 1/2 (|1/2 - 0| + |1/4 - 1/2| + |1/4 - 1/2|) = 1/2.
  assert fidelity.categorical_tv([0, 0, 1, 2], [1, 1, 2, 2], 3) == pytest.approx(0.5)
  assert fidelity.categorical_tv([0, 1], [1, 0], 3) == 0.0
  assert fidelity.wasserstein_1d([0.0, 0.2, 0.4], [0.1, 0.3, 0.5]) == pytest.approx(0.1)
  assert fidelity.wasserstein_1d([0.0, 1.0], [0.5, 0.5]) == pytest.approx(0.5)


def test_association_measures_by_hand():
  assert fidelity.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.99339927, rel=1e-7)
  assert fidelity.pearson([1, 1, 1], [2, 4, 7]) == 0.0
  # 2x2 table [[2, 0], [0, 2]]: perfect association, V = 1; independent table: V = 0.
  assert fidelity.cramers_v([0, 0, 1, 1], [0, 0, 1, 1], 2, 2) == pytest.approx(1.0)
  assert fidelity.cramers_v([0, 0, 1, 1], [0, 1, 0, 1], 2, 2) == pytest.approx(0.0)
  # Table [[3, 1], [1, 3]]: chi2 = 2 for n = 8, V = sqrt(2 / 8) = 0.5.
  a, b = [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 0, 1, 1, 1]
  assert fidelity.cramers_v(a, b, 2, 2) == pytest.approx(0.5)
  # eta: groups {0, 0} and {1, 1}: all variance between groups.
  assert fidelity.correlation_ratio([0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0], 2) == pytest.approx(1.0)
  assert fidelity.correlation_ratio([0, 1, 0, 1], [0.0, 0.0, 1.0, 1.0], 2) == pytest.approx(0.0)


def _records(domain, table):
  """Records built by hand from the blocks: numeric values already in [0, 1], category indices."""
  n = len(next(iter(table.values())))
  out = np.zeros((n, domain.dim), np.float32)
  for block in domain.blocks:
    values = np.asarray(table[block.name])
    if block.kind == "numeric":
      out[:, block.start] = values
    else:
      out[np.arange(n), block.start + values] = 1.0
  return out


def _toy_domain():
  return TabularDomain(
    [
      NumericColumn("x", 0.0, 10.0),
      CategoricalColumn("c", ("a", "b", "c")),
      NumericColumn("y", 0.0, 1.0),
      CategoricalColumn("label", (0, 1)),
    ],
    label_column="label",
  )


def test_tabular_fidelity_hand_computed_on_a_toy_table():
  dom = _toy_domain()
  # x in [0, 10] scaled by 1/10; c in (a, b, c) as indices.
  real = _records(
    dom,
    {
      "x": [0.0, 0.2, 0.4, 0.6],
      "c": [0, 0, 1, 2],
      "y": [0.0, 0.0, 1.0, 1.0],
      "label": [0, 0, 1, 1],
    },
  )
  synth = _records(
    dom,
    {
      "x": [0.1, 0.3, 0.5, 0.7],
      "c": [1, 1, 2, 2],
      "y": [0.0, 1.0, 0.0, 1.0],
      "label": [0, 1, 1, 1],
    },
  )
  out = fidelity.tabular_fidelity(dom, synth, real)
  assert out["fidelity/wasserstein/x"] == pytest.approx(0.1)  # 1.0 in raw units / range 10
  assert out["fidelity/wasserstein/y"] == pytest.approx(0.0)
  assert out["fidelity/tv/c"] == pytest.approx(0.5)
  assert out["fidelity/tv/label"] == pytest.approx(0.25)
  assert out["fidelity/tv_mean"] == pytest.approx(0.375)
  assert out["fidelity/wasserstein_max"] == pytest.approx(0.1)
  # (x, y): r_real = 0.894..., r_synth = 0.447... (x spacing 2 vs y pattern).
  r_real = np.corrcoef([0, 2, 4, 6], [0, 0, 1, 1])[0, 1]
  r_synth = np.corrcoef([1, 3, 5, 7], [0, 1, 0, 1])[0, 1]
  assert out["fidelity/pearson_diff_mean"] == pytest.approx(abs(r_real - r_synth))
  v_real = fidelity.cramers_v([0, 0, 1, 2], [0, 0, 1, 1], 3, 2)
  v_synth = fidelity.cramers_v([1, 1, 2, 2], [0, 1, 1, 1], 3, 2)
  assert out["fidelity/cramers_v_diff_mean"] == pytest.approx(abs(v_real - v_synth))
  assert len([k for k in out if k.startswith(("fidelity/tv/", "fidelity/wasserstein/"))]) == 4


def test_binned_tv_sees_a_spike_that_wasserstein_misses():
  """Real values all at the low bound; synthetic ones spread over [low, low + 1/32 of the
  range]: Wasserstein-1 is at most 1/32, but the declared bin that isolates the low bound
  holds none of them."""
  from lipdp.data import CategoricalColumn, NumericColumn, TabularDomain

  dom = TabularDomain(
    [
      NumericColumn("pdays", -1, 999, bins=[-1, -0.5, 30, 999]),
      NumericColumn("t", 0, 16),
      CategoricalColumn("c", ["a", "b"]),
    ]
  )
  n = 400
  real = dom.encode({"pdays": [-1] * n, "t": [0.5] * n, "c": ["a"] * n})
  synth = dom.encode({"pdays": np.linspace(0, 30, n), "t": np.linspace(0, 1.99, n), "c": ["a"] * n})
  out = fidelity.tabular_fidelity(dom, synth, real)
  assert out["fidelity/wasserstein/pdays"] < 1 / 32
  assert out["fidelity/binned_tv/pdays"] == pytest.approx(1.0)
  # 't' declares no bins: FIDELITY_NUMERIC_BINS equal-width bins of width 1; real in bin 0,
  # synthetic half in bin 0 and half in bin 1.
  assert fidelity.FIDELITY_NUMERIC_BINS == 16
  assert out["fidelity/binned_tv/t"] == pytest.approx(0.5, abs=0.01)
  assert out["fidelity/binned_tv_mean"] == pytest.approx(0.75, abs=0.01)
  assert out["fidelity/binned_tv_max"] == pytest.approx(1.0)
  same = fidelity.tabular_fidelity(dom, real, real)
  assert same["fidelity/binned_tv_max"] == 0.0


def test_tabular_fidelity_zero_for_identical_data_and_larger_when_shifted(cancer):
  same = fidelity.tabular_fidelity(cancer.domain, cancer.holdout, cancer.holdout)
  assert all(v == 0.0 for v in same.values() if v is not None)
  shifted = cancer.holdout.copy()
  numeric = [b.start for b in cancer.domain.blocks if b.kind == "numeric"]
  shifted[:, numeric] = np.clip(shifted[:, numeric] + 0.2, 0.0, 1.0)
  label = [b for b in cancer.domain.blocks if b.name == cancer.domain.label_column][0]
  shifted[:, label.start : label.stop] = shifted[:, label.start : label.stop][:, ::-1]  # flip
  out = fidelity.tabular_fidelity(cancer.domain, shifted, cancer.holdout)
  floor = fidelity.tabular_fidelity(cancer.domain, cancer.train, cancer.holdout)
  assert out["fidelity/wasserstein_mean"] > 0.15 > 3 * floor["fidelity/wasserstein_mean"]
  assert out["fidelity/tv_mean"] > 0.1 > floor["fidelity/tv_mean"]


def test_tabular_fidelity_rejects_image_domains():
  digits = load_dataset("digits")
  with pytest.raises(ValueError, match="tabular"):
    fidelity.tabular_fidelity(digits.domain, digits.holdout, digits.holdout)


# ----------------------------------------------------------------------------------------------
# Labels and input checks.


def test_label_balance_and_agreement():
  assert fidelity.label_balance_tv([0, 0, 0, 0], [0, 0, 1, 1], 3) == pytest.approx(0.5)
  assert fidelity.label_agreement([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)


@pytest.mark.parametrize(
  "call",
  [
    lambda: fidelity.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3))),
    lambda: fidelity.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4))),
    lambda: fidelity.mmd_squared(np.zeros((5, 3)), np.zeros((5, 3)), 0.0),
    lambda: fidelity.mmd_squared(np.zeros((5, 3)), np.full((5, 3), np.inf), 1.0),
    lambda: fidelity.categorical_tv([0, 3], [0, 1], 3),
    lambda: fidelity.wasserstein_1d([], [0.5]),
    lambda: fidelity.label_agreement([0, 1], [0]),
  ],
)
def test_bad_inputs_raise(call):
  with pytest.raises(ValueError):
    call()
