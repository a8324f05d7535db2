"""A fresh `TrainState` for the tests that drive steps and clipped sums without the loop."""

import flax
import jax
import jax.numpy as jnp

from lipdp.training import steps


def create(model, optimizer, sample_records, init_key) -> steps.TrainState:
  """Step 0: parameters from `model.init(init_key, zeros like sample_records, noise key)` (the
  noise key folded from `init_key`, as the loop folds it), the optimiser's state; jitted."""

  def init(key):
    variables = flax.core.unfreeze(
      model.init(key, jnp.zeros_like(sample_records), jax.random.fold_in(key, 1))
    )
    params = variables.pop("params")
    return steps.TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=variables,
      opt_state=optimizer.init(params),
    )

  return jax.jit(init)(init_key)
