"""What a run does: its settings, typed, with their defaults, validated once on entry.

A `Spec` holds every setting of one run in frozen sections (`DataSpec`, `MethodSpec`,
`ReleaseSpec`, `PrivacySpec`, `ModelSpec`, `TrainSpec`, `EvaluationSpec`). Every entry point
builds one and hands it to `lipdp.runner.run`: experiments/main.py, the `lipdp` command,
`lipdp.synthesize`, the sweeps and experiments/baselines.py. Nothing downstream reads a
ConfigDict, and nothing checks a setting again.

Configs stay code (big_vision style): an ml_collections ConfigDict with one flat layout
(`--config.epsilon`, `--config.train.num_steps`), whose fields and defaults are the dataclass
fields below, so each default is stated once. `base_config()` builds that ConfigDict from the
defaults, `from_config(config)` turns a ConfigDict into a validated Spec, and `to_config(spec)`
turns a Spec back into the layout (what a work directory's config.json records).

Runs without a privacy guarantee are explicit: scope 'none' (the references of the evaluation:
the VAE trained without DP and decoded from its prior, method 'prior'; the training records
themselves, method 'copy_train') gives `Spec.privacy = None`. They write no release and no
report, only their evaluation, and carry no epsilon, never a made-up one; a privacy setting
moved from its default (an epsilon, a delta) would be ignored there, so it is refused.

Errors name the settings the way the entry point does (`SettingError`): `--config.epsilon` for
the main job and the sweeps, `--epsilon` for the `lipdp` command, `epsilon=` for Python.
"""

import collections.abc
import dataclasses
import importlib.util
import math
import os
import re
import types
import typing
from typing import Any, Callable, Mapping, Optional, Tuple

import ml_collections

from lipdp import discrete_gaussian
from lipdp import methods
from lipdp import privacy
from lipdp import randomness
from lipdp import training
from lipdp.models import builders
from lipdp.models import likelihood
from lipdp.privacy import budget as budget_lib

# The config's value of `scope` for a run with no privacy guarantee at all (`Spec.privacy` None).
NO_GUARANTEE = "none"

_EMPTY: Mapping[str, Any] = types.MappingProxyType({})


def _key(key: str):
  """Metadata of a field whose config key is not its section's prefix plus its name."""
  return {"key": key}


def _options(key: Optional[str] = None):
  """A free-form group of options (a read-only mapping), empty by default."""
  return dataclasses.field(default_factory=lambda: _EMPTY, metadata=_key(key) if key else {})


def _default(field: dataclasses.Field) -> Any:
  if field.default_factory is not dataclasses.MISSING:
    return field.default_factory()
  return field.default


# ------------------------------------------------------------------------------------------------
# The sections. A field's comment says what it means; its default is the run's default.


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Which records, in which declared domain, split how (top-level config fields)."""

  # A name of lipdp.data's registry ('digits', 'breast_cancer', 'mnist_idx') or a source
  # ('tfds:NAME', 'csv:PATH', 'npz:PATH'; 'table:DIGEST' is a table in memory, given to
  # `lipdp.synthesize`).
  dataset: str = "digits"
  data_dir: Optional[str] = None
  # The declared l2 radius of the image part (None: the data set's declared default). Never
  # derived from the private data.
  radius: Optional[float] = None
  # Images with labels: the declared weight w of the label block (w * one-hot); the label then
  # weighs more in the encoder's input and the diameter is sqrt(2 R^2 + 2 w^2).
  label_weight: float = 1.0
  # The JSON schema of a 'csv:PATH' or 'npz:PATH' table (bounds and categories declared in
  # advance; docs/data.md), e.g. --config.schema=experiments/schemas/bank_marketing.json.
  schema: Optional[str] = None
  # Other options of the data set's loader (lipdp.data.load_dataset), e.g. for CSV files
  # schema, delimiter, encoding, strict (refuse numbers outside the declared bounds).
  data_options: Mapping[str, Any] = _options()
  # The split: a seeded permutation; the holdout is kept out of training for evaluation.
  holdout_fraction: float = 0.2
  split_seed: int = 0
  # A public data set in the same domain (e.g. 'npz:/path/public.npz' with `public_options`;
  # options set to None are left out), never a split of the private data: scope 'public' trains
  # on it alone; scope 'dp-sgd' pretrains on it (`train.public_pretrain_steps`).
  public_dataset: Optional[str] = None
  public_options: Mapping[str, Any] = _options()
  # The table of a 'table:DIGEST' data set (`lipdp.data.sources.CsvRows`); not a setting: it is
  # neither compared nor recorded (the digest in `dataset` is).
  table: Any = dataclasses.field(default=None, compare=False, repr=False, metadata=_key(""))

  def given_public_options(self) -> dict:
    """`public_options` without the ones left unset (None)."""
    return {k: v for k, v in self.public_options.items() if v is not None}

  def load_arguments(self, public: bool = False) -> Tuple[str, dict]:
    """(name, keyword arguments) of `lipdp.data.load_dataset` for this data set; with
    `public`, for scope 'public''s data set."""
    common = {
      "data_dir": self.data_dir,
      "radius": self.radius,
      "holdout_fraction": self.holdout_fraction,
      "split_seed": self.split_seed,
      "label_weight": self.label_weight,
    }
    if public:
      return self.public_dataset, {**common, **self.given_public_options()}
    options = {k: v for k, v in self.data_options.items() if v is not None}
    if self.schema is not None:
      options["schema"] = self.schema
    if self.table is not None:
      options["table"] = self.table
    return self.dataset, {**common, **options}


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """How synthetic records are made (a name of `lipdp.methods`)."""

  # 'lipdp' (each record's k noisy latents, decoded), 'prior' (latents drawn from the prior:
  # the DP-SGD VAE baseline in scope 'dp-sgd'), a differentially private baseline of
  # lipdp.baselines ('mst', 'aim', 'private_measure', 'dp_merf'; scope 'dp-measurements',
  # central epsilon = `epsilon`), or the reference 'copy_train' (scope 'none').
  # docs/baselines.md.
  name: str = dataclasses.field(default="lipdp", metadata=_key("method"))
  # Keyword options of a baseline's fit beyond its settings section (e.g. final_iters of MST
  # and AIM, rounds of AIM), set in code (config files, sweep overrides).
  options: Mapping[str, Any] = _options("method_options")
  # MST's and AIM's numeric columns: the schema's declared bins, else this many equal-width
  # bins over the declared bounds (None: lipdp.baselines.discretize.DEFAULT_NUMERIC_BINS).
  baseline_bins: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class ReleaseSpec:
  """What is released, and how its randomness is drawn."""

  # Synthetic records per private record: latents per record for method 'lipdp' (each latent
  # costs privacy), draws from the prior for method 'prior' (free; may change between a run and
  # its resumption).
  k: int = 1
  # How a latent becomes a record (post-processing): 'sample' draws it from the decoder's
  # likelihood (a category from its softmax, a number from its bins), 'mean' takes the
  # likelihood's mean, whose projection keeps each category's mode and shrinks numbers towards
  # their centre; 'auto' samples tables and takes the mean of images (pixel intensities and the
  # most probable label, which then agrees with the pixels); 'sample_modal_label' draws every
  # column of a table but keeps its label's most probable class, as images do; 'sample_pixels'
  # (images, Bernoulli likelihood) also draws each pixel, a binary image.
  decoding: str = "auto"
  # Sampling temperature tau > 0 (post-processing): every latent the decoder sees, the released
  # z and the style latent u, is multiplied by tau before decoding. Below 1 the decoder is read
  # closer to the prior's centre (typical records, less diversity; Kingma and Dhariwal 2018,
  # section 5); 1 decodes the latents as released and drawn.
  temperature: float = 1.0
  # How the release noise is drawn (method 'lipdp'): 'exact' draws it as an exact discrete
  # Gaussian on a fine lattice, with no floating-point noise, accounted as the continuous
  # release (docs/privacy.md, "Exact noise on a lattice"); 'float64' uses NumPy's float64
  # sampler (the releases before 2026-12-07), whose floating-point discreteness (Mironov 2012)
  # no guarantee models; 'auto' is 'exact' where the model allows it (homoscedastic encoders).
  noise_sampler: str = "auto"
  # Noise seed: None draws secret noise from OS entropy. Setting it makes the noise
  # reproducible and so not private against whoever knows it (recorded in the report).
  noise_seed: Optional[int] = None
  # A work directory holds one release. Releasing again from the same private records composes
  # with the first release; replacing it is only sound if the first one was never published.
  replace_release: bool = False


@dataclasses.dataclass(frozen=True)
class PrivacySpec:
  """The guarantee: its scope and budget. Absent (`Spec.privacy` None) for scope 'none'."""

  # Scope of the model weights: 'conditional' (trained on the private records without DP, as
  # in the original method), 'dp-sgd' (trained with DP-SGD, composed by PLD accounting),
  # 'public' (trained on `public_dataset`), or 'dp-measurements' (the central baselines).
  scope: privacy.Scope = privacy.Scope.CONDITIONAL
  # (epsilon, delta) of the release: per record for method 'lipdp', central for the baselines.
  epsilon: float = 1.0
  delta: float = 1e-5
  # One end-to-end budget (scope 'dp-sgd'): the release gets release_share * total_epsilon as
  # its own epsilon and DP-SGD's noise multiplier is calibrated so that the composition meets
  # the total (so train.dp_noise_multiplier and epsilon must then stay at their defaults).
  total_epsilon: Optional[float] = None
  release_share: float = 0.5
  # What the release's own epsilon is: 'per-record', or 'shuffled' (the central epsilon of the
  # shuffled release; scopes 'public' and 'dp-sgd' only, where the weights are covered).
  calibration: str = "per-record"
  # The release is a shuffled multiset without record identifiers: report the central epsilon
  # amplified by shuffling next to the per-record one.
  shuffled_release: bool = True


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """The VAE (methods 'lipdp' and 'prior'). Chosen on digits, the public proxy (docs/results.md,
  the knob study): the style latent is what matters (without it the decoder returns the
  posterior mean, a grey average digit); half the default radius cost 0.05 TSTR; latent size,
  label weight and beta moved TSTR less than a seed's spread."""

  latent_dim: int = 32
  encoder_hidden: Tuple[int, ...] = (256, 128)
  # 'bjorck', 'spectral' or 'aol'; 'plain' (an unconstrained MLP, not certifiable) only for
  # method 'prior', which never releases a latent.
  encoder_dense: str = "bjorck"
  activation: str = "maxmin"  # or 'groupsort', 'fullsort'
  # Encoder noise during training and, after recalibration on the certified L, at release.
  # The Lipschitz target is then the largest L that (epsilon, delta) allows at this sigma (only
  # sigma / (L * D) matters). Set lipschitz_target instead to fix L and calibrate sigma.
  sigma: float = 1.0
  lipschitz_target: Optional[float] = None
  decoder: str = "mlp"  # or 'conv' for image domains, or 'lipschitz_mlp'
  decoder_lipschitz: float = 10.0  # target of the 'lipschitz_mlp' decoder only
  decoder_dense: str = "bjorck"  # layer type of the 'lipschitz_mlp' decoder only
  decoder_hidden: Tuple[int, ...] = (256, 512)  # the 'conv' decoder uses the first as its width
  decoder_channels: int = 32  # feature maps of the 'conv' decoder
  image_likelihood: str = "bernoulli"
  # Numeric columns' likelihood in the decoder (lipdp.models.likelihood.numeric_bins_for):
  # 'binned', B = numeric_bins equal-width bins on the declared bounds (a piecewise-constant
  # density that can hold a spike and a tail); 'gaussian', a Gaussian of fixed scale on [0, 1];
  # 'auto', bins for the columns the schema declares integer, a Gaussian for the others;
  # 'declared', the bins a column declares (schema "bins") where it does, 'auto' elsewhere.
  # numeric_bins = 0 makes every numeric column Gaussian (the older spelling).
  numeric_likelihood: str = "auto"
  numeric_bins: int = 32
  # Style latent: the decoder also reads u ~ N(0, I) (dimension style_dim, 0 = off), encoded
  # from x by an unconstrained network during training and drawn from its prior at synthesis.
  style_dim: int = 8
  style_hidden: Tuple[int, ...] = (256,)
  # Label-conditioned decoder (data sets with a label): the decoder also reads the record's
  # label, and each synthetic record is decoded for a label drawn from label_prior, which
  # becomes its label (post-processing). lipdp.models.vae.
  label_conditioned: bool = False
  # Where the conditioned decoder's labels come from: 'uniform' (over the classes, independent
  # of the data: balanced labels, right for balanced classes such as MNIST's), 'learned' (a
  # class distribution trained with the weights, under DP-SGD in scope 'dp-sgd': a table's
  # unbalanced label keeps its marginal at no extra privacy cost); unset: uniform for images,
  # learned for tables.
  label_prior: Optional[str] = None
  # Heteroscedastic noise: sigma(x) in [sigma_min, sigma_max], log sigma(x) certified
  # log_sigma_lipschitz-Lipschitz. The release epsilon is then computed by RDP, not calibrated.
  heteroscedastic: bool = False
  sigma_min: float = 0.5
  sigma_max: float = 2.0
  log_sigma_lipschitz: float = 0.1


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """Training the VAE: plain, or DP-SGD in scope 'dp-sgd'."""

  num_steps: int = 2000
  batch_size: int = 128
  learning_rate: float = 1e-3
  beta: float = 1.0
  # Weight of the label's cross-entropy in the ELBO (data sets with a label only). Under DP-SGD
  # a label term of weight 1 next to hundreds of pixel terms is drowned by the noise, and the
  # decoded label stops agreeing with the decoded image. None: image pixels / 16, at least 1 (4
  # on digits, 49 on MNIST, 1 for tables; chosen on digits,
  # lipdp.methods.vae.default_label_loss_weight). A training choice: no privacy cost.
  label_loss_weight: Optional[float] = None
  # Exponential moving average of the weights, with this decay (0 = off): the released model is
  # the average of the iterates, which averages out much of DP-SGD's noise (post-processing;
  # De et al. 2022). Its warm-up rules below (10 decay - 1) / (1 - decay) steps, where it
  # averages about the last tenth of the run whatever the decay (training.optim).
  average_decay: float = 0.0
  # 'constant', or 'cosine': the learning rate decays along half a cosine to 0 at the last step,
  # so DP-SGD's last, noisiest updates are the smallest (a fixed schedule: no privacy cost).
  learning_rate_decay: str = "constant"
  # None draws the training seed from OS entropy (kept in the work directory until training
  # completes); setting it makes DP-SGD's sampling and noise reproducible (the report says so).
  seed: Optional[int] = None
  log_every: int = 100
  checkpoint_every: int = 500
  # DP-SGD (scope 'dp-sgd' only).
  dp_noise_multiplier: float = 1.0
  # The clip norm C; with dp_clip_quantile, the first step's C only.
  dp_clip_norm: float = 1.0
  dp_sampling_rate: float = 0.01
  # Adaptive clipping (Andrew et al. 2021): C follows this quantile of the per-example gradient
  # norms (0.5: the median, Abadi et al. 2016's heuristic for C), from a noisy count released
  # each step inside the same budget (lipdp.training.dpsgd; the gradient's noise multiplier
  # rises slightly so that the pair is one DP-SGD step of the accounted multiplier). None keeps
  # C fixed. At C = 1 every gradient is clipped, and groups of records with larger gradients are
  # under-fit (docs/results.md, "Clipping's disparate impact on bank-marketing").
  dp_clip_quantile: Optional[float] = None
  # With dp_clip_quantile (scope 'dp-sgd'): one adaptive clip norm per category of this
  # categorical column (a table's column, its label column included, or 'label', an image
  # domain's label block), each following the quantile within its group (per-group clipping,
  # DPSGD-F: Xu, Du and Wu 2021), with noise at the largest; inside the same budget. The
  # metrics' clip_norm_group_<g> follow the column's declared category order. None: one clip
  # norm for every record.
  dp_clip_groups: Optional[str] = None
  # How per-example gradients are clipped: 'ghost' (per-example norms from each layer's inputs
  # and output gradients, no per-example gradients: several times faster, large batches cheap;
  # refuses a model with layers it does not recognise) or 'vmap' (per-example gradients). The
  # same result to float rounding; docs/performance.md.
  dp_clipping: str = "ghost"
  # How DP-SGD sums the clipped gradients and adds the noise (docs/privacy.md, section 4):
  # 'bounded-float32' (the float32 sum, whose rounding is bounded and paid for in the noise,
  # 0.5% to 1% for the MNIST recipe, rounded to an integer grid and noised there in integers: the
  # sum's sensitivity holds in floating point; either clipping path, a fixed clip norm; each
  # record at a place fixed by its index: about 1.6 to 1.7 times the float32 step's time,
  # docs/performance.md),
  # 'fixed-point' (each clipped gradient rounded to that grid, sum and noise added exactly in
  # integers; needs dp_clipping='vmap' and a fixed clip norm; lipdp.training.fixed_point) or
  # 'float32' (the fastest; the sum's rounding, which depends on the whole batch, is not
  # bounded: docs/privacy.md, section 10). 'auto' is 'bounded-float32' wherever it applies
  # (scope 'dp-sgd', a fixed clip norm) and 'float32' with adaptive clipping, which the grid does
  # not support (the report's caveat then says the sum is not bounded): `dp_sum_arithmetic`.
  dp_sum: str = "auto"
  # DP-SGD's microbatch: the records whose clipped gradients are computed at once, inside one
  # jitted step (memory and speed, not the guarantee; a bounded float sum's noise moves with it
  # slightly, through its rounding bound). None: the clipping path's default, or on the grid one
  # picked from the expected batch (lipdp.training.DPSGDConfig.microbatch_for).
  dp_microbatch: Optional[int] = None
  # Scope 'dp-sgd' only: plain (noiseless) steps on `public_dataset` before DP-SGD on the
  # private records, which then starts from those weights (0 = none). A start independent of
  # the private records leaves DP-SGD's guarantee unchanged; the guarantee then assumes the
  # public data set is public (docs/privacy.md). The field's remedy for DP-SGD's noise
  # (Ponomareva et al. 2023; Ghalebikesabi et al. 2023, for generative models).
  public_pretrain_steps: int = 0
  # Noise multiplicity (Dockhorn et al. 2023): each record's reconstruction term is the mean over
  # this many draws of the model's own noise (z, and the style latent u). A lower-variance
  # gradient per record, clipped once as before (the sensitivity unchanged: no privacy cost),
  # for that many decoder passes per record.
  noise_samples: int = 1


@dataclasses.dataclass(frozen=True)
class DPMerfSpec:
  """DP-MERF's settings (method 'dp_merf', lipdp/baselines/dp_merf.py). Unset (None) takes the
  module's default, given here; only the feature map touches the private data, the rest is
  post-processing of its one release (no privacy cost)."""

  num_features: Optional[int] = None  # 2m random Fourier features (default 10,000)
  # Kernel length scale l (default: the RMS distance of two uniform records of the declared
  # domain, never a statistic of the data).
  bandwidth: Optional[float] = None
  num_steps: Optional[int] = None  # generator steps (default 2,000)
  batch_size: Optional[int] = None  # generated records per step (default 500)
  learning_rate: Optional[float] = None  # Adam, decayed 0.9 per 120 steps (default 1e-3)
  code_dim: Optional[int] = None  # the generator's code z (default 10)
  hidden: Optional[Tuple[int, ...]] = None  # its two hidden layers (default (256, 512))
  # 'sample' (default) draws each categorical value from the generator's softmax; 'argmax'.
  categorical: Optional[str] = None

  def options(self) -> dict:
    """The fields that are set, as keyword options of `lipdp.baselines.dp_merf.fit`."""
    return {
      f.name: getattr(self, f.name)
      for f in dataclasses.fields(self)
      if getattr(self, f.name) is not None
    }


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
  """Utility, fidelity and empirical privacy on the private holdout (lipdp.evaluation), written
  to workdir/evaluation.json. Not differentially private: never publish it with the release."""

  enabled: bool = True
  fast: bool = False  # True skips the MLP and CNN downstream models
  seed: int = 0
  # Method 'lipdp' only (ignored otherwise): also evaluate records decoded from prior latents by
  # the same weights (under "prior_sampling/" in evaluation.json): what the per-record release
  # adds.
  compare_prior: bool = False
  # Records of each kind shown in workdir/samples.png (private: it shows real records).
  num_figure_samples: int = dataclasses.field(default=32, metadata=_key("num_figure_samples"))


@dataclasses.dataclass(frozen=True)
class Spec:
  """Every setting of one run (module docstring). Build it with `from_config`."""

  data: DataSpec = DataSpec()
  method: MethodSpec = MethodSpec()
  release: ReleaseSpec = ReleaseSpec()
  privacy: Optional[PrivacySpec] = PrivacySpec()  # None: no guarantee (scope 'none')
  model: ModelSpec = ModelSpec()
  train: TrainSpec = TrainSpec()
  evaluation: EvaluationSpec = EvaluationSpec()
  dp_merf: DPMerfSpec = DPMerfSpec()

  @property
  def scope(self) -> "Optional[privacy.Scope]":
    """The privacy scope, or None for a run without a guarantee."""
    return None if self.privacy is None else self.privacy.scope


# Section -> the config prefix of its fields (a field's metadata "key" overrides it).
_SECTIONS = {
  "data": (DataSpec, ""),
  "method": (MethodSpec, ""),
  "release": (ReleaseSpec, ""),
  "privacy": (PrivacySpec, ""),
  "model": (ModelSpec, "model."),
  "train": (TrainSpec, "train."),
  "evaluation": (EvaluationSpec, "evaluation."),
  "dp_merf": (DPMerfSpec, "dp_merf."),
}


def _fields(section: str):
  """(field, config key, type) of a section's settings (fields without a key are not)."""
  cls, prefix = _SECTIONS[section]
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    key = field.metadata.get("key", prefix + field.name)
    if key:
      yield field, key, hints[field.name]


# ------------------------------------------------------------------------------------------------
# Naming settings in messages.

_MARK = re.compile(r"⟦([A-Za-z0-9_.]+)(?:=([^⟧]*))?⟧")


def setting(key: str, value: Any = None) -> str:
  """A mark for the setting `key` (with a value, optionally) in a `SettingError` message;
  each entry point renders it in its own terms (`config_flag`, the CLI's flags, keywords)."""
  return f"⟦{key}⟧" if value is None else f"⟦{key}={value}⟧"


def config_flag(key: str, value: Optional[str]) -> str:
  """How the main job and the sweeps name a setting: --config.KEY[=VALUE]."""
  return f"--config.{key}" + ("" if value is None else f"={value}")


Naming = Callable[[str, Optional[str]], str]


def render(text: str, naming: Naming = config_flag) -> str:
  """`text` with each `setting` mark named by `naming`."""
  return _MARK.sub(lambda m: naming(m.group(1), m.group(2)), text)


class SettingError(ValueError):
  """A setting that cannot run, said before anything is written, naming settings by `naming`."""

  def __init__(self, text: str, naming: Naming = config_flag):
    super().__init__(text)
    self.text = text
    self.naming = naming

  def __str__(self) -> str:
    return render(self.text, self.naming)

  def named(self, naming: Naming) -> "SettingError":
    """The same error, naming the settings as `naming` does."""
    error = SettingError(self.text, naming).with_traceback(self.__traceback__)
    error.__cause__ = self.__cause__
    return error


# ------------------------------------------------------------------------------------------------
# ConfigDict <-> Spec.


def base_config() -> ml_collections.ConfigDict:
  """The config layout with every field at its default (the dataclass defaults)."""
  config = ml_collections.ConfigDict()
  for section in _SECTIONS:
    for field, key, hint in _fields(section):
      value = _default(field)
      if section == "privacy" and field.name == "scope":
        value = value.value
      _put(config, key, value, hint)
  return config


def table_config() -> ml_collections.ConfigDict:
  """`base_config()` for tables: the training batch of the study's table model (256 records,
  docs/results.md), what `lipdp synthesize` and `lipdp.synthesize` start from."""
  config = base_config()
  config.train.batch_size = 256
  return config


def _put(config, key: str, value: Any, hint: Any) -> None:
  *path, leaf = key.split(".")
  for part in path:
    if part not in config:
      config[part] = ml_collections.ConfigDict()
    config = config[part]
  if _is_mapping(hint):
    config[leaf] = ml_collections.ConfigDict(dict(value))
  elif value is None:
    config[leaf] = ml_collections.config_dict.placeholder(_base_type(hint))
  else:
    config[leaf] = value


_MISSING = object()


def _get(config, key: str) -> Any:
  """The value of `key` in `config`; _MISSING where the config lacks it."""
  for part in key.split("."):
    if config is None or part not in config:
      return _MISSING
    config = config[part]
  return config


def _layout_keys() -> set:
  return {key for section in _SECTIONS for _, key, _ in _fields(section)}


def _unknown_keys(config, prefix: str = "") -> list:
  """The config's keys that are no setting (a group of options is one setting)."""
  known, unknown = _layout_keys(), []
  for key, value in config.items():
    name = prefix + key
    if name in known:
      continue
    if hasattr(value, "items") and any(k.startswith(name + ".") for k in known):
      unknown += _unknown_keys(value, name + ".")
    else:
      unknown.append(name)
  return unknown


def from_config(config: ml_collections.ConfigDict, naming: Naming = config_flag) -> Spec:
  """The validated Spec of a ConfigDict in the layout of `base_config()`.

  Raises:
    SettingError: a value of the wrong type or a combination that cannot run, naming the
      settings by `naming`.
  """
  try:
    return validate(_build(config))
  except SettingError as e:
    raise e.named(naming) from None


def _build(config) -> Spec:
  unknown = _unknown_keys(config)
  if unknown:
    raise SettingError(
      f"the configuration has fields that are no setting of lipdp.spec: {sorted(unknown)} (a "
      "setting nobody reads would be silently ignored)"
    )
  scope = _get(config, "scope")
  sections = {}
  for section, (cls, _) in _SECTIONS.items():
    if section == "privacy" and scope == NO_GUARANTEE:
      _refuse_privacy_settings_without_a_guarantee(config)
      sections[section] = None
      continue
    values = {}
    for field, key, hint in _fields(section):
      value = _get(config, key)
      if value is _MISSING:  # a config of an earlier layout: the setting's default
        continue
      if section == "privacy" and field.name == "scope":
        values[field.name] = _scope(value)
      else:
        values[field.name] = _convert(value, hint, key)
    sections[section] = cls(**values)
  return Spec(**sections)


def _refuse_privacy_settings_without_a_guarantee(config) -> None:
  """Scope 'none' takes no budget: a privacy setting moved from its default would be silently
  ignored (an epsilon given to a reference run, say), so it is refused by name. Unset (None,
  as `to_config` records a run without a guarantee) or the default is accepted."""
  for field, key, _ in _fields("privacy"):
    value = _get(config, key)
    if field.name == "scope" or value in (_MISSING, None) or value == field.default:
      continue
    raise SettingError(
      f"{setting('scope', NO_GUARANTEE)} is a run without any guarantee: it takes no budget and "
      f"no privacy setting, so {setting(key)} must stay at its default ({field.default!r}); got "
      f"{value!r}"
    )


def to_config(spec: Spec) -> ml_collections.ConfigDict:
  """The ConfigDict of a Spec (`from_config(to_config(spec)) == spec`); a run without a
  guarantee has scope 'none' and no privacy settings."""
  config = ml_collections.ConfigDict()
  for section in _SECTIONS:
    value = getattr(spec, section)
    for field, key, hint in _fields(section):
      if value is None:  # no guarantee: no privacy settings at all
        item = NO_GUARANTEE if field.name == "scope" else None
      else:
        item = getattr(value, field.name)
        item = item.value if isinstance(item, privacy.Scope) else item
      _put(config, key, item, hint)
  return config


def _scope(value) -> privacy.Scope:
  try:
    return privacy.Scope.parse(value)
  except ValueError:
    choices = [s.value for s in privacy.Scope] + [NO_GUARANTEE]
    raise SettingError(f"{setting('scope')} must be one of {choices}, got {value!r}") from None


def _is_mapping(hint) -> bool:
  return typing.get_origin(hint) is collections.abc.Mapping


def _base_type(hint):
  """X of Optional[X]; the type itself otherwise."""
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  if typing.get_origin(hint) is typing.Union and len(args) == 1:
    return _base_type(args[0])
  if typing.get_origin(hint) is tuple:
    return tuple
  return hint


def _convert(value, hint, key: str):
  """`value` as the field's type, or a SettingError naming `key`."""
  optional = type(None) in typing.get_args(hint)
  if value is None:
    if optional or hint is Any:
      return None
    raise SettingError(f"{setting(key)} must be set")
  if hint is Any:
    return value
  if _is_mapping(hint):
    value = value.to_dict() if hasattr(value, "to_dict") else dict(value)
    return types.MappingProxyType(value)
  kind = _base_type(hint)
  if kind is tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
      raise SettingError(f"{setting(key)} must be a tuple of integers, got {value!r}")
    return tuple(_convert(v, int, key) for v in value)
  if kind is bool:
    if not isinstance(value, bool):
      raise SettingError(f"{setting(key)} must be true or false, got {value!r}")
    return value
  if kind is int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
      raise SettingError(f"{setting(key)} must be an integer, got {value!r}")
    return int(value)
  if kind is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise SettingError(f"{setting(key)} must be a number, got {value!r}")
    return float(value)
  if kind is str:
    if not isinstance(value, str):
      raise SettingError(f"{setting(key)} must be a string, got {value!r}")
    return value
  raise TypeError(f"no conversion for {key} of type {hint}")  # a field type added without one


def config_from_file(path: str, variant: str = "") -> ml_collections.ConfigDict:
  """`get_config(variant)` of a config file (e.g. experiments/configs/default.py), loaded by
  path as `--config=PATH:VARIANT` loads it."""
  module_spec = importlib.util.spec_from_file_location("lipdp_config_file", path)
  if module_spec is None:
    raise ValueError(f"no config file at {path!r}")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant)


# ------------------------------------------------------------------------------------------------
# Validation: every check of the settings alone, in one place.


def _positive_finite(value: float) -> bool:
  return math.isfinite(value) and value > 0


# Data sets whose records come from `data_dir` (the others ignore it): the same name in
# another folder is another collection.
_READS_DATA_DIR = ("mnist_idx", "tfds:")
# Data sets named by a file's path ('csv:PATH', 'npz:PATH'): the same file is the same source.
_FILE_SOURCES = ("csv", "npz")


def _same_source(data: DataSpec) -> bool:
  """Whether `public_dataset` reads the private records: the same name, and for a data set read
  from a folder the same folder. Options that only split, scale or frame the records (split
  seed, holdout fraction, radius, label weight) do not make another collection: the public set
  is loaded whole (train and holdout), so any of them would include every private record."""
  if not data.public_dataset:
    return False
  if data.public_dataset != data.dataset:
    # One file under two spellings ('people.csv', './people.csv', a link) is one source.
    kind, _, path = data.dataset.partition(":")
    public_kind, _, public_path = data.public_dataset.partition(":")
    return kind in _FILE_SOURCES and kind == public_kind and _folder(path) == _folder(public_path)
  if not data.dataset.startswith(_READS_DATA_DIR):
    return True
  private_dir = data.load_arguments()[1].get("data_dir")
  public_dir = data.load_arguments(public=True)[1].get("data_dir")
  return _folder(private_dir) == _folder(public_dir)


def _folder(path: Optional[str]) -> Optional[str]:
  return None if path is None else os.path.realpath(path)


# The largest train.dp_microbatch: a microbatch's activations (or, on the vmap path, its
# per-example gradients) are held in memory at once.
MAX_DP_MICROBATCH = 65_536
# train.dp_sum's values: DP-SGD's sum arithmetics (lipdp.training.SUM_ARITHMETICS) and 'auto'.
DP_SUM_SETTINGS = ("auto",) + training.SUM_ARITHMETICS


def dp_sum_arithmetic(spec: Spec) -> str:
  """How DP-SGD sums the clipped gradients for `spec` (`lipdp.training.DPSGDConfig.sum_arithmetic`):
  train.dp_sum as set, or for 'auto' the bounded float sum ('bounded-float32': the sum's
  sensitivity holds in floating point, docs/privacy.md section 4) wherever it applies, a fixed
  clip norm, and 'float32' with adaptive clipping (dp_clip_quantile), whose moving clip norm the
  integer grid does not support."""
  chosen = spec.train.dp_sum
  if chosen != "auto":
    return chosen
  return "float32" if spec.train.dp_clip_quantile is not None else "bounded-float32"


def validate(spec: Spec) -> Spec:
  """`spec` if it can run; a SettingError otherwise (the data-dependent checks, such as the
  budget against the number of records, come once the data is loaded: lipdp.runner)."""
  name = spec.method.name
  method = methods.get(name)
  if method is None:
    raise SettingError(f"{setting('method')} must be one of {methods.names()}, got {name!r}")
  _check_common(spec)
  if spec.privacy is None:
    _check_reference(spec, method)
    return spec
  if not 0 < spec.privacy.delta < 1:
    raise SettingError(f"{setting('delta')} must be in (0, 1), got {spec.privacy.delta}")
  if method.kind == methods.REFERENCE:
    raise SettingError(
      f"method {name!r} {method.description} (no privacy at all): a reference point of the "
      f"evaluation, never a release; it runs only with {setting('scope', NO_GUARANTEE)}, which "
      "writes no release and no report"
    )
  if method.kind == methods.CENTRAL:
    _check_central(spec)
  else:
    _check_vae(spec)
  return spec


def _check_common(spec: Spec) -> None:
  data, train, release = spec.data, spec.train, spec.release
  other_schema = data.data_options.get("schema")
  if data.schema is not None and other_schema not in (None, data.schema):
    raise SettingError(
      f"two schemas: {setting('schema', repr(data.schema))} and "
      f"{setting('data_options.schema', repr(other_schema))}; give one"
    )
  if not 0.0 <= data.holdout_fraction < 1.0:
    raise SettingError(
      f"{setting('holdout_fraction')} must be in [0, 1), got {data.holdout_fraction}"
    )
  if release.k < 1:
    raise SettingError(f"{setting('k')} must be a positive integer, got {release.k}")
  for name, seed in (("noise_seed", release.noise_seed), ("train.seed", train.seed)):
    # Refused before any work: a bad seed would otherwise fail at the release, after training.
    if seed is not None and not randomness.is_user_seed(seed):
      raise SettingError(
        f"{setting(name)} must be an integer in [0, 2**{randomness.SEED_BITS}) (or unset: "
        f"secret noise), got {seed!r}"
      )
  if release.decoding not in likelihood.DECODINGS:
    raise SettingError(
      f"{setting('decoding')} must be one of {likelihood.DECODINGS}, got {release.decoding!r}"
    )
  if release.decoding == "sample_pixels" and spec.model.image_likelihood != "bernoulli":
    raise SettingError(
      f"{setting('decoding')} 'sample_pixels' draws pixels from the Bernoulli image likelihood; "
      f"{setting('model.image_likelihood')} is {spec.model.image_likelihood!r}"
    )
  if not (math.isfinite(release.temperature) and release.temperature > 0):
    raise SettingError(
      f"{setting('temperature')} must be a positive number, got {release.temperature!r}"
    )
  if release.noise_sampler not in discrete_gaussian.NOISE_SAMPLERS:
    raise SettingError(
      f"{setting('noise_sampler')} must be one of {discrete_gaussian.NOISE_SAMPLERS}, got "
      f"{release.noise_sampler!r}"
    )
  if release.noise_sampler != ReleaseSpec.noise_sampler and spec.method.name != "lipdp":
    raise SettingError(
      f"method {spec.method.name!r} releases no encoder latents, so it does not use "
      f"{setting('noise_sampler')} (the release noise of method 'lipdp')"
    )
  if release.noise_sampler == "exact" and spec.model.heteroscedastic:
    raise SettingError(
      f"{setting('noise_sampler', 'exact')} covers homoscedastic releases only (a "
      f"heteroscedastic sigma(x) is not on a lattice); use {setting('noise_sampler', 'float64')}"
      f" or {setting('noise_sampler', 'auto')}"
    )
  for key, value in (("train.num_steps", train.num_steps), ("train.batch_size", train.batch_size)):
    if value < 1:
      raise SettingError(f"{setting(key)} must be at least 1, got {value}")
  for key, value in (
    ("train.log_every", train.log_every),
    ("train.checkpoint_every", train.checkpoint_every),
  ):
    if value < 1:
      raise SettingError(f"{setting(key)} must be at least 1, got {value}")
  if not _positive_finite(train.learning_rate):
    raise SettingError(
      f"{setting('train.learning_rate')} must be positive, got {train.learning_rate}"
    )
  if train.learning_rate_decay not in training.LEARNING_RATE_DECAYS:
    raise SettingError(
      f"{setting('train.learning_rate_decay')} must be one of {training.LEARNING_RATE_DECAYS}, "
      f"got {train.learning_rate_decay!r}"
    )
  if not 0.0 <= train.average_decay < 1.0:
    raise SettingError(
      f"{setting('train.average_decay')} must be in [0, 1), got {train.average_decay}"
    )
  if not training.valid_noise_samples(train.noise_samples):
    raise SettingError(
      f"{setting('train.noise_samples')} must be an integer of at least 1, got "
      f"{train.noise_samples!r}"
    )
  if train.public_pretrain_steps < 0:
    raise SettingError(
      f"{setting('train.public_pretrain_steps')} must be at least 0, got "
      f"{train.public_pretrain_steps}"
    )
  if not (isinstance(train.dp_clip_norm, (int, float)) and 0 < train.dp_clip_norm < math.inf):
    raise SettingError(
      f"{setting('train.dp_clip_norm')} must be a positive number, got {train.dp_clip_norm!r}"
    )
  if train.dp_clip_norm < training.MIN_CLIP_NORM:
    raise SettingError(
      f"{setting('train.dp_clip_norm')} must be at least {training.MIN_CLIP_NORM:g} (below it, "
      f"float32 underflow could hide a gradient's norm from the clipping), got "
      f"{train.dp_clip_norm!r}"
    )
  quantile = train.dp_clip_quantile
  if quantile is not None and not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
    raise SettingError(
      f"{setting('train.dp_clip_quantile')} must be in (0, 1) (0.5: the median), or None for a "
      f"fixed clip norm, got {quantile!r}"
    )
  groups = train.dp_clip_groups
  if groups is not None and not (isinstance(groups, str) and groups):
    raise SettingError(
      f"{setting('train.dp_clip_groups')} must be the name of a categorical column, or None, "
      f"got {groups!r}"
    )
  if groups is not None and quantile is None:
    raise SettingError(
      f"{setting('train.dp_clip_groups')} gives each group an adaptive clip norm: set "
      f"{setting('train.dp_clip_quantile')} too (0.5: the median)"
    )
  if groups is not None and not 0 < training.count_centre(quantile, grouped=True) < 1:
    raise SettingError(
      f"{setting('train.dp_clip_quantile')} must round to a multiple of 1/256 strictly between "
      f"0 and 1 with {setting('train.dp_clip_groups')} (each group's count is centred there), "
      f"got {quantile!r}"
    )
  if quantile is not None and spec.scope is not privacy.Scope.DP_SGD:
    name = "train.dp_clip_groups" if groups is not None else "train.dp_clip_quantile"
    raise SettingError(
      f"{setting(name)} adapts DP-SGD's clip norm: it needs scope 'dp-sgd', not "
      f"{'none' if spec.scope is None else spec.scope.value!r}"
    )
  if train.dp_clipping not in training.CLIPPING_METHODS:
    raise SettingError(
      f"{setting('train.dp_clipping')} must be one of {training.CLIPPING_METHODS}, got "
      f"{train.dp_clipping!r}"
    )
  if train.dp_sum not in DP_SUM_SETTINGS:
    raise SettingError(
      f"{setting('train.dp_sum')} must be one of {DP_SUM_SETTINGS}, got {train.dp_sum!r}"
    )
  microbatch = train.dp_microbatch
  if microbatch is not None and (
    isinstance(microbatch, bool)
    or not isinstance(microbatch, int)
    or not 1 <= microbatch <= MAX_DP_MICROBATCH
  ):
    raise SettingError(
      f"{setting('train.dp_microbatch')} must be a positive number of records, at most "
      f"{MAX_DP_MICROBATCH:,}, or None for the default, got {microbatch!r}"
    )
  if microbatch is not None and spec.scope is not privacy.Scope.DP_SGD:
    raise SettingError(
      f"{setting('train.dp_microbatch')} is DP-SGD's microbatch: it needs scope 'dp-sgd', not "
      f"{'none' if spec.scope is None else spec.scope.value!r}"
    )
  if train.dp_sum not in ("auto", "float32"):
    if spec.scope is not privacy.Scope.DP_SGD:
      raise SettingError(
        f"{setting('train.dp_sum')} {train.dp_sum!r} is DP-SGD's arithmetic: it needs scope "
        f"'dp-sgd', not {'none' if spec.scope is None else spec.scope.value!r}"
      )
    if train.dp_clip_quantile is not None:
      raise SettingError(
        f"{setting('train.dp_sum')} {train.dp_sum!r} needs a fixed clip norm: unset "
        f"{setting('train.dp_clip_quantile')} (adaptive clipping)"
      )
  if train.dp_sum == "fixed-point":
    if train.dp_clipping != "vmap":
      raise SettingError(
        f"{setting('train.dp_sum')} 'fixed-point' rounds each example's clipped gradient to "
        f"the grid, which needs the per-example gradients: set "
        f"{setting('train.dp_clipping')} to 'vmap' (got {train.dp_clipping!r})"
      )
  model = spec.model
  for key, value, least in (
    ("model.latent_dim", model.latent_dim, 1),
    ("model.style_dim", model.style_dim, 0),
    ("model.decoder_channels", model.decoder_channels, 1),
  ):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
      raise SettingError(f"{setting(key)} must be an integer of at least {least}, got {value!r}")
  for key, widths in (
    ("model.encoder_hidden", model.encoder_hidden),
    ("model.decoder_hidden", model.decoder_hidden),
    ("model.style_hidden", model.style_hidden),
  ):
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
      raise SettingError(f"{setting(key)} must be layer widths of at least 1, got {widths!r}")
  bins = spec.model.numeric_bins
  if isinstance(bins, bool) or not isinstance(bins, int) or bins < 0 or bins == 1:
    raise SettingError(
      f"{setting('model.numeric_bins')} must be 0 (a Gaussian) or an integer of at least 2 "
      f"(equal-width bins), got {bins!r}"
    )
  if spec.model.numeric_likelihood not in likelihood.NUMERIC_LIKELIHOODS:
    raise SettingError(
      f"{setting('model.numeric_likelihood')} must be one of {likelihood.NUMERIC_LIKELIHOODS}, "
      f"got {spec.model.numeric_likelihood!r}"
    )
  if spec.model.label_prior is not None and spec.model.label_prior not in builders.LABEL_PRIORS:
    raise SettingError(
      f"{setting('model.label_prior')} must be one of {builders.LABEL_PRIORS}, got "
      f"{spec.model.label_prior!r}"
    )
  if train.label_loss_weight is not None and not _positive_finite(train.label_loss_weight):
    raise SettingError(
      f"{setting('train.label_loss_weight')} must be positive and finite, got "
      f"{train.label_loss_weight}"
    )


def _check_reference(spec: Spec, method) -> None:
  """Scope 'none': a reference of the evaluation, with no guarantee and nothing released."""
  name = spec.method.name
  if not method.can_run_without_guarantee:
    if method.kind == methods.CENTRAL:
      raise SettingError(
        f"method {name!r} is a central baseline: its guarantee covers everything it releases "
        f"(scope 'dp-measurements'); pass {setting('scope', 'dp-measurements')} (got 'none')"
      )
    raise SettingError(
      f"method {name!r} releases each record's noisy latents under a guarantee; "
      f"{setting('scope', NO_GUARANTEE)} (no guarantee) is for the references of the "
      "evaluation: method 'prior' (the VAE trained without DP, decoded from its prior) and "
      f"{', '.join(repr(n) for n in methods.names(methods.REFERENCE))}"
    )
  if spec.data.public_dataset:
    raise SettingError(
      f"{setting('public_dataset')} is only used with scope 'public', or to pretrain in scope "
      "'dp-sgd'"
    )
  if method.kind == methods.REFERENCE and spec.release.k != 1:
    raise SettingError(f"method {name!r} does not use {setting('k')} (it releases n records)")


def _check_central(spec: Spec) -> None:
  """A central baseline: one (epsilon, delta) in scope 'dp-measurements'."""
  name, p = spec.method.name, spec.privacy
  if p.scope is not privacy.Scope.DP_MEASUREMENTS:
    raise SettingError(
      f"method {name!r} is a central baseline: its guarantee covers everything it releases "
      f"(scope 'dp-measurements'); pass {setting('scope', 'dp-measurements')} (got "
      f"{p.scope.value!r})"
    )
  if not _positive_finite(p.epsilon):
    raise SettingError(f"{setting('epsilon')} must be positive and finite, got {p.epsilon}")
  unused = []
  if p.total_epsilon is not None:
    unused.append(f"{setting('total_epsilon')} (a baseline's epsilon is {setting('epsilon')})")
  if spec.release.k != 1:
    unused.append(f"{setting('k')} (each baseline releases n records)")
  # The VAE's ways of decoding a latent: a baseline draws its records its own way.
  if spec.release.decoding != ReleaseSpec.decoding:
    unused.append(f"{setting('decoding')} (the VAE's decoding)")
  if spec.release.temperature != ReleaseSpec.temperature:
    unused.append(f"{setting('temperature')} (the VAE's decoding)")
  if spec.data.public_dataset:
    unused.append(setting("public_dataset"))
  if unused:
    raise SettingError(f"method {name!r} does not use " + ", ".join(unused))
  bins = spec.method.baseline_bins
  if bins is not None and bins < 2:
    raise SettingError(f"{setting('baseline_bins')} must be an integer >= 2, got {bins}")


def _check_vae(spec: Spec) -> None:
  """Methods 'lipdp' and 'prior': a scope of the VAE pipeline and a budget that can be met."""
  name, p, m = spec.method.name, spec.privacy, spec.model
  if p.scope not in (privacy.Scope.CONDITIONAL, privacy.Scope.DP_SGD, privacy.Scope.PUBLIC):
    central = "|".join(methods.names(methods.CENTRAL))
    raise SettingError(
      f"scope {p.scope.value!r} is not a scope of the VAE pipeline (conditional, dp-sgd or "
      f"public); it belongs to the central baselines: {setting('method', central)}"
    )
  if p.total_epsilon is None and name == "lipdp" and not _positive_finite(p.epsilon):
    raise SettingError(f"{setting('epsilon')} must be positive and finite, got {p.epsilon}")
  if p.total_epsilon is not None:
    if not _positive_finite(p.total_epsilon):
      raise SettingError(
        f"{setting('total_epsilon')} must be positive and finite, got {p.total_epsilon}"
      )
    if p.scope is not privacy.Scope.DP_SGD:
      raise SettingError(
        f"{setting('total_epsilon')} is one end-to-end budget for DP-SGD training and the "
        f"release: it needs scope 'dp-sgd', not {p.scope.value!r}"
      )
    if m.heteroscedastic:
      raise SettingError(
        f"{setting('total_epsilon')} calibrates a Gaussian release; the heteroscedastic "
        f"mechanism's epsilon is computed, not calibrated: give {setting('epsilon')} instead"
      )
    # Both are derived from the one budget; a value moved from its default would be silently
    # ignored (`./run.sh --config.epsilon=4` ran at the default config's total of 10).
    noise = spec.train.dp_noise_multiplier
    for key, value, default in (
      ("epsilon", p.epsilon, PrivacySpec.epsilon),
      ("train.dp_noise_multiplier", noise, TrainSpec.dp_noise_multiplier),
    ):
      if value != default:
        raise SettingError(
          f"{setting(key)} is derived from {setting('total_epsilon')}, the one end-to-end "
          f"budget, so {value!r} would be ignored: leave {setting(key)} at its default and set "
          f"{setting('total_epsilon')} to the budget you want"
        )
  if p.calibration not in budget_lib.CALIBRATIONS:
    raise SettingError(
      f"{setting('calibration')} must be one of {budget_lib.CALIBRATIONS}, got {p.calibration!r}"
    )
  if p.calibration == "shuffled" and m.heteroscedastic:
    raise SettingError(
      f"{setting('calibration', 'shuffled')} calibrates a Gaussian release to a central "
      "epsilon; the heteroscedastic release's mean is calibrated to a per-record epsilon: "
      f"use {setting('calibration', 'per-record')}"
    )
  if p.calibration == "shuffled" and not p.shuffled_release:
    raise SettingError(
      f"{setting('calibration', 'shuffled')} needs {setting('shuffled_release', 'true')}"
    )
  if name == "prior" and p.scope is privacy.Scope.CONDITIONAL:
    raise SettingError(
      "method 'prior' samples a model fit without DP in the conditional scope: no guarantee "
      f"at all; use scope 'dp-sgd' (the DP-SGD VAE baseline), or {setting('scope', 'none')} "
      "for the VAE trained without DP as a reference of the evaluation (no release)"
    )
  if m.encoder_dense == builders.PLAIN_ENCODER and name != "prior":
    raise SettingError(
      f"{setting('model.encoder_dense', builders.PLAIN_ENCODER)} has no Lipschitz certificate, so its "
      "latents cannot be released: it is for method 'prior' only"
    )
  if m.sigma is not None and not m.sigma > 0:
    raise SettingError(f"{setting('model.sigma')} must be positive, got {m.sigma}")
  if m.heteroscedastic and not (
    isinstance(m.log_sigma_lipschitz, (int, float)) and 0 < m.log_sigma_lipschitz < math.inf
  ):
    # Refused here, before anything is written (the model builder refused it after config.json).
    raise SettingError(
      f"{setting('model.log_sigma_lipschitz')} must be positive and finite for a heteroscedastic "
      f"model (a constant sigma is the default release), got {m.log_sigma_lipschitz!r}"
    )
  if p.scope is privacy.Scope.PUBLIC and not spec.data.public_dataset:
    raise SettingError(
      f"{setting('scope', 'public')} needs {setting('public_dataset')}: a public data set in "
      "the same domain (a split of the private data is not public)"
    )
  if _same_source(spec.data):
    raise SettingError(
      f"{setting('public_dataset')} names the private data set itself "
      f"({spec.data.public_dataset!r}): whatever its other options (split_seed, radius, "
      "frame, and a TFDS split, whose slices may overlap), its records could include the "
      "private ones; public data must be a separate collection (for mnist_idx and tfds: in "
      "another data_dir)"
    )
  pretrains = spec.train.public_pretrain_steps > 0
  if pretrains and p.scope is not privacy.Scope.DP_SGD:
    raise SettingError(
      f"{setting('train.public_pretrain_steps')} pretrains before DP-SGD: it needs scope "
      f"'dp-sgd', not {p.scope.value!r}"
    )
  if pretrains and not spec.data.public_dataset:
    raise SettingError(
      f"{setting('train.public_pretrain_steps')} needs {setting('public_dataset')}: a public "
      "data set in the same domain (a split of the private data is not public)"
    )
  if p.scope is not privacy.Scope.PUBLIC and spec.data.public_dataset and not pretrains:
    raise SettingError(
      f"{setting('public_dataset')} is only used with scope 'public', or in scope 'dp-sgd' with "
      f"{setting('train.public_pretrain_steps')} > 0; not {p.scope.value!r} without pretraining"
    )
