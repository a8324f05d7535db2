"""The accounting of one release: every epsilon a report states, from its inputs alone.

`account(...)` takes the typed events (`lipdp.privacy.events`) and the certified numbers and
returns an `Accounting`: the sensitivity Delta = L D, the per-record epsilon of the release, the
central epsilon of a shuffled release, the DP-SGD component and the headline epsilon. The report
(`report.py`) stores these numbers and recomputes them here to verify itself.

Which epsilon is the headline depends on the scope of the weights (see docs/privacy.md, 8):

* `conditional`: the per-record epsilon of the release. Amplification by shuffling assumes that
  no synthetic record can be linked back to its source record, which a decoder fit on the same
  records without DP may undo; the shuffled figure is therefore reported only as a conditional
  statement (`central_epsilon`), never as the headline.
* `public`: the central epsilon of the shuffled release when the release is shuffled and
  unlinked, else the per-record epsilon.
* `dp-sgd`: DP-SGD training composed with the release by PLD accounting, using the shuffled
  release when it is shuffled (the smaller of the two valid compositions).
* `dp-measurements` (a `CentralRelease`, the baselines): the zCDP composition of the
  mechanism's measurements converted to (epsilon, delta) (`zcdp.zcdp_epsilon`), or, when every
  measurement is pure DP and the noise was fixed in advance, the smaller of that and the basic
  composition of their pure epsilons (which holds even at delta = 0); when every measurement is
  Gaussian and the noise was fixed in advance, the smaller of that and the exact epsilon of the
  Gaussians composed (`gaussian_composition_epsilon`: the analytic Gaussian mechanism of Balle
  and Wang 2018, which the zCDP conversion only bounds). With a `rho_budget` (noise chosen
  adaptively) the budget is the guarantee, and the measurements must fit in it.
"""

import dataclasses
import math
from typing import Optional

from lipdp.privacy import _validation
from lipdp.privacy import composition
from lipdp.privacy import diameters
from lipdp.privacy import events
from lipdp.privacy import lattice as lattice_lib
from lipdp.privacy import gaussian
from lipdp.privacy import heteroscedastic
from lipdp.privacy import shuffle
from lipdp.privacy import zcdp

Scope = events.Scope

# What the headline epsilon is, per case (also written into the report).
HEADLINE_PER_RECORD = "per-record epsilon of the release"
HEADLINE_CENTRAL = "central epsilon of the shuffled release"
HEADLINE_TOTAL = "total epsilon of DP-SGD training composed with the release"
HEADLINE_TOTAL_SHUFFLED = "total epsilon of DP-SGD training composed with the shuffled release"
HEADLINE_WEIGHTS = "epsilon of DP-SGD training (records sampled from the model's prior)"
HEADLINE_PUBLIC_PRIOR = "no private record enters the release (public model sampled from its prior)"
HEADLINE_CENTRAL_ZCDP = (
  "epsilon of the central mechanism: zCDP composition of its "
  "measurements converted to (epsilon, delta)"
)
HEADLINE_CENTRAL_PURE = (
  "epsilon of the central mechanism: pure DP, basic composition of its "
  "measurements (holds at delta = 0 too)"
)
HEADLINE_CENTRAL_GAUSSIAN = (
  "epsilon of the central mechanism: its Gaussian measurements composed exactly, "
  "analytic Gaussian mechanism"
)
# Relative slack for a realised zCDP spend against its budget (float64 sums of the rhos).
RHO_BUDGET_SLACK = 1e-12


@dataclasses.dataclass(frozen=True)
class Accounting:
  """The numbers of one release, all at the report's delta unless stated otherwise.

  Attributes:
    sensitivity: Delta = L * D (None for prior sampling and central releases, which have no
      per-record mechanism).
    per_record_epsilon: one record's k latents, unshuffled (0 for prior sampling; None for a
      central release, which releases nothing per record).
    central_epsilon: the shuffled release alone (None unless amplification is claimed), at
      `shuffle_delta`.
    shuffle_delta: the delta of `central_epsilon` (None when it is None).
    components: epsilon of each component ("release", and "shuffled_release", "dp_sgd" when
      they apply). A central release has "zcdp_rho" (the rho that is the guarantee: the budget,
      or the realised sum), "zcdp_rho_spent" (the realised sum), "zcdp_epsilon" and, when
      every measurement is pure, "pure_epsilon", or, when every measurement is Gaussian with
      noise fixed in advance, "gaussian_epsilon".
    epsilon: the headline epsilon (see the module docstring).
    headline: what `epsilon` is, in words.
  """

  sensitivity: Optional[float]
  per_record_epsilon: Optional[float]
  central_epsilon: Optional[float]
  shuffle_delta: Optional[float]
  components: dict
  epsilon: float
  headline: str


def gaussian_composition_epsilon(measurements, delta: float) -> float:
  """The exact epsilon at `delta` of Gaussian measurements with noise fixed in advance.

  Measurement i adds N(0, sigma_i^2 I) to a query of replace-one l2 sensitivity Delta_i, count_i
  times. Each application's privacy loss against a worst-case pair is that of the 1-D pair
  N(0, 1) vs N(Delta_i / sigma_i, 1), and independent Gaussian pairs compose into one such pair
  with mu^2 = sum_i count_i (Delta_i / sigma_i)^2 (the rotation argument of Balle and Wang 2018;
  Gaussian DP, Dong, Roth and Su 2022, Corollary 3.3), so the composition is exactly one Gaussian
  mechanism of sensitivity mu and unit noise, whose epsilon (BW) is exact
  (`gaussian.gaussian_epsilon`). One group is evaluated as (sigma, Delta, k = count) directly, so
  a mechanism calibrated by `gaussian.calibrate_sigma` recomputes to the same float.
  """
  measurements = tuple(measurements)
  if not measurements or any(m.kind != zcdp.GAUSSIAN for m in measurements):
    raise ValueError("the exact Gaussian composition needs Gaussian measurements only")
  if len(measurements) == 1:
    m = measurements[0]
    return gaussian.gaussian_epsilon(m.scale, m.sensitivity, delta, m.count)
  mu = math.sqrt(math.fsum(m.count * (m.sensitivity / m.scale) ** 2 for m in measurements))
  return gaussian.gaussian_epsilon(1.0, mu, delta)


def claims_shuffling(release: events.ReleaseEvent, shuffled: bool) -> bool:
  """Amplification by shuffling is claimed for a shuffled Gaussian release only."""
  return bool(shuffled) and isinstance(release, events.GaussianRelease)


def _check_lattice_slack(release: events.GaussianRelease, num_records: int, shuffled: bool):
  """A lattice release is the continuous one it is accounted as up to a factor exp(+-a) on
  every output probability, a = 3 eta per coordinate the claim covers (`lipdp.privacy.lattice`);
  the claims below hold to (epsilon + 2a, e^a delta), which is only stated as (epsilon, delta)
  when a is negligible: at most 1e-30 for the whole shuffled multiset."""
  coordinates = release.lattice.dim * release.k * (num_records if shuffled else 1)
  slack = release.lattice.log_ratio_slack(coordinates)
  if not slack <= lattice_lib.MAX_LOG_RATIO_SLACK:
    raise ValueError(
      f"the lattice release's slack {slack:.3g} over {coordinates} coordinates exceeds "
      f"{lattice_lib.MAX_LOG_RATIO_SLACK:g}: raise its smoothing"
    )


def account(
  *,
  release: events.ReleaseEvent,
  lipschitz: float,
  diameter: float,
  delta: float,
  scope,
  num_records: int,
  shuffled: bool = False,
  dpsgd: Optional[events.DPSGDEvent] = None,
  delta_split: float = 0.5,
  value_discretization_interval: float = composition.DEFAULT_VALUE_DISCRETIZATION,
) -> Accounting:
  """All epsilons of a release (see the module docstring).

  Args:
    release: the per-record mechanism (`GaussianRelease` or `HeteroscedasticRelease`), or
      `PriorSampling`, or a `CentralRelease` (scope 'dp-measurements'; lipschitz, diameter and
      dpsgd are then None and shuffled is False).
    lipschitz: the certified Lipschitz bound L of the released encoder mean (> 0).
    diameter: the domain's l2 diameter D (> 0).
    delta: the target delta in (0, 1).
    scope: a `Scope` (or its string value).
    num_records: the number of private records released (each gives k synthetic records).
    shuffled: whether the release is a uniformly shuffled multiset without identifiers.
    dpsgd: the training event; required iff the scope is `dp-sgd`.
    delta_split: share of delta given to the release where delta must be split between the
      release and DP-SGD (a shuffled or heteroscedastic release in the `dp-sgd` scope).
    value_discretization_interval: the PLD grid of the DP-SGD composition.

  Returns:
    An `Accounting`.
  """
  scope = Scope.parse(scope)
  if isinstance(release, events.CentralRelease):
    return _account_central(
      release, lipschitz, diameter, delta, scope, num_records, shuffled, dpsgd
    )
  if scope is Scope.DP_MEASUREMENTS:
    raise ValueError(
      "scope 'dp-measurements' is for central mechanisms (CentralRelease) that "
      "fit no model without DP; a VAE release has scope 'public', 'dp-sgd' or "
      "'conditional'"
    )
  if isinstance(release, events.PriorSampling):
    return _account_prior_sampling(
      release, delta, scope, num_records, dpsgd, value_discretization_interval
    )
  if not isinstance(release, events.PER_RECORD_RELEASES):
    raise ValueError(
      f"release must be a GaussianRelease, HeteroscedasticRelease, "
      f"PriorSampling or CentralRelease, got {release!r}"
    )
  lipschitz = _validation.positive(lipschitz, "lipschitz")
  diameter = _validation.positive(diameter, "diameter")
  delta = _validation.probability_open(delta, "delta")
  num_records = _validation.positive_int(num_records, "num_records")
  delta_split = _validation.probability_open(delta_split, "delta_split")
  if not isinstance(shuffled, bool):
    raise ValueError(f"shuffled must be a bool, got {shuffled!r}")
  if (scope is Scope.DP_SGD) != (dpsgd is not None):
    raise ValueError(
      "a DP-SGD training event is required with scope 'dp-sgd' and only there "
      f"(scope {scope.value!r}, dpsgd {dpsgd!r})"
    )
  if dpsgd is not None and not isinstance(dpsgd, events.DPSGDEvent):
    raise ValueError(f"dpsgd must be a DPSGDEvent, got {dpsgd!r}")
  sens = diameters.sensitivity(lipschitz, diameter)
  k = release.k
  if isinstance(release, events.GaussianRelease) and release.lattice is not None:
    sens = release.sensitivity(sens)  # that of the rounded means
    _check_lattice_slack(release, num_records, shuffled)

  def release_epsilon(at_delta):
    if isinstance(release, events.GaussianRelease):
      return gaussian.gaussian_epsilon(release.sigma, sens, at_delta, k)
    return heteroscedastic.heteroscedastic_epsilon(
      at_delta,
      lipschitz,
      release.lipschitz_log_sigma,
      diameter,
      release.sigma_min,
      release.sigma_max,
      release.latent_dim,
      k,
    ).epsilon

  per_record = release_epsilon(delta)
  components = {"release": per_record}
  central = shuffle_delta = None
  if claims_shuffling(release, shuffled):
    shuffle_delta = delta_split * delta if scope is Scope.DP_SGD else delta
    central = shuffle.shuffled_gaussian_epsilon(
      release.sigma, sens, num_records, shuffle_delta, k
    ).central_epsilon
    components["shuffled_release"] = central

  if scope is Scope.DP_SGD:
    z, q, steps = dpsgd.noise_multiplier, dpsgd.sampling_rate, dpsgd.steps
    components["dp_sgd"] = composition.dpsgd_epsilon(
      z, q, steps, delta, value_discretization_interval
    )
    if central is not None:
      total = shuffle.compose_dpsgd_and_shuffled_release(
        z,
        q,
        steps,
        release.sigma,
        sens,
        num_records,
        delta,
        k,
        delta_split,
        value_discretization_interval,
      ).total_epsilon
      headline = HEADLINE_TOTAL_SHUFFLED
    elif isinstance(release, events.GaussianRelease):
      total = composition.compose_dpsgd_and_release(
        z, q, steps, release.sigma, sens, delta, k, value_discretization_interval
      ).total_epsilon
      headline = HEADLINE_TOTAL
    else:
      release_delta = delta_split * delta
      total = composition.compose_dpsgd_and_dp_mechanism(
        z,
        q,
        steps,
        release_epsilon(release_delta),
        release_delta,
        delta,
        value_discretization_interval,
      )
      headline = HEADLINE_TOTAL
  elif scope is Scope.PUBLIC and central is not None:
    total, headline = central, HEADLINE_CENTRAL
  else:
    # Conditional scope: the shuffled figure, if any, is only a conditional statement.
    total, headline = per_record, HEADLINE_PER_RECORD
  return Accounting(
    sensitivity=sens,
    per_record_epsilon=per_record,
    central_epsilon=central,
    shuffle_delta=shuffle_delta,
    components=components,
    epsilon=total,
    headline=headline,
  )


def _account_prior_sampling(
  release, delta, scope, num_records, dpsgd, value_discretization_interval
) -> Accounting:
  """Prior sampling: no per-record mechanism, the weights' guarantee is all there is."""
  delta = _validation.probability_open(delta, "delta")
  _validation.positive_int(num_records, "num_records")
  if scope is Scope.CONDITIONAL:
    raise ValueError(
      "records sampled from the prior of a model fit without DP have no privacy "
      "guarantee: prior sampling needs scope 'dp-sgd' or 'public'"
    )
  if (scope is Scope.DP_SGD) != (dpsgd is not None):
    raise ValueError("a DP-SGD training event is required with scope 'dp-sgd' and only there")
  if scope is Scope.PUBLIC:
    return Accounting(
      sensitivity=None,
      per_record_epsilon=0.0,
      central_epsilon=None,
      shuffle_delta=None,
      components={"release": 0.0},
      epsilon=0.0,
      headline=HEADLINE_PUBLIC_PRIOR,
    )
  eps = composition.dpsgd_epsilon(
    dpsgd.noise_multiplier, dpsgd.sampling_rate, dpsgd.steps, delta, value_discretization_interval
  )
  return Accounting(
    sensitivity=None,
    per_record_epsilon=0.0,
    central_epsilon=None,
    shuffle_delta=None,
    components={"release": 0.0, "dp_sgd": eps},
    epsilon=eps,
    headline=HEADLINE_WEIGHTS,
  )


def _account_central(
  release, lipschitz, diameter, delta, scope, num_records, shuffled, dpsgd
) -> Accounting:
  """A central mechanism: zCDP composition of its measurements (module docstring)."""
  delta = _validation.probability_open(delta, "delta")
  _validation.positive_int(num_records, "num_records")
  if scope is not Scope.DP_MEASUREMENTS:
    raise ValueError(
      f"a central release reads the private records only through its own "
      f"measurements: its scope is 'dp-measurements', not {scope.value!r}"
    )
  if dpsgd is not None or lipschitz is not None or diameter is not None or shuffled:
    raise ValueError(
      "a central release has no DP-SGD event, no Lipschitz bound, no domain "
      "diameter and no shuffling claim"
    )
  spent = release.rho_spent
  if release.rho_budget is not None:
    if not spent <= release.rho_budget * (1.0 + RHO_BUDGET_SLACK):
      raise ValueError(
        f"the measurements spend rho = {spent!r}, more than the budget "
        f"{release.rho_budget!r} fixed in advance"
      )
    rho = release.rho_budget
  else:
    rho = spent
  eps_zcdp = zcdp.zcdp_epsilon(rho, delta)
  components = {"zcdp_rho": rho, "zcdp_rho_spent": spent, "zcdp_epsilon": eps_zcdp}
  epsilon, headline = eps_zcdp, HEADLINE_CENTRAL_ZCDP
  if release.pure:
    eps_pure = math.fsum(m.pure_epsilon for m in release.measurements)
    components["pure_epsilon"] = eps_pure
    if eps_pure <= eps_zcdp:
      epsilon, headline = eps_pure, HEADLINE_CENTRAL_PURE
  if release.gaussian:
    eps_gauss = gaussian_composition_epsilon(release.measurements, delta)
    components["gaussian_epsilon"] = eps_gauss
    if eps_gauss <= epsilon:
      epsilon, headline = eps_gauss, HEADLINE_CENTRAL_GAUSSIAN
  return Accounting(
    sensitivity=None,
    per_record_epsilon=None,
    central_epsilon=None,
    shuffle_delta=None,
    components=components,
    epsilon=epsilon,
    headline=headline,
  )


def methods_text(release: events.ReleaseEvent, scope, shuffled: bool) -> str:
  """The accounting methods used, in words, with their sources."""
  scope = Scope.parse(scope)
  if isinstance(release, events.CentralRelease):
    kinds = sorted({m.kind for m in release.measurements})
    parts = [
      f"central mechanism {release.mechanism!r}: {len(release.measurements)} groups of "
      f"noisy measurements ({', '.join(kinds)}) with replace-one sensitivities "
      "(a histogram: sqrt(2) in l2, 2 in l1), composed in zCDP (Bun and Steinke 2016; "
      "Gaussian Delta^2/(2 sigma^2), Laplace eps^2/2, exponential mechanism as "
      "eps-bounded-range, eps^2/8, Cesar and Rogers 2021) and converted to "
      "(epsilon, delta) by Canonne, Kamath, Steinke 2020 Prop. 12"
    ]
    if release.rho_budget is not None:
      parts.append(
        "noise chosen adaptively within a zCDP budget fixed in advance (Renyi "
        "filter, Feldman and Zrnic 2021): the budget is the guarantee"
      )
    if release.pure:
      parts.append(
        "all measurements pure DP: basic composition of their pure epsilons is "
        "also valid, and the smaller bound is the headline"
      )
    if release.gaussian:
      parts.append(
        "all measurements Gaussian with noise fixed in advance: they compose exactly into "
        "one Gaussian mechanism (mu^2 = sum (Delta/sigma)^2), whose epsilon is the analytic "
        "Gaussian mechanism's (Balle and Wang 2018), exact and the headline"
      )
    return "; ".join(parts) + "."
  if isinstance(release, events.PriorSampling):
    parts = [
      "release: records decoded from latents drawn from the prior N(0, I), "
      "post-processing of the weights"
    ]
  elif isinstance(release, events.GaussianRelease):
    parts = [
      "per-record release: analytic Gaussian mechanism (Balle and Wang 2018), k latents "
      "composed exactly as sigma / sqrt(k)"
    ]
  else:
    parts = [
      "per-record release: heteroscedastic Gaussian, closed-form Renyi divergence "
      "(Gil, Alajaji, Linder 2013) maximised over admissible pairs, RDP -> DP by "
      "Canonne, Kamath, Steinke 2020 Prop. 12"
    ]
  if claims_shuffling(release, shuffled):
    parts.append(
      "central epsilon: amplification by shuffling (Feldman, McMillan, Talwar "
      "2021), min with the per-record epsilon"
    )
  if scope is Scope.DP_SGD:
    parts.append(
      "DP-SGD: Poisson-sampled Gaussian under replace-one, composed by PLD "
      "accounting (dp_accounting, pessimistic discretisation)"
    )
  return "; ".join(parts) + "."
