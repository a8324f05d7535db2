"""The linear operators of the Lipschitz layers: dense, and N-d convolution with explicit padding.

The layers apply them in their forward pass, and the certificate (``certify.py``) rebuilds the same
operator from the same padding rule to bound it, so both agree on what "the convolution" is.
Convolutions are cross-correlations in channels-last layout, ``x: (batch, *spatial, c_in)``,
``kernel: (*kernel_size, c_in, c_out)``, as in ``flax.linen.Conv`` and ``jax.lax``.

Padding modes: ``'SAME'``, ``'VALID'``, an int or a sequence of ints / ``(low, high)`` pairs
(zeros), ``'CAUSAL'`` (1-D, ``k - 1`` zeros on the left), and ``'CIRCULAR'`` (periodic: the input
is wrapped by ``((k - 1) // 2, k // 2)`` as flax does, then a 'VALID' convolution).
"""

from typing import Any, NamedTuple, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
PaddingLike = Union[str, int, Sequence[Union[int, tuple[int, int]]]]


def dense(
  x: Array, kernel: Array, bias: Optional[Array] = None, *, dtype=None, precision=None
) -> Array:
  """``x K + b`` on the last axis of ``x``, with flax's dtype promotion."""
  x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype)
  y = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=precision)
  return y if bias is None else y + bias


class ConvPadding(NamedTuple):
  """Explicit padding of a convolution: per spatial dimension ``(low, high)``, zeros or wrap."""

  circular: bool
  pads: tuple[tuple[int, int], ...]


def as_tuple(value: Union[None, int, Sequence[int]], rank: int) -> tuple[int, ...]:
  if value is None:
    return (1,) * rank
  if isinstance(value, int):
    return (value,) * rank
  value = tuple(int(v) for v in value)
  if len(value) != rank:
    raise ValueError(f"Expected {rank} values, got {value}.")
  return value


def resolve_padding(
  padding: PaddingLike,
  spatial_shape: Sequence[int],
  kernel_size: Sequence[int],
  strides: Sequence[int],
  kernel_dilation: Sequence[int],
) -> ConvPadding:
  """Turns a padding spec into explicit ``(low, high)`` amounts, as ``flax.linen.Conv`` does."""
  rank = len(kernel_size)
  dilated = [(k - 1) * d + 1 for k, d in zip(kernel_size, kernel_dilation)]
  circular = False
  if isinstance(padding, str):
    mode = padding.upper()
    if mode in ("SAME", "VALID"):
      pads = jax.lax.padtype_to_pads(tuple(spatial_shape), dilated, tuple(strides), mode)
    elif mode == "CIRCULAR":
      pads = [((k - 1) // 2, k // 2) for k in dilated]
      circular = True
    elif mode == "CAUSAL":
      if rank != 1:
        raise ValueError("CAUSAL padding is only defined for 1-D convolutions.")
      pads = [(dilated[0] - 1, 0)]
    else:
      raise ValueError(f"Unsupported padding {padding!r}.")
  elif isinstance(padding, int):
    pads = [(padding, padding)] * rank
  else:
    pads = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
  pads = tuple((int(lo), int(hi)) for lo, hi in pads)
  if len(pads) != rank or any(lo < 0 or hi < 0 for lo, hi in pads):
    raise ValueError(f"Invalid padding {padding!r} for a {rank}-d convolution.")
  return ConvPadding(circular, pads)


def conv(
  x: Array,
  kernel: Array,
  bias: Optional[Array] = None,
  *,
  strides: Union[int, Sequence[int]] = 1,
  padding: PaddingLike = "SAME",
  kernel_dilation: Union[int, Sequence[int]] = 1,
  dtype=None,
  precision=None,
) -> Array:
  """Channels-last N-d cross-correlation of ``x`` with ``kernel`` (plus ``bias``).

  Args:
    x: input of shape ``(*batch, *spatial, c_in)`` (at least one batch axis).
    kernel: ``(*kernel_size, c_in, c_out)``.
    bias: optional ``(c_out,)``.
    strides: stride per spatial dimension.
    padding: see the module docstring.
    kernel_dilation: dilation of the kernel per spatial dimension.
    dtype: computation dtype (``None``: promote).
    precision: ``jax.lax`` precision of the convolution.

  Returns:
    The output, ``(*batch, *out_spatial, c_out)``.
  """
  rank = kernel.ndim - 2
  if x.ndim < rank + 2:
    raise ValueError(f"Expected an input with a batch axis and {rank} spatial axes, got {x.shape}.")
  batch_shape = x.shape[: x.ndim - rank - 1]
  x = x.reshape((-1,) + x.shape[x.ndim - rank - 1 :])
  strides = as_tuple(strides, rank)
  dilation = as_tuple(kernel_dilation, rank)
  pad = resolve_padding(padding, x.shape[1:-1], kernel.shape[:rank], strides, dilation)
  x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype)
  pads = pad.pads
  if pad.circular:
    x = jnp.pad(x, ((0, 0),) + pads + ((0, 0),), mode="wrap")
    pads = ((0, 0),) * rank
  spec = (0, rank + 1) + tuple(range(1, rank + 1))
  kernel_spec = (rank + 1, rank) + tuple(range(rank))
  numbers = jax.lax.ConvDimensionNumbers(spec, kernel_spec, spec)
  y = jax.lax.conv_general_dilated(
    x,
    kernel,
    window_strides=strides,
    padding=pads,
    rhs_dilation=dilation,
    dimension_numbers=numbers,
    precision=precision,
  )
  if bias is not None:
    y = y + bias
  return y.reshape(batch_shape + y.shape[1:])


def kernel_and_bias(module: Any, kernel_shape: Sequence[int]):
  """Declares a layer's ``kernel`` (``kernel_init``) and optional ``bias`` (``bias_init``).

  Shared by the Lipschitz layers, whose parameters differ only in how the kernel is normalised.
  Reads ``kernel_init``, ``bias_init``, ``param_dtype``, ``use_bias`` and ``features``.
  """
  kernel = module.param("kernel", module.kernel_init, tuple(kernel_shape), module.param_dtype)
  bias = (
    module.param("bias", module.bias_init, (module.features,), module.param_dtype)
    if module.use_bias
    else None
  )
  return kernel, bias
