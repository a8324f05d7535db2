"""Spectral normalisation: the state protocol, and power iteration on the conv operator itself."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipdp.nn import SpectralConv, SpectralDense, exact_operator_norm, linear_map_matrix

STATE = "lipschitz_state"


def _init(layer, x):
  return jax.jit(layer.init)(jax.random.PRNGKey(0), x)


def test_dense_state_updates_only_when_mutable():
  layer = SpectralDense(features=6, lipschitz=2.0)
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 10))
  variables = _init(layer, x)
  u0 = variables[STATE]["u"]
  # Evaluation: read-only state, the forward pass is x K_eff + b with the stored u.
  y = layer.apply(variables, x)
  kernel = layer.apply(variables, method=SpectralDense.effective_kernel)
  np.testing.assert_allclose(y, x @ kernel + variables["params"]["bias"], rtol=1e-5, atol=1e-6)
  # Training: mutable state, u moves.
  _, updates = layer.apply(variables, x, mutable=[STATE])
  assert not np.allclose(updates[STATE]["u"], u0)
  # Mutable but explicitly frozen: u stays.
  _, frozen = layer.apply(variables, x, update_state=False, mutable=[STATE])
  np.testing.assert_array_equal(frozen[STATE]["u"], u0)


def test_dense_power_iteration_converges_to_sigma_max():
  layer = SpectralDense(features=20, lipschitz=0.5)
  x = jnp.ones((1, 30))
  variables = _init(layer, x)
  step = jax.jit(lambda v: {**v, **layer.apply(v, x, mutable=[STATE])[1]})
  for _ in range(60):
    variables = step(variables)
  kernel = np.asarray(layer.apply(variables, method=SpectralDense.effective_kernel), np.float64)
  assert np.linalg.norm(kernel, 2) == pytest.approx(0.5, rel=1e-3)


def test_dense_gradient_flows_through_sigma():
  layer = SpectralDense(features=4)
  x = jax.random.normal(jax.random.PRNGKey(1), (8, 5))
  variables = _init(layer, x)

  def loss(params):
    y, _ = layer.apply({"params": params, STATE: variables[STATE]}, x, mutable=[STATE])
    return jnp.sum(y**2)

  grad = jax.jit(jax.grad(loss))(variables["params"])
  assert np.all(np.isfinite(grad["kernel"])) and float(jnp.abs(grad["kernel"]).max()) > 0
  # Scaling the raw kernel does not change the normalised layer: the gradient is orthogonal to it.
  radial = float(jnp.sum(grad["kernel"] * variables["params"]["kernel"]))
  assert abs(radial) <= 1e-4 * float(jnp.linalg.norm(grad["kernel"])) * float(
    jnp.linalg.norm(variables["params"]["kernel"])
  )


CONV_CASES = [
  dict(padding="SAME", strides=1),
  dict(padding="CIRCULAR", strides=1),
  dict(padding="SAME", strides=2),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c['padding']}-s{c['strides']}")
def test_conv_power_iteration_estimates_the_operator_norm(case):
  """After enough iterations, sigma equals the norm of the conv operator (explicit matrix)."""
  shape = (6, 5, 3)
  layer = SpectralConv(features=4, kernel_size=(3, 3), n_power_iterations=300, **case)
  variables = _init(layer, jnp.ones((1,) + shape))  # init runs the iterations (state mutable).
  kernel = variables["params"]["kernel"]
  # Norm of the raw conv operator, from its explicit matrix, with flax's own convolution.
  raw = nn.Conv(4, (3, 3), use_bias=False, **case)
  sigma = exact_operator_norm(lambda z: raw.apply({"params": {"kernel": kernel}}, z), shape)
  effective = layer.apply(variables, method=SpectralConv.effective_kernel)
  np.testing.assert_allclose(np.asarray(effective), np.asarray(kernel) / sigma, rtol=2e-3)
  # The normalised layer (without its bias) has operator norm 1.
  layer_norm = exact_operator_norm(
    lambda z: layer.apply(variables, z) - layer.apply(variables, jnp.zeros_like(z)), shape
  )
  assert layer_norm == pytest.approx(1.0, rel=2e-3)
  # The norm of the reshaped kernel is a different number.
  reshaped = np.linalg.norm(np.asarray(kernel, np.float64).reshape(-1, 4), 2)
  assert abs(reshaped - sigma) > 1e-2 * sigma


def test_conv_state_protocol_and_spatial_size():
  layer = SpectralConv(features=2, kernel_size=3)
  x = jnp.ones((2, 7, 4))
  variables = _init(layer, x)
  assert variables[STATE]["u"].shape == (1, 7, 4)
  _, updates = layer.apply(variables, x, mutable=[STATE])
  assert not np.allclose(updates[STATE]["u"], variables[STATE]["u"])
  with pytest.raises(ValueError, match="initialised for inputs"):
    layer.apply(variables, jnp.ones((2, 8, 4)))


def test_conv_matrix_of_the_layer_is_linear_plus_bias():
  layer = SpectralConv(features=3, kernel_size=(3, 3), padding="CIRCULAR")
  x = jax.random.normal(jax.random.PRNGKey(3), (2, 4, 4, 2))
  variables = _init(layer, x)
  matrix = linear_map_matrix(lambda z: layer.apply(variables, z), (4, 4, 2))
  y = np.asarray(layer.apply(variables, x), np.float64).reshape(2, -1)
  bias = np.tile(np.asarray(variables["params"]["bias"], np.float64), 16)
  np.testing.assert_allclose(
    y, np.asarray(x, np.float64).reshape(2, -1) @ matrix.T + bias, rtol=1e-5, atol=1e-5
  )
