"""Empirical privacy audit: a statistical lower bound on epsilon.

If M is (eps, delta)-DP, then for neighbours x0, x1 and every event S,
    P[M(x1) in S] <= e^eps P[M(x0) in S] + delta,
and the same with x0 and x1 swapped. So any test S with true-positive rate
TPR = P[M(x1) in S] and false-positive rate FPR = P[M(x0) in S] certifies
    eps >= log((TPR - delta) / FPR).
We run the mechanism many times on a worst-case pair, reduce each output to a
scalar statistic (by default the projection on the direction between the two
empirical means), consider threshold tests S = {stat > t} and S = {stat <= t}
in both orders of the pair, and turn the counts into a one-sided confidence
bound with exact Clopper-Pearson intervals: TPR_lb (lower bound) and FPR_ub
(upper bound), each at level 1 - (1 - confidence)/2, so that by a union bound
eps_lb = log((TPR_lb - delta) / FPR_ub) holds with probability >= confidence.

Multiple testing. Searching the threshold on the same samples that are then
used for the confidence interval would overstate eps_lb (a maximum over many
thresholds of noisy estimates). We split the runs: the first half (per
neighbour) picks the direction, the threshold and the orientation of the
test, the second half - independent of that choice - evaluates the one chosen
test. The bound is therefore honest at the stated level.

DP libraries have shipped sensitivities off by a factor (PrivBayes
implementations, JAM in private-pgm) and noise calibrated to a sum but added to
a mean; this audit catches that class of bug: a mechanism whose noise was
calibrated to the wrong sensitivity shows a lower bound above its claimed
epsilon. An audit can only falsify a claim; a lower
bound below the claim proves nothing about the claim being right.
"""

import dataclasses
import math
from typing import Callable, Optional

import numpy as np
from scipy import stats

from lipdp.privacy import _validation

Mechanism = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


def clopper_pearson_lower(successes: int, trials: int, level: float) -> float:
  """One-sided lower confidence bound on a binomial rate (exact), level `level`."""
  if successes <= 0:
    return 0.0
  return float(stats.beta.ppf(1.0 - level, successes, trials - successes + 1))


def clopper_pearson_upper(successes: int, trials: int, level: float) -> float:
  """One-sided upper confidence bound on a binomial rate (exact), level `level`."""
  if successes >= trials:
    return 1.0
  return float(stats.beta.ppf(level, successes + 1, trials - successes))


def _epsilon_from_rates(tpr_lb: float, fpr_ub: float, delta: float) -> float:
  if tpr_lb - delta <= 0.0 or fpr_ub <= 0.0:
    return 0.0
  return max(0.0, math.log((tpr_lb - delta) / fpr_ub))


@dataclasses.dataclass(frozen=True)
class AuditResult:
  """Outcome of `audit_mechanism`.

  Attributes:
    epsilon_lower_bound: eps_lb, valid with probability >= `confidence`.
    claimed_epsilon: the epsilon under test (None if not given).
    delta: the delta of the claim.
    confidence: the confidence level of the bound.
    threshold: the chosen threshold on the statistic.
    test: "greater" (S = {stat > t}) or "less_equal" (S = {stat <= t}).
    positive: which neighbour S is meant to detect ("x0" or "x1").
    tpr_lower: Clopper-Pearson lower bound on P[M(positive) in S].
    fpr_upper: Clopper-Pearson upper bound on P[M(other) in S].
    num_samples: runs per neighbour (half used to choose, half to evaluate).
  """

  epsilon_lower_bound: float
  claimed_epsilon: Optional[float]
  delta: float
  confidence: float
  threshold: float
  test: str
  positive: str
  tpr_lower: float
  fpr_upper: float
  num_samples: int

  @property
  def violates_claim(self) -> bool:
    """True when the audit refutes the claim (eps_lb > claimed epsilon)."""
    return self.claimed_epsilon is not None and self.epsilon_lower_bound > self.claimed_epsilon


def _flatten(samples: np.ndarray, num: int) -> np.ndarray:
  samples = np.asarray(samples, dtype=np.float64)
  if samples.shape[0] != num:
    raise ValueError(f"mechanism returned {samples.shape[0]} samples, expected {num}.")
  return samples.reshape(num, -1)


def _candidate_thresholds(values: np.ndarray, num_candidates: int) -> np.ndarray:
  """Quantiles of the pooled statistic, denser in both tails (where eps lives)."""
  u = np.linspace(0.0, 1.0, num_candidates)
  tails = np.concatenate(
    [
      np.geomspace(1.0 / values.size, 0.5, num_candidates // 2),
      1.0 - np.geomspace(1.0 / values.size, 0.5, num_candidates // 2),
    ]
  )
  qs = np.unique(np.clip(np.concatenate([u, tails]), 0.0, 1.0))
  return np.unique(np.quantile(values, qs))


def _counts_above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="right")


def _choose_test(
  stat0: np.ndarray, stat1: np.ndarray, delta: float, level: float, num_candidates: int
):
  """Best (threshold, test, positive) on the selection half, by its own CP bound."""
  n0, n1 = stat0.size, stat1.size
  s0, s1 = np.sort(stat0), np.sort(stat1)
  thresholds = _candidate_thresholds(np.concatenate([stat0, stat1]), num_candidates)
  above0 = _counts_above(s0, thresholds)
  above1 = _counts_above(s1, thresholds)
  best = (-1.0, None)
  options = (
    # (test, positive, counts of positives in S, n_pos, counts of negatives in S, n_neg)
    ("greater", "x1", above1, n1, above0, n0),
    ("greater", "x0", above0, n0, above1, n1),
    ("less_equal", "x0", n0 - above0, n0, n1 - above1, n1),
    ("less_equal", "x1", n1 - above1, n1, n0 - above0, n0),
  )
  for test, positive, pos_counts, n_pos, neg_counts, n_neg in options:
    tpr_lb = stats.beta.ppf(1.0 - level, np.maximum(pos_counts, 1), n_pos - pos_counts + 1)
    tpr_lb = np.where(pos_counts > 0, tpr_lb, 0.0)
    fpr_ub = np.where(
      neg_counts < n_neg,
      stats.beta.ppf(level, neg_counts + 1, np.maximum(n_neg - neg_counts, 1)),
      1.0,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
      eps = np.where(
        tpr_lb - delta > 0, np.log(np.maximum(tpr_lb - delta, 1e-300) / fpr_ub), -np.inf
      )
    i = int(np.argmax(eps))
    if eps[i] > best[0]:
      best = (float(eps[i]), (float(thresholds[i]), test, positive))
  if best[1] is None:
    return float(np.median(np.concatenate([stat0, stat1]))), "greater", "x1"
  return best[1]


def audit_mechanism(
  mechanism: Mechanism,
  x0,
  x1,
  delta: float,
  claimed_epsilon: Optional[float] = None,
  num_samples: int = 1_000_000,
  confidence: float = 0.95,
  seed: Optional[int] = None,
  statistic: Optional[Callable[[np.ndarray], np.ndarray]] = None,
  num_candidates: int = 400,
) -> AuditResult:
  """Clopper-Pearson lower bound on epsilon from runs on a neighbouring pair.

  Args:
    mechanism: `mechanism(x, rng, n)` returns n independent outputs (first
      axis n) of the mechanism on input x, using the numpy Generator rng.
    x0: one input of the worst-case pair (e.g. the record whose mean is
      mu(x0)); passed to `mechanism` unchanged.
    x1: the other input.
    delta: the delta of the claim, in (0, 1).
    claimed_epsilon: the epsilon the mechanism claims (for `violates_claim`).
    num_samples: runs per neighbour (>= 1e5 recommended; at least 200).
    confidence: confidence level of the lower bound, in (0, 1).
    seed: seed of the audit's own Generator (the audit is not a release, so a
      seed here is harmless; None draws from OS entropy).
    statistic: maps the (n, ...) outputs to n scalars; default: projection on
      the difference of the empirical means of the selection half.
    num_candidates: thresholds tried on the selection half.

  Returns:
    An `AuditResult`.
  """
  delta = _validation.probability_open(delta, "delta")
  confidence = _validation.probability_open(confidence, "confidence")
  num_samples = _validation.positive_int(num_samples, "num_samples")
  if num_samples < 200:
    raise ValueError(f"num_samples must be >= 200 for a meaningful audit, got {num_samples}.")
  num_candidates = _validation.positive_int(num_candidates, "num_candidates")
  if claimed_epsilon is not None:
    claimed_epsilon = _validation.nonnegative(claimed_epsilon, "claimed_epsilon")
  rng = np.random.default_rng(seed)
  out0 = _flatten(mechanism(x0, rng, num_samples), num_samples)
  out1 = _flatten(mechanism(x1, rng, num_samples), num_samples)
  half = num_samples // 2
  sel0, eval0 = out0[:half], out0[half:]
  sel1, eval1 = out1[:half], out1[half:]

  if statistic is None:
    direction = sel1.mean(axis=0) - sel0.mean(axis=0)
    norm = np.linalg.norm(direction)
    direction = direction / norm if norm > 0 else np.ones_like(direction)

    def statistic_fn(outputs):
      return outputs @ direction
  else:

    def statistic_fn(outputs):
      values = np.asarray(statistic(outputs), dtype=np.float64).reshape(-1)
      if values.size != outputs.shape[0]:
        raise ValueError("statistic must return one scalar per output.")
      return values

  # Selection: its own one-sided bounds (same level) rank the candidate tests.
  level = 1.0 - (1.0 - confidence) / 2.0
  threshold, test, positive = _choose_test(
    statistic_fn(sel0), statistic_fn(sel1), delta, level, num_candidates
  )

  # Evaluation on the held-out half: one test, one pair of one-sided bounds.
  stat0, stat1 = statistic_fn(eval0), statistic_fn(eval1)
  if test == "greater":
    in0, in1 = int(np.sum(stat0 > threshold)), int(np.sum(stat1 > threshold))
  else:
    in0, in1 = int(np.sum(stat0 <= threshold)), int(np.sum(stat1 <= threshold))
  if positive == "x1":
    pos, n_pos, neg, n_neg = in1, stat1.size, in0, stat0.size
  else:
    pos, n_pos, neg, n_neg = in0, stat0.size, in1, stat1.size
  tpr_lb = clopper_pearson_lower(pos, n_pos, level)
  fpr_ub = clopper_pearson_upper(neg, n_neg, level)
  return AuditResult(
    epsilon_lower_bound=_epsilon_from_rates(tpr_lb, fpr_ub, delta),
    claimed_epsilon=claimed_epsilon,
    delta=delta,
    confidence=confidence,
    threshold=threshold,
    test=test,
    positive=positive,
    tpr_lower=tpr_lb,
    fpr_upper=fpr_ub,
    num_samples=num_samples,
  )


def gaussian_mechanism(
  mean_fn: Callable[[np.ndarray], np.ndarray], sigma: float, k: int = 1
) -> Mechanism:
  """A numpy Gaussian release z = mean_fn(x) + sigma xi, k latents per record.

  Returns a `mechanism(x, rng, n)` whose outputs have shape (n, k, d): n
  independent releases of the k latents of record x.
  """
  sigma = _validation.positive(sigma, "sigma")
  k = _validation.positive_int(k, "k")

  def mechanism(x, rng, n):
    mean = np.atleast_1d(np.asarray(mean_fn(np.asarray(x)), dtype=np.float64))
    return mean[None, None, :] + sigma * rng.standard_normal((n, k, mean.size))

  return mechanism
