"""The VAE methods, 'lipdp' and 'prior': the one place that assembles a run's model, its
training settings and its release.

`prepare(spec, data)` fixes everything before the work directory is written: the ELBO's block
weights, the records the weights are fit on (the private ones, or scope 'public''s data set),
and the privacy budget (`plan_budget`: the release's noise ratio sigma / Delta and, in scope
'dp-sgd', DP-SGD's noise multiplier), refusing one the release cannot honour (`check_budget`).
`generate(...)` then calibrates the encoder (`encoder_calibration`), builds the VAE, trains it
(`lipdp.training`, resumable from the work directory's checkpoints) and releases:

* 'lipdp': each private record releases k latents mu(x) + sigma xi through the encoder, whose
  Lipschitz bound is certified from the trained weights, decoded (`lipdp.latent_release`);
* 'prior': records decoded from latents drawn from the prior; the guarantee is the training's
  alone (scope 'dp-sgd' or 'public'). In scope 'none' (no guarantee) this is the reference of
  the evaluation: lipdp's default VAE trained without DP, and no report.
"""

import dataclasses
import json
import logging
import math
import os
import time
from typing import List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from lipdp import checks
from lipdp import console
from lipdp import files
from lipdp import latent_release
from lipdp import methods
from lipdp import privacy
from lipdp import randomness
from lipdp import spec as spec_lib
from lipdp import training
from lipdp import workdir as workdir_lib
from lipdp.data import datasets
from lipdp.models import builders

log = logging.getLogger("lipdp.methods.vae")

# The release's truncation rule (lipdp.latent_release._check_truncation_is_negligible): the
# float64 sampler's truncation may add at most this fraction of delta.
_TRUNCATION_FRACTION = 1e-6
# Adaptive clipping's count noise sigma_b as a fraction of the expected batch q n (Andrew et al.
# 2021's choice: it takes a negligible share of DP-SGD's noise multiplier for batches of
# hundreds, e.g. z_D = 1.0008 z at z = 1 and q n = 256).
ADAPTIVE_CLIP_COUNT_NOISE = 1 / 20
# Scope 'none' trains lipdp's default VAE: its encoder as the default per-record release would
# constrain it (only sizes the model; nothing is claimed).
REFERENCE_BUDGET = spec_lib.PrivacySpec()


@dataclasses.dataclass
class Prepared:
  """What `prepare` fixed before anything is written."""

  plan: Optional[privacy.BudgetPlan]  # None without a guarantee
  fit_records: np.ndarray  # the records the weights are fit on
  block_weights: Optional[dict]
  warnings: List[str] = dataclasses.field(default_factory=list)
  # Scope 'dp-sgd' with train.public_pretrain_steps: the public records of the plain steps
  # before DP-SGD, and the note every report of the run carries.
  pretrain_records: Optional[np.ndarray] = None
  notes: Tuple[str, ...] = ()


def prepare(spec: spec_lib.Spec, data) -> Prepared:
  """Checks and fixes the model's data and the budget from the settings and the data alone."""
  weights = block_weights(spec, data.domain)
  if spec.model.label_conditioned:
    try:
      builders.label_condition_block(data.domain)
    except ValueError as e:
      raise spec_lib.SettingError(f"{spec_lib.setting('model.label_conditioned')}: {e}") from e
  try:  # refused now, not after training
    latent_release.check_decoding(spec.release.decoding, data.domain)
  except ValueError as e:
    raise spec_lib.SettingError(f"{spec_lib.setting('decoding')}: {e}") from e
  fit_records, pretrain_records, notes = data.train, None, ()
  if spec.scope is privacy.Scope.PUBLIC:
    fit_records = _public_records(spec, data)
    log.info(
      "Scope 'public': training on %s records of %s",
      f"{len(fit_records):,}",
      spec.data.public_dataset,
    )
  elif spec.train.public_pretrain_steps > 0:
    pretrain_records = _public_records(spec, data)
    notes = (pretrain_note(spec, len(pretrain_records)),)
    log.info("%s", notes[0])
  if spec.privacy is None:
    log.info("%s", console.no_guarantee_line(spec.method.name))
    return Prepared(None, fit_records, weights, pretrain_records=pretrain_records, notes=notes)
  # Fixed before training, from the settings and the number of records only.
  plan = plan_budget(spec, len(data.train))
  warnings = check_budget(spec, plan, len(data.train), diameter=float(data.domain.diameter))
  if (
    spec.model.heteroscedastic
    and spec.method.name == "lipdp"
    and spec.scope is privacy.Scope.DP_SGD
  ):
    plan = _heteroscedastic_dpsgd_plan(spec, plan, data, fit_records)
  if spec.scope is privacy.Scope.DP_SGD:
    check_dpsgd_truncation(spec, plan, data.domain)
    if spec.train.dp_clip_quantile is not None:
      settings = _adaptive_clipping_settings(spec, plan, len(fit_records), data.domain)
      notes += (adaptive_clipping_note(settings, spec.train.dp_clip_groups),)
      log.info("%s", notes[-1])
      if settings.gradient_noise_multiplier > 1.1 * settings.noise_multiplier:
        warnings.append(
          f"adaptive clipping's count takes a large share of DP-SGD's noise: the gradient's "
          f"noise multiplier is {settings.gradient_noise_multiplier:.4g} instead of "
          f"{settings.noise_multiplier:.4g}, because the expected batch "
          f"(q n = {spec.train.dp_sampling_rate * len(fit_records):.4g} records) is small"
        )
  log.info("%s", console.plan_line(plan, spec.privacy.scope, spec.release.k))
  return Prepared(plan, fit_records, weights, warnings, pretrain_records, notes)


def _heteroscedastic_dpsgd_plan(spec, plan, data, fit_records) -> privacy.BudgetPlan:
  """The plan with the total the report will account for a heteroscedastic release in scope
  dp-sgd: DP-SGD composed with that release at its targets, not with a Gaussian release of
  the same per-record epsilon (which `plan_budget`, given no diameter, composes). The report
  accounts the certified bounds, which lie within the targets, so its total is at most this
  one (found by a review: a plan of 3.65 printed before training, a report of 4.62)."""
  m = spec.model
  diameter = float(data.domain.diameter)
  target, _ = encoder_calibration(spec, diameter, plan)
  release = privacy.HeteroscedasticRelease(
    m.sigma_min, m.sigma_max, m.log_sigma_lipschitz, m.latent_dim, spec.release.k
  )
  event = _dpsgd_settings(spec, plan, len(fit_records), data.domain).event(spec.train.num_steps)
  accounted = privacy.account(
    release=release,
    lipschitz=target,
    diameter=diameter,
    delta=plan.delta,
    scope=spec.privacy.scope,
    num_records=len(data.train),
    shuffled=spec.privacy.shuffled_release,
    dpsgd=event,
  )
  return dataclasses.replace(plan, total_epsilon=accounted.epsilon)


def _adaptive_clipping_settings(spec, plan, num_records: int, domain) -> training.DPSGDConfig:
  """DP-SGD's settings with adaptive clipping, refused under the setting's name when the count's
  noise (q n / 20) cannot take its share of the noise multiplier z (it needs q n > 20 r z, r the
  count's sensitivity: 1/2, or max(c, 1 - c) per group, c the count's centre)."""
  train = spec.train
  sensitivity = training.count_sensitivity(train.dp_clip_quantile, train.dp_clip_groups is not None)
  if not training.count_noise_fits(
    plan.dpsgd_noise_multiplier, _count_noise_std(spec, num_records), sensitivity
  ):
    expected = train.dp_sampling_rate * num_records
    times = sensitivity / ADAPTIVE_CLIP_COUNT_NOISE
    # Per group the count's sensitivity is max(c, 1 - c), above one count's 1/2 unless c = 1/2.
    grouped = (
      f" (per group the count moves by up to {sensitivity:g}, not 1/2: a quantile nearer 0.5, "
      f"or no {spec_lib.setting('train.dp_clip_groups')}, needs less)"
      if train.dp_clip_groups is not None and sensitivity > 0.5
      else ""
    )
    raise spec_lib.SettingError(
      f"{spec_lib.setting('train.dp_clip_quantile')} needs an expected batch q n above "
      f"{times:g} times DP-SGD's noise multiplier ({times * plan.dpsgd_noise_multiplier:.4g})"
      f"{grouped}; it is {expected:.4g} records: raise "
      f"{spec_lib.setting('train.dp_sampling_rate')} or use a fixed clip norm"
    )
  try:
    return _dpsgd_settings(spec, plan, num_records, domain)
  except ValueError as error:  # e.g. a count noise so close to its floor that z_D overflows
    raise spec_lib.SettingError(f"{spec_lib.setting('train.dp_clip_quantile')}: {error}") from None


def clip_group_block(spec: spec_lib.Spec, domain) -> Optional[tuple]:
  """Per-group clipping's (start, stop) record coordinates: the categorical block that
  `train.dp_clip_groups` names, refused under the setting's name when there is none."""
  name = spec.train.dp_clip_groups
  if name is None:
    return None
  categorical = [b for b in domain.blocks if b.kind == "categorical"]
  for block in categorical:
    if block.name != name:
      continue
    if block.size < 2:
      raise spec_lib.SettingError(
        f"{spec_lib.setting('train.dp_clip_groups')} names {name!r}, which declares "
        f"{block.size} category: per-group clipping needs at least two groups"
      )
    return (block.start, block.stop)
  raise spec_lib.SettingError(
    f"{spec_lib.setting('train.dp_clip_groups')} must name a categorical column of the data; "
    f"got {name!r}, and the categorical columns are {[b.name for b in categorical]}"
  )


def adaptive_clipping_note(dp: training.DPSGDConfig, group_column: Optional[str] = None) -> str:
  """What the report says of adaptive clipping: why its count is inside the accounted DP-SGD
  (and, per group, which column's categories had their own clip norm), and that its sum is the
  plain float32 one ('auto' keeps it: the grid needs a fixed clip norm)."""
  return (
    f"DP-SGD's clip norm followed the {dp.clip_quantile:g} quantile of the per-example gradient "
    f"norms (adaptive clipping, Andrew et al. 2021; first clip norm {dp.clip_norm:g}), moved by "
    f"a count of unclipped examples released each step with noise {dp.count_noise_std:.4g}; "
    f"the gradient's noise multiplier was {dp.gradient_noise_multiplier:.6g}, so that the two "
    f"together are one DP-SGD step of the accounted multiplier {dp.noise_multiplier:.6g}"
    + (
      ""
      if dp.clip_groups is None
      else (
        f"; each of the {dp.num_clip_groups} categories of {group_column!r} had its own clip "
        f"norm and count, centred at {dp.count_centre:.10g} (the quantile to 1/256; per-group "
        "clipping, DPSGD-F: Xu, Du and Wu 2021), and the gradient's noise was scaled to the "
        "largest clip norm"
      )
    )
    + (
      "; the clipped gradients were summed in plain float32, whose rounding is not bounded "
      "(the bounded sum's integer grid needs a fixed clip norm; see the caveats)"
      if dp.sum_arithmetic == "float32"
      else ""
    )
  )


def _public_records(spec: spec_lib.Spec, data) -> np.ndarray:
  """All the records of `public_dataset` (its split does not matter: none is evaluated on),
  refused unless they lie in the private data's declared domain."""
  name, options = spec.data.load_arguments(public=True)
  public = datasets.load_dataset(name, **options)
  if public.domain != data.domain:
    raise ValueError(
      f"public data set {spec.data.public_dataset!r} has domain {public.domain}, "
      f"not the private data's {data.domain}"
    )
  records = np.concatenate([public.train, public.holdout])
  # The names differ (lipdp.spec refuses the same source), but the records may not: a table in
  # memory is named by its digest, and a copy of the private file, or the registry it was
  # sampled from, has another path (found by two reviews).
  if holds_private_records(records, np.concatenate([data.train, data.holdout])):
    raise spec_lib.SettingError(
      f"{spec_lib.setting('public_dataset')} holds every private record ({len(records):,} "
      "records, among them each of the private ones as often as the private data does): public "
      "data must be a separate collection"
    )
  return records


def holds_private_records(public: np.ndarray, private: np.ndarray) -> bool:
  """Whether `public` holds each row of `private` at least as often, where the private rows are
  mostly distinct (at least half): a table of a few categorical columns has few row patterns,
  which a larger, independent public set holds by chance, so there containment proves nothing.
  Rows are compared by their bytes."""
  if len(private) == 0 or public.shape[1:] != private.shape[1:] or public.dtype != private.dtype:
    return False

  def row_counts(x):
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    return np.unique(
      rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel(),
      return_counts=True,
    )

  private_rows, private_counts = row_counts(private)
  if len(private_rows) < 0.5 * len(private):
    return False
  public_rows, public_counts = row_counts(public)
  at = np.searchsorted(public_rows, private_rows)
  found = at < len(public_rows)
  found[found] = public_rows[at[found]] == private_rows[found]
  return bool(found.all() and (public_counts[at] >= private_counts).all())


def pretrain_note(spec: spec_lib.Spec, num_public: int) -> str:
  """What a report of a run that pretrained on public data says about it."""
  given = spec.data.given_public_options()
  options = ", ".join(f"{k}={v!r}" for k, v in sorted(given.items()))
  shown = spec.data.public_dataset + (f" ({options})" if options else "")
  return (
    f"DP-SGD started from weights pretrained without noise for "
    f"{spec.train.public_pretrain_steps:,} steps on {num_public:,} records of the public data "
    f"set {shown}; the guarantee assumes that data set is public and independent of the "
    "private records"
  )


def plan_budget(spec: spec_lib.Spec, num_records: int) -> privacy.BudgetPlan:
  """The release's noise ratio and DP-SGD's noise, from the settings alone."""
  p, train = spec.privacy, spec.train
  uses_dpsgd = p.scope is privacy.Scope.DP_SGD
  prior = spec.method.name == "prior"
  if p.total_epsilon is not None:
    # Refused before calibrating: DP-SGD's accountant would discretise an absurd budget into
    # more memory than the machine has, and a float64 release's share would exceed what its
    # sampler supports anyway (check_budget). The same limit for an exact release.
    limit = max_supported_epsilon(p.delta, spec.model.latent_dim * spec.release.k)
    if not p.total_epsilon <= limit:
      raise spec_lib.SettingError(
        f"an end-to-end epsilon of {p.total_epsilon:.4g} is more than lipdp supports at "
        f"delta = {p.delta:g} (at most {limit:.3g}, the float64 noise sampler's limit), and "
        f"would protect nothing anyway; choose an epsilon <= {checks.LARGE_EPSILON:g}"
      )
  return privacy.plan_budget(
    scope=p.scope,
    delta=p.delta,
    num_records=num_records,
    k=spec.release.k,
    epsilon=None if prior else p.epsilon,
    total_epsilon=p.total_epsilon,
    release_share=p.release_share,
    calibration=p.calibration,
    shuffled=p.shuffled_release,
    prior_sampling=prior,
    dpsgd_sampling_rate=train.dp_sampling_rate if uses_dpsgd else None,
    dpsgd_steps=train.num_steps if uses_dpsgd else None,
    dpsgd_noise_multiplier=train.dp_noise_multiplier if uses_dpsgd else None,
  )


def encoder_calibration(
  spec: spec_lib.Spec, diameter: float, plan: Optional[privacy.BudgetPlan] = None
) -> tuple[float, float]:
  """(lipschitz_target, training sigma) for the planned release.

  Scale invariance: only sigma / (L * D) matters. By default sigma is fixed (1.0) and the target
  L is sigma / (noise_ratio * D), the largest that the planned release allows; with
  `lipschitz_target` set, sigma is calibrated instead. Either way the decoder trains at the
  noise level it will see at release. Prior sampling releases no latent: the encoder is then
  trained at the given target and sigma (its Lipschitz constant does not enter the accounting).
  Without a plan, the per-record target of the settings (scope 'none': of REFERENCE_BUDGET).
  """
  m, k = spec.model, spec.release.k
  budget = spec.privacy or REFERENCE_BUDGET
  if m.heteroscedastic:
    # sigma(x) is learned in [sigma_min, sigma_max] and the release's epsilon is its RDP bound
    # at the targets. The default target of the mean is the largest L whose release meets the
    # per-record epsilon (check_budget refuses a variance term that alone exceeds it, and a
    # given target that does).
    if m.lipschitz_target is not None:
      target = float(m.lipschitz_target)
    elif spec.method.name != "lipdp":
      # Prior sampling releases no latent: the encoder's L does not enter the accounting.
      target = privacy.max_lipschitz(m.sigma_min, budget.epsilon, budget.delta, diameter, k=k)
    else:
      try:
        target = privacy.heteroscedastic_lipschitz(
          budget.epsilon,
          budget.delta,
          m.log_sigma_lipschitz,
          diameter,
          m.sigma_min,
          m.sigma_max,
          m.latent_dim,
          k,
        )
      except ValueError:  # refused with its reason by check_budget, before any training
        target = 0.0
    return target, float(m.sigma_min)
  if plan is None:
    ratio = privacy.calibrate_sigma(budget.epsilon, budget.delta, 1.0, k=k)
  else:
    ratio = plan.noise_ratio
  if ratio is None:  # prior sampling
    target = float(m.lipschitz_target) if m.lipschitz_target is not None else 1.0
    return target, float(m.sigma)
  if m.lipschitz_target is not None:
    target = float(m.lipschitz_target)
    return target, ratio * target * diameter
  return m.sigma / (ratio * diameter), m.sigma


# The learned label prior's logits (`lipdp.models.vae`) start uniform and must travel about
# log(C p_min) to reach a class of probability p_min (2 for bank-marketing's 12%): Adam moves a
# weight by at most about its learning rate per step, so at 1e-3 that alone would take 2,000
# steps, all of a table's training. Ten times the learning rate on those C logits (a choice made
# from this arithmetic, not tuned): 200 steps.
LABEL_PRIOR_LEARNING_RATE_MULTIPLIER = 10.0

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


def block_weights(spec: spec_lib.Spec, domain) -> Optional[dict]:
  """The ELBO's block weights: `train.label_loss_weight` (default: `default_label_loss_weight`)
  on the domain's label block."""
  weight = spec.train.label_loss_weight
  if weight is None:
    weight = default_label_loss_weight(domain)
  if weight == 1.0:
    return None
  if domain.label_column is None:
    raise spec_lib.SettingError(
      f"{spec_lib.setting('train.label_loss_weight')} weighs the label's term, but this data "
      "set has no label column"
    )
  return {domain.label_column: weight}


def exact_release_noise(spec: spec_lib.Spec) -> bool:
  """Whether the release draws exact lattice noise: method 'lipdp', with the sampler that
  `lipdp.latent_release.check_noise_sampler` resolves for the model."""
  sampler = latent_release.check_noise_sampler(spec.release.noise_sampler, spec.model)
  return spec.method.name == "lipdp" and sampler == "exact"


def max_supported_epsilon(delta: float, num_coordinates: int) -> float:
  """The largest per-record epsilon the float64 noise sampler supports at `delta`.

  lipdp.latent_release refuses a release whose truncated sampler (it stops at 12.2 sigma) could
  add more than 1e-6 * delta: (1 + e^epsilon) * num_coordinates * P(|N(0,1)| > 12.2) <= 1e-6
  delta. About 49 for delta = 1e-5 and 16 latent coordinates; far beyond any meaningful epsilon.
  """
  ratio = _TRUNCATION_FRACTION * delta / (num_coordinates * randomness.normal_truncation_mass())
  return math.log(ratio - 1.0) if ratio > 1.0 else 0.0


def build_model(spec: spec_lib.Spec, domain, plan: Optional[privacy.BudgetPlan]):
  """The VAE these settings build, its encoder calibrated for the planned release."""
  lipschitz_target, sigma = encoder_calibration(spec, float(domain.diameter), plan)
  log.debug("Encoder: Lipschitz target %.4g, training sigma %.4g", lipschitz_target, sigma)
  return builders.build_vae(
    domain, spec.model, lipschitz_target, sigma, log_sigma_lipschitz=spec.model.log_sigma_lipschitz
  )


def num_parameters(spec: spec_lib.Spec, plan: privacy.BudgetPlan, domain) -> int:
  """The number of trained parameters of the VAE these settings build (shapes only)."""
  return _count_parameters(build_model(spec, domain, plan), domain)


def _count_parameters(model, domain) -> int:
  key = jax.random.key(0)
  shapes = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, domain.dim)), k), key)
  return int(sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes["params"])))


def check_dpsgd_truncation(spec: spec_lib.Spec, plan: privacy.BudgetPlan, domain) -> None:
  """Refuses a DP-SGD run whose float64 noise sampler's truncation could matter to delta.

  DP-SGD's noise comes from the sampler the release uses (`lipdp.randomness`, which stops at
  12.2 standard deviations): P coordinates per step for P parameters, over T steps. By the
  release's rule (`max_supported_epsilon`), an output region the truncated sampler never
  reaches may add at most (1 + e^epsilon) P T P(|N(0,1)| > 12.2) to delta, and that must stay
  below 1e-6 delta, with epsilon the run's total. For the label-conditioned MNIST recipe (1.3 M
  parameters, 1,500 steps) at delta 1e-5 this allows a total epsilon up to about 31.
  """
  # Adaptive clipping draws one more coordinate per step: the count's noise (one per group).
  counts = 0
  if spec.train.dp_clip_quantile is not None:
    block = clip_group_block(spec, domain)
    counts = 1 if block is None else block[1] - block[0]
  per_step = num_parameters(spec, plan, domain) + counts
  num_coordinates = per_step * int(spec.train.num_steps)
  limit = max_supported_epsilon(plan.delta, num_coordinates)
  if not plan.total_epsilon <= limit:
    raise spec_lib.SettingError(
      f"a total epsilon of {plan.total_epsilon:.4g} is more than DP-SGD's float64 noise sampler "
      f"supports at delta = {plan.delta:g} for {num_coordinates:.3g} noise coordinates (the "
      f"parameters times {spec_lib.setting('train.num_steps')}; at most {limit:.3g}), and would "
      f"protect nothing anyway; choose an epsilon <= {checks.LARGE_EPSILON:g}"
    )


def check_budget(
  spec: spec_lib.Spec,
  plan: privacy.BudgetPlan,
  num_records: int,
  diameter: Optional[float] = None,
) -> List[str]:
  """Refuses a budget the release cannot honour; returns warnings about weak ones.

  Called before training: an epsilon beyond `max_supported_epsilon` would otherwise fail only
  at release, after the whole training. For the heteroscedastic release (given the domain
  `diameter`) the epsilon is computed at release from the certified bounds, which the
  constrained layers keep at their targets; its value at the targets (L of the mean,
  `model.log_sigma_lipschitz`) must meet the requested per-record epsilon and the sampler's
  limit. This is a check only: the release's own accounting is unchanged.
  """
  m, k = spec.model, spec.release.k
  setting = spec_lib.setting
  if m.heteroscedastic and diameter is not None and spec.method.name == "lipdp":
    target, _ = encoder_calibration(spec, diameter, plan)
    worst = privacy.heteroscedastic_epsilon(
      plan.delta,
      target,
      m.log_sigma_lipschitz,
      diameter,
      m.sigma_min,
      m.sigma_max,
      m.latent_dim,
      k,
    )
    limit = max_supported_epsilon(plan.delta, m.latent_dim * k)
    if not worst.epsilon <= limit:
      raise spec_lib.SettingError(
        f"the heteroscedastic release would have a per-record epsilon of up to "
        f"{worst.epsilon:.4g} at delta = {plan.delta:g}: log sigma(x) may vary by "
        f"model.log_sigma_lipschitz * D = {m.log_sigma_lipschitz * diameter:.3g}, so "
        f"sigma(x) by a factor up to {worst.sigma_ratio:.3g} between neighbours, more than "
        f"the float64 noise sampler supports (epsilon at most {limit:.3g}); lower "
        f"{setting('model.log_sigma_lipschitz')} or narrow [{setting('model.sigma_min')}, "
        f"{setting('model.sigma_max')}]"
      )
    # The requested per-record epsilon is a bound the release must meet, as the Gaussian
    # release's is (it was once computed and only logged: a request of 1 could release at 11).
    if not worst.epsilon <= plan.release_epsilon * (1 + 1e-9):
      why = (
        f"{setting('model.lipschitz_target')} = {target:g}"
        if m.lipschitz_target is not None
        else "a constant mean"
      )
      raise spec_lib.SettingError(
        f"the heteroscedastic release would have a per-record epsilon of up to "
        f"{worst.epsilon:.4g} at delta = {plan.delta:g} with {why}, above the requested "
        f"{plan.release_epsilon:g}: sigma(x) may vary by a factor up to "
        f"{worst.sigma_ratio:.3g} between neighbours (model.log_sigma_lipschitz * D = "
        f"{m.log_sigma_lipschitz * diameter:.3g}); lower {setting('model.log_sigma_lipschitz')}"
        f", narrow [{setting('model.sigma_min')}, {setting('model.sigma_max')}]"
        + (
          f" or lower {setting('model.lipschitz_target')}" if m.lipschitz_target is not None else ""
        )
        + f", or raise {setting('epsilon')}"
      )
  if plan.noise_ratio is not None and not m.heteroscedastic:
    per_record = (
      plan.release_epsilon
      if plan.calibration == "per-record"
      else privacy.gaussian_epsilon(plan.noise_ratio, 1.0, plan.delta, k=k)
    )
    exact = exact_release_noise(spec)
    # The lattice's scale grows as sigma sqrt(d) / (L D) (lipdp.privacy.lattice.covering);
    # past 2^46 its values would leave float64's exact integers. 2^29 leaves a factor 2.
    if exact and not plan.noise_ratio * math.sqrt(m.latent_dim) < 2**29:
      raise spec_lib.SettingError(
        f"a per-record epsilon of {per_record:.3g} needs noise {plan.noise_ratio:.3g} times "
        f"the sensitivity, more than the exact sampler's lattice supports at "
        f"{setting('model.latent_dim')} = {m.latent_dim}; raise {setting('epsilon')} or use "
        f"{setting('noise_sampler', 'float64')}"
      )
    # The float64 sampler's limit (it truncates at 12.2 sigma); an exact release keeps it as
    # lipdp's limit, beyond which a release protects nothing.
    limit = max_supported_epsilon(plan.delta, m.latent_dim * k)
    if not per_record <= limit:
      raise spec_lib.SettingError(
        f"a per-record epsilon of {per_record:.4g} is more than lipdp supports at delta = "
        f"{plan.delta:g} (at most {limit:.3g}, the float64 noise sampler's limit"
        + (", kept for exact noise" if exact else "")
        + f"), and would protect nothing anyway; choose {setting('epsilon')} <= "
        f"{checks.LARGE_EPSILON:g}"
      )
  return checks.weak_budget_warnings(plan.total_epsilon, plan.delta, num_records)


def generate(
  spec: spec_lib.Spec, data, workdir: str, prepared: Prepared, progress: bool
) -> methods.Generated:
  """Builds, trains and releases (module docstring); the work directory is open."""
  domain, plan = data.domain, prepared.plan
  model = build_model(spec, domain, plan)
  trained = _train(spec, model, domain, prepared, workdir, progress)
  variables = {"params": trained.state.params, **trained.state.model_state}
  dpsgd_event = None
  if spec.scope is privacy.Scope.DP_SGD:  # the steps taken
    dpsgd_event = _dpsgd_settings(spec, plan, len(prepared.fit_records), domain).event(
      int(trained.state.step)
    )
  timings = {"train_s": trained.wall_time_s}

  start = time.time()
  if spec.method.name == "prior":
    records, report = _prior_release(
      spec, model, variables, data, dpsgd_event, trained, prepared.notes
    )
  else:
    synthetic = latent_release.synthesize(
      model,
      variables,
      data.train,
      domain,
      epsilon=None,
      noise_ratio=plan.noise_ratio,
      delta=spec.privacy.delta,
      k=spec.release.k,
      scope=spec.privacy.scope,
      shuffled_release=spec.privacy.shuffled_release,
      seed=spec.release.noise_seed,
      dpsgd=dpsgd_event,
      training_seeded=trained.seeded_by_user,
      notes=tuple(data.notes) + prepared.notes,
      decoding=spec.release.decoding,
      temperature=spec.release.temperature,
      noise_sampler=spec.release.noise_sampler,
    )
    records, report = synthetic.records, synthetic.report
    log.info(
      "%s",
      console.certificate_line(
        synthetic.certificate.mean_lipschitz, model.lipschitz_target, synthetic.sigma
      ),
    )
  timings["release_s"] = time.time() - start
  compare = {}
  if spec.evaluation.compare_prior and spec.method.name == "lipdp":
    # A diagnostic of what the release adds: the same weights sampled from the prior.
    compare["prior_sampling"] = latent_release.sample_prior(
      model,
      variables,
      len(records),
      domain,
      seed=spec.release.noise_seed,
      decoding=spec.release.decoding,
      temperature=spec.release.temperature,
    )
  return methods.Generated(records, report, model, variables, timings=timings, compare=compare)


def _dpsgd_settings(
  spec: spec_lib.Spec, plan: privacy.BudgetPlan, num_records: int, domain
) -> training.DPSGDConfig:
  """DP-SGD's settings (scope 'dp-sgd'), with the planned noise multiplier; with adaptive
  clipping, Andrew et al. 2021's count noise, q n / 20 (the expected batch's twentieth)."""
  train = spec.train
  adaptive = train.dp_clip_quantile is not None
  return training.DPSGDConfig(
    noise_multiplier=plan.dpsgd_noise_multiplier,
    clip_norm=train.dp_clip_norm,
    sampling_rate=train.dp_sampling_rate,
    clipping=train.dp_clipping,
    clip_quantile=train.dp_clip_quantile,
    count_noise_std=_count_noise_std(spec, num_records) if adaptive else None,
    clip_groups=clip_group_block(spec, domain),
    sum_arithmetic=spec_lib.dp_sum_arithmetic(spec),
    chunk_size=train.dp_microbatch,
  )


def _count_noise_std(spec: spec_lib.Spec, num_records: int) -> float:
  """Adaptive clipping's count noise sigma_b = q n / 20 (Andrew et al. 2021)."""
  return ADAPTIVE_CLIP_COUNT_NOISE * spec.train.dp_sampling_rate * num_records


def finished_training(spec: spec_lib.Spec, data, workdir: str):
  """The model, its training settings and the trained state of the finished run in `workdir`
  (restored from its last checkpoint): `(model, training.TrainConfig, training.TrainResult)`.

  For diagnostics of a trained run (experiments/gradient_norms.py). Refuses a run whose training
  is not finished: a diagnostic must neither train nor spend DP-SGD's budget. The caller checks
  that `workdir` holds this spec's run (`lipdp.runner.open_for`).
  """
  done = workdir_lib.latest_checkpoint_step(workdir)
  if done != spec.train.num_steps:
    raise ValueError(
      f"{workdir} holds no finished training ({done or 0} of {spec.train.num_steps} steps): "
      "run it first"
    )
  prepared = prepare(spec, data)
  model = build_model(spec, data.domain, prepared.plan)
  trained = _train(spec, model, data.domain, prepared, workdir, progress=False)
  return model, _train_config(spec, model, data.domain, prepared, progress=False), trained


def _train_config(spec, model, domain, prepared: Prepared, progress: bool) -> training.TrainConfig:
  """The training settings of `spec` (DP-SGD's in scope 'dp-sgd')."""
  uses_dpsgd = spec.scope is privacy.Scope.DP_SGD
  dpsgd_settings = (
    _dpsgd_settings(spec, prepared.plan, len(prepared.fit_records), domain) if uses_dpsgd else None
  )
  train = spec.train
  batch_size = _batch_size(train.batch_size, len(prepared.fit_records), uses_dpsgd)
  return training.TrainConfig(
    num_steps=train.num_steps,
    batch_size=batch_size,
    learning_rate=train.learning_rate,
    seed=train.seed,
    dp=dpsgd_settings,
    image_likelihood=spec.model.image_likelihood,
    beta=train.beta,
    block_weights=prepared.block_weights,
    log_every=train.log_every,
    checkpoint_every=train.checkpoint_every,
    average_decay=train.average_decay,
    learning_rate_decay=train.learning_rate_decay,
    noise_samples=train.noise_samples,
    progress_bar=progress,
    learning_rate_multipliers=(
      {"label_prior": LABEL_PRIOR_LEARNING_RATE_MULTIPLIER}
      if model.label_prior is not None
      else None
    ),
  )


def _train(spec, model, domain, prepared: Prepared, workdir: str, progress: bool):
  """Trains (or resumes, or finds finished) the model in the work directory."""
  config = _train_config(spec, model, domain, prepared, progress)
  uses_dpsgd, dpsgd_settings = config.dp is not None, config.dp
  if uses_dpsgd and spec.train.dp_sum == "auto" and dpsgd_settings.sum_arithmetic == "float32":
    log.warning(
      "DP-SGD sums the clipped gradients in plain float32, whose rounding is not bounded (the "
      "report's caveats say so): train.dp_sum 'auto' bounds the sum on an integer grid, which "
      "needs a fixed clip norm, and adaptive clipping (train.dp_clip_quantile) moves it"
    )
  train, batch_size = spec.train, config.batch_size
  latest = workdir_lib.latest_checkpoint_step(workdir)
  how = (
    f"DP-SGD, noise multiplier {dpsgd_settings.noise_multiplier:.3g}, sampling rate "
    f"{dpsgd_settings.sampling_rate:g}"
    if uses_dpsgd
    else f"batch {batch_size}"
  )
  num_params = _count_parameters(model, domain)
  if uses_dpsgd:
    # Why the model's size matters under DP-SGD (docs/results.md, breast cancer): the noise on
    # a step's mean clipped gradient has norm z C sqrt(P) / (q n), the signal at most C.
    ratio = (
      dpsgd_settings.noise_multiplier
      * math.sqrt(num_params)
      / (dpsgd_settings.sampling_rate * len(prepared.fit_records))
    )
    log.info(
      "Model: %s trained parameters; DP-SGD's noise on a step's mean clipped gradient has "
      "about %.3g times the norm of the largest signal",
      f"{num_params:,}",
      ratio,
    )
  else:
    log.info("Model: %s trained parameters", f"{num_params:,}")
  log.info(
    "%s",
    console.training_line(
      latest,
      train.num_steps,
      how,
      workdir_lib.path(workdir, workdir_lib.CHECKPOINTS),
      jax.device_count(),
      jax.default_backend(),
    ),
  )
  if uses_dpsgd:
    _check_dpsgd_record(workdir, dpsgd_settings, fresh=latest is None)
  initial_variables = None
  if prepared.pretrain_records is not None and latest is None:
    # A run resuming DP-SGD restores its own checkpoint, which replaces any start.
    initial_variables = _pretrain(spec, model, domain, prepared, config, workdir)
  trained = training.train(
    model,
    prepared.fit_records,
    domain.blocks,
    config,
    workdir=workdir,
    initial_variables=initial_variables,
  )
  if trained.resumed_from and trained.resumed_from != latest:
    log.info("Resumed from step %d", trained.resumed_from)
  if trained.resumed_from < train.num_steps:
    log.info("Trained in %.1f s", trained.wall_time_s)
  return trained


def _check_dpsgd_record(workdir: str, dpsgd_settings, fresh: bool) -> None:
  """Records the DP-SGD noise multiplier and sampling rate before the first step; refuses to
  resume (or to release again) from weights trained with others.

  The report's DP-SGD event is rebuilt from today's plan, which must therefore be the plan the
  weights were trained under: a setting that changes the calibration (the total epsilon, the
  release's share or shuffling, the steps) must not reach trained weights. Weights without the
  record (from lipdp before 08c9823) are refused too: the calibrated multiplier is a numerical
  search whose result may differ between versions of lipdp or dp_accounting, and a larger one
  today than the weights had would understate their epsilon.

  It names how the clipped gradients were summed (`sum_arithmetic`, the resolved train.dp_sum), so
  that a later meaning of 'auto' cannot make a report misname the training's sum. The record also
  says on how many devices the training started (`device_count`), for reproduction only: the noise
  and the Poisson batches are drawn on the host from the seed and the step, so another device count
  changes the order in which a step's gradients are summed, not the privacy; a resume on another
  count is allowed and logged.
  """
  path = workdir_lib.path(workdir, workdir_lib.DPSGD_FILE)
  planned = {
    "noise_multiplier": float(dpsgd_settings.noise_multiplier),
    "sampling_rate": float(dpsgd_settings.sampling_rate),
    "sum_arithmetic": dpsgd_settings.sum_arithmetic,
  }
  devices = jax.device_count()
  if fresh:
    record = {**planned, "device_count": devices}
    files.atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True))
    return
  if not os.path.exists(path):
    raise ValueError(
      f"{workdir} holds DP-SGD-trained weights without {workdir_lib.DPSGD_FILE}, the record of the "
      "noise multiplier and sampling rate they were trained with (work directories from lipdp "
      "before that record existed), so this run's report could not be checked to account their "
      "training. Use a new work directory"
    )
  with open(path, encoding="utf-8") as f:
    recorded = json.load(f)
  trained_on = recorded.pop("device_count", None)  # absent from records before it was kept
  # Records before 5ece7ef (2026-12-08) do not name the sum: `runner.open_for` has compared
  # their config.json's train.dp_sum, and what 'auto' resolves to (the clip quantile, compared
  # too) has not changed since 'auto' came in (3cffead).
  recorded.setdefault("sum_arithmetic", planned["sum_arithmetic"])
  if recorded["sum_arithmetic"] != planned["sum_arithmetic"]:
    raise ValueError(
      f"{workdir} holds weights trained with DP-SGD sums {recorded['sum_arithmetic']!r}; this "
      f"run would sum {planned['sum_arithmetic']!r} (train.dp_sum resolves otherwise), so its "
      "report would not say how the weights were trained. Set train.dp_sum to "
      f"{recorded['sum_arithmetic']!r}, or use a new work directory"
    )
  if recorded != planned:
    raise ValueError(
      f"{workdir} holds weights trained with DP-SGD noise multiplier "
      f"{recorded.get('noise_multiplier')!r} and sampling rate {recorded.get('sampling_rate')!r}; "
      f"this run plans {planned['noise_multiplier']!r} and {planned['sampling_rate']!r}, so "
      "its report would not account the training those weights had. Use a new work directory"
    )
  if trained_on is not None and trained_on != devices:
    log.info(
      "The weights' training started on %d devices and this run has %d: steps it trains sum "
      "their gradients in another order, so the weights may differ in their last digits from "
      "an uninterrupted run's (the DP-SGD noise and batches, drawn from the seed and the step, "
      "do not change, but for a sum on the grid, whose rounding bound counts the devices: "
      "its noise is recalibrated to the new count's, slightly)",
      trained_on,
      devices,
    )


def _pretrain(spec, model, domain, prepared: Prepared, dpsgd_config, workdir: str):
  """Plain steps on the public records (train.public_pretrain_steps); returns their weights.

  Resumable like any training (its own checkpoints in the work directory's `pretrain/`); a run
  killed during pretraining resumes it, one killed during DP-SGD does not come here. Nothing
  here sees a private record."""
  steps = spec.train.public_pretrain_steps
  config = dataclasses.replace(
    dpsgd_config,
    num_steps=steps,
    batch_size=_batch_size(spec.train.batch_size, len(prepared.pretrain_records), False),
    dp=None,
    average_decay=0.0,
    learning_rate_decay="constant",
    checkpoint_every=min(dpsgd_config.checkpoint_every, steps),
  )
  log.info("Pretraining: %s plain steps on the public data set", f"{steps:,}")
  pretrained = training.train(
    model,
    prepared.pretrain_records,
    domain.blocks,
    config,
    workdir=workdir_lib.path(workdir, workdir_lib.PRETRAIN_DIR),
  )
  # Host copies: the same values on every host, whatever the training's sharding was.
  return jax.device_get({"params": pretrained.state.params, **pretrained.state.model_state})


def _batch_size(wanted: int, num_records: int, uses_dpsgd: bool) -> int:
  """The configured batch size, at most the records and a multiple of the devices (said).
  (DP-SGD's batches are Poisson samples; its batch size only sizes the microbatches.)"""
  batch = min(wanted, num_records)
  devices = jax.device_count()
  if not uses_dpsgd:
    batch -= batch % devices
    if batch < 1:
      raise ValueError(
        f"{num_records} training records are too few for a batch on {devices} devices"
      )
  if batch != wanted:
    log.info("%s", console.batch_line(batch, wanted, num_records, devices))
  return batch


def _prior_release(spec, model, variables, data, dpsgd_event, trained, notes=()):
  """Method 'prior': records decoded from latents drawn from the prior, and their report
  (None in scope 'none': no guarantee)."""
  num = len(data.train) * spec.release.k
  records = latent_release.sample_prior(
    model,
    variables,
    num,
    data.domain,
    seed=spec.release.noise_seed,
    decoding=spec.release.decoding,
    temperature=spec.release.temperature,
  )
  if spec.privacy is None:
    return records, None
  report = privacy.make_report(
    privacy.PriorSampling(num),
    lipschitz=None,
    diameter=None,
    domain=latent_release.domain_text(data.domain),
    domain_description=data.domain.describe(),
    delta=spec.privacy.delta,
    scope=spec.privacy.scope,
    num_records=len(data.train),
    dpsgd=dpsgd_event,
    training_seeded=bool(trained.seeded_by_user) and dpsgd_event is not None,
    extra_versions={"jax": jax.__version__},
    notes=tuple(data.notes) + tuple(notes) + _prior_seed_notes(spec),
  )
  return records, report


PRIOR_SEEDED_NOTE = (
  "The prior latents (and any style draws) came from a fixed seed (noise_seed), so the "
  "synthetic records are reproducible from the weights; they are post-processing of the "
  "weights, not privacy noise, so the guarantee does not depend on them"
)


def _prior_seed_notes(spec) -> tuple:
  """What a prior-sampling report says of a user's noise seed: it seeds no privacy noise (the
  noise statement is about DP-SGD's), but the option says it is recorded (found by a review)."""
  return (PRIOR_SEEDED_NOTE,) if spec.release.noise_seed is not None else ()
