"""Non-private references: releases with NO privacy guarantee, for calibrating the metrics.

`copy_train` releases the training records themselves: the memorisation extreme. Its utility is
TRTR's and every membership attack should find it; it is where a release that leaks everything
sits on each metric. It has no epsilon: its `BaselineRelease` has private=False and report=None,
never a made-up epsilon, and `epsilon` and `delta` are refused rather than ignored.
"""

from typing import Any, Optional

from lipdp.baselines import base

NAME = "copy_train"


def fit(train: Any, domain: Any, *, epsilon: Optional[float] = None,
        delta: Optional[float] = None, seed: Optional[int] = None) -> base.BaselineRelease:
  """The training records, unchanged (a copy), as a non-private release.

  Args:
    train: the private records (n, domain.dim), in the domain.
    domain: the records' domain.
    epsilon, delta: must be None: this release has no privacy guarantee, and accepting a budget
      would suggest one. (The sweep passes None for non-private methods.)
    seed: unused (nothing is random); accepted for the common signature.
  """
  del seed
  if epsilon is not None or delta is not None:
    raise ValueError(f"{NAME} is not differentially private: it has no (epsilon, delta); "
                     f"pass epsilon=None, delta=None (got {epsilon!r}, {delta!r})")
  x = base.check_records(train, domain)
  return base.BaselineRelease(NAME, x.copy(), None, False,
                              {"note": "the training records themselves: no privacy"})
