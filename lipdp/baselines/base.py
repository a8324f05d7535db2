"""What every baseline returns, and the checks every `fit` makes on its inputs.

Every baseline module has one entry point with the same signature,

    fit(train, domain, *, epsilon, delta, seed, **options) -> BaselineRelease

where `train` holds the private records (n, domain.dim), already in the domain (as
`lipdp.data.load_dataset` returns them), and the release's records lie in the same domain, so
`lipdp.evaluation.evaluate_release(domain, release.records, train, holdout)` applies directly.
"""

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

import numpy as np

from lipdp import privacy
from lipdp import randomness


@dataclasses.dataclass(frozen=True)
class BaselineRelease:
  """The synthetic records of one baseline and what they are worth privately.

  Attributes:
    method: the baseline's name (a key of `lipdp.baselines.BASELINES`).
    records: float32 (n_synthetic, domain.dim) synthetic records in the domain.
    report: the `lipdp.privacy.PrivacyReport` of a differentially private baseline, whose
      `verify()` recomputes its epsilon from its own numbers; None for a non-private reference.
    private: whether the release has any privacy guarantee. False for the non-private
      references ("copy the training set"): they carry no report and no epsilon, never a
      made-up one.
    info: what the mechanism chose (e.g. MST's selected pairs, the partition depth): functions
      of the released measurements or of public settings only, so they are as private as the
      release itself; and wall-clock timings (DP-MERF's `embed_s`, `train_s`), which, like every
      run's timings, are not covered by the guarantee (a timing side channel is outside the
      model: docs/privacy.md).
  """

  method: str
  records: np.ndarray
  report: Optional[privacy.PrivacyReport]
  private: bool
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.private != (self.report is not None):
      raise ValueError(
        "a private release carries a PrivacyReport and a non-private one none "
        f"(private={self.private}, report={self.report is not None})"
      )
    records = np.asarray(self.records)
    if records.ndim != 2 or not np.all(np.isfinite(records)):
      raise ValueError(f"records must be a finite 2-D array, got shape {records.shape}")
    object.__setattr__(self, "records", records.astype(np.float32, copy=False))

  @property
  def epsilon(self) -> Optional[float]:
    """The report's headline epsilon, or None without a guarantee."""
    return None if self.report is None else self.report.epsilon


def check_records(train: Any, domain: Any) -> np.ndarray:
  """The training records as float64 (n, dim), refusing records outside the domain.

  A record is in a tabular domain when projecting it changes nothing (numeric coordinates in
  [0, 1], each categorical block one-hot).
  """
  x = np.asarray(train, dtype=np.float64)
  if x.ndim != 2 or x.shape[1] != domain.dim:
    raise ValueError(f"train must have shape (n, {domain.dim}), got {x.shape}")
  if x.shape[0] < 2:
    raise ValueError(f"train needs at least 2 records, got {x.shape[0]}")
  if not np.all(np.isfinite(x)):
    raise ValueError("train holds non-finite values")
  if not np.array_equal(domain.project(x), x.astype(np.float32)):
    raise ValueError(
      "train holds records outside the domain (encode them with the domain, "
      "e.g. through lipdp.data.load_dataset)"
    )
  return x


def check_budget(epsilon: float, delta: float, method: str) -> None:
  """Clear errors for a budget no mechanism can meet."""
  if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)):
    raise ValueError(f"{method}: epsilon must be a number, got {epsilon!r}")
  if not (math.isfinite(epsilon) and epsilon > 0):
    raise ValueError(f"{method}: epsilon must be positive and finite, got {epsilon!r}")
  if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)):
    raise ValueError(f"{method}: delta must be a number, got {delta!r}")
  if not 0 < delta < 1:
    raise ValueError(
      f"{method}: delta must be in (0, 1), got {delta!r} (the report states "
      "every epsilon at a delta in (0, 1); a pure-DP mechanism says that its "
      "epsilon also holds at delta = 0)"
    )


def noise_rng(seed: Optional[int]) -> np.random.Generator:
  """The generator of a mechanism's privacy noise.

  Args:
    seed: None (the default) draws a secret seed from the operating system's entropy, so the
      noise is secret and comes from AES-CTR (`lipdp.randomness`); an integer makes the noise
      reproducible, and so not private against whoever knows it (the report then says so:
      `noise_seeded`).
  """
  if seed is None:
    return randomness.numpy_rng(randomness.fresh_seed())
  # A user's seed, as for the VAE path (in [0, 2**128)); PCG64, so seeded rows reproduce.
  return np.random.default_rng(randomness.check_user_seed(seed))


def post_processing_rng(noise: np.random.Generator, seed: Optional[int]) -> np.random.Generator:
  """The generator of a mechanism's post-processing (sampling records from what it released).

  Its draws appear in the released records, so when the noise is secret (`seed` None) it gets
  a secret seed of its own from the operating system: no record is an output of the noise's
  generator (which, secret, is a cryptographic one as well). A seeded run derives it from the
  noise generator, so that the seed reproduces the whole run.
  """
  if seed is None:
    return randomness.numpy_rng(randomness.fresh_seed())
  return np.random.default_rng(noise.integers(2**63))


def table_description(domain: Any, bins: Optional[Dict[str, Any]] = None) -> str:
  """Plain words for the report's `domain` field."""
  parts = []
  for block in domain.blocks:
    if block.kind == "numeric":
      k = None if bins is None else len(bins[block.name]) - 1
      parts.append(
        f"{block.name} (numeric in declared bounds"
        + ("" if k is None else f", {k} declared bins")
        + ")"
      )
    else:
      parts.append(f"{block.name} ({len(block.categories)} declared categories)")
  return "table of " + ", ".join(parts)


def central_report(
  event: Any,
  *,
  domain: str,
  domain_description: Dict[str, Any],
  delta: float,
  num_records: int,
  seed: Optional[int],
  notes: Tuple[str, ...],
  extra_versions: Optional[Dict[str, str]] = None,
) -> privacy.PrivacyReport:
  """The report of a central baseline: scope dp-measurements, no Lipschitz bound or diameter.

  `event` is the baseline's `privacy.CentralRelease`; `domain_description` the release's
  `domain.describe()` (its digest ties the report to the release's domain.json); `notes` end
  with the method's own line (its target and how the budget was spent).
  """
  return privacy.make_report(
    event,
    lipschitz=None,
    diameter=None,
    domain=domain,
    domain_description=domain_description,
    delta=delta,
    scope=privacy.Scope.DP_MEASUREMENTS,
    num_records=num_records,
    noise_seeded=seed is not None,
    extra_versions=extra_versions,
    notes=tuple(notes),
  )


def check_spent(report: privacy.PrivacyReport, epsilon: float, method: str) -> None:
  """The report verifies, and its epsilon does not exceed the target (calibration check)."""
  report.verify()
  if not report.epsilon <= epsilon * (1.0 + 1e-9):
    raise AssertionError(
      f"{method}: the report's epsilon {report.epsilon!r} exceeds the target {epsilon!r}"
    )
