"""Fidelity: how close the synthetic distribution is to the real one.

Images:

* Fréchet distance (Heusel et al. 2017) between Gaussians fitted to *classifier features*:
  ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2}). In lipdp the features
  are the 64 penultimate activations of the small CNN of `cnn` trained on the real training
  part, NOT Inception-v3 pool features: the numbers are NOT FID and are NOT comparable with
  published FIDs, nor across data sets, feature networks or sample sizes (the estimate is
  biased upwards at small n). Compare releases evaluated with the same protocol only.
* MMD (Gretton et al. 2012) with the Gaussian kernel k(x, y) = exp(-|x - y|^2 / (2 h^2)):
  the unbiased estimate MMD^2_u (their eq. 3), which can be slightly negative when the two
  distributions agree. Bandwidth by a fixed rule: h = the median of the pairwise distances
  within the real reference sample (the median heuristic).

Tables (records read as the domain decodes them: numeric coordinates clipped to [0, 1], each
categorical block at its argmax):

* per categorical column, the total-variation distance 1/2 sum_c |p_c - q_c| between the
  category frequencies (in [0, 1]);
* per numeric column, the 1-D Wasserstein-1 distance between the empirical distributions in the
  column's scaled [0, 1] units (the mean |difference| of quantile functions; in [0, 1]);
* per numeric column, the total-variation distance between the histograms over the column's
  declared bins (`NumericColumn.bins`, the same bins the marginal-based baselines use), or
  `FIDELITY_NUMERIC_BINS` equal-width bins where it declares none. Wasserstein-1 cannot see a
  value held in bulk spread over a narrow interval (at most the interval's width), where a
  declared bin isolating the value can;
* pairwise associations, one measure per pair type, each in [-1, 1] or [0, 1]: Pearson's r for
  two numeric columns, Cramér's V (uncorrected) for two categorical columns, the correlation
  ratio eta for a numeric and a categorical column; reported as |a_real - a_synthetic| per pair
  (mean and max over pairs). A constant column has association 0 with everything.

Labels (both kinds):

* label balance: total-variation distance between the label histograms;
* label agreement: the fraction of synthetic records whose synthetic label equals the label a
  classifier trained on real data predicts for them. TSTR alone flatters blurry releases: a
  blurry image with the right label still teaches a classifier something, but a real-data
  classifier will not recognise it. The same classifier's accuracy on the real holdout is the
  value a release whose records look real and carry correct labels would reach.
"""

from typing import Any, Dict, Optional

import numpy as np
from scipy import stats

from lipdp.data import bins as bins_lib
from lipdp.evaluation import _validation

# Equal-width bins of the binned TV of a numeric column that declares no bins (a constant).
FIDELITY_NUMERIC_BINS = 16

__all__ = [
  "frechet_distance",
  "frechet_distance_from_moments",
  "median_heuristic_bandwidth",
  "mmd_squared",
  "total_variation",
  "categorical_tv",
  "wasserstein_1d",
  "pearson",
  "cramers_v",
  "correlation_ratio",
  "tabular_fidelity",
  "label_balance_tv",
  "label_agreement",
]


# ----------------------------------------------------------------------------------------------
# Fréchet distance.


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((s + s.T) / 2.0)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_moments(mu_a: Any, cov_a: Any, mu_b: Any, cov_b: Any) -> float:
  """Fréchet (2-Wasserstein squared) distance between N(mu_a, cov_a) and N(mu_b, cov_b).

  d^2 = ||mu_a - mu_b||^2 + tr(cov_a) + tr(cov_b) - 2 tr((cov_a^{1/2} cov_b cov_a^{1/2})^{1/2}),
  computed with symmetric eigendecompositions (stable for singular covariances, no complex
  square roots). Rounding can leave -1e-12; the result is clipped at 0.
  """
  mu_a, mu_b = (
    np.atleast_1d(np.asarray(mu_a, np.float64)),
    np.atleast_1d(np.asarray(mu_b, np.float64)),
  )
  cov_a, cov_b = (
    np.atleast_2d(np.asarray(cov_a, np.float64)),
    np.atleast_2d(np.asarray(cov_b, np.float64)),
  )
  d = mu_a.shape[0]
  if mu_a.shape != (d,) or mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
    raise ValueError(
      f"Shapes do not match: mu {mu_a.shape}, {mu_b.shape}; cov {cov_a.shape}, {cov_b.shape}."
    )
  root_a = _psd_sqrt(cov_a)
  middle = root_a @ cov_b @ root_a
  cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)))
  value = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross
  return float(max(value, 0.0))


@_validation.single_threaded
def frechet_distance(features_a: Any, features_b: Any) -> float:
  """Fréchet distance between Gaussians fitted (mean, covariance with ddof 1) to two samples."""
  a = _validation.as_matrix(features_a, "features_a", min_rows=2)
  b = _validation.as_matrix(features_b, "features_b", min_rows=2)
  _validation.same_width(a, b, "features_a", "features_b")
  return frechet_distance_from_moments(
    a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
  )


# ----------------------------------------------------------------------------------------------
# MMD.


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  d = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * (a @ b.T)
  return np.clip(d, 0.0, None)


@_validation.single_threaded
def median_heuristic_bandwidth(reference: Any) -> float:
  """h = median of the distances |x_i - x_j| over pairs i < j of the reference sample.

  Falls back to 1.0 if that median is 0 (more than half the pairs identical).
  """
  x = _validation.as_matrix(reference, "reference", min_rows=2)
  iu = np.triu_indices(x.shape[0], 1)
  h = float(np.median(np.sqrt(_sq_dists(x, x)[iu])))
  return h if h > 0.0 else 1.0


@_validation.single_threaded
def mmd_squared(x: Any, y: Any, bandwidth: float) -> float:
  """Unbiased MMD^2_u of Gretton et al. (2012, eq. 3) with k(a, b) = exp(-|a-b|^2 / (2 h^2)).

  MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
            - 2/(m n) sum_{i, j} k(x_i, y_j).
  """
  x = _validation.as_matrix(x, "x", min_rows=2)
  y = _validation.as_matrix(y, "y", min_rows=2)
  _validation.same_width(x, y, "x", "y")
  if not (np.isfinite(bandwidth) and bandwidth > 0):
    raise ValueError(f"bandwidth must be finite and > 0, got {bandwidth}.")
  gamma = 1.0 / (2.0 * float(bandwidth) ** 2)
  m, n = x.shape[0], y.shape[0]
  kxx = np.exp(-gamma * _sq_dists(x, x))
  kyy = np.exp(-gamma * _sq_dists(y, y))
  kxy = np.exp(-gamma * _sq_dists(x, y))
  # The diagonals are exactly 1 (k(x, x) = 1); drop them.
  term_x = (kxx.sum() - m) / (m * (m - 1))
  term_y = (kyy.sum() - n) / (n * (n - 1))
  return float(term_x + term_y - 2.0 * kxy.mean())


# ----------------------------------------------------------------------------------------------
# Marginals and associations.


def total_variation(p: Any, q: Any) -> float:
  """1/2 sum |p/sum(p) - q/sum(q)| for two non-negative histograms over the same bins."""
  p = np.asarray(p, np.float64)
  q = np.asarray(q, np.float64)
  if p.ndim != 1 or p.shape != q.shape:
    raise ValueError(f"Histograms must be 1-D of the same length, got {p.shape} and {q.shape}.")
  if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
    raise ValueError("Histograms must be non-negative with a positive total.")
  return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


def categorical_tv(a: Any, b: Any, num_categories: int) -> float:
  """Total-variation distance between the frequencies of category indices in a and b."""
  a = _validation.as_labels(a, "a", num_classes=num_categories)
  b = _validation.as_labels(b, "b", num_classes=num_categories)
  return total_variation(
    np.bincount(a, minlength=num_categories), np.bincount(b, minlength=num_categories)
  )


def wasserstein_1d(a: Any, b: Any) -> float:
  """W1 between two empirical 1-D distributions: the integral of |F_a - F_b|."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
    raise ValueError(f"Need two non-empty 1-D samples, got {a.shape} and {b.shape}.")
  return float(stats.wasserstein_distance(a, b))


def pearson(a: Any, b: Any) -> float:
  """Pearson's correlation; 0 if either sample is constant."""
  a = np.asarray(a, np.float64) - np.mean(a)
  b = np.asarray(b, np.float64) - np.mean(b)
  denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / denom) if denom > 0 else 0.0


def cramers_v(a: Any, b: Any, num_a: int, num_b: int) -> float:
  """Cramér's V = sqrt(chi2 / (n (min(r, c) - 1))) of the contingency table of a and b.

  r and c count the categories that occur (empty rows and columns are dropped); V = 0 if
  either variable takes a single value. No bias correction.
  """
  a = _validation.as_labels(a, "a", num_classes=num_a)
  b = _validation.as_labels(b, "b", num_classes=num_b)
  table = np.zeros((num_a, num_b))
  np.add.at(table, (a, b), 1.0)
  table = table[table.sum(1) > 0][:, table.sum(0) > 0]
  r, c = table.shape
  if min(r, c) < 2:
    return 0.0
  n = table.sum()
  expected = np.outer(table.sum(1), table.sum(0)) / n
  chi2 = np.sum((table - expected) ** 2 / expected)
  return float(np.sqrt(chi2 / (n * (min(r, c) - 1))))


def correlation_ratio(categories: Any, values: Any, num_categories: int) -> float:
  """eta = sqrt(sum_k n_k (mean_k - mean)^2 / sum_i (v_i - mean)^2); 0 if v is constant."""
  k = _validation.as_labels(categories, "categories", num_classes=num_categories)
  v = np.asarray(values, np.float64)
  if v.shape != k.shape:
    raise ValueError(f"categories and values differ in shape: {k.shape} vs {v.shape}.")
  total = np.sum((v - v.mean()) ** 2)
  if total <= 0:
    return 0.0
  counts = np.bincount(k, minlength=num_categories)
  sums = np.bincount(k, weights=v, minlength=num_categories)
  present = counts > 0
  between = np.sum(counts[present] * (sums[present] / counts[present] - v.mean()) ** 2)
  return float(np.sqrt(min(between / total, 1.0)))


def _width(block) -> int:
  return block.stop - block.start


def _columns(domain: Any, x: np.ndarray):
  """[(block, values)] with numeric values clipped to [0, 1] and categorical argmax indices."""
  out = []
  for block in domain.blocks:
    if block.kind == "numeric":
      out.append((block, np.clip(x[:, block.start], 0.0, 1.0)))
    elif block.kind == "categorical":
      out.append((block, np.argmax(x[:, block.start : block.stop], axis=1)))
    else:
      raise ValueError(f"tabular_fidelity needs a tabular domain; got a {block.kind} block.")
  return out


def _associations(cols) -> Dict[tuple, tuple]:
  out = {}
  for i in range(len(cols)):
    for j in range(i + 1, len(cols)):
      (bi, vi), (bj, vj) = cols[i], cols[j]
      if bi.kind == "numeric" and bj.kind == "numeric":
        out[(bi.name, bj.name)] = ("pearson", pearson(vi, vj))
      elif bi.kind == "categorical" and bj.kind == "categorical":
        out[(bi.name, bj.name)] = ("cramers_v", cramers_v(vi, vj, _width(bi), _width(bj)))
      elif bi.kind == "categorical":
        out[(bi.name, bj.name)] = ("correlation_ratio", correlation_ratio(vi, vj, _width(bi)))
      else:
        out[(bi.name, bj.name)] = ("correlation_ratio", correlation_ratio(vj, vi, _width(bj)))
  return out


def _declared_unit_edges(domain: Any) -> Dict[str, np.ndarray]:
  """{numeric column that declares bins: its bins in [0, 1]} (`NumericColumn.unit_edges`)."""
  return {
    c.name: c.unit_edges()
    for c in getattr(domain, "columns", ())
    if getattr(c, "bins", None) is not None
  }


def _mean_max(values, prefix: str) -> Dict[str, Optional[float]]:
  if not values:
    return {f"{prefix}_mean": None, f"{prefix}_max": None}
  return {f"{prefix}_mean": float(np.mean(values)), f"{prefix}_max": float(np.max(values))}


@_validation.single_threaded
def tabular_fidelity(domain: Any, synthetic: Any, real: Any) -> Dict[str, Optional[float]]:
  """Per-column marginal distances and pairwise association differences, synthetic vs real.

  Args:
    domain: a tabular domain (numeric and categorical blocks only).
    synthetic: records (n_s >= 2, domain.dim).
    real: the real reference records (n_r >= 2, domain.dim).

  Returns:
    Flat dict (None where no column or pair of that type exists):
      "fidelity/tv/<column>" per categorical column (the label included),
      "fidelity/wasserstein/<column>" and "fidelity/binned_tv/<column>" per numeric column,
      "fidelity/tv_mean", "fidelity/tv_max", "fidelity/wasserstein_mean",
      "fidelity/wasserstein_max", "fidelity/binned_tv_mean", "fidelity/binned_tv_max",
      "fidelity/association_diff_mean", "fidelity/association_diff_max" (all pairs),
      "fidelity/pearson_diff_mean", "fidelity/cramers_v_diff_mean",
      "fidelity/correlation_ratio_diff_mean" (per pair type).
  """
  s = _validation.as_matrix(synthetic, "synthetic", dim=domain.dim, min_rows=2)
  r = _validation.as_matrix(real, "real", dim=domain.dim, min_rows=2)
  s_cols, r_cols = _columns(domain, s), _columns(domain, r)
  out: Dict[str, Optional[float]] = {}
  tvs, w1s, binned = [], [], []
  declared = _declared_unit_edges(domain)
  equal = np.linspace(0.0, 1.0, FIDELITY_NUMERIC_BINS + 1)
  for (block, sv), (_, rv) in zip(s_cols, r_cols):
    if block.kind == "numeric":
      w1s.append(wasserstein_1d(sv, rv))
      out[f"fidelity/wasserstein/{block.name}"] = w1s[-1]
      edges = declared.get(block.name, equal)
      binned.append(
        categorical_tv(bins_lib.bin_of(sv, edges), bins_lib.bin_of(rv, edges), len(edges) - 1)
      )
      out[f"fidelity/binned_tv/{block.name}"] = binned[-1]
    else:
      tvs.append(categorical_tv(sv, rv, _width(block)))
      out[f"fidelity/tv/{block.name}"] = tvs[-1]
  out.update(_mean_max(tvs, "fidelity/tv"))
  out.update(_mean_max(w1s, "fidelity/wasserstein"))
  out.update(_mean_max(binned, "fidelity/binned_tv"))
  a_s, a_r = _associations(s_cols), _associations(r_cols)
  diffs = {"pearson": [], "cramers_v": [], "correlation_ratio": []}
  for pair, (kind, value) in a_r.items():
    diffs[kind].append(abs(value - a_s[pair][1]))
  out.update(_mean_max(sum(diffs.values(), []), "fidelity/association_diff"))
  for kind, values in diffs.items():
    out[f"fidelity/{kind}_diff_mean"] = float(np.mean(values)) if values else None
  return out


# ----------------------------------------------------------------------------------------------
# Labels.


def label_balance_tv(synthetic_labels: Any, real_labels: Any, num_classes: int) -> float:
  """Total-variation distance between the label histograms (over all num_classes classes)."""
  return categorical_tv(synthetic_labels, real_labels, num_classes)


def label_agreement(synthetic_labels: Any, predicted_labels: Any) -> float:
  """Fraction of records whose own label equals a real-data classifier's prediction."""
  a = _validation.as_labels(synthetic_labels, "synthetic_labels")
  b = _validation.as_labels(predicted_labels, "predicted_labels")
  if a.shape != b.shape:
    raise ValueError(f"Label arrays differ in shape: {a.shape} vs {b.shape}.")
  return float(np.mean(a == b))
