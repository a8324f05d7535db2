"""DP-SGD's fixed-point sums: the grid, the rounded gradients' norm, exact order-free sums, the
integer noise, and the step built from them."""

import fractions
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import toy
import train_state
from lipdp import privacy
from lipdp import randomness
from lipdp.privacy import report as report_lib
from lipdp.training import batching
from lipdp.training import dpsgd
from lipdp.training import fixed_point
from lipdp.training import loop

# (clip norm, parameters, noise multiplier, records, sampling rate): MNIST's recipe, a table, a
# small data set with q = 1/2, a clip norm that is no power of two, a large noise multiplier.
SETTINGS = [
  (1.0, 1_304_138, 0.9, 8_000, 0.032),
  (30.0, 27_240, 1.5, 36_169, 0.01),
  (1.0, 5_000, 0.6, 455, 0.5),
  (0.3, 1_000, 50.0, 100_000, 0.001),
]


@pytest.mark.parametrize("clip, d, z, n, q", SETTINGS)
def test_the_grid_is_the_finest_whose_sums_cannot_overflow(clip, d, z, n, q):
  grid = fixed_point.FixedPointGrid.choose(clip, d, z, n, q)
  assert grid.step == 2.0**grid.exponent and grid.fits()
  finer = fixed_point.FixedPointGrid(grid.exponent - 1, clip, d, z, grid.batch_cap)
  assert not finer.fits()
  # The headroom, redone by hand: a capped batch's coordinates plus the noise's range.
  sigma = z * grid.contribution_bound / grid.step
  worst = grid.batch_cap * (clip / grid.step + 0.5) + sigma * randomness.FLOAT64_NORMAL_MAX + 1
  assert worst < 2**31 - 1
  # C' >= C + sqrt(d) Delta / 2 exactly, and the noise std in grid units >= z C' / Delta.
  frac = fractions.Fraction
  half_steps = (frac(grid.contribution_bound) - frac(clip)) * 2 / frac(grid.step)
  assert half_steps >= 0 and half_steps**2 >= d
  assert frac(grid.noise_std_units) >= frac(z) * frac(grid.contribution_bound) / frac(grid.step)
  # The cap: about q n + 10 standard deviations, never above n.
  mean = q * n
  assert mean < grid.batch_cap <= n
  assert grid.batch_cap >= min(n, mean + 10 * math.sqrt(mean * (1 - q)))


def test_a_grid_that_cannot_fit_is_refused():
  with pytest.raises(ValueError, match="no fixed-point grid fits int32"):
    fixed_point.FixedPointGrid.choose(1.0, 10, 1e12, 100, 0.5)  # the noise alone overflows


def _norm_squared(q: np.ndarray) -> int:
  return int(np.sum(q.astype(object) ** 2))


@pytest.mark.parametrize("seed", range(3))
def test_a_rounded_gradient_stays_within_the_contribution_bound(seed):
  """|q Delta| <= C' exactly, and each coordinate moves by at most half a grid step, for
  clipped gradients at norm C, including coordinates exactly half-way between grid points."""
  clip, d = 1.0, 4_099
  grid = fixed_point.FixedPointGrid.choose(clip, d, 1.0, 1_000, 0.1)
  rng = np.random.default_rng(seed)
  cases = [rng.standard_normal(d), np.ones(d), np.eye(1, d)[0]]
  for raw in cases:
    v = (raw / np.linalg.norm(raw) * clip * (1 - 1e-6)).astype(np.float32)
    if seed == 0:  # every coordinate a half-way point: rounding moves each by exactly 1/2
      v = ((np.floor(v / grid.step) + 0.5) * grid.step).astype(np.float32)
      v *= np.float32(clip / np.linalg.norm(v.astype(np.float64)) * (1 - 1e-4))
      v = ((np.floor(v / grid.step) + 0.5) * grid.step).astype(np.float32)
    assert np.linalg.norm(v.astype(np.float64)) <= clip
    q = np.asarray(fixed_point.quantize(jnp.asarray(v), grid.exponent))
    assert q.dtype == np.int32
    exact = v.astype(np.float64) / grid.step  # exact: a power-of-two scaling
    assert np.max(np.abs(q - exact)) <= 0.5
    bound = fractions.Fraction(grid.contribution_bound) / fractions.Fraction(grid.step)
    assert _norm_squared(q) <= bound**2


def test_float32_sums_can_exceed_2c_and_integer_sums_cannot():
  """Two records: w, and v or -v (|v| = C = 1). The float32 sum w + v rounds up by half an ulp,
  so the neighbours' float32 sums lie more than 2C apart; their integer sums stay within 2C'."""
  k = 4
  d = 4**k  # every coordinate 2^-k: |v| = 1 exactly
  v = np.full(d, 2.0**-k, np.float32)
  w = np.full(d, (1 - 2.0**-24) * 2.0**-k, np.float32)
  assert np.linalg.norm(w.astype(np.float64)) < 1.0

  def float_sum(x):
    return np.asarray(jnp.sum(jnp.asarray(x), axis=0), np.float64)

  apart = np.linalg.norm(float_sum(np.stack([w, v])) - float_sum(np.stack([w, -v])))
  assert apart > 2.0  # 2 (1 + 2^-25): the float32 sum's sensitivity exceeds 2C
  grid = fixed_point.FixedPointGrid.choose(1.0, d, 1.0, 2, 1.0)

  def integer_sum(x):
    q = fixed_point.quantize(jnp.asarray(x), grid.exponent)
    return np.asarray(jnp.sum(q, axis=0, dtype=jnp.int32), np.int64)

  difference = integer_sum(np.stack([w, v])) - integer_sum(np.stack([w, -v]))
  bound = fractions.Fraction(grid.contribution_bound) / fractions.Fraction(grid.step)
  assert _norm_squared(difference) <= (2 * bound) ** 2


def test_the_integer_noise_is_the_floor_of_the_scaled_normal_plus_a_half():
  grid = fixed_point.FixedPointGrid.choose(1.0, 30_000, 0.8, 5_000, 0.05)
  shapes = {"a": np.zeros((100, 200)), "b": np.zeros((10_000,))}
  noise = fixed_point.grid_noise(shapes, grid, 5, 3)
  rng = randomness.numpy_rng(5, 3, batching.NOISE_STREAM)
  for key in ("a", "b"):  # the leaves' order in the tree: 'a', then 'b'
    x = randomness.standard_normal(rng, shapes[key].shape)
    expected = np.floor(grid.noise_std_units * x + 0.5)
    assert noise[key].dtype == np.int32
    np.testing.assert_array_equal(noise[key], expected)
    # Adding it to an integer sum is rounding the continuous Gaussian mechanism's output.
    s = np.arange(expected.size).reshape(expected.shape) - 7_000
    np.testing.assert_array_equal(s + noise[key], np.floor(s + grid.noise_std_units * x + 0.5))
  pooled = np.concatenate([noise["a"].ravel(), noise["b"].ravel()]) / grid.noise_std_units
  assert abs(pooled.mean()) < 0.05 and abs(pooled.std() - 1.0) < 0.03


def _layout_sum(loss_fn, state, records, indices, exponent, rng):
  """The fixed-point clipped sum of the records at `indices` as `DPSGDStep` computes it
  (`train_state.placed_parts`): int64 leaves."""
  clipped_sum = dpsgd.clipped_gradient_sum(loss_fn, 0.05, "vmap", grid_exponent=exponent)
  parts = train_state.placed_parts(clipped_sum, state, records, indices, rng, False)
  total = jax.tree_util.tree_map(lambda p: np.zeros(p.shape, np.int64), state.params)
  for part in parts:
    total = jax.tree_util.tree_map(lambda t, x: t + np.asarray(x), total, part)
  return total


def _leaves_equal(a, b):
  pairs = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
  return all(np.array_equal(x, y) for x, y in pairs)


def test_one_record_moves_the_integer_sum_by_exactly_its_own_integers():
  """What the accounting needs of the computed sum: with and without record i (and with i
  replaced), the batch's integer sums differ by exactly i's integers, computed with i alone in
  the batch. So no other row's integers depend on i's content or on whether i was sampled: the
  layout keeps every record at its place (`batching.place_by_index`), and the sums are exact."""
  model, records = toy.model(), toy.records(24)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  loss_fn = loop.vae_loss(model, toy.BLOCKS)
  rng = jax.random.key(7)
  exponent = fixed_point.FixedPointGrid.choose(0.05, 1_000, 1.0, 24, 1.0).exponent

  def layout_sum(recs, ids):
    return _layout_sum(loss_fn, state, recs, ids, exponent, rng)

  for n in train_state.neighbouring_sums(layout_sum, records, replaced_alone=True):
    difference = jax.tree_util.tree_map(np.subtract, n.full, n.without)
    assert _leaves_equal(difference, n.alone)
    assert any(np.any(x != 0) for x in jax.tree_util.tree_leaves(n.alone))
    # The neighbour: record i's content replaced.
    moved = jax.tree_util.tree_map(np.subtract, n.replaced, n.without)
    assert _leaves_equal(moved, n.replaced_alone)


def test_records_keep_their_place_whatever_the_batch_holds():
  rng = np.random.default_rng(0)
  for chunk in (1, 8, 64):
    indices = np.flatnonzero(rng.random(1_000) < 0.1)
    layout = batching.place_by_index(indices, chunk, minimum_chunks=3)
    rows, columns = np.nonzero(layout.indices >= 0)
    assert np.all(layout.indices[rows, columns] % chunk == columns)  # place = index mod chunk
    assert sorted(layout.indices[rows, columns]) == list(indices)  # each record once
    assert layout.count == len(indices) and layout.num_chunks == rows.max() + 1
    assert layout.indices.shape[0] >= max(3, layout.num_chunks)
    # Without one record, every other record keeps its place (its column).
    smaller = batching.place_by_index(np.delete(indices, 3), chunk)
    kept_rows, kept_columns = np.nonzero(smaller.indices >= 0)
    assert np.all(smaller.indices[kept_rows, kept_columns] % chunk == kept_columns)
    assert len(kept_rows) == len(indices) - 1
  empty = batching.place_by_index(np.zeros(0, np.int64), 8)
  assert empty.count == 0 and empty.num_chunks == 0 and np.all(empty.indices == -1)
  with pytest.raises(ValueError, match="distinct indices"):
    batching.place_by_index(np.asarray([3, 5, 3]), 8)


def _step(dp, records, state, sgd):
  return train_state.toy_dpsgd_step(toy.model(), toy.BLOCKS, records, dp, sgd, state)


def test_the_fixed_point_step_is_the_integer_sum_plus_noise_over_q_n():
  """One jitted fixed-point DPSGDStep (every record, several microbatches) against the pieces:
  each record's integers (keyed by its index), the integer noise, then (S + N) Delta / (q n);
  and next to the float step of the same seed, which draws the same normals."""
  dp = dpsgd.DPSGDConfig(0.5, 0.3, 1.0, chunk_size=8, clipping="vmap", sum_arithmetic="fixed-point")
  t = train_state.toy_step(dp)
  grid, state, records = t.step.grid, t.state, t.records
  assert float(t.stats["count"]) == 40
  before, new = toy.flat(state.params), t.new
  clipped_sum = jax.jit(
    dpsgd.clipped_gradient_sum(t.loss_fn, dp.clip_norm, "vmap", grid_exponent=grid.exponent)
  )
  ids = np.arange(40, dtype=np.int32)
  integers, _ = clipped_sum(
    state.params, state.model_state, jnp.asarray(records), np.ones(40), t.model_rng, record_ids=ids
  )
  noise = fixed_point.grid_noise(state.params, grid, 9, 0)
  total = toy.flat(integers).astype(np.int64) + toy.flat(noise)
  assert np.max(np.abs(total)) < 2**31
  expected = total.astype(np.float32) * np.float32(grid.step) / np.float32(40.0)
  np.testing.assert_allclose(toy.flat(new.params) - before, -expected, rtol=1e-5, atol=1e-7)
  # The float step of the same seed draws the same normals: z C X there, about z C' X here.
  float_dp = dpsgd.DPSGDConfig(0.5, 0.3, 1.0, chunk_size=8, clipping="vmap")
  float_noise = toy.flat(dpsgd.dpsgd_noise(state.params, float_dp, 9, 0)).astype(np.float64)
  scaled = float_noise * grid.contribution_bound / dp.clip_norm
  assert np.max(np.abs(toy.flat(noise) * grid.step - scaled)) <= grid.step * 0.51 + 1e-7 * np.max(
    np.abs(scaled)
  )


def test_a_batch_above_the_cap_adds_noise_only():
  model, records = toy.model(), toy.records(40)
  sgd = optax.sgd(1.0)
  state = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  dp = dpsgd.DPSGDConfig(0.5, 0.3, 1.0, chunk_size=8, clipping="vmap", sum_arithmetic="fixed-point")
  step, mesh = _step(dp, records, state, sgd)
  assert step.host_inputs(0)[0].count == 40  # q = 1: the whole data set, at the cap n
  step.grid = fixed_point.FixedPointGrid(
    step.grid.exponent, 0.3, step.grid.num_params, 0.5, batch_cap=39
  )
  host = step.host_inputs(0)
  assert host[0].count == 0
  before = toy.flat(state.params)
  new, stats = train_state.run_step(step, mesh, state, records, randomness.key_from_seed(1), host)
  assert float(stats["count"]) == 0
  noise = toy.flat(host[1]).astype(np.float32) * np.float32(step.grid.step) / np.float32(40.0)
  np.testing.assert_allclose(
    toy.flat(new.params) - before, -noise, rtol=1e-6, atol=1e-7
  )  # params rounding


@pytest.mark.parametrize(
  "overrides, match",
  [
    ({"clipping": "ghost"}, "needs the per-example gradients: clipping='vmap'"),
    (
      {"clipping": "vmap", "clip_quantile": 0.5, "count_noise_std": 5.0},
      "needs a fixed clip norm",
    ),
    ({"sum_arithmetic": "float64"}, "sum_arithmetic must be one of"),
  ],
)
def test_fixed_point_refuses_what_it_cannot_sum_exactly(overrides, match):
  settings = {"sum_arithmetic": "fixed-point", **overrides}
  with pytest.raises(ValueError, match=match):
    dpsgd.DPSGDConfig(1.0, 1.0, 0.1, **settings)


def test_the_event_and_report_name_the_sum_arithmetic():
  dp = dpsgd.DPSGDConfig(1.0, 1.0, 0.1, clipping="vmap", sum_arithmetic="fixed-point")
  event = dp.event(100)
  assert event.sum_arithmetic == "fixed-point"
  assert event.as_dict()["sum_arithmetic"] == "fixed-point"
  assert privacy.DPSGDEvent.from_dict(event.as_dict()) == event
  plain = dpsgd.DPSGDConfig(1.0, 1.0, 0.1).event(100)
  assert "sum_arithmetic" not in plain.as_dict()  # as the reports before it
  assert privacy.DPSGDEvent.from_dict(plain.as_dict()) == plain
  # The same accounting either way.
  assert event.dp_event() == plain.dp_event()
  with pytest.raises(ValueError, match="sum_arithmetic must be one of"):
    privacy.DPSGDEvent(1.0, 0.1, 10, sum_arithmetic="float16")
  assert report_lib.CAVEAT_DPSGD_FIXED_POINT != report_lib.CAVEAT_DPSGD_FLOAT32
