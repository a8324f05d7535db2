"""Sweeps as data: points, configs per method, resumable results, sharding, figures."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from lipdp import privacy
from lipdp import spec as spec_lib
from lipdp.studies import points as sweep_lib
from lipdp.studies import results
from lipdp.studies import summaries as results_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "experiments", "configs", "default.py")

SWEEPS = [
  f"experiments/sweeps/{name}"
  for name in (
    "knobs.py:screen-quick",
    "knobs.py:mechanism-quick",
    "knobs.py:dpsgd-recipe-mnist",
    "knobs.py:release-design-mnist",
    "knobs.py:decoding-bank",
    "knobs.py:dpsgd-eps1-mnist",
    "knobs.py:pretrain-mnist",
    "knobs.py:pretrain100-mnist",
    "knobs.py:average-digits",
    "knobs.py:schedule-digits",
    "knobs.py:temperature-digits",
    "knobs.py:temperature-mnist",
    "knobs.py:sample-size-mnist",
    "knobs.py:pixels-digits",
    "knobs.py:pixels-mnist",
    "frontier.py:quick",
    "frontier.py:mnist_idx",
    "frontier.py:breast_cancer",
    "frontier.py:mnist_idx_e2e",
    "frontier.py:mnist_idx_e2e_cvae",
    "frontier.py:mnist_idx_e2e_cvae_steps6000",
    "frontier.py:digits_e2e_cvae",
    "frontier.py:bank_e2e",
  )
]


@pytest.mark.parametrize("spec", SWEEPS)
def test_every_point_makes_a_valid_configuration(spec):
  points = sweep_lib.load_sweep(os.path.join(ROOT, spec))
  sweep_lib.check_unique_ids(points)
  assert points
  for p in points:
    spec = sweep_lib.make_spec(p, CONFIGS)  # raises on a bad combination
    assert spec.train.seed == p["seed"] == spec.release.noise_seed
    if spec.privacy is None:  # a reference: no guarantee, no epsilon
      assert p["epsilon"] == math.inf
    elif spec.privacy.scope is privacy.Scope.DP_SGD:
      assert spec.privacy.total_epsilon == p["epsilon"]  # one end-to-end budget
    else:
      assert spec.privacy.epsilon == p["epsilon"]


def test_the_epsilon_1_diagnosis_varies_only_its_knobs_from_the_frontier():
  # knobs.py copies frontier.py's MNIST recipe; the two must not drift apart.
  frontier = sweep_lib.load_sweep(
    os.path.join(ROOT, "experiments/sweeps/frontier.py:mnist_idx_e2e")
  )
  (base,) = [p for p in frontier if p["id"] == "dpsgd-vae/eps=1/seed=0"]
  varied = {"train.num_steps", "train.dp_sampling_rate", "train.learning_rate"}
  diagnosis = sweep_lib.load_sweep(
    os.path.join(ROOT, "experiments/sweeps/knobs.py:dpsgd-eps1-mnist")
  )
  for p in diagnosis:
    assert (p["method"], p["variant"], p["epsilon"]) == (base["method"], base["variant"], 1.0)
    kept = {k: v for k, v in p["overrides"].items() if k not in varied}
    assert kept == {k: v for k, v in base["overrides"].items() if k not in varied}


def test_the_encoder_diagnosis_changes_only_the_encoders_lipschitz_target():
  frontier = sweep_lib.load_sweep(
    os.path.join(ROOT, "experiments/sweeps/frontier.py:mnist_idx_e2e_cvae")
  )
  by_id = {p["id"]: p for p in frontier}
  for p in sweep_lib.load_sweep(os.path.join(ROOT, "experiments/sweeps/knobs.py:encoder-mnist")):
    base = by_id[f"dpsgd-vae/eps={p['epsilon']:g}/seed={p['seed']}"]
    assert (p["method"], p["variant"]) == (base["method"], base["variant"])
    target = p["overrides"]["model.lipschitz_target"]
    assert p["overrides"] == {**base["overrides"], "model.lipschitz_target": target}
    # The L lipdp-e2e's per-record epsilon (half the total) allows at sigma 1 on this domain.
    allowed = privacy.max_lipschitz(1.0, p["epsilon"] / 2, 1e-5, 21.02379604162864)
    assert target == pytest.approx(allowed, rel=1e-3)


def test_the_share_study_changes_only_the_release_share():
  frontier = sweep_lib.load_sweep(
    os.path.join(ROOT, "experiments/sweeps/frontier.py:mnist_idx_e2e_cvae")
  )
  by_id = {p["id"]: p for p in frontier}
  study = sweep_lib.load_sweep(os.path.join(ROOT, "experiments/sweeps/knobs.py:share-eps1-mnist"))
  assert len(study) == 3
  for p in study:
    base = by_id[f"lipdp-e2e/eps=1/seed={p['seed']}"]
    assert (p["method"], p["variant"], p["epsilon"]) == (base["method"], base["variant"], 1.0)
    assert p["overrides"] == {**base["overrides"], "release_share": 0.1}


def test_the_label_conditioned_frontier_changes_only_the_decoders_conditioning():
  def load(name):
    return sweep_lib.load_sweep(os.path.join(ROOT, f"experiments/sweeps/frontier.py:{name}"))

  for name in ("mnist_idx_e2e", "digits_e2e", "bank_e2e", "breast_cancer_e2e"):
    frontier = {p["id"]: p for p in load(name)}
    conditioned = load(f"{name}_cvae")
    methods = {p["method"] for p in conditioned}
    assert methods == {"lipdp-e2e", "lipdp-shuffled", "dpsgd-vae", "vae"}
    for p in conditioned:
      base = frontier[p["id"]]
      assert p["overrides"] == {**base["overrides"], "model.label_conditioned": True}
      assert (p["variant"], p["epsilon"], p["seed"]) == (
        base["variant"],
        base["epsilon"],
        base["seed"],
      )


def test_methods_map_to_scopes():
  def spec(method, epsilon=2.0):
    return sweep_lib.make_spec(sweep_lib.point("s", method, "quick", epsilon, 0), CONFIGS)

  assert spec("lipdp-conditional").privacy.scope is privacy.Scope.CONDITIONAL
  assert spec("lipdp-e2e").privacy.calibration == "per-record"
  assert spec("lipdp-shuffled").privacy.calibration == "shuffled"
  assert spec("dpsgd-vae").method.name == "prior"
  assert spec("dpsgd-vae").privacy.scope is privacy.Scope.DP_SGD
  # The references have no guarantee, said in the spec: no privacy settings at all.
  assert spec("vae", math.inf).method.name == "prior" and spec("vae", math.inf).privacy is None
  assert spec("copy_train", math.inf).privacy is None
  with pytest.raises(ValueError, match="duplicate"):
    sweep_lib.check_unique_ids([sweep_lib.point("s", "vae", "quick", math.inf, 0)] * 2)


def test_results_are_appended_and_completed_points_skipped(tmp_path):
  path = str(tmp_path / "r.jsonl")
  results.append_row(path, {"id": "a", "x": 1.0})
  results.append_row(path, {"id": "b", "error": "boom"})  # failed: runs again
  with open(path, "a") as f:
    f.write('{"id": "c", "x"')  # a line cut by a crash
  assert results.completed_ids(path) == {"a"}
  assert [r["id"] for r in results.read_rows(path)] == ["a", "b"]


def test_rows_with_numpy_values_are_written_as_plain_json(tmp_path):
  np = pytest.importorskip("numpy")
  path = str(tmp_path / "r.jsonl")
  results.append_row(path, {"id": "a", "x": np.float32(0.5), "n": np.int64(3), "v": np.ones(2)})
  assert results.read_rows(path) == [{"id": "a", "x": 0.5, "n": 3, "v": [1.0, 1.0]}]
  with pytest.raises(TypeError, match="not JSON serialisable: object"):
    results.append_row(path, {"id": "b", "x": object()})


def test_a_rows_fields_say_on_which_platform_it_ran():
  """A row reproduces at its code version on the same platform: the device count (the order in
  which a step's gradients are summed) and the libraries' versions are in every row."""
  import jax  # pylint: disable=g-import-not-at-top

  p = sweep_lib.point("s", "lipdp-e2e", "smoke", 1.0, 0, {})
  platform = sweep_lib.point_fields(p)["platform"]
  assert platform["device_count"] == jax.device_count() >= 1
  assert platform["backend"] == jax.default_backend()
  assert platform["jax"] == jax.__version__ and platform["numpy"]
  assert json.loads(json.dumps(platform)) == platform  # the row stays plain JSON


def _load_experiment(file_name):
  """An experiments/ main as a module. Its absl flags, and their validators, join the process's
  global flags: load one main per test process only (another main's parse would fail them)."""
  module_spec = importlib.util.spec_from_file_location(
    f"experiment_{file_name[:-3]}", os.path.join(ROOT, "experiments", file_name)
  )
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def test_shards_partition_the_sweep(tmp_path, capsys):
  spec = os.path.join(ROOT, "experiments/sweeps/knobs.py:screen-quick")
  points = sweep_lib.load_sweep(spec)
  listed = [[p["id"] for p in sweep_lib.shard(points, task, 3)] for task in range(3)]
  ids = [p["id"] for p in points]
  assert sorted(sum(listed, [])) == sorted(ids)
  assert all(len(part) >= len(ids) // 3 for part in listed)
  # The command lists the same shard (its main, in this process: a subprocess would spend
  # seconds importing JAX again).
  command = _load_experiment("sweep.py")
  argv = [
    "sweep.py",
    f"--sweep={spec}",
    f"--results={tmp_path / 'r.jsonl'}",
    "--list",
    "--task_index=1",
    "--num_tasks=3",
  ]
  command.FLAGS(argv)
  try:
    command.main(argv[:1])
  finally:
    command.FLAGS.unparse_flags()
  out = capsys.readouterr().out
  assert [line.strip() for line in out.splitlines() if line.startswith("  ")] == listed[1]
  with pytest.raises(ValueError, match="task_index must be in"):
    sweep_lib.shard(points, 3, 3)


def test_only_selects_points_by_id_pattern():
  points = sweep_lib.load_sweep(os.path.join(ROOT, "experiments/sweeps/frontier.py:quick"))
  picked = sweep_lib.select(points, ["lipdp-e2e/eps=1/*", "vae/*"])
  assert [p["id"] for p in picked] == ["lipdp-e2e/eps=1/seed=0", "vae/eps=inf/seed=0"]
  assert sweep_lib.select(points, []) == points
  with pytest.raises(ValueError, match="match no point id"):
    sweep_lib.select(points, ["lipdp-e2e/*", "lipdp_e2e/*"])  # the typo is named


def test_rows_are_selected_by_equal_and_unequal_conditions():
  rows = [{"method": "a", "target_epsilon": 10.0}, {"method": "b", "target_epsilon": 1.0}, {}]
  assert results_lib.select_rows(rows, ["target_epsilon=10.0"]) == rows[:1]
  assert results_lib.select_rows(rows, ["method!=a"]) == rows[1:]
  assert results_lib.select_rows(rows, ["method!=a", "method=None"]) == rows[2:]
  with pytest.raises(ValueError, match="key=value or key!=value"):
    results_lib.select_rows(rows, ["method"])


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
  chosen = results_lib.table(rows, by_tag=False, metrics=["tstr/logreg"], digits=4)
  assert chosen.splitlines()[0] == "| method | epsilon | seeds | tstr/logreg |"
  assert "| lipdp-e2e | 1 | 2 | 0.5150 ± 0.0071 |" in chosen
  # Two sweeps of the same method, told apart by a suffix.
  other = [{**r, "sweep": "b", "tstr/logreg": 0.1} for r in rows[:4]]
  both = results_lib.with_series([{**r, "sweep": "a"} for r in rows[:4]] + other, ["b=(new)"])
  assert {r["method"] for r in both} == {"lipdp-e2e", "lipdp-e2e (new)"}
  assert "| lipdp-e2e (new) | 1 | 2 | 0.100 ± 0.000 |" in results_lib.table(both, by_tag=False)
  with pytest.raises(ValueError, match="no rows of sweep 'c'"):
    results_lib.with_series(both, ["c=x"])
  with pytest.raises(ValueError, match="SWEEP=SUFFIX"):
    results_lib.with_series(both, ["b"])


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


def _sweep(file_and_name):
  return sweep_lib.load_sweep(os.path.join(ROOT, "experiments/sweeps", file_and_name))


def _frontier_point_of(frontier_name):
  """A function from a study's point to the frontier point it varies (same method, epsilon and
  seed), checking that the data set's variant is the same too."""
  by_id = {p["id"]: p for p in _sweep(f"frontier.py:{frontier_name}")}

  def base_of(p):
    base = by_id[f"{p['method']}/eps={p['epsilon']:g}/seed={p['seed']}"]
    assert (p["variant"], p["epsilon"], p["seed"]) == (
      base["variant"],
      base["epsilon"],
      base["seed"],
    )
    return base

  return base_of


def test_the_size_study_changes_only_the_model_size_from_the_frontier():
  base_of = _frontier_point_of("breast_cancer_e2e_cvae")
  study = _sweep("knobs.py:size-breast-cancer")
  assert len(study) == 54
  size_keys = {
    "model.encoder_hidden",
    "model.decoder_hidden",
    "model.latent_dim",
    "model.style_dim",
    "model.numeric_bins",
  }
  assert all(p["overrides"]["model.numeric_likelihood"] == "binned" for p in study)
  for p in study:
    base = base_of(p)
    kept = {k: v for k, v in p["overrides"].items() if k not in size_keys}
    assert kept == {k: v for k, v in base["overrides"].items() if k not in size_keys}
    assert p["tag"] == "small" or p["method"] != "lipdp-shuffled"
    bins = {"small_bins8": 8, "small_bins32": 32}.get(p["tag"], 0)
    assert p["overrides"]["model.numeric_bins"] == bins


def test_the_averaging_study_adds_only_the_moving_average():
  base_of = _frontier_point_of("mnist_idx_e2e_cvae")
  study = _sweep("knobs.py:average-eps1-mnist")
  assert len(study) == 9 and len({p["id"] for p in study}) == 9
  for p in study:
    assert p["epsilon"] == 1.0
    share = {"release_share": 0.1} if p["tag"].startswith("share0.1") else {}
    expected = {**base_of(p)["overrides"], "train.average_decay": 0.999, **share}
    assert p["overrides"] == expected


def test_the_breast_cancer_release_study_adds_only_the_prior_comparison():
  sizes = {p["id"]: p for p in _sweep("knobs.py:size-breast-cancer")}
  study = _sweep("knobs.py:release-breast-cancer")
  assert len(study) == 12
  for p in study:
    base = sizes[p["id"]]
    assert p["overrides"] == {**base["overrides"], "evaluation.compare_prior": True}
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])


@pytest.mark.parametrize(
  "frontier, study, epsilons, size",
  [
    (
      "bank_e2e_cvae",
      "size-bank",
      (1.0, 10.0),
      {
        "model.encoder_hidden": (64,),
        "model.decoder_hidden": (64,),
        "model.latent_dim": 8,
        "model.style_dim": 8,
        "model.style_hidden": (64,),
      },
    ),
    (
      "mnist_idx_e2e_cvae",
      "size-eps1-mnist",
      (1.0,),
      {
        "model.encoder_hidden": (128, 64),
        "model.decoder_hidden": (64, 128),
        "model.style_hidden": (64,),
      },
    ),
  ],
)
def test_a_size_study_changes_only_the_model_size(frontier, study, epsilons, size):
  base_of = _frontier_point_of(frontier)
  points = _sweep(f"knobs.py:{study}")
  assert len(points) == 2 * 3 * len(epsilons)
  assert {p["epsilon"] for p in points} == set(epsilons)
  for p in points:
    assert p["overrides"] == {**base_of(p)["overrides"], **size}


@pytest.mark.parametrize(
  "study, epsilons, steps",
  [
    ("frontier.py:mnist_idx_e2e_cvae_steps6000", {1.0, 2.0, 5.0, 10.0}, 6000),
    ("knobs.py:steps-mnist", {1.0, 10.0}, 6000),
    ("knobs.py:steps12000-mnist", {10.0}, 12000),
    ("knobs.py:steps12000-shuffled-mnist", {10.0}, 12000),
  ],
)
def test_the_mnist_steps_studies_change_only_the_step_count(study, epsilons, steps):
  base_of = _frontier_point_of("mnist_idx_e2e_cvae")
  points = [p for p in _sweep(study) if p["method"] != "vae"]
  assert {p["epsilon"] for p in points} == epsilons
  for p in points:
    assert base_of(p)["overrides"]["train.num_steps"] == 1500
    assert p["overrides"] == {**base_of(p)["overrides"], "train.num_steps": steps}


@pytest.mark.parametrize(
  "name, learning_rate", [("learning-rate-mnist", 3e-4), ("learning-rate-high-mnist", 3e-3)]
)
def test_the_learning_rate_studies_change_only_adams_learning_rate(name, learning_rate):
  bases = _sweep("knobs.py:steps12000-shuffled-mnist")
  points = _sweep(f"knobs.py:{name}")
  assert len(points) == len(bases) == 3
  for base, p in zip(bases, points):
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])
    assert p["overrides"] == {**base["overrides"], "train.learning_rate": learning_rate}
  assert sweep_lib.make_spec(points[0], CONFIGS).train.learning_rate == learning_rate


@pytest.mark.parametrize(
  "name, change",
  [
    ("steps24000-shuffled-mnist", {"train.num_steps": 24000}),
    ("average-steps12000-mnist", {"train.average_decay": 0.999}),
    ("schedule-steps12000-mnist", {"train.learning_rate_decay": "cosine"}),
  ],
)
def test_the_longer_averaged_and_cosine_studies_change_one_setting_of_the_12000_step_points(
  name, change
):
  bases = _sweep("knobs.py:steps12000-shuffled-mnist")
  points = _sweep(f"knobs.py:{name}")
  assert len(points) == len(bases) == 3
  assert len({p["id"] for p in points} | {b["id"] for b in bases}) == 6
  for p, base in zip(points, bases):
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])
    assert p["overrides"] == {**base["overrides"], **change}
  spec = sweep_lib.make_spec(points[0], CONFIGS)
  assert spec.train.num_steps == change.get("train.num_steps", 12000)
  assert spec.train.average_decay == change.get("train.average_decay", 0.0)
  assert spec.train.learning_rate_decay == change.get("train.learning_rate_decay", "constant")


def test_the_high_temperature_study_decodes_the_12000_step_runs_again():
  bases = {p["id"]: p for p in _sweep("knobs.py:steps12000-shuffled-mnist")}
  points = _sweep("knobs.py:temperature-high-mnist")
  assert sorted(p["overrides"]["temperature"] for p in points) == [1.25] * 3 + [1.5] * 3
  for p in points:
    assert p["decodes"]["sweep"] == "knobs-steps12000-mnist"
    base = bases[p["decodes"]["id"]]
    assert p["overrides"] == {**base["overrides"], "temperature": p["overrides"]["temperature"]}
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])


def test_the_conv_decoder_study_changes_only_the_decoder_of_the_6000_step_frontier():
  base_of = _frontier_point_of("mnist_idx_e2e_cvae_steps6000")
  points = _sweep("knobs.py:conv-decoder-mnist")
  assert {(p["method"], p["epsilon"]) for p in points} == {("lipdp-shuffled", 10.0)}
  assert sorted(p["seed"] for p in points) == [0, 1, 2]
  for p in points:
    assert base_of(p)["overrides"]["model.decoder"] == "mlp"
    assert p["overrides"] == {**base_of(p)["overrides"], "model.decoder": "conv"}
  spec = sweep_lib.make_spec(points[0], CONFIGS)
  assert spec.model.decoder == "conv" and spec.train.num_steps == 6000


def test_the_pretraining_study_adds_only_public_pretraining_to_the_frontier():
  base_of = _frontier_point_of("mnist_idx_e2e_cvae")
  public = {"public_dataset": "digits", "public_options.frame": "mnist"}
  points = _sweep("knobs.py:pretrain-mnist")
  pretrained = [p for p in points if p["method"] != "lipdp-public"]
  assert {(p["method"], p["epsilon"]) for p in pretrained} == {
    (m, e) for m in ("lipdp-e2e", "dpsgd-vae") for e in (1.0, 10.0)
  }
  for p in pretrained:
    assert p["overrides"] == {
      **base_of(p)["overrides"],
      **public,
      "train.public_pretrain_steps": 1000,
    }
  milder = _sweep("knobs.py:pretrain100-mnist")
  assert len(milder) == 12 and {p["method"] for p in milder} == {"lipdp-e2e", "dpsgd-vae"}
  for p in milder:
    assert p["overrides"] == {
      **base_of(p)["overrides"],
      **public,
      "train.public_pretrain_steps": 100,
    }
  # The reference: the same model fit on the public records alone, for as many steps.
  recipe = base_of(pretrained[0])["overrides"]  # a lipdp-e2e point
  references = [p for p in points if p["method"] == "lipdp-public"]
  assert len(references) == 6
  for p in references:
    assert p["overrides"] == {**recipe, **public, "train.num_steps": 1000}
    spec = sweep_lib.make_spec(p, CONFIGS)
    assert spec.scope is privacy.Scope.PUBLIC and not spec.privacy.shuffled_release


def test_the_mnist_steps_probe_is_the_steps_frontiers_seed_0():
  # The probe's points are the frontier's seed-0 lipdp-e2e points, so they reproduce its rows.
  frontier = {p["id"]: p for p in _sweep("frontier.py:mnist_idx_e2e_cvae_steps6000")}
  for p in _sweep("knobs.py:steps-mnist"):
    twin = frontier[f"lipdp-e2e/eps={p['epsilon']:g}/seed=0"]
    assert (p["overrides"], p["variant"], p["method"]) == (
      twin["overrides"],
      twin["variant"],
      twin["method"],
    )


def test_the_digits_averaging_screen_changes_only_the_average_decay():
  base_of = _frontier_point_of("digits_e2e_steps8000")
  points = _sweep("knobs.py:average-digits")
  assert len(points) == 2 * 3 * 3
  assert {p["epsilon"] for p in points} == {10.0}
  assert {p["overrides"]["train.average_decay"] for p in points} == {0.0, 0.999, 0.9995}
  for p in points:
    decay = p["overrides"]["train.average_decay"]
    assert p["overrides"] == {**base_of(p)["overrides"], "train.average_decay": decay}
    assert sweep_lib.make_spec(p, CONFIGS).train.average_decay == decay


def test_breast_cancers_older_sweeps_pin_the_bins_they_were_measured_with():
  """'auto' (the default numeric likelihood) makes breast cancer's columns Gaussian; the rows
  measured before it keep their binned likelihood, and the new sweep changes only that."""
  for name in ("breast_cancer", "breast_cancer_e2e", "breast_cancer_e2e_cvae"):
    points = _sweep(f"frontier.py:{name}")
    assert all(p["overrides"]["model.numeric_likelihood"] == "binned" for p in points), name
  base_of = _frontier_point_of("breast_cancer_e2e")
  auto = _sweep("frontier.py:breast_cancer_e2e_auto")
  assert len(auto) == len(_sweep("frontier.py:breast_cancer_e2e"))
  for p in auto:
    if p["method"] == "vae":
      continue
    assert p["overrides"] == {
      k: v for k, v in base_of(p)["overrides"].items() if k != "model.numeric_likelihood"
    }
    assert sweep_lib.make_spec(p, CONFIGS).model.numeric_likelihood == "auto"


def test_the_digits_schedule_screen_changes_only_the_learning_rate_decay():
  base_of = _frontier_point_of("digits_e2e_steps8000")
  points = _sweep("knobs.py:schedule-digits")
  assert len(points) == 6 and {p["epsilon"] for p in points} == {10.0}
  for p in points:
    assert p["overrides"] == {**base_of(p)["overrides"], "train.learning_rate_decay": "cosine"}
    assert sweep_lib.make_spec(p, CONFIGS).train.learning_rate_decay == "cosine"


def _only_the_draws_changed(points, base_of, draws):
  """Each point is `base_of(point)` (same variant) with train.noise_samples = draws, nothing else."""
  for p in points:
    base = base_of(p)
    assert p["variant"] == base["variant"]
    assert p["overrides"] == {**base["overrides"], "train.noise_samples": draws}
    assert sweep_lib.make_spec(p, CONFIGS).train.noise_samples == draws


def test_the_noise_samples_screens_change_only_the_noise_samples():
  """noise-samples-digits: average-digits' unaveraged points (frontier digits_e2e_steps8000's
  settings); noise-samples-mnist: the 12,000-step lipdp-shuffled and DP-SGD VAE points."""
  base_of = _frontier_point_of("digits_e2e_steps8000")
  digits = _sweep("knobs.py:noise-samples-digits")
  assert len(digits) == 6 and {p["method"] for p in digits} == {"lipdp-e2e", "dpsgd-vae"}
  for p in digits:
    assert p["overrides"] == {**base_of(p)["overrides"], "train.noise_samples": 4}
    assert sweep_lib.make_spec(p, CONFIGS).train.noise_samples == 4
  mnist = _sweep("knobs.py:noise-samples-mnist")
  bases = {
    (p["method"], p["seed"]): p
    for p in _sweep("knobs.py:steps12000-shuffled-mnist") + _sweep("knobs.py:steps12000-mnist")
  }
  assert sorted((p["method"], p["seed"]) for p in mnist) == sorted(
    (m, s) for m in ("lipdp-shuffled", "dpsgd-vae") for s in (0, 1, 2)
  )
  for p in mnist:
    base = bases[(p["method"], p["seed"])]
    assert p["overrides"] == {**base["overrides"], "train.noise_samples": 4}
    assert (p["variant"], p["epsilon"]) == (base["variant"], base["epsilon"]) == ("mnist_idx", 10.0)
    assert sweep_lib.make_spec(p, CONFIGS).train.num_steps == 12000
  eps1 = _sweep("knobs.py:noise-samples-eps1-mnist")
  frontier = {p["id"]: p for p in _sweep("frontier.py:mnist_idx_e2e_cvae")}
  assert len(eps1) == 9 and {p["epsilon"] for p in eps1} == {1.0}
  for p in eps1:
    base = frontier[f"{p['method']}/eps=1/seed={p['seed']}"]
    assert p["overrides"] == {**base["overrides"], "train.noise_samples": 4}
    assert sweep_lib.make_spec(p, CONFIGS).train.num_steps == 1500
  for name, base_sweep, count in (
    ("noise-samples-bank", "frontier.py:bank_e2e_cvae", 9),
    ("noise-samples-encoder-mnist", "knobs.py:encoder-mnist", 3),
  ):
    later = _sweep(f"knobs.py:{name}")
    bases = {(p["method"], p["epsilon"], p["seed"]): p for p in _sweep(base_sweep)}
    assert len(later) == count and {p["epsilon"] for p in later} == {1.0}
    _only_the_draws_changed(later, lambda p: bases[(p["method"], 1.0, p["seed"])], 4)


def test_the_later_noise_samples_studies_change_only_the_noise_samples():
  """Eight draws on digits and MNIST at epsilon 1; four on bank's small model and at epsilon 10."""
  for name, count in (("digits", 6), ("eps1-mnist", 9), ("encoder-mnist", 3)):
    four = {p["id"]: p for p in _sweep(f"knobs.py:noise-samples-{name}")}
    eight = _sweep(f"knobs.py:noise-samples8-{name}")
    assert len(eight) == count
    _only_the_draws_changed(eight, lambda p: four[p["id"].replace("noise8", "noise4")], 8)
  eight = _sweep("knobs.py:noise-samples8-eps1-mnist")
  assert [p["method"] for p in eight[:3]] == ["lipdp-e2e"] * 3
  frontier = {p["id"]: p for p in _sweep("frontier.py:mnist_idx_e2e_cvae")}
  eight = _sweep("knobs.py:noise-samples8-eps10-mnist")
  assert [p["method"] for p in eight[:6]] == ["lipdp-e2e"] * 3 + ["lipdp-shuffled"] * 3
  assert len(eight) == 9 and {p["epsilon"] for p in eight} == {10.0}
  _only_the_draws_changed(eight, lambda p: frontier[f"{p['method']}/eps=10/seed={p['seed']}"], 8)
  for p in eight:
    assert sweep_lib.make_spec(p, CONFIGS).train.num_steps == 1500
  for name, base_sweep, epsilons, count in (
    ("noise-samples-size-bank", "knobs.py:size-bank", {1.0, 10.0}, 12),
    ("noise-samples-eps10-bank", "frontier.py:bank_e2e_cvae", {10.0}, 9),
  ):
    later = _sweep(f"knobs.py:{name}")
    bases = {(p["method"], p["epsilon"], p["seed"]): p for p in _sweep(base_sweep)}
    assert len(later) == count and {p["epsilon"] for p in later} == epsilons
    _only_the_draws_changed(later, lambda p: bases[(p["method"], p["epsilon"], p["seed"])], 4)


def test_the_declared_bins_study_changes_only_the_numeric_likelihood():
  """Their points are the bank points (the frontier's and the small model's, four draws, and
  the small model's with one) at epsilon 1 and 10 with 'declared' bins."""
  bases = {
    (p["method"], p["epsilon"], p["seed"]): p
    for name in ("noise-samples-bank", "noise-samples-eps10-bank")
    for p in _sweep(f"knobs.py:{name}")
  }
  small = {(p["method"], p["epsilon"], p["seed"]): p for p in _sweep("knobs.py:size-bank")}
  for name, count, base_of, draws in (
    ("declared-bins-bank", 18, bases, 4),
    ("declared-bins-size-bank", 12, small, 4),
    ("declared-bins-small-bank", 12, small, 1),
  ):
    points = _sweep(f"knobs.py:{name}")
    assert len(points) == count and {p["epsilon"] for p in points} == {1.0, 10.0}
    assert [p["method"] for p in points[:6]] == ["lipdp-e2e"] * 6
    for p in points:
      base = base_of[(p["method"], p["epsilon"], p["seed"])]
      assert p["variant"] == base["variant"]
      more_draws = {"train.noise_samples": draws} if draws > 1 else {}
      assert p["overrides"] == {
        **base["overrides"],
        **more_draws,
        "model.numeric_likelihood": "declared",
      }
      spec = sweep_lib.make_spec(p, CONFIGS)
      assert spec.model.numeric_likelihood == "declared" and spec.train.noise_samples == draws


def test_the_fixed_point_study_changes_only_the_sum_arithmetic():
  bases = [p for p in _sweep("knobs.py:clip-median-small-bank") if p["method"] == "lipdp-e2e"]
  points = _sweep("knobs.py:fixed-point-small-bank")
  assert len(points) == len(bases) == 6
  for base, p in zip(bases, points):
    assert p["overrides"] == {
      **base["overrides"],
      "train.dp_clipping": "vmap",
      "train.dp_sum": "fixed-point",
      "train.dp_microbatch": 64,  # the vmap path's default microbatch when the rows ran
    }
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])
    spec = sweep_lib.make_spec(p, CONFIGS)
    assert spec.train.dp_sum == "fixed-point" and spec.train.dp_clip_norm == 30
    assert spec.train.dp_microbatch == 64  # the default when the rows ran (3cffead's parent)


@pytest.mark.parametrize(
  "name, base_name",
  [
    ("bounded-float-digits", "knobs.py:average-digits"),
    ("bounded-float-mnist", "knobs.py:steps12000-shuffled-mnist"),
  ],
)
def test_the_bounded_float_studies_change_only_the_sum_arithmetic(name, base_name):
  bases = _sweep(base_name)
  if name == "bounded-float-digits":
    bases = [p for p in bases if p["tag"] == "no_average"]
  points = _sweep(f"knobs.py:{name}")
  assert len(points) == len(bases) > 0
  for base, p in zip(bases, points):
    assert p["overrides"] == {
      **base["overrides"],
      "train.dp_sum": "bounded-float32",
      "train.dp_microbatch": 128,  # the ghost path's default microbatch when the rows ran
    }


def test_study_points_keep_the_float32_sums_their_rows_ran_with():
  # 'auto' (bounded float sums) became the default after the studies; a point without its own
  # arithmetic is pinned to float32 so that it reruns to its row.
  base = _sweep("knobs.py:steps12000-shuffled-mnist")[0]
  assert "train.dp_sum" not in base["overrides"]
  spec = sweep_lib.make_spec(base, CONFIGS)
  assert spec.train.dp_sum == "float32" == spec_lib.dp_sum_arithmetic(spec)
  bounded = _sweep("knobs.py:bounded-float-mnist")[0]
  assert spec_lib.dp_sum_arithmetic(sweep_lib.make_spec(bounded, CONFIGS)) == "bounded-float32"


@pytest.mark.parametrize(
  "name, base_names",
  [
    ("adaptive-clip-small-bank", ["knobs.py:declared-bins-small-bank"]),
    ("adaptive-clip-mnist", ["knobs.py:steps12000-shuffled-mnist", "knobs.py:steps12000-mnist"]),
    ("adaptive-clip-digits", ["frontier.py:digits_e2e_steps8000"]),
  ],
)
def test_the_adaptive_clipping_studies_change_only_the_clip_quantile(name, base_names):
  bases = [p for base in base_names for p in _sweep(base)]
  order = {
    "adaptive-clip-mnist": ("lipdp-shuffled", "dpsgd-vae", "lipdp-e2e"),
    "adaptive-clip-digits": ("lipdp-e2e", "dpsgd-vae"),
  }.get(name)
  if order:
    bases = sorted(
      (p for p in bases if p["method"] in order), key=lambda p: order.index(p["method"])
    )
  points = _sweep(f"knobs.py:{name}")
  assert len(points) == len(bases) and len(points) in (9, 12)
  for base, p in zip(bases, points):
    assert p["overrides"] == {**base["overrides"], "train.dp_clip_quantile": 0.5}
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])
  spec = sweep_lib.make_spec(points[0], CONFIGS)
  assert spec.train.dp_clip_quantile == 0.5 and spec.train.dp_clip_norm == 1.0


@pytest.mark.parametrize(
  "name, base_name, methods, clips",
  [
    ("clip-bank", "declared-bins-bank", {"lipdp-e2e"}, [10.0, 3.0, 30.0]),
    ("clip-small-bank", "declared-bins-small-bank", {"lipdp-e2e", "dpsgd-vae"}, [60.0, 200.0]),
    ("clip-median-small-bank", "declared-bins-small-bank", {"lipdp-e2e", "dpsgd-vae"}, [30.0]),
  ],
)
def test_the_clip_studies_change_only_the_clip_norm(name, base_name, methods, clips):
  bases = {
    (p["method"], p["epsilon"], p["seed"]): p
    for p in _sweep(f"knobs.py:{base_name}")
    if p["method"] in methods
  }
  points = _sweep(f"knobs.py:{name}")
  assert len(points) == len(bases) * len(clips) and {p["method"] for p in points} == methods
  per_clip = len(bases)
  assert [p["overrides"]["train.dp_clip_norm"] for p in points[::per_clip]] == clips
  for p in points:
    base = bases[(p["method"], p["epsilon"], p["seed"])]
    clip = p["overrides"]["train.dp_clip_norm"]
    assert p["overrides"] == {**base["overrides"], "train.dp_clip_norm": clip}
    assert sweep_lib.make_spec(p, CONFIGS).train.dp_clip_norm == clip


@pytest.mark.slow  # about 35 s of training and releasing; study tooling, not the library
def test_a_point_decoding_another_again_reuses_its_weights_and_its_release(tmp_path):
  """`decoded_again`: the base's weights (training is found finished, not redone) and, with the
  base's noise seed, its released latents; only what acts after training may change."""
  base = sweep_lib.point(
    "s", "lipdp-conditional", "smoke", 4.0, 0, {"train.num_steps": 5, "evaluation.enabled": False}
  )
  same = sweep_lib.decoded_again(base, "t", "tau1", {})
  cold = sweep_lib.decoded_again(base, "t", "tau0.5", {"temperature": 0.5})
  assert cold["overrides"] == {**base["overrides"], "temperature": 0.5}

  def run(p):
    return sweep_lib.run_point(p, os.path.join(tmp_path, p["sweep"]), CONFIGS)

  def folder_of(p):
    return sweep_lib.point_workdir(str(tmp_path), p["sweep"], p["id"])

  def released(p):
    with np.load(os.path.join(folder_of(p), "release", "synthetic.npz")) as f:
      return f["records"]

  with pytest.raises(ValueError, match="run that point first"):
    run(same)
  row = run(base)
  again, colder = run(same), run(cold)
  assert again["decodes"] == "s:" + base["id"] and again["epsilon"] == row["epsilon"]
  assert colder["epsilon"] == row["epsilon"]
  for p in (same, cold):  # training found finished: its log is the base's, nothing appended
    with (
      open(os.path.join(folder_of(p), "metrics.jsonl")) as f,
      open(os.path.join(folder_of(base), "metrics.jsonl")) as g,
    ):
      assert f.read() == g.read()
  np.testing.assert_array_equal(released(same), released(base))
  assert not np.array_equal(released(cold), released(base))
  with pytest.raises(ValueError, match="only what acts after training"):
    sweep_lib.decoded_again(base, "t", "x", {"model.latent_dim": 8})
  with pytest.raises(ValueError, match="keeps its noise seed"):
    sweep_lib.decoded_again(base, "t", "x", {"noise_seed": 3})
  with pytest.raises(ValueError, match=r"only what acts after training.*\['k'\]"):
    sweep_lib.decoded_again(base, "t", "x", {"k": 4})  # k sets lipdp's release noise
  prior = {**base, "method": "dpsgd-vae"}  # k counts the draws from the prior
  assert sweep_lib.decoded_again(prior, "t", "k4", {"k": 4})["overrides"]["k"] == 4
  with pytest.raises(ValueError, match="another sweep or tag"):
    sweep_lib.decoded_again(base, base["sweep"], base["tag"], {"temperature": 0.5})
  unfinished = sweep_lib.decoded_again(
    {**base, "overrides": {**base["overrides"], "train.num_steps": 10}}, "t", "more", {}
  )
  with pytest.raises(ValueError, match="no finished training"):
    run(unfinished)  # the base trained 5 steps: a copy must not train further


def test_the_mnist_temperature_study_decodes_the_trained_mnist_points_again():
  """Every point of the steps-6,000 frontier (lipdp-e2e's seed 0 at epsilon 1 and 10 from the
  probe, the same configuration) at the carried tau, the 12,000-step runs at it and at 1; only
  the temperature differs from each base."""
  knobs = "experiments/sweeps/knobs.py"
  study = sweep_lib.load_sweep(os.path.join(ROOT, f"{knobs}:temperature-mnist"))
  frontier = sweep_lib.load_sweep(
    os.path.join(ROOT, "experiments/sweeps/frontier.py:mnist_idx_e2e_cvae_steps6000")
  )
  probe = sweep_lib.load_sweep(os.path.join(ROOT, f"{knobs}:steps-mnist"))
  longer = sweep_lib.load_sweep(os.path.join(ROOT, f"{knobs}:steps12000-mnist"))
  longer += sweep_lib.load_sweep(os.path.join(ROOT, f"{knobs}:steps12000-shuffled-mnist"))
  replaced = {("lipdp-e2e", p["epsilon"], 0) for p in probe}
  bases6000 = [p for p in frontier if (p["method"], p["epsilon"], p["seed"]) not in replaced]
  bases = {(p["sweep"], p["id"]): p for p in bases6000 + probe + longer}
  decoded = {}
  for p in study:
    base = bases[(p["decodes"]["sweep"], p["decodes"]["id"])]
    tau = p["overrides"].pop("temperature")
    assert p["overrides"] == base["overrides"] and p["seed"] == base["seed"]
    decoded.setdefault(tau, set()).add((base["sweep"], base["id"]))
  assert decoded[0.5] == set(bases) and len(bases) == 39 + 9
  assert decoded[1.0] == {(p["sweep"], p["id"]) for p in longer}


def test_release_information_table_pairs_each_release_with_its_prior_samples():
  def row(seed, tstr, prior_tstr, **extra):
    return {
      "method": "lipdp-shuffled",
      "tag": "t",
      "target_epsilon": 10.0,
      "seed": seed,
      "per_record_epsilon": 5.0,
      "delta": 1e-5,
      "release_sigma": 1.0,
      "tstr/logreg": tstr,
      "prior_sampling/tstr/logreg": prior_tstr,
      **extra,
    }

  rows = [
    row(
      0, 0.80, 0.79, **{"privacy/dcr_train_q50": 1.0, "prior_sampling/privacy/dcr_train_q50": 1.5}
    ),
    row(1, 0.82, 0.80),  # no distances: the paired DCR comes from seed 0 alone
    {"method": "dpsgd-vae", "target_epsilon": 10.0, "per_record_epsilon": 0.0, "delta": 1e-5},
    {**row(2, 0.0, 0.0), "error": "refused"},
  ]
  lines = results_lib.release_information_table(rows).splitlines()
  assert len(lines) == 3  # the header, its rule and one group: no prior sampling, no failure
  cells = [c.strip() for c in lines[2].strip("|").split("|")]
  bound = privacy.information.per_record_information_bound(5.0, 1e-5)
  assert cells[:6] == ["lipdp-shuffled", "t", "10", "5", f"{bound:.3g}", "0.56"]
  assert cells[6:9] == ["0.810 ± 0.014", "0.795 ± 0.007", "0.015 ± 0.007"]
  assert cells[9:] == ["1.000", "1.500", "-0.500", "2"]


def test_encoder_information_table_states_the_share_of_the_bound():
  def measured(seed, information):
    return {
      "method": "lipdp-e2e",
      "tag": "t",
      "epsilon": 10.0,
      "seed": seed,
      "bound_nats": 0.5,
      "sensitivity": 2.0,
      "largest_distance": 0.5,
      "information_nats": information,
    }

  lines = results_lib.encoder_information_table([measured(0, 0.01), measured(1, 0.03)]).splitlines()
  cells = [c.strip() for c in lines[2].strip("|").split("|")]
  assert cells == [
    "lipdp-e2e",
    "t",
    "10",
    "0.5",
    "0.25 ± 0.00",
    "0.0200 ± 0.0141",
    "0.040 ± 0.028",
    "2",
  ]


def test_a_sweep_keeps_compiled_programs_under_its_root(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import compilation_cache  # pylint: disable=g-import-not-at-top

  jax.jit(lambda x: x - 2.0)(np.arange(3.0))  # the process's cache is open, as in the suite

  names = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
  )
  before = {name: getattr(jax.config, name) for name in names}
  try:
    directory = sweep_lib.use_compilation_cache(str(tmp_path / "sweeps"))
    assert directory == str(tmp_path / "sweeps" / "xla_cache") and os.path.isdir(directory)
    assert jax.config.jax_compilation_cache_dir == directory
    # Every program is kept, however quick its compilation: a point's are mostly small.
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    jax.jit(lambda x: x * 3.0 + 1.0)(np.arange(3.0))
    assert os.listdir(directory)  # the program was written
  finally:
    for name, value in before.items():
      jax.config.update(name, value)
    compilation_cache.reset_cache()  # back to the test process's own cache (conftest)


def test_information_figure_draws_the_bound_and_the_measures(tmp_path):
  measured = [
    {"method": "lipdp-conditional", "tag": "t", "per_record_epsilon": e, "information_nats": i}
    for e, i in ((1.0, 0.002), (1.0, 0.003), (16.0, 0.06))
  ]
  path = tmp_path / "figure.png"
  results_lib.information_figure(measured, str(path), "title")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_per_label_clipping_screen_adds_only_the_label_groups_to_adaptive_clipping():
  bases = _sweep("knobs.py:adaptive-clip-digits")
  points = _sweep("knobs.py:group-clip-digits")
  assert len(points) == len(bases) == 12
  for base, p in zip(bases, points):
    assert p["overrides"] == {**base["overrides"], "train.dp_clip_groups": "label"}
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])
    assert p["tag"] == base["tag"] + "_label"
  spec = sweep_lib.make_spec(points[0], CONFIGS)
  assert (spec.train.dp_clip_quantile, spec.train.dp_clip_groups) == (0.5, "label")


def test_the_per_group_clipping_study_adds_only_the_groups_to_adaptive_clipping():
  bases = _sweep("knobs.py:adaptive-clip-small-bank")
  points = _sweep("knobs.py:group-clip-small-bank")
  assert len(points) == len(bases) == 12
  for base, p in zip(bases, points):
    assert p["overrides"] == {**base["overrides"], "train.dp_clip_groups": "poutcome"}
    assert (p["method"], p["epsilon"], p["seed"]) == (base["method"], base["epsilon"], base["seed"])
  spec = sweep_lib.make_spec(points[0], CONFIGS)
  assert (spec.train.dp_clip_quantile, spec.train.dp_clip_groups) == (0.5, "poutcome")
