"""A private measure on a binary hierarchical partition (He, Vershynin, Zhu 2023), replace-one.

He, Vershynin and Zhu, "Algorithmically Effective Differentially Private Synthetic Data", COLT
2023 (PMLR 195): for n records in [0, 1]^d, a private measure built from noisy counts on a
hierarchical binary partition, made consistent top-down, gives synthetic data whose expected
1-Wasserstein distance to the records is O((eps n)^(-1/d)) for d >= 2 (their abstract; we could
not read the theorems' statements and constants, so the bound checked here is the one proved
below for this implementation). For the 2-4 dimensional numeric data it is meant for.

The mechanism. The records are the numeric coordinates of the domain, in [0, 1]^d.

1. Partition. Level 0 is the cube; level j + 1 halves every level-j cell along coordinate
   j mod d, so level j has 2^j cells (boxes), fixed in advance. Depth r.
2. Counts. For every level j = 1..r, add independent Laplace(sigma_j) noise to the count of
   every level-j cell. The root count is n, public under replace-one (both neighbours have n
   records), so it gets no noise.
3. Consistency (post-processing), top-down: m(root) = n; the children a, b of a cell P with
   m(P) records get m(a) = m(P) y+(a) / (y+(a) + y+(b)) records (m(P) / 2 when both noisy counts
   y are <= 0; y+ = max(y, 0)), rounded to an integer at random without bias, and
   m(b) = m(P) - m(a).
4. Synthetic data: m(c) points uniform in each leaf c (n points in all).

Privacy (replace-one). Each level's count vector is a histogram: one replaced record moves one
count down and one up, l1 sensitivity 2 (1 under add/remove, where the root count would also
need noise). Level j is 2 / sigma_j pure DP; the levels compose to eps = sum_j 2 / sigma_j, at
delta = 0 (`lipdp.privacy.CentralRelease` of r Laplace measurements).

Accuracy (proved here; W1 of the uniform measures on the records X and the synthetic Y, in any
norm, with diam_j the diameter of a level-j cell). Let mu(c) be the number of records in c,
D_j = sum over level-j cells of |m(c) - mu(c)| and E_j = sum over level-j cells of |noise|.

* Transport. Let nu_j put mass m(c) in every level-j cell c, spread like the records in c
  (uniformly if there are none); nu_0 = mu. Within a level-j cell P with children a, b, nu_j and
  nu_{j+1} differ only by moving |m(a) - m(P) mu(a) / mu(P)| from one child to the other, at
  distance <= diam_j; that amount is at most (|m(a) - mu(a)| + |m(b) - mu(b)| + |m(P) - mu(P)|) / 2.
  Moving nu_r to Y moves mass within leaves. Hence, pathwise,

      n W1(X, Y) <= sum_{j=0}^{r-1} diam_j (D_j + D_{j+1}) / 2 + n diam_r.         (T)

* Consistency. With e = y - mu the noise and s = y+(a) + y+(b), |m(a) - y+(a) m(P)/s| summed over
  a, b is |m(P) - s| <= |m(P) - mu(P)| + |e(a)| + |e(b)|, and |y+ - mu| <= |e|; with the rounding
  error rho_P (|rho_P| < 1, mean 0, E|rho_P| <= 1/2) this gives, pathwise,
  D_{j+1} <= D_j + 2 E_{j+1} + 2 sum_P |rho_P|, and D_0 = 0 (the same holds when s = 0).
* In expectation, E E_i = 2^i sigma_i and E sum_P |rho_P| <= 2^(i-1) / 2 at level i, so
  E D_j <= Delta_j := sum_{i=1}^{j} 2^i (2 sigma_i + 1/2), and by (T)

      E W1(X, Y) <= diam_r + (1/n) sum_{j=0}^{r-1} diam_j (Delta_j + Delta_{j+1}) / 2.      (B)

Noise allocation. (B) is sum_i a_i sigma_i + const with
a_i = (2^i / n) (diam_{i-1} + 2 sum_{j=i}^{r-1} diam_j); minimising it subject to
sum_i 2 / sigma_i = eps gives sigma_i = (2 / eps) (sum_k sqrt(a_k)) / sqrt(a_i) (Lagrange), the
larger noise on the coarse levels, as in the paper's reference code. Depth: (B) is a worst case
over data sets and its minimiser (`best_depth`) is 2-5 levels too shallow in practice, so the
default depth (`default_depth`) is the deepest r at which a cell's average count n / 2^r is still
at least the noise scale sigma_r of that level (signal above noise); on the tests' examples it
lands at the empirical optimum of W1 (d = 2: within one level). All of it depends on n, eps and
d only (public), never on the records. `accuracy_bound` returns (B) for the depth used;
`pathwise_bound` returns the right side of (T) from the released and true counts (the tests
check that the exact W1 never exceeds it).
"""

import math
from typing import Any, Optional

import numpy as np

from lipdp import discrete_gaussian
from lipdp import privacy
from lipdp.baselines import base
from lipdp.privacy import zcdp

NAME = "private_measure"
MIN_DIMENSION, MAX_DIMENSION = 2, 4
LEVEL_L1_SENSITIVITY = 2.0  # one replaced record: one count down, one up


def cell_sides(level: int, dim: int) -> np.ndarray:
  """Side lengths of a level-`level` cell (coordinate k halved at levels k+1, k+1+d, ...)."""
  splits = np.array([(level - k + dim - 1) // dim for k in range(dim)])
  return 2.0 ** (-splits)


def cell_diameter(level: int, dim: int, norm: float = 2) -> float:
  return float(np.linalg.norm(cell_sides(level, dim), ord=norm))


def _coefficients(n: int, depth: int, dim: int, norm: float):
  diam = [cell_diameter(j, dim, norm) for j in range(depth + 1)]
  a = np.array(
    [(2.0**i / n) * (diam[i - 1] + 2.0 * sum(diam[i:depth])) for i in range(1, depth + 1)]
  )
  return diam, a


def noise_scales(epsilon: float, n: int, depth: int, dim: int, norm: float = 2) -> np.ndarray:
  """sigma_1..sigma_r minimising (B) with sum_j 2 / sigma_j = epsilon (module docstring)."""
  _, a = _coefficients(n, depth, dim, norm)
  root = np.sqrt(a)
  return (LEVEL_L1_SENSITIVITY / epsilon) * root.sum() / root


def accuracy_bound(
  epsilon: float, n: int, depth: int, dim: int, norm: float = 2, sigmas: Optional[np.ndarray] = None
) -> float:
  """(B): the proved bound on E W1(X, Y) (module docstring)."""
  diam, _ = _coefficients(n, depth, dim, norm)
  if sigmas is None:
    sigmas = noise_scales(epsilon, n, depth, dim, norm)
  delta_j = np.concatenate(
    [[0.0], np.cumsum([2.0**i * (2.0 * sigmas[i - 1] + 0.5) for i in range(1, depth + 1)])]
  )
  total = sum(diam[j] * (delta_j[j] + delta_j[j + 1]) / 2.0 for j in range(depth))
  return diam[depth] + total / n


def best_depth(epsilon: float, n: int, dim: int, norm: float = 2) -> int:
  """The depth r minimising (B) (public: a function of epsilon, n and d only)."""
  top = max(1, int(math.floor(math.log2(max(epsilon * n, 2.0)))) + 2 * dim)
  bounds = [accuracy_bound(epsilon, n, r, dim, norm) for r in range(1, top + 1)]
  return int(np.argmin(bounds)) + 1


def default_depth(epsilon: float, n: int, dim: int, norm: float = 2) -> int:
  """The deepest r with n / 2^r >= sigma_r (module docstring); public numbers only."""
  depth = 1
  for r in range(1, int(math.ceil(math.log2(max(epsilon * n, 2.0)))) + 2 * dim + 1):
    if n / 2.0**r >= noise_scales(epsilon, n, r, dim, norm)[-1]:
      depth = r
  return depth


def _leaf_index(points: np.ndarray, depth: int) -> np.ndarray:
  """Index of the level-`depth` cell of each point (children of cell c are 2c, 2c + 1)."""
  n, dim = points.shape
  idx = np.zeros(n, dtype=np.int64)
  lo = np.zeros((n, dim))
  width = np.ones((n, dim))
  rows = np.arange(n)
  for j in range(depth):
    k = j % dim
    width[:, k] /= 2.0
    upper = points[:, k] >= lo[:, k] + width[:, k]
    lo[rows, k] += np.where(upper, width[:, k], 0.0)
    idx = 2 * idx + upper
  return idx


def level_counts(points: np.ndarray, depth: int) -> list:
  """[counts of the 2^j level-j cells for j = 0..depth] (int64)."""
  leaves = np.bincount(_leaf_index(points, depth), minlength=2**depth)
  counts = [leaves]
  for _ in range(depth):
    counts.append(counts[-1].reshape(-1, 2).sum(axis=1))
  return counts[::-1]


def _consistent(noisy: list, n: int, rng: np.random.Generator) -> list:
  """Top-down integer consistency (step 3): [m at level 0..r]."""
  m = [np.array([n], dtype=np.int64)]
  for y in noisy:
    pos = np.maximum(y, 0.0).reshape(-1, 2)
    parent = m[-1].astype(np.float64)
    s = pos.sum(axis=1)
    share = np.where(s > 0, pos[:, 0] / np.where(s > 0, s, 1.0), 0.5)
    target = parent * share
    left = np.floor(target)
    left += rng.random(target.shape) < (target - left)
    left = np.minimum(left, parent)
    m.append(np.stack([left, parent - left], axis=1).reshape(-1).astype(np.int64))
  return m


def _leaf_boxes(depth: int, dim: int):
  """Lower corners and sides of the 2^depth leaves, in index order."""
  lo = np.zeros((1, dim))
  for j in range(depth):
    k = j % dim
    side = cell_sides(j + 1, dim)[k]
    upper = lo.copy()
    upper[:, k] += side
    lo = np.stack([lo, upper], axis=1).reshape(-1, dim)
  return lo, cell_sides(depth, dim)


def pathwise_bound(points: np.ndarray, released: list, norm: float = 2) -> float:
  """The right side of (T) divided by n: an upper bound on W1 that holds for every draw."""
  n, dim = points.shape
  depth = len(released) - 1
  true = level_counts(points, depth)
  d = [float(np.abs(released[j] - true[j]).sum()) for j in range(depth + 1)]
  total = sum(cell_diameter(j, dim, norm) * (d[j] + d[j + 1]) / 2.0 for j in range(depth))
  return cell_diameter(depth, dim, norm) + total / n


def fit(
  train: Any,
  domain: Any,
  *,
  epsilon: float,
  delta: float,
  seed: Optional[int] = None,
  depth: Optional[int] = None,
  norm: float = 2,
  notes=(),
) -> base.BaselineRelease:
  """Synthetic records from the private measure, with their replace-one privacy report.

  Args:
    train: the private records (n, d), in a tabular domain of 2 to 4 numeric columns.
    domain: a `lipdp.data.TabularDomain` with numeric columns only.
    epsilon: the target epsilon (> 0); the mechanism is pure epsilon-DP.
    delta: the report's delta in (0, 1) (the epsilon holds at delta = 0 too).
    seed: None draws the noise from OS entropy; an integer makes it reproducible.
    depth: the partition depth r (default: `default_depth`, from epsilon, n and d only).
    norm: the norm of the accuracy bound that chooses the noise (2: Euclidean).
    notes: remarks carried into the report.

  Returns:
    A `BaselineRelease` of n records; info holds the depth, the noise scales and the bound (B).
  """
  base.check_budget(epsilon, delta, NAME)
  blocks = list(domain.blocks)
  if any(b.kind != "numeric" for b in blocks):
    raise ValueError(
      "the private measure is for numeric data: the domain has categorical "
      f"columns {[b.name for b in blocks if b.kind != 'numeric']}"
    )
  dim = len(blocks)
  if not MIN_DIMENSION <= dim <= MAX_DIMENSION:
    raise ValueError(
      f"the private measure is for {MIN_DIMENSION}- to {MAX_DIMENSION}-"
      f"dimensional data, got {dim} columns"
    )
  x = base.check_records(train, domain)
  n = x.shape[0]
  if epsilon * n < 4.0:
    raise ValueError(
      f"{NAME}: epsilon * n = {epsilon * n:.3g} is infeasible: at that budget "
      "the Laplace noise on the first level of the partition already exceeds "
      "the number of records, so no level of the partition carries information; "
      "give epsilon * n >= 4"
    )
  depth = default_depth(epsilon, n, dim, norm) if depth is None else int(depth)
  if depth < 1:
    raise ValueError(f"depth must be >= 1, got {depth}")
  sigmas = noise_scales(epsilon, n, depth, dim, norm)
  rng = base.noise_rng(seed)
  true = level_counts(x, depth)
  # Exact discrete Laplace noise on a lattice, at least as private as Laplace(sigma_j).
  noisy = [
    discrete_gaussian.laplace_measurement(rng, true[j].astype(np.float64), sigmas[j - 1])
    for j in range(1, depth + 1)
  ]
  post = base.post_processing_rng(rng, seed)
  released = _consistent(noisy, n, post)
  lo, sides = _leaf_boxes(depth, dim)
  cells = np.repeat(np.arange(2**depth), released[-1])
  records = lo[cells] + post.random((n, dim)) * sides
  records = np.clip(records[post.permutation(n)], 0.0, 1.0)

  made = tuple(
    privacy.NoisyMeasurement(zcdp.LAPLACE, float(s), LEVEL_L1_SENSITIVITY, 1, "histogram")
    for s in sigmas
  )
  event = privacy.CentralRelease(NAME, made, n, exact_noise=True)
  report = base.central_report(
    event,
    domain=f"[0, 1]^{dim}: numeric columns {[b.name for b in blocks]} clipped to their "
    "declared bounds and rescaled",
    domain_description=domain.describe(),
    delta=delta,
    num_records=n,
    seed=seed,
    notes=tuple(notes)
    + (
      f"private measure: binary partition of depth {depth}, Laplace "
      "noise per level, consistency top-down, uniform within leaves",
    ),
  )
  base.check_spent(report, epsilon, NAME)
  info = {
    "depth": depth,
    "sigmas": [float(s) for s in sigmas],
    "expected_w1_bound": accuracy_bound(epsilon, n, depth, dim, norm, sigmas),
    "norm": norm,
    "released_counts": released,
  }
  return base.BaselineRelease(NAME, records.astype(np.float32), report, True, info)
