"""One process of a multi-process training run on localhost (for tests/training/test_multihost.py).

    python tests/training/multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR

Each process has 2 CPU devices and talks to the others over gloo, as hosts of a cluster would;
`jax.distributed.initialize` must run before anything touches the devices. Process 0 writes the
trained parameters of each scenario (plain, DP-SGD, DP-SGD stopped after 3 steps with a
checkpoint) to OUT_DIR.
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # pylint: disable=g-import-not-at-top

jax.config.update("jax_cpu_collectives_implementation", "gloo")


def main(process_id: int, num_processes: int, port: int, out_dir: str) -> None:
  jax.distributed.initialize(f"localhost:{port}", num_processes, process_id)
  import numpy as np  # pylint: disable=g-import-not-at-top

  # The script's folder is on sys.path (python runs it by path); lipdp is installed.
  import multihost_setup as setup  # pylint: disable=g-import-not-at-top
  from lipdp import training  # pylint: disable=g-import-not-at-top

  assert jax.process_count() == num_processes and jax.device_count() == 2 * num_processes
  for name, config, stop_after in setup.SCENARIOS:
    workdir = os.path.join(out_dir, f"workdir_{name}")
    result = training.train(
      setup.model(), setup.records(), setup.BLOCKS, config, workdir=workdir, stop_after=stop_after
    )
    if jax.process_index() == 0:
      np.save(os.path.join(out_dir, f"{name}.npy"), setup.flat(result.state.params))


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
