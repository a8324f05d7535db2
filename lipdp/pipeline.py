"""The main job, end to end: data -> domain -> train -> certify -> calibrate -> synthesize -> report.

`run(config, workdir)` is what `./run.sh` (experiments/main.py) calls. It writes

    workdir/
      checkpoints/, metrics.jsonl, train_seed.json   private training artefacts: never release
      release/
        synthetic.npz          the synthetic records (shuffled, no identifiers) and decoded parts
        privacy_report.json    the privacy report (lipdp.privacy.PrivacyReport)
        domain.json            the domain description, to decode the records later
      samples.png              real versus synthetic samples: shows private records, so it
                               stays beside the private artefacts, outside release/

release/ is written into release.partial/ and renamed into place once complete, so a failure
leaves no half-written release behind.
"""

import dataclasses
import json
import os
from typing import Any

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


@dataclasses.dataclass
class PipelineResult:
  release_dir: str
  report: Any
  synthetic_records: np.ndarray
  model: Any
  variables: Any
  data: Any


def check_config(config: ml_collections.ConfigDict) -> None:
  """Clear errors for bad settings before any work starts."""
  scope = privacy.Scope.parse(config.scope)
  if not (np.isfinite(config.epsilon) and config.epsilon > 0):
    raise ValueError(f"epsilon must be positive and finite, got {config.epsilon}")
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


def encoder_calibration(config, diameter: float) -> tuple[float, float]:
  """(lipschitz_target, training sigma) for the requested per-record (epsilon, delta).

  Scale invariance: only sigma / (L * D) matters. By default sigma is fixed (1.0) and the target
  L is the largest that (epsilon, delta) allows; with `lipschitz_target` set, sigma is
  calibrated instead. Either way the decoder trains at the noise level it will see at release.
  """
  m = config.model
  if m.heteroscedastic:
    # sigma(x) is learned in [sigma_min, sigma_max]; epsilon is computed by RDP at release,
    # not calibrated. The default target is the homoscedastic one at the smallest noise.
    target = (float(m.lipschitz_target) if m.lipschitz_target is not None else
              privacy.max_lipschitz(m.sigma_min, config.epsilon, config.delta, diameter,
                                    k=config.k))
    return target, float(m.sigma_min)
  if m.lipschitz_target is not None:
    target = float(m.lipschitz_target)
    sigma = privacy.calibrate_sigma(config.epsilon, config.delta, target * diameter, k=config.k)
  else:
    sigma = float(m.sigma)
    target = privacy.max_lipschitz(sigma, config.epsilon, config.delta, diameter, k=config.k)
  return target, sigma


# Settings that may change between a run and its resumption: they act after training.
_RESUMABLE_FIELDS = ("noise_seed", "num_figure_samples", "shuffled_release", "replace_release")


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
  check_config(config)
  release_dir = os.path.join(workdir, "release")
  if (os.path.exists(os.path.join(release_dir, "privacy_report.json"))
      and not config.replace_release):
    raise ValueError(
        f"{release_dir} already holds a release. A second release from the same private records "
        "composes with the first (the reports do not add up by themselves); to replace it, and "
        "only if it was never published, pass --config.replace_release=true")
  os.makedirs(workdir, exist_ok=True)
  _guard_workdir(config, workdir)

  data = data_lib.load_dataset(config.dataset, data_dir=config.data_dir, radius=config.radius,
                               holdout_fraction=config.holdout_fraction,
                               split_seed=config.split_seed)
  domain = data.domain
  diameter = float(domain.diameter)
  logging.info("Loaded %s: %d private records, %d holdout, dim %d, domain diameter %.4f",
               config.dataset, len(data.train), len(data.holdout), domain.dim, diameter)

  lipschitz_target, sigma = encoder_calibration(config, diameter)
  model = builders.build_vae(domain, config.model, lipschitz_target, sigma,
                             log_sigma_lipschitz=config.model.log_sigma_lipschitz)
  logging.info("Encoder: Lipschitz target %.4g, training sigma %.4g", lipschitz_target, sigma)

  # The records the weights are fit on: the private ones, unless the scope is 'public'.
  fit_records = data.train
  if config.scope == "public":
    public = data_lib.load_dataset(config.public_dataset, data_dir=config.data_dir,
                                   radius=config.radius, holdout_fraction=config.holdout_fraction,
                                   split_seed=config.split_seed,
                                   **config.public_options.to_dict())
    if public.domain != domain:
      raise ValueError(f"public data set {config.public_dataset!r} has domain {public.domain}, "
                       f"not the private data's {domain}")
    fit_records = np.concatenate([public.train, public.holdout])
    logging.info("Scope 'public': training on %d records of %s", len(fit_records),
                 config.public_dataset)
  dp = None
  if config.scope == "dp-sgd":
    dp = train_lib.DPSGDConfig(noise_multiplier=config.train.dp_noise_multiplier,
                               clip_norm=config.train.dp_clip_norm,
                               sampling_rate=config.train.dp_sampling_rate)
  train_config = train_lib.TrainConfig(
      num_steps=config.train.num_steps, batch_size=min(config.train.batch_size,
                                                       len(fit_records)),
      learning_rate=config.train.learning_rate, seed=config.train.seed, dp=dp,
      image_likelihood=config.model.image_likelihood, beta=config.train.beta,
      log_every=config.train.log_every, checkpoint_every=config.train.checkpoint_every,
      progress_bar=progress_bar)
  trained = train_lib.train(model, fit_records, domain.blocks, train_config, workdir=workdir)
  variables = {"params": trained.state.params, **trained.state.model_state}

  synthetic = synth_lib.synthesize(
      model, variables, data.train, domain, epsilon=config.epsilon,
      delta=config.delta, k=config.k, scope=config.scope, shuffled_release=config.shuffled_release,
      seed=config.noise_seed,
      dpsgd=None if dp is None else dp.event(int(trained.state.step)),  # the steps taken
      training_seeded=trained.seeded_by_user, notes=data.notes)

  logging.info("Certified Lipschitz bound of the trained encoder mean: %.6g (target %.6g)",
               synthetic.certificate.mean_lipschitz, lipschitz_target)
  if synthetic.report.per_record_epsilon > config.epsilon * (1 + 1e-6):
    logging.warning("The per-record epsilon of this release is %.4g, above the requested %.4g "
                    "(the heteroscedastic mechanism's epsilon is computed, not calibrated).",
                    synthetic.report.per_record_epsilon, config.epsilon)
  # Written into a staging folder, then renamed into place in one step.
  release_lib.write_release(release_dir, synthetic.records, domain, synthetic.report,
                            replace=config.replace_release)
  _figure(config, domain, data.train, synthetic.records, synthetic.report,
          os.path.join(workdir, "samples.png"))
  return PipelineResult(release_dir=release_dir, report=synthetic.report,
                        synthetic_records=synthetic.records, model=model, variables=variables, data=data)


def _figure(config, domain, real_records, synthetic_records, report, path) -> None:
  num = int(config.num_figure_samples)
  rng = np.random.default_rng(0)  # which real records to show: a display choice, not noise
  real = real_records[rng.choice(len(real_records), min(num, len(real_records)), replace=False)]
  synth = synthetic_records[:num]
  title = (f"{config.dataset}: per-record eps={report.per_record_epsilon:.3g}, "
           f"delta={report.delta:g}, scope={report.scope}")
  if isinstance(domain, data_lib.ImageDomain):
    real_images, real_labels = domain.decode(real)
    synth_images, synth_labels = domain.decode(synth)
    figures.image_grid(real_images, synth_images, path, real_labels, synth_labels, title)
  else:
    figures.column_marginals(domain.decode(real_records), domain.decode(synthetic_records), path,
                             title)
