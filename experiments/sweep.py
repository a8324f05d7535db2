r"""Runs one sweep, or one shard of it, appending one JSON line per point to a results file.

Sweeps are data (experiments/sweeps/*.py): `get_sweep(name)` returns a list of points, each a
method, a base config variant, config overrides and a seed. One command runs them all, or a
shard: point i belongs to task i % num_tasks, so a cluster array job runs a sweep in parallel:

  python experiments/sweep.py --sweep=experiments/sweeps/frontier.py:quick \
      --results=results/frontier_quick.jsonl --workdir=runs/sweeps
  # SLURM: --task_index=$SLURM_ARRAY_TASK_ID --num_tasks=$SLURM_ARRAY_TASK_COUNT
  # Kubernetes indexed jobs: --task_index=$JOB_COMPLETION_INDEX --num_tasks=N

`--only` restricts a run to the points whose id matches a pattern, e.g. one seed or one method.
Points already in the results file (by point id) are skipped, so a killed shard resumes. Each
line holds the point, the headline epsilon and what it is, and every metric of
`lipdp.evaluation.evaluate_release` (computed on the private holdout: a study, not a private
pipeline; see docs/results.md). `experiments/figures.py` draws the figures from the files.

Methods (see docs/results.md):
  lipdp-conditional  per-record release, model fit without DP (the original paper's setting)
  lipdp-e2e          scope dp-sgd, one total epsilon split between DP-SGD and the release
  lipdp-shuffled     as lipdp-e2e, the release's share being its shuffled central epsilon
  dpsgd-vae          scope dp-sgd, records sampled from the prior (DP-SGD VAE baseline)
  vae                non-private VAE sampled from its prior (epsilon = inf; no guarantee)
  dp-merf            DP-MERF (lipdp.baselines.dp_merf): central epsilon, through the main job
                     (--config.method=dp_merf; its settings as overrides, e.g.
                     {"dp_merf.num_steps": 1000})
  <name>             any lipdp.baselines method (e.g. mst, aim, copy) when installed
"""

import json
import os
import sys
import time
import traceback

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_lib  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string(
  "sweep", None, "path/to/sweep.py:name, e.g. experiments/sweeps/frontier.py:quick"
)
flags.DEFINE_string("results", None, "JSONL file the points are appended to.")
flags.DEFINE_string("workdir", "runs/sweeps", "Root of the points' work directories (private).")
flags.DEFINE_integer("task_index", 0, "This task's index in [0, num_tasks).")
flags.DEFINE_integer("num_tasks", 1, "Number of parallel tasks the sweep is sharded over.")
flags.DEFINE_list(
  "only",
  [],
  "Shell-style patterns on point ids (e.g. 'lipdp-e2e/eps=1/*,vae/*'): run only the points "
  "matching one of them. Applied before sharding.",
)
flags.DEFINE_bool("list", False, "Only list this shard's points.")
flags.DEFINE_bool("keep_going", True, "Record a failed point and go on, instead of stopping.")
flags.mark_flags_as_required(["sweep", "results"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not 0 <= FLAGS.task_index < FLAGS.num_tasks:
    raise app.UsageError(f"task_index must be in [0, {FLAGS.num_tasks}), got {FLAGS.task_index}")
  points = sweep_lib.load_sweep(FLAGS.sweep)
  sweep_lib.check_unique_ids(points)
  try:
    points = sweep_lib.select(points, FLAGS.only)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  mine = [p for i, p in enumerate(points) if i % FLAGS.num_tasks == FLAGS.task_index]
  done = sweep_lib.completed_ids(FLAGS.results)
  todo = [p for p in mine if p["id"] not in done]
  print(
    f"{FLAGS.sweep}: {len(points)} points, {len(mine)} in task {FLAGS.task_index}/"
    f"{FLAGS.num_tasks}, {len(mine) - len(todo)} already in {FLAGS.results}"
  )
  if FLAGS.list:
    for p in todo:
      print("  " + p["id"])
    return
  for number, point in enumerate(todo, 1):
    start = time.time()
    print(f"[{number}/{len(todo)}] {point['id']} ...", flush=True)
    try:
      row = sweep_lib.run_point(point, os.path.join(FLAGS.workdir, point["sweep"]))
    except Exception as e:  # pylint: disable=broad-except
      if not FLAGS.keep_going:
        raise
      logging.error("point %s failed:\n%s", point["id"], traceback.format_exc())
      row = {**sweep_lib.point_fields(point), "error": f"{type(e).__name__}: {e}"}
    row["wall_s"] = round(time.time() - start, 1)
    sweep_lib.append_row(FLAGS.results, row)
    shown = {k: row[k] for k in ("epsilon", "tstr/logreg", "error") if k in row}
    print(f"    {json.dumps(shown)} in {row['wall_s']} s", flush=True)


if __name__ == "__main__":
  app.run(main)
