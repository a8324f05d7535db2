"""Training the Lipschitz VAE: plain or DP-SGD, data-parallel, resumable, at device speed.

`train(model, records, blocks, config)` is the entry point; it builds the VAE's loss
(`vae_loss`, the negative ELBO of `lipdp.models.vae`) and runs the generic loop `fit`, which
takes any `loss_fn` and a step from `lipdp.training.steps`:

- plain mode minimises the batch-mean loss with optax. The weights then depend on the private
  records without a DP guarantee: the privacy report must use the `conditional` scope
  (docs/method.md);
- DP-SGD mode (`config.dp`; Abadi et al. 2016, `lipdp.training.dpsgd`) gives the weights their own
  guarantee, composed with the per-record release by `lipdp.privacy` (scope `dp-sgd`): exact Poisson
  batches chosen on the host (`lipdp.training.batching`), per-example gradients clipped to C with a
  proven rounding margin, float64 host noise of std z C added to the sum, then the division by q n.
  Loss and clipping statistics, which the accounting does not cover, go only to the private metrics
  file.

Speed. The records are copied to the devices once (`lipdp.training.sharding.place_records`); each
step receives indices and gathers its batch inside one jitted, state-donating function, folds its
PRNG keys from `state.step` there, and leaves its metrics on the devices until a log step. The host
work of the next steps (indices; for DP-SGD the Poisson batch and the float64 noise, all functions
of (seed, step) only) runs on a background thread meanwhile (`batching.Prefetcher`). `BjorckDense`
layers train `retracted` (a plain matmul by lipschitz * W) while the optimiser keeps W orthonormal
(`lipdp.training.optim.on_stiefel`: Riemannian gradients, and one Björck step every
`config.retract_every` updates), and training ends with one exact orthonormalisation
(`lipdp.nn.bjorck.orthonormalize_kernels`): the returned weights give the model as built the
function it was trained as, to ~1e-6, and the certificate reads them as always. See
docs/performance.md.

Data parallelism: one jit over a 1-D device mesh with axis 'data' (`lipdp.training.sharding`);
batches are split along it and the state replicated, so XLA inserts the gradient all-reduce. On
several hosts call `jax.distributed.initialize()` first: every host computes the same seed, indices
and noise, and places only its own devices' parts.

Determinism: the batches and PRNG keys of step t depend only on (seed, t), so a run killed and
resumed from its last orbax checkpoint finishes with the same parameters as an uninterrupted
run with the same seed.
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
import flax
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from lipdp import files
from lipdp import progress as progress_lib
from lipdp import randomness
from lipdp import workdir as workdir_lib
from lipdp.models import vae as vae_lib
from lipdp.nn import bjorck
from lipdp.training import batching
from lipdp.training import dpsgd
from lipdp.training import optim
from lipdp.training import per_example
from lipdp.training import sharding as sharding_lib
from lipdp.training import steps as steps_lib

# Stream 0 of step 0 initialises the parameters (steps use streams 1 and 2: lipdp.training.steps).
_INIT_STREAM = 0
LEARNING_RATE_DECAYS = ("constant", "cosine")


def valid_noise_samples(value) -> bool:
  """Whether `value` is a number of noise draws per record: an integer (not a bool) >= 1."""
  return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def step_key(seed: int, step: int, stream: int) -> jax.Array:
  """The PRNG key of one random stream at one step; depends only on (seed, step, stream).

  Equal to the key the jitted steps fold in on the devices (`lipdp.training.steps.step_rng`).
  """
  return steps_lib.step_rng(randomness.key_from_seed(seed), step, stream)


def vae_loss(
  model: vae_lib.LipschitzVAE,
  blocks: Sequence,
  image_likelihood: str = "bernoulli",
  beta: float = 1.0,
  block_weights: Optional[Mapping[str, float]] = None,
  noise_samples: int = 1,
) -> per_example.LossFn:
  """The per-record negative ELBO of `model` as a `loss_fn` for `steps` (aux: nll, kl).

  `block_weights` weighs named blocks' likelihoods (`lipdp.models.likelihood`); `noise_samples`
  averages each record's reconstruction term over that many draws of the model's noise
  (`lipdp.models.vae.negative_elbo`)."""

  def loss_fn(params, model_state, records, rng, mutable=False):
    variables = {"params": params, **model_state}
    (nelbo, nll, kl), new_model_state = vae_lib.negative_elbo(
      model,
      variables,
      records,
      rng,
      blocks,
      image_likelihood,
      beta,
      mutable=mutable,
      block_weights=block_weights,
      noise_samples=noise_samples,
    )
    return nelbo, {"nll": nll, "kl": kl}, new_model_state

  return loss_fn


def _split_variables(variables):
  variables = (
    flax.core.unfreeze(variables)
    if isinstance(variables, flax.core.FrozenDict)
    else dict(variables)
  )
  params = variables.pop("params")
  return params, variables


def vae_init_variables(model) -> Callable[[jax.Array, jax.Array], Any]:
  """`init_variables` for a VAE (`fit`, `init_state`): `model.init(key, records, noise key)`,
  the encoder's noise key folded from `key`, as `train` initialises it."""
  return lambda key, x: model.init(key, x, jax.random.fold_in(key, 1))


def init_state(
  init_variables: Callable,
  optimizer: optax.GradientTransformation,
  sample_records: jax.Array,
  init_key: jax.Array,
) -> steps_lib.TrainState:
  """Step 0: the parameters and model state of `init_variables(init_key, zeros like
  sample_records)`, and the optimiser's state (traceable: `fit` jits it)."""
  params, model_state = _split_variables(init_variables(init_key, jnp.zeros_like(sample_records)))
  return steps_lib.TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    model_state=model_state,
    opt_state=optimizer.init(params),
  )


class MetricsWriter:
  """Appends one JSON object per line to `path` (`files.append_line`); on resume drops lines
  past the restored step, and a line a crash cut off (rewritten atomically)."""

  def __init__(self, path: str, resume_step: int = 0):
    self.path = path
    kept = []
    if resume_step and os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if (step := _step_of(line)) is not None and step <= resume_step]
    if jax.process_index() == 0:
      files.atomic_write_text(path, "".join(kept))

  def write(self, record: dict) -> None:
    if jax.process_index() != 0:
      return
    files.append_line(self.path, json.dumps(record) + "\n")


def _step_of(line: str) -> Optional[int]:
  """The step of one metrics line, or None for a blank line or one a crash cut off (an append
  is durable, not atomic: `lipdp.files`)."""
  try:
    record = json.loads(line)
  except json.JSONDecodeError:
    return None
  return record.get("step", 0) if isinstance(record, dict) else None


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
    block_weights: weights of named blocks' likelihoods in the ELBO (e.g. {"label": 50.0}: the
      label term then weighs as much as the image's; `lipdp.models.likelihood`).
    log_every, checkpoint_every: progress and checkpoint periods in steps.
    progress_bar: show progress on stderr (`lipdp.progress`: a bar on a terminal, else lines).
    retract_every: Björck kernels are pulled back onto the Stiefel manifold every this many
      optimiser steps (`lipdp.training.optim.bjorck_retraction`; 1 = every step). Between
      retractions they drift by the non-tangent part of a few Adam steps; see docs/performance.md.
    average_decay: when positive, the returned weights are the exponential moving average of
      the iterates with this decay (`lipdp.training.optim.parameter_average`; post-processing, no
      privacy cost), then the Björck kernels' exact orthonormalisation as always.
    learning_rate_decay: "constant", or "cosine": the learning rate follows half a cosine from
      `learning_rate` at step 0 to 0 at `num_steps` (Loshchilov and Hutter 2017), so the last,
      noisiest updates of DP-SGD are the smallest (a fixed schedule: no privacy cost).
    learning_rate_multipliers: optional factor per top-level parameter subtree on its Adam
      updates (`lipdp.training.optim.scale_subtrees`; post-processing of the noisy gradients).
    noise_samples: each record's reconstruction term is averaged over this many draws of the
      model's own noise ("noise multiplicity", Dockhorn et al. 2023): a lower-variance gradient
      per record, clipped once as before (the sensitivity unchanged), for that many decoder
      passes (`lipdp.models.vae.negative_elbo`).
  """

  num_steps: int = 1000
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: Optional[int] = None
  dp: Optional[dpsgd.DPSGDConfig] = None
  image_likelihood: str = "bernoulli"
  beta: float = 1.0
  block_weights: Optional[Mapping[str, float]] = None
  log_every: int = 50
  checkpoint_every: int = 200
  progress_bar: bool = True
  retract_every: int = 4
  average_decay: float = 0.0
  learning_rate_multipliers: Optional[Mapping[str, float]] = None
  learning_rate_decay: str = "constant"
  noise_samples: int = 1

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
    if self.batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
    if self.log_every < 1 or self.checkpoint_every < 1:
      raise ValueError("log_every and checkpoint_every must be >= 1")
    if self.retract_every < 1:
      raise ValueError(f"retract_every must be >= 1, got {self.retract_every}")
    if not 0.0 <= self.average_decay < 1.0:
      raise ValueError(f"average_decay must be in [0, 1), got {self.average_decay}")
    if not valid_noise_samples(self.noise_samples):
      raise ValueError(f"noise_samples must be an integer >= 1, got {self.noise_samples!r}")
    if self.learning_rate_decay not in LEARNING_RATE_DECAYS:
      raise ValueError(
        f"learning_rate_decay must be one of {LEARNING_RATE_DECAYS}, got "
        f"{self.learning_rate_decay!r}"
      )


@dataclasses.dataclass
class TrainResult:
  state: steps_lib.TrainState
  seed: int
  seeded_by_user: bool
  resumed_from: int
  wall_time_s: float


def learning_rate_schedule(config: TrainConfig):
  """Adam's learning rate: a constant, or an optax schedule of the step (`learning_rate_decay`)."""
  if config.learning_rate_decay == "cosine":
    return optax.cosine_decay_schedule(config.learning_rate, config.num_steps)
  return config.learning_rate


def _same_on_all_hosts(seed: int) -> int:
  """Process 0's seed on every host, so all hosts compute the same global batches."""
  if jax.process_count() == 1:
    return seed
  # A secret seed has 257 bits (randomness.fresh_seed): nine 32-bit words hold any seed.
  words = np.array([(seed >> (32 * i)) & 0xFFFFFFFF for i in range(9)], dtype=np.uint32)
  words = np.asarray(multihost_utils.broadcast_one_to_all(words))
  return sum(int(w) << (32 * i) for i, w in enumerate(words))


def _resolve_seed(config: TrainConfig, workdir: Optional[str]) -> tuple[int, bool]:
  seed, seeded_by_user = _resolve_local_seed(config, workdir)
  return _same_on_all_hosts(seed), seeded_by_user


def _resolve_local_seed(config: TrainConfig, workdir: Optional[str]) -> tuple[int, bool]:
  if config.seed is not None:
    return randomness.check_user_seed(config.seed), True
  if workdir is None:
    return randomness.fresh_seed(), False
  path = workdir_lib.path(workdir, workdir_lib.TRAIN_SEED_FILE)
  if os.path.exists(path):
    with open(path) as f:
      return int(json.load(f)["seed"]), False
  seed = randomness.fresh_seed()
  if jax.process_index() == 0:  # the other hosts receive host 0's seed by broadcast
    # Owner-only: whoever reads the seed can regenerate every step's batch and noise, and the
    # checkpoints written until training ends are covered by DP-SGD only while it is secret.
    files.atomic_write_text(
      path,
      json.dumps({"seed": seed, "note": "secret: the noise of this run is reproducible from it"}),
      private=True,
    )
  return seed, False


def _check_same_structure(expected, given, what: str) -> None:
  """Refuses initial variables that are not the model's (their tree or a shape differs)."""
  same_tree = jax.tree_util.tree_structure(expected) == jax.tree_util.tree_structure(given)
  if not same_tree or any(
    jnp.shape(a) != jnp.shape(b)
    for a, b in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(given))
  ):
    raise ValueError(f"initial_variables: their {what} are not this model's (tree or shapes)")


def _forget_seed(workdir: str) -> None:
  """Deletes the secret seed once training is complete: it would let anyone holding the work
  directory regenerate every Poisson mask and noise draw of a DP-SGD run."""
  path = workdir_lib.path(workdir, workdir_lib.TRAIN_SEED_FILE)
  if jax.process_index() == 0 and os.path.exists(path):
    os.remove(path)


def _check_records(records) -> np.ndarray:
  records = np.asarray(records, np.float32)
  if records.ndim != 2 or records.shape[0] < 1:
    raise ValueError(f"records must be a non-empty (n, dim) array, got shape {records.shape}")
  if not np.all(np.isfinite(records)):
    raise ValueError("records contain NaN or inf")
  return records


def training_loss(
  model: vae_lib.LipschitzVAE, blocks: Sequence, config: TrainConfig
) -> per_example.LossFn:
  """The per-record loss `train` differentiates, and DP-SGD clips: the negative ELBO of `model`
  with its Björck kernels retracted, as in training (`lipdp.nn.bjorck.with_retracted_bjorck`)."""
  return vae_loss(
    bjorck.with_retracted_bjorck(model),
    blocks,
    config.image_likelihood,
    config.beta,
    config.block_weights,
    config.noise_samples,
  )


def train(
  model: vae_lib.LipschitzVAE,
  records: np.ndarray,
  blocks: Sequence,
  config: TrainConfig,
  workdir: Optional[str] = None,
  devices: Optional[Sequence[jax.Device]] = None,
  stop_after: Optional[int] = None,
  initial_variables: Optional[Any] = None,
) -> TrainResult:
  """Trains `model` on `records` (n, dim), checkpointing into `workdir/checkpoints`.

  Training starts from `initial_variables` when given (e.g. weights pretrained on public data:
  any start independent of `records` leaves DP-SGD's guarantee unchanged), else from the
  model's initialisation. If `workdir` holds a checkpoint, training resumes from its latest
  step. `stop_after` ends the run early after that many steps in total (used to simulate a
  killed run in tests). The returned parameters are those of `model` (its Björck kernels
  exactly orthonormal; see the module docstring); on several hosts, each host's local copy of
  them.
  """
  records = _check_records(records)
  sample = jnp.zeros((1, records.shape[1]), jnp.float32)
  train_model = bjorck.with_retracted_bjorck(model)
  kernels = bjorck.bjorck_kernel_paths(train_model, jax.random.key(0), sample, jax.random.key(1))
  return fit(
    training_loss(model, blocks, config),
    vae_init_variables(train_model),
    records,
    config,
    workdir=workdir,
    devices=devices,
    stop_after=stop_after,
    bjorck_kernels=kernels,
    initial_variables=initial_variables,
  )


def fit(
  loss_fn: per_example.LossFn,
  init_variables: Callable[[jax.Array, jax.Array], Any],
  records: np.ndarray,
  config: TrainConfig,
  *,
  workdir: Optional[str] = None,
  devices: Optional[Sequence[jax.Device]] = None,
  stop_after: Optional[int] = None,
  bjorck_kernels: frozenset = frozenset(),
  initial_variables: Optional[Any] = None,
) -> TrainResult:
  """The generic training loop: any `loss_fn` (`lipdp.training.per_example.LossFn`), plain or
  DP-SGD.

  Args:
    loss_fn: per-record losses of a batch (see `lipdp.training.steps`).
    init_variables: `(key, zero records of shape (1, dim)) -> variables` (a `params`
      collection and any others, which become the model state).
    records: (n, dim) training records.
    config: the settings; `config.dp` selects DP-SGD.
    workdir: where checkpoints, `metrics.jsonl` and an unseeded run's seed go (None: nowhere).
    devices: the mesh's devices (default: all devices of all processes).
    stop_after: end after this many steps in total (simulates a killed run).
    bjorck_kernels: parameter paths of Björck kernels to keep orthonormal
      (`lipdp.nn.bjorck.bjorck_kernel_paths`): retracted every `config.retract_every` updates
      and exactly orthonormalised at the start and at the end.
    initial_variables: variables to start from instead of `init_variables`' (the same
      structure; a fresh optimiser state). They must not depend on `records`: DP-SGD's
      guarantee holds for any start chosen independently of the private data.
  """
  records = _check_records(records)
  num_records = records.shape[0]
  mesh = sharding_lib.data_mesh(devices)
  replicated = sharding_lib.replicated(mesh)
  seed_file = workdir_lib.path(workdir, workdir_lib.TRAIN_SEED_FILE) if workdir else None
  had_seed_file = seed_file is not None and os.path.exists(seed_file)
  seed, seeded_by_user = _resolve_seed(config, workdir)
  adam = optax.adam(learning_rate_schedule(config))
  if config.learning_rate_multipliers:
    adam = optax.chain(adam, optim.scale_subtrees(config.learning_rate_multipliers))
  optimizer = optim.with_parameter_average(
    optim.on_stiefel(adam, bjorck_kernels, config.retract_every),
    config.average_decay,
  )
  sample = jnp.zeros((1, records.shape[1]), jnp.float32)

  def initial_state(key, start_variables):
    state = init_state(init_variables, optimizer, sample, key)
    if start_variables is not None:
      params, model_state = _split_variables(start_variables)
      _check_same_structure(state.params, params, "params")
      _check_same_structure(state.model_state, model_state, "model state")
      state = state.replace(
        params=params, model_state=model_state, opt_state=optimizer.init(params)
      )
    if config.dp is not None and config.dp.adaptive:  # adaptive clipping's first C
      state = steps_lib.AdaptiveClipTrainState.starting_at(
        state, config.dp.clip_norm, config.dp.clip_norm_shape
      )
    # Start on the manifold, whatever the kernel initialiser.
    return state.replace(params=bjorck.orthonormalize_kernels(state.params, bjorck_kernels))

  state = jax.jit(initial_state, out_shardings=replicated)(
    step_key(seed, 0, _INIT_STREAM), initial_variables
  )

  manager = None
  start_step = 0
  if workdir is not None:
    os.makedirs(workdir, exist_ok=True)
    manager = workdir_lib.checkpoint_manager(workdir)
    latest = manager.latest_step()
    if latest is not None:
      abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
      state = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
      state = jax.device_put(state, replicated)
      start_step = int(sharding_lib.host_value(state.step))
      logging.info("Resumed from checkpoint at step %d", start_step)
      # Host 0 keeps the seed file; the other hosts receive its seed by broadcast.
      missing = not (seeded_by_user or had_seed_file) and jax.process_index() == 0
      if missing and start_step < config.num_steps:
        logging.warning(
          "%s was missing when training resumed from step %d: the remaining steps draw fresh "
          "batches and noise (still private, but this run no longer reproduces the interrupted "
          "one). If the file was moved or copied, a DP-SGD run's checkpoints are covered only "
          "while that copy stays secret.",
          seed_file,
          start_step,
        )
  metrics_writer = (
    MetricsWriter(workdir_lib.path(workdir, workdir_lib.METRICS_FILE), start_step)
    if workdir is not None
    else None
  )

  step = steps_lib.make_step(
    loss_fn,
    optimizer,
    mesh,
    dp=config.dp,
    batch_size=config.batch_size,
    num_records=num_records,
    seed=seed,
    sample_record=sample,
    param_shapes=jax.tree_util.tree_map(
      lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), state.params
    ),
  )
  device_records = sharding_lib.place_records(mesh, records)
  run_key = sharding_lib.replicate(
    mesh, np.asarray(jax.random.key_data(randomness.key_from_seed(seed)))
  )

  progress = None
  if config.progress_bar and jax.process_index() == 0:  # a bar, or lines in a log file
    progress = progress_lib.for_stderr(config.num_steps, start_step, "train")

  end_step = config.num_steps if stop_after is None else min(config.num_steps, stop_after)
  # Steps queued on the devices before the host waits: enough to overlap dispatch with compute.
  max_in_flight = 1 if jax.default_backend() == "cpu" else 2
  t0 = time.time()
  window = []
  with batching.Prefetcher(lambda t: step.place(step.host_inputs(t)), end_step) as prefetch:
    for t in range(start_step, end_step):
      state, metrics = step.update(state, device_records, run_key, prefetch.get(t))
      window.append(metrics)
      if len(window) > max_in_flight:
        # XLA:CPU runs each device's share of a step on one shared thread pool; with several
        # multi-device steps queued, an all-reduce can wait forever for a participant whose
        # thread is taken (a rendezvous abort after 40 s). Bound the queue.
        jax.block_until_ready(window[-1 - max_in_flight])
      done = t + 1
      if progress is not None:
        progress.update(1)
      if done % config.log_every == 0 or done == end_step:
        mean = step.summarize(sharding_lib.host_value(window))  # the only device sync
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
  if config.average_decay:
    # The averaged iterates are the trained weights (post-processing, DP-SGD's included).
    state = jax.jit(
      lambda s: s.replace(params=optim.average_of(s.opt_state)), out_shardings=replicated
    )(state)
  if bjorck_kernels:
    # The exact normalisation (post-processing of the trained weights, DP-SGD's included).
    state = jax.jit(
      lambda s: s.replace(params=bjorck.orthonormalize_kernels(s.params, bjorck_kernels)),
      out_shardings=replicated,
    )(state)
  if workdir is not None and end_step == config.num_steps and not seeded_by_user:
    _forget_seed(workdir)
  if jax.process_count() > 1:
    # Each host's own copy (on one of its devices), for the host-local work that follows
    # (certificate, release): a global array is not fully addressable from one host.
    state = jax.tree_util.tree_map(lambda x: x.addressable_data(0), state)
  jax.block_until_ready(state)
  return TrainResult(
    state=state,
    seed=seed,
    seeded_by_user=seeded_by_user,
    resumed_from=start_step,
    wall_time_s=time.time() - t0,
  )
