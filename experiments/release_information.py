r"""What lipdp's releases can carry about each record, beside what they added: a table.

For each group of rows (method, tag, epsilon; the seeds together) that released per-record
latents through the homoscedastic Gaussian mechanism, it prints the capacity bound of that
release (`lipdp.privacy.information`: at most mu^2 / 4 nats about each record, from the row's
per-record epsilon and delta), Fano's floor on the error of reading a label of --num_classes
equally likely classes from the release alone, and, where the row also evaluated the same
weights' prior samples (evaluation.compare_prior), the paired differences release minus prior:
logistic TSTR and the median distance of a synthetic record to its closest training record.

  python experiments/release_information.py --results=results/knobs_information_digits.jsonl

With --points, for each finished sweep point that released latents, it measures how much of the
bound the trained encoder uses: its means on the training records (the map the release
applies, with the certificate's mean scale), their largest pairwise distance against the
certified sensitivity L * D, and I(J; Z), what a released latent says about which training
record it came from (`lipdp.privacy.information.uniform_mixture_information`):

  python experiments/release_information.py \
      --sweep=experiments/sweeps/knobs.py:information-digits \
      --points='lipdp-conditional/information/eps=16/*' --workdir=runs/sweeps

and prints them by group (the seeds together): the bound, the largest distance as a fraction of
L * D, and I(J; Z). `--out` keeps one JSON line per point; `--measured=FILE --figure=PNG` draws
the bound against the per-record epsilon with the measured points.

The distances and these measurements are statistics of the private training records (the
evaluation's, covered by no guarantee): for the study, never for release.
"""

import json
import math
import os

from absl import app
from absl import flags
import numpy as np

from lipdp import files
from lipdp import latent_release
from lipdp import privacy
from lipdp import release as release_lib
from lipdp import runner
from lipdp import workdir as workdir_lib
from lipdp.methods import vae as vae_method
from lipdp.privacy import information
from lipdp.studies import points as points_lib
from lipdp.studies import results as results_lib
from lipdp.studies import summaries

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("results", None, "Result rows (JSON lines) of sweep points.")
flags.DEFINE_integer("num_classes", 10, "Classes of the label Fano's floor is computed for.")
flags.DEFINE_string(
  "out", None, "Also write the markdown table (with --points: one JSON line per point) here."
)
flags.DEFINE_string("sweep", None, "With --points: path/to/sweep.py:name holding the points.")
flags.DEFINE_list(
  "points",
  None,
  "Shell-style patterns on point ids (e.g. 'lipdp-conditional/*/eps=16/*'): measure the trained "
  "encoders of these finished points.",
)
flags.DEFINE_string("workdir", "runs/sweeps", "The sweeps' root the point ran under.")
flags.DEFINE_integer("draws", 4, "Noise draws per training record in the I(J; Z) estimate.")
flags.DEFINE_multi_string(
  "measured", None, "JSON lines written by --points --out: draw them with --figure."
)
flags.DEFINE_string("figure", None, "With --measured: the figure of the bound and the measures.")
flags.DEFINE_string("title", "What a release can carry", "With --figure: its title.")
flags.DEFINE_string(
  "configs",
  os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
  "The config file whose variants the points name.",
)


def largest_distance(points: np.ndarray, chunk: int = 1024) -> float:
  """The largest pairwise l2 distance among the rows of `points`, in chunks (no n x n array)."""
  norms = np.sum(points**2, axis=1)
  largest = 0.0
  for start in range(0, len(points), chunk):
    squared = information.squared_distances(points[start : start + chunk], points, norms)
    largest = max(largest, float(np.max(squared)))
  return math.sqrt(max(largest, 0.0))


def measure_point(point, workdir_root: str, configs: str, draws: int, load_data) -> dict:
  """The trained encoder of a finished point against its release's bound (module docstring);
  None for a point without a release. `load_data(spec.data)` gives the point's data set."""
  point_id = point["id"]
  spec = points_lib.make_spec(point, configs)
  workdir = points_lib.point_workdir(workdir_root, point["sweep"], point["id"])
  report_path = os.path.join(workdir_lib.release_dir(workdir), release_lib.REPORT_FILE)
  if not os.path.exists(report_path):
    return None  # not run, or refused before training (its row says why)
  report = privacy.PrivacyReport.load(report_path)
  if report.release_information_nats is None:
    raise app.UsageError(f"{point_id!r} released no homoscedastic Gaussian latents")
  data = load_data(spec.data)
  runner.open_for(spec, workdir, data.domain)  # refuses a work directory of other settings
  model, _, trained = vae_method.finished_training(spec, data, workdir)
  variables = {"params": trained.state.params, **trained.state.model_state}
  mean_scale = float(report.certificate.get("mean_scale", 1.0))
  means = latent_release.encoder_means(model, variables, data.train, mean_scale)
  estimate, error = information.uniform_mixture_information(
    means, report.sigma, k=report.k, draws=draws
  )
  centred = means - means.mean(axis=0)
  return {
    "point": point_id,
    "method": point["method"],
    "tag": point.get("tag", ""),
    "epsilon": point["epsilon"],
    "per_record_epsilon": report.per_record_epsilon,
    "records": len(means),
    "latent_dim": means.shape[1],
    "sigma": report.sigma,
    "k": report.k,
    "sensitivity": report.sensitivity,
    "bound_nats": report.release_information_nats,
    "largest_distance": largest_distance(means),
    "mean_squared_spread": float(np.mean(np.sum(centred**2, axis=1))),
    "information_nats": estimate,
    "information_standard_error": error,
    "log_records": math.log(len(means)),
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.measured:
    if not FLAGS.figure:
      raise app.UsageError("--measured needs --figure")
    measured = [m for path in FLAGS.measured for m in results_lib.read_rows(path)]
    print(summaries.encoder_information_table(measured), end="")
    summaries.information_figure(measured, FLAGS.figure, FLAGS.title)
    print(f"wrote {FLAGS.figure}")
    return
  if FLAGS.points:
    if FLAGS.sweep is None or FLAGS.results:
      raise app.UsageError("--points needs --sweep, and takes no --results")
    selected = points_lib.select(points_lib.load_sweep(FLAGS.sweep), FLAGS.points)
    loaded = {}  # a sweep's points mostly share one data set: read it once

    def load_data(data_spec):
      key = repr(data_spec)  # the spec holds mappings: not hashable, but its repr is exact
      if key not in loaded:
        loaded[key] = runner.load_data(data_spec)
      return loaded[key]

    results = []
    for point in selected:
      result = measure_point(point, FLAGS.workdir, FLAGS.configs, FLAGS.draws, load_data)
      if result is None:
        print(f"{point['id']}: no release under {FLAGS.workdir} (not run, or refused): skipped")
        continue
      print(
        f"{result['point']}: certified sensitivity L*D = {result['sensitivity']:.4g}, the "
        f"means' largest distance {result['largest_distance']:.4g} (mean squared spread "
        f"{result['mean_squared_spread']:.4g}); sigma {result['sigma']:.4g}, k {result['k']}; "
        f"bound {result['bound_nats']:.4g} nats; I(J; Z) over the {result['records']:,} "
        f"training records {result['information_nats']:.4g} +- "
        f"{result['information_standard_error']:.2g} nats (log n = {result['log_records']:.3g})"
      )
      results.append(result)
    if not results:
      raise app.UsageError(f"none of the points {FLAGS.points} has a release: run them first")
    text = summaries.encoder_information_table(results)
    print(text, end="")
    if FLAGS.out:
      files.atomic_write_text(FLAGS.out, "".join(json.dumps(r) + "\n" for r in results))
    return
  if not FLAGS.results:
    raise app.UsageError("give --results (a table of rows) or --sweep and --points")
  rows = [row for path in FLAGS.results for row in results_lib.read_rows(path)]
  text = summaries.release_information_table(rows, FLAGS.num_classes)
  print(text, end="")
  if FLAGS.out:
    files.atomic_write_text(FLAGS.out, text)


if __name__ == "__main__":
  app.run(main)
