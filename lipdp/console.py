"""What a person sees in the terminal: every line of lipdp's console text, and quiet libraries.

The run (`lipdp.runner`) reports through the standard `logging` logger "lipdp"; the words are
made here. `configure_logging` routes that logger to stderr as plain lines ("warning: ..." for
warnings) and silences what the libraries log by default: absl INFO (orbax's checkpoint
chatter), JAX's backend probing ("Unable to initialize backend 'tpu'", "libtpu not found"),
TensorFlow's C++ logs. `verbose=True` shows all of it. The lines of a run (`data_lines`,
`split_line`, `plan_line`, `training_line`, ...) are what it logs as it goes; `run_summary` is
the final summary that `lipdp synthesize` and experiments/main.py print: each released file is
labelled with what the guarantee covers (`coverage`), and the conditional scope's limit is among
the warnings (`scope_warnings`). `progress_line` is the plain progress line of
`lipdp.progress` where stderr is not a terminal.
"""

import logging
import os
import sys
import textwrap
import traceback
from typing import List, Optional, Sequence, TextIO, Tuple
import warnings

from absl import logging as absl_logging

from lipdp import evaluation
from lipdp import privacy
from lipdp import workdir as workdir_lib

LIPDP_LOGGER = "lipdp"
# Loggers of dependencies that speak at INFO or WARNING about things a user cannot act on.
_LIBRARY_LOGGERS = (
  "absl",
  "jax",
  "jax._src.xla_bridge",
  "orbax",
  "tensorflow",
  "matplotlib",
  "PIL",
  "h5py",
)


class _Lines(logging.Formatter):
  """'message' for progress, 'warning: message' for warnings and errors."""

  def format(self, record: logging.LogRecord) -> str:
    message = record.getMessage()
    if record.levelno >= logging.WARNING:
      return f"{record.levelname.lower()}: {message}"
    return message


class _ConsoleHandler(logging.StreamHandler):
  """Writes to whatever sys.stderr is at the time (so test capture and redirection work)."""

  def __init__(self):
    super().__init__(sys.stderr)

  @property
  def stream(self):
    return sys.stderr

  @stream.setter
  def stream(self, value):  # logging.StreamHandler sets it; sys.stderr is always used
    del value


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
  """lipdp's progress as plain lines on stderr; library logs only with `verbose`.

  Idempotent: calling it again replaces the previous settings.

  Args:
    verbose: show the libraries' logs (absl INFO, orbax, JAX) and lipdp's debug lines.
    quiet: only lipdp's warnings and errors.
  """
  # Before TensorFlow is imported (tensorflow_datasets may import it), its C++ logs.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
  logger = logging.getLogger(LIPDP_LOGGER)
  for handler in list(logger.handlers):
    if isinstance(handler, _ConsoleHandler):
      logger.removeHandler(handler)
  _add_lines(logger, logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)

  library_level = logging.INFO if verbose else logging.ERROR
  absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.ERROR)
  logging.getLogger().setLevel(library_level)
  for name in _LIBRARY_LOGGERS:
    logging.getLogger(name).setLevel(library_level)
  if not verbose:
    # Deprecation and future warnings of dependencies say nothing a user can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def show_lines(level: int = logging.INFO) -> None:
  """lipdp's own lines on stderr at `level`, touching no other logger: what `lipdp.synthesize`
  shows in a notebook when nothing has configured the "lipdp" logger (else a no-op: the
  application's choice stands)."""
  logger = logging.getLogger(LIPDP_LOGGER)
  if not logger.handlers and logger.level == logging.NOTSET:
    _add_lines(logger, level)


def _add_lines(logger: logging.Logger, level: int) -> None:
  handler = _ConsoleHandler()
  handler.setFormatter(_Lines())
  logger.addHandler(handler)
  logger.setLevel(level)
  logger.propagate = False


def log() -> logging.Logger:
  """The logger of the command-line tools (a child of "lipdp")."""
  return logging.getLogger(LIPDP_LOGGER + ".cli")


def print_error(
  prog: str,
  error: BaseException,
  verbose: bool = False,
  expected: bool = True,
  stream: Optional[TextIO] = None,
) -> None:
  """A plain line for an error; the traceback only with `verbose`.

  Args:
    prog: the program's name, to start the line with.
    error: the exception.
    verbose: also print the traceback.
    expected: the error is one of lipdp's own clear messages (bad input). Otherwise the line
      names the exception type and points to --verbose.
    stream: where to print (default sys.stderr).
  """
  stream = stream or sys.stderr
  if verbose:
    traceback.print_exception(type(error), error, error.__traceback__, file=stream)
  message = str(error).strip() or type(error).__name__
  if not expected:
    message = f"{type(error).__name__}: {message}"
  print(f"{prog}: error: {message}", file=stream)
  if not expected and not verbose:
    print("(an unexpected error: rerun with --verbose for the traceback)", file=stream)


def wrap(text: str, indent: str = "  ") -> str:
  """An indented paragraph wrapped at 100 columns."""
  return textwrap.fill(
    text,
    width=100,
    initial_indent=indent,
    subsequent_indent=indent + "  ",
    break_on_hyphens=False,
    break_long_words=False,
  )


def format_seconds(seconds: float) -> str:
  if seconds < 60:
    return f"{seconds:.1f} s"
  minutes, rest = divmod(int(round(seconds)), 60)
  return f"{minutes} min {rest:02d} s"


def _timing_line(timings: dict) -> str:
  names = {
    "prepare_s": "data and set-up",
    "train_s": "training",
    "fit_s": "fitting the baseline",
    "release_s": "release",
    "evaluation_s": "evaluation",
  }
  parts = [
    f"{names.get(k, k[:-2])} {format_seconds(v)}" for k, v in timings.items() if k != "total_s"
  ]
  total = timings.get("total_s")
  head = f"{format_seconds(total)} in all" if total is not None else "time"
  return f"{head} ({', '.join(parts)})"


def coverage(report) -> str:
  """What the guarantee covers, in a few words, to label each released file with."""
  return {
    privacy.Scope.CONDITIONAL: (
      "for release; epsilon per record, given the model: the model, fit WITHOUT DP, is not covered"
    ),
    privacy.Scope.DP_SGD: "for release; covered end to end: DP-SGD training and the release",
    privacy.Scope.PUBLIC: "for release; covered in full: the model saw only public data",
    privacy.Scope.DP_MEASUREMENTS: (
      "for release; covered in full: post-processing of noisy measurements"
    ),
  }[report.scope]


def scope_warnings(report) -> list:
  """The scope's limit, for the warnings of the summary (conditional scope only)."""
  if report.scope is not privacy.Scope.CONDITIONAL:
    return []
  return [
    f"scope conditional: the model was fit on the private records WITHOUT differential "
    f"privacy. epsilon = {report.epsilon:.4g} covers only the noise added to each record's "
    "latent given that model; the model's own dependence on the private records, and what "
    "synthetic records shaped by its decoder reveal about them, are not covered, and no "
    "central epsilon of the shuffled release is claimed. Scope dp-sgd or public gives a "
    "guarantee that covers the model"
  ]


def run_summary(result, workdir: str, outputs: Sequence[Tuple[str, str]] = ()) -> str:
  """The final summary of a run: guarantee, holdout, warnings, outputs, timings.

  Args:
    result: a `lipdp.runner.RunResult`.
    workdir: the run's work directory.
    outputs: extra (path, description) pairs to list first (e.g. the synthetic CSV).
  """
  report = result.report
  n_train, n_holdout = len(result.data.train), len(result.data.holdout)
  k = report.k if report is not None else len(result.synthetic_records) // max(n_train, 1)
  lines = [
    "",
    f"Synthetic records: {len(result.synthetic_records):,} from {n_train:,} private "
    f"records (k = {k}).",
  ]
  if report is None:
    lines.append(
      wrap(
        f"No privacy guarantee: method {result.method!r} in scope 'none' is a reference of "
        "the evaluation; nothing was released and no report was written.",
        indent="",
      )
    )
  else:
    for i, line in enumerate(report.summary().splitlines()):
      lines.append(line if i == 0 else wrap(line.strip()))
  if n_holdout:
    use = (
      "used only to evaluate the release (below; not private)"
      if result.metrics is not None
      else "not used (evaluation off)"
    )
    share = 100 * n_holdout / (n_train + n_holdout)
    lines.append(
      wrap(
        f"Holdout: {n_holdout:,} records ({share:.0f}%) were kept out of training "
        f"and synthesis, {use}.",
        indent="",
      )
    )
  else:
    lines.append("Holdout: none; every record was used for training and synthesis.")
  if result.metrics is not None:
    lines.append("")
    lines.extend(evaluation.summary_lines(result.metrics))
  warned = (scope_warnings(report) if report is not None else []) + list(result.warnings or [])
  if warned:
    lines.append("")
    lines.extend(f"warning: {w}" for w in warned)
  lines.append("")
  lines.append("Wrote:")
  rows = list(outputs)
  if result.release_dir is not None:
    rows.append(
      (
        result.release_dir + os.sep,
        f"the release: synthetic.npz, privacy_report.json, domain.json ({coverage(report)})",
      )
    )
  if result.metrics is not None:
    rows.append(
      (workdir_lib.path(workdir, workdir_lib.EVALUATION_FILE), "NOT private: do not publish")
    )
  rows.append(
    (
      workdir_lib.path(workdir, workdir_lib.SAMPLES_FIGURE),
      "shows private records: do not publish",
    )
  )
  if result.model is not None:
    rows.append(
      (workdir + os.sep, "checkpoints, metrics.jsonl, config.json: private training artefacts")
    )
  else:  # no model: only the settings
    rows.append((workdir + os.sep, "config.json: the run's settings"))
  width = max(len(path) for path, _ in rows)
  lines.extend(f"  {path:<{width}}  {what}" for path, what in rows)
  lines.append("Time: " + _timing_line(result.timings or {}))
  return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# The lines of a run, as it goes.


def data_lines(data) -> List[str]:
  """What was read: the records, the domain, and what reading did (counts of private data)."""
  info = data.source_info or {}
  columns = f", {len(info['column_order'])} declared columns" if "column_order" in info else ""
  lines = [
    f"Data: {data.name}: {len(data.train) + len(data.holdout):,} records{columns}, in a domain "
    f"of dimension {data.domain.dim} and diameter D = {data.domain.diameter:.4g}"
  ]
  if info.get("ignored_columns"):
    lines.append(f"  not in the schema, not read: {', '.join(info['ignored_columns'])}")
  if info.get("stripped_cells"):
    lines.append(
      f"  {info['stripped_cells']} cells had surrounding whitespace, removed (the reading rule "
      "of docs/data.md)"
    )
  if info.get("missing_substituted"):
    lines.append(
      "  missing cells given the declared value: "
      + ", ".join(f"{k} {v}" for k, v in info["missing_substituted"].items())
    )
  if info.get("clipped"):
    parts = []
    for name, counts in info["clipped"].items():
      where = [
        f"{counts[key]} {side}"
        for key, side in (("below_low", "below"), ("above_high", "above"))
        if counts[key]
      ]
      parts.append(f"{name} {' and '.join(where)}")
    lines.append(
      f"  clipped to the declared bounds: {', '.join(parts)} (counts of the private data: "
      "shown here, never released)"
    )
  return lines


def split_line(data, evaluation_enabled: bool) -> str:
  """What the private records and the holdout are used for."""
  n_train, n_holdout = len(data.train), len(data.holdout)
  if not n_holdout:
    return f"All {n_train:,} records are private training records (no holdout, so no evaluation)"
  use = (
    "used only to evaluate the release (evaluation.json; not private)"
    if evaluation_enabled
    else "unused, since evaluation is off"
  )
  return (
    f"Split: {n_train:,} private records train the model and are synthesized; {n_holdout:,} "
    f"({100 * n_holdout / (n_train + n_holdout):.0f}%) are held out, {use}"
  )


def plan_line(plan: privacy.BudgetPlan, scope: privacy.Scope, k: int) -> str:
  """The privacy budget fixed before training."""
  parts = []
  if plan.release_epsilon is not None:
    what = "per record" if plan.calibration == "per-record" else "central, of the shuffled release"
    parts.append(f"release epsilon {plan.release_epsilon:.4g} ({what})")
  if plan.dpsgd_noise_multiplier is not None:
    parts.append(f"DP-SGD noise multiplier {plan.dpsgd_noise_multiplier:.4g}")
  if plan.release_epsilon is None or plan.dpsgd_noise_multiplier is not None:
    parts.append(f"total epsilon {plan.total_epsilon:.4g}")
  return (
    "Privacy budget, fixed before training: "
    + "; ".join(parts)
    + f", at delta {plan.delta:g}; scope {scope.value}, k = {k}"
  )


def no_guarantee_line(method: str) -> str:
  return (
    f"No privacy guarantee: method {method!r} in scope 'none' is a reference of the "
    "evaluation; it writes no release and no report"
  )


def baseline_line(method: str, epsilon: float, delta: float) -> str:
  return (
    f"Baseline {method}: central epsilon {epsilon:g}, delta {delta:g} (scope dp-measurements: "
    "covers everything released)"
  )


def training_line(
  latest: Optional[int], num_steps: int, how: str, checkpoints: str, devices: int, backend: str
) -> str:
  """Training starts, resumes, or finished in an earlier run."""
  if latest is not None and latest >= num_steps:
    return f"Training finished in an earlier run (the checkpoint at step {latest} in {checkpoints})"
  if latest is not None:
    return f"Resuming from step {latest} of {num_steps} (the checkpoint in {checkpoints})"
  return f"Training: {num_steps} steps ({how}) on {devices} {backend.upper()} device" + (
    "s" if devices > 1 else ""
  )


def batch_line(batch: int, wanted: int, num_records: int, devices: int) -> str:
  return (
    f"Batch size {batch} instead of the configured {wanted} ({num_records:,} training records, "
    f"{devices} device{'s' if devices > 1 else ''})"
  )


def certificate_line(lipschitz: float, target: float, sigma: Optional[float]) -> str:
  return (
    f"Certified Lipschitz bound of the trained encoder mean: L = {lipschitz:.6g} (target "
    f"{target:.6g}); release noise sigma = " + (f"{sigma:.4g}" if sigma is not None else "nan")
  )


def released_line(num_records: int, release_dir: str) -> str:
  return f"Released {num_records:,} synthetic records into {release_dir}"


def progress_line(
  what: str, step: int, total: int, rate: Optional[float], remaining: Optional[float]
) -> str:
  """A plain progress line: 'train: step 500/2000 (25%), 12.3 steps/s, 2 min 02 s left'."""
  text = f"{what}: step {step:,}/{total:,} ({100 * step / max(total, 1):.0f}%)"
  if rate:
    text += f", {rate:.3g} steps/s"
  if remaining is not None:
    text += f", {format_seconds(remaining)} left"
  return text
