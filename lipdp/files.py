"""Writes that never leave a half-written file behind: write a temporary file, then rename."""

import os

import numpy as np


def atomic_write_text(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def atomic_savez(path: str, **arrays) -> None:
  tmp = path + ".tmp.npz"  # np.savez appends .npz to names without it
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)
