r"""Decodes a finished sweep point's trained weights again, with another `decoding`.

How a synthetic record is read off the decoder (`decoding`: 'sample' draws it from the
decoder's likelihood, 'mean' takes the mean pixels or numbers and the most probable category)
is post-processing of the release: it costs no privacy and needs no training. To compare the
two on the same weights, this runs `lipdp.studies.points.decoded_again(point, ...)`: the
finished point's work directory is copied without its release, the point is rerun with
`decoding` changed (training resumes at its last step, so nothing is trained) and the row,
tagged `decoding_<value>`, is appended to a results file:

  python experiments/redecode.py --sweep=experiments/sweeps/frontier.py:bank_e2e \
      --point=lipdp-e2e/eps=10/seed=0 --decoding=mean \
      --workdir=runs/sweeps --results=results/decoding_bank.jsonl

The release noise of the copy is the point's own (seeded, as in every sweep), so the two rows
differ only in the decoding. A study on the private holdout, as every sweep (docs/results.md).
Sweeps can hold such points themselves (knobs.py:temperature-digits).
"""

import os

from absl import app
from absl import flags

from lipdp.models import likelihood
from lipdp.studies import points as points_lib
from lipdp.studies import results

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", None, "path/to/sweep.py:name the point belongs to.")
flags.DEFINE_string("point", None, "The point's id, e.g. lipdp-e2e/eps=10/seed=0.")
flags.DEFINE_enum(
  "decoding", None, list(likelihood.DECODINGS), "The decoding to apply (lipdp.models.likelihood)."
)
flags.DEFINE_string("workdir", "runs/sweeps", "Root of the sweep's work directories.")
flags.DEFINE_string("results", None, "JSONL file the row is appended to.")
flags.DEFINE_string("config", "experiments/configs/default.py", "The sweeps' config file.")
flags.mark_flags_as_required(["sweep", "point", "decoding", "results"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  matches = [p for p in points_lib.load_sweep(FLAGS.sweep) if p["id"] == FLAGS.point]
  if len(matches) != 1:
    raise app.UsageError(f"no point {FLAGS.point!r} in {FLAGS.sweep}")
  base = matches[0]
  tag = f"{base.get('tag', '')}_decoding_{FLAGS.decoding}".lstrip("_")
  point = points_lib.decoded_again(base, base["sweep"], tag, {"decoding": FLAGS.decoding})
  try:
    row = points_lib.run_point(point, os.path.join(FLAGS.workdir, point["sweep"]), FLAGS.config)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  results.append_row(FLAGS.results, row)
  print(f"{FLAGS.point} decoding={FLAGS.decoding}: tstr/logreg_f1 {row.get('tstr/logreg_f1')}")


if __name__ == "__main__":
  app.run(main)
