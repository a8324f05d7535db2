"""`lipdp schema draft`: a first schema read from a CSV file, marked as not private.

Everything the draft holds beyond the column names (bounds, category lists, which columns are
whole numbers) is read from the file, i.e. from the private data. Those are statistics of the
private records: a release that uses them leaks them, whatever its epsilon. The draft therefore
carries `lipdp.data.sources.DRAFT_SCHEMA_KEY` with a warning, and lipdp refuses to load it until
a person has replaced the bounds and categories with values known independently of the data and
deleted that key.

Typing rule: a column whose non-missing cells all parse as finite numbers is numeric if it has
more than `NUMERIC_MIN_DISTINCT` distinct values (else categorical: codes such as 0/1 or 1..5);
numeric columns of whole numbers get `"integer": true`. A column with more than
`max_categories` distinct non-numeric values (an identifier, free text) is left out, as are
constant columns and columns without a name.
"""

import dataclasses
import json
import math
from typing import Any, Dict, List, Optional

from lipdp.data import sources

NUMERIC_MIN_DISTINCT = 10
DEFAULT_MAX_CATEGORIES = 50

WARNING = (
  "NOT PRIVATE: drafted by `lipdp schema draft` from {path}. The bounds and category lists "
  "below are statistics of the private records; a release that uses them leaks them, whatever "
  "its epsilon. Replace every bound and category list with values known independently of this "
  "data (documentation, domain knowledge, legal or physical ranges, a public data set), and "
  'check each numeric column\'s "integer" flag, which the draft also read from the data and '
  "which picks the column's likelihood in the model; then delete this key: lipdp refuses a "
  "schema that still carries it."
)


@dataclasses.dataclass
class Draft:
  """A drafted schema and what the person must know about it.

  Attributes:
    schema: the JSON schema (with the draft marker).
    left_out: (column, reason) for columns not in the draft.
    notes: remarks about columns in the draft (missing cells, ...).
  """

  schema: Dict[str, Any]
  left_out: List[tuple]
  notes: List[str]


def _number(cell: str) -> Optional[float]:
  try:
    value = float(cell)
  except ValueError:
    return None
  if "_" in cell or not math.isfinite(value):
    return None
  return value


def _is_missing(cell: str) -> bool:
  return cell == "" or cell.lower() == "nan"


def _category(cell: str):
  """An integer category when the cell is written as one (reads back identically)."""
  try:
    as_int = int(cell)
  except ValueError:
    return cell
  return as_int if str(as_int) == cell else cell


def draft_schema(
  rows: sources.CsvRows, label: Optional[str] = None, max_categories: int = DEFAULT_MAX_CATEGORIES
) -> Draft:
  """Drafts a schema from the cells of a CSV file (see the module docstring for the rules)."""
  if max_categories < 2:
    raise ValueError(f"--max-categories must be at least 2, got {max_categories}")
  columns, left_out, notes = [], [], []
  seen = set()
  for j, name in enumerate(rows.header):
    if not name:
      left_out.append((f"(column {j + 1})", "it has no name in the header"))
      continue
    if name in seen:
      left_out.append((name, "the header names it more than once"))
      continue
    seen.add(name)
    cells = [row[j] for row in rows.rows]
    present = [c for c in cells if not _is_missing(c)]
    distinct = set(present)
    numbers = [_number(c) for c in distinct]
    if present and all(v is not None for v in numbers) and len(distinct) > NUMERIC_MIN_DISTINCT:
      low, high = min(numbers), max(numbers)
      column = {"name": name, "type": "numeric", "low": _plain(low), "high": _plain(high)}
      if all(float(v).is_integer() for v in numbers):
        column["integer"] = True
      missing = len(cells) - len(present)
      if missing:
        notes.append(
          f'{name}: {missing:,} missing cells (empty or NaN). Declare "missing": '
          "<a value fixed in advance> for the column, or clean the file."
        )
      columns.append(column)
      continue
    values = set(cells)  # missing cells of a categorical column are a value ("")
    if len(values) > max_categories:
      left_out.append(
        (
          name,
          f"{len(values):,} distinct values (an identifier or free text?); "
          "declare it yourself if it really is categorical",
        )
      )
      continue
    if len(values) < 2:
      left_out.append((name, "a single value: a constant column carries no information"))
      continue
    categories = sorted(
      (_category(c) for c in values),
      key=lambda c: (isinstance(c, str), c if not isinstance(c, str) else 0, str(c)),
    )
    if "" in values:
      notes.append(f'{name}: has empty cells, drafted as the category ""')
    columns.append({"name": name, "type": "categorical", "categories": categories})
  if not columns:
    raise ValueError(
      f"{rows.path}: no column could be drafted ("
      + "; ".join(f"{n}: {why}" for n, why in left_out)
      + ")"
    )
  if label is not None:
    kinds = {c["name"]: c["type"] for c in columns}
    if label not in kinds:
      raise ValueError(f"--label {label!r} is not a drafted column (drafted: {list(kinds)})")
    if kinds[label] != "categorical":
      raise ValueError(f"--label {label!r} was drafted as numeric; a label must be categorical")
  schema = {
    sources.DRAFT_SCHEMA_KEY: WARNING.format(path=rows.path),
    "type": "tabular",
    "label_column": label,
    "columns": columns,
  }
  return Draft(schema=schema, left_out=left_out, notes=notes)


def to_json(schema: Dict[str, Any]) -> str:
  """The schema as JSON with one line per column (easy to edit by hand)."""
  head = {k: v for k, v in schema.items() if k != "columns"}
  lines = ["{"]
  lines += [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
  lines.append('  "columns": [')
  columns = [json.dumps(c, ensure_ascii=False) for c in schema["columns"]]
  lines += [f"    {c}," for c in columns[:-1]] + [f"    {columns[-1]}", "  ]", "}"]
  return "\n".join(lines) + "\n"


def _plain(value: float):
  return int(value) if float(value).is_integer() and abs(value) < 2**53 else value


def describe_column(column: Dict[str, Any]) -> str:
  """One line for the terminal."""
  if column["type"] == "numeric":
    kind = "integer" if column.get("integer") else "numeric"
    return f"{kind:<11} [{column['low']}, {column['high']}]"
  cats = [str(c) for c in column["categories"]]
  shown = ", ".join(cats[:6]) + (", ..." if len(cats) > 6 else "")
  return f"{'categorical':<11} {len(cats)} categories: {shown}"
