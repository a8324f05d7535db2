r"""Benchmarks: the cost of the Lipschitz constraints, DP-SGD, synthesis and accounting, each
measured against a baseline in the same run.

Usage:

  python experiments/benchmark.py                      # all sections
  python experiments/benchmark.py --quick              # all sections in about a minute (CI)
  python experiments/benchmark.py --sections=vae_step,mlp_step --batch_size=1024 \
      --output=table.md                                # also write the table (markdown)

Each section is a function `() -> list[Row]` registered in `SECTIONS`. Timed variants are run in
the same process, interleaved round-robin so that a busy machine slows them all alike, with
compilation and warm-up excluded; the median over repetitions is reported, and each ratio is
relative to the section's first row. No test asserts on these numbers (docs/performance.md
records them).

Sections:

* `mlp_step`: one Adam step of an MLP 784-512-256-16 (MSE loss) at `--batch_size`: plain
  `nn.Dense` + ReLU (baseline); Björck + MaxMin as `lipdp.training` trains it (retracted layers,
  Riemannian Adam, one Björck retraction every 4 steps) and with a retraction every step; the
  previous method (Björck iterations in every forward pass, warm-started by retraction to the
  polar factor); spectral normalisation; a naive 15-iteration differentiated Björck.
* `vae_step`: one `lipdp.training.steps` training step of the VAE (encoder 784-256-128-16, MLP
  decoder, Bernoulli images + one-hot labels) at `--batch_size`, with the host work (indices, DP
  noise) prefetched as `lipdp.training` does: plain encoder (baseline), Björck (as trained,
  every-step retraction, the previous method), spectral, an AOL convolutional encoder, and DP-SGD
  with the Björck encoder at expected batch size `--batch_size` (when the `dpsgd` section does
  not run).
  Also XLA's FLOP count per step (compiled cost analysis) and the achieved FLOP rate.
* `dpsgd`: DP-SGD steps of the same VAE at expected batches `--dpsgd_batches` (256 and 1,024),
  with per-example clipping by vmap (per-example gradients) and by ghost norms
  (`lipdp.training.ghost_clipping`), each against a plain step of the same batch (`--quick`: ghost
  at 1,024 only).
* `synthesis`: records per second of `release_latents` + `decode_latents` (the per-record
  work of `lipdp.latent_release.synthesize`) against a plain jitted forward pass (encoder mean,
  decoder) of the same network on the same chunks, for 10^3 .. 10^6 records, with float64
  noise, and up to 10^4 records with the exact lattice noise synthesize draws by default; and
  the whole `synthesize` call (certificate, report) at 10^3 records.
* `accounting`: `calibrate_sigma` (target < 50 ms) against the classic closed form, and
  10,000 DP-SGD steps composed with the release by PLD (target < 2 s).
* `memory`: peak memory of the VAE steps (XLA's compiled memory analysis: arguments, outputs
  and temporaries) against the plain step, and the process's peak resident memory; with the
  `dpsgd` section, its steps too (the temporaries do not grow with the expected batch).
* `devices`: the plain and DP-SGD VAE steps on 1 versus 4 devices (a subprocess with
  `--xla_force_host_platform_device_count=4`; on a CPU the 4 devices share the same cores).
"""

import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Optional, Sequence

from absl import app
from absl import flags
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lipdp import data as data_lib
from lipdp import latent_release as synth_lib
from lipdp import nn as lnn
from lipdp import privacy
from lipdp import training
from lipdp.data import Block
from lipdp.models import decoders
from lipdp.models import vae as vae_lib
from lipdp.nn import bjorck
from lipdp.privacy import composition
from lipdp.training import batching
from lipdp.training import loop
from lipdp.training import optim
from lipdp.training import sharding
from lipdp.training import steps as steps_lib

FLAGS = flags.FLAGS
ALL_SECTIONS = ["mlp_step", "vae_step", "dpsgd", "synthesis", "accounting", "memory", "devices"]
flags.DEFINE_list("sections", ALL_SECTIONS, "Sections to run (see SECTIONS).")
flags.DEFINE_bool("quick", False, "Few repetitions and small sizes: all sections in ~1 minute.")
flags.DEFINE_integer("batch_size", 256, "Batch size of the train steps.")
flags.DEFINE_integer("repeats", 15, "Timed repetitions per variant (the median is reported).")
flags.DEFINE_integer("steps_per_repeat", 10, "Train steps per timed repetition.")
flags.DEFINE_integer("warmup", 3, "Untimed steps per variant after compilation.")
flags.DEFINE_integer("naive_iters", 15, "Differentiated Björck iterations of the naive variant.")
flags.DEFINE_list(
  "synthesis_records",
  ["1000", "10000", "100000", "1000000"],
  "Record counts of the synthesis section.",
)
flags.DEFINE_integer("seed", 0, "Seed of the weights and the data.")
flags.DEFINE_string("output", None, "Also write the tables (markdown) to this file.")
flags.DEFINE_integer("device_count", 4, "Devices of the `devices` section's subprocess.")
flags.DEFINE_list("dpsgd_batches", ["256", "1024"], "Expected batch sizes of the dpsgd section.")
flags.DEFINE_integer("ghost_chunk", None, "Microbatch of the ghost path (default: its default).")
flags.DEFINE_integer("vmap_chunk", None, "Microbatch of the vmap path (default: its default).")

_WIDTHS = (784, 512, 256, 16)  # mlp_step
_ENCODER = (256, 128, 16)  # vae_step: the default config's encoder
_DECODER = (256, 512)
_IMAGE, _LABELS = 784, 10
_BLOCKS = (
  Block("image", "image", 0, _IMAGE),
  Block("label", "categorical", _IMAGE, _IMAGE + _LABELS),
)
_NUM_RECORDS = 8192
_RETRACT_EVERY = training.TrainConfig.retract_every


@dataclasses.dataclass
class Row:
  section: str
  variant: str
  value: float  # ms per step, or what `unit` says
  ratio: float
  note: str = ""
  unit: str = "ms/step"


def _quick() -> bool:
  return FLAGS.quick


def _repeats() -> tuple[int, int, int]:
  if _quick():
    return 2, 2, 0
  return FLAGS.repeats, FLAGS.steps_per_repeat, FLAGS.warmup


@dataclasses.dataclass
class _Variant:
  name: str
  step: Callable[[Any], Any]  # carry -> carry (asynchronous: blocks only on the result)
  carry: Any
  note: Callable[[Any], str] = lambda carry: ""
  cleanup: Callable[[], None] = lambda: None


def _time_variants(section: str, variants: Sequence[_Variant]) -> list[Row]:
  repeats, per_repeat, warmup = _repeats()
  for v in variants:  # Compile and warm up.
    for _ in range(1 + warmup):
      v.carry = v.step(v.carry)
    jax.block_until_ready(v.carry)
  times = {v.name: [] for v in variants}
  for _ in range(repeats):  # Round-robin, so load changes hit every variant alike.
    for v in variants:
      start = time.perf_counter()
      for _ in range(per_repeat):
        v.carry = v.step(v.carry)
      jax.block_until_ready(v.carry)
      times[v.name].append((time.perf_counter() - start) / per_repeat)
  base = statistics.median(times[variants[0].name])
  rows = [
    Row(
      section,
      v.name,
      1e3 * statistics.median(times[v.name]),
      statistics.median(times[v.name]) / base,
      v.note(v.carry),
    )
    for v in variants
  ]
  for v in variants:
    v.cleanup()
  return rows


# --- mlp_step ---------------------------------------------------------------------------------


class _PlainMLP(nn.Module):
  widths: Sequence[int]

  @nn.compact
  def __call__(self, x):
    for i, width in enumerate(self.widths):
      x = nn.Dense(width)(x)
      if i < len(self.widths) - 1:
        x = nn.relu(x)
    return x


class _NaiveBjorckDense(nn.Module):
  """Reference only: Frobenius scaling, then `num_iters` order-1 Björck steps, all
  differentiated (as in the original implementations). Not certified, not exported."""

  features: int
  num_iters: int

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", nn.initializers.orthogonal(), (x.shape[-1], self.features))
    wide = w.shape[0] < w.shape[1]
    q = (w.T if wide else w) / jnp.linalg.norm(w)
    for _ in range(self.num_iters):
      q = q @ (1.5 * jnp.eye(q.shape[1]) - 0.5 * q.T @ q)
    q = q.T if wide else q
    return x @ q + self.param("bias", nn.initializers.zeros_init(), (self.features,))


def _naive_bjorck_mlp(widths: Sequence[int], num_iters: int) -> nn.Module:
  layers = []
  for i, width in enumerate(widths):
    layers.append(_NaiveBjorckDense(width, num_iters))
    if i < len(widths) - 1:
      layers.append(lnn.MaxMin())
  return lnn.LipschitzSequential(layers)


def _mlp_variant(
  name, model, x, y, method: str = "plain", retract_every: int = _RETRACT_EVERY
) -> _Variant:
  """A jitted Adam step `carry -> carry` on `mean((model(x) - y)^2)`.

  `method`: 'plain' (Adam), 'stiefel' (retracted Björck layers with
  `lipdp.training.optim.on_stiefel`, as `lipdp.training` trains them), 'retract-only' (the same
  without the tangent projection), or 'polar' (the previous method: iterating Björck layers,
  Adam's update applied to the polar factor the forward pass stored).
  """
  if method in ("stiefel", "retract-only"):
    model = bjorck.with_retracted_bjorck(model)
  variables = jax.jit(model.init)(jax.random.PRNGKey(FLAGS.seed), x[:1])
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k != "params"}
  if method != "polar":
    state.pop(lnn.POLAR_COLLECTION, None)
  tx = optax.adam(1e-3)
  if method in ("stiefel", "retract-only"):
    kernels = bjorck.bjorck_kernel_paths(model, jax.random.PRNGKey(0), x[:1])
    tx = (
      optim.on_stiefel(tx, kernels, retract_every)
      if method == "stiefel"
      else optax.chain(tx, optim.bjorck_retraction(kernels, retract_every))
    )
    params = jax.jit(bjorck.orthonormalize_kernels, static_argnums=1)(params, kernels)

  def loss_fn(params, state):
    if state:
      out, new_state = model.apply({"params": params, **state}, x, mutable=list(state))
    else:
      out, new_state = model.apply({"params": params}, x), state
    return jnp.mean((out - y) ** 2), new_state

  @jax.jit
  def step(carry):
    params, state, opt_state = carry
    (_, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state)
    updates, opt_state = tx.update(grads, opt_state, params)
    if method == "polar":
      params = lnn.retract_to_polar(params, state[lnn.POLAR_COLLECTION])
    return optax.apply_updates(params, updates), state, opt_state

  return _Variant(name, step, (params, state, tx.init(params)))


def mlp_step() -> list[Row]:
  """Train-step time of Lipschitz MLPs relative to a plain MLP of the same shape."""
  rng = np.random.default_rng(FLAGS.seed)
  x = jnp.asarray(rng.uniform(0, 1, (FLAGS.batch_size, _WIDTHS[0])), jnp.float32)
  y = jnp.asarray(rng.standard_normal((FLAGS.batch_size, _WIDTHS[-1])), jnp.float32)
  out = _WIDTHS[1:]
  variants = [
    _mlp_variant("plain nn.Dense + relu", _PlainMLP(out), x, y),
    _mlp_variant(
      f"bjorck, lipdp.training (retraction every {_RETRACT_EVERY})",
      lnn.lipschitz_mlp(out),
      x,
      y,
      "stiefel",
    ),
    _mlp_variant("spectral + maxmin (1 power it.)", lnn.lipschitz_mlp(out, dense="spectral"), x, y),
  ]
  if not _quick():
    variants += [
      _mlp_variant("bjorck, retraction every step", lnn.lipschitz_mlp(out), x, y, "stiefel", 1),
      _mlp_variant(
        "bjorck, no tangent projection, retraction every step",
        lnn.lipschitz_mlp(out),
        x,
        y,
        "retract-only",
        1,
      ),
      _mlp_variant("bjorck, previous (iterating + polar)", lnn.lipschitz_mlp(out), x, y, "polar"),
      _mlp_variant(
        f"naive bjorck ({FLAGS.naive_iters} differentiated it.)",
        _naive_bjorck_mlp(out, FLAGS.naive_iters),
        x,
        y,
      ),
    ]
  return _time_variants("mlp_step", variants)


# --- vae_step ---------------------------------------------------------------------------------


class _ImageConvEncoder(nn.Module):
  """AOL convolutions on the 28x28 image part, then an AOL dense layer (timing only)."""

  @nn.compact
  def __call__(self, x):
    image = x[..., :_IMAGE].reshape(x.shape[:-1] + (28, 28, 1))
    net = lnn.lipschitz_convnet([16, 32], [_ENCODER[-1]], conv="aol", dense="aol", strides=[2, 2])
    return net(image)


def _vae(encoder: nn.Module) -> vae_lib.LipschitzVAE:
  return vae_lib.LipschitzVAE(
    encoder_mean=encoder, decoder=decoders.MLPDecoder(_DECODER, _IMAGE + _LABELS)
  )


def _vae_records(n: int = _NUM_RECORDS) -> np.ndarray:
  rng = np.random.default_rng(FLAGS.seed)
  image = (rng.uniform(0, 1, (n, _IMAGE)) < 0.2).astype(np.float32)
  return np.concatenate(
    [image, np.eye(_LABELS, dtype=np.float32)[rng.integers(0, _LABELS, n)]], axis=1
  )


@dataclasses.dataclass
class _Built:
  """A VAE step as `lipdp.training.fit` builds it, and what a timing loop needs."""

  step: Any  # lipdp.training.steps.Step, or None for the reference ('polar') variant
  state: Any
  records: jax.Array
  run_key: jax.Array
  compiled: Any = None  # the compiled step, for cost and memory analysis


def _initial_state(model, optimizer, sample, init_key, sharding_) -> steps_lib.TrainState:
  """Step 0 of the state, jitted and placed by `sharding_` (the model's noise key folded from
  `init_key`, as `lipdp.training.loop` folds it)."""

  def init(key):
    return loop.init_state(loop.vae_init_variables(model), optimizer, sample, key)

  return jax.jit(init, out_shardings=sharding_)(init_key)


def _build_vae_step(
  model,
  mesh,
  method: str,
  dp: Optional[training.DPSGDConfig] = None,
  retract_every: int = _RETRACT_EVERY,
  batch_size: Optional[int] = None,
) -> _Built:
  """`method`: 'train' (exactly `lipdp.training.train`'s set-up) or 'polar' (the previous method).

  `batch_size`: of the plain step (default `--batch_size`)."""
  records = _vae_records()
  sample = jnp.zeros((1, records.shape[1]), jnp.float32)
  replicated = sharding.replicated(mesh)
  device_records = sharding.place_records(mesh, records)
  run_key = sharding.replicate(mesh, np.asarray(jax.random.key_data(jax.random.key(FLAGS.seed))))
  if method == "train":
    model = bjorck.with_retracted_bjorck(model)
    kernels = bjorck.bjorck_kernel_paths(model, jax.random.key(0), sample, jax.random.key(1))
    optimizer = optim.on_stiefel(optax.adam(1e-3), kernels, retract_every)
    state = _initial_state(model, optimizer, sample, jax.random.key(FLAGS.seed), replicated)
    shapes = jax.tree_util.tree_map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), state.params)
    step = steps_lib.make_step(
      loop.vae_loss(model, _BLOCKS),
      optimizer,
      mesh,
      dp=dp,
      batch_size=batch_size or FLAGS.batch_size,
      num_records=len(records),
      seed=FLAGS.seed,
      param_shapes=shapes,
      sample_record=sample,
    )
    return _Built(step, state, device_records, run_key)
  # The previous method: iterating Björck layers, Adam's update applied to the polar factor.
  optimizer = optax.adam(1e-3)
  variables = flax.core.unfreeze(
    jax.jit(model.init)(jax.random.key(FLAGS.seed), sample, jax.random.key(1))
  )
  params = variables.pop("params")
  state = (params, variables, optimizer.init(params))
  loss_fn = loop.vae_loss(model, _BLOCKS)

  @jax.jit
  def polar_step(carry, records, run_key, indices):
    params, model_state, opt_state = carry
    batch = jnp.take(records, indices, axis=0)

    def mean_loss(p):
      losses, _, new = loss_fn(p, model_state, batch, steps_lib.as_key(run_key), list(model_state))
      return jnp.mean(losses), new

    (_, new), grads = jax.value_and_grad(mean_loss, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(lnn.retract_to_polar(params, new[lnn.POLAR_COLLECTION]), updates)
    return params, new, opt_state

  return _Built(polar_step, state, device_records, run_key)


def _vae_variant(name: str, built: _Built) -> _Variant:
  """Timing loop: host inputs prefetched on a thread, then the jitted step, as `fit` runs."""
  if isinstance(built.step, steps_lib.Step):
    step = built.step
    prefetch = batching.Prefetcher(lambda t: step.place(step.host_inputs(t)), end=1 << 30)

    def run(carry):
      state, t = carry
      state, _ = step.update(state, built.records, built.run_key, prefetch.get(t))
      return state, t + 1

    built.compiled = step._step.lower(  # pylint: disable=protected-access
      built.state, built.records, built.run_key, step.place(step.host_inputs(0))
    ).compile()
    return _Variant(
      name, run, (built.state, 0), lambda carry: _flops_note(built.compiled), prefetch.close
    )
  shuffler = batching.EpochShuffler(_NUM_RECORDS, FLAGS.batch_size, FLAGS.seed)

  def run_polar(carry):
    state, t = carry
    return built.step(state, built.records, built.run_key, jnp.asarray(shuffler(t))), t + 1

  return _Variant(name, run_polar, (built.state, 0))


def _flops_note(compiled) -> str:
  """XLA's FLOP count for one step (compiled cost analysis; a loop body is counted once)."""
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return f"{cost['flops'] / 1e9:.2f} GFLOP/step (XLA)"
  except Exception as e:  # pylint: disable=broad-except
    return f"(no cost analysis: {type(e).__name__})"


def _vae_variants(mesh, dp_too: Optional[bool] = None) -> list[tuple[str, Callable[[], _Built]]]:
  """The VAE steps; DP-SGD (ghost clipping, the default; the float32 sum, whose bounded
  variant, the spec's default, the `dpsgd` section times) unless the `dpsgd` section runs."""
  if dp_too is None:
    dp_too = "dpsgd" not in FLAGS.sections
  batch = FLAGS.batch_size
  dp = training.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=batch / _NUM_RECORDS)
  variants = [
    (
      "plain encoder (nn.Dense + relu)",
      lambda: _build_vae_step(_vae(_PlainMLP(_ENCODER)), mesh, "train"),
    ),
    (
      f"bjorck, lipdp.training (retraction every {_RETRACT_EVERY})",
      lambda: _build_vae_step(_vae(lnn.lipschitz_mlp(_ENCODER)), mesh, "train"),
    ),
  ]
  if not _quick():
    variants += [
      (
        "bjorck, retraction every step",
        lambda: _build_vae_step(_vae(lnn.lipschitz_mlp(_ENCODER)), mesh, "train", retract_every=1),
      ),
      (
        "bjorck, previous (iterating + polar)",
        lambda: _build_vae_step(_vae(lnn.lipschitz_mlp(_ENCODER)), mesh, "polar"),
      ),
    ]
  variants += [
    (
      "spectral encoder",
      lambda: _build_vae_step(_vae(lnn.lipschitz_mlp(_ENCODER, dense="spectral")), mesh, "train"),
    ),
    ("aol conv encoder", lambda: _build_vae_step(_vae(_ImageConvEncoder()), mesh, "train")),
  ]
  if dp_too:
    variants.append(
      (
        f"dp-sgd (ghost, float32 sum), bjorck (expected batch {batch}, microbatch "
        f"{dp.microbatch_size})",
        lambda: _build_vae_step(_vae(lnn.lipschitz_mlp(_ENCODER)), mesh, "train", dp=dp),
      )
    )
  return variants


_BUILT_VAE: dict = {}


def vae_step() -> list[Row]:
  """VAE train-step time of each encoder (and DP-SGD) relative to a plain encoder."""
  mesh = sharding.data_mesh(jax.devices()[:1])
  built = {name: build() for name, build in _vae_variants(mesh)}
  rows = _time_variants("vae_step", [_vae_variant(n, b) for n, b in built.items()])
  _BUILT_VAE.update(built)
  for row in rows:  # the achieved rate, from XLA's FLOP count
    if "GFLOP/step" in row.note:
      gflop = float(row.note.split()[0])
      row.note += f", {gflop / row.value * 1e3:.1f} GFLOP/s"
  return rows


# --- dpsgd ------------------------------------------------------------------------------------


def _dpsgd_batches() -> list[int]:
  batches = [int(b) for b in FLAGS.dpsgd_batches]
  return batches[-1:] if _quick() else batches  # --quick: the largest (the target's) only


def dpsgd() -> list[Row]:
  """DP-SGD steps (vmap and ghost clipping; fixed-point and bounded float sums) against a plain step
  of the same expected batch.

  The VAE of `vae_step` (Björck encoder 784-256-128-16 as `lipdp.training` trains it, MLP decoder
  16-256-512-794) on 8,192 records of 784 + 10 values; the DP-SGD batch is Poisson with
  q = batch / 8192. Each batch size is timed as its own group (plain, ghost, vmap), so every
  ratio is to the plain step of the same batch. `--quick` times the last batch only, without
  the vmap path (tens of plain steps each, and its compilation).
  """
  mesh = sharding.data_mesh(jax.devices()[:1])
  model = lambda: _vae(lnn.lipschitz_mlp(_ENCODER))
  rows = []
  for i, batch in enumerate(_dpsgd_batches()):
    q = batch / _NUM_RECORDS
    variants = [
      (f"plain step, batch {batch}", None),
      (
        f"dp-sgd ghost, expected batch {batch}",
        training.DPSGDConfig(1.0, 1.0, q, chunk_size=FLAGS.ghost_chunk, clipping="ghost"),
      ),
    ]
    if not _quick():
      variants.append(
        (
          f"dp-sgd vmap, expected batch {batch}",
          training.DPSGDConfig(1.0, 1.0, q, chunk_size=FLAGS.vmap_chunk, clipping="vmap"),
        )
      )
      # The bounded float sum (lipdp.training.fixed_point; the default arithmetic): ghost
      # clipping, its float32 sum's rounding paid for, rounded to the grid; records at fixed
      # places (padded rows), at the microbatch the step picks (batching.placed_chunk_size) and
      # at the float path's.
      float_chunk = FLAGS.ghost_chunk or training.dpsgd.DEFAULT_CHUNK_SIZES["ghost"]
      for chunk in dict.fromkeys((FLAGS.ghost_chunk, float_chunk)):
        variants.append(
          (
            f"dp-sgd ghost bounded-float32, expected batch {batch}"
            + ("" if chunk == FLAGS.ghost_chunk else f", microbatch {chunk}"),
            training.DPSGDConfig(
              1.0, 1.0, q, chunk_size=chunk, clipping="ghost", sum_arithmetic="bounded-float32"
            ),
          )
        )
      # The exact sum (lipdp.training.fixed_point): the vmap path's gradients on an integer grid.
      variants.append(
        (
          f"dp-sgd vmap fixed-point, expected batch {batch}",
          training.DPSGDConfig(
            1.0,
            1.0,
            q,
            chunk_size=FLAGS.vmap_chunk,
            clipping="vmap",
            sum_arithmetic="fixed-point",
          ),
        )
      )
    built = {
      name: _build_vae_step(model(), mesh, "train", dp=dp, batch_size=batch)
      for name, dp in variants
    }
    timed = []
    for name, b in built.items():
      v = _vae_variant(name, b)
      if b.step.__class__.__name__ == "DPSGDStep":
        chunk = b.step.chunk
        v.note = lambda carry, chunk=chunk: f"microbatch {chunk}"
      timed.append(v)
    rows += _time_variants("dpsgd", timed)
    _BUILT_VAE.update({f"{name} (dpsgd)": b for name, b in built.items()})  # for `memory`
  return rows


# --- memory -----------------------------------------------------------------------------------


def memory() -> list[Row]:
  """Peak device memory of each VAE step (XLA's memory analysis) relative to the plain step."""
  built = _BUILT_VAE or {
    name: build() for name, build in _vae_variants(sharding.data_mesh(jax.devices()[:1]))
  }
  rows = []
  for name, b in built.items():
    if not isinstance(b.step, steps_lib.Step):
      continue
    if b.compiled is None:
      _vae_variant(name, b).cleanup()  # compiles
    stats = b.compiled.memory_analysis()
    total = (
      stats.argument_size_in_bytes
      + stats.output_size_in_bytes
      + stats.temp_size_in_bytes
      - stats.alias_size_in_bytes
    )
    rows.append(
      Row(
        "memory",
        name,
        total / 2**20,
        0.0,
        f"temporaries {stats.temp_size_in_bytes / 2**20:.1f} MiB, arguments "
        f"{stats.argument_size_in_bytes / 2**20:.1f} MiB (records included)",
        unit="MiB",
      )
    )
  for row in rows:
    row.ratio = row.value / rows[0].value
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  rows.append(
    Row("memory", "host: peak resident memory of this process", peak, float("nan"), unit="MiB")
  )
  return rows


# --- synthesis --------------------------------------------------------------------------------


def synthesis() -> list[Row]:
  """Synthesis throughput against a plain forward pass, and its growth with the records."""
  domain = data_lib.load_dataset("digits").domain
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp(_ENCODER, 0.05),
    decoder=decoders.MLPDecoder(_DECODER, domain.dim),
    sigma=1.0,
  )
  variables = jax.jit(model.init)(
    jax.random.key(FLAGS.seed), jnp.zeros((1, domain.dim)), jax.random.key(1)
  )
  sizes = [int(s) for s in FLAGS.synthesis_records]
  if _quick():
    sizes = [s for s in sizes if s <= 10_000]
  chunk = 4096  # synthesize's encode batch is 1024 and decode 4096; the baseline uses the larger

  @jax.jit
  def forward(variables, x, z_noise):
    mu, sigma = model.apply(variables, x, method=vae_lib.LipschitzVAE.encode)
    logits = model.apply(
      variables, mu + sigma[:, None] * z_noise, method=vae_lib.LipschitzVAE.decode
    )
    return jax.nn.sigmoid(logits)

  def plain(records):
    out = []
    for b in range(0, len(records), chunk):
      part = records[b : b + chunk]
      if len(part) < chunk:
        part = np.concatenate([part, np.zeros((chunk - len(part), part.shape[1]), part.dtype)])
      out.append(forward(variables, jnp.asarray(part), jnp.zeros((chunk, _ENCODER[-1]))))
    return np.concatenate([np.asarray(o) for o in out])[: len(records)]

  # The exact lattice noise that synthesize draws by default for a homoscedastic model
  # (docs/privacy.md, "Exact noise on a lattice"), against float64 noise of the same sigma.
  lattice = privacy.LatticeNoise.covering(1.0, 1.0, _ENCODER[-1])
  # Certified once, as synthesize does per release (not part of the per-record cost).
  certificate = synth_lib.certify_encoder(model, variables, domain.dim)

  def lipdp_synthesis(records, exact=False):
    latents = synth_lib.release_latents(
      model,
      variables,
      records,
      1,
      np.random.default_rng(0),
      sigma=lattice.accounted_sigma() if exact else 1.0,
      lattice=lattice if exact else None,
      certificate=certificate,
    )
    return synth_lib.decode_latents(model, variables, latents.astype(np.float32), domain)

  rng = np.random.default_rng(FLAGS.seed)
  rows = []
  plain(np.zeros((10, domain.dim), np.float32))  # compile
  lipdp_synthesis(np.zeros((10, domain.dim), np.float32))
  first_rate = None
  for n in sizes:
    records = domain.project(rng.uniform(0, 1, (n, domain.dim)).astype(np.float32))
    repeats = 1 if n >= 100_000 or _quick() else 3
    t_plain, t_lipdp = [], []
    for _ in range(repeats):
      start = time.perf_counter()
      plain(records)
      t_plain.append(time.perf_counter() - start)
      start = time.perf_counter()
      lipdp_synthesis(records)
      t_lipdp.append(time.perf_counter() - start)
    tp, tl = min(t_plain), min(t_lipdp)
    rate = n / tl
    first_rate = first_rate or rate
    rows.append(
      Row(
        "synthesis",
        f"{n:>9,d} records: lipdp (release + decode)",
        rate,
        tl / tp,
        f"plain forward {n / tp:,.0f} records/s; rate / rate at {sizes[0]:,d}: "
        f"{rate / first_rate:.2f}",
        unit="records/s",
      )
    )
    if n <= 10_000:  # pure Python: about 3.5 us a coordinate
      start = time.perf_counter()
      lipdp_synthesis(records, exact=True)
      te = time.perf_counter() - start
      rows.append(
        Row(
          "synthesis",
          f"{n:>9,d} records: lipdp, exact lattice noise (the default)",
          n / te,
          te / tp,
          f"{_ENCODER[-1]} latents a record; float64 noise took {tl / te:.2f} of this time",
          unit="records/s",
        )
      )
  if _quick():
    return rows
  records = domain.project(rng.uniform(0, 1, (1000, domain.dim)).astype(np.float32))
  synth_lib.synthesize(
    model, variables, records, domain, epsilon=1.0, delta=1e-5, scope="conditional", seed=0
  )  # compiles the certificate's checks
  start = time.perf_counter()
  synth_lib.synthesize(
    model, variables, records, domain, epsilon=1.0, delta=1e-5, scope="conditional", seed=0
  )
  rows.append(
    Row(
      "synthesis",
      "synthesize(): 1,000 records, certificate and report (compiled)",
      1e3 * (time.perf_counter() - start),
      float("nan"),
      unit="ms",
    )
  )
  return rows


# --- accounting -------------------------------------------------------------------------------


def _best_of(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def accounting() -> list[Row]:
  """Privacy accounting times against the closed form and the issue's targets."""
  repeats = 3 if _quick() else 10
  classic = _best_of(lambda: privacy.classic_gaussian_sigma(1.0, 1e-5, 1.0), 100)
  calibrate = _best_of(lambda: privacy.calibrate_sigma(1.0, 1e-5, 1.0), repeats)

  def compose_run():
    return privacy.compose_dpsgd_and_release(
      noise_multiplier=1.0, sampling_rate=0.01, steps=10_000, sigma=3.0, sensitivity=1.0, delta=1e-5
    )

  def cold():
    composition.clear_pld_cache()  # DP-SGD's PLD is kept between calls: time it built afresh
    compose_run()

  compose = _best_of(cold, 1 if _quick() else 3)
  again = _best_of(compose_run, repeats)  # the same run, its DP-SGD PLD kept
  return [
    Row(
      "accounting", "classic_gaussian_sigma (closed form, baseline)", 1e3 * classic, 1.0, unit="ms"
    ),
    Row(
      "accounting",
      "calibrate_sigma (analytic Gaussian)",
      1e3 * calibrate,
      calibrate / classic,
      f"target < 50 ms: {'met' if calibrate < 0.05 else 'NOT met'}",
      unit="ms",
    ),
    Row(
      "accounting",
      "10,000-step DP-SGD + release (PLD)",
      1e3 * compose,
      compose / classic,
      f"target < 2 s: {'met' if compose < 2 else 'NOT met'}",
      unit="ms",
    ),
    Row(
      "accounting",
      "the same run again (its DP-SGD PLD kept)",
      1e3 * again,
      again / classic,
      "calibration and the report evaluate one run several times",
      unit="ms",
    ),
  ]


# --- devices ----------------------------------------------------------------------------------


_DEVICES_RUN: list = []  # the subprocess of the `devices` section, started early by `main`


def _start_devices_run() -> subprocess.Popen:
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={FLAGS.device_count}"
  ).strip()
  env.setdefault("JAX_PLATFORMS", "cpu")
  cmd = [
    sys.executable,
    os.path.abspath(__file__),
    "--sections=_devices_worker",
    f"--batch_size={FLAGS.batch_size}",
    f"--repeats={FLAGS.repeats}",
    f"--steps_per_repeat={FLAGS.steps_per_repeat}",
    f"--warmup={FLAGS.warmup}",
    f"--seed={FLAGS.seed}",
    f"--device_count={FLAGS.device_count}",
  ]
  if _quick():
    cmd.append("--quick")
  return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def devices() -> list[Row]:
  """The VAE steps on 1 versus `--device_count` devices, in a subprocess that has them.

  `main` starts the subprocess before the other sections (its start-up and compilation then
  overlap theirs); its timings are interleaved round-robin among its own variants only.
  """
  run = _DEVICES_RUN.pop() if _DEVICES_RUN else _start_devices_run()
  out, err = run.communicate()
  if run.returncode:
    raise RuntimeError(f"the devices subprocess failed:\n{err[-3000:]}")
  return [
    Row(**json.loads(line[len("ROW ") :])) for line in out.splitlines() if line.startswith("ROW ")
  ]


def _devices_worker() -> list[Row]:
  count = FLAGS.device_count
  if jax.device_count() < count or FLAGS.batch_size % count:
    raise ValueError(f"need {count} devices and a batch divisible by them")
  dp = training.DPSGDConfig(1.0, 1.0, FLAGS.batch_size / _NUM_RECORDS)  # ghost, its microbatch
  variants = []
  cases = (("plain step, bjorck encoder", None), ("dp-sgd step (ghost)", dp))
  for label, method_dp in cases[:1] if _quick() else cases:
    for n in (1, count):
      mesh = sharding.data_mesh(jax.devices()[:n])
      built = _build_vae_step(_vae(lnn.lipschitz_mlp(_ENCODER)), mesh, "train", dp=method_dp)
      variants.append(_vae_variant(f"{label}, {n} device{'s' if n > 1 else ''}", built))
  rows = _time_variants("devices", variants)
  for i in range(0, len(rows), 2):  # each count against its own 1-device row
    rows[i + 1].ratio = rows[i + 1].value / rows[i].value
    rows[i].ratio = 1.0
  device = jax.devices()[0]
  for row in rows:
    row.note = f"{device.platform} devices"
  for row in rows:
    print("ROW " + json.dumps(dataclasses.asdict(row)), flush=True)
  return rows


SECTIONS: dict[str, Callable[[], list[Row]]] = {
  "mlp_step": mlp_step,
  "vae_step": vae_step,
  "dpsgd": dpsgd,
  "memory": memory,
  "synthesis": synthesis,
  "accounting": accounting,
  "devices": devices,
  "_devices_worker": _devices_worker,
}


def _table(name: str, rows: list[Row]) -> list[str]:
  unit = rows[0].unit if rows else ""
  lines = [f"\n[{name}]", f"| variant | {unit} | ratio | note |", "| --- | ---: | ---: | --- |"]
  for row in rows:
    value = f"{row.value:,.0f}" if row.value >= 1000 else f"{row.value:.2f}"
    unit_note = "" if row.unit == unit else f" {row.unit}"
    ratio = "" if np.isnan(row.ratio) else f"{row.ratio:.2f}"
    lines.append(f"| {row.variant} | {value}{unit_note} | {ratio} | {row.note} |")
  return lines


def main(argv):
  del argv
  unknown = set(FLAGS.sections) - set(SECTIONS)
  if unknown:
    raise app.UsageError(f"Unknown sections {sorted(unknown)}; known: {sorted(SECTIONS)}.")
  if FLAGS.sections == ["_devices_worker"]:
    _devices_worker()
    return
  device = jax.devices()[0]
  header = (
    f"jax {jax.__version__}, {device.platform} ({device.device_kind}), "
    f"{os.cpu_count()} CPUs, batch {FLAGS.batch_size}, "
    f"{'quick' if _quick() else f'median of {FLAGS.repeats} x {FLAGS.steps_per_repeat}'}"
  )
  print(header, flush=True)
  lines = [header]
  if "devices" in FLAGS.sections:
    _DEVICES_RUN.append(_start_devices_run())
  start = time.perf_counter()
  for name in FLAGS.sections:
    section_start = time.perf_counter()
    table = _table(name, SECTIONS[name]())
    table[0] += f"  ({time.perf_counter() - section_start:.0f} s)"
    print("\n".join(table), flush=True)
    lines.extend(table)
  print(f"\ntotal {time.perf_counter() - start:.0f} s")
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  app.run(main)
