r"""Per-example gradient norms of a sweep point's trained model, by group of records.

DP-SGD clips each record's gradient to norm C, so at a C below most norms every record pulls
with the same force and a group whose gradients are larger (a minority the model fits worse) is
shrunk most: clipping's disparate impact (Bagdasaryan et al. 2019; Xu et al. 2021). This prints
the norms' quantiles per category of one categorical column, at the model's initialisation and
after training, and the fraction of each group that the run's C clips:

  python experiments/sweep.py --sweep=experiments/sweeps/knobs.py:declared-bins-small-bank \
      --results=results/knobs_declared_bins_small_bank.jsonl --workdir=runs/sweeps \
      --only='dpsgd-vae/small_declared/eps=10/seed=0'
  python experiments/gradient_norms.py \
      --sweep=experiments/sweeps/knobs.py:declared-bins-small-bank \
      --point='dpsgd-vae/small_declared/eps=10/seed=0' --workdir=runs/sweeps --column=poutcome

The point must have finished training under `--workdir` (this script never trains). The norms
are statistics of the private training records, covered by no guarantee: a diagnostic for the
one who holds the data, never for release (docs/results.md, "Declared bins on bank-marketing").
"""

import json
import os

from absl import app
from absl import flags
import jax
import numpy as np

from lipdp import files
from lipdp import runner
from lipdp.methods import vae as vae_method
from lipdp.studies import points as points_lib
from lipdp.training import loop
from lipdp.training import per_example

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", None, "path/to/sweep.py:name holding the point.")
flags.DEFINE_string("point", None, "The point's id (experiments/sweep.py --list shows them).")
flags.DEFINE_string("workdir", "runs/sweeps", "The sweeps' root the point ran under.")
flags.DEFINE_string("column", None, "A categorical column (or 'label') to group the records by.")
flags.DEFINE_string("out", None, "Also write the table as JSON here (private: see above).")
flags.DEFINE_string(
  "configs",
  os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
  "The config file whose variants the points name.",
)
flags.mark_flags_as_required(["sweep", "point", "column"])

QUANTILES = (0.1, 0.5, 0.9)


def groups_of(records: np.ndarray, blocks, column: str) -> np.ndarray:
  """Each record's category in the categorical block named `column` (its hot coordinate)."""
  named = {b.name: b for b in blocks}
  block = named.get(column)
  if block is None or block.kind != "categorical":
    choices = sorted(b.name for b in blocks if b.kind == "categorical")
    raise app.UsageError(f"--column must name a categorical column, one of {choices}")
  hot = np.argmax(records[:, block.start : block.stop], axis=1)
  return np.asarray([str(c) for c in block.categories])[hot]


def summary(norms: np.ndarray, groups: np.ndarray, clip_norm) -> list:
  """One row per group (largest first), then 'all': count, share, quantiles, mean, and the
  fraction above the clip norm (None without DP-SGD)."""
  names, counts = np.unique(groups, return_counts=True)
  order = [names[i] for i in np.argsort(-counts, kind="stable")]
  rows = []
  for name, mask in [(n, groups == n) for n in order] + [("all", np.ones(len(norms), bool))]:
    selected = norms[mask]
    rows.append(
      {
        "group": name,
        "count": int(mask.sum()),
        "share": float(mask.mean()),
        **{f"q{int(q * 100)}": float(np.quantile(selected, q)) for q in QUANTILES},
        "mean": float(selected.mean()),
        "clipped": None if clip_norm is None else float(np.mean(selected > clip_norm)),
      }
    )
  return rows


def markdown(when: str, rows: list) -> str:
  head = "| " + when + " | records | share | q10 | median | q90 | mean | clipped |"
  lines = [head, "|" + "---|" * 8]
  for r in rows:
    clipped = "" if r["clipped"] is None else f"{r['clipped']:.2f}"
    lines.append(
      f"| {r['group']} | {r['count']:,} | {r['share']:.3f} | {r['q10']:.3g} | {r['q50']:.3g} | "
      f"{r['q90']:.3g} | {r['mean']:.3g} | {clipped} |"
    )
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  matching = [p for p in points_lib.load_sweep(FLAGS.sweep) if p["id"] == FLAGS.point]
  if not matching:
    raise app.UsageError(f"{FLAGS.sweep} has no point {FLAGS.point!r}")
  point = matching[0]
  spec = points_lib.make_spec(point, FLAGS.configs)
  workdir = points_lib.point_workdir(FLAGS.workdir, point["sweep"], point["id"])
  data = runner.load_data(spec.data)
  groups = groups_of(data.train, data.domain.blocks, FLAGS.column)
  runner.open_for(spec, workdir, data.domain, data)  # refuses one of other settings or data
  model, config, trained = vae_method.finished_training(spec, data, workdir)
  loss_fn = loop.training_loss(model, data.domain.blocks, config)
  clip_norm = config.dp.clip_norm if config.dp is not None else None
  key = jax.random.key(point["seed"])
  states = {
    "initialisation": loop.vae_init_variables(model)(key, data.train[:1]),
    "trained": {"params": trained.state.params, **trained.state.model_state},
  }
  tables = {}
  for when, variables in states.items():
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    norms = per_example.gradient_norms(loss_fn, params, model_state, data.train, key)
    tables[when] = summary(norms, groups, clip_norm)
    print(markdown(f"{FLAGS.column} ({when})", tables[when]) + "\n")
  if FLAGS.out:
    result = {"sweep": FLAGS.sweep, "point": FLAGS.point, "column": FLAGS.column, **tables}
    files.atomic_write_text(FLAGS.out, json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
