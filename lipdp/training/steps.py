"""Training steps behind one interface: plain (mean loss) and DP-SGD, over any `loss_fn`.

A step is split where the privacy rules split it (jax_privacy's layout): what a step reads is chosen
on the host in NumPy (`lipdp.training.batching`; the DP noise in float64, `lipdp.training.dpsgd`),
as a pure function of (seed, step), and everything that touches the data runs in one jitted function
on the devices. So the host work of step t + 1 can run on a background thread while the devices
compute step t (`lipdp.training.batching.Prefetcher`), and every host of a multi-host run computes
the same inputs without talking to the others.

    step = PlainStep(loss_fn, optimizer, mesh, ...)  or  DPSGDStep(...)
    inputs = step.place(step.host_inputs(t))          # host (any thread)
    state, metrics = step.update(state, records, key, inputs)   # devices, jitted, state donated

The records live on the devices for the whole run (`lipdp.training.sharding.place_records`); a step
receives only indices and gathers its rows inside the jitted function. Its PRNG keys are folded from
the run's key and `state.step` inside the function too. `metrics` stay on the devices until
`summarize` is called at a log step.

`loss_fn(params, model_state, records, rng, mutable) -> (per-example losses, aux, new model state)`
(`lipdp.training.per_example.LossFn`): aux maps names to per-example values (logged as batch
means in plain mode), and the new model state holds the collections named in `mutable` (e.g.
spectral power-iteration vectors), or {} when `mutable` is False.
"""

import dataclasses
import functools
from typing import Any, Optional

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from lipdp.training import batching
from lipdp.training import dpsgd
from lipdp.training import fixed_point
from lipdp.training import ghost_clipping
from lipdp.training import per_example
from lipdp.training import sharding as sharding_lib

# Streams of `fold_in(fold_in(run_key, step), stream)`: the model's own noise (the encoder's
# reparameterisation) and the throw-away forward pass that refreshes the model state.
MODEL_NOISE_STREAM = 1
REFRESH_STREAM = 2


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree, checkpointed whole.

  `model_state` holds the non-parameter collections of the model (e.g. the persistent
  power-iteration vectors of spectral layers); they depend on the weights only, never on data.
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any


@flax.struct.dataclass
class AdaptiveClipTrainState(TrainState):
  """A `TrainState` with adaptive clipping's current clip norm C_t (`dpsgd`; a DP output, moved
  by released noisy counts only). Its own class, so that the checkpoints of every other run keep
  `TrainState`'s structure and older ones restore unchanged."""

  clip_norm: jax.Array = None

  @classmethod
  def starting_at(
    cls, state: TrainState, clip_norm: float, shape: tuple = ()
  ) -> "AdaptiveClipTrainState":
    """`state` with adaptive clipping's first clip norm, of `shape` (`DPSGDConfig.
    clip_norm_shape`: () for one clip norm, (G,) per group)."""
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(TrainState)}
    return cls(**fields, clip_norm=jnp.full(shape, clip_norm, jnp.float32))


def step_rng(run_key: jax.Array, step: Any, stream: int) -> jax.Array:
  """The key of one stream at one step: fold_in(fold_in(run_key, step), stream).

  Works on a Python int step (host) and a traced one (inside jit) alike, with equal results.
  """
  return jax.random.fold_in(jax.random.fold_in(run_key, step), stream)


def as_key(run_key: jax.Array) -> jax.Array:
  """A typed threefry key from its raw uint32 data (what crosses hosts), or the key itself."""
  if jnp.issubdtype(run_key.dtype, jax.dtypes.prng_key):
    return run_key
  return jax.random.wrap_key_data(run_key, impl="threefry2x32")


def mutable_collections(model_state: Any):
  return list(model_state.keys()) or False


def mean_loss_update(loss_fn: per_example.LossFn, optimizer: optax.GradientTransformation):
  """`f(state, batch, rng) -> (state, metrics)`: one optimiser step on the batch-mean loss."""

  def update(state: TrainState, batch: jax.Array, rng: jax.Array):
    mutable = mutable_collections(state.model_state)

    def mean_loss(params):
      losses, aux, new_model_state = loss_fn(params, state.model_state, batch, rng, mutable)
      return jnp.mean(losses), (jax.tree_util.tree_map(jnp.mean, aux), new_model_state)

    (loss, (aux, new_model_state)), grads = jax.value_and_grad(mean_loss, has_aux=True)(
      state.params
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(
      step=state.step + 1,
      params=params,
      model_state=new_model_state or state.model_state,
      opt_state=opt_state,
    )
    return new_state, {"loss": loss, **aux, "grad_norm": optax.global_norm(grads)}

  return update


def noisy_update(
  loss_fn: per_example.LossFn,
  optimizer: optax.GradientTransformation,
  expected_batch_size: float,
  sample_record: jax.Array,
  grid_exponent: Optional[int] = None,
):
  """`f(state, grad_sum, noise, rng) -> state`: noise on the sum, divide by q n, optimiser step.

  With `grid_exponent` e, `grad_sum` and `noise` are int32 on the grid 2^e
  (`lipdp.training.fixed_point`), added exactly before the scaling. Afterwards the model state
  (e.g. power-iteration vectors) is refreshed by a forward pass on a zero record, which depends
  on the weights only (`rng` feeds that throw-away pass).
  """
  zeros = jnp.zeros_like(sample_record)

  def update(state: TrainState, grad_sum, noise, rng):
    if grid_exponent is None:
      grads = dpsgd.noisy_mean(grad_sum, noise, expected_batch_size)
    else:
      grads = fixed_point.noisy_mean(grad_sum, noise, grid_exponent, expected_batch_size)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    model_state = state.model_state
    if model_state:
      _, _, model_state = loss_fn(params, model_state, zeros, rng, mutable_collections(model_state))
    return state.replace(
      step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state
    )

  return update


class Step:
  """The interface of a training step (see the module docstring)."""

  def host_inputs(self, step: int) -> Any:
    """NumPy inputs of `step`, a pure function of (seed, step); safe to call on any thread."""
    raise NotImplementedError

  def place(self, host_inputs: Any) -> Any:
    """`host_inputs` on the mesh (each host placing the parts on its own devices)."""
    raise NotImplementedError

  def update(
    self, state: TrainState, records: jax.Array, run_key: jax.Array, inputs: Any
  ) -> tuple[TrainState, Any]:
    """The jitted step; donates `state`. Returns the new state and on-device metrics.

    `run_key` is the run's key or its raw uint32 data (`as_key`)."""
    raise NotImplementedError

  def summarize(self, metrics: list) -> dict:
    """Window means of host copies of `update`'s metrics (one per step), for the logs."""
    return {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}


class PlainStep(Step):
  """Minimises the batch-mean loss on epoch-wise shuffled batches (`lipdp.training.batching`)."""

  def __init__(
    self,
    loss_fn: per_example.LossFn,
    optimizer: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
    *,
    batch_size: int,
    num_records: int,
    seed: int,
  ):
    num_devices = mesh.devices.size
    if batch_size % num_devices:
      raise ValueError(f"batch_size {batch_size} is not a multiple of the {num_devices} devices")
    if batch_size > num_records:
      raise ValueError(f"batch_size {batch_size} exceeds the {num_records} records")
    self.mesh = mesh
    self._shuffler = batching.EpochShuffler(num_records, batch_size, seed)
    update = mean_loss_update(loss_fn, optimizer)
    rows = NamedSharding(mesh, PartitionSpec(sharding_lib.DATA_AXIS))

    def step(state, records, run_key, indices):
      batch = jax.lax.with_sharding_constraint(jnp.take(records, indices, axis=0), rows)
      return update(state, batch, step_rng(as_key(run_key), state.step, MODEL_NOISE_STREAM))

    replicated = sharding_lib.replicated(mesh)
    self._step = jax.jit(step, out_shardings=(replicated, replicated), donate_argnums=0)

  def host_inputs(self, step: int) -> np.ndarray:
    return self._shuffler(step).astype(np.int32)

  def place(self, host_inputs: np.ndarray) -> jax.Array:
    return sharding_lib.shard_rows(self.mesh, host_inputs)

  def update(self, state, records, run_key, inputs):
    return self._step(state, records, run_key, inputs)


class DPSGDStep(Step):
  """One DP-SGD step (`dpsgd`) on a Poisson batch, all microbatches in one jitted call.

  Host inputs of step t: the Poisson batch laid out as microbatches (`batching.pad_to_chunks`,
  never truncated) and the float64-drawn noise (`dpsgd.dpsgd_noise`), both functions of
  (seed, t) only. On the devices: a `lax.fori_loop` over the microbatches that hold examples
  (each split across the mesh by `mesh_clipped_sum`), the clipped sums accumulated in float32,
  then noise, division by q n and the optimiser step, with no host round trip.
  """

  def __init__(
    self,
    loss_fn: per_example.LossFn,
    optimizer: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
    *,
    dp: dpsgd.DPSGDConfig,
    num_records: int,
    seed: int,
    param_shapes: Any,
    sample_record: jax.Array,
  ):
    num_devices = mesh.devices.size
    self.mesh, self.dp, self.seed = mesh, dp, seed
    self.num_records = num_records
    microbatch = dp.microbatch_for(num_records)
    self.chunk = -(-microbatch // num_devices) * num_devices  # a multiple of devices
    if dp.on_grid:  # each record at a place fixed by its index (batching.place_by_index)
      self._min_chunks = batching.typical_placed_chunks(num_records, dp.sampling_rate, self.chunk)
    else:
      self._min_chunks = batching.typical_chunks(num_records, dp.sampling_rate, self.chunk)
    self._param_shapes = param_shapes
    self._loss_fn, self._sample_record = loss_fn, sample_record
    self._checked = dp.clipping != "ghost"
    grouped = dp.clip_groups is not None  # per-group adaptive clipping (dpsgd docstring)
    # Fixed-point or bounded float sums (lipdp.training.fixed_point): the grid for this model,
    # noise and data; a bounded float sum's rounding bound counts the additions on any path:
    # a microbatch's rows, the microbatches (capped), the devices, and the rows' own roundings.
    self.grid, self.chunks_cap = None, None
    if dp.on_grid:
      num_params = sum(int(np.prod(np.shape(p))) for p in jax.tree_util.tree_leaves(param_shapes))
      terms = 0
      if dp.bounded_float:
        self.chunks_cap = batching.placed_chunks_cap(num_records, dp.sampling_rate, self.chunk)
        terms = self.chunk + self.chunks_cap + num_devices + 8
      self.grid = fixed_point.FixedPointGrid.choose(
        dp.clip_norm,
        num_params,
        dp.noise_multiplier,
        num_records,
        dp.sampling_rate,
        float_sum_terms=terms,
      )
      logging.info(
        "DP-SGD sums on the integer grid 2^%d%s: contribution bound %.9g (clip norm %g), noise "
        "std %.9g, batches of up to %d records; beyond %.2f standard deviations (mass %.2g per "
        "coordinate and step) the float64 noise skips grid points (not modelled)",
        self.grid.exponent,
        (
          f" (a float32 sum rounded to it, its rounding bounded over paths of {terms} additions"
          f" and up to {self.chunks_cap} microbatches)"
          if terms
          else ""
        ),
        self.grid.contribution_bound,
        dp.clip_norm,
        dp.noise_multiplier * self.grid.contribution_bound,
        self.grid.batch_cap,
        self.grid.tail_standard_deviations,
        self.grid.tail_mass,
      )
    grid_exponent = None if self.grid is None else self.grid.exponent
    bounded = dp.bounded_float
    clipped_sum = dpsgd.clipped_gradient_sum(
      loss_fn,
      dp.clip_norm,
      dp.clipping,
      dp.count_centre if dp.adaptive else 0.5,
      grid_exponent=grid_exponent if dp.fixed_point else None,
      rows_only=bounded,
    )
    self._clipped_sum = clipped_sum
    clipped_sum = mesh_clipped_sum(clipped_sum, mesh)
    self._mesh_checked = mesh.devices.size == 1
    expected_batch_size = dp.sampling_rate * num_records
    finish = noisy_update(loss_fn, optimizer, expected_batch_size, sample_record, grid_exponent)
    chunk = self.chunk

    def step(state, records, run_key, inputs):
      indices, count, noise = inputs
      run_key = as_key(run_key)
      rng = step_rng(run_key, state.step, MODEL_NOISE_STREAM)
      # Fixed-point layouts (batching.place_by_index) pass their microbatch count, and mark
      # empty slots with -1; the others are packed in order, `count` records.
      num_chunks = count if grid_exponent is not None else (count + chunk - 1) // chunk
      clip_norm = state.clip_norm if dp.adaptive else None  # None: the one built with

      def microbatch(c, carry):
        grad_sum, stats = carry
        rows_c = jax.lax.dynamic_index_in_dim(indices, c, axis=0, keepdims=False)
        if grid_exponent is None:
          mask = (c * chunk + jnp.arange(chunk) < count).astype(jnp.float32)
        else:
          mask = (rows_c >= 0).astype(jnp.float32)
          rows_c = jnp.maximum(rows_c, 0)  # an empty slot reads record 0, masked out
        batch = jnp.take(records, rows_c, axis=0)  # split across the mesh by mesh_clipped_sum
        # A record's group is a function of the record alone (padding rows are masked out).
        groups = dpsgd.record_groups(batch, dp.clip_groups) if grouped else None
        if grid_exponent is None:
          key, by_record = jax.random.fold_in(rng, c), {}
        elif bounded:  # one key per row, by record index (fixed_point docstring)
          key, by_record = per_example.record_keys(rng, rows_c), {}
        else:  # keyed by record index, whatever the microbatch (fixed_point docstring)
          key, by_record = rng, {"record_ids": rows_c}
        part, part_stats = clipped_sum(
          state.params, state.model_state, batch, mask, key, clip_norm, groups, **by_record
        )
        return (
          jax.tree_util.tree_map(jnp.add, grad_sum, part),
          jax.tree_util.tree_map(jnp.add, stats, part_stats),
        )

      zero_stats = {
        k: jnp.zeros((), jnp.float32) for k in ("loss_sum", "clipped_fraction_sum", "count")
      }
      zero_stats["centred_unclipped_sum"] = jnp.zeros(dp.clip_norm_shape, jnp.float32)
      sum_dtype = jnp.int32 if dp.fixed_point else jnp.float32
      grad_sum, stats = jax.lax.fori_loop(
        0,
        num_chunks,
        microbatch,
        (jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, sum_dtype), state.params), zero_stats),
      )
      if bounded:  # the float32 sum, its rounding bounded, onto the grid (fixed_point docstring)
        grad_sum = jax.tree_util.tree_map(
          lambda s: fixed_point.quantize(s, grid_exponent), grad_sum
        )
      refresh = step_rng(run_key, state.step, REFRESH_STREAM)
      if not dp.adaptive:
        return finish(state, grad_sum, noise, refresh), stats
      # Adaptive clipping (dpsgd module docstring): the gradient's noise z_D C_t (per group: the
      # largest group's C_t, the sum's sensitivity), and the noisy centred count of unclipped
      # examples (one per group), the only statistic that moves C.
      unit_noise, count_noise = noise
      scale = dp.gradient_noise_multiplier * (jnp.max(clip_norm) if grouped else clip_norm)
      new_state = finish(
        state, grad_sum, jax.tree_util.tree_map(lambda e: e * scale, unit_noise), refresh
      )
      noisy_count = stats["centred_unclipped_sum"] + count_noise
      next_clip = dpsgd.next_clip_norm(clip_norm, noisy_count, dp, expected_batch_size)
      return new_state.replace(clip_norm=next_clip), {**stats, "clip_norm": clip_norm}

    replicated = sharding_lib.replicated(mesh)
    self._step = jax.jit(step, out_shardings=(replicated, replicated), donate_argnums=0)

  def host_inputs(self, step: int):
    indices = batching.poisson_batch_indices(
      self.num_records, self.dp.sampling_rate, self.seed, step
    )
    if self.grid is not None and len(indices) > self.grid.batch_cap:
      # Beyond the grid's headroom (probability below 1e-20 a step): noise only. The decision
      # reads the batch's size alone (fixed_point docstring); a warning, since it costs a step.
      logging.warning(
        "DP-SGD step %d: a Poisson batch of %d records exceeds the fixed-point cap %d; the step "
        "adds noise only",
        step,
        len(indices),
        self.grid.batch_cap,
      )
      indices = indices[:0]
    if self.grid is not None:
      batch = batching.place_by_index(indices, self.chunk, self._min_chunks)
      if self.chunks_cap is not None and batch.num_chunks > self.chunks_cap:
        # Beyond the rounding bound's microbatches: noise only, decided from the sampled
        # indices alone, as for the batch cap (fixed_point docstring).
        logging.warning(
          "DP-SGD step %d: the batch's layout needs %d microbatches, over the cap %d; the step "
          "adds noise only",
          step,
          batch.num_chunks,
          self.chunks_cap,
        )
        batch = batching.place_by_index(indices[:0], self.chunk, self._min_chunks)
      return batch, fixed_point.grid_noise(self._param_shapes, self.grid, self.seed, step)
    batch = batching.pad_to_chunks(indices, self.chunk, self._min_chunks)
    if self.dp.adaptive:
      return batch, dpsgd.adaptive_noise(self._param_shapes, self.dp, self.seed, step)
    return batch, dpsgd.dpsgd_noise(self._param_shapes, self.dp, self.seed, step)

  def place(self, host_inputs):
    batch, noise = host_inputs
    return (
      sharding_lib.shard_along(self.mesh, batch.indices, axis=1),
      # The microbatches to run: a fixed-point layout's own count, else the packed batch's size.
      sharding_lib.replicate(
        self.mesh, np.int32(batch.num_chunks if self.grid is not None else batch.count)
      ),
      sharding_lib.replicate(self.mesh, noise),
    )

  def update(self, state, records, run_key, inputs):
    if not self._mesh_checked:
      mesh_check(
        self._clipped_sum, self.mesh, state.params, state.model_state, self._sample_record, self
      )
      self._mesh_checked = True
    if not self._checked:
      # Once, before the first ghost step: ghost against vmap norms and sums on fixed
      # pseudo-random records (never the private ones); refuses on a mismatch.
      ghost_clipping.self_check(
        self._loss_fn,
        state.params,
        state.model_state,
        tuple(self._sample_record.shape[1:]),
        gram=not self.dp.bounded_float,  # the rules the step's clipped sum uses
      )
      self._checked = True
    return self._step(state, records, run_key, inputs)

  def summarize(self, metrics: list) -> dict:
    """Per-step mean loss, batch size and clipped fraction (and adaptive clipping's clip norm),
    averaged over the window.

    Not covered by the DP-SGD accounting: for the private metrics file only.
    """
    per_step = []
    for m in metrics:
      count = max(float(m["count"]), 1.0)
      per_step.append(
        {
          "loss": float(m["loss_sum"]) / count,
          "batch_size": float(m["count"]),
          "clipped_fraction": float(m["clipped_fraction_sum"]) / count,
          **(_clip_norm_metrics(m["clip_norm"]) if "clip_norm" in m else {}),
        }
      )
    return super().summarize(per_step)


def mesh_clipped_sum(clipped_sum, mesh: jax.sharding.Mesh):
  """`clipped_sum` (`dpsgd.clipped_gradient_sum`'s interface) with a microbatch's rows split
  across `mesh`: each device computes its own rows' clipped sum as one device would, unpartitioned
  (`jax.shard_map`), and the parts are summed across the devices (`psum`). Row i keeps the
  model-noise key it has on one device (`per_example.row_keys`; by record index on fixed-point
  sums), so the result is one device's to the float rounding of the sums' order. Fixed-point
  sums are added across devices exactly, but a row's integers may differ from one device's by
  a grid step where its float gradient lies near a half-way point: XLA compiles a vmap of k rows
  differently for each k (a review: 4 devices of 2 rows moved 68 of 860 coordinates by up to 2
  steps). What the privacy argument needs is that a row's terms depend on its own content and
  place only, whatever else the batch holds and however many microbatches the layout has
  (`lipdp.training.fixed_point`; a review found them bit-identical across layout capacities
  16 to 256, ghost and vmap, on 2 and 4 devices). On a one-device mesh, `clipped_sum` itself.

  Why not let XLA partition the vmapped per-example computation: on a CPU mesh its partitioned
  per-example gradients of convolutions came out zero for every row on the second device (jax
  0.10.2; found by a review), so multi-device convolutional training had to be refused.
  `mesh_check` still compares the two before the first step.
  """
  if mesh.devices.size == 1:
    return clipped_sum
  rows, whole = PartitionSpec(sharding_lib.DATA_AXIS), PartitionSpec()

  def local(params, model_state, chunk, mask, rng, clip_norm, groups, record_ids):
    by_record = {} if record_ids is None else {"record_ids": record_ids}
    summed, stats = clipped_sum(
      params, model_state, chunk, mask, rng, clip_norm, groups, **by_record
    )
    return jax.lax.psum((summed, stats), sharding_lib.DATA_AXIS)

  def split(params, model_state, chunk, mask, rng, clip_norm=None, groups=None, record_ids=None):
    if record_ids is None:  # one key per row, as on one device, split with the rows
      rng, key_spec = per_example.row_keys(rng, chunk.shape[0]), rows
    else:  # keyed by record index (fixed_point docstring): the one key, on every device
      key_spec = whole
    return jax.shard_map(
      local,
      mesh=mesh,
      in_specs=(whole, whole, rows, rows, key_spec, whole, rows, rows),
      out_specs=whole,
      # The per-row computation is the one-device program's; the replication checker does not
      # follow ghost clipping's perturbation VJPs (their zeros are created inside).
      check_vma=False,
    )(params, model_state, chunk, mask, rng, clip_norm, groups, record_ids)

  return split


class MeshCheckError(RuntimeError):
  """The clipped sum computed on the device mesh differs from the same sum on one device."""


_MESH_CHECK_SEED = 0x3E5C  # fixed: the check's records never depend on the data
_MESH_PASSED: set = set()  # (jaxpr, mesh size) of the programs that passed, in this process


def mesh_check(clipped_sum, mesh, params, model_state, sample_record, step: "DPSGDStep") -> None:
  """Compares a microbatch's clipped sum computed on `mesh` (`mesh_clipped_sum`, as the step
  computes it) with the same sum on one device, on fixed pseudo-random records (never the
  private ones), and refuses on a difference.

  Why: on a CPU mesh, XLA's partitioned per-example gradients of convolutions came out zero for
  every row on the second device (jax 0.10.2; found by a review), for the vmap and the ghost
  paths alike: training would have run, silently wrong. `mesh_clipped_sum` no longer leaves that
  computation to the partitioner; the check guards the next such fault. The rows of one
  microbatch, their keys and their mask are the same on both sides; the sums may differ by the
  reduction's rounding
  only (1e-4 of their scale allowed; the fault found moved them by 20%). A program that passed
  on a mesh of the same size is not checked again in the same process: the cache is keyed by
  the traced program itself (its jaxpr), since a key of parameter shapes let a convolution pass
  after a dense model of the same shapes had (found by a review). On a multi-host mesh the
  one-device side runs on this host's first device.
  """
  params, model_state = sharding_lib.host_value(params), sharding_lib.host_value(model_state)
  dp, chunk = step.dp, step.chunk
  rng = np.random.default_rng(_MESH_CHECK_SEED)
  records = rng.uniform(0, 1, (chunk,) + tuple(np.shape(sample_record)[1:])).astype(np.float32)
  ids = np.arange(chunk, dtype=np.int32)
  mask = np.ones(chunk, np.float32)
  key = jax.random.key(_MESH_CHECK_SEED)
  clip_norm = jnp.full(dp.clip_norm_shape, dp.clip_norm, jnp.float32) if dp.adaptive else None
  on_devices = mesh_clipped_sum(clipped_sum, mesh)

  def total(recs, mask, ids, split):
    groups = dpsgd.record_groups(recs, dp.clip_groups) if dp.clip_groups is not None else None
    extra = {"record_ids": ids} if dp.fixed_point else {}
    # The statistics too: adaptive clipping releases the centred count (a review's point).
    return (on_devices if split else clipped_sum)(
      params, model_state, recs, mask, key, clip_norm, groups, **extra
    )

  signature = (
    str(jax.make_jaxpr(functools.partial(total, split=False))(records, mask, ids)),
    mesh.devices.size,
  )
  if signature in _MESH_PASSED:
    return
  flat = lambda t: np.concatenate(
    [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(t)]
  )
  with mesh:
    on_mesh = flat(jax.jit(functools.partial(total, split=True))(records, mask, ids))
  one = jax.local_devices()[0]  # this host's: another host's device would not be readable
  alone = flat(
    jax.jit(functools.partial(total, split=False))(
      *(jax.device_put(x, one) for x in (records, mask, ids))
    )
  )
  scale = max(float(np.max(np.abs(alone))), 1e-30)
  if not np.max(np.abs(on_mesh - alone)) <= 1e-4 * scale:
    raise MeshCheckError(
      f"the clipped gradient sum computed on the {mesh.devices.size}-device mesh differs from "
      f"the same sum on one device by {np.max(np.abs(on_mesh - alone)) / scale:.3g} of its "
      "scale, on pseudo-random records (a fault of the platform's multi-device program); "
      "train on one device"
    )
  _MESH_PASSED.add(signature)


def _clip_norm_metrics(clip_norm) -> dict:
  """Adaptive clipping's clip norm for the logs: `clip_norm`, the one that scales the noise
  (per group: the largest), and per group `clip_norm_group_<g>`."""
  norms = np.asarray(clip_norm, np.float64)
  if norms.ndim == 0:
    return {"clip_norm": float(norms)}
  return {"clip_norm": float(norms.max())} | {
    f"clip_norm_group_{g}": float(v) for g, v in enumerate(norms)
  }


def make_step(
  loss_fn: per_example.LossFn,
  optimizer: optax.GradientTransformation,
  mesh: jax.sharding.Mesh,
  *,
  dp: Optional[dpsgd.DPSGDConfig],
  batch_size: int,
  num_records: int,
  seed: int,
  param_shapes: Any,
  sample_record: jax.Array,
) -> Step:
  """`PlainStep` when `dp` is None, else `DPSGDStep`."""
  if dp is None:
    return PlainStep(
      loss_fn, optimizer, mesh, batch_size=batch_size, num_records=num_records, seed=seed
    )
  return DPSGDStep(
    loss_fn,
    optimizer,
    mesh,
    dp=dp,
    num_records=num_records,
    seed=seed,
    param_shapes=param_shapes,
    sample_record=sample_record,
  )
