r"""Runs the baselines of lipdp.baselines on the tables, appending one JSON line per run.

Each run fits one baseline on the training part of a data set (the train/holdout split of
`lipdp.data.load_dataset`, split seed 0) at one (epsilon, delta) and seed, evaluates the
synthetic records with `lipdp.evaluation.evaluate_release` against the holdout, and appends a
line with the method, data set, target and reported epsilon, delta, seed, the report's headline
and scope, the mechanism's choices and timings, and every metric key of evaluate_release.
Runs already in the results file are skipped, so a killed run resumes.

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

import json
import os
import time
import traceback

from absl import app
from absl import flags

from lipdp import baselines
from lipdp import data as data_lib
from lipdp import evaluation

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["bank_marketing", "breast_cancer"], "Data sets.")
flags.DEFINE_list(
  "methods", ["mst", "aim", "copy_train"], "Baselines (keys of lipdp.baselines.BASELINES)."
)
flags.DEFINE_list("epsilons", ["1", "10"], "Target epsilons of the private baselines.")
flags.DEFINE_float("delta", 1e-5, "Target delta.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (noise and evaluation).")
flags.DEFINE_string("results", None, "JSONL file the runs are appended to.")
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


def load(name: str):
  """(PreparedData, bins for MST/AIM, notes) of a data set."""
  if name == "bank_marketing":
    root = FLAGS.data_dir or os.environ.get(data_lib.DATA_DIR_ENV)
    if not root:
      raise app.UsageError(
        f"bank_marketing needs --data_dir or ${data_lib.DATA_DIR_ENV} (a "
        f"folder holding {BANK_FILE})"
      )
    path = os.path.join(root, BANK_FILE)
    data = data_lib.load_dataset(
      "csv:" + path, schema=FLAGS.bank_schema, split_seed=FLAGS.split_seed
    )
    return data, baselines.bins_from_schema(FLAGS.bank_schema)
  if name == "breast_cancer":
    data = data_lib.load_dataset("breast_cancer", split_seed=FLAGS.split_seed)
    bins = {c.name: FLAGS.breast_cancer_bins for c in data.domain.columns if hasattr(c, "low")}
    return data, bins
  raise app.UsageError(f"unknown data set {name!r}")


def done_keys(path: str) -> set:
  keys = set()
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      for line in f:
        try:
          row = json.loads(line)
        except json.JSONDecodeError:
          continue
        if row.get("status") == "ok":
          keys.add((row["method"], row["dataset"], row["target_epsilon"], row["seed"]))
  return keys


def options(method: str, bins, notes) -> dict:
  """A method's options; the data set's caveats go into every private report's notes."""
  if method == "mst":
    return {"bins": bins, "final_iters": FLAGS.final_iters, "notes": tuple(notes)}
  if method == "aim":
    return {
      "bins": bins,
      "round_iters": FLAGS.aim_round_iters,
      "final_iters": FLAGS.final_iters,
      "notes": tuple(notes),
    }
  if method in ("private_measure", "dp_merf"):
    return {"notes": tuple(notes)}
  return {}


def run(method, dataset, data, bins, epsilon, seed) -> dict:
  fit = baselines.BASELINES[method]
  private = method in baselines.PRIVATE_BASELINES
  opts = options(method, bins, data.notes)
  if method == "aim":
    opts["rounds"] = FLAGS.aim_rounds_per_attribute * len(data.domain.columns)
  start = time.time()
  release = fit(
    data.train,
    data.domain,
    epsilon=epsilon if private else None,
    delta=FLAGS.delta if private else None,
    seed=seed,
    **opts,
  )
  fit_s = time.time() - start
  start = time.time()
  metrics = evaluation.evaluate_release(
    data.domain, release.records, data.train, data.holdout, seed=seed, fast=True
  )
  eval_s = time.time() - start
  row = {
    "status": "ok",
    "method": method,
    "dataset": dataset,
    "target_epsilon": epsilon if private else None,
    "delta": FLAGS.delta if private else None,
    "seed": seed,
    "private": release.private,
    "num_train": len(data.train),
    "num_holdout": len(data.holdout),
    "num_synthetic": len(release.records),
    "options": {k: v for k, v in opts.items() if k not in ("bins", "notes")},
    "timings": {"fit_s": fit_s, "eval_s": eval_s},
  }
  if release.report is not None:
    report = release.report
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
    for k, v in release.info.items()
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
  row.update(metrics)
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
  import numpy as np  # pylint: disable=g-import-not-at-top

  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      if row.get("status") == "ok":
        rows.append(row)
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
  import numpy as np  # pylint: disable=g-import-not-at-top
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  from scipy.spatial import distance  # pylint: disable=g-import-not-at-top
  from lipdp.baselines import private_measure as pm  # pylint: disable=g-import-not-at-top

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
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
  for dataset in FLAGS.datasets:
    data, bins = load(dataset)
    for method in FLAGS.methods:
      private = method in baselines.PRIVATE_BASELINES
      for epsilon in epsilons if private else [None]:
        for seed in seeds:
          if (method, dataset, epsilon, seed) in done:
            continue
          print(f"{dataset} {method} epsilon={epsilon} seed={seed} ...", flush=True)
          try:
            row = run(method, dataset, data, bins, epsilon, seed)
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
          with open(FLAGS.results, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
          if row["status"] == "ok":
            print(
              f"  epsilon {row['epsilon']}, TSTR logreg {row.get('tstr/logreg'):.4f}, "
              f"hgb {row.get('tstr/hgb'):.4f}, fit {row['timings']['fit_s']:.0f} s",
              flush=True,
            )
  return 0


if __name__ == "__main__":
  app.run(main)
