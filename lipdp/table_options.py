"""The options of a private synthetic table, shared by `lipdp synthesize` and `lipdp.synthesize`.

One table (`OPTIONS`) says, for each option, the setting it sets (a key of the config layout,
`lipdp.spec`), its command-line flag, its Python keyword and its help. Both front ends turn what
was given into a spec with `table_spec`: the table settings (`lipdp.spec.table_config`) with the
given options set, and nothing else; an option left out keeps the setting's one default, which
the help text reads from there. Errors name the settings as each front end does (`cli_naming`,
`python_naming`).
"""

import dataclasses
from typing import Any, Callable, Mapping, Optional

from lipdp import methods
from lipdp import spec as spec_lib


@dataclasses.dataclass(frozen=True)
class Option:
  """One option of a synthetic table.

  Attributes:
    name: the Python keyword (and, dashed, the command-line flag).
    key: the config key it sets (None: handled by the front end itself).
    help: what it does.
    type: how the command line parses its value (bool: a switch).
    flag: the command-line flag, when not the dashed name.
    invert: on the command line, a switch that sets the setting to False (--no-evaluation);
      in Python the keyword is the setting itself (evaluation=False).
    required: it must be given (its setting's default is no answer for a private table).
  """

  name: str
  key: Optional[str]
  help: str
  type: Callable = str
  flag: Optional[str] = None
  invert: bool = False
  required: bool = False

  @property
  def cli_flag(self) -> str:
    return self.flag or "--" + self.name.replace("_", "-")


OPTIONS = (
  Option(
    "method",
    "method",
    "how records are made: lipdp (default; each record's noisy latents), prior (the DP-SGD "
    "VAE), or a differentially private baseline of lipdp.baselines",
  ),
  Option(
    "epsilon",
    "epsilon",
    "the guarantee's epsilon: end to end for lipdp and prior (DP-SGD training and the release "
    "together, scope dp-sgd, the default); per record with --scope conditional or public, or "
    "with --dp-noise-multiplier; central for a baseline",
    float,
  ),
  Option(
    "total_epsilon",
    "total_epsilon",
    "one end-to-end epsilon for DP-SGD training and the release (scope dp-sgd; what --epsilon "
    "means there by default)",
    float,
  ),
  Option("delta", "delta", "delta, well below 1/n (e.g. 1e-6)", float, required=True),
  Option(
    "scope",
    "scope",
    "what the weights are covered by: dp-sgd (trained with DP-SGD inside the one epsilon; the "
    "default for lipdp and prior), conditional (trained on the private data without DP, NOT "
    "covered: only when asked for), public; dp-measurements for a baseline",
  ),
  Option("k", "k", "synthetic records per private record", int),
  Option(
    "dp_noise_multiplier",
    "train.dp_noise_multiplier",
    "DP-SGD noise multiplier, fixed by hand (scope dp-sgd): --epsilon is then the release's "
    "per-record epsilon and the report states the total",
    float,
  ),
  Option(
    "clip_norm",
    "train.dp_clip_norm",
    "DP-SGD's clip norm C (with --clip-quantile, the first step's)",
    float,
  ),
  Option(
    "clip_quantile",
    "train.dp_clip_quantile",
    "let DP-SGD's clip norm follow this quantile of the per-example gradient norms (0.5: the "
    "median), estimated privately inside the same epsilon (adaptive clipping): at a small fixed "
    "C every gradient is clipped and records with larger gradients are under-fit",
    float,
  ),
  Option(
    "clip_groups",
    "train.dp_clip_groups",
    "with --clip-quantile, give each category of this categorical column its own adaptive clip "
    "norm (per-group clipping: a group whose gradients are larger is no longer clipped more), "
    "inside the same epsilon",
    str,
  ),
  Option(
    "label_conditioned",
    "model.label_conditioned",
    "decode each synthetic record for a label drawn from a label distribution trained with the "
    "model (under DP-SGD in scope dp-sgd: no extra privacy cost); the schema must name a label "
    "column",
    bool,
  ),
  Option(
    "numeric_likelihood",
    "model.numeric_likelihood",
    "the decoder's likelihood for numeric columns: auto (default; equal-width bins for the "
    "columns the schema declares integer, whose values pile up on a few points, a Gaussian for "
    "the others), binned (bins for every numeric column), gaussian (a Gaussian for every one; "
    "under DP-SGD on a small table of smooth columns it keeps the label's signal where bins "
    "lose it: docs/results.md, breast cancer) or declared (the bins a column declares in the "
    "schema, which can hold a value on its own, such as pdays = -1; auto for the others)",
  ),
  Option(
    "numeric_bins",
    "model.numeric_bins",
    "the number B of equal-width bins on the declared bounds of a binned numeric column (holds "
    "a spike and a long tail; under --numeric-likelihood auto only the integer columns are "
    "binned); 0 makes every numeric column Gaussian",
    int,
  ),
  Option("steps", "train.num_steps", "training steps", int),
  Option("batch_size", "train.batch_size", "batch size", int),
  Option(
    "holdout_fraction",
    "holdout_fraction",
    "fraction of records held out of training and synthesis to evaluate the release (0: "
    "synthesize from all, no evaluation)",
    float,
  ),
  Option(
    "evaluation",
    "evaluation.enabled",
    "skip the (not private) evaluation on the holdout",
    bool,
    flag="--no-evaluation",
    invert=True,
  ),
  Option(
    "replace_release",
    "replace_release",
    "replace the release already in the work directory (only if never published)",
    bool,
  ),
  Option(
    "noise_seed",
    "noise_seed",
    "fix the release noise (reproducible, so NOT private against whoever knows it; recorded "
    "in the report)",
    int,
  ),
  Option(
    "train_seed",
    "train.seed",
    "fix the training seed (DP-SGD's sampling and noise become reproducible, so NOT private "
    "against whoever knows it; recorded in the report)",
    int,
  ),
  Option(
    "strict",
    "data_options.strict",
    "refuse numbers outside the declared bounds (default: clip them and count them on the console)",
    bool,
  ),
  Option("delimiter", "data_options.delimiter", "field delimiter (default ',')"),
  Option(
    "encoding",
    "data_options.encoding",
    "the file's encoding (default utf-8; a byte-order mark is accepted)",
  ),
  Option(
    "public_data",
    None,
    "a public CSV file in the same schema: scope public trains on it; scope dp-sgd with "
    "--set train.public_pretrain_steps=N pretrains on it before DP-SGD",
  ),
)
BY_NAME = {o.name: o for o in OPTIONS}
BY_KEY = {o.key: o for o in OPTIONS if o.key}


def default(name: str) -> Any:
  """The default of an option: the table settings' value (one definition: lipdp.spec); None
  where the setting is unset (a loader option left to the loader's own default)."""
  value = spec_lib.table_config()
  for part in BY_NAME[name].key.split("."):
    if part not in value:
      return None
    value = value[part]
  return value


def table_spec(
  dataset: str,
  schema: str,
  options: Mapping[str, Any],
  naming: spec_lib.Naming,
  table: Any = None,
  config_overrides: Optional[Mapping[str, Any]] = None,
) -> spec_lib.Spec:
  """The validated spec of a synthetic table: `lipdp.spec.table_config()` with `dataset`,
  `schema` and the given `options` (names of OPTIONS; None = not given) set.

  The scope defaults to the method's ('dp-measurements' for a central baseline, 'dp-sgd' for
  'lipdp' and 'prior'). In scope 'dp-sgd' the VAE's `epsilon` is one end-to-end budget for
  training and release (`total_epsilon`), unless `dp_noise_multiplier` fixes DP-SGD's noise;
  in scopes 'conditional' and 'public' it is the release's per-record epsilon; for a central
  baseline, its central epsilon. `config_overrides` ({config key: value}) sets any other
  setting. `table` is the rows of a table in memory ('table:DIGEST' data sets).
  """
  unknown = sorted(set(options) - set(BY_NAME))
  if unknown:
    raise TypeError(f"unknown options {unknown}; the options are {sorted(BY_NAME)}")
  given = {name: value for name, value in options.items() if value is not None}
  config = spec_lib.table_config()
  config.dataset = dataset
  config.schema = schema
  method = methods.get(given.get("method", config.method))
  if "scope" not in given and method is not None and method.default_scope:
    config.scope = method.default_scope
  _check_budget_given(method, given.get("scope", config.scope), given, naming)
  _check_dpsgd_options(given.get("scope", config.scope), given, naming)
  for name, value in given.items():
    option = BY_NAME[name]
    if option.key is None:
      continue
    _set(config, option.key, value)  # a value is the setting's: evaluation=False turns it off
  if _epsilon_is_end_to_end(method, config.scope, given):
    # The default for the VAE: one epsilon that covers DP-SGD's weights and the release.
    epsilon = given["epsilon"]
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < float("inf")):
      raise spec_lib.SettingError(
        f"{naming('epsilon', None)} must be positive and finite, got {epsilon}"
      )
    config.total_epsilon = epsilon
    config.epsilon = spec_lib.table_config().epsilon  # unused: the plan splits the total
  # An override may not set an option's setting, nor a group that holds one: the option's
  # value, or the checks made on it above (the budget, the scope's DP-SGD options), would be
  # silently undone (found by two reviews: epsilon=1 with config_overrides={'total_epsilon': 5}
  # released at 5, and --set "train={...}" dropped --dp-noise-multiplier).
  for key in config_overrides or {}:
    covered = [o for o in OPTIONS if o.key and (o.key == key or o.key.startswith(key + "."))]
    if covered:
      raise spec_lib.SettingError(
        f"{naming(key, None)} would set {naming(covered[0].key, None)}, an option: give the "
        "option instead"
      )
  for key, value in (config_overrides or {}).items():
    _set(config, key, value)
  public = given.get("public_data")
  if public is not None:  # read as the private table is
    config.public_dataset = "csv:" + public
    config.public_options.schema = config.schema or config.data_options.get("schema")
    for key in ("strict", "encoding", "delimiter"):
      if key in config.data_options:
        config.public_options[key] = config.data_options[key]
  built = spec_lib.from_config(config, naming)
  if table is not None:
    built = dataclasses.replace(built, data=dataclasses.replace(built.data, table=table))
  return built


def _check_budget_given(method, scope: str, given: Mapping[str, Any], naming) -> None:
  """The budget is the caller's: an epsilon is required wherever one is spent, as `lipdp
  synthesize` requires it (a default would be a budget nobody chose; found by a review: method
  'prior' ran at DP-SGD's default noise, epsilon 4.7), and epsilon and total_epsilon are not
  both given."""
  if "epsilon" in given and "total_epsilon" in given:
    raise spec_lib.SettingError(
      f"give {naming('epsilon', None)} or {naming('total_epsilon', None)}, not both "
      f"({naming('total_epsilon', None)} sets the release's share itself)"
    )
  noise = naming("train.dp_noise_multiplier", None)
  if "dp_noise_multiplier" in given and "total_epsilon" in given:
    raise spec_lib.SettingError(  # found by a review: the multiplier was silently replaced
      f"give {naming('total_epsilon', None)} or {noise}, not both ({naming('total_epsilon', None)} "
      "calibrates DP-SGD's noise itself)"
    )
  prior = method is not None and method.name == "prior"
  if prior and "dp_noise_multiplier" in given and "epsilon" in given:
    raise spec_lib.SettingError(  # a review: --epsilon 0.01 was ignored, the release at 3.3
      f"method 'prior' releases no latents: with {noise} its epsilon is DP-SGD's alone, which "
      f"the noise fixes and the report states; drop {naming('epsilon', None)}"
    )
  if method is None or "epsilon" in given or "total_epsilon" in given:
    return
  if method.kind == methods.CENTRAL:
    raise spec_lib.SettingError(
      f"give {naming('epsilon', None)}: the central epsilon of method {method.name!r}"
    )
  if method.kind != methods.VAE or scope == spec_lib.NO_GUARANTEE:
    return
  if method.name == "lipdp":
    raise spec_lib.SettingError(
      f"give {naming('epsilon', None)}: end to end (DP-SGD training and the release; per "
      "record in scope conditional or public)"
    )
  if scope == "dp-sgd" and "dp_noise_multiplier" not in given:
    raise spec_lib.SettingError(
      f"give {naming('epsilon', None)}: the end-to-end epsilon of the DP-SGD training whose "
      f"model method {method.name!r} samples (or fix DP-SGD's noise with "
      f"{naming('train.dp_noise_multiplier', None)}, and the report states its epsilon)"
    )


# Options that set DP-SGD's noise or clipping: read in scope 'dp-sgd' only.
DPSGD_OPTIONS = ("dp_noise_multiplier", "clip_norm")


def _check_dpsgd_options(scope: str, given: Mapping[str, Any], naming) -> None:
  """An option of DP-SGD's in a scope without DP-SGD is refused, not ignored: a reader of the
  command could take the weights for DP-trained (found by a review)."""
  if scope == "dp-sgd":
    return
  for name in DPSGD_OPTIONS:
    if name in given:
      raise spec_lib.SettingError(
        f"{naming(BY_NAME[name].key, None)} sets DP-SGD's training: it needs scope 'dp-sgd', "
        f"not {scope!r}, whose weights are trained without it"
      )


def _epsilon_is_end_to_end(method, scope: str, given: Mapping[str, Any]) -> bool:
  """Whether `epsilon` is the end-to-end budget: for the VAE (methods 'lipdp' and 'prior') in
  scope 'dp-sgd', unless DP-SGD's noise is fixed by hand (`dp_noise_multiplier`, when `epsilon`
  is the release's own per-record epsilon and the report states the total)."""
  return (
    method is not None
    and method.kind == methods.VAE
    and scope == "dp-sgd"
    and "epsilon" in given
    and "total_epsilon" not in given
    and "dp_noise_multiplier" not in given
  )


def _set(config, key: str, value: Any) -> None:
  *path, leaf = key.split(".")
  for part in path:
    if part not in config or not hasattr(config[part], "items"):
      raise spec_lib.SettingError(f"{key!r} is no setting of lipdp.spec (no group {part!r})")
    config = config[part]
  config[leaf] = value


def cli_naming(key: str, value: Optional[str]) -> str:
  """How `lipdp synthesize` names a setting: its flag (with the value if one is given)."""
  option = BY_KEY.get(key)
  if key == "public_dataset":
    return "--public-data"
  if option is None:  # not an option of the command: set through --set
    return f"--set {key}" + ("" if value is None else f"={value}")
  if value is None or option.type is bool:
    return option.cli_flag
  return f"{option.cli_flag} {value}"


def python_naming(key: str, value: Optional[str]) -> str:
  """How `lipdp.synthesize` names a setting: its keyword (config_overrides for the others)."""
  option = BY_KEY.get(key)
  if key == "public_dataset":
    return "public_data"
  if option is None:
    name = f"config_overrides[{key!r}]"
    return name if value is None else f"{name}={value!r}"
  if value is None:
    return option.name
  if option.type is bool and value in ("true", "false"):
    return f"{option.name}={value == 'true'}"
  return f"{option.name}={value!r}"
