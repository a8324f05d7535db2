r"""Decodes a finished sweep point's trained weights again, with another `decoding`.

How a synthetic record is read off the decoder (`decoding`: 'sample' draws it from the
decoder's likelihood, 'mean' takes the mean pixels or numbers and the most probable category)
is post-processing of the release: it costs no privacy and needs no training. To compare the
two on the same weights, this copies a finished point's work directory, reruns the point with
`decoding` changed (training resumes at its last step, so nothing is trained; the release is
replaced in the copy only) and appends the row, tagged `decoding_<value>`, to a results file:

  python experiments/redecode.py --sweep=experiments/sweeps/frontier.py:bank_e2e \
      --point=lipdp-e2e/eps=10/seed=0 --decoding=mean \
      --workdir=runs/sweeps --results=results/decoding_bank.jsonl

The release noise of the copy is the point's own (seeded, as in every sweep), so the two rows
differ only in the decoding. A study on the private holdout, as every sweep (docs/results.md).
"""

import json
import os
import shutil

from absl import app
from absl import flags

from lipdp import files
from lipdp import runner
from lipdp import spec as spec_lib
from lipdp import workdir as workdir_lib
from lipdp.studies import points as points_lib
from lipdp.studies import results

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", None, "path/to/sweep.py:name the point belongs to.")
flags.DEFINE_string("point", None, "The point's id, e.g. lipdp-e2e/eps=10/seed=0.")
flags.DEFINE_enum(
  "decoding", None, ["sample", "mean", "sample_modal_label", "auto"], "The decoding to apply."
)
flags.DEFINE_string("workdir", "runs/sweeps", "Root of the sweep's work directories.")
flags.DEFINE_string("results", None, "JSONL file the row is appended to.")
flags.DEFINE_string("config", "experiments/configs/default.py", "The sweeps' config file.")
flags.mark_flags_as_required(["sweep", "point", "decoding", "results"])


def _same_schema_here(copy: str, spec) -> None:
  """Points the copy's recorded schema at this checkout's when the two files are identical.

  config.json records the schema by absolute path, so a point run from another checkout of the
  repository would be refused as "other settings" though it read the same bytes.
  """
  config_path = os.path.join(copy, workdir_lib.CONFIG_FILE)
  with open(config_path, encoding="utf-8") as f:
    recorded = json.load(f)
  options = recorded.get("data_options") or {}
  ours = spec_lib.to_config(spec).data_options.get("schema")
  theirs = options.get("schema")
  if not (ours and theirs and ours != theirs and os.path.exists(theirs)):
    return
  with open(ours, "rb") as a, open(theirs, "rb") as b:
    if a.read() != b.read():
      raise app.UsageError(f"the point read another schema ({theirs}) than this checkout's")
  options["schema"] = ours
  files.atomic_write_text(config_path, json.dumps(recorded, indent=2, sort_keys=True))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  matches = [p for p in points_lib.load_sweep(FLAGS.sweep) if p["id"] == FLAGS.point]
  if len(matches) != 1:
    raise app.UsageError(f"no point {FLAGS.point!r} in {FLAGS.sweep}")
  point = dict(matches[0])
  point["overrides"] = {
    **point.get("overrides", {}),
    "decoding": FLAGS.decoding,
    "replace_release": True,  # of the copy; the point's own release is untouched
  }
  point["tag"] = f"decoding_{FLAGS.decoding}"
  spec = points_lib.make_spec(point, FLAGS.config)
  sweep_dir = os.path.join(FLAGS.workdir, point["sweep"])
  source = os.path.join(sweep_dir, FLAGS.point.replace("/", "_"))
  if not os.path.isdir(os.path.join(source, "release")):
    raise app.UsageError(f"{source} holds no finished point (run the sweep first)")
  copy = f"{source}_decoding_{FLAGS.decoding}"
  shutil.rmtree(copy, ignore_errors=True)
  shutil.copytree(source, copy)
  _same_schema_here(copy, spec)
  result = runner.run(spec, copy)
  row = points_lib.point_fields(point)
  row.update(points_lib.report_fields(result.report))
  row.update(num_train=len(result.data.train), timings=result.timings)
  row.update(result.metrics or {})
  results.append_row(FLAGS.results, row)
  print(f"{FLAGS.point} decoding={FLAGS.decoding}: tstr/logreg_f1 {row.get('tstr/logreg_f1')}")


if __name__ == "__main__":
  app.run(main)
