"""Argument checks shared by the privacy module.

Every public function of `lipdp.privacy` validates its inputs here, so that a bad
argument fails loudly with a `ValueError` that names it, instead of silently
producing a meaningless epsilon (a NaN sigma, a negative Lipschitz constant, a
delta of 1, ...). Booleans are rejected where a number is expected because
`True` is an `int` in Python and would otherwise pass as 1.
"""

import math
import numbers
from typing import Any, Mapping

import numpy as np


def _as_real(value: Any, name: str) -> float:
  if isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name} must be a real number, got the bool {value!r}.")
  if isinstance(value, np.ndarray):
    if value.shape != ():
      raise ValueError(f"{name} must be a scalar, got an array of shape {value.shape}.")
    value = value.item()
  if not isinstance(value, numbers.Real):
    raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
  value = float(value)
  if math.isnan(value):
    raise ValueError(f"{name} must not be NaN.")
  return value


def finite(value: Any, name: str) -> float:
  """Returns `value` as a float; raises unless it is a finite real number."""
  value = _as_real(value, name)
  if math.isinf(value):
    raise ValueError(f"{name} must be finite, got {value}.")
  return value


def positive(value: Any, name: str) -> float:
  """A finite number > 0."""
  value = finite(value, name)
  if value <= 0:
    raise ValueError(f"{name} must be > 0, got {value}.")
  return value


def nonnegative(value: Any, name: str) -> float:
  """A finite number >= 0."""
  value = finite(value, name)
  if value < 0:
    raise ValueError(f"{name} must be >= 0, got {value}.")
  return value


def probability_open(value: Any, name: str) -> float:
  """A number in the open interval (0, 1), e.g. a delta."""
  value = finite(value, name)
  if not 0.0 < value < 1.0:
    raise ValueError(f"{name} must lie in the open interval (0, 1), got {value}.")
  return value


def probability_half_open(value: Any, name: str) -> float:
  """A number in (0, 1], e.g. a sampling rate."""
  value = finite(value, name)
  if not 0.0 < value <= 1.0:
    raise ValueError(f"{name} must lie in (0, 1], got {value}.")
  return value


def positive_int(value: Any, name: str) -> int:
  """An integer >= 1 (a number of latents, of steps, of records)."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
      fvalue = float(value)
      if math.isfinite(fvalue) and fvalue == int(fvalue):
        value = int(fvalue)
      else:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    else:
      raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
  value = int(value)
  if value < 1:
    raise ValueError(f"{name} must be an integer >= 1, got {value}.")
  return value


def renyi_order(value: Any, name: str = "alpha") -> float:
  """A Rényi order alpha > 1 (finite)."""
  value = finite(value, name)
  if value <= 1.0:
    raise ValueError(f"{name} (a Rényi order) must be > 1, got {value}.")
  return value


def known_keys(data: Any, names, what: str) -> None:
  """Raises unless `data` is a mapping whose keys are among `names` (and 'type'): a JSON
  object read back into one of the privacy module's dataclasses."""
  if not isinstance(data, Mapping):
    raise ValueError(f"a {what} must be a mapping, got {data!r}")
  unknown = set(data) - set(names) - {"type"}
  if unknown:
    raise ValueError(f"unknown {what} fields: {sorted(unknown)}")
