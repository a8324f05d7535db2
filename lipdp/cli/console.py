"""What a person sees in the terminal: lipdp's own short lines, quiet libraries, plain errors.

`configure_logging` routes the standard `logging` logger "lipdp" (where `lipdp.pipeline` reports
its progress) to stderr as plain lines ("warning: ..." for warnings) and silences what the
libraries log by default: absl INFO (orbax's checkpoint chatter), JAX's backend probing
("Unable to initialize backend 'tpu'", "libtpu not found"), TensorFlow's C++ logs. `verbose=True`
shows all of it. `run_summary` is the final summary that `lipdp synthesize` and
experiments/main.py print: each released file is labelled with what the guarantee covers
(`coverage`), and the conditional scope's limit is among the warnings (`scope_warnings`).
"""

import logging
import os
import sys
import textwrap
import traceback
from typing import Optional, Sequence, TextIO, Tuple
import warnings

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
  handler = _ConsoleHandler()
  handler.setFormatter(_Lines())
  logger.addHandler(handler)
  logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
  logger.propagate = False

  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  library_level = logging.INFO if verbose else logging.ERROR
  absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.ERROR)
  logging.getLogger().setLevel(library_level)
  for name in _LIBRARY_LOGGERS:
    logging.getLogger(name).setLevel(library_level)
  if not verbose:
    # Deprecation and future warnings of dependencies say nothing a user can act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


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
  from lipdp import privacy  # pylint: disable=g-import-not-at-top

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
  from lipdp import privacy  # pylint: disable=g-import-not-at-top

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
    result: a `lipdp.pipeline.PipelineResult`.
    workdir: the run's work directory.
    outputs: extra (path, description) pairs to list first (e.g. the synthetic CSV).
  """
  report = result.report
  n_train, n_holdout = len(result.data.train), len(result.data.holdout)
  lines = [
    "",
    f"Synthetic records: {len(result.synthetic_records):,} from {n_train:,} private "
    f"records (k = {report.k}).",
  ]
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
    from lipdp import evaluation  # pylint: disable=g-import-not-at-top

    lines.append("")
    lines.extend(evaluation.summary_lines(result.metrics))
  warned = scope_warnings(report) + list(getattr(result, "warnings", None) or [])
  if warned:
    lines.append("")
    lines.extend(f"warning: {w}" for w in warned)
  lines.append("")
  lines.append("Wrote:")
  rows = list(outputs)
  rows.append(
    (
      result.release_dir + os.sep,
      f"the release: synthetic.npz, privacy_report.json, domain.json ({coverage(report)})",
    )
  )
  if result.metrics is not None:
    rows.append((os.path.join(workdir, "evaluation.json"), "NOT private: do not publish"))
  rows.append((os.path.join(workdir, "samples.png"), "shows private records: do not publish"))
  if result.model is not None:
    rows.append(
      (workdir + os.sep, "checkpoints, metrics.jsonl, config.json: private training artefacts")
    )
  else:  # a central baseline: no model, only the settings
    rows.append((workdir + os.sep, "config.json: the run's settings"))
  width = max(len(path) for path, _ in rows)
  lines.extend(f"  {path:<{width}}  {what}" for path, what in rows)
  lines.append("Time: " + _timing_line(result.timings or {}))
  return "\n".join(lines)
