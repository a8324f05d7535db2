"""The Python entry point for notebooks: `lipdp.synthesize` on a table in memory.

The same run and the same checks as `lipdp synthesize`: a pandas DataFrame in, a DataFrame out;
a mapping of NumPy columns in, a dict of NumPy arrays out; the report verifies against the
release; a cell the CSV reader would refuse is refused, named by its row's position.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest

import lipdp
from lipdp import api
from lipdp import privacy
from lipdp import release as release_lib
from lipdp import runner
from lipdp import spec as spec_lib

SCHEMA = {
  "label_column": "outcome",
  "columns": [
    {"name": "age", "type": "numeric", "low": 18, "high": 90, "integer": True},
    {"name": "score", "type": "numeric", "low": 0, "high": 100},
    {"name": "city", "type": "categorical", "categories": ["Köln", "Paris", "Rome"]},
    {"name": "outcome", "type": "categorical", "categories": [0, 1]},
  ],
}
# A small model: the point here is the entry point, not the model.
SMALL = {
  "model.latent_dim": 4,
  "model.style_dim": 0,
  "model.encoder_hidden": (16,),
  "model.decoder_hidden": (16,),
  "train.log_every": 10,
  "train.checkpoint_every": 10,
}


def _people(n=80):
  rng = np.random.default_rng(0)
  return pd.DataFrame(
    {
      "id": np.arange(n),
      "score": rng.uniform(0, 100, n).round(2),
      "city": rng.choice(["Köln", "Paris", "Rome"], n),
      "age": rng.integers(18, 91, n),
      "outcome": rng.integers(0, 2, n),
    }
  )


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("schema") / "schema.json"
  path.write_text(json.dumps(SCHEMA))
  return str(path)


def test_a_dataframe_in_gives_a_dataframe_out_with_a_report_that_verifies(tmp_path, schema_file):
  # A cheap method: the point is the DataFrame round trip and the release's files
  # (test_the_default_dp_sgd_run_of_a_dataframe runs the default method, slowly).
  synthetic, report = lipdp.synthesize(
    _people(),
    schema_file,
    method="mst",
    epsilon=2.0,
    delta=1e-5,
    evaluation=False,
    workdir=str(tmp_path / "run"),
    progress=False,
  )
  _check_people(synthetic)
  assert report.scope is privacy.Scope.DP_MEASUREMENTS and report.epsilon <= 2.0 * (1 + 1e-9)
  assert release_lib.verify_release(str(tmp_path / "run" / "release")) == report
  with pytest.raises(spec_lib.SettingError, match="replace_release=True"):
    lipdp.synthesize(
      _people(), schema_file, method="mst", epsilon=2.0, delta=1e-5,
      evaluation=False, workdir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip


def test_end_to_end_is_the_default(schema_file):
  # What synthesize() runs without a method or scope: one epsilon over DP-SGD and the release.
  spec = api.table_spec(_people(), schema_file, epsilon=2.0, delta=1e-5)
  assert spec.scope is privacy.Scope.DP_SGD
  assert spec.privacy.total_epsilon == 2.0


def test_the_budget_and_the_evaluation_are_as_given(schema_file):
  """From a review: a default budget nobody chose, two epsilons of which one is ignored, and an
  inverted evaluation keyword. Each is now refused, or is what the keyword says."""
  people = _people()
  spec = lambda **kw: api.table_spec(people, schema_file, delta=1e-5, **kw)  # noqa: E731
  assert spec(epsilon=1.0, evaluation=False).evaluation.enabled is False
  assert spec(epsilon=1.0, evaluation=True).evaluation.enabled is True
  assert spec(epsilon=1.0).evaluation.enabled is True
  for kw, match in (
    ({}, r"^give epsilon: end to end"),
    ({"method": "prior"}, r"^give epsilon: the end-to-end epsilon of the DP-SGD training"),
    ({"method": "mst"}, r"^give epsilon: the central epsilon of method 'mst'"),
    ({"epsilon": 1.0, "total_epsilon": 5.0}, r"^give epsilon or total_epsilon, not both"),
  ):
    with pytest.raises(spec_lib.SettingError, match=match):
      spec(**kw)
  # An override never sets an option's setting, alone or in its group, nor changes the scope
  # the checks above were made in.
  for overrides, option in (
    ({"total_epsilon": 5.0}, "total_epsilon"),
    ({"train.num_steps": 20}, "steps"),
    ({"train": {"num_steps": 3}}, "dp_noise_multiplier"),  # the group's first option
    ({"scope": "conditional"}, "scope"),
    ({"train.dp_noise_multiplier": 0.5}, "dp_noise_multiplier"),
  ):
    with pytest.raises(spec_lib.SettingError, match=rf"would set {option}, an option"):
      spec(epsilon=1.0, config_overrides=overrides)
  # The DP-SGD VAE with its noise fixed by hand: the report states the epsilon that gives.
  fixed = spec(method="prior", dp_noise_multiplier=2.0)
  assert fixed.train.dp_noise_multiplier == 2.0 and fixed.privacy.total_epsilon is None


def test_the_private_table_is_not_public_data_even_from_a_file(tmp_path, schema_file):
  """A table in memory is named by its digest, never by the file it was read from: the file
  passed as public data is refused by its records (found by a review: it ran, scope public)."""
  people = _people()
  path = tmp_path / "people.csv"
  people.to_csv(path, index=False)
  with pytest.raises(spec_lib.SettingError, match="^public_data holds every private record"):
    lipdp.synthesize(
      pd.read_csv(path), schema_file, epsilon=1.0, delta=1e-5, scope="public",
      public_data=str(path), workdir=str(tmp_path / "run"), progress=False,
    )  # fmt: skip
  assert not os.path.exists(tmp_path / "run")


def _check_people(synthetic):
  assert isinstance(synthetic, pd.DataFrame)
  assert list(synthetic.columns) == ["score", "city", "age", "outcome"]  # declared, in order
  assert len(synthetic) == 64  # the 80 % of the records that trained the model
  assert synthetic["age"].dtype.kind == "i" and synthetic["age"].between(18, 90).all()
  assert synthetic["score"].between(0, 100).all()
  assert set(synthetic["city"]) <= {"Köln", "Paris", "Rome"}


@pytest.mark.slow  # 17 s: DP-SGD's noise calibration and training (the rest is checked above)
def test_the_default_dp_sgd_run_of_a_dataframe(tmp_path, schema_file):
  table = _people()
  synthetic, report = lipdp.synthesize(
    table,
    schema_file,
    epsilon=2.0,
    delta=1e-5,
    steps=10,
    evaluation=False,
    workdir=str(tmp_path / "run"),
    progress=False,
    config_overrides=SMALL,
  )
  _check_people(synthetic)
  # End to end by default: one epsilon covers the DP-SGD weights and the release.
  assert report.scope is privacy.Scope.DP_SGD
  assert report.epsilon <= 2.0 * (1 + 1e-6) and report.epsilon == pytest.approx(2.0, rel=2e-3)
  assert release_lib.verify_release(str(tmp_path / "run" / "release")) == report
  # The same work directory refuses a second release, as the command does.
  with pytest.raises(spec_lib.SettingError, match="replace_release=True"):
    lipdp.synthesize(
      table, schema_file, epsilon=2.0, delta=1e-5, steps=10, evaluation=False,
      workdir=str(tmp_path / "run"), progress=False, config_overrides=SMALL,
    )  # fmt: skip


def test_numpy_columns_in_give_numpy_columns_out(tmp_path):
  rng = np.random.default_rng(1)
  columns = {"u": rng.beta(2, 5, 200), "v": rng.beta(5, 2, 200)}
  schema = {"columns": [{"name": n, "type": "numeric", "low": 0, "high": 1} for n in "uv"]}
  synthetic, report = lipdp.synthesize(
    columns,
    schema,
    method="private_measure",
    epsilon=1.0,
    delta=1e-5,
    evaluation=False,
    workdir=str(tmp_path / "run"),
    progress=False,
  )
  assert isinstance(synthetic, dict) and list(synthetic) == ["u", "v"]
  assert all(isinstance(v, np.ndarray) and v.shape == (160,) for v in synthetic.values())
  assert report.scope is privacy.Scope.DP_MEASUREMENTS and report.epsilon <= 1.0 + 1e-9
  release_lib.verify_release(str(tmp_path / "run" / "release"))


def test_the_checks_are_the_commands_before_anything_is_written(tmp_path, schema_file):
  table = _people()
  table.loc[3, "score"] = np.nan
  with pytest.raises(ValueError, match=r"rows counted from 0\), line 3: numeric column 'score'"):
    lipdp.synthesize(table, schema_file, epsilon=1.0, delta=1e-5, workdir=str(tmp_path / "a"))
  assert not os.path.exists(tmp_path / "a")
  with pytest.raises(spec_lib.SettingError, match=r"^steps must be at least 1, got 0"):
    lipdp.synthesize(_people(), schema_file, epsilon=1.0, delta=1e-5, steps=0, workdir="x")
  with pytest.raises(spec_lib.SettingError, match=r"total_epsilon is one end-to-end budget"):
    lipdp.synthesize(
      _people(), schema_file, total_epsilon=1.0, delta=1e-5, scope="conditional", workdir="x"
    )
  with pytest.raises(TypeError, match="needs delta="):
    lipdp.synthesize(_people(), schema_file, epsilon=1.0, workdir="x")
  # What it returns is for release: a reference without a guarantee is refused, as the command
  # does not offer it.
  with pytest.raises(spec_lib.SettingError, match="^method 'copy_train' publishes the private"):
    lipdp.synthesize(_people(), schema_file, method="copy_train", delta=1e-5, workdir="x")
  with pytest.raises(spec_lib.SettingError, match="returns a synthetic table for release"):
    lipdp.synthesize(_people(), schema_file, method="prior", scope="none", delta=1e-5, workdir="x")
  assert not os.path.exists("x")


def test_the_tables_digest_names_it_in_the_settings_only(schema_file):
  """The digest is a function of the private records: config.json (private) records it, the
  console and the figure show 'a table in memory'."""
  spec = api.table_spec(_people(), schema_file, epsilon=1.0, delta=1e-5)
  digest = spec.data.dataset
  assert digest.startswith("table:") and len(digest) == len("table:") + 16
  data = runner.load_data(spec.data)
  assert data.name == "a table in memory" and digest[6:] not in repr(data.source_info)
