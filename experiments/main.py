r"""Main job: train a Lipschitz VAE, certify it, synthesize private data, write the report.

  python experiments/main.py --workdir=runs/digits \
      --config=experiments/configs/default.py:conditional --config.epsilon=1

The config becomes a validated `lipdp.spec.Spec` and `lipdp.runner.run` does the work (see it
for what is written where). The console shows lipdp's own progress lines,
the progress bar and a final summary; the libraries' logs (orbax, absl INFO, JAX's backend
probing) and tracebacks only with --verbose. An error is one plain line and exit status 1 (2 for
a flag that does not parse).
"""

import os
import sys

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from lipdp import console
from lipdp import runner
from lipdp import spec as spec_lib

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/digits", "Directory for checkpoints, metrics and the release.")
flags.DEFINE_bool(
  "distributed",
  False,
  "Call jax.distributed.initialize() first (one process per host). Unset "
  "coordinator/process settings are detected from the cluster (Cloud TPU, SLURM, "
  "Open MPI) or JAX_COORDINATOR_ADDRESS.",
)
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --distributed).")
flags.DEFINE_integer("num_processes", None, "Number of processes (with --distributed).")
flags.DEFINE_integer("process_id", None, "This process's id in [0, num_processes).")
flags.DEFINE_bool(
  "verbose", False, "Show tracebacks and the libraries' logs (absl INFO, orbax, JAX)."
)
_PROG = "experiments/main.py"


def _flag_error(message: str) -> None:
  print(f"{_PROG}: error: {message}\nRun '{_PROG} --helpshort' for the flags.", file=sys.stderr)
  sys.exit(2)


def _unknown_field_message(error: Exception) -> str:
  """ml_collections' KeyError-in-AttributeError for --config.<unknown>, as one line."""
  inner = error
  while isinstance(inner, BaseException) and inner.args:
    inner = inner.args[0]
  lines = str(inner).split("\n")
  field = lines[0].strip("'\"")
  hint = " ".join(lines[1:]).strip()
  return (
    f"the configuration has no field {field!r}"
    + (f" ({hint})" if hint else "")
    + "; its fields are in experiments/configs/default.py"
  )


try:  # parses the --config.* overrides of sys.argv already, to define their flags
  config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG, "Experiment configuration.", lock_config=True
  )
except (AttributeError, KeyError) as e:
  if __name__ != "__main__":
    raise
  _flag_error(_unknown_field_message(e))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  console.configure_logging(verbose=FLAGS.verbose)
  try:
    spec = spec_lib.from_config(FLAGS.config)  # validated once, here
    if FLAGS.distributed:
      jax.distributed.initialize(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
      )  # before anything touches the devices
    result = runner.run(spec, FLAGS.workdir, progress=True)
  except KeyboardInterrupt:
    print(
      f"\n{_PROG}: interrupted. Run the same command again to resume from the last checkpoint.",
      file=sys.stderr,
    )
    sys.exit(130)
  except (ValueError, OSError) as e:  # lipdp's own clear messages, and the system's
    console.print_error(_PROG, e, verbose=FLAGS.verbose)
    sys.exit(1)
  except Exception as e:  # pylint: disable=broad-except
    console.print_error(_PROG, e, verbose=FLAGS.verbose, expected=False)
    sys.exit(1)
  print(console.run_summary(result, FLAGS.workdir))


def _parse_flags(argv):
  """absl's flag parsing, with a one-line error instead of a traceback."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    message = str(e)
  except (AttributeError, KeyError) as e:  # an override of a field the config lacks
    message = _unknown_field_message(e)
  except (TypeError, ValueError) as e:  # a config override that does not parse
    message = " ".join(str(e).split())
  _flag_error(message)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
