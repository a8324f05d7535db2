"""Bounded record domains: declared, data-independent preprocessing.

The privacy guarantee of lipdp needs every record to lie in a bounded set X of known l2 diameter
D (the Gaussian mechanism on the encoder mean then has sensitivity L * D). This module maps raw
data into such a set using only constants declared in advance:

* `ImageDomain`: pixels divided by a declared `pixel_max`, clipped to [0, 1], flattened, and
  rescaled onto the origin-centred l2 ball of a declared radius R; optionally a one-hot label
  block. X = ([0, 1]^d intersected with B(0, R)) x {one-hot vectors}.
* `TabularDomain`: numeric columns clipped to declared [low, high] and rescaled to [0, 1];
  categorical columns (the label is one of them) one-hot over a declared category list.
  X = [0, 1]^k x {one-hot}^m.

Guarantees (tested in tests/data):

* Every record that `encode` or `project` returns lies in X (checked in float64 on the float32
  output: image part values in [0, 1] with norm <= R; each categorical block exactly one-hot).
* Encoding is record-wise: a record's encoding depends on that record and the declared constants
  only, never on other records or dataset statistics (no min/max/mean/quantile of the data).
* `project` is idempotent, bit for bit, and maps any finite (or infinite) vector into X.
* `diameter` is the exact l2 diameter of X (the supremum is attained by an explicit pair of
  records), not merely an upper bound.
* Unknown category values and out-of-range labels raise `ValueError`; a declared category list
  is never extended silently.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import numbers
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "Block",
    "NumericColumn",
    "CategoricalColumn",
    "ImageDomain",
    "TabularDomain",
    "domain_from_description",
]

# Projection onto the ball aims slightly inside it, at R * (1 - 2**-20). Casting to float32
# changes each coordinate by a relative error of at most 2**-24, hence the norm by at most that
# relative amount, so the float32 record still has norm < R, with a margin that no float64
# summation order can erase. The change to the record (a relative 1e-6) is immaterial.
_BALL_SHRINK = 1.0 - 2.0**-20

_KINDS = ("image", "numeric", "categorical")


class Block(NamedTuple):
  """A contiguous block of coordinates of a record.

  Attributes:
    name: the block's name (column name, or "image" / "label" for image domains).
    kind: one of "image", "numeric", "categorical".
    start: first coordinate of the block in the record.
    stop: one past the last coordinate (records[:, start:stop] is the block).
    categories: for categorical blocks, the declared categories in one-hot order; else None.
  """
  name: str
  kind: str
  start: int
  stop: int
  categories: Optional[Tuple[Any, ...]] = None

  @property
  def size(self) -> int:
    return self.stop - self.start

  def as_dict(self) -> Dict[str, Any]:
    d = {"name": self.name, "kind": self.kind, "start": self.start, "stop": self.stop}
    if self.categories is not None:
      d["categories"] = list(self.categories)
    return d


def _check_name(name: Any, what: str) -> str:
  if not isinstance(name, str) or not name:
    raise ValueError(f"{what} name must be a non-empty string, got {name!r}.")
  return name


def _to_python_scalar(value: Any, column: str) -> Union[str, int, float, bool]:
  """Converts a declared category to a JSON-serialisable Python scalar, or raises."""
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, (bool, str)):
    return value
  if isinstance(value, numbers.Integral):
    return int(value)
  if isinstance(value, numbers.Real):
    value = float(value)
    if not math.isfinite(value):
      raise ValueError(f"Column {column!r}: category {value!r} is not finite.")
    return value
  raise ValueError(
      f"Column {column!r}: category {value!r} of type {type(value).__name__} is not allowed; "
      "categories must be str, int, float or bool (missing values need an explicit category "
      "such as 'missing').")


@dataclasses.dataclass(frozen=True)
class NumericColumn:
  """A numeric column with declared bounds.

  Values are clipped to [low, high] and rescaled to (v - low) / (high - low) in [0, 1]. The
  bounds must be public knowledge (declared in advance), never computed from the private data.

  Attributes:
    name: column name.
    low: declared lower bound (finite).
    high: declared upper bound (finite, > low).
  """
  name: str
  low: float
  high: float

  def __post_init__(self):
    _check_name(self.name, "Column")
    try:
      low, high = float(self.low), float(self.high)
    except (TypeError, ValueError):
      raise ValueError(
          f"Column {self.name!r}: bounds must be numbers, got low={self.low!r}, "
          f"high={self.high!r}.") from None
    if not (math.isfinite(low) and math.isfinite(high)):
      raise ValueError(f"Column {self.name!r}: declared bounds must be finite, got "
                       f"[{low}, {high}].")
    if not low < high:
      raise ValueError(f"Column {self.name!r}: declared bounds need low < high, got "
                       f"[{low}, {high}].")
    object.__setattr__(self, "low", low)
    object.__setattr__(self, "high", high)

  def as_dict(self) -> Dict[str, Any]:
    return {"name": self.name, "type": "numeric", "low": self.low, "high": self.high}


@dataclasses.dataclass(frozen=True)
class CategoricalColumn:
  """A categorical column with a declared list of categories (one-hot encoded).

  Attributes:
    name: column name.
    categories: the declared categories, in one-hot order (at least two, distinct, each a
      str, int, float or bool). A value outside this list is an error at encoding time.
  """
  name: str
  categories: Tuple[Any, ...]

  def __post_init__(self):
    _check_name(self.name, "Column")
    if isinstance(self.categories, (str, bytes)) or not isinstance(
        self.categories, (Sequence, np.ndarray)):
      raise ValueError(f"Column {self.name!r}: categories must be a sequence, got "
                       f"{self.categories!r}.")
    cats = tuple(_to_python_scalar(c, self.name) for c in self.categories)
    if len(cats) < 2:
      raise ValueError(
          f"Column {self.name!r}: needs at least two declared categories, got {list(cats)} "
          "(a constant column carries no information; drop it).")
    if len(set(cats)) != len(cats) or len({(type(c), c) for c in cats}) != len(cats):
      raise ValueError(f"Column {self.name!r}: categories must be distinct, got {list(cats)}.")
    object.__setattr__(self, "categories", cats)

  def as_dict(self) -> Dict[str, Any]:
    return {"name": self.name, "type": "categorical", "categories": list(self.categories)}


Column = Union[NumericColumn, CategoricalColumn]


# ----------------------------------------------------------------------------------------------
# Helpers shared by both domains.


def _as_records(records: Any, dim: int) -> np.ndarray:
  """Validates a (n, dim) array of records and returns it as float64."""
  x = np.asarray(records)
  if x.ndim == 1 and x.shape[0] == dim:
    raise ValueError(f"Expected records of shape (n, {dim}); got a single vector of shape "
                     f"{x.shape}. Use records[None] for one record.")
  if x.ndim != 2 or x.shape[1] != dim:
    raise ValueError(f"Expected records of shape (n, {dim}), got {x.shape}.")
  if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise ValueError(f"Records must be numeric, got dtype {x.dtype}.")
  x = x.astype(np.float64)
  if np.isnan(x).any():
    raise ValueError("Records contain NaN; they cannot be mapped into the domain.")
  return x


def _project_nonnegative_ball(x: np.ndarray, radius: float) -> np.ndarray:
  """Maps rows of a float64 array into [0, 1]^d intersected with B(0, radius), as float32.

  Clips to [0, 1] then rescales x -> x * min(1, R / |x|) (which keeps x in [0, 1]). Rows
  already in the set are returned unchanged, so the map is idempotent.
  """
  x = np.clip(x, 0.0, 1.0)
  norms = np.sqrt(np.sum(x * x, axis=1))
  scale = np.ones_like(norms)
  over = norms > radius
  scale[over] = radius * _BALL_SHRINK / norms[over]
  y = (x * scale[:, None]).astype(np.float32)
  # Defensive: the margin above makes this loop a no-op; it keeps the guarantee unconditional.
  for _ in range(64):
    y64 = y.astype(np.float64)
    bad = np.sqrt(np.sum(y64 * y64, axis=1)) > radius
    if not bad.any():
      return y
    y[bad] = (y64[bad] * _BALL_SHRINK).astype(np.float32)
  raise AssertionError("ball projection did not converge")  # pragma: no cover


def _one_hot(indices: np.ndarray, size: int) -> np.ndarray:
  out = np.zeros((indices.shape[0], size), np.float32)
  out[np.arange(indices.shape[0]), indices] = 1.0
  return out


def _check_labels(labels: Any, n: int, num_classes: int) -> np.ndarray:
  y = np.asarray(labels)
  if y.ndim != 1 or y.shape[0] != n:
    raise ValueError(f"Expected labels of shape ({n},), got {y.shape}.")
  if y.dtype.kind == "f":
    if np.isnan(y).any():
      raise ValueError("Labels contain NaN.")
    if not np.all(y == np.round(y)):
      raise ValueError("Labels must be integers.")
  elif y.dtype.kind not in "iub":
    raise ValueError(f"Labels must be integers, got dtype {y.dtype}.")
  y = y.astype(np.int64)
  bad = (y < 0) | (y >= num_classes)
  if bad.any():
    raise ValueError(f"Labels must lie in [0, {num_classes}); found {np.unique(y[bad])[:10]}.")
  return y


def _diameter_from_parts(parts: Sequence[float]) -> float:
  # The submodule, not the function `lipdp.privacy.sensitivity` that shadows it.
  sensitivity = importlib.import_module("lipdp.privacy.sensitivity")
  return float(sensitivity.product_diameter(*parts))


# ----------------------------------------------------------------------------------------------
# Images.


class _BlockDomain:
  """What every domain shares: records made of `Block`s, equality by declared specification."""

  _blocks: Tuple[Block, ...]

  def describe_spec(self) -> Dict[str, Any]:
    raise NotImplementedError

  def __eq__(self, other):
    return type(other) is type(self) and self.describe_spec() == other.describe_spec()

  def __hash__(self):
    return hash(json.dumps(self.describe_spec(), sort_keys=True))

  @property
  def blocks(self) -> Tuple[Block, ...]:
    return self._blocks

  @property
  def dim(self) -> int:
    return self._blocks[-1].stop


class ImageDomain(_BlockDomain):
  """Images in [0, 1]^d intersected with B(0, R), optionally followed by a one-hot label.

  Record layout: the d = prod(image_shape) pixels (row-major, channels last), then, if
  `num_classes` is set, a one-hot block of `num_classes` coordinates.

  Args:
    image_shape: shape of one image, e.g. (28, 28, 1).
    radius: declared l2 radius R > 0 of the image part. Must not be derived from the private
      data (see `lipdp.data.pipeline.default_image_radius` for a data-independent default).
    pixel_max: declared pixel value that maps to 1.0 (e.g. 255 for uint8, 16 for sklearn's
      digits). A property of the format, not a statistic of the data.
    num_classes: if set (>= 2), labels in [0, num_classes) are carried in the record as a
      one-hot block, so the mechanism protects them and synthetic records come with labels.
  """

  kind = "image"

  def __init__(self, image_shape: Sequence[int], radius: float, pixel_max: float,
               num_classes: Optional[int] = None):
    raw_shape = np.atleast_1d(np.asarray(image_shape))
    if raw_shape.ndim != 1 or raw_shape.dtype.kind not in "iuf" or np.any(
        raw_shape != np.round(raw_shape)):
      raise ValueError(f"image_shape must be a sequence of positive integers, got "
                       f"{image_shape!r}.")
    shape = tuple(int(s) for s in raw_shape)
    if not shape or any(s <= 0 for s in shape):
      raise ValueError(f"image_shape must be non-empty with positive entries, got "
                       f"{image_shape!r}.")
    if radius is None:
      raise ValueError("ImageDomain needs a declared radius R (data-independent).")
    radius = float(radius)
    if not (math.isfinite(radius) and radius > 0):
      raise ValueError(f"radius must be finite and > 0, got {radius}.")
    if pixel_max is None:
      raise ValueError("ImageDomain needs a declared pixel_max (e.g. 255 for uint8 images).")
    pixel_max = float(pixel_max)
    if not (math.isfinite(pixel_max) and pixel_max > 0):
      raise ValueError(f"pixel_max must be finite and > 0, got {pixel_max}.")
    if num_classes is not None:
      if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2 or None, got {num_classes!r}.")
      num_classes = int(num_classes)
    self.image_shape = shape
    self.radius = radius
    self.pixel_max = pixel_max
    self.num_classes = num_classes
    self.image_dim = int(np.prod(shape))
    blocks = [Block("image", "image", 0, self.image_dim)]
    if num_classes is not None:
      blocks.append(Block("label", "categorical", self.image_dim, self.image_dim + num_classes,
                          tuple(range(num_classes))))
    self._blocks = tuple(blocks)

  def __repr__(self):
    return (f"ImageDomain(image_shape={self.image_shape}, radius={self.radius}, "
            f"pixel_max={self.pixel_max}, num_classes={self.num_classes})")

  @property
  def label_column(self) -> Optional[str]:
    return "label" if self.num_classes is not None else None

  def _flatten_images(self, images: Any) -> np.ndarray:
    x = np.asarray(images)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
      raise ValueError(f"Images must be numeric, got dtype {x.dtype}.")
    accepted = {self.image_shape, (self.image_dim,)}
    if len(self.image_shape) > 1 and self.image_shape[-1] == 1:
      accepted.add(self.image_shape[:-1])  # (n, H, W) for single-channel (H, W, 1)
    if x.ndim < 1 or tuple(x.shape[1:]) not in accepted:
      raise ValueError(f"Expected images of shape (n, *{self.image_shape}) (or flattened "
                       f"(n, {self.image_dim})), got {x.shape}.")
    x = x.reshape(x.shape[0], self.image_dim).astype(np.float64)
    if np.isnan(x).any():
      raise ValueError("Images contain NaN.")
    return x

  def encode(self, images: Any, labels: Any = None) -> np.ndarray:
    """Maps raw images (and labels) to records in the domain.

    Args:
      images: array (n, *image_shape) of raw pixel values (flattened (n, d) also accepted).
      labels: integer array (n,) in [0, num_classes); required iff num_classes is set.

    Returns:
      float32 array (n, dim). Record i depends only on images[i], labels[i] and the declared
      constants: pixel part = x * min(1, R / |x|) with x = clip(images[i] / pixel_max, 0, 1).
    """
    x = self._flatten_images(images)
    n = x.shape[0]
    if self.num_classes is None and labels is not None:
      raise ValueError("labels were given but this ImageDomain has no label block "
                       "(num_classes=None); they would be dropped.")
    if self.num_classes is not None and labels is None:
      raise ValueError(f"This ImageDomain carries labels (num_classes={self.num_classes}); "
                       "pass labels.")
    pixels = _project_nonnegative_ball(x / self.pixel_max, self.radius)
    if self.num_classes is None:
      return pixels
    y = _check_labels(labels, n, self.num_classes)
    return np.concatenate([pixels, _one_hot(y, self.num_classes)], axis=1)

  def project(self, records: Any) -> np.ndarray:
    """Maps arbitrary vectors (n, dim) into the domain (idempotent; NaN raises).

    Image part: clip to [0, 1], then rescale by min(1, R / |x|). Label block: one-hot of its
    argmax (first maximum on ties).
    """
    x = _as_records(records, self.dim)
    pixels = _project_nonnegative_ball(x[:, :self.image_dim], self.radius)
    if self.num_classes is None:
      return pixels
    idx = np.argmax(x[:, self.image_dim:], axis=1)
    return np.concatenate([pixels, _one_hot(idx, self.num_classes)], axis=1)

  def labels(self, records: Any) -> Optional[np.ndarray]:
    """Labels (argmax of the label block) as int64, or None without a label block."""
    if self.num_classes is None:
      return None
    x = _as_records(records, self.dim)
    return np.argmax(x[:, self.image_dim:], axis=1).astype(np.int64)

  def decode(self, records: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Records -> (images float32 in [0, 1] of shape (n, *image_shape), labels or None).

    Pixels are clipped to [0, 1] (in units of pixel_max: multiply by pixel_max for raw
    units); they are not rescaled onto the ball, so bright decoder outputs keep their
    brightness. Labels are the argmax of the label block.
    """
    x = _as_records(records, self.dim)
    images = np.clip(x[:, :self.image_dim], 0.0, 1.0).astype(np.float32)
    images = images.reshape((x.shape[0],) + self.image_shape)
    return images, self.labels(x)

  def _image_part_diameter(self) -> float:
    # The submodule, not the function `lipdp.privacy.sensitivity` that shadows it.
    sensitivity = importlib.import_module("lipdp.privacy.sensitivity")
    return float(sensitivity.nonnegative_ball_diameter(self.radius, self.image_dim))

  @property
  def diameter(self) -> float:
    """Exact l2 diameter of the domain.

    sqrt(D_img^2 + D_lab^2), where D_img is the diameter of [0, 1]^d intersected with B(0, R)
    (sqrt(2) R when d >= 2 ceil(R^2): non-negative vectors have <x, y> >= 0, so
    |x - y|^2 <= |x|^2 + |y|^2 <= 2 R^2, attained by two disjoint-support vectors of norm R)
    and D_lab = sqrt(2) for the one-hot label block (0 without labels).
    """
    # The submodule, not the function `lipdp.privacy.sensitivity` that shadows it.
    sensitivity = importlib.import_module("lipdp.privacy.sensitivity")
    parts = [self._image_part_diameter()]
    if self.num_classes is not None:
      parts.append(float(sensitivity.one_hot_diameter([self.num_classes])))
    return _diameter_from_parts(parts)

  def describe_spec(self) -> Dict[str, Any]:
    """The declared constants that define the domain (no diameter; no privacy import)."""
    return {
        "type": "image",
        "image_shape": list(self.image_shape),
        "radius": self.radius,
        "pixel_max": self.pixel_max,
        "num_classes": self.num_classes,
    }

  def describe(self) -> Dict[str, Any]:
    """JSON-serialisable description for the privacy report (rebuild: domain_from_description)."""
    d_img = self._image_part_diameter()
    components = [{"block": "image", "diameter": d_img,
                   "derivation": (f"[0,1]^{self.image_dim} intersected with the l2 ball of radius "
                                  f"R={self.radius:g}: nonnegative_ball_diameter(R, d)")}]
    if self.num_classes is not None:
      components.append({"block": "label", "diameter": math.sqrt(2.0),
                         "derivation": "one-hot block: sqrt(2)"})
    desc = self.describe_spec()
    desc.update({
        "dim": self.dim,
        "label_column": self.label_column,
        "blocks": [b.as_dict() for b in self.blocks],
        "diameter": self.diameter,
        "diameter_components": components,
        "diameter_derivation": (
            "sqrt(sum of squared block diameters) (product of sets). Image block: values in "
            "[0,1] so <x,y> >= 0 and |x-y|^2 <= |x|^2+|y|^2 <= 2R^2 (exact when d >= "
            "2*ceil(R^2); in general D^2 = max over k+m <= d of min(k,R^2)+min(m,R^2), "
            "two vectors on disjoint supports of sizes k and m)); "
            "label block: two distinct one-hot vectors are sqrt(2) apart."),
        "preprocessing": (
            f"pixels / {self.pixel_max:g} (declared), clipped to [0,1], flattened, rescaled by "
            f"min(1, R/|x|) with declared R={self.radius:g}"
            + ("; label one-hot" if self.num_classes is not None else "")
            + ". Record-wise: no statistic of the data is used."),
    })
    return desc


# ----------------------------------------------------------------------------------------------
# Tables.


def _category_dtype(categories: Tuple[Any, ...]) -> Any:
  kinds = {type(c) for c in categories}
  if len(kinds) == 1 and kinds.pop() in (str, int, float, bool):
    return None  # let numpy pick the natural dtype
  return object


class TabularDomain(_BlockDomain):
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
        blocks.append(Block(c.name, "categorical", start, start + len(c.categories),
                            c.categories))
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
        raise ValueError(f"Table has columns {extra} that the domain does not declare; drop "
                         "them or declare them.")
      cols = {n: np.asarray(table[n]) for n in names}
      for n, v in cols.items():
        if v.ndim != 1:
          raise ValueError(f"Column {n!r} must be 1-D, got shape {v.shape}.")
      lengths = {v.shape[0] for v in cols.values()}
      if len(lengths) != 1:
        raise ValueError(f"Columns have different lengths: "
                         f"{ {n: v.shape[0] for n, v in cols.items()} }.")
      return cols, lengths.pop()
    arr = np.asarray(table)
    if arr.ndim != 2 or arr.shape[1] != len(names):
      raise ValueError(f"Expected a dict of columns or a 2-D array of shape (n, {len(names)}) "
                       f"in column order {names}, got shape {arr.shape}.")
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
      raise ValueError(f"Column {name!r}: values {unknown} are not among the declared "
                       f"categories {list(col.categories)} (the list is never extended).")
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
          raise ValueError(f"Column {col.name!r} is declared numeric but holds non-numeric "
                           "values.") from None
        if np.isnan(v).any():
          raise ValueError(f"Column {col.name!r} contains NaN (missing values must be imputed "
                           "with a declared rule before encoding).")
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
        idx = np.argmax(x[:, block.start:block.stop], axis=1)
        out[np.arange(n), block.start + idx] = 1.0
    return out

  def labels(self, records: Any) -> Optional[np.ndarray]:
    """Label indices (into the label column's categories) as int64, or None."""
    if self.label_column is None:
      return None
    x = _as_records(records, self.dim)
    block = self.blocks[self.column_names.index(self.label_column)]
    return np.argmax(x[:, block.start:block.stop], axis=1).astype(np.int64)

  def decode(self, records: Any) -> Dict[str, np.ndarray]:
    """Records -> dict of columns in declared units.

    Numeric: low + clip(u, 0, 1) * (high - low) as float64 (within [low, high]). Categorical:
    the declared category at the argmax of the block.
    """
    x = _as_records(records, self.dim)
    out = {}
    for col, block in zip(self.columns, self.blocks):
      if isinstance(col, NumericColumn):
        u = np.clip(x[:, block.start], 0.0, 1.0)
        out[col.name] = np.clip(col.low + u * (col.high - col.low), col.low, col.high)
      else:
        idx = np.argmax(x[:, block.start:block.stop], axis=1)
        cats = np.asarray(col.categories, dtype=_category_dtype(col.categories))
        out[col.name] = cats[idx]
    return out

  @property
  def diameter(self) -> float:
    """Exact l2 diameter: sqrt(#numeric + 2 * #categorical).

    The numeric part is the unit cube [0, 1]^k (diameter sqrt(k), corners 0 and 1); each
    one-hot block adds sqrt(2) (two different categories); the blocks vary independently, so
    the diameter of the product is the root of the sum of squares, attained by taking every
    numeric coordinate at opposite bounds and a different category in every block.
    """
    # The submodule, not the function `lipdp.privacy.sensitivity` that shadows it.
    sensitivity = importlib.import_module("lipdp.privacy.sensitivity")
    parts = []
    k = self.num_numeric
    if k:
      parts.append(float(sensitivity.box_diameter(np.zeros(k), np.ones(k))))
    counts = [len(c.categories) for c in self.columns if isinstance(c, CategoricalColumn)]
    if counts:
      parts.append(float(sensitivity.one_hot_diameter(counts)))
    return _diameter_from_parts(parts)

  def describe_spec(self) -> Dict[str, Any]:
    """The declared schema (the JSON schema-file format; no diameter, no privacy import)."""
    return {
        "type": "tabular",
        "columns": [c.as_dict() for c in self.columns],
        "label_column": self.label_column,
    }

  def describe(self) -> Dict[str, Any]:
    """JSON-serialisable description for the privacy report (rebuild: domain_from_description)."""
    k, m = self.num_numeric, self.num_categorical
    desc = self.describe_spec()
    desc.update({
        "dim": self.dim,
        "blocks": [b.as_dict() for b in self.blocks],
        "diameter": self.diameter,
        "diameter_components": [
            {"block": "numeric", "count": k, "diameter": math.sqrt(k),
             "derivation": "unit cube [0,1]^k after clipping to declared bounds: sqrt(k)"},
            {"block": "categorical", "count": m, "diameter": math.sqrt(2 * m),
             "derivation": "m one-hot blocks, sqrt(2) each: sqrt(2m)"},
        ],
        "diameter_derivation": (
            f"sqrt(#numeric + 2 * #categorical) = sqrt({k} + 2 * {m}); exact, attained by "
            "records at opposite bounds in every numeric column and different categories in "
            "every categorical column."),
        "preprocessing": (
            "numeric: clip to declared [low, high], rescale to [0,1]; categorical: one-hot over "
            "the declared categories (unknown values are an error). Record-wise: no statistic "
            "of the data is used."),
    })
    return desc


# ----------------------------------------------------------------------------------------------


def _column_from_dict(d: Mapping[str, Any]) -> Column:
  if not isinstance(d, Mapping):
    raise ValueError(f"Column description must be a mapping, got {d!r}.")
  kind = d.get("type")
  name = d.get("name")
  if kind == "numeric":
    if "low" not in d or "high" not in d or d["low"] is None or d["high"] is None:
      raise ValueError(f"Numeric column {name!r} must declare both 'low' and 'high' bounds "
                       "(bounds are never inferred from the data).")
    return NumericColumn(name, d["low"], d["high"])
  if kind == "categorical":
    if "categories" not in d:
      raise ValueError(f"Categorical column {name!r} must declare 'categories'.")
    return CategoricalColumn(name, tuple(d["categories"]))
  raise ValueError(f"Column {name!r}: 'type' must be 'numeric' or 'categorical', got {kind!r}.")


def domain_from_description(desc: Union[Mapping[str, Any], str]) -> Union[ImageDomain,
                                                                          TabularDomain]:
  """Rebuilds a domain from `describe()` output (or a JSON string of it, or a schema dict).

  A tabular schema file uses the same format: {"type": "tabular", "columns": [{"name": ...,
  "type": "numeric", "low": ..., "high": ...} or {"name": ..., "type": "categorical",
  "categories": [...]}, ...], "label_column": ... or null}; "type" may be omitted when
  "columns" is present. If the description states "dim" (or "diameter"), the rebuilt domain
  must agree, otherwise ValueError.
  """
  if isinstance(desc, str):
    desc = json.loads(desc)
  if not isinstance(desc, Mapping):
    raise ValueError(f"Domain description must be a mapping, got {type(desc).__name__}.")
  kind = desc.get("type", "tabular" if "columns" in desc else None)
  if kind == "image":
    for key in ("image_shape", "radius", "pixel_max"):
      if desc.get(key) is None:
        raise ValueError(f"Image domain description lacks {key!r}.")
    domain = ImageDomain(desc["image_shape"], desc["radius"], desc["pixel_max"],
                         desc.get("num_classes"))
  elif kind == "tabular":
    columns = desc.get("columns")
    if not isinstance(columns, Sequence) or isinstance(columns, str):
      raise ValueError("Tabular domain description needs a list 'columns'.")
    domain = TabularDomain([_column_from_dict(c) for c in columns],
                           label_column=desc.get("label_column"))
  else:
    raise ValueError(f"Unknown domain type {kind!r}; expected 'image' or 'tabular'.")
  if "dim" in desc and int(desc["dim"]) != domain.dim:
    raise ValueError(f"Description states dim={desc['dim']} but the domain has {domain.dim}.")
  if "diameter" in desc and not math.isclose(float(desc["diameter"]), domain.diameter,
                                             rel_tol=1e-9):
    raise ValueError(f"Description states diameter={desc['diameter']} but the rebuilt domain "
                     f"has {domain.diameter}.")
  return domain
