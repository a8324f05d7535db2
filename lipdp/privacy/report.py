"""The privacy report: every number needed to recompute epsilon, in one JSON file.

A `PrivacyReport` records what was released and why it is private: the
mechanism, the neighbouring relation (replace-one, in words), the certified
Lipschitz bound L, the declared domain and its diameter D, the sensitivity
L D, sigma, k, delta, epsilon per component and in total, the scope of the
model weights, whether the release was declared shuffled (and then the central
epsilon, the per-record one being kept too), whether the noise was seeded, the
DP-SGD parameters for the `dp-sgd` scope, and the library versions.

`recompute_epsilon()` recomputes epsilon from the report's own numbers only
(the sensitivity is recomputed as L * D rather than read back), and `verify()`
checks every stored epsilon against that recomputation: this is the
independent check that would have caught "sensitivity off by a factor" bugs.

Scopes (design.md, 1):
  * `public`: the model was fit on data independent of the private records;
    epsilon covers the private records in full.
  * `dp-sgd`: the model was trained on the private records with DP-SGD; the
    training event is composed with the per-record release (PLD accounting)
    and the total covers both.
  * `conditional`: the model was fit on the private records without DP; the
    epsilon is conditional on the model, and the report says in plain words
    that the model's own dependence on the private records is not covered.
"""

import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import tempfile
from typing import Any, Mapping, Optional

from lipdp.privacy import _validation
from lipdp.privacy import composition
from lipdp.privacy import gaussian
from lipdp.privacy import heteroscedastic
from lipdp.privacy import sensitivity as sensitivity_lib
from lipdp.privacy import shuffle

SCHEMA_VERSION = 1
SCOPES = ("public", "dp-sgd", "conditional")
MECHANISMS = ("gaussian", "heteroscedastic_gaussian")

SCOPE_STATEMENTS = {
    "public": (
        "The encoder and decoder were trained on data that is independent of the private "
        "records (public data). The epsilon covers the private records in full."),
    "dp-sgd": (
        "The encoder and decoder were trained on the private records with DP-SGD. The "
        "training run is composed with the per-record Gaussian release by PLD accounting "
        "under the same replace-one relation, and the total epsilon covers both."),
    "conditional": (
        "The encoder and decoder were trained on the private records WITHOUT differential "
        "privacy. The epsilon covers only the noise added to each record's latent given the "
        "trained model: the model's own dependence on the private records is NOT covered by "
        "this guarantee, and nothing here bounds what the model weights, or synthetic data "
        "shaped by the decoder, reveal about the private records (for example to a "
        "membership-inference attack)."),
}

NEIGHBORING_RELATION = "replace-one"

SEEDED_STATEMENT = (
    "The noise was drawn from a fixed, reproducible seed. Such noise is not private against "
    "whoever knows the seed: anyone holding it can regenerate the noise and subtract it.")
UNSEEDED_STATEMENT = (
    "The noise keys came from operating-system entropy and were not stored.")

CONDITIONAL_NOT_COVERED = "NOT covered"


def _package_version(name: str) -> str:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def library_versions(extra: Optional[Mapping[str, str]] = None) -> dict:
  """Versions of the libraries the accounting used (lipdp, numpy, scipy, dp_accounting).

  Read from package metadata, so nothing (in particular not jax or flax) is
  imported. `extra` adds caller-supplied versions, e.g. {"jax": jax.__version__}.
  """
  versions = {
      "python": platform.python_version(),
      "lipdp": _package_version("lipdp"),
      "numpy": _package_version("numpy"),
      "scipy": _package_version("scipy"),
      "dp_accounting": _package_version("dp-accounting"),
  }
  for key, value in (extra or {}).items():
    versions[str(key)] = str(value)
  return versions


@dataclasses.dataclass
class PrivacyReport:
  """A JSON-serialisable record of one private release (see module docstring).

  Attributes:
    mechanism: "gaussian" or "heteroscedastic_gaussian".
    neighboring_relation: "replace-one".
    neighboring_relation_statement: the relation in words.
    lipschitz: certified Lipschitz bound L of the encoder mean.
    domain: plain-words description of the declared input domain.
    diameter: its l2 diameter D.
    sensitivity: L * D.
    sigma: noise std (gaussian mechanism), else None.
    k: latents per record.
    delta: the delta of `epsilon`.
    epsilon: the headline (total) epsilon.
    per_record_epsilon: epsilon of one record's release alone, at `delta`.
    components: epsilon of each component ("release", and "dp_sgd",
      "shuffled_release" when they apply).
    scope: "public", "dp-sgd" or "conditional".
    scope_statement: what the scope covers, in plain words.
    shuffled: whether the caller declared the release shuffled and unlinked.
    num_records: number of records shuffled together (when shuffled).
    central_epsilon: central epsilon of the shuffled release alone (when
      shuffled), at `shuffle_delta` for the dp-sgd scope, else at `delta`.
    shuffle_delta: the delta of `central_epsilon`.
    noise_seeded: whether the noise came from a fixed seed.
    noise_statement: what that means, in plain words.
    dpsgd: DP-SGD parameters (noise_multiplier, sampling_rate, steps) for the
      dp-sgd scope, else None.
    heteroscedastic: sigma_min, sigma_max, lipschitz_log_sigma, latent_dim for
      the heteroscedastic mechanism, else None.
    delta_split: share of delta given to the release when it must be split
      (shuffled or heteroscedastic release composed with DP-SGD).
    value_discretization_interval: PLD grid used for PLD accounting.
    accounting: the methods used, in words.
    versions: library versions.
    notes: free-form caller notes.
    schema_version: version of this format.
  """
  mechanism: str
  neighboring_relation: str
  neighboring_relation_statement: str
  lipschitz: float
  domain: str
  diameter: float
  sensitivity: float
  sigma: Optional[float]
  k: int
  delta: float
  epsilon: float
  per_record_epsilon: float
  components: dict
  scope: str
  scope_statement: str
  shuffled: bool
  num_records: Optional[int]
  central_epsilon: Optional[float]
  shuffle_delta: Optional[float]
  noise_seeded: bool
  noise_statement: str
  dpsgd: Optional[dict]
  heteroscedastic: Optional[dict]
  delta_split: float
  value_discretization_interval: float
  accounting: str
  versions: dict
  notes: list = dataclasses.field(default_factory=list)
  schema_version: int = SCHEMA_VERSION

  # ------------------------------------------------------------------ JSON.

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    """JSON text (sorted keys; floats round-trip exactly; inf as Infinity)."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "PrivacyReport":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
      raise ValueError(f"unknown PrivacyReport fields: {sorted(unknown)}")
    missing = {f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
              } - set(data)
    if missing:
      raise ValueError(f"missing PrivacyReport fields: {sorted(missing)}")
    return cls(**dict(data))

  @classmethod
  def from_json(cls, text: str) -> "PrivacyReport":
    return cls.from_dict(json.loads(text))

  def save(self, path: str) -> None:
    """Writes the JSON atomically: a temporary file in the same folder, then rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=".privacy_report.", suffix=".tmp", dir=folder)
    try:
      with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(self.to_json())
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp_path, path)
    except BaseException:
      if os.path.exists(tmp_path):
        os.unlink(tmp_path)
      raise

  @classmethod
  def load(cls, path: str) -> "PrivacyReport":
    with open(path, "r", encoding="utf-8") as f:
      return cls.from_json(f.read())

  # ------------------------------------------------------------ Recompute.

  def recompute(self) -> dict:
    """All epsilons recomputed from this report's own inputs (L, D, sigma, ...)."""
    return _account(
        mechanism=self.mechanism, lipschitz=self.lipschitz, diameter=self.diameter,
        sigma=self.sigma, k=self.k, delta=self.delta, scope=self.scope, shuffled=self.shuffled,
        num_records=self.num_records, dpsgd=self.dpsgd, hetero=self.heteroscedastic,
        delta_split=self.delta_split,
        value_discretization_interval=self.value_discretization_interval)

  def recompute_epsilon(self) -> float:
    """The total epsilon recomputed purely from the report's numbers."""
    return self.recompute()["epsilon"]

  def verify(self, rtol: float = 1e-9) -> None:
    """Raises ValueError unless every stored number matches the recomputation.

    Args:
      rtol: relative tolerance. On the machine and library versions that wrote
        the report the recomputation is bit-identical (rtol=0 passes); the
        default leaves room for last-bit differences of FFTs elsewhere, and is
        far below any real discrepancy (a factor-2 sensitivity error changes
        epsilon by O(1)).
    """
    fresh = self.recompute()
    problems = []

    def check(name, stored, recomputed):
      if stored is None or recomputed is None:
        if stored is not recomputed:
          problems.append(f"{name}: stored {stored!r}, recomputed {recomputed!r}")
        return
      if math.isinf(stored) or math.isinf(recomputed):
        if stored != recomputed:
          problems.append(f"{name}: stored {stored!r}, recomputed {recomputed!r}")
        return
      if abs(stored - recomputed) > rtol * abs(recomputed):
        problems.append(f"{name}: stored {stored!r}, recomputed {recomputed!r}")

    check("sensitivity", self.sensitivity, fresh["sensitivity"])
    check("epsilon", self.epsilon, fresh["epsilon"])
    check("per_record_epsilon", self.per_record_epsilon, fresh["per_record_epsilon"])
    check("central_epsilon", self.central_epsilon, fresh["central_epsilon"])
    check("shuffle_delta", self.shuffle_delta, fresh["shuffle_delta"])
    if set(self.components) != set(fresh["components"]):
      problems.append(f"components: stored {sorted(self.components)}, "
                      f"recomputed {sorted(fresh['components'])}")
    else:
      for key, value in fresh["components"].items():
        check(f"components[{key}]", self.components[key], value)
    if self.scope_statement != SCOPE_STATEMENTS.get(self.scope):
      problems.append("scope_statement does not match the scope")
    if self.noise_statement != (SEEDED_STATEMENT if self.noise_seeded else UNSEEDED_STATEMENT):
      problems.append("noise_statement does not match noise_seeded")
    if problems:
      raise ValueError("PrivacyReport does not match its own numbers: " + "; ".join(problems))


def _account(*, mechanism, lipschitz, diameter, sigma, k, delta, scope, shuffled, num_records,
             dpsgd, hetero, delta_split, value_discretization_interval) -> dict:
  """The accounting shared by `make_report` and `PrivacyReport.recompute`."""
  if mechanism not in MECHANISMS:
    raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}.")
  if scope not in SCOPES:
    raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
  lipschitz = _validation.positive(lipschitz, "lipschitz")
  diameter = _validation.positive(diameter, "diameter")
  delta = _validation.probability_open(delta, "delta")
  k = _validation.positive_int(k, "k")
  delta_split = _validation.probability_open(delta_split, "delta_split")
  sens = sensitivity_lib.sensitivity(lipschitz, diameter)

  if mechanism == "gaussian":
    if sigma is None:
      raise ValueError("sigma is required for the gaussian mechanism.")
    sigma = _validation.positive(sigma, "sigma")
    if hetero is not None:
      raise ValueError("heteroscedastic parameters given for the gaussian mechanism.")
    per_record = gaussian.gaussian_epsilon(sigma, sens, delta, k)
  else:
    if hetero is None:
      raise ValueError("the heteroscedastic mechanism needs sigma_min, sigma_max, "
                       "lipschitz_log_sigma and latent_dim.")
    if sigma is not None:
      raise ValueError("sigma must be None for the heteroscedastic mechanism "
                       "(give sigma_min and sigma_max).")
    if shuffled:
      raise ValueError("shuffle amplification is implemented for the gaussian mechanism only.")

    def hetero_eps(at_delta):
      return heteroscedastic.heteroscedastic_epsilon(
          at_delta, lipschitz, hetero["lipschitz_log_sigma"], diameter, hetero["sigma_min"],
          hetero["sigma_max"], hetero["latent_dim"], k).epsilon

    per_record = hetero_eps(delta)

  components = {"release": per_record}
  central = None
  shuffle_delta = None
  if shuffled:
    if num_records is None:
      raise ValueError("num_records is required for a shuffled release.")
    num_records = _validation.positive_int(num_records, "num_records")
    shuffle_delta = delta_split * delta if scope == "dp-sgd" else delta
    central = shuffle.shuffled_gaussian_epsilon(sigma, sens, num_records, shuffle_delta,
                                                k).central_epsilon
    components["shuffled_release"] = central

  if scope == "dp-sgd":
    if not dpsgd:
      raise ValueError("the dp-sgd scope needs dpsgd_noise_multiplier, dpsgd_sampling_rate "
                       "and dpsgd_steps.")
    z, q, steps = dpsgd["noise_multiplier"], dpsgd["sampling_rate"], dpsgd["steps"]
    components["dp_sgd"] = composition.dpsgd_epsilon(z, q, steps, delta,
                                                     value_discretization_interval)
    if mechanism == "gaussian" and shuffled:
      total = shuffle.compose_dpsgd_and_shuffled_release(
          z, q, steps, sigma, sens, num_records, delta, k, delta_split,
          value_discretization_interval).total_epsilon
    elif mechanism == "gaussian":
      total = composition.compose_dpsgd_and_release(z, q, steps, sigma, sens, delta, k,
                                                    value_discretization_interval).total_epsilon
    else:
      release_delta = delta_split * delta
      total = composition.compose_dpsgd_and_dp_mechanism(
          z, q, steps, hetero_eps(release_delta), release_delta, delta,
          value_discretization_interval)
  else:
    if dpsgd:
      raise ValueError(f"DP-SGD parameters were given but scope is {scope!r}; use 'dp-sgd'.")
    total = central if shuffled else per_record

  return {
      "sensitivity": sens,
      "per_record_epsilon": per_record,
      "central_epsilon": central,
      "shuffle_delta": shuffle_delta,
      "components": components,
      "epsilon": total,
  }


def _accounting_text(mechanism, scope, shuffled) -> str:
  parts = []
  if mechanism == "gaussian":
    parts.append("per-record release: analytic Gaussian mechanism (Balle and Wang 2018), "
                 "k latents composed exactly as sigma / sqrt(k)")
  else:
    parts.append("per-record release: heteroscedastic Gaussian, closed-form Renyi divergence "
                 "(Gil, Alajaji, Linder 2013) maximised over admissible pairs, RDP -> DP by "
                 "Canonne, Kamath, Steinke 2020 Prop. 12")
  if shuffled:
    parts.append("central epsilon: amplification by shuffling (Feldman, McMillan, Talwar "
                 "2021), (eps0, delta0) local randomizer, min with the per-record epsilon")
  if scope == "dp-sgd":
    parts.append("DP-SGD: Poisson-sampled Gaussian under replace-one, composed by PLD "
                 "accounting (dp_accounting, pessimistic discretisation)")
  return "; ".join(parts) + "."


def make_report(*, lipschitz: float, domain: str, diameter: float, delta: float, scope: str,
                sigma: Optional[float] = None, k: int = 1, mechanism: str = "gaussian",
                shuffled: bool = False, num_records: Optional[int] = None,
                noise_seeded: bool = False,
                dpsgd_noise_multiplier: Optional[float] = None,
                dpsgd_sampling_rate: Optional[float] = None,
                dpsgd_steps: Optional[int] = None,
                sigma_min: Optional[float] = None, sigma_max: Optional[float] = None,
                lipschitz_log_sigma: Optional[float] = None,
                latent_dim: Optional[int] = None,
                delta_split: float = 0.5,
                value_discretization_interval: float = composition.DEFAULT_VALUE_DISCRETIZATION,
                extra_versions: Optional[Mapping[str, str]] = None,
                notes: Optional[list] = None) -> PrivacyReport:
  """Builds a `PrivacyReport`, computing every epsilon from the inputs.

  Args:
    lipschitz: certified Lipschitz bound L of the encoder mean (> 0).
    domain: plain-words description of the declared domain (e.g. "images in
      [0,1]^784 rescaled into the l2 ball of radius 10").
    diameter: the domain's l2 diameter D (> 0), from `sensitivity.py`.
    delta: target delta in (0, 1).
    scope: "public", "dp-sgd" or "conditional".
    sigma: noise std (gaussian mechanism).
    k: latents per record.
    mechanism: "gaussian" or "heteroscedastic_gaussian".
    shuffled: True only if the release is a shuffled multiset with no record
      identifiers; then the central epsilon is computed and is the headline.
    num_records: records shuffled together (required when shuffled).
    noise_seeded: True if the noise came from a fixed seed.
    dpsgd_noise_multiplier: DP-SGD z (scope dp-sgd).
    dpsgd_sampling_rate: DP-SGD Poisson rate q (scope dp-sgd).
    dpsgd_steps: DP-SGD steps (scope dp-sgd).
    sigma_min: heteroscedastic lower clamp.
    sigma_max: heteroscedastic upper clamp.
    lipschitz_log_sigma: certified L_s of log sigma(x).
    latent_dim: latent dimension d.
    delta_split: share of delta for the release when delta must be split.
    value_discretization_interval: PLD grid.
    extra_versions: caller-supplied versions (e.g. jax, flax).
    notes: free-form notes.

  Returns:
    The report.
  """
  if not isinstance(domain, str) or not domain.strip():
    raise ValueError("domain must be a non-empty description of the declared input domain.")
  if not isinstance(shuffled, bool):
    raise ValueError(f"shuffled must be a bool, got {shuffled!r}.")
  if not isinstance(noise_seeded, bool):
    raise ValueError(f"noise_seeded must be a bool, got {noise_seeded!r}.")
  dpsgd_args = (dpsgd_noise_multiplier, dpsgd_sampling_rate, dpsgd_steps)
  dpsgd = None
  if any(a is not None for a in dpsgd_args):
    if any(a is None for a in dpsgd_args):
      raise ValueError("give all of dpsgd_noise_multiplier, dpsgd_sampling_rate, dpsgd_steps.")
    dpsgd = {
        "noise_multiplier": _validation.positive(dpsgd_noise_multiplier,
                                                 "dpsgd_noise_multiplier"),
        "sampling_rate": _validation.probability_half_open(dpsgd_sampling_rate,
                                                           "dpsgd_sampling_rate"),
        "steps": _validation.positive_int(dpsgd_steps, "dpsgd_steps"),
    }
  hetero_args = (sigma_min, sigma_max, lipschitz_log_sigma, latent_dim)
  hetero = None
  if mechanism == "heteroscedastic_gaussian":
    if any(a is None for a in hetero_args):
      raise ValueError("the heteroscedastic mechanism needs sigma_min, sigma_max, "
                       "lipschitz_log_sigma and latent_dim.")
    hetero = {
        "sigma_min": _validation.positive(sigma_min, "sigma_min"),
        "sigma_max": _validation.positive(sigma_max, "sigma_max"),
        "lipschitz_log_sigma": _validation.nonnegative(lipschitz_log_sigma,
                                                       "lipschitz_log_sigma"),
        "latent_dim": _validation.positive_int(latent_dim, "latent_dim"),
    }
  elif any(a is not None for a in hetero_args):
    raise ValueError("sigma_min/sigma_max/lipschitz_log_sigma/latent_dim are only for "
                     "mechanism='heteroscedastic_gaussian'.")
  if not shuffled and num_records is not None:
    num_records = _validation.positive_int(num_records, "num_records")
  value_discretization_interval = _validation.positive(value_discretization_interval,
                                                       "value_discretization_interval")
  result = _account(mechanism=mechanism, lipschitz=lipschitz, diameter=diameter, sigma=sigma,
                    k=k, delta=delta, scope=scope, shuffled=shuffled, num_records=num_records,
                    dpsgd=dpsgd, hetero=hetero, delta_split=delta_split,
                    value_discretization_interval=value_discretization_interval)
  return PrivacyReport(
      mechanism=mechanism,
      neighboring_relation=NEIGHBORING_RELATION,
      neighboring_relation_statement=composition.NEIGHBORING_RELATION_TEXT,
      lipschitz=float(lipschitz),
      domain=domain,
      diameter=float(diameter),
      sensitivity=result["sensitivity"],
      sigma=None if sigma is None else float(sigma),
      k=int(k),
      delta=float(delta),
      epsilon=result["epsilon"],
      per_record_epsilon=result["per_record_epsilon"],
      components=result["components"],
      scope=scope,
      scope_statement=SCOPE_STATEMENTS[scope],
      shuffled=shuffled,
      num_records=None if num_records is None else int(num_records),
      central_epsilon=result["central_epsilon"],
      shuffle_delta=result["shuffle_delta"],
      noise_seeded=noise_seeded,
      noise_statement=SEEDED_STATEMENT if noise_seeded else UNSEEDED_STATEMENT,
      dpsgd=dpsgd,
      heteroscedastic=hetero,
      delta_split=float(delta_split),
      value_discretization_interval=float(value_discretization_interval),
      accounting=_accounting_text(mechanism, scope, shuffled),
      versions=library_versions(extra_versions),
      notes=list(notes or []),
  )
