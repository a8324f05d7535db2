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

XLA's compiled programs are kept under WORKDIR/xla_cache and reused by later points and other
shards (`--nocompilation_cache` turns it off). Every point runs through `lipdp.runner.run`, as
the main job does; the methods, and how a point becomes a spec and a row, are in
lipdp/studies/points.py (see docs/results.md).
"""

import json
import os
import time
import traceback

from absl import app
from absl import flags
from absl import logging

from lipdp.studies import points as points_lib
from lipdp.studies import results

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
flags.DEFINE_bool(
  "compilation_cache",
  True,
  "Keep XLA's compiled programs in WORKDIR/xla_cache and reuse them across points and shards "
  "(the same executables: rows do not change; as private as the work directories).",
)
flags.DEFINE_string(
  "configs",
  os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
  "The config file whose variants the points name.",
)
flags.mark_flags_as_required(["sweep", "results"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  points = points_lib.load_sweep(FLAGS.sweep)
  points_lib.check_unique_ids(points)
  try:
    points = points_lib.select(points, FLAGS.only)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  try:
    mine = points_lib.shard(points, FLAGS.task_index, FLAGS.num_tasks)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  done = results.completed_ids(FLAGS.results)
  todo = [p for p in mine if p["id"] not in done]
  print(
    f"{FLAGS.sweep}: {len(points)} points, {len(mine)} in task {FLAGS.task_index}/"
    f"{FLAGS.num_tasks}, {len(mine) - len(todo)} already in {FLAGS.results}"
  )
  if FLAGS.list:
    for p in todo:
      print("  " + p["id"])
    return
  if FLAGS.compilation_cache and todo:
    points_lib.use_compilation_cache(FLAGS.workdir)
  for number, point in enumerate(todo, 1):
    start = time.time()
    print(f"[{number}/{len(todo)}] {point['id']} ...", flush=True)
    try:
      row = points_lib.run_point(point, os.path.join(FLAGS.workdir, point["sweep"]), FLAGS.configs)
    except Exception as e:  # pylint: disable=broad-except
      if not FLAGS.keep_going:
        raise
      logging.error("point %s failed:\n%s", point["id"], traceback.format_exc())
      row = {**points_lib.point_fields(point), "error": f"{type(e).__name__}: {e}"}
    row["wall_s"] = round(time.time() - start, 1)
    results.append_row(FLAGS.results, row)
    shown = {k: row[k] for k in ("epsilon", "tstr/logreg", "error") if k in row}
    print(f"    {json.dumps(shown)} in {row['wall_s']} s", flush=True)


if __name__ == "__main__":
  app.run(main)
