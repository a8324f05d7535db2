r"""Releases finished sweep points again with exact lattice noise and with float64 noise.

The release draws its noise exactly on a lattice by default (docs/privacy.md, "Exact noise on
a lattice"); before 2026-12-07 it drew float64 noise. Both are accounted as the same Gaussian
release (the lattice's within 2^-14 of the noise), so they should give the same utility up to
the noise draw. This checks it on the same trained weights: each point's work directory is
copied without its release (`lipdp.studies.points.copy_trained`), and released again with
each sampler and each of `--noise_seeds` (training resumes at its last step: nothing is
trained). One row per release is appended to `--results`:

  python experiments/sweep.py --sweep=experiments/sweeps/knobs.py:average-digits \
      --only='lipdp-e2e/no_average/eps=10/seed=*' --results=/tmp/digits.jsonl \
      --workdir=runs/sweeps
  python experiments/noise_sampler_check.py \
      --sweep=experiments/sweeps/knobs.py:average-digits \
      --only='lipdp-e2e/no_average/eps=10/seed=*' --workdir=runs/sweeps \
      --results=results/noise_sampler_digits.jsonl

A diagnostic on digits, the public proxy; it chooses nothing.
"""

import os
import shutil
import statistics

from absl import app
from absl import flags

from lipdp import runner
from lipdp import spec as spec_lib
from lipdp.studies import points as points_lib
from lipdp.studies import results

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", None, "path/to/sweep.py:name of the finished points.")
flags.DEFINE_multi_string("only", [], "Shell patterns on the point ids (all points if none).")
flags.DEFINE_string("workdir", "runs/sweeps", "Root of the sweep's work directories.")
flags.DEFINE_string("results", None, "JSONL file the rows are appended to.")
flags.DEFINE_string("config", "experiments/configs/default.py", "The sweeps' config file.")
flags.DEFINE_list("noise_seeds", ["100", "101", "102"], "Noise seeds of the new releases.")
flags.mark_flags_as_required(["sweep", "results"])

SAMPLERS = ("exact", "float64")


def release_again(point, sampler: str, noise_seed: int) -> dict:
  source = points_lib.point_workdir(FLAGS.workdir, point["sweep"], point["id"])
  if not os.path.isdir(source):
    raise app.UsageError(f"{source} does not exist: run the point with sweep.py first")
  config = points_lib.make_config(point, FLAGS.config)
  config.noise_sampler = sampler
  config.noise_seed = noise_seed
  spec = spec_lib.from_config(config)
  name = f"{point['id'].replace('/', '_')}_{sampler}_{noise_seed}"
  workdir = os.path.join(FLAGS.workdir, "noise-sampler-check", name)
  if os.path.exists(workdir):
    shutil.rmtree(workdir)
  points_lib.copy_trained(source, workdir, spec)
  result = runner.run(spec, workdir)
  return {
    "id": f"{point['id']}/{sampler}/noise_seed={noise_seed}",
    "point": point["id"],
    "sweep": point["sweep"],
    "noise_sampler": sampler,
    "noise_seed": noise_seed,
    "code_version": results.code_version(),
    "tstr/logreg": result.metrics["tstr/logreg"],
    "labels/agreement": result.metrics.get("labels/agreement"),
    **points_lib.report_fields(result.report),
    "lattice": result.report.release.lattice is not None,
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  chosen = points_lib.load_sweep(FLAGS.sweep)
  if FLAGS.only:
    chosen = points_lib.select(chosen, FLAGS.only)
  if not chosen:
    raise app.UsageError(f"no point of {FLAGS.sweep} matches {FLAGS.only}")
  tstr = {sampler: [] for sampler in SAMPLERS}
  for point in chosen:
    for sampler in SAMPLERS:
      for seed in FLAGS.noise_seeds:
        row = release_again(point, sampler, int(seed))
        results.append_row(FLAGS.results, row)
        tstr[sampler].append(row["tstr/logreg"])
        print(f"{row['id']}: tstr/logreg {row['tstr/logreg']:.4f}", flush=True)
  for sampler, values in tstr.items():
    spread = statistics.stdev(values) if len(values) > 1 else float("nan")
    print(f"{sampler}: mean {statistics.mean(values):.4f}, sd {spread:.4f}, n {len(values)}")


if __name__ == "__main__":
  app.run(main)
