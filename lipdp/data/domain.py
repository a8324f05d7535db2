"""Bounded record domains: declared, data-independent preprocessing (see `blocks.py`).

`ImageDomain` (`image_domain.py`) and `TabularDomain` (`tabular_domain.py`) map raw data into a
bounded set of exactly known l2 diameter using only constants declared in advance;
`domain_from_description` rebuilds either from its JSON description (or a tabular schema file).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence, Union

import numpy as np

from lipdp.data.blocks import Block, BlockDomain
from lipdp.data.image_domain import ImageDomain
from lipdp.data.tabular_domain import (
  CategoricalColumn,
  Column,
  NumericColumn,
  TabularDomain,
  _column_from_dict,
)

__all__ = [
  "Block",
  "BlockDomain",
  "CategoricalColumn",
  "Column",
  "ImageDomain",
  "NumericColumn",
  "TabularDomain",
  "domain_from_description",
]


def domain_from_description(
  desc: Union[Mapping[str, Any], str],
) -> Union[ImageDomain, TabularDomain]:
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
    weight = desc.get("label_weight", 1.0)
    if isinstance(weight, (int, float)) and float(np.float32(weight)) != float(weight):
      raise ValueError(
        f"This image domain declares label_weight={weight!r}, which float32 records hold as "
        f"{float(np.float32(weight))!r}; a release written by a lipdp older than the rounding "
        "of the label weight to float32 could understate the records' diameter by up to 6e-8 "
        "relative: release again with the current lipdp (a hand-written description should "
        "state the float32 value)."
      )
    domain = ImageDomain(
      desc["image_shape"],
      desc["radius"],
      desc["pixel_max"],
      desc.get("num_classes"),
      desc.get("label_weight", 1.0),
    )
  elif kind == "tabular":
    columns = desc.get("columns")
    if not isinstance(columns, Sequence) or isinstance(columns, str):
      raise ValueError("Tabular domain description needs a list 'columns'.")
    domain = TabularDomain(
      [_column_from_dict(c) for c in columns], label_column=desc.get("label_column")
    )
  else:
    raise ValueError(f"Unknown domain type {kind!r}; expected 'image' or 'tabular'.")
  if "dim" in desc and int(desc["dim"]) != domain.dim:
    raise ValueError(f"Description states dim={desc['dim']} but the domain has {domain.dim}.")
  if "diameter" in desc and not math.isclose(
    float(desc["diameter"]), domain.diameter, rel_tol=1e-9
  ):
    raise ValueError(
      f"Description states diameter={desc['diameter']} but the rebuilt domain "
      f"has {domain.diameter}."
    )
  return domain
