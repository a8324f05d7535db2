"""Several processes (hosts) train exactly what one process trains, and share checkpoints.

Two processes with 2 CPU devices each run over localhost with gloo collectives
(`jax.distributed.initialize`), as the hosts of a cluster would; this process, with 4 devices,
runs the same scenarios alone. DP-SGD agreeing shows that every host drew the same Poisson
batch and that the noise was added once (added per host, it would be there twice).
"""

import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import multihost_setup as setup
from lipdp import training

_HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("multihost")
  port = _free_port()
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        os.path.join(_HERE, "multihost_worker.py"),
        str(i),
        "2",
        str(port),
        str(out),
      ],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=600)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  return out


def _alone(name, workdir=None, devices=4):
  _, config, stop_after = next(s for s in setup.SCENARIOS if s[0] == name)
  return training.train(
    setup.model(),
    setup.records(),
    setup.BLOCKS,
    config,
    workdir=workdir,
    devices=jax.devices()[:devices],
    stop_after=stop_after,
  )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["plain", "dpsgd"])
def test_two_processes_train_what_one_process_trains(two_process_run, name):
  assert jax.device_count() >= 4, "tests/conftest.py should force 4 host devices"
  two = np.load(two_process_run / f"{name}.npy")
  one = setup.flat(_alone(name).state.params)
  # For DP-SGD this means every host drew the same Poisson batches and the noise went into the
  # global sum once: noise added per host would be there twice (std z C sqrt(2) / (q n)).
  np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_one_process_resumes_a_checkpoint_written_by_two(two_process_run, tmp_path):
  workdir = tmp_path / "resumed"
  shutil.copytree(two_process_run / "workdir_dpsgd_killed", workdir)
  _, config, _ = next(s for s in setup.SCENARIOS if s[0] == "dpsgd_killed")
  resumed = training.train(
    setup.model(),
    setup.records(),
    setup.BLOCKS,
    config,
    workdir=str(workdir),
    devices=jax.devices()[:1],
  )
  assert resumed.resumed_from == 3
  np.testing.assert_allclose(
    setup.flat(resumed.state.params), setup.flat(_alone("dpsgd").state.params), rtol=1e-5, atol=1e-6
  )
