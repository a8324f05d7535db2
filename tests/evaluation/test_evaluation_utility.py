"""TSTR / TRTR with the fixed downstream models."""

import numpy as np
import pytest

from lipdp.data import load_dataset
from lipdp.evaluation import downstream
from lipdp.evaluation import utility


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits")


@pytest.fixture(scope="module")
def cancer():
  return load_dataset("breast_cancer")


def test_features_drop_the_label_block(digits, cancer):
  x, y = downstream.features_and_labels(digits.domain, digits.train[:5])
  np.testing.assert_array_equal(x, digits.train[:5, :64])
  np.testing.assert_array_equal(y, digits.domain.labels(digits.train)[:5])
  x, y = downstream.features_and_labels(cancer.domain, cancer.train[:5])
  assert x.shape == (5, cancer.domain.dim - cancer.domain.num_classes)
  np.testing.assert_array_equal(y, cancer.domain.labels(cancer.train)[:5])


def test_tstr_equals_trtr_exactly_when_synthetic_is_train_images(digits):
  train, holdout = digits.train[:600], digits.holdout[:200]  # 600: the CNN shape of other tests
  out = utility.tstr_trtr(digits.domain, train, train, holdout, models=("logreg", "cnn"), seed=0)
  for model in ("logreg", "cnn"):
    assert out[f"tstr/{model}"] == out[f"trtr/{model}"]
    assert out[f"tstr/{model}_f1"] == out[f"trtr/{model}_f1"]
  assert out["trtr/logreg"] > 0.85 and out["trtr/cnn"] > 0.8  # well above chance (0.1)
  assert out["utility/majority_baseline"] < 0.2


def test_tstr_equals_trtr_exactly_when_synthetic_is_train_tables(cancer):
  out = utility.tstr_trtr(cancer.domain, cancer.train, cancer.train, cancer.holdout, seed=1)
  assert set(out) == {
    "tstr/logreg",
    "tstr/logreg_f1",
    "trtr/logreg",
    "trtr/logreg_f1",
    "tstr/hgb",
    "tstr/hgb_f1",
    "trtr/hgb",
    "trtr/hgb_f1",
    "utility/majority_baseline",
  }
  for model in ("logreg", "hgb"):
    assert out[f"tstr/{model}"] == out[f"trtr/{model}"] > 0.9


def test_single_class_synthetic_predicts_that_class(digits):
  synthetic = digits.train[digits.domain.labels(digits.train) == 3][:30]
  x, _ = downstream.features_and_labels(digits.domain, digits.holdout)
  for model in ("logreg", "mlp", "cnn"):
    clf = downstream.fit_classifier(digits.domain, synthetic, model)
    np.testing.assert_array_equal(clf.predict(x), 3)
  out = utility.tstr_trtr(
    digits.domain, synthetic, digits.train[:300], digits.holdout, models=("logreg",)
  )
  share = np.mean(digits.domain.labels(digits.holdout) == 3)
  assert out["tstr/logreg"] == pytest.approx(share)
  # F1 is 0 for the nine classes never predicted, 2p/(1+p) for class 3 (precision p).
  assert out["tstr/logreg_f1"] == pytest.approx(2 * share / (1 + share) / 10)


def test_subset_of_classes_predicts_only_seen_classes(digits):
  mask = digits.domain.labels(digits.train) < 2
  clf = downstream.fit_classifier(digits.domain, digits.train[mask][:100], "logreg")
  x, _ = downstream.features_and_labels(digits.domain, digits.holdout)
  assert set(np.unique(clf.predict(x))) == {0, 1}


def test_single_class_table_with_boosted_trees(cancer):
  labels = cancer.domain.labels(cancer.train)
  out = utility.tstr_trtr(
    cancer.domain, cancer.train[labels == 0], cancer.train, cancer.holdout, models=("hgb",)
  )
  assert out["tstr/hgb"] == pytest.approx(np.mean(cancer.domain.labels(cancer.holdout) == 0))


def test_scores_by_hand():
  scores = utility.classification_scores([0, 0, 1, 1], [0, 1, 1, 1])
  assert scores["accuracy"] == 0.75
  # class 0: P=1, R=1/2, F1=2/3; class 1: P=2/3, R=1, F1=4/5.
  assert scores["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
  assert utility.majority_baseline([2, 2, 1], [2, 1, 1, 1]) == 0.25


@pytest.mark.parametrize(
  "models, match", [(("svm",), "Unknown"), (("hgb",), "Unknown"), ((), "Unknown or no")]
)
def test_unknown_models_raise(digits, models, match):
  with pytest.raises(ValueError, match=match):
    utility.tstr_trtr(
      digits.domain, digits.train[:20], digits.train[:20], digits.holdout[:20], models=models
    )


def test_wrong_dim_raises(digits):
  with pytest.raises(ValueError, match=r"\(n, 74\)"):
    utility.tstr_trtr(
      digits.domain,
      digits.train[:20, :70],
      digits.train[:20],
      digits.holdout[:20],
      models=("logreg",),
    )
