"""DCR and membership attacks: copies are caught, independent samples are not."""

import time

import numpy as np
import pytest

from lipdp.data import load_dataset
from lipdp.evaluation import membership


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits")


def _three_disjoint_parts(digits, seed):
  """Disjoint real parts: (generator's training set, holdout, an independent 'release')."""
  records = np.concatenate([digits.train, digits.holdout])
  perm = np.random.RandomState(seed).permutation(records.shape[0])
  return records[perm[:600]], records[perm[600:1200]], records[perm[1200:]]


def test_nearest_neighbors_match_brute_force_and_copies_are_exactly_zero():
  rng = np.random.default_rng(0)
  refs = rng.random((300, 20)).astype(np.float32)
  queries = np.concatenate([refs[::7], rng.random((50, 20)).astype(np.float32)])
  dist, idx = membership.nearest_neighbor_distances(queries, refs)
  brute = np.sqrt(((queries[:, None, :].astype(np.float64) - refs[None]) ** 2).sum(-1))
  np.testing.assert_allclose(dist, brute.min(1), rtol=1e-12, atol=0)
  np.testing.assert_array_equal(dist[: len(refs[::7])], 0.0)
  np.testing.assert_allclose(brute[np.arange(len(queries)), idx], dist, rtol=1e-12)


def test_nearest_neighbors_with_fewer_references_than_candidates():
  dist, idx = membership.nearest_neighbor_distances([[0.0, 0.0], [3.0, 4.0]], [[3.0, 4.0]])
  np.testing.assert_array_equal(dist, [5.0, 0.0])
  np.testing.assert_array_equal(idx, [0, 0])


def test_copying_generator_has_zero_dcr_and_all_records_closer_to_train(digits):
  train = digits.train[: len(digits.holdout)]  # equal sizes: no subsampling
  out = membership.distance_to_closest_record(train, train, digits.holdout, seed=0)
  for q in ("q05", "q50", "q95"):
    assert out[f"privacy/dcr_train_{q}"] == 0.0
    assert out[f"privacy/dcr_holdout_{q}"] > 0.3
  assert out["privacy/dcr_closer_to_train"] == 1.0
  assert out["privacy/exact_match_train"] == 1.0
  assert out["privacy/exact_match_holdout"] == 0.0
  assert out["privacy/dcr_reference_size"] == len(digits.holdout)


def test_dcr_equalises_reference_sizes(digits):
  out = membership.distance_to_closest_record(digits.train[:50], digits.train, digits.holdout)
  assert out["privacy/dcr_reference_size"] == len(digits.holdout) < len(digits.train)
  assert out["privacy/dcr_num_synthetic"] == 50


def test_independent_sample_shows_no_signal(digits):
  train, holdout, release = _three_disjoint_parts(digits, 0)
  dcr = membership.distance_to_closest_record(release, train, holdout, seed=0)
  assert abs(dcr["privacy/dcr_closer_to_train"] - 0.5) < 0.05
  assert dcr["privacy/exact_match_train"] == 0.0
  # A 95% interval misses 0.5 in about 1 split in 20, so look at several splits: most
  # intervals cover 0.5 and the AUCs average to 0.5.
  aucs, covered = {"distance": [], "density": []}, {"distance": 0, "density": 0}
  splits = 8
  for seed in range(splits):
    train, holdout, release = _three_disjoint_parts(digits, seed)
    mia = membership.membership_inference(release, train, holdout, seed=seed)
    assert mia["privacy/mia_num_members"] == mia["privacy/mia_num_nonmembers"] == 300
    assert mia["privacy/mia_reference_size"] == 300
    for attack in aucs:
      lo, hi = mia[f"privacy/mia_{attack}_auc_ci"]
      covered[attack] += lo <= 0.5 <= hi
      aucs[attack].append(mia[f"privacy/mia_{attack}_auc"])
      assert abs(aucs[attack][-1] - 0.5) < 0.08
  for attack in aucs:
    assert covered[attack] >= splits - 2, (attack, aucs[attack])
    assert abs(np.mean(aucs[attack]) - 0.5) < 0.03, (attack, aucs[attack])


def test_copying_generator_is_caught_by_both_attacks(digits):
  train = digits.train[: len(digits.holdout)]
  mia = membership.membership_inference(train, train, digits.holdout, seed=0)
  assert mia["privacy/mia_distance_auc"] == 1.0
  assert mia["privacy/mia_distance_auc_ci"][0] > 0.95
  # A smooth density in 5 PCA dimensions sees copies less sharply, but clearly above chance.
  assert mia["privacy/mia_density_auc_ci"][0] > 0.55


def test_noisy_copies_leak_less_than_exact_copies(digits):
  train = digits.train[: len(digits.holdout)]
  rng = np.random.default_rng(0)
  blurred = train + rng.normal(0.0, 0.4, train.shape)  # noise of the order of NN distances
  exact = membership.membership_inference(train, train, digits.holdout)
  noisy = membership.membership_inference(blurred, train, digits.holdout)
  assert 0.5 < noisy["privacy/mia_distance_auc"] < exact["privacy/mia_distance_auc"]


def test_density_scores_prefer_regions_where_synthetic_data_concentrate():
  rng = np.random.default_rng(0)
  reference = rng.normal(size=(400, 3))
  synthetic = np.concatenate([rng.normal(size=(400, 3)), rng.normal(3.0, 0.1, (400, 3))])
  scores = membership.density_attack_scores(
    [[3.0, 3.0, 3.0], [-1.0, 0.0, 0.0]], synthetic, reference
  )
  assert scores[0] > scores[1] + 3.0  # log ratio: the cluster is far denser in the release


def test_deterministic_given_seed(digits):
  a = membership.membership_inference(digits.train[:200], digits.train, digits.holdout, seed=3)
  b = membership.membership_inference(digits.train[:200], digits.train, digits.holdout, seed=3)
  assert a == b


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"synthetic": np.zeros((0, 74))}, "synthetic"),
    ({"train": np.zeros((5, 73))}, "same number of columns"),
    ({"holdout": np.zeros((3, 74))}, "holdout needs at least 4"),
    ({"synthetic": np.full((5, 74), np.nan)}, "NaN"),
  ],
)
def test_bad_inputs_raise(digits, kwargs, match):
  args = {"synthetic": digits.train[:10], "train": digits.train, "holdout": digits.holdout}
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    membership.membership_inference(args["synthetic"], args["train"], args["holdout"])


@pytest.mark.slow
def test_nearest_neighbors_scale_to_mnist_size():
  rng = np.random.default_rng(0)
  a = rng.random((8000, 794)).astype(np.float32)
  b = rng.random((8000, 794)).astype(np.float32)
  start = time.perf_counter()
  membership.nearest_neighbor_distances(a, b)
  assert time.perf_counter() - start < 30.0
