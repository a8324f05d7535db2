"""The training loop: the pure step, data parallelism, kill-and-resume, weight averaging (DP-SGD's
clipping and noise: test_dpsgd.py)."""

import json
import shutil

import flax.linen as nn
import jax
import numpy as np
import pytest

import toy
from lipdp import latent_release as synth_lib
from lipdp import nn as lnn
from lipdp import randomness
from lipdp.models import decoders
from lipdp.models import vae as vae_lib
from lipdp.nn import bjorck
from lipdp.training import dpsgd
from lipdp.training import loop
from lipdp.training import optim
from lipdp.training import sharding
from lipdp.training import steps as steps_lib


def test_multi_device_step_matches_single_device():
  assert jax.device_count() >= 4, "tests/conftest.py should force 4 host devices"
  config = loop.TrainConfig(num_steps=5, batch_size=16, seed=3, progress_bar=False)
  records = toy.records()
  one = loop.train(toy.model(), records, toy.BLOCKS, config, devices=jax.devices()[:1])
  four = loop.train(toy.model(), records, toy.BLOCKS, config, devices=jax.devices()[:4])
  np.testing.assert_allclose(
    toy.flat(one.state.params), toy.flat(four.state.params), rtol=1e-5, atol=1e-6
  )
  assert not np.allclose(
    toy.flat(one.state.params),
    toy.flat(
      loop.train(
        toy.model(),
        records,
        toy.BLOCKS,
        loop.TrainConfig(num_steps=5, batch_size=16, seed=4, progress_bar=False),
      ).state.params
    ),
  )


def test_training_lowers_the_loss(tmp_path):
  config = loop.TrainConfig(
    num_steps=150, batch_size=32, seed=0, log_every=25, learning_rate=3e-3, progress_bar=False
  )
  loop.train(toy.model(), toy.records(256), toy.BLOCKS, config, workdir=str(tmp_path))
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [l["step"] for l in lines] == [25, 50, 75, 100, 125, 150]
  assert lines[-1]["loss"] < lines[0]["loss"] - 1.0


# Without averaging in the slow run only: the averaged case resumes the same state and more.
@pytest.mark.parametrize("average_decay", [pytest.param(0.0, marks=pytest.mark.slow), 0.9])
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
  records = toy.records()
  full = loop.train(toy.model(), records, toy.BLOCKS, config, workdir=str(tmp_path / "full"))
  # "Killed" after 27 steps: the last checkpoint is at step 20 (also 27 since the run ended
  # there), so drop step 27's to simulate a crash between checkpoints.
  killed_dir = tmp_path / "killed"
  loop.train(toy.model(), records, toy.BLOCKS, config, workdir=str(killed_dir), stop_after=27)
  shutil.rmtree(killed_dir / "checkpoints" / "27")
  # What a crash can leave besides: a save cut off (orbax's temporary folder, holding weights of
  # steps the resumed run executes again with the same noise) and a metrics line cut off.
  stale_save = killed_dir / "checkpoints" / "30.orbax-checkpoint-tmp"  # as orbax 0.12 names it
  (stale_save / "default.orbax-checkpoint-tmp").mkdir(parents=True)
  (stale_save / "default.orbax-checkpoint-tmp" / "weights").write_text("from the crashed run")
  with open(killed_dir / "metrics.jsonl", "a") as f:
    f.write('{"step": 30, "lo')
  resumed = loop.train(toy.model(), records, toy.BLOCKS, config, workdir=str(killed_dir))
  assert resumed.resumed_from == 20
  np.testing.assert_array_equal(toy.flat(full.state.params), toy.flat(resumed.state.params))
  assert not stale_save.exists()
  steps = [json.loads(l)["step"] for l in open(killed_dir / "metrics.jsonl")]
  assert steps == sorted(set(steps)) and steps[-1] == 40


def test_unseeded_training_draws_a_secret_seed(tmp_path):
  config = loop.TrainConfig(num_steps=2, batch_size=16, progress_bar=False)
  a = loop.train(toy.model(), toy.records(), toy.BLOCKS, config)
  b = loop.train(toy.model(), toy.records(), toy.BLOCKS, config)
  assert not a.seeded_by_user and a.seed != b.seed


def test_completed_training_forgets_its_secret_seed(tmp_path, caplog):
  config = loop.TrainConfig(num_steps=4, batch_size=16, checkpoint_every=2, progress_bar=False)
  loop.train(toy.model(), toy.records(), toy.BLOCKS, config, workdir=str(tmp_path), stop_after=2)
  assert (tmp_path / "train_seed.json").exists()  # needed to resume
  assert (tmp_path / "train_seed.json").stat().st_mode & 0o077 == 0  # no other account reads it
  with caplog.at_level("WARNING"):
    loop.train(toy.model(), toy.records(), toy.BLOCKS, config, workdir=str(tmp_path))
  assert not (tmp_path / "train_seed.json").exists()
  assert "was missing" not in caplog.text


def test_resuming_without_the_secret_seed_says_so(tmp_path, caplog):
  config = loop.TrainConfig(num_steps=4, batch_size=16, checkpoint_every=2, progress_bar=False)
  loop.train(toy.model(), toy.records(), toy.BLOCKS, config, workdir=str(tmp_path), stop_after=2)
  (tmp_path / "train_seed.json").unlink()
  with caplog.at_level("WARNING"):
    resumed = loop.train(toy.model(), toy.records(), toy.BLOCKS, config, workdir=str(tmp_path))
  assert resumed.resumed_from == 2
  assert "train_seed.json was missing when training resumed from step 2" in caplog.text


@pytest.mark.parametrize(
  "clip_quantile, clip_groups",
  [
    (None, None),
    # One adaptive clip norm: 7 s, to the slow suite when the mesh check joined every
    # multi-device DP-SGD step (2026-12-07); per-group adaptive clipping, its superset here,
    # stays, and tests/training/test_dpsgd.py checks the one-norm step's pieces by default.
    pytest.param(0.5, None, marks=pytest.mark.slow),
    (0.5, (12, 15)),
  ],
)
def test_dpsgd_training_runs_and_resumes(tmp_path, monkeypatch, clip_quantile, clip_groups):
  """Also with adaptive clipping, whose clip norm (one per group with per-group clipping) is
  part of the checkpointed state. The fixed clip norm runs from a secret seed (AES-CTR
  streams, kept in train_seed.json until training ends), the others from a user's (PCG64)."""
  # Both runs draw the same secret seed; any later draw gets another, so the resumed run matches
  # only if it reads its seed back from train_seed.json.
  draws = iter([randomness.fresh_seed()] * 2)
  other = randomness.fresh_seed()
  monkeypatch.setattr(randomness, "fresh_seed", lambda: next(draws, other))
  dp = dpsgd.DPSGDConfig(
    noise_multiplier=1.0,
    clip_norm=1.0,
    sampling_rate=0.25,
    chunk_size=8,
    clip_quantile=clip_quantile,
    count_noise_std=None if clip_quantile is None else 2.0,
    clip_groups=clip_groups,
  )
  seed = None if clip_quantile is None else 5
  config = loop.TrainConfig(
    num_steps=6, seed=seed, dp=dp, checkpoint_every=3, log_every=2, progress_bar=False
  )
  records = toy.records(64)
  full = loop.train(toy.model(), records, toy.BLOCKS, config, workdir=str(tmp_path / "a"))
  assert full.seeded_by_user == (seed is not None)
  assert randomness.is_secret_seed(full.seed) == (seed is None)
  loop.train(toy.model(), records, toy.BLOCKS, config, workdir=str(tmp_path / "b"), stop_after=3)
  resumed = loop.train(toy.model(), records, toy.BLOCKS, config, workdir=str(tmp_path / "b"))
  assert resumed.resumed_from == 3
  np.testing.assert_allclose(toy.flat(full.state.params), toy.flat(resumed.state.params), rtol=1e-6)
  if clip_quantile is None:
    assert type(full.state) is steps_lib.TrainState  # the checkpoints' structure of every older run
  else:
    assert full.state.clip_norm.shape == dp.clip_norm_shape
    assert np.all(np.asarray(full.state.clip_norm) != 1.0)  # it moved
    np.testing.assert_allclose(resumed.state.clip_norm, full.state.clip_norm, rtol=1e-6)
    logged = [
      json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    ]
    assert logged[0]["clip_norm"] > 0
    assert ("clip_norm_group_2" in logged[0]) == (clip_groups is not None)


def test_bad_configs_raise():
  with pytest.raises(ValueError, match="noise_multiplier"):
    dpsgd.DPSGDConfig(noise_multiplier=0.0, clip_norm=1.0, sampling_rate=0.1)
  with pytest.raises(ValueError, match="sampling_rate"):
    dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=1.5)
  with pytest.raises(ValueError, match="multiple"):
    loop.train(
      toy.model(),
      toy.records(),
      toy.BLOCKS,
      loop.TrainConfig(num_steps=1, batch_size=6, progress_bar=False),
    )
  bad = toy.records()
  bad[0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    loop.train(
      toy.model(), bad, toy.BLOCKS, loop.TrainConfig(num_steps=1, batch_size=8, progress_bar=False)
    )


def test_dpsgd_multi_device_step_matches_single_device():
  dp = dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.25, chunk_size=8)
  config = loop.TrainConfig(num_steps=3, seed=5, dp=dp, progress_bar=False)
  one = loop.train(toy.model(), toy.records(), toy.BLOCKS, config, devices=jax.devices()[:1])
  four = loop.train(toy.model(), toy.records(), toy.BLOCKS, config, devices=jax.devices()[:4])
  np.testing.assert_allclose(
    toy.flat(one.state.params), toy.flat(four.state.params), rtol=1e-5, atol=1e-6
  )


def test_records_split_across_devices_give_the_same_training(monkeypatch):
  config = loop.TrainConfig(num_steps=3, batch_size=16, seed=3, progress_bar=False)
  replicated = loop.train(toy.model(), toy.records(62), toy.BLOCKS, config)
  monkeypatch.setattr(sharding, "REPLICATE_RECORDS_UP_TO_BYTES", 0)
  split = loop.train(toy.model(), toy.records(62), toy.BLOCKS, config)  # 62 rows: padded to 64
  np.testing.assert_allclose(
    toy.flat(replicated.state.params), toy.flat(split.state.params), rtol=1e-5, atol=1e-6
  )


def test_bjorck_encoder_trains_retracted_and_ends_exactly_orthonormal():
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp([8, 4], lipschitz_target=0.5),
    decoder=decoders.MLPDecoder((16,), 15),
  )
  config = loop.TrainConfig(
    num_steps=12, batch_size=16, seed=2, learning_rate=1e-2, progress_bar=False, retract_every=3
  )
  result = loop.train(model, toy.records(), toy.BLOCKS, config)
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
  records = toy.records()
  kwargs = dict(num_steps=30, batch_size=16, seed=5, progress_bar=False)
  plain = loop.train(toy.model(), records, toy.BLOCKS, loop.TrainConfig(**kwargs))
  averaged = loop.train(
    toy.model(), records, toy.BLOCKS, loop.TrainConfig(average_decay=0.8, **kwargs)
  )
  average = optim.average_of(averaged.state.opt_state)
  np.testing.assert_array_equal(toy.flat(averaged.state.params), toy.flat(average))
  assert not np.allclose(toy.flat(averaged.state.params), toy.flat(plain.state.params))
  # The iterates are the plain run's (same Adam moments): averaging never feeds back.
  inner_state = averaged.state.opt_state[0]
  plain_state = plain.state.opt_state
  np.testing.assert_allclose(toy.flat(inner_state), toy.flat(plain_state), rtol=1e-6)


def test_training_starts_from_given_variables():
  """Public pretraining's hand-over: DP-SGD starts from the given weights, not from the
  initialisation (a tiny learning rate leaves them where they were)."""
  records = toy.records(64)
  plain = loop.TrainConfig(num_steps=5, batch_size=16, seed=1, progress_bar=False)
  pretrained = loop.train(toy.model(), records, toy.BLOCKS, plain).state
  start = {"params": pretrained.params, **pretrained.model_state}
  dp = dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.25, chunk_size=8)
  still = loop.TrainConfig(num_steps=1, seed=2, dp=dp, learning_rate=1e-12, progress_bar=False)
  continued = loop.train(toy.model(), records, toy.BLOCKS, still, initial_variables=start)
  fresh = loop.train(toy.model(), records, toy.BLOCKS, still)
  np.testing.assert_allclose(
    toy.flat(continued.state.params), toy.flat(pretrained.params), atol=1e-5
  )
  assert np.max(np.abs(toy.flat(fresh.state.params) - toy.flat(pretrained.params))) > 1e-2
  with pytest.raises(ValueError, match="initial_variables"):
    loop.train(toy.model(), records, toy.BLOCKS, still, initial_variables={"params": {}})


def test_the_cosine_schedule_decays_the_learning_rate_to_zero_at_the_last_step():
  cosine = loop.TrainConfig(num_steps=100, learning_rate=2e-3, learning_rate_decay="cosine")
  schedule = loop.learning_rate_schedule(cosine)
  assert float(schedule(0)) == pytest.approx(2e-3)
  assert float(schedule(50)) == pytest.approx(1e-3, rel=1e-5)
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-12)
  assert loop.learning_rate_schedule(loop.TrainConfig(learning_rate=2e-3)) == 2e-3
  with pytest.raises(ValueError, match="learning_rate_decay must be one of"):
    loop.TrainConfig(learning_rate_decay="linear")
  # In training: the same first step as the constant rate, smaller later steps.
  records = toy.records()
  kwargs = dict(num_steps=10, batch_size=16, seed=5, progress_bar=False)
  first = [
    loop.train(toy.model(), records, toy.BLOCKS, loop.TrainConfig(learning_rate_decay=d, **kw))
    for d in ("constant", "cosine")
    for kw in ({**kwargs, "num_steps": 1},)
  ]
  np.testing.assert_allclose(toy.flat(first[0].state.params), toy.flat(first[1].state.params))
  constant, decayed = (
    loop.train(toy.model(), records, toy.BLOCKS, loop.TrainConfig(learning_rate_decay=d, **kwargs))
    for d in ("constant", "cosine")
  )
  start = first[0]  # one constant-rate step: the two trainings' common start
  moved = lambda r: np.linalg.norm(toy.flat(r.state.params) - toy.flat(start.state.params))
  assert moved(decayed) < moved(constant)


def test_dpsgd_trains_with_several_noise_samples_per_record():
  """train.noise_samples under DP-SGD (the ghost path, whose self-check compares it with the
  vmap path before the first step): two samples train, to other weights than one."""
  dp = dpsgd.DPSGDConfig(noise_multiplier=1.0, clip_norm=1.0, sampling_rate=0.25)
  kwargs = dict(num_steps=3, seed=5, dp=dp, progress_bar=False)
  records = toy.records(32)
  assert loop.TrainConfig().noise_samples == 1
  one, two = (
    loop.train(toy.model(), records, toy.BLOCKS, loop.TrainConfig(**kwargs, noise_samples=s))
    for s in (1, 2)
  )
  # One sample draws exactly what the one-draw model draws (tests/models/test_vae.py), so its
  # training is the default's; two samples train other weights.
  assert np.all(np.isfinite(toy.flat(two.state.params)))
  assert not np.allclose(toy.flat(one.state.params), toy.flat(two.state.params))
  for bad in (0, True, 1.5):
    with pytest.raises(ValueError, match="noise_samples must be an integer >= 1"):
      loop.TrainConfig(noise_samples=bad)
