"""Builds a `LipschitzVAE` for a record domain from its model settings (`lipdp.spec.ModelSpec`)."""

from typing import Optional

import flax.linen as nn

from lipdp import nn as lnn
from lipdp.models import decoders
from lipdp.models import likelihood
from lipdp.models import vae as vae_lib


# `model.encoder_dense` of an unconstrained encoder mean (plain ELU MLP): prior sampling only.
PLAIN_ENCODER = "plain"


def build_vae(
  domain,
  model_config,
  lipschitz_target: float,
  sigma: float,
  log_sigma_lipschitz: Optional[float] = None,
) -> vae_lib.LipschitzVAE:
  """The encoder mean is a Lipschitz MLP certified later from its weights.

  Args:
    domain: a `lipdp.data` domain (provides `dim`, `blocks`, and `image_shape` for images).
    model_config: the model settings (`lipdp.spec.ModelSpec`: every field is read).
    lipschitz_target: the encoder mean's target Lipschitz constant, spread over its layers.
      Only a target: the privacy report uses the certified bound of the trained weights.
    sigma: homoscedastic encoder noise (ignored when heteroscedastic).
    log_sigma_lipschitz: target Lipschitz constant of log sigma(x) when heteroscedastic.
  """
  if not lipschitz_target > 0:
    raise ValueError(f"lipschitz_target must be positive, got {lipschitz_target}")
  # Each numeric column's likelihood, from its declared type (likelihood.numeric_bins_for).
  numeric_bins = likelihood.numeric_bins_for(
    domain, model_config.numeric_likelihood, int(model_config.numeric_bins)
  )
  # One decoder output per pixel and category, and B bins (or one logit) per numeric column.
  output_dim = likelihood.output_dim(domain.blocks, numeric_bins)
  features = tuple(model_config.encoder_hidden) + (model_config.latent_dim,)
  if model_config.encoder_dense == PLAIN_ENCODER:
    # No Lipschitz constraint and no certificate: only for releases that never publish a
    # latent (prior sampling), where the encoder is a training device only.
    encoder_mean = decoders.MLPDecoder(tuple(model_config.encoder_hidden), model_config.latent_dim)
  else:
    encoder_mean = lnn.lipschitz_mlp(
      features,
      lipschitz_target=lipschitz_target,
      dense=model_config.encoder_dense,
      activation=model_config.activation,
    )
  if model_config.decoder == "mlp":
    decoder = decoders.MLPDecoder(tuple(model_config.decoder_hidden), output_dim)
  elif model_config.decoder == "conv":
    image_shape = getattr(domain, "image_shape", None)
    if image_shape is None:
      raise ValueError("decoder='conv' needs an image domain")
    image_shape = tuple(image_shape) + (1,) * (3 - len(image_shape))
    # Few parameters matter under DP-SGD (the noise grows with their number): the conv
    # decoder's width is its first hidden size and `decoder_channels` feature maps.
    decoder = decoders.ConvDecoder(
      image_shape,
      output_dim,
      channels=int(model_config.decoder_channels),
      hidden=int(tuple(model_config.decoder_hidden)[0]),
    )
  elif model_config.decoder == "lipschitz_mlp":
    # Not needed for privacy (the decoder is post-processing); a smooth decoder on request.
    decoder = lnn.lipschitz_mlp(
      tuple(model_config.decoder_hidden) + (output_dim,),
      lipschitz_target=float(model_config.decoder_lipschitz),
      dense=model_config.decoder_dense,
      activation=model_config.activation,
    )
  else:
    raise ValueError(
      f"unknown decoder {model_config.decoder!r}; use 'mlp', 'conv' or 'lipschitz_mlp'"
    )
  condition_block, label_prior = None, None
  if model_config.label_conditioned:
    condition_block = label_condition_block(domain)
    if resolve_label_prior(model_config.label_prior, domain) == "learned":
      # Zero logits: training starts from the uniform distribution, whatever the data.
      label_prior = nn.Dense(
        condition_block[1] - condition_block[0], use_bias=False, kernel_init=nn.initializers.zeros
      )
  log_sigma_net = None
  if model_config.heteroscedastic:
    if log_sigma_lipschitz is None or not log_sigma_lipschitz > 0:
      raise ValueError("a heteroscedastic model needs a positive log_sigma_lipschitz")
    log_sigma_net = lnn.lipschitz_mlp(
      tuple(model_config.encoder_hidden) + (1,),
      lipschitz_target=log_sigma_lipschitz,
      dense=model_config.encoder_dense,
      activation=model_config.activation,
    )
  style_dim = int(model_config.style_dim)
  style_encoder = None
  if style_dim:
    style_encoder = decoders.MLPDecoder(tuple(model_config.style_hidden), 2 * style_dim)
  return vae_lib.LipschitzVAE(
    encoder_mean=encoder_mean,
    decoder=decoder,
    sigma=float(sigma),
    style_encoder=style_encoder,
    style_dim=style_dim,
    numeric_bins=numeric_bins,
    condition_block=condition_block,
    label_prior=label_prior,
    log_sigma_net=log_sigma_net,
    sigma_min=float(model_config.sigma_min),
    sigma_max=float(model_config.sigma_max),
    lipschitz_target=float(lipschitz_target),
    log_sigma_lipschitz_target=(
      float(log_sigma_lipschitz) if model_config.heteroscedastic else None
    ),
  )


LABEL_PRIORS = ("uniform", "learned")


def resolve_label_prior(label_prior: Optional[str], domain) -> str:
  """`model.label_prior` for this domain: unset is 'uniform' for images, 'learned' for tables.

  Uniform labels suit an image data set with balanced classes (MNIST's); a table's label is
  usually unbalanced, and drawing it uniformly would misstate its marginal.
  """
  if label_prior is None:
    return "uniform" if getattr(domain, "kind", None) == "image" else "learned"
  if label_prior not in LABEL_PRIORS:
    raise ValueError(f"model.label_prior must be one of {LABEL_PRIORS}, got {label_prior!r}")
  return label_prior


def label_condition_block(domain) -> tuple[int, int]:
  """(start, stop) of the label block a label-conditioned decoder reads (`model.label_conditioned`).

  Any domain with a categorical label column: a labelled image domain or a table with a label.
  """
  if getattr(domain, "label_column", None) is None:
    raise ValueError(
      "model.label_conditioned needs a data set with a label column (the decoder reads the "
      "record's label and synthetic records are decoded for a drawn one)"
    )
  block = next(b for b in domain.blocks if b.name == domain.label_column)
  return (int(block.start), int(block.stop))
