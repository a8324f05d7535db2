"""A fresh `TrainState` for the tests that drive steps and clipped sums without the loop."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import toy
from lipdp import randomness

from lipdp.training import batching
from lipdp.training import loop
from lipdp.training import per_example
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


def placed_parts(clipped_sum, state, records, indices, rng, by_record_keys, chunk=8):
  """Each microbatch's clipped sum of the records at `indices` as `DPSGDStep` computes them on
  a grid: laid out by `batching.place_by_index`, split over a 2-device mesh by
  `steps.mesh_clipped_sum`, empty slots masked, model noise keyed by record index (as one key
  per row, `by_record_keys`, or as `record_ids`). A list, one sum per microbatch."""
  clipped_sum = steps.mesh_clipped_sum(clipped_sum, sharding.data_mesh(jax.devices()[:2]))

  @jax.jit
  def microbatch(params, model_state, records, ids):
    mask = (ids >= 0).astype(jnp.float32)
    ids = jnp.maximum(ids, 0)
    batch = jnp.take(records, ids, axis=0)
    if by_record_keys:
      keys = per_example.record_keys(rng, ids)
      return clipped_sum(params, model_state, batch, mask, keys)[0]
    return clipped_sum(params, model_state, batch, mask, rng, record_ids=ids)[0]

  layout = batching.place_by_index(np.asarray(indices), chunk)
  return [
    microbatch(state.params, state.model_state, jnp.asarray(records), layout.indices[c])
    for c in range(layout.num_chunks)
  ]


class ToyStep(NamedTuple):
  """`toy_step`'s result: the step and its inputs, and after one update the state and key."""

  step: Any
  mesh: Any
  state: Any  # before the update
  records: np.ndarray
  loss_fn: Any
  new: Any = None  # after one update (SGD at rate 1)
  stats: Any = None
  model_rng: Any = None  # the update's model-noise key (`steps.MODEL_NOISE_STREAM`)


def toy_step(dp, run: bool = True) -> ToyStep:
  """A DPSGDStep of `toy.model()` on 40 toy records (SGD at rate 1, a 2-device mesh, noise seed
  9), and with `run` its first update from the run key of seed 123: what the tests of a step
  against its pieces start from."""
  model, records = toy.model(), toy.records(40)
  sgd = optax.sgd(1.0)
  state = create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  step, mesh = toy_dpsgd_step(model, toy.BLOCKS, records, dp, sgd, state)
  loss_fn = loop.vae_loss(model, toy.BLOCKS)
  if not run:
    return ToyStep(step, mesh, state, records, loss_fn)
  host = step.host_inputs(0)
  assert host[0].count == 40 and host[0].num_chunks == 5
  run_key = randomness.key_from_seed(123)
  new, stats = run_step(step, mesh, state, records, run_key, host)
  model_rng = steps.step_rng(run_key, 0, steps.MODEL_NOISE_STREAM)
  return ToyStep(step, mesh, state, records, loss_fn, new, stats, model_rng)


class Neighbours(NamedTuple):
  """A batch's sums with and without record `index`, and with its content replaced."""

  index: int
  full: Any  # every record
  without: Any  # every record but `index`
  alone: Any  # `index` alone
  replaced: Any  # every record, `index`'s content replaced by another record's
  replaced_alone: Any  # the replacement alone (None unless asked for)


def neighbouring_sums(layout_sum, records, indices=(0, 5, 13, 23), replaced_alone=False):
  """`layout_sum(records, ids)` of the batches the accounting compares, for each i in `indices`
  (replace-one: i's content becomes record (i + 7) mod n's)."""
  everyone = list(range(len(records)))
  full = layout_sum(records, everyone)
  for i in indices:
    replaced = records.copy()
    replaced[i] = records[(i + 7) % len(records)]
    yield Neighbours(
      i,
      full,
      layout_sum(records, [j for j in everyone if j != i]),
      layout_sum(records, [i]),
      layout_sum(replaced, everyone),
      layout_sum(replaced, [i]) if replaced_alone else None,
    )
