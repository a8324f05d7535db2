"""The private baselines run by the main job (`--config.method=mst|aim|private_measure`).

The same data loading, release folder, report check and evaluation as lipdp's own methods;
scope 'dp-measurements', MST's and AIM's bins from the schema file.
"""

import csv
import json
import os
import sys

import numpy as np
import pytest

from lipdp import privacy
from lipdp import release as release_lib
from lipdp import runner
from lipdp import spec as spec_lib
from lipdp.methods import central
from lipdp.studies import points as sweep_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "experiments", "configs", "default.py")


def _get_config(variant):
  return spec_lib.config_from_file(CONFIGS, variant)


def _run(config, workdir):
  """The main job's path: the config validated into a spec, then the one run."""
  return runner.run(spec_lib.from_config(config), workdir)


SCHEMA = {
  "label_column": "label",
  "columns": [
    {"name": "a", "type": "numeric", "low": 0, "high": 10, "bins": [0, 2.5, 5, 7.5, 10]},
    {"name": "b", "type": "categorical", "categories": ["x", "y", "z"]},
    {"name": "c", "type": "numeric", "low": -1, "high": 1},
    {"name": "label", "type": "categorical", "categories": [0, 1]},
  ],
}
NUMERIC_SCHEMA = {
  "columns": [
    {"name": "u", "type": "numeric", "low": 0, "high": 1},
    {"name": "v", "type": "numeric", "low": 0, "high": 1},
  ]
}


def _write(folder, rows, header, schema):
  data = os.path.join(folder, "table.csv")
  with open(data, "w", encoding="utf-8", newline="") as f:
    out = csv.writer(f)
    out.writerow(header)
    out.writerows(rows)
  path = os.path.join(folder, "schema.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(schema, f)
  return data, path


def _mixed_table(folder, n=300):
  rng = np.random.default_rng(0)
  a = rng.uniform(0, 10, n)
  rows = [
    [f"{x:.3f}", rng.choice(["x", "y", "z"]), f"{np.tanh(x / 5 - 1):.3f}", int(x > 5)] for x in a
  ]
  return _write(folder, rows, ["a", "b", "c", "label"], SCHEMA)


def _config(data, schema, method, epsilon=2.0):
  c = _get_config("conditional")
  c.dataset = "csv:" + data
  c.schema = schema
  c.method = method
  c.scope = "dp-measurements"
  c.epsilon = epsilon
  c.delta = 1e-5
  c.noise_seed = 0
  c.evaluation.fast = True
  return c


# AIM through the main job takes 12 s (its fit has its own tests in test_baselines_fit.py; the
# pipeline path is the same as MST's): opt-in, to keep the default run's CPU time down.
@pytest.mark.parametrize("method", ["mst", pytest.param("aim", marks=pytest.mark.slow)])
def test_main_job_runs_mst_and_aim_into_a_release_that_verifies(tmp_path, method):
  pytest.importorskip("mbi")
  data, schema = _mixed_table(str(tmp_path))
  config = _config(data, schema, method)
  if method == "aim":
    config.epsilon = 5.0
  workdir = str(tmp_path / "run")
  result = _run(config, workdir)
  report = release_lib.verify_release(result.release_dir)  # files agree with the report
  assert report == result.report
  assert report.scope is privacy.Scope.DP_MEASUREMENTS
  assert report.epsilon == pytest.approx(config.epsilon, rel=1e-6)
  assert report.epsilon <= config.epsilon * (1 + 1e-9)
  assert report.recompute_epsilon() == report.epsilon
  assert report.noise_seeded
  # The schema's declared bins for 'a' (4 of them), the default count for 'c'.
  assert "a (numeric in declared bounds, 4 declared bins)" in report.domain
  n_train = len(result.data.train)
  assert result.synthetic_records.shape == (n_train, result.data.domain.dim)
  assert result.model is None and result.plan is None
  assert 0.0 <= result.metrics["tstr/logreg"] <= 1.0
  assert json.load(open(os.path.join(workdir, "evaluation.json")))["meta/privacy_scope"] == (
    "dp-measurements"
  )
  # No training artefacts: a baseline has no model.
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))


def test_main_job_runs_the_private_measure_on_numeric_data(tmp_path):
  rng = np.random.default_rng(1)
  rows = [[f"{u:.4f}", f"{v:.4f}"] for u, v in rng.beta(2, 5, size=(200, 2))]
  data, schema = _write(str(tmp_path), rows, ["u", "v"], NUMERIC_SCHEMA)
  config = _config(data, schema, "private_measure", epsilon=1.0)
  config.evaluation.enabled = False
  result = _run(config, str(tmp_path / "run"))
  report = release_lib.verify_release(result.release_dir)
  assert report.epsilon <= 1.0 * (1 + 1e-9) and report.delta == 1e-5
  assert result.metrics is None


def test_equal_width_bins_when_there_is_no_schema():
  config = _get_config("breast_cancer")
  config.method, config.scope, config.baseline_bins = "aim", "dp-measurements", 8
  data = runner.load_data(spec_lib.from_config(config).data)
  options = central.fit_options(spec_lib.from_config(config), data.domain)
  assert set(options["bins"]) == {c.name for c in data.domain.columns if hasattr(c, "low")}
  assert set(options["bins"].values()) == {8}
  config.baseline_bins = None
  # The baselines' default count.
  assert central.fit_options(spec_lib.from_config(config), data.domain) == {}
  config.method = "private_measure"
  assert central.fit_options(spec_lib.from_config(config), data.domain) == {}


@pytest.mark.parametrize(
  "changes, match",
  [
    ({"scope": "conditional"}, "pass --config.scope=dp-measurements"),
    ({"scope": "dp-sgd"}, "pass --config.scope=dp-measurements"),
    ({"epsilon": 0.0}, "epsilon must be positive"),
    ({"epsilon": float("inf")}, "epsilon must be positive"),
    ({"delta": 1.0}, "delta must be in"),
    ({"total_epsilon": 2.0}, "does not use --config.total_epsilon"),
    ({"k": 2}, "does not use --config.k"),
    ({"decoding": "mean"}, "does not use --config.decoding"),
    ({"temperature": 0.5}, "does not use --config.temperature"),
    ({"baseline_bins": 1}, "baseline_bins must be an integer >= 2"),
    ({"method": "copy_train"}, "no privacy at all"),
    ({"method": "pate"}, "method must be one of"),
  ],
)
def test_bad_baseline_settings_are_refused_before_anything_is_written(tmp_path, changes, match):
  config = _config("unused.csv", "unused.json", "aim")
  for key, value in changes.items():
    setattr(config, key, value)
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=match):
    _run(config, str(workdir))
  assert not workdir.exists()


@pytest.mark.parametrize("method", ["mst", "aim"])
def test_missing_mbi_is_a_clear_error_before_anything_is_written(tmp_path, monkeypatch, method):
  data, schema = _mixed_table(str(tmp_path))
  monkeypatch.setitem(sys.modules, "mbi", None)  # import mbi now raises ImportError
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=r"pip install 'lipdp\[baselines\]'"):
    _run(_config(data, schema, method), str(workdir))
  assert not workdir.exists()


def test_vae_scopes_are_refused_the_central_scope():
  config = _get_config("conditional")
  config.scope = "dp-measurements"
  with pytest.raises(ValueError, match="--config.method=mst"):
    spec_lib.from_config(config)


def test_sweep_points_of_a_baseline_run_through_the_main_job():
  point = sweep_lib.point("s", "aim", "bank", 1.0, 2)
  spec = sweep_lib.make_spec(point, CONFIGS)
  assert (spec.method.name, spec.privacy.scope, spec.privacy.epsilon) == (
    "aim",
    privacy.Scope.DP_MEASUREMENTS,
    1.0,
  )
  assert spec.release.noise_seed == 2
