"""DP-SGD's bounded float sums: the float32 sum, its rounding bounded and paid for, rounded to an
integer grid and noised there (`lipdp.training.fixed_point`, 'bounded-float32')."""

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
from lipdp import rounding
from lipdp.privacy import report as report_lib
from lipdp.training import batching
from lipdp.training import dpsgd
from lipdp.training import fixed_point
from lipdp.training import ghost_clipping
from lipdp.training import loop
from lipdp.training import per_example

# (clip norm, parameters, noise multiplier, records, sampling rate, microbatch): MNIST's recipe,
# a table, a small data set with q = 1/2.
SETTINGS = [
  (1.0, 1_304_138, 0.9, 8_000, 0.032, 128),
  (30.0, 27_240, 1.5, 36_169, 0.01, 128),
  (1.0, 5_000, 0.6, 455, 0.5, 64),
]


@pytest.mark.parametrize("clip, d, z, n, q, chunk", SETTINGS)
def test_the_grid_pays_for_the_float_sums_rounding(clip, d, z, n, q, chunk):
  terms = chunk + batching.placed_chunks_cap(n, q, chunk) + 1 + 8
  grid = fixed_point.FixedPointGrid.choose(clip, d, z, n, q, float_sum_terms=terms)
  assert grid.fits() and grid.float_sum_terms == terms
  finer = fixed_point.FixedPointGrid(grid.exponent - 1, clip, d, z, grid.batch_cap, terms)
  assert not finer.fits()
  # C' >= C (1 + 2 gamma_m cap) + sqrt(d) Delta, exactly.
  frac = fractions.Fraction
  gamma = frac(terms) * frac(2.0**-24) / (1 - frac(terms) * frac(2.0**-24))
  assert frac(grid.float_sum_error) >= gamma
  rest = frac(grid.contribution_bound) - frac(clip) * (1 + 2 * gamma * grid.batch_cap)
  assert rest >= 0 and (rest / frac(grid.step)) ** 2 >= d
  # The headroom: a capped batch's entries, their rounding to the grid, and the noise.
  sigma = z * grid.contribution_bound / grid.step
  worst = grid.batch_cap * clip * (1 + float(gamma)) / grid.step + 0.5
  assert worst + sigma * randomness.FLOAT64_NORMAL_MAX + 1 < 2**31 - 1
  # What it costs: under 1% of noise for the MNIST recipe.
  if d == 1_304_138:
    assert 0.005 < grid.contribution_bound / clip - 1 < 0.01


def test_a_grid_whose_float32_values_would_overflow_is_refused():
  """A review's case: at C = 1e37 a grid fitted int32 at e = 100, but the float32 sum of a
  capped batch, and (S + N) Delta, passed float32's largest value."""
  for terms in (0, 100):
    with pytest.raises(ValueError, match="no fixed-point grid fits"):
      fixed_point.FixedPointGrid.choose(1e37, 1_000, 1.0, 1_000, 0.05, float_sum_terms=terms)


def _placed_float_sum(loss_fn, state, records, indices, exponent, rng):
  """The bounded float sum of the records at `indices` as `DPSGDStep` computes it
  (`train_state.placed_parts`, ghost clipping, rows only): the microbatches' float32 sums added
  in order, then rounded to the grid; int64 leaves."""
  clipped_sum = dpsgd.clipped_gradient_sum(loss_fn, 0.05, "ghost", rows_only=True)
  total = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
  for part in train_state.placed_parts(clipped_sum, state, records, indices, rng, True):
    total = jax.tree_util.tree_map(jnp.add, total, part)
  return jax.tree_util.tree_map(
    lambda s: np.asarray(fixed_point.quantize(s, exponent), np.int64), total
  )


def _norm(tree) -> float:
  return math.sqrt(
    sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x in jax.tree_util.tree_leaves(tree))
  )


def test_a_record_moves_the_rounded_sum_by_at_most_the_contribution_bound():
  """What the accounting needs: with and without record i, the rounded sums differ by at most
  C' (with i replaced, 2 C'), and by about i's own sum; the other rows' terms do not move (every
  record at its place, keyed by its index)."""
  model, records = toy.model(), toy.records(24)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  loss_fn = loop.vae_loss(model, toy.BLOCKS)
  rng = jax.random.key(7)
  d = sum(int(np.prod(np.shape(p))) for p in jax.tree_util.tree_leaves(state.params))
  grid = fixed_point.FixedPointGrid.choose(0.05, d, 1.0, 24, 1.0, float_sum_terms=8 + 24 + 2 + 8)

  def layout_sum(recs, ids):
    return _placed_float_sum(loss_fn, state, recs, ids, grid.exponent, rng)

  for n in train_state.neighbouring_sums(layout_sum, records):
    difference = jax.tree_util.tree_map(np.subtract, n.full, n.without)
    assert _norm(difference) * grid.step <= grid.contribution_bound
    assert _norm(n.alone) * grid.step > 0.5 * 0.05  # the record's gradient is clipped to C
    # The rounding moves the difference from i's own sum by grid steps, not by C.
    off = jax.tree_util.tree_map(np.subtract, difference, n.alone)
    assert _norm(off) * grid.step <= grid.contribution_bound - 0.05 + math.sqrt(d) * grid.step
    moved = jax.tree_util.tree_map(np.subtract, n.replaced, n.full)
    assert _norm(moved) * grid.step <= 2 * grid.contribution_bound


@pytest.mark.parametrize(
  "clipping",
  ["ghost", pytest.param("vmap", marks=pytest.mark.slow)],  # vmap: 5 s, same pieces
)
def test_the_bounded_step_is_the_rounded_float_sum_plus_noise_over_q_n(clipping):
  """One jitted DPSGDStep (every record, several microbatches, 2 devices) against the pieces:
  the float32 sum of the clipped gradients rounded to the grid, the integer noise, then
  (S + N) Delta / (q n). The pieces' float sum adds in another order than the step's (one
  matrix product against two devices and five microbatches), and the grid is finer than
  float32's spacing there, so the two differ by up to the rounding bound, not bit for bit."""
  dp = dpsgd.DPSGDConfig(
    0.5, 0.3, 1.0, chunk_size=8, clipping=clipping, sum_arithmetic="bounded-float32"
  )
  t = train_state.toy_step(dp)
  grid = t.step.grid
  assert grid.float_sum_terms == 8 + t.step.chunks_cap + 2 + 8
  assert float(t.stats["count"]) == 40
  keys = per_example.record_keys(t.model_rng, jnp.arange(40))
  clipped_sum = jax.jit(
    dpsgd.clipped_gradient_sum(t.loss_fn, dp.clip_norm, clipping, rows_only=True)
  )
  summed, _ = clipped_sum(
    t.state.params, t.state.model_state, jnp.asarray(t.records), np.ones(40), keys
  )
  rounded = toy.flat(
    jax.tree_util.tree_map(lambda s: fixed_point.quantize(s, grid.exponent), summed)
  )
  noise = fixed_point.grid_noise(t.state.params, grid, 9, 0)
  total = rounded.astype(np.int64) + toy.flat(noise)
  expected = total.astype(np.float32) * np.float32(grid.step) / np.float32(40.0)
  # Either float sum is within gamma_m sum_i |p_i| <= gamma_m 40 C of the exact sum, entrywise.
  order = 2 * grid.float_sum_error * 40 * dp.clip_norm + 2 * grid.step
  moved = toy.flat(t.new.params) - toy.flat(t.state.params)
  np.testing.assert_allclose(moved, -expected, rtol=0, atol=order / 40.0)
  assert np.max(np.abs(toy.flat(noise))) > 100  # the noise is there, in grid units


def test_a_layout_over_the_microbatch_cap_adds_noise_only():
  dp = dpsgd.DPSGDConfig(
    0.5, 0.3, 1.0, chunk_size=8, clipping="ghost", sum_arithmetic="bounded-float32"
  )
  step = train_state.toy_step(dp, run=False).step
  assert step.host_inputs(0)[0].num_chunks == 5 <= step.chunks_cap
  step.chunks_cap = 4
  batch, _ = step.host_inputs(0)
  assert batch.count == 0 and batch.num_chunks == 0


def _several_positions():
  model = toy.model()
  records = toy.records(6)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  return loop.vae_loss(model, toy.BLOCKS, noise_samples=3), state, jnp.asarray(records)


def test_rows_only_materialises_layers_with_several_positions():
  """Noise multiplicity puts several positions in the decoder's layers, where the Gram rule's
  terms are not bounded by C: with `rows_only` they are materialised, every term a row's."""
  loss_fn, state, records = _several_positions()
  key = jax.random.key(3)
  plan = ghost_clipping.build_plan(loss_fn, state.params, state.model_state, records[0], key)
  assert "gram" in {l.rule for l in plan.layers}
  for gram, expected in ((True, "gram"), (False, "materialise")):
    plans = []

    def terms(params, model_state, records, gram=gram, plans=plans):
      plan, _, found = ghost_clipping._all_terms(
        loss_fn, params, model_state, records, key, gram=gram
      )
      plans.append(plan)
      return [t.bound for t in found.values()]

    jax.make_jaxpr(terms)(state.params, state.model_state, records)  # traced, not run
    rules = {l.rule for l in plans[0].layers}
    assert expected in rules and (gram or "gram" not in rules)


def test_the_self_check_checks_the_rules_the_step_uses():
  loss_fn, state, records = _several_positions()
  shape = tuple(records.shape[1:])
  plan = ghost_clipping.self_check(loss_fn, state.params, state.model_state, shape, gram=False)
  assert "gram" in {l.rule for l in plan.layers}  # the plan as found; checked as materialised
  assert (ghost_clipping._signature(plan, state.params, state.model_state, shape) + (False,)) in (
    ghost_clipping._PASSED
  )


@pytest.mark.slow  # 8 s
def test_rows_only_gives_the_gram_rules_sum():
  loss_fn, state, records = _several_positions()
  key = jax.random.key(3)
  sums = []
  for rows_only in (False, True):
    clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loss_fn, 0.1, "ghost", rows_only=rows_only))
    summed, _ = clipped_sum(state.params, state.model_state, records, np.ones(6), key)
    sums.append(toy.flat(summed).astype(np.float64))
  assert np.max(np.abs(sums[0] - sums[1])) <= 1e-4 * np.max(np.abs(sums[0]))


def test_bounded_sums_need_a_fixed_clip_norm():
  with pytest.raises(ValueError, match="needs a fixed clip norm"):
    dpsgd.DPSGDConfig(
      1.0,
      1.0,
      0.1,
      sum_arithmetic="bounded-float32",
      clip_quantile=0.5,
      count_noise_std=5.0,
    )
  assert dpsgd.DPSGDConfig(1.0, 1.0, 0.1, sum_arithmetic="bounded-float32").on_grid


def test_the_event_and_report_name_bounded_float_sums():
  event = dpsgd.DPSGDConfig(1.0, 1.0, 0.1, sum_arithmetic="bounded-float32").event(100)
  assert event.as_dict()["sum_arithmetic"] == "bounded-float32"
  assert privacy.DPSGDEvent.from_dict(event.as_dict()) == event
  assert event.dp_event() == dpsgd.DPSGDConfig(1.0, 1.0, 0.1).event(100).dp_event()
  assert report_lib.CAVEAT_DPSGD_BOUNDED_FLOAT32 not in (
    report_lib.CAVEAT_DPSGD_FLOAT32,
    report_lib.CAVEAT_DPSGD_FIXED_POINT,
  )
  assert rounding.gamma(10, rounding.FLOAT32_UNIT) > 0
  assert per_example.row_keys(jax.random.key(0), 3).shape == (3,)


def test_the_step_on_the_grid_picks_its_microbatch_from_the_batch_unless_given():
  q = 0.032
  bounded = dpsgd.DPSGDConfig(1.0, 1.0, q, sum_arithmetic="bounded-float32")
  assert bounded.microbatch_for(8_000) == batching.placed_chunk_size(8_000, q, 128) == 16
  given = dpsgd.DPSGDConfig(1.0, 1.0, q, chunk_size=128, sum_arithmetic="bounded-float32")
  assert given.microbatch_for(8_000) == 128
  fixed = dpsgd.DPSGDConfig(1.0, 1.0, q, clipping="vmap", sum_arithmetic="fixed-point")
  assert fixed.microbatch_for(8_000) == 16
  assert fixed.microbatch_for(1_000) == 8
  plain = dpsgd.DPSGDConfig(1.0, 1.0, q)  # packed in order: the path's default
  assert plain.microbatch_for(8_000) == dpsgd.DEFAULT_CHUNK_SIZES["ghost"]
  # The step lays its batch out at that microbatch (40 toy records, q = 1: five places each).
  step = train_state.toy_step(
    dpsgd.DPSGDConfig(1.0, 1.0, 1.0, sum_arithmetic="bounded-float32"), run=False
  ).step
  assert step.chunk == batching.placed_chunk_size(40, 1.0, 128) == batching.MIN_PLACED_CHUNK
  # and counts its additions with it: the rounding bound's m (2 devices).
  cap = batching.placed_chunks_cap(40, 1.0, step.chunk)
  assert step.chunks_cap == cap and step.grid.float_sum_terms == step.chunk + cap + 2 + 8
