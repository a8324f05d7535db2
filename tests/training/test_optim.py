"""Training Björck layers without per-step iterations: the retracted layer, the Stiefel
retraction and tangent projection, the optax transformations, and what the certificate sees."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lipdp import nn as lnn
from lipdp.training import optim
from lipdp.models import decoders
from lipdp.models import vae as vae_lib
from lipdp.nn import bjorck


def _orthonormal(shape, seed=0):
  q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((max(shape), min(shape))))
  return jnp.asarray(q if shape[0] >= shape[1] else q.T, jnp.float32)


def _sv(w):
  return np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)


@pytest.mark.parametrize("shape", [(40, 24), (24, 40)])
def test_one_retraction_squares_the_distance_and_keeps_the_polar_factor(shape):
  q = _orthonormal(shape)
  u, _, vt = np.linalg.svd(np.asarray(q), full_matrices=False)
  s = 1 + np.linspace(-0.1, 0.1, min(shape))
  w = jnp.asarray((u * s) @ vt, jnp.float32)
  r = jax.jit(bjorck.retract_to_stiefel)(w)
  np.testing.assert_allclose(np.sort(_sv(r)), np.sort(s * (3 - s**2) / 2), atol=2e-6)
  assert np.max(np.abs(_sv(r) - 1)) < 0.016  # 1.5 e^2 for e = 0.1
  # The polar factor (what an iterating BjorckDense multiplies by) does not change.
  np.testing.assert_allclose(
    bjorck.bjorck_orthonormalize(r), bjorck.bjorck_orthonormalize(w), atol=2e-5
  )


def test_far_from_the_manifold_the_retraction_runs_the_full_iteration():
  w = jax.random.normal(jax.random.key(0), (30, 20)) * 3.0
  r = jax.jit(bjorck.retract_to_stiefel)(w)
  assert np.max(np.abs(_sv(r) - 1)) < 1e-5


def test_tangent_projection_is_a_projection_onto_the_tangent_space():
  w = _orthonormal((30, 12))
  g = jax.random.normal(jax.random.key(1), (30, 12))
  p = bjorck.tangent_projection(w, g)
  s = np.asarray(w).T @ np.asarray(p)
  np.testing.assert_allclose(s + s.T, 0, atol=1e-5)  # W^T P skew: tangent at W
  np.testing.assert_allclose(bjorck.tangent_projection(w, p), p, atol=1e-5)
  # Wide kernels project along rows.
  pt = bjorck.tangent_projection(w.T, g.T)
  np.testing.assert_allclose(pt, p.T, atol=1e-6)


def _vae(dense="bjorck"):
  return vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp([8, 4], 2.0, dense=dense),
    decoder=lnn.lipschitz_mlp([16, 15], 3.0),
  )


def test_kernel_paths_and_the_retracted_copy():
  model = _vae()
  args = (jax.random.key(0), jnp.zeros((1, 15)), jax.random.key(1))
  paths = bjorck.bjorck_kernel_paths(model, *args)
  assert paths == {
    ("encoder_mean", "layers_0", "kernel"),
    ("encoder_mean", "layers_2", "kernel"),
    ("decoder", "layers_0", "kernel"),
    ("decoder", "layers_2", "kernel"),
  }
  assert not bjorck.bjorck_kernel_paths(
    _vae("spectral").clone(decoder=decoders.MLPDecoder((16,), 15)), *args
  )
  fast = bjorck.with_retracted_bjorck(model)
  assert all(layer.retracted for layer in fast.encoder_mean.layers[::2])
  assert not any(layer.retracted for layer in model.encoder_mean.layers[::2])  # a copy
  variables = jax.jit(model.init)(*args)
  assert jax.tree_util.tree_structure(
    jax.eval_shape(fast.init, *args)["params"]
  ) == jax.tree_util.tree_structure(variables["params"])
  # On orthonormal kernels both compute the same function.
  params = jax.jit(bjorck.orthonormalize_kernels, static_argnums=1)(variables["params"], paths)
  x = jax.random.uniform(jax.random.key(2), (5, 15))
  encode = lambda m: jax.jit(
    lambda p: m.apply({"params": p}, x, method=vae_lib.LipschitzVAE.encode)[0]
  )(params)
  np.testing.assert_allclose(encode(fast), encode(model), atol=1e-5)


def test_certificate_bounds_what_a_retracted_layer_computes():
  """The retracted layer promises nothing: the certificate reads |W|_2, checked on probes."""
  layer = lnn.BjorckDense(6, lipschitz=0.5, retracted=True)
  chain = lnn.LipschitzSequential([layer])
  variables = chain.init(jax.random.key(0), jnp.zeros((1, 10)))
  drifted = jax.tree_util.tree_map(lambda x: x, variables)
  kernel = variables["params"]["layers_0"]["kernel"] * jnp.linspace(1.0, 1.7, 6)
  drifted = {
    "params": {"layers_0": {"kernel": kernel, "bias": variables["params"]["layers_0"]["bias"]}}
  }
  bound = lnn.certified_lipschitz_bound(chain, drifted, (10,))
  exact = 0.5 * _sv(kernel)[0]
  assert exact > 0.5 * 1.5  # far above the target
  assert exact <= bound <= exact * (1 + 1e-5)
  attack = lnn.empirical_lipschitz_lower_bound(
    lambda x: chain.apply(drifted, x), (10,), jax.random.key(1), num_starts=4, num_steps=100
  )
  assert attack <= bound


def test_riemannian_adam_keeps_kernels_orthonormal_and_other_leaves_plain():
  model = _vae()
  args = (jax.random.key(0), jnp.zeros((1, 15)), jax.random.key(1))
  fast = bjorck.with_retracted_bjorck(model)
  paths = bjorck.bjorck_kernel_paths(fast, *args)
  params = jax.jit(fast.init)(*args)["params"]
  tx = optim.on_stiefel(optax.adam(3e-3), paths, retract_every=2)
  adam = optax.adam(3e-3)
  state, adam_state = tx.init(params), adam.init(params)
  x = jax.random.uniform(jax.random.key(3), (32, 15))

  def loss(p):
    return jnp.mean((fast.apply({"params": p}, x, jax.random.key(4))[0] - x) ** 2)

  @jax.jit
  def step(p, p_adam, state, adam_state):
    grads = jax.grad(loss)(p)
    updates, state = tx.update(grads, state, p)
    plain_updates, adam_state = adam.update(grads, adam_state, p)
    return (
      optax.apply_updates(p, updates),
      optax.apply_updates(p_adam, plain_updates),
      state,
      adam_state,
      updates,
      plain_updates,
    )

  p_new = p_adam = params
  for t in range(6):
    p_new, p_adam, state, adam_state, updates, plain_updates = step(
      p_new, p_adam, state, adam_state
    )
    # Biases (not kernels) get exactly Adam's update.
    np.testing.assert_array_equal(
      updates["encoder_mean"]["layers_0"]["bias"], plain_updates["encoder_mean"]["layers_0"]["bias"]
    )
    if t % 2 == 1:  # just retracted
      for path in paths:
        w = p_new[path[0]][path[1]]["kernel"]
        assert np.max(np.abs(_sv(w) - 1)) < 1e-2  # about 1.5 (2 Adam steps)^2
  drifted = max(np.max(np.abs(_sv(p_adam[a][b]["kernel"]) - 1)) for a, b, _ in paths)
  assert drifted > 3e-2  # what plain Adam does to the same kernels
  with pytest.raises(ValueError, match="every"):
    optim.bjorck_retraction(paths, every=0)


def test_parameter_average_is_the_warmed_up_ema_of_the_iterates():
  """The average follows d_t = min(decay, (1 + t) / (10 + t)) over the iterates the updates land
  on, and the updates themselves pass through unchanged."""
  decay = 0.9
  params = {"w": jnp.array([1.0, -2.0])}
  inner = optax.sgd(0.1)
  opt = optim.with_parameter_average(inner, decay)
  state = opt.init(params)
  reference_state = inner.init(params)
  expected = np.array([1.0, -2.0])
  for t in range(30):
    grads = {"w": jnp.array([np.sin(t), np.cos(t)], jnp.float32)}
    updates, state = opt.update(grads, state, params)
    ref_updates, reference_state = inner.update(grads, reference_state, params)
    np.testing.assert_array_equal(updates["w"], ref_updates["w"])
    params = optax.apply_updates(params, updates)
    d = min(decay, (1 + t) / (10 + t))
    expected = d * expected + (1 - d) * np.asarray(params["w"])
    np.testing.assert_allclose(optim.average_of(state)["w"], expected, rtol=1e-6)
  assert optim.with_parameter_average(inner, 0.0) is inner
  with pytest.raises(ValueError, match="keeps no parameter average"):
    optim.average_of(inner.init(params))
  with pytest.raises(ValueError, match="decay must be in"):
    optim.parameter_average(1.0)


def test_scale_subtrees_multiplies_only_the_named_subtrees_updates():
  params = {"label_prior": {"kernel": jnp.zeros((1, 3))}, "decoder": {"bias": jnp.zeros(2)}}
  grads = {"label_prior": {"kernel": jnp.ones((1, 3))}, "decoder": {"bias": jnp.ones(2)}}
  plain = optax.adam(1e-3)
  scaled = optax.chain(optax.adam(1e-3), optim.scale_subtrees({"label_prior": 10.0}))
  u_plain, _ = plain.update(grads, plain.init(params), params)
  u_scaled, _ = scaled.update(grads, scaled.init(params), params)
  np.testing.assert_allclose(
    u_scaled["label_prior"]["kernel"], 10 * u_plain["label_prior"]["kernel"]
  )
  np.testing.assert_array_equal(u_scaled["decoder"]["bias"], u_plain["decoder"]["bias"])
  with pytest.raises(ValueError, match="name no parameter subtree"):
    bad = optim.scale_subtrees({"encoder": 2.0})
    bad.update(grads, bad.init(params), params)
  with pytest.raises(ValueError, match="must be positive"):
    optim.scale_subtrees({"label_prior": 0.0})
