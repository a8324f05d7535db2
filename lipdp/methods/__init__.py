"""The methods a run can use to make synthetic records, by name: one registry.

Three kinds, each run by one module of this package:

* `VAE` (`lipdp.methods.vae`): 'lipdp' releases each private record's k noisy latents through
  the certified encoder, decoded; 'prior' decodes latents drawn from the prior (the DP-SGD VAE
  baseline in scope 'dp-sgd'; with scope 'none', the VAE trained without DP, a reference).
* `CENTRAL` (`lipdp.methods.central`): every differentially private baseline of
  `lipdp.baselines` (MST, AIM, the private measure, and any baseline registered there later),
  one central (epsilon, delta) in scope 'dp-measurements'.
* `REFERENCE` (`lipdp.methods.central`): the non-private references of `lipdp.baselines`
  ('copy_train'), scope 'none': no guarantee, no release, no report, only their evaluation.

A baseline added to `lipdp.baselines.BASELINES` (and, if private, `PRIVATE_BASELINES`) is a
method of the main job, the sweeps, `lipdp synthesize --method` and `lipdp.synthesize` with no
other change. This module is light (no JAX): `lipdp.spec` validates names against it.
"""

import dataclasses
import importlib
from typing import Any, Dict, Optional, Tuple

import numpy as np

from lipdp import baselines

VAE = "vae"
CENTRAL = "central"
REFERENCE = "reference"


@dataclasses.dataclass(frozen=True)
class Method:
  """One way of making synthetic records.

  Attributes:
    name: the registry name (`--config.method`, `lipdp synthesize --method`).
    kind: VAE, CENTRAL or REFERENCE (module docstring).
    description: what it releases, in a few words (for messages and help).
    can_run_without_guarantee: it may run in scope 'none', as a reference of the evaluation.
    default_scope: the scope `lipdp synthesize` and `lipdp.synthesize` give it when none is
      asked for (None: the settings' default).
  """

  name: str
  kind: str
  description: str
  can_run_without_guarantee: bool = False
  default_scope: Optional[str] = None

  @property
  def module(self):
    """The module that runs it (`prepare` and `generate`), imported when first needed."""
    return importlib.import_module("lipdp.methods.vae" if self.kind == VAE else _CENTRAL_MODULE)


_CENTRAL_MODULE = "lipdp.methods.central"


@dataclasses.dataclass
class Generated:
  """What a method made: the synthetic records and what goes with them.

  Attributes:
    records: (n_synthetic, domain.dim) synthetic records in the domain.
    report: the release's `lipdp.privacy.PrivacyReport`; None without a guarantee (scope
      'none'), and then nothing is released.
    model, variables: the trained VAE (VAE methods), else None.
    info: what the mechanism chose (a baseline's `BaselineRelease.info`): functions of the
      release or of public settings only.
    timings: seconds per stage ('train_s', 'fit_s', 'release_s').
    compare: other records to evaluate beside the release, by name (evaluation.json holds their
      metrics under "NAME/"): e.g. 'prior_sampling', the same weights sampled from the prior.
  """

  records: np.ndarray
  report: Any
  model: Any = None
  variables: Any = None
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)
  timings: Dict[str, float] = dataclasses.field(default_factory=dict)
  compare: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


_DESCRIPTIONS = {
  "mst": "MST on Private-PGM: noisy one- and two-way marginals of a maximum spanning tree",
  "aim": "AIM on Private-PGM: adaptively selected noisy marginals",
  "private_measure": "the private measure: noisy counts on a binary partition (2-4 numbers)",
  "copy_train": "publishes the private records themselves",
}


def _registry():
  methods = {
    # End to end by default (one epsilon covers the weights and the release); the conditional
    # scope, whose epsilon does not cover the weights, only when asked for by name.
    "lipdp": Method(
      "lipdp", VAE, "each record's noisy latents through the certified encoder", False, "dp-sgd"
    ),
    "prior": Method(
      "prior", VAE, "latents drawn from the VAE's prior (the DP-SGD VAE)", True, "dp-sgd"
    ),
  }
  for name in baselines.BASELINES:
    private = name in baselines.PRIVATE_BASELINES
    description = _DESCRIPTIONS.get(name, f"the baseline {name} of lipdp.baselines")
    kind, scope = (CENTRAL, "dp-measurements") if private else (REFERENCE, None)
    methods[name] = Method(name, kind, description, not private, scope)
  return methods


METHODS = _registry()


def get(name: str) -> Optional[Method]:
  """The method called `name`, or None."""
  return METHODS.get(name)


def names(kind: Optional[str] = None) -> Tuple[str, ...]:
  """The registered names (of one kind), in registry order."""
  return tuple(n for n, m in METHODS.items() if kind is None or m.kind == kind)


def releasing_names() -> Tuple[str, ...]:
  """The methods that release records under a guarantee (what `lipdp synthesize` offers)."""
  return names(VAE) + names(CENTRAL)
