"""Image domains: pixels in [0, 1] on an l2 ball of declared radius, and an optional label.

`ImageDomain`: pixels divided by a declared `pixel_max`, clipped to [0, 1], flattened, and
rescaled onto the origin-centred l2 ball of a declared radius R; optionally a one-hot label
block. X = ([0, 1]^d intersected with B(0, R)) x {one-hot vectors}. Unknown labels raise
`ValueError`.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from lipdp.data.blocks import Block, BlockDomain, _as_records
from lipdp.privacy import diameters

# Projection onto the ball aims slightly inside it, at R * (1 - 2**-20). Casting to float32
# changes each coordinate by a relative error of at most 2**-24, hence the norm by at most that
# relative amount, so the float32 record still has norm < R, with a margin that no float64
# summation order can erase. The change to the record (a relative 1e-6) is immaterial.
_BALL_SHRINK = 1.0 - 2.0**-20


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


class ImageDomain(BlockDomain):
  """Images in [0, 1]^d intersected with B(0, R), optionally followed by a one-hot label.

  Record layout: the d = prod(image_shape) pixels (row-major, channels last), then, if
  `num_classes` is set, a one-hot block of `num_classes` coordinates.

  Args:
    image_shape: shape of one image, e.g. (28, 28, 1).
    radius: declared l2 radius R > 0 of the image part. Must not be derived from the private
      data (see `lipdp.data.datasets.default_image_radius` for a data-independent default).
    pixel_max: declared pixel value that maps to 1.0 (e.g. 255 for uint8, 16 for sklearn's
      digits). A property of the format, not a statistic of the data.
    num_classes: if set (>= 2), labels in [0, num_classes) are carried in the record as a
      one-hot block, so the mechanism protects them and synthetic records come with labels.
    label_weight: the declared value w of the label block's hot coordinate (w * one-hot).
      A larger w makes the label a larger part of the record, so a Lipschitz encoder can keep
      classes further apart, at the price of a larger diameter sqrt(2 R^2 + 2 w^2) for
      sufficiently large images. Rounded to float32 (0.1 becomes 0.10000000149...), the value
      the float32 records hold, so that the diameter is that of the records themselves.
  """

  kind = "image"

  def __init__(
    self,
    image_shape: Sequence[int],
    radius: float,
    pixel_max: float,
    num_classes: Optional[int] = None,
    label_weight: float = 1.0,
  ):
    raw_shape = np.atleast_1d(np.asarray(image_shape))
    if (
      raw_shape.ndim != 1
      or raw_shape.dtype.kind not in "iuf"
      or np.any(raw_shape != np.round(raw_shape))
    ):
      raise ValueError(f"image_shape must be a sequence of positive integers, got {image_shape!r}.")
    shape = tuple(int(s) for s in raw_shape)
    if not shape or any(s <= 0 for s in shape):
      raise ValueError(f"image_shape must be non-empty with positive entries, got {image_shape!r}.")
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
    label_weight = float(label_weight)
    if not (math.isfinite(label_weight) and label_weight > 0):
      raise ValueError(f"label_weight must be finite and > 0, got {label_weight}.")
    # The records are float32: a w that float32 rounds up would put two records sqrt(2)
    # float32(w) apart, beyond a diameter computed from w (found by a review).
    with np.errstate(over="ignore"):
      label_weight = float(np.float32(label_weight))
    if not (math.isfinite(label_weight) and label_weight > 0):
      raise ValueError(
        f"label_weight must be representable in float32 and > 0, got {label_weight}."
      )
    self.label_weight = label_weight
    self.image_shape = shape
    self.radius = radius
    self.pixel_max = pixel_max
    self.num_classes = num_classes
    self.image_dim = int(np.prod(shape))
    blocks = [Block("image", "image", 0, self.image_dim)]
    if num_classes is not None:
      blocks.append(
        Block(
          "label",
          "categorical",
          self.image_dim,
          self.image_dim + num_classes,
          tuple(range(num_classes)),
          scale=label_weight,
        )
      )
    self._blocks = tuple(blocks)

  def __repr__(self):
    weight = "" if self.label_weight == 1.0 else f", label_weight={self.label_weight}"
    return (
      f"ImageDomain(image_shape={self.image_shape}, radius={self.radius}, "
      f"pixel_max={self.pixel_max}, num_classes={self.num_classes}{weight})"
    )

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
      raise ValueError(
        f"Expected images of shape (n, *{self.image_shape}) (or flattened "
        f"(n, {self.image_dim})), got {x.shape}."
      )
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
      raise ValueError(
        "labels were given but this ImageDomain has no label block "
        "(num_classes=None); they would be dropped."
      )
    if self.num_classes is not None and labels is None:
      raise ValueError(
        f"This ImageDomain carries labels (num_classes={self.num_classes}); pass labels."
      )
    pixels = _project_nonnegative_ball(x / self.pixel_max, self.radius)
    if self.num_classes is None:
      return pixels
    y = _check_labels(labels, n, self.num_classes)
    return np.concatenate([pixels, self.label_weight * _one_hot(y, self.num_classes)], axis=1)

  def project(self, records: Any) -> np.ndarray:
    """Maps arbitrary vectors (n, dim) into the domain (idempotent; NaN raises).

    Image part: clip to [0, 1], then rescale by min(1, R / |x|). Label block: one-hot of its
    argmax (first maximum on ties).
    """
    x = _as_records(records, self.dim)
    pixels = _project_nonnegative_ball(x[:, : self.image_dim], self.radius)
    if self.num_classes is None:
      return pixels
    idx = np.argmax(x[:, self.image_dim :], axis=1)
    return np.concatenate([pixels, self.label_weight * _one_hot(idx, self.num_classes)], axis=1)

  def labels(self, records: Any) -> Optional[np.ndarray]:
    """Labels (argmax of the label block) as int64, or None without a label block."""
    if self.num_classes is None:
      return None
    x = _as_records(records, self.dim)
    return np.argmax(x[:, self.image_dim :], axis=1).astype(np.int64)

  def decode(self, records: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Records -> (images float32 in [0, 1] of shape (n, *image_shape), labels or None).

    Pixels are clipped to [0, 1] (in units of pixel_max: multiply by pixel_max for raw
    units); they are not rescaled onto the ball, so bright decoder outputs keep their
    brightness. Labels are the argmax of the label block.
    """
    x = _as_records(records, self.dim)
    images = np.clip(x[:, : self.image_dim], 0.0, 1.0).astype(np.float32)
    images = images.reshape((x.shape[0],) + self.image_shape)
    return images, self.labels(x)

  def describe_spec(self) -> Dict[str, Any]:
    """The declared constants that define the domain (no diameter; no privacy import)."""
    return {
      "type": "image",
      "image_shape": list(self.image_shape),
      "radius": self.radius,
      "pixel_max": self.pixel_max,
      "num_classes": self.num_classes,
      "label_weight": self.label_weight,
    }

  def diameter_components(self) -> List[Dict[str, Any]]:
    """The image block: [0, 1]^d intersected with B(0, R), whose exact diameter is
    `diameters.nonnegative_ball_diameter(R, d)` (sqrt(2) R when d >= 2 ceil(R^2): <x, y> >= 0
    gives |x - y|^2 <= |x|^2 + |y|^2 <= 2 R^2, attained on disjoint supports); the label block:
    two distinct one-hot vectors are sqrt(2) apart."""
    components = [
      {
        "block": "image",
        "count": 1,
        "diameter": float(diameters.nonnegative_ball_diameter(self.radius, self.image_dim)),
        "derivation": (
          f"[0,1]^{self.image_dim} intersected with the l2 ball of "
          f"radius R={self.radius:g}: values in [0,1] so <x,y> >= 0 and "
          "|x-y|^2 <= |x|^2+|y|^2 <= 2R^2, exact when d >= 2*ceil(R^2); "
          "in general D^2 = max over k+m <= d of min(k,R^2)+min(m,R^2)"
        ),
      }
    ]
    if self.num_classes is not None:
      components.append(
        {
          "block": "label",
          "count": 1,
          "diameter": math.sqrt(2.0) * self.label_weight,
          "derivation": (
            f"two distinct one-hot vectors scaled by the declared "
            f"label_weight w={self.label_weight:g} are sqrt(2) w "
            "apart"
          ),
        }
      )
    return components

  def preprocessing_text(self) -> str:
    return (
      f"pixels / {self.pixel_max:g} (declared), clipped to [0,1], flattened, rescaled by "
      f"min(1, R/|x|) with declared R={self.radius:g}"
      + (
        f"; label one-hot times declared w={self.label_weight:g}"
        if self.num_classes is not None
        else ""
      )
      + ". Record-wise: no statistic of the data is used."
    )

  def to_arrays(self, records: Any) -> Dict[str, np.ndarray]:
    """{"images": (n, *image_shape) in [0, 1], "labels": (n,) int64 when labelled}."""
    images, labels = self.decode(records)
    return {"images": images} if labels is None else {"images": images, "labels": labels}
