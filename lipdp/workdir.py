"""The work directory of a run: its layout, its guard, and its one release.

    workdir/
      config.json          the run's settings (`lipdp.spec.to_config`), compared on resume
      checkpoints/         orbax checkpoints of training            } private training artefacts:
      metrics.jsonl        training metrics, one JSON line per log  } never release them
      train_seed.json      an unseeded run's secret seed, until training completes
      dpsgd.json           scope 'dp-sgd': the noise multiplier, sampling rate and sum the
                           weights were trained with, checked on resume and before a release
      pretrain/            scope 'dp-sgd' with public pretraining: the plain steps on the
                           public data set, laid out like a training (checkpoints/, ...)
      release/             the release (`lipdp.release`: synthetic.npz, privacy_report.json,
                           domain.json), written whole or not at all
      evaluation.json      utility, fidelity and empirical privacy measured on the private
                           holdout (lipdp.evaluation): NOT differentially private
      samples.png          real versus synthetic records: shows private records

This module is the only one that spells these names. A run checks the folder before anything
is written (`check`); the run (`lipdp.runner`) refuses a second release from the same private
records and records its settings once every other check passed. This module imports no settings
(`lipdp.spec`), so training can use it. The latest checkpoint is what orbax's manager says
(`checkpoint_manager`, which training uses too), never a listing of its folder.
"""

import os
from typing import Optional

import orbax.checkpoint as ocp

from lipdp import release as release_lib

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
METRICS_FILE = "metrics.jsonl"
TRAIN_SEED_FILE = "train_seed.json"
# The DP-SGD noise multiplier and sampling rate the weights were trained with: a run that
# resumes or releases from them must account exactly these (lipdp.methods.vae).
DPSGD_FILE = "dpsgd.json"
# A digest of the records and the domain the run was opened with: a resumed run or a new release
# must see the same data (lipdp.runner.open_for).
DATA_DIGEST_FILE = "data_digest.json"
RELEASE_DIR = "release"
EVALUATION_FILE = "evaluation.json"
SAMPLES_FIGURE = "samples.png"
PRETRAIN_DIR = "pretrain"

# Checkpoints kept by training (the latest two: one survives a crash while writing the next).
_MAX_CHECKPOINTS = 2


def path(workdir: str, name: str) -> str:
  """The path of one of the layout's names (module docstring) in `workdir`."""
  return os.path.join(workdir, name)


def release_dir(workdir: str) -> str:
  return path(workdir, RELEASE_DIR)


def check(workdir: str) -> None:
  """A clear error, before anything is written, for a work directory that cannot be used."""
  if not workdir:
    raise ValueError("the work directory is empty: give a folder for the run")
  full = os.path.abspath(workdir)
  if os.path.exists(full) and not os.path.isdir(full):
    raise ValueError(f"the work directory {workdir} is a file, not a folder")
  existing = full
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f"cannot create the work directory {workdir}: {existing} is a file")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"cannot write to the work directory {workdir}: {existing} is not writable")


def holds_release(workdir: str) -> bool:
  return os.path.exists(os.path.join(release_dir(workdir), release_lib.REPORT_FILE))


def checkpoint_manager(workdir: str, read_only: bool = False) -> ocp.CheckpointManager:
  """Orbax's manager of workdir/checkpoints, as training saves and restores through it.

  A save cut off by a crash leaves a temporary folder holding the weights of steps that the
  resumed run executes again with the same batch and noise. A replay need not be bit-identical
  (another device count, another summation order), and two noisy results with one noise draw
  give their noise-free difference; so writable managers remove such folders when they open.
  """
  return ocp.CheckpointManager(
    os.path.abspath(path(workdir, CHECKPOINTS)),
    options=ocp.CheckpointManagerOptions(
      max_to_keep=_MAX_CHECKPOINTS,
      create=not read_only,
      read_only=read_only,
      cleanup_tmp_directories=not read_only,
    ),
  )


def latest_checkpoint_step(workdir: str) -> Optional[int]:
  """The step training would resume from (orbax's latest finished checkpoint), if any."""
  if not os.path.isdir(path(workdir, CHECKPOINTS)):
    return None
  manager = checkpoint_manager(workdir, read_only=True)
  try:
    return manager.latest_step()
  finally:
    manager.close()
