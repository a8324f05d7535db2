"""The fixed downstream classifiers of the utility metrics, and the task they solve.

Task: predict a record's label from the rest of the record. Features are the record without
its label block (images: the pixel block; tables: the numeric coordinates in [0, 1] and the
one-hot blocks of the other categorical columns); the target is `domain.labels(records)`.

Models (settings fixed in advance, never tuned on the holdout; recorded as `MODEL_SETTINGS`):

* images: `logreg` (standardised pixels, L2 logistic regression, C = 0.1, lbfgs, max_iter 1000),
  `mlp` (standardised pixels, scikit-learn MLPClassifier with one hidden layer of 128 ReLU
  units, Adam, alpha 1e-4, max_iter 200, random_state = seed) and `cnn` (`cnn.CNNClassifier`:
  two convolutions and a dense layer in Flax, 15 epochs, Adam 2e-3, batch 64, key = seed);
* tables: `logreg` (the records' own [0, 1] / one-hot coordinates, C = 1.0, lbfgs, max_iter
  1000) and `hgb` (HistGradientBoostingClassifier with scikit-learn's default settings, except
  early_stopping=False, so no internal validation split depends on the random state).

The only choice made on data: logistic regression's C on images, 0.1 rather than the default
1.0, by accuracy on a validation split (20%, seed 1) of the MNIST training part (never the
holdout); the CNN's settings likewise (see `cnn`). Everything else is a library default.

Degenerate training sets are handled, not refused: with a single class in the labels, the
classifier is the constant predictor of that class (scikit-learn refuses to fit one class);
with a subset of the classes, the models predict only classes they have seen.
"""

import warnings
from typing import Any, Dict, Optional, Protocol, Sequence, Tuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from lipdp.evaluation import _validation
from lipdp.evaluation import cnn as cnn_lib

IMAGE_MODELS: Tuple[str, ...] = ("logreg", "mlp", "cnn")
TABLE_MODELS: Tuple[str, ...] = ("logreg", "hgb")

# JSON-serialisable record of every setting (copied into the evaluation's metadata).
MODEL_SETTINGS: Dict[str, Dict[str, Any]] = {
  "image/logreg": {"scaler": "StandardScaler", "C": 0.1, "solver": "lbfgs", "max_iter": 1000},
  "image/mlp": {
    "scaler": "StandardScaler",
    "hidden_layer_sizes": [128],
    "activation": "relu",
    "solver": "adam",
    "alpha": 1e-4,
    "max_iter": 200,
    "random_state": "seed",
  },
  "image/cnn": {
    **{k: list(v) if isinstance(v, tuple) else v for k, v in cnn_lib.CNN_SETTINGS.items()},
    "prng_key": "seed",
  },
  "tabular/logreg": {"scaler": None, "C": 1.0, "solver": "lbfgs", "max_iter": 1000},
  "tabular/hgb": {
    "learning_rate": 0.1,
    "max_iter": 100,
    "max_leaf_nodes": 31,
    "early_stopping": False,
    "random_state": "seed",
  },
}


class Classifier(Protocol):
  def predict(self, x: np.ndarray) -> np.ndarray: ...


def domain_kind(domain: Any) -> str:
  """'image' if the domain has an image block, else 'tabular'."""
  blocks = getattr(domain, "blocks", None)
  if not blocks:
    raise ValueError(f"Expected a lipdp domain (ImageDomain or TabularDomain), got {domain!r}.")
  return "image" if any(b.kind == "image" for b in blocks) else "tabular"


def label_block(domain: Any):
  """The block holding the label, or None if the domain has no label."""
  if domain.label_column is None:
    return None
  for block in domain.blocks:
    if block.name == domain.label_column:
      return block
  raise ValueError(f"The domain names label column {domain.label_column!r} but has no such block.")


def features_and_labels(
  domain: Any, records: Any, name: str = "records"
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """Splits records into (features, labels): the record without its label block, the label.

  Args:
    domain: the records' domain.
    records: array (n, domain.dim).
    name: how to call `records` in error messages.

  Returns:
    features: float64 (n, domain.dim - size of the label block).
    labels: int64 (n,) label indices, or None when the domain has no label.
  """
  x = _validation.as_matrix(records, name, dim=domain.dim, min_rows=0)
  block = label_block(domain)
  if block is None:
    return x, None
  keep = np.ones(domain.dim, bool)
  keep[block.start : block.stop] = False
  return x[:, keep], np.asarray(domain.labels(x), np.int64)


class ConstantClassifier:
  """Predicts one class for every input (the fit of a single-class training set)."""

  def __init__(self, label: int):
    self.label = int(label)

  def predict(self, x: np.ndarray) -> np.ndarray:
    return np.full(np.asarray(x).shape[0], self.label, np.int64)


class _SklearnClassifier:
  """Wraps a scikit-learn estimator so that predictions are int64 label indices.

  Features are passed in float32, the precision of the records (float64 doubles the cost of
  logistic regression and the MLP on MNIST-sized data for no change in what they measure).
  BLAS and OpenMP run on one thread (see `_validation.single_threaded`): on a shared 2-core
  machine, threads that busy-wait for a core made a 0.1 s gradient-boosting fit take 6 s and
  the MNIST logistic regression 13 s instead of 1.4 s.
  """

  def __init__(self, estimator):
    self.estimator = estimator

  def fit(self, x, y):
    with warnings.catch_warnings(), threadpool_limits(1):
      # The iteration budgets are part of the fixed protocol; a model that has not converged
      # within them is still the model we evaluate.
      warnings.simplefilter("ignore", ConvergenceWarning)
      self.estimator.fit(np.asarray(x, np.float32), y)
    return self

  def predict(self, x):
    with threadpool_limits(1):
      return np.asarray(self.estimator.predict(np.asarray(x, np.float32)), np.int64)


def _make(kind: str, model: str, num_classes: int, image_shape: Optional[Sequence[int]], seed: int):
  s = MODEL_SETTINGS[f"{kind}/{model}"]
  if kind == "image" and model == "logreg":
    return _SklearnClassifier(
      make_pipeline(
        StandardScaler(), LogisticRegression(C=s["C"], solver=s["solver"], max_iter=s["max_iter"])
      )
    )
  if kind == "image" and model == "mlp":
    return _SklearnClassifier(
      make_pipeline(
        StandardScaler(),
        MLPClassifier(
          hidden_layer_sizes=tuple(s["hidden_layer_sizes"]),
          activation=s["activation"],
          solver=s["solver"],
          alpha=s["alpha"],
          max_iter=s["max_iter"],
          random_state=seed,
        ),
      )
    )
  if kind == "image" and model == "cnn":
    return cnn_lib.CNNClassifier(num_classes, image_shape, seed=seed)
  if kind == "tabular" and model == "logreg":
    return _SklearnClassifier(
      LogisticRegression(C=s["C"], solver=s["solver"], max_iter=s["max_iter"])
    )
  if kind == "tabular" and model == "hgb":
    return _SklearnClassifier(
      HistGradientBoostingClassifier(
        learning_rate=s["learning_rate"],
        max_iter=s["max_iter"],
        max_leaf_nodes=s["max_leaf_nodes"],
        early_stopping=s["early_stopping"],
        random_state=seed,
      )
    )
  raise AssertionError((kind, model))  # pragma: no cover


def check_models(kind: str, models: Sequence[str]) -> Tuple[str, ...]:
  """Validates model names for a domain kind; returns them as a tuple without duplicates."""
  allowed = IMAGE_MODELS if kind == "image" else TABLE_MODELS
  if isinstance(models, str):
    models = (models,)
  models = tuple(dict.fromkeys(models))
  unknown = [m for m in models if m not in allowed]
  if unknown or not models:
    raise ValueError(
      f"Unknown or no downstream models {list(unknown) or list(models)} for "
      f"{kind} domains; choose from {list(allowed)}."
    )
  return models


def fit_classifier(
  domain: Any, records: Any, model: str, *, seed: int = 0, name: str = "records"
) -> Classifier:
  """Fits one fixed downstream model on labelled records of `domain`.

  Args:
    domain: the records' domain (must have a label).
    records: array (n >= 1, domain.dim).
    model: a name from IMAGE_MODELS or TABLE_MODELS (per the domain's kind).
    seed: random state of the model (MLP, CNN and HGB).
    name: how to call `records` in error messages.

  Returns:
    An object with `predict(features) -> int64 labels` (and `features(...)` for the CNN).
    A single-class training set gives a ConstantClassifier.
  """
  kind = domain_kind(domain)
  (model,) = check_models(kind, (model,))
  x, y = features_and_labels(domain, records, name)
  if y is None:
    raise ValueError("The domain has no label column; the downstream task needs labels.")
  if x.shape[0] < 1:
    raise ValueError(f"{name} is empty; cannot train a classifier.")
  classes = np.unique(y)
  if classes.size == 1:
    return ConstantClassifier(int(classes[0]))
  image_shape = getattr(domain, "image_shape", None)
  return _make(kind, model, int(domain.num_classes), image_shape, int(seed)).fit(x, y)
