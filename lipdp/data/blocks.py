"""Records made of blocks, and what every bounded domain shares.

The privacy guarantee of lipdp needs every record to lie in a bounded set X of known l2 diameter
D (the Gaussian mechanism on the encoder mean then has sensitivity L * D). A record is a flat
float32 vector made of contiguous `Block`s (an image, a numeric column, a one-hot category), each
constrained on its own by constants declared in advance. `BlockDomain` is what the image and
tabular domains share (`image_domain.py`, `tabular_domain.py`):

* equality and hashing by the declared specification;
* the one derivation of the diameter: X is the product of its blocks' sets, so
  D = sqrt(sum_b D_b^2), exactly (attained by taking a diameter-attaining pair in every block;
  `lipdp.privacy.diameters.product_diameter`); each domain lists its blocks' D_b;
* the JSON description of the domain (`describe`), which the release and the report carry.

Guarantees of every domain (tested in tests/data):

* Every record that `encode` or `project` returns lies in X (checked in float64 on the float32
  output).
* Encoding is record-wise: a record's encoding depends on that record and the declared constants
  only, never on other records or dataset statistics (no min/max/mean/quantile of the data).
* `project` is idempotent, bit for bit, and maps any finite (or infinite) vector into X.
* `diameter` is the exact l2 diameter of X, not merely an upper bound.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from lipdp.privacy import diameters

_KINDS = ("image", "numeric", "categorical")


class Block(NamedTuple):
  """A contiguous block of coordinates of a record.

  Attributes:
    name: the block's name (column name, or "image" / "label" for image domains).
    kind: one of "image", "numeric", "categorical".
    start: first coordinate of the block in the record.
    stop: one past the last coordinate (records[:, start:stop] is the block).
    categories: for categorical blocks, the declared categories in one-hot order; else None.
    scale: for categorical blocks, the value of the hot coordinate (a declared weight w: the
      block is w * one-hot, which weighs the category against the other blocks in the
      encoder's input and adds sqrt(2) w to the diameter); 1 by default.
  """

  name: str
  kind: str
  start: int
  stop: int
  categories: Optional[Tuple[Any, ...]] = None
  scale: float = 1.0

  @property
  def size(self) -> int:
    return self.stop - self.start

  def as_dict(self) -> Dict[str, Any]:
    d = {"name": self.name, "kind": self.kind, "start": self.start, "stop": self.stop}
    if self.categories is not None:
      d["categories"] = list(self.categories)
    if self.scale != 1.0:
      d["scale"] = self.scale
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
    "such as 'missing')."
  )


def _as_records(records: Any, dim: int) -> np.ndarray:
  """Validates a (n, dim) array of records and returns it as float64."""
  x = np.asarray(records)
  if x.ndim == 1 and x.shape[0] == dim:
    raise ValueError(
      f"Expected records of shape (n, {dim}); got a single vector of shape "
      f"{x.shape}. Use records[None] for one record."
    )
  if x.ndim != 2 or x.shape[1] != dim:
    raise ValueError(f"Expected records of shape (n, {dim}), got {x.shape}.")
  if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise ValueError(f"Records must be numeric, got dtype {x.dtype}.")
  x = x.astype(np.float64)
  if np.isnan(x).any():
    raise ValueError("Records contain NaN; they cannot be mapped into the domain.")
  return x


class BlockDomain:
  """What every domain shares: records made of `Block`s, equality by declared specification,
  the diameter of a product of blocks, and the JSON description."""

  _blocks: Tuple[Block, ...]
  kind: str

  def describe_spec(self) -> Dict[str, Any]:
    """The declared constants that define the domain (the schema-file format)."""
    raise NotImplementedError

  def diameter_components(self) -> List[Dict[str, Any]]:
    """One entry per group of blocks: {"block", "count", "diameter" (of one block), "derivation"}."""
    raise NotImplementedError

  def preprocessing_text(self) -> str:
    """How raw data is mapped into the domain, in words."""
    raise NotImplementedError

  def to_arrays(self, records: Any) -> Dict[str, np.ndarray]:
    """Decoded records as named arrays that `np.savez` can store without pickle."""
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

  @property
  def diameter(self) -> float:
    """Exact l2 diameter: sqrt(sum over blocks of D_b^2) (see the module docstring)."""
    parts = []
    for component in self.diameter_components():
      parts.extend([component["diameter"]] * component["count"])
    return float(diameters.product_diameter(*parts))

  def describe(self) -> Dict[str, Any]:
    """JSON-serialisable description (rebuild with `lipdp.data.domain_from_description`)."""
    components = self.diameter_components()
    terms = " + ".join(f"{c['count']} * {c['diameter']:.6g}^2" for c in components)
    desc = self.describe_spec()
    desc.update(
      {
        "dim": self.dim,
        "label_column": self.label_column,
        "blocks": [b.as_dict() for b in self.blocks],
        "diameter": self.diameter,
        "diameter_components": components,
        "diameter_derivation": (
          f"the domain is the product of its blocks, so D = sqrt(sum of squared block "
          f"diameters) = sqrt({terms}), exact (a pair attaining every block's diameter "
          "attains it). " + " ".join(f"{c['block']}: {c['derivation']}." for c in components)
        ),
        "preprocessing": self.preprocessing_text(),
      }
    )
    return desc
