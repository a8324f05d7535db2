"""A fresh `TrainState` for the tests that drive steps and clipped sums without the loop."""

import jax

from lipdp.training import loop
from lipdp.training import steps


def create(model, optimizer, sample_records, init_key) -> steps.TrainState:
  """Step 0 as the loop builds it (`loop.init_state`; the noise key folded from `init_key`,
  as the loop folds it), jitted."""

  def init(key):
    return loop.init_state(loop.vae_init_variables(model), optimizer, sample_records, key)

  return jax.jit(init)(init_key)
