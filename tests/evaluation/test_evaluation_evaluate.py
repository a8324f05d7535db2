"""evaluate_release end to end: known answers for identical, corrupted and copied releases."""

import json

import numpy as np
import pytest

from lipdp.data import load_dataset
from lipdp.evaluation import evaluate_release, summary_lines

N_TRAIN = 600  # one training size for every image case, so the reference CNN compiles once


@pytest.fixture(scope="module")
def digits():
  data = load_dataset("digits")
  return data.domain, data.train[:N_TRAIN], data.holdout


@pytest.fixture(scope="module")
def cancer():
  data = load_dataset("breast_cancer")
  return data.domain, data.train, data.holdout


@pytest.fixture(scope="module")
def identical(digits):
  domain, train, holdout = digits
  return evaluate_release(domain, holdout, train, holdout, seed=0, fast=True)


IMAGE_KEYS = {
  "tstr/logreg",
  "tstr/logreg_f1",
  "trtr/logreg",
  "trtr/logreg_f1",
  "utility/majority_baseline",
  "labels/agreement",
  "labels/agreement_real_holdout",
  "labels/balance_tv",
  "labels/balance_tv_train_vs_holdout",
  "labels/num_synthetic_classes",
  "fidelity/frechet",
  "fidelity/frechet_train_vs_holdout",
  "fidelity/mmd",
  "fidelity/mmd_train_vs_holdout",
  "fidelity/mmd_bandwidth",
  "privacy/dcr_train_q05",
  "privacy/dcr_train_q50",
  "privacy/dcr_train_q95",
  "privacy/dcr_holdout_q05",
  "privacy/dcr_holdout_q50",
  "privacy/dcr_holdout_q95",
  "privacy/dcr_closer_to_train",
  "privacy/dcr_reference_size",
  "privacy/dcr_num_synthetic",
  "privacy/exact_match_train",
  "privacy/exact_match_holdout",
  "privacy/mia_distance_auc",
  "privacy/mia_distance_auc_ci",
  "privacy/mia_density_auc",
  "privacy/mia_density_auc_ci",
  "privacy/mia_num_members",
  "privacy/mia_num_nonmembers",
  "privacy/mia_reference_size",
  "privacy/mia_density_dims",
  "privacy/mia_ci_level",
  "meta/kind",
  "meta/seed",
  "meta/fast",
  "meta/models",
  "meta/reference_classifier",
  "meta/num_synthetic",
  "meta/num_train",
  "meta/num_holdout",
  "meta/num_classes",
  "meta/label_column",
  "meta/roles",
  "meta/holdout_contract",
  "meta/holdout_duplicates_of_train",
  "meta/differentially_private",
  "meta/privacy_note",
  "meta/model_settings",
  "meta/skipped",
}


def test_identical_release_scores_perfect_fidelity(identical):
  m = identical
  assert IMAGE_KEYS == set(m)
  json.dumps(m, allow_nan=False)
  assert m["fidelity/frechet"] == pytest.approx(0.0, abs=1e-6)
  assert m["fidelity/frechet_train_vs_holdout"] > 0.1
  assert -0.01 < m["fidelity/mmd"] <= 0.0  # unbiased estimate of 0
  assert m["labels/balance_tv"] == 0.0
  assert m["labels/agreement"] == m["labels/agreement_real_holdout"] > 0.9
  assert m["privacy/dcr_holdout_q95"] == 0.0 and m["privacy/dcr_closer_to_train"] == 0.0
  assert m["privacy/exact_match_holdout"] == 1.0
  assert m["privacy/mia_distance_auc"] == 0.0  # the non-members are the ones copied
  assert m["meta/differentially_private"] is False
  assert m["meta/models"] == ["logreg"] and m["meta/fast"] is True
  assert m["meta/num_train"] == N_TRAIN and m["meta/holdout_duplicates_of_train"] == 0
  lines = summary_lines(m)
  assert 5 <= len(lines) <= 10 and all(isinstance(s, str) and s for s in lines)
  assert "not differentially private" in lines[0]


def test_copying_generator_is_flagged(digits):
  domain, train, holdout = digits
  m = evaluate_release(domain, train, train, holdout, seed=0, fast=True)
  assert m["tstr/logreg"] == m["trtr/logreg"]
  assert m["fidelity/frechet"] == m["fidelity/frechet_train_vs_holdout"]
  assert m["fidelity/mmd"] == m["fidelity/mmd_train_vs_holdout"]
  assert m["privacy/exact_match_train"] == 1.0 and m["privacy/dcr_train_q05"] == 0.0
  assert m["privacy/dcr_closer_to_train"] > 0.6  # the train reference is a subsample
  assert m["privacy/mia_distance_auc"] == 1.0


def test_shuffled_labels_agree_with_real_classifier_at_chance(digits, identical):
  domain, train, holdout = digits
  synthetic = train.copy()
  perm = np.random.default_rng(0).permutation(len(train))
  image = domain.image_dim
  synthetic[:, image:] = train[perm, image:]  # same images and label histogram, labels scrambled
  m = evaluate_release(domain, synthetic, train, holdout, seed=0, fast=True)
  assert m["labels/agreement"] < 0.2  # chance is about 0.1
  assert m["labels/agreement_real_holdout"] > 0.9
  assert m["tstr/logreg"] < 0.3 < m["trtr/logreg"]
  # The Fréchet distance sees images only: unchanged; the label histogram is unchanged too.
  assert m["fidelity/frechet"] == m["fidelity/frechet_train_vs_holdout"]
  assert m["labels/balance_tv"] == m["labels/balance_tv_train_vs_holdout"]


def test_blurred_images_are_far_from_real_and_flattered_by_tstr(digits):
  domain, train, holdout = digits
  synthetic = train.copy()
  padded = np.pad(train[:, :64].reshape(-1, 8, 8), ((0, 0), (1, 1), (1, 1)))
  box = sum(padded[:, i : i + 8, j : j + 8] for i in range(3) for j in range(3)) / 9.0
  synthetic[:, :64] = box.reshape(-1, 64)  # 3x3 box blur, labels kept
  m = evaluate_release(domain, synthetic, train, holdout, seed=0, fast=True)
  assert m["fidelity/frechet"] > 10 * m["fidelity/frechet_train_vs_holdout"]
  assert m["fidelity/mmd"] > 0.05 > 10 * abs(m["fidelity/mmd_train_vs_holdout"])
  # TSTR stays high while a real-data classifier no longer recognises many records.
  assert m["tstr/logreg"] > 0.75
  assert m["labels/agreement"] < m["labels/agreement_real_holdout"] - 0.1


@pytest.mark.slow  # 8 s; moved to pay for the exact-noise and rounding tests (2026-12-07)
def test_fast_keys_are_a_subset_of_full_with_equal_values(digits):
  domain, train, holdout = digits
  holdout = holdout[:100]
  synthetic = train[::-1].copy()
  synthetic[:, : domain.image_dim] *= 0.8  # same shape as train: no new CNN compilation
  fast = evaluate_release(domain, synthetic, train, holdout, seed=2, fast=True)
  full = evaluate_release(domain, synthetic, train, holdout, seed=2)
  assert {"tstr/mlp", "tstr/cnn", "trtr/cnn"} <= set(full) - set(fast)
  for key, value in fast.items():
    if key not in ("meta/fast", "meta/models"):
      assert full[key] == value, key
  assert full["meta/models"] == ["logreg", "mlp", "cnn"]


def test_tables_identical_copy_and_determinism(cancer):
  domain, train, holdout = cancer
  same = evaluate_release(domain, holdout, train, holdout, seed=0)
  json.dumps(same, allow_nan=False)
  for key in (
    "fidelity/tv_mean",
    "fidelity/wasserstein_mean",
    "fidelity/binned_tv_mean",
    "fidelity/association_diff_max",
    "labels/balance_tv",
  ):
    assert same[key] == 0.0, key
  assert same["fidelity/tv_mean_train_vs_holdout"] > 0.0
  assert same["fidelity/binned_tv_mean_train_vs_holdout"] > 0.0
  assert "mean binned TV 0.000" in " ".join(summary_lines(same))
  assert same["meta/reference_classifier"] == "hgb"
  assert "fidelity/frechet" not in same
  copy = evaluate_release(domain, train, train, holdout, seed=0)
  again = evaluate_release(domain, train, train, holdout, seed=0)
  assert copy == again
  for model in ("logreg", "hgb"):
    assert copy[f"tstr/{model}"] == copy[f"trtr/{model}"]
  assert copy["privacy/mia_distance_auc"] == 1.0
  assert 5 <= len(summary_lines(copy)) <= 10


def test_degenerate_single_class_release_does_not_crash(cancer):
  domain, train, holdout = cancer
  one_class = train[domain.labels(train) == 0]
  m = evaluate_release(domain, one_class, train, holdout, seed=0)
  assert m["labels/num_synthetic_classes"] == 1
  share = np.mean(domain.labels(holdout) == 0)
  assert m["tstr/logreg"] == pytest.approx(share) and m["tstr/hgb"] == pytest.approx(share)
  assert m["labels/balance_tv"] == pytest.approx(1.0 - share)


def test_unlabelled_domain_skips_label_metrics():
  data = load_dataset("digits", include_labels=False)
  m = evaluate_release(data.domain, data.holdout[:100], data.train[:200], data.holdout, seed=0)
  assert not any(k.startswith(("tstr/", "trtr/", "labels/")) for k in m)
  assert "fidelity/frechet" not in m and "fidelity/frechet" in m["meta/skipped"]
  assert "privacy/mia_distance_auc" in m and "fidelity/mmd" in m
  assert any(line.startswith("Skipped") for line in summary_lines(m))


@pytest.mark.parametrize(
  "change, match",
  [
    ({"synthetic": np.zeros((10, 70))}, r"\(n, 74\)"),
    ({"synthetic": np.zeros((1, 74))}, "at least 2"),
    ({"holdout": np.zeros((3, 74))}, "at least 4"),
    ({"train": np.full((10, 74), np.nan)}, "NaN"),
    ({"seed": -1}, "seed"),
    ({"models": ("hgb",)}, "Unknown"),
  ],
)
def test_bad_inputs_raise(digits, change, match):
  domain, train, holdout = digits
  args = {"synthetic": train[:10], "train": train, "holdout": holdout, "seed": 0, "models": None}
  args.update(change)
  with pytest.raises(ValueError, match=match):
    evaluate_release(
      domain,
      args["synthetic"],
      args["train"],
      args["holdout"],
      seed=args["seed"],
      models=args["models"],
    )
