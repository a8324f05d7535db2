"""``LipschitzSequential``: the chain of layers the certificate trusts, and ``Flatten``.

For a chain ``f = f_n o ... o f_1``, ``Lip(f) <= prod_i Lip(f_i)``; that product is the
certificate. It is only valid for a chain: a residual or parallel block (``x + g(x)``, a
concatenation, a shared input) needs another rule, so the certificate refuses any other
composition, including ``flax.linen.Sequential`` (which also unpacks tuples and dicts).
"""

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax


class LipschitzSequential(nn.Module):
  """Applies ``layers`` in order: ``x -> layers[-1](... layers[0](x))``.

  Attributes:
    layers: flax modules or functions of one array. Keyword arguments of ``__call__`` (e.g.
      ``update_state``) are not forwarded; the state collections decide train/eval behaviour.
  """

  layers: Sequence[Callable[..., Any]]

  def __call__(self, x: jax.Array) -> jax.Array:
    if not self.layers:
      raise ValueError("LipschitzSequential needs at least one layer.")
    for layer in self.layers:
      x = layer(x)
    return x


class Flatten(nn.Module):
  """Flattens all axes but the first (batch) one: ``(B, *shape) -> (B, prod(shape))``.

  A reshape is an isometry, so it is exactly 1-Lipschitz.
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return x.reshape((x.shape[0], -1))
