"""Sweep points: from a point (method, config variant, overrides, seed) to a row of results.

A point is a plain dict:

    {"sweep": "frontier-quick", "id": "lipdp-e2e/eps=1/seed=0", "method": "lipdp-e2e",
     "variant": "quick", "epsilon": 1.0, "seed": 0, "overrides": {"model.style_dim": 16}}

`point(...)` builds one. `make_spec` turns it into a `lipdp.spec.Spec` (a config variant of a
config file such as experiments/configs/default.py, the method's settings, the overrides and
the seed) and `run_point` runs it through `lipdp.runner.run`, the one run, and returns a flat
row: the point's fields, the privacy headline and every metric of
`lipdp.evaluation.evaluate_release`. Methods:

  lipdp-conditional  per-record release, model fit without DP (the original paper's setting)
  lipdp-e2e          scope dp-sgd, one total epsilon split between DP-SGD and the release
  lipdp-shuffled     as lipdp-e2e, the release's share being its shuffled central epsilon
  dpsgd-vae          scope dp-sgd, records sampled from the prior (DP-SGD VAE baseline)
  lipdp-public       per-record release at epsilon (not shuffled), model fit on
                     `public_dataset` only (scope public; the point's overrides name it)
  vae                the VAE trained without DP, sampled from its prior (scope 'none': no
                     guarantee, epsilon = inf)
  <name>             any method of `lipdp.methods` by its name, or with dashes for its
                     underscores: a central baseline (mst, aim, private_measure, dp-merf, ...;
                     its settings as overrides, e.g. {"dp_merf.num_steps": 1000}) or a
                     reference without a guarantee (copy_train)

`decoded_again(base, ...)` makes a point that decodes a base point's trained weights again with
settings that act after training only (the decoding, its temperature, the evaluation): its work
directory starts as a copy of the base's, and with the base's noise seed its release is
post-processing of the base's.

Sweep points seed the noise (reproducible, and the reports say so): they are a study of the
mechanism, not releases.
"""

import fnmatch
import importlib.util
import json
import math
import os
import shutil
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

from lipdp import files
from lipdp import methods
from lipdp import privacy
from lipdp import runner
from lipdp import spec as spec_lib
from lipdp import workdir as workdir_lib
from lipdp.studies import results

# DP-SGD's sum arithmetic of every study point that does not choose one (`make_config`).
STUDY_DP_SUM = "float32"
# Method -> the config fields that make it (on top of the variant and the point's overrides).
VAE_METHODS = {
  "lipdp-conditional": {"scope": "conditional"},
  "lipdp-e2e": {"scope": "dp-sgd", "calibration": "per-record"},
  "lipdp-shuffled": {"scope": "dp-sgd", "calibration": "shuffled"},
  "dpsgd-vae": {"scope": "dp-sgd", "method": "prior"},
  "lipdp-public": {"scope": "public", "shuffled_release": False},
  "vae": {"scope": spec_lib.NO_GUARANTEE, "method": "prior"},
}
# What the rows of the runs without a guarantee say instead of a headline epsilon.
REFERENCE_HEADLINES = {"vae": "no privacy guarantee (trained without DP)"}
INF = math.inf
# Short data set names in result rows (the same as experiments/baselines.py writes).
DATASET_NAMES = {
  "quick": "digits",
  "bank": "bank_marketing",
  "breast_cancer": "breast_cancer",
  "mnist_idx": "mnist_idx",
  "mnist": "mnist",
  "": "digits",
  "smoke": "digits",
}


def point(
  sweep: str,
  method: str,
  variant: str,
  epsilon: float,
  seed: int,
  overrides: Optional[Mapping[str, Any]] = None,
  tag: str = "",
) -> Dict[str, Any]:
  """One sweep point. `tag` names a knob setting in knob studies (part of the id)."""
  eps = "inf" if epsilon == INF else f"{epsilon:g}"
  pid = "/".join(x for x in (method, tag, f"eps={eps}", f"seed={seed}") if x)
  return {
    "sweep": sweep,
    "id": pid,
    "method": method,
    "variant": variant,
    "epsilon": epsilon,
    "seed": int(seed),
    "tag": tag,
    "overrides": dict(overrides or {}),
  }


def load_sweep(path_and_name: str):
  """The points of 'path/to/sweep.py:name' (the file's `get_sweep(name)`)."""
  path, _, name = path_and_name.partition(":")
  module_spec = importlib.util.spec_from_file_location("sweep_definition", path)
  if module_spec is None:
    raise ValueError(f"no sweep file at {path!r}")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_sweep(name)


def check_unique_ids(points: Iterable[Mapping[str, Any]]) -> None:
  ids = [p["id"] for p in points]
  dup = sorted({i for i in ids if ids.count(i) > 1})
  if dup:
    raise ValueError(f"sweep has duplicate point ids: {dup[:5]}")


def select(points: Sequence[Mapping[str, Any]], patterns: Sequence[str]) -> list:
  """The points whose id matches one of the shell-style patterns (all points if none given).

  A pattern that matches no point is an error: a typo must not silently run nothing.
  """
  if not patterns:
    return list(points)
  unmatched = [
    pat for pat in patterns if not any(fnmatch.fnmatchcase(p["id"], pat) for p in points)
  ]
  if unmatched:
    raise ValueError(
      f"--only pattern(s) {unmatched} match no point id; ids look like {points[0]['id']!r}"
      if points
      else "the sweep has no points"
    )
  return [p for p in points if any(fnmatch.fnmatchcase(p["id"], pat) for pat in patterns)]


def shard(points: Sequence[Mapping[str, Any]], task_index: int, num_tasks: int) -> list:
  """The points of one task of an array job: point i belongs to task i % num_tasks."""
  if not 0 <= task_index < num_tasks:
    raise ValueError(f"task_index must be in [0, {num_tasks}), got {task_index}")
  return [p for i, p in enumerate(points) if i % num_tasks == task_index]


def point_fields(p: Mapping[str, Any]) -> Dict[str, Any]:
  return {
    "sweep": p["sweep"],
    "id": p["id"],
    "method": p["method"],
    "variant": p["variant"],
    "target_epsilon": None if p["epsilon"] == INF else p["epsilon"],
    "seed": p["seed"],
    "tag": p.get("tag", ""),
    "overrides": dict(p.get("overrides", {})),
    "code_version": results.code_version(),
    "platform": results.platform(),
  }


def _set(config, key: str, value) -> None:
  target = config
  *path, leaf = key.split(".")
  for part in path:
    target = target[part]
  target[leaf] = value


def make_config(p: Mapping[str, Any], config_file: str):
  """The configuration of a point: `get_config(variant)` of `config_file`, then the method's
  settings and budget, the point's overrides and its seed."""
  config = spec_lib.config_from_file(config_file, p["variant"])
  method = p["method"]
  if method in VAE_METHODS:
    # The studies ran with float32 DP-SGD sums, the default before 'auto' (bounded float sums,
    # docs/privacy.md section 4) became it; pinned so that a point reruns to its row. A point
    # chooses another arithmetic in its overrides.
    config.train.dp_sum = STUDY_DP_SUM
    for key, value in VAE_METHODS[method].items():
      _set(config, key, value)
    if config.scope == privacy.Scope.DP_SGD.value:  # one end-to-end budget
      config.total_epsilon = float(p["epsilon"])
    elif config.scope != spec_lib.NO_GUARANTEE:
      config.epsilon = float(p["epsilon"])
  elif method_name(method) in methods.names(methods.CENTRAL):  # --config.method=mst|...
    config.method = method_name(method)
    config.scope = "dp-measurements"
    config.epsilon = float(p["epsilon"])
  elif method_name(method) in methods.names(methods.REFERENCE):
    config.method = method_name(method)
    config.scope = spec_lib.NO_GUARANTEE
  else:
    raise ValueError(
      f"unknown method {method!r}; VAE methods: {sorted(VAE_METHODS)}, others: "
      f"{list(methods.names(methods.CENTRAL) + methods.names(methods.REFERENCE))}"
    )
  for key, value in p.get("overrides", {}).items():
    _set(config, key, value)
  config.train.seed = int(p["seed"])
  config.noise_seed = int(p["seed"])  # a study: reproducible noise, and the report says so
  config.evaluation.seed = int(p["seed"])
  return config


def method_name(method: str) -> str:
  """The registry name of a point's method: itself, or with underscores for its dashes
  ('dp-merf' runs --config.method=dp_merf)."""
  return method if methods.get(method) else method.replace("-", "_")


def make_spec(p: Mapping[str, Any], config_file: str) -> spec_lib.Spec:
  """The validated spec of a point (`make_config`)."""
  return spec_lib.from_config(make_config(p, config_file))


def report_fields(report) -> Dict[str, Any]:
  return {
    "epsilon": report.epsilon,
    "delta": report.delta,
    "headline": report.headline,
    "scope": report.scope.value,
    "per_record_epsilon": report.per_record_epsilon,
    "central_epsilon": report.central_epsilon,
    "dpsgd_epsilon": report.components.get("dp_sgd"),
    "release_sigma": report.sigma,
    "release_information_nats": report.release_information_nats,
  }


def decoded_again(
  base: Mapping[str, Any], sweep: str, tag: str, overrides: Mapping[str, Any]
) -> Dict[str, Any]:
  """A point that decodes `base`'s trained weights again, with `overrides` of settings that act
  after training only (`lipdp.runner.after_training`: the temperature, the decoding, the
  evaluation; for the DP-SGD VAE also k, the number of records drawn per training record).

  Its work directory starts as a copy of the base's without its release, evaluation or figure
  (`run_point`), so training resumes at its last step and is found finished. The noise seed is
  the base's (sweep points seed it), so the released latents are the base's, bit for bit, and
  the point is post-processing of the base's release: the same epsilon, nothing spent again.
  """
  fields = VAE_METHODS.get(base["method"], {})
  settings = {  # what runner.after_training reads, for the base's method
    "method": fields.get("method", "lipdp"),
    "scope": fields.get("scope"),
    "model": {"heteroscedastic": base.get("overrides", {}).get("model.heteroscedastic")},
  }
  resumable = runner.after_training(settings)
  others = sorted(k for k in overrides if k.split(".")[0] not in resumable)
  if others or "noise_seed" in overrides:
    raise ValueError(
      f"a point decoding {base['id']!r} again may change only what acts after training and "
      f"keeps its noise seed; got {others or ['noise_seed']}"
    )
  if sweep == base["sweep"] and tag == base.get("tag", ""):
    raise ValueError(f"a point decoding {base['id']!r} again needs another sweep or tag")
  p = point(
    sweep,
    base["method"],
    base["variant"],
    base["epsilon"],
    base["seed"],
    {**base.get("overrides", {}), **overrides},
    tag,
  )
  p["decodes"] = {"sweep": base["sweep"], "id": base["id"]}
  return p


def point_workdir(root: str, sweep: str, point_id: str) -> str:
  """A point's work directory under the sweeps' root (sweep.py's --workdir)."""
  return os.path.join(root, sweep, point_id.replace("/", "_"))


# What a point decoding another point's weights again does not copy: what it writes anew.
_WRITTEN_ANEW = (workdir_lib.RELEASE_DIR, workdir_lib.EVALUATION_FILE, workdir_lib.SAMPLES_FIGURE)


def copy_trained(source: str, workdir: str, spec: spec_lib.Spec) -> None:
  """Copies a trained point's work directory into `workdir`, without what a run writes anew.

  config.json records a schema by its absolute path, so a point run from another checkout of
  the repository would be refused as another run though it read the same bytes: the copy's
  recorded schema is pointed at `spec`'s when the two files are identical (refused otherwise).
  """
  shutil.copytree(source, workdir, ignore=shutil.ignore_patterns(*_WRITTEN_ANEW))
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  with open(config_path, encoding="utf-8") as f:
    recorded = json.load(f)
  options = recorded.get("data_options") or {}
  ours = spec_lib.to_config(spec).data_options.get("schema")
  theirs = options.get("schema")
  if not (ours and theirs and ours != theirs and os.path.exists(theirs)):
    return
  with open(ours, "rb") as a, open(theirs, "rb") as b:
    if a.read() != b.read():
      raise ValueError(f"the trained point read another schema ({theirs}) than {ours}")
  options["schema"] = ours
  files.atomic_write_text(config_path, json.dumps(recorded, indent=2, sort_keys=True))


# XLA's compiled programs, kept under the sweeps' root (`use_compilation_cache`).
COMPILATION_CACHE = "xla_cache"


def use_compilation_cache(sweeps_root: str) -> str:
  """Keeps XLA's compiled programs in `sweeps_root`/xla_cache (JAX's persistent compilation
  cache) and loads them when a later point, in this process or another, builds the same
  program. A sweep's points build the same programs again (a new jitted function per run), so
  a point whose programs are cached runs in about half the time on a CPU (docs/performance.md).
  The executable loaded is the one XLA compiles for the same program and options: rows do not
  change. The folder is as private as the points' work directories beside it: a compiled
  program may hold constants taken from the data. Returns the folder."""
  # Only a sweep that runs points needs JAX here.
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import compilation_cache  # pylint: disable=g-import-not-at-top

  directory = os.path.join(sweeps_root, COMPILATION_CACHE)
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  compilation_cache.reset_cache()  # a cache opened before in this process now opens this folder
  return directory


def run_point(p: Mapping[str, Any], workdir_root: str, config_file: str) -> Dict[str, Any]:
  """Runs one point in a fresh work directory under `workdir_root` (the sweep's folder under
  the sweeps' root); returns its row. A point made by `decoded_again` starts from a copy of its
  base's work directory, which must have been run first under the same root."""
  spec = make_spec(p, config_file)
  root = os.path.dirname(workdir_root)
  workdir = point_workdir(root, p["sweep"], p["id"])
  row = point_fields(p)
  base = p.get("decodes")
  if base:
    source = point_workdir(root, base["sweep"], base["id"])
    # Only a finished training: a copy must not train (nor spend DP-SGD's budget) any further.
    if workdir_lib.latest_checkpoint_step(source) != spec.train.num_steps:
      raise ValueError(
        f"point {p['id']!r} decodes the weights of {base['sweep']}:{base['id']}, which has no "
        f"finished training in {source}: run that point first under the same --workdir"
      )
    row["decodes"] = f"{base['sweep']}:{base['id']}"
  shutil.rmtree(workdir, ignore_errors=True)  # a point always starts from scratch
  if base:
    copy_trained(source, workdir, spec)
  result = runner.run(spec, workdir)
  if result.report is not None:
    row.update(report_fields(result.report))
  else:  # no guarantee: no epsilon, never a made-up one
    headline = REFERENCE_HEADLINES.get(p["method"], "no privacy guarantee")
    row.update(epsilon=None, headline=headline, scope=None)
  row.update(
    dataset=DATASET_NAMES.get(p["variant"], spec.data.dataset),
    num_train=len(result.data.train),
    timings=result.timings,
  )
  if result.plan is not None:  # lipdp's methods: the budget fixed before training
    row["plan"] = {
      "noise_ratio": result.plan.noise_ratio,
      "dpsgd_noise_multiplier": result.plan.dpsgd_noise_multiplier,
    }
  row.update(result.metrics or {})
  return row
