r"""Runs the baselines of lipdp.baselines on the tables, appending one JSON line per run.

Each run is a spec of the one run (`lipdp.runner.run`, as the main job's
`--config.method=mst|aim|...`): it fits one baseline on the training part of a data set (the
train/holdout split of `lipdp.data.load_dataset`, split seed 0) at one (epsilon, delta) and
seed, writes its release into a work directory under --workdir, evaluates the synthetic records
with `lipdp.evaluation.evaluate_release` against the holdout, and appends a line with the
method, data set, target and reported epsilon, delta, seed, the report's headline and scope, the
mechanism's choices and timings, and every metric key of evaluate_release. The non-private
reference copy_train runs in scope 'none' (no release, no report). Runs already in the results
file are skipped, so a killed run resumes.

  python experiments/baselines.py --results=results/baselines.jsonl      # everything
  python experiments/baselines.py --datasets=breast_cancer --methods=mst --seeds=0 \
      --results=/tmp/b.jsonl                                              # one point
  python experiments/baselines.py --methods=dp_merf --results=/tmp/m.jsonl  # DP-MERF (defaults)

bank-marketing is read from --data_dir or $LIPDP_DATA_DIR (a folder holding
bank-marketing/bank-full.csv.gz) through lipdp's CSV loader and the declared schema
experiments/schemas/bank_marketing.json (whose "bins" MST and AIM use); nothing is downloaded.
The numbers are computed on the private holdout without DP: a study, not a release
(docs/evaluation.md). Seeds make the noise reproducible, and every report says so.
"""

import os
import shutil
import traceback

from absl import app
from absl import flags
import numpy as np
from scipy import optimize
from scipy.spatial import distance

from lipdp import baselines
from lipdp import data as data_lib
from lipdp import runner
from lipdp import spec as spec_lib
from lipdp.baselines import private_measure as pm
from lipdp.studies import results

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["bank_marketing", "breast_cancer"], "Data sets.")
flags.DEFINE_list(
  "methods", ["mst", "aim", "copy_train"], "Baselines (keys of lipdp.baselines.BASELINES)."
)
flags.DEFINE_list("epsilons", ["1", "10"], "Target epsilons of the private baselines.")
flags.DEFINE_float("delta", 1e-5, "Target delta.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (noise and evaluation).")
flags.DEFINE_string("results", None, "JSONL file the runs are appended to.")
flags.DEFINE_string(
  "workdir",
  "runs/baselines",
  "Root of the runs' work directories (private: releases, evaluations).",
)
flags.DEFINE_string("data_dir", None, "Folder holding bank-marketing/ (default $LIPDP_DATA_DIR).")
flags.DEFINE_string(
  "bank_schema",
  os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas", "bank_marketing.json"),
  "The declared bank-marketing schema (with bins).",
)
flags.DEFINE_integer(
  "breast_cancer_bins", 8, "Equal-width bins over each declared breast-cancer bound (MST, AIM)."
)
flags.DEFINE_integer(
  "aim_rounds_per_attribute",
  2,
  "AIM's planned rounds T per attribute (the paper's default is 16; every "
  "round re-estimates the model, and mbi compiles each new model structure, "
  "10-15 s per round on two shared CPU cores, so the documented runs use 2).",
)
flags.DEFINE_integer("aim_round_iters", 100, "AIM's mirror-descent iterations per round.")
flags.DEFINE_integer("final_iters", 1000, "Mirror-descent iterations of the final MST/AIM model.")
flags.DEFINE_integer("split_seed", 0, "Seed of the train/holdout split.")
flags.DEFINE_bool("summarize", False, "Only print the Markdown tables of the results file.")
flags.DEFINE_bool(
  "private_measure_example",
  False,
  "Only print the private measure's W1 table on its synthetic example.",
)

BANK_FILE = os.path.join("bank-marketing", "bank-full.csv.gz")
# What cannot run on these tables, and why (written into docs/baselines.md as well).
NOT_APPLICABLE = {
  "private_measure": "the private measure is for 2-4 numeric columns; these tables have 17 "
  "mixed and 31 columns (see docs/baselines.md for its own example)",
}


def dataset_config(name: str):
  """The config of a data set (its loading and MST's and AIM's declared bins)."""
  config = spec_lib.base_config()
  config.split_seed = FLAGS.split_seed
  if name == "bank_marketing":
    root = FLAGS.data_dir or os.environ.get(data_lib.DATA_DIR_ENV)
    if not root:
      raise app.UsageError(
        f"bank_marketing needs --data_dir or ${data_lib.DATA_DIR_ENV} (a "
        f"folder holding {BANK_FILE})"
      )
    config.dataset = "csv:" + os.path.join(root, BANK_FILE)
    config.schema = FLAGS.bank_schema  # its "bins" are MST's and AIM's
    return config
  if name == "breast_cancer":
    config.dataset = "breast_cancer"
    config.baseline_bins = FLAGS.breast_cancer_bins  # equal-width over each declared bound
    return config
  raise app.UsageError(f"unknown data set {name!r}")


def done_keys(path: str) -> set:
  keys = set()
  if os.path.exists(path):
    for row in results.read_rows(path):
      if row.get("status") == "ok":
        keys.add((row["method"], row["dataset"], row["target_epsilon"], row["seed"]))
  return keys


def options(method: str, num_columns: int) -> dict:
  """A method's options beyond the common ones (its report's notes carry the data set's
  caveats, as every run's do)."""
  if method == "mst":
    return {"final_iters": FLAGS.final_iters}
  if method == "aim":
    return {
      "rounds": FLAGS.aim_rounds_per_attribute * num_columns,
      "round_iters": FLAGS.aim_round_iters,
      "final_iters": FLAGS.final_iters,
    }
  return {}


def run(method, dataset, config, num_columns, epsilon, seed) -> dict:
  """One baseline run through `lipdp.runner.run`, as a row of the results file."""
  private = method in baselines.PRIVATE_BASELINES
  config.method = method
  config.scope = "dp-measurements" if private else spec_lib.NO_GUARANTEE
  if private:
    config.epsilon, config.delta = epsilon, FLAGS.delta
  config.noise_seed = seed  # a study: reproducible noise, and the report says so
  config.evaluation.seed = seed
  config.evaluation.fast = True
  opts = options(method, num_columns)
  config.method_options = opts
  workdir = os.path.join(FLAGS.workdir, f"{dataset}_{method}_eps={epsilon}_seed={seed}")
  shutil.rmtree(workdir, ignore_errors=True)  # a run always starts from scratch
  result = runner.run(spec_lib.from_config(config), workdir)
  row = {
    "status": "ok",
    "method": method,
    "dataset": dataset,
    "target_epsilon": epsilon if private else None,
    "delta": FLAGS.delta if private else None,
    "seed": seed,
    "private": private,
    "num_train": len(result.data.train),
    "num_holdout": len(result.data.holdout),
    "num_synthetic": len(result.synthetic_records),
    "options": opts,
    "timings": {"fit_s": result.timings["fit_s"], "eval_s": result.timings["evaluation_s"]},
    "code_version": results.code_version(),  # rerunning at this commit reproduces the row
    "platform": results.platform(),  # on the same platform (results.platform says why)
  }
  if result.report is not None:
    report = result.report
    row.update(
      epsilon=report.epsilon,
      headline=report.headline,
      scope=report.scope.value,
      zcdp_rho=report.components.get("zcdp_rho"),
      noise_seeded=report.noise_seeded,
    )
  else:
    row.update(epsilon=None, headline="no privacy guarantee (non-private reference)", scope=None)
  row["mechanism"] = {
    k: v
    for k, v in result.info.items()
    if k
    in (
      "tree",
      "selected",
      "rounds",
      "annealed",
      "planned_rounds",
      "compressed_attributes",
      "sigma_oneway",
      "sigma_pairs",
      "sigma",
      "bandwidth",
      "num_features",
      "feature_seed",
    )
  }
  # The report's fields are in the row under their own names (above).
  row.update({k: v for k, v in result.metrics.items() if k not in runner.REPORT_METRICS})
  return row


# The columns of the summary tables: (metric key, header).
SUMMARY = (
  ("tstr/logreg", "TSTR logreg"),
  ("tstr/logreg_f1", "logreg F1"),
  ("tstr/hgb", "TSTR HGB"),
  ("tstr/hgb_f1", "HGB F1"),
  ("fidelity/tv_mean", "TV mean"),
  ("fidelity/wasserstein_mean", "W1 mean"),
  ("fidelity/association_diff_mean", "assoc. diff"),
  ("privacy/mia_distance_auc", "MIA dist. AUC"),
  ("privacy/mia_density_auc", "MIA dens. AUC"),
  ("privacy/dcr_closer_to_train", "DCR closer"),
)


def summarize(path: str) -> str:
  """Markdown tables (mean +- standard deviation over seeds) per data set."""
  rows = [row for row in results.read_rows(path) if row.get("status") == "ok"]
  out = []
  for dataset in sorted({r["dataset"] for r in rows}):
    mine = [r for r in rows if r["dataset"] == dataset]
    first = mine[0]
    out.append(f"### {dataset} ({first['num_train']} train / {first['num_holdout']} holdout)\n")
    out.append(
      "| method | target eps | reported eps (delta) | seeds | "
      + " | ".join(h for _, h in SUMMARY)
      + " | fit s |"
    )
    out.append("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in SUMMARY) + " | ---: |")
    trtr = {
      m: np.mean([r[f"trtr/{m}"] for r in mine]) for m in ("logreg", "hgb", "logreg_f1", "hgb_f1")
    }
    groups = {}
    for r in mine:
      groups.setdefault((r["method"], r["target_epsilon"]), []).append(r)
    order = {"copy_train": 9}
    for (method, eps), group in sorted(
      groups.items(), key=lambda kv: (order.get(kv[0][0], 0), kv[0][0], kv[0][1] or 0)
    ):
      cells = []
      for key, _ in SUMMARY:
        values = np.array([g[key] for g in group], dtype=float)
        cells.append(f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}")
      reported = group[0]["epsilon"]
      rep = (
        "none"
        if reported is None
        else f"{max(g['epsilon'] for g in group):.4g} ({group[0]['delta']:g})"
      )
      fit_s = np.mean([g["timings"]["fit_s"] for g in group])
      out.append(
        f"| {method} | {'-' if eps is None else f'{eps:g}'} | {rep} | {len(group)} | "
        + " | ".join(cells)
        + f" | {fit_s:.0f} |"
      )
    out.append(
      f"\nTRTR (real training data): logreg {trtr['logreg']:.3f} (F1 "
      f"{trtr['logreg_f1']:.3f}), HGB {trtr['hgb']:.3f} (F1 {trtr['hgb_f1']:.3f}); "
      f"majority class {mine[0]['utility/majority_baseline']:.3f}.\n"
    )
  return "\n".join(out)


def private_measure_example() -> str:
  """W1 of the private measure on two Gaussian blobs in [0, 1]^d, against its bounds.

  Exact W1 (Euclidean) by the Hungarian method (n synthetic points for n records), mean and
  largest over 3 seeds; (T) the pathwise bound (largest over the seeds), (B) the expected one
  (lipdp/baselines/private_measure.py). The blobs: centres 0.35 and 0.7 on the diagonal,
  standard deviation 0.08, clipped to the cube, generated with seed n.
  """
  out = [
    "| d | n | epsilon | depth | W1 mean (max) | (T) pathwise, max | (B) expected | "
    "W1 of uniform points |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ]
  for dim in (2, 3):
    domain = data_lib.TabularDomain([data_lib.NumericColumn(f"x{i}", 0.0, 1.0) for i in range(dim)])
    for n in (1000, 2000):
      rng = np.random.default_rng(n)
      centre = np.where(rng.random(n)[:, None] < 0.5, 0.35, 0.7)
      x = domain.encode(np.clip(centre + rng.normal(0, 0.08, (n, dim)), 0, 1)).astype(float)

      def w1(y):
        cost = distance.cdist(x, np.asarray(y, float))
        r, c = optimize.linear_sum_assignment(cost)
        return cost[r, c].mean()

      uniform = w1(np.random.default_rng(1).random((n, dim)))
      for eps in (1.0, 10.0):
        w, t = [], []
        for seed in range(3):
          rel = pm.fit(x, domain, epsilon=eps, delta=1e-5, seed=seed)
          w.append(w1(rel.records))
          t.append(pm.pathwise_bound(x, rel.info["released_counts"]))
        out.append(
          f"| {dim} | {n} | {eps:g} | {rel.info['depth']} | {np.mean(w):.4f} "
          f"({max(w):.4f}) | {max(t):.3f} | {rel.info['expected_w1_bound']:.3f} | "
          f"{uniform:.4f} |"
        )
  return "\n".join(out)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.private_measure_example:
    print(private_measure_example())
    return 0
  if not FLAGS.results:
    raise app.UsageError("--results is required")
  if FLAGS.summarize:
    print(summarize(FLAGS.results))
    return 0
  for method in FLAGS.methods:
    if method not in baselines.BASELINES:
      raise app.UsageError(f"unknown method {method!r}; known: {sorted(baselines.BASELINES)}")
    if method in NOT_APPLICABLE:
      raise app.UsageError(f"{method}: {NOT_APPLICABLE[method]}")
  epsilons = [float(e) for e in FLAGS.epsilons]
  seeds = [int(s) for s in FLAGS.seeds]
  done = done_keys(FLAGS.results)
  for dataset in FLAGS.datasets:
    base = dataset_config(dataset)
    num_columns = len(runner.load_data(spec_lib.from_config(base).data).domain.columns)
    for method in FLAGS.methods:
      private = method in baselines.PRIVATE_BASELINES
      for epsilon in epsilons if private else [None]:
        for seed in seeds:
          if (method, dataset, epsilon, seed) in done:
            continue
          print(f"{dataset} {method} epsilon={epsilon} seed={seed} ...", flush=True)
          try:
            row = run(method, dataset, dataset_config(dataset), num_columns, epsilon, seed)
          except Exception as e:  # pylint: disable=broad-except
            traceback.print_exc()
            row = {
              "status": "failed",
              "method": method,
              "dataset": dataset,
              "target_epsilon": epsilon,
              "seed": seed,
              "error": repr(e),
            }
          results.append_row(FLAGS.results, row)
          if row["status"] == "ok":
            print(
              f"  epsilon {row['epsilon']}, TSTR logreg {row.get('tstr/logreg'):.4f}, "
              f"hgb {row.get('tstr/hgb'):.4f}, fit {row['timings']['fit_s']:.0f} s",
              flush=True,
            )
  return 0


if __name__ == "__main__":
  app.run(main)
