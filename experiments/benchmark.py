r"""Benchmarks: the cost of Lipschitz constraints, measured against plain models in the same run.

Usage:

  python experiments/benchmark.py                        # all sections
  python experiments/benchmark.py --sections=mlp_step --repeats=30

Each section is a function ``(FLAGS) -> list[Row]`` registered in ``SECTIONS``; it times several
variants of one computation in the same process, interleaved round-robin so that a busy machine
slows them all alike, with compilation and warm-up excluded and the median over repetitions
reported. Ratios are relative to the section's baseline row. Add a section (e.g. the VAE train
step) by writing one such function and registering it.

Sections:

* ``mlp_step``: one optax Adam step on a mean-squared-error loss of an MLP 784-512-256-16 at
  batch 256, for a plain ``nn.Dense`` + ReLU MLP (baseline), the Björck MLP of
  ``lipdp.nn.lipschitz_mlp`` (orthogonal and Gaussian initialisations), the spectral-norm MLP,
  and a naive Björck MLP that differentiates through 15 fixed Björck iterations per layer
  (the textbook implementation), for reference.
"""

import dataclasses
import statistics
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lipdp import nn as lnn

FLAGS = flags.FLAGS
flags.DEFINE_list("sections", ["mlp_step"], "Sections to run (see SECTIONS).")
flags.DEFINE_integer("batch_size", 256, "Batch size of the train steps.")
flags.DEFINE_list("widths", ["784", "512", "256", "16"], "MLP widths, input first.")
flags.DEFINE_integer("repeats", 15, "Timed repetitions per variant (the median is reported).")
flags.DEFINE_integer("steps_per_repeat", 10, "Train steps per timed repetition.")
flags.DEFINE_integer("warmup", 3, "Untimed steps per variant after compilation.")
flags.DEFINE_integer("naive_iters", 15, "Differentiated Björck iterations of the naive variant.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and the data.")


@dataclasses.dataclass
class Row:
  section: str
  variant: str
  ms_per_step: float
  ratio: float
  note: str = ""


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
  """Reference only: Frobenius scaling, then ``num_iters`` order-1 Björck steps, all
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


@dataclasses.dataclass
class _Variant:
  name: str
  step: Callable[..., Any]
  carry: Any
  note: Callable[[Any], str] = lambda carry: ""


def _make_variant(name, model, x, y, learning_rate=1e-3, note=None,
                  retract: bool = False) -> _Variant:
  """A jitted Adam step ``carry -> carry`` on ``mean((model(x) - y)^2)``.

  With ``retract``, the Björck kernels are replaced by the polar factors their forward pass
  computed before the update is applied (``lnn.retract_to_polar``), as `lipdp.train` does.
  """
  variables = jax.jit(model.init)(jax.random.PRNGKey(FLAGS.seed), x[:1])
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k != "params"}
  if not retract:
    state.pop(lnn.POLAR_COLLECTION, None)
  tx = optax.adam(learning_rate)

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
    if retract:
      params = lnn.retract_to_polar(params, state[lnn.POLAR_COLLECTION])
    return optax.apply_updates(params, updates), state, opt_state

  return _Variant(name, step, (params, state, tx.init(params)), note or (lambda carry: ""))


def _bjorck_iterations(carry) -> str:
  """Björck steps each layer's forward pass takes at the current (trained) weights."""
  params = carry[0]
  counts = []
  for name in sorted(params, key=lambda s: int(s.split("_")[-1])):
    if "kernel" in params[name]:
      _, info = lnn.bjorck_orthonormalize(params[name]["kernel"], return_info=True)
      counts.append(int(info.num_iters))
  return "Björck steps per layer after the timed steps: " + ",".join(map(str, counts))


def _time_variants(section: str, variants: Sequence[_Variant]) -> list[Row]:
  for v in variants:  # Compile and warm up.
    for _ in range(1 + FLAGS.warmup):
      v.carry = v.step(v.carry)
    jax.block_until_ready(v.carry)
  times = {v.name: [] for v in variants}
  for _ in range(FLAGS.repeats):  # Round-robin, so load changes hit every variant alike.
    for v in variants:
      start = time.perf_counter()
      for _ in range(FLAGS.steps_per_repeat):
        v.carry = v.step(v.carry)
      jax.block_until_ready(v.carry)
      times[v.name].append((time.perf_counter() - start) / FLAGS.steps_per_repeat)
  base = statistics.median(times[variants[0].name])
  return [
      Row(section, v.name, 1e3 * statistics.median(times[v.name]),
          statistics.median(times[v.name]) / base, v.note(v.carry))
      for v in variants
  ]


def mlp_step() -> list[Row]:
  """Train-step time of Lipschitz MLPs relative to a plain MLP of the same shape."""
  widths = [int(w) for w in FLAGS.widths]
  rng = np.random.default_rng(FLAGS.seed)
  x = jnp.asarray(rng.uniform(0, 1, (FLAGS.batch_size, widths[0])), jnp.float32)
  y = jnp.asarray(rng.standard_normal((FLAGS.batch_size, widths[-1])), jnp.float32)
  out = widths[1:]
  variants = [
      _make_variant("plain nn.Dense + relu", _PlainMLP(out), x, y),
      _make_variant("bjorck + maxmin, retraction (lipdp.train)", lnn.lipschitz_mlp(out), x, y,
                    note=_bjorck_iterations, retract=True),
      _make_variant("bjorck + maxmin, no retraction", lnn.lipschitz_mlp(out), x, y,
                    note=_bjorck_iterations),
      _make_variant(
          "bjorck + maxmin, gaussian init",
          lnn.lipschitz_mlp(out, kernel_init=nn.initializers.lecun_normal()), x, y,
          note=_bjorck_iterations,
      ),
      _make_variant("spectral + maxmin (1 power it.)", lnn.lipschitz_mlp(out, dense="spectral"),
                    x, y),
      _make_variant(f"naive bjorck ({FLAGS.naive_iters} differentiated it.)",
                    _naive_bjorck_mlp(out, FLAGS.naive_iters), x, y),
  ]
  return _time_variants("mlp_step", variants)


SECTIONS: dict[str, Callable[[], list[Row]]] = {"mlp_step": mlp_step}


def main(argv):
  del argv
  unknown = set(FLAGS.sections) - set(SECTIONS)
  if unknown:
    raise app.UsageError(f"Unknown sections {sorted(unknown)}; known: {sorted(SECTIONS)}.")
  device = jax.devices()[0]
  print(f"jax {jax.__version__}, {device.platform} ({device.device_kind}), "
        f"batch {FLAGS.batch_size}, widths {','.join(FLAGS.widths)}, "
        f"median of {FLAGS.repeats} x {FLAGS.steps_per_repeat} steps")
  for name in FLAGS.sections:
    rows = SECTIONS[name]()
    print(f"\n[{name}]")
    print(f"{'variant':44s} {'ms/step':>9s} {'ratio':>7s}")
    for row in rows:
      print(f"{row.variant:44s} {row.ms_per_step:9.2f} {row.ratio:7.2f}  {row.note}")


if __name__ == "__main__":
  app.run(main)
