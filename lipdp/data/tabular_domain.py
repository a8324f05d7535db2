"""Tabular domains: numeric columns clipped to declared bounds, categorical columns one-hot.

`TabularDomain`: numeric columns clipped to declared [low, high] and rescaled to [0, 1];
categorical columns (the label is one of them) one-hot over a declared category list.
X = [0, 1]^k x {one-hot}^m. Unknown category values raise `ValueError`; a declared category list
is never extended silently.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from lipdp.data import bins as bins_lib
from lipdp.data.blocks import Block, BlockDomain, _as_records, _check_name, _to_python_scalar


@dataclasses.dataclass(frozen=True)
class NumericColumn:
  """A numeric column with declared bounds.

  Values are clipped to [low, high] and rescaled to (v - low) / (high - low) in [0, 1]. The
  bounds must be public knowledge (declared in advance), never computed from the private data.

  Attributes:
    name: column name.
    low: declared lower bound (finite).
    high: declared upper bound (finite, > low).
    integer: the column holds whole numbers (a declared property of the format, like a count
      or an age in years). Encoding is unchanged; `decode` rounds to the nearest integer within
      [ceil(low), floor(high)] and returns int64 (post-processing of the release).
    missing: a declared value in [low, high] that a missing cell (empty, or NaN) of a CSV file
      takes (`lipdp.data.load_csv`); None (default) makes a missing cell an error. It is a
      constant fixed in advance, so the substitution is record-wise and uses no statistic of
      the data.
    bins: optional declared bins (`lipdp.data.bins`): a count of equal-width bins on [low, high]
      or edges in the column's units, from low to high. Read by the marginal-based baselines'
      discretisation, by the decoder's 'declared' numeric likelihood
      (`lipdp.models.likelihood.numeric_bins_for`) and by the binned fidelity metric; encoding
      is unchanged. None (default): no declared bins.
  """

  name: str
  low: float
  high: float
  integer: bool = False
  missing: Optional[float] = None
  bins: Optional[Union[int, Tuple[float, ...]]] = None

  def __post_init__(self):
    _check_name(self.name, "Column")
    try:
      low, high = float(self.low), float(self.high)
    except (TypeError, ValueError):
      raise ValueError(
        f"Column {self.name!r}: bounds must be numbers, got low={self.low!r}, high={self.high!r}."
      ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
      raise ValueError(
        f"Column {self.name!r}: declared bounds must be finite, got [{low}, {high}]."
      )
    if not low < high:
      raise ValueError(
        f"Column {self.name!r}: declared bounds need low < high, got [{low}, {high}]."
      )
    if not math.isfinite(high - low):
      # (v - low) / (high - low) would overflow to inf and encode values as NaN.
      raise ValueError(
        f"Column {self.name!r}: the width of the declared bounds [{low}, {high}] "
        "is not a finite float; declare narrower bounds."
      )
    object.__setattr__(self, "low", low)
    object.__setattr__(self, "high", high)
    if not isinstance(self.integer, (bool, np.bool_)):
      raise ValueError(
        f"Column {self.name!r}: 'integer' must be true or false, got {self.integer!r}."
      )
    object.__setattr__(self, "integer", bool(self.integer))
    if self.integer and math.ceil(low) > math.floor(high):
      raise ValueError(
        f"Column {self.name!r} is declared integer but its bounds [{low}, {high}] "
        "contain no whole number."
      )
    if self.missing is not None:
      try:
        missing = float(self.missing)
      except (TypeError, ValueError):
        raise ValueError(
          f"Column {self.name!r}: 'missing' must be a number, got {self.missing!r}."
        ) from None
      if isinstance(self.missing, bool) or not low <= missing <= high:
        raise ValueError(
          f"Column {self.name!r}: the declared 'missing' value {self.missing!r} "
          f"must be a number within the declared bounds [{low}, {high}]."
        )
      object.__setattr__(self, "missing", missing)
    if self.bins is not None:
      bins_lib.unit_edges(self.name, low, high, self.bins)  # refuses an invalid declaration
      bins = self.bins
      if isinstance(bins, (int, np.integer)):
        bins = int(bins)
      else:
        bins = tuple(float(e) for e in bins)
      object.__setattr__(self, "bins", bins)

  def unit_edges(self) -> Optional[np.ndarray]:
    """The declared bins as edges in [0, 1] (`lipdp.data.bins.unit_edges`), or None."""
    if self.bins is None:
      return None
    return bins_lib.unit_edges(self.name, self.low, self.high, self.bins)

  def as_dict(self) -> Dict[str, Any]:
    d = {"name": self.name, "type": "numeric", "low": self.low, "high": self.high}
    if self.integer:
      d["integer"] = True
    if self.missing is not None:
      d["missing"] = self.missing
    if self.bins is not None:
      d["bins"] = self.bins if isinstance(self.bins, int) else list(self.bins)
    return d


@dataclasses.dataclass(frozen=True)
class CategoricalColumn:
  """A categorical column with a declared list of categories (one-hot encoded).

  Attributes:
    name: column name.
    categories: the declared categories, in one-hot order (at least two, each a str, int,
      float or bool, with distinct texts str(category): the CSV files and the decoded release
      hold that text). A value outside this list is an error at encoding time.
  """

  name: str
  categories: Tuple[Any, ...]

  def __post_init__(self):
    _check_name(self.name, "Column")
    if isinstance(self.categories, (str, bytes)) or not isinstance(
      self.categories, (Sequence, np.ndarray)
    ):
      raise ValueError(
        f"Column {self.name!r}: categories must be a sequence, got {self.categories!r}."
      )
    cats = tuple(_to_python_scalar(c, self.name) for c in self.categories)
    if len(cats) < 2:
      raise ValueError(
        f"Column {self.name!r}: needs at least two declared categories, got {list(cats)} "
        "(a constant column carries no information; drop it)."
      )
    if len(set(cats)) != len(cats) or len({(type(c), c) for c in cats}) != len(cats):
      raise ValueError(f"Column {self.name!r}: categories must be distinct, got {list(cats)}.")
    # A CSV file and the release's decoded arrays hold str(category): 1 and "1", True and
    # "True", 0.5 and "0.5" would come out as the same text, and could not be told apart.
    seen = {}
    for c in cats:
      text = str(c)
      if text in seen:
        raise ValueError(
          f"Column {self.name!r}: categories {seen[text]!r} and {c!r} print alike as "
          f"{text!r} (a CSV file and the decoded release write str(category)); declare "
          "categories whose texts differ."
        )
      seen[text] = c
    object.__setattr__(self, "categories", cats)

  def as_dict(self) -> Dict[str, Any]:
    return {"name": self.name, "type": "categorical", "categories": list(self.categories)}


Column = Union[NumericColumn, CategoricalColumn]


def _category_dtype(categories: Tuple[Any, ...]) -> Any:
  kinds = {type(c) for c in categories}
  if len(kinds) == 1 and kinds.pop() in (str, int, float, bool):
    return None  # let numpy pick the natural dtype
  return object


class TabularDomain(BlockDomain):
  """Tabular records: numeric columns in [0, 1], categorical columns one-hot.

  Record layout: columns in declaration order; a numeric column takes one coordinate,
  (v - low) / (high - low) after clipping v to the declared [low, high]; a categorical column
  takes len(categories) coordinates (one-hot). The label, if any, is an ordinary categorical
  column named by `label_column`.

  Args:
    columns: sequence of NumericColumn / CategoricalColumn, names distinct.
    label_column: name of a categorical column that holds the label, or None.
  """

  kind = "tabular"

  def __init__(self, columns: Sequence[Column], label_column: Optional[str] = None):
    columns = tuple(columns)
    if not columns:
      raise ValueError("TabularDomain needs at least one column.")
    for c in columns:
      if not isinstance(c, (NumericColumn, CategoricalColumn)):
        raise ValueError(f"Columns must be NumericColumn or CategoricalColumn, got {c!r}.")
    names = [c.name for c in columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
      raise ValueError(f"Duplicate column names: {dup}.")
    if label_column is not None:
      if label_column not in names:
        raise ValueError(f"label_column {label_column!r} is not a declared column ({names}).")
      if not isinstance(columns[names.index(label_column)], CategoricalColumn):
        raise ValueError(f"label_column {label_column!r} must be a categorical column.")
    self.columns = columns
    self.label_column = label_column
    blocks, start = [], 0
    for c in columns:
      if isinstance(c, NumericColumn):
        blocks.append(Block(c.name, "numeric", start, start + 1))
        start += 1
      else:
        blocks.append(Block(c.name, "categorical", start, start + len(c.categories), c.categories))
        start += len(c.categories)
    self._blocks = tuple(blocks)

  def __repr__(self):
    return f"TabularDomain(columns={list(self.columns)}, label_column={self.label_column!r})"

  @property
  def column_names(self) -> Tuple[str, ...]:
    return tuple(c.name for c in self.columns)

  @property
  def num_numeric(self) -> int:
    return sum(isinstance(c, NumericColumn) for c in self.columns)

  @property
  def num_categorical(self) -> int:
    return len(self.columns) - self.num_numeric

  @property
  def num_classes(self) -> Optional[int]:
    """Number of label categories, or None without a label column."""
    if self.label_column is None:
      return None
    return len(self.column(self.label_column).categories)

  def column(self, name: str) -> Column:
    for c in self.columns:
      if c.name == name:
        return c
    raise ValueError(f"Unknown column {name!r}; declared: {list(self.column_names)}.")

  def without_column(self, name: str) -> "TabularDomain":
    """The same domain with one column removed (the label column drops its label mark)."""
    self.column(name)
    cols = [c for c in self.columns if c.name != name]
    label = None if self.label_column == name else self.label_column
    return TabularDomain(cols, label_column=label)

  def _columns_of(self, table: Any) -> Tuple[Dict[str, np.ndarray], int]:
    names = list(self.column_names)
    if isinstance(table, Mapping):
      missing = [n for n in names if n not in table]
      extra = [k for k in table if k not in names]
      if missing:
        raise ValueError(f"Table lacks declared columns {missing}.")
      if extra:
        raise ValueError(
          f"Table has columns {extra} that the domain does not declare; drop them or declare them."
        )
      cols = {n: np.asarray(table[n]) for n in names}
      for n, v in cols.items():
        if v.ndim != 1:
          raise ValueError(f"Column {n!r} must be 1-D, got shape {v.shape}.")
      lengths = {v.shape[0] for v in cols.values()}
      if len(lengths) != 1:
        raise ValueError(
          f"Columns have different lengths: { {n: v.shape[0] for n, v in cols.items()} }."
        )
      return cols, lengths.pop()
    arr = np.asarray(table)
    if arr.ndim != 2 or arr.shape[1] != len(names):
      raise ValueError(
        f"Expected a dict of columns or a 2-D array of shape (n, {len(names)}) "
        f"in column order {names}, got shape {arr.shape}."
      )
    return {n: arr[:, j] for j, n in enumerate(names)}, arr.shape[0]

  def category_indices(self, name: str, values: Any) -> np.ndarray:
    """Indices of `values` in the declared categories of column `name` (unknown -> ValueError)."""
    col = self.column(name)
    if not isinstance(col, CategoricalColumn):
      raise ValueError(f"Column {name!r} is not categorical.")
    values = np.asarray(values)
    lookup = {}
    for i, c in enumerate(col.categories):
      lookup[c] = i
    out = np.empty(values.shape[0], np.int64)
    unknown = []
    for r, v in enumerate(values.tolist()):
      idx = lookup.get(v)
      # 1 == 1.0 == True hash alike; only accept a bool for a bool category and vice versa.
      if idx is not None and isinstance(v, bool) != isinstance(col.categories[idx], bool):
        idx = None
      if idx is None:
        unknown.append(v)
        if len(unknown) >= 5:
          break
      else:
        out[r] = idx
    if unknown:
      raise ValueError(
        f"Column {name!r}: values {unknown} are not among the declared "
        f"categories {list(col.categories)} (the list is never extended)."
      )
    return out

  def encode(self, table: Any) -> np.ndarray:
    """Maps a table to records in the domain.

    Args:
      table: dict of column name -> 1-D array (exactly the declared columns), or a 2-D array
        (n, num_columns) in declaration order (object dtype for mixed types).

    Returns:
      float32 array (n, dim). Row i depends only on row i of the table and the declared
      constants: numeric v -> (clip(v, low, high) - low) / (high - low); categorical ->
      one-hot over the declared categories. NaN and unknown categories raise ValueError.
    """
    cols, n = self._columns_of(table)
    out = np.zeros((n, self.dim), np.float32)
    for col, block in zip(self.columns, self.blocks):
      v = cols[col.name]
      if isinstance(col, NumericColumn):
        try:
          v = v.astype(np.float64)
        except (TypeError, ValueError):
          raise ValueError(
            f"Column {col.name!r} is declared numeric but holds non-numeric values."
          ) from None
        if np.isnan(v).any():
          raise ValueError(
            f"Column {col.name!r} contains NaN (missing values must be imputed "
            "with a declared rule before encoding)."
          )
        u = (np.clip(v, col.low, col.high) - col.low) / (col.high - col.low)
        out[:, block.start] = np.clip(u.astype(np.float32), 0.0, 1.0)
      else:
        idx = self.category_indices(col.name, v)
        out[np.arange(n), block.start + idx] = 1.0
    return out

  def project(self, records: Any) -> np.ndarray:
    """Maps arbitrary vectors (n, dim) into the domain (idempotent; NaN raises).

    Numeric coordinates are clipped to [0, 1]; each categorical block becomes the one-hot of
    its argmax (first maximum on ties).
    """
    x = _as_records(records, self.dim)
    out = np.zeros(x.shape, np.float32)
    n = x.shape[0]
    for block in self.blocks:
      if block.kind == "numeric":
        out[:, block.start] = np.clip(x[:, block.start], 0.0, 1.0).astype(np.float32)
      else:
        idx = np.argmax(x[:, block.start : block.stop], axis=1)
        out[np.arange(n), block.start + idx] = 1.0
    return out

  def labels(self, records: Any) -> Optional[np.ndarray]:
    """Label indices (into the label column's categories) as int64, or None."""
    if self.label_column is None:
      return None
    x = _as_records(records, self.dim)
    block = self.blocks[self.column_names.index(self.label_column)]
    return np.argmax(x[:, block.start : block.stop], axis=1).astype(np.int64)

  def decode(self, records: Any) -> Dict[str, np.ndarray]:
    """Records -> dict of columns in declared units.

    Numeric: low + clip(u, 0, 1) * (high - low) as float64 (within [low, high]); for a column
    declared `integer`, rounded to the nearest whole number in [ceil(low), floor(high)] and
    returned as int64. Categorical: the declared category at the argmax of the block.
    """
    x = _as_records(records, self.dim)
    out = {}
    for col, block in zip(self.columns, self.blocks):
      if isinstance(col, NumericColumn):
        u = np.clip(x[:, block.start], 0.0, 1.0)
        values = np.clip(col.low + u * (col.high - col.low), col.low, col.high)
        if col.integer:
          values = np.clip(np.rint(values), math.ceil(col.low), math.floor(col.high)).astype(
            np.int64
          )
        out[col.name] = values
      else:
        idx = np.argmax(x[:, block.start : block.stop], axis=1)
        cats = np.asarray(col.categories, dtype=_category_dtype(col.categories))
        out[col.name] = cats[idx]
    return out

  def describe_spec(self) -> Dict[str, Any]:
    """The declared schema (the JSON schema-file format; no diameter, no privacy import)."""
    return {
      "type": "tabular",
      "columns": [c.as_dict() for c in self.columns],
      "label_column": self.label_column,
    }

  def diameter_components(self) -> List[Dict[str, Any]]:
    """Each numeric column is the unit interval after clipping and rescaling (diameter 1,
    attained at its bounds); each categorical column a one-hot block (sqrt(2), two different
    categories; every column declares at least two)."""
    components = []
    if self.num_numeric:
      components.append(
        {
          "block": "numeric",
          "count": self.num_numeric,
          "diameter": 1.0,
          "derivation": "a column clipped to its declared bounds and rescaled to "
          "[0,1] has diameter 1",
        }
      )
    if self.num_categorical:
      components.append(
        {
          "block": "categorical",
          "count": self.num_categorical,
          "diameter": math.sqrt(2.0),
          "derivation": "two distinct one-hot vectors are sqrt(2) apart",
        }
      )
    return components

  def preprocessing_text(self) -> str:
    text = (
      "numeric: clip to declared [low, high], rescale to [0,1]; categorical: one-hot over "
      "the declared categories (unknown values are an error). Record-wise: no statistic "
      "of the data is used."
    )
    if any(getattr(c, "integer", False) for c in self.columns):
      text += " Columns declared integer are rounded to whole numbers when decoded."
    return text

  def to_arrays(self, records: Any) -> Dict[str, np.ndarray]:
    """{"column_<name>": values} in declared units; categories of mixed types as strings."""
    out = {}
    for name, values in self.decode(records).items():
      values = np.asarray(values)
      out[f"column_{name}"] = values if values.dtype.kind in "biufU" else values.astype(str)
    return out


# Keys a column of a schema may carry. 'description', and a categorical column's 'bins', are
# ignored here; any other key is refused, so that a misspelt 'integer' or 'missing' is not
# silently dropped.
_NUMERIC_KEYS = frozenset(
  {"name", "type", "low", "high", "integer", "missing", "bins", "description"}
)
_CATEGORICAL_KEYS = frozenset({"name", "type", "categories", "bins", "description"})


def _check_keys(d: Mapping[str, Any], allowed: frozenset, name: Any, kind: str) -> None:
  unknown = sorted(str(k) for k in d if k not in allowed)
  if unknown:
    raise ValueError(
      f"{kind.capitalize()} column {name!r}: unknown key(s) {unknown}; a "
      f"{kind} column may declare {sorted(allowed)}."
    )


def _column_from_dict(d: Mapping[str, Any]) -> Column:
  if not isinstance(d, Mapping):
    raise ValueError(f"Column description must be a mapping, got {d!r}.")
  kind = d.get("type")
  name = d.get("name")
  if kind == "numeric":
    _check_keys(d, _NUMERIC_KEYS, name, kind)
    if "low" not in d or "high" not in d or d["low"] is None or d["high"] is None:
      raise ValueError(
        f"Numeric column {name!r} must declare both 'low' and 'high' bounds "
        "(bounds are never inferred from the data)."
      )
    return NumericColumn(
      name,
      d["low"],
      d["high"],
      integer=d.get("integer", False),
      missing=d.get("missing"),
      bins=d.get("bins"),
    )
  if kind == "categorical":
    _check_keys(d, _CATEGORICAL_KEYS, name, kind)
    if "categories" not in d:
      raise ValueError(f"Categorical column {name!r} must declare 'categories'.")
    if isinstance(d["categories"], (str, bytes)) or not isinstance(d["categories"], Sequence):
      raise ValueError(
        f"Categorical column {name!r}: 'categories' must be a list, got {d['categories']!r}."
      )
    return CategoricalColumn(name, tuple(d["categories"]))
  raise ValueError(f"Column {name!r}: 'type' must be 'numeric' or 'categorical', got {kind!r}.")
