"""Results files: one JSON line per run, appended so that a killed sweep loses at most one line.

`append_row` writes a row as one line in a single write, flushed and fsynced (an append, not an
atomic replace: a crash may cut the last line, which `read_rows` and `completed_ids` skip).
"""

import json
import os
import platform as platform_lib
import subprocess
from typing import Any, Dict, Mapping, Optional

from lipdp import files


def append_row(path: str, row: Mapping[str, Any]) -> None:
  """Appends one JSON line (NumPy values as plain JSON) to `path`."""
  line = json.dumps(row, sort_keys=True, default=files.json_default, allow_nan=True) + "\n"
  files.append_line(path, line)


def read_rows(path: str) -> list:
  """The rows of a results file (a line cut by a crash is skipped)."""
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          pass
  return rows


def completed_ids(path: str) -> set:
  """Ids of the points with a row (error-free) in the results file."""
  if not os.path.exists(path):
    return set()
  return {row["id"] for row in read_rows(path) if "error" not in row}


def code_version() -> Optional[str]:
  """The git commit of the code that ran ('+modified' when the checkout has changes; None
  outside a git checkout)."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    out = subprocess.run(
      ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here
    )
    dirty = subprocess.run(
      ["git", "status", "--porcelain", "--untracked-files=no"],
      capture_output=True,
      text=True,
      check=True,
      cwd=here,
    ).stdout.strip()
    return out.stdout.strip() + ("+modified" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return None


def platform() -> Dict[str, Any]:
  """Where a row ran: JAX's backend, its devices and the numerical libraries' versions.

  A row reproduces at its `code_version` on the same platform. Another device count sums a
  step's gradients in another order (the DP-SGD noise and Poisson batches do not change: they
  are drawn on the host from the seed and the step), and another XLA or BLAS build may round
  differently, so the last digits of a row may move; its privacy accounting does not, since it
  depends only on the plan.
  """
  # Imported here: reading and listing results does not need JAX.
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  devices = jax.devices()
  return {
    "backend": jax.default_backend(),
    "device_count": len(devices),
    "device_kind": devices[0].device_kind if devices else None,
    "process_count": jax.process_count(),
    "jax": jax.__version__,
    "jaxlib": jaxlib.__version__,
    "numpy": np.__version__,
    "python": platform_lib.python_version(),
  }
