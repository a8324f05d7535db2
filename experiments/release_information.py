r"""What lipdp's releases can carry about each record, beside what they added: a table.

For each group of rows (method, tag, epsilon; the seeds together) that released per-record
latents through the homoscedastic Gaussian mechanism, it prints the capacity bound of that
release (`lipdp.privacy.information`: at most mu^2 / 4 nats about each record, from the row's
per-record epsilon and delta), Fano's floor on the error of reading a label of --num_classes
equally likely classes from the release alone, and, where the row also evaluated the same
weights' prior samples (evaluation.compare_prior), the paired differences release minus prior:
logistic TSTR and the median distance of a synthetic record to its closest training record.

  python experiments/release_information.py --results=results/knobs_information_digits.jsonl

The distances are statistics of the private training records (the evaluation's, covered by no
guarantee): for the study, never for release.
"""

import collections

from absl import app
from absl import flags
import numpy as np

from lipdp import files
from lipdp.privacy import information
from lipdp.studies import results as results_lib

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("results", None, "Result rows (JSON lines) of sweep points.")
flags.DEFINE_integer("num_classes", 10, "Classes of the label Fano's floor is computed for.")
flags.DEFINE_string("out", None, "Also write the markdown table here.")
flags.mark_flags_as_required(["results"])

PAIRED = (("TSTR", "tstr/logreg"), ("DCR to train, median", "privacy/dcr_train_q50"))


def _group_key(row):
  # The point's epsilon (the row's 'epsilon' is the report's, which differs in the last digits).
  return (row["method"], row.get("tag", ""), row.get("target_epsilon", row["epsilon"]))


def _mean_std(values):
  arr = np.asarray(values, dtype=np.float64)
  return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _cell(values, digits=3):
  if not values:
    return ""
  mean, std = _mean_std(values)
  return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(rows, num_classes: int) -> str:
  groups = collections.defaultdict(list)
  for row in rows:
    if "error" in row or not row.get("per_record_epsilon") or row.get("release_sigma") is None:
      continue  # no per-record release (prior sampling, baselines) or a failed point
    groups[_group_key(row)].append(row)
  header = ["method", "tag", "epsilon", "per-record epsilon", "bound (nats)", "label error floor"]
  for name, _ in PAIRED:
    header += [f"{name}, release", f"{name}, prior", f"{name}, release - prior"]
  header.append("seeds")
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for key in sorted(groups, key=lambda k: (k[0], k[1], k[2])):
    rs = groups[key]
    bounds = [
      information.per_record_information_bound(r["per_record_epsilon"], r["delta"]) for r in rs
    ]
    bound = float(np.mean(bounds))
    cells = [
      key[0],
      key[1],
      f"{key[2]:g}",
      f"{np.mean([r['per_record_epsilon'] for r in rs]):.4g}",
      f"{bound:.3g}",
      f"{information.fano_error_lower_bound(bound, num_classes):.2f}",
    ]
    for _, metric in PAIRED:
      released = [r[metric] for r in rs if r.get(metric) is not None]
      paired = [
        r[metric] - r[f"prior_sampling/{metric}"]
        for r in rs
        if r.get(metric) is not None and r.get(f"prior_sampling/{metric}") is not None
      ]
      prior = [
        r[f"prior_sampling/{metric}"] for r in rs if r.get(f"prior_sampling/{metric}") is not None
      ]
      cells += [_cell(released), _cell(prior), _cell(paired)]
    cells.append(str(len(rs)))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  rows = [row for path in FLAGS.results for row in results_lib.read_rows(path)]
  text = table(rows, FLAGS.num_classes)
  print(text, end="")
  if FLAGS.out:
    files.atomic_write_text(FLAGS.out, text)


if __name__ == "__main__":
  app.run(main)
