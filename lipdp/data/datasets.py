"""From a dataset name to records in a declared domain, split into train and holdout.

Data sets are registered by name in one table (`DATASETS`: digits, breast_cancer, mnist_idx),
and sources of data sets by prefix (`SOURCES`: 'tfds:', 'csv:', 'npz:', and 'table:' for a
table in memory); an entry names its loader, the kind of domain it declares, its options and a
line saying what it is. Adding a data set is one entry (and its tests). `load_dataset` finds the
entry, which loads raw data (`lipdp.data.sources`), builds the declared domain and encodes every
record (record-wise, no statistics of the data); it then splits the records with a seeded
permutation. The split is not a privacy mechanism: both parts are private data; the holdout is
kept out of training for evaluation (TSTR, membership inference).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from lipdp.data import sources
from lipdp.data.domain import ImageDomain, TabularDomain

__all__ = [
  "DEFAULT_RADIUS_FRACTION",
  "DATA_DIR_ENV",
  "PreparedData",
  "default_image_radius",
  "train_holdout_split",
  "load_dataset",
  "DATASETS",
  "SOURCES",
]

# Default image radius: R = DEFAULT_RADIUS_FRACTION * sqrt(d) for d = number of pixel values.
# sqrt(d) is the norm of an all-white image, so R = sqrt(d) / 2 is the norm of an image whose
# mean squared intensity is 1/4 (e.g. a quarter of the pixels fully on). The fraction is a
# constant fixed a priori, not a statistic of any data set: digits (8x8) gets R = 4, MNIST and
# Fashion-MNIST (28x28x1) R = 14. A smaller R shrinks the diameter (sqrt(2) R), hence the
# noise needed, at the price of dimming images whose norm exceeds R.
DEFAULT_RADIUS_FRACTION = 0.5

# Environment variable naming a folder that holds offline data sets (e.g. 'mnist-test/').
DATA_DIR_ENV = "LIPDP_DATA_DIR"


def default_image_radius(image_shape: Sequence[int]) -> float:
  """The declared default radius DEFAULT_RADIUS_FRACTION * sqrt(prod(image_shape))."""
  return DEFAULT_RADIUS_FRACTION * math.sqrt(float(np.prod(image_shape)))


@dataclasses.dataclass
class PreparedData:
  """Records of one data set, split into a private training part and a holdout.

  Attributes:
    train: float32 (n_train, domain.dim) records, each in the domain.
    holdout: float32 (n_holdout, domain.dim) records, each in the domain.
    train_labels: int64 (n_train,) class indices of the training records (index into the
      label categories), or None if the data set has no labels. Present even when the labels
      are not part of the records (include_labels=False).
    holdout_labels: likewise for the holdout.
    domain: the declared domain (ImageDomain or TabularDomain).
    name: the data set name passed to load_dataset.
    split_seed: seed of the train/holdout permutation (see train_holdout_split).
    holdout_fraction: fraction of records held out.
    notes: caveats of the data set that every release of it must carry (e.g. bounds that are
      published statistics of the data itself).
    source_info: what reading the source did, for the person running lipdp (for CSV files
      `lipdp.data.sources.CsvTable.summary()`: row count, header order, values clipped to the
      bounds, ignored columns). Statistics of the private data: never part of a release.
  """

  train: np.ndarray
  holdout: np.ndarray
  train_labels: Optional[np.ndarray]
  holdout_labels: Optional[np.ndarray]
  domain: Union[ImageDomain, TabularDomain]
  name: str
  split_seed: int
  holdout_fraction: float = 0.2
  notes: Tuple[str, ...] = ()
  source_info: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def describe(self) -> Dict[str, Any]:
    """JSON-serialisable summary (sizes, split, domain description) for reports."""
    return {
      "name": self.name,
      "num_train": int(self.train.shape[0]),
      "num_holdout": int(self.holdout.shape[0]),
      "split_seed": self.split_seed,
      "holdout_fraction": self.holdout_fraction,
      "labels_in_records": self.domain.label_column is not None,
      "notes": list(self.notes),
      "domain": self.domain.describe(),
    }


def train_holdout_split(
  n: int, holdout_fraction: float = 0.2, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
  """Deterministic split of range(n) into (train, holdout) index arrays.

  perm = np.random.RandomState(seed).permutation(n) (the legacy generator, whose stream NumPy
  keeps stable across versions); the first round(n * holdout_fraction) entries form the
  holdout, the rest the training part. Both are returned sorted; they are disjoint and their
  union is range(n). Example: n = 10000, fraction 0.2 -> 8000 / 2000.
  """
  if isinstance(n, bool) or int(n) != n or n < 0:
    raise ValueError(f"n must be a non-negative integer, got {n!r}.")
  n = int(n)
  holdout_fraction = float(holdout_fraction)
  if not 0.0 <= holdout_fraction < 1.0:
    raise ValueError(f"holdout_fraction must lie in [0, 1), got {holdout_fraction}.")
  if isinstance(seed, bool) or int(seed) != seed or not 0 <= seed < 2**32:
    raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}.")
  perm = np.random.RandomState(int(seed)).permutation(n)
  n_holdout = int(round(n * holdout_fraction))
  return np.sort(perm[n_holdout:]), np.sort(perm[:n_holdout])


def _image_domain(
  image_shape, radius, pixel_max, num_classes, include_labels, label_weight=1.0
) -> ImageDomain:
  if radius is None:
    radius = default_image_radius(image_shape)
  return ImageDomain(
    image_shape,
    radius,
    pixel_max,
    num_classes=num_classes if include_labels else None,
    label_weight=label_weight,
  )


def _with_channel(images: np.ndarray) -> np.ndarray:
  return images[..., None] if images.ndim == 3 else images


def _mnist_idx_dir(data_dir: Optional[str]) -> str:
  if data_dir is None:
    root = os.environ.get(DATA_DIR_ENV)
    if not root:
      raise ValueError(
        f"'mnist_idx' needs data_dir= (a folder with the IDX files) or the "
        f"environment variable {DATA_DIR_ENV} (a folder holding mnist-test/)."
      )
    return os.path.join(root, "mnist-test")
  data_dir = os.fspath(data_dir)
  # Accept the parent folder too (the layout of $LIPDP_DATA_DIR).
  if not any(
    f.endswith(("-idx3-ubyte", "-idx3-ubyte.gz"))
    for f in (os.listdir(data_dir) if os.path.isdir(data_dir) else ())
  ):
    nested = os.path.join(data_dir, "mnist-test")
    if os.path.isdir(nested):
      return nested
  return data_dir


def _pixel_max_for(images: np.ndarray, pixel_max: Optional[float], source: str) -> float:
  if pixel_max is not None:
    return float(pixel_max)
  if images.dtype == np.uint8:
    return 255.0  # the format's maximum, not a statistic of the data
  raise ValueError(
    f"{source}: images of dtype {images.dtype} need a declared pixel_max= "
    "(the value that maps to 1.0); it is never taken from the data."
  )


def _check_kwargs(name: str, kw: Dict[str, Any], allowed: Sequence[str]):
  extra = sorted(set(kw) - set(allowed))
  if extra:
    raise ValueError(
      f"load_dataset({name!r}) got unexpected options {extra}; allowed: {sorted(allowed)}."
    )


def _no_radius(name: str, radius, label_weight=1.0):
  if radius is not None:
    raise ValueError(f"radius applies to image data only; {name!r} is tabular.")
  if label_weight != 1.0:
    raise ValueError(f"label_weight applies to image data only; {name!r} is tabular.")


# ------------------------------------------------------------------------------------------------
# The registry: one entry per data set, and one per source of data sets (a name prefix).


@dataclasses.dataclass(frozen=True)
class Request:
  """What `load_dataset` was asked, for a loader: its argument and the common settings.

  Attributes:
    name: the data set name as given (e.g. 'csv:data/t.csv').
    argument: the part after a source's prefix ('data/t.csv'); the name for a data set.
    options: the loader options (checked against the entry's `options`).
  """

  name: str
  argument: str
  data_dir: Optional[str]
  radius: Optional[float]
  include_labels: bool
  label_weight: float
  options: Dict[str, Any]


@dataclasses.dataclass
class Loaded:
  """What a loader returns: every record encoded in its declared domain, before the split."""

  records: np.ndarray
  domain: Union[ImageDomain, TabularDomain]
  labels: Optional[np.ndarray] = None  # class indices, or None
  notes: Tuple[str, ...] = ()  # caveats every release of the data set must carry
  source_info: Dict[str, Any] = dataclasses.field(default_factory=dict)
  name: Optional[str] = None  # how the data set is shown, when not by the name it was asked by


@dataclasses.dataclass(frozen=True)
class Entry:
  """A data set, or a source of data sets, of the registry.

  Attributes:
    load: `load(request) -> Loaded`.
    kind: 'image', 'table', or 'image or table' (tables refuse the image settings radius and
      label_weight).
    options: the loader options it accepts.
    summary: what it is, in a line (docs/data.md lists the same).
  """

  load: Callable[[Request], Loaded]
  kind: str
  options: Tuple[str, ...]
  summary: str


# The digits loader's `frame` option: None (8x8, as bundled) or 'mnist' (drawn in MNIST's
# 28x28 domain, `sources.digits_in_mnist_frame`).
DIGITS_FRAMES = (None, "mnist")


def _load_digits(request: Request) -> Loaded:
  images, labels = sources.load_digits()
  frame = request.options.get("frame")
  if frame not in DIGITS_FRAMES:
    raise ValueError(f"digits: frame must be one of {DIGITS_FRAMES}, got {frame!r}")
  pixel_max = sources.DIGITS_PIXEL_MAX
  if frame == "mnist":
    images, pixel_max = sources.digits_in_mnist_frame(images), sources.MNIST_PIXEL_MAX
  images = _with_channel(images)
  domain = _image_domain(
    images.shape[1:],
    request.radius,
    pixel_max,
    sources.DIGITS_NUM_CLASSES,
    request.include_labels,
    request.label_weight,
  )
  return Loaded(domain.encode(images, labels if request.include_labels else None), domain, labels)


def _load_breast_cancer(request: Request) -> Loaded:
  table = sources.load_breast_cancer()
  domain = sources.breast_cancer_domain(include_label=True)
  labels = domain.category_indices(domain.label_column, table[domain.label_column])
  records, domain = _encode_table(domain, table, request.include_labels)
  return Loaded(records, domain, labels, notes=(sources.BREAST_CANCER_BOUNDS_NOTE,))


def _load_mnist_idx(request: Request) -> Loaded:
  images, labels = sources.load_idx(
    _mnist_idx_dir(request.data_dir), prefix=request.options.get("prefix")
  )
  images = _with_channel(images)
  domain = _image_domain(
    images.shape[1:],
    request.radius,
    sources.MNIST_PIXEL_MAX,
    sources.MNIST_NUM_CLASSES,
    request.include_labels,
    request.label_weight,
  )
  if request.include_labels:
    return Loaded(domain.encode(images, labels), domain, labels)
  _check_label_range(labels, sources.MNIST_NUM_CLASSES, request.name)
  return Loaded(domain.encode(images), domain, labels)


def _load_tfds(request: Request) -> Loaded:
  kw, name = request.options, request.name
  if not request.argument:
    raise ValueError("Give the TFDS name after 'tfds:', e.g. 'tfds:mnist'.")
  label_key = kw.get("label_key", "label")
  images, labels, info = sources.load_tfds(
    request.argument,
    split=kw.get("split", "train"),
    data_dir=request.data_dir,
    image_key=kw.get("image_key", "image"),
    label_key=label_key,
    with_info=True,
  )
  pixel_max = _pixel_max_for(images, kw.get("pixel_max"), name)
  num_classes = kw.get("num_classes")
  if num_classes is None and labels is not None:
    num_classes = _tfds_num_classes(info, label_key, name)
  domain, records = _encode_images(
    images,
    labels,
    request.radius,
    pixel_max,
    num_classes,
    request.include_labels,
    name,
    request.label_weight,
  )
  return Loaded(records, domain, labels)


def _load_csv_rows(request: Request, domain: TabularDomain, rows: sources.CsvRows) -> Loaded:
  """A table read under the CSV reading rules (docs/data.md), from a file or from memory."""
  table = sources.parse_csv_rows(rows, domain, strict=bool(request.options.get("strict", False)))
  labels = _table_labels(domain, table.columns)
  records, encoded_domain = _encode_table(domain, table.columns, request.include_labels)
  return Loaded(records, encoded_domain, labels, source_info=table.summary())


def _load_csv(request: Request) -> Loaded:
  kw = request.options
  domain = sources.load_schema(_require_schema(request.name, kw))  # before the file is read
  rows = sources.read_csv_rows(
    request.argument,
    delimiter=kw.get("delimiter") or ",",
    encoding=kw.get("encoding") or "utf-8",
  )
  return _load_csv_rows(request, domain, rows)


def _load_table(request: Request) -> Loaded:
  """A table in memory (`lipdp.synthesize`): its cells as text, read as a CSV file's are; the
  argument is the digest of that text (`sources.table_digest`), checked."""
  rows = request.options.get("table")
  if not isinstance(rows, sources.CsvRows):
    raise ValueError(
      f"{request.name!r} is a table in memory: it is given to lipdp.synthesize(table, ...), "
      "not named in a configuration"
    )
  domain = sources.load_schema(_require_schema(request.name, request.options))
  if sources.table_digest(rows) != request.argument:
    raise ValueError("the table in memory does not have the digest its name says")
  loaded = _load_csv_rows(request, domain, rows)
  # Shown as a table in memory, never by its digest: the digest is a function of the private
  # records (with the others known, it could confirm a guess of one), so it stays in config.json.
  loaded.name = "a table in memory"
  return loaded


def _load_npz(request: Request) -> Loaded:
  kw, name = request.options, request.name
  if kw.get("schema") is not None:
    _check_kwargs(name, kw, ("schema", "table_key"))
    _no_radius(name, request.radius, request.label_weight)
    domain = sources.load_schema(kw["schema"])
    table = sources.load_npz(request.argument, domain, table_key=kw.get("table_key", "table"))
    labels = _table_labels(domain, table)
    records, domain = _encode_table(domain, table, request.include_labels)
    return Loaded(records, domain, labels)
  _check_kwargs(name, kw, ("schema", "image_key", "label_key", "pixel_max", "num_classes"))
  images, labels = sources.load_npz(
    request.argument,
    image_key=kw.get("image_key", "images"),
    label_key=kw.get("label_key", "labels"),
  )
  pixel_max = _pixel_max_for(images, kw.get("pixel_max"), name)
  num_classes = kw.get("num_classes")
  if labels is not None and num_classes is None and request.include_labels:
    raise ValueError(
      f"{name}: labels found; declare num_classes= (it is never inferred "
      "from the labels) or pass include_labels=False."
    )
  domain, records = _encode_images(
    images,
    labels,
    request.radius,
    pixel_max,
    num_classes,
    request.include_labels,
    name,
    request.label_weight,
  )
  return Loaded(records, domain, None if labels is None else _as_int_labels(labels, name))


# Named data sets. Adding one is an entry here (and its tests).
DATASETS: Dict[str, Entry] = {
  "digits": Entry(
    _load_digits,
    "image",
    ("frame",),
    "scikit-learn's bundled 8x8 digits (pixel_max 16, 10 classes), shape (8, 8, 1); "
    "frame='mnist' draws them in MNIST's domain (20x20 box centred in 28x28, pixel_max 255), "
    "a public data set for MNIST",
  ),
  "breast_cancer": Entry(
    _load_breast_cancer,
    "table",
    (),
    "scikit-learn's bundled breast-cancer table with declared bounds (lipdp.data.sources)",
  ),
  "mnist_idx": Entry(
    _load_mnist_idx,
    "image",
    ("prefix",),
    "MNIST IDX files in data_dir (or data_dir/mnist-test, or $LIPDP_DATA_DIR/mnist-test); "
    "option prefix= to pick 't10k' / 'train'. Shape (28, 28, 1)",
  ),
}
# Sources of data sets, by the prefix of the name ('csv:/path/t.csv').
SOURCES: Dict[str, Entry] = {
  "tfds": Entry(
    _load_tfds,
    "image",
    ("split", "image_key", "label_key", "pixel_max", "num_classes"),
    "a prepared TFDS image data set (e.g. 'tfds:mnist'); split= (default 'train'), "
    "image_key=, label_key=, pixel_max= (default 255 for uint8), num_classes= (default: the "
    "data set's public metadata)",
  ),
  "csv": Entry(
    _load_csv,
    "table",
    ("schema", "delimiter", "encoding", "strict"),
    "a CSV table; schema= (TabularDomain, dict, or JSON file), delimiter=, encoding= "
    "(default UTF-8), strict= (refuse values outside the bounds)",
  ),
  "npz": Entry(
    _load_npz,
    "image or table",
    ("schema", "table_key", "image_key", "label_key", "pixel_max", "num_classes"),
    "with schema=, a table (arrays per column, or table_key=); without, images "
    "(image_key='images', label_key='labels', pixel_max= unless uint8, num_classes= required "
    "when labels are present and include_labels is True)",
  ),
  "table": Entry(
    _load_table,
    "table",
    ("schema", "strict", "table"),
    "a table in memory, given to lipdp.synthesize (the name holds its digest, which only the "
    "private config.json records; the data set is shown as 'a table in memory')",
  ),
}


def _entry(name: str) -> Tuple[Entry, str]:
  """The registry entry of `name` and the argument its loader gets."""
  if name in DATASETS:
    return DATASETS[name], name
  prefix, colon, argument = name.partition(":")
  if colon and prefix in SOURCES:
    return SOURCES[prefix], argument
  expected = [repr(n) for n in DATASETS] + [
    f"'{p}:<{'digest' if p == 'table' else 'name' if p == 'tfds' else 'path'}>'" for p in SOURCES
  ]
  raise ValueError(
    f"Unknown dataset {name!r}; expected {', '.join(expected[:-1])} or {expected[-1]}."
  )


def load_dataset(
  name: str,
  *,
  data_dir: Optional[str] = None,
  radius: Optional[float] = None,
  holdout_fraction: float = 0.2,
  split_seed: int = 0,
  include_labels: bool = True,
  label_weight: float = 1.0,
  **kw,
) -> PreparedData:
  """Loads a data set, encodes it into its declared domain and splits it.

  Args:
    name: a data set of `DATASETS` ('digits', 'breast_cancer', 'mnist_idx') or a source of
      `SOURCES` with its argument ('tfds:<name>', 'csv:<path>', 'npz:<path>', and
      'table:<digest>' for a table in memory); each entry's summary says what it reads and
      which options it takes.
    data_dir: data folder (mnist_idx: the IDX folder; tfds: the TFDS data_dir).
    radius: image radius R; default `default_image_radius(image_shape)` (data-independent).
    holdout_fraction: fraction of records held out for evaluation.
    split_seed: seed of the split permutation (train_holdout_split).
    include_labels: carry labels inside the records (one-hot block / label column). Labels are
      returned in train_labels / holdout_labels either way.
    label_weight: images only: the declared weight w of the label block (w * one-hot).
    **kw: the entry's options.

  Returns:
    PreparedData whose records lie in `domain`.

  Raises:
    ValueError: unknown name or option, missing files or declarations, invalid data.
  """
  if not isinstance(name, str):
    raise ValueError(f"Dataset name must be a string, got {name!r}.")
  entry, argument = _entry(name)
  _check_kwargs(name, kw, entry.options)
  if entry.kind == "table":
    _no_radius(name, radius, label_weight)
  loaded = entry.load(
    Request(name, argument, data_dir, radius, include_labels, label_weight, dict(kw))
  )
  records, labels = loaded.records, loaded.labels
  train_idx, holdout_idx = train_holdout_split(records.shape[0], holdout_fraction, split_seed)
  if labels is not None:
    labels = np.asarray(labels, np.int64)
  return PreparedData(
    train=records[train_idx],
    holdout=records[holdout_idx],
    train_labels=None if labels is None else labels[train_idx],
    holdout_labels=None if labels is None else labels[holdout_idx],
    domain=loaded.domain,
    name=loaded.name or name,
    split_seed=int(split_seed),
    holdout_fraction=float(holdout_fraction),
    notes=loaded.notes,
    source_info=loaded.source_info,
  )


def _as_int_labels(labels, source) -> np.ndarray:
  y = np.asarray(labels)
  if y.ndim != 1 or not (
    y.dtype.kind in "iub"
    or (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)))
  ):
    raise ValueError(
      f"{source}: labels must be a 1-D array of integers, got dtype {y.dtype} and shape {y.shape}."
    )
  return y.astype(np.int64)


def _check_label_range(labels, num_classes, source):
  if labels is None or num_classes is None:
    return
  y = np.asarray(labels)
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"{source}: labels must lie in [0, {num_classes}).")


def _encode_images(
  images, labels, radius, pixel_max, num_classes, include_labels, source, label_weight=1.0
):
  images = np.asarray(images)
  if images.ndim < 2:
    raise ValueError(f"{source}: expected images of shape (n, H, W[, C]), got {images.shape}.")
  images = _with_channel(images)
  domain = _image_domain(
    images.shape[1:],
    radius,
    pixel_max,
    num_classes if labels is not None else None,
    include_labels,
    label_weight,
  )
  if domain.num_classes is not None:
    return domain, domain.encode(images, labels)
  if labels is not None and num_classes is not None:
    _check_label_range(labels, num_classes, source)
  return domain, domain.encode(images)


def _tfds_num_classes(info, label_key, source) -> int:
  try:
    return int(info.features[label_key].num_classes)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
      f"{source}: could not read num_classes of feature {label_key!r} from the "
      "data set's metadata; pass num_classes=."
    ) from e


def _require_schema(name, kw):
  if kw.get("schema") is None:
    raise ValueError(
      f"{name}: pass schema= (a TabularDomain, a dict, or a JSON schema file) "
      "declaring every column's bounds or categories."
    )
  return kw["schema"]


def _table_labels(domain: TabularDomain, table) -> Optional[np.ndarray]:
  if domain.label_column is None:
    return None
  return domain.category_indices(domain.label_column, table[domain.label_column])


def _encode_table(domain: TabularDomain, table, include_labels: bool):
  if not include_labels and domain.label_column is not None:
    label = domain.label_column
    domain = domain.without_column(label)
    table = {k: v for k, v in table.items() if k != label}
  return domain.encode(table), domain
