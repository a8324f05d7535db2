"""Synthetic records back to a table in the original columns, types and order, written as CSV.

The rule for types (docs/data.md, "CSV files"): a numeric column declared `"integer": true`
comes back as whole numbers (rounded, within its bounds); other numeric columns as decimal
numbers with 7 significant digits (the precision of the float32 records); a categorical column
as the declared category written as str(category), which is how the CSV reader matched it.
Columns come in the order of the input file's header (the schema's order for other sources).
"""

import csv
from typing import Dict, Optional, Sequence

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


def _cell_writer(column):
  if isinstance(column, NumericColumn):
    if column.integer:
      return lambda v: str(int(v))
    return lambda v: format(float(v), ".7g")
  assert isinstance(column, CategoricalColumn)
  return str


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
  writers = [_cell_writer(domain.column(name)) for name in order]
  columns = [table[name].tolist() for name in order]
  with files.atomic_write(path, "w") as f:
    out = csv.writer(f, delimiter=delimiter, lineterminator="\n")
    out.writerow(order)
    for row in zip(*columns):
      out.writerow([w(v) for w, v in zip(writers, row)])
  return len(records)
