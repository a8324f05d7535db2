"""The privacy report: every number needed to recompute epsilon, in one JSON file.

A `PrivacyReport` records what was released and why it is private. It holds three kinds of
content, and keeps them apart on purpose:

1. **Inputs** (stored): the release event (`GaussianRelease` / `HeteroscedasticRelease` /
   `PriorSampling`, or a `CentralRelease` with its list of noisy measurements for the
   baselines of `lipdp.baselines`), the certified Lipschitz bound L and the certificate it
   comes from (both None or empty for prior sampling and central releases), the domain, the
   digest of its description and its diameter D, delta, the scope of the weights, the DP-SGD
   event (scope `dp-sgd`), whether the release is shuffled, the number of records, whether
   noise came from a user-fixed seed, and free caller notes (text, never checked).
2. **Numbers** (stored, and recomputed by `verify()`): the sensitivity L D (plus gamma sqrt(d)
   for a lattice release, `lipdp.privacy.lattice`), the per-record,
   central and component epsilons, and the headline epsilon (`lipdp.privacy.accounting`).
3. **Statements** (derived, never stored as free text): the neighbouring relation and its
   wording, the scope statement, the noise statement, the accounting methods, the caveats that
   the inputs imply, and what the headline epsilon is. They are written to the JSON file for
   human readers; `from_dict` rejects a file whose statements differ from those its inputs
   imply, so a report cannot state one thing and compute another.

What `verify()` does and does not check. It checks that the report is *consistent*: every
number is finite where it must be, a per-record release carries its certificate and the
certified per-layer bounds (times any release scaling) do not exceed L, and every stored number
equals its recomputation from the stored inputs (the sensitivity is recomputed as L * D, plus
the rounding term of a lattice release, never read back). That catches arithmetic bugs such as
a sensitivity off by a factor, a NaN, an edited epsilon, or an L lowered below its
certificate. It cannot know whether the inputs are
true: a report whose L and layer bounds were both divided by 4 and every epsilon recomputed, or
whose scope was changed, is consistent and verifies. Two further checks need more than the
report: `lipdp.release.verify_release(release_dir)` checks the inputs against the released files
(the domain digest, the diameter, the number of records, the decoded arrays), and
`lipdp.latent_release.certify_encoder` recomputes L from the weights, for whoever holds them.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import math
import platform
from typing import Any, Mapping, Optional, Sequence

from lipdp import files
from lipdp.privacy import _validation
from lipdp.privacy import accounting as accounting_lib
from lipdp.privacy import composition
from lipdp.privacy import events
from lipdp.privacy import information
from lipdp.privacy import zcdp

SCHEMA_VERSION = 3
# Version 3 added the domain digest and made a per-record release's certificate required; a
# report of an earlier version is refused rather than verified without them.
Scope = events.Scope

SEEDED_STATEMENT = (
  "The noise was drawn from a fixed, reproducible seed. Such noise is not private against "
  "whoever knows or guesses the seed (a small one such as 0 or 1 is guessed at once): anyone "
  "holding it can regenerate the noise and subtract it."
)
UNSEEDED_STATEMENT = (
  "The noise keys came from operating-system entropy and were not kept: a DP-SGD run's seed "
  "stays in its work directory, readable by its owner only, until training completes (so that "
  "a killed run can resume), and is then deleted."
)

# Caveats: derived from the inputs, so they cannot be dropped from a report.
CAVEAT_CONDITIONAL_MODEL = (
  "the certified L, its per-layer bounds and the calibrated sigma in this report are computed "
  "from weights fit on the private records without DP; like the weights, they are not "
  "covered by the guarantee"
)
CAVEAT_CONDITIONAL_SHUFFLE = (
  "the central epsilon of the shuffled release holds only if no synthetic record can be "
  "linked back to its source record; a decoder fit on the same records without DP may make "
  "such links, so in this scope the headline is the per-record epsilon"
)
CAVEAT_HETEROSCEDASTIC_SHUFFLE = (
  "the release is shuffled, but no amplification by shuffling is claimed for the "
  "heteroscedastic mechanism"
)
CAVEAT_NOISE_SEEDED = "the release noise and shuffle came from a user-fixed seed"
CAVEAT_TRAINING_SEEDED = "the DP-SGD noise and batch sampling came from a user-fixed seed"
CAVEAT_FIXED_BEFORE_TRAINING = (
  "the release's privacy profile (sigma / (L D), k, and for the heteroscedastic mechanism "
  "L, L_s, sigma_min, sigma_max) was fixed before training, as adaptive composition with "
  "DP-SGD requires"
)
CAVEAT_FLOAT64_NOISE = (
  "noise drawn in float64 (|xi| < 12.2); the truncation's contribution to delta is checked "
  "to be below 1e-6 of delta; the discreteness of floating-point noise (Mironov 2012) is not "
  "modelled"
)
CAVEAT_LATTICE_NOISE = (
  "noise drawn exactly, as a discrete Gaussian on the lattice 2^e Z^d with the means rounded "
  "to it (no floating-point noise); accounted as the continuous Gaussian release with the "
  "noise sigma (the accounted one, at most 1e-9 relatively below the noise drawn) and the "
  "rounded means' sensitivity, to within a slack below 2e-30 on epsilon and 1e-30 on log delta "
  "(docs/privacy.md, 'Exact noise on a lattice')"
)
CAVEAT_FLOAT64_ENCODER_BOUNDED = (
  "{what} computed in float64 from the float32 weights (at the highest matmul precision); "
  "the certified bounds are those of the exact map of the weights, times a relative margin of "
  "5e-6 per layer; the rounding of its evaluation on the CPU is bounded, at most {error:.2g} "
  "per record for any summation order (Higham's inner-product bound, with subnormals flushed "
  "to zero), and checked to fit in the margin, given that each layer computes the operator "
  "it was certified for"
)
CAVEAT_FLOAT64_ENCODER = (
  "{what} computed in float64 from the float32 weights (at the highest matmul precision); "
  "the certified bounds are those of the exact map of the weights, times a relative margin of "
  "5e-6 per layer, which the float64 rounding of its evaluation (1.1e-16 relative per "
  "operation) stays far inside unless the activations exceed about 1e10 times the "
  "sensitivity; that rounding is not bounded on its own"
)
# What the encoder caveats name, by whether the release is heteroscedastic.
_ENCODER_OUTPUTS = {
  False: "the encoder mean mu(x) is",
  True: "the encoder mean mu(x) and log sigma(x) are",
}
# The releases before 2026-12-07 computed the encoder in float32; their certificates do not
# name an arithmetic, and their reports keep saying float32.
CAVEAT_FLOAT32_ENCODER = (
  "{what} computed in float32 (at the highest matmul precision); the "
  "certified bounds are those of the exact map of the weights, and the certificate does not "
  "cover the float32 rounding of its evaluation (of the order of float32's relative "
  "precision, 6e-8, per operation)"
)
CAVEAT_DPSGD_FLOAT32 = (
  "the DP-SGD noise is drawn in float64 and cast to float32 before it is added to the "
  "float32 sum of clipped gradients (with adaptive clipping, scaled in float32 by the "
  "current clip norm, and its count likewise); the accounting assumes exact Gaussian noise "
  "on an exact sum: neither rounding, nor the float64 sampler's truncation at 12.2 standard "
  "deviations (probability 2e-34 per coordinate and step), is modelled"
)
CAVEAT_DPSGD_FIXED_POINT = (
  "the DP-SGD sum is exact: each clipped gradient was rounded to an integer grid 2^e Z^d, and "
  "the sum and its noise, floor(sigma X + 1/2) on the grid, were added in int32, so the sum's "
  "sensitivity holds in floating point, with the noise calibrated to the rounded gradients' "
  "norm bound C + sqrt(d) 2^e / 2; X is NumPy's float64 normal: its truncation at 12.2 "
  "standard deviations (probability 2e-34 per coordinate and step) and, beyond about 9 to 10 "
  "standard deviations (the training log states where), its outputs' spacing wider than a "
  "grid step are not modelled; that "
  "no record's computed gradient depends on another record's content or presence (the batch "
  "keeps every record at a place fixed by its index) is checked by a test, not proven"
)
CAVEAT_DPSGD_BOUNDED_FLOAT32 = (
  "the DP-SGD sum was computed in float32 and its rounding is bounded, not ignored: each entry "
  "of a sum of |B| clipped gradients added along paths of at most m additions lies within "
  "gamma_m = m u / (1 - m u) (u = 2^-24) of the exact sum of its terms in any order (Higham "
  "2002), so the sums with and without a record differ by at most C (1 + 2 gamma_m cap), cap "
  "the largest batch summed; the sum was rounded to an integer grid 2^e Z^d and noised there "
  "in int32 with floor(sigma X + 1/2), the noise calibrated to C (1 + 2 gamma_m cap) + sqrt(d) "
  "2^e; X is NumPy's float64 normal: its truncation at 12.2 standard deviations and, beyond "
  "about 9 to 10, its outputs' spacing wider than a grid step are not modelled; that no "
  "record's computed terms depend on another record's content or presence (every record at a "
  "place fixed by its index) is checked by a test, not proven"
)
CAVEAT_CENTRAL_RELATION = (
  "every sensitivity in the release event is its replace-one value (a histogram moves one "
  "count down and one up: sqrt(2) in l2, 2 in l1; a score moves by twice its add/remove "
  "bound); a mechanism published under add/remove-one neighbours is accounted here with "
  "these sensitivities, not with its published numbers; under replace-one the number of "
  "records is public, and the mechanism may use it"
)
CAVEAT_CENTRAL_NOISE = (
  "noise and selections drawn by NumPy in float64; the discreteness of floating-point noise "
  "(Mironov 2012) is not modelled"
)
CAVEAT_CENTRAL_EXACT_NOISE = (
  "Gaussian and Laplace measurements drawn exactly, as discrete Gaussians or Laplaces on a "
  "lattice, each at least as private as the measurement it records (a Gaussian to within a "
  "slack below 1e-60; docs/privacy.md, 'Exact noise on a lattice')"
)
CAVEAT_CENTRAL_OTHER_NOISE = (
  "exponential-mechanism selections drawn by NumPy in float64 (Gumbel-max); the discreteness "
  "of floating-point noise (Mironov 2012) is not modelled"
)
CAVEAT_CENTRAL_EXACT_SELECTIONS = (
  "exponential-mechanism selections drawn exactly from the mechanism's distribution on the "
  "float64 scores (rejection with exact Bernoulli(exp(-x)) draws); each score's float64 "
  "rounding is bounded (Higham's summation bound) and added to its sensitivity, and the "
  "temperature raised so that the accounted epsilon stays the one planned"
)

_NUMBER_FIELDS = (
  "sensitivity",
  "per_record_epsilon",
  "central_epsilon",
  "shuffle_delta",
  "epsilon",
)
_DERIVED_TEXT_FIELDS = (
  "neighboring_relation",
  "neighboring_relation_statement",
  "scope_statement",
  "noise_statement",
  "accounting_methods",
  "caveats",
)


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


def domain_digest(description: Mapping[str, Any]) -> str:
  """SHA-256 (hex) of a domain description (`domain.describe()`), in canonical JSON.

  Canonical: sorted keys, no whitespace, ASCII, no NaN. JSON numbers round-trip exactly
  (`float.__repr__`), so the description written to a release's domain.json and read back gives
  the same digest, and any edit of it (a bound, a category, the label column) another.
  """
  if not isinstance(description, Mapping):
    raise ValueError(f"a domain description must be a mapping, got {type(description).__name__}")
  text = json.dumps(
    description, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
  )
  return hashlib.sha256(text.encode("ascii")).hexdigest()


def _is_digest(value) -> bool:
  return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _finite_or_none(value):
  return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


@dataclasses.dataclass(frozen=True)
class PrivacyReport:
  """A record of one private release (see the module docstring).

  Attributes (inputs):
    release: the per-record mechanism, a `GaussianRelease` or `HeteroscedasticRelease`;
      `PriorSampling`; or a `CentralRelease` (a baseline: scope 'dp-measurements', no per-record
      mechanism, so lipschitz, diameter, sensitivity and per_record_epsilon are None).
    lipschitz: the Lipschitz bound L of the released encoder mean used in the accounting:
      certified from the weights of the released map.
    domain: plain-words description of the declared input domain.
    domain_digest: `domain_digest` of the domain's description (what a release writes to
      domain.json), so that `lipdp.release.verify_release` can tell whether domain.json is the
      domain the report was made for; None for a report made without one (it cannot be
      released: `write_release` refuses it).
    diameter: its l2 diameter D.
    delta: the delta of every epsilon (the shuffled release's own delta is `shuffle_delta`).
    scope: a `Scope`.
    num_records: the number of private records released (k synthetic records each).
    shuffled: whether the release is a uniformly shuffled multiset without identifiers.
    dpsgd: the `DPSGDEvent` that trained the weights (scope `dp-sgd`), else None.
    noise_seeded: whether the release noise came from a user-fixed seed.
    training_seeded: whether the DP-SGD noise and sampling came from a user-fixed seed.
    certificate: what the certificate of the weights gave (required of a per-record release,
      checked by `verify`): "layer_bounds" (certified per-layer bounds of the encoder mean),
      "mean_scale" (a factor <= 1 the release multiplies mu by, default 1), and for the
      heteroscedastic mechanism "log_sigma_lipschitz" (required) and "log_sigma_scale"
      likewise. prod(layer_bounds) * mean_scale must not exceed `lipschitz`, nor
      log_sigma_lipschitz * log_sigma_scale the release's L_s. "arithmetic": what the
      released means were computed in, "float64" since 2026-12-07 (absent: "float32", the
      earlier releases; the caveats say which). Empty for prior sampling and central releases.
    delta_split: share of delta given to the release where delta is split.
    value_discretization_interval: PLD grid of the DP-SGD composition.
    versions: library versions.
    notes: free-form caller remarks (the caveats the inputs imply are derived, not notes).
  Attributes (numbers, recomputed by `verify`):
    sensitivity, per_record_epsilon, central_epsilon, shuffle_delta, components, epsilon, and
    headline: what `epsilon` is, in words (`lipdp.privacy.accounting`).
  """

  release: events.ReleaseEvent
  lipschitz: float
  domain: str
  domain_digest: Optional[str]
  diameter: float
  delta: float
  scope: Scope
  num_records: int
  shuffled: bool
  dpsgd: Optional[events.DPSGDEvent]
  noise_seeded: bool
  training_seeded: bool
  certificate: dict
  delta_split: float
  value_discretization_interval: float
  versions: dict
  notes: tuple
  sensitivity: Optional[float]
  per_record_epsilon: Optional[float]
  central_epsilon: Optional[float]
  shuffle_delta: Optional[float]
  components: dict
  epsilon: float
  headline: str

  # --------------------------------------------------------------- Derived statements.

  @property
  def neighboring_relation(self) -> events.NeighboringRelation:
    return events.REPLACE_ONE

  @property
  def k(self) -> int:
    return self.release.k

  @property
  def sigma(self) -> Optional[float]:
    return getattr(self.release, "sigma", None)

  @property
  def release_information_nats(self) -> Optional[float]:
    """At most this many nats about each record are in its k released latents (the
    homoscedastic Gaussian release; `lipdp.privacy.information`): a ceiling on what the release
    can add to the decoder, whatever the design. None for other releases."""
    if not isinstance(self.release, events.GaussianRelease) or self.sensitivity is None:
      return None
    return information.release_information_bound(self.sigma, self.sensitivity, self.k)

  @property
  def mechanism(self) -> str:
    return self.release.type_name

  @property
  def scope_statement(self) -> str:
    return self.scope.statement

  @property
  def noise_statement(self) -> str:
    return SEEDED_STATEMENT if self.noise_seeded or self.training_seeded else UNSEEDED_STATEMENT

  @property
  def accounting_methods(self) -> str:
    return accounting_lib.methods_text(self.release, self.scope, self.shuffled)

  @property
  def caveats(self) -> tuple:
    """The caveats the inputs imply, in plain words."""
    out = []
    if self.scope is Scope.CONDITIONAL:
      out.append(CAVEAT_CONDITIONAL_MODEL)
      if self.central_epsilon is not None:
        out.append(CAVEAT_CONDITIONAL_SHUFFLE)
    if self.scope is Scope.DP_SGD and not isinstance(self.release, events.PriorSampling):
      out.append(CAVEAT_FIXED_BEFORE_TRAINING)
    if self.shuffled and isinstance(self.release, events.HeteroscedasticRelease):
      out.append(CAVEAT_HETEROSCEDASTIC_SHUFFLE)
    if self.noise_seeded:
      out.append(CAVEAT_NOISE_SEEDED)
    if self.training_seeded:
      out.append(CAVEAT_TRAINING_SEEDED)
    if isinstance(self.release, events.CentralRelease):
      out.append(CAVEAT_CENTRAL_RELATION)
      if not self.release.exact_noise:
        out.append(CAVEAT_CENTRAL_NOISE)
      else:
        out.append(CAVEAT_CENTRAL_EXACT_NOISE)
        if any(m.kind == zcdp.EXPONENTIAL for m in self.release.measurements):
          exact = self.release.exact_selections
          out.append(CAVEAT_CENTRAL_EXACT_SELECTIONS if exact else CAVEAT_CENTRAL_OTHER_NOISE)
    elif not isinstance(self.release, events.PriorSampling):
      lattice = getattr(self.release, "lattice", None)
      out.append(CAVEAT_FLOAT64_NOISE if lattice is None else CAVEAT_LATTICE_NOISE)
      heteroscedastic = isinstance(self.release, events.HeteroscedasticRelease)
      what = _ENCODER_OUTPUTS[heteroscedastic]
      # A certificate without "arithmetic" was written when the release computed in float32.
      if "rounding_error" in self.certificate and not heteroscedastic:  # the mean's only
        out.append(
          CAVEAT_FLOAT64_ENCODER_BOUNDED.format(what=what, error=self.certificate["rounding_error"])
        )
      elif self.certificate.get("arithmetic", "float32") == "float64":
        out.append(CAVEAT_FLOAT64_ENCODER.format(what=what))
      else:
        out.append(CAVEAT_FLOAT32_ENCODER.format(what=what))
    if self.dpsgd is not None:
      out.append(
        {
          "fixed-point": CAVEAT_DPSGD_FIXED_POINT,
          "bounded-float32": CAVEAT_DPSGD_BOUNDED_FLOAT32,
        }.get(self.dpsgd.sum_arithmetic, CAVEAT_DPSGD_FLOAT32)
      )
    return tuple(out)

  def summary(self) -> str:
    """A few plain lines for the terminal; the JSON report holds everything."""
    lines = [
      f"Privacy: epsilon = {self.epsilon:.4g} at delta = {self.delta:g} "
      f"({self.headline}), scope {self.scope.value}, {self.neighboring_relation.value}."
    ]
    lattice = getattr(self.release, "lattice", None)
    if self.sensitivity is not None:
      what = "L*D" if lattice is None else f"L*D + 2^{lattice.grid_exponent} sqrt({lattice.dim})"
      lines.append(
        f"  certified L = {self.lipschitz:.6g}, domain diameter D = "
        f"{self.diameter:.6g}, sensitivity {what} = {self.sensitivity:.6g}"
      )
    if self.sigma is not None:
      lines.append(
        f"  release noise sigma = {self.sigma:.6g}, k = {self.k}, {self.num_records} records"
      )
    if lattice is not None:  # sigma above is the accounted one
      lines.append(f"  noise: {lattice.describe()}")
    if isinstance(self.release, events.PriorSampling):
      lines.append(
        f"  {self.release.num_samples} records sampled from the model's prior (no "
        "per-record release)"
      )
    elif isinstance(self.release, events.CentralRelease):
      counts = {}
      for m in self.release.measurements:
        counts[m.kind] = counts.get(m.kind, 0) + m.count
      made = ", ".join(f"{c} {k}" for k, c in sorted(counts.items()))
      accounted = (
        "composed exactly (analytic Gaussian)"
        if "gaussian_epsilon" in self.components
        else f"zCDP rho = {self.components['zcdp_rho']:.4g}"
      )
      lines.append(
        f"  central mechanism {self.release.mechanism}: {made} measurements of "
        f"{self.num_records} records, {accounted}; {self.release.num_samples} synthetic "
        "records (post-processing)"
      )
    else:
      lines.append(f"  per-record epsilon = {self.per_record_epsilon:.4g}")
    nats = self.release_information_nats
    if nats is not None:
      lines.append(
        f"  each record's released latents carry at most {nats:.3g} nats "
        f"({nats / math.log(2.0):.3g} bits) about it (a capacity bound on the latents alone; "
        "what the weights carry is not counted)"
      )
    if self.central_epsilon is not None and self.central_epsilon < self.per_record_epsilon:
      if self.scope is Scope.CONDITIONAL:
        # Its number is in the JSON report; printed beside the headline it would read as a
        # guarantee, which this scope does not give (CAVEAT_CONDITIONAL_SHUFFLE).
        lines.append(
          "  no central epsilon of the shuffled release is claimed in this scope: a decoder "
          "fit without DP may link synthetic records to their sources (see the caveats)"
        )
      else:
        lines.append(
          f"  central epsilon of the shuffled release = {self.central_epsilon:.4g} "
          f"at delta = {self.shuffle_delta:g}"
        )
    if "dp_sgd" in self.components:
      lines.append(f"  DP-SGD training alone: epsilon = {self.components['dp_sgd']:.4g}")
    lines.append(f"  {self.scope_statement}")
    lines.append(f"  {self.noise_statement}")
    return "\n".join(lines)

  # ------------------------------------------------------------------------- JSON.

  def to_dict(self) -> dict:
    """Inputs, numbers and the derived statements, as plain JSON types."""
    return {
      "schema_version": SCHEMA_VERSION,
      "epsilon": self.epsilon,
      "delta": self.delta,
      "headline": self.headline,
      "scope": self.scope.value,
      "scope_statement": self.scope_statement,
      "neighboring_relation": self.neighboring_relation.value,
      "neighboring_relation_statement": self.neighboring_relation.statement,
      "release": self.release.as_dict(),
      "lipschitz": self.lipschitz,
      "certificate": dict(self.certificate),
      "domain": self.domain,
      "domain_digest": self.domain_digest,
      "diameter": self.diameter,
      "sensitivity": self.sensitivity,
      "per_record_epsilon": self.per_record_epsilon,
      "central_epsilon": self.central_epsilon,
      "shuffle_delta": self.shuffle_delta,
      "components": dict(self.components),
      "num_records": self.num_records,
      "shuffled": self.shuffled,
      "dpsgd": None if self.dpsgd is None else self.dpsgd.as_dict(),
      "noise_seeded": self.noise_seeded,
      "training_seeded": self.training_seeded,
      "noise_statement": self.noise_statement,
      "delta_split": self.delta_split,
      "value_discretization_interval": self.value_discretization_interval,
      "accounting_methods": self.accounting_methods,
      "caveats": list(self.caveats),
      "notes": list(self.notes),
      "versions": dict(self.versions),
    }

  def to_json(self) -> str:
    """JSON text (sorted keys; floats round-trip exactly)."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "PrivacyReport":
    """Rebuilds a report; rejects unknown fields and statements its inputs do not imply."""
    if not isinstance(data, Mapping):
      raise ValueError(f"a privacy report must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
      raise ValueError(
        f"unsupported privacy report schema_version {version!r} (this lipdp reads version "
        f"{SCHEMA_VERSION}; earlier versions lack the domain digest, and may lack the "
        "certificate, that a release is verified against)"
      )
    stored = {f.name for f in dataclasses.fields(cls)}
    known = stored | set(_DERIVED_TEXT_FIELDS) | {"schema_version"}
    unknown = set(data) - known
    if unknown:
      raise ValueError(f"unknown PrivacyReport fields: {sorted(unknown)}")
    missing = sorted(known - set(data))
    if missing:
      raise ValueError(f"missing PrivacyReport fields: {missing}")
    relation = data["neighboring_relation"]
    if relation != events.REPLACE_ONE.value:
      raise ValueError(
        f"neighboring_relation {relation!r} is not lipdp's relation "
        f"{events.REPLACE_ONE.value!r}; lipdp accounts replace-one only"
      )
    for name in ("shuffled", "noise_seeded", "training_seeded"):
      if not isinstance(data[name], bool):
        raise ValueError(f"{name} must be true or false, got {data[name]!r}")
    if not isinstance(data["components"], Mapping):
      raise ValueError(f"components must be an object, got {data['components']!r}")
    report = cls(
      release=events.release_from_dict(data["release"]),
      lipschitz=data["lipschitz"],
      domain=data["domain"],
      domain_digest=data["domain_digest"],
      diameter=data["diameter"],
      delta=data["delta"],
      scope=Scope.parse(data["scope"]),
      num_records=data["num_records"],
      shuffled=data["shuffled"],
      dpsgd=None if data["dpsgd"] is None else events.DPSGDEvent.from_dict(data["dpsgd"]),
      noise_seeded=data["noise_seeded"],
      training_seeded=data["training_seeded"],
      certificate=dict(data["certificate"]),
      delta_split=data["delta_split"],
      value_discretization_interval=data["value_discretization_interval"],
      versions=dict(data["versions"]),
      notes=tuple(data["notes"]),
      sensitivity=data["sensitivity"],
      per_record_epsilon=data["per_record_epsilon"],
      central_epsilon=data["central_epsilon"],
      shuffle_delta=data["shuffle_delta"],
      components=dict(data["components"]),
      epsilon=data["epsilon"],
      headline=data["headline"],
    )
    derived = report.to_dict()
    for name in _DERIVED_TEXT_FIELDS:
      written = data[name]
      written = list(written) if isinstance(written, (list, tuple)) else written
      expected = derived[name]
      if written != expected:
        raise ValueError(
          f"{name} in the file does not match the one its inputs imply; the "
          f"statements of a report are derived, not free text (file: "
          f"{written!r}; implied: {expected!r})"
        )
    return report

  @classmethod
  def from_json(cls, text: str) -> "PrivacyReport":
    return cls.from_dict(json.loads(text))

  def save(self, path: str) -> None:
    """Writes the JSON atomically (a temporary file in the same folder, then rename)."""
    files.atomic_write_text(path, self.to_json() + "\n")

  @classmethod
  def load(cls, path: str) -> "PrivacyReport":
    with open(path, "r", encoding="utf-8") as f:
      return cls.from_json(f.read())

  # --------------------------------------------------------------------- Recompute.

  def _recompute(self) -> accounting_lib.Accounting:
    return accounting_lib.account(
      release=self.release,
      lipschitz=self.lipschitz,
      diameter=self.diameter,
      delta=self.delta,
      scope=self.scope,
      num_records=self.num_records,
      shuffled=self.shuffled,
      dpsgd=self.dpsgd,
      delta_split=self.delta_split,
      value_discretization_interval=self.value_discretization_interval,
    )

  def recompute(self) -> dict:
    """All numbers recomputed from this report's inputs (L, D, sigma, ...)."""
    return dataclasses.asdict(self._recompute())

  def recompute_epsilon(self) -> float:
    """The headline epsilon recomputed purely from the report's inputs."""
    return self._recompute().epsilon

  def verify(self, rtol: float = 1e-9) -> None:
    """Raises ValueError unless the report is consistent (see the module docstring).

    Checks: every stored number is a finite real (or None where the case has none), a
    per-record release carries its certificate and the certified per-layer bounds (times any
    release scaling) do not exceed L, and every stored number equals its
    recomputation from the inputs within `rtol` (relative). It does NOT check that the inputs
    (L, the scope, the number of records) are true; see `lipdp.release.verify_release`.

    Args:
      rtol: relative tolerance. On the machine and library versions that wrote the report the
        recomputation is bit-identical (rtol=0 passes); the default leaves room for last-bit
        differences of FFTs elsewhere, and is far below any real discrepancy (a factor-2
        sensitivity error changes epsilon by O(1)).
    """
    problems = []
    for name in _NUMBER_FIELDS:
      value = getattr(self, name)
      if isinstance(self.release, events.CentralRelease):
        required = ("epsilon",)
      elif isinstance(self.release, events.PriorSampling):
        required = ("epsilon", "per_record_epsilon")
      else:
        required = ("epsilon", "per_record_epsilon", "sensitivity")
      if not _finite_or_none(value) or (value is None and name in required):
        problems.append(f"{name} is {value!r}, not a finite number")
    for name, value in self.components.items():
      if not (_finite_or_none(value) and value is not None):
        problems.append(f"components[{name}] is {value!r}, not a finite number")
    if self.domain_digest is not None and not _is_digest(self.domain_digest):
      problems.append(f"domain_digest is {self.domain_digest!r}, not a SHA-256 hex digest")
    if problems:
      raise ValueError("PrivacyReport is not valid: " + "; ".join(problems))
    try:
      fresh = self._recompute()
    except ValueError as e:
      raise ValueError(f"PrivacyReport inputs are not valid: {e}") from e
    problems.extend(_certificate_problems(self))

    def check(name, stored, recomputed):
      if stored is None or recomputed is None:
        if stored is not recomputed:
          problems.append(f"{name}: stored {stored!r}, recomputed {recomputed!r}")
      elif not abs(stored - recomputed) <= rtol * abs(recomputed):  # False for NaN too
        problems.append(f"{name}: stored {stored!r}, recomputed {recomputed!r}")

    for name in _NUMBER_FIELDS:
      check(name, getattr(self, name), getattr(fresh, name))
    if self.headline != fresh.headline:
      problems.append(f"headline: stored {self.headline!r}, recomputed {fresh.headline!r}")
    if set(self.components) != set(fresh.components):
      problems.append(
        f"components: stored {sorted(self.components)}, recomputed {sorted(fresh.components)}"
      )
    else:
      for key, value in fresh.components.items():
        check(f"components[{key}]", self.components[key], value)
    if problems:
      raise ValueError("PrivacyReport does not verify: " + "; ".join(problems))


_CERTIFICATE_KEYS = (
  "layer_bounds",
  "mean_scale",
  "log_sigma_lipschitz",
  "log_sigma_scale",
  "arithmetic",
  "rounding_error",
)
# The arithmetic of the released means (absent: float32, the releases before 2026-12-07).
_ARITHMETICS = ("float32", "float64")


def _checked_certificate(certificate: Mapping[str, Any]) -> dict:
  unknown = set(certificate) - set(_CERTIFICATE_KEYS)
  if unknown:
    raise ValueError(
      f"unknown certificate entries {sorted(unknown)}; known: {list(_CERTIFICATE_KEYS)}"
    )
  out = {}
  if "layer_bounds" in certificate:
    out["layer_bounds"] = [
      _validation.positive(b, "layer bound") for b in certificate["layer_bounds"]
    ]
  for name in ("mean_scale", "log_sigma_scale"):
    if name in certificate:
      value = _validation.positive(certificate[name], name)
      if value > 1:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
      out[name] = value
  if "log_sigma_lipschitz" in certificate:
    out["log_sigma_lipschitz"] = _validation.nonnegative(
      certificate["log_sigma_lipschitz"], "log_sigma_lipschitz"
    )
  if "arithmetic" in certificate:
    if certificate["arithmetic"] not in _ARITHMETICS:
      raise ValueError(
        f"certificate['arithmetic'] must be one of {_ARITHMETICS}, got "
        f"{certificate['arithmetic']!r}"
      )
    out["arithmetic"] = certificate["arithmetic"]
  if "rounding_error" in certificate:
    out["rounding_error"] = _validation.nonnegative(certificate["rounding_error"], "rounding_error")
  return out


def _missing_certificate(release: events.ReleaseEvent, certificate: Mapping[str, Any]) -> list:
  """What the release needs of its certificate and lacks (or holds without need), in words.

  A per-record release's epsilon rests on L, so its report carries what the certificate of the
  weights gave: the per-layer bounds of the encoder mean, and for the heteroscedastic mechanism
  the certified L_s of log sigma. Without them a report states an L that nothing in it backs:
  L divided by 5, every number recomputed, would verify. Prior sampling and central
  releases have no encoder in their accounting, so no certificate.
  """
  if isinstance(release, (events.PriorSampling, events.CentralRelease)):
    if certificate:
      return [
        f"certificate: a {release.type_name} release has no encoder to certify, got entries "
        f"{sorted(certificate)}"
      ]
    return []
  problems = []
  if not certificate.get("layer_bounds"):
    problems.append(
      "certificate: a per-record release must carry the certified layer bounds of its "
      "encoder mean (certificate['layer_bounds']), and has none"
    )
  if isinstance(release, events.HeteroscedasticRelease) and "log_sigma_lipschitz" not in (
    certificate
  ):
    problems.append(
      "certificate: a heteroscedastic release must carry the certified L_s of its log sigma "
      "(certificate['log_sigma_lipschitz']), and has none"
    )
  return problems


def _certificate_problems(report: "PrivacyReport") -> list:
  """The certificate is there, and its numbers, after any release-time scaling, are within
  those accounted: prod(layer_bounds) * mean_scale <= L, log_sigma_lipschitz *
  log_sigma_scale <= L_s."""
  try:
    cert = _checked_certificate(report.certificate)
  except (ValueError, TypeError) as e:
    return [f"certificate: {e}"]
  problems = _missing_certificate(report.release, cert)
  slack = 1 + 1e-12  # float64 rounding of the products below
  if "layer_bounds" in cert and report.lipschitz is not None:
    certified = math.prod(cert["layer_bounds"]) * cert.get("mean_scale", 1.0)
    if not certified <= report.lipschitz * slack:
      problems.append(
        f"the certified bound of the released encoder mean, {certified}, exceeds "
        f"the L used, {report.lipschitz}"
      )
  if "log_sigma_lipschitz" in cert:
    bound = getattr(report.release, "lipschitz_log_sigma", None)
    certified = cert["log_sigma_lipschitz"] * cert.get("log_sigma_scale", 1.0)
    if bound is None or not certified <= bound * slack:
      problems.append(
        f"the certified L_s of the released log sigma, {certified}, exceeds the L_s used, {bound}"
      )
  return problems


def make_report(
  release: events.ReleaseEvent,
  *,
  lipschitz: Optional[float],
  domain: str,
  diameter: Optional[float],
  domain_description: Optional[Mapping[str, Any]] = None,
  delta: float,
  scope,
  num_records: int,
  shuffled: bool = False,
  dpsgd: Optional[events.DPSGDEvent] = None,
  noise_seeded: bool = False,
  training_seeded: bool = False,
  certificate: Optional[Mapping[str, Any]] = None,
  delta_split: float = 0.5,
  value_discretization_interval: float = composition.DEFAULT_VALUE_DISCRETIZATION,
  extra_versions: Optional[Mapping[str, str]] = None,
  notes: Sequence[str] = (),
) -> PrivacyReport:
  """Builds a `PrivacyReport`, computing every number with `lipdp.privacy.accounting`.

  Args:
    release: the per-record mechanism (`GaussianRelease` or `HeteroscedasticRelease`),
      `PriorSampling`, or a `CentralRelease` (scope 'dp-measurements').
    lipschitz: certified Lipschitz bound L of the released encoder mean (> 0); None for prior
      sampling and central releases.
    domain: plain-words description of the declared domain.
    domain_description: the domain's description (`domain.describe()`, what a release writes
      to domain.json); the report records its `domain_digest`. Required of a report that is
      to be released (`lipdp.release.write_release`).
    diameter: the domain's l2 diameter D (> 0), from `lipdp.privacy.diameters`; None for prior
      sampling and central releases.
    delta: target delta in (0, 1).
    scope: a `Scope` or its value ('public', 'dp-sgd', 'conditional', 'dp-measurements').
    num_records: the number of private records released.
    shuffled: True only if the release is a shuffled multiset with no record identifiers.
    dpsgd: the training event, required iff the scope is 'dp-sgd'.
    noise_seeded: whether the release noise came from a fixed seed.
    training_seeded: whether the DP-SGD noise came from a fixed seed (scope 'dp-sgd' only).
    certificate: what the certificate gave (see `PrivacyReport.certificate`); required for a
      per-record release (its "layer_bounds", and "log_sigma_lipschitz" if heteroscedastic),
      refused for prior sampling and central releases.
    delta_split: share of delta for the release when delta must be split.
    value_discretization_interval: PLD grid.
    extra_versions: caller-supplied versions (e.g. jax, flax).
    notes: free-form remarks.
  """
  if not isinstance(domain, str) or not domain.strip():
    raise ValueError("domain must be a non-empty description of the declared input domain.")
  if isinstance(release, events.PriorSampling):
    lipschitz = diameter = None  # no per-record mechanism: neither enters the accounting
    if noise_seeded or shuffled:
      raise ValueError(
        "prior sampling has no release noise to seed and nothing to shuffle "
        "(its draws are independent of the data)"
      )
  if isinstance(release, events.CentralRelease):
    if lipschitz is not None or diameter is not None or shuffled:
      raise ValueError(
        "a central release has no Lipschitz bound, no domain diameter in its "
        "accounting and no shuffling claim: pass lipschitz=None, "
        "diameter=None, shuffled=False"
      )
  for name, flag in (("noise_seeded", noise_seeded), ("training_seeded", training_seeded)):
    if not isinstance(flag, bool):
      raise ValueError(f"{name} must be a bool, got {flag!r}.")
  scope = Scope.parse(scope)
  if training_seeded and scope is not Scope.DP_SGD:
    raise ValueError("training_seeded applies to the DP-SGD training of scope 'dp-sgd' only.")
  certificate = _checked_certificate(certificate or {})
  value_discretization_interval = _validation.positive(
    value_discretization_interval, "value_discretization_interval"
  )
  result = accounting_lib.account(
    release=release,
    lipschitz=lipschitz,
    diameter=diameter,
    delta=delta,
    scope=scope,
    num_records=num_records,
    shuffled=shuffled,
    dpsgd=dpsgd,
    delta_split=delta_split,
    value_discretization_interval=value_discretization_interval,
  )
  missing = _missing_certificate(release, certificate)
  if missing:
    raise ValueError("; ".join(missing))
  return PrivacyReport(
    release=release,
    lipschitz=None if lipschitz is None else float(lipschitz),
    domain=domain,
    domain_digest=None if domain_description is None else domain_digest(domain_description),
    diameter=None if diameter is None else float(diameter),
    delta=float(delta),
    scope=scope,
    num_records=int(num_records),
    shuffled=shuffled,
    dpsgd=dpsgd,
    noise_seeded=noise_seeded,
    training_seeded=training_seeded,
    certificate=certificate,
    delta_split=float(delta_split),
    value_discretization_interval=float(value_discretization_interval),
    versions=library_versions(extra_versions),
    notes=tuple(str(n) for n in notes),
    sensitivity=result.sensitivity,
    per_record_epsilon=result.per_record_epsilon,
    central_epsilon=result.central_epsilon,
    shuffle_delta=result.shuffle_delta,
    components=dict(result.components),
    epsilon=result.epsilon,
    headline=result.headline,
  )
