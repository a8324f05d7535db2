"""DP-SGD: per-example clipping, the noise on the clipped sum, Poisson batches, the noisy step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import toy
import train_state
from lipdp import randomness
from lipdp.training import batching
from lipdp.training import dpsgd
from lipdp.training import loop
from lipdp.training import per_example
from lipdp.training import sharding
from lipdp.training import steps as steps_lib


def test_dpsgd_clips_a_huge_gradient():
  model = toy.model()
  records = toy.records(8)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  clip = 0.5
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, toy.BLOCKS), clip))
  huge = records.copy()
  huge[0, :12] = 1e4  # far outside the domain: a huge per-example gradient
  mask = np.ones(8, np.float32)
  total, stats = clipped_sum(
    state.params, state.model_state, jnp.asarray(huge), mask, jax.random.key(2)
  )
  alone, _ = clipped_sum(
    state.params, state.model_state, jnp.asarray(huge), np.eye(8)[0], jax.random.key(2)
  )
  assert np.linalg.norm(toy.flat(alone).astype(np.float64)) <= clip
  assert np.linalg.norm(toy.flat(total)) <= 8 * clip * (1 + 1e-5)  # a float32 sum of 8
  assert float(stats["clipped_fraction_sum"]) >= 1
  # Masked-out rows contribute nothing.
  none, _ = clipped_sum(
    state.params, state.model_state, jnp.asarray(huge), np.zeros(8), jax.random.key(2)
  )
  assert np.all(toy.flat(none) == 0)


def test_every_clipped_contribution_is_at_most_c_exactly():
  """Each example's contribution, measured exactly (float64), never exceeds C.

  Clipping to exactly C in float32 overshoots C by ~1e-7 relative about half the time; the
  margin of `per_example_norms` makes the bound hold after rounding.
  """
  model = toy.model()
  records = toy.records(32)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  big = records.copy()
  big[:, :12] *= np.random.default_rng(0).uniform(1, 1e4, (32, 1)).astype(np.float32)
  masks = np.eye(32, dtype=np.float32)
  for clip in (0.3, 0.5, 0.7):
    clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, toy.BLOCKS), clip))
    for i in range(32):
      alone, _ = clipped_sum(
        state.params, state.model_state, jnp.asarray(big), masks[i], jax.random.key(i)
      )
      norm = np.linalg.norm(toy.flat(alone).astype(np.float64))
      assert clip * (1 - 1e-3) < norm <= clip  # clipped, to within the small margin


def test_norm_margin_covers_the_rounding_bound():
  grads = {"a": jnp.ones((2, 3000)), "b": jnp.ones((2, 10, 10))}
  norms, margin = per_example.per_example_norms(grads)
  np.testing.assert_allclose(norms, np.sqrt(3100.0), rtol=1e-6)
  # Blocks: 3 for "a" and 1 for "b"; m = gamma_{1024 + 4 + 1} + 8u in float32.
  u = 2.0**-24
  assert margin == pytest.approx(1029 * u / (1 - 1029 * u) + 8 * u)
  assert margin < 1e-4


def test_gradient_norms_are_each_records_exact_gradient_norm():
  """The diagnostic's norms (experiments/gradient_norms.py): chunked, each record's own key."""
  model = toy.model()
  records = toy.records(6)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  loss_fn = loop.vae_loss(model, toy.BLOCKS)
  key = jax.random.key(3)
  norms = per_example.gradient_norms(
    loss_fn, state.params, state.model_state, records, key, chunk_size=3
  )
  assert norms.shape == (6,) and norms.dtype == np.float64
  one_record_grad = jax.jit(
    jax.grad(lambda p, record, k: loss_fn(p, state.model_state, record[None], k)[0][0])
  )
  for i in range(6):
    start = i - i % 3
    keys = jax.random.split(jax.random.fold_in(key, start), 3)
    grad = one_record_grad(state.params, records[i], keys[i - start])
    expected = np.linalg.norm(toy.flat(grad).astype(np.float64))
    assert norms[i] == pytest.approx(expected, rel=1e-5)
  assert len(set(np.round(norms, 6))) == 6  # the records' norms differ: not one value repeated


def test_dpsgd_noise_is_added_to_the_sum_then_divided():
  model = toy.model()
  records = toy.records(100)
  dp = dpsgd.DPSGDConfig(noise_multiplier=2.0, clip_norm=0.25, sampling_rate=0.1)
  sgd = optax.sgd(1.0)
  state = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  noise = dpsgd.dpsgd_noise(state.params, dp, seed=5, step=3)
  flat_noise = toy.flat(noise)
  # N(0, (z C)^2) per coordinate, in float64 before storage: std z C = 0.5, and tails past the
  # 5.2 sigma where JAX's float32 sampler stops are reachable.
  n = flat_noise.size  # a few hundred parameters: allow 4 standard errors
  assert abs(np.std(flat_noise) - 0.5) < 4 * 0.5 / np.sqrt(2 * n)
  assert abs(np.mean(flat_noise)) < 4 * 0.5 / np.sqrt(n)
  np.testing.assert_array_equal(flat_noise, toy.flat(dpsgd.dpsgd_noise(state.params, dp, 5, 3)))
  assert not np.allclose(flat_noise, toy.flat(dpsgd.dpsgd_noise(state.params, dp, 5, 4)))
  update = jax.jit(
    steps_lib.noisy_update(
      loop.vae_loss(model, toy.BLOCKS), sgd, dp.sampling_rate * 100, jnp.asarray(records[:1])
    )
  )
  grad_sum = jax.tree_util.tree_map(jnp.ones_like, state.params)
  new = update(state, grad_sum, noise, jax.random.key(5))
  delta = toy.flat(new.params) - toy.flat(state.params)
  # SGD(lr=1) step = -(sum + noise) / (q n), q n = 10: the division comes after the noise.
  np.testing.assert_allclose(delta, -(1.0 + flat_noise) / 10.0, rtol=1e-5, atol=1e-6)


def test_float64_noise_reaches_past_the_float32_cutoff():
  float32_cutoff = float(np.max(np.abs(jax.random.normal(jax.random.key(0), (4_000_000,)))))
  assert float32_cutoff < 5.5  # why the privacy noise is not drawn by jax.random.normal
  rng = np.random.default_rng(0)
  largest = 0.0
  for _ in range(20):  # P(|xi| > 5.5) = 3.8e-8: about 0.4 expected per 1e7 draws
    draws = randomness.standard_normal(rng, (10_000_000,))
    assert draws.dtype == np.float64
    largest = max(largest, float(np.max(np.abs(draws))))
    if largest > 5.5:
      break
  assert largest > 5.5


def test_a_nan_gradient_contributes_nothing():
  model = toy.model()
  records = toy.records(4)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, toy.BLOCKS), 1.0))
  bad = records.copy()
  bad[0, 0] = np.nan
  with_nan, stats = clipped_sum(
    state.params, state.model_state, jnp.asarray(bad), np.ones(4), jax.random.key(2)
  )
  without, _ = clipped_sum(
    state.params, state.model_state, jnp.asarray(bad), np.array([0.0, 1, 1, 1]), jax.random.key(2)
  )
  assert np.all(np.isfinite(toy.flat(with_nan)))
  np.testing.assert_allclose(toy.flat(with_nan), toy.flat(without), rtol=1e-5, atol=1e-7)


def test_poisson_batches_are_exact_bernoulli_samples():
  sizes = [len(batching.poisson_batch_indices(1000, 0.05, 7, s)) for s in range(400)]
  assert abs(np.mean(sizes) - 50) < 1.5
  assert abs(np.var(sizes) - 1000 * 0.05 * 0.95) < 12
  assert len(set(sizes)) > 10


def test_dpsgd_step_is_the_clipped_sum_plus_noise_over_q_n():
  """One jitted DPSGDStep (several microbatches, a batch of every record) against the pieces:
  clip every example, add the float64-drawn noise to the sum, then divide by q n."""
  model, records = toy.model(), toy.records(40)
  dp = dpsgd.DPSGDConfig(noise_multiplier=0.5, clip_norm=0.3, sampling_rate=1.0, chunk_size=8)
  sgd = optax.sgd(1.0)
  mesh = sharding.data_mesh(jax.devices()[:2])
  state = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  loss_fn = loop.vae_loss(model, toy.BLOCKS)
  step = steps_lib.DPSGDStep(
    loss_fn,
    sgd,
    mesh,
    dp=dp,
    num_records=40,
    seed=9,
    sample_record=jnp.zeros((1, 15)),
    param_shapes=state.params,
  )
  host = step.host_inputs(0)
  assert host[0].count == 40 and host[0].num_chunks == 5  # every record, 5 microbatches
  run_key = randomness.key_from_seed(123)
  before = toy.flat(state.params)
  state = jax.tree_util.tree_map(np.asarray, state)  # host copy: the step donates its input
  new, stats = step.update(
    jax.device_put(state, sharding.replicated(mesh)),
    sharding.replicate(mesh, records),
    run_key,
    step.place(host),
  )
  assert float(stats["count"]) == 40
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, toy.BLOCKS), dp.clip_norm))
  rng = steps_lib.step_rng(run_key, 0, 1)
  expected = np.zeros_like(before)
  for c in range(5):
    part, _ = clipped_sum(
      state.params,
      state.model_state,
      jnp.asarray(records[8 * c : 8 * c + 8]),
      np.ones(8),
      jax.random.fold_in(rng, c),
    )
    expected += toy.flat(part)
  expected += toy.flat(dpsgd.dpsgd_noise(state.params, dp, 9, 0))
  np.testing.assert_allclose(toy.flat(new.params) - before, -expected / 40, rtol=2e-4, atol=1e-6)
