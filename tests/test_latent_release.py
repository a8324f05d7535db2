"""The latent release: the heteroscedastic release is capped to targets fixed before training."""

import dataclasses
import fractions
import itertools
import math

from flax import linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipdp import data as data_lib
from lipdp import nn as lnn
from lipdp import privacy
from lipdp import randomness
from lipdp import latent_release as synth_lib
from lipdp import spec as spec_lib
from lipdp.models import builders
from lipdp.models import vae as vae_lib


@pytest.fixture(scope="module")
def hetero():
  data = data_lib.load_dataset("digits")
  config = spec_lib.ModelSpec(
    latent_dim=4,
    encoder_hidden=(32,),
    decoder_hidden=(32,),
    numeric_bins=0,
    style_dim=0,
    heteroscedastic=True,
    sigma_min=0.5,
    sigma_max=2.0,
  )
  model = builders.build_vae(
    data.domain, config, lipschitz_target=0.05, sigma=0.5, log_sigma_lipschitz=0.02
  )
  variables = model.init(jax.random.key(0), jnp.zeros((1, data.domain.dim)), jax.random.key(1))
  return data, model, variables


def test_release_is_scaled_within_targets_below_the_certificate(hetero):
  data, built, variables = hetero
  cert = synth_lib.certify_encoder(built, variables, data.domain.dim)
  assert cert.mean_lipschitz == pytest.approx(0.05, rel=1e-4)
  # A model whose declared targets are below what its weights certify.
  model = built.clone(lipschitz_target=0.025, log_sigma_lipschitz_target=0.01)
  records = data.train[:40]
  out = synth_lib.synthesize(
    model, variables, records, data.domain, epsilon=None, delta=1e-5, scope="conditional", seed=0
  )
  report = out.report
  assert report.lipschitz == 0.025 and report.release.lipschitz_log_sigma == 0.01
  assert report.certificate["mean_scale"] == pytest.approx(0.025 / cert.mean_lipschitz)
  assert report.certificate["log_sigma_scale"] == pytest.approx(0.01 / cert.log_sigma_lipschitz)
  report.verify()
  # The released means are those of the scaled map.
  mu, _ = model.apply(variables, jnp.asarray(records), method=vae_lib.LipschitzVAE.encode)
  mu_scaled, _ = model.apply(
    variables,
    jnp.asarray(records),
    report.certificate["mean_scale"],
    report.certificate["log_sigma_scale"],
    method=vae_lib.LipschitzVAE.encode,
  )
  np.testing.assert_allclose(mu_scaled, mu * report.certificate["mean_scale"], rtol=1e-6)


def test_targets_above_the_certificate_are_what_is_accounted(hetero):
  data, model, variables = hetero
  out = synth_lib.synthesize(
    model,
    variables,
    data.train[:10],
    data.domain,
    epsilon=None,
    delta=1e-5,
    scope="conditional",
    seed=0,
  )
  # Certified ~0.05 * (1 + 5e-6)^2 against a target of 0.05: scaled by just under 1, and the
  # accounting uses the target, a number fixed before training.
  assert out.report.lipschitz == 0.05
  assert 1 - 1e-4 < out.report.certificate["mean_scale"] <= 1.0


def test_dpsgd_scope_needs_targets_fixed_before_training(hetero):
  data, model, variables = hetero
  no_targets = model.clone(lipschitz_target=None, log_sigma_lipschitz_target=None)
  with pytest.raises(ValueError, match="fixed before training"):
    synth_lib.synthesize(
      no_targets,
      variables,
      data.train[:10],
      data.domain,
      epsilon=None,
      delta=1e-5,
      scope="dp-sgd",
      dpsgd=privacy.DPSGDEvent(1.0, 0.1, 10),
    )
  # In the conditional scope the certified numbers are used instead.
  out = synth_lib.synthesize(
    no_targets,
    variables,
    data.train[:10],
    data.domain,
    epsilon=None,
    delta=1e-5,
    scope="conditional",
    seed=0,
  )
  assert out.report.lipschitz == pytest.approx(0.05, rel=1e-4)


def test_scope_and_training_event_must_agree(hetero):
  data, model, variables = hetero
  with pytest.raises(ValueError, match="disagree"):
    synth_lib.synthesize(
      model,
      variables,
      data.train[:10],
      data.domain,
      epsilon=None,
      delta=1e-5,
      scope="conditional",
      dpsgd=privacy.DPSGDEvent(1.0, 0.1, 10),
    )


def test_an_epsilon_beyond_the_float64_sampler_is_refused_by_name():
  """The truncation check names the epsilon that broke it (the cause), not only delta."""
  import types  # pylint: disable=g-import-not-at-top

  fine = types.SimpleNamespace(per_record_epsilon=10.0, delta=1e-5)
  synth_lib._check_truncation_is_negligible(fine, 32)  # pylint: disable=protected-access
  huge = types.SimpleNamespace(per_record_epsilon=60.0, delta=1e-5)
  with pytest.raises(ValueError, match="per-record epsilon 60 at delta=1e-05 is beyond"):
    synth_lib._check_truncation_is_negligible(huge, 32)  # pylint: disable=protected-access


def test_an_amplified_central_claim_counts_every_records_truncation(monkeypatch):
  """The shuffled multiset holds all n records' latents, so an amplified central epsilon (and
  the total) pays n d k truncated coordinates; one record's d k suffice for the per-record
  claim, and for a central epsilon that claims no amplification (a review's finding). Whether
  it is amplified is judged at the shuffle's own delta, where the per-record epsilon is larger
  (a second review's finding)."""
  import types  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(synth_lib.randomness, "normal_truncation_mass", lambda: 1e-17)
  sigma = privacy.calibrate_sigma(5.0, 1e-5, 1.0)
  at_shuffle_delta = privacy.gaussian_epsilon(sigma, 1.0, 1e-6)  # 5.57: more than 5
  report = dict(
    per_record_epsilon=5.0,
    delta=1e-5,
    num_records=10**6,
    epsilon=6.0,
    release=privacy.GaussianRelease(sigma, 1),
    sensitivity=1.0,
    shuffle_delta=1e-6,
  )
  check = synth_lib._check_truncation_is_negligible  # pylint: disable=protected-access
  for amplified in (0.5, (5.0 + at_shuffle_delta) / 2):  # the second is above 5, yet amplified
    with pytest.raises(ValueError, match=r"central epsilon [0-9.]+ at delta=1e-06 is beyond"):
      check(types.SimpleNamespace(**report, central_epsilon=amplified), 32)
  check(types.SimpleNamespace(**report, central_epsilon=None), 32)
  check(types.SimpleNamespace(**report, central_epsilon=at_shuffle_delta), 32)  # not amplified
  check(types.SimpleNamespace(**dict(report, num_records=10), central_epsilon=0.5), 32)


def test_tabular_release_draws_records_from_the_decoder_and_mean_keeps_the_mode():
  """A decoder with a fixed, lopsided output: drawn categories follow its softmax (the minority
  category survives), the mean decoding gives everyone the mode; both lie in the domain."""
  domain = data_lib.TabularDomain(
    [
      data_lib.NumericColumn("age", 0.0, 100.0),
      data_lib.CategoricalColumn("job", ("a", "b")),
    ]
  )
  config = spec_lib.ModelSpec(
    latent_dim=2,
    encoder_hidden=(8,),
    decoder_hidden=(4,),
    numeric_likelihood="binned",  # the age column is not declared integer
    numeric_bins=8,
    style_dim=0,
    heteroscedastic=False,
    sigma_min=0.5,
    sigma_max=2.0,
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  variables = model.init(jax.random.key(0), jnp.zeros((1, domain.dim)), jax.random.key(1))
  # Zero weights and a fixed bias: every latent decodes to the same likelihood.
  params = jax.tree_util.tree_map(jnp.zeros_like, variables["params"])
  bias = np.zeros(10, np.float32)
  bias[8:] = [np.log(0.8), np.log(0.2)]  # job: a with 0.8, b with 0.2
  bias[2] = 3.0  # age: bin 2 ([25, 37.5)) most likely
  params["decoder"]["logits"]["bias"] = jnp.asarray(bias)
  variables = {**variables, "params": params}
  latents = np.zeros((20_000, 1, 2), np.float32)
  drawn = synth_lib.decode_latents(
    model, variables, latents, domain, style_rng=np.random.default_rng(0), decoding="sample"
  )
  mean = synth_lib.decode_latents(model, variables, latents, domain, decoding="mean")
  auto = synth_lib.decode_latents(
    model, variables, latents, domain, style_rng=np.random.default_rng(0)
  )
  np.testing.assert_array_equal(auto, drawn)  # 'auto' draws the records of a table
  assert np.array_equal(domain.project(drawn), drawn)
  assert np.mean(domain.decode(drawn)["job"] == "b") == pytest.approx(0.2, abs=0.01)
  assert np.all(domain.decode(mean)["job"] == "a")
  ages = domain.decode(drawn)["age"]
  p_bin2 = np.exp(3.0) / (np.exp(3.0) + 7)
  assert np.mean((ages >= 25) & (ages < 37.5)) == pytest.approx(p_bin2, abs=0.01)
  assert np.std(domain.decode(mean)["age"]) == 0.0
  with pytest.raises(ValueError, match="decoding must be one of"):
    synth_lib.decode_latents(model, variables, latents, domain, decoding="mode")
  with pytest.raises(ValueError, match="need a categorical label column"):
    synth_lib.decode_latents(model, variables, latents, domain, decoding="sample_modal_label")
  with pytest.raises(ValueError, match="the records have no image"):
    synth_lib.decode_latents(model, variables, latents, domain, decoding="sample_pixels")
  # With 'job' as the label: the label keeps its mode, every other column is still drawn.
  labelled = data_lib.TabularDomain(list(domain.columns), label_column="job")
  modal = synth_lib.decode_latents(
    model,
    variables,
    latents,
    labelled,
    style_rng=np.random.default_rng(0),
    decoding="sample_modal_label",
  )
  assert np.all(labelled.decode(modal)["job"] == "a")
  np.testing.assert_array_equal(labelled.decode(modal)["age"], domain.decode(drawn)["age"])


def test_a_label_conditioned_release_draws_uniform_labels_and_keeps_them():
  """Each latent is decoded for a class drawn uniformly (public randomness), and the record
  carries that class, whatever the decoder's own label output says."""
  domain = data_lib.ImageDomain((4, 4, 1), radius=2.0, pixel_max=255, num_classes=3, label_weight=2)
  config = spec_lib.ModelSpec(
    latent_dim=2, encoder_hidden=(8,), decoder_hidden=(4,), style_dim=2, label_conditioned=True
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  assert model.condition_block == (16, 19)
  variables = model.init(jax.random.key(0), jnp.zeros((1, domain.dim)), jax.random.key(1))
  # A decoder that always says class 0: the drawn class must win.
  params = jax.tree_util.tree_map(jnp.zeros_like, variables["params"])
  params["decoder"]["logits"]["bias"] = jnp.asarray(np.r_[np.zeros(16), 9.0, 0.0, 0.0])
  variables = {**variables, "params": params}
  latents = np.zeros((30_000, 1, 2), np.float32)
  records = synth_lib.decode_latents(
    model, variables, latents, domain, style_rng=np.random.default_rng(0)
  )
  np.testing.assert_array_equal(domain.project(records), records)
  counts = np.bincount(domain.labels(records), minlength=3)
  # Uniform: each count within 5 binomial standard deviations of 10,000 (sd 82).
  assert np.all(np.abs(counts - 10_000) < 5 * 82), counts
  again = synth_lib.decode_latents(
    model, variables, latents, domain, style_rng=np.random.default_rng(0)
  )
  np.testing.assert_array_equal(again, records)  # the labels come from the public rng alone
  with pytest.raises(ValueError, match="needs a data set with a label column"):
    builders.build_vae(
      data_lib.ImageDomain((4, 4, 1), radius=2.0, pixel_max=255),
      config,
      lipschitz_target=1.0,
      sigma=1.0,
    )


def test_sample_pixels_draws_binary_images_around_the_mean_and_keeps_the_modal_label():
  """decoding 'sample_pixels': each pixel 1 with the probability the mean decoding gives it,
  the label the mean decoding's most probable class, reproducible from the public rng."""
  # Radius 4 holds every 4 x 4 binary image, so the domain's projection leaves them binary.
  domain = data_lib.ImageDomain((4, 4, 1), radius=4.0, pixel_max=255, num_classes=3, label_weight=2)
  config = spec_lib.ModelSpec(latent_dim=2, encoder_hidden=(8,), decoder_hidden=(4,), style_dim=0)
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  variables = model.init(jax.random.key(0), jnp.zeros((1, domain.dim)), jax.random.key(1))
  latents = np.zeros((20_000, 1, 2), np.float32)  # one latent: one mean image

  def decode(decoding, seed=0):
    return synth_lib.decode_latents(
      model, variables, latents, domain, style_rng=np.random.default_rng(seed), decoding=decoding
    )

  mean, drawn = decode("mean"), decode("sample_pixels")
  pixels = slice(0, 16)
  assert set(np.unique(drawn[:, pixels])) <= {0.0, 1.0}
  assert 0.2 < np.mean(drawn[:, pixels]) < 0.8  # neither all 0 nor all 1
  # Each pixel's frequency is its mean intensity (within 5 binomial sd of 20,000 draws).
  np.testing.assert_allclose(np.mean(drawn[:, pixels], axis=0), mean[0, pixels], atol=5 * 0.0036)
  np.testing.assert_array_equal(domain.labels(drawn), domain.labels(mean))
  np.testing.assert_array_equal(decode("sample_pixels"), drawn)
  assert not np.array_equal(decode("sample_pixels", seed=1), drawn)


def test_a_learned_label_prior_gives_the_synthetic_labels_its_distribution():
  """A table's conditioned decoder (label_prior unset: 'learned' for tables): each record is
  decoded for a label drawn from the model's p(y) = softmax(w), and keeps it."""
  domain = data_lib.TabularDomain(
    [
      data_lib.NumericColumn("x", 0.0, 1.0),
      data_lib.CategoricalColumn("y", ("no", "yes")),
    ],
    label_column="y",
  )
  config = spec_lib.ModelSpec(
    numeric_likelihood="binned",  # x is not declared integer; the bias below has its 32 bins
    latent_dim=2,
    encoder_hidden=(8,),
    decoder_hidden=(4,),
    style_dim=0,
    label_conditioned=True,
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  assert model.condition_block == (1, 3) and model.label_prior is not None
  variables = model.init(jax.random.key(0), jnp.zeros((1, domain.dim)), jax.random.key(1))
  np.testing.assert_allclose(synth_lib.label_prior_probabilities(model, variables), [0.5, 0.5])
  params = jax.tree_util.tree_map(jnp.zeros_like, variables["params"])
  params["label_prior"]["kernel"] = jnp.log(jnp.array([[0.9, 0.1]]))
  # A decoder whose own label output always says "yes": the drawn label must win.
  params["decoder"]["logits"]["bias"] = jnp.asarray(np.r_[np.zeros(32), -9.0, 9.0])
  variables = {**variables, "params": params}
  np.testing.assert_allclose(synth_lib.label_prior_probabilities(model, variables), [0.9, 0.1])
  records = synth_lib.decode_latents(
    model,
    variables,
    np.zeros((20_000, 1, 2), np.float32),
    domain,
    style_rng=np.random.default_rng(0),
  )
  yes = int(np.sum(domain.decode(records)["y"] == "yes"))
  # 2,000 expected, binomial standard deviation 42.
  assert abs(yes - 2_000) < 5 * 42, yes
  uniform = builders.build_vae(
    domain, dataclasses.replace(config, label_prior="uniform"), lipschitz_target=1.0, sigma=1.0
  )
  assert uniform.label_prior is None
  with pytest.raises(ValueError, match="label_prior must be one of"):
    builders.build_vae(
      domain, dataclasses.replace(config, label_prior="balanced"), lipschitz_target=1.0, sigma=1.0
    )


def test_the_temperature_scales_every_latent_the_decoder_sees_and_nothing_else():
  """tau multiplies the released z and the style u, not the drawn labels; at tau = 1 the records
  are the default decoding's."""
  domain = data_lib.ImageDomain((4, 4, 1), radius=2.0, pixel_max=255, num_classes=3, label_weight=2)
  config = spec_lib.ModelSpec(
    latent_dim=2, encoder_hidden=(8,), decoder_hidden=(8,), style_dim=2, label_conditioned=True
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  variables = model.init(jax.random.key(0), jnp.zeros((1, domain.dim)), jax.random.key(1))
  latents = np.random.default_rng(1).standard_normal((300, 1, 2)).astype(np.float32)

  def decode(z, model=model, variables=variables, **kw):
    return synth_lib.decode_latents(
      model, variables, z, domain, style_rng=np.random.default_rng(0), **kw
    )

  warm = decode(latents)
  np.testing.assert_array_equal(decode(latents, temperature=1.0), warm)
  cold = decode(latents, temperature=1e-6)
  labels = domain.labels(warm)
  np.testing.assert_array_equal(domain.labels(cold), labels)  # the same labels, unscaled
  for c in range(3):
    pixels = warm[labels == c, :16]
    assert np.ptp(pixels, axis=0).max() > 1e-3  # at tau = 1 the latents make records differ
    # Near tau = 0 both z and u are near 0: every record of a class is the same.
    rows = cold[labels == c, :16]
    np.testing.assert_allclose(rows, np.broadcast_to(rows[0], rows.shape), atol=1e-5)
  # Without a style latent, decoding at tau is decoding the latents scaled by tau.
  plain_config = dataclasses.replace(config, style_dim=0, label_conditioned=False)
  plain = builders.build_vae(domain, plain_config, lipschitz_target=1.0, sigma=1.0)
  plain_vars = plain.init(jax.random.key(0), jnp.zeros((1, domain.dim)), jax.random.key(1))
  np.testing.assert_array_equal(
    decode(latents, plain, plain_vars, temperature=0.5),
    decode(np.float32(0.5) * latents, plain, plain_vars),
  )
  for bad in (0.0, -1.0, float("nan")):
    with pytest.raises(ValueError, match="temperature must be a positive number"):
      decode(latents, temperature=bad)


def test_a_heteroscedastic_scale_never_rounds_above_its_target():
  """The scale the encoder multiplies by in float32 keeps the released map's constant within its
  target exactly: min(1, target / certified) rounded down to a float32 (found by a review: a
  scale float32 rounded up put the constant up to 6e-8 above the target)."""
  rng = np.random.default_rng(0)
  rounded_up = 0
  for _ in range(500):
    target = float(rng.uniform(0.01, 2.0))
    certified = target * float(rng.uniform(1.0001, 3.0))
    scale = synth_lib._scale_within(target, certified)
    assert float(np.float32(scale)) == scale
    assert fractions.Fraction(scale) * fractions.Fraction(certified) <= fractions.Fraction(target)
    assert scale >= (target / certified) * (1 - 2.0**-22)  # the largest such float32, or next
    rounded_up += float(np.float32(target / certified)) > target / certified
  assert rounded_up > 0  # float32 did round up, so the rounding down was exercised
  assert synth_lib._scale_within(1.0, 0.5) == 1.0


@pytest.mark.parametrize("seed", [None, 7])
def test_secret_noise_and_the_visible_draws_have_seeds_of_their_own(hetero, monkeypatch, seed):
  """The style draws and the shuffle show in the records; with secret noise they must not come
  from the noise's seed (defence in depth, whatever the generator). A seed reproduces all."""
  data, model, variables = hetero
  fresh = iter([2**256 + 1, 2**256 + 2])  # secret seeds (randomness.fresh_seed's tag)
  monkeypatch.setattr(synth_lib.randomness, "fresh_seed", lambda: next(fresh))
  streams = []
  numpy_rng = synth_lib.randomness.numpy_rng

  def recording_rng(s, *path):
    streams.append((s, path))
    return numpy_rng(s, *path)

  monkeypatch.setattr(synth_lib.randomness, "numpy_rng", recording_rng)
  synth_lib.synthesize(
    model,
    variables,
    data.train[:20],
    data.domain,
    epsilon=None,
    delta=1e-5,
    scope="conditional",
    seed=seed,
  )
  seed_of = {path: s for s, path in streams}
  assert set(seed_of) == {(0,), (1,), (2,)}
  if seed is None:
    assert seed_of[(0,)] == 2**256 + 1  # the noise
    assert seed_of[(1,)] == seed_of[(2,)] == 2**256 + 2  # the shuffle and the decoder's draws
  else:
    assert set(seed_of.values()) == {seed}


@pytest.mark.parametrize("bias", [1e3, 1e4])
def test_released_means_stay_within_the_certified_sensitivity_whatever_the_bias(bias):
  """A square orthonormal encoder on [0, 1]^8 attains L D on each corner and its complement.
  With a large bias, float32 evaluation puts those means farther apart than the certified
  L D (the rounding is additive, the certificate's margin relative: 1.00002 L D at a bias of
  1e3, 1.0004 at 1e4, from an independent review); the release's float64 arithmetic keeps
  them within it, and the release adds its noise to exactly those means."""
  domain = data_lib.TabularDomain([data_lib.NumericColumn(c, 0.0, 1.0) for c in "abcdefgh"])
  config = spec_lib.ModelSpec(
    latent_dim=8, encoder_hidden=(), style_dim=0, numeric_bins=0, decoder_hidden=(8,)
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8)), jax.random.key(1))
  variables["params"]["encoder_mean"]["layers_0"]["bias"] = jnp.full((8,), bias, jnp.float32)
  sensitivity = synth_lib.certify_encoder(model, variables, 8).mean_lipschitz * domain.diameter
  corners = np.array(list(itertools.product([0.0, 1.0], repeat=8)), np.float32)
  opposite = 1.0 - corners  # at distance D = sqrt(8) from each corner

  def largest_distance(means):
    return np.max(np.linalg.norm(means(corners) - means(opposite), axis=1))

  encode32 = jax.jit(
    lambda v, x: model.apply(v, x, 1.0, 1.0, method=vae_lib.LipschitzVAE.encode)[0]
  )
  with jax.default_matmul_precision("highest"):
    in_float32 = largest_distance(lambda x: np.asarray(encode32(variables, x), np.float64))
  assert in_float32 > sensitivity  # why the release does not compute in float32
  released = largest_distance(lambda x: synth_lib.encoder_means(model, variables, x))
  assert released <= sensitivity
  margin = 1 + lnn.FLOAT_SAFETY_MARGIN
  assert released == pytest.approx(sensitivity / margin, rel=1e-9)  # the exact map: L D
  rng, again = np.random.default_rng(7), np.random.default_rng(7)
  latents = synth_lib.release_latents(model, variables, corners, k=2, noise_rng=rng, sigma=0.5)
  noise = 0.5 * randomness.standard_normal(again, (len(corners), 2, 8))
  np.testing.assert_array_equal(
    latents, synth_lib.encoder_means(model, variables, corners)[:, None, :] + noise
  )


@pytest.mark.parametrize("bias", [0.0, 1e3, 1e4])
def test_the_rounding_bound_dominates_float32_evaluation_and_checks_float64(bias):
  """lipdp.nn.rounding_error_bound at float32's unit bounds how far float32 evaluation moves
  the means from the float64 ones (which are exact to far better than that), on the corners
  where the review saw float32 break the certificate, and is within 1e3 of what happens. At
  float64's unit the release's check passes; with a bias of 1e13 it refuses."""
  domain = data_lib.TabularDomain([data_lib.NumericColumn(c, 0.0, 1.0) for c in "abcdefgh"])
  config = spec_lib.ModelSpec(
    latent_dim=8, encoder_hidden=(16,), style_dim=0, numeric_bins=0, decoder_hidden=(8,)
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8)), jax.random.key(1))
  variables["params"]["encoder_mean"]["layers_0"]["bias"] = jnp.full((16,), bias, jnp.float32)
  certificate = synth_lib.certify_encoder(model, variables, 8)
  corners = np.array(list(itertools.product([0.0, 1.0], repeat=8)), np.float32)
  encode32 = jax.jit(
    lambda v, x: model.apply(v, x, 1.0, 1.0, method=vae_lib.LipschitzVAE.encode)[0]
  )
  with jax.default_matmul_precision("highest"):
    in_float32 = np.asarray(encode32(variables, corners), np.float64)
  in_float64 = synth_lib.encoder_means(model, variables, corners)
  observed = np.max(np.linalg.norm(in_float32 - in_float64, axis=1))
  input_norm = math.sqrt(8.0)  # the corners' largest norm
  bound32, _ = lnn.rounding_error_bound(certificate.mean_layers, input_norm, unit=2.0**-24)
  bound64, _ = lnn.rounding_error_bound(certificate.mean_layers, input_norm)
  assert observed <= bound32 + bound64
  assert observed >= bound32 * 1e-3
  error = synth_lib.rounding_error(certificate, domain)
  assert bound64 <= error < 1e-9 * (1 + bias)
  synth_lib.check_rounding(certificate, certificate.mean_lipschitz, domain.diameter, error)
  variables["params"]["encoder_mean"]["layers_0"]["bias"] = jnp.full((16,), 1e13, jnp.float32)
  huge = synth_lib.certify_encoder(model, variables, 8)
  with pytest.raises(ValueError, match="more than the certificate's margin leaves"):
    synth_lib.check_rounding(
      huge, huge.mean_lipschitz, domain.diameter, synth_lib.rounding_error(huge, domain)
    )


def test_an_encoder_that_underflows_is_refused():
  """XLA on a CPU flushes subnormals to zero, in float64 too. An independent review's encoder,
  y = x / 4 - 9/8 scaled by 2^-1022 and back (exact powers of two), computes -0.0 for every
  x > 1/2, 4.5 L D away from its exact map, while a purely relative bound said 6e-15: the bound
  now counts each operation's flush, covers what happens, and the release is refused."""

  def const(v):
    return lambda key, shape, dtype=jnp.float32: jnp.full(shape, v, dtype)

  down = [linen.Dense(1, use_bias=False, kernel_init=const(2.0**-126)) for _ in range(8)]
  up = [linen.Dense(1, use_bias=False, kernel_init=const(2.0**126)) for _ in range(8)]
  encoder = lnn.LipschitzSequential(
    [linen.Dense(1, kernel_init=const(0.25), bias_init=const(-1.125))]
    + down
    + [linen.Dense(1, use_bias=False, kernel_init=const(2.0**-14))]
    + up
    + [linen.Dense(1, use_bias=False, kernel_init=const(2.0**14))]
  )
  domain = data_lib.TabularDomain([data_lib.NumericColumn("a", 0.0, 1.0)])
  config = spec_lib.ModelSpec(
    latent_dim=1, encoder_hidden=(), style_dim=0, numeric_bins=0, decoder_hidden=(4,)
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  model = model.clone(encoder_mean=encoder)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 1)), jax.random.key(1))
  certificate = synth_lib.certify_encoder(model, variables, 1)
  records = np.array([[0.0], [0.5], [0.5000001], [1.0]], np.float32)
  computed = synth_lib.encoder_means(model, variables, records)[:, 0]
  exact = 0.25 * records[:, 0].astype(np.float64) - 1.125
  assert np.max(np.abs(computed - exact)) > 0.8  # flushed: -0.0 where -1.0 was due
  error = synth_lib.rounding_error(certificate, domain)
  assert error >= np.max(np.abs(computed - exact))
  with pytest.raises(ValueError, match="underflow"):
    synth_lib.check_rounding(certificate, certificate.mean_lipschitz, domain.diameter, error)


def test_a_layer_fixed_to_float32_is_refused_and_the_report_names_float64():
  """A hand-built encoder layer whose dtype is fixed to float32 would compute in float32 inside
  the release's float64 arithmetic, unseen at the output (from an independent review): the
  certificate refuses it. A release's report names its arithmetic, float64."""
  domain = data_lib.TabularDomain([data_lib.NumericColumn(c, 0.0, 1.0) for c in "abcd"])
  config = spec_lib.ModelSpec(
    latent_dim=4, encoder_hidden=(), style_dim=0, numeric_bins=0, decoder_hidden=(4,)
  )
  model = builders.build_vae(domain, config, lipschitz_target=1.0, sigma=1.0)
  records = np.random.default_rng(0).random((8, 4)).astype(np.float32)
  for dtype in (jnp.float32, jnp.bfloat16):
    fixed = model.clone(
      encoder_mean=lnn.lipschitz_mlp((4,), lipschitz_target=1.0, dense="bjorck", dtype=dtype)
    )
    variables = fixed.init(jax.random.key(0), jnp.zeros((1, 4)), jax.random.key(1))
    with pytest.raises(TypeError, match="the encoder mean: .* computes in .*leave the layer"):
      synth_lib.synthesize(
        fixed, variables, records, domain, epsilon=1.0, delta=1e-5, scope="public", seed=0
      )
  variables = model.init(jax.random.key(0), jnp.zeros((1, 4)), jax.random.key(1))
  out = synth_lib.synthesize(
    model, variables, records, domain, epsilon=1.0, delta=1e-5, scope="public", seed=0
  )
  assert out.report.certificate["arithmetic"] == "float64"
  assert any("computed in float64 from the float32 weights" in c for c in out.report.caveats)


def _float_dtypes(jaxpr) -> set:
  """Every floating dtype of a value in `jaxpr` (a ClosedJaxpr or Jaxpr), sub-jaxprs included."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  values = list(jaxpr.invars) + list(jaxpr.constvars) + list(jaxpr.outvars)
  found = set()
  for eqn in jaxpr.eqns:
    values += list(eqn.invars) + list(eqn.outvars)
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
          found |= _float_dtypes(sub)
  for value in values:
    dtype = getattr(getattr(value, "aval", None), "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
      found.add(jnp.dtype(dtype).name)
  return found


@pytest.mark.parametrize("dense", ["bjorck", "spectral", "aol"])
@pytest.mark.parametrize("heteroscedastic", [False, True])
def test_every_value_of_the_released_map_is_float64(dense, heteroscedastic):
  """The encode step the release runs, traced for every encoder layer type the builders make
  (and the log-sigma network), holds no value in another float type: a layer that cast to
  float32 inside would bring float32's rounding back unseen at the output (from a review)."""
  domain = data_lib.TabularDomain([data_lib.NumericColumn(c, 0.0, 1.0) for c in "abcdef"])
  config = spec_lib.ModelSpec(
    latent_dim=4,
    encoder_hidden=(8,),
    decoder_hidden=(8,),
    numeric_bins=0,
    style_dim=0,
    encoder_dense=dense,
    heteroscedastic=heteroscedastic,
    sigma_min=0.5,
    sigma_max=2.0,
  )
  model = builders.build_vae(
    domain,
    config,
    lipschitz_target=1.0,
    sigma=1.0,
    log_sigma_lipschitz=0.5 if heteroscedastic else None,
  )
  variables = model.init(jax.random.key(0), jnp.zeros((1, 6)), jax.random.key(1))
  scales = (0.7, 0.3) if heteroscedastic else (1.0, 1.0)

  def encode(v, x):
    return model.apply(v, x, *scales, method=vae_lib.LipschitzVAE.encode)

  with synth_lib.release_arithmetic():
    records = jnp.asarray(np.random.default_rng(0).random((5, 6)), jnp.float64)
    traced = jax.make_jaxpr(encode)(synth_lib.in_float64(variables), records)
  assert _float_dtypes(traced) == {"float64"}
  synth_lib.certify_encoder(model, variables, 6)  # and the certificate accepts the model


def _homoscedastic_digits():
  data = data_lib.load_dataset("digits")
  config = spec_lib.ModelSpec(
    latent_dim=4, encoder_hidden=(32,), decoder_hidden=(32,), numeric_bins=0, style_dim=0
  )
  model = builders.build_vae(data.domain, config, lipschitz_target=0.05, sigma=0.5)
  variables = model.init(jax.random.key(0), jnp.zeros((1, data.domain.dim)), jax.random.key(1))
  return data, model, variables


def test_the_default_release_draws_exact_lattice_noise_at_the_requested_epsilon(hetero):
  """'auto' releases a homoscedastic model on a lattice: every latent is gamma times an integer
  near mu / gamma, the report accounts the rounded means' sensitivity, and the per-record
  epsilon is within 1e-4 below the requested one. 'float64' keeps the float sampler; a
  heteroscedastic model keeps it under 'auto' and refuses 'exact'."""
  data, model, variables = _homoscedastic_digits()
  records = data.train[:30]
  common = dict(delta=1e-5, scope="conditional", k=2, seed=3)
  out = synth_lib.synthesize(model, variables, records, data.domain, epsilon=2.0, **common)
  lattice = out.report.release.lattice
  assert lattice is not None and lattice.dim == 4
  assert out.sigma == lattice.accounted_sigma() == out.report.sigma
  lipschitz_d = privacy.sensitivity(out.report.lipschitz, out.report.diameter)
  assert out.report.sensitivity == lattice.rounded_sensitivity(lipschitz_d) > lipschitz_d
  assert 2.0 * (1 - 1e-4) <= out.report.per_record_epsilon <= 2.0
  assert 0 < out.report.certificate["rounding_error"] < 1e-10  # the float64 evaluation's
  assert any(
    "the rounding of its evaluation on the CPU is bounded" in c for c in out.report.caveats
  )
  out.report.verify(rtol=0.0)
  latents = synth_lib.release_latents(
    model, variables, records, 2, randomness.numpy_rng(3, 0), sigma=out.sigma, lattice=lattice
  )
  steps = latents / lattice.grid
  np.testing.assert_array_equal(steps, np.round(steps))
  mu = synth_lib.encoder_means(model, variables, records)
  assert np.abs(latents - mu[:, None, :]).max() < 8 * out.sigma
  with pytest.raises(ValueError, match="accounted with sigma"):
    synth_lib.release_latents(model, variables, records, 1, np.random.default_rng(0), sigma=1.0,
                              lattice=lattice)  # fmt: skip
  plain = synth_lib.synthesize(
    model, variables, records, data.domain, epsilon=2.0, noise_sampler="float64", **common
  )
  assert plain.report.release.lattice is None
  assert plain.report.per_record_epsilon == pytest.approx(2.0, rel=1e-12)
  _, hetero_model, hetero_variables = hetero
  auto = synth_lib.synthesize(
    hetero_model, hetero_variables, records, data.domain, epsilon=None, **common
  )
  assert isinstance(auto.report.release, privacy.HeteroscedasticRelease)
  with pytest.raises(ValueError, match="homoscedastic releases only"):
    synth_lib.check_noise_sampler("exact", hetero_model)
  with pytest.raises(ValueError, match="must be one of"):
    synth_lib.check_noise_sampler("discrete", model)


def test_the_release_evaluates_the_certificates_operators(hetero):
  """The released means are the certified operators' map (`EncoderCertificate.mean_chain`), not
  the layers' forward pass: with a certificate whose kernels are doubled, the means move away
  from the value at 0 twice as far, and the noise is added to exactly those means. Without
  operators, a certificate is refused."""
  data, model, variables = hetero
  records = data.train[:5]
  certificate = synth_lib.certify_encoder(model, variables, data.domain.dim)
  chain = certificate.mean_chain
  doubled = lnn.CertifiedChain(
    chain.bounds,
    tuple(
      dataclasses.replace(op, kernel=2 * op.kernel) if op.kind != "map" else op
      for op in chain.operators
    ),
  )
  # One linear layer before the activation: doubling its kernel doubles x A, and the chain
  # is piecewise linear, so compare through its first layer only.
  first = lnn.CertifiedChain(chain.bounds[:1], chain.operators[:1])
  forged_first = lnn.CertifiedChain(doubled.bounds[:1], doubled.operators[:1])
  zero = np.zeros((1, data.domain.dim), np.float32)
  inputs = np.concatenate([records, zero])

  def means(chain):
    cert = dataclasses.replace(certificate, mean_chain=chain)
    return synth_lib.encoder_means(model, variables, inputs, certificate=cert)

  plain, forged = means(first), means(forged_first)
  np.testing.assert_allclose(forged[:-1] - forged[-1], 2 * (plain[:-1] - plain[-1]), rtol=1e-12)
  released = synth_lib.encoder_means(model, variables, records)
  np.testing.assert_allclose(released, synth_lib.encoder_means(
    model, variables, records, certificate=certificate), rtol=0, atol=0)  # fmt: skip
  mu, _ = model.apply(variables, jnp.asarray(records), method=vae_lib.LipschitzVAE.encode)
  np.testing.assert_allclose(released, np.asarray(mu, np.float64), rtol=1e-5, atol=1e-6)
  rng, again = np.random.default_rng(4), np.random.default_rng(4)
  forged_cert = dataclasses.replace(certificate, mean_chain=doubled)
  latents = synth_lib.release_latents(model, variables, records, 1, rng, certificate=forged_cert)
  doubled_means = synth_lib.encoder_means(model, variables, records, certificate=forged_cert)
  sigma = np.clip(
    np.asarray(model.apply(variables, jnp.asarray(records), method=vae_lib.LipschitzVAE.encode)[1],
               np.float64), model.sigma_min, model.sigma_max)  # fmt: skip
  noise = sigma[:, None, None] * randomness.standard_normal(again, (5, 1, latents.shape[-1]))
  np.testing.assert_allclose(latents, doubled_means[:, None, :] + noise, rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="no certified operators"):
    synth_lib.encoder_means(
      model, variables, records, certificate=dataclasses.replace(certificate, mean_chain=None)
    )
  # sigma(x) too: zero kernels in the log-sigma chain leave its last bias, the same sigma for
  # every record; the certified chain itself gives the network's sigma(x).
  log_sigma = certificate.log_sigma_chain
  zeroed = dataclasses.replace(
    certificate,
    log_sigma_chain=lnn.CertifiedChain(
      log_sigma.bounds,
      tuple(
        dataclasses.replace(op, kernel=0 * op.kernel) if op.kind != "map" else op
        for op in log_sigma.operators
      ),
    ),
  )
  sigmas = {}
  for name, cert in (("certified", certificate), ("zeroed", zeroed)):
    encode = synth_lib._jitted_encode(model, cert, 1.0, 1.0)  # pylint: disable=protected-access
    with synth_lib.release_arithmetic():
      arrays = (cert.mean_chain.arrays(), cert.log_sigma_chain.arrays())
      sigmas[name] = np.asarray(encode(arrays, jnp.asarray(records))[1])
  np.testing.assert_allclose(sigmas["certified"], sigma, rtol=1e-6)
  assert np.ptp(sigmas["zeroed"]) == 0 and np.ptp(sigmas["certified"]) > 0


def test_subnormal_kernel_entries_are_certified_as_the_release_reads_them():
  """XLA on a CPU reads a subnormal float64 input as zero. A raw float64 kernel whose subnormal
  entry the forward cross-check's probes never touch (an independent review's construction:
  K1 maps the probes' span away from the small block A) was certified with the entry and
  evaluated without it, putting two released means 1.14 L D apart; the certificate now zeroes
  such entries in the kernel it bounds and evaluates, so the means stay within L D."""
  tiny = 2.0**-1022
  probes = np.asarray(
    jnp.asarray(np.random.default_rng(0).standard_normal((2, 4)), jnp.float32), np.float64
  )
  q, _ = np.linalg.qr(np.concatenate([probes.T, np.eye(4)], axis=1))  # q[:, :2] spans them
  k1 = 2.0**60 * np.stack([q[:, 0], q[:, 2], q[:, 3]], axis=1)
  small = np.array([[0.0, 0.0, tiny], [tiny, tiny, 0.0], [tiny, -0.999 * tiny, 0.0]])
  k3 = 2.0**480 * np.eye(3)
  kernels = (k1, small, k3, k3)
  encoder = lnn.LipschitzSequential([linen.Dense(3, use_bias=False) for _ in kernels])
  model = vae_lib.LipschitzVAE(encoder_mean=encoder, decoder=linen.Dense(4), sigma=1.0)
  with jax.enable_x64(True):
    params = {f"layers_{i}": {"kernel": jnp.asarray(k, jnp.float64)} for i, k in enumerate(kernels)}
    variables = {"params": {"encoder_mean": params}}
  certificate = synth_lib.certify_encoder(model, variables, 4)
  read = certificate.mean_chain.operators[1].kernel
  assert read[2, 1] == 0.0 and read[2, 0] == tiny  # the subnormal zeroed, the rest kept
  flushed = small.copy()
  flushed[2, 1] = 0.0
  u, _, _ = np.linalg.svd(flushed)
  direction = k1 @ u[:, 0] / 2.0**60  # a unit record direction onto the flushed block's top
  records = np.stack([direction, -direction]).astype(np.float32)
  means = synth_lib.encoder_means(model, variables, records, certificate=certificate)
  apart = np.linalg.norm(records[0].astype(np.float64) - records[1])
  assert np.linalg.norm(means[0] - means[1]) <= certificate.mean_lipschitz * apart
  # Records are cast to float64 on the host: a subnormal float32 coordinate reaches the map.
  identity = lnn.LipschitzSequential([linen.Dense(4, use_bias=False)])
  plain = vae_lib.LipschitzVAE(encoder_mean=identity, decoder=linen.Dense(4), sigma=1.0)
  eye = {"params": {"encoder_mean": {"layers_0": {"kernel": jnp.eye(4)}}}}
  record = np.array([[1e-40, 0.0, 0.0, 1.0]], np.float32)
  mean = synth_lib.encoder_means(plain, eye, record)
  assert mean[0, 0] == float(record[0, 0]) > 0
