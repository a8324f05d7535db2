"""Optimiser transformations (optax style) that keep Björck kernels on the Stiefel manifold.

`BjorckDense(retracted=True)` multiplies by `lipschitz * W` directly, with no Björck iteration
in its forward or backward pass; these transformations keep W orthonormal instead. Together
they are a retraction-based Riemannian method on the Stiefel manifold (Absil, Mahony and
Sepulchre 2008, "Optimization Algorithms on Matrix Manifolds", ch. 3-4):

    G  <- P_W(G) = G - W sym(W^T G)          tangent_projection (before the optimiser)
    U  <- inner optimiser (e.g. Adam) on G
    U  <- R(W + U) - W on every k-th update  bjorck_retraction (after the optimiser)

so that `optax.apply_updates` lands on `R(W + U)`, with R = `lipdp.nn.bjorck.retract_to_stiefel`
(one cubic Björck step, which squares the distance to the manifold). `stiefel_adam`-style use:

    optax.chain(tangent_projection(paths), optax.adam(lr), bjorck_retraction(paths, every=k))

Why both. The projection keeps the gradient's normal component (which the retraction would
discard) out of Adam's moment estimates: without it Adam's per-coordinate step sizes are set
partly by directions that never move the weights, and training was measurably slower (the
same negative ELBO about 1.5% higher after 500 steps on MNIST; docs/performance.md). The
projection is also exactly the gradient the iterating layer's `custom_vjp` gives at an
orthonormal W, so the two train alike. Between retractions W drifts by the non-tangent part of
Adam's per-coordinate scaling; every k-th update removes it.

Cost per Björck kernel of shape (m, n), m >= n: two (m, n, n) matmuls for the projection every
step, two for the retraction every k-th step; the layer's own forward and backward pass is a
plain (B, m, n) matmul. Nothing here carries the privacy guarantee: the certificate
(`lipdp.nn.certified_lipschitz_bound`) reads the trained weights, and `lipdp.training` ends
training with one exact normalisation (`lipdp.nn.bjorck.orthonormalize_kernels`).
"""

from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lipdp.nn import bjorck


def tangent_projection(kernel_paths: frozenset) -> optax.GradientTransformation:
  """Replaces the gradient of each kernel at `kernel_paths` by its projection onto the tangent
  space of the Stiefel manifold at the current kernel (`lipdp.nn.bjorck.tangent_projection`).

  Chain it before the optimiser; other leaves pass through. Needs `params` in `update`. In
  DP-SGD it acts on the noised gradient, so it is post-processing.
  """
  kernel_paths = frozenset(kernel_paths)

  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("tangent_projection needs the parameters: pass params to update()")
    return bjorck.map_kernels(
      lambda g, w: bjorck.tangent_projection(w, g), kernel_paths, updates, params
    ), state

  return optax.GradientTransformation(init, update)


class BjorckRetractionState(NamedTuple):
  """Number of updates seen (the retraction runs on every `every`-th)."""

  count: jax.Array


def bjorck_retraction(kernel_paths: frozenset, every: int = 1) -> optax.GradientTransformation:
  """Retracts the kernels at `kernel_paths` onto the Stiefel manifold after the update.

  Chain it last. On every `every`-th update (the `every`-th, `2 every`-th, ...), the update U of
  a kernel W becomes `retract_to_stiefel(W + U) - W`; other updates and leaves pass through.
  Needs `params` in `update`.

  Args:
    kernel_paths: parameter paths of the Björck kernels (`lipdp.nn.bjorck.bjorck_kernel_paths`).
    every: retract on every `every`-th update (1: every update).
  """
  if every < 1:
    raise ValueError(f"every must be >= 1, got {every}")
  kernel_paths = frozenset(kernel_paths)

  def init(params):
    del params
    return BjorckRetractionState(count=jnp.zeros((), jnp.int32))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("bjorck_retraction needs the parameters: pass params to update()")
    count = state.count + 1

    def retract(updates):
      return bjorck.map_kernels(
        lambda u, w: (bjorck.retract_to_stiefel(w + u) - w).astype(u.dtype),
        kernel_paths,
        updates,
        params,
      )

    if kernel_paths:
      if every == 1:
        updates = retract(updates)
      else:
        updates = jax.lax.cond(count % every == 0, retract, lambda u: u, updates)
    return updates, BjorckRetractionState(count=count)

  return optax.GradientTransformation(init, update)


def on_stiefel(
  inner: optax.GradientTransformation, kernel_paths: frozenset, retract_every: int = 1
) -> optax.GradientTransformation:
  """`inner` as a Riemannian optimiser for the kernels at `kernel_paths` (module docstring);
  `inner` itself when there are none."""
  if not kernel_paths:
    return inner
  return optax.chain(
    tangent_projection(kernel_paths), inner, bjorck_retraction(kernel_paths, retract_every)
  )


def scale_subtrees(multipliers: Mapping[str, float]) -> optax.GradientTransformation:
  """Multiplies the updates of the named top-level parameter subtrees by their factor.

  After Adam, whose step for a weight is at most about its learning rate, this is a per-subtree
  learning rate. Acting on the updates after the noise was added, it is post-processing of
  DP-SGD's output and changes no privacy accounting.
  """
  multipliers = {str(k): float(v) for k, v in dict(multipliers).items()}
  for name, factor in multipliers.items():
    if not factor > 0:
      raise ValueError(f"the learning-rate multiplier of {name!r} must be positive, got {factor}")

  def update(updates, state, params=None):
    del params
    unknown = set(multipliers) - set(updates)
    if unknown:
      raise ValueError(f"learning-rate multipliers name no parameter subtree: {sorted(unknown)}")
    scaled = dict(updates)
    for name, factor in multipliers.items():
      scaled[name] = jax.tree_util.tree_map(lambda u, f=factor: u * f, updates[name])
    return scaled, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class ParameterAverageState(NamedTuple):
  """The exponential moving average of the parameters and the number of updates seen."""

  count: jax.Array
  average: optax.Params


def parameter_average(decay: float) -> optax.GradientTransformation:
  """Keeps an exponential moving average of the parameters *after* each update (Polyak-Ruppert
  style averaging of the iterates), passing the updates through unchanged.

  Chain it last: with p' = p + u the parameters the update lands on,

      average <- d_t * average + (1 - d_t) p',   d_t = min(decay, (1 + t) / (10 + t)),

  t the number of updates so far (the warm-up keeps the first iterates, which start from the
  initialisation, from dominating; as in TensorFlow's ExponentialMovingAverage). The warm-up is
  the smaller of the two until t = (10 decay - 1) / (1 - decay), 8,990 updates for decay 0.999:
  a shorter run averages with d_t = (1 + t) / (10 + t) whatever the decay, which weighs the
  iterate of step s about in proportion to s^8, a window of about the last tenth of the run
  (docs/results.md, "The weights' moving average and a cosine learning rate on digits"). Averaging the
  DP-SGD iterates is post-processing of the noisy updates, so it costs no privacy; it averages
  much of the injected noise out of the weights, and is part of the DP-SGD recipes that reach
  the best accuracy (De et al. 2022, "Unlocking high-accuracy differentially private image
  classification through scale"; Dockhorn et al. 2023, DPDM). `average_of(opt_state)` reads it.
  """
  if not 0.0 <= decay < 1.0:
    raise ValueError(f"decay must be in [0, 1), got {decay}")

  def init(params):
    return ParameterAverageState(
      count=jnp.zeros((), jnp.int32), average=jax.tree_util.tree_map(jnp.array, params)
    )

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("parameter_average needs the parameters: pass params to update()")
    t = state.count.astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    average = jax.tree_util.tree_map(
      lambda a, p, u: (d * a + (1.0 - d) * (p + u)).astype(a.dtype), state.average, params, updates
    )
    return updates, ParameterAverageState(count=state.count + 1, average=average)

  return optax.GradientTransformation(init, update)


def with_parameter_average(
  inner: optax.GradientTransformation, decay: float
) -> optax.GradientTransformation:
  """`inner` followed by `parameter_average(decay)`; `inner` itself when decay is 0."""
  if decay == 0.0:
    return inner
  return optax.chain(inner, parameter_average(decay))


def average_of(opt_state) -> optax.Params:
  """The parameter average kept by `with_parameter_average` (the last state of the chain)."""
  if not (isinstance(opt_state, tuple) and isinstance(opt_state[-1], ParameterAverageState)):
    raise ValueError("this optimiser state keeps no parameter average")
  return opt_state[-1].average
