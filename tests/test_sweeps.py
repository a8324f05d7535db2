"""Sweeps as data: points, configs per method, resumable results, sharding, figures."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import results_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
import sweep_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

from lipdp import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position

SWEEPS = [
  f"experiments/sweeps/{name}"
  for name in (
    "knobs.py:screen-quick",
    "knobs.py:mechanism-quick",
    "frontier.py:quick",
    "frontier.py:mnist_idx",
    "frontier.py:breast_cancer",
  )
]


@pytest.mark.parametrize("spec", SWEEPS)
def test_every_point_makes_a_valid_configuration(spec):
  points = sweep_lib.load_sweep(os.path.join(ROOT, spec))
  sweep_lib.check_unique_ids(points)
  assert points
  for p in points:
    if p["method"] in sweep_lib.LIPDP_METHODS:
      config = sweep_lib.make_config(p)
      pipeline.check_config(config)  # raises on a bad combination
      assert config.train.seed == p["seed"] == config.noise_seed
      if config.scope == "dp-sgd":
        assert config.total_epsilon == p["epsilon"]  # one end-to-end budget
      else:
        assert config.epsilon == p["epsilon"]


def test_methods_map_to_scopes():
  def cfg(method):
    return sweep_lib.make_config(sweep_lib.point("s", method, "quick", 2.0, 0))

  assert cfg("lipdp-conditional").scope == "conditional"
  assert cfg("lipdp-e2e").calibration == "per-record"
  assert cfg("lipdp-shuffled").calibration == "shuffled"
  assert cfg("dpsgd-vae").method == "prior" and cfg("dpsgd-vae").scope == "dp-sgd"
  with pytest.raises(ValueError, match="duplicate"):
    sweep_lib.check_unique_ids([sweep_lib.point("s", "vae", "quick", math.inf, 0)] * 2)


def test_results_are_appended_and_completed_points_skipped(tmp_path):
  path = str(tmp_path / "r.jsonl")
  sweep_lib.append_row(path, {"id": "a", "x": 1.0})
  sweep_lib.append_row(path, {"id": "b", "error": "boom"})  # failed: runs again
  with open(path, "a") as f:
    f.write('{"id": "c", "x"')  # a line cut by a crash
  assert sweep_lib.completed_ids(path) == {"a"}
  assert [r["id"] for r in sweep_lib.read_rows(path)] == ["a", "b"]


def test_rows_with_numpy_values_are_written_as_plain_json(tmp_path):
  np = pytest.importorskip("numpy")
  path = str(tmp_path / "r.jsonl")
  sweep_lib.append_row(path, {"id": "a", "x": np.float32(0.5), "n": np.int64(3), "v": np.ones(2)})
  assert sweep_lib.read_rows(path) == [{"id": "a", "x": 0.5, "n": 3, "v": [1.0, 1.0]}]
  with pytest.raises(TypeError, match="not JSON serialisable: object"):
    sweep_lib.append_row(path, {"id": "b", "x": object()})


def test_shards_partition_the_sweep(tmp_path):
  spec = os.path.join(ROOT, "experiments/sweeps/knobs.py:screen-quick")
  listed = []
  for task in range(3):
    out = subprocess.run(
      [
        sys.executable,
        os.path.join(ROOT, "experiments/sweep.py"),
        f"--sweep={spec}",
        f"--results={tmp_path / 'r.jsonl'}",
        "--list",
        f"--task_index={task}",
        "--num_tasks=3",
      ],
      check=True,
      capture_output=True,
      text=True,
    ).stdout
    listed.append([l.strip() for l in out.splitlines() if l.startswith("  ")])
  ids = [p["id"] for p in sweep_lib.load_sweep(spec)]
  assert sorted(sum(listed, [])) == sorted(ids)
  assert all(len(part) >= len(ids) // 3 for part in listed)


def test_only_selects_points_by_id_pattern():
  points = sweep_lib.load_sweep(os.path.join(ROOT, "experiments/sweeps/frontier.py:quick"))
  picked = sweep_lib.select(points, ["lipdp-e2e/eps=1/*", "vae/*"])
  assert [p["id"] for p in picked] == ["lipdp-e2e/eps=1/seed=0", "vae/eps=inf/seed=0"]
  assert sweep_lib.select(points, []) == points
  with pytest.raises(ValueError, match="match no point id"):
    sweep_lib.select(points, ["lipdp-e2e/*", "lipdp_e2e/*"])  # the typo is named


def test_figures_and_tables_from_rows(tmp_path):
  rows = []
  for method in ("lipdp-e2e", "dpsgd-vae"):
    for eps in (1.0, 10.0):
      for seed in range(2):
        rows.append(
          {
            "id": f"{method}/{eps}/{seed}",
            "method": method,
            "target_epsilon": eps,
            "tag": "base",
            "seed": seed,
            "tstr/logreg": 0.5 + 0.01 * eps + 0.01 * seed,
            "trtr/logreg": 0.9,
            "privacy/mia_distance_auc": 0.5,
          }
        )
  rows.append(
    {"id": "vae", "method": "vae", "target_epsilon": None, "tag": "", "seed": 0, "tstr/logreg": 0.8}
  )
  rows.append({"id": "x", "method": "vae", "error": "failed"})
  results = tmp_path / "r.jsonl"
  results.write_text("".join(json.dumps(r) + "\n" for r in rows))
  results_lib.frontier(rows, "tstr/logreg", str(tmp_path / "f.png"), "t")
  results_lib.knobs(rows[:-2], "tstr/logreg", str(tmp_path / "k.png"), "t")
  assert (tmp_path / "f.png").stat().st_size > 1000
  text = results_lib.table(rows, by_tag=False)
  assert "| lipdp-e2e | 1 | 2 | 0.515 ± 0.007 |" in text
  assert "| vae | inf | 1 | 0.800 |" in text


def test_heteroscedastic_cost_table_grows_with_the_allowed_sigma_change():
  out = subprocess.run(
    [sys.executable, os.path.join(ROOT, "experiments/heteroscedastic_cost.py")],
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 0")]
  assert len(rows) == 6
  at_zero = [float(r[2]) for r in rows]  # epsilon at L = 0, log_sigma_lipschitz decreasing
  assert at_zero == sorted(at_zero, reverse=True) and at_zero[0] > 48.7  # the refused default
  for r in rows:  # a larger mean Lipschitz bound only adds to it
    assert float(r[2]) < float(r[3]) < float(r[4])
