"""Utility of synthetic data: train on synthetic, test on real (TSTR), against TRTR.

TSTR (Esteban, Hyland and Rätsch 2017; Jordon, Yoon and van der Schaar 2019, PATE-GAN): fit a
downstream classifier on the synthetic records, measure its accuracy on real records that the
generator never saw (the holdout). TRTR: the same classifier fitted on the real training part,
tested on the same holdout, is the reference a perfect release would approach. Both use the
fixed models of `downstream` (no tuning on the holdout), so TSTR == TRTR exactly when the
synthetic set equals the training set.

Scores: accuracy = mean(pred == y) and macro-F1 = mean over the classes present in the holdout
of 2 TP / (2 TP + FP + FN) (a class never predicted scores 0), so a release that collapses onto
a few classes is not hidden by a majority class.

TSTR alone flatters blurry or label-noisy releases (a classifier can learn class boundaries from
records that look nothing like real ones); read it with `fidelity.label_agreement`.
"""

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
from sklearn.metrics import f1_score

from lipdp.evaluation import _validation
from lipdp.evaluation import downstream

__all__ = [
  "classification_scores",
  "majority_baseline",
  "tstr_trtr",
]


def classification_scores(y_true: Any, y_pred: Any) -> Dict[str, float]:
  """Accuracy and macro-F1 (over the classes present in y_true) of predictions.

  Returns:
    {"accuracy": float, "macro_f1": float}.
  """
  y_true = _validation.as_labels(y_true, "y_true")
  y_pred = _validation.as_labels(y_pred, "y_pred")
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}.")
  f1 = f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)
  return {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": float(f1)}


def majority_baseline(train_labels: Any, test_labels: Any) -> float:
  """Accuracy on test_labels of always predicting the most frequent training label."""
  train_labels = _validation.as_labels(train_labels, "train_labels")
  test_labels = _validation.as_labels(test_labels, "test_labels")
  return float(np.mean(test_labels == np.bincount(train_labels).argmax()))


def tstr(
  domain: Any,
  synthetic: Any,
  holdout: Any,
  *,
  models: Optional[Sequence[str]] = None,
  seed: int = 0,
) -> Dict[str, float]:
  """Train-on-synthetic accuracies on the real holdout alone ("tstr/m", "tstr/m_f1"), for a
  synthetic table whose training records are not at hand (`tstr_trtr` has the same values)."""
  kind = downstream.domain_kind(domain)
  models = downstream.check_models(
    kind,
    (downstream.IMAGE_MODELS if kind == "image" else downstream.TABLE_MODELS)
    if models is None
    else models,
  )
  if domain.label_column is None:
    raise ValueError("TSTR needs a domain with a label column.")
  x_test, y_test = downstream.features_and_labels(domain, holdout, "holdout")
  out: Dict[str, float] = {}
  for model in models:
    synth = downstream.fit_classifier(domain, synthetic, model, seed=seed, name="synthetic")
    scores = classification_scores(y_test, synth.predict(x_test))
    out[f"tstr/{model}"] = scores["accuracy"]
    out[f"tstr/{model}_f1"] = scores["macro_f1"]
  return out


def tstr_trtr(
  domain: Any,
  synthetic: Any,
  train: Any,
  holdout: Any,
  *,
  models: Optional[Sequence[str]] = None,
  seed: int = 0,
  fitted_on_train: Optional[Mapping[str, Any]] = None,
) -> Dict[str, float]:
  """Train-on-synthetic and train-on-real accuracies on the real holdout.

  Args:
    domain: the records' domain; must have a label column.
    synthetic: synthetic records (n_s >= 1, domain.dim).
    train: the real training part (n_t >= 1, domain.dim), what the generator was fitted on.
    holdout: real records never used by the generator (n_h >= 1, domain.dim): the test set.
    models: downstream model names (default: all of downstream.IMAGE_MODELS or TABLE_MODELS).
    seed: random state of the models (the same for TSTR and TRTR).
    fitted_on_train: optional {model: classifier already fitted on `train` with this seed},
      reused instead of refitting (e.g. the reference classifier of the fidelity metrics).

  Returns:
    Flat dict: for each model m, "tstr/m", "tstr/m_f1", "trtr/m", "trtr/m_f1" (accuracy and
    macro-F1 on the holdout), and "utility/majority_baseline" (accuracy of the most frequent
    training label).
  """
  kind = downstream.domain_kind(domain)
  models = downstream.check_models(
    kind,
    (downstream.IMAGE_MODELS if kind == "image" else downstream.TABLE_MODELS)
    if models is None
    else models,
  )
  if domain.label_column is None:
    raise ValueError("TSTR/TRTR need a domain with a label column.")
  x_test, y_test = downstream.features_and_labels(domain, holdout, "holdout")
  _, y_train = downstream.features_and_labels(domain, train, "train")
  if y_test.size == 0 or y_train.size == 0:
    raise ValueError("train and holdout must be non-empty.")
  fitted_on_train = dict(fitted_on_train or {})
  out: Dict[str, float] = {}
  for model in models:
    real = fitted_on_train.get(model)
    if real is None:
      real = downstream.fit_classifier(domain, train, model, seed=seed, name="train")
    synth = downstream.fit_classifier(domain, synthetic, model, seed=seed, name="synthetic")
    for role, clf in (("tstr", synth), ("trtr", real)):
      scores = classification_scores(y_test, clf.predict(x_test))
      out[f"{role}/{model}"] = scores["accuracy"]
      out[f"{role}/{model}_f1"] = scores["macro_f1"]
  out["utility/majority_baseline"] = majority_baseline(y_train, y_test)
  return out
