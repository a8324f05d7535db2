"""Brute-force reference: the explicit matrix of a (small) linear or affine map, and its norm.

The certificate bounds convolutions through the DFT; this module computes the same quantity the
slow, obvious way, so tests (and readers) can check it: build the Jacobian of the map as a dense
``(out_size, in_size)`` matrix in float64 and take its largest singular value. For an affine map
``x -> A x + b`` the Jacobian is ``A`` everywhere and its largest singular value is the exact
Lipschitz constant. Memory is ``out_size * in_size`` doubles: small inputs only.
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def linear_map_matrix(
  fn: Callable[[jax.Array], jax.Array], input_shape: Sequence[int]
) -> np.ndarray:
  """The Jacobian at 0 of a batched map ``(1, *input_shape) -> (1, ...)``, as a float64 matrix.

  Evaluated under ``jax.enable_x64``, so float32 parameters are applied in float64 arithmetic.
  """
  with jax.enable_x64(True):
    x = jnp.zeros((1,) + tuple(input_shape), jnp.float64)
    jac = jax.jit(jax.jacfwd(lambda z: fn(z[None])[0]))(x[0])
    jac = np.asarray(jac, np.float64)
  in_size = int(np.prod(input_shape))
  return jac.reshape(-1, in_size)


def exact_operator_norm(fn: Callable[[jax.Array], jax.Array], input_shape: Sequence[int]) -> float:
  """Largest singular value of ``linear_map_matrix(fn, input_shape)`` (float64 SVD)."""
  return float(np.linalg.svd(linear_map_matrix(fn, input_shape), compute_uv=False)[0])
