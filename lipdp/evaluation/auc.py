"""ROC AUC of an attack score and its DeLong confidence interval.

For scores X_1..X_m of positives (members) and Y_1..Y_n of negatives (non-members), the AUC is
the Mann-Whitney statistic

    AUC = (1 / (m n)) sum_i sum_j psi(X_i, Y_j),   psi(x, y) = 1 if x > y, 1/2 if x = y, else 0,

the probability that a random member scores above a random non-member (ties count one half).
0.5 means the score carries no membership signal; 1 means it separates members perfectly.

Variance (DeLong, DeLong and Clarke-Pearson 1988): with the placement values
V10_i = (1/n) sum_j psi(X_i, Y_j) and V01_j = (1/m) sum_i psi(X_i, Y_j),

    Var(AUC) ~ S10 / m + S01 / n,   S10 = sample variance of V10, S01 = of V01 (ddof 1),

computed in O((m + n) log(m + n)) from mid-ranks (Sun and Xu 2014). The two-sided interval is
AUC +/- z_{1 - (1 - level)/2} sqrt(Var), clipped to [0, 1]. It is asymptotic: at AUC = 0 or 1
the estimated variance is 0 and the interval degenerates to a point, and with a few dozen
scores per class its coverage is approximate. (Hanley and McNeil 1982 give a variance from the
AUC alone under an exponential model; DeLong's is distribution-free, hence preferred here.)
"""

from typing import Any, Dict, Tuple

import numpy as np
from scipy import stats

__all__ = ["roc_auc", "delong_variance", "auc_confidence_interval", "auc_with_ci"]


def _scores(x: Any, name: str, min_size: int) -> np.ndarray:
  arr = np.asarray(x, dtype=np.float64)
  if arr.ndim != 1:
    raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
  if arr.shape[0] < min_size:
    raise ValueError(f"{name} needs at least {min_size} score(s), got {arr.shape[0]}.")
  if np.isnan(arr).any():
    raise ValueError(f"{name} contains NaN.")
  return arr


def _placements(pos: np.ndarray, neg: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(V10, V01) from mid-ranks: ranks in the pooled sample minus ranks within each class."""
  m, n = pos.shape[0], neg.shape[0]
  pooled = stats.rankdata(np.concatenate([pos, neg]))  # mid-ranks: ties share the mean rank
  v10 = (pooled[:m] - stats.rankdata(pos)) / n
  v01 = 1.0 - (pooled[m:] - stats.rankdata(neg)) / m
  return v10, v01


def roc_auc(positive_scores: Any, negative_scores: Any) -> float:
  """The Mann-Whitney AUC (ties count 1/2); higher scores should mean 'positive'."""
  pos = _scores(positive_scores, "positive_scores", 1)
  neg = _scores(negative_scores, "negative_scores", 1)
  return float(np.mean(_placements(pos, neg)[0]))


def delong_variance(positive_scores: Any, negative_scores: Any) -> float:
  """DeLong's estimate S10 / m + S01 / n of Var(AUC) (needs m, n >= 2)."""
  pos = _scores(positive_scores, "positive_scores", 2)
  neg = _scores(negative_scores, "negative_scores", 2)
  v10, v01 = _placements(pos, neg)
  return float(np.var(v10, ddof=1) / pos.shape[0] + np.var(v01, ddof=1) / neg.shape[0])


def auc_confidence_interval(
  positive_scores: Any, negative_scores: Any, level: float = 0.95
) -> Tuple[float, float, float]:
  """(AUC, lower, upper): the DeLong normal interval at `level`, clipped to [0, 1]."""
  if not 0.0 < level < 1.0:
    raise ValueError(f"level must lie in (0, 1), got {level}.")
  auc = roc_auc(positive_scores, negative_scores)
  se = np.sqrt(delong_variance(positive_scores, negative_scores))
  z = float(stats.norm.ppf(1.0 - (1.0 - level) / 2.0))
  return auc, float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))


def auc_with_ci(positive_scores: Any, negative_scores: Any, level: float = 0.95) -> Dict[str, Any]:
  """{"auc": float, "ci": [lower, upper], "level": level} (JSON-serialisable)."""
  auc, lo, hi = auc_confidence_interval(positive_scores, negative_scores, level)
  return {"auc": auc, "ci": [lo, hi], "level": float(level)}
