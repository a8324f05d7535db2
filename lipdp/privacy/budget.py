"""A privacy budget fixed before training: the release's noise ratio and DP-SGD's noise.

Everything here is decided before the model sees the data, as adaptive composition needs
(`composition`): the per-record release enters through its noise ratio sigma / Delta (all that
matters, by scale invariance; `lipdp.latent_release` recalibrates sigma on the certified L so the
ratio holds exactly), and DP-SGD through its noise multiplier, sampling rate and steps.

Modes (`plan_budget`):

* **Per-record target** (every scope): the release's own epsilon is `epsilon`; with
  `calibration='shuffled'` it is the central epsilon of the shuffled release (Feldman, McMillan
  and Talwar 2021; `shuffle.calibrate_sigma_shuffled`), which is only claimed where the weights
  are covered (`public`, `dp-sgd`). In scope `dp-sgd` DP-SGD's noise multiplier is given and the
  total follows.
* **One total epsilon** (scope `dp-sgd`): `total_epsilon` is split. The release gets
  `release_share * total_epsilon` as its own epsilon (per-record, or central when shuffled);
  then DP-SGD's noise multiplier is the smallest (to a relative 1e-3) for which the PLD
  composition of training and release meets `total_epsilon` at `delta`. Because composition is
  sub-additive, DP-SGD alone ends up with more than `(1 - release_share) * total_epsilon`. With
  prior sampling (no per-record release) all of it goes to DP-SGD. Targets that cannot be met
  (a release share that leaves nothing, or a DP-SGD that would need a noise multiplier above
  `MAX_NOISE_MULTIPLIER`) are refused before any training.
"""

import dataclasses
import functools
import math
from typing import Optional

from lipdp.privacy import _validation
from lipdp.privacy import composition
from lipdp.privacy import events
from lipdp.privacy import gaussian
from lipdp.privacy import shuffle

Scope = events.Scope
CALIBRATIONS = ("per-record", "shuffled")
MAX_NOISE_MULTIPLIER = 200.0
_COARSE_VDI = 1e-3  # bracketing grid: a coarser PLD discretisation is still an upper bound
_MIN_NOISE_MULTIPLIER = 0.05  # the search's floor (smaller z make the PLD grid enormous)


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
  """The noise levels fixed before training.

  Attributes:
    noise_ratio: sigma / Delta of the per-record release (None for prior sampling).
    release_epsilon: the release's own target epsilon (per-record or central; None for prior
      sampling).
    calibration: 'per-record' or 'shuffled' (what `release_epsilon` is).
    dpsgd_noise_multiplier: DP-SGD's z (scope 'dp-sgd'), else None.
    total_epsilon: the epsilon the plan gives for the whole pipeline at `delta`, as the report
      will recompute it (headline of the scope): for 'dp-sgd' the composition, else the
      release's own epsilon.
    delta: the delta of every number.
  """

  noise_ratio: Optional[float]
  release_epsilon: Optional[float]
  calibration: str
  dpsgd_noise_multiplier: Optional[float]
  total_epsilon: float
  delta: float


def release_noise_ratio(
  epsilon: float, delta: float, num_records: int, k: int = 1, calibration: str = "per-record"
) -> float:
  """sigma / Delta for a release whose own epsilon is `epsilon` at `delta`."""
  if calibration == "per-record":
    return gaussian.calibrate_sigma(epsilon, delta, 1.0, k)
  if calibration == "shuffled":
    return shuffle.calibrate_sigma_shuffled(epsilon, delta, 1.0, num_records, k)
  raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")


def _composed_total(
  z, q, steps, ratio, num_records, k, delta, shuffled, delta_split, vdi, central=None
):
  """The total the report will compute (`accounting.account`) for these events.

  For a shuffled release this is `shuffle.compose_dpsgd_and_shuffled_release`: the smaller of
  DP-SGD composed with the shuffled release's (central epsilon, delta_split * delta) and with
  the unshuffled Gaussian. `central` (which does not depend on z) may be passed precomputed.
  """
  if ratio is None:
    return composition.dpsgd_epsilon(z, q, steps, delta, vdi)
  plain = composition.compose_dpsgd_and_release(
    z, q, steps, ratio, 1.0, delta, k, vdi
  ).total_epsilon
  if not shuffled:
    return plain
  if central is None:
    central = _shuffled_central(ratio, num_records, k, delta, delta_split)
  return min(
    plain,
    composition.compose_dpsgd_and_dp_mechanism(
      z, q, steps, central, delta_split * delta, delta, vdi
    ),
  )


def _shuffled_central(ratio, num_records, k, delta, delta_split):
  return shuffle.shuffled_gaussian_epsilon(
    ratio, 1.0, num_records, delta_split * delta, k
  ).central_epsilon


# The search costs seconds of PLD compositions and is a pure function of its arguments: a
# process that plans the same budget again (a sweep's points, a test and the run it checks)
# reuses the answer.
@functools.lru_cache(maxsize=256)
def calibrate_dpsgd_noise(
  total_epsilon: float,
  *,
  sampling_rate: float,
  steps: int,
  delta: float,
  noise_ratio: Optional[float],
  num_records: int,
  k: int = 1,
  shuffled: bool = False,
  delta_split: float = 0.5,
  value_discretization_interval: float = composition.DEFAULT_VALUE_DISCRETIZATION,
  rtol: float = 1e-3,
) -> float:
  """The smallest DP-SGD z (to `rtol`) whose composition with the release meets the total.

  Returns z such that total(z) <= total_epsilon and total(z / (1 + rtol)) > total_epsilon, with
  total the composition on the report's PLD grid (what the report will recompute); the total
  decreases as z grows, so no z below z / (1 + rtol) meets the target either.

  Two bisections on log z: the first on a coarse PLD grid (cheap; its epsilon is an upper
  bound, so its z meets the target but may be larger than needed), the second on the report's
  grid, from the coarse z down to a bracket found by widening steps. The search is
  deterministic (the same inputs give the same z).

  Raises:
    ValueError: if even z = MAX_NOISE_MULTIPLIER does not meet the target.
  """
  total_epsilon = _validation.positive(total_epsilon, "total_epsilon")

  central = (
    _shuffled_central(noise_ratio, num_records, k, delta, delta_split)
    if shuffled and noise_ratio is not None
    else None
  )

  def total(z, vdi):
    return _composed_total(
      z,
      sampling_rate,
      steps,
      noise_ratio,
      num_records,
      k,
      delta,
      shuffled,
      delta_split,
      vdi,
      central,
    )

  if total(MAX_NOISE_MULTIPLIER, value_discretization_interval) > total_epsilon:
    raise ValueError(
      f"total_epsilon={total_epsilon:g} cannot be met: with {steps} DP-SGD steps at sampling "
      f"rate {sampling_rate:g}, even noise multiplier {MAX_NOISE_MULTIPLIER:g} leaves the "
      "composition above it; lower the release share, the steps or the sampling rate"
    )

  def meets(z, vdi):
    try:
      return total(z, vdi) <= total_epsilon
    except (ValueError, OverflowError, MemoryError):
      return False  # a tiny z makes the PLD huge: treat as not meeting the target

  def bisect(low, high, vdi):
    """Invariant: meets(high), not meets(low); stops when high / low <= 1 + rtol."""
    while high / low > 1 + rtol:
      mid = math.sqrt(low * high)
      low, high = (low, mid) if meets(mid, vdi) else (mid, high)
    return high

  # The floor _MIN_NOISE_MULTIPLIER is taken as not meeting the target, never evaluated (its
  # PLD would be enormous); no z below it is returned.
  vdi = value_discretization_interval
  coarse = bisect(_MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER, _COARSE_VDI)
  # On the report's grid: an upper bracket at or above the coarse z (the coarse grid's epsilon
  # is an upper bound, so this loop rarely runs), then a lower one, by steps that widen.
  high, step = coarse, 1 + rtol
  while not meets(high, vdi):
    high, step = min(high * step, MAX_NOISE_MULTIPLIER), step**2
  low, step = high / (1 + rtol), 1 + rtol
  while low > _MIN_NOISE_MULTIPLIER and meets(low, vdi):
    high, low, step = low, max(low / step, _MIN_NOISE_MULTIPLIER), step**2
  return float(bisect(low, high, vdi))


def plan_budget(
  *,
  scope,
  delta: float,
  num_records: int,
  k: int = 1,
  epsilon: Optional[float] = None,
  total_epsilon: Optional[float] = None,
  release_share: float = 0.5,
  calibration: str = "per-record",
  shuffled: Optional[bool] = None,
  prior_sampling: bool = False,
  dpsgd_sampling_rate: Optional[float] = None,
  dpsgd_steps: Optional[int] = None,
  dpsgd_noise_multiplier: Optional[float] = None,
  delta_split: float = 0.5,
  value_discretization_interval: float = composition.DEFAULT_VALUE_DISCRETIZATION,
) -> BudgetPlan:
  """Fixes the noise of the release and of DP-SGD before training (module docstring).

  Args:
    scope: the scope of the weights.
    delta: the target delta.
    num_records: the number of private records (shuffled together when shuffled).
    k: latents per record.
    epsilon: the release's own target (per-record, or central with calibration 'shuffled');
      required unless `total_epsilon` is given or `prior_sampling`.
    total_epsilon: scope 'dp-sgd' only: one end-to-end target, split with `release_share`.
    release_share: in (0, 1): the release's own epsilon is release_share * total_epsilon.
    calibration: 'per-record' or 'shuffled'.
    shuffled: whether the release is declared shuffled (the report then composes DP-SGD with
      the shuffled release); default: calibration == 'shuffled'.
    prior_sampling: no per-record release (records decoded from the prior).
    dpsgd_sampling_rate, dpsgd_steps: DP-SGD's sampling (scope 'dp-sgd').
    dpsgd_noise_multiplier: DP-SGD's z when no `total_epsilon` is given (scope 'dp-sgd').
    delta_split: share of delta given to a shuffled release composed with DP-SGD.
    value_discretization_interval: the PLD grid, as in the report.
  """
  scope = Scope.parse(scope)
  delta = _validation.probability_open(delta, "delta")
  num_records = _validation.positive_int(num_records, "num_records")
  k = _validation.positive_int(k, "k")
  if calibration not in CALIBRATIONS:
    raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
  if calibration == "shuffled" and scope is Scope.CONDITIONAL:
    raise ValueError(
      "calibration='shuffled' targets the central epsilon of the shuffled release, which is "
      "claimed only where the weights are covered (scope 'public' or 'dp-sgd'): in the "
      "conditional scope a decoder fit without DP may link synthetic records to their sources"
    )
  if calibration == "shuffled" and prior_sampling:
    raise ValueError("prior sampling has no per-record release to shuffle")
  shuffled = (calibration == "shuffled") if shuffled is None else bool(shuffled)
  if calibration == "shuffled" and not shuffled:
    raise ValueError("calibration='shuffled' needs a release declared shuffled")
  shuffled = shuffled and not prior_sampling
  if total_epsilon is not None and scope is not Scope.DP_SGD:
    raise ValueError(
      "total_epsilon splits one budget between DP-SGD and the release: it "
      f"needs scope 'dp-sgd', not {scope.value!r} (use epsilon)"
    )
  if prior_sampling and scope is Scope.CONDITIONAL:
    raise ValueError(
      "records sampled from the prior of a model fit without DP have no privacy "
      "guarantee: prior sampling needs scope 'dp-sgd' or 'public'"
    )
  # Shuffled releases composed with DP-SGD state their central epsilon at a share of delta.
  release_delta = (
    delta_split * delta if (scope is Scope.DP_SGD and calibration == "shuffled") else delta
  )

  if total_epsilon is not None:
    total_epsilon = _validation.positive(total_epsilon, "total_epsilon")
    release_share = _validation.probability_open(release_share, "release_share")
    epsilon = None if prior_sampling else release_share * total_epsilon
  elif not prior_sampling:
    if epsilon is None:
      raise ValueError("give epsilon (the release's own target) or total_epsilon")
    epsilon = _validation.positive(epsilon, "epsilon")
  ratio = (
    None
    if prior_sampling
    else release_noise_ratio(epsilon, release_delta, num_records, k, calibration)
  )

  if scope is not Scope.DP_SGD:
    if scope is Scope.PUBLIC and prior_sampling:
      return BudgetPlan(None, None, calibration, None, 0.0, delta)
    if scope is Scope.PUBLIC and shuffled and calibration == "per-record":
      # The report's headline is then the central epsilon of the shuffled release.
      central = shuffle.shuffled_gaussian_epsilon(ratio, 1.0, num_records, delta, k).central_epsilon
      return BudgetPlan(ratio, epsilon, calibration, None, central, delta)
    return BudgetPlan(ratio, epsilon, calibration, None, epsilon, delta)

  if dpsgd_sampling_rate is None or dpsgd_steps is None:
    raise ValueError("scope 'dp-sgd' needs dpsgd_sampling_rate and dpsgd_steps")
  q = _validation.probability_half_open(dpsgd_sampling_rate, "dpsgd_sampling_rate")
  steps = _validation.positive_int(dpsgd_steps, "dpsgd_steps")
  if total_epsilon is not None:
    z = calibrate_dpsgd_noise(
      total_epsilon,
      sampling_rate=q,
      steps=steps,
      delta=delta,
      noise_ratio=ratio,
      num_records=num_records,
      k=k,
      shuffled=shuffled,
      delta_split=delta_split,
      value_discretization_interval=value_discretization_interval,
    )
  else:
    if dpsgd_noise_multiplier is None:
      raise ValueError("scope 'dp-sgd' needs dpsgd_noise_multiplier or total_epsilon")
    z = _validation.positive(dpsgd_noise_multiplier, "dpsgd_noise_multiplier")
  planned = _composed_total(
    z, q, steps, ratio, num_records, k, delta, shuffled, delta_split, value_discretization_interval
  )
  return BudgetPlan(ratio, epsilon, calibration, z, planned, delta)
