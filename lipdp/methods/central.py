"""The methods of `lipdp.baselines`: the central baselines and the non-private references.

A central baseline (MST, AIM, the private measure, and any private baseline registered there)
reads the private records only through noisy measurements, with one central (epsilon, delta)
in scope 'dp-measurements' that covers everything it releases; no model is trained. A reference
('copy_train') has no guarantee (scope 'none'): it is fit the same way, with no epsilon, and the
run writes no release and no report for it, only its evaluation.
"""

import dataclasses
import inspect
import logging
import time
from typing import List

from lipdp import baselines
from lipdp import checks
from lipdp import console
from lipdp import methods
from lipdp import spec as spec_lib

log = logging.getLogger("lipdp.methods.central")


@dataclasses.dataclass
class Prepared:
  """What `prepare` fixed before anything is written."""

  plan: None = None  # a central baseline plans nothing before it measures
  warnings: List[str] = dataclasses.field(default_factory=list)


def prepare(spec: spec_lib.Spec, data) -> Prepared:
  """Checks that the method can run here (its optional dependency), and warns of a weak budget."""
  try:  # before anything is written: a missing optional dependency is a setting error
    baselines.check_available(spec.method.name)
  except ImportError as e:
    raise ValueError(str(e)) from e
  if spec.privacy is None:
    log.info("%s", console.no_guarantee_line(spec.method.name))
    return Prepared()
  p = spec.privacy
  warnings = checks.weak_budget_warnings(p.epsilon, p.delta, len(data.train))
  log.info("%s", console.baseline_line(spec.method.name, p.epsilon, p.delta))
  return Prepared(warnings=warnings)


def fit_options(spec: spec_lib.Spec, domain) -> dict:
  """The options the baseline is fit with: its declared bins, its settings section, then
  `method.options`.

  Numeric bins are declared, never derived from the data, and offered to every baseline whose
  fit takes `bins` (MST, AIM): the schema's "bins" entries when the table has a schema file,
  else `method.baseline_bins` equal-width bins over each column's declared bounds (unset:
  `lipdp.baselines.discretize.DEFAULT_NUMERIC_BINS`). A baseline with a settings section of its
  own in the spec, named after it (`spec.dp_merf`), gets the fields that are set (the module's
  defaults for the others).
  """
  options = {}
  fit = baselines.BASELINES[spec.method.name]
  if "bins" in inspect.signature(fit).parameters:
    schema = spec.data.schema or spec.data.data_options.get("schema")
    if schema:
      options["bins"] = schema
    elif spec.method.baseline_bins is not None:
      numeric = [c.name for c in getattr(domain, "columns", ()) if hasattr(c, "low")]
      options["bins"] = {name: spec.method.baseline_bins for name in numeric}
  settings = getattr(spec, spec.method.name, None)  # e.g. spec.dp_merf
  if callable(getattr(settings, "options", None)):
    options.update(settings.options())
  options.update(spec.method.options)
  return options


def generate(
  spec: spec_lib.Spec, data, workdir: str, prepared: Prepared, progress: bool
) -> methods.Generated:
  """Fits the baseline on the private training records."""
  del workdir, prepared, progress  # nothing is trained or checkpointed
  fit = baselines.BASELINES[spec.method.name]
  start = time.time()
  if spec.privacy is None:  # a reference: no epsilon, never a made-up one
    out = fit(data.train, data.domain, epsilon=None, delta=None, seed=spec.release.noise_seed)
  else:
    out = fit(
      data.train,
      data.domain,
      epsilon=spec.privacy.epsilon,
      delta=spec.privacy.delta,
      seed=spec.release.noise_seed,
      notes=tuple(data.notes),
      **fit_options(spec, data.domain),
    )
  return methods.Generated(
    out.records, out.report, info=dict(out.info), timings={"fit_s": time.time() - start}
  )
