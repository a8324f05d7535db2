"""Warnings in words about a run's budget and its release, for every method.

`weak_budget_warnings` names an epsilon that protects little and a delta that is not below
1/n, before anything is written; `release_warnings` names a degenerate release (a category or
the label with a single value, or every record near their mean) and numeric columns that look
unlearnt (most of them close to uniform over their declared bounds) from the release alone. They
warn; refusing a budget the mechanism cannot honour is the method's own check
(`lipdp.methods.vae.check_budget`).
"""

import math
from typing import List

import numpy as np

# A headline epsilon above this gets a warning: it bounds how much the odds of any inference
# about a record may change by e^10 > 22,000, i.e. it protects little.
LARGE_EPSILON = 10.0
# A release whose records lie within this fraction of the domain diameter of their mean (RMS)
# is reported as degenerate.
COLLAPSE_FRACTION = 0.05
# A numeric column whose released values are within this Kolmogorov-Smirnov distance of the
# uniform distribution on its declared bounds looks unlearnt when most numeric columns do so.
# On breast cancer under DP-SGD, binned columns that stayed at their uniform start had a median
# distance of 0.05-0.15, learnt Gaussian columns 0.2-0.5, the data's 0.51 (docs/results.md).
UNIFORM_KS_DISTANCE = 0.2


def weak_budget_warnings(epsilon: float, delta: float, num_records: int) -> List[str]:
  """Warnings in words for an epsilon above LARGE_EPSILON or a delta not below 1/n."""
  warnings = []
  if epsilon > LARGE_EPSILON:
    factor = math.exp(min(epsilon, 700.0))
    warnings.append(
      f"epsilon = {epsilon:.4g} lets the odds of any inference about a record "
      f"change by a factor up to e^{epsilon:.3g} = {factor:.2g}: it gives "
      "practically no protection"
    )
  if num_records and delta >= 1.0 / num_records:
    suggestion = 10.0 ** math.floor(math.log10(0.1 / num_records))
    warnings.append(
      f"delta = {delta:g} is not below 1/n = {1.0 / num_records:.2g} (n = "
      f"{num_records:,} private records): publishing one record in full meets delta = 1/n. "
      f"Choose delta well below 1/n (e.g. {suggestion:g})"
    )
  return warnings


def release_warnings(domain, records: np.ndarray, report) -> List[str]:
  """A warning in words when a release is degenerate, naming its epsilon (else empty).

  Degenerate: a categorical column (or the label) with a single value in every synthetic
  record, or all records within COLLAPSE_FRACTION * D (RMS) of their mean. Computed from the
  release only (no private data).
  """
  records = np.asarray(records, np.float64)
  if records.ndim != 2 or records.shape[0] < 2:
    return []
  findings = []
  for block in domain.blocks:
    if block.kind != "categorical":
      continue
    taken = np.unique(np.argmax(records[:, block.start : block.stop], axis=1))
    if len(taken) == 1:
      value = block.categories[int(taken[0])]
      if block.name == domain.label_column or block.name == "label":
        findings.append(f"the label {block.name!r} has a single class ({value!r})")
      else:
        findings.append(f"column {block.name!r} takes a single value ({value!r})")
  spread = float(np.sqrt(np.mean(np.sum((records - records.mean(axis=0)) ** 2, axis=1))))
  if spread < COLLAPSE_FRACTION * domain.diameter:
    findings.append(
      f"all records lie near their mean (RMS distance {spread:.3g}, "
      f"{100 * spread / domain.diameter:.1f}% of the domain diameter)"
    )
  warnings = []
  if findings:
    warnings.append(
      f"the release looks degenerate at epsilon = {report.epsilon:.4g} ({report.headline}, "
      f"delta = {report.delta:g}): " + "; ".join(findings) + f", in all {len(records):,} "
      "synthetic records. At this epsilon each latent carries little about its record; a "
      "larger epsilon, k > 1 or longer training may help"
    )
  uniform, numeric = uniform_numeric_columns(domain, records)
  if len(uniform) >= 2 and 2 * len(uniform) >= len(numeric):
    warnings.append(
      f"{len(uniform)} of the {len(numeric)} numeric columns of the release are close to "
      f"uniform over their declared bounds (Kolmogorov-Smirnov distance below "
      f"{UNIFORM_KS_DISTANCE:g}: {', '.join(repr(n) for n in uniform[:5])}"
      f"{', ...' if len(uniform) > 5 else ''}): the decoder may not have learnt them. Under "
      "DP-SGD with few records, binned numeric columns (under the default likelihood, those "
      "declared integer) can stay at their uniform start; a Gaussian (--numeric-likelihood "
      "gaussian, model.numeric_likelihood='gaussian') learnt them on breast cancer "
      "(docs/results.md)"
    )
  return warnings


def uniform_numeric_columns(domain, records: np.ndarray):
  """(names of the numeric columns whose released values, on [0, 1], are within
  UNIFORM_KS_DISTANCE of uniform in Kolmogorov-Smirnov distance; names of all numeric columns).
  Computed from the release only."""
  records = np.asarray(records, np.float64)
  numeric = [b for b in domain.blocks if b.kind == "numeric"]
  uniform = []
  for block in numeric:
    values = np.sort(np.clip(records[:, block.start], 0.0, 1.0))
    n = len(values)
    above = np.arange(1, n + 1) / n - values
    below = values - np.arange(n) / n
    if max(above.max(), below.max()) < UNIFORM_KS_DISTANCE:
      uniform.append(block.name)
  return uniform, [b.name for b in numeric]
