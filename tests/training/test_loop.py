"""Training: the pure step, data parallelism, DP-SGD clipping and noise, kill-and-resume."""

import json
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import train_state
from lipdp import latent_release as synth_lib
from lipdp import nn as lnn
from lipdp import randomness
from lipdp.data import Block
from lipdp.models import decoders
from lipdp.models import vae as vae_lib
from lipdp.nn import bjorck
from lipdp.training import batching
from lipdp.training import dpsgd
from lipdp.training import loop
from lipdp.training import optim
from lipdp.training import sharding
from lipdp.training import steps as steps_lib

BLOCKS = (Block("image", "image", 0, 12), Block("label", "categorical", 12, 15))


def _records(n=64, seed=0):
  """Three classes, each with its own pixel pattern plus a little noise."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n)
  patterns = np.random.default_rng(99).random((3, 12))
  image = np.clip(patterns[labels] + 0.05 * rng.standard_normal((n, 12)), 0, 1)
  label = np.eye(3, dtype=np.float32)[labels]
  return np.concatenate([image, label], axis=1).astype(np.float32)


def _model(sigma=1.0):
  return vae_lib.LipschitzVAE(
    encoder_mean=nn.Dense(4), decoder=decoders.MLPDecoder((16,), 15), sigma=sigma
  )


def _flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def test_multi_device_step_matches_single_device():
  assert jax.device_count() >= 4, "tests/conftest.py should force 4 host devices"
  config = loop.TrainConfig(num_steps=5, batch_size=16, seed=3, progress_bar=False)
  records = _records()
  one = loop.train(_model(), records, BLOCKS, config, devices=jax.devices()[:1])
  four = loop.train(_model(), records, BLOCKS, config, devices=jax.devices()[:4])
  np.testing.assert_allclose(
    _flat(one.state.params), _flat(four.state.params), rtol=1e-5, atol=1e-6
  )
  assert not np.allclose(
    _flat(one.state.params),
    _flat(
      loop.train(
        _model(),
        records,
        BLOCKS,
        loop.TrainConfig(num_steps=5, batch_size=16, seed=4, progress_bar=False),
      ).state.params
    ),
  )


def test_training_lowers_the_loss(tmp_path):
  config = loop.TrainConfig(
    num_steps=150, batch_size=32, seed=0, log_every=25, learning_rate=3e-3, progress_bar=False
  )
  loop.train(_model(), _records(256), BLOCKS, config, workdir=str(tmp_path))
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [l["step"] for l in lines] == [25, 50, 75, 100, 125, 150]
  assert lines[-1]["loss"] < lines[0]["loss"] - 1.0


@pytest.mark.parametrize("average_decay", [0.0, 0.9])
def test_kill_and_resume_matches_uninterrupted_run(tmp_path, average_decay):
  """Also with a parameter average: it lives in the optimiser state, so checkpoints keep it."""
  config = loop.TrainConfig(
    num_steps=40,
    batch_size=16,
    seed=11,
    checkpoint_every=10,
    log_every=5,
    progress_bar=False,
    average_decay=average_decay,
  )
  records = _records()
  full = loop.train(_model(), records, BLOCKS, config, workdir=str(tmp_path / "full"))
  # "Killed" after 27 steps: the last checkpoint is at step 20 (also 27 since the run ended
  # there), so drop step 27's to simulate a crash between checkpoints.
  killed_dir = tmp_path / "killed"
  loop.train(_model(), records, BLOCKS, config, workdir=str(killed_dir), stop_after=27)
  shutil.rmtree(killed_dir / "checkpoints" / "27")
  resumed = loop.train(_model(), records, BLOCKS, config, workdir=str(killed_dir))
  assert resumed.resumed_from == 20
  np.testing.assert_array_equal(_flat(full.state.params), _flat(resumed.state.params))
  steps = [json.loads(l)["step"] for l in open(killed_dir / "metrics.jsonl")]
  assert steps == sorted(set(steps)) and steps[-1] == 40


def test_unseeded_training_draws_a_secret_seed(tmp_path):
  config = loop.TrainConfig(num_steps=2, batch_size=16, progress_bar=False)
  a = loop.train(_model(), _records(), BLOCKS, config)
  b = loop.train(_model(), _records(), BLOCKS, config)
  assert not a.seeded_by_user and a.seed != b.seed


def test_dpsgd_clips_a_huge_gradient():
  model = _model()
  records = _records(8)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  clip = 0.5
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, BLOCKS), clip))
  huge = records.copy()
  huge[0, :12] = 1e4  # far outside the domain: a huge per-example gradient
  mask = np.ones(8, np.float32)
  total, stats = clipped_sum(
    state.params, state.model_state, jnp.asarray(huge), mask, jax.random.key(2)
  )
  alone, _ = clipped_sum(
    state.params, state.model_state, jnp.asarray(huge), np.eye(8)[0], jax.random.key(2)
  )
  assert np.linalg.norm(_flat(alone).astype(np.float64)) <= clip
  assert np.linalg.norm(_flat(total)) <= 8 * clip * (1 + 1e-5)  # a float32 sum of 8
  assert float(stats["clipped_fraction_sum"]) >= 1
  # Masked-out rows contribute nothing.
  none, _ = clipped_sum(
    state.params, state.model_state, jnp.asarray(huge), np.zeros(8), jax.random.key(2)
  )
  assert np.all(_flat(none) == 0)


def test_every_clipped_contribution_is_at_most_c_exactly():
  """Each example's contribution, measured exactly (float64), never exceeds C.

  Clipping to exactly C in float32 overshoots C by ~1e-7 relative about half the time; the
  margin of `per_example_norms` makes the bound hold after rounding.
  """
  model = _model()
  records = _records(32)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  big = records.copy()
  big[:, :12] *= np.random.default_rng(0).uniform(1, 1e4, (32, 1)).astype(np.float32)
  masks = np.eye(32, dtype=np.float32)
  for clip in (0.3, 0.5, 0.7):
    clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, BLOCKS), clip))
    for i in range(32):
      alone, _ = clipped_sum(
        state.params, state.model_state, jnp.asarray(big), masks[i], jax.random.key(i)
      )
      norm = np.linalg.norm(_flat(alone).astype(np.float64))
      assert clip * (1 - 1e-3) < norm <= clip  # clipped, to within the small margin


def test_norm_margin_covers_the_rounding_bound():
  grads = {"a": jnp.ones((2, 3000)), "b": jnp.ones((2, 10, 10))}
  norms, margin = dpsgd.per_example_norms(grads)
  np.testing.assert_allclose(norms, np.sqrt(3100.0), rtol=1e-6)
  # Blocks: 3 for "a" and 1 for "b"; m = gamma_{1024 + 4 + 1} + 8u in float32.
  u = 2.0**-24
  assert margin == pytest.approx(1029 * u / (1 - 1029 * u) + 8 * u)
  assert margin < 1e-4


def test_dpsgd_noise_is_added_to_the_sum_then_divided():
  model = _model()
  records = _records(100)
  dp = dpsgd.DPSGDConfig(noise_multiplier=2.0, clip_norm=0.25, sampling_rate=0.1)
  sgd = optax.sgd(1.0)
  state = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  noise = dpsgd.dpsgd_noise(state.params, dp, seed=5, step=3)
  flat_noise = _flat(noise)
  # N(0, (z C)^2) per coordinate, in float64 before storage: std z C = 0.5, and tails past the
  # 5.2 sigma where JAX's float32 sampler stops are reachable.
  n = flat_noise.size  # a few hundred parameters: allow 4 standard errors
  assert abs(np.std(flat_noise) - 0.5) < 4 * 0.5 / np.sqrt(2 * n)
  assert abs(np.mean(flat_noise)) < 4 * 0.5 / np.sqrt(n)
  np.testing.assert_array_equal(flat_noise, _flat(dpsgd.dpsgd_noise(state.params, dp, 5, 3)))
  assert not np.allclose(flat_noise, _flat(dpsgd.dpsgd_noise(state.params, dp, 5, 4)))
  update = jax.jit(
    steps_lib.noisy_update(
      loop.vae_loss(model, BLOCKS), sgd, dp.sampling_rate * 100, jnp.asarray(records[:1])
    )
  )
  grad_sum = jax.tree_util.tree_map(jnp.ones_like, state.params)
  new = update(state, grad_sum, noise, jax.random.key(5))
  delta = _flat(new.params) - _flat(state.params)
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
  model = _model()
  records = _records(4)
  state = train_state.create(model, optax.sgd(1.0), jnp.asarray(records[:1]), jax.random.key(1))
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, BLOCKS), 1.0))
  bad = records.copy()
  bad[0, 0] = np.nan
  with_nan, stats = clipped_sum(
    state.params, state.model_state, jnp.asarray(bad), np.ones(4), jax.random.key(2)
  )
  without, _ = clipped_sum(
    state.params, state.model_state, jnp.asarray(bad), np.array([0.0, 1, 1, 1]), jax.random.key(2)
  )
  assert np.all(np.isfinite(_flat(with_nan)))
  np.testing.assert_allclose(_flat(with_nan), _flat(without), rtol=1e-5, atol=1e-7)


def test_completed_training_forgets_its_secret_seed(tmp_path):
  config = loop.TrainConfig(num_steps=4, batch_size=16, checkpoint_every=2, progress_bar=False)
  loop.train(_model(), _records(), BLOCKS, config, workdir=str(tmp_path), stop_after=2)
  assert (tmp_path / "train_seed.json").exists()  # needed to resume
  loop.train(_model(), _records(), BLOCKS, config, workdir=str(tmp_path))
  assert not (tmp_path / "train_seed.json").exists()


def test_poisson_batches_are_exact_bernoulli_samples():
  sizes = [len(batching.poisson_batch_indices(1000, 0.05, 7, s)) for s in range(400)]
  assert abs(np.mean(sizes) - 50) < 1.5
  assert abs(np.var(sizes) - 1000 * 0.05 * 0.95) < 12
  assert len(set(sizes)) > 10


def test_dpsgd_training_runs_and_resumes(tmp_path):
  dp = dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.25, chunk_size=8)
  config = loop.TrainConfig(
    num_steps=6, seed=5, dp=dp, checkpoint_every=3, log_every=2, progress_bar=False
  )
  records = _records(64)
  full = loop.train(_model(), records, BLOCKS, config, workdir=str(tmp_path / "a"))
  loop.train(_model(), records, BLOCKS, config, workdir=str(tmp_path / "b"), stop_after=3)
  resumed = loop.train(_model(), records, BLOCKS, config, workdir=str(tmp_path / "b"))
  assert resumed.resumed_from == 3
  np.testing.assert_allclose(_flat(full.state.params), _flat(resumed.state.params), rtol=1e-6)


def test_bad_configs_raise():
  with pytest.raises(ValueError, match="noise_multiplier"):
    dpsgd.DPSGDConfig(noise_multiplier=0.0, clip_norm=1.0, sampling_rate=0.1)
  with pytest.raises(ValueError, match="sampling_rate"):
    dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=1.5)
  with pytest.raises(ValueError, match="multiple"):
    loop.train(
      _model(),
      _records(),
      BLOCKS,
      loop.TrainConfig(num_steps=1, batch_size=6, progress_bar=False),
    )
  bad = _records()
  bad[0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    loop.train(
      _model(), bad, BLOCKS, loop.TrainConfig(num_steps=1, batch_size=8, progress_bar=False)
    )


def test_dpsgd_multi_device_step_matches_single_device():
  dp = dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.25, chunk_size=8)
  config = loop.TrainConfig(num_steps=3, seed=5, dp=dp, progress_bar=False)
  one = loop.train(_model(), _records(), BLOCKS, config, devices=jax.devices()[:1])
  four = loop.train(_model(), _records(), BLOCKS, config, devices=jax.devices()[:4])
  np.testing.assert_allclose(
    _flat(one.state.params), _flat(four.state.params), rtol=1e-5, atol=1e-6
  )


def test_records_split_across_devices_give_the_same_training(monkeypatch):
  config = loop.TrainConfig(num_steps=3, batch_size=16, seed=3, progress_bar=False)
  replicated = loop.train(_model(), _records(62), BLOCKS, config)
  monkeypatch.setattr(sharding, "REPLICATE_RECORDS_UP_TO_BYTES", 0)
  split = loop.train(_model(), _records(62), BLOCKS, config)  # 62 rows: padded to 64
  np.testing.assert_allclose(
    _flat(replicated.state.params), _flat(split.state.params), rtol=1e-5, atol=1e-6
  )


def test_dpsgd_step_is_the_clipped_sum_plus_noise_over_q_n():
  """One jitted DPSGDStep (several microbatches, a batch of every record) against the pieces:
  clip every example, add the float64-drawn noise to the sum, then divide by q n."""
  model, records = _model(), _records(40)
  dp = dpsgd.DPSGDConfig(noise_multiplier=0.5, clip_norm=0.3, sampling_rate=1.0, chunk_size=8)
  sgd = optax.sgd(1.0)
  mesh = sharding.data_mesh(jax.devices()[:2])
  state = train_state.create(model, sgd, jnp.asarray(records[:1]), jax.random.key(1))
  loss_fn = loop.vae_loss(model, BLOCKS)
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
  before = _flat(state.params)
  state = jax.tree_util.tree_map(np.asarray, state)  # host copy: the step donates its input
  new, stats = step.update(
    jax.device_put(state, sharding.replicated(mesh)),
    sharding.replicate(mesh, records),
    run_key,
    step.place(host),
  )
  assert float(stats["count"]) == 40
  clipped_sum = jax.jit(dpsgd.clipped_gradient_sum(loop.vae_loss(model, BLOCKS), dp.clip_norm))
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
    expected += _flat(part)
  expected += _flat(dpsgd.dpsgd_noise(state.params, dp, 9, 0))
  np.testing.assert_allclose(_flat(new.params) - before, -expected / 40, rtol=2e-4, atol=1e-6)


def test_bjorck_encoder_trains_retracted_and_ends_exactly_orthonormal():
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp([8, 4], lipschitz_target=0.5),
    decoder=decoders.MLPDecoder((16,), 15),
  )
  config = loop.TrainConfig(
    num_steps=12, batch_size=16, seed=2, learning_rate=1e-2, progress_bar=False, retract_every=3
  )
  result = loop.train(model, _records(), BLOCKS, config)
  for name in ("layers_0", "layers_2"):
    s = np.linalg.svd(
      np.asarray(result.state.params["encoder_mean"][name]["kernel"]), compute_uv=False
    )
    assert np.max(np.abs(s - 1)) < 2e-6  # the exact normalisation after training
  assert bjorck.POLAR_COLLECTION not in result.state.model_state  # never iterated
  # The model as built (iterating) is certified at its target from these weights.
  cert = synth_lib.certify_encoder(model, {"params": result.state.params}, 15)
  assert cert.mean_lipschitz == pytest.approx(0.5, rel=1e-4)


def test_the_loop_takes_any_loss():
  """`fit` with a least-squares loss on a plain Dense layer (no VAE): the loss goes down."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((64, 3)).astype(np.float32)
  records = np.concatenate([x, x @ np.array([[1.0], [-2.0], [0.5]], np.float32)], axis=1)
  dense = nn.Dense(1)

  def loss_fn(params, model_state, batch, rng, mutable=False):
    del rng, mutable
    pred = dense.apply({"params": params, **model_state}, batch[:, :3])[:, 0]
    return (pred - batch[:, 3]) ** 2, {}, {}

  config = loop.TrainConfig(
    num_steps=200, batch_size=16, seed=0, learning_rate=0.05, progress_bar=False, log_every=200
  )
  result = loop.fit(loss_fn, lambda key, sample: dense.init(key, sample[:, :3]), records, config)
  np.testing.assert_allclose(np.ravel(result.state.params["kernel"]), [1.0, -2.0, 0.5], atol=0.05)


def test_the_returned_weights_are_the_parameter_average():
  """With average_decay the trained weights are the EMA of the iterates (kept in the optimiser
  state), not the last iterate; the iterates themselves are those of the run without it."""
  records = _records()
  kwargs = dict(num_steps=30, batch_size=16, seed=5, progress_bar=False)
  plain = loop.train(_model(), records, BLOCKS, loop.TrainConfig(**kwargs))
  averaged = loop.train(_model(), records, BLOCKS, loop.TrainConfig(average_decay=0.8, **kwargs))
  average = optim.average_of(averaged.state.opt_state)
  np.testing.assert_array_equal(_flat(averaged.state.params), _flat(average))
  assert not np.allclose(_flat(averaged.state.params), _flat(plain.state.params))
  # The iterates are the plain run's (same Adam moments): averaging never feeds back.
  inner_state = averaged.state.opt_state[0]
  plain_state = plain.state.opt_state
  np.testing.assert_allclose(_flat(inner_state), _flat(plain_state), rtol=1e-6)
