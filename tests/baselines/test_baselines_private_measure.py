"""The private measure's Wasserstein accuracy against the bounds proved in its module docstring.

W1 between the records and the synthetic points is computed exactly: both sets have n points
(n is public under replace-one), so the optimal transport is an assignment (Hungarian method).
(T) is a pathwise bound (it must hold for every draw); (B) bounds the expectation.
"""

import numpy as np
import pytest
from scipy import optimize
from scipy.spatial import distance

from lipdp.baselines import private_measure as pm
from lipdp.data import NumericColumn, TabularDomain


def _w1(x, y):
  cost = distance.cdist(np.asarray(x, np.float64), np.asarray(y, np.float64))
  rows, cols = optimize.linear_sum_assignment(cost)
  return float(cost[rows, cols].mean())


def _blobs(n, dim, seed):
  """Two Gaussian blobs clipped to the cube (as in the authors' simulation)."""
  rng = np.random.default_rng(seed)
  centre = np.where(rng.random(n)[:, None] < 0.5, 0.35, 0.7)
  return np.clip(centre + rng.normal(0, 0.08, (n, dim)), 0.0, 1.0)


def _domain(dim):
  return TabularDomain([NumericColumn(f"x{i}", 0.0, 1.0) for i in range(dim)])


@pytest.mark.parametrize("dim,epsilon", [(2, 1.0), (2, 10.0), (3, 1.0)])
def test_w1_within_the_pathwise_and_expected_bounds(dim, epsilon):
  n = 600
  domain = _domain(dim)
  x = domain.encode(_blobs(n, dim, 0)).astype(np.float64)
  w1s = []
  for seed in range(3):
    release = pm.fit(x, domain, epsilon=epsilon, delta=1e-5, seed=seed)
    w1 = _w1(x, release.records)
    assert w1 <= pm.pathwise_bound(x, release.info["released_counts"])  # (T), every draw
    w1s.append(w1)
  assert np.mean(w1s) <= release.info["expected_w1_bound"]  # (B), in expectation
  # Uniform points would be far worse: the measure does carry the data.
  uniform = np.random.default_rng(9).random((n, dim))
  assert np.mean(w1s) < 0.5 * _w1(x, uniform)


def test_released_counts_are_consistent():
  domain = _domain(2)
  x = domain.encode(_blobs(300, 2, 1)).astype(np.float64)
  release = pm.fit(x, domain, epsilon=2.0, delta=1e-5, seed=0, depth=5)
  counts = release.info["released_counts"]
  assert counts[0].tolist() == [300]
  for parent, children in zip(counts[:-1], counts[1:]):
    assert (children >= 0).all()
    assert np.array_equal(children.reshape(-1, 2).sum(axis=1), parent)
  # The synthetic points fall in the leaves with exactly the released counts.
  index = pm._leaf_index(release.records.astype(np.float64), 5)  # pylint: disable=protected-access
  leaves = np.bincount(index, minlength=32)
  assert np.array_equal(leaves, counts[-1])


def test_partition_geometry():
  assert np.allclose(pm.cell_sides(0, 3), [1, 1, 1])
  assert np.allclose(pm.cell_sides(4, 3), [0.25, 0.5, 0.5])
  assert pm.cell_diameter(2, 2) == pytest.approx(np.sqrt(0.5))
  counts = pm.level_counts(np.array([[0.1, 0.1], [0.9, 0.2], [0.6, 0.9]]), 2)
  assert [c.tolist() for c in counts] == [[3], [1, 2], [1, 0, 1, 1]]


def test_depth_and_bound_depend_on_public_numbers_only():
  assert pm.best_depth(1.0, 1000, 2) == pm.best_depth(1.0, 1000, 2)
  assert pm.best_depth(10.0, 1000, 2) >= pm.best_depth(1.0, 1000, 2)
  assert pm.accuracy_bound(10.0, 5000, 6, 2) < pm.accuracy_bound(1.0, 5000, 6, 2)


@pytest.mark.slow
def test_w1_decays_at_the_papers_rate():
  """Slope of log E W1 against log n near -1/d for d = 2 (He, Vershynin, Zhu: (eps n)^(-1/d))."""
  dim, sizes = 2, [500, 1000, 2000, 4000]
  domain = _domain(dim)
  means = []
  for n in sizes:
    x = domain.encode(_blobs(n, dim, n)).astype(np.float64)
    means.append(
      np.mean(
        [_w1(x, pm.fit(x, domain, epsilon=1.0, delta=1e-5, seed=s).records) for s in range(3)]
      )
    )
  slope = np.polyfit(np.log(sizes), np.log(means), 1)[0]
  assert -0.8 < slope < -0.25
