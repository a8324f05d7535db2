"""Input checks shared by the evaluation modules (clear ValueErrors at the boundary)."""

import functools
from typing import Any, Callable, Optional

import numpy as np
from threadpoolctl import threadpool_limits


def as_matrix(x: Any, name: str, *, dim: Optional[int] = None, min_rows: int = 1) -> np.ndarray:
  """Returns `x` as a finite float64 array of shape (n, d) with n >= min_rows, or raises.

  float32 records convert to float64 exactly, so exact-copy tests (distance 0) stay exact.
  """
  if x is None:
    raise ValueError(f"{name} is None; expected an array of shape (n, d).")
  arr = np.asarray(x)
  if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
    raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
  if arr.ndim != 2:
    want = f"(n, {dim})" if dim is not None else "(n, d)"
    raise ValueError(f"{name} must have shape {want}, got {arr.shape}.")
  if dim is not None and arr.shape[1] != dim:
    raise ValueError(f"{name} must have shape (n, {dim}) (the domain's dim), got {arr.shape}.")
  if arr.shape[0] < min_rows:
    raise ValueError(f"{name} needs at least {min_rows} row(s), got {arr.shape[0]}.")
  if arr.shape[1] < 1:
    raise ValueError(f"{name} has no columns: {arr.shape}.")
  arr = arr.astype(np.float64)
  if not np.isfinite(arr).all():
    raise ValueError(f"{name} contains NaN or infinite values.")
  return arr


def same_width(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
  if a.shape[1] != b.shape[1]:
    raise ValueError(
      f"{name_a} and {name_b} must have the same number of columns, got {a.shape} and {b.shape}."
    )


def as_labels(
  y: Any, name: str, *, num_classes: Optional[int] = None, min_size: int = 1
) -> np.ndarray:
  """Returns integer labels as int64 of shape (n,), n >= min_size, in [0, num_classes)."""
  arr = np.asarray(y)
  if arr.ndim != 1:
    raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
  if arr.shape[0] < min_size:
    raise ValueError(f"{name} needs at least {min_size} label(s), got {arr.shape[0]}.")
  if arr.dtype.kind == "f":
    if not np.isfinite(arr).all() or np.any(arr != np.round(arr)):
      raise ValueError(f"{name} must hold integers.")
  elif arr.dtype.kind not in "iub":
    raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}.")
  arr = arr.astype(np.int64)
  if num_classes is not None and arr.size and (arr.min() < 0 or arr.max() >= num_classes):
    raise ValueError(
      f"{name} must lie in [0, {num_classes}), got range [{arr.min()}, {arr.max()}]."
    )
  return arr


def subsample(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  """At most `size` rows of x, drawn without replacement (x itself if it is small enough)."""
  if x.shape[0] <= size:
    return x
  return x[np.sort(rng.choice(x.shape[0], size, replace=False))]


def rng_for(seed: int, purpose: int) -> np.random.Generator:
  """An independent, reproducible stream per (seed, purpose): one per subsample or split."""
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
  return np.random.default_rng([int(seed), int(purpose)])


def single_threaded(fn: Callable) -> Callable:
  """Runs `fn` with BLAS and OpenMP on one thread.

  The matrices of the evaluation are small or medium: on a shared 2-core machine, BLAS threads
  that busy-wait for a core made the membership attacks 10x slower and an 8,000 x 8,000
  nearest-neighbour search slower than on one thread. One thread is also reproducible.
  """

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    with threadpool_limits(1):
      return fn(*args, **kwargs)

  return wrapper
