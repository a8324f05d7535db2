"""Training the Lipschitz VAE: a pure `train_step`, data-parallel, plain or DP-SGD, resumable.

Plain mode minimises the negative ELBO with optax. The weights then depend on the private records
without a DP guarantee: the privacy report must use the `conditional` scope (docs/method.md).

DP-SGD mode (Abadi et al. 2016) gives the weights their own guarantee, composed with the
per-record release by `lipdp.privacy` (scope `dp-sgd`). The jax_privacy "sharp edges" are the
checklist here:
- batches are Poisson-sampled on the host (each record independently with probability q), which
  is exactly what the accountant models; the variable-size batch is processed in fixed-size
  masked chunks, so nothing is truncated and XLA compiles once;
- each per-example gradient (vmap) is clipped to l2 norm C; Gaussian noise of standard
  deviation noise_multiplier * C is added to the *sum*, and only then is the sum divided by the
  expected batch size q * n (a data-independent constant);
- the Poisson masks, the per-example encoder noise and the DP noise all come from a secret seed
  drawn from OS entropy unless the caller fixes one (then the report says so); the seed file a
  resumable run needs is deleted when training completes;
- the DP noise is drawn in float64 on the host (JAX's float32 normal sampler stops near 5.2
  standard deviations, which breaks delta); loss and clipping statistics, which the accounting
  does not cover, go only to the private metrics file.

Data parallelism: `jax.jit` over a 1-D device mesh with axis 'data'; the batch is sharded along
it and the state replicated, so XLA inserts the gradient all-reduce. On several hosts call
`jax.distributed.initialize()` first; every host computes the same global batch indices (they
depend only on the seed and the step) and feeds its own contiguous slice of the rows through
`jax.make_array_from_process_local_data`.

Determinism: the batch indices and PRNG keys of step t depend only on (seed, t), so a run killed
and resumed from its last orbax checkpoint finishes with the same parameters as an uninterrupted
run with the same seed.
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec

from lipdp import files
from lipdp import nn as lnn
from lipdp import privacy
from lipdp import randomness
from lipdp.models import vae as vae_lib

DATA_AXIS = "data"


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


@dataclasses.dataclass(frozen=True)
class DPSGDConfig:
  """DP-SGD hyper-parameters. `sampling_rate` q: each record joins a batch with probability q."""
  noise_multiplier: float
  clip_norm: float
  sampling_rate: float
  chunk_size: int = 64

  def __post_init__(self):
    if not np.isfinite(self.noise_multiplier) or self.noise_multiplier <= 0:
      raise ValueError(f"noise_multiplier must be positive, got {self.noise_multiplier}")
    if not np.isfinite(self.clip_norm) or self.clip_norm <= 0:
      raise ValueError(f"clip_norm must be positive, got {self.clip_norm}")
    if not 0 < self.sampling_rate <= 1:
      raise ValueError(f"sampling_rate must be in (0, 1], got {self.sampling_rate}")
    if self.chunk_size < 1:
      raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")

  def event(self, steps: int) -> privacy.DPSGDEvent:
    """The accounting event of `steps` steps of this DP-SGD (the clip norm does not enter it)."""
    return privacy.DPSGDEvent(self.noise_multiplier, self.sampling_rate, steps)


def step_key(seed: int, step: int, stream: int) -> jax.Array:
  """The PRNG key of one random stream at one step; depends only on (seed, step, stream)."""
  return jax.random.fold_in(jax.random.fold_in(randomness.key_from_seed(seed), step), stream)


def _split_variables(variables):
  variables = flax.core.unfreeze(variables) if isinstance(variables,
                                                          flax.core.FrozenDict) else dict(variables)
  params = variables.pop("params")
  return params, variables


def create_train_state(model: nn.Module, optimizer: optax.GradientTransformation,
                       sample_records: jax.Array, init_key: jax.Array) -> TrainState:
  """Initialises parameters from `init_key` and a sample batch (only its shape is used)."""
  shape_only = jnp.zeros_like(sample_records)
  # The noise key only feeds the throw-away forward pass of `init`.
  variables = model.init(init_key, shape_only, jax.random.fold_in(init_key, 1))
  params, model_state = _split_variables(variables)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                    opt_state=optimizer.init(params))


def _mutable_collections(state: TrainState):
  return list(state.model_state.keys()) or False


def _retracted(params, model_state):
  """Björck kernels replaced by the polar factors of the current weights (same function).

  Keeps the raw weights orthonormal between steps so each forward pass needs 1-2 Björck steps
  instead of 3-5 (see `lipdp.nn.retract_to_polar`). The polar factors are those the forward
  pass at these weights computed (plain mode) or that the last refresh stored (DP-SGD): a
  function of the weights only.
  """
  polar = (model_state or {}).get(lnn.POLAR_COLLECTION)
  return params if polar is None else lnn.retract_to_polar(params, polar)


def make_train_step(model: vae_lib.LipschitzVAE, optimizer: optax.GradientTransformation,
                    blocks: Sequence, image_likelihood: str = "bernoulli", beta: float = 1.0):
  """Builds the pure plain-mode step `train_step(state, batch, rng) -> (state, metrics)`."""

  def train_step(state: TrainState, batch: jax.Array, rng: jax.Array):
    mutable = _mutable_collections(state)

    def loss_fn(params):
      variables = {"params": params, **state.model_state}
      (nelbo, nll, kl), new_model_state = vae_lib.negative_elbo(
          model, variables, batch, rng, blocks, image_likelihood, beta, mutable=mutable)
      return jnp.mean(nelbo), (jnp.mean(nll), jnp.mean(kl), new_model_state)

    (loss, (nll, kl, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(_retracted(state.params, new_model_state), updates)
    new_state = state.replace(step=state.step + 1, params=params,
                              model_state=new_model_state or state.model_state,
                              opt_state=opt_state)
    metrics = {"loss": loss, "nll": nll, "kl": kl, "grad_norm": optax.global_norm(grads)}
    return new_state, metrics

  return train_step


_NORM_BLOCK = 1024


def per_example_norms(grads: Any) -> tuple[jax.Array, float]:
  """l2 norms of per-example gradients (leading axis) and the clipping margin they need.

  The squared norm is summed in two levels: blocks of at most _NORM_BLOCK squares, then the
  block sums. Whatever order XLA adds each level in, a sum of m non-negative floats has relative
  error at most gamma_m = m u / (1 - m u) (u the unit roundoff; Higham 2002, Lemma 3.1 and
  eq. 4.4), so the computed squared norm is within gamma_{B + M} of the exact one (B the block
  length, M the number of block sums, squaring adding u), and its square root within about
  gamma_{B+M} / 2 + u. Scaling by min(1, C' / norm) then rounds the scale and each coordinate
  (u each). Hence with

      m = gamma_{B + M + 1} + 8 u       (twice the first-order total, for safety),

  the clipped gradient's exact norm is at most C' (1 + u)^2 / (1 - gamma/2 - u) <= C when
  C' = C (1 - m). For a million parameters in float32, m is about 1e-4: a negligible change.

  Returns:
    (norms of shape (batch,), m), m a Python float fixed by the shapes and dtypes.
  """
  leaves = jax.tree_util.tree_leaves(grads)
  batch = leaves[0].shape[0]
  partial_sums, num_blocks, unit = [], 0, 0.0
  for leaf in leaves:
    flat = leaf.reshape(batch, -1)
    size = flat.shape[1]
    blocks = -(-size // _NORM_BLOCK)
    flat = jnp.pad(flat, ((0, 0), (0, blocks * _NORM_BLOCK - size)))
    partial_sums.append(jnp.sum(jnp.square(flat.reshape(batch, blocks, _NORM_BLOCK)), axis=-1))
    num_blocks += blocks
    unit = max(unit, float(jnp.finfo(leaf.dtype).eps) / 2)
  norms = jnp.sqrt(jnp.sum(jnp.concatenate(partial_sums, axis=1), axis=1))
  terms = _NORM_BLOCK + num_blocks + 1
  margin = terms * unit / (1.0 - terms * unit) + 8.0 * unit
  return norms, margin


def make_clipped_gradient_sum(model: vae_lib.LipschitzVAE, blocks: Sequence, clip_norm: float,
                              image_likelihood: str = "bernoulli", beta: float = 1.0):
  """Builds `f(params, model_state, chunk, mask, rng) -> (sum of clipped grads, stats)`.

  Per-example gradients by vmap; each is scaled by min(1, C' / ||g_i||) with C' = C (1 - m), so
  its exact l2 norm is at most C despite float rounding (`clip_margin`); masked-out (padding)
  rows contribute exactly zero, and so does an example whose gradient is not finite (otherwise
  one NaN would poison, and reveal itself in, the whole noisy sum). The model state is read,
  never written, so no per-example information leaks through it.
  """

  def example_loss(params, model_state, record, rng):
    variables = {"params": params, **model_state}
    (nelbo, _, _), _ = vae_lib.negative_elbo(model, variables, record[None], rng, blocks,
                                             image_likelihood, beta)
    return nelbo[0]

  def clipped_sum(params, model_state, chunk, mask, rng):
    keys = jax.random.split(rng, chunk.shape[0])
    losses, grads = jax.vmap(jax.value_and_grad(example_loss), in_axes=(None, None, 0, 0))(
        params, model_state, chunk, keys)
    norms, margin = per_example_norms(grads)
    target = clip_norm * (1.0 - margin)  # provably <= C after rounding (see clip_margin)
    finite = jnp.isfinite(norms)
    scale = jnp.where(finite, jnp.minimum(1.0, target / jnp.maximum(norms, 1e-30)), 0.0) * mask
    summed = jax.tree_util.tree_map(
        lambda g: jnp.tensordot(scale, jnp.where(
            finite.reshape((-1,) + (1,) * (g.ndim - 1)), g, 0.0), axes=1), grads)
    stats = {"loss_sum": jnp.sum(jnp.where(finite, losses, 0.0) * mask),
             "clipped_fraction_sum": jnp.sum((norms > clip_norm) * mask),
             "count": jnp.sum(mask)}
    return summed, stats

  return clipped_sum


def dpsgd_noise(params: Any, dp: DPSGDConfig, seed: int, step: int) -> Any:
  """The DP-SGD noise of `step`: N(0, (z C)^2) per coordinate, drawn in float64 on the host.

  Drawn with `lipdp.randomness.standard_normal` (reaches 12.2 standard deviations; JAX's float32
  sampler stops near 5.2, which would break delta at every step), then stored as float32.
  Depends only on (seed, step), so a resumed run adds the same noise.
  """
  rng = randomness.numpy_rng(seed, step, 2)
  scale = dp.noise_multiplier * dp.clip_norm
  return jax.tree_util.tree_map(
      lambda p: (scale * randomness.standard_normal(rng, np.shape(p))).astype(np.float32),
      params)


def make_noisy_update(model: nn.Module, optimizer: optax.GradientTransformation,
                      dp: DPSGDConfig, num_records: int, sample_records: jax.Array):
  """Builds `f(state, grad_sum, noise, rng) -> state`: noise on the sum, then divide by q * n.

  `noise` comes from `dpsgd_noise`. Afterwards the model state (power-iteration vectors) is
  refreshed on a zero input, which depends on the weights only (`rng` feeds that throw-away
  forward pass).
  """
  expected_batch = dp.sampling_rate * num_records
  zeros = jnp.zeros_like(sample_records)

  def noisy_update(state: TrainState, grad_sum, noise, rng):
    grads = jax.tree_util.tree_map(lambda g, e: (g + e) / expected_batch, grad_sum, noise)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(_retracted(state.params, state.model_state), updates)
    model_state = state.model_state
    if model_state:
      # Only the mutated state is kept; the forward pass's outputs are discarded.
      _, model_state = model.apply({"params": params, **model_state}, zeros,
                                   rng, mutable=list(model_state.keys()))
    return state.replace(step=state.step + 1, params=params, model_state=model_state,
                         opt_state=opt_state)

  return noisy_update


def replicate(mesh: jax.sharding.Mesh, tree: Any) -> Any:
  """Places host arrays, identical on every host, replicated on all devices of the mesh."""
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_callback(x.shape, sharding, lambda index: x[index]), tree)


def poisson_batch_indices(num_records: int, sampling_rate: float, seed: int,
                          step: int) -> np.ndarray:
  """Indices of the records in step `step`'s Poisson batch (each included w.p. q, independently)."""
  rng = randomness.numpy_rng(seed, step, 1)
  return np.flatnonzero(rng.random(num_records) < sampling_rate)


def shuffled_batch_indices(num_records: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """Indices of the plain-mode batch of `step`: epoch-wise permutations, a function of (seed, step)."""
  per_epoch = num_records // batch_size
  epoch, slot = divmod(step, per_epoch)
  order = randomness.numpy_rng(seed, epoch, 0).permutation(num_records)
  return order[slot * batch_size:(slot + 1) * batch_size]


def data_mesh(devices: Optional[Sequence[jax.Device]] = None) -> jax.sharding.Mesh:
  """A 1-D mesh over the given (default: all global) devices, axis name 'data'."""
  devices = list(jax.devices() if devices is None else devices)
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,))


def shard_rows(mesh: jax.sharding.Mesh, global_rows: np.ndarray) -> jax.Array:
  """Places a global batch (rows identical on every host) on the mesh, sharded by rows.

  Each host contributes only its own contiguous slice of rows.
  """
  sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
  per_host = global_rows.shape[0] // jax.process_count()
  start = jax.process_index() * per_host
  return jax.make_array_from_process_local_data(sharding, global_rows[start:start + per_host],
                                                global_rows.shape)


class MetricsWriter:
  """Appends one JSON object per line to `path`; on resume drops lines past the restored step."""

  def __init__(self, path: str, resume_step: int = 0):
    self.path = path
    kept = []
    if resume_step and os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= resume_step]
    if jax.process_index() == 0:
      with open(path, "w") as f:
        f.writelines(kept)

  def write(self, record: dict) -> None:
    if jax.process_index() != 0:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
      f.flush()


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Plain-mode or DP-SGD training settings.

  Attributes:
    num_steps: optimisation steps.
    batch_size: plain-mode batch size (a multiple of the device count).
    learning_rate: adam learning rate.
    seed: the training seed; None draws one from OS entropy (then kept in the work directory's
      `train_seed.json` so a killed run can resume, and deleted once training completes).
    dp: DP-SGD settings, or None for plain training.
    image_likelihood, beta: the ELBO (see `lipdp.models.vae`).
    log_every, checkpoint_every: progress and checkpoint periods in steps.
    progress_bar: show a tqdm bar on stderr.
  """
  num_steps: int = 1000
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: Optional[int] = None
  dp: Optional[DPSGDConfig] = None
  image_likelihood: str = "bernoulli"
  beta: float = 1.0
  log_every: int = 50
  checkpoint_every: int = 200
  progress_bar: bool = True

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
    if self.batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
    if self.log_every < 1 or self.checkpoint_every < 1:
      raise ValueError("log_every and checkpoint_every must be >= 1")


@dataclasses.dataclass
class TrainResult:
  state: TrainState
  seed: int
  seeded_by_user: bool
  resumed_from: int
  wall_time_s: float


def _same_on_all_hosts(seed: int) -> int:
  """Process 0's seed on every host, so all hosts compute the same global batches."""
  if jax.process_count() == 1:
    return seed
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  halves = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
  halves = np.asarray(multihost_utils.broadcast_one_to_all(halves))
  return (int(halves[0]) << 32) | int(halves[1])


def _resolve_seed(config: TrainConfig, workdir: Optional[str]) -> tuple[int, bool]:
  seed, seeded_by_user = _resolve_local_seed(config, workdir)
  return _same_on_all_hosts(seed), seeded_by_user


def _resolve_local_seed(config: TrainConfig, workdir: Optional[str]) -> tuple[int, bool]:
  if config.seed is not None:
    return int(config.seed), True
  if workdir is None:
    return randomness.fresh_seed(), False
  path = os.path.join(workdir, "train_seed.json")
  if os.path.exists(path):
    with open(path) as f:
      return int(json.load(f)["seed"]), False
  seed = randomness.fresh_seed()
  if jax.process_index() == 0:  # the other hosts receive host 0's seed by broadcast
    files.atomic_write_text(path, json.dumps(
        {"seed": seed, "note": "secret: the noise of this run is reproducible from it"}))
  return seed, False


def _forget_seed(workdir: str) -> None:
  """Deletes the secret seed once training is complete: it would let anyone holding the work
  directory regenerate every Poisson mask and noise draw of a DP-SGD run."""
  path = os.path.join(workdir, "train_seed.json")
  if jax.process_index() == 0 and os.path.exists(path):
    os.remove(path)


def train(model: vae_lib.LipschitzVAE, records: np.ndarray, blocks: Sequence,
          config: TrainConfig, workdir: Optional[str] = None,
          devices: Optional[Sequence[jax.Device]] = None,
          stop_after: Optional[int] = None) -> TrainResult:
  """Trains `model` on `records` (n, dim), checkpointing into `workdir/checkpoints`.

  If `workdir` holds a checkpoint, training resumes from its latest step. `stop_after` ends the
  run early after that many steps in total (used to simulate a killed run in tests).
  """
  records = np.asarray(records, np.float32)
  if records.ndim != 2 or records.shape[0] < 1:
    raise ValueError(f"records must be a non-empty (n, dim) array, got shape {records.shape}")
  if not np.all(np.isfinite(records)):
    raise ValueError("records contain NaN or inf")
  num_records = records.shape[0]
  mesh = data_mesh(devices)
  num_devices = mesh.devices.size
  seed, seeded_by_user = _resolve_seed(config, workdir)
  optimizer = optax.adam(config.learning_rate)
  sample = jnp.zeros((1, records.shape[1]), jnp.float32)

  replicated = NamedSharding(mesh, PartitionSpec())
  state = create_train_state(model, optimizer, sample, step_key(seed, 0, 0))
  state = jax.device_put(state, replicated)

  manager = None
  start_step = 0
  if workdir is not None:
    os.makedirs(workdir, exist_ok=True)
    manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),
        options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
    latest = manager.latest_step()
    if latest is not None:
      abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
      state = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
      state = jax.device_put(state, replicated)
      start_step = int(state.step)
      logging.info("Resumed from checkpoint at step %d", start_step)
  metrics_writer = (MetricsWriter(os.path.join(workdir, "metrics.jsonl"), start_step)
                    if workdir is not None else None)

  if config.dp is None:
    if config.batch_size % num_devices:
      raise ValueError(f"batch_size {config.batch_size} is not a multiple of the "
                       f"{num_devices} devices")
    if config.batch_size > num_records:
      raise ValueError(f"batch_size {config.batch_size} exceeds the {num_records} records")
    step_fn = jax.jit(make_train_step(model, optimizer, blocks, config.image_likelihood,
                                      config.beta),
                      in_shardings=(replicated, NamedSharding(mesh, PartitionSpec(DATA_AXIS)),
                                    replicated),
                      out_shardings=(replicated, replicated), donate_argnums=0)
  else:
    dp = config.dp
    chunk = -(-dp.chunk_size // num_devices) * num_devices  # a multiple of the device count
    clipped_sum = jax.jit(make_clipped_gradient_sum(model, blocks, dp.clip_norm,
                                                    config.image_likelihood, config.beta),
                          in_shardings=(replicated, replicated,
                                        NamedSharding(mesh, PartitionSpec(DATA_AXIS)),
                                        NamedSharding(mesh, PartitionSpec(DATA_AXIS)), replicated),
                          out_shardings=replicated)
    noisy_update = jax.jit(make_noisy_update(model, optimizer, dp, num_records, sample),
                           out_shardings=replicated, donate_argnums=0)

  progress = None
  if config.progress_bar and jax.process_index() == 0:
    from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
    progress = tqdm.tqdm(total=config.num_steps, initial=start_step, desc="train",
                         unit="step", dynamic_ncols=True)

  end_step = config.num_steps if stop_after is None else min(config.num_steps, stop_after)
  t0 = time.time()
  window = []
  for step in range(start_step, end_step):
    if config.dp is None:
      idx = shuffled_batch_indices(num_records, config.batch_size, seed, step)
      state, metrics = step_fn(state, shard_rows(mesh, records[idx]), step_key(seed, step, 1))
    else:
      idx = poisson_batch_indices(num_records, dp.sampling_rate, seed, step)
      grad_sum = jax.tree_util.tree_map(jnp.zeros_like, state.params)
      totals = {"loss_sum": 0.0, "clipped_fraction_sum": 0.0, "count": 0.0}
      for c, begin in enumerate(range(0, max(len(idx), 1), chunk)):
        rows = idx[begin:begin + chunk]
        batch = np.zeros((chunk, records.shape[1]), np.float32)
        mask = np.zeros((chunk,), np.float32)
        batch[:len(rows)] = records[rows]
        mask[:len(rows)] = 1.0
        part, stats = clipped_sum(state.params, state.model_state, shard_rows(mesh, batch),
                                  shard_rows(mesh, mask), jax.random.fold_in(
                                      step_key(seed, step, 1), c))
        grad_sum = jax.tree_util.tree_map(jnp.add, grad_sum, part)
        totals = {k: totals[k] + float(v) for k, v in stats.items()}
      noise = replicate(mesh, dpsgd_noise(state.params, dp, seed, step))
      state = noisy_update(state, grad_sum, noise, step_key(seed, step, 2))
      count = max(totals["count"], 1.0)
      metrics = {"loss": totals["loss_sum"] / count, "batch_size": totals["count"],
                 "clipped_fraction": totals["clipped_fraction_sum"] / count}
    window.append(metrics)
    done = step + 1
    if progress is not None:
      progress.update(1)
    if done % config.log_every == 0 or done == end_step:
      mean = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
      window = []
      record = {"step": done, **mean, "elapsed_s": round(time.time() - t0, 3)}
      if config.dp is None:
        logging.info("step %d: %s", done, " ".join(f"{k}={v:.4g}" for k, v in mean.items()))
        if progress is not None:
          progress.set_postfix(loss=f"{mean['loss']:.3f}")
      else:
        # Loss, batch size and clipped fraction are not covered by the DP-SGD accounting: they
        # go only to the private metrics file, never to the console (logs are often shared).
        logging.info("step %d (DP-SGD; statistics only in the private metrics.jsonl)", done)
      if metrics_writer is not None:
        metrics_writer.write(record)
    if manager is not None and (done % config.checkpoint_every == 0 or done == end_step):
      manager.save(done, args=ocp.args.StandardSave(state))
  if manager is not None:
    manager.wait_until_finished()
    manager.close()
  if progress is not None:
    progress.close()
  if workdir is not None and end_step == config.num_steps and not seeded_by_user:
    _forget_seed(workdir)
  return TrainResult(state=state, seed=seed, seeded_by_user=seeded_by_user,
                     resumed_from=start_step, wall_time_s=time.time() - t0)
