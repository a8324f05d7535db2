r"""Draws the figures and tables of docs/results.md from sweep results (JSONL).

  python experiments/figures.py --results=results/frontier_digits.jsonl \
      --kind=frontier --out=docs/figures/frontier_digits.png --table=docs/figures/frontier_digits.md
  python experiments/figures.py --results=results/knobs_quick.jsonl --kind=knobs \
      --out=docs/figures/knobs_quick.png --table=docs/figures/knobs_quick.md

See lipdp/studies/summaries.py for what each figure and table shows.
"""

from absl import app
from absl import flags

from lipdp import files
from lipdp.studies import results
from lipdp.studies import summaries

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("results", None, "JSONL results file(s) of experiments/sweep.py.")
flags.DEFINE_enum("kind", "frontier", ["frontier", "knobs"], "Which figure.")
flags.DEFINE_string("metric", "tstr/logreg", "The metric on the y axis.")
flags.DEFINE_string("out", None, "PNG to write.")
flags.DEFINE_string("table", None, "Markdown table to write (optional).")
flags.DEFINE_string("title", "", "Figure title.")
flags.DEFINE_multi_string(
  "where", [], "Keep only rows with key=value, or without: key!=value (e.g. dataset=digits)."
)
flags.DEFINE_multi_string(
  "series",
  [],
  "SWEEP=SUFFIX: the methods of rows from sweep SWEEP are drawn and tabulated as 'method SUFFIX' "
  "(to compare two sweeps of the same methods in one figure).",
)
flags.DEFINE_multi_string(
  "table_metric",
  [],
  "A metric for the table's columns, repeatable (default: the usual utility, fidelity and "
  "privacy metrics the rows hold), e.g. fidelity/tv/poutcome.",
)
flags.DEFINE_integer("table_digits", 3, "Decimals of the table's numbers.")
flags.mark_flags_as_required(["results", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  rows = [r for path in FLAGS.results for r in results.read_rows(path)]
  try:
    rows = summaries.select_rows(rows, FLAGS.where)
  except ValueError as e:
    raise app.UsageError(f"--where: {e}") from e
  if not rows:
    raise app.UsageError(f"no rows in {FLAGS.results}")
  if FLAGS.series:
    try:
      rows = summaries.with_series(rows, FLAGS.series)
    except ValueError as e:
      raise app.UsageError(f"--series: {e}") from e
  if FLAGS.kind == "frontier":
    summaries.frontier(rows, FLAGS.metric, FLAGS.out, FLAGS.title)
  else:
    summaries.knobs(rows, FLAGS.metric, FLAGS.out, FLAGS.title)
  print(f"wrote {FLAGS.out}")
  if FLAGS.table:
    files.atomic_write_text(
      FLAGS.table,
      summaries.table(
        rows,
        by_tag=FLAGS.kind == "knobs",
        metrics=FLAGS.table_metric or None,
        digits=FLAGS.table_digits,
      ),
    )
    print(f"wrote {FLAGS.table}")


if __name__ == "__main__":
  app.run(main)
