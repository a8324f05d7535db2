"""The VAE's pieces: block likelihoods, the KL term, bounded heteroscedastic noise."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipdp import nn as lnn
from lipdp.data import Block
from lipdp.models import decoders
from lipdp.models import likelihood
from lipdp.models import vae as vae_lib

BLOCKS = (
  Block("image", "image", 0, 3),
  Block("age", "numeric", 3, 4),
  Block("label", "categorical", 4, 7),
)


def test_block_likelihoods_match_their_formulas():
  logits = jnp.array([[0.3, -1.0, 2.0, 0.5, 1.0, 2.0, 3.0]])
  x = jnp.array([[0.2, 1.0, 0.0, 0.4, 0.0, 0.0, 1.0]])
  p = 1 / (1 + np.exp(-np.asarray(logits[0])))
  bern = -np.sum(x[0, :3] * np.log(p[:3]) + (1 - x[0, :3]) * np.log(1 - p[:3]))
  numeric = 0.5 * ((p[3] - 0.4) / likelihood.NUMERIC_SCALE) ** 2
  softmax = np.exp(logits[0, 4:]) / np.sum(np.exp(logits[0, 4:]))
  cat = -np.log(softmax[2])
  got = likelihood.negative_log_likelihood(logits, x, BLOCKS)
  np.testing.assert_allclose(got, [bern + numeric + cat], rtol=1e-5)
  gauss = likelihood.negative_log_likelihood(logits, x, BLOCKS, image_likelihood="gaussian")
  np.testing.assert_allclose(
    gauss, [0.5 * np.sum((p[:3] - x[0, :3]) ** 2) + numeric + cat], rtol=1e-5
  )
  with pytest.raises(ValueError, match="image_likelihood"):
    likelihood.negative_log_likelihood(logits, x, BLOCKS, image_likelihood="poisson")


def test_decoded_mean_is_in_range_and_categorical_blocks_sum_to_one():
  logits = jax.random.normal(jax.random.key(0), (5, 7)) * 4
  mean = likelihood.decoded_mean(logits, BLOCKS)
  assert mean.shape == (5, 7)
  assert np.all((mean >= 0) & (mean <= 1))
  np.testing.assert_allclose(np.sum(mean[:, 4:], axis=1), 1.0, rtol=1e-6)


def test_gaussian_kl_matches_monte_carlo():
  mu = jnp.array([[0.5, -1.0, 2.0]])
  sigma = jnp.array([0.7])
  z = mu + sigma[:, None] * jax.random.normal(jax.random.key(1), (200_000, 3))
  log_q = -0.5 * jnp.sum(((z - mu) / sigma[:, None]) ** 2, 1) - 3 * jnp.log(sigma)
  log_p = -0.5 * jnp.sum(z**2, 1)
  np.testing.assert_allclose(vae_lib.gaussian_kl(mu, sigma)[0], jnp.mean(log_q - log_p), rtol=2e-2)


def test_heteroscedastic_sigma_stays_within_its_bounds():
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((8, 4), lipschitz_target=1.0),
    decoder=decoders.MLPDecoder((8,), 7),
    log_sigma_net=lnn.lipschitz_mlp((8, 1), lipschitz_target=50.0),
    sigma_min=0.5,
    sigma_max=2.0,
  )
  x = jax.random.normal(jax.random.key(2), (256, 7)) * 10
  variables = model.init(jax.random.key(3), x, jax.random.key(4))
  _, sigma = model.apply(variables, x, method=vae_lib.LipschitzVAE.encode)
  assert float(sigma.min()) >= 0.5 * (1 - 1e-6) and float(sigma.max()) <= 2.0 * (1 + 1e-6)
  assert float(sigma.min()) < 0.6 and float(sigma.max()) > 1.9  # the clip is reached both ways


def test_conv_decoder_shapes_and_errors():
  dec = decoders.ConvDecoder((8, 8, 1), 74)
  out, _ = dec.init_with_output(jax.random.key(0), jnp.zeros((3, 16)))
  assert out.shape == (3, 74)
  with pytest.raises(ValueError, match="divisible by 4"):
    decoders.ConvDecoder((6, 6, 1), 36).init(jax.random.key(0), jnp.zeros((1, 4)))


def test_scaled_label_blocks_have_the_likelihood_of_the_category():
  scaled = (BLOCKS[0], BLOCKS[1], Block("label", "categorical", 4, 7, scale=5.0))
  logits = jnp.array([[0.3, -1.0, 2.0, 0.5, 1.0, 2.0, 3.0]])
  x = jnp.array([[0.2, 1.0, 0.0, 0.4, 0.0, 0.0, 1.0]])
  x_scaled = x.at[0, 4:].multiply(5.0)
  np.testing.assert_allclose(
    likelihood.negative_log_likelihood(logits, x_scaled, scaled),
    likelihood.negative_log_likelihood(logits, x, BLOCKS),
    rtol=1e-6,
  )
  mean = likelihood.decoded_mean(logits, scaled)
  np.testing.assert_allclose(jnp.sum(mean[0, 4:]), 5.0, rtol=1e-6)


def test_style_latent_enters_the_decoder_and_its_kl_the_loss():
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((8, 4), lipschitz_target=1.0),
    decoder=decoders.MLPDecoder((8,), 7),
    style_encoder=decoders.MLPDecoder((8,), 6),
    style_dim=3,
  )
  x = jax.random.uniform(jax.random.key(2), (5, 7))
  variables = model.init(jax.random.key(3), x, jax.random.key(4))
  z = jnp.zeros((5, 4))
  u1, u2 = jnp.zeros((5, 3)), jnp.ones((5, 3))
  a = model.apply(variables, z, u1, method=vae_lib.LipschitzVAE.decode)
  b = model.apply(variables, z, u2, method=vae_lib.LipschitzVAE.decode)
  assert a.shape == (5, 7) and not np.allclose(a, b)  # u changes the output
  with pytest.raises(ValueError, match="style latent"):
    model.apply(variables, z, method=vae_lib.LipschitzVAE.decode)
  (loss, nll, kl), _ = vae_lib.negative_elbo(
    model, variables, x, jax.random.key(5), BLOCKS, beta=0.0
  )
  m, log_v = model.apply(variables, x, method=vae_lib.LipschitzVAE.encode_style)
  style_kl = 0.5 * np.sum(np.square(m) + np.exp(log_v) - 1.0 - log_v, axis=-1)
  np.testing.assert_allclose(loss, nll + style_kl, rtol=1e-5)  # beta = 0 for z, 1 for u


def test_a_label_conditioned_decoder_reads_the_records_label_block():
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((8, 4), lipschitz_target=1.0),
    decoder=decoders.MLPDecoder((8,), 7),
    condition_block=(4, 7),
  )
  x = jax.random.uniform(jax.random.key(2), (5, 7))
  variables = model.init(jax.random.key(3), x, jax.random.key(4))
  assert variables["params"]["decoder"]["dense_0"]["kernel"].shape == (4 + 3, 8)
  z = jnp.zeros((5, 4))
  decode = vae_lib.LipschitzVAE.decode
  a = model.apply(variables, z, None, jnp.eye(3)[jnp.array([0, 1, 2, 0, 1])], method=decode)
  b = model.apply(variables, z, None, jnp.eye(3)[jnp.array([1, 2, 0, 1, 2])], method=decode)
  assert not np.allclose(a, b)  # the label changes the output
  with pytest.raises(ValueError, match="label-conditioned"):
    model.apply(variables, z, method=decode)
  # In training the decoder reads the record's own label block next to its noisy latent.
  logits, _, _, z_drawn, _, log_prior = model.apply(variables, x, jax.random.key(6))
  assert log_prior is None  # no learned label prior
  np.testing.assert_allclose(
    logits, model.apply(variables, z_drawn, None, x[:, 4:7], method=decode), rtol=1e-6
  )
  unconditioned = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((8, 4), lipschitz_target=1.0),
    decoder=decoders.MLPDecoder((8,), 7),
  )
  plain = unconditioned.init(jax.random.key(3), x, jax.random.key(4))
  with pytest.raises(ValueError, match="label-conditioned"):
    unconditioned.apply(plain, z, None, x[:, 4:7], method=decode)


def test_a_learned_label_prior_adds_minus_log_p_of_the_label_to_the_loss_and_learns_it():
  """The joint p(y) p(z) p(x | z, y): -log p(y) enters each record's loss with the label's
  weight, starts uniform whatever the data, and its gradient moves p(y) towards the labels."""
  blocks = (
    Block("x", "numeric", 0, 1),
    Block("y", "categorical", 1, 4, ("a", "b", "c")),
  )
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((8, 2), lipschitz_target=1.0),
    decoder=decoders.MLPDecoder((8,), 4),
    condition_block=(1, 4),
    label_prior=nn.Dense(3, use_bias=False, kernel_init=nn.initializers.zeros),
  )
  labels = np.array([0, 0, 0, 1])  # class 2 never occurs
  x = jnp.concatenate([jnp.full((4, 1), 0.3), 2.0 * jnp.eye(3)[labels]], axis=-1)  # scaled one-hot
  variables = model.init(jax.random.key(0), x, jax.random.key(1))
  log_prior = model.apply(variables, x, method=vae_lib.LipschitzVAE.label_log_prior)
  np.testing.assert_allclose(log_prior, np.full(4, -np.log(3.0)), rtol=1e-6)
  key = jax.random.key(2)
  for weights in (None, {"y": 5.0}):
    (_, nll, _), _ = vae_lib.negative_elbo(model, variables, x, key, blocks, block_weights=weights)
    decoder_nll = likelihood.negative_log_likelihood(
      model.apply(variables, x, key)[0], x, blocks, block_weights=weights
    )
    w = 1.0 if weights is None else 5.0
    np.testing.assert_allclose(nll, decoder_nll + w * np.log(3.0), rtol=1e-5)

  def mean_loss(params):
    return jnp.mean(vae_lib.negative_elbo(model, {"params": params}, x, key, blocks)[0][0])

  grad = jax.grad(mean_loss)(variables["params"])["label_prior"]["kernel"][0]
  # d/dw of mean -log softmax(w)[y] at w = 0 is 1/3 - (3/4, 1/4, 0).
  np.testing.assert_allclose(grad, np.array([1 / 3 - 3 / 4, 1 / 3 - 1 / 4, 1 / 3]), atol=1e-6)
  unconditioned = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((8, 2), lipschitz_target=1.0),
    decoder=decoders.MLPDecoder((8,), 4),
    label_prior=nn.Dense(3, use_bias=False),
  )
  with pytest.raises(ValueError, match="needs a label-conditioned decoder"):
    unconditioned.init(jax.random.key(0), x, jax.random.key(1))


def test_block_weights_scale_only_the_named_blocks_likelihood():
  logits = jax.random.normal(jax.random.key(3), (4, 7))
  x = jnp.array([[0.2, 1.0, 0.0, 0.4, 0.0, 0.0, 1.0]] * 4)
  per_block = {
    b.name: likelihood.negative_log_likelihood(
      logits[:, b.start : b.stop], x[:, b.start : b.stop], (b._replace(start=0, stop=b.size),)
    )
    for b in BLOCKS
  }
  weighted = likelihood.negative_log_likelihood(logits, x, BLOCKS, block_weights={"label": 50.0})
  expected = per_block["image"] + per_block["age"] + 50.0 * per_block["label"]
  np.testing.assert_allclose(weighted, expected, rtol=1e-5)
  with pytest.raises(ValueError, match="names no block"):
    likelihood.negative_log_likelihood(logits, x, BLOCKS, block_weights={"lable": 2.0})


def test_binned_numeric_likelihood_is_a_piecewise_constant_density():
  bins = 4
  blocks = (Block("age", "numeric", 0, 1), Block("label", "categorical", 1, 3))
  assert likelihood.output_sizes(blocks, bins) == (4, 2)
  assert likelihood.output_dim(blocks, 0) == 3
  logits = jnp.array([[0.0, 1.0, 2.0, -1.0, 0.5, -0.5]])
  p = np.exp(logits[0, :4]) / np.sum(np.exp(logits[0, :4]))
  q = np.exp(logits[0, 4:]) / np.sum(np.exp(logits[0, 4:]))
  for value, b in ((0.0, 0), (0.3, 1), (0.74, 2), (1.0, 3)):  # the top edge is in the last bin
    x = jnp.array([[value, 0.0, 1.0]])
    got = likelihood.negative_log_likelihood(logits, x, blocks, numeric_bins=bins)
    np.testing.assert_allclose(got, [-np.log(p[b] * bins) - np.log(q[1])], rtol=1e-5)
  # The density integrates to one over [0, 1]: sum_b p_b * B * (1 / B).
  grid = jnp.linspace(0.0, 1.0, 4001)[:-1, None] + 0.5 / 4000
  records = jnp.concatenate([grid, jnp.zeros_like(grid), jnp.ones_like(grid)], axis=1)
  dens = jnp.exp(
    -likelihood.negative_log_likelihood(
      jnp.broadcast_to(logits, (4000, 6)), records, blocks, numeric_bins=bins
    )
  )
  assert float(jnp.mean(dens / q[1])) == pytest.approx(1.0, rel=1e-4)
  with pytest.raises(ValueError, match="numeric_bins"):
    likelihood.output_sizes(blocks, 1)
  with pytest.raises(ValueError, match="decoder outputs 3 values"):
    likelihood.negative_log_likelihood(logits[:, :3], x, blocks, numeric_bins=bins)


def test_the_numeric_likelihood_is_chosen_per_column_from_the_declared_type():
  """'auto': bins for the columns declared integer, a Gaussian for the others; the per-block
  layout scores and draws each column with its own likelihood."""
  from lipdp.data import CategoricalColumn, NumericColumn, TabularDomain

  domain = TabularDomain(
    [
      NumericColumn("days", 0.0, 100.0, integer=True),
      NumericColumn("radius", 0.0, 30.0),
      CategoricalColumn("job", ("a", "b")),
    ]
  )
  blocks = domain.blocks
  assert likelihood.numeric_bins_for(domain, "auto", 8) == (8, 0, 0)
  assert likelihood.numeric_bins_for(domain, "binned", 8) == (8, 8, 0)
  assert likelihood.numeric_bins_for(domain, "gaussian", 8) == (0, 0, 0)
  assert likelihood.numeric_bins_for(domain, "binned", 0) == (0, 0, 0)
  with pytest.raises(ValueError, match="numeric likelihood must be one of"):
    likelihood.numeric_bins_for(domain, "bins", 8)
  per_block = likelihood.numeric_bins_for(domain, "auto", 4)
  assert likelihood.output_sizes(blocks, per_block) == (4, 1, 2)
  with pytest.raises(ValueError, match="one per block"):
    likelihood.output_sizes(blocks, (4, 0))
  with pytest.raises(ValueError, match="not numeric"):
    likelihood.output_sizes(blocks, (4, 0, 2))
  # Each column's term is its own likelihood's: the binned one for days, the Gaussian for radius.
  logits = jnp.array([[0.0, 1.0, 2.0, -1.0, 0.3, 0.5, -0.5]])
  x = jnp.array([[0.3, 0.6, 1.0, 0.0]])
  got = likelihood.negative_log_likelihood(logits, x, blocks, numeric_bins=per_block)
  binned = likelihood.negative_log_likelihood(logits[:, :4], x[:, :1], (blocks[0],), numeric_bins=4)
  gauss = likelihood.negative_log_likelihood(
    logits[:, 4:5], x[:, 1:2], (blocks[1]._replace(start=0, stop=1),), numeric_bins=0
  )
  job = likelihood.negative_log_likelihood(
    logits[:, 5:], x[:, 2:], (blocks[2]._replace(start=0, stop=2),)
  )
  np.testing.assert_allclose(got, binned + gauss + job, rtol=1e-6)
  u = jax.random.uniform(jax.random.key(0), (1000, likelihood.num_uniforms(blocks)))
  drawn = np.asarray(
    likelihood.sampled_record(jnp.broadcast_to(logits, (1000, 7)), blocks, u, per_block)
  )
  assert drawn.shape == (1000, 4)
  assert np.std(drawn[:, 1]) == pytest.approx(likelihood.NUMERIC_SCALE, rel=0.1)
  mean = np.asarray(likelihood.decoded_mean(logits, blocks, per_block))[0]
  assert mean[1] == pytest.approx(float(jax.nn.sigmoid(0.3)), rel=1e-6)


def test_declared_bin_edges_make_a_density_that_keeps_a_spike():
  """'declared': a column's own bin edges; the density is p_b / w_b on bin b, integrates to
  one, and a draw in a narrow first bin decodes back to the value that bin isolates."""
  from lipdp.data import CategoricalColumn, NumericColumn, TabularDomain

  domain = TabularDomain(
    [
      NumericColumn("pdays", -1, 999, integer=True, bins=[-1, -0.5, 30, 999]),
      NumericColumn("days", 0.0, 100.0, integer=True),
      NumericColumn("radius", 0.0, 30.0, bins=4),
      CategoricalColumn("job", ("a", "b")),
    ]
  )
  edges = (0.0, 0.0005, 0.031, 1.0)
  per_block = likelihood.numeric_bins_for(domain, "declared", 8)
  np.testing.assert_allclose(per_block[0], edges)
  assert per_block[1:] == (8, (0.0, 0.25, 0.5, 0.75, 1.0), 0)  # undeclared: as 'auto'
  assert likelihood.numeric_bins_for(domain, "auto", 8) == (8, 8, 0, 0)
  assert likelihood.output_sizes(domain.blocks, per_block) == (3, 8, 4, 2)
  with pytest.raises(ValueError, match="one bin"):
    likelihood.numeric_bins_for(
      TabularDomain([NumericColumn("t", 0, 1, bins=1), CategoricalColumn("c", (0, 1))]),
      "declared",
      8,
    )
  for bad in ((0.0, 1.0), (0.0, 0.6, 0.5, 1.0), (0.1, 0.5, 1.0)):
    with pytest.raises(ValueError, match="bin edges"):
      likelihood.output_sizes(domain.blocks[:1], (bad,))
  block = domain.blocks[:1]
  row = jnp.array([0.5, -1.0, 1.0])
  p = np.exp(row) / np.sum(np.exp(row))
  widths = np.diff(edges)
  # A value exactly at a declared edge (-0.5, i.e. 0.0005) belongs to the upper bin.
  for value, b in ((-1, 0), (-0.5, 1), (10, 1), (30, 2), (999, 2)):
    x = jnp.asarray(domain.encode({"pdays": [value], "days": [0], "radius": [0], "job": ["a"]}))
    got = likelihood.negative_log_likelihood(row[None], x[:, :1], block, numeric_bins=(edges,))
    np.testing.assert_allclose(got, [-np.log(p[b] / widths[b])], rtol=1e-5)
  # Integrates to one: sum over bins of (density on the bin) * (its width).
  mids = jnp.asarray((np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2)[:, None]
  dens = np.exp(
    -np.asarray(
      likelihood.negative_log_likelihood(
        jnp.broadcast_to(row, (3, 3)), mids, block, numeric_bins=(edges,)
      )
    )
  )
  assert float(np.sum(dens * widths)) == pytest.approx(1.0, rel=1e-5)
  # Draws: bin frequencies p, each value inside its bin, and the first bin decodes to -1.
  n = 100_000
  u = jax.random.uniform(jax.random.key(1), (n, 2))
  drawn = np.asarray(
    likelihood.sampled_record(jnp.broadcast_to(row, (n, 3)), block, u, numeric_bins=(edges,))
  )[:, 0]
  from lipdp.data import bins as bins_lib

  which = bins_lib.bin_of(drawn, np.asarray(edges))
  np.testing.assert_allclose(np.bincount(which, minlength=3) / n, p, atol=5e-3)
  pdays = domain.column("pdays")
  decoded = np.rint(pdays.low + drawn * (pdays.high - pdays.low))
  assert np.array_equal(decoded == -1, which == 0)
  mean = np.asarray(likelihood.decoded_mean(row[None], block, numeric_bins=(edges,)))[0, 0]
  assert mean == pytest.approx(float(p @ np.asarray(mids[:, 0])), rel=1e-5)


def test_sampled_records_follow_the_decoder_likelihood():
  """Drawn categories and bins have the softmax frequencies; the mean decoding keeps the mode."""
  bins, n = 4, 200_000
  blocks = (Block("age", "numeric", 0, 1), Block("job", "categorical", 1, 4, scale=2.0))
  row = jnp.array([0.0, 1.0, 2.0, -1.0, 1.5, 0.0, -1.0])
  logits = jnp.broadcast_to(row, (n, 7))
  u = jax.random.uniform(jax.random.key(0), (n, likelihood.num_uniforms(blocks)))
  drawn = np.asarray(likelihood.sampled_record(logits, blocks, u, numeric_bins=bins))
  p_bins = np.exp(row[:4]) / np.sum(np.exp(row[:4]))
  p_cats = np.exp(row[4:]) / np.sum(np.exp(row[4:]))
  assert np.all((drawn[:, 0] >= 0) & (drawn[:, 0] <= 1))
  freq_bins = np.bincount(np.minimum((drawn[:, 0] * bins).astype(int), bins - 1), minlength=4) / n
  np.testing.assert_allclose(freq_bins, p_bins, atol=4e-3)
  # Uniform inside a bin: the fraction in the lower half of bin 2 is a half.
  in_bin = drawn[(drawn[:, 0] >= 0.5) & (drawn[:, 0] < 0.75), 0]
  assert np.mean(in_bin < 0.625) == pytest.approx(0.5, abs=0.01)
  assert set(np.unique(drawn[:, 1:])) == {0.0, 2.0}  # scaled one-hots
  np.testing.assert_allclose(np.mean(drawn[:, 1:] / 2.0, axis=0), p_cats, atol=4e-3)
  mean = np.asarray(likelihood.decoded_mean(row[None], blocks, numeric_bins=bins))[0]
  assert mean[0] == pytest.approx(float(p_bins @ ((np.arange(4) + 0.5) / 4)), rel=1e-5)
  assert np.argmax(mean[1:]) == 0
  # The Gaussian numeric likelihood draws around sigmoid(logit) with NUMERIC_SCALE, clipped.
  gauss = (Block("x", "numeric", 0, 1),)
  lg = jnp.zeros((n, 1))
  draws = np.asarray(likelihood.sampled_record(lg, gauss, u[:, :2], numeric_bins=0))[:, 0]
  assert np.mean(draws) == pytest.approx(0.5, abs=2e-3)
  assert np.std(draws) == pytest.approx(likelihood.NUMERIC_SCALE, rel=0.02)


def test_drawn_pixels_follow_their_bernoulli_likelihood():
  """draw_pixels: binary pixels with frequency sigmoid(logit), one uniform per pixel read before
  the next block's; without it an image keeps its mean intensity and reads no uniform."""
  n = 100_000
  blocks = (Block("image", "image", 0, 3), Block("label", "categorical", 3, 5))
  row = jnp.array([-2.0, 0.0, 1.5, 0.5, -0.5])
  logits = jnp.broadcast_to(row, (n, 5))
  assert likelihood.num_uniforms(blocks) == 1
  assert likelihood.num_uniforms(blocks, draw_pixels=True) == 4
  u = jax.random.uniform(jax.random.key(1), (n, 4))
  drawn = np.asarray(likelihood.sampled_record(logits, blocks, u, draw_pixels=True))
  assert set(np.unique(drawn[:, :3])) == {0.0, 1.0}
  np.testing.assert_allclose(np.mean(drawn[:, :3], axis=0), jax.nn.sigmoid(row[:3]), atol=5e-3)
  np.testing.assert_array_equal(drawn[:, :3], np.asarray(u[:, :3] < jax.nn.sigmoid(row[:3])))
  # The label reads the uniform after the pixels', the same draw as from that uniform alone.
  label_only = np.asarray(likelihood.sampled_record(logits, blocks, u[:, 3:]))
  np.testing.assert_array_equal(drawn[:, 3:], label_only[:, 3:])
  np.testing.assert_allclose(label_only[:, :3], np.broadcast_to(jax.nn.sigmoid(row[:3]), (n, 3)))
  with pytest.raises(ValueError, match="need 4 uniforms per record, got 1"):
    likelihood.sampled_record(logits, blocks, u[:, :1], draw_pixels=True)


def test_the_elbo_reads_the_models_numeric_likelihood():
  """A model built with binned numeric columns scores records with the binned density."""
  blocks = (Block("age", "numeric", 0, 1), Block("label", "categorical", 1, 3))
  decoder = decoders.MLPDecoder((4,), likelihood.output_dim(blocks, 8))
  model = vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((4, 2)), decoder=decoder, sigma=1.0, numeric_bins=8
  )
  x = jnp.array([[0.3, 1.0, 0.0], [0.9, 0.0, 1.0]])
  variables = model.init(jax.random.key(0), x, jax.random.key(1))
  (loss, nll, _), _ = vae_lib.negative_elbo(model, variables, x, jax.random.key(2), blocks)
  logits = model.apply(variables, x, jax.random.key(2))[0]
  expected = likelihood.negative_log_likelihood(logits, x, blocks, numeric_bins=8)
  np.testing.assert_allclose(nll, expected, rtol=1e-6)
  assert loss.shape == (2,)


def test_auto_decoding_samples_tables_and_takes_the_mean_of_images():
  table = (Block("age", "numeric", 0, 1), Block("job", "categorical", 1, 3))
  assert likelihood.resolve_decoding("auto", table) == "sample"
  assert likelihood.resolve_decoding("auto", BLOCKS) == "mean"  # BLOCKS holds an image
  assert likelihood.resolve_decoding("sample", BLOCKS) == "sample"
  with pytest.raises(ValueError, match="decoding must be one of"):
    likelihood.resolve_decoding("mode", table)


def _noise_model():
  return vae_lib.LipschitzVAE(
    encoder_mean=lnn.lipschitz_mlp((8, 4), lipschitz_target=1.0),
    decoder=decoders.MLPDecoder((8,), 7),
    style_encoder=decoders.MLPDecoder((8,), 6),
    style_dim=3,
    condition_block=(4, 7),
  )


def test_noise_samples_average_the_reconstruction_over_independent_draws():
  """S draws per record: the loss is the mean of S one-draw reconstruction terms, each with
  its own z and u, plus the same closed-form KL; one draw is the one-draw loss bit for bit."""
  model = _noise_model()
  x = jax.random.uniform(jax.random.key(2), (5, 7))
  variables = model.init(jax.random.key(3), x, jax.random.key(4))
  key = jax.random.key(5)
  (one, nll_one, kl_one), _ = vae_lib.negative_elbo(model, variables, x, key, BLOCKS)
  (same, _, _), _ = vae_lib.negative_elbo(model, variables, x, key, BLOCKS, noise_samples=1)
  np.testing.assert_array_equal(one, same)
  logits, mu, sigma, z, (m, log_v), _ = model.apply(variables, x, key, 4)
  assert logits.shape == (4, 5, 7) and z.shape == (4, 5, 4)
  assert not np.allclose(z[0], z[1])  # independent draws
  # Each draw's logits are the decoder's at that draw's z and u, with the record's own label.
  z_key, u_key = jax.random.split(key)
  u = m + np.exp(0.5 * log_v) * jax.random.normal(u_key, (4,) + m.shape)
  expected = model.apply(variables, z[2], u[2], x[:, 4:7], method=vae_lib.LipschitzVAE.decode)
  np.testing.assert_allclose(logits[2], expected, rtol=1e-5, atol=1e-6)
  (loss, nll, kl), _ = vae_lib.negative_elbo(model, variables, x, key, BLOCKS, noise_samples=4)
  per_draw = jnp.stack([likelihood.negative_log_likelihood(logits[s], x, BLOCKS) for s in range(4)])
  np.testing.assert_allclose(nll, jnp.mean(per_draw, axis=0), rtol=1e-5)
  np.testing.assert_allclose(kl, kl_one, rtol=1e-6)  # exact: no draw enters it
  np.testing.assert_allclose(loss, nll + kl, rtol=1e-5)
  with pytest.raises(ValueError, match="noise_samples must be >= 1"):
    model.apply(variables, x, key, 0)


def test_more_noise_samples_lower_the_variance_of_the_loss():
  model = _noise_model()
  x = jax.random.uniform(jax.random.key(2), (5, 7))
  variables = model.init(jax.random.key(3), x, jax.random.key(4))

  def loss(key, samples):
    (loss, _, _), _ = vae_lib.negative_elbo(model, variables, x, key, BLOCKS, noise_samples=samples)
    return loss

  def spread(samples):
    losses = [loss(jax.random.key(k), samples) for k in range(40)]
    return np.var(np.stack(losses), axis=0).mean()

  # Independent draws: the variance falls about as 1 / S (here 8 draws against 1).
  assert spread(8) < 0.3 * spread(1)
