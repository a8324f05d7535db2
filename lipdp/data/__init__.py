"""lipdp.data: raw data sources and declared, data-independent bounded domains.

Records handed to the mechanism lie in a bounded domain whose l2 diameter is known exactly;
every constant that defines the domain (pixel_max, radius, numeric bounds, category lists) is
declared in advance and never computed from the private data. See docs/data.md.
"""

from lipdp.data.domain import (
  Block,
  BlockDomain,
  CategoricalColumn,
  ImageDomain,
  NumericColumn,
  TabularDomain,
  domain_from_description,
)
from lipdp.data.datasets import (
  DATA_DIR_ENV,
  DEFAULT_RADIUS_FRACTION,
  PreparedData,
  default_image_radius,
  load_dataset,
  train_holdout_split,
)
from lipdp.data.sources import (
  BREAST_CANCER_BOUNDS,
  BREAST_CANCER_LABEL_COLUMN,
  breast_cancer_domain,
  load_breast_cancer,
  load_csv,
  load_digits,
  load_idx,
  load_npz,
  load_schema,
  load_tfds,
  read_idx,
)

__all__ = [
  "Block",
  "BlockDomain",
  "CategoricalColumn",
  "ImageDomain",
  "NumericColumn",
  "TabularDomain",
  "domain_from_description",
  "DATA_DIR_ENV",
  "DEFAULT_RADIUS_FRACTION",
  "PreparedData",
  "default_image_radius",
  "load_dataset",
  "train_holdout_split",
  "BREAST_CANCER_BOUNDS",
  "BREAST_CANCER_LABEL_COLUMN",
  "breast_cancer_domain",
  "load_breast_cancer",
  "load_csv",
  "load_digits",
  "load_idx",
  "load_npz",
  "load_schema",
  "load_tfds",
  "read_idx",
]
