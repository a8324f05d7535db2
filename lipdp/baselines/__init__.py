"""lipdp.baselines: the neighbouring methods, run in lipdp's own harness (docs/baselines.md).

Every module has one entry point with the same signature,

    fit(train, domain, *, epsilon, delta, seed, **options) -> BaselineRelease

`train` holds the private records (n, domain.dim) in the domain (`lipdp.data.load_dataset`),
and `release.records` lie in the same domain, so `lipdp.evaluation.evaluate_release(domain,
release.records, train, holdout)` applies directly. A private baseline's `release.report` is a
`lipdp.privacy.PrivacyReport` in scope 'dp-measurements' whose `verify()` recomputes its epsilon
from the measurements it lists, under lipdp's replace-one relation; a non-private reference has
private=False and no report.

  mst              MST (McKenna, Miklau, Sheldon 2021) on mbi: zCDP, (epsilon, delta)
  aim              AIM (McKenna, Mullins, Sheldon, Miklau 2022) on mbi: zCDP, (epsilon, delta)
  private_measure  private measure on a binary partition (He, Vershynin, Zhu 2023): pure DP,
                   2-4 numeric columns
  dp_merf          DP-MERF (Harder, Adamczewski, Park 2021): one Gaussian release of a random-
                   feature mean embedding, a generator fit to it; images and tables, (epsilon,
                   delta) by the analytic Gaussian mechanism
  copy_train       the training records themselves: NO privacy (the memorisation extreme)

MST and AIM need the optional mbi package (`pip install 'lipdp[baselines]'`); it is imported
only when they run.
"""

from lipdp.baselines import _pgm
from lipdp.baselines import aim
from lipdp.baselines import dp_merf
from lipdp.baselines import mst
from lipdp.baselines import non_private
from lipdp.baselines import private_measure
from lipdp.baselines.base import BaselineRelease
from lipdp.baselines.discretize import bins_from_schema

BASELINES = {
  mst.NAME: mst.fit,
  aim.NAME: aim.fit,
  private_measure.NAME: private_measure.fit,
  dp_merf.NAME: dp_merf.fit,
  non_private.NAME: non_private.fit,
}
# The baselines with a differential-privacy guarantee (the others have none).
PRIVATE_BASELINES = (mst.NAME, aim.NAME, private_measure.NAME, dp_merf.NAME)
# The baselines that need the optional mbi package.
NEEDS_MBI = (mst.NAME, aim.NAME)

__all__ = ["BASELINES", "BaselineRelease", "NEEDS_MBI", "PRIVATE_BASELINES", "bins_from_schema"]


def check_available(method: str) -> None:
  """Raises ImportError (saying what to install) if `method` needs mbi and it is missing."""
  if method in NEEDS_MBI:
    _pgm.import_mbi()
