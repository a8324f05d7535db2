"""Almost-orthogonal layers (AOL): 1-Lipschitz by construction, ``AOLDense`` and ``AOLConv``.

Prach and Lampert (2022, "Almost-orthogonal layers for efficient general-purpose Lipschitz
networks", ECCV): for any linear operator ``P`` and the diagonal rescaling

    D_ii = (sum_j |P^T P|_ij)^{-1/2},

``|P D| <= 1``. Proof: ``diag(sum_j |M_ij|) - M`` is diagonally dominant with a non-negative
diagonal, hence positive semi-definite, so ``D (P^T P) D <= D diag(sum_j |M_ij|) D = I``.

* Dense, ``y = x K`` (``P = K^T``): ``P^T P = K K^T``, and the effective kernel is
  ``diag(D) K`` (rows of K, i.e. input features, rescaled).
* Convolution with kernel ``K[a, i, o]``: ``P^T P`` is the convolution with the kernel's full
  autocorrelation ``R[d, i, j] = sum_{a, o} K[a + d, i, o] K[a, j, o]`` over every shift ``d``,
  and ``D_ii = (sum_{d, j} |R[d, i, j]|)^{-1/2}`` rescales input channel ``i`` of the kernel.
  For a circular convolution on any grid the row sums of ``|P^T P|`` are at most these sums
  (aliased shifts add up, triangle inequality), so the bound holds; a zero-padded or strided
  convolution is crop/subsample of a circular one on a larger grid (both norm <= 1), so it
  holds for every padding, stride and input size.

The rescaling costs one small autocorrelation per step, no iterations and no state. The result
is then multiplied by ``lipschitz``. The certificate does not rely on the theorem: it bounds
``effective_kernel()`` like any convolution (FFT bound), which the theorem says is <= lipschitz.
"""

from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from lipdp.nn.linear_ops import PaddingLike, conv, dense, kernel_and_bias

Array = jax.Array
_HIGHEST = jax.lax.Precision.HIGHEST


def aol_dense_scale(kernel: Array, eps: float = 1e-12) -> Array:
  """``D_ii = (sum_j |K K^T|_ij)^{-1/2}`` for a dense kernel ``K`` of shape ``(in, out)``.

  Floors the row sums at ``eps``: a larger denominator only shrinks D, so the bound still holds.
  """
  gram = jnp.matmul(kernel, kernel.T, precision=_HIGHEST)
  return jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.abs(gram), axis=1), eps))


def aol_conv_scale(kernel: Array, eps: float = 1e-12) -> Array:
  """``D_ii = (sum_{d, j} |R[d, i, j]|)^{-1/2}`` for a conv kernel ``(*kernel_size, c_in, c_out)``.

  The autocorrelation ``R`` over all ``2k - 1`` shifts per dimension is itself a convolution:
  the kernel, read as a batch of ``c_in`` images with ``c_out`` channels, correlated with the
  kernel read as ``c_out -> c_in`` filters, with full padding.
  """
  rank = kernel.ndim - 2
  sizes = kernel.shape[:rank]
  images = jnp.moveaxis(kernel, rank, 0)  # (c_in, *k, c_out): batch = input channel i.
  filters = jnp.swapaxes(kernel, rank, rank + 1)  # (*k, c_out, c_in): o -> j.
  autocorrelation = conv(
    images, filters, padding=[(k - 1, k - 1) for k in sizes], precision=_HIGHEST
  )  # (c_in, *(2k - 1), c_in)
  row_sums = jnp.sum(jnp.abs(autocorrelation), axis=tuple(range(1, rank + 2)))
  return jax.lax.rsqrt(jnp.maximum(row_sums, eps))


class AOLDense(nn.Module):
  """Dense layer ``y = x K_eff + b``, ``K_eff = lipschitz * diag(D) K`` (AOL rescaling).

  Attributes:
    features: output width.
    lipschitz: the layer's Lipschitz constant is at most this.
    eps: floor of the AOL row sums.
    use_bias: whether to add a bias.
    dtype: computation dtype (``None``: promote).
    param_dtype: dtype of the parameters.
    precision: precision of the forward matmul.
    kernel_init: initialiser of the kernel.
    bias_init: initialiser of the bias.
  """

  features: int
  lipschitz: float = 1.0
  eps: float = 1e-12
  use_bias: bool = True
  dtype: Optional[Any] = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kernel, bias = kernel_and_bias(self, (jnp.shape(x)[-1], self.features))
    return dense(x, self._effective(kernel), bias, dtype=self.dtype, precision=self.precision)

  def effective_kernel(self) -> Array:
    """The kernel the forward pass uses: ``lipschitz * diag(D) K``."""
    return self._effective(self.get_variable("params", "kernel"))

  def _effective(self, kernel: Array) -> Array:
    k = self.lipschitz * aol_dense_scale(kernel, self.eps)[:, None] * kernel
    return k.astype(self.dtype) if self.dtype is not None else k


class AOLConv(nn.Module):
  """Convolution with kernel ``lipschitz * K D`` (AOL rescaling of the input channels).

  Attributes:
    features: output channels.
    kernel_size: spatial size of the kernel (int or one int per spatial dimension).
    lipschitz: the layer's Lipschitz constant is at most this, for every input size.
    strides: stride per spatial dimension.
    padding: ``'SAME'``, ``'VALID'``, ``'CIRCULAR'``, ints or ``(low, high)`` pairs.
    eps: floor of the AOL row sums.
    use_bias: whether to add a bias.
    dtype: computation dtype (``None``: promote).
    param_dtype: dtype of the parameters.
    precision: precision of the convolution.
    kernel_init: initialiser of the kernel.
    bias_init: initialiser of the bias.
  """

  features: int
  kernel_size: Union[int, Sequence[int]]
  lipschitz: float = 1.0
  strides: Union[int, Sequence[int]] = 1
  padding: PaddingLike = "SAME"
  eps: float = 1e-12
  use_bias: bool = True
  dtype: Optional[Any] = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    size = (self.kernel_size,) if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    kernel, bias = kernel_and_bias(self, size + (jnp.shape(x)[-1], self.features))
    return conv(
      x,
      self._effective(kernel),
      bias,
      strides=self.strides,
      padding=self.padding,
      dtype=self.dtype,
      precision=self.precision,
    )

  def effective_kernel(self) -> Array:
    """The kernel the forward pass uses: ``lipschitz * K D``."""
    return self._effective(self.get_variable("params", "kernel"))

  def _effective(self, kernel: Array) -> Array:
    scale = aol_conv_scale(kernel, self.eps)  # (c_in,), broadcast over axis -2.
    k = self.lipschitz * kernel * scale[:, None]
    return k.astype(self.dtype) if self.dtype is not None else k
