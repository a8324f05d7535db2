"""Figures of real versus synthetic records, written atomically (no half-written files)."""

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from lipdp import files


def _save(fig, path: str) -> str:
  try:
    with files.atomic_write(path, "wb") as f:
      fig.savefig(f, format="png", dpi=120, bbox_inches="tight")
  finally:
    plt.close(fig)
  return path


def image_grid(
  real: np.ndarray,
  synthetic: np.ndarray,
  path: str,
  real_labels: Optional[Sequence[int]] = None,
  synthetic_labels: Optional[Sequence[int]] = None,
  title: str = "",
) -> str:
  """Two rows of panels: real images on top, synthetic below; labels as panel titles."""
  num = min(len(real), len(synthetic))
  cols = min(num, 16)
  rows = 2 * int(np.ceil(num / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.0), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for part, (images, labels, name) in enumerate(
    [(real, real_labels, "real"), (synthetic, synthetic_labels, "synthetic")]
  ):
    for i in range(num):
      row = part * (rows // 2) + i // cols
      ax = axes[row, i % cols]
      ax.imshow(np.squeeze(images[i]), cmap="gray", vmin=0.0, vmax=1.0)
      if labels is not None:
        ax.set_title(str(int(labels[i])), fontsize=7)
      if i % cols == 0:
        ax.text(-0.5, 0.5, name, transform=ax.transAxes, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  return _save(fig, path)


def column_marginals(
  real: dict, synthetic: dict, path: str, title: str = "", max_columns: int = 12
) -> str:
  """Histograms of each column, real versus synthetic (tabular domains)."""
  names = list(real)[:max_columns]
  cols = min(4, len(names))
  rows = int(np.ceil(len(names) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for i, name in enumerate(names):
    ax = axes[i // cols, i % cols]
    ax.axis("on")
    r, s = np.asarray(real[name]), np.asarray(synthetic[name])
    if r.dtype.kind in "fiu":
      bins = np.histogram_bin_edges(np.concatenate([r, s]).astype(float), bins=20)
      ax.hist(r, bins=bins, alpha=0.5, density=True, label="real")
      ax.hist(s, bins=bins, alpha=0.5, density=True, label="synthetic")
    else:
      cats = sorted(set(r.tolist()) | set(s.tolist()), key=str)
      x = np.arange(len(cats))
      ax.bar(x - 0.2, [np.mean(r == c) for c in cats], 0.4, label="real")
      ax.bar(x + 0.2, [np.mean(s == c) for c in cats], 0.4, label="synthetic")
      ax.set_xticks(x, [str(c) for c in cats], fontsize=7)
    ax.set_title(name, fontsize=8)
  axes[0, 0].legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  return _save(fig, path)
