"""Decoders: latent (latent_dim,) -> one logit per record coordinate (dim,).

The decoder is post-processing of the released latent, so it needs no Lipschitz constraint for
the privacy guarantee; `lipdp.nn.lipschitz_mlp` can be used instead when a smooth decoder is
wanted (for example for the heteroscedastic analysis of a reconstruction).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPDecoder(nn.Module):
  """Plain MLP decoder with ELU activations."""

  hidden: Sequence[int]
  output_dim: int

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = z
    for i, width in enumerate(self.hidden):
      h = nn.elu(nn.Dense(width, name=f"dense_{i}")(h))
    return nn.Dense(self.output_dim, name="logits")(h)


class ConvDecoder(nn.Module):
  """Transposed-conv decoder for records made of an image block followed by other blocks.

  The image part is produced by a dense layer to a (H/4, W/4, channels) map and two stride-2
  transposed convolutions; the remaining coordinates (e.g. the one-hot label block) come from a
  dense head on the same hidden features. Requires H and W divisible by 4.
  """

  image_shape: Sequence[int]  # (H, W, C)
  output_dim: int
  channels: int = 32
  hidden: int = 256

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    height, width, chans = self.image_shape
    if height % 4 or width % 4:
      raise ValueError(f"ConvDecoder needs H and W divisible by 4, got {self.image_shape}")
    image_dim = height * width * chans
    if image_dim > self.output_dim:
      raise ValueError(f"image of {image_dim} values does not fit output_dim {self.output_dim}")
    h = nn.elu(nn.Dense(self.hidden, name="hidden")(z))
    m = nn.elu(nn.Dense((height // 4) * (width // 4) * self.channels, name="to_map")(h))
    m = m.reshape(m.shape[:-1] + (height // 4, width // 4, self.channels))
    m = nn.elu(nn.ConvTranspose(self.channels, (3, 3), strides=(2, 2), name="up_1")(m))
    m = nn.ConvTranspose(chans, (3, 3), strides=(2, 2), name="up_2")(m)
    parts = [m.reshape(m.shape[:-3] + (image_dim,))]
    if self.output_dim > image_dim:
      parts.append(nn.Dense(self.output_dim - image_dim, name="rest")(h))
    return jnp.concatenate(parts, axis=-1)
