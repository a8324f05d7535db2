"""What a privacy claim is made of: the neighbouring relation, the scope of the weights, events.

One type per idea, used everywhere in lipdp (training, synthesis, the report, the accounting):

* `NeighboringRelation`: the only relation lipdp uses, replace-one (bounded DP).
* `Scope`: what the model weights' privacy is (`public`, `dp-sgd`, `conditional`; and
  `dp-measurements` for central mechanisms that fit no model without DP), with the
  plain-words statement every report carries. The statement is derived from the scope, never
  stored as free text, so a report cannot claim one scope and state another.
* One frozen, validated event per mechanism:
  - `GaussianRelease(sigma, k, lattice)`: each record releases k latents mu(x) + sigma xi
    (float64 noise), or their exact discrete counterpart on a lattice
    (`lipdp.privacy.lattice`);
  - `HeteroscedasticRelease(sigma_min, sigma_max, lipschitz_log_sigma, latent_dim, k)`: the
    same with a learned, bounded sigma(x) whose log is certified L_s-Lipschitz;
  - `DPSGDEvent(noise_multiplier, sampling_rate, steps)`: the training run (Abadi et al. 2016)
    with Poisson sampling at rate q and Gaussian noise z C on the sum of gradients clipped to C;
  - `PriorSampling(num_samples)`: no per-record release; records decoded from the prior, so
    only the weights' guarantee applies (the DP-SGD VAE baseline).
  - `CentralRelease(mechanism, measurements, num_samples, rho_budget)`: a central mechanism
    (the baselines MST, AIM, the private measure, DP-MERF) that reads the private records only
    through a list of `NoisyMeasurement`s (Gaussian or Laplace noisy queries, exponential-
    mechanism selections), accounted in zCDP (`lipdp.privacy.zcdp`), or exactly when they are
    all Gaussian; scope `dp-measurements`.

Events are plain data (`as_dict` / `from_dict` for JSON); the numbers they imply are computed in
`lipdp.privacy.accounting`.
"""

import dataclasses
import enum
import math
from typing import Any, Mapping, Optional, Tuple, Union

import dp_accounting

from lipdp.privacy import _validation
from lipdp.privacy import lattice as lattice_lib
from lipdp.privacy import zcdp


class NeighboringRelation(str, enum.Enum):
  """Neighbouring datasets. lipdp states and accounts every guarantee under replace-one."""

  REPLACE_ONE = "replace-one"

  @property
  def statement(self) -> str:
    return (
      "replace-one (bounded DP): two datasets are neighbours when they have the same number "
      "of records and differ by replacing one record with any other record of the declared "
      "domain"
    )

  @property
  def dp_accounting(self) -> dp_accounting.NeighboringRelation:
    """The same relation in dp_accounting's terms (see `composition` for its factor 2)."""
    return dp_accounting.NeighboringRelation.REPLACE_ONE


REPLACE_ONE = NeighboringRelation.REPLACE_ONE


class Scope(str, enum.Enum):
  """What the privacy guarantee says about the model weights."""

  PUBLIC = "public"
  DP_SGD = "dp-sgd"
  CONDITIONAL = "conditional"
  # Central mechanisms (the baselines): no model is fit on the private records without DP.
  DP_MEASUREMENTS = "dp-measurements"

  @property
  def covers_weights(self) -> bool:
    """Whether the guarantee covers the weights' dependence on the private records."""
    return self is not Scope.CONDITIONAL

  @property
  def statement(self) -> str:
    return _SCOPE_STATEMENTS[self]

  @classmethod
  def parse(cls, value: Union[str, "Scope"]) -> "Scope":
    try:
      return cls(value)
    except ValueError:
      raise ValueError(f"scope must be one of {[s.value for s in cls]}, got {value!r}.") from None


_SCOPE_STATEMENTS = {
  Scope.PUBLIC: (
    "The encoder and decoder were trained on data that is independent of the private "
    "records (public data). The epsilon covers the private records in full."
  ),
  Scope.DP_SGD: (
    "The encoder and decoder were trained on the private records with DP-SGD. The "
    "epsilon covers the training run composed by PLD accounting, under the same "
    "replace-one relation, with the per-record release if there is one: it covers both "
    "the weights and the released records."
  ),
  Scope.CONDITIONAL: (
    "The encoder and decoder were trained on the private records WITHOUT differential "
    "privacy. The epsilon covers only the noise added to each record's latent given the "
    "trained model: the model's own dependence on the private records is NOT covered by "
    "this guarantee, and nothing here bounds what the model weights, or synthetic data "
    "shaped by the decoder, reveal about the private records (for example to a "
    "membership-inference attack)."
  ),
  Scope.DP_MEASUREMENTS: (
    "No model was fit on the private records without differential privacy: the private "
    "records enter the release only through the mechanism's own noisy measurements and "
    "selections, listed in the release event. Every model estimated from those "
    "measurements, and every synthetic record, is post-processing. The epsilon covers "
    "everything released."
  ),
}


def _check_keys(data: Mapping[str, Any], names, what: str) -> None:
  _validation.known_keys(data, names, what)


@dataclasses.dataclass(frozen=True)
class GaussianRelease:
  """Each record releases k latents mu(x) + sigma xi_j, xi_j ~ N(0, I) (homoscedastic).

  Attributes:
    sigma: the release noise std (> 0).
    k: latents per record (>= 1); they compose exactly to one Gaussian of std sigma / sqrt(k).
    lattice: None for float64 noise; else the exact discrete Gaussian release on a lattice
      (`lipdp.privacy.lattice`), accounted as this continuous release with sigma its
      `accounted_sigma()` (which sigma must then equal) and the sensitivity its
      `rounded_sensitivity`.
  """

  sigma: float
  k: int = 1
  lattice: Optional[lattice_lib.LatticeNoise] = None

  type_name = "gaussian"

  def __post_init__(self):
    object.__setattr__(self, "sigma", _validation.positive(self.sigma, "sigma"))
    object.__setattr__(self, "k", _validation.positive_int(self.k, "k"))
    if self.lattice is not None:
      lattice = self.lattice
      if not isinstance(lattice, lattice_lib.LatticeNoise):
        lattice = lattice_lib.LatticeNoise.from_dict(lattice)
      object.__setattr__(self, "lattice", lattice)
      if self.sigma != lattice.accounted_sigma():
        raise ValueError(
          f"a lattice release is accounted with sigma = its accounted_sigma() "
          f"{lattice.accounted_sigma()!r}, got {self.sigma!r}"
        )

  def sensitivity(self, exact_sensitivity: float) -> float:
    """The sensitivity the release is accounted with when the means' is `exact_sensitivity`
    (L D): that of the rounded means for a lattice release."""
    if self.lattice is None:
      return exact_sensitivity
    return self.lattice.rounded_sensitivity(exact_sensitivity)

  def as_dict(self) -> dict:
    out = {"type": self.type_name, "sigma": self.sigma, "k": self.k}
    if self.lattice is not None:  # absent from float64 releases, as before lattices existed
      out["lattice"] = self.lattice.as_dict()
    return out


@dataclasses.dataclass(frozen=True)
class HeteroscedasticRelease:
  """Each record releases k latents mu(x) + sigma(x) xi_j with a learned, bounded sigma(x).

  Attributes:
    sigma_min, sigma_max: the clamp of sigma(x) (0 < sigma_min <= sigma_max).
    lipschitz_log_sigma: the bound L_s used for log sigma(x) (>= 0): certified from the weights
      of the released map, and fixed before training in the `dp-sgd` scope.
    latent_dim: latent dimension d (>= 1).
    k: latents per record (>= 1).
  """

  sigma_min: float
  sigma_max: float
  lipschitz_log_sigma: float
  latent_dim: int
  k: int = 1

  type_name = "heteroscedastic_gaussian"

  def __post_init__(self):
    sigma_min = _validation.positive(self.sigma_min, "sigma_min")
    sigma_max = _validation.positive(self.sigma_max, "sigma_max")
    if sigma_max < sigma_min:
      raise ValueError(f"sigma_max ({sigma_max}) must be >= sigma_min ({sigma_min}).")
    object.__setattr__(self, "sigma_min", sigma_min)
    object.__setattr__(self, "sigma_max", sigma_max)
    object.__setattr__(
      self,
      "lipschitz_log_sigma",
      _validation.nonnegative(self.lipschitz_log_sigma, "lipschitz_log_sigma"),
    )
    object.__setattr__(self, "latent_dim", _validation.positive_int(self.latent_dim, "latent_dim"))
    object.__setattr__(self, "k", _validation.positive_int(self.k, "k"))

  def as_dict(self) -> dict:
    return {
      "type": self.type_name,
      "sigma_min": self.sigma_min,
      "sigma_max": self.sigma_max,
      "lipschitz_log_sigma": self.lipschitz_log_sigma,
      "latent_dim": self.latent_dim,
      "k": self.k,
    }


@dataclasses.dataclass(frozen=True)
class PriorSampling:
  """The synthetic records are decoded from latents drawn from the prior N(0, I).

  No per-record mechanism: a private record influences the release only through the model
  weights, so the guarantee is the weights' own (scope `dp-sgd`, or `public`). This is the
  DP-SGD VAE baseline (e.g. Pfitzner and Arnrich's DPD-fVAE line), accounted in the same format.

  Attributes:
    num_samples: the number of synthetic records sampled (>= 1).
  """

  num_samples: int

  type_name = "prior_sampling"
  k = 1

  def __post_init__(self):
    object.__setattr__(
      self, "num_samples", _validation.positive_int(self.num_samples, "num_samples")
    )

  def as_dict(self) -> dict:
    return {"type": self.type_name, "num_samples": self.num_samples}


# What a noisy histogram query must declare at least, under replace-one (zcdp module docstring).
HISTOGRAM_MIN_SENSITIVITY = {zcdp.GAUSSIAN: math.sqrt(2.0), zcdp.LAPLACE: 2.0}
QUERIES = ("histogram", "score", "mean_embedding")


@dataclasses.dataclass(frozen=True)
class NoisyMeasurement:
  """`count` applications of one basic DP primitive to the private records (replace-one).

  Attributes:
    kind: 'gaussian' (noise N(0, scale^2) per coordinate), 'laplace' (Lap(scale) per
      coordinate) or 'exponential' (an exponential-mechanism selection with probabilities
      proportional to exp(score / scale)).
    scale: sigma, the Laplace scale b, or the temperature T (> 0).
    sensitivity: the replace-one sensitivity of the query: l2 for 'gaussian', l1 for 'laplace',
      the largest change of any outcome's score for 'exponential' (> 0).
    count: how many such applications (>= 1), composed.
    query: 'histogram' (counts of records per cell of a partition: one replaced record moves
      one count down and one up, so the sensitivity must be at least sqrt(2) in l2 and 2 in l1,
      which is checked), 'score' (the quality scores of an exponential mechanism) or
      'mean_embedding' (the mean over the n records of a bounded feature map of each record, as
      DP-MERF releases; its replace-one sensitivity is derived by the mechanism,
      `lipdp.baselines.dp_merf`).
  """

  kind: str
  scale: float
  sensitivity: float
  count: int = 1
  query: str = "histogram"

  def __post_init__(self):
    if self.kind not in zcdp.KINDS:
      raise ValueError(f"kind must be one of {zcdp.KINDS}, got {self.kind!r}")
    if self.query not in QUERIES:
      raise ValueError(f"query must be one of {QUERIES}, got {self.query!r}")
    if (self.kind == zcdp.EXPONENTIAL) != (self.query == "score"):
      raise ValueError(
        "an exponential-mechanism selection has query 'score', and only it "
        f"(kind {self.kind!r}, query {self.query!r})"
      )
    object.__setattr__(self, "scale", _validation.positive(self.scale, "scale"))
    object.__setattr__(self, "sensitivity", _validation.positive(self.sensitivity, "sensitivity"))
    object.__setattr__(self, "count", _validation.positive_int(self.count, "count"))
    floor = HISTOGRAM_MIN_SENSITIVITY.get(self.kind) if self.query == "histogram" else None
    if floor is not None and self.sensitivity < floor * (1 - 1e-12):
      raise ValueError(
        f"a {self.kind} histogram query has replace-one sensitivity at least {floor:.6g} "
        f"(one record moves one count down and one up), got {self.sensitivity}; the "
        "add/remove value is not lipdp's relation"
      )

  @property
  def rho(self) -> float:
    """zCDP rho of all `count` applications."""
    return self.count * zcdp.primitive_rho(self.kind, self.scale, self.sensitivity)

  @property
  def pure_epsilon(self) -> float:
    """Pure epsilon of all `count` applications (basic composition; inf for Gaussians)."""
    return self.count * zcdp.primitive_pure_epsilon(self.kind, self.scale, self.sensitivity)

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "NoisyMeasurement":
    if not isinstance(data, Mapping):
      raise ValueError(f"a measurement must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    _check_keys(data, names, "NoisyMeasurement")
    return cls(**{n: data[n] for n in names if n in data})


@dataclasses.dataclass(frozen=True)
class CentralRelease:
  """A central mechanism that reads the private records only through noisy measurements.

  The baselines of `lipdp.baselines` (MST, AIM, the private measure, DP-MERF). The mechanism
  computes the listed measurements of the whole private data set (histograms with Gaussian or
  Laplace noise, exponential-mechanism selections, a noisy mean embedding); everything else it
  does (estimating a graphical model, enforcing consistency, training a generator, sampling the
  synthetic records) is post-processing. There is no per-record mechanism, hence no Lipschitz
  bound, domain diameter or per-record epsilon.

  Accounting (`lipdp.privacy.accounting`): the measurements compose in zCDP, rho = sum of their
  rho (`zcdp` module), converted to (epsilon, delta) by Canonne, Kamath and Steinke 2020;
  when every measurement is pure (Laplace, exponential), basic composition of their pure
  epsilons is a second valid bound, and the smaller one is the headline; when every measurement
  is Gaussian with noise fixed in advance (DP-MERF), the Gaussians compose exactly into one
  Gaussian mechanism, whose analytic epsilon (Balle and Wang 2018) is never above the zCDP bound
  and is the headline.

  Attributes:
    mechanism: the mechanism's name, e.g. 'mst', 'aim', 'private_measure', 'dp_merf'.
    measurements: the `NoisyMeasurement`s it made, in order.
    num_samples: the number of synthetic records released.
    rho_budget: for mechanisms that choose their measurements' noise from earlier outputs
      (AIM): the zCDP budget fixed before any measurement. The measurements must fit within it,
      and it, not their realised sum, is the guarantee (a Renyi filter; Feldman and Zrnic
      2021). None when the noise is fixed in advance (the realised sum is then the guarantee).
    exact_noise: whether its Gaussian and Laplace measurements were drawn exactly, on a
      lattice (`lipdp.discrete_gaussian.gaussian_measurement`, `laplace_measurement`), each at
      least as private as the measurement it records (a Gaussian to within a slack below
      1e-60); False: NumPy's float64 samplers (the releases before 2026-12-07).
    exact_selections: whether its exponential-mechanism selections were drawn exactly from the
      mechanism's distribution on the float64 scores (`lipdp.discrete_gaussian
      .exponential_mechanism`), each measurement's sensitivity covering the scores' bounded
      rounding (`lipdp.baselines._pgm.exponential_select`); False: float64 Gumbel-max (the
      releases before 2026-12-07).
  """

  mechanism: str
  measurements: Tuple[NoisyMeasurement, ...]
  num_samples: int
  rho_budget: Optional[float] = None
  exact_noise: bool = False
  exact_selections: bool = False

  type_name = "central_dp"
  k = 1

  def __post_init__(self):
    if not isinstance(self.mechanism, str) or not self.mechanism.strip():
      raise ValueError(f"mechanism must be a non-empty name, got {self.mechanism!r}")
    if isinstance(self.measurements, (str, bytes, Mapping)):
      raise ValueError(f"measurements must be a sequence, got {self.measurements!r}")
    measurements = tuple(
      m if isinstance(m, NoisyMeasurement) else NoisyMeasurement.from_dict(m)
      for m in self.measurements
    )
    if not measurements:
      raise ValueError("a central release makes at least one measurement")
    object.__setattr__(self, "measurements", measurements)
    object.__setattr__(
      self, "num_samples", _validation.positive_int(self.num_samples, "num_samples")
    )
    if self.rho_budget is not None:
      object.__setattr__(self, "rho_budget", _validation.positive(self.rho_budget, "rho_budget"))
    for name in ("exact_noise", "exact_selections"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
    if self.exact_selections and not self.exact_noise:
      raise ValueError("exact_selections needs exact_noise (no mechanism draws only those exactly)")

  @property
  def rho_spent(self) -> float:
    """The sum of the measurements' rho."""
    return math.fsum(m.rho for m in self.measurements)

  @property
  def pure(self) -> bool:
    """Whether every measurement is pure DP (no Gaussian) and the noise was fixed in advance."""
    return self.rho_budget is None and all(m.kind != zcdp.GAUSSIAN for m in self.measurements)

  @property
  def gaussian(self) -> bool:
    """Whether every measurement is Gaussian and the noise was fixed in advance (then they
    compose exactly into one Gaussian mechanism, `accounting.gaussian_composition_epsilon`)."""
    return self.rho_budget is None and all(m.kind == zcdp.GAUSSIAN for m in self.measurements)

  def as_dict(self) -> dict:
    return {
      "type": self.type_name,
      "mechanism": self.mechanism,
      "measurements": [m.as_dict() for m in self.measurements],
      "num_samples": self.num_samples,
      "rho_budget": self.rho_budget,
      # Absent from float64 releases, as before exact measurements existed.
      **({"exact_noise": True} if self.exact_noise else {}),
      **({"exact_selections": True} if self.exact_selections else {}),
    }


ReleaseEvent = Union[GaussianRelease, HeteroscedasticRelease, PriorSampling, CentralRelease]
PER_RECORD_RELEASES = (GaussianRelease, HeteroscedasticRelease)


def release_from_dict(data: Mapping[str, Any]) -> ReleaseEvent:
  """Rebuilds a release event from `as_dict()` output."""
  if not isinstance(data, Mapping):
    raise ValueError(f"a release event must be a mapping, got {data!r}")
  for cls in (GaussianRelease, HeteroscedasticRelease, PriorSampling, CentralRelease):
    if data.get("type") == cls.type_name:
      names = [f.name for f in dataclasses.fields(cls)]
      _check_keys(data, names, cls.__name__)
      return cls(**{n: data[n] for n in names if n in data})
  raise ValueError(
    f"unknown release type {data.get('type')!r}; expected "
    f"{GaussianRelease.type_name!r}, {HeteroscedasticRelease.type_name!r}, "
    f"{PriorSampling.type_name!r} or {CentralRelease.type_name!r}"
  )


# How DP-SGD's clipped sum was computed (`DPSGDEvent.sum_arithmetic`; `lipdp.training.dpsgd`).
DPSGD_SUM_ARITHMETICS = ("float32", "fixed-point", "bounded-float32")


@dataclasses.dataclass(frozen=True)
class DPSGDEvent:
  """A DP-SGD training run: `steps` Poisson-sampled Gaussian steps (Abadi et al. 2016).

  Attributes:
    noise_multiplier: z = (std of the noise added to the sum of clipped gradients) / C (> 0).
    sampling_rate: q, the probability that a record joins a step's batch, in (0, 1].
    steps: the number of noisy steps the released weights went through (>= 1).
    sum_arithmetic: how the clipped gradients were summed and noised: 'float32' (the float
      path: the sum's rounding is not bounded), or 'fixed-point' (each clipped gradient rounded
      to an integer grid, the sum and its noise added exactly in integers, with the noise
      calibrated to the rounded gradients' norm bound; `lipdp.training.fixed_point`), or
      'bounded-float32' (the float32 sum, whose rounding is bounded and added to the noise's
      contribution bound, rounded to the grid and noised there in integers). It does
      not enter the accounting; the report's caveats name it. Omitted from `as_dict` when
      'float32', as the reports written before it have it.
  """

  noise_multiplier: float
  sampling_rate: float
  steps: int
  sum_arithmetic: str = "float32"

  def __post_init__(self):
    object.__setattr__(
      self, "noise_multiplier", _validation.positive(self.noise_multiplier, "noise_multiplier")
    )
    object.__setattr__(
      self, "sampling_rate", _validation.probability_half_open(self.sampling_rate, "sampling_rate")
    )
    object.__setattr__(self, "steps", _validation.positive_int(self.steps, "steps"))
    if self.sum_arithmetic not in DPSGD_SUM_ARITHMETICS:
      raise ValueError(
        f"sum_arithmetic must be one of {DPSGD_SUM_ARITHMETICS}, got {self.sum_arithmetic!r}"
      )

  def as_dict(self) -> dict:
    out = dataclasses.asdict(self)
    if self.sum_arithmetic == "float32":
      del out["sum_arithmetic"]  # as every report before fixed-point sums has it
    return out

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "DPSGDEvent":
    if not isinstance(data, Mapping):
      raise ValueError(f"a DP-SGD event must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    _check_keys(data, names, "DPSGDEvent")
    missing = [n for n in names if n not in data and n != "sum_arithmetic"]
    if missing:
      raise ValueError(f"DPSGDEvent lacks {missing}")
    return cls(**{n: data[n] for n in names if n in data})

  def dp_event(self) -> dp_accounting.DpEvent:
    """SelfComposed(PoissonSampled(q, Gaussian(z)), steps), for dp_accounting under REPLACE_ONE.

    Replacing one record moves the clipped sum by at most 2C; dp_accounting's REPLACE_ONE
    Gaussian compares contributions at -1 and +1 (in units of C), which is exactly that.
    """
    return dp_accounting.SelfComposedDpEvent(
      dp_accounting.PoissonSampledDpEvent(
        self.sampling_rate, dp_accounting.GaussianDpEvent(self.noise_multiplier)
      ),
      self.steps,
    )
