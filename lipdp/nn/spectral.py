"""Spectral normalisation by power iteration: ``SpectralDense`` and ``SpectralConv``.

The layer divides its weight by an estimate of its largest singular value (Miyato, Kataoka,
Koyama and Yoshida 2018, "Spectral normalization for generative adversarial networks", ICLR):

    u <- A^T A u / |A^T A u|   (n_power_iterations times, under stop_gradient),
    sigma = |A u|,   K_eff = lipschitz * K / sigma,

where ``A`` is the linear operator of the layer: the kernel matrix for the dense layer, and for
the convolution the convolution *operator itself* on an input-shaped vector ``u`` (the adjoint is
the exact transpose of the padded, strided convolution, obtained by ``jax.vjp``), not a reshaped
kernel, whose norm is a different number. As in Miyato et al., the gradient flows through
``sigma`` with ``u`` held fixed.

The vector ``u`` persists across steps in the ``'lipschitz_state'`` collection: the forward pass
runs the power iterations and stores ``u`` only when that collection is mutable (training:
``apply(..., mutable=['lipschitz_state'])``), and otherwise reads it (evaluation). So
``effective_kernel()`` and the forward pass are a deterministic function of (params, state).

Power iteration approaches ``sigma_max`` from below and a stored ``u`` can be stale, so
``|K_eff|`` can exceed ``lipschitz``. The certificate never trusts these layers' nominal
constant: it recomputes the norm of ``effective_kernel()`` (exact SVD for the dense layer, the
FFT bound for the convolution).
"""

from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from lipdp.nn.linear_ops import PaddingLike, conv, dense, kernel_and_bias

Array = jax.Array
STATE_COLLECTION = "lipschitz_state"


def _normalize(x: Array, eps: float) -> Array:
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def _should_update(module: nn.Module, update_state: Optional[bool]) -> bool:
  if update_state is None:
    return module.is_mutable_collection(STATE_COLLECTION)
  return update_state


class SpectralDense(nn.Module):
  """Dense layer ``y = x K_eff + b`` with ``K_eff = lipschitz * K / sigma(K)`` (power iteration).

  Attributes:
    features: output width.
    lipschitz: target Lipschitz constant (nominal only; see the module docstring).
    n_power_iterations: power iterations per training call.
    eps: floor of the norms in the normalisations.
    use_bias: whether to add a bias.
    dtype: computation dtype (``None``: promote).
    param_dtype: dtype of the parameters and of ``u``.
    precision: precision of the forward matmul.
    kernel_init: initialiser of the kernel.
    bias_init: initialiser of the bias.
  """

  features: int
  lipschitz: float = 1.0
  n_power_iterations: int = 1
  eps: float = 1e-12
  use_bias: bool = True
  dtype: Optional[Any] = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: Array, update_state: Optional[bool] = None) -> Array:
    """Applies the layer; updates ``u`` if ``'lipschitz_state'`` is mutable (or if asked)."""
    kernel, bias = kernel_and_bias(self, (jnp.shape(x)[-1], self.features))
    u = self.variable(
      STATE_COLLECTION,
      "u",
      lambda: _normalize(
        jax.random.normal(self.make_rng("params"), (self.features,), self.param_dtype),
        self.eps,
      ),
    )
    if _should_update(self, update_state):
      u.value = self._power_iterate(kernel, u.value)
    return dense(
      x, self._effective(kernel, u.value), bias, dtype=self.dtype, precision=self.precision
    )

  def effective_kernel(self) -> Array:
    """The kernel the forward pass uses with the stored ``u``: ``lipschitz * K / |K u|``."""
    return self._effective(
      self.get_variable("params", "kernel"), self.get_variable(STATE_COLLECTION, "u")
    )

  def _power_iterate(self, kernel: Array, u: Array) -> Array:
    kernel = jax.lax.stop_gradient(kernel)

    def step(_, u):
      v = _normalize(kernel @ u, self.eps)
      return _normalize(kernel.T @ v, self.eps)

    return jax.lax.stop_gradient(jax.lax.fori_loop(0, self.n_power_iterations, step, u))

  def _effective(self, kernel: Array, u: Array) -> Array:
    sigma = jnp.maximum(jnp.linalg.norm(kernel @ jax.lax.stop_gradient(u)), self.eps)
    k = self.lipschitz * kernel / sigma
    return k.astype(self.dtype) if self.dtype is not None else k


class SpectralConv(nn.Module):
  """Convolution normalised by a power-iteration estimate of its operator norm.

  ``u`` has the shape of one input, ``(1, *spatial, c_in)``, fixed by the first call (``init``);
  calling the layer on another spatial size raises. The operator is the bias-free convolution
  with this layer's padding and strides (``linear_ops.conv``).

  Attributes:
    features: output channels.
    kernel_size: spatial size of the kernel (int or one int per spatial dimension).
    lipschitz: target Lipschitz constant (nominal only).
    strides: stride per spatial dimension.
    padding: ``'SAME'``, ``'VALID'``, ``'CIRCULAR'``, ints or ``(low, high)`` pairs.
    n_power_iterations: power iterations per training call.
    eps: floor of the norms in the normalisations.
    use_bias: whether to add a bias.
    dtype: computation dtype (``None``: promote).
    param_dtype: dtype of the parameters and of ``u``.
    precision: precision of the convolution.
    kernel_init: initialiser of the kernel.
    bias_init: initialiser of the bias.
  """

  features: int
  kernel_size: Union[int, Sequence[int]]
  lipschitz: float = 1.0
  strides: Union[int, Sequence[int]] = 1
  padding: PaddingLike = "SAME"
  n_power_iterations: int = 1
  eps: float = 1e-12
  use_bias: bool = True
  dtype: Optional[Any] = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @property
  def _kernel_size(self) -> tuple[int, ...]:
    if isinstance(self.kernel_size, int):
      return (self.kernel_size,)
    return tuple(self.kernel_size)

  @nn.compact
  def __call__(self, x: Array, update_state: Optional[bool] = None) -> Array:
    """Applies the layer; updates ``u`` if ``'lipschitz_state'`` is mutable (or if asked)."""
    rank = len(self._kernel_size)
    kernel, bias = kernel_and_bias(self, self._kernel_size + (jnp.shape(x)[-1], self.features))
    one_input = (1,) + tuple(jnp.shape(x)[x.ndim - rank - 1 :])
    u = self.variable(
      STATE_COLLECTION,
      "u",
      lambda: _normalize(
        jax.random.normal(self.make_rng("params"), one_input, self.param_dtype), self.eps
      ),
    )
    if u.value.shape != one_input:
      raise ValueError(
        f"SpectralConv was initialised for inputs {u.value.shape[1:]}, got {one_input[1:]}."
      )
    if _should_update(self, update_state):
      u.value = self._power_iterate(kernel, u.value)
    return conv(
      x,
      self._effective(kernel, u.value),
      bias,
      strides=self.strides,
      padding=self.padding,
      dtype=self.dtype,
      precision=self.precision,
    )

  def effective_kernel(self) -> Array:
    """The kernel the forward pass uses with the stored ``u``: ``lipschitz * K / |conv_K(u)|``."""
    return self._effective(
      self.get_variable("params", "kernel"), self.get_variable(STATE_COLLECTION, "u")
    )

  def _operator(self, kernel: Array):
    return lambda z: conv(
      z, kernel, strides=self.strides, padding=self.padding, precision=self.precision
    )

  def _power_iterate(self, kernel: Array, u: Array) -> Array:
    op = self._operator(jax.lax.stop_gradient(kernel))

    def step(_, u):
      v, transpose = jax.vjp(op, u)  # transpose: the exact adjoint of the padded conv.
      (u,) = transpose(_normalize(v, self.eps))
      return _normalize(u, self.eps)

    return jax.lax.stop_gradient(jax.lax.fori_loop(0, self.n_power_iterations, step, u))

  def _effective(self, kernel: Array, u: Array) -> Array:
    sigma = jnp.linalg.norm(self._operator(kernel)(jax.lax.stop_gradient(u)))
    k = self.lipschitz * kernel / jnp.maximum(sigma, self.eps)
    return k.astype(self.dtype) if self.dtype is not None else k
