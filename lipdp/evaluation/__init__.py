"""lipdp.evaluation: what a synthetic release is worth, and what it leaks.

`evaluate_release(domain, synthetic, train, holdout, seed=..., fast=...)` returns every metric
as a JSON-serialisable dict and `summary_lines(metrics)` a few console lines; the protocol and
each metric's definition are in docs/evaluation.md. The modules:

* `utility`: TSTR / TRTR with the fixed downstream models of `downstream` (and `cnn`);
* `fidelity`: Fréchet distance in classifier features (not FID), MMD, per-column TV and
  Wasserstein distances, association differences, label balance and label agreement;
* `membership`: distances to closest records and membership-inference attacks (`auc` holds the
  AUC and its DeLong interval);
* `figures`: real-versus-synthetic figures.

The metrics are computed from private data and are not differentially private.
"""

from lipdp.evaluation import auc
from lipdp.evaluation import downstream
from lipdp.evaluation import fidelity
from lipdp.evaluation import membership
from lipdp.evaluation import utility
from lipdp.evaluation.evaluate import evaluate_release, summary_lines

__all__ = [
  "auc",
  "downstream",
  "fidelity",
  "membership",
  "utility",
  "evaluate_release",
  "summary_lines",
]
