"""Sweep points: from a point (method, config variant, overrides, seed) to a row of results.

A point is a plain dict:

    {"sweep": "frontier-quick", "id": "lipdp-e2e/eps=1/seed=0", "method": "lipdp-e2e",
     "variant": "quick", "epsilon": 1.0, "seed": 0, "overrides": {"model.style_dim": 16}}

`point(...)` builds one; `run_point` turns it into a lipdp configuration (configs/default.py),
runs it and returns a flat row: the point's fields, the privacy headline and every metric of
`lipdp.evaluation.evaluate_release`. Rows are appended to a JSONL file one line at a time
(`append_row`), so a killed sweep loses at most the point it was running.
"""

import fnmatch
import importlib.util
import json
import math
import os
import shutil
import sys
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs"))
import default as default_config  # pylint: disable=g-import-not-at-top

from lipdp import files  # pylint: disable=g-import-not-at-top

# Method -> the config fields that make it (on top of the variant and the point's overrides).
LIPDP_METHODS = {
  "lipdp-conditional": {"scope": "conditional"},
  "lipdp-e2e": {"scope": "dp-sgd", "calibration": "per-record"},
  "lipdp-shuffled": {"scope": "dp-sgd", "calibration": "shuffled"},
  "dpsgd-vae": {"scope": "dp-sgd", "method": "prior"},
}
NONPRIVATE_METHODS = ("vae",)
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


def load_sweep(spec: str):
  path, _, name = spec.partition(":")
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


def completed_ids(path: str) -> set:
  """Ids of the points with a row (error-free) in the results file."""
  if not os.path.exists(path):
    return set()
  done = set()
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut by a crash: the point runs again
      if "error" not in row:
        done.add(row["id"])
  return done


def append_row(path: str, row: Mapping[str, Any]) -> None:
  """Appends one JSON line in a single write, flushed to disk."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  line = json.dumps(row, sort_keys=True, default=files.json_default, allow_nan=True) + "\n"
  with open(path, "a", encoding="utf-8") as f:
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def read_rows(path: str) -> list:
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          pass
  return rows


def code_version() -> Optional[str]:
  """The git commit of the code that ran (None outside a git checkout)."""
  import subprocess  # pylint: disable=g-import-not-at-top

  try:
    out = subprocess.run(
      ["git", "rev-parse", "HEAD"],
      capture_output=True,
      text=True,
      check=True,
      cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    dirty = subprocess.run(
      ["git", "status", "--porcelain", "--untracked-files=no"],
      capture_output=True,
      text=True,
      check=True,
      cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout.strip()
    return out.stdout.strip() + ("+modified" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return None


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
    "code_version": code_version(),
  }


def _set(config, key: str, value) -> None:
  target = config
  *path, leaf = key.split(".")
  for part in path:
    target = target[part]
  target[leaf] = value


def make_config(p: Mapping[str, Any]):
  """The lipdp configuration of a point (methods of the main job only)."""
  config = default_config.get_config(p["variant"])
  method = p["method"]
  if method in LIPDP_METHODS:
    for key, value in LIPDP_METHODS[method].items():
      _set(config, key, value)
    if config.scope == "dp-sgd":
      config.total_epsilon = float(p["epsilon"])
    else:
      config.epsilon = float(p["epsilon"])
  elif method in NONPRIVATE_METHODS:
    config.scope = "conditional"
  elif central_method(method):  # the main job runs it: --config.method=mst|aim|...|dp_merf
    config.method = central_method(method)
    config.scope = "dp-measurements"
    config.epsilon = float(p["epsilon"])
  for key, value in p.get("overrides", {}).items():
    _set(config, key, value)
  config.train.seed = int(p["seed"])
  config.noise_seed = int(p["seed"])  # a study: reproducible noise, and the report says so
  config.evaluation.seed = int(p["seed"])
  return config


def _central_baselines():
  from lipdp import pipeline  # pylint: disable=g-import-not-at-top

  return pipeline.BASELINE_METHODS


def central_method(method: str) -> Optional[str]:
  """The main job's name of a central baseline, or None: a point's method is that name or
  the same with dashes ('dp-merf' runs --config.method=dp_merf)."""
  name = method.replace("-", "_")
  return name if name in _central_baselines() else None


def run_point(p: Mapping[str, Any], workdir_root: str) -> Dict[str, Any]:
  """Runs one point in a fresh work directory; returns its row."""
  workdir = os.path.join(workdir_root, p["id"].replace("/", "_"))
  shutil.rmtree(workdir, ignore_errors=True)  # a point always starts from scratch
  row = point_fields(p)
  method = p["method"]
  if method in LIPDP_METHODS or central_method(method):
    from lipdp import pipeline  # pylint: disable=g-import-not-at-top

    config = make_config(p)
    result = pipeline.run(config, workdir, progress_bar=False)
    report = result.report
    row.update(_report_fields(report))
    row.update(
      dataset=DATASET_NAMES.get(p["variant"], config.dataset),
      num_train=len(result.data.train),
      timings=result.timings,
    )
    if result.plan is not None:  # lipdp's methods: the budget fixed before training
      row["plan"] = {
        "noise_ratio": result.plan.noise_ratio,
        "dpsgd_noise_multiplier": result.plan.dpsgd_noise_multiplier,
      }
    row.update(result.metrics or {})
  elif method in NONPRIVATE_METHODS:
    config = make_config(p)
    row.update(_run_nonprivate_vae(config, workdir, p["variant"]))
  else:
    row.update(_run_baseline(p, workdir))
  return row


def _report_fields(report) -> Dict[str, Any]:
  return {
    "epsilon": report.epsilon,
    "delta": report.delta,
    "headline": report.headline,
    "scope": report.scope.value,
    "per_record_epsilon": report.per_record_epsilon,
    "central_epsilon": report.central_epsilon,
    "dpsgd_epsilon": report.components.get("dp_sgd"),
    "release_sigma": report.sigma,
  }


def _run_nonprivate_vae(config, workdir, variant) -> Dict[str, Any]:
  """The same VAE trained without DP and sampled from its prior: no privacy guarantee."""
  from lipdp import evaluation  # pylint: disable=g-import-not-at-top
  from lipdp import pipeline  # pylint: disable=g-import-not-at-top
  from lipdp import synthesize as synth_lib  # pylint: disable=g-import-not-at-top
  from lipdp import train as train_lib  # pylint: disable=g-import-not-at-top
  from lipdp.models import builders  # pylint: disable=g-import-not-at-top

  data = pipeline.load_data(config)
  target, sigma = pipeline.encoder_calibration(config, data.domain.diameter)
  model = builders.build_vae(
    data.domain, config.model, target, sigma, log_sigma_lipschitz=config.model.log_sigma_lipschitz
  )
  trained = train_lib.train(
    model,
    data.train,
    data.domain.blocks,
    train_lib.TrainConfig(
      num_steps=config.train.num_steps,
      batch_size=min(config.train.batch_size, len(data.train)),
      learning_rate=config.train.learning_rate,
      seed=config.train.seed,
      image_likelihood=config.model.image_likelihood,
      beta=config.train.beta,
      block_weights=pipeline.block_weights(config, data.domain),
      log_every=config.train.log_every,
      checkpoint_every=config.train.checkpoint_every,
      average_decay=config.train.average_decay,
      progress_bar=False,
    ),
    workdir=workdir,
  )
  variables = {"params": trained.state.params, **trained.state.model_state}
  records = synth_lib.sample_prior(
    model,
    variables,
    len(data.train) * int(config.k),
    data.domain,
    seed=config.noise_seed,
    decoding=config.decoding,
  )
  metrics = evaluation.evaluate_release(
    data.domain,
    records,
    data.train,
    data.holdout,
    seed=config.evaluation.seed,
    fast=config.evaluation.fast,
  )
  return {
    "epsilon": None,
    "headline": "no privacy guarantee (trained without DP)",
    "scope": None,
    "dataset": DATASET_NAMES.get(variant, config.dataset),
    "num_train": len(data.train),
    "timings": {"train_s": trained.wall_time_s},
    **metrics,
  }


def _run_baseline(p, workdir) -> Dict[str, Any]:
  """A non-private reference of lipdp.baselines (copy_train) on the variant's data set; the
  private baselines run through the main job (`run_point`)."""
  try:
    from lipdp import baselines  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError(f"unknown method {p['method']!r} (lipdp.baselines unavailable: {e})") from e
  if p["method"] not in baselines.BASELINES:
    raise ValueError(
      f"unknown method {p['method']!r}; lipdp methods: "
      f"{sorted(LIPDP_METHODS) + list(NONPRIVATE_METHODS)}, baselines: "
      f"{sorted(baselines.BASELINES)}"
    )
  from lipdp import evaluation  # pylint: disable=g-import-not-at-top
  from lipdp import pipeline  # pylint: disable=g-import-not-at-top

  config = default_config.get_config(p["variant"])
  for key, value in p.get("overrides", {}).items():
    _set(config, key, value)
  data = pipeline.load_data(config)
  fit = baselines.BASELINES[p["method"]]
  epsilon = None if p["epsilon"] == INF else p["epsilon"]
  out = fit(data.train, data.domain, epsilon=epsilon, delta=config.delta, seed=p["seed"])
  row = {"dataset": DATASET_NAMES.get(p["variant"], config.dataset), "num_train": len(data.train)}
  if getattr(out, "report", None) is not None:
    row.update(_report_fields(out.report))
  else:
    row.update(epsilon=None, headline="no privacy guarantee")
  row.update(
    evaluation.evaluate_release(
      data.domain,
      out.records,
      data.train,
      data.holdout,
      seed=p["seed"],
      fast=config.evaluation.fast,
    )
  )
  return row
