"""Ghost clipping against the vmap path: norms, clipped sums, the bound C, refusals, memory."""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprs
import train_state
from lipdp import data as data_lib
from lipdp import randomness
from lipdp import spec as spec_lib
from lipdp.models import builders
from lipdp.models import decoders
from lipdp.models import vae as vae_lib
from lipdp.nn import AOLConv, AOLDense, BjorckDense, SpectralConv, SpectralDense
from lipdp.nn import bjorck
from lipdp.training import dpsgd
from lipdp.training import per_example
from lipdp.training import ghost_clipping as gc
from lipdp.training import loop
from lipdp.training import sharding
from lipdp.training import steps as steps_lib

DIM = 16


class _Net(nn.Module):
  """A record (DIM,) reshaped to `shape`, then `layers` with tanh between them, flattened."""

  shape: tuple
  layers: Sequence

  def __call__(self, x):
    h = x.reshape((x.shape[0],) + tuple(self.shape))
    for i, layer in enumerate(self.layers):
      h = layer(h)
      if i < len(self.layers) - 1:
        h = jnp.tanh(h)
    return h.reshape(h.shape[0], -1)


def _loss(module):
  """Per-record loss with noise from the key: the two paths must give each record its key."""

  def loss_fn(params, model_state, records, rng, mutable=False):
    out = module.apply({"params": params, **model_state}, records, mutable=mutable)
    y, new_state = out if mutable else (out, {})
    noisy = y + 0.3 * jax.random.normal(rng, y.shape)
    return jnp.sum(jnp.square(jnp.sin(noisy) - 0.2), axis=1), {}, new_state

  return loss_fn


def _init(module, *args):
  return jax.jit(module.init)(jax.random.key(0), *args)  # jitted: eager init compiles op by op


def _split(variables):
  variables = dict(variables)
  return variables.pop("params"), variables


def _records(n=6, dim=DIM, seed=0):
  rng = np.random.default_rng(seed)
  scale = rng.uniform(0.5, 3.0, (n, 1))  # a spread of gradient norms
  return (rng.uniform(-1, 1, (n, dim)) * scale).astype(np.float32)


def _flat(tree):
  return np.concatenate(
    [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)]
  )


def _compare(loss_fn, params, state, records, expected_rules):
  """Ghost norms (per layer and in all), bounds and clipped sum against the vmap path's, with
  about half of the examples clipped. `expected_rules`: {layer path: rule}, or a set of rules."""
  n = records.shape[0]
  key = jax.random.key(7)
  mask = np.ones(n, np.float32)
  plan = gc.build_plan(loss_fn, params, state, records[0], key)
  rules = {l.key: l.rule for l in plan.layers}
  if isinstance(expected_rules, dict):
    assert rules == expected_rules
  else:
    assert set(rules.values()) == set(expected_rules)

  def example_loss(params, record, k):
    return loss_fn(params, state, record[None], k, False)[0][0]

  @jax.jit
  def both(params, records):
    losses, grads = jax.vmap(jax.value_and_grad(example_loss), in_axes=(None, 0, 0))(
      params, records, jax.random.split(key, n)
    )
    reference = per_example.per_example_norms(grads)[0]
    clip = jnp.median(reference)  # traced: the clip norm may be an array
    ghost = gc.clipped_gradient_sum_and_norms(loss_fn, clip)(params, state, records, mask, key)
    return losses, grads, reference, clip, ghost

  losses, grads, reference, clip, (ghost_sum, stats, norms) = both(params, records)
  reference, estimate, bound = (
    np.asarray(x, np.float64) for x in (reference, norms["estimate"], norms["bound"])
  )
  for layer in plan.layers:  # each layer's squared norm against its per-example gradients
    layer_grads = jax.tree_util.tree_map(lambda g: np.asarray(g, np.float64), grads)
    for name in layer.path:
      layer_grads = layer_grads[name]
    squares = sum(np.sum(g.reshape(n, -1) ** 2, 1) for g in jax.tree_util.tree_leaves(layer_grads))
    np.testing.assert_allclose(norms["layers"][layer.key], squares, rtol=1e-5, atol=1e-12)
  np.testing.assert_allclose(estimate, reference, rtol=1e-5)
  assert np.all(bound >= reference) and np.all(bound <= reference * (1 + 2e-4))
  # The clipped sum is exactly (to float rounding) sum_i c_i grad_i, with the vmap path's
  # per-example gradients and c_i = min(1, C (1 - m) / bound_i) ...
  clip = float(clip)
  weights = np.minimum(1.0, clip * (1 - gc.top_margin(len(plan.layers))) / bound)
  expected = sum(
    w * _flat(jax.tree_util.tree_map(lambda g: g[i], grads)) for i, w in enumerate(weights)
  )
  got = _flat(ghost_sum)
  assert np.linalg.norm(got - expected) <= 2e-6 * np.linalg.norm(expected)
  # ... which is the vmap path's clipped sum but for its margin (c_i = min(1, C (1 - m') / |g_i|)).
  vmap_margin = per_example.per_example_norms(grads)[1]
  vmap_weights = np.minimum(1.0, clip * (1 - vmap_margin) / reference)
  assert np.max(np.abs(weights / vmap_weights - 1)) < 2e-4
  np.testing.assert_allclose(float(stats["loss_sum"]), np.sum(losses), rtol=1e-5)
  assert float(stats["clipped_fraction_sum"]) == np.sum(reference > clip) >= 1
  assert float(stats["count"]) == n


class _Positions(nn.Module):
  """Dense layers on several positions: 2 x 8 (the ghost rule is cheaper), then 4 x 4
  (materialising the 4 x 4 kernel gradient is)."""

  @nn.compact
  def __call__(self, x):
    h = jnp.tanh(nn.Dense(8, name="gram")(x.reshape(-1, 2, 8)))
    h = nn.Dense(4, name="materialised")(h.reshape(-1, 4, 4))
    return h.reshape(h.shape[0], -1)


# One chain per family, every layer type of lipdp's models, each layer's norm checked alone.
LAYER_CASES = {
  "dense": (
    lambda: _Net(
      (DIM,),
      [
        nn.Dense(8, use_bias=False),
        BjorckDense(8, lipschitz=0.7, retracted=True),  # as lipdp.training trains it
        SpectralDense(8, lipschitz=0.9),
        AOLDense(8, lipschitz=0.8),
        BjorckDense(6, lipschitz=0.9),  # iterating (not retracted)
        SpectralDense(3, use_bias=False),
      ],
    ),
    {
      "layers_0": "dense",
      "layers_1": "dense",
      "layers_2": "materialise",
      "layers_3": "materialise",
      "layers_4": "materialise",
      "layers_5": "materialise",
    },
  ),
  "conv": (
    lambda: _Net(
      (4, 4, 1),
      [
        nn.Conv(3, (3, 3)),
        AOLConv(4, 3, lipschitz=0.8),
        SpectralConv(4, 3, lipschitz=0.9),
        AOLConv(2, 3, strides=2),
        nn.ConvTranspose(2, (3, 3), strides=(2, 2)),
      ],
    ),
    {f"layers_{i}": "materialise" for i in range(5)},
  ),
  "positions": (_Positions, {"gram": "gram", "materialised": "materialise"}),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_ghost_equals_vmap_for_each_layer_type(case):
  build, rules = LAYER_CASES[case]
  module = build()
  params, state = _split(_init(module, jnp.zeros((1, DIM))))
  _compare(_loss(module), params, state, _records(), rules)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_the_norms_and_the_clipped_sum_run_at_the_highest_precision(case):
  """Every matrix product and convolution the ghost path adds to its forward and backward pass
  (the norms' bounds, the materialised per-example gradients, the clipped
  sum) is at the highest precision, whatever the platform's default (a review found
  that TF32 would round past the margin)."""
  build, _ = LAYER_CASES[case]
  module = build()
  params, state = _split(_init(module, jnp.zeros((1, DIM))))
  loss_fn, records, key = _loss(module), jnp.asarray(_records()), jax.random.key(7)
  keys = jax.random.split(key, records.shape[0])
  plan = gc.build_plan(loss_fn, params, state, records[0], keys[0])
  clipped_sum = gc.clipped_gradient_sum(loss_fn, 0.5)
  added = jaxprs.products_added_at_the_highest_precision(
    lambda p, s: clipped_sum(p, s, records, jnp.ones(records.shape[0]), key),
    lambda p, s: gc._ghost_pass(loss_fn, plan, p, s, records, keys),
    params,
    state,
  )
  assert added >= len(plan.layers)
  # The self-check's two sides run every product at the highest precision, so that a reduced
  # default in the reference's backward pass alone cannot fail a correct rule.
  with jax.default_matmul_precision("bfloat16"):
    check = jax.make_jaxpr(lambda p, s: gc._vmap_and_ghost_norms(loss_fn, p, s, records, key))(
      params, state
    )
  assert set(jaxprs.matmul_precisions(check)) == {jaxprs.HIGHEST}


def _vae(
  decoder="mlp", style_dim=2, heteroscedastic=False, encoder_dense="bjorck", conditioned=False
):
  domain = data_lib.load_dataset("digits").domain
  c = spec_lib.ModelSpec(
    latent_dim=4,
    encoder_hidden=(16,),
    decoder_hidden=(16, 16),
    decoder=decoder,
    decoder_channels=4,
    encoder_dense=encoder_dense,
    style_dim=style_dim,
    style_hidden=(8,),
    heteroscedastic=heteroscedastic,
    label_conditioned=conditioned,
    # With a conditioned decoder, the learned label prior too: one more dense layer to check.
    label_prior="learned",
  )
  model = builders.build_vae(domain, c, 1.0, 1.0, 0.1 if heteroscedastic else None)
  return bjorck.with_retracted_bjorck(model), domain  # as lipdp.training trains it


@pytest.mark.parametrize(
  "decoder,style_dim,heteroscedastic,encoder_dense,conditioned",
  [
    # The default model, its decoder also reading the record's label (model.label_conditioned)
    # and a learned label prior.
    ("mlp", 2, False, "bjorck", True),
    # The other models in the slow run: their layers are each checked by default, one at a time,
    # in test_ghost_equals_vmap_for_each_layer_type.
    pytest.param("conv", 2, False, "bjorck", False, marks=pytest.mark.slow),
    # no style latent, heteroscedastic
    pytest.param("lipschitz_mlp", 0, True, "spectral", False, marks=pytest.mark.slow),
  ],
)
def test_ghost_equals_vmap_for_the_vae(
  decoder, style_dim, heteroscedastic, encoder_dense, conditioned
):
  model, domain = _vae(decoder, style_dim, heteroscedastic, encoder_dense, conditioned)
  assert (model.condition_block is not None) == conditioned
  assert (model.label_prior is not None) == conditioned
  variables = _init(model, jnp.zeros((1, domain.dim)), jax.random.key(2))
  params, state = _split(variables)
  records = data_lib.load_dataset("digits").train[:6]
  rules = {"dense"} | ({"materialise"} if decoder == "conv" else set())
  rules |= {"materialise"} if encoder_dense == "spectral" else set()
  _compare(loop.vae_loss(model, domain.blocks), params, state, records, rules)


def test_ghost_equals_vmap_with_several_noise_samples_per_record():
  """Noise multiplicity (train.noise_samples): one record's decoder reads S latents in one
  call, so its layers have S positions per example and take the Gram rule; the norms and the
  clipped sum stay the vmap path's."""
  model, domain = _vae("mlp", 2, False, "bjorck", True)
  params, state = _split(_init(model, jnp.zeros((1, domain.dim)), jax.random.key(2)))
  records = data_lib.load_dataset("digits").train[:6]
  loss_fn = loop.vae_loss(model, domain.blocks, noise_samples=3)
  plan = gc.build_plan(loss_fn, params, state, records[0], jax.random.key(7))
  decoder_rules = {l.rule for l in plan.layers if l.key.startswith("decoder")}
  assert decoder_rules == {"gram"}
  _compare(loss_fn, params, state, records, {"dense", "gram"})


class _Mixed(nn.Module):
  """One layer of each rule: Gram, dense, materialised (spectral dense, AOL conv)."""

  @nn.compact
  def __call__(self, x):
    h = jnp.tanh(nn.Dense(8)(x.reshape(-1, 2, 8))).reshape(-1, 16)
    h = jnp.tanh(SpectralDense(8, lipschitz=0.9)(h))
    h = jnp.tanh(BjorckDense(8, lipschitz=0.7, retracted=True)(h))
    return AOLConv(2, 3)(h.reshape(-1, 2, 4, 1)).reshape(h.shape[0], -1)


def test_each_clipped_contribution_is_at_most_c_exactly():
  """Each example's contribution to the ghost clipped sum, measured exactly (float64), is <= C
  (and within the small margin of it when clipped), for every kind of rule."""
  module = _Mixed()
  params, state = _split(_init(module, jnp.zeros((1, DIM))))
  loss_fn = _loss(module)
  n = 16
  records = _records(n) * np.random.default_rng(1).uniform(1, 1e3, (n, 1)).astype(np.float32)
  masks = np.eye(n, dtype=np.float32)
  clipped_sum = jax.jit(lambda *args: gc.clipped_gradient_sum(loss_fn, args[-1])(*args[:-1]))
  for clip in (0.05, 0.3):
    for i in range(n):
      alone, stats = clipped_sum(params, state, records, masks[i], jax.random.key(i), clip)
      assert float(stats["clipped_fraction_sum"]) == 1
      norm = np.linalg.norm(_flat(alone))
      assert clip * (1 - 1e-3) < norm <= clip


class _OneLayer(nn.Module):
  layer: Callable
  shape: tuple

  @nn.compact
  def __call__(self, x):
    return self.layer()(x.reshape((x.shape[0],) + self.shape)).reshape(x.shape[0], -1)


def _scaled_loss(module, input_scale, gradient_scale):
  """Inputs scaled by `input_scale`, a linear loss whose output gradients are about
  `gradient_scale`."""

  def loss_fn(params, model_state, records, rng, mutable=False):
    out = module.apply({"params": params, **model_state}, records * input_scale, mutable=mutable)
    y, new_state = out if mutable else (out, {})
    weights = jnp.cos(jnp.arange(y.shape[1], dtype=jnp.float32))
    return gradient_scale * jnp.sum(y * weights, axis=1), {}, new_state

  return loss_fn


@pytest.mark.parametrize(
  "layer, shape, rule",
  [
    (lambda: nn.Dense(8), (DIM,), "dense"),
    (lambda: BjorckDense(8, lipschitz=0.7, retracted=True), (DIM,), "dense"),
    (lambda: nn.Dense(8), (2, 8), "gram"),
    (lambda: SpectralDense(8, lipschitz=0.9), (DIM,), "materialise"),
  ],
)
def test_flushed_output_gradients_cannot_hide_a_norm(layer, shape, rule):
  """XLA on a CPU flushes float32 results below 2^-126 to zero. With inputs of about 1e18 and
  output gradients of about 1e-20, every square of an output gradient flushes, so |g|^2 reads
  0, while each per-example gradient a g^T is about 0.05: an independent review's case, which
  the dense and Gram rules had left unclipped at 40-58 C (the spectral closed form at up to
  32 C). Each clipped contribution, measured in float64, must be at most C."""
  module = _OneLayer(layer, shape)
  params, state = _split(_init(module, jnp.zeros((1, DIM))))
  records = _records(4)
  clip = 1e-3
  for input_scale, gradient_scale in ((1e18, 1e-20), (1e-20, 1e18), (1.0, 1.0)):
    loss_fn = _scaled_loss(module, input_scale, gradient_scale)
    plan = gc.build_plan(loss_fn, params, state, records[0], jax.random.key(1))
    assert [l.rule for l in plan.layers] == [rule]
    clipped_sum = jax.jit(gc.clipped_gradient_sum(loss_fn, clip))
    for i in range(len(records)):
      mask = np.eye(len(records), dtype=np.float32)[i]
      alone, _ = clipped_sum(params, state, records, mask, jax.random.key(1))
      assert np.linalg.norm(_flat(alone)) <= clip
  # The unflushed case is clipped to within the margin, so the bound is not loose there.
  assert np.linalg.norm(_flat(alone)) > clip * (1 - 1e-3)


def test_flushes_inside_the_clipped_vector_cannot_push_it_past_c():
  """The Gram rule on 3 positions, s = 2^30: positions 1 and 2 cancel in the exact gradient
  (a_1 g_1^T + a_2 g_2^T = 0), but c g_1 flushes to zero while c g_2 does not, so the computed
  V keeps s a_2 (c g_2)^T, which no bound of the exact norm sees (an independent review's case:
  1.00036 C before the rule's slack)."""
  positions, width, scale = 3, 8, 2.0**30

  class _Cancelling(nn.Module):
    @nn.compact
    def __call__(self, x):
      layer = BjorckDense(width, lipschitz=scale, retracted=True)
      return layer(x.reshape(-1, positions, width)).reshape(x.shape[0], -1)

  module = _Cancelling()
  params, state = _split(_init(module, jnp.zeros((1, positions * width))))
  cut = positions * width

  def loss_fn(params, model_state, records, rng, mutable=False):
    y = module.apply({"params": params, **model_state}, records[:, :cut])
    return jnp.sum(y * records[:, cut:], axis=1), {}, {}

  clip = 1e-6
  clipped_sum = jax.jit(gc.clipped_gradient_sum(loss_fn, clip))
  plan = gc.build_plan(loss_fn, params, state, jnp.zeros(2 * cut), jax.random.key(0))
  assert [l.rule for l in plan.layers] == ["gram"]
  worst = 0.0
  for g0 in np.geomspace(1e-14, 2e-13, 9):
    a, g = np.zeros((positions, width)), np.zeros((positions, width))
    a[0, 0], a[1, 0], a[2, 0] = 1.1e19, 5.5e18, 1e9
    g[0], g[1], g[2] = -g0, 2 * g0, 5.0 / np.sqrt(width) * (1.07e9 / scale)
    record = np.concatenate([a.ravel(), g.ravel()]).astype(np.float32)
    alone, _ = clipped_sum(
      params, state, np.stack([record, 0 * record]), np.array([1, 0], np.float32), jax.random.key(0)
    )
    worst = max(worst, np.linalg.norm(_flat(alone)))
  assert clip * 0.99 < worst <= clip


def test_a_reduction_too_long_for_float32s_rounding_bound_is_refused():
  """gamma_n = n u / (1 - n u) is meaningless from n u = 1/2 and negative past 1: a dense layer
  with 2^23 inputs had a negative flushed mass and left an example unclipped at 6 C (a review's
  case). Refused when traced."""

  class _Wide(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(1, use_bias=False)(x)

  module, width = _Wide(), 2**23
  params = {"Dense_0": {"kernel": jax.ShapeDtypeStruct((width, 1), jnp.float32)}}
  clipped_sum = gc.clipped_gradient_sum(_loss(module), 1e-3)
  records = jax.ShapeDtypeStruct((2, width), jnp.float32)
  with pytest.raises(gc.GhostClippingError, match="too long for float32's rounding bound"):
    jax.eval_shape(
      lambda p, r: clipped_sum(p, {}, r, jnp.ones(2), jax.random.key(0)), params, records
    )


def _small_vae():
  """Like the default model, with fewer layers (a fast compile)."""
  return vae_lib.LipschitzVAE(
    encoder_mean=BjorckDense(4, retracted=True), decoder=decoders.MLPDecoder((16,), 74)
  )


def test_padding_rows_and_non_finite_examples_contribute_nothing():
  model, domain = _small_vae(), data_lib.load_dataset("digits").domain
  params, state = _split(_init(model, jnp.zeros((1, domain.dim)), jax.random.key(2)))
  clipped_sum = jax.jit(gc.clipped_gradient_sum(loop.vae_loss(model, domain.blocks), 1.0))
  records = data_lib.load_dataset("digits").train[:4].copy()
  records[0, 0] = np.nan
  key = jax.random.key(3)
  with_nan, stats = clipped_sum(params, state, records, np.ones(4, np.float32), key)
  without, _ = clipped_sum(params, state, records, np.array([0, 1, 1, 1], np.float32), key)
  assert np.all(np.isfinite(_flat(with_nan)))
  np.testing.assert_allclose(_flat(with_nan), _flat(without), rtol=1e-6, atol=1e-7)
  assert np.isfinite(float(stats["loss_sum"])) and float(stats["count"]) == 4
  none, stats = clipped_sum(params, state, records, np.zeros(4, np.float32), key)
  assert np.all(_flat(none) == 0) and float(stats["count"]) == 0


class _UnknownScale(nn.Module):
  @nn.compact
  def __call__(self, x):
    return x * self.param("scale", nn.initializers.ones, (x.shape[-1],))


class _SharedDense(nn.Module):
  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(x.shape[-1])
    return dense(jnp.tanh(dense(x)))


class _ReadsKernel(nn.Module):
  @nn.compact
  def __call__(self, x):
    dense = nn.Dense(4, name="dense")
    y = dense(x)
    return y * jnp.sum(dense.variables["params"]["kernel"])  # a use outside its call


@pytest.mark.parametrize(
  "layers,message",
  [
    (lambda: [_UnknownScale(), nn.Dense(3)], "'layers_0/scale' .* not used by a layer"),
    (lambda: [_SharedDense()], "called more than once"),
    (lambda: [_ReadsKernel()], "'layers_0/dense/kernel' is used outside"),
    (lambda: [nn.Dense(4, dtype=jnp.bfloat16)], "float32"),
  ],
)
def test_refuses_what_it_cannot_account_for(layers, message):
  module = _Net((DIM,), layers())
  params, state = _split(_init(module, jnp.zeros((1, DIM))))
  records = _records(4)
  with pytest.raises(gc.GhostClippingError, match=message):
    jax.eval_shape(
      gc.clipped_gradient_sum(_loss(module), 1.0),
      params,
      state,
      records,
      np.ones(4, np.float32),
      jax.random.key(0),
    )


def test_self_check_refuses_a_wrong_rule(monkeypatch):
  """A rule with the wrong kernel scale (Björck's lipschitz dropped) is caught by the check."""
  module = _Net((DIM,), [BjorckDense(8, lipschitz=0.5, retracted=True), nn.Dense(3)])
  params, state = _split(_init(module, jnp.zeros((1, DIM))))
  monkeypatch.setattr(gc, "_PASSED", set())
  gc.self_check(_loss(module), params, state, (DIM,))  # the right rule passes
  monkeypatch.setattr(gc, "_PASSED", set())
  monkeypatch.setattr(gc, "_kernel_scale", lambda m: 1.0)
  with pytest.raises(gc.GhostClippingError, match="differ from the vmap norms"):
    gc.self_check(_loss(module), params, state, (DIM,))


def _step_after_one_update(clipping, clip_norm, records, model, blocks):
  dp = dpsgd.DPSGDConfig(
    noise_multiplier=1e-6, clip_norm=clip_norm, sampling_rate=1.0, chunk_size=16, clipping=clipping
  )
  sgd = optax.sgd(1.0)
  sample = jnp.zeros((1, records.shape[1]))
  state = train_state.create(model, sgd, sample, jax.random.key(1))
  step, mesh = train_state.toy_dpsgd_step(model, blocks, records, dp, sgd, state)
  host = step.host_inputs(0)
  assert host[0].count == len(records) and host[0].num_chunks == 3  # the last one padded
  before = _flat(state.params)
  new, stats = train_state.run_step(step, mesh, state, records, randomness.key_from_seed(123), host)
  return _flat(new.params) - before, stats


def test_a_ghost_dpsgd_step_equals_a_vmap_step():
  """One jitted DPSGDStep (3 microbatches, the last one padded, 2 devices) in each mode, some
  examples clipped: equal to float rounding and the two paths' clipping margins (~1e-4)."""
  model = _small_vae()
  blocks = data_lib.load_dataset("digits").domain.blocks
  records = data_lib.load_dataset("digits").train[:40]
  ghost, ghost_stats = _step_after_one_update("ghost", 0.5, records, model, blocks)
  vmap, vmap_stats = _step_after_one_update("vmap", 0.5, records, model, blocks)
  assert np.linalg.norm(ghost - vmap) <= 2e-4 * np.linalg.norm(vmap)
  assert float(ghost_stats["count"]) == float(vmap_stats["count"]) == 40
  assert 0 < float(ghost_stats["clipped_fraction_sum"]) == float(vmap_stats["clipped_fraction_sum"])


def test_step_memory_does_not_grow_with_the_expected_batch():
  """Microbatches accumulate inside one lax.fori_loop: the compiled step's temporaries are the
  same at q n = 256 and 4096 (only the index argument grows). The ghost path; the vmap path
  shares the loop."""
  model = _small_vae()
  blocks = data_lib.load_dataset("digits").domain.blocks
  sgd = optax.sgd(1.0)
  sample = jnp.zeros((1, 74))
  state = train_state.create(model, sgd, sample, jax.random.key(1))
  mesh = sharding.data_mesh(jax.devices()[:1])
  num_records = 8192
  temps = []
  for expected in (256, 4096):
    dp = dpsgd.DPSGDConfig(1.0, 1.0, expected / num_records, chunk_size=64)
    step = steps_lib.DPSGDStep(
      loop.vae_loss(model, blocks),
      sgd,
      mesh,
      dp=dp,
      num_records=num_records,
      seed=0,
      sample_record=sample,
      param_shapes=state.params,
    )
    inputs = step.place(step.host_inputs(0))
    compiled = step._step.lower(  # pylint: disable=protected-access
      state, jnp.zeros((num_records, 74)), jnp.zeros((2,), jnp.uint32), inputs
    ).compile()
    temps.append(compiled.memory_analysis().temp_size_in_bytes)
    assert inputs[0].shape[0] * 64 >= expected  # the batch really is that large
  assert temps[0] == temps[1] > 0


def test_dpsgd_config_validates_the_clipping_method():
  dp = dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.1)
  assert dp.clipping == "ghost" and dp.microbatch_size == dpsgd.DEFAULT_CHUNK_SIZES["ghost"]
  vmap = dpsgd.DPSGDConfig(1.0, 1.0, 0.1, clipping="vmap")
  assert vmap.microbatch_size == dpsgd.DEFAULT_CHUNK_SIZES["vmap"]
  assert dpsgd.DPSGDConfig(1.0, 1.0, 0.1, chunk_size=8).microbatch_size == 8
  with pytest.raises(ValueError, match="clipping"):
    dpsgd.DPSGDConfig(1.0, 1.0, 0.1, clipping="fast")
  with pytest.raises(ValueError, match="clipping"):
    dpsgd.clipped_gradient_sum(lambda *a: None, 1.0, "fast")
