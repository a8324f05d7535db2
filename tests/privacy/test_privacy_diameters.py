"""Diameters of declared domains, checked against brute-force maximisation."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lipdp import privacy


def _max_pairwise_distance(points: np.ndarray) -> float:
  best = 0.0
  sq = np.sum(points**2, axis=1)
  for start in range(0, len(points), 2048):
    block = points[start : start + 2048]
    d2 = sq[start : start + 2048, None] + sq[None, :] - 2.0 * block @ points.T
    best = max(best, float(np.max(d2)))
  return math.sqrt(max(best, 0.0))


def _project_onto_ball(points: np.ndarray, radius: float) -> np.ndarray:
  """lipdp's preprocessing: rescale into the origin-centred ball (keeps [0,1])."""
  norms = np.linalg.norm(points, axis=1, keepdims=True)
  scale = np.minimum(1.0, radius / np.maximum(norms, 1e-300))
  return points * scale


def test_ball_box_product():
  assert privacy.l2_ball_diameter(3.0) == 6.0
  assert privacy.box_diameter([0.0, 0.0], [3.0, 4.0]) == pytest.approx(5.0, rel=1e-15)
  assert privacy.box_diameter(0.0, 1.0, dim=4) == pytest.approx(2.0, rel=1e-15)
  assert privacy.box_diameter(-1.0, 2.0) == pytest.approx(3.0, rel=1e-15)
  assert privacy.box_diameter([0.0, -1.0], 1.0) == pytest.approx(math.sqrt(5.0), rel=1e-15)
  assert privacy.product_diameter(3.0, 4.0) == pytest.approx(5.0, rel=1e-15)
  assert privacy.product_diameter() == 0.0
  assert privacy.sensitivity(2.0, 3.0) == 6.0


def test_box_diameter_brute_force_corners():
  low, high = np.array([0.0, -2.0, 1.0]), np.array([1.0, 0.5, 4.0])
  corners = np.array(list(itertools.product(*zip(low, high))))
  assert privacy.box_diameter(low, high) == pytest.approx(
    _max_pairwise_distance(corners), rel=1e-12
  )


def test_one_hot_is_sqrt_2m_by_enumeration():
  categories = [2, 3, 1, 4]
  blocks = [np.eye(c) for c in categories]
  points = np.array([np.concatenate(choice) for choice in itertools.product(*blocks)])
  brute = _max_pairwise_distance(points)
  assert privacy.one_hot_diameter(categories) == pytest.approx(brute, rel=1e-12)
  assert privacy.one_hot_diameter(categories) == pytest.approx(math.sqrt(2 * 3), rel=1e-15)
  assert privacy.one_hot_diameter(3) == pytest.approx(math.sqrt(6.0), rel=1e-15)
  assert privacy.one_hot_diameter([1, 1]) == 0.0


def test_product_of_box_and_one_hot_by_enumeration():
  box_corners = np.array(list(itertools.product([0.0, 2.0], [-1.0, 1.0])))
  one_hots = np.eye(3)
  points = np.array([np.concatenate([b, o]) for b in box_corners for o in one_hots])
  expected = privacy.product_diameter(
    privacy.box_diameter([0.0, -1.0], [2.0, 1.0]), privacy.one_hot_diameter([3])
  )
  assert expected == pytest.approx(_max_pairwise_distance(points), rel=1e-12)


@pytest.mark.parametrize("dim,step", [(1, 1 / 400), (2, 1 / 60), (3, 1 / 18)])
@pytest.mark.parametrize("radius", [0.3, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0])
def test_nonnegative_ball_against_brute_force_grid(dim, step, radius):
  grid_1d = np.arange(0.0, 1.0 + step / 2, step)
  grid = np.array(list(itertools.product(grid_1d, repeat=dim)))
  points = _project_onto_ball(grid, radius)
  brute = _max_pairwise_distance(points)
  exact = privacy.nonnegative_ball_diameter(radius, dim)
  # The grid is a subset of the domain: it can only under-estimate the diameter,
  # by at most twice the distance from a point of the domain to the nearest grid image.
  assert brute <= exact + 1e-12
  assert exact - brute <= 2.0 * math.sqrt(dim) * step


def _witness_pair(radius, dim):
  """The maximising pair from the derivation (disjoint supports)."""
  r2 = radius * radius

  def fill(num):
    vec = np.zeros(num)
    budget = min(float(num), r2)
    full = int(math.floor(budget))
    vec[:full] = 1.0
    if full < num:
      vec[full] = math.sqrt(budget - full)
    return vec

  best, best_a = -1.0, 0
  for a in range(dim + 1):
    value = min(a, r2) + min(dim - a, r2)
    if value > best:
      best, best_a = value, a
  x = np.concatenate([fill(best_a), np.zeros(dim - best_a)])
  y = np.concatenate([np.zeros(best_a), fill(dim - best_a)])
  return x, y


@settings(max_examples=200, deadline=None)
@given(radius=st.floats(min_value=0.0, max_value=12.0), dim=st.integers(min_value=1, max_value=120))
def test_nonnegative_ball_attained_and_bounded(radius, dim):
  exact = privacy.nonnegative_ball_diameter(radius, dim)
  x, y = _witness_pair(radius, dim)
  for v in (x, y):  # the witnesses lie in the domain ...
    assert np.all(v >= 0.0) and np.all(v <= 1.0)
    assert np.linalg.norm(v) <= radius * (1 + 1e-12) + 1e-15
  # ... and attain the value (so it is exact, not just an upper bound).
  assert np.linalg.norm(x - y) == pytest.approx(exact, rel=1e-9, abs=1e-12)
  # Full enumeration over support sizes agrees with the candidate set.
  r2 = radius * radius
  enumerated = max(min(a, r2) + min(dim - a, r2) for a in range(dim + 1))
  assert exact == pytest.approx(math.sqrt(enumerated), rel=1e-12, abs=1e-15)
  # Classical bounds.
  assert exact <= min(math.sqrt(2.0) * radius, math.sqrt(dim), 2.0 * radius) + 1e-12
  if dim >= 2 * math.ceil(r2) and radius > 0:
    assert exact == pytest.approx(math.sqrt(2.0) * radius, rel=1e-12)


def test_nonnegative_ball_strictly_below_min_bound():
  # d = 3, R^2 = 1.5: D^2 = 1 + 1.5 = 2.5 < 3 = min(2 R^2, d).
  assert privacy.nonnegative_ball_diameter(math.sqrt(1.5), 3) == pytest.approx(
    math.sqrt(2.5), rel=1e-12
  )
  # Images: 28x28 pixels in a ball of radius 10 -> sqrt(2) * 10.
  assert privacy.nonnegative_ball_diameter(10.0, 784) == pytest.approx(
    math.sqrt(2.0) * 10.0, rel=1e-15
  )
  # Radius above sqrt(d): the box itself.
  assert privacy.nonnegative_ball_diameter(5.0, 4) == pytest.approx(2.0, rel=1e-15)
