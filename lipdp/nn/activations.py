"""Gradient-norm-preserving activations: MaxMin, GroupSort and FullSort.

Each activation sorts groups of entries along the last axis. On each region where the sort order
is fixed, the map is a permutation matrix (an isometry), and the map is continuous across
regions, so it is exactly 1-Lipschitz in l2 and preserves the norm of its input:
``|f(x) - f(y)| <= |x - y|`` and ``|f(x)| = |x|`` (Anil, Lucas and Grosse 2019, "Sorting out
Lipschitz function approximation", ICML). Unlike ReLU they lose no gradient norm, which is
what lets an orthonormal network reach its Lipschitz bound.

The activations act on the last axis only, so on a feature map ``(batch, *spatial, channels)``
they sort channels at each location; the map on the whole tensor is still a permutation per
region, hence 1-Lipschitz. None of them has parameters.
"""

import flax.linen as nn
import jax.numpy as jnp


def _check_divisible(size: int, group_size: int, name: str) -> None:
  if group_size < 1:
    raise ValueError(f"{name}: group_size must be >= 1, got {group_size}.")
  if size % group_size:
    raise ValueError(
      f"{name}: the last axis ({size}) must be a multiple of the group size ({group_size})."
    )


class MaxMin(nn.Module):
  """MaxMin: ``concat(max(a, b), min(a, b))`` for the two halves ``a, b`` of the last axis.

  On each region it swaps or keeps each pair ``(a_i, b_i)``: a permutation, so the map is
  exactly 1-Lipschitz and norm-preserving (Anil et al. 2019). Needs an even last axis.
  """

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    _check_divisible(x.shape[-1], 2, "MaxMin")
    a, b = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([jnp.maximum(a, b), jnp.minimum(a, b)], axis=-1)


class GroupSort(nn.Module):
  """GroupSort: sorts consecutive groups of ``group_size`` entries of the last axis.

  Per region a permutation within each group, so exactly 1-Lipschitz (Anil et al. 2019).
  ``group_size=2`` is MaxMin up to a fixed permutation of the outputs; ``group_size`` equal to
  the width is FullSort.

  Attributes:
    group_size: size of the groups; must divide the last axis.
  """

  group_size: int = 2

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    _check_divisible(x.shape[-1], self.group_size, "GroupSort")
    groups = x.reshape(x.shape[:-1] + (x.shape[-1] // self.group_size, self.group_size))
    return jnp.sort(groups, axis=-1).reshape(x.shape)


class FullSort(nn.Module):
  """FullSort: sorts the whole last axis (GroupSort with one group); exactly 1-Lipschitz."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    return jnp.sort(x, axis=-1)
