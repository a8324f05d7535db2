"""Empirical lower bound on a Lipschitz constant by gradient ascent on input pairs.

For any pair ``x != y``, ``|f(x) - f(y)| / |x - y| <= Lip(f)``, so the largest ratio found is a
lower bound, and a certified upper bound that falls below it is wrong. The attack maximises
``log |f(x + d) - f(x)| - log |d|`` over ``(x, d)`` from ``num_starts`` random starts with Adam,
all starts in one batch, inside one jitted loop. The gap ``|d|`` is kept at least
``min_gap * init_scale`` so the ratio is not drowned in float32 rounding.

The reported ratio is recomputed for the final pairs in float64 (``jax.enable_x64``), so that
float32 cancellation in ``f(x + d) - f(x)`` cannot inflate it: the float64 pass evaluates the
same weights in exact-ish arithmetic, i.e. the function the certificate is about. ``fn`` must
accept float64 input for this (flax modules with float32 parameters do; they promote).
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _pair_ratios(fn: Callable, x: jax.Array, d: jax.Array) -> jax.Array:
  """``|fn(x + d) - fn(x)| / |d|`` per leading index."""
  both = fn(jnp.concatenate([x + d, x]))  # One call: half the traced (and compiled) graph.
  num = both[: x.shape[0]] - both[x.shape[0] :]
  num = jnp.sqrt(jnp.sum(num.reshape(num.shape[0], -1) ** 2, axis=1))
  den = jnp.sqrt(jnp.sum(d.reshape(d.shape[0], -1) ** 2, axis=1))
  return num / den


def empirical_lipschitz_lower_bound(
  fn: Callable[[jax.Array], jax.Array],
  input_shape: Sequence[int],
  key: jax.Array,
  num_starts: int = 64,
  num_steps: int = 300,
  learning_rate: float = 1e-2,
  init_scale: float = 1.0,
  min_gap: float = 1e-3,
  verify_in_float64: bool = True,
  return_pair: bool = False,
):
  """Largest ``|fn(x) - fn(y)| / |x - y|`` found by gradient ascent on pairs.

  Args:
    fn: a batched function, ``(B, *input_shape) -> (B, ...)``; e.g.
      ``lambda x: model.apply(variables, x)``.
    input_shape: shape of one input, without the batch axis.
    key: PRNG key of the random starts.
    num_starts: number of independent pairs optimised together.
    num_steps: Adam steps.
    learning_rate: Adam learning rate, relative to ``init_scale``.
    init_scale: standard deviation of the starting points (the scale of the inputs).
    min_gap: smallest gap ``|x - y|``, relative to ``init_scale``.
    verify_in_float64: recompute the final ratios in float64 (see the module docstring).
    return_pair: also return the best pair ``(x, y)`` as numpy arrays.

  Returns:
    The largest ratio (a Python float), and the pair if ``return_pair``.
  """
  shape = (num_starts,) + tuple(input_shape)
  key_x, key_d = jax.random.split(key)
  x0 = init_scale * jax.random.normal(key_x, shape, jnp.float32)
  d0 = 0.1 * init_scale * jax.random.normal(key_d, shape, jnp.float32)
  floor = min_gap * init_scale
  optimizer = optax.adam(learning_rate * init_scale)

  def objective(pair):
    return -jnp.sum(jnp.log(_pair_ratios(fn, *pair) + 1e-30))

  def project(pair):
    x, d = pair
    norms = jnp.sqrt(jnp.sum(d.reshape(num_starts, -1) ** 2, axis=1))
    factor = jnp.maximum(1.0, floor / jnp.maximum(norms, 1e-30))
    return x, d * factor.reshape((num_starts,) + (1,) * len(input_shape))

  @jax.jit
  def run(pair):
    def step(carry, _):
      pair, state = carry
      grads = jax.grad(objective)(pair)
      updates, state = optimizer.update(grads, state, pair)
      return (project(optax.apply_updates(pair, updates)), state), None

    (pair, _), _ = jax.lax.scan(step, (pair, optimizer.init(pair)), None, length=num_steps)
    return pair

  x, d = run(project((x0, d0)))
  ratios_fn = jax.jit(lambda x, d: _pair_ratios(fn, x, d))
  if verify_in_float64:
    with jax.enable_x64(True):
      x64 = jnp.asarray(np.asarray(x, np.float64))
      d64 = jnp.asarray(np.asarray(d, np.float64))
      ratios = np.asarray(ratios_fn(x64, d64), np.float64)
  else:
    ratios = np.asarray(ratios_fn(x, d), np.float64)
  ratios = np.where(np.isfinite(ratios), ratios, -np.inf)
  best = int(np.argmax(ratios))
  value = float(ratios[best])
  if return_pair:
    x_best = np.asarray(x[best], np.float64)
    return value, (x_best, x_best + np.asarray(d[best], np.float64))
  return value
