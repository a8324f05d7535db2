"""Figures and tables of sweep results (experiments/figures.py draws them; docs/results.md).

frontier: a metric against the target epsilon, one line per method, mean and standard deviation
over seeds, with the real-data reference (TRTR) and the majority-class rate as horizontal lines
and non-private methods (epsilon = inf) at the right. knobs: the metric for each knob setting,
grouped by method and epsilon. table: the same means, standard deviations and seed counts in
markdown, with the membership-inference AUC and the label agreement.
"""

import collections
import math

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from lipdp import files
from lipdp.privacy import information


def select_rows(rows, conditions):
  """The rows that meet every condition: 'key=value' keeps a row whose str(row[key]) is value,
  'key!=value' one whose str(row[key]) is not (a row without the key has str None)."""
  for condition in conditions:
    if "!=" in condition:
      key, _, value = condition.partition("!=")
      rows = [r for r in rows if str(r.get(key)) != value]
    elif "=" in condition:
      key, _, value = condition.partition("=")
      rows = [r for r in rows if str(r.get(key)) == value]
    else:
      raise ValueError(f"a condition is key=value or key!=value, got {condition!r}")
  return rows


TABLE_METRICS = (
  "tstr/logreg",
  "tstr/logreg_f1",
  "tstr/mlp",
  "tstr/cnn",
  "tstr/hgb",
  "labels/agreement",
  "fidelity/frechet",
  "fidelity/tv_mean",
  "fidelity/wasserstein_mean",
  "fidelity/association_diff_mean",
  "privacy/mia_distance_auc",
  "privacy/dcr_closer_to_train",
  # evaluation.compare_prior: the same weights sampled from the prior (shown where present)
  "prior_sampling/tstr/logreg",
  "prior_sampling/fidelity/frechet",
)
METHOD_ORDER = (
  "lipdp-conditional",
  "lipdp-e2e",
  "lipdp-shuffled",
  "dpsgd-vae",
  "lipdp-public",
  "vae",
  "mst",
  "aim",
  "private_measure",
  "copy",
  "copy_train",
)


def _eps_key(row):
  eps = row.get("target_epsilon")
  return math.inf if eps is None else float(eps)


def _mean_std(values):
  values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
  if not values:
    return math.nan, math.nan, 0
  arr = np.asarray(values, np.float64)
  return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0, int(arr.size)


def group(rows, keys):
  out = collections.defaultdict(list)
  for row in rows:
    if "error" in row:
      continue
    out[tuple(k(row) if callable(k) else row.get(k) for k in keys)].append(row)
  return out


def _method_rank(method):
  """METHOD_ORDER's order; a method with a series suffix (`with_series`) right after its own."""
  base, _, suffix = method.partition(" ")
  rank = METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER)
  return (rank, suffix)


def with_series(rows, series):
  """Rows whose method names carry a suffix per sweep, from "SWEEP=SUFFIX" strings: two sweeps
  of the same methods become separate lines of one figure and separate rows of one table."""
  suffixes = {}
  for item in series:
    sweep, sep, suffix = item.partition("=")
    if not sep or not suffix.strip():
      raise ValueError(f"expected SWEEP=SUFFIX, got {item!r}")
    if not any(r.get("sweep") == sweep for r in rows):
      raise ValueError(f"no rows of sweep {sweep!r}")
    suffixes[sweep] = suffix.strip()
  return [
    {**r, "method": f"{r['method']} {suffixes[r['sweep']]}"} if r.get("sweep") in suffixes else r
    for r in rows
  ]


def frontier(rows, metric, path, title):

  groups = group(rows, ("method", _eps_key))
  methods = sorted({m for m, _ in groups}, key=_method_rank)
  finite = sorted({e for _, e in groups if math.isfinite(e)})
  inf_x = (max(finite) * 3) if finite else 1.0
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for method in methods:
    eps = sorted(e for m, e in groups if m == method)
    stats = [_mean_std([r.get(metric) for r in groups[(method, e)]]) for e in eps]
    xs = [e if math.isfinite(e) else inf_x for e in eps]
    means = [s[0] for s in stats]
    stds = [s[1] for s in stats]
    ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
  trtr = _mean_std([r.get(metric.replace("tstr/", "trtr/")) for r in rows if "error" not in r])
  if metric.startswith("tstr/") and not math.isnan(trtr[0]):
    ax.axhline(trtr[0], color="k", ls="--", lw=1, label="train on real (TRTR)")
  chance = _mean_std([r.get("utility/majority_baseline") for r in rows if "error" not in r])
  # The majority class's accuracy; it is not the majority class's F1.
  if metric.startswith("tstr/") and not metric.endswith("_f1") and not math.isnan(chance[0]):
    ax.axhline(chance[0], color="grey", ls=":", lw=1, label="majority class")
  ax.set_xscale("log")
  ticks = finite + ([inf_x] if any(not math.isfinite(e) for _, e in groups) else [])
  ax.set_xticks(ticks)
  ax.set_xticklabels([f"{t:g}" if t != inf_x else "inf\n(no DP)" for t in ticks])
  ax.set_xlabel("epsilon (delta = 1e-5): end-to-end, except per-record for lipdp-conditional")
  ax.set_ylabel(metric)
  ax.set_title(title or metric)
  ax.legend(fontsize=7, loc="best")
  ax.grid(alpha=0.3)
  _save(fig, path)


def knobs(rows, metric, path, title):

  groups = group(rows, ("method", _eps_key, "tag"))
  panels = sorted({(m, e) for m, e, _ in groups}, key=lambda p: (_method_rank(p[0]), p[1]))
  fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
  for ax, (method, eps) in zip(axes[0], panels):
    tags = [t for m, e, t in groups if (m, e) == (method, eps)]
    tags = sorted(tags, key=lambda t: (t != "base", t))
    stats = [_mean_std([r.get(metric) for r in groups[(method, eps, t)]]) for t in tags]
    ax.barh(
      range(len(tags)),
      [s[0] for s in stats],
      xerr=[s[1] for s in stats],
      color=["tab:orange" if t == "base" else "tab:blue" for t in tags],
    )
    ax.set_yticks(range(len(tags)))
    ax.set_yticklabels(tags, fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"{method}, eps={eps:g}", fontsize=8)
    ax.set_xlabel(metric, fontsize=8)
    ax.grid(alpha=0.3, axis="x")
  if title:
    fig.suptitle(title, fontsize=9)
  _save(fig, path)


def _save(fig, path):
  fig.tight_layout()
  with files.atomic_write(path, "wb") as f:
    fig.savefig(f, format="png", dpi=130)
  plt.close(fig)


def _cell(values, digits: int = 3, empty: str = "") -> str:
  """The mean ± standard deviation of `values` (None and NaN left out); the mean alone for one
  value, `empty` for none."""
  mean, std, count = _mean_std(values)
  if count == 0:
    return empty
  return f"{mean:.{digits}f}" if count == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def table(rows, by_tag: bool, metrics=None, digits: int = 3) -> str:
  """A markdown table: one line per method (and setting, `by_tag`) and epsilon, the mean ± sd
  over seeds of each of `metrics` (default: those of TABLE_METRICS the rows hold), to
  `digits` decimals."""
  keys = ("method", "tag", _eps_key) if by_tag else ("method", _eps_key)
  groups = group(rows, keys)
  metrics = [m for m in (metrics or TABLE_METRICS) if any(m in r for r in rows)]
  head = ["method"] + (["setting"] if by_tag else []) + ["epsilon", "seeds"] + metrics
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for key in sorted(
    groups,
    key=lambda k: (
      (_method_rank(k[0]),)
      + tuple((x if not isinstance(x, str) else (x != "base", x)) for x in k[1:])
    ),
  ):
    rs = groups[key]
    eps = key[-1]
    cells = (
      [key[0]]
      + ([key[1]] if by_tag else [])
      + ["inf" if not math.isfinite(eps) else f"{eps:g}", str(len(rs))]
    )
    for metric in metrics:
      cells.append(_cell([r.get(metric) for r in rs], digits, empty="-"))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


# What a release can carry (docs/results.md; experiments/release_information.py): the paired
# differences of the release against the same weights' prior samples (evaluation.compare_prior).
RELEASE_AGAINST_PRIOR = (("TSTR", "tstr/logreg"), ("DCR to train, median", "privacy/dcr_train_q50"))


def release_information_table(rows, num_classes: int = 10) -> str:
  """A markdown table, one line per method, tag and epsilon (the seeds together) of the rows
  with a homoscedastic per-record release: its per-record epsilon, the capacity bound of that
  release (`lipdp.privacy.information.per_record_information_bound`, from the row's per-record
  epsilon and delta), Fano's floor on reading a label of `num_classes` equally likely classes
  from it, and, where the row has them, the release's TSTR and median distance to the closest
  training record beside its prior samples' and the paired difference."""
  with_release = [
    r for r in rows if r.get("per_record_epsilon") and r.get("release_sigma") is not None
  ]
  groups = group(with_release, ("method", "tag", _eps_key))
  header = ["method", "tag", "epsilon", "per-record epsilon", "bound (nats)", "label error floor"]
  for name, _ in RELEASE_AGAINST_PRIOR:
    header += [f"{name}, release", f"{name}, prior", f"{name}, release - prior"]
  header.append("seeds")
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for key in sorted(groups, key=lambda k: (k[0], k[1] or "", k[2])):
    rs = groups[key]
    bound = float(
      np.mean(
        [information.per_record_information_bound(r["per_record_epsilon"], r["delta"]) for r in rs]
      )
    )
    cells = [
      key[0],
      key[1] or "",
      f"{key[2]:g}",
      f"{np.mean([r['per_record_epsilon'] for r in rs]):.4g}",
      f"{bound:.3g}",
      f"{information.fano_error_lower_bound(bound, num_classes):.2f}",
    ]
    for _, metric in RELEASE_AGAINST_PRIOR:
      prior = f"prior_sampling/{metric}"
      paired = [
        r[metric] - r[prior] for r in rs if r.get(metric) is not None and r.get(prior) is not None
      ]
      cells += [
        _cell([r.get(metric) for r in rs]),
        _cell([r.get(prior) for r in rs]),
        _cell(paired),
      ]
    cells.append(str(len(rs)))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def encoder_information_table(measured) -> str:
  """A markdown table of measured encoders (experiments/release_information.py --points), one
  line per method, tag and epsilon (the seeds together): the capacity bound, the means' largest
  distance as a fraction of the certified L*D, and I(J; Z), alone and over the bound."""
  groups = collections.defaultdict(list)
  for m in measured:
    groups[(m["method"], m["tag"], m["epsilon"])].append(m)
  header = [
    "method",
    "tag",
    "epsilon",
    "bound (nats)",
    "means' largest distance / (L D)",
    "I(J; Z) (nats)",
    "I(J; Z) / bound",
    "seeds",
  ]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for key in sorted(groups):
    ms = groups[key]
    cells = [
      key[0],
      key[1],
      f"{key[2]:g}",
      f"{np.mean([m['bound_nats'] for m in ms]):.3g}",
      _cell([m["largest_distance"] / m["sensitivity"] for m in ms], 2),
      _cell([m["information_nats"] for m in ms], 4),
      _cell([m["information_nats"] / m["bound_nats"] for m in ms], 3),
      str(len(ms)),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def information_figure(measured, path: str, title: str, delta: float = 1e-5) -> None:
  """The capacity bound against the per-record epsilon (a curve, at `delta`), and the measured
  I(J; Z) of trained encoders (experiments/release_information.py --points), one series per
  method and tag, mean and standard deviation over seeds; both axes logarithmic."""
  groups = collections.defaultdict(list)
  for m in measured:
    groups[(m["method"], m["tag"])].append(m)
  per_record = [m["per_record_epsilon"] for m in measured]
  low, high = min(per_record + [1.0]) / 1.5, max(per_record + [16.0]) * 1.5
  grid = np.geomspace(low, high, 60)
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  ax.plot(
    grid,
    [information.per_record_information_bound(e, delta) for e in grid],
    color="k",
    lw=1.5,
    label="capacity bound mu^2 / 4 (any design)",
  )
  ax.axhline(math.log(10), color="grey", ls=":", lw=1, label="a digit's label: log 10 nats")
  for (method, tag), ms in sorted(groups.items()):
    by_eps = collections.defaultdict(list)
    for m in ms:
      by_eps[round(m["per_record_epsilon"], 6)].append(m["information_nats"])
    eps = sorted(by_eps)
    stats = [_mean_std(by_eps[e]) for e in eps]
    ax.errorbar(
      eps,
      [s[0] for s in stats],
      yerr=[s[1] for s in stats],
      marker="o",
      capsize=3,
      ls="--",
      label=f"measured: {method}, {tag}",
    )
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel(f"per-record epsilon of the release (delta = {delta:g})")
  ax.set_ylabel("nats about each record")
  ax.set_title(title)
  ax.legend(fontsize=7, loc="best")
  ax.grid(alpha=0.3, which="both")
  _save(fig, path)
