"""Björck orthonormalisation: convergence (incl. ill-conditioned inputs), gradients, the layer."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipdp import nn as lnn
from lipdp.nn import DEFAULT_MAX_ITERS, BjorckDense, bjorck_orthonormalize

TOL = 1e-4  # Required: every singular value of the effective weight within 1 +- 1e-4.


def _matrix(shape, cond, seed=0, spectrum="log"):
  """A matrix with a prescribed condition number (singular values log-spaced from 1 to 1/cond)."""
  rng = np.random.default_rng(seed)
  m, n = shape
  k = min(m, n)
  u, _ = np.linalg.qr(rng.standard_normal((m, k)))
  v, _ = np.linalg.qr(rng.standard_normal((n, k)))
  if spectrum == "log":
    s = np.logspace(0, -np.log10(cond), k)
  else:  # Two clusters: half at 1, half at 1/cond.
    s = np.where(np.arange(k) < k // 2, 1.0, 1.0 / cond)
  return (3.0 * (u * s) @ v.T).astype(np.float32)


def _singular_values(a):
  return np.linalg.svd(np.asarray(a, np.float64), compute_uv=False)


_orthonormalize = jax.jit(functools.partial(bjorck_orthonormalize, return_info=True))


CONVERGENCE_CASES = [
  (shape, cond, spectrum)
  for shape in [(64, 256), (100, 100)]
  for cond, spectrum in [(1.0, "log"), (30.0, "log"), (1e3, "log"), (1e3, "two"), (1e4, "log")]
] + [((784, 512), 1e3, "log"), ((784, 512), 1e4, "two")]  # The benchmark's first layer.


@pytest.mark.parametrize("shape,cond,spectrum", CONVERGENCE_CASES, ids=str)
def test_default_iterations_reach_tolerance(shape, cond, spectrum):
  w = _matrix(shape, cond, spectrum=spectrum)
  q, info = _orthonormalize(w)
  s = _singular_values(q)
  assert q.shape == w.shape
  assert np.all(np.abs(s - 1) <= TOL), (s.min(), s.max())
  # It stopped on its own criterion, not on the iteration cap.
  assert int(info.num_iters) < DEFAULT_MAX_ITERS
  assert float(info.lower) >= 1 - 1e-5 and float(info.upper) <= 1 + 1e-5


@pytest.mark.parametrize("shape", [(200, 50), (50, 200)], ids=str)
def test_extreme_conditioning_and_gaussian_inputs(shape):
  for w in (
    _matrix(shape, 1e6, seed=1),
    np.random.default_rng(2).standard_normal(shape).astype(np.float32),
    np.random.default_rng(3).uniform(0, 1, shape).astype(np.float32),  # One dominant direction.
  ):
    q, info = _orthonormalize(w)
    s = _singular_values(q)
    assert np.all(np.abs(s - 1) <= TOL), (s.min(), s.max())
    assert int(info.num_iters) < DEFAULT_MAX_ITERS


def test_result_is_the_polar_factor():
  w = _matrix((60, 40), 100.0, seed=4)
  u, _, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
  q, _ = _orthonormalize(w)
  np.testing.assert_allclose(np.asarray(q), u @ vt, atol=1e-4)


def test_well_conditioned_inputs_need_few_iterations():
  q0, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((128, 64)))
  _, info = _orthonormalize((2.5 * q0).astype(np.float32))
  assert int(info.num_iters) == 1
  noisy = q0 + 0.01 * np.random.default_rng(6).standard_normal(q0.shape)
  _, info = _orthonormalize(noisy.astype(np.float32))
  assert int(info.num_iters) <= 4


def test_rank_deficient_and_zero_inputs_stay_bounded():
  rng = np.random.default_rng(7)
  # Exactly rank 5: zero singular values stay zero, the rest converge, nothing overshoots 1.
  w = np.zeros((40, 30), np.float32)
  w[:, :5] = rng.standard_normal((40, 5))
  q, info = _orthonormalize(w)
  s = _singular_values(q)
  assert np.all(np.isfinite(np.asarray(q)))
  assert np.all(np.abs(s[:5] - 1) <= TOL) and np.all(s[5:] == 0)
  assert int(info.num_iters) == DEFAULT_MAX_ITERS  # Zero singular values never converge.
  # Numerically low rank (float32 rounding leaves ~1e-7 singular values): fully orthonormalised.
  low_rank = (rng.standard_normal((40, 5)) @ rng.standard_normal((5, 30))).astype(np.float32)
  s = _singular_values(_orthonormalize(low_rank)[0])
  assert s.max() <= 1 + TOL
  q, _ = _orthonormalize(np.zeros((6, 4), np.float32))
  np.testing.assert_array_equal(np.asarray(q), 0)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_plain_bjorck_bowie_orders(order):
  w = _matrix((50, 30), 10.0, seed=8)
  errors = []
  for iters in (3, 25):
    q, info = jax.jit(
      lambda w: bjorck_orthonormalize(w, iters, order, scaled=False, return_info=True)
    )(w)
    s = _singular_values(q)
    errors.append(np.abs(s - 1).max())
    # The reported (measured) bounds contain the true singular values.
    assert float(info.lower) <= s.min() + 1e-6 and s.max() <= float(info.upper) + 1e-6
  assert errors[1] <= TOL < errors[0]


def test_invalid_arguments():
  with pytest.raises(ValueError, match="scaled=False"):
    bjorck_orthonormalize(jnp.ones((3, 2)), order=2)
  with pytest.raises(ValueError, match="matrix"):
    bjorck_orthonormalize(jnp.ones((3,)))


def _exact_polar(w):
  u, _, vt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
  return u @ vt


@pytest.mark.parametrize("shape", [(30, 20), (20, 30)], ids=str)
def test_gradient_matches_finite_differences_near_uniform_spectrum(shape):
  """Our VJP is the exact derivative of the polar factor when W's singular values are equal."""
  rng = np.random.default_rng(9)
  q0 = _exact_polar(rng.standard_normal(shape))
  w = (2.0 * q0 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
  g_out = rng.standard_normal(shape)
  direction = rng.standard_normal(shape)
  grad = jax.jit(jax.grad(lambda w: jnp.sum(bjorck_orthonormalize(w) * g_out)))(w)
  h = 1e-4
  fd = np.sum(g_out * (_exact_polar(w + h * direction) - _exact_polar(w - h * direction))) / (2 * h)
  assert np.sum(np.asarray(grad, np.float64) * direction) == pytest.approx(fd, rel=0.05)


def test_gradient_is_a_descent_direction_for_generic_weights():
  rng = np.random.default_rng(10)
  w = rng.standard_normal((40, 24)).astype(np.float32)
  target = _exact_polar(rng.standard_normal((40, 24)))
  loss = lambda w: jnp.sum((bjorck_orthonormalize(w) - target) ** 2)
  value, grad = jax.jit(jax.value_and_grad(loss))(w)
  assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.linalg.norm(grad)) > 0
  # The exact loss decreases along -grad: its directional derivative along grad is positive.
  exact_loss = lambda w: np.sum((_exact_polar(w) - target) ** 2)
  h = 1e-3 / float(jnp.linalg.norm(grad))
  g = np.asarray(grad, np.float64)
  slope = (exact_loss(w + h * g) - exact_loss(w - h * g)) / (2 * h)
  assert slope > 0.1 * float(np.sum(g * g))  # Not only positive: a sizeable fraction of |g|^2.
  assert float(value) == pytest.approx(exact_loss(w), rel=1e-4)


def test_layer_effective_kernel_is_lipschitz_times_orthonormal():
  layer = BjorckDense(features=48, lipschitz=0.7)
  x = jnp.ones((2, 96))
  variables = jax.jit(layer.init)(jax.random.PRNGKey(0), x)
  # A badly conditioned kernel, as training could produce.
  params = {"params": {**variables["params"], "kernel": jnp.asarray(_matrix((96, 48), 1e3))}}
  kernel = layer.apply(params, method=BjorckDense.effective_kernel)
  s = _singular_values(kernel)
  assert np.all(np.abs(s / 0.7 - 1) <= TOL)
  y = jax.jit(layer.apply)(params, x)
  expected = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(
    params["params"]["bias"]
  )
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)


def test_layer_trains_under_jit_and_grad():
  layer = BjorckDense(features=8)
  x = jax.random.normal(jax.random.PRNGKey(1), (16, 12))
  y = jax.random.normal(jax.random.PRNGKey(2), (16, 8))
  variables = {"params": jax.jit(layer.init)(jax.random.PRNGKey(0), x)["params"]}
  loss = lambda v: jnp.mean((layer.apply(v, x) - y) ** 2)
  grad = jax.jit(jax.grad(loss))(variables)
  for leaf in jax.tree_util.tree_leaves(grad):
    assert np.all(np.isfinite(np.asarray(leaf))) and float(jnp.abs(leaf).max()) > 0
  # A few plain gradient steps decrease the loss.
  step = jax.jit(lambda v: jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, v, jax.grad(loss)(v)))
  v = variables
  for _ in range(20):
    v = step(v)
  assert float(loss(v)) < float(loss(variables))


def test_float64_inputs_stay_float64():
  with jax.enable_x64(True):
    w = jnp.asarray(_matrix((30, 20), 1e3), jnp.float64)
    q = bjorck_orthonormalize(w)
    assert q.dtype == jnp.float64
    s = _singular_values(q)
  assert np.all(np.abs(s - 1) <= 1e-10)


def test_per_example_gradients_under_vmap():
  """DP-SGD clips per-example gradients: vmap(grad) must agree with a loop over examples."""
  layer = BjorckDense(features=6)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 10))
  variables = jax.jit(layer.init)(jax.random.PRNGKey(0), x[:1])
  loss = lambda params, xi: jnp.sum(jnp.sin(layer.apply({"params": params}, xi[None])))
  batched = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(variables["params"], x)
  for i in range(4):
    single = jax.grad(loss)(variables["params"], x[i])
    for a, b in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(single)):
      np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6)


def test_retraction_to_the_polar_factor_keeps_the_function_and_speeds_convergence():
  layer = BjorckDense(features=16)
  x = jax.random.normal(jax.random.PRNGKey(1), (8, 32))
  variables = layer.init(jax.random.PRNGKey(0), x)
  # Weights drifted away from orthonormal, as after many Adam steps.
  drifted = variables["params"]["kernel"] + 0.3 * jax.random.normal(jax.random.PRNGKey(3), (32, 16))
  params = {"kernel": drifted, "bias": variables["params"]["bias"]}
  out, state = layer.apply({"params": params}, x, mutable=[lnn.POLAR_COLLECTION])
  retracted = lnn.retract_to_polar(params, state[lnn.POLAR_COLLECTION])
  np.testing.assert_allclose(layer.apply({"params": retracted}, x), out, rtol=1e-5, atol=1e-5)
  _, before = bjorck_orthonormalize(drifted, return_info=True)
  _, after = bjorck_orthonormalize(retracted["kernel"], return_info=True)
  assert int(after.num_iters) < int(before.num_iters)
  with pytest.raises(ValueError, match="no matching kernel"):
    lnn.retract_to_polar({"other": params}, state[lnn.POLAR_COLLECTION])
