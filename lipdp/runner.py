"""The one run: from a `lipdp.spec.Spec` to a release, its report and its evaluation.

`run(spec, workdir)` is what every entry point calls: experiments/main.py (`./run.sh`), the
`lipdp` command, `lipdp.synthesize`, the sweeps and experiments/baselines.py. Every method is a
spec of this run (`lipdp.methods`): lipdp's release and the DP-SGD VAE ('lipdp', 'prior'), the
central baselines ('mst', 'aim', 'private_measure', ...) and the references without a guarantee
(scope 'none'). It writes the work directory's layout (`lipdp.workdir`):

    workdir/
      config.json, checkpoints/, metrics.jsonl, train_seed.json   private: never release
      release/               synthetic.npz, privacy_report.json, domain.json (lipdp.release)
      evaluation.json        measured on the private holdout: NOT differentially private
      samples.png            real versus synthetic records: shows private records

In order, and what is checked before anything is written: the settings (validated when the
Spec was built), the work directory (`workdir.check`) and a release already in it
(`refuse_release`), the data (loaded and encoded in full), and the method's own checks
(`prepare`: the budget, fixed before training from the settings and the number of records,
refused if the release cannot honour it and warned about if it is weak; a missing optional
dependency). config.json is written only once all of them passed. Then the method makes its
records (`generate`); the release is written into release.partial/ and renamed into place, so a
failure leaves no half-written release; a degenerate release is warned about; and the records
are evaluated on the holdout. A run without a guarantee writes no release and no report: only
its evaluation.

Progress goes to the logger "lipdp" (the words are `lipdp.console`'s); warnings also land in
`RunResult.warnings`.
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Any, Dict, List, Optional

import numpy as np

from lipdp import checks
from lipdp import console
from lipdp import data as data_lib
from lipdp import evaluation
from lipdp import files
from lipdp import methods
from lipdp import privacy
from lipdp import release as release_lib
from lipdp import spec as spec_lib
from lipdp import workdir as workdir_lib
from lipdp.evaluation import figures
from lipdp.models import likelihood

log = logging.getLogger("lipdp.runner")

# What evaluation.json holds beyond `evaluate_release`'s metrics: the report's headline.
REPORT_METRICS = (
  "meta/privacy_epsilon",
  "meta/privacy_delta",
  "meta/privacy_scope",
  "meta/privacy_headline",
)

# Settings that may change between a run and its resumption: they act after training.
RESUMABLE_SETTINGS = (
  "noise_seed",
  "noise_sampler",
  "decoding",
  "temperature",
  "num_figure_samples",
  "shuffled_release",
  "replace_release",
  "evaluation",
)


@dataclasses.dataclass
class RunResult:
  """What a run made.

  Attributes:
    spec: the settings it ran with.
    release_dir: the release folder; None without a guarantee (nothing released).
    report: the release's privacy report; None without a guarantee.
    synthetic_records: the synthetic records (n_synthetic, domain.dim).
    data: the data set (`lipdp.data.PreparedData`): private training records and holdout.
    model, variables: the trained VAE (VAE methods), else None.
    plan: the `lipdp.privacy.BudgetPlan` fixed before training (VAE methods with a guarantee).
    info: what a baseline's mechanism chose (`BaselineRelease.info`).
    metrics: what evaluation.json holds (lipdp.evaluation; not DP), or None.
    timings: seconds per stage.
    warnings: the run's warnings in words (also logged): a weak budget, a degenerate release.
  """

  spec: spec_lib.Spec
  release_dir: Optional[str]
  report: Optional[privacy.PrivacyReport]
  synthetic_records: np.ndarray
  data: Any
  model: Any = None
  variables: Any = None
  plan: Optional[privacy.BudgetPlan] = None
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)
  metrics: Optional[dict] = None
  timings: Dict[str, float] = dataclasses.field(default_factory=dict)
  warnings: List[str] = dataclasses.field(default_factory=list)

  @property
  def method(self) -> str:
    return self.spec.method.name


def load_data(data_spec: spec_lib.DataSpec) -> data_lib.PreparedData:
  """The run's data set, split and in its declared domain (`lipdp.data.load_dataset`)."""
  name, options = data_spec.load_arguments()
  return data_lib.load_dataset(name, **options)


def refuse_release(workdir: str, replace: bool) -> None:
  """Refuses a second release into `workdir` unless `replace` (only sound if unpublished)."""
  if workdir_lib.holds_release(workdir) and not replace:
    raise spec_lib.SettingError(
      f"{workdir} already holds a release. A second release from the same private records "
      "composes with the first (the reports do not add up by themselves); to replace it, and "
      f"only if it was never published, pass {spec_lib.setting('replace_release', 'true')}, "
      "or use another work directory"
    )


def data_digest(data: data_lib.PreparedData) -> str:
  """SHA-256 (hex) of the split records, the labels and the declared domain: what a run saw.

  config.json names the data (a CSV's path, a schema's path); this says what was in them, so a
  file edited between a crash and the resume is not taken for the same run's data.
  """
  digest = hashlib.sha256()
  _update_with_arrays(digest, (data.train, data.holdout, data.train_labels, data.holdout_labels))
  digest.update(privacy.domain_digest(data.domain.describe()).encode())
  return digest.hexdigest()


def public_digest(records: np.ndarray) -> str:
  """SHA-256 (hex) of the public records a run trains on without noise (scope 'public', or
  the plain steps before DP-SGD): the report says how many records of which data set the
  weights saw, so a resume must see the same ones."""
  digest = hashlib.sha256()
  _update_with_arrays(digest, (records,))
  return digest.hexdigest()


def _update_with_arrays(digest, arrays) -> None:
  for part in arrays:
    if part is not None:
      part = np.ascontiguousarray(part)
      digest.update(f"{part.dtype.str}{part.shape}".encode())
      digest.update(part.tobytes())


def public_records_of(spec: spec_lib.Spec, prepared) -> Optional[np.ndarray]:
  """The public records `prepared` trains on without noise, or None (no public data)."""
  if spec.scope is privacy.Scope.PUBLIC:
    return getattr(prepared, "fit_records", None)
  return getattr(prepared, "pretrain_records", None)


def open_for(spec: spec_lib.Spec, workdir: str, domain=None, data=None, public=None) -> None:
  """Creates the work directory and records (or compares) the run's settings in it.

  With the run's `domain`, the numeric likelihood is compared as what it builds (each column's
  bins, `lipdp.models.likelihood.numeric_bins_for`), so a setting that builds the same model,
  such as 'auto' on a table whose numeric columns are all declared integer, is not another run.
  With the run's `data`, its digest (`data_digest`) is compared too, and with the `public`
  records it trains on without noise, theirs (`public_digest`); a work directory written
  before a digest existed gets it without a check.
  """
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f"cannot create the work directory {workdir}: {e.strerror or e}") from e
  current = _comparable(json.loads(spec_lib.to_config(spec).to_json()))
  config_path = workdir_lib.path(workdir, workdir_lib.CONFIG_FILE)
  if os.path.exists(config_path):
    with open(config_path, encoding="utf-8") as f:
      previous = _with_legacy_settings(_comparable(json.load(f)))
    previous, compared = _as_compared(previous, domain), _as_compared(current, domain)
    if previous != compared:
      changed = sorted(
        f"{k}: {previous.get(k)!r} -> {compared.get(k)!r}"
        for k in set(previous) | set(compared)
        if previous.get(k) != compared.get(k)
      )
      hint = ""
      if any(c.startswith("train.dp_sum: 'float32' -> 'auto'") for c in changed):
        hint = (
          " (train.dp_sum: DP-SGD's default sum became 'auto', the bounded float sum, on "
          "2026-12-08; to resume or release again the run this directory holds, rather than "
          "train on the same private records a second time, pass train.dp_sum='float32')"
        )
      if any(c.startswith("model.numeric_bins_per_block") for c in changed):
        hint += (
          " (model.numeric_bins_per_block: the bins model.numeric_likelihood and "
          "model.numeric_bins give each block; a run from before 'auto' became the default "
          "was 'binned')"
        )
      raise ValueError(
        f"{workdir} holds a run with other settings ({'; '.join(changed)}){hint}; "
        "use a new work directory or delete it"
      )
  digest_path = workdir_lib.path(workdir, workdir_lib.DATA_DIGEST_FILE)
  digests = {}
  if data is not None:
    digests["sha256"] = data_digest(data)
    if public is not None:
      digests["public_sha256"] = public_digest(public)
  recorded = {}
  if digests and os.path.exists(digest_path):
    with open(digest_path, encoding="utf-8") as f:
      recorded = json.load(f)
    if recorded.get("sha256") != digests["sha256"]:
      raise ValueError(
        f"{workdir} holds a run on other data: the same settings, but the records, labels or "
        "declared domain differ (a data or schema file changed since the run began); use a "
        "new work directory or delete it"
      )
    # A digest file from before the public digest existed lacks it: recorded, not checked. A
    # caller without the public records (experiments/gradient_norms.py) checks the private ones.
    public_now = digests.get("public_sha256")
    if public_now is not None and recorded.get("public_sha256", public_now) != public_now:
      raise ValueError(
        f"{workdir} holds a run on other public data: the same settings, but the public "
        "records it trains on without noise differ (the public data set changed since the run "
        "began); use a new work directory or delete it"
      )
  files.atomic_write_text(config_path, json.dumps(current, indent=2, sort_keys=True))
  merged = {**recorded, **digests}
  if digests and merged != recorded:
    files.atomic_write_text(digest_path, json.dumps(merged, sort_keys=True))


# Settings added after work directories were first written, with the meaning a config.json
# written without them had: such a run is the same run under its older spelling.
# The microbatch a sum on the grid ran at before train.dp_microbatch existed (3cffead,
# 2026-12-08): each clipping path's default then, as literals, so that a later default cannot
# change what an older work directory meant.
GRID_MICROBATCH_BEFORE_THE_SETTING = {"ghost": 128, "vmap": 64}
LEGACY_SETTINGS = {
  ("model", "numeric_likelihood"): "binned",
  ("train", "learning_rate_decay"): "constant",
  ("train", "public_pretrain_steps"): 0,
  ("train", "noise_samples"): 1,
  ("train", "dp_sum"): "float32",
  ("train", "dp_microbatch"): None,
}


def _with_legacy_settings(settings: dict) -> dict:
  settings = {k: dict(v) if isinstance(v, dict) else v for k, v in settings.items()}
  train = settings.get("train")
  if (
    isinstance(train, dict)
    and "dp_microbatch" not in train
    and train.get("dp_sum") in ("fixed-point", "bounded-float32")
  ):
    # Before train.dp_microbatch, a sum on the grid ran at its clipping path's default
    # microbatch; None now picks a smaller one from the batch (DPSGDConfig.microbatch_for).
    train["dp_microbatch"] = GRID_MICROBATCH_BEFORE_THE_SETTING[train.get("dp_clipping", "ghost")]
  for (section, key), value in LEGACY_SETTINGS.items():
    if isinstance(settings.get(section), dict):
      settings[section].setdefault(key, value)
  return settings


def _numeric_likelihood_resolved(settings: dict, domain) -> dict:
  """`settings` with model.numeric_likelihood and model.numeric_bins replaced by the bins each
  block gets in `domain` (unchanged without a domain)."""
  model = settings.get("model")
  if domain is None or not isinstance(model, dict) or "numeric_likelihood" not in model:
    return settings
  model = dict(model)
  model["numeric_bins_per_block"] = list(
    likelihood.numeric_bins_for(
      domain,
      model.pop("numeric_likelihood"),
      int(model.pop("numeric_bins", spec_lib.ModelSpec.numeric_bins)),
    )
  )
  return {**settings, "model": model}


def _flat(settings: dict, prefix: str = "") -> dict:
  """Nested settings as {"section.key": value}, so a refusal names the settings that differ."""
  out = {}
  for k, v in settings.items():
    if isinstance(v, dict) and v:
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def after_training(settings: dict) -> tuple:
  """The top-level keys of a run's settings (config.json's layout) that may differ between the
  run and its resumption because they act after training: RESUMABLE_SETTINGS, except
  `shuffled_release` in scope 'dp-sgd' (plan_budget calibrates DP-SGD's noise with the
  shuffled release's bound, so the weights depend on it), and also `k` for method 'prior' in
  scope 'dp-sgd' with a homoscedastic encoder (there k only counts the records drawn from the
  prior; elsewhere it enters the encoder's calibration)."""
  dpsgd = settings.get("scope") == privacy.Scope.DP_SGD.value
  keys = tuple(k for k in RESUMABLE_SETTINGS if not (dpsgd and k == "shuffled_release"))
  model = settings.get("model") or {}
  if settings.get("method") == "prior" and dpsgd and not model.get("heteroscedastic"):
    keys += ("k",)
  return keys


def _comparable(settings: dict) -> dict:
  after = after_training(settings)
  return {k: v for k, v in settings.items() if k not in after}


def _as_compared(settings: dict, domain) -> dict:
  """Settings flattened as two runs are compared: the likelihood as the bins it builds, the
  settings an end-to-end budget derives and the unset ones dropped."""
  return _flat(
    _unset_dropped(
      _dpsgd_only_dropped(_derived_dropped(_numeric_likelihood_resolved(settings, domain)))
    )
  )


def _dpsgd_only_dropped(settings: dict) -> dict:
  """Outside scope 'dp-sgd', DP-SGD's sum and microbatch never act ('auto' and 'float32' alike;
  the spec refuses the others there): a work directory recorded before 'auto' became the default
  (2026-12-08, with 'float32') is the same run without them (found by a review)."""
  if settings.get("scope") == privacy.Scope.DP_SGD.value or not isinstance(
    settings.get("train"), dict
  ):
    return settings
  unused = ("dp_sum", "dp_microbatch")
  return {**settings, "train": {k: v for k, v in settings["train"].items() if k not in unused}}


def _derived_dropped(settings: dict) -> dict:
  """With an end-to-end budget (total_epsilon), `epsilon` and `train.dp_noise_multiplier` are
  derived from it and never acted: a work directory recorded before they were refused alongside
  it (`./run.sh --config.epsilon=4` on the default config) is the same run without them."""
  if settings.get("total_epsilon") is None:
    return settings
  settings = {k: v for k, v in settings.items() if k != "epsilon"}
  if isinstance(settings.get("train"), dict):
    settings["train"] = {k: v for k, v in settings["train"].items() if k != "dp_noise_multiplier"}
  return settings


def _unset_dropped(value):
  """Settings with unset ones (None, or an empty group of options) dropped: a field added later
  with an unset default must not make an older work directory look like another run."""
  if isinstance(value, dict):
    kept = {k: _unset_dropped(v) for k, v in value.items()}
    return {k: v for k, v in kept.items() if v is not None and v != {}}
  return value


def run(spec: spec_lib.Spec, workdir: str, *, progress: bool = False) -> RunResult:
  """Runs `spec` in `workdir` (module docstring); `progress` shows training's progress on
  stderr (a bar on a terminal, plain lines otherwise: `lipdp.progress`)."""
  start = time.time()
  method = methods.get(spec.method.name)
  releases = spec.privacy is not None
  workdir_lib.check(workdir)
  if releases:
    refuse_release(workdir, spec.release.replace_release)

  data = load_data(spec.data)
  for line in console.data_lines(data):
    log.info("%s", line)
  if not len(data.train):
    raise ValueError(
      f"no private records are left for training after holding out "
      f"{spec.data.holdout_fraction:.0%} of {len(data.holdout)}"
    )
  log.info("%s", console.split_line(data, spec.evaluation.enabled))
  prepared = method.module.prepare(spec, data)
  warnings = list(prepared.warnings)
  for warning in warnings:
    log.warning("%s", warning)
  # After every check: a failed one leaves no config.
  open_for(spec, workdir, data.domain, data, public_records_of(spec, prepared))

  timings = {"prepare_s": time.time() - start}
  made = method.module.generate(spec, data, workdir, prepared, progress)
  timings.update(made.timings)
  release_dir = None
  if made.report is not None:
    t0 = time.time()
    # Written into a staging folder, then renamed into place in one step.
    release_dir = release_lib.write_release(
      workdir_lib.release_dir(workdir),
      made.records,
      data.domain,
      made.report,
      replace=spec.release.replace_release,
    )
    timings["release_s"] = timings.get("release_s", 0.0) + time.time() - t0
    log.info("%s", console.released_line(len(made.records), release_dir))
    for warning in checks.release_warnings(data.domain, made.records, made.report):
      log.warning("%s", warning)
      warnings.append(warning)
    plan = prepared.plan
    if plan is not None and made.report.epsilon > plan.total_epsilon * (1 + 1e-6):
      # A safety net: the plan accounts every release at its targets, which the certified
      # bounds of the report can only lower. Among the warnings, not only in the log.
      warning = (
        f"the release's total epsilon is {made.report.epsilon:.4g}, above the "
        f"{plan.total_epsilon:.4g} planned before training; the report states the larger"
      )
      log.warning("%s", warning)
      warnings.append(warning)

  metrics = _evaluate(spec, workdir, data, made, timings)
  _figure(spec, data, made.records, made.report, workdir)
  timings["total_s"] = time.time() - start
  return RunResult(
    spec=spec,
    release_dir=release_dir,
    report=made.report,
    synthetic_records=made.records,
    data=data,
    model=made.model,
    variables=made.variables,
    plan=prepared.plan,
    info=made.info,
    metrics=metrics,
    timings=timings,
    warnings=warnings,
  )


def _evaluate(spec, workdir, data, made: methods.Generated, timings) -> Optional[dict]:
  """lipdp.evaluation on the private holdout into workdir/evaluation.json (not private); the
  records a method gives for comparison (`Generated.compare`) under their name."""
  if not (spec.evaluation.enabled and len(data.holdout)):
    return None
  log.info("Evaluating the release on the holdout (not private) ...")
  t0 = time.time()

  def measure(records):
    return evaluation.evaluate_release(
      data.domain,
      records,
      data.train,
      data.holdout,
      seed=spec.evaluation.seed,
      fast=spec.evaluation.fast,
    )

  metrics = measure(made.records)
  for name, records in made.compare.items():
    metrics.update({f"{name}/{k}": v for k, v in measure(records).items() if "/" in k})
  report = made.report
  if report is not None:
    values = (report.epsilon, report.delta, report.scope.value, report.headline)
    metrics.update(zip(REPORT_METRICS, values))
  timings["evaluation_s"] = time.time() - t0
  files.atomic_write_text(
    workdir_lib.path(workdir, workdir_lib.EVALUATION_FILE),
    json.dumps(metrics, indent=2, sort_keys=True, default=files.json_default),
  )
  return metrics


def _figure(spec, data, synthetic_records, report, workdir) -> None:
  """Real versus synthetic records in workdir/samples.png (private: it shows real records)."""
  domain, path = data.domain, workdir_lib.path(workdir, workdir_lib.SAMPLES_FIGURE)
  num = spec.evaluation.num_figure_samples
  rng = np.random.default_rng(0)  # which real records to show: a display choice, not noise
  real = data.train[rng.choice(len(data.train), min(num, len(data.train)), replace=False)]
  if report is None:
    title = f"{data.name}: no privacy guarantee ({spec.method.name}, a reference)"
  else:
    title = (
      f"{data.name}: epsilon={report.epsilon:.3g} ({report.headline}), "
      f"delta={report.delta:g}, scope={report.scope.value}"
    )
  if isinstance(domain, data_lib.ImageDomain):
    real_images, real_labels = domain.decode(real)
    synth_images, synth_labels = domain.decode(synthetic_records[:num])
    figures.image_grid(real_images, synth_images, path, real_labels, synth_labels, title)
  else:
    figures.column_marginals(
      domain.decode(data.train),
      domain.decode(synthetic_records),
      path,
      title,
      max_columns=len(domain.columns),
      bounds=figures.declared_bounds(domain),
    )
