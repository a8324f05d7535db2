"""The Lipschitz VAE: a certified-Lipschitz encoder mean, Gaussian encoder noise, any decoder.

Encoder: z = mu(x) + sigma(x) * xi, xi ~ N(0, I_d), where mu is a `lipdp.nn.LipschitzSequential`
whose Lipschitz constant (l2 -> l2) is certified from its weights by
`lipdp.nn.certified_lipschitz_bound`. Releasing z for a record x in a domain of diameter D is the
Gaussian mechanism with sensitivity L * D (docs/method.md); decoding z is post-processing.

Noise:
- homoscedastic (default): sigma is a fixed float, set from the privacy calibration before
  training so the decoder learns to decode at the noise level it will see at synthesis time;
- heteroscedastic: log sigma(x) = clip(g(x), log sigma_min, log sigma_max) with g a certified
  L_s-Lipschitz network with one output. Clipping is 1-Lipschitz, so log sigma is L_s-Lipschitz
  and bounded, which is what `lipdp.privacy.heteroscedastic` accounts for.

Loss: the negative ELBO, E_q[-log p(x|z)] + beta * KL(q(z|x) || N(0, I)) with
KL = 0.5 * sum_j (mu_j^2 + sigma^2 - 1 - 2 log sigma) (Kingma and Welling 2014, appendix B).

Style latent (optional). With `style_encoder` set, the decoder reads a second latent u next to
z: p(x | z, u), with an unconstrained encoder q(u | x) = N(m(x), diag v(x)) and the standard
KL(q(u|x) || N(0, I)) in the loss (weight 1). Only z is released per record; at synthesis u is
drawn from its prior N(0, I), independently of the data, so decoding stays post-processing.
Where z carries little (small epsilon), u lets the decoder *sample* realistic records instead of
returning the blurry posterior mean E[x | z]; the model is then a VAE sampled from its prior.

Label-conditioned decoder (optional). With `condition_block` = (start, stop), the coordinates of
the record's label block, the decoder reads them next to z (and u): p(x | z, u, y), a
conditional VAE (Sohn et al. 2015). In training y is the record's own label; at synthesis it is
drawn independently of the data (`lipdp.latent_release.decode_latents`), so decoding stays
post-processing, and the decoded record's label block is set to it: the label does not have to
travel through a latent that the certificate lets move by about one noise standard deviation.

Learned label prior (optional, with the conditioned decoder). The class y is then drawn from
p(y) = softmax(w), a vector of C logits that is part of the model: the model is the joint
p(y) p(z) p(x | z, y) (Sohn et al. 2015, section 4.1, with a categorical p(y)), whose negative ELBO
adds -log p(y) to each record's loss, weighted as the label's likelihood term. Trained with the
rest of the weights (under DP-SGD, inside the training event), it gives unbalanced labels, a
table's, their marginal at no extra privacy cost: drawing y from it is post-processing of the
weights. Without it y is drawn uniformly over the classes. w is the kernel of a dense layer
without bias applied to the constant input 1, so DP-SGD's ghost clipping handles it as any dense
layer (`lipdp.training.ghost_clipping`).
"""

from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lipdp.models import likelihood


class LipschitzVAE(nn.Module):
  """VAE whose encoder mean is a certified-Lipschitz network.

  Attributes:
    encoder_mean: maps a record (dim,) to a latent mean (latent_dim,); must be certifiable by
      `lipdp.nn.certified_lipschitz_bound` for the privacy report.
    decoder: maps a latent (latent_dim,) to one logit per record coordinate (dim,).
    sigma: the homoscedastic encoder noise; ignored when `log_sigma_net` is given.
    log_sigma_net: optional certified-Lipschitz network with one output (heteroscedastic noise).
    sigma_min, sigma_max: bounds of the heteroscedastic noise.
    lipschitz_target: the Lipschitz constant the encoder mean was built to have (a target;
      the privacy report uses the certificate, see `lipdp.latent_release`).
    log_sigma_lipschitz_target: likewise for log sigma(x) (heteroscedastic only).
    style_encoder: optional network x -> 2 * style_dim values, the mean and log-variance of the
      style latent u (see the module docstring); never used at release.
    style_dim: the dimension of u (0 without a style latent).
    numeric_bins: the decoder's likelihood of numeric columns: B > 0 equal-width bins on
      [0, 1], or 0 for a Gaussian, for every numeric column, or per block a count or a tuple
      of bin edges in [0, 1] (`lipdp.models.likelihood.bins_per_block`); it sets the output
      layout.
    condition_block: optional (start, stop) of the label block the decoder is conditioned on
      (see the module docstring); None for an unconditioned decoder.
    label_prior: optional dense layer without bias, C outputs, whose kernel holds the logits
      of the learned label prior p(y) (module docstring); needs `condition_block`.
  """

  encoder_mean: nn.Module
  decoder: nn.Module
  sigma: float = 1.0
  log_sigma_net: Optional[nn.Module] = None
  sigma_min: float = 0.5
  sigma_max: float = 2.0
  lipschitz_target: Optional[float] = None
  log_sigma_lipschitz_target: Optional[float] = None
  style_encoder: Optional[nn.Module] = None
  style_dim: int = 0
  numeric_bins: likelihood.NumericBins = 0
  condition_block: Optional[tuple[int, int]] = None
  label_prior: Optional[nn.Module] = None

  @property
  def heteroscedastic(self) -> bool:
    return self.log_sigma_net is not None

  def encode(
    self, x: jax.Array, mean_scale: float = 1.0, log_sigma_scale: float = 1.0
  ) -> tuple[jax.Array, jax.Array]:
    """Returns (mu, sigma): mu of shape (batch, latent_dim), sigma of shape (batch,).

    `mean_scale` and `log_sigma_scale` (<= 1, used at release) multiply mu(x) and the output of
    the log-sigma network before its clamp, and so their Lipschitz constants.
    """
    mu = self.encoder_mean(x) * mean_scale
    if self.heteroscedastic:
      log_sigma = jnp.clip(
        self.log_sigma_net(x)[..., 0] * log_sigma_scale,
        jnp.log(self.sigma_min),
        jnp.log(self.sigma_max),
      )
      sigma = jnp.exp(log_sigma)
    else:
      sigma = jnp.full(mu.shape[:-1], self.sigma, dtype=mu.dtype)
    return mu, sigma

  def encode_style(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, log-variance) of q(u | x), each (batch, style_dim)."""
    out = self.style_encoder(x)
    return out[..., : self.style_dim], out[..., self.style_dim :]

  def decode(
    self, z: jax.Array, u: Optional[jax.Array] = None, condition: Optional[jax.Array] = None
  ) -> jax.Array:
    """Decoder logits for latents z (and style latents u, required with a style encoder; and
    the label block's values `condition`, required with a label-conditioned decoder)."""
    if (u is None) != (self.style_encoder is None):
      raise ValueError("decode needs the style latent u exactly when the model has a style encoder")
    if (condition is None) != (self.condition_block is None):
      raise ValueError(
        "decode needs the label block's values exactly when the decoder is label-conditioned"
      )
    inputs = [z] + [v for v in (u, condition) if v is not None]
    return self.decoder(inputs[0] if len(inputs) == 1 else jnp.concatenate(inputs, axis=-1))

  def condition_of(self, x: jax.Array) -> Optional[jax.Array]:
    """The record's label block (what the decoder is conditioned on), or None."""
    if self.condition_block is None:
      return None
    start, stop = self.condition_block
    return x[..., start:stop]

  def label_prior_logits(self, batch_shape: tuple = (1,)) -> jax.Array:
    """The learned label prior's logits w, broadcast to batch_shape + (C,)."""
    if self.label_prior is None:
      raise ValueError("the model has no learned label prior")
    # One constant input per record, so that each record's loss reads the layer once.
    return self.label_prior(jnp.ones(tuple(batch_shape) + (1,), jnp.float32))

  def label_log_prior(self, x: jax.Array) -> Optional[jax.Array]:
    """log p(y) of each record's label under the learned prior (batch,), or None without one."""
    if self.label_prior is None:
      return None
    if self.condition_block is None:
      raise ValueError("a learned label prior needs a label-conditioned decoder")
    log_p = jax.nn.log_softmax(self.label_prior_logits(x.shape[:-1]), axis=-1)
    # The label block is a scaled one-hot: its largest coordinate is the class.
    label = jax.nn.one_hot(jnp.argmax(self.condition_of(x), axis=-1), log_p.shape[-1])
    return jnp.sum(label * log_p, axis=-1)

  def __call__(self, x: jax.Array, rng: jax.Array, noise_samples: int = 1):
    """(logits, mu, sigma, z, style, label_log_prior) for records x (batch, dim); style =
    (m, log v) or None; label_log_prior = log p(y) of each record's label or None.

    With `noise_samples` = S > 1, z (and u) are drawn S times per record and logits and z gain a
    leading axis of S (noise multiplicity; `negative_elbo`). The encoders run once per record,
    and the decoder once on all S * batch latents, so each layer is called once per call.
    """
    if noise_samples < 1:
      raise ValueError(f"noise_samples must be >= 1, got {noise_samples}")
    mu, sigma = self.encode(x)
    z_key, u_key = jax.random.split(rng)
    # S = 1 keeps the one-draw shapes, so its draws are the one-draw model's bit for bit.
    draws = () if noise_samples == 1 else (noise_samples,)
    z = mu + sigma[..., None] * jax.random.normal(z_key, draws + mu.shape, mu.dtype)
    condition = self.condition_of(x)
    log_prior = self.label_log_prior(x)
    style, u = None, None
    if self.style_encoder is not None:
      m, log_v = self.encode_style(x)
      style = (m, log_v)
      u = m + jnp.exp(0.5 * log_v) * jax.random.normal(u_key, draws + m.shape, m.dtype)
    # The decoder sees the S * batch latents in one call (the decoders take a 2-D batch; with
    # S = 1 the reshapes change nothing).
    flat = lambda v: None if v is None else v.reshape((-1, v.shape[-1]))
    if condition is not None:
      condition = jnp.broadcast_to(condition, draws + condition.shape)
    logits = self.decode(flat(z), flat(u), flat(condition))
    logits = logits.reshape(draws + x.shape[:-1] + logits.shape[-1:])
    return logits, mu, sigma, z, style, log_prior


def label_block(model: LipschitzVAE, blocks: Sequence):
  """The block (`lipdp.data.Block`) a label-conditioned model's decoder reads."""
  start, stop = model.condition_block
  return next(b for b in blocks if (b.start, b.stop) == (start, stop))


def gaussian_kl(mu: jax.Array, sigma: jax.Array) -> jax.Array:
  """KL(N(mu, sigma^2 I) || N(0, I)) per record; mu (batch, d), sigma (batch,)."""
  d = mu.shape[-1]
  return 0.5 * (
    jnp.sum(jnp.square(mu), axis=-1) + d * (jnp.square(sigma) - 1.0 - 2.0 * jnp.log(sigma))
  )


def negative_elbo(
  model: LipschitzVAE,
  variables: Any,
  records: jax.Array,
  rng: jax.Array,
  blocks: Sequence,
  image_likelihood: str = "bernoulli",
  beta: float = 1.0,
  mutable: Any = False,
  block_weights: Optional[Mapping[str, float]] = None,
  noise_samples: int = 1,
):
  """Per-record negative ELBO (batch,) and the aux terms; a reparameterised estimate.

  With `noise_samples` = S > 1 the reconstruction term is the mean over S independent draws of
  the model's own noise (z, and u with a style latent) for each record: the same expectation,
  with a smaller variance ("noise multiplicity", Dockhorn, Cao, Vahdat and Kreis 2023,
  "Differentially private diffusion models", TMLR). Each record's loss is still a
  function of that record alone, so DP-SGD clips its gradient once and the sensitivity is
  unchanged; the cost is S decoder passes per record. The KL terms are exact (closed form).

  The reported kl includes the style latent's KL when the model has one; the reported nll
  includes -log p(y) under a learned label prior, weighted as the label's likelihood
  (`block_weights`, default 1).

  `block_weights` weighs the likelihood of named blocks (`likelihood.negative_log_likelihood`);
  the loss is then a weighted ELBO, a training choice.

  Returns ((nelbo, nll, kl), updated_state) where updated_state is the mutated collections when
  `mutable` is set (e.g. power-iteration vectors of spectral layers), else an empty dict.
  """
  out = model.apply(variables, records, rng, noise_samples, mutable=mutable)
  (logits, mu, sigma, _, style, log_prior), new_state = out if mutable else (out, {})
  targets = jnp.broadcast_to(records, logits.shape[:-1] + records.shape[-1:])
  nll = likelihood.negative_log_likelihood(
    logits, targets, blocks, image_likelihood, block_weights, model.numeric_bins
  )
  if noise_samples > 1:
    nll = jnp.mean(nll, axis=0)
  if log_prior is not None:
    weight = (block_weights or {}).get(label_block(model, blocks).name, 1.0)
    nll = nll - weight * log_prior
  kl = gaussian_kl(mu, sigma)
  loss = nll + beta * kl
  if style is not None:
    m, log_v = style
    # KL(N(m, diag e^log_v) || N(0, I)), weight 1: u is sampled from this prior at synthesis.
    style_kl = 0.5 * jnp.sum(jnp.square(m) + jnp.exp(log_v) - 1.0 - log_v, axis=-1)
    loss = loss + style_kl
    kl = kl + style_kl
  return (loss, nll, kl), new_state
