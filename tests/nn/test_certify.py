"""The certificate: exact/provable per-layer bounds from the actual weights, and refusals."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipdp.nn import (
  FLOAT_SAFETY_MARGIN,
  AOLConv,
  AOLDense,
  BjorckDense,
  Flatten,
  GroupSort,
  LipschitzSequential,
  MaxMin,
  SpectralConv,
  SpectralDense,
  certified_lipschitz_bound,
  exact_operator_norm,
  layer_lipschitz_bounds,
  lipschitz_mlp,
  rounding_error_bound,
)
from lipdp.nn import certify

MARGIN = 1 + FLOAT_SAFETY_MARGIN


def _init(model, input_shape, seed=0):
  return jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.ones((1,) + tuple(input_shape)))


def _linear_part(model, variables):
  return lambda z: model.apply(variables, z) - model.apply(variables, jnp.zeros_like(z))


CONV_CASES = [
  # (spatial shape, conv attributes, exact?)
  ((6, 5, 2), dict(padding="CIRCULAR"), True),
  ((5, 5, 3), dict(padding="CIRCULAR", kernel_size=(2, 2)), True),  # Even kernel.
  ((4, 4, 2), dict(padding="CIRCULAR", kernel_size=(5, 5)), True),  # Kernel wider than input.
  ((6, 6, 2), dict(padding="CIRCULAR", strides=2), False),
  ((6, 5, 2), dict(padding="SAME"), False),
  ((7, 6, 2), dict(padding="VALID", strides=(2, 1)), False),
  ((6, 6, 2), dict(padding=((2, 0), (1, 3))), False),
  ((7, 7, 2), dict(padding="SAME", kernel_dilation=2), False),
  ((9, 3), dict(padding="CAUSAL", kernel_size=(3,)), False),
]


@pytest.mark.parametrize("spatial,attrs,exact", CONV_CASES, ids=lambda c: str(c))
def test_conv_bound_against_the_explicit_matrix(spatial, attrs, exact):
  rank = len(spatial) - 1
  attrs = {"kernel_size": (3,) * rank, **attrs}
  model = LipschitzSequential([nn.Conv(3, **attrs)])
  variables = _init(model, spatial)
  bound = certified_lipschitz_bound(model, variables, spatial)
  truth = exact_operator_norm(_linear_part(model, variables), spatial)
  assert bound >= truth
  if exact:
    assert bound == pytest.approx(truth, rel=1e-4)
    assert layer_lipschitz_bounds(model, variables, spatial)[0].method == "fft-circular"


def test_conv_bound_on_scaled_and_trained_like_kernels():
  """Layer types whose kernel is rescaled: the bound follows the effective kernel."""
  spatial = (5, 5, 2)
  for layer in (
    AOLConv(4, (3, 3), lipschitz=2.0, padding="CIRCULAR"),
    SpectralConv(4, (3, 3), lipschitz=2.0, padding="CIRCULAR"),
  ):
    model = LipschitzSequential([layer])
    variables = _init(model, spatial)
    truth = exact_operator_norm(_linear_part(model, variables), spatial)
    assert certified_lipschitz_bound(model, variables, spatial) == pytest.approx(truth, rel=1e-4)


def test_dense_bounds_are_exact_svds():
  model = LipschitzSequential([nn.Dense(7), jax.nn.relu, nn.Dense(3)])
  variables = _init(model, (5,))
  kernels = [
    np.asarray(variables["params"][k]["kernel"], np.float64) for k in ("layers_0", "layers_2")
  ]
  norms = [np.linalg.norm(k, 2) for k in kernels]
  bounds = layer_lipschitz_bounds(model, variables, (5,))
  expected = [norms[0] * MARGIN, 1.0, norms[1] * MARGIN]
  assert [b.bound for b in bounds] == pytest.approx(expected, rel=1e-12)
  assert [b.path for b in bounds] == ["layers_0", "[1]", "layers_2"]
  assert [b.output_shape for b in bounds] == [(7,), (7,), (3,)]
  assert certified_lipschitz_bound(model, variables, (5,)) == pytest.approx(
    norms[0] * norms[1] * MARGIN**2, rel=1e-12
  )


def test_target_is_spread_and_certified():
  model = lipschitz_mlp([32, 32, 16, 8], lipschitz_target=0.25)
  variables = _init(model, (24,))
  bounds = layer_lipschitz_bounds(model, variables, (24,))
  dense = [b.bound for b in bounds if b.layer == "BjorckDense"]
  assert dense == pytest.approx([0.25**0.25 * MARGIN] * 4, rel=1e-5)
  assert certified_lipschitz_bound(model, variables, (24,)) == pytest.approx(
    0.25 * MARGIN**4, rel=1e-5
  )


def test_nested_chains_are_walked():
  inner = LipschitzSequential([BjorckDense(8, lipschitz=2.0), MaxMin()])
  model = LipschitzSequential([inner, Flatten(), BjorckDense(4, lipschitz=0.5)])
  variables = _init(model, (2, 6))
  bounds = layer_lipschitz_bounds(model, variables, (2, 6))
  paths = ["layers_0/layers_0", "layers_0/layers_1", "layers_1", "layers_2"]
  assert [b.path for b in bounds] == paths
  assert bounds[0].input_shape == (2, 6) and bounds[2].output_shape == (16,)
  assert certified_lipschitz_bound(model, variables, (2, 6)) == pytest.approx(MARGIN**2, rel=1e-5)


def _replace(variables, path, name, value):
  params = jax.tree_util.tree_map(lambda x: x, variables["params"])
  params[path] = {**params[path], name: value}
  return {**variables, "params": params}


def test_overwritten_plain_dense_is_reported_at_its_true_norm():
  model = LipschitzSequential([nn.Dense(6)])
  variables = _init(model, (6,))
  big = variables["params"]["layers_0"]["kernel"] * 100.0
  tampered = _replace(variables, "layers_0", "kernel", big)
  truth = exact_operator_norm(_linear_part(model, tampered), (6,))
  bound = certified_lipschitz_bound(model, tampered, (6,))
  assert bound >= truth and bound == pytest.approx(truth, rel=1e-5) and bound > 10


def test_bjorck_layer_is_judged_by_its_effective_kernel():
  rng = np.random.default_rng(0)
  model = LipschitzSequential([BjorckDense(10, lipschitz=1.0)])
  variables = _init(model, (10,))
  # Overwritten with a huge matrix: the forward pass re-orthonormalises it; the bound is the
  # true norm of that forward pass.
  huge = jnp.asarray(1e4 * rng.standard_normal((10, 10)), jnp.float32)
  tampered = _replace(variables, "layers_0", "kernel", huge)
  truth = exact_operator_norm(_linear_part(model, tampered), (10,))
  assert certified_lipschitz_bound(model, tampered, (10,)) == pytest.approx(truth, rel=1e-5)
  # Stopped early (one plain Björck step on an ill-conditioned W): the singular values are
  # spread over (0, 1), and the certificate reports the true norm, not the nominal 1.
  u, _ = np.linalg.qr(rng.standard_normal((10, 10)))
  ill = (u * np.logspace(0, -3, 10)).astype(np.float32)
  layer = BjorckDense(10, num_iters=1, scaled=False)
  early = LipschitzSequential([layer])
  v = _replace(_init(early, (10,)), "layers_0", "kernel", jnp.asarray(ill))
  truth = exact_operator_norm(_linear_part(early, v), (10,))
  bound = certified_lipschitz_bound(early, v, (10,))
  layer_vars = {"params": v["params"]["layers_0"]}
  kernel = np.asarray(layer.apply(layer_vars, method=BjorckDense.effective_kernel), np.float64)
  assert np.linalg.svd(kernel, compute_uv=False).min() < 0.1
  assert bound >= truth and bound == pytest.approx(truth, rel=1e-5) and bound < 1 - 1e-5


def test_stale_power_iteration_state_is_not_trusted():
  # Dense: the kernel changed after the last power iteration.
  model = LipschitzSequential([SpectralDense(12, lipschitz=1.0)])
  variables = _init(model, (12,))
  new_kernel = jnp.asarray(np.random.default_rng(1).standard_normal((12, 12)), jnp.float32)
  stale = _replace(variables, "layers_0", "kernel", new_kernel)
  truth = exact_operator_norm(_linear_part(model, stale), (12,))
  bound = certified_lipschitz_bound(model, stale, (12,))
  assert bound >= truth and bound == pytest.approx(truth, rel=1e-5) and bound > 1.2
  # Convolution: a single power iteration from a random start underestimates sigma.
  conv = LipschitzSequential([SpectralConv(4, (3, 3), padding="CIRCULAR")])
  variables = _init(conv, (6, 6, 3))
  truth = exact_operator_norm(_linear_part(conv, variables), (6, 6, 3))
  bound = certified_lipschitz_bound(conv, variables, (6, 6, 3))
  assert bound == pytest.approx(truth, rel=1e-4) and bound > 1.05


class _RogueBjorck(BjorckDense):
  """Claims to be a BjorckDense but scales its output."""

  def __call__(self, x):
    return 10.0 * super().__call__(x)


def _gate_large_inputs(x, kernel, bias, dtype):
  """The identity on small inputs and x 50 on large ones: linear on the certificate's probes
  alone, so only a refusal of the hook keeps it out (from an independent review)."""
  del dtype
  large = jnp.linalg.norm(x, axis=-1, keepdims=True) > 6.0
  return jnp.where(large, 50.0 * x, x), kernel, bias


@pytest.mark.parametrize(
  "layers,match",
  [
    ([nn.Dense(4), nn.LayerNorm()], "Cannot certify a LayerNorm"),
    ([nn.Dense(4), jnp.tanh], "Cannot certify the function"),
    ([nn.Dense(4), lambda x: 3 * x], "Cannot certify the function"),
    ([_RogueBjorck(4)], "Cannot certify a _RogueBjorck"),
    ([nn.Sequential([nn.Dense(4)])], "Cannot certify a Sequential"),
    ([nn.Conv(4, (3,), feature_group_count=2)], "feature_group_count"),
    (
      [nn.Dense(4, dot_general=lambda *a, **k: 2 * jax.lax.dot_general(*a, **k))],
      "custom dot_general",
    ),
    # promote_dtype sees the input, so it could be nonlinear in it: refused, not probed.
    ([nn.Dense(4, promote_dtype=lambda x, k, b, dtype: (x, 2 * k, b))], "custom promote_dtype"),
    ([nn.Conv(4, (3,), promote_dtype=_gate_large_inputs)], "custom promote_dtype"),
  ],
  ids=[
    "layernorm",
    "tanh",
    "lambda",
    "subclass",
    "nn.Sequential",
    "grouped-conv",
    "custom-dot",
    "custom-promote",
    "custom-promote-conv",
  ],
)
def test_unknown_layers_raise_type_error(layers, match):
  model = LipschitzSequential(layers)
  shape = (5, 4) if isinstance(layers[0], nn.Conv) else (6,)
  variables = _init(model, shape)
  with pytest.raises(TypeError, match=match):
    certified_lipschitz_bound(model, variables, shape)


@pytest.mark.parametrize("excess", [0.5, 0.9, 1.0])
def test_every_rescaling_the_cross_check_accepts_is_covered_by_the_margin(excess):
  """The check admits a kernel rescaled by up to 1 + rtol; the certified bound must cover it."""
  from lipdp.nn import certify  # pylint: disable=g-import-not-at-top

  factor = 1.0 + excess * certify._MATCH_RTOL  # pylint: disable=protected-access
  scaled = nn.Dense(6, promote_dtype=lambda x, k, b, dtype: (x, k * factor, b))
  model = LipschitzSequential([scaled])
  variables = _init(model, (6,))
  kernel = np.asarray(variables["params"]["layers_0"]["kernel"], np.float64)
  truth = np.linalg.norm(kernel * factor, 2)
  try:
    bound = certified_lipschitz_bound(model, variables, (6,))
  except TypeError:
    return  # refused: nothing to cover
  assert bound >= truth


def test_a_large_bias_does_not_loosen_the_cross_check(monkeypatch):
  """With a bias 1e4 times the output, a 1e-4 difference between the kernel the certificate
  reads and the one the forward pass applies is still caught (the reading is patched: every
  flax hook that could make the difference is refused before the probe)."""
  model = LipschitzSequential([nn.Dense(6)])
  variables = _init(model, (6,))
  params = variables["params"]["layers_0"]
  params = {"kernel": params["kernel"] * 1e-4, "bias": params["bias"] + 1.0}
  variables = {"params": {"layers_0": params}}
  certified_lipschitz_bound(model, variables, (6,))  # the kernel as applied: accepted
  read = certify._dense_kernel
  monkeypatch.setattr(certify, "_dense_kernel", lambda layer: read(layer) / (1 + 1e-4))
  with pytest.raises(TypeError, match="not the linear operator"):
    certified_lipschitz_bound(model, variables, (6,))


def test_only_a_lipschitz_sequential_is_accepted():
  model = nn.Sequential([nn.Dense(3)])
  variables = _init(model, (3,))
  with pytest.raises(TypeError, match="Only a LipschitzSequential"):
    certified_lipschitz_bound(model, variables, (3,))
  layer = BjorckDense(3)
  with pytest.raises(TypeError, match="Only a LipschitzSequential"):
    certified_lipschitz_bound(layer, _init(layer, (3,)), (3,))


def test_activations_and_flatten_count_as_one():
  model = LipschitzSequential([MaxMin(), GroupSort(3), Flatten(), jax.nn.relu])
  bounds = layer_lipschitz_bounds(model, {}, (2, 6))
  assert [b.bound for b in bounds] == [1.0, 1.0, 1.0, 1.0]
  assert bounds[2].output_shape == (12,)


def test_masked_plain_conv_is_certified_with_its_mask():
  mask = np.ones((3, 3, 2, 3), np.float32)
  mask[1, 1] = 0.0  # An unhashable module attribute, and a kernel the forward pass changes.
  model = LipschitzSequential([nn.Conv(3, (3, 3), padding="CIRCULAR", mask=jnp.asarray(mask))])
  variables = _init(model, (5, 5, 2))
  truth = exact_operator_norm(_linear_part(model, variables), (5, 5, 2))
  assert certified_lipschitz_bound(model, variables, (5, 5, 2)) == pytest.approx(truth, rel=1e-4)


def test_sixteen_bit_computation_is_refused_but_sixteen_bit_parameters_are_bounded():
  model = LipschitzSequential([nn.Dense(16, dtype=jnp.bfloat16)])
  with pytest.raises(TypeError, match="computing in bfloat16"):
    certified_lipschitz_bound(model, _init(model, (16,)), (16,))
  model = LipschitzSequential([BjorckDense(16, param_dtype=jnp.bfloat16)])
  variables = _init(model, (16,))
  truth = exact_operator_norm(_linear_part(model, variables), (16,))
  assert certified_lipschitz_bound(model, variables, (16,)) == pytest.approx(truth, rel=1e-5)


@pytest.mark.parametrize("fan_in", [16, 257])
def test_the_rounding_bound_holds_against_an_exact_reference_in_float64(fan_in):
  """A dense layer of ones on [1, d, ..., d], d just under half an ulp of 1: each float64 sum
  of XLA on the CPU rounds away almost all of gamma_{m+1} (an independent review measured 0.99
  of it). The error against the exact value (Fractions) stays within rounding_error_bound,
  which the l2 steps make looser by about sqrt(m) here, not more."""
  from fractions import Fraction  # pylint: disable=g-import-not-at-top

  from lipdp import latent_release  # pylint: disable=g-import-not-at-top

  model = LipschitzSequential([nn.Dense(3, kernel_init=nn.initializers.ones)])
  variables = model.init(jax.random.key(0), jnp.zeros((1, fan_in)))
  d = 0.99 * 2.0**-53
  x = np.full((1, fan_in), d)
  x[0, 0] = 1.0
  with latent_release.release_arithmetic():
    variables64 = latent_release.in_float64(variables)
    bounds = layer_lipschitz_bounds(model, variables64, (fan_in,))
    y = np.asarray(jax.jit(model.apply)(variables64, jnp.asarray(x)))
  exact = Fraction(1) + (fan_in - 1) * Fraction(d)
  observed = math.sqrt(sum(float(Fraction(float(v)) - exact) ** 2 for v in y[0]))
  bound, _ = rounding_error_bound(bounds, float(np.linalg.norm(x)))
  assert observed <= bound
  assert observed >= bound / (2 * math.sqrt(fan_in))


def _release_float64(model, variables, shape, x):
  """(the certified chain, its map at x, the network's forward pass at x), in float64."""
  from lipdp import latent_release  # pylint: disable=g-import-not-at-top

  with latent_release.release_arithmetic():
    variables64 = latent_release.in_float64(variables)
    chain = certify.certified_chain(model, variables64, shape)
    x = jnp.asarray(x, jnp.float64)
    return chain, np.asarray(chain(x)), np.asarray(jax.jit(model.apply)(variables64, x))


CHAINS = {
  "mlp": (
    lambda: LipschitzSequential(
      [
        BjorckDense(8),
        MaxMin(),
        SpectralDense(6),
        GroupSort(3),
        nn.Dense(4),
        jax.nn.relu,
        LipschitzSequential([AOLDense(4)]),
      ]
    ),
    (5,),
  ),
  "conv": (
    lambda: LipschitzSequential(
      [
        SpectralConv(4, (3, 3), padding="CIRCULAR", strides=2),
        MaxMin(),
        AOLConv(4, (3, 3), padding="SAME"),
        nn.Conv(2, (2, 2), padding="VALID", kernel_dilation=2),
        Flatten(),
        BjorckDense(3),
      ]
    ),
    (6, 6, 2),
  ),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_the_certified_chain_evaluates_the_network(name):
  """The operators the certificate bounded, evaluated in order (what the release computes its
  means with), are the network: equal to its forward pass to float64 rounding."""
  build, shape = CHAINS[name]
  model = build()
  variables = _init(model, shape)
  x = np.random.default_rng(1).uniform(-1, 1, (3,) + shape)
  _, chained, forward = _release_float64(model, variables, shape, x)
  assert chained.shape == forward.shape
  np.testing.assert_allclose(chained, forward, rtol=1e-12, atol=1e-12)


def test_the_certified_chain_applies_the_certified_kernel_not_the_forward_pass(monkeypatch):
  """A kernel 1 + 1e-6 away from the forward pass's passes the cross-check: the chain
  evaluates the kernel that was bounded (its map is that kernel's, whose norm the certified
  bound is), not the forward pass's."""
  model = LipschitzSequential([nn.Dense(4)])
  variables = _init(model, (5,))
  read = certify._dense_kernel  # pylint: disable=protected-access
  factor = 1.0 + 1e-6
  monkeypatch.setattr(certify, "_dense_kernel", lambda layer: read(layer) * factor)
  x = np.random.default_rng(2).uniform(-1, 1, (3, 5))
  chain, chained, forward = _release_float64(model, variables, (5,), np.concatenate([x, 0 * x[:1]]))
  np.testing.assert_allclose(
    chained[:3] - chained[3], factor * (forward[:3] - forward[3]), rtol=1e-12
  )
  kernel = np.asarray(variables["params"]["layers_0"]["kernel"], np.float64) * factor
  np.testing.assert_array_equal(chain.operators[0].kernel, kernel)
  assert chain.bounds[0].bound == np.linalg.norm(kernel, 2) * MARGIN
