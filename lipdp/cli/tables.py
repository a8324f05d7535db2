"""Synthetic records back to a table in the original columns, types and order, written as CSV.

The rule for types (docs/data.md, "CSV files"): a numeric column declared `"integer": true`
comes back as whole numbers (rounded, within its bounds); other numeric columns as the shortest
decimal number, with at least 7 significant digits (about the precision of the float32
records), that lies within the declared [low, high] and that the CSV reader encodes to the same
record coordinate as the decoded value. Fewer digits could leave the bounds (a low of
0.1000000049 written as 0.1) and make `lipdp schema check --strict` refuse lipdp's own output;
17 significant digits always qualify, since they reproduce the float64 value exactly. A
categorical column comes back as the declared category written as str(category), which is how
the CSV reader matched it (a schema whose categories print alike is refused). Columns come in
the order of the input file's header (the schema's order for other sources).
"""

import csv
from typing import Dict, List, Optional, Sequence

import numpy as np

from lipdp import files
from lipdp.data import CategoricalColumn, NumericColumn, TabularDomain


def synthetic_table(domain: TabularDomain, records: np.ndarray) -> Dict[str, np.ndarray]:
  """Decoded columns in declared types (integer columns int64, categories as declared)."""
  if not isinstance(domain, TabularDomain):
    raise ValueError(
      "a CSV table needs a tabular domain (a schema); this release holds "
      f"{type(domain).__name__} records"
    )
  return domain.decode(records)


_MIN_DIGITS = 7
_EXACT_DIGITS = 17  # enough significant digits to reproduce any float64 exactly


def numeric_texts(column: NumericColumn, values: np.ndarray) -> List[str]:
  """The cells of a numeric column that is not declared integer (module docstring's rule).

  For each decoded value v (float64, within [low, high]), the shortest '%.{p}g' text, p >= 7,
  whose number t satisfies low <= t <= high and encode(t) == encode(v) under the column's own
  encoding (`TabularDomain.encode`). p = 17 reproduces v exactly, so every value gets a text.
  """
  single = TabularDomain([column])
  values = np.asarray(values, np.float64)
  target = single.encode({column.name: values})[:, 0]
  texts = [None] * len(values)
  todo = np.arange(len(values))
  for digits in range(_MIN_DIGITS, _EXACT_DIGITS + 1):
    if not todo.size:
      break
    candidates = [format(float(v), f".{digits}g") for v in values[todo]]
    back = np.array([float(t) for t in candidates], np.float64)
    ok = (back >= column.low) & (back <= column.high)
    ok &= single.encode({column.name: back})[:, 0] == target[todo]
    for i in np.flatnonzero(ok):
      texts[todo[i]] = candidates[i]
    todo = todo[~ok]
  if todo.size:  # unreachable: 17 digits give v itself, inside its bounds
    raise AssertionError(f"column {column.name!r}: no text reproduces {values[todo[0]]!r}")
  return texts


def _cells(column, values: np.ndarray) -> List[str]:
  if isinstance(column, NumericColumn):
    if column.integer:
      return [str(int(v)) for v in values.tolist()]
    return numeric_texts(column, values)
  assert isinstance(column, CategoricalColumn)
  return [str(v) for v in values.tolist()]


def write_csv(
  path: str,
  domain: TabularDomain,
  records: np.ndarray,
  column_order: Optional[Sequence[str]] = None,
  delimiter: str = ",",
) -> int:
  """Writes the synthetic records as a CSV file, atomically; returns the number of rows.

  Args:
    path: the CSV file to write (replaced only once complete).
    domain: the release's tabular domain.
    records: the synthetic records (n, domain.dim).
    column_order: the columns in output order (default: the schema's order); must be a
      permutation of the declared columns.
    delimiter: the field delimiter.
  """
  table = synthetic_table(domain, records)
  order = list(column_order) if column_order is not None else list(domain.column_names)
  if sorted(order) != sorted(domain.column_names):
    raise ValueError(
      f"column order {order} is not a permutation of the declared columns "
      f"{list(domain.column_names)}"
    )
  columns = [_cells(domain.column(name), table[name]) for name in order]
  with files.atomic_write(path, "w") as f:
    out = csv.writer(f, delimiter=delimiter, lineterminator="\n")
    out.writerow(order)
    out.writerows(zip(*columns))
  return len(records)
