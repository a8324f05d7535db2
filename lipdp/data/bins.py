"""Declared bins of a numeric column, as edges in the domain's [0, 1] coordinates.

A numeric column may declare how it is cut into bins: a count k of equal-width bins over its
declared [low, high], or explicit edges in its declared units (strictly increasing, the first
equal to low and the last to high). Like the bounds, the bins are declared in advance from the
column's documented meaning, never computed from the records, so anything that uses them (the
marginal-based baselines' discretisation, the VAE decoder's binned likelihood, the binned
fidelity metric) is record-wise and data-independent.

A declared edge can isolate a value that real columns hold in bulk (bank-marketing's
`pdays` = -1, "not contacted before", in 82% of its records, sits alone in [-1, -0.5)): a
density uniform inside that bin gives the value back, where equal-width bins on [-1, 999]
would spread it over a bin 31 days wide.
"""

from typing import Any, Sequence

import numpy as np


def unit_edges(name: str, low: float, high: float, spec: Any) -> np.ndarray:
  """Edges in [0, 1] (float64, first 0.0, last 1.0) of a column declared on [low, high].

  Args:
    name: the column's name (for error messages).
    low, high: the column's declared bounds.
    spec: a count k >= 1 of equal-width bins, or edges in declared units (at least two,
      finite, strictly increasing, from low to high up to 1e-9 of the width).

  Returns:
    (edge - low) / (high - low) for each edge, with the ends set exactly to 0 and 1.
  """
  if isinstance(spec, (bool, np.bool_)):
    raise ValueError(f"column {name!r}: bins must be a count or a list of edges")
  if isinstance(spec, (int, np.integer)):
    if spec < 1:
      raise ValueError(f"column {name!r}: needs at least one bin, got {spec}")
    return np.linspace(0.0, 1.0, int(spec) + 1)
  if isinstance(spec, (str, bytes)) or not isinstance(spec, (Sequence, np.ndarray)):
    raise ValueError(f"column {name!r}: bins must be a count or a list of edges, got {spec!r}")
  try:
    edges = np.asarray(spec, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"column {name!r}: edges must be numbers, got {spec!r}") from None
  if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)):
    raise ValueError(f"column {name!r}: edges must be at least two finite numbers")
  if not np.all(np.diff(edges) > 0):
    raise ValueError(f"column {name!r}: edges must increase strictly, got {list(spec)}")
  tol = 1e-9 * (high - low)
  if abs(edges[0] - low) > tol or abs(edges[-1] - high) > tol:
    raise ValueError(
      f"column {name!r}: the first and last edges must be the declared "
      f"bounds [{low}, {high}], got [{edges[0]}, {edges[-1]}]"
    )
  unit = (edges - low) / (high - low)
  unit[0], unit[-1] = 0.0, 1.0
  return unit


def bin_of(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """The bin (int64) of each [0, 1] coordinate: edges[i] <= u < edges[i + 1], the last bin
  also holding u = 1.

  In float32, the records' precision: a value declared exactly at an edge is encoded as the
  float32 of the same float64 quotient as the edge, so it lands in the upper bin.
  """
  inner = np.asarray(edges, np.float64)[1:-1].astype(np.float32)
  u = np.asarray(values).astype(np.float32)
  return np.searchsorted(inner, u, side="right").astype(np.int64)
