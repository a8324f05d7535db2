"""Declared bins: from records in a tabular domain to discrete attributes and back.

Marginal-based mechanisms (MST, AIM) work on discrete attributes. A categorical column is its
category index. A numeric column is cut into bins that are DECLARED, never derived from the data:
either a number k of equal-width bins over the column's declared [low, high], or explicit edges
in the column's declared units (increasing, first = low, last = high; `lipdp.data.bins`). A
schema file may carry them as an optional per-column "bins" entry (`bins_from_schema`; lipdp's
schema loader keeps it as the column's `NumericColumn.bins`, so the same file serves both);
columns without one get `DEFAULT_NUMERIC_BINS` equal-width bins.

Discretising is record-wise (each record's attributes depend on that record and the declared
edges only), so a histogram of the discretised records has the same sensitivity as any
histogram. Back from bins to records, a numeric value is drawn uniformly within its bin (in
the domain's [0, 1] coordinates), a category becomes its one-hot block: post-processing, with
its own generator (no privacy noise).
"""

import json
import os
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from lipdp.data import bins as data_bins

# Equal-width bins of a numeric column that declares none (a constant, not a data statistic).
DEFAULT_NUMERIC_BINS = 16


def numeric_edges(
  domain: Any, bins: Optional[Mapping[str, Any]] = None, default: int = DEFAULT_NUMERIC_BINS
) -> Dict[str, np.ndarray]:
  """Bin edges in [0, 1] units for every numeric column of a TabularDomain.

  Args:
    domain: a `lipdp.data.TabularDomain`.
    bins: {column: count or edges in declared units}, or the path of a schema file whose
      columns carry "bins" (`bins_from_schema`); columns left out get the bins they declare
      (`NumericColumn.bins`), or else `default` equal-width bins. Names that are not numeric
      columns are refused.
    default: the equal-width bin count of undeclared columns.

  Returns:
    {column: increasing edges from 0.0 to 1.0}.
  """
  if isinstance(bins, (str, os.PathLike)):
    bins = bins_from_schema(bins)
  bins = dict(bins or {})
  numeric = {c.name: c for c in getattr(domain, "columns", ()) if hasattr(c, "low")}
  unknown = sorted(set(bins) - set(numeric))
  if unknown:
    raise ValueError(
      f"bins declared for {unknown}, which are not numeric columns of the "
      f"domain ({sorted(numeric)})"
    )
  # A column's own declared bins (`NumericColumn.bins`) come before `default`.
  return {
    name: data_bins.unit_edges(
      name,
      col.low,
      col.high,
      bins.get(name, default if getattr(col, "bins", None) is None else col.bins),
    )
    for name, col in numeric.items()
  }


def bins_from_schema(schema: Union[Mapping[str, Any], str, os.PathLike]) -> Dict[str, Any]:
  """The optional per-column "bins" entries of a tabular schema (a dict or a JSON file)."""
  if not isinstance(schema, Mapping):
    with open(os.fspath(schema), encoding="utf-8") as f:
      schema = json.load(f)
  return {
    c["name"]: c["bins"]
    for c in schema.get("columns", ())
    if isinstance(c, Mapping) and c.get("bins") is not None
  }


def attribute_sizes(domain: Any, edges: Mapping[str, np.ndarray]) -> Dict[str, int]:
  """{column: number of discrete values}, in the domain's column order."""
  sizes = {}
  for block in domain.blocks:
    sizes[block.name] = (
      len(edges[block.name]) - 1 if block.kind == "numeric" else block.stop - block.start
    )
  return sizes


def to_attributes(
  records: np.ndarray, domain: Any, edges: Mapping[str, np.ndarray]
) -> Dict[str, np.ndarray]:
  """Records (n, dim) -> {column: int64 bin or category index}, record by record.

  A numeric coordinate u in [0, 1] falls in bin i when edges[i] <= u < edges[i + 1] (the last
  bin also holds u = 1).
  """
  x = np.asarray(records)
  out = {}
  for block in domain.blocks:
    if block.kind == "numeric":
      out[block.name] = data_bins.bin_of(x[:, block.start], edges[block.name])
    else:
      out[block.name] = np.argmax(x[:, block.start : block.stop], axis=1).astype(np.int64)
  return out


def from_attributes(
  attributes: Mapping[str, np.ndarray],
  domain: Any,
  edges: Mapping[str, np.ndarray],
  rng: np.random.Generator,
) -> np.ndarray:
  """{column: index} -> float32 records in the domain (numeric: uniform within the bin)."""
  n = len(next(iter(attributes.values())))
  out = np.zeros((n, domain.dim), np.float32)
  for block in domain.blocks:
    idx = np.asarray(attributes[block.name], dtype=np.int64)
    if block.kind == "numeric":
      e = edges[block.name]
      u = (e[idx] + rng.random(n) * (e[idx + 1] - e[idx])).astype(np.float32)
      # Stay below the upper edge in float32 (except in the last bin, which holds 1.0).
      below = np.nextafter(e[idx + 1].astype(np.float32), np.float32(-np.inf))
      last = idx == len(e) - 2
      u = np.where(last, u, np.minimum(u, below))
      out[:, block.start] = np.clip(np.maximum(u, e[idx].astype(np.float32)), 0.0, 1.0)
    else:
      out[np.arange(n), block.start + idx] = np.float32(block.scale)
  return out


def describe_edges(domain: Any, edges: Mapping[str, np.ndarray]) -> Dict[str, list]:
  """{numeric column: edges in declared units}, for reports and logs."""
  out = {}
  for col in getattr(domain, "columns", ()):
    if col.name in edges:
      out[col.name] = [float(col.low + u * (col.high - col.low)) for u in edges[col.name]]
  return out


def check_discrete_domain(sizes: Mapping[str, int], method: str) -> None:
  """Marginal-based mechanisms model pairs of attributes: they need two or more."""
  if len(sizes) < 2:
    raise ValueError(
      f"{method} needs at least two columns (it models their pairs), got {list(sizes)}"
    )
