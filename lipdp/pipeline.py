"""The main job, end to end: data -> domain -> budget -> train -> certify -> release -> evaluate.

`run(config, workdir)` is what `./run.sh` (experiments/main.py) calls. It writes

    workdir/
      checkpoints/, metrics.jsonl, train_seed.json   private training artefacts: never release
      release/
        synthetic.npz          the synthetic records (shuffled, no identifiers) and decoded parts
        privacy_report.json    the privacy report (lipdp.privacy.PrivacyReport)
        domain.json            the domain description, to decode the records later
      evaluation.json          utility, fidelity and empirical privacy of the release, measured
                               on the private holdout (lipdp.evaluation): NOT differentially
                               private, so it stays outside release/
      samples.png              real versus synthetic samples: shows private records, so it
                               stays beside the private artefacts, outside release/

The privacy budget is fixed before training (`lipdp.privacy.plan_budget`): the release's noise
ratio sigma / Delta and, in scope 'dp-sgd', DP-SGD's noise multiplier (calibrated from
`total_epsilon` when one end-to-end target is given). Two methods of lipdp release records:

* 'lipdp' (default): each private record releases k latents mu(x) + sigma xi, decoded;
* 'prior': records decoded from latents drawn from the prior (the DP-SGD VAE baseline; scope
  'dp-sgd' or 'public' only).

The differentially private baselines of lipdp.baselines run through the same job
(`BASELINE_METHODS`: 'mst', 'aim', 'private_measure', 'dp_merf', with scope 'dp-measurements'):
the same data loading, release folder and evaluation; no model is trained on the private records
(DP-MERF's generator is fit to its noisy release, in memory), so the work directory holds only
config.json, release/, evaluation.json and samples.png.

release/ is written into release.partial/ and renamed into place once complete, so a failure
leaves no half-written release behind.

Checks before anything is written: the configuration (`check_config`), the work directory
(`check_workdir`), the data (loaded and encoded in full), and the budget (`check_budget`: an
epsilon beyond what the noise sampler supports is refused; a large epsilon or a delta of at
least 1/n is warned about). config.json is written only once all of them passed.

Progress goes to the standard `logging` logger "lipdp" (lipdp.cli.console shows it as short
lines and keeps the libraries' logs quiet); warnings also land in `PipelineResult.warnings`.
"""

import dataclasses
import json
import logging
import math
import os
import time
from typing import Any, List, Optional

import jax
import ml_collections
import numpy as np

from lipdp import data as data_lib
from lipdp import files
from lipdp import privacy
from lipdp import randomness
from lipdp import release as release_lib
from lipdp import synthesize as synth_lib
from lipdp import train as train_lib
from lipdp.evaluation import figures
from lipdp.models import builders
from lipdp.models import likelihood

METHODS = ("lipdp", "prior")
# The differentially private baselines of lipdp.baselines, run by the same job (scope
# 'dp-measurements': a central guarantee covering everything they release).
BASELINE_METHODS = ("mst", "aim", "private_measure", "dp_merf")

log = logging.getLogger("lipdp.pipeline")

# A headline epsilon above this gets a warning: it bounds how much the odds of any inference
# about a record may change by e^10 > 22,000, i.e. it protects little.
LARGE_EPSILON = 10.0
# The release's truncation rule (lipdp.synthesize._check_truncation_is_negligible): the float64
# sampler's truncation may add at most this fraction of delta.
_TRUNCATION_FRACTION = 1e-6
# A release whose records lie within this fraction of the domain diameter of their mean (RMS)
# is reported as degenerate.
COLLAPSE_FRACTION = 0.05


@dataclasses.dataclass
class PipelineResult:
  release_dir: str
  report: Any
  synthetic_records: np.ndarray
  model: Any
  variables: Any
  data: Any
  plan: Any = None  # the lipdp.privacy.BudgetPlan fixed before training
  metrics: Optional[dict] = None  # lipdp.evaluation.evaluate_release (not DP)
  timings: Optional[dict] = None
  # Warnings of the run, in words (also logged): a large epsilon, delta >= 1/n, a degenerate
  # release.
  warnings: List[str] = dataclasses.field(default_factory=list)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Clear errors for bad settings before any work starts."""
  scope = privacy.Scope.parse(config.scope)
  if not 0 < config.delta < 1:
    raise ValueError(f"delta must be in (0, 1), got {config.delta}")
  if config.method in BASELINE_METHODS:
    _check_baseline_config(config, scope)
    return
  if config.method == "copy_train":
    raise ValueError(
      "method 'copy_train' publishes the private records themselves (no privacy at all): it is "
      "a reference point of the evaluation, run by experiments/baselines.py and the sweeps, "
      "never a release of the main job"
    )
  if config.method not in METHODS:
    raise ValueError(f"method must be one of {METHODS + BASELINE_METHODS}, got {config.method!r}")
  if scope not in (privacy.Scope.CONDITIONAL, privacy.Scope.DP_SGD, privacy.Scope.PUBLIC):
    raise ValueError(
      f"scope {config.scope!r} is not a scope of the VAE pipeline (conditional, "
      f"dp-sgd or public); it belongs to the central baselines: --config.method="
      f"{'|'.join(BASELINE_METHODS)}"
    )
  if config.total_epsilon is None and config.method == "lipdp":
    if not (np.isfinite(config.epsilon) and config.epsilon > 0):
      raise ValueError(f"epsilon must be positive and finite, got {config.epsilon}")
  if config.total_epsilon is not None:
    if not (np.isfinite(config.total_epsilon) and config.total_epsilon > 0):
      raise ValueError(f"total_epsilon must be positive and finite, got {config.total_epsilon}")
    if scope is not privacy.Scope.DP_SGD:
      raise ValueError(
        "total_epsilon is one end-to-end budget for DP-SGD training and the "
        f"release: it needs scope 'dp-sgd', not {config.scope!r}"
      )
    if config.model.heteroscedastic:
      raise ValueError(
        "total_epsilon calibrates a Gaussian release; the heteroscedastic "
        "mechanism's epsilon is computed, not calibrated: give epsilon instead"
      )
  if config.calibration not in privacy.budget.CALIBRATIONS:
    raise ValueError(
      f"calibration must be one of {privacy.budget.CALIBRATIONS}, got {config.calibration!r}"
    )
  if config.calibration == "shuffled" and not config.shuffled_release:
    raise ValueError("calibration='shuffled' needs shuffled_release=true")
  if config.method == "prior" and scope is privacy.Scope.CONDITIONAL:
    raise ValueError(
      "method 'prior' samples a model fit without DP in the conditional scope: "
      "no guarantee at all; use scope 'dp-sgd' (the DP-SGD VAE baseline)"
    )
  if config.model.encoder_dense == builders.PLAIN_ENCODER and config.method != "prior":
    raise ValueError(
      f"model.encoder_dense={builders.PLAIN_ENCODER!r} has no Lipschitz certificate, so its "
      "latents cannot be released: it is for method 'prior' only"
    )
  if config.get("decoding", "auto") not in likelihood.DECODINGS:
    raise ValueError(f"decoding must be one of {likelihood.DECODINGS}, got {config.decoding!r}")
  if int(config.k) != config.k or config.k < 1:
    raise ValueError(f"k must be a positive integer, got {config.k}")
  if config.model.sigma is not None and not config.model.sigma > 0:
    raise ValueError(f"model.sigma must be positive, got {config.model.sigma}")
  if scope is privacy.Scope.PUBLIC and not config.public_dataset:
    raise ValueError(
      "scope 'public' needs --config.public_dataset: a public data set in the same "
      "domain (a split of the private data is not public)"
    )
  if scope is not privacy.Scope.PUBLIC and config.public_dataset:
    raise ValueError(f"public_dataset is only used with scope 'public', not {config.scope!r}")


def _check_baseline_config(config: ml_collections.ConfigDict, scope: privacy.Scope) -> None:
  """A baseline method: one central (epsilon, delta) in scope 'dp-measurements'."""
  name = config.method
  if scope is not privacy.Scope.DP_MEASUREMENTS:
    raise ValueError(
      f"method {name!r} is a central baseline: its guarantee covers everything it releases "
      f"(scope 'dp-measurements'); pass --config.scope=dp-measurements (got {config.scope!r})"
    )
  if not (np.isfinite(config.epsilon) and config.epsilon > 0):
    raise ValueError(f"epsilon must be positive and finite, got {config.epsilon}")
  unused = []
  if config.total_epsilon is not None:
    unused.append("total_epsilon (a baseline's epsilon is --config.epsilon)")
  if int(config.k) != 1:
    unused.append("k (each baseline releases n records)")
  if config.public_dataset:
    unused.append("public_dataset")
  if unused:
    raise ValueError(f"method {name!r} does not use " + ", ".join(unused))
  if config.baseline_bins is not None and not (
    int(config.baseline_bins) == config.baseline_bins and config.baseline_bins >= 2
  ):
    raise ValueError(f"baseline_bins must be an integer >= 2, got {config.baseline_bins}")


def plan_budget(config: ml_collections.ConfigDict, num_records: int) -> privacy.BudgetPlan:
  """The release's noise ratio and DP-SGD's noise, from the configuration alone."""
  dp_sgd = privacy.Scope.parse(config.scope) is privacy.Scope.DP_SGD
  return privacy.plan_budget(
    scope=config.scope,
    delta=config.delta,
    num_records=num_records,
    k=config.k,
    epsilon=None if config.method == "prior" else config.epsilon,
    total_epsilon=config.total_epsilon,
    release_share=config.release_share,
    calibration=config.calibration,
    shuffled=bool(config.shuffled_release),
    prior_sampling=config.method == "prior",
    dpsgd_sampling_rate=config.train.dp_sampling_rate if dp_sgd else None,
    dpsgd_steps=config.train.num_steps if dp_sgd else None,
    dpsgd_noise_multiplier=config.train.dp_noise_multiplier if dp_sgd else None,
  )


def encoder_calibration(
  config, diameter: float, plan: Optional[privacy.BudgetPlan] = None
) -> tuple[float, float]:
  """(lipschitz_target, training sigma) for the planned release.

  Scale invariance: only sigma / (L * D) matters. By default sigma is fixed (1.0) and the target
  L is sigma / (noise_ratio * D), the largest that the planned release allows; with
  `lipschitz_target` set, sigma is calibrated instead. Either way the decoder trains at the
  noise level it will see at release. Prior sampling releases no latent: the encoder is then
  trained at the given target and sigma (its Lipschitz constant does not enter the accounting).
  """
  m = config.model
  if m.heteroscedastic:
    # sigma(x) is learned in [sigma_min, sigma_max]; epsilon is computed by RDP at release,
    # not calibrated. The default target is the homoscedastic one at the smallest noise.
    target = (
      float(m.lipschitz_target)
      if m.lipschitz_target is not None
      else privacy.max_lipschitz(m.sigma_min, config.epsilon, config.delta, diameter, k=config.k)
    )
    return target, float(m.sigma_min)
  if plan is None:  # the per-record target of the configuration
    ratio = privacy.calibrate_sigma(config.epsilon, config.delta, 1.0, k=config.k)
  else:
    ratio = plan.noise_ratio
  if ratio is None:  # prior sampling
    target = float(m.lipschitz_target) if m.lipschitz_target is not None else 1.0
    return target, float(m.sigma)
  if m.lipschitz_target is not None:
    target = float(m.lipschitz_target)
    return target, ratio * target * diameter
  sigma = float(m.sigma)
  return sigma / (ratio * diameter), sigma


# The default label weight per image pixel (`default_label_loss_weight`).
LABEL_WEIGHT_PER_PIXEL = 1.0 / 16.0


def default_label_loss_weight(domain) -> float:
  """The label's weight in the ELBO when none is set: image pixels / 16, at least 1.

  A label term of weight 1 beside d pixel terms is drowned under DP-SGD noise and the decoded
  label stops agreeing with the decoded image. On digits (64 pixels, the public proxy) weight
  5 beat 1, 20 and 50 for the DP-SGD VAE at total epsilon 10 (two seeds; docs/results.md);
  scaled with the number of pixels it keeps the label's share of the image term (4 on digits,
  49 on MNIST). Tables and unlabelled images: 1.
  """
  image = [b for b in domain.blocks if b.kind == "image"]
  if domain.label_column is None or not image:
    return 1.0
  return max(1.0, sum(b.stop - b.start for b in image) * LABEL_WEIGHT_PER_PIXEL)


def block_weights(config: ml_collections.ConfigDict, domain) -> Optional[dict]:
  """The ELBO's block weights: `train.label_loss_weight` (default: `default_label_loss_weight`)
  on the domain's label block."""
  weight = config.train.get("label_loss_weight")
  weight = default_label_loss_weight(domain) if weight is None else float(weight)
  if not (np.isfinite(weight) and weight > 0):
    raise ValueError(f"train.label_loss_weight must be positive and finite, got {weight}")
  if weight == 1.0:
    return None
  if domain.label_column is None:
    raise ValueError(
      "train.label_loss_weight weighs the label's term, but this data set has no label column"
    )
  return {domain.label_column: weight}


def check_workdir(workdir: str) -> None:
  """A clear error, before anything is written, for a work directory that cannot be used."""
  if not workdir:
    raise ValueError("the work directory is empty: give a folder for the run")
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"the work directory {workdir} is a file, not a folder")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f"cannot create the work directory {workdir}: {existing} is a file")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"cannot write to the work directory {workdir}: {existing} is not writable")


def max_supported_epsilon(delta: float, num_coordinates: int) -> float:
  """The largest per-record epsilon the float64 noise sampler supports at `delta`.

  lipdp.synthesize refuses a release whose truncated sampler (it stops at 12.2 sigma) could add
  more than 1e-6 * delta: (1 + e^epsilon) * num_coordinates * P(|N(0,1)| > 12.2) <= 1e-6 delta.
  About 49 for delta = 1e-5 and 16 latent coordinates; far beyond any meaningful epsilon.
  """
  ratio = _TRUNCATION_FRACTION * delta / (num_coordinates * randomness.normal_truncation_mass())
  return math.log(ratio - 1.0) if ratio > 1.0 else 0.0


def check_budget(
  config: ml_collections.ConfigDict,
  plan: privacy.BudgetPlan,
  num_records: int,
  diameter: Optional[float] = None,
) -> List[str]:
  """Refuses a budget the release cannot honour; returns warnings about weak ones.

  Called before training: an epsilon beyond `max_supported_epsilon` would otherwise fail only
  at release, after the whole training. For the heteroscedastic release (scopes conditional
  and public, given the domain `diameter`) the epsilon is computed at release from the
  certified bounds, which the constrained layers keep at their targets; its value at the
  targets (L of the mean, `model.log_sigma_lipschitz`) is what is checked here. This is a
  check only: the release's own accounting is unchanged.
  """
  m = config.model
  if (
    m.heteroscedastic
    and diameter is not None
    and config.method == "lipdp"
    and config.scope != "dp-sgd"
  ):
    target, _ = encoder_calibration(config, diameter, plan)
    worst = privacy.heteroscedastic_epsilon(
      plan.delta,
      target,
      float(m.log_sigma_lipschitz),
      diameter,
      float(m.sigma_min),
      float(m.sigma_max),
      int(m.latent_dim),
      int(config.k),
    )
    limit = max_supported_epsilon(plan.delta, int(m.latent_dim) * int(config.k))
    if not worst.epsilon <= limit:
      raise ValueError(
        f"the heteroscedastic release would have a per-record epsilon of up to "
        f"{worst.epsilon:.4g} at delta = {plan.delta:g}: log sigma(x) may vary by "
        f"model.log_sigma_lipschitz * D = {float(m.log_sigma_lipschitz) * diameter:.3g}, so "
        f"sigma(x) by a factor up to {worst.sigma_ratio:.3g} between neighbours, more than "
        f"the float64 noise sampler supports (epsilon at most {limit:.3g}); lower "
        "model.log_sigma_lipschitz or narrow [model.sigma_min, model.sigma_max]"
      )
  if plan.noise_ratio is not None and not config.model.heteroscedastic:
    per_record = (
      plan.release_epsilon
      if plan.calibration == "per-record"
      else privacy.gaussian_epsilon(plan.noise_ratio, 1.0, plan.delta, k=int(config.k))
    )
    limit = max_supported_epsilon(plan.delta, int(config.model.latent_dim) * int(config.k))
    if not per_record <= limit:
      raise ValueError(
        f"a per-record epsilon of {per_record:.4g} is more than the float64 noise sampler "
        f"supports at delta = {plan.delta:g} (at most {limit:.3g}), and would protect "
        f"nothing anyway; choose epsilon <= {LARGE_EPSILON:g}"
      )
  return weak_budget_warnings(plan.total_epsilon, plan.delta, num_records)


def weak_budget_warnings(epsilon: float, delta: float, num_records: int) -> List[str]:
  """Warnings in words for an epsilon above LARGE_EPSILON or a delta not below 1/n."""
  warnings = []
  if epsilon > LARGE_EPSILON:
    factor = math.exp(min(epsilon, 700.0))
    warnings.append(
      f"epsilon = {epsilon:.4g} lets the odds of any inference about a record "
      f"change by a factor up to e^{epsilon:.3g} = {factor:.2g}: it gives "
      "practically no protection"
    )
  if num_records and delta >= 1.0 / num_records:
    suggestion = 10.0 ** math.floor(math.log10(0.1 / num_records))
    warnings.append(
      f"delta = {delta:g} is not below 1/n = {1.0 / num_records:.2g} (n = "
      f"{num_records:,} private records): publishing one record in full meets delta = 1/n. "
      f"Choose delta well below 1/n (e.g. {suggestion:g})"
    )
  return warnings


def release_warnings(domain, records: np.ndarray, report) -> List[str]:
  """A warning in words when a release is degenerate, naming its epsilon (else empty).

  Degenerate: a categorical column (or the label) with a single value in every synthetic
  record, or all records within COLLAPSE_FRACTION * D (RMS) of their mean. Computed from the
  release only (no private data).
  """
  records = np.asarray(records, np.float64)
  if records.ndim != 2 or records.shape[0] < 2:
    return []
  findings = []
  for block in domain.blocks:
    if block.kind != "categorical":
      continue
    taken = np.unique(np.argmax(records[:, block.start : block.stop], axis=1))
    if len(taken) == 1:
      value = block.categories[int(taken[0])]
      if block.name == domain.label_column or block.name == "label":
        findings.append(f"the label {block.name!r} has a single class ({value!r})")
      else:
        findings.append(f"column {block.name!r} takes a single value ({value!r})")
  spread = float(np.sqrt(np.mean(np.sum((records - records.mean(axis=0)) ** 2, axis=1))))
  if spread < COLLAPSE_FRACTION * domain.diameter:
    findings.append(
      f"all records lie near their mean (RMS distance {spread:.3g}, "
      f"{100 * spread / domain.diameter:.1f}% of the domain diameter)"
    )
  if not findings:
    return []
  return [
    f"the release looks degenerate at epsilon = {report.epsilon:.4g} ({report.headline}, "
    f"delta = {report.delta:g}): " + "; ".join(findings) + f", in all {len(records):,} "
    "synthetic records. At this epsilon each latent carries little about its record; a "
    "larger epsilon, k > 1 or longer training may help"
  ]


def _checkpoint_step(workdir: str) -> Optional[int]:
  """The latest finished orbax checkpoint step in workdir/checkpoints, if any."""
  folder = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(folder):
    return None
  steps = [int(name) for name in os.listdir(folder) if name.isdigit()]
  return max(steps) if steps else None


def _data_options(config: ml_collections.ConfigDict) -> dict:
  """The loader options: config.data_options, and config.schema (a JSON schema file)."""
  options = {k: v for k, v in config.data_options.to_dict().items() if v is not None}
  schema = config.get("schema")
  if schema is not None:
    if options.get("schema") not in (None, schema):
      raise ValueError(
        f"two schemas: config.schema={schema!r} and "
        f"config.data_options.schema={options['schema']!r}; give one"
      )
    options["schema"] = schema
  return options


def load_data(config: ml_collections.ConfigDict, public: bool = False):
  """The configured data set, split and in its declared domain (`lipdp.data.load_dataset`);
  with `public`, the scope 'public' data set (`public_dataset`, `public_options`) instead."""
  return data_lib.load_dataset(
    config.public_dataset if public else config.dataset,
    data_dir=config.data_dir,
    radius=config.radius,
    holdout_fraction=config.holdout_fraction,
    split_seed=config.split_seed,
    label_weight=config.label_weight,
    **(config.public_options.to_dict() if public else _data_options(config)),
  )


def _without_none(value):
  """A config dict with unset (None) fields, and sections left empty, dropped: a field added
  later with an unset default must not make an older work directory look like a run with other
  settings."""
  if isinstance(value, dict):
    out = {k: _without_none(v) for k, v in value.items() if v is not None}
    return {k: v for k, v in out.items() if v != {}}  # a section with every field unset
  return value


def _log_data(data) -> None:
  info = data.source_info or {}
  columns = f", {len(info['column_order'])} declared columns" if "column_order" in info else ""
  log.info(
    "Data: %s: %s records%s, in a domain of dimension %d and diameter D = %.4g",
    data.name,
    f"{len(data.train) + len(data.holdout):,}",
    columns,
    data.domain.dim,
    data.domain.diameter,
  )
  if info.get("ignored_columns"):
    log.info("  not in the schema, not read: %s", ", ".join(info["ignored_columns"]))
  if info.get("stripped_cells"):
    log.info(
      "  %d cells had surrounding whitespace, removed (the reading rule of docs/data.md)",
      info["stripped_cells"],
    )
  if info.get("missing_substituted"):
    log.info(
      "  missing cells given the declared value: %s",
      ", ".join(f"{k} {v}" for k, v in info["missing_substituted"].items()),
    )
  if info.get("clipped"):
    parts = []
    for name, counts in info["clipped"].items():
      where = [
        f"{counts[key]} {side}"
        for key, side in (("below_low", "below"), ("above_high", "above"))
        if counts[key]
      ]
      parts.append(f"{name} {' and '.join(where)}")
    log.info(
      "  clipped to the declared bounds: %s (counts of the private data: shown here, "
      "never released)",
      ", ".join(parts),
    )


# Settings that may change between a run and its resumption: they act after training.
_RESUMABLE_FIELDS = (
  "noise_seed",
  "decoding",
  "num_figure_samples",
  "shuffled_release",
  "replace_release",
  "evaluation",
)


def _open_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Creates the work directory and records (or checks) the run's settings in it."""
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f"cannot create the work directory {workdir}: {e.strerror or e}") from e
  _guard_workdir(config, workdir)


def _guard_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses to resume a checkpoint trained under other settings; records the config."""
  current = json.loads(config.to_json())
  for field in _RESUMABLE_FIELDS:
    current.pop(field, None)
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    for field in _RESUMABLE_FIELDS:
      previous.pop(field, None)
    previous, current = _without_none(previous), _without_none(current)
    if previous != current:
      changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
      raise ValueError(
        f"{workdir} holds a run with other settings ({', '.join(changed)}); "
        "use a new --workdir or delete it"
      )
  files.atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True))


def run(
  config: ml_collections.ConfigDict, workdir: str, progress_bar: bool = True
) -> PipelineResult:
  """Runs the main job; see the module docstring for what it writes."""
  timings = {}
  warnings = []
  start = time.time()
  check_config(config)
  check_workdir(workdir)
  release_dir = os.path.join(workdir, "release")
  if (
    os.path.exists(os.path.join(release_dir, "privacy_report.json")) and not config.replace_release
  ):
    raise ValueError(
      f"{release_dir} already holds a release. A second release from the same private records "
      "composes with the first (the reports do not add up by themselves); to replace it, and "
      "only if it was never published, pass --config.replace_release=true"
    )

  data = load_data(config)
  domain = data.domain
  diameter = float(domain.diameter)
  _log_data(data)
  if not len(data.train):
    raise ValueError(
      f"no private records are left for training after holding out "
      f"{config.holdout_fraction:.0%} of {len(data.holdout)}"
    )
  _log_holdout(config, data)
  if config.method in BASELINE_METHODS:
    return _run_baseline(config, workdir, data, release_dir, start)
  weights = block_weights(config, domain)  # checked before the work directory is written
  # Fixed before training, from the configuration and the number of records only.
  plan = plan_budget(config, len(data.train))
  warnings += check_budget(config, plan, len(data.train), diameter=diameter)
  log.info("Privacy budget, fixed before training: %s", _plan_text(config, plan))
  for warning in warnings:
    log.warning("%s", warning)
  _open_workdir(config, workdir)  # after the data loaded: a failed load leaves no config.json

  lipschitz_target, sigma = encoder_calibration(config, diameter, plan)
  model = builders.build_vae(
    domain,
    config.model,
    lipschitz_target,
    sigma,
    log_sigma_lipschitz=config.model.log_sigma_lipschitz,
  )
  log.debug("Encoder: Lipschitz target %.4g, training sigma %.4g", lipschitz_target, sigma)

  # The records the weights are fit on: the private ones, unless the scope is 'public'.
  fit_records = data.train
  if config.scope == "public":
    public = load_data(config, public=True)
    if public.domain != domain:
      raise ValueError(
        f"public data set {config.public_dataset!r} has domain {public.domain}, "
        f"not the private data's {domain}"
      )
    fit_records = np.concatenate([public.train, public.holdout])
    log.info(
      "Scope 'public': training on %s records of %s", f"{len(fit_records):,}", config.public_dataset
    )
  dp = None
  if config.scope == "dp-sgd":
    dp = train_lib.DPSGDConfig(
      noise_multiplier=plan.dpsgd_noise_multiplier,
      clip_norm=config.train.dp_clip_norm,
      sampling_rate=config.train.dp_sampling_rate,
      clipping=config.train.dp_clipping,
    )
  batch_size = _batch_size(config, len(fit_records), dp is not None)
  train_config = train_lib.TrainConfig(
    num_steps=config.train.num_steps,
    batch_size=batch_size,
    learning_rate=config.train.learning_rate,
    seed=config.train.seed,
    dp=dp,
    image_likelihood=config.model.image_likelihood,
    beta=config.train.beta,
    block_weights=weights,
    log_every=config.train.log_every,
    checkpoint_every=config.train.checkpoint_every,
    average_decay=config.train.average_decay,
    progress_bar=progress_bar,
  )
  timings["prepare_s"] = time.time() - start
  latest = _checkpoint_step(workdir)
  if latest is not None and latest >= config.train.num_steps:
    log.info(
      "Training finished in an earlier run (the checkpoint at step %d in %s)",
      latest,
      os.path.join(workdir, "checkpoints"),
    )
  elif latest is not None:
    log.info(
      "Resuming from step %d of %d (the checkpoint in %s)",
      latest,
      config.train.num_steps,
      os.path.join(workdir, "checkpoints"),
    )
  else:
    how = (
      "DP-SGD, noise multiplier %.3g, sampling rate %g" % (dp.noise_multiplier, dp.sampling_rate)
      if dp is not None
      else f"batch {batch_size}"
    )
    devices = jax.device_count()
    log.info(
      "Training: %d steps (%s) on %d %s device%s",
      config.train.num_steps,
      how,
      devices,
      jax.default_backend().upper(),
      "s" if devices > 1 else "",
    )
  trained = train_lib.train(model, fit_records, domain.blocks, train_config, workdir=workdir)
  timings["train_s"] = trained.wall_time_s
  if trained.resumed_from and trained.resumed_from != latest:
    log.info("Resumed from step %d", trained.resumed_from)
  if trained.resumed_from < config.train.num_steps:
    log.info("Trained in %.1f s", trained.wall_time_s)
  variables = {"params": trained.state.params, **trained.state.model_state}
  dpsgd = None if dp is None else dp.event(int(trained.state.step))  # the steps taken

  t0 = time.time()
  if config.method == "prior":
    records, report = _prior_release(config, model, variables, data, dpsgd, trained.seeded_by_user)
  else:
    synthetic = synth_lib.synthesize(
      model,
      variables,
      data.train,
      domain,
      epsilon=None,
      noise_ratio=plan.noise_ratio,
      delta=config.delta,
      k=config.k,
      scope=config.scope,
      shuffled_release=config.shuffled_release,
      seed=config.noise_seed,
      dpsgd=dpsgd,
      training_seeded=trained.seeded_by_user,
      notes=data.notes,
      decoding=config.decoding,
    )
    records, report = synthetic.records, synthetic.report
    log.info(
      "Certified Lipschitz bound of the trained encoder mean: L = %.6g (target %.6g); "
      "release noise sigma = %.4g",
      synthetic.certificate.mean_lipschitz,
      lipschitz_target,
      synthetic.sigma if synthetic.sigma is not None else float("nan"),
    )
  if report.epsilon > plan.total_epsilon * (1 + 1e-6):
    log.warning(
      "The epsilon of this release is %.4g, above the planned %.4g (the "
      "heteroscedastic mechanism's epsilon is computed, not calibrated).",
      report.epsilon,
      plan.total_epsilon,
    )
  # Written into a staging folder, then renamed into place in one step.
  release_lib.write_release(release_dir, records, domain, report, replace=config.replace_release)
  timings["release_s"] = time.time() - t0
  log.info("Released %s synthetic records into %s", f"{len(records):,}", release_dir)
  for warning in release_warnings(domain, records, report):
    log.warning("%s", warning)
    warnings.append(warning)

  prior_records = None
  if config.evaluation.get("compare_prior") and config.method == "lipdp":
    # A diagnostic of what the release adds: the same weights sampled from the prior.
    prior_records = synth_lib.sample_prior(
      model, variables, len(records), domain, seed=config.noise_seed, decoding=config.decoding
    )
  metrics = _evaluate(config, workdir, data, records, report, timings, prior_records)
  _figure(config, domain, data.train, records, report, os.path.join(workdir, "samples.png"))
  timings["total_s"] = time.time() - start
  return PipelineResult(
    release_dir=release_dir,
    report=report,
    synthetic_records=records,
    model=model,
    variables=variables,
    data=data,
    plan=plan,
    metrics=metrics,
    timings=timings,
    warnings=warnings,
  )


def _evaluate(config, workdir, data, records, report, timings, prior_records=None):
  """lipdp.evaluation on the private holdout into workdir/evaluation.json (not private).

  With `prior_records` (records decoded from prior latents by the same weights), their metrics
  are added under "prior_sampling/": what the per-record release adds over the model alone.
  """
  if not (config.evaluation.enabled and len(data.holdout)):
    return None
  from lipdp import evaluation  # pylint: disable=g-import-not-at-top

  log.info("Evaluating the release on the holdout (not private) ...")
  t0 = time.time()
  metrics = evaluation.evaluate_release(
    data.domain,
    records,
    data.train,
    data.holdout,
    seed=config.evaluation.seed,
    fast=config.evaluation.fast,
  )
  if prior_records is not None:
    prior = evaluation.evaluate_release(
      data.domain,
      prior_records,
      data.train,
      data.holdout,
      seed=config.evaluation.seed,
      fast=config.evaluation.fast,
    )
    metrics.update({f"prior_sampling/{k}": v for k, v in prior.items() if "/" in k})
  metrics["meta/privacy_epsilon"] = report.epsilon
  metrics["meta/privacy_delta"] = report.delta
  metrics["meta/privacy_scope"] = report.scope.value
  metrics["meta/privacy_headline"] = report.headline
  timings["evaluation_s"] = time.time() - t0
  files.atomic_write_text(
    os.path.join(workdir, "evaluation.json"),
    json.dumps(metrics, indent=2, sort_keys=True, default=files.json_default),
  )
  return metrics


def baseline_options(config: ml_collections.ConfigDict, domain) -> dict:
  """The options a baseline method is fit with.

  MST's and AIM's numeric bins are declared, never derived from the data: the schema's "bins"
  entries when the table has a schema file, else `baseline_bins` equal-width bins over each
  column's declared bounds (unset: `lipdp.baselines.discretize.DEFAULT_NUMERIC_BINS`).
  DP-MERF's are the fields of `config.dp_merf` that are set (the module's defaults otherwise).
  """
  if config.method == "dp_merf":
    options = {k: v for k, v in config.dp_merf.to_dict().items() if v is not None}
    if "hidden" in options:
      options["hidden"] = tuple(options["hidden"])
    return options
  if config.method not in ("mst", "aim"):
    return {}
  schema = config.schema or config.data_options.get("schema")
  if schema:
    return {"bins": schema}
  if config.baseline_bins is not None:
    numeric = [c.name for c in getattr(domain, "columns", ()) if hasattr(c, "low")]
    return {"bins": {name: int(config.baseline_bins) for name in numeric}}
  return {}


def _run_baseline(config, workdir, data, release_dir, start) -> "PipelineResult":
  """Method mst|aim|private_measure|dp_merf: fit the baseline, write its release, evaluate it."""
  from lipdp import baselines  # pylint: disable=g-import-not-at-top

  try:  # before anything is written: a missing optional dependency is a setting error
    baselines.check_available(config.method)
  except ImportError as e:
    raise ValueError(str(e)) from e
  timings = {}
  warnings = weak_budget_warnings(float(config.epsilon), float(config.delta), len(data.train))
  log.info(
    "Baseline %s: central epsilon %g, delta %g (scope dp-measurements: covers everything released)",
    config.method,
    config.epsilon,
    config.delta,
  )
  for warning in warnings:
    log.warning("%s", warning)
  _open_workdir(config, workdir)
  timings["prepare_s"] = time.time() - start
  t0 = time.time()
  fit = baselines.BASELINES[config.method]
  out = fit(
    data.train,
    data.domain,
    epsilon=float(config.epsilon),
    delta=float(config.delta),
    seed=config.noise_seed,
    notes=tuple(data.notes),
    **baseline_options(config, data.domain),
  )
  timings["fit_s"] = time.time() - t0
  records, report = out.records, out.report
  release_lib.write_release(
    release_dir, records, data.domain, report, replace=config.replace_release
  )
  timings["release_s"] = time.time() - t0 - timings["fit_s"]
  log.info("Released %s synthetic records into %s", f"{len(records):,}", release_dir)
  for warning in release_warnings(data.domain, records, report):
    log.warning("%s", warning)
    warnings.append(warning)
  metrics = _evaluate(config, workdir, data, records, report, timings)
  _figure(config, data.domain, data.train, records, report, os.path.join(workdir, "samples.png"))
  timings["total_s"] = time.time() - start
  return PipelineResult(
    release_dir=release_dir,
    report=report,
    synthetic_records=records,
    model=None,
    variables=None,
    data=data,
    metrics=metrics,
    timings=timings,
    warnings=warnings,
  )


def _log_holdout(config, data) -> None:
  n_train, n_holdout = len(data.train), len(data.holdout)
  if not n_holdout:
    log.info(
      "All %s records are private training records (no holdout, so no evaluation)", f"{n_train:,}"
    )
    return
  use = (
    "used only to evaluate the release (evaluation.json; not private)"
    if config.evaluation.enabled
    else "unused, since evaluation is off"
  )
  log.info(
    "Split: %s private records train the model and are synthesized; %s (%.0f%%) are held out, %s",
    f"{n_train:,}",
    f"{n_holdout:,}",
    100 * n_holdout / (n_train + n_holdout),
    use,
  )


def _plan_text(config, plan: privacy.BudgetPlan) -> str:
  parts = []
  if plan.release_epsilon is not None:
    what = "per record" if plan.calibration == "per-record" else "central, of the shuffled release"
    parts.append(f"release epsilon {plan.release_epsilon:.4g} ({what})")
  if plan.dpsgd_noise_multiplier is not None:
    parts.append(f"DP-SGD noise multiplier {plan.dpsgd_noise_multiplier:.4g}")
  if plan.release_epsilon is None or plan.dpsgd_noise_multiplier is not None:
    parts.append(f"total epsilon {plan.total_epsilon:.4g}")
  return "; ".join(parts) + f", at delta {plan.delta:g}; scope {config.scope}, k = {config.k}"


def _batch_size(config, num_records: int, dp_sgd: bool) -> int:
  """The configured batch size, at most the records and a multiple of the devices (said)."""
  wanted = int(config.train.batch_size)
  batch = min(wanted, num_records)
  if not dp_sgd:
    devices = jax.device_count()
    batch -= batch % devices
    if batch < 1:
      raise ValueError(
        f"{num_records} training records are too few for a batch on {devices} devices"
      )
  if batch != wanted:
    devices = jax.device_count()
    log.info(
      "Batch size %d instead of the configured %d (%s training records, %d device%s)",
      batch,
      wanted,
      f"{num_records:,}",
      devices,
      "s" if devices > 1 else "",
    )
  return batch


def _prior_release(config, model, variables, data, dpsgd, training_seeded):
  """Method 'prior': records decoded from latents drawn from the prior, and their report."""
  num = len(data.train) * int(config.k)
  records = synth_lib.sample_prior(
    model, variables, num, data.domain, seed=config.noise_seed, decoding=config.decoding
  )
  report = privacy.make_report(
    privacy.PriorSampling(num),
    lipschitz=None,
    diameter=None,
    domain=_domain_text(data.domain),
    domain_description=data.domain.describe(),
    delta=config.delta,
    scope=config.scope,
    num_records=len(data.train),
    dpsgd=dpsgd,
    training_seeded=bool(training_seeded) and dpsgd is not None,
    extra_versions={"jax": jax.__version__},
    notes=data.notes,
  )
  return records, report


def _domain_text(domain) -> str:
  desc = domain.describe()
  return (
    f"{desc['type']} records of dimension {desc['dim']}: {desc['preprocessing']} "
    f"Diameter: {desc['diameter_derivation']}"
  )


def _figure(config, domain, real_records, synthetic_records, report, path) -> None:
  num = int(config.num_figure_samples)
  rng = np.random.default_rng(0)  # which real records to show: a display choice, not noise
  real = real_records[rng.choice(len(real_records), min(num, len(real_records)), replace=False)]
  synth = synthetic_records[:num]
  title = (
    f"{config.dataset}: epsilon={report.epsilon:.3g} ({report.headline}), "
    f"delta={report.delta:g}, scope={report.scope.value}"
  )
  if isinstance(domain, data_lib.ImageDomain):
    real_images, real_labels = domain.decode(real)
    synth_images, synth_labels = domain.decode(synth)
    figures.image_grid(real_images, synth_images, path, real_labels, synth_labels, title)
  else:
    figures.column_marginals(
      domain.decode(real_records),
      domain.decode(synthetic_records),
      path,
      title,
      max_columns=len(domain.columns),
    )
