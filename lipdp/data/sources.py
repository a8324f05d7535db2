"""Raw data sources: loaders that return NumPy arrays, with no preprocessing.

Nothing here downloads. Each loader returns the data as stored (raw pixel values, raw numbers,
declared category values); mapping into a bounded domain is `lipdp.data.domain`'s job and uses
declared constants only. Constants declared here (pixel maxima, class counts, the breast-cancer
bounds) are public knowledge about the format or the dataset's documentation, not statistics
computed from the data at run time.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import glob
import gzip
import hashlib
import io
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
import zlib

import numpy as np
from sklearn import datasets
import tensorflow_datasets as tfds

from lipdp.data.domain import (
  CategoricalColumn,
  NumericColumn,
  TabularDomain,
  domain_from_description,
)

__all__ = [
  "DIGITS_IMAGE_SHAPE",
  "DIGITS_PIXEL_MAX",
  "DIGITS_NUM_CLASSES",
  "MNIST_PIXEL_MAX",
  "MNIST_NUM_CLASSES",
  "BREAST_CANCER_BOUNDS",
  "BREAST_CANCER_LABEL_COLUMN",
  "breast_cancer_domain",
  "load_digits",
  "digits_in_mnist_frame",
  "load_breast_cancer",
  "read_idx",
  "load_idx",
  "load_tfds",
  "DRAFT_SCHEMA_KEY",
  "CsvRows",
  "CsvTable",
  "load_schema",
  "read_csv_rows",
  "read_csv_table",
  "load_csv",
  "load_npz",
]

PathLike = Union[str, os.PathLike]

# scikit-learn's digits: 8x8 images of integer intensities 0..16 (documented in its DESCR).
DIGITS_IMAGE_SHAPE = (8, 8)
DIGITS_PIXEL_MAX = 16.0
DIGITS_NUM_CLASSES = 10

# MNIST in IDX format: unsigned bytes (so 255 is the format's maximum), ten classes.
MNIST_PIXEL_MAX = 255.0
MNIST_NUM_CLASSES = 10

# Breast Cancer Wisconsin (Diagnostic), as bundled with scikit-learn.
#
# Declared bounds, not computed at run time: they are the 'Summary Statistics' (Min/Max) table of
# the dataset's public documentation (sklearn.datasets.load_breast_cancer().DESCR, from the UCI
# repository), rounded generously outward. Being published statistics of these very records,
# they leak them in principle: this bundled table is a demonstration (BREAST_CANCER_BOUNDS_NOTE
# is carried into every report). A real user of a private table must declare bounds from
# knowledge that does not come from the private data.
BREAST_CANCER_BOUNDS: Tuple[Tuple[str, float, float], ...] = (
  # name                       low    high       documented min..max
  ("mean radius", 5.0, 30.0),  # 6.981 .. 28.11
  ("mean texture", 5.0, 45.0),  # 9.71 .. 39.28
  ("mean perimeter", 40.0, 200.0),  # 43.79 .. 188.5
  ("mean area", 100.0, 2750.0),  # 143.5 .. 2501.0
  ("mean smoothness", 0.04, 0.18),  # 0.053 .. 0.163
  ("mean compactness", 0.0, 0.4),  # 0.019 .. 0.345
  ("mean concavity", 0.0, 0.5),  # 0.0 .. 0.427
  ("mean concave points", 0.0, 0.25),  # 0.0 .. 0.201
  ("mean symmetry", 0.08, 0.35),  # 0.106 .. 0.304
  ("mean fractal dimension", 0.04, 0.11),  # 0.05 .. 0.097
  ("radius error", 0.0, 3.2),  # 0.112 .. 2.873
  ("texture error", 0.0, 5.5),  # 0.36 .. 4.885
  ("perimeter error", 0.0, 25.0),  # 0.757 .. 21.98
  ("area error", 0.0, 600.0),  # 6.802 .. 542.2
  ("smoothness error", 0.0, 0.035),  # 0.002 .. 0.031
  ("compactness error", 0.0, 0.15),  # 0.002 .. 0.135
  ("concavity error", 0.0, 0.45),  # 0.0 .. 0.396
  ("concave points error", 0.0, 0.06),  # 0.0 .. 0.053
  ("symmetry error", 0.0, 0.09),  # 0.008 .. 0.079
  ("fractal dimension error", 0.0, 0.035),  # 0.001 .. 0.03
  ("worst radius", 5.0, 40.0),  # 7.93 .. 36.04
  ("worst texture", 10.0, 55.0),  # 12.02 .. 49.54
  ("worst perimeter", 40.0, 275.0),  # 50.41 .. 251.2
  ("worst area", 150.0, 4500.0),  # 185.2 .. 4254.0
  ("worst smoothness", 0.05, 0.25),  # 0.071 .. 0.223
  ("worst compactness", 0.0, 1.2),  # 0.027 .. 1.058
  ("worst concavity", 0.0, 1.4),  # 0.0 .. 1.252
  ("worst concave points", 0.0, 0.32),  # 0.0 .. 0.291
  ("worst symmetry", 0.1, 0.7),  # 0.156 .. 0.664
  ("worst fractal dimension", 0.04, 0.23),  # 0.055 .. 0.208
)
# The caveat every release of this table carries (in its privacy report's notes).
BREAST_CANCER_BOUNDS_NOTE = (
  "breast_cancer: the numeric bounds are this data set's own published minima and maxima "
  "(the summary statistics of its documentation), rounded outward. They are statistics of the "
  "very records being released, so the release is a demonstration of the pipeline, not a "
  "private release of this table: a real deployment must declare bounds that do not come "
  "from the private data."
)

# The class: 0 = malignant, 1 = benign (scikit-learn's coding).
BREAST_CANCER_LABEL_COLUMN = "target"
BREAST_CANCER_CLASSES = (0, 1)


def breast_cancer_domain(include_label: bool = True) -> TabularDomain:
  """The declared domain of `load_breast_cancer()` tables (30 numeric columns [+ 'target'])."""
  columns = [NumericColumn(name, low, high) for name, low, high in BREAST_CANCER_BOUNDS]
  if include_label:
    columns.append(CategoricalColumn(BREAST_CANCER_LABEL_COLUMN, BREAST_CANCER_CLASSES))
    return TabularDomain(columns, label_column=BREAST_CANCER_LABEL_COLUMN)
  return TabularDomain(columns)


def load_digits() -> Tuple[np.ndarray, np.ndarray]:
  """scikit-learn's bundled digits (offline).

  Returns:
    (images, labels): float64 (1797, 8, 8) integer intensities in [0, 16]; int64 (1797,) in
    [0, 10).
  """
  bunch = datasets.load_digits()
  return np.asarray(bunch.images, np.float64), np.asarray(bunch.target, np.int64)


# MNIST's frame (LeCun et al. 1998): each digit size-normalised into a 20x20 box, centred in a
# 28x28 image.
MNIST_IMAGE_SIDE = 28
MNIST_DIGIT_BOX = 20


def _linear_resize_matrix(size_in: int, size_out: int) -> np.ndarray:
  """(size_out, size_in) weights of 1-D linear interpolation with half-pixel centres (each row
  a convex combination, so values stay within the input's range)."""
  x = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0.0, size_in - 1.0)
  lo = np.floor(x).astype(int)
  hi = np.minimum(lo + 1, size_in - 1)
  frac = x - lo
  weights = np.zeros((size_out, size_in))
  weights[np.arange(size_out), lo] += 1.0 - frac
  weights[np.arange(size_out), hi] += frac
  return weights


def digits_in_mnist_frame(images: np.ndarray) -> np.ndarray:
  """scikit-learn's 8x8 digits (intensities 0..16) drawn in MNIST's frame: each image resized
  bilinearly to MNIST's 20x20 digit box, centred in 28x28, intensities rescaled to 0..255.

  A deterministic map of each public image alone, so the result is as public as the digits
  (a public data set in MNIST's domain, e.g. for pretraining before DP-SGD on MNIST).

  Args:
    images: (n, 8, 8) intensities in [0, 16].

  Returns:
    float64 (n, 28, 28) intensities in [0, 255].
  """
  images = np.asarray(images, np.float64)
  if images.ndim != 3 or images.shape[1:] != DIGITS_IMAGE_SHAPE:
    raise ValueError(f"expected (n, 8, 8) digits, got shape {images.shape}")
  resize = _linear_resize_matrix(DIGITS_IMAGE_SHAPE[0], MNIST_DIGIT_BOX)
  boxes = np.einsum("ij,njk,lk->nil", resize, images, resize) * (MNIST_PIXEL_MAX / DIGITS_PIXEL_MAX)
  margin = (MNIST_IMAGE_SIDE - MNIST_DIGIT_BOX) // 2
  framed = np.zeros((len(images), MNIST_IMAGE_SIDE, MNIST_IMAGE_SIDE))
  framed[:, margin : margin + MNIST_DIGIT_BOX, margin : margin + MNIST_DIGIT_BOX] = boxes
  return np.clip(framed, 0.0, MNIST_PIXEL_MAX)


def load_breast_cancer() -> Dict[str, np.ndarray]:
  """scikit-learn's bundled Breast Cancer Wisconsin (Diagnostic) table (offline).

  Returns:
    dict column name -> 1-D array (569 rows): the 30 numeric features (float64) named as in
    `BREAST_CANCER_BOUNDS`, and 'target' (int64, 0 = malignant, 1 = benign).
  """
  bunch = datasets.load_breast_cancer()
  names = [str(n) for n in bunch.feature_names]
  declared = [b[0] for b in BREAST_CANCER_BOUNDS]
  if names != declared:  # guards the declared constants against a changed sklearn bundle
    raise ValueError(
      f"scikit-learn's breast-cancer columns {names} differ from the declared ones {declared}."
    )
  table = {n: np.asarray(bunch.data[:, j], np.float64) for j, n in enumerate(names)}
  table[BREAST_CANCER_LABEL_COLUMN] = np.asarray(bunch.target, np.int64)
  return table


# ----------------------------------------------------------------------------------------------
# IDX (the original MNIST format).

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def _read_bytes(path: str) -> bytes:
  if not os.path.isfile(path):
    raise ValueError(f"File not found: {path}")
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      return f.read()
  except (OSError, EOFError) as e:
    raise ValueError(f"Could not read {path}: {e}") from e


def read_idx(path: PathLike, expected_magic: Optional[int] = None) -> np.ndarray:
  """Reads one IDX file of unsigned bytes (gzip-compressed if the name ends in .gz).

  The header is big-endian: a 32-bit magic number (0x0000 0x08 ndim for unsigned bytes), then one
  32-bit size per dimension, then prod(sizes) bytes.

  Args:
    path: the file.
    expected_magic: if set, the magic number the file must carry (2051 images, 2049 labels).

  Returns:
    uint8 array of the declared shape.

  Raises:
    ValueError: missing file, bad magic number, or a payload size that disagrees with the header.
  """
  path = os.fspath(path)
  raw = _read_bytes(path)
  if len(raw) < 4:
    raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes).")
  magic = int.from_bytes(raw[:4], "big")
  if expected_magic is not None and magic != expected_magic:
    raise ValueError(f"{path}: bad IDX magic number {magic}, expected {expected_magic}.")
  if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08:
    raise ValueError(
      f"{path}: bad IDX magic number {magic} (only unsigned-byte IDX files, "
      "type 0x08, are supported)."
    )
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  if ndim == 0 or len(raw) < header:
    raise ValueError(f"{path}: truncated IDX header (ndim={ndim}, {len(raw)} bytes).")
  shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
  expected = int(np.prod(shape, dtype=np.int64))
  if len(raw) - header != expected:
    raise ValueError(
      f"{path}: header declares shape {shape} ({expected} bytes) but the file "
      f"holds {len(raw) - header} bytes of data."
    )
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find_idx(directory: str, kind: str, prefix: Optional[str]) -> str:
  pattern = f"{prefix or '*'}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
  found = sorted(
    glob.glob(os.path.join(directory, pattern))
    + glob.glob(os.path.join(directory, pattern + ".gz"))
  )
  if not found:
    raise ValueError(f"No IDX {kind} file matching {pattern}[.gz] in {directory}.")
  if len(found) > 1:
    raise ValueError(
      f"Several IDX {kind} files in {directory}: "
      f"{[os.path.basename(f) for f in found]}; pass prefix= (e.g. 't10k' or "
      "'train') to choose one."
    )
  return found[0]


def load_idx(directory: PathLike, prefix: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
  """Loads MNIST-style IDX files `<prefix>-images-idx3-ubyte[.gz]` and `-labels-idx1-ubyte[.gz]`.

  Args:
    directory: folder holding one images file and one labels file (or several, with `prefix`).
    prefix: file-name prefix such as 't10k' or 'train'; needed only if several pairs exist.

  Returns:
    (images, labels): uint8 (n, rows, cols) and int64 (n,).

  Raises:
    ValueError: missing directory or files (with the path tried), bad magic numbers
      (2051 / 2049), sizes that disagree with the header, or image and label counts that differ.
  """
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    raise ValueError(f"IDX directory not found: {directory}")
  images = read_idx(_find_idx(directory, "images", prefix), _IDX_IMAGES_MAGIC)
  labels = read_idx(_find_idx(directory, "labels", prefix), _IDX_LABELS_MAGIC)
  if images.shape[0] != labels.shape[0]:
    raise ValueError(f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels.")
  return images, labels.astype(np.int64)


# ----------------------------------------------------------------------------------------------
# TensorFlow Datasets.

_TFDS_HELP = (
  "lipdp never downloads at run time. Prepare the dataset once on a machine with internet "
  "access in the random-access format, e.g.\n"
  "  tfds build {name} --data_dir=DIR --file_format=array_record\n"
  "(or tfds.builder('{name}', data_dir=DIR, file_format='array_record')"
  ".download_and_prepare()), copy DIR here and pass data_dir=DIR (or set TFDS_DATA_DIR). A "
  "dataset prepared as tfrecord also works if tensorflow is installed."
)


def _stack(values, what: str, name: str) -> np.ndarray:
  try:
    return np.stack([np.asarray(v) for v in values])
  except ValueError as e:
    raise ValueError(
      f"tfds:{name}: {what} have different shapes; lipdp needs a fixed image shape ({e})."
    ) from e


def load_tfds(
  name: str,
  split: str = "train",
  data_dir: Optional[PathLike] = None,
  image_key: str = "image",
  label_key: Optional[str] = "label",
  with_info: bool = False,
):
  """Loads an already-prepared TFDS image dataset into NumPy, without downloading.

  Uses `tfds.data_source` (array_record; works without tensorflow) with download=False. If that
  fails for a prepared dataset and tensorflow is importable, falls back to
  `tfds.as_numpy(tfds.load(..., download=False, batch_size=-1))`.

  Args:
    name: TFDS name, e.g. 'mnist', 'fashion_mnist' (optionally 'name:version').
    split: split name or slice, e.g. 'train', 'test[:10%]'.
    data_dir: TFDS data directory (default: TFDS's own, i.e. $TFDS_DATA_DIR or ~/tensorflow_datasets).
    image_key: feature holding the image.
    label_key: feature holding the label, or None for no labels.
    with_info: also return the `tfds.core.DatasetInfo` (public metadata such as num_classes).

  Returns:
    (images, labels) or (images, labels, info): raw images as stored (uint8 for TFDS images),
    labels int64 or None.

  Raises:
    ValueError: the dataset is not prepared (the message says how to prepare it offline), or
      the keys are missing.
  """
  data_dir = os.fspath(data_dir) if data_dir is not None else None
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False, try_gcs=False)
  except Exception as source_error:  # pylint: disable=broad-except
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
    except ImportError:
      raise ValueError(
        f"Could not open TFDS dataset {name!r} (split {split!r}, data_dir "
        f"{data_dir or 'default'}) as a random-access data source: "
        f"{source_error}\n" + _TFDS_HELP.format(name=name)
      ) from source_error
    return _load_tfds_with_tf(
      tfds, name, split, data_dir, image_key, label_key, with_info, source_error
    )
  n = len(source)
  if n == 0:
    raise ValueError(f"TFDS dataset {name!r} split {split!r} is empty.")
  first = source[0]
  for key in (image_key, label_key):
    if key is not None and key not in first:
      raise ValueError(f"TFDS dataset {name!r} has no feature {key!r}; features: {sorted(first)}.")
  examples = [first] + [source[i] for i in range(1, n)]
  images = _stack((ex[image_key] for ex in examples), "images", name)
  labels = None
  if label_key is not None:
    labels = np.asarray([np.asarray(ex[label_key]).item() for ex in examples], np.int64)
  if with_info:
    return images, labels, source.dataset_info
  return images, labels


def _load_tfds_with_tf(tfds, name, split, data_dir, image_key, label_key, with_info, source_error):
  try:
    ds, info = tfds.load(
      name,
      split=split,
      data_dir=data_dir,
      download=False,
      batch_size=-1,
      with_info=True,
      try_gcs=False,
    )
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(
      f"Could not load TFDS dataset {name!r} (split {split!r}, data_dir "
      f"{data_dir or 'default'}): {e} (data_source: {source_error})\n"
      + _TFDS_HELP.format(name=name)
    ) from e
  arrays = tfds.as_numpy(ds)
  for key in (image_key, label_key):
    if key is not None and key not in arrays:
      raise ValueError(f"TFDS dataset {name!r} has no feature {key!r}; features: {sorted(arrays)}.")
  images = np.asarray(arrays[image_key])
  labels = None if label_key is None else np.asarray(arrays[label_key], np.int64)
  if with_info:
    return images, labels, info
  return images, labels


# ----------------------------------------------------------------------------------------------
# Schemas, CSV and NPZ.


# A schema drafted from the private data (`lipdp schema draft`) carries this key, with the
# warning as its value, until a person has replaced its bounds and categories.
DRAFT_SCHEMA_KEY = "draft_from_private_data"


def _refuse_draft(desc: Any, where: str, allow_draft: bool) -> None:
  if not allow_draft and isinstance(desc, Mapping) and DRAFT_SCHEMA_KEY in desc:
    raise ValueError(
      f"{where} is a draft read from the private data (it carries {DRAFT_SCHEMA_KEY!r}): its "
      "bounds and category lists are statistics of the private records and are not private. "
      "Replace them with values known independently of the data, then delete that key."
    )


def load_schema(
  schema: Union[TabularDomain, Mapping[str, Any], PathLike], allow_draft: bool = False
) -> TabularDomain:
  """A TabularDomain from a TabularDomain, a schema dict, or the path of a JSON schema file.

  The JSON format (the same as `TabularDomain.describe_spec()`):

    {"columns": [{"name": "age", "type": "numeric", "low": 0, "high": 120, "integer": true},
                 {"name": "smoker", "type": "categorical", "categories": ["no", "yes"]}],
     "label_column": "smoker"}

  A schema carrying the key DRAFT_SCHEMA_KEY (written by `lipdp schema draft` from the private
  data) is refused unless `allow_draft`.
  """
  if isinstance(schema, TabularDomain):
    return schema
  if isinstance(schema, Mapping):
    _refuse_draft(schema, "The schema", allow_draft)
    domain = domain_from_description(dict(schema, type=schema.get("type", "tabular")))
  elif isinstance(schema, (str, os.PathLike)):
    path = os.fspath(schema)
    if not os.path.exists(path):
      raise ValueError(f"Schema file not found: {path}")
    if os.path.isdir(path):
      raise ValueError(f"Schema path {path} is a directory, not a JSON file.")
    try:
      with open(path, "rb") as f:
        raw = f.read()
    except OSError as e:
      raise ValueError(f"Cannot read schema file {path}: {e.strerror or e}.") from e
    try:
      desc = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
      raise ValueError(f"Schema file {path} is not UTF-8 (byte offset {e.start}).") from e
    except json.JSONDecodeError as e:
      raise ValueError(f"Schema file {path} is not valid JSON: {e}") from e
    if not isinstance(desc, Mapping):
      raise ValueError(f"Schema file {path} must hold a JSON object with a 'columns' list.")
    _refuse_draft(desc, f"Schema file {path}", allow_draft)
    try:
      domain = domain_from_description(desc)
    except ValueError as e:
      raise ValueError(f"Schema file {path}: {e}") from e
  else:
    raise ValueError(
      f"schema must be a TabularDomain, a dict or a JSON file path, got {type(schema).__name__}."
    )
  if not isinstance(domain, TabularDomain):
    raise ValueError("The schema describes an image domain; a tabular schema is needed here.")
  return domain


# ----------------------------------------------------------------------------------------------
# CSV files. The reading rules (docs/data.md, "CSV files"):
#
# * encoding: UTF-8 by default (a UTF-8 byte-order mark is accepted and dropped); other
#   encodings on request. Undecodable bytes are an error naming the byte offset and line.
# * a header row is required; completely empty lines are skipped; every other row must have as
#   many fields as the header.
# * whitespace: surrounding whitespace is removed from every header name and cell, quoted or
#   not, before anything else. Declared names and categories must then match exactly
#   (case-sensitive).
# * numeric cells: decimal numbers. A missing cell (empty, or NaN) is an error unless the
#   column declares "missing": <value>; inf is always an error. Values outside the declared
#   bounds are clipped by the domain and counted, or refused with strict=True.
# * categorical cells must equal str(category) of a declared category.
# * CSV columns the schema does not declare are not read (they are listed in `ignored_columns`).

_UTF16_OR_32_BOMS = (
  codecs.BOM_UTF32_LE,
  codecs.BOM_UTF32_BE,
  codecs.BOM_UTF16_LE,
  codecs.BOM_UTF16_BE,
)


@dataclasses.dataclass
class CsvRows:
  """The cells of a CSV file after the reading rules (whitespace removed), before any schema.

  Attributes:
    path: the file.
    header: the header's names, in file order.
    rows: the data rows (lists of cells, as many as the header).
    line_numbers: the line of each row in the file (1-based; the header is line 1 or later).
    encoding: the encoding the file was decoded with.
    bom: whether the file started with a byte-order mark (dropped).
    stripped_cells: how many header names and cells had surrounding whitespace (removed).
  """

  path: str
  header: Tuple[str, ...]
  rows: List[List[str]]
  line_numbers: List[int]
  encoding: str
  bom: bool
  stripped_cells: int


@dataclasses.dataclass
class CsvTable:
  """The declared columns of a CSV file, and what reading them did.

  The counts are statistics of the (private) data: they are for the person running lipdp, not
  for a release (`lipdp.runner` logs them and keeps them out of the privacy report).

  Attributes:
    columns: column name -> 1-D array, in schema order (numeric float64 as read, before
      clipping; categorical the declared category values).
    path: the file.
    header: the file's header, in file order (declared and undeclared columns).
    num_rows: the number of data rows.
    ignored_columns: columns of the file that the schema does not declare (not read).
    clipped: column -> (values below low, values above high), for numeric columns with any.
    missing: column -> cells that took the column's declared "missing" value.
    stripped_cells: header names and cells whose surrounding whitespace was removed.
    encoding: the encoding the file was decoded with.
    bom: whether the file started with a byte-order mark.
  """

  columns: Dict[str, np.ndarray]
  path: str
  header: Tuple[str, ...]
  num_rows: int
  ignored_columns: Tuple[str, ...] = ()
  clipped: Dict[str, Tuple[int, int]] = dataclasses.field(default_factory=dict)
  missing: Dict[str, int] = dataclasses.field(default_factory=dict)
  stripped_cells: int = 0
  encoding: str = "utf-8"
  bom: bool = False

  @property
  def column_order(self) -> Tuple[str, ...]:
    """The declared columns in the order of the file's header."""
    return tuple(h for h in self.header if h in self.columns)

  def summary(self) -> Dict[str, Any]:
    """A JSON-serialisable summary (private: counts of the data's values)."""
    return {
      "source": "csv",
      "path": self.path,
      "num_rows": self.num_rows,
      "header": list(self.header),
      "column_order": list(self.column_order),
      "ignored_columns": list(self.ignored_columns),
      "clipped": {k: {"below_low": lo, "above_high": hi} for k, (lo, hi) in self.clipped.items()},
      "missing_substituted": dict(self.missing),
      "stripped_cells": self.stripped_cells,
      "encoding": self.encoding,
      "bom": self.bom,
    }


def _read_bytes_of(path: str) -> bytes:
  if not os.path.exists(path):
    raise ValueError(f"CSV file not found: {path}")
  if os.path.isdir(path):
    raise ValueError(f"{path} is a directory, not a CSV file.")
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        return f.read()
    with open(path, "rb") as f:
      return f.read()
  except (gzip.BadGzipFile, EOFError, zlib.error) as e:
    raise ValueError(
      f"{path} is not a readable gzip file ({e}); a name ending in .gz is read through gzip."
    ) from e
  except PermissionError as e:
    raise ValueError(f"Cannot read {path}: permission denied.") from e
  except OSError as e:
    raise ValueError(f"Cannot read {path}: {e.strerror or e}.") from e


def _decode_text(raw: bytes, path: str, encoding: str) -> Tuple[str, str, bool]:
  """(text, encoding used, had a byte-order mark), or a ValueError naming the bad byte."""
  try:
    codec = codecs.lookup(encoding).name
  except LookupError:
    raise ValueError(f"Unknown encoding {encoding!r} (for {path}).") from None
  where = " (after gzip decompression)" if path.endswith(".gz") else ""
  bom = False
  if codec == "utf-8":
    if raw.startswith(_UTF16_OR_32_BOMS):
      kind = "UTF-32" if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) else "UTF-16"
      raise ValueError(
        f"{path} starts with a {kind} byte-order mark: it is {kind}, not UTF-8. Convert it "
        f"(e.g. iconv -f {kind} -t UTF-8) or name its encoding ({kind.lower()})."
      )
    bom = raw.startswith(codecs.BOM_UTF8)
    codec = "utf-8-sig"
  try:
    text = raw.decode(codec)
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    shown = " ".join(f"0x{b:02x}" for b in raw[e.start : min(e.end, e.start + 4)])
    name = "UTF-8" if codec == "utf-8-sig" else encoding
    raise ValueError(
      f"{path} is not valid {name}: byte {shown} at byte offset {e.start}{where}, line {line}, "
      f"cannot be decoded ({e.reason}). Convert the file to UTF-8 (e.g. iconv -f latin1 -t "
      "utf-8), or name its encoding (e.g. latin-1 or cp1252)."
    ) from None
  if text.startswith("\ufeff"):  # the BOM of an encoding that keeps it (e.g. 'utf-8' by name)
    text, bom = text[1:], True
  if codec == "utf-8-sig":
    codec = "utf-8"
  nul = text.find("\x00")
  if nul >= 0:
    line = text.count("\n", 0, nul) + 1
    raise ValueError(
      f"{path}, line {line}: NUL character. The file is probably UTF-16 or "
      "UTF-32 without a byte-order mark (convert it to UTF-8 or name its "
      "encoding), or not a text file."
    )
  return text, codec, bom


def read_csv_rows(path: PathLike, delimiter: str = ",", encoding: str = "utf-8") -> CsvRows:
  """Reads a CSV file's header and rows under the reading rules above (no schema needed).

  Raises:
    ValueError: the file is missing, a directory, unreadable, not in `encoding`, empty, has a
      header but no rows, is malformed, or has a row with a different number of fields than the
      header (naming the line).
  """
  path = os.fspath(path)
  if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
    raise ValueError(
      f"The delimiter must be one character (not a quote or newline), got {delimiter!r}."
    )
  raw = _read_bytes_of(path)
  text, used, bom = _decode_text(raw, path, encoding)
  if not text.strip():
    raise ValueError(f"CSV file {path} is empty (a header row is required).")
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
  header = None
  rows, lines = [], []
  stripped = 0
  try:
    for row in reader:
      if not row:
        continue  # a completely empty line
      cells = [c.strip() for c in row]
      stripped += sum(a != b for a, b in zip(row, cells))
      if header is None:
        if len(cells) == 1 and not cells[0]:
          continue  # a line holding only whitespace before the header
        header = tuple(cells)
        continue
      if len(cells) != len(header):
        if len(cells) == 1 and not cells[0]:
          continue  # a line holding only whitespace
        hint = (
          "an unquoted delimiter inside a cell? quote that cell"
          if len(cells) > len(header)
          else "a missing field?"
        )
        raise ValueError(
          f"{path}, line {reader.line_num}: {len(cells)} fields, but the header "
          f"has {len(header)} ({hint})."
        )
      rows.append(cells)
      lines.append(reader.line_num)
  except csv.Error as e:
    raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({e}).") from None
  if header is None:
    raise ValueError(f"CSV file {path} is empty (a header row is required).")
  if not rows:
    raise ValueError(f"CSV file {path} has a header row but no data rows.")
  return CsvRows(
    path=path,
    header=header,
    rows=rows,
    line_numbers=lines,
    encoding=used,
    bom=bom,
    stripped_cells=stripped,
  )


def _check_header(rows: CsvRows, domain: TabularDomain) -> Dict[str, int]:
  header = list(rows.header)
  missing = [c for c in domain.column_names if c not in header]
  if missing:
    hints = []
    for c in missing:
      near = [h for h in header if h.casefold() == c.casefold()]
      if near:
        hints.append(f"{c!r} vs the file's {near[0]!r}")
    hint = f" Names must match exactly (case-sensitive): {'; '.join(hints)}." if hints else ""
    raise ValueError(
      f"CSV file {rows.path} lacks declared columns {missing} (the schema does "
      f"not match the header: {header}).{hint}"
    )
  duplicated = [c for c in domain.column_names if header.count(c) > 1]
  if duplicated:
    raise ValueError(
      f"CSV file {rows.path}: the header names the declared column(s) {duplicated} more than once."
    )
  return {c: header.index(c) for c in domain.column_names}


def _numeric_column(
  rows: CsvRows, j: int, col: NumericColumn, strict: bool
) -> Tuple[np.ndarray, int, Tuple[int, int]]:
  """(values as read, cells given the declared missing value, (below, above) counts)."""
  values = np.empty(len(rows.rows), np.float64)
  substituted = 0
  for i, row in enumerate(rows.rows):
    cell = row[j]
    try:
      v = float(cell)
      ok = "_" not in cell  # float() accepts '1_000'; a CSV number does not
    except ValueError:
      ok = False
    if not ok and cell:
      raise ValueError(
        f"{rows.path}, line {rows.line_numbers[i]}: column {col.name!r} is "
        f"numeric but holds {cell!r}."
      )
    if not cell or math.isnan(v):
      if col.missing is None:
        what = "an empty cell" if not cell else repr(cell)
        raise ValueError(
          f"{rows.path}, line {rows.line_numbers[i]}: numeric column {col.name!r} has a "
          f"missing value ({what}). Missing values are an error unless the schema declares "
          f'one for the column, e.g. "missing": {_short(col.low)} (a constant fixed in '
          "advance; docs/data.md)."
        )
      v = col.missing
      substituted += 1
    elif math.isinf(v):
      raise ValueError(
        f"{rows.path}, line {rows.line_numbers[i]}: numeric column {col.name!r} "
        f"holds {cell!r}, not a finite number."
      )
    values[i] = v
  below = values < col.low
  above = values > col.high
  if strict and (below.any() or above.any()):
    i = int(np.flatnonzero(below | above)[0])
    raise ValueError(
      f"{rows.path}, line {rows.line_numbers[i]}: column {col.name!r} holds "
      f"{rows.rows[i][j]}, outside its declared bounds [{_short(col.low)}, "
      f"{_short(col.high)}] ({int(below.sum()) + int(above.sum())} value(s) in all). Strict "
      "reading refuses them; without it they are clipped to the bounds."
    )
  return values, substituted, (int(below.sum()), int(above.sum()))


def _short(x: float) -> str:
  return f"{x:g}" if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _categorical_column(rows: CsvRows, j: int, col: CategoricalColumn) -> np.ndarray:
  lookup = {}
  for c in col.categories:
    written = str(c)
    if written != written.strip():
      raise ValueError(
        f"The schema's column {col.name!r} declares the category {written!r}, with "
        "surrounding whitespace, which no cell can match: cells are read with surrounding "
        f"whitespace removed (docs/data.md). Declare {written.strip()!r} instead."
      )
    # Distinct texts are guaranteed by CategoricalColumn (categories that print alike are
    # refused when the schema loads).
    lookup[written] = c
  values = []
  unknown: Dict[str, int] = {}
  for i, row in enumerate(rows.rows):
    c = lookup.get(row[j], _NOT_DECLARED)
    if c is _NOT_DECLARED:
      unknown.setdefault(row[j], rows.line_numbers[i])
    else:
      values.append(c)
  if unknown:
    cell, line = next(iter(unknown.items()))
    others = ""
    if len(unknown) > 1:
      shown = list(unknown)[1:6]
      others = f" Other undeclared values: {shown}" + (" ..." if len(unknown) > 6 else "") + "."
    near = [k for k in lookup if k.casefold() == cell.casefold()]
    hint = f" (categories are case-sensitive: {near[0]!r} is declared)" if near else ""
    if not cell:
      hint = ' (an empty cell: to keep missing values, declare "" as a category)'
    raise ValueError(
      f"{rows.path}, line {line}: column {col.name!r} holds {cell!r}, not one "
      f"of the declared categories {list(col.categories)}{hint}.{others}"
    )
  kinds = {type(c) for c in col.categories}
  return np.asarray(values, dtype=None if len(kinds) == 1 else object)


_NOT_DECLARED = object()


def read_csv_table(
  path: PathLike,
  schema: Union[TabularDomain, Mapping[str, Any], PathLike],
  delimiter: str = ",",
  encoding: str = "utf-8",
  strict: bool = False,
) -> CsvTable:
  """Reads the schema's columns from a CSV file (the reading rules above), with what it did.

  Args:
    path: the CSV file (.gz: read through gzip).
    schema: a TabularDomain, a schema dict, or a JSON schema file.
    delimiter: the field delimiter.
    encoding: the file's encoding (default UTF-8; a byte-order mark is accepted).
    strict: refuse numeric values outside the declared bounds (default: they are counted in
      `CsvTable.clipped` and clipped by the domain when encoded).

  Returns:
    A CsvTable.

  Raises:
    ValueError: naming the file, and the line, column and value where there is one.
  """
  domain = load_schema(schema)
  return parse_csv_rows(read_csv_rows(path, delimiter=delimiter, encoding=encoding), domain, strict)


def parse_csv_rows(rows: CsvRows, domain: TabularDomain, strict: bool = False) -> CsvTable:
  """The schema's columns from the cells of a CSV file (or of a table in memory,
  `rows_from_columns`), under the reading rules above; see `read_csv_table`."""
  positions = _check_header(rows, domain)
  out: Dict[str, np.ndarray] = {}
  clipped: Dict[str, Tuple[int, int]] = {}
  substituted: Dict[str, int] = {}
  for col in domain.columns:
    j = positions[col.name]
    if isinstance(col, NumericColumn):
      out[col.name], count, (below, above) = _numeric_column(rows, j, col, strict)
      if count:
        substituted[col.name] = count
      if below or above:
        clipped[col.name] = (below, above)
    else:
      out[col.name] = _categorical_column(rows, j, col)
  declared = set(domain.column_names)
  return CsvTable(
    columns=out,
    path=rows.path,
    header=rows.header,
    num_rows=len(rows.rows),
    ignored_columns=tuple(h for h in rows.header if h not in declared),
    clipped=clipped,
    missing=substituted,
    stripped_cells=rows.stripped_cells,
    encoding=rows.encoding,
    bom=rows.bom,
  )


# A table in memory is read as the text of its cells, by the reading rules of a CSV file; its
# messages name a row by its position.
IN_MEMORY = "the table in memory (rows counted from 0)"


def _cell_text(value: Any) -> str:
  """A cell of a table in memory as the text a CSV file would hold: numbers exactly (repr of
  the float64, whole numbers as integers), missing values (None, NaN, pandas' NA) as an empty
  cell, anything else as str(value), which is how a declared category is matched."""
  if value is None or type(value).__name__ in ("NAType", "NaTType"):
    return ""
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  if isinstance(value, (float, np.floating)):
    return "" if np.isnan(value) else repr(float(value))
  return str(value)


def rows_from_columns(columns: Mapping[str, Any]) -> CsvRows:
  """The cells of a table in memory ({column name: values}), as `read_csv_rows` gives a file's:
  whitespace around a cell is removed (and counted) as in a file; messages name a row by its
  position (from 0)."""
  names = [str(name) for name in columns]
  values = [list(np.asarray(columns[name], dtype=object)) for name in columns]
  lengths = {len(v) for v in values}
  if len(lengths) > 1:
    raise ValueError(f"{IN_MEMORY}: its columns have different lengths {sorted(lengths)}")
  if not values or not values[0]:
    raise ValueError(f"{IN_MEMORY} has no rows")
  header = tuple(n.strip() for n in names)
  stripped = sum(a != b for a, b in zip(names, header))
  rows = []
  for cells in zip(*values):
    texts = [_cell_text(v) for v in cells]
    kept = [t.strip() for t in texts]
    stripped += sum(a != b for a, b in zip(texts, kept))
    rows.append(kept)
  return CsvRows(
    path=IN_MEMORY,
    header=header,
    rows=rows,
    line_numbers=list(range(len(rows))),
    encoding="none (in memory)",
    bom=False,
    stripped_cells=stripped,
  )


def table_digest(rows: CsvRows) -> str:
  """A SHA-256 digest of a table's header and cells (hex, 16 characters): the name of a table
  in memory, so that a run resumed on other records is refused as other settings."""
  digest = hashlib.sha256()
  for row in [list(rows.header)] + rows.rows:
    digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
  return digest.hexdigest()[:16]


def load_csv(
  path: PathLike,
  schema: Union[TabularDomain, Mapping[str, Any], PathLike],
  delimiter: str = ",",
  encoding: str = "utf-8",
  strict: bool = False,
) -> Dict[str, np.ndarray]:
  """Reads the schema's columns from a CSV file with a header row.

  The reading rules (docs/data.md): UTF-8 by default, a byte-order mark accepted; surrounding
  whitespace removed from every name and cell; every row as many fields as the header; numeric
  cells are decimal numbers (a missing cell is an error unless the column declares "missing";
  inf is an error); values outside the declared bounds are clipped when encoded, or refused
  with `strict`; a categorical cell must equal str(category) of a declared category, so "1"
  reads as the category 1 when categories are [0, 1]. CSV columns the schema does not declare
  are not read. A file whose name ends in .gz is read through gzip; line endings may be LF or
  CRLF. `read_csv_table` also returns what reading did (clipped counts, ignored columns).

  Returns:
    dict column name -> 1-D array (numeric float64; categorical the declared category values).
  """
  return read_csv_table(path, schema, delimiter=delimiter, encoding=encoding, strict=strict).columns


def load_npz(
  path: PathLike,
  schema: Union[None, TabularDomain, Mapping[str, Any], PathLike] = None,
  image_key: str = "images",
  label_key: Optional[str] = "labels",
  table_key: str = "table",
):
  """Reads a NumPy .npz file (never with pickle).

  Without a schema (images): returns (images, labels) from the arrays `image_key` and
  `label_key` (labels None if that array is absent or label_key is None).

  With a schema (table): each declared column is read from the array of the same name; if they
  are not all present, a 2-D array `table_key` with the columns in schema order is used.
  Returns dict column name -> 1-D array (values as stored; validation happens in encode).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"NPZ file not found: {path}")
  try:
    npz = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise ValueError(f"Could not read {path} as .npz: {e}") from e
  with npz:
    keys = list(npz.keys())
    if schema is None:
      if image_key not in keys:
        raise ValueError(
          f"{path}: no array {image_key!r} (arrays: {keys}); pass image_key= "
          "or a schema for tabular data."
        )
      images = npz[image_key]
      labels = None
      if label_key is not None and label_key in keys:
        labels = npz[label_key]
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
          raise ValueError(
            f"{path}: labels of shape {labels.shape} do not match {images.shape[0]} images."
          )
      return images, labels
    domain = load_schema(schema)
    names = list(domain.column_names)
    if all(n in keys for n in names):
      return {n: npz[n] for n in names}
    if table_key in keys:
      table = npz[table_key]
      if table.ndim != 2 or table.shape[1] != len(names):
        raise ValueError(
          f"{path}: array {table_key!r} has shape {table.shape}; expected "
          f"(n, {len(names)}) with columns {names}."
        )
      return {n: table[:, j] for j, n in enumerate(names)}
    missing = [n for n in names if n not in keys]
    raise ValueError(
      f"{path}: arrays for columns {missing} not found, and no 2-D "
      f"{table_key!r} array (arrays: {keys})."
    )
