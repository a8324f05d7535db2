"""l2 diameters of bounded input domains, and the sensitivity L * D.

The privacy mechanism of lipdp releases z = mu(x) + sigma * xi with mu certified
L-Lipschitz (l2 -> l2). For two records x, x' in a domain X of l2 diameter

    D = sup_{x, x' in X} ||x - x'||_2,

the means differ by at most Delta = L * D, which is the l2 sensitivity of the
Gaussian mechanism under the replace-one relation (any record replaced by any
other record of X). Everything here is about computing D exactly, or a provable
upper bound on it, for the domains that lipdp's preprocessing produces. The
domain must be fixed before looking at the private data (see docs/method.md).

Diameters of product sets. If X = X_1 x ... x X_m (coordinates split into
blocks that are constrained independently), then

    ||x - x'||^2 = sum_i ||x_i - x'_i||^2  <=  sum_i D_i^2,

with equality attained by taking in every block a pair that attains D_i (the
blocks are independent), so D = sqrt(sum_i D_i^2) exactly. Adding the block
diameters linearly (D_1 + ... + D_m) is valid but loose.
"""

import math
from typing import Sequence, Union

import numpy as np

from lipdp.privacy import _validation

ArrayLike = Union[float, Sequence[float], np.ndarray]


def l2_ball_diameter(radius: float) -> float:
  """Diameter of an l2 ball {x : ||x - c||_2 <= R} in any dimension >= 1: 2R.

  Attained by the antipodal pair c + R u, c - R u for any unit vector u.

  Args:
    radius: the ball's radius R >= 0.

  Returns:
    2 R.
  """
  radius = _validation.nonnegative(radius, "radius")
  return 2.0 * radius


def box_diameter(low: ArrayLike, high: ArrayLike, dim: Union[int, None] = None) -> float:
  """Diameter of the box prod_i [low_i, high_i]: ||high - low||_2.

  A box is the product of the intervals [low_i, high_i] of diameters
  high_i - low_i, so by the product rule (module docstring) its diameter is
  sqrt(sum_i (high_i - low_i)^2), attained by the opposite corners `low` and
  `high`.

  Args:
    low: per-coordinate lower bounds, or a scalar shared by all coordinates.
    high: per-coordinate upper bounds, or a scalar; must be >= low everywhere.
    dim: number of coordinates; needed only when both `low` and `high` are
      scalars (a scalar pair without `dim` is a 1-dimensional interval). When
      given with arrays it must match their length.

  Returns:
    The l2 diameter of the box.
  """
  low_arr = np.asarray(low, dtype=np.float64)
  high_arr = np.asarray(high, dtype=np.float64)
  for name, arr in (("low", low_arr), ("high", high_arr)):
    if arr.ndim > 1:
      raise ValueError(f"{name} must be a scalar or a 1-D array, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
      raise ValueError(f"{name} must be finite (no NaN or inf).")
  if dim is not None:
    dim = _validation.positive_int(dim, "dim")
  try:
    low_b, high_b = np.broadcast_arrays(np.atleast_1d(low_arr), np.atleast_1d(high_arr))
  except ValueError as err:
    raise ValueError(
      f"low and high have incompatible lengths {low_arr.shape} and {high_arr.shape}."
    ) from err
  if dim is not None:
    if low_b.shape[0] == 1:
      low_b = np.broadcast_to(low_b, (dim,))
      high_b = np.broadcast_to(high_b, (dim,))
    elif low_b.shape[0] != dim:
      raise ValueError(f"dim={dim} does not match the length {low_b.shape[0]} of low/high.")
  if np.any(high_b < low_b):
    raise ValueError("high must be >= low in every coordinate.")
  return float(np.linalg.norm(high_b - low_b))


def one_hot_diameter(num_blocks: Union[int, Sequence[int]]) -> float:
  """Diameter of the one-hot encodings of m categorical features: sqrt(2 m).

  A block with c >= 2 categories encodes a value as a standard basis vector of
  R^c (or, for soft encodings, a point of the probability simplex); two
  distinct basis vectors are sqrt(2) apart, and sqrt(2) is also the diameter
  of the simplex. A block with a single category is constant and adds 0. The
  blocks are independent, so by the product rule the diameter is
  sqrt(2 * m) where m counts the blocks with at least two categories; this is
  attained by changing every such block. (m * sqrt(2), adding the blocks'
  diameters linearly, would be a loose upper bound.)

  Args:
    num_blocks: either the number m of one-hot blocks, each with >= 2
      categories, or a sequence holding the number of categories of each block
      (entries >= 1; blocks with one category contribute nothing).

  Returns:
    sqrt(2 m).
  """
  if isinstance(num_blocks, (int, np.integer)) and not isinstance(num_blocks, (bool, np.bool_)):
    if num_blocks < 0:
      raise ValueError(f"num_blocks must be >= 0, got {num_blocks}.")
    informative = int(num_blocks)
  else:
    try:
      counts = list(num_blocks)
    except TypeError as err:
      raise ValueError(
        f"num_blocks must be an int or a sequence of per-block category counts, got {num_blocks!r}."
      ) from err
    informative = 0
    for i, c in enumerate(counts):
      c = _validation.positive_int(c, f"num_blocks[{i}] (categories of block {i})")
      if c >= 2:
        informative += 1
  return math.sqrt(2.0 * informative)


def product_diameter(*diameters: float) -> float:
  """Diameter of a product set X_1 x ... x X_m: sqrt(sum_i D_i^2).

  Exact (see the module docstring): the bound ||x - x'||^2 <= sum_i D_i^2 is
  attained by taking a diameter-attaining pair in every factor.

  Args:
    *diameters: the diameters D_i >= 0 of the factors.

  Returns:
    sqrt(sum_i D_i^2); 0 for an empty product.
  """
  total = 0.0
  for i, d in enumerate(diameters):
    d = _validation.nonnegative(d, f"diameters[{i}]")
    total += d * d
  return math.sqrt(total)


def _max_sq_norm_on_coords(num_coords: int, radius_sq: float) -> float:
  """max ||x||^2 over x in [0,1]^m with ||x||^2 <= R^2: min(m, R^2)."""
  return min(float(num_coords), radius_sq)


def nonnegative_ball_diameter(radius: float, dim: int) -> float:
  """Exact diameter of S = [0, 1]^d  intersected with  {x : ||x||_2 <= R}.

  This is the domain of images scaled to [0, 1] and then projected onto the
  origin-centred l2 ball of radius R by rescaling, x -> x * min(1, R/||x||):
  rescaling by a factor in [0, 1] keeps every pixel in [0, 1], so the images
  land in S (and every point of S is its own image, so S is exactly the
  range). Because all coordinates are non-negative the diameter is much
  smaller than the ball's 2R.

  Derivation (exact for every R >= 0 and d >= 1).

  1. Disjoint supports suffice. Let x, y in S and suppose x_i > 0 and y_i > 0
     for some i, say x_i >= y_i. Setting y_i to 0 keeps y in S (the box
     constraint holds and ||y|| decreases) and changes (x_i - y_i)^2 into
     x_i^2 >= (x_i - y_i)^2. So some maximising pair has disjoint supports
     A = supp(x), B = supp(y), and then ||x - y||^2 = ||x||^2 + ||y||^2.
  2. On m coordinates, max ||x||^2 over [0,1]^m with ||x|| <= R equals
     min(m, R^2): it is at most m (box) and at most R^2 (ball); if R^2 >= m the
     all-ones vector attains m; if R^2 < m, floor(R^2) ones plus one coordinate
     equal to sqrt(R^2 - floor(R^2)) <= 1 (ceil(R^2) <= m coordinates in all)
     attain R^2.
  3. Hence D^2 = max over integers a + b <= d (a = |A|, b = |B|) of
     f(a, b) = min(a, R^2) + min(b, R^2). f is non-decreasing in a and b, so
     b = d - a, and g(a) = min(a, R^2) + min(d - a, R^2) is concave and
     piecewise linear with breakpoints R^2 and d - R^2; its maximum over the
     integers 0..d is attained at a floor or ceiling of a breakpoint or of d/2
     (the flat part of g, if any, contains one of these points; otherwise g
     peaks at d/2). We evaluate g at those candidates.

  Consequences, which are also the classical upper bounds:
    * D <= sqrt(2) R, because for non-negative x, y the inner product is >= 0 and
      ||x - y||^2 = ||x||^2 + ||y||^2 - 2 <x, y> <= 2 R^2; equality iff
      d >= 2 ceil(R^2) (two disjoint supports of ceil(R^2) coordinates fit);
    * D <= sqrt(d) (the box), with equality iff some integer a satisfies
      d - R^2 <= a <= R^2 (for instance when R^2 >= ceil(d / 2));
    * D <= 2R (the ball), with equality only when R = 0 (non-negativity rules
      out antipodal pairs);
    * so D <= min(sqrt(2) R, sqrt(d), 2R), often with strict inequality
      (e.g. d = 3, R^2 = 1.5 gives D^2 = 2.5 < 3).

  Args:
    radius: the ball radius R >= 0 (declared before seeing the data).
    dim: the number of pixels d >= 1.

  Returns:
    The exact l2 diameter of S.
  """
  radius = _validation.nonnegative(radius, "radius")
  dim = _validation.positive_int(dim, "dim")
  r2 = radius * radius
  candidates = set()
  for point in (r2, dim - r2, dim / 2.0):
    for a in (math.floor(point), math.ceil(point)):
      candidates.add(min(max(int(a), 0), dim))
  candidates.update((0, dim))
  best = max(
    _max_sq_norm_on_coords(a, r2) + _max_sq_norm_on_coords(dim - a, r2) for a in candidates
  )
  diameter = math.sqrt(best)
  # The classical bounds hold by construction; the min guards against any
  # floating-point excess (it never changes the value by more than an ulp).
  return min(diameter, math.sqrt(2.0) * radius, math.sqrt(dim), 2.0 * radius)


def sensitivity(lipschitz: float, diameter: float) -> float:
  """l2 sensitivity of mu on a domain of diameter D: Delta = L * D.

  For x, x' in X, ||mu(x) - mu(x')|| <= L ||x - x'|| <= L D. This bound is
  already a replace-one bound (x' is any record of the domain, not a special
  "zero" record), so no factor 2 is added downstream.

  Args:
    lipschitz: a *certified* upper bound L >= 0 on the l2 -> l2 Lipschitz
      constant of the encoder mean (from the trained weights, not the target).
    diameter: the l2 diameter D >= 0 of the declared input domain.

  Returns:
    L * D.
  """
  lipschitz = _validation.nonnegative(lipschitz, "lipschitz")
  diameter = _validation.nonnegative(diameter, "diameter")
  return lipschitz * diameter
