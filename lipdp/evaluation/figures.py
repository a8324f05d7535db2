"""Figures of real versus synthetic records, written atomically (no half-written files)."""

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

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


def image_mosaic(images: np.ndarray, cols: int, pad: int = 1, row_pad: int = 1) -> np.ndarray:
  """Images (n, H, W[, C]) tiled row by row, `cols` per row, with white gaps of `pad` pixels
  between columns and `row_pad` between rows."""
  images = np.asarray(images, dtype=np.float32)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  num, height, width = images.shape[:3]
  rows = int(np.ceil(num / cols))
  shape = (rows * (height + row_pad) - row_pad, cols * (width + pad) - pad) + images.shape[3:]
  out = np.ones(shape, np.float32)
  for i in range(num):
    top, left = (i // cols) * (height + row_pad), (i % cols) * (width + pad)
    out[top : top + height, left : left + width] = images[i]
  return out


def image_grid(
  real: np.ndarray,
  synthetic: np.ndarray,
  path: str,
  real_labels: Optional[Sequence[int]] = None,
  synthetic_labels: Optional[Sequence[int]] = None,
  title: str = "",
) -> str:
  """Real images above synthetic ones, each set one mosaic (16 per row); labels above each image.

  One image per set, not one axes per record: drawing and saving 128 axes took seconds.
  """
  num = min(len(real), len(synthetic))
  cols = min(num, 16)
  rows = int(np.ceil(num / cols))
  fig, axes = plt.subplots(2, 1, figsize=(cols * 0.9, 2 * rows * 1.0), squeeze=False)
  for ax, (images, labels, name) in zip(
    axes[:, 0], [(real, real_labels, "real"), (synthetic, synthetic_labels, "synthetic")]
  ):
    images = np.asarray(images[:num])
    height, width = images.shape[1:3]
    # With labels, a white band above each row of images holds them.
    pad, row_pad = 1, (max(1, height // 2) if labels is not None else 1)
    mosaic = image_mosaic(images, cols, pad=pad, row_pad=row_pad)
    ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.axis("off")
    ax.text(-0.01, 0.5, name, transform=ax.transAxes, ha="right", va="center", fontsize=8)
    if labels is not None:
      for i in range(num):
        x = (i % cols) * (width + pad) + (width - 1) / 2
        y = (i // cols) * (height + row_pad) - 0.5
        ax.text(x, y, str(int(labels[i])), ha="center", va="bottom", fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  return _save(fig, path)


# A categorical column shows at most this many bars per kind: the most frequent categories (in
# the real records, then the synthetic ones) and one bar for the rest together.
MAX_CATEGORIES = 12
# Category names longer than this are cut (with an ellipsis) in the tick labels.
MAX_LABEL_CHARS = 24
_NUMERIC_BINS = 20


def declared_bounds(domain) -> Dict[str, Tuple[float, float]]:
  """{numeric column: (low, high)} of a tabular domain: the histograms' declared range."""
  return {c.name: (c.low, c.high) for c in getattr(domain, "columns", ()) if hasattr(c, "low")}


def _short(label: str) -> str:
  return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def category_bars(
  real: np.ndarray, synthetic: np.ndarray, max_categories: int = MAX_CATEGORIES
) -> Tuple[List[str], np.ndarray, np.ndarray]:
  """(labels, real shares, synthetic shares) of a categorical column's bars.

  The categories in order of their share of the real records (then of the synthetic ones, then
  by name); beyond `max_categories`, the first max_categories - 1 and one bar 'other (N
  categories)' holding the rest.
  """
  real, synthetic = np.asarray(real, dtype=object), np.asarray(synthetic, dtype=object)
  cats = sorted(set(real.tolist()) | set(synthetic.tolist()), key=str)

  def share(values, c):
    return float(np.mean(values == c)) if len(values) else 0.0

  r = np.array([share(real, c) for c in cats])
  s = np.array([share(synthetic, c) for c in cats])
  order = sorted(range(len(cats)), key=lambda i: (-r[i], -s[i], str(cats[i])))
  labels = [_short(str(cats[i])) for i in order]
  r, s = r[order], s[order]
  if len(cats) > max_categories:
    kept = max_categories - 1
    rest = len(cats) - kept
    labels = labels[:kept] + [f"other ({rest} categories)"]
    r = np.append(r[:kept], r[kept:].sum())
    s = np.append(s[:kept], s[kept:].sum())
  return labels, r, s


def column_marginals_figure(
  real: dict,
  synthetic: dict,
  title: str = "",
  max_columns: int = 12,
  bounds: Optional[Mapping[str, Tuple[float, float]]] = None,
  max_categories: int = MAX_CATEGORIES,
):
  """The figure of `column_marginals` (a matplotlib Figure; the caller closes it)."""
  names = list(real)[:max_columns]
  bounds = dict(bounds or {})
  cols = min(3, len(names))
  rows = int(np.ceil(len(names) / cols))
  numeric = {n: np.asarray(real[n]).dtype.kind in "fiu" or n in bounds for n in names}
  bars = [
    0
    if numeric[n]
    else min(
      len(set(np.asarray(real[n]).tolist()) | set(np.asarray(synthetic[n]).tolist())),
      max_categories,
    )
    for n in names
  ]
  height = [
    max([3.0] + [0.32 * b + 1.0 for b in bars[i * cols : (i + 1) * cols]]) for i in range(rows)
  ]
  fig, axes = plt.subplots(
    rows,
    cols,
    figsize=(4.2 * cols, sum(height)),
    squeeze=False,
    gridspec_kw={"height_ratios": height},
    layout="constrained",  # room for the suptitle and the tick labels
  )
  for ax in axes.ravel():
    ax.axis("off")
  for i, name in enumerate(names):
    ax = axes[i // cols, i % cols]
    ax.axis("on")
    r, s = np.asarray(real[name]), np.asarray(synthetic[name])
    if numeric[name]:
      if name in bounds:
        low, high = bounds[name]
        edges = np.linspace(float(low), float(high), _NUMERIC_BINS + 1)
      else:
        edges = np.histogram_bin_edges(np.concatenate([r, s]).astype(float), bins=_NUMERIC_BINS)
      ax.hist(r.astype(float), bins=edges, alpha=0.5, density=True, label="real")
      ax.hist(s.astype(float), bins=edges, alpha=0.5, density=True, label="synthetic")
      ax.tick_params(labelsize=7)
    else:
      labels, rs, ss = category_bars(r, s, max_categories)
      y = np.arange(len(labels))
      ax.barh(y - 0.2, rs, 0.4, label="real")
      ax.barh(y + 0.2, ss, 0.4, label="synthetic")
      ax.set_yticks(y, labels, fontsize=7)
      ax.invert_yaxis()  # the most frequent on top
      ax.tick_params(axis="x", labelsize=7)
      ax.set_xlabel("share of records", fontsize=7)
    ax.set_title(_short(name), fontsize=8)
  axes[0, 0].legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  return fig


def column_marginals(
  real: dict,
  synthetic: dict,
  path: str,
  title: str = "",
  max_columns: int = 12,
  bounds: Optional[Mapping[str, Tuple[float, float]]] = None,
  max_categories: int = MAX_CATEGORIES,
) -> str:
  """Each column, real versus synthetic (tabular domains), readable at any number of categories.

  Numeric columns: histograms on their declared bounds (`bounds`, e.g. `declared_bounds(domain)`;
  else on the values' range). Categorical columns: horizontal bars of each category's share,
  the most frequent on top, at most `max_categories` bars with the rest grouped (`category_bars`),
  and long names cut, so that 41 categories or long names stay readable.
  """
  fig = column_marginals_figure(real, synthetic, title, max_columns, bounds, max_categories)
  return _save(fig, path)
