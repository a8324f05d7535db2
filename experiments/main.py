r"""Main job: train a Lipschitz VAE, certify it, synthesize private data, write the report.

  python experiments/main.py --workdir=runs/digits \
      --config=experiments/configs/default.py --config.epsilon=1 --config.scope=conditional

See lipdp/pipeline.py for what is written where.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lipdp import pipeline  # pylint: disable=g-import-not-at-top

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/digits", "Directory for checkpoints, metrics and the release.")
flags.DEFINE_bool("distributed", False,
                  "Call jax.distributed.initialize() first (one process per host). Unset "
                  "coordinator/process settings are detected from the cluster (Cloud TPU, SLURM, "
                  "Open MPI) or JAX_COORDINATOR_ADDRESS.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --distributed).")
flags.DEFINE_integer("num_processes", None, "Number of processes (with --distributed).")
flags.DEFINE_integer("process_id", None, "This process's id in [0, num_processes).")
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Experiment configuration.",
                                lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  if FLAGS.distributed:
    import jax  # pylint: disable=g-import-not-at-top
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                               FLAGS.process_id)  # before anything touches the devices
  result = pipeline.run(FLAGS.config, FLAGS.workdir)
  report = result.report
  print(f"\nSynthetic records: {len(result.synthetic_records)} "
        f"(from {len(result.data.train)} private records; {len(result.data.holdout)} held out "
        "for evaluation only)")
  print(report.summary())
  if result.metrics is not None:
    from lipdp import evaluation  # pylint: disable=g-import-not-at-top
    print()
    print("\n".join(evaluation.summary_lines(result.metrics)))
  print("\nWrote:")
  for name in sorted(os.listdir(result.release_dir)):
    print(f"  {os.path.join(result.release_dir, name)}")
  if result.metrics is not None:
    print(f"  {os.path.join(FLAGS.workdir, 'evaluation.json')}  (not DP: do not release)")
  print(f"  {os.path.join(FLAGS.workdir, 'samples.png')}  (shows private records: do not release)")
  print(f"  {os.path.join(FLAGS.workdir, 'metrics.jsonl')}")
  print("Time: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in result.timings.items()))


if __name__ == "__main__":
  app.run(main)
