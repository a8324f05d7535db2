"""AUC and its DeLong interval against brute force, the bootstrap and simulated coverage."""

import numpy as np
import pytest

from lipdp.evaluation import auc


def _psi(x, y):
  return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def test_auc_matches_pairwise_count_with_ties():
  rng = np.random.default_rng(0)
  pos = rng.integers(0, 6, 37).astype(float)  # many ties
  neg = rng.integers(0, 5, 23).astype(float)
  assert auc.roc_auc(pos, neg) == pytest.approx(_psi(pos, neg).mean(), abs=1e-12)


def test_delong_variance_matches_brute_force_placements():
  rng = np.random.default_rng(1)
  pos = np.round(rng.normal(0.5, 1.0, 31), 1)
  neg = np.round(rng.normal(0.0, 1.0, 19), 1)
  psi = _psi(pos, neg)
  v10, v01 = psi.mean(1), psi.mean(0)
  brute = np.var(v10, ddof=1) / pos.size + np.var(v01, ddof=1) / neg.size
  assert auc.delong_variance(pos, neg) == pytest.approx(brute, rel=1e-12)


def test_delong_standard_error_agrees_with_bootstrap():
  rng = np.random.default_rng(2)
  pos, neg = rng.normal(0.8, 1.0, 60), rng.normal(0.0, 1.0, 40)
  boot = rng.integers
  b = 4000
  ip, ineg = boot(0, 60, (b, 60)), boot(0, 40, (b, 40))
  # Vectorised AUC of every resample: ranks of each resampled negative within the positives.
  sp, sn = np.sort(pos[ip], axis=1), neg[ineg]
  below = np.stack([np.searchsorted(sp[i], sn[i]) for i in range(b)])
  aucs = 1.0 - below.mean(1) / 60.0  # no ties in continuous data
  se_boot = np.std(aucs)
  se_delong = np.sqrt(auc.delong_variance(pos, neg))
  assert se_delong == pytest.approx(se_boot, rel=0.15)


def test_interval_covers_one_half_under_the_null_about_95_percent():
  rng = np.random.default_rng(3)
  covered = 0
  trials = 400
  for _ in range(trials):
    _, lo, hi = auc.auc_confidence_interval(rng.normal(size=50), rng.normal(size=50))
    covered += lo <= 0.5 <= hi
  assert 0.90 <= covered / trials <= 0.99


def test_perfect_separation_and_reversal():
  assert auc.auc_confidence_interval([3.0, 4.0, 5.0], [0.0, 1.0, 2.0]) == (1.0, 1.0, 1.0)
  assert auc.roc_auc([0.0, 1.0], [2.0, 3.0]) == 0.0
  assert auc.roc_auc([1.0, 1.0], [1.0, 1.0]) == 0.5
  result = auc.auc_with_ci([0.1, 0.9, 0.4], [0.2, 0.3, 0.0])
  assert set(result) == {"auc", "ci", "level"} and len(result["ci"]) == 2


@pytest.mark.parametrize(
  "pos, neg",
  [([], [1.0, 2.0]), ([1.0, np.nan], [0.0, 1.0]), ([[1.0, 2.0]], [0.0, 1.0]), ([1.0], [0.0, 1.0])],
)
def test_bad_scores_raise(pos, neg):
  with pytest.raises(ValueError):
    auc.auc_confidence_interval(pos, neg)


def test_bad_level_raises():
  with pytest.raises(ValueError, match="level"):
    auc.auc_confidence_interval([1.0, 2.0], [0.0, 1.0], level=1.0)
