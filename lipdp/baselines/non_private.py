"""Non-private references: releases with NO privacy guarantee, for calibrating the metrics.

`copy_train` releases the training records themselves: the memorisation extreme. Its utility is
TRTR's and every membership attack should find it; it is where a release that leaks everything
sits on each metric. It has no epsilon: its `BaselineRelease` has private=False and report=None,
never a made-up epsilon; a finite `epsilon` is refused rather than ignored.
"""

import math
from typing import Any, Optional

from lipdp.baselines import base

NAME = "copy_train"


def fit(
  train: Any,
  domain: Any,
  *,
  epsilon: Optional[float] = None,
  delta: Optional[float] = None,
  seed: Optional[int] = None,
) -> base.BaselineRelease:
  """The training records, unchanged (a copy), as a non-private release.

  Args:
    train: the private records (n, domain.dim), in the domain.
    domain: the records' domain.
    epsilon: None or inf (no guarantee). A finite epsilon is refused: accepting a budget would
      suggest a guarantee this release does not have.
    delta: ignored (accepted for the common signature; there is no (epsilon, delta)).
    seed: unused (nothing is random); accepted for the common signature.
  """
  del seed, delta
  if epsilon is not None and not (isinstance(epsilon, (int, float)) and math.isinf(epsilon)):
    raise ValueError(
      f"{NAME} is not differentially private: it has no finite epsilon; pass "
      f"epsilon=None or inf (got {epsilon!r})"
    )
  x = base.check_records(train, domain)
  return base.BaselineRelease(
    NAME, x.copy(), None, False, {"note": "the training records themselves: no privacy"}
  )
