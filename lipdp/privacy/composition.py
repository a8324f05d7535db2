"""DP-SGD accounting and its composition with the per-record Gaussian release.

Scope `dp-sgd` (docs/method.md): the encoder/decoder are trained with DP-SGD
(Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) and then
every record's latent z = mu(x) + sigma xi is released. Under the replace-one
relation, replacing a record x by x' changes (a) the training run, which is
the DP-SGD mechanism, and (b) that record's own latents, which given the
trained model are a Gaussian mechanism with sensitivity Delta = L D; the
latents of the other records have the same distribution given the model. So the
pipeline is the adaptive composition of the two, and we account it with
privacy loss distributions (PLDs; Koskela, Jälkö, Honkela 2020; Doroshenko,
Ghazi, Kamath, Kumar, Manurangsi 2022 "Connect the dots"), using
`dp_accounting`'s PLD accountant.

One neighbouring relation for everything: replace-one. dp_accounting's
REPLACE_ONE semantics must be read carefully, because it is where a factor 2
hides:

* For `GaussianDpEvent(z)` and `PoissonSampledDpEvent(q, GaussianDpEvent(z))`
  under `NeighboringRelation.REPLACE_ONE`, dp_accounting takes the *per-record
  contribution* to be bounded by 1 and the noise std to be z, and compares the
  replaced record's two contributions at -1 and +1: the pair is
  q N(-1, z^2) + (1 - q) N(0, z^2)  vs  q N(+1, z^2) + (1 - q) N(0, z^2)
  (Poisson sampling includes the replaced slot with probability q; the two
  versions of the record cannot both be present). The distance between the
  means is therefore 2 per-record bounds.
* DP-SGD: per-example gradients are clipped to norm C and the *sum* is noised
  with N(0, (z C)^2 I). Replacing one example moves the clipped sum by at most
  2C (||g - g'|| <= 2C), which is exactly the model above in units of C. So the
  DP-SGD event is `PoissonSampledDpEvent(q, GaussianDpEvent(z))` composed
  `steps` times, with z = noise std / C, under REPLACE_ONE; we let
  dp_accounting do the replace-one analysis of Poisson sampling rather than
  doubling the sensitivity by hand. (Under add/remove the distance would be C;
  using ADD_OR_REMOVE_ONE here would understate epsilon.) The noise must be
  added to the clipped *sum* and the division by the batch size done after
  noising (the jax_privacy "sharp edges" list); the sampler must really be
  Poisson with rate q.
* The per-record release: Delta = L D is a bound on the distance between the
  two means for *any* replaced pair, i.e. 2 per-record bounds in
  dp_accounting's convention. Hence the event is
  `GaussianDpEvent(noise_multiplier = sigma / (Delta / 2) = 2 sigma / Delta)`,
  self-composed k times for k latents (exact: the accountant uses
  std / sqrt(k)). Using `sigma / Delta` here would double-count the
  replacement and overstate epsilon; `tests/privacy` checks that this event
  reproduces the analytic Gaussian epsilon.

Pessimism. The PLD accountant discretises the privacy loss pessimistically
(connect-the-dots, `value_discretization_interval`, default 1e-4), so the
epsilons it returns are upper bounds, typically within ~1e-4 relative of the
exact value; the stand-alone release component is also reported exactly with
`gaussian.gaussian_epsilon`.

Adaptivity. Composition with an adaptively chosen second mechanism needs its
privacy profile fixed in advance: calibrate sigma to the certified L of the
trained model so that sigma / (L D) (and k) is a value fixed before training,
e.g. with `gaussian.calibrate_sigma`. If the ratio is chosen after seeing the
model, the total needs a privacy filter instead.
"""

import dataclasses
import functools
import math

import dp_accounting
from dp_accounting.pld import common as pld_common
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.pld import privacy_loss_distribution as pld_lib

from lipdp.privacy import _validation
from lipdp.privacy import events
from lipdp.privacy import gaussian

# dp_accounting's spelling of lipdp's one relation (see the module docstring for its factor 2).
_RELATION = events.REPLACE_ONE.dp_accounting
DEFAULT_VALUE_DISCRETIZATION = 1e-4
_MIN_NOISE_MULTIPLIER = 0.05


def dpsgd_event(noise_multiplier: float, sampling_rate: float, steps: int) -> dp_accounting.DpEvent:
  """The DP-SGD training run as a dp_accounting event (for REPLACE_ONE).

  Args:
    noise_multiplier: z = (std of the Gaussian noise added to the clipped
      gradient sum) / (clipping norm C), > 0.
    sampling_rate: Poisson sampling probability q in (0, 1].
    steps: number of noisy gradient steps (>= 1).

  Returns:
    SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(z)), steps).
  """
  return events.DPSGDEvent(noise_multiplier, sampling_rate, steps).dp_event()


def _dpsgd_pld(
  noise_multiplier: float,
  sampling_rate: float,
  steps: int,
  value_discretization_interval: float,
  from_identity: bool = True,
) -> pld_lib.PrivacyLossDistribution:
  """DP-SGD's PLD: the Poisson-subsampled Gaussian's PLD self-composed `steps` times.

  With `from_identity`, composed onto the identity PLD first, as dp_accounting's PLD
  accountant does for `dpsgd_event` (pld_privacy_accountant, PoissonSampledDpEvent branch), so
  that the epsilons below equal the accountant's bit for bit
  (tests/privacy/test_privacy_composition.py checks it; composing with the identity moves an
  epsilon by about 1e-12 relative).
  Building this PLD is most of the accounting's cost, and calibration, the shuffled bound and
  the report each need it for the same run, so the last two are kept (a PLD is never mutated:
  compose and get_epsilon_for_delta return new values).
  """
  event = events.DPSGDEvent(noise_multiplier, sampling_rate, steps)  # validated
  vdi = float(value_discretization_interval)  # validated by every caller
  subsampled = _subsampled_gaussian_pld(
    float(event.noise_multiplier), float(event.sampling_rate), int(event.steps), vdi
  )
  if not from_identity:
    return subsampled
  return pld_lib.identity(vdi).compose(subsampled)


# Two: the run being calibrated or reported, and one more. Not more, because a PLD can be large
# (hundreds of MB for a small noise multiplier over many steps, as calibration's search visits).
@functools.lru_cache(maxsize=2)
def _subsampled_gaussian_pld(noise_multiplier, sampling_rate, steps, value_discretization_interval):
  return pld_lib.from_gaussian_mechanism(
    standard_deviation=noise_multiplier,
    value_discretization_interval=value_discretization_interval,
    sampling_prob=sampling_rate,
    neighboring_relation=_RELATION,
  ).self_compose(steps)


def clear_pld_cache() -> None:
  """Forget the kept DP-SGD PLDs (benchmarks time the accounting cold; memory)."""
  _subsampled_gaussian_pld.cache_clear()


def _release_pld(
  sigma: float, sensitivity: float, k: int, value_discretization_interval: float
) -> pld_lib.PrivacyLossDistribution:
  """The PLD of `gaussian_release_event(sigma, sensitivity, k)`, as the accountant builds it
  (GaussianDpEvent branch: noise multiplier 2 sigma / Delta over sqrt(k))."""
  event = gaussian_release_event(sigma, sensitivity, k)
  return pld_lib.from_gaussian_mechanism(
    standard_deviation=event.event.noise_multiplier / math.sqrt(event.count),
    value_discretization_interval=value_discretization_interval,
    neighboring_relation=_RELATION,
  )


def gaussian_release_event(sigma: float, sensitivity: float, k: int = 1) -> dp_accounting.DpEvent:
  """The per-record Gaussian release as a dp_accounting event (for REPLACE_ONE).

  `sensitivity` is the replace-one distance Delta between the two means, which
  is 2 per-record bounds in dp_accounting's REPLACE_ONE convention (module
  docstring), hence noise_multiplier = 2 sigma / Delta.

  Args:
    sigma: noise std (> 0).
    sensitivity: Delta = L D (> 0).
    k: latents per record (>= 1).

  Returns:
    SelfComposedDpEvent(GaussianDpEvent(2 sigma / Delta), k).
  """
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.positive(sensitivity, "sensitivity")
  k = _validation.positive_int(k, "k")
  return dp_accounting.SelfComposedDpEvent(
    dp_accounting.GaussianDpEvent(2.0 * sigma / sensitivity), k
  )


def pld_epsilon(
  event: dp_accounting.DpEvent,
  delta: float,
  value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION,
) -> float:
  """epsilon of a dp_accounting event under replace-one, by PLD accounting.

  Args:
    event: any event the PLD accountant supports.
    delta: target delta in (0, 1).
    value_discretization_interval: PLD grid (pessimistic rounding).

  Returns:
    An upper bound on epsilon at `delta`.
  """
  delta = _validation.probability_open(delta, "delta")
  value_discretization_interval = _validation.positive(
    value_discretization_interval, "value_discretization_interval"
  )
  accountant = pld_privacy_accountant.PLDAccountant(
    _RELATION, value_discretization_interval=value_discretization_interval
  )
  accountant.compose(event)
  return float(accountant.get_epsilon(delta))


def dpsgd_epsilon(
  noise_multiplier: float,
  sampling_rate: float,
  steps: int,
  delta: float,
  value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION,
) -> float:
  """epsilon of DP-SGD alone (Poisson-sampled Gaussian, replace-one, PLD).

  Args:
    noise_multiplier: z = noise std / clipping norm (> 0).
    sampling_rate: Poisson rate q in (0, 1].
    steps: number of steps (>= 1).
    delta: target delta in (0, 1).
    value_discretization_interval: PLD grid.

  Returns:
    An upper bound on epsilon (PLD, pessimistic discretisation).
  """
  delta = _validation.probability_open(delta, "delta")
  value_discretization_interval = _validation.positive(
    value_discretization_interval, "value_discretization_interval"
  )
  training = _dpsgd_pld(noise_multiplier, sampling_rate, steps, value_discretization_interval)
  return float(training.get_epsilon_for_delta(delta))


def dpsgd_noise_multiplier(
  target_epsilon: float,
  sampling_rate: float,
  steps: int,
  delta: float,
  value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION,
  tol: float = 1e-4,
) -> float:
  """Smallest noise multiplier z giving DP-SGD epsilon <= target (replace-one).

  Uses `dp_accounting.calibrate_dp_mechanism` (Brent's method on the PLD
  epsilon), which guarantees that the returned z meets the target.

  Args:
    target_epsilon: the epsilon budget for training (> 0).
    sampling_rate: Poisson rate q in (0, 1].
    steps: number of steps (>= 1).
    delta: target delta in (0, 1).
    value_discretization_interval: PLD grid.
    tol: tolerance on z.

  Returns:
    The noise multiplier z.
  """
  target_epsilon = _validation.positive(target_epsilon, "target_epsilon")
  sampling_rate = _validation.probability_half_open(sampling_rate, "sampling_rate")
  steps = _validation.positive_int(steps, "steps")
  delta = _validation.probability_open(delta, "delta")
  tol = _validation.positive(tol, "tol")
  value_discretization_interval = _validation.positive(
    value_discretization_interval, "value_discretization_interval"
  )

  def make_accountant():
    return pld_privacy_accountant.PLDAccountant(
      _RELATION, value_discretization_interval=value_discretization_interval
    )

  def make_event(z):
    return dpsgd_event(z, sampling_rate, steps)

  def eps_at(z):
    return make_accountant().compose(make_event(z)).get_epsilon(delta)

  # Bracket by doubling / halving from z = 1. Very small z makes the privacy
  # loss range (and the PLD) huge, so the search stops at _MIN_NOISE_MULTIPLIER.
  low, high = 1.0, 1.0
  if eps_at(1.0) > target_epsilon:
    while eps_at(high) > target_epsilon:
      low, high = high, 2.0 * high
  else:
    while eps_at(low) <= target_epsilon:
      if low <= _MIN_NOISE_MULTIPLIER:
        raise ValueError(
          f"target_epsilon={target_epsilon} is met by every noise_multiplier >= "
          f"{_MIN_NOISE_MULTIPLIER}; choose a smaller target."
        )
      low, high = max(low / 2.0, _MIN_NOISE_MULTIPLIER), low
  bracket = dp_accounting.ExplicitBracketInterval(low, high)
  return float(
    dp_accounting.calibrate_dp_mechanism(
      make_accountant, make_event, target_epsilon, delta, bracket_interval=bracket, tol=tol
    )
  )


@dataclasses.dataclass(frozen=True)
class CompositionResult:
  """epsilons of the dp-sgd pipeline at one delta, all under replace-one.

  Attributes:
    dpsgd_epsilon: DP-SGD alone (PLD).
    release_epsilon: the per-record Gaussian release alone (exact, Balle-Wang).
    total_epsilon: both composed (PLD; <= dpsgd_epsilon + release_epsilon).
    delta: the delta all three epsilons are stated at.
    neighboring_relation: the relation, in words.
  """

  dpsgd_epsilon: float
  release_epsilon: float
  total_epsilon: float
  delta: float
  neighboring_relation: str = events.REPLACE_ONE.statement


def compose_dpsgd_and_release(
  noise_multiplier: float,
  sampling_rate: float,
  steps: int,
  sigma: float,
  sensitivity: float,
  delta: float,
  k: int = 1,
  value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION,
) -> CompositionResult:
  """DP-SGD training composed with the per-record Gaussian release (PLD).

  Args:
    noise_multiplier: DP-SGD z (> 0).
    sampling_rate: DP-SGD Poisson rate q in (0, 1].
    steps: DP-SGD steps (>= 1).
    sigma: release noise std (> 0).
    sensitivity: release sensitivity Delta = L D (> 0).
    delta: target delta in (0, 1) (each component and the total at this delta).
    k: latents per record (>= 1).
    value_discretization_interval: PLD grid.

  Returns:
    A `CompositionResult`.
  """
  delta = _validation.probability_open(delta, "delta")
  value_discretization_interval = _validation.positive(
    value_discretization_interval, "value_discretization_interval"
  )
  # What the accountant computes for ComposedDpEvent([dpsgd_event, gaussian_release_event]),
  # with DP-SGD's PLD built once for both epsilons.
  release = _release_pld(sigma, sensitivity, k, value_discretization_interval)  # checks first
  training = _dpsgd_pld(noise_multiplier, sampling_rate, steps, value_discretization_interval)
  return CompositionResult(
    dpsgd_epsilon=float(training.get_epsilon_for_delta(delta)),
    release_epsilon=gaussian.gaussian_epsilon(sigma, sensitivity, delta, k),
    total_epsilon=float(training.compose(release).get_epsilon_for_delta(delta)),
    delta=delta,
  )


def compose_dpsgd_and_dp_mechanism(
  noise_multiplier: float,
  sampling_rate: float,
  steps: int,
  epsilon: float,
  mechanism_delta: float,
  delta: float,
  value_discretization_interval: float = DEFAULT_VALUE_DISCRETIZATION,
) -> float:
  """DP-SGD composed with an arbitrary (epsilon, mechanism_delta)-DP mechanism.

  Any (eps, delta')-DP mechanism is a post-processing of the four-output
  randomized response with those parameters (Kairouz, Oh, Viswanath 2015), whose
  PLD is dp_accounting's `from_privacy_parameters` (privacy loss +inf with
  probability delta', +-eps otherwise). Composing that PLD with DP-SGD's gives
  a valid bound when all we know about the second mechanism is an
  (eps, delta') pair, e.g. a shuffled release (`shuffle.py`).

  Args:
    noise_multiplier: DP-SGD z (> 0).
    sampling_rate: DP-SGD Poisson rate q in (0, 1].
    steps: DP-SGD steps (>= 1).
    epsilon: epsilon of the second mechanism (>= 0).
    mechanism_delta: delta of the second mechanism, in (0, delta).
    delta: total target delta in (0, 1).
    value_discretization_interval: PLD grid.

  Returns:
    An upper bound on the total epsilon at `delta`.
  """
  epsilon = _validation.nonnegative(epsilon, "epsilon")
  mechanism_delta = _validation.probability_open(mechanism_delta, "mechanism_delta")
  delta = _validation.probability_open(delta, "delta")
  if mechanism_delta >= delta:
    raise ValueError(
      f"mechanism_delta ({mechanism_delta}) must be < delta ({delta}): the composition "
      "cannot have a smaller delta than one of its parts."
    )
  value_discretization_interval = _validation.positive(
    value_discretization_interval, "value_discretization_interval"
  )
  # The accountant has no event for a bare (eps, delta) guarantee, so the two PLDs are
  # composed directly.
  training_pld = _dpsgd_pld(
    noise_multiplier, sampling_rate, steps, value_discretization_interval, from_identity=False
  )
  release_pld = pld_lib.from_privacy_parameters(
    pld_common.DifferentialPrivacyParameters(epsilon, mechanism_delta),
    value_discretization_interval=value_discretization_interval,
  )
  return float(training_pld.compose(release_pld).get_epsilon_for_delta(delta))
