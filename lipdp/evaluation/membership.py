"""Empirical privacy of a release: distances to closest records and membership inference.

These measure what an attacker holding the release can tell about the training records. They
are empirical: a low attack AUC does not prove privacy (a stronger attack may exist), a high
one proves a leak. Distances are l2 in the record space of the domain (pixels and the one-hot
label block; scaled numeric columns and one-hot blocks), the geometry of the privacy guarantee.

Distance to closest record (DCR; e.g. Park et al. 2018, Platzer and Reutterer 2021): for each
synthetic record s, d_train(s) = min over training records |s - x| and d_holdout(s) = min
over holdout records. Nearest-neighbour distances shrink as the reference set grows, so both
references have the same size: the larger of train and holdout is subsampled (fixed seed) to
the size of the smaller. A release that does not depend on which records were in training is
as close to the holdout as to the training part: the fraction of synthetic records closer to
train than to holdout (ties count 1/2) is 0.5, and exact copies of training records push it to
1.

Membership inference (MIA). Candidates: members M (training records) and non-members N (holdout
records), equally many. The holdout is split at random (fixed seed) into a *reference* half R,
real data from the population that the density attack may use, and an *evaluation* half, the
non-members; the members are a random subsample of the training part of the same size. Each
attack assigns a score (higher = "member") and is summarised by its ROC AUC with a DeLong
confidence interval (`auc`). Two attacks:

* distance (GAN-Leaks, Chen et al. 2020, the full black-box attack on a released sample):
  score(x) = -min over synthetic records s of |x - s|;
* density (DOMIAS, van Breugel et al. 2023): score(x) = log p_S(x) - log p_R(x), the log ratio
  of the synthetic density to the real reference density. Records are projected on the first
  5 principal components of (synthetic subsample + R) and each density is a Gaussian kernel
  density estimate with bandwidth matrix H = n^(-2/(d+4)) Cov (Scott's rule) plus a ridge of
  1e-6 tr(H)/d, so that a collapsed synthetic set still has a density. DOMIAS targets
  overfitting to local regions, which a distance attack can miss.

Nearest neighbours are found by blocked matrix products in float32 (|a|^2 - 2 a.b for the
candidates) and the best 4 candidates are re-measured exactly in float64, so an exact copy has
distance exactly 0; 8,000 x 8,000 MNIST records take a few seconds on two cores.
"""

from typing import Any, Dict, Sequence, Tuple

import numpy as np
from scipy import linalg
from scipy.special import logsumexp

from lipdp.evaluation import _validation
from lipdp.evaluation import auc as auc_lib

__all__ = [
  "nearest_neighbor_distances",
  "exact_match_fraction",
  "distance_to_closest_record",
  "distance_attack_scores",
  "density_attack_scores",
  "membership_inference",
]

_CHUNK = 1024
_CANDIDATES = 4
DENSITY_DIMS = 5
MAX_DCR_SYNTHETIC = 5000
MAX_ATTACK_SYNTHETIC = 20000
MAX_DENSITY_FIT = 5000
DCR_QUANTILES = (0.05, 0.5, 0.95)

# Purposes for `_validation.rng_for`: one independent stream per subsample or split.
_DCR_SYNTHETIC, _DCR_TRAIN, _DCR_HOLDOUT = 10, 11, 12
_MIA_SPLIT, _MIA_MEMBERS, _MIA_SYNTHETIC, _MIA_DENSITY_FIT = 20, 21, 22, 23


@_validation.single_threaded
def nearest_neighbor_distances(queries: Any, references: Any) -> Tuple[np.ndarray, np.ndarray]:
  """l2 distance from each query row to its nearest reference row, and that row's index.

  Candidates come from float32 blocked products; the best 4 per query are re-measured in
  float64 (differences of float32 records are exact in float64), so a query equal to a
  reference row gets exactly 0. A nearer row can be missed only if more than 4 rows lie within
  float32 rounding of each other, and then by no more than that rounding.

  Returns:
    (distances float64 (n_q,), indices int64 (n_q,)).
  """
  q = _validation.as_matrix(queries, "queries", min_rows=0)
  r = _validation.as_matrix(references, "references", min_rows=1)
  _validation.same_width(q, r, "queries", "references")
  r32 = r.astype(np.float32)
  r_sq = np.sum(r32 * r32, axis=1)
  k = min(_CANDIDATES, r.shape[0])
  dist = np.empty(q.shape[0])
  index = np.empty(q.shape[0], np.int64)
  for start in range(0, q.shape[0], _CHUNK):
    chunk = q[start : start + _CHUNK]
    # |q|^2 is the same for every candidate of a row, so it does not change the ranking.
    approx = r_sq[None, :] - 2.0 * (chunk.astype(np.float32) @ r32.T)
    cand = (
      np.argpartition(approx, k - 1, axis=1)[:, :k]
      if k < r.shape[0]
      else np.broadcast_to(np.arange(r.shape[0]), (chunk.shape[0], r.shape[0]))
    )
    exact = np.sqrt(np.sum((chunk[:, None, :] - r[cand]) ** 2, axis=2))
    best = np.argmin(exact, axis=1)
    rows = np.arange(chunk.shape[0])
    dist[start : start + chunk.shape[0]] = exact[rows, best]
    index[start : start + chunk.shape[0]] = cand[rows, best]
  return dist, index


def _row_keys(x: np.ndarray):
  # + 0.0 maps -0.0 to 0.0, so that numerically equal rows have equal bytes.
  return {row.tobytes() for row in (x + 0.0)}


def exact_match_fraction(queries: Any, references: Any) -> float:
  """Fraction of query rows equal (coordinate for coordinate) to some reference row."""
  q = _validation.as_matrix(queries, "queries", min_rows=1)
  r = _validation.as_matrix(references, "references", min_rows=1)
  _validation.same_width(q, r, "queries", "references")
  keys = _row_keys(r)
  return float(np.mean([row.tobytes() in keys for row in (q + 0.0)]))


def _check_sets(synthetic, train, holdout, min_holdout):
  s = _validation.as_matrix(synthetic, "synthetic", min_rows=1)
  t = _validation.as_matrix(train, "train", min_rows=2)
  h = _validation.as_matrix(holdout, "holdout", min_rows=min_holdout)
  _validation.same_width(s, t, "synthetic", "train")
  _validation.same_width(s, h, "synthetic", "holdout")
  return s, t, h


@_validation.single_threaded
def distance_to_closest_record(
  synthetic: Any,
  train: Any,
  holdout: Any,
  *,
  seed: int = 0,
  max_synthetic: int = MAX_DCR_SYNTHETIC,
  quantiles: Sequence[float] = DCR_QUANTILES,
) -> Dict[str, Any]:
  """DCR of synthetic records to equally large training and holdout reference sets.

  Args:
    synthetic: released records (n_s >= 1, d); at most `max_synthetic` are used (fixed-seed
      subsample).
    train: the training records (n_t >= 2, d).
    holdout: real records not used by the release (n_h >= 2, d).
    seed: seeds the subsamples.
    max_synthetic: cap on the synthetic records measured.
    quantiles: quantiles of d_train and d_holdout to report.

  Returns:
    Flat dict: "privacy/dcr_train_qXX" and "privacy/dcr_holdout_qXX" for each quantile (XX =
    100 q, e.g. q50 the median), "privacy/dcr_closer_to_train" (fraction with d_train <
    d_holdout, ties 1/2; 0.5 = no signal), "privacy/dcr_reference_size" (records in each
    reference set), "privacy/dcr_num_synthetic", "privacy/exact_match_train" and
    "privacy/exact_match_holdout" (fraction of the measured synthetic records identical to some
    record of the full training part / the full holdout).
  """
  s, t, h = _check_sets(synthetic, train, holdout, 2)
  s = _validation.subsample(s, int(max_synthetic), _validation.rng_for(seed, _DCR_SYNTHETIC))
  size = min(t.shape[0], h.shape[0])
  t_ref = _validation.subsample(t, size, _validation.rng_for(seed, _DCR_TRAIN))
  h_ref = _validation.subsample(h, size, _validation.rng_for(seed, _DCR_HOLDOUT))
  d_train, _ = nearest_neighbor_distances(s, t_ref)
  d_holdout, _ = nearest_neighbor_distances(s, h_ref)
  out: Dict[str, Any] = {}
  for q in quantiles:
    if not 0.0 <= q <= 1.0:
      raise ValueError(f"quantiles must lie in [0, 1], got {q}.")
    out[f"privacy/dcr_train_q{round(100 * q):02d}"] = float(np.quantile(d_train, q))
    out[f"privacy/dcr_holdout_q{round(100 * q):02d}"] = float(np.quantile(d_holdout, q))
  out["privacy/dcr_closer_to_train"] = float(
    np.mean(d_train < d_holdout) + 0.5 * np.mean(d_train == d_holdout)
  )
  out["privacy/dcr_reference_size"] = int(size)
  out["privacy/dcr_num_synthetic"] = int(s.shape[0])
  out["privacy/exact_match_train"] = exact_match_fraction(s, t)
  out["privacy/exact_match_holdout"] = exact_match_fraction(s, h)
  return out


def distance_attack_scores(candidates: Any, synthetic: Any) -> np.ndarray:
  """GAN-Leaks score: minus the distance from each candidate to its nearest synthetic record."""
  return -nearest_neighbor_distances(candidates, synthetic)[0]


def _gaussian_kde_logpdf(points: np.ndarray, data: np.ndarray) -> np.ndarray:
  """log of (1/n) sum_i N(x; data_i, H), H = n^(-2/(d+4)) Cov(data) + ridge I (Scott)."""
  n, d = data.shape
  cov = np.atleast_2d(np.cov(data, rowvar=False)) if n > 1 else np.zeros((d, d))
  bw = cov * n ** (-2.0 / (d + 4))
  bw = bw + (1e-6 * max(np.trace(bw) / d, 1e-12)) * np.eye(d)
  chol = linalg.cholesky(bw, lower=True)
  zd = linalg.solve_triangular(chol, data.T, lower=True).T
  zp = linalg.solve_triangular(chol, points.T, lower=True).T
  sq = np.clip(
    np.sum(zp * zp, 1)[:, None] + np.sum(zd * zd, 1)[None, :] - 2.0 * zp @ zd.T, 0.0, None
  )
  log_norm = 0.5 * d * np.log(2.0 * np.pi) + np.sum(np.log(np.diag(chol)))
  return logsumexp(-0.5 * sq, axis=1) - np.log(n) - log_norm


def _density_scores(candidates, synthetic, reference, seed, dims, max_fit):
  c = _validation.as_matrix(candidates, "candidates", min_rows=1)
  s = _validation.as_matrix(synthetic, "synthetic", min_rows=2)
  r = _validation.as_matrix(reference, "reference", min_rows=2)
  _validation.same_width(c, s, "candidates", "synthetic")
  _validation.same_width(c, r, "candidates", "reference")
  s = _validation.subsample(s, int(max_fit), _validation.rng_for(seed, _MIA_DENSITY_FIT))
  fit = np.concatenate([s, r])
  mean = fit.mean(0)
  k = max(1, min(int(dims), fit.shape[1], fit.shape[0] - 1))
  _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
  basis = vt[:k].T
  pc, ps, pr = (c - mean) @ basis, (s - mean) @ basis, (r - mean) @ basis
  return _gaussian_kde_logpdf(pc, ps) - _gaussian_kde_logpdf(pc, pr), k


@_validation.single_threaded
def density_attack_scores(
  candidates: Any,
  synthetic: Any,
  reference: Any,
  *,
  seed: int = 0,
  dims: int = DENSITY_DIMS,
  max_fit: int = MAX_DENSITY_FIT,
) -> np.ndarray:
  """DOMIAS score log p_synthetic(x) - log p_reference(x) in a PCA space (see module doc).

  Args:
    candidates: records to score (n_c, d).
    synthetic: the release (n_s >= 2, d); a fixed-seed subsample of at most `max_fit` records
      fits the synthetic density (and, with the reference, the PCA).
    reference: real non-member records (n_r >= 2, d), disjoint from the candidates.
    seed: seeds the subsample.
    dims: number of principal components (fewer if the data have fewer dimensions).
    max_fit: cap on the synthetic records used for fitting.

  Returns:
    float64 (n_c,) scores.
  """
  return _density_scores(candidates, synthetic, reference, seed, dims, max_fit)[0]


@_validation.single_threaded
def membership_inference(
  synthetic: Any,
  train: Any,
  holdout: Any,
  *,
  seed: int = 0,
  level: float = 0.95,
  max_synthetic: int = MAX_ATTACK_SYNTHETIC,
  density_dims: int = DENSITY_DIMS,
) -> Dict[str, Any]:
  """Distance (GAN-Leaks) and density (DOMIAS) attacks on the release; AUCs with DeLong CIs.

  Args:
    synthetic: the release (n_s >= 2, d); at most `max_synthetic` records are used.
    train: training records (n_t >= 2): the members are drawn from them.
    holdout: real records not used by the release (n_h >= 4): half reference, half
      non-members.
    seed: seeds the split and the subsamples.
    level: confidence level of the intervals.
    max_synthetic: cap on the synthetic records the distance attack searches.
    density_dims: PCA dimension of the density attack.

  Returns:
    Flat dict: "privacy/mia_distance_auc", "privacy/mia_distance_auc_ci" ([lower, upper]),
    "privacy/mia_density_auc", "privacy/mia_density_auc_ci", "privacy/mia_num_members",
    "privacy/mia_num_nonmembers", "privacy/mia_reference_size", "privacy/mia_density_dims",
    "privacy/mia_ci_level".
  """
  s, t, h = _check_sets(synthetic, train, holdout, 4)
  if s.shape[0] < 2:
    raise ValueError("synthetic needs at least 2 records for the density attack.")
  perm = _validation.rng_for(seed, _MIA_SPLIT).permutation(h.shape[0])
  half = h.shape[0] // 2
  reference, nonmembers = h[np.sort(perm[:half])], h[np.sort(perm[half:])]
  size = min(nonmembers.shape[0], t.shape[0])
  nonmembers = nonmembers[:size]
  members = _validation.subsample(t, size, _validation.rng_for(seed, _MIA_MEMBERS))
  candidates = np.concatenate([members, nonmembers])
  s_attack = _validation.subsample(s, int(max_synthetic), _validation.rng_for(seed, _MIA_SYNTHETIC))
  out: Dict[str, Any] = {}
  distance = distance_attack_scores(candidates, s_attack)
  density, dims = _density_scores(candidates, s, reference, seed, density_dims, MAX_DENSITY_FIT)
  for name, scores in (("distance", distance), ("density", density)):
    result = auc_lib.auc_with_ci(scores[:size], scores[size:], level)
    out[f"privacy/mia_{name}_auc"] = result["auc"]
    out[f"privacy/mia_{name}_auc_ci"] = result["ci"]
  out["privacy/mia_num_members"] = int(size)
  out["privacy/mia_num_nonmembers"] = int(size)
  out["privacy/mia_reference_size"] = int(reference.shape[0])
  out["privacy/mia_density_dims"] = int(dims)
  out["privacy/mia_ci_level"] = float(level)
  return out
