"""A fresh `TrainState` for the tests that drive steps and clipped sums without the loop."""

import jax
import jax.numpy as jnp
import numpy as np

from lipdp.training import loop
from lipdp.training import sharding
from lipdp.training import steps


def create(model, optimizer, sample_records, init_key) -> steps.TrainState:
  """Step 0 as the loop builds it (`loop.init_state`; the noise key folded from `init_key`,
  as the loop folds it), jitted."""

  def init(key):
    return loop.init_state(loop.vae_init_variables(model), optimizer, sample_records, key)

  return jax.jit(init)(init_key)


def toy_dpsgd_step(model, blocks, records, dp, optimizer, state, seed=9):
  """A `DPSGDStep` of `model` (with `blocks`) on a 2-device mesh: (step, mesh)."""
  mesh = sharding.data_mesh(jax.devices()[:2])
  step = steps.DPSGDStep(
    loop.vae_loss(model, blocks),
    optimizer,
    mesh,
    dp=dp,
    num_records=len(records),
    seed=seed,
    sample_record=jnp.zeros((1, records.shape[1])),
    param_shapes=state.params,
  )
  return step, mesh


def run_step(step, mesh, state, records, run_key, host_inputs):
  """One `step.update` from a host copy of `state` (the step donates its input), the records
  and the placed `host_inputs` on `mesh`: (new state, metrics)."""
  state = jax.tree_util.tree_map(np.asarray, state)
  return step.update(
    jax.device_put(state, sharding.replicated(mesh)),
    sharding.replicate(mesh, records),
    run_key,
    step.place(host_inputs),
  )
