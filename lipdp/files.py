"""How lipdp writes files: whole files atomically, logs by durable appends.

Every file lipdp writes whole (reports, releases, configs, figures, evaluations, synthetic
tables) goes through `atomic_write`: the content goes to a uniquely named temporary file in the
destination folder, is flushed to disk, gets the permissions a plain `open(path, 'w')` would
give (mkstemp's 0600 would otherwise make some outputs unreadable to their group; a secret
keeps 0600), and is renamed over the destination in one step. On any failure the temporary file
is removed and an existing file at `path` is left untouched.

The files that grow a line at a time (training's metrics.jsonl, a sweep's results) go through
`append_line`: one write per line, flushed and fsynced before it returns. That is durable, not
atomic: a crash during the write may leave the last line cut, so their readers skip a line that
does not parse.
"""

import contextlib
import os
import tempfile
from typing import IO, Iterator

import numpy as np


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_write(
  path: str, mode: str = "w", encoding: str = "utf-8", private: bool = False
) -> Iterator[IO]:
  """Opens a temporary file that replaces `path` when the block exits without an exception.

  `private=True` keeps mkstemp's owner-only permissions (0600) instead of the umask's: for a
  secret, such as the seed of a run's noise, that other local accounts must not read.
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
  try:
    kwargs = {} if "b" in mode else {"encoding": encoding}
    with os.fdopen(fd, mode, **kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o600 if private else 0o666 & ~_umask())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def append_line(path: str, line: str) -> None:
  """Appends `line` (ending in a newline) in one write, flushed and fsynced (module docstring)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a", encoding="utf-8") as f:
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def atomic_write_text(path: str, text: str, private: bool = False) -> None:
  with atomic_write(path, "w", private=private) as f:
    f.write(text)


def atomic_savez(path: str, **arrays) -> None:
  """`np.savez_compressed` into `path` (which should end in .npz), atomically."""
  with atomic_write(path, "wb") as f:
    np.savez_compressed(f, **arrays)


def json_default(value):
  """`json.dumps(..., default=json_default)`: NumPy scalars and arrays as plain JSON values."""
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")
