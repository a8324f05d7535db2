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
`total_epsilon` when one end-to-end target is given). Two methods release records:

* 'lipdp' (default): each private record releases k latents mu(x) + sigma xi, decoded;
* 'prior': records decoded from latents drawn from the prior (the DP-SGD VAE baseline; scope
  'dp-sgd' or 'public' only).

release/ is written into release.partial/ and renamed into place once complete, so a failure
leaves no half-written release behind.
"""

import dataclasses
import json
import os
import time
from typing import Any, Optional

from absl import logging
import jax
import ml_collections
import numpy as np

from lipdp import data as data_lib
from lipdp import files
from lipdp import privacy
from lipdp import release as release_lib
from lipdp import synthesize as synth_lib
from lipdp import train as train_lib
from lipdp.evaluation import figures
from lipdp.models import builders

METHODS = ("lipdp", "prior")


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


def check_config(config: ml_collections.ConfigDict) -> None:
  """Clear errors for bad settings before any work starts."""
  scope = privacy.Scope.parse(config.scope)
  if scope not in (privacy.Scope.CONDITIONAL, privacy.Scope.DP_SGD, privacy.Scope.PUBLIC):
    raise ValueError(f"scope {config.scope!r} is not a scope of the VAE pipeline (conditional, "
                     "dp-sgd or public); it belongs to the central baselines (lipdp.baselines)")
  if config.method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {config.method!r}")
  if config.total_epsilon is None and config.method == "lipdp":
    if not (np.isfinite(config.epsilon) and config.epsilon > 0):
      raise ValueError(f"epsilon must be positive and finite, got {config.epsilon}")
  if config.total_epsilon is not None:
    if not (np.isfinite(config.total_epsilon) and config.total_epsilon > 0):
      raise ValueError(f"total_epsilon must be positive and finite, got {config.total_epsilon}")
    if scope is not privacy.Scope.DP_SGD:
      raise ValueError("total_epsilon is one end-to-end budget for DP-SGD training and the "
                       f"release: it needs scope 'dp-sgd', not {config.scope!r}")
    if config.model.heteroscedastic:
      raise ValueError("total_epsilon calibrates a Gaussian release; the heteroscedastic "
                       "mechanism's epsilon is computed, not calibrated: give epsilon instead")
  if config.calibration not in privacy.budget.CALIBRATIONS:
    raise ValueError(f"calibration must be one of {privacy.budget.CALIBRATIONS}, got "
                     f"{config.calibration!r}")
  if config.calibration == "shuffled" and not config.shuffled_release:
    raise ValueError("calibration='shuffled' needs shuffled_release=true")
  if config.method == "prior" and scope is privacy.Scope.CONDITIONAL:
    raise ValueError("method 'prior' samples a model fit without DP in the conditional scope: "
                     "no guarantee at all; use scope 'dp-sgd' (the DP-SGD VAE baseline)")
  if not 0 < config.delta < 1:
    raise ValueError(f"delta must be in (0, 1), got {config.delta}")
  if int(config.k) != config.k or config.k < 1:
    raise ValueError(f"k must be a positive integer, got {config.k}")
  if config.model.sigma is not None and not config.model.sigma > 0:
    raise ValueError(f"model.sigma must be positive, got {config.model.sigma}")
  if scope is privacy.Scope.PUBLIC and not config.public_dataset:
    raise ValueError("scope 'public' needs --config.public_dataset: a public data set in the same "
                     "domain (a split of the private data is not public)")
  if scope is not privacy.Scope.PUBLIC and config.public_dataset:
    raise ValueError(f"public_dataset is only used with scope 'public', not {config.scope!r}")


def plan_budget(config: ml_collections.ConfigDict, num_records: int) -> privacy.BudgetPlan:
  """The release's noise ratio and DP-SGD's noise, from the configuration alone."""
  dp_sgd = privacy.Scope.parse(config.scope) is privacy.Scope.DP_SGD
  return privacy.plan_budget(
      scope=config.scope, delta=config.delta, num_records=num_records, k=config.k,
      epsilon=None if config.method == "prior" else config.epsilon,
      total_epsilon=config.total_epsilon, release_share=config.release_share,
      calibration=config.calibration, shuffled=bool(config.shuffled_release),
      prior_sampling=config.method == "prior",
      dpsgd_sampling_rate=config.train.dp_sampling_rate if dp_sgd else None,
      dpsgd_steps=config.train.num_steps if dp_sgd else None,
      dpsgd_noise_multiplier=config.train.dp_noise_multiplier if dp_sgd else None)


def encoder_calibration(config, diameter: float,
                        plan: Optional[privacy.BudgetPlan] = None) -> tuple[float, float]:
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
    target = (float(m.lipschitz_target) if m.lipschitz_target is not None else
              privacy.max_lipschitz(m.sigma_min, config.epsilon, config.delta, diameter,
                                    k=config.k))
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


# Settings that may change between a run and its resumption: they act after training.
_RESUMABLE_FIELDS = ("noise_seed", "num_figure_samples", "shuffled_release", "replace_release",
                     "evaluation")


def _guard_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses to resume a checkpoint trained under other settings; records the config."""
  current = json.loads(config.to_json())
  for field in _RESUMABLE_FIELDS:
    current.pop(field, None)
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous != current:
      changed = sorted(k for k in set(previous) | set(current)
                       if previous.get(k) != current.get(k))
      raise ValueError(f"{workdir} holds a run with other settings ({', '.join(changed)}); "
                       "use a new --workdir or delete it")
  files.atomic_write_text(path, json.dumps(current, indent=2, sort_keys=True))


def run(config: ml_collections.ConfigDict, workdir: str,
        progress_bar: bool = True) -> PipelineResult:
  """Runs the main job; see the module docstring for what it writes."""
  timings = {}
  start = time.time()
  check_config(config)
  release_dir = os.path.join(workdir, "release")
  if (os.path.exists(os.path.join(release_dir, "privacy_report.json"))
      and not config.replace_release):
    raise ValueError(
        f"{release_dir} already holds a release. A second release from the same private records "
        "composes with the first (the reports do not add up by themselves); to replace it, and "
        "only if it was never published, pass --config.replace_release=true")

  data = data_lib.load_dataset(config.dataset, data_dir=config.data_dir, radius=config.radius,
                               holdout_fraction=config.holdout_fraction,
                               split_seed=config.split_seed, label_weight=config.label_weight,
                               **config.data_options.to_dict())
  domain = data.domain
  diameter = float(domain.diameter)
  logging.info("Loaded %s: %d private records, %d holdout, dim %d, domain diameter %.4f",
               config.dataset, len(data.train), len(data.holdout), domain.dim, diameter)
  # Fixed before training, from the configuration and the number of records only.
  plan = plan_budget(config, len(data.train))
  logging.info("Privacy budget fixed before training: %s", plan)
  os.makedirs(workdir, exist_ok=True)
  _guard_workdir(config, workdir)  # after the data loaded: a failed load leaves no config.json

  lipschitz_target, sigma = encoder_calibration(config, diameter, plan)
  model = builders.build_vae(domain, config.model, lipschitz_target, sigma,
                             log_sigma_lipschitz=config.model.log_sigma_lipschitz)
  logging.info("Encoder: Lipschitz target %.4g, training sigma %.4g", lipschitz_target, sigma)

  # The records the weights are fit on: the private ones, unless the scope is 'public'.
  fit_records = data.train
  if config.scope == "public":
    public = data_lib.load_dataset(config.public_dataset, data_dir=config.data_dir,
                                   radius=config.radius, holdout_fraction=config.holdout_fraction,
                                   split_seed=config.split_seed, label_weight=config.label_weight,
                                   **config.public_options.to_dict())
    if public.domain != domain:
      raise ValueError(f"public data set {config.public_dataset!r} has domain {public.domain}, "
                       f"not the private data's {domain}")
    fit_records = np.concatenate([public.train, public.holdout])
    logging.info("Scope 'public': training on %d records of %s", len(fit_records),
                 config.public_dataset)
  dp = None
  if config.scope == "dp-sgd":
    dp = train_lib.DPSGDConfig(noise_multiplier=plan.dpsgd_noise_multiplier,
                               clip_norm=config.train.dp_clip_norm,
                               sampling_rate=config.train.dp_sampling_rate)
  train_config = train_lib.TrainConfig(
      num_steps=config.train.num_steps, batch_size=min(config.train.batch_size,
                                                       len(fit_records)),
      learning_rate=config.train.learning_rate, seed=config.train.seed, dp=dp,
      image_likelihood=config.model.image_likelihood, beta=config.train.beta,
      log_every=config.train.log_every, checkpoint_every=config.train.checkpoint_every,
      progress_bar=progress_bar)
  timings["prepare_s"] = time.time() - start
  trained = train_lib.train(model, fit_records, domain.blocks, train_config, workdir=workdir)
  timings["train_s"] = trained.wall_time_s
  variables = {"params": trained.state.params, **trained.state.model_state}
  dpsgd = None if dp is None else dp.event(int(trained.state.step))  # the steps taken

  t0 = time.time()
  if config.method == "prior":
    records, report = _prior_release(config, model, variables, data, dpsgd,
                                     trained.seeded_by_user)
  else:
    synthetic = synth_lib.synthesize(
        model, variables, data.train, domain, epsilon=None, noise_ratio=plan.noise_ratio,
        delta=config.delta, k=config.k, scope=config.scope,
        shuffled_release=config.shuffled_release, seed=config.noise_seed, dpsgd=dpsgd,
        training_seeded=trained.seeded_by_user, notes=data.notes)
    records, report = synthetic.records, synthetic.report
    logging.info("Certified Lipschitz bound of the trained encoder mean: %.6g (target %.6g)",
                 synthetic.certificate.mean_lipschitz, lipschitz_target)
  if report.epsilon > plan.total_epsilon * (1 + 1e-6):
    logging.warning("The epsilon of this release is %.4g, above the planned %.4g (the "
                    "heteroscedastic mechanism's epsilon is computed, not calibrated).",
                    report.epsilon, plan.total_epsilon)
  # Written into a staging folder, then renamed into place in one step.
  release_lib.write_release(release_dir, records, domain, report,
                            replace=config.replace_release)
  timings["release_s"] = time.time() - t0

  metrics = None
  if config.evaluation.enabled and len(data.holdout):
    from lipdp import evaluation  # pylint: disable=g-import-not-at-top
    t0 = time.time()
    metrics = evaluation.evaluate_release(domain, records, data.train, data.holdout,
                                          seed=config.evaluation.seed,
                                          fast=config.evaluation.fast)
    metrics["meta/privacy_epsilon"] = report.epsilon
    metrics["meta/privacy_delta"] = report.delta
    metrics["meta/privacy_scope"] = report.scope.value
    metrics["meta/privacy_headline"] = report.headline
    timings["evaluation_s"] = time.time() - t0
    files.atomic_write_text(os.path.join(workdir, "evaluation.json"),
                            json.dumps(metrics, indent=2, sort_keys=True, default=_json_default))
  _figure(config, domain, data.train, records, report, os.path.join(workdir, "samples.png"))
  timings["total_s"] = time.time() - start
  return PipelineResult(release_dir=release_dir, report=report, synthetic_records=records,
                        model=model, variables=variables, data=data, plan=plan,
                        metrics=metrics, timings=timings)


def _json_default(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _prior_release(config, model, variables, data, dpsgd, training_seeded):
  """Method 'prior': records decoded from latents drawn from the prior, and their report."""
  num = len(data.train) * int(config.k)
  records = synth_lib.sample_prior(model, variables, num, data.domain, seed=config.noise_seed)
  report = privacy.make_report(
      privacy.PriorSampling(num), lipschitz=None, diameter=None, domain=_domain_text(data.domain),
      delta=config.delta, scope=config.scope, num_records=len(data.train), dpsgd=dpsgd,
      training_seeded=bool(training_seeded) and dpsgd is not None,
      extra_versions={"jax": jax.__version__}, notes=data.notes)
  return records, report


def _domain_text(domain) -> str:
  desc = domain.describe()
  return (f"{desc['type']} records of dimension {desc['dim']}: {desc['preprocessing']} "
          f"Diameter: {desc['diameter_derivation']}")


def _figure(config, domain, real_records, synthetic_records, report, path) -> None:
  num = int(config.num_figure_samples)
  rng = np.random.default_rng(0)  # which real records to show: a display choice, not noise
  real = real_records[rng.choice(len(real_records), min(num, len(real_records)), replace=False)]
  synth = synthetic_records[:num]
  title = (f"{config.dataset}: epsilon={report.epsilon:.3g} ({report.headline}), "
           f"delta={report.delta:g}, scope={report.scope.value}")
  if isinstance(domain, data_lib.ImageDomain):
    real_images, real_labels = domain.decode(real)
    synth_images, synth_labels = domain.decode(synth)
    figures.image_grid(real_images, synth_images, path, real_labels, synth_labels, title)
  else:
    figures.column_marginals(domain.decode(real_records), domain.decode(synthetic_records), path,
                             title)
