"""DP-SGD: per-example clipping, the noise on the clipped sum, Poisson batches, the noisy step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprs
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


def test_adaptive_clipping_is_one_dpsgd_step_of_the_accounted_multiplier():
  """Andrew et al. 2021, Theorem 1: each record contributes (clip_C(g), (b - 1/2) z_D C /
  sigma_b), of norm <= C' = C sqrt(1 + z_D^2 / (2 sigma_b)^2), under isotropic noise z_D C; that
  is DP-SGD with clip norm C' and multiplier z exactly when z_D C = z C'."""
  dp = dpsgd.DPSGDConfig(
    noise_multiplier=1.1, clip_norm=0.7, sampling_rate=0.1, clip_quantile=0.5, count_noise_std=3.0
  )
  z, z_d, sigma_b, c = 1.1, dp.gradient_noise_multiplier, 3.0, 0.7
  assert z_d > z
  worst = c * np.sqrt(1 + (0.5 * z_d / sigma_b) ** 2)  # |clip_C(g)| = C and |b - 1/2| = 1/2
  assert z_d * c == pytest.approx(z * worst, rel=1e-12)
  assert dp.event(100) == dpsgd.DPSGDConfig(1.1, 0.7, 0.1).event(100)  # accounted as before
  assert dpsgd.DPSGDConfig(1.1, 0.7, 0.1).gradient_noise_multiplier == 1.1
  with pytest.raises(ValueError, match="count_noise_std"):
    dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=0.5, count_noise_std=0.55)  # 2 sigma_b = z
  with pytest.raises(ValueError, match="clip_quantile"):
    dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=1.0, count_noise_std=3.0)
  with pytest.raises(ValueError, match="adaptive_noise"):
    dpsgd.adaptive_noise({"w": np.zeros(2)}, dpsgd.DPSGDConfig(1.1, 0.7, 0.1), 0, 0)


def _clipped_sum_by_hand(model, state, records, clip, run_key, chunk=8):
  """Step 0's clipped gradient sum over `records` in microbatches of `chunk`, as `DPSGDStep`
  lays them out (microbatch c uses fold_in(model noise key, c)): (flat sum, clipped count)."""
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, toy.BLOCKS), clip))
  rng = steps_lib.step_rng(run_key, 0, 1)
  total, clipped = 0.0, 0.0
  for c in range(len(records) // chunk):
    part, stats = clipped_sum(
      state.params,
      state.model_state,
      jnp.asarray(records[chunk * c : chunk * (c + 1)]),
      np.ones(chunk),
      jax.random.fold_in(rng, c),
    )
    total = total + toy.flat(part)
    clipped += float(stats["clipped_fraction_sum"])
  return total, clipped


def test_the_centred_count_moves_by_at_most_half_per_record():
  norms = jnp.asarray([0.1, 5.0, jnp.nan, jnp.inf, 0.2, 9.0])
  finite = jnp.isfinite(norms)
  mask = jnp.asarray([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # the last row is padding
  # +1/2 (unclipped), -1/2 (clipped), 0 (NaN), 0 (inf), +1/2, 0 (padding)
  assert float(per_example.centred_unclipped(norms, finite, mask, 1.0)) == 0.5
  for i in range(6):  # leaving any one row out moves the count by at most 1/2
    alone = per_example.centred_unclipped(norms, finite, mask * (jnp.arange(6) == i), 1.0)
    assert abs(float(alone)) <= 0.5
  dp = dpsgd.DPSGDConfig(1.0, 2.0, 0.1, clip_quantile=0.5, count_noise_std=5.0)
  assert float(
    dpsgd.next_clip_norm(jnp.float32(2e-6), jnp.float32(1e9), dp, 10.0)
  ) == pytest.approx(2e-6, rel=1e-6)
  assert float(
    dpsgd.next_clip_norm(jnp.float32(2e6), jnp.float32(-1e9), dp, 10.0)
  ) == pytest.approx(2e6, rel=1e-6)


def test_clip_norms_stay_at_or_above_the_underflow_floor():
  """Clip norms below MIN_CLIP_NORM are refused, and adaptive clipping's C_t never falls below
  it, also after its float32 rounding (which had put the floor at 9.99999997e-7)."""
  with pytest.raises(ValueError, match="clip_norm must be at least 1e-06"):
    dpsgd.DPSGDConfig(1.0, 5e-7, 0.1)
  for first in (1e-6, 0.3, 1.0):
    dp = dpsgd.DPSGDConfig(1.0, first, 0.1, clip_quantile=0.5, count_noise_std=5.0)
    lowest = dpsgd.next_clip_norm(jnp.float32(first), jnp.float32(1e9), dp, 10.0)
    assert float(lowest) >= dpsgd.MIN_CLIP_NORM


def _adaptive_step(model, records, dp, optimizer, state):
  return train_state.toy_dpsgd_step(model, toy.BLOCKS, records, dp, optimizer, state)


def _adaptive_dp(**overrides):
  """Adaptive clipping's settings for the step tests, with `overrides`."""
  settings = dict(
    noise_multiplier=0.5,
    clip_norm=99.0,  # the built-in C: never used, the state's C_t is
    sampling_rate=1.0,
    chunk_size=8,
    clip_quantile=0.3,
    count_noise_std=2.0,
  )
  return dpsgd.DPSGDConfig(**{**settings, **overrides})


def _one_adaptive_step(model, records, dp, clip_norm):
  """Step 0 of adaptive clipping with SGD(1) from clip norm(s) `clip_norm` (a scalar, or one per
  group): (the state before, as host arrays; the new state; the step's stats; the run key; the
  step)."""
  sgd = optax.sgd(1.0)
  fresh = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  state = steps_lib.AdaptiveClipTrainState.starting_at(fresh, 1.0).replace(
    clip_norm=jnp.asarray(clip_norm, jnp.float32)
  )
  step, mesh = _adaptive_step(model, records, dp, sgd, state)
  run_key = randomness.key_from_seed(123)
  state = jax.tree_util.tree_map(np.asarray, state)  # host copy: the step donates its input
  new, stats = step.update(
    jax.device_put(state, sharding.replicated(mesh)),
    sharding.replicate(mesh, records),
    run_key,
    step.place(step.host_inputs(0)),
  )
  return state, new, stats, run_key, step


def test_adaptive_clipping_step_is_the_pieces():
  """One adaptive step against the pieces: clip at C_t, noise z_D C_t on the sum, divide by q n;
  C_{t+1} = C_t exp(-eta (u / (q n) + 1/2 - gamma)) from the noisy centred count u."""
  model, records = toy.model(), toy.records(40)
  dp = _adaptive_dp()
  state, new, stats, run_key, _ = _one_adaptive_step(model, records, dp, np.float32(0.3))
  before = toy.flat(state.params)
  expected, clipped = _clipped_sum_by_hand(model, state, records, 0.3, run_key)
  unit, count_noise = dpsgd.adaptive_noise(state.params, dp, 9, 0)
  expected += toy.flat(unit) * dp.gradient_noise_multiplier * 0.3
  np.testing.assert_allclose(toy.flat(new.params) - before, -expected / 40, rtol=2e-4, atol=1e-6)
  assert float(stats["clip_norm"]) == pytest.approx(0.3)
  u = (40 - clipped) - 20 + float(count_noise)
  assert float(new.clip_norm) == pytest.approx(0.3 * np.exp(-0.2 * (u / 40 + 0.5 - 0.3)), rel=1e-5)


def _settling_dp(**overrides):
  """Adaptive clipping that settles: little noise, a small first clip norm, the 0.75 quantile
  (the weights are held still by `_settled_clip_norms`)."""
  settings = dict(noise_multiplier=0.01, clip_norm=0.05, clip_quantile=0.75, count_noise_std=0.01)
  return _adaptive_dp(**{**settings, **overrides})


def _settled_clip_norms(model, records, dp, num_steps):
  """Adaptive clipping's clip norm(s) after `num_steps` steps with the weights held still
  (learning rate 0), and the records' exact per-example norms: (norms, final clip norms)."""
  frozen = optax.sgd(0.0)
  fresh = train_state.create(model, frozen, jnp.asarray(records[:1]), jax.random.key(1))
  state = steps_lib.AdaptiveClipTrainState.starting_at(fresh, dp.clip_norm, dp.clip_norm_shape)
  norms = per_example.gradient_norms(
    loop.vae_loss(model, toy.BLOCKS), state.params, state.model_state, records, jax.random.key(0)
  )
  step, mesh = _adaptive_step(model, records, dp, frozen, state)
  state = jax.device_put(state, sharding.replicated(mesh))
  device_records = sharding.replicate(mesh, records)
  run_key = randomness.key_from_seed(5)
  for t in range(num_steps):
    state, _ = step.update(state, device_records, run_key, step.place(step.host_inputs(t)))
  return norms, np.asarray(state.clip_norm)


def test_adaptive_clip_norm_settles_at_its_quantile():
  """With the weights held still (learning rate 0) and little noise, C_t settles where about
  gamma of the per-example norms lie below it."""
  model, records = toy.model(), toy.records(40)
  dp = _settling_dp(chunk_size=40)
  norms, final = _settled_clip_norms(model, records, dp, num_steps=150)
  below = float(np.mean(norms <= float(final)))
  assert 0.6 <= below <= 0.9, (below, float(final), np.quantile(norms, [0.25, 0.75]))


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
  state = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  step, mesh = train_state.toy_dpsgd_step(model, toy.BLOCKS, records, dp, sgd, state)
  host = step.host_inputs(0)
  assert host[0].count == 40 and host[0].num_chunks == 5  # every record, 5 microbatches
  run_key = randomness.key_from_seed(123)
  before = toy.flat(state.params)
  state = jax.tree_util.tree_map(np.asarray, state)  # host copy: the step donates its input
  new, stats = train_state.run_step(step, mesh, state, records, run_key, host)
  assert float(stats["count"]) == 40
  expected, _ = _clipped_sum_by_hand(model, state, records, dp.clip_norm, run_key)
  expected += toy.flat(dpsgd.dpsgd_noise(state.params, dp, 9, 0))
  np.testing.assert_allclose(toy.flat(new.params) - before, -expected / 40, rtol=2e-4, atol=1e-6)


# --- Per-group adaptive clipping (DPSGD-F) ------------------------------------------------------

GROUPS = (12, 15)  # toy.BLOCKS' label block: three groups


def test_per_group_clipping_is_one_dpsgd_step_of_the_accounted_multiplier():
  """Each record contributes (clip_{C_g}(g), (b - c) e_g z_D C_max / sigma_b): one non-zero
  count coordinate of size <= r = max(c, 1 - c), c the count's centre (gamma to 1/256),
  whatever the group, so the vector's norm is <= C_max sqrt(1 + (r z_D / sigma_b)^2) under
  isotropic noise z_D C_max: DP-SGD with multiplier z exactly when z_D C_max = z times that
  norm."""
  for quantile, centre in ((0.5, 0.5), (0.75, 0.75), (0.2, 51 / 256), (0.9, 230 / 256)):
    dp = dpsgd.DPSGDConfig(
      1.1, 0.7, 0.1, clip_quantile=quantile, count_noise_std=3.0, clip_groups=GROUPS
    )
    r = max(centre, 1 - centre)
    assert dp.count_centre == centre and dp.count_sensitivity == r and dp.num_clip_groups == 3
    z_d, c_max = dp.gradient_noise_multiplier, 0.7
    worst = c_max * np.sqrt(1 + (r * z_d / 3.0) ** 2)
    assert z_d * c_max == pytest.approx(1.1 * worst, rel=1e-12)
    assert dp.event(100) == dpsgd.DPSGDConfig(1.1, 0.7, 0.1).event(100)  # accounted as before
  # One group centres at 1/2 whatever gamma, as Andrew et al.'s count does.
  assert (
    dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=0.9, count_noise_std=3.0).count_centre == 0.5
  )
  # At the median the grouped count moves by 1/2 per record, as the ungrouped one does.
  one = dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=0.5, count_noise_std=3.0)
  grouped = dpsgd.DPSGDConfig(
    1.1, 0.7, 0.1, clip_quantile=0.5, count_noise_std=3.0, clip_groups=GROUPS
  )
  assert grouped.gradient_noise_multiplier == pytest.approx(one.gradient_noise_multiplier)
  # sigma_b must exceed r z: 0.8 > 0.5 * 1.1 passes alone, not per group at gamma 0.75.
  dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=0.75, count_noise_std=0.8)
  with pytest.raises(ValueError, match="count_noise_std > 0.75 noise_multiplier"):
    dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=0.75, count_noise_std=0.8, clip_groups=GROUPS)
  with pytest.raises(ValueError, match="clip_groups needs clip_quantile"):
    dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_groups=GROUPS)
  for extreme in (0.001, 0.999):  # a centre of 0 or 1 would drive every clip norm to its limit
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
      dpsgd.DPSGDConfig(
        1.1, 0.7, 0.1, clip_quantile=extreme, count_noise_std=3.0, clip_groups=GROUPS
      )
  dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=0.001, count_noise_std=3.0)  # one group: fine
  for bad in ((12, 13), (15, 12), [12, 15], (-1, 3), (12.0, 15)):
    with pytest.raises(ValueError, match="clip_groups must be"):
      dpsgd.DPSGDConfig(1.1, 0.7, 0.1, clip_quantile=0.5, count_noise_std=3.0, clip_groups=bad)


def test_a_count_noise_at_the_edge_is_refused_not_made_complex():
  """sigma_b one float step above r z passes sigma_b > r z, but z^-2 - (r / sigma_b)^2 can round
  to zero or below, where z_D would be infinite or complex (and complex noise would be dropped
  to its real part: no noise at all). Such settings are refused (found by a review), and every
  accepted one has a finite real z_D >= z."""
  rng = np.random.default_rng(0)
  refused_at_the_edge = 0
  for _ in range(2000):
    z, quantile = float(rng.uniform(0.3, 5.0)), float(rng.uniform(0.05, 0.95))
    r = dpsgd.count_sensitivity(quantile, grouped=True)
    sigma_b = float(np.nextafter(r * z, np.inf))
    assert dpsgd.count_noise_fits(z, sigma_b, r)
    try:
      dp = dpsgd.DPSGDConfig(
        z, 0.7, 0.1, clip_quantile=quantile, count_noise_std=sigma_b, clip_groups=GROUPS
      )
    except ValueError as error:
      assert "is finite after rounding" in str(error)
      refused_at_the_edge += 1
      continue
    z_d = dp.gradient_noise_multiplier
    assert isinstance(z_d, float) and np.isfinite(z_d) and z_d >= z
  assert refused_at_the_edge > 0  # the edge was reached


def test_every_record_is_in_exactly_one_group():
  records = np.zeros((5, 15), np.float32)
  records[0, 13] = 1.0  # a one-hot
  records[1, 12:15] = (0.2, 0.9, 0.9)  # a tie: the first
  records[2, 12:15] = (-5.0, -1.0, -3.0)  # not in any domain: still one group
  records[3, 12:15] = np.nan  # NaNs: the first NaN
  records[4, :12] = 7.0  # other coordinates do not matter: an all-zero block, a tie
  groups = np.asarray(dpsgd.record_groups(jnp.asarray(records), GROUPS))
  assert groups.shape == (5,) and groups.dtype == np.int32
  np.testing.assert_array_equal(groups, [1, 1, 1, 0, 0])


def test_the_per_group_count_moves_one_group_by_at_most_r():
  norms = jnp.asarray([0.1, 5.0, jnp.nan, 0.2, 9.0, 0.3])
  finite = jnp.isfinite(norms)
  mask = jnp.asarray([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # the last row is padding
  groups = jnp.asarray([0, 0, 1, 2, 2, 1], jnp.int32)
  clip, num_groups = per_example.row_clip_norms(jnp.asarray([1.0, 1.0, 10.0]), groups)
  np.testing.assert_array_equal(clip, [1.0, 1.0, 1.0, 10.0, 10.0, 1.0])
  assert num_groups == 3
  with pytest.raises(ValueError, match="one clip norm per group"):
    per_example.row_clip_norms(jnp.float32(1.0), groups)
  centre = 0.75
  counts = per_example.centred_unclipped(norms, finite, mask, clip, centre, groups, 3)
  # group 0: +0.25 (unclipped) - 0.75 (clipped); group 1: NaN and padding, 0; group 2: two
  # unclipped at C = 10, +0.25 each.
  np.testing.assert_allclose(counts, [-0.5, 0.0, 0.5])
  for i in range(6):  # any one row alone moves one group's count, by at most max(c, 1 - c)
    alone = per_example.centred_unclipped(
      norms, finite, mask * (jnp.arange(6) == i), clip, centre, groups, 3
    )
    assert np.count_nonzero(alone) <= 1 and np.max(np.abs(alone)) <= 0.75


def test_one_record_moves_the_per_group_count_by_exactly_its_term():
  """At a centre that is a multiple of 1/256 (gamma 0.9 becomes 230/256) the per-group count of
  a large batch is exact in float32: leaving any record out moves it by exactly b - c, never
  more (at gamma 0.9 itself, float32 sums of 0.1 and -0.9 drift by up to 4e-4 at this size)."""
  rng = np.random.default_rng(0)
  rows = 20000
  norms = jnp.asarray(rng.exponential(1.0, rows), jnp.float32)
  finite, mask = jnp.isfinite(norms), jnp.ones(rows, jnp.float32)
  groups = jnp.asarray(rng.integers(0, 4, rows), jnp.int32)
  clip, _ = per_example.row_clip_norms(jnp.asarray([0.5, 1.0, 2.0, 4.0], jnp.float32), groups)
  centre = dpsgd.count_centre(0.9, grouped=True)
  count = jax.jit(per_example.centred_unclipped, static_argnums=(4, 6))
  full = np.asarray(count(norms, finite, mask, clip, centre, groups, 4), np.float64)
  unclipped = np.asarray(norms <= clip)
  for i in rng.choice(rows, 20, replace=False):
    without = np.asarray(count(norms, finite, mask.at[i].set(0.0), clip, centre, groups, 4))
    moved = full - without.astype(np.float64)
    expected = np.zeros(4)
    expected[int(groups[i])] = float(unclipped[i]) - centre
    np.testing.assert_array_equal(moved, expected)


@pytest.mark.parametrize("clipping", ["vmap", "ghost"])
def test_per_group_step_is_the_pieces(clipping):
  """One per-group step against the pieces: each record clipped at its group's C_{t,g}, noise
  z_D max_g C_{t,g} on the sum, divided by q n; C_{t+1,g} = C_{t,g} exp(-eta u_g / (q n)) from
  each group's noisy count u_g, centred at c (gamma to 1/256)."""
  model, records = toy.model(), toy.records(40)
  dp = _adaptive_dp(clipping=clipping, clip_groups=GROUPS)
  clips = np.asarray([0.05, 0.3, 0.15], np.float32)
  state, new, stats, run_key, step = _one_adaptive_step(model, records, dp, clips)
  before = toy.flat(state.params)
  # By hand: the vmap path, one group at a time (the other rows masked out), at its C.
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, toy.BLOCKS), 1.0))
  rng = steps_lib.step_rng(run_key, 0, 1)
  labels = records[:, 12:15].argmax(axis=1)
  assert len(set(labels)) == 3
  expected, unclipped = 0.0, np.zeros(3)
  for c in range(5):
    rows = slice(8 * c, 8 * (c + 1))
    for g in range(3):
      part, part_stats = clipped_sum(
        state.params,
        state.model_state,
        jnp.asarray(records[rows]),
        (labels[rows] == g).astype(np.float32),
        jax.random.fold_in(rng, c),
        float(clips[g]),
      )
      expected = expected + toy.flat(part)
      unclipped[g] += float(part_stats["count"] - part_stats["clipped_fraction_sum"])
  unit, count_noise = dpsgd.adaptive_noise(state.params, dp, 9, 0)
  assert count_noise.shape == (3,)
  expected += toy.flat(unit) * dp.gradient_noise_multiplier * clips.max()
  np.testing.assert_allclose(toy.flat(new.params) - before, -expected / 40, rtol=2e-4, atol=1e-6)
  u = unclipped - dp.count_centre * np.bincount(labels, minlength=3) + count_noise
  np.testing.assert_allclose(new.clip_norm, clips * np.exp(-0.2 * u / 40), rtol=1e-5)
  np.testing.assert_allclose(stats["clip_norm"], clips)
  logged = step.summarize([jax.tree_util.tree_map(np.asarray, stats)])
  assert logged["clip_norm"] == pytest.approx(0.3)
  assert [logged[f"clip_norm_group_{g}"] for g in range(3)] == pytest.approx(clips)


def test_per_group_clip_norms_settle_at_each_groups_quantile():
  """With the weights held still and little noise, each C_{t,g} settles where about gamma of its
  own group's norms lie below it, also for a group whose gradients are far larger (one clip norm
  for all would clip that group far more often than the others)."""
  model, records = toy.model(), toy.records(60)
  labels = records[:, 12:15].argmax(axis=1)
  records[labels == 2, :12] *= 4.0  # group 2: larger reconstruction errors, larger gradients
  dp = _settling_dp(chunk_size=60, clip_groups=GROUPS, clip_learning_rate=0.6)
  norms, final = _settled_clip_norms(model, records, dp, num_steps=200)
  assert np.median(norms[labels == 2]) > 2 * np.median(norms[labels != 2])
  for g in range(3):
    below = float(np.mean(norms[labels == g] <= final[g]))
    assert 0.55 <= below <= 0.95, (g, below, final)
  assert final[2] > 2 * max(final[0], final[1])


def test_clipping_runs_its_products_at_the_highest_precision():
  """Under a platform's reduced default matmul precision (TF32 on recent GPUs, simulated here
  by JAX's bfloat16 setting, which the CPU ignores), the clipped sum of the vmap path is a
  product at the highest precision: rounded at the default, a clipped gradient could exceed C
  by more than the margin (found by a review). The forward and backward passes keep the
  default. (The ghost path: tests/training/test_ghost_clipping.py.)"""
  model = toy.model()
  records = jnp.asarray(toy.records(8))
  state = train_state.create(model, optax.sgd(1.0), records[:1], jax.random.key(1))
  loss_fn = loop.vae_loss(model, toy.BLOCKS)
  clipped_sum = dpsgd.clipped_gradient_sum(loss_fn, 0.5, "vmap")
  keys = jax.random.split(jax.random.key(0), 8)
  gradients_alone = lambda p, s: jax.vmap(
    jax.value_and_grad(per_example.record_loss(loss_fn)), in_axes=(None, None, 0, 0)
  )(p, s, records, keys)
  added = jaxprs.products_added_at_the_highest_precision(
    lambda p, s: clipped_sum(p, s, records, jnp.ones(8), jax.random.key(0)),
    gradients_alone,
    state.params,
    state.model_state,
  )
  assert added == len(jax.tree_util.tree_leaves(state.params))  # one per parameter


# --- The mesh check -------------------------------------------------------------------------------


def _conv_model():
  """A small VAE with a convolutional decoder (8x8 images and a 3-way label)."""
  from lipdp.data import Block  # pylint: disable=g-import-not-at-top
  from lipdp.models import decoders  # pylint: disable=g-import-not-at-top
  from lipdp.models import vae as vae_lib  # pylint: disable=g-import-not-at-top

  blocks = (Block("image", "image", 0, 64), Block("label", "categorical", 64, 67))
  model = vae_lib.LipschitzVAE(
    encoder_mean=nn_dense(4),
    decoder=decoders.ConvDecoder((8, 8, 1), 67, channels=4, hidden=16),
    sigma=0.5,
  )
  return model, blocks


def nn_dense(features):
  import flax.linen as fnn  # pylint: disable=g-import-not-at-top

  return fnn.Dense(features)


def _conv_step(clipping, devices):
  """A DP-SGD step of the small convolutional VAE on `devices`: (step, mesh, state, records)."""
  model, blocks = _conv_model()
  rng = np.random.default_rng(0)
  records = np.concatenate([rng.random((16, 64)), np.eye(3)[rng.integers(0, 3, 16)]], 1)
  records = records.astype(np.float32)
  sgd = optax.sgd(1.0)
  state = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  mesh = sharding.data_mesh(jax.devices()[:devices])
  step = steps_lib.DPSGDStep(
    loop.vae_loss(model, blocks),
    sgd,
    mesh,
    dp=dpsgd.DPSGDConfig(1.0, 0.1, 0.5, chunk_size=8, clipping=clipping),
    num_records=len(records),
    seed=3,
    sample_record=jnp.zeros((1, records.shape[1])),
    param_shapes=state.params,
  )
  return step, mesh, state, records


@pytest.mark.parametrize(
  "clipping",
  ["ghost", pytest.param("vmap", marks=pytest.mark.slow)],  # vmap: 5 s, same check
)
def test_a_convolutional_step_on_a_mesh_equals_one_devices(clipping):
  """Each device computes its own rows of a microbatch unpartitioned (`mesh_clipped_sum`), so a
  2-device step of a convolutional VAE updates the weights as one device does, to float
  rounding. (Left to XLA's partitioner, on jax 0.10.2's CPU mesh, the per-example gradients of
  a convolution came out zero on the second device, found by a review; such steps were
  refused.)"""
  run_key = randomness.key_from_seed(1)
  updated = {}
  for devices in (1, 2):
    step, mesh, state, records = _conv_step(clipping, devices)
    new_state, metrics = train_state.run_step(
      step, mesh, state, records, run_key, step.host_inputs(0)
    )
    assert float(metrics["count"]) > 0
    updated[devices] = np.concatenate(
      [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(new_state.params)]
    )
    before = np.concatenate(
      [np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(state.params)]
    )
  moved = np.max(np.abs(updated[1] - before))
  assert moved > 1e-3  # the step did move the weights
  assert np.max(np.abs(updated[2] - updated[1])) <= 1e-5 * moved


def test_the_mesh_check_refuses_a_mesh_sum_that_differs_from_one_devices(monkeypatch):
  """The mesh check stays as the guard: a mesh sum 1.5 times one device's is refused before
  the first step."""
  split = steps_lib.mesh_clipped_sum

  def wrong(clipped_sum, mesh):
    on_mesh = split(clipped_sum, mesh)

    def scaled(*args, **kwargs):
      summed, stats = on_mesh(*args, **kwargs)
      return jax.tree_util.tree_map(lambda x: 1.5 * x, summed), stats

    return scaled

  monkeypatch.setattr(steps_lib, "mesh_clipped_sum", wrong)
  monkeypatch.setattr(steps_lib, "_MESH_PASSED", set())  # another test's pass would skip it
  step, mesh, state, records = _conv_step("ghost", 2)
  with pytest.raises(steps_lib.MeshCheckError, match="differs from the same sum on one device"):
    train_state.run_step(
      step, mesh, state, records, randomness.key_from_seed(1), step.host_inputs(0)
    )
