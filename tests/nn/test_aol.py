"""AOL: 1-Lipschitz by construction, for dense layers and for convolutions of every padding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipdp.nn import AOLConv, AOLDense, aol_conv_scale, exact_operator_norm


def test_conv_scale_matches_brute_force_autocorrelation():
  kernel = np.random.default_rng(0).standard_normal((3, 2, 4, 5))
  kh, kw, c_in, _ = kernel.shape
  sums = np.zeros(c_in)
  for dy in range(-(kh - 1), kh):
    for dx in range(-(kw - 1), kw):
      for i in range(c_in):
        for j in range(c_in):
          r = 0.0
          for a in range(kh):
            for b in range(kw):
              if 0 <= a + dy < kh and 0 <= b + dx < kw:
                r += np.dot(kernel[a + dy, b + dx, i], kernel[a, b, j])
          sums[i] += abs(r)
  np.testing.assert_allclose(
    np.asarray(aol_conv_scale(jnp.asarray(kernel, jnp.float32))), sums**-0.5, rtol=1e-5
  )


@pytest.mark.parametrize("shape", [(12, 5), (5, 12)], ids=str)
def test_dense_is_lipschitz_by_construction(shape):
  layer = AOLDense(features=shape[1], lipschitz=1.5)
  for seed in range(3):
    variables = jax.jit(layer.init)(jax.random.PRNGKey(seed), jnp.ones((1, shape[0])))
    # Also a badly scaled, correlated kernel.
    kernel = variables["params"]["kernel"] * (10.0**seed) + seed * 0.5
    variables = {"params": {**variables["params"], "kernel": kernel}}
    k_eff = np.asarray(layer.apply(variables, method=AOLDense.effective_kernel), np.float64)
    assert np.linalg.norm(k_eff, 2) <= 1.5 * (1 + 1e-6)
  # And not vacuous: an orthogonal kernel is left orthogonal (D = I).
  q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((8, 8)))
  variables = {"params": {"kernel": jnp.asarray(q, jnp.float32), "bias": jnp.zeros(8)}}
  k_eff = np.asarray(AOLDense(8).apply(variables, method=AOLDense.effective_kernel), np.float64)
  np.testing.assert_allclose(k_eff, q, atol=1e-5)


CASES = [
  dict(padding="SAME", strides=1, kernel_size=(3, 3)),
  dict(padding="CIRCULAR", strides=1, kernel_size=(3, 3)),
  dict(padding="SAME", strides=2, kernel_size=(3, 3)),
  dict(padding="CIRCULAR", strides=1, kernel_size=(5, 5)),  # Wider than half the grid.
  dict(padding=((2, 0), (1, 1)), strides=1, kernel_size=(2, 3)),
]


@pytest.mark.parametrize(
  "case", CASES, ids=lambda c: f"{c['padding']}-s{c['strides']}-k{c['kernel_size']}"
)
def test_conv_is_lipschitz_by_construction(case):
  shape = (6, 6, 3)
  layer = AOLConv(features=4, lipschitz=0.8, **case)
  variables = jax.jit(layer.init)(jax.random.PRNGKey(0), jnp.ones((1,) + shape))
  kernel = layer.apply(variables, method=AOLConv.effective_kernel)
  # The exact norm of the layer's linear part, from its explicit matrix, via flax's own conv.
  plain = nn.Conv(
    4, case["kernel_size"], strides=case["strides"], padding=case["padding"], use_bias=False
  )
  norm = exact_operator_norm(lambda z: plain.apply({"params": {"kernel": kernel}}, z), shape)
  assert norm <= 0.8 * (1 + 1e-6)
  assert norm >= 0.8 * 0.3  # The rescaling is not absurdly conservative on random kernels.
  # The layer's own forward pass is that convolution plus the bias.
  x = jax.random.normal(jax.random.PRNGKey(1), (2,) + shape)
  np.testing.assert_allclose(
    layer.apply(variables, x),
    plain.apply({"params": {"kernel": kernel}}, x) + variables["params"]["bias"],
    rtol=1e-5,
    atol=1e-5,
  )


def test_conv_gradient_is_finite():
  layer = AOLConv(features=4, kernel_size=3)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 5, 2))
  variables = jax.jit(layer.init)(jax.random.PRNGKey(0), x)
  grad = jax.jit(jax.grad(lambda v: jnp.sum(layer.apply(v, x) ** 2)))(variables)
  for leaf in jax.tree_util.tree_leaves(grad):
    assert np.all(np.isfinite(leaf)) and float(jnp.abs(leaf).max()) > 0
