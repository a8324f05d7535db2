"""Certified upper bound on the l2 -> l2 Lipschitz constant of a ``LipschitzSequential``.

The privacy guarantee uses ``L = certified_lipschitz_bound(...)``, computed on the host in
float64 from the actual weights, never from a layer's nominal ``lipschitz``:

    Lip(f_n o ... o f_1) <= prod_i Lip(f_i).

Per layer (types are matched exactly, so a subclass that overrides the forward pass is refused):

* Dense layers (``BjorckDense``, ``SpectralDense``, ``AOLDense``, ``flax.linen.Dense``): the
  largest singular value (SVD in float64) of the kernel the forward pass multiplies by
  (``effective_kernel()``; the ``kernel`` parameter for ``nn.Dense``). A bias does not change
  the constant. Björck iterations that stopped early, a stale power-iteration vector or
  overwritten parameters all show up here at their true value.
* Convolutions (``SpectralConv``, ``AOLConv``, ``flax.linen.Conv``): a circular convolution on
  an ``N_1 x ... x N_d`` grid is diagonalised by the DFT; its singular values are those of the
  ``c_out x c_in`` matrices ``K_hat(w)`` at the ``prod N_i`` frequencies (Sedghi, Gupta and Long
  2019, "The singular values of convolutional layers", ICLR), so its norm is
  ``max_w sigma_max(K_hat(w))``, exact. A convolution with ``(low, high)`` zero padding on an
  input of size ``n`` is ``crop o circular-conv-on-(n + low + high) o zero-embed``, and the crop
  and the embedding have norm <= 1, so the circular norm on the padded grid bounds it. A stride
  keeps a subset of the stride-1 outputs (norm <= 1). Dilated kernels are expanded with zeros.
  The bound is exact for circular padding with stride 1.
* MaxMin, GroupSort, FullSort, ``Flatten`` and ``jax.nn.relu``: 1.
* Nested ``LipschitzSequential``: walked recursively. Anything else raises ``TypeError``, as
  does a layer computing in 16 bits (it rounds its inputs, so it is not a linear map).

Before bounding a linear layer, the certificate checks on a random probe that the layer's
forward pass minus its value at 0 equals the linear operator it is about to bound (relative
error < 4e-6, at the highest matmul precision, which is also the precision of the release in
``lipdp.latent_release``; TF32 matmuls would fail it); a mismatch raises ``TypeError``, so
the bound is always about the map the network computes. ``nn.Dense``/``nn.Conv`` with a custom
``dot_general`` / ``conv_general_dilated`` are refused outright.

``input_shape`` is the shape of *one* record, without a batch axis, e.g. ``(784,)`` or
``(28, 28, 1)``. Convolution bounds depend on the spatial size, so certify at the size the
model is used at.

Floating point: each linear layer's bound is multiplied by ``1 + FLOAT_SAFETY_MARGIN`` (5e-6).
The margin covers the largest rescaling of the operator that the forward cross-check accepts
(``1 + 4e-6``; the check is relative, with the probe scaled so a bias cannot loosen it) and the
float64 error of the SVD / eigenvalue computations (~1e-13 relative). The cross-check is a test
on two random probes: it catches a different operator, not an adversarial perturbation aligned
away from the probes. It does not (and no multiplicative factor can) cover the rounding of the
forward pass itself, an additive error of about the unit roundoff times the activations per
operation (Mironov 2012, "On significance of the least significant bits for differential
privacy"); `lipdp.latent_release` evaluates the released map and this certificate in float64
for that reason (`release_arithmetic`), bounds that rounding additively over the domain
(`rounding_error_bound`, Higham's inner-product bound per layer) and checks that twice the
bound fits in the share of the certified bound the margin leaves (`rounding_slack`); see
docs/nn.md.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
from flax.linen import dtypes as flax_dtypes
import jax
import jax.numpy as jnp
import numpy as np

from lipdp.nn.activations import FullSort, GroupSort, MaxMin
from lipdp import rounding
from lipdp.rounding import FLOAT32_UNIT, FLOAT64_UNIT, SMALLEST_NORMAL
from lipdp.nn.aol import AOLConv, AOLDense
from lipdp.nn.bjorck import BjorckDense
from lipdp.nn.linear_ops import ConvPadding, as_tuple, conv, resolve_padding
from lipdp.nn.sequential import Flatten, LipschitzSequential
from lipdp.nn.spectral import SpectralConv, SpectralDense

# Forward passes of float32 layers match their operator to ~5e-7 relative (measured on dense
# layers up to 1024 wide); 4e-6 leaves room for wider layers and convolutions.
_MATCH_RTOL = 4e-6
# At least the largest rescaling of the operator that the forward cross-check accepts (see
# _check_matches), plus the float64 error of the SVD / FFT (~1e-13 relative).
FLOAT_SAFETY_MARGIN = 5e-6
_PROBE_DOMINANCE = 1e3  # scale the probe until ||A x|| >= 1e3 ||bias||
_MAX_PROBE_SCALE = 1e6
_FFT_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class LayerBound:
  """Certified bound of one layer of the chain.

  Attributes:
    path: position in the (nested) chain, e.g. ``'layers_3/layers_0'`` or ``'[1]'``.
    layer: the layer's type (or function) name.
    bound: the certified upper bound on its Lipschitz constant (margin included).
    method: how it was obtained (``'svd'``, ``'fft-circular'``, ``'fft-zero-padded'``, ...).
    input_shape: shape of one input record of this layer.
    output_shape: shape of one output record.
    abs_norm: for a linear layer, an upper bound on the l2 norm of its operator with every
      entry replaced by its absolute value (the kernel's Frobenius norm for a dense layer;
      sqrt(max column sum * max row sum) of |K| for a convolution); None for the others.
    bias_norm: for a linear layer, the l2 norm of its value at 0 (the bias, per record).
    fan_in: for a linear layer, the most products one output sums.
  """

  path: str
  layer: str
  bound: float
  method: str
  input_shape: tuple[int, ...]
  output_shape: tuple[int, ...]
  abs_norm: Optional[float] = None
  bias_norm: float = 0.0
  fan_in: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class CertifiedOperator:
  """One layer of the chain as the certificate bounded it, so that exactly that map can be
  evaluated (`CertifiedChain`).

  Attributes:
    kind: ``'dense'`` (``x @ kernel + bias``), ``'conv'`` (the convolution with the explicit
      padding ``geometry = (strides, padding, dilation)``, plus ``bias``) or ``'map'`` (a
      parameter-free 1-Lipschitz map the certificate knows, ``function``, applied as is).
    kernel: the linear operator's kernel whose norm was bounded (the very array, in the
      arithmetic the certificate ran in).
    bias: the layer's value at 0 for one record (its output shape), the bias the rounding
      bound was given.
  """

  kind: str
  kernel: Optional[np.ndarray] = None
  bias: Optional[np.ndarray] = None
  geometry: tuple = ()
  function: Optional[Callable[[jax.Array], jax.Array]] = None

  def structure(self) -> tuple:
    """What the evaluation needs besides the arrays: static, hashable for a layer the
    certificate knows."""
    return (self.kind, self.geometry, self.function)


@dataclasses.dataclass(frozen=True, eq=False)
class CertifiedChain:
  """The certificate of a chain and the operators it bounded.

  ``bounds`` are the per-layer certified bounds (``layer_lipschitz_bounds``). ``operators``
  are the maps they bound, in order: evaluating them (``__call__``, or ``evaluate_certified``
  inside a caller's own jitted function) computes the composition the certificate is about by
  construction, each linear layer as ``x @ K + b`` (or its convolution) with the certified
  kernel ``K`` itself, not the layer's forward pass, which the certificate only compares with
  it on probes. This is the premise of ``rounding_error_bound``; ``lipdp.latent_release``
  computes the released means this way.
  """

  bounds: tuple[LayerBound, ...]
  operators: tuple[CertifiedOperator, ...]

  def structure(self) -> tuple:
    return tuple(op.structure() for op in self.operators)

  def arrays(self) -> tuple:
    """The kernels and biases of the linear operators, in order (the arguments of
    ``evaluate_certified``)."""
    return tuple((op.kernel, op.bias) for op in self.operators if op.kind != "map")

  def __call__(self, x: jax.Array) -> jax.Array:
    """The chain's map on the batch `x`; in float64 only inside `jax.enable_x64` (outside it,
    JAX computes with the arrays in float32)."""
    structure = self.structure()
    try:
      hash(structure)
    except TypeError:  # an unhashable map: compile for this call
      return jax.jit(functools.partial(evaluate_certified, structure))(self.arrays(), x)
    return _evaluate_jitted(structure, self.arrays(), x)


def evaluate_certified(structure: tuple, arrays: tuple, x: jax.Array) -> jax.Array:
  """The certified chain's map at ``x`` (a batch), from ``CertifiedChain.structure()`` and
  ``.arrays()``, in the dtype of ``x`` and the arrays (float64 inside ``jax.enable_x64``), at
  the highest matmul precision. Pure: call it inside a jitted function."""
  linear = iter(arrays)
  for kind, geometry, function in structure:
    if kind == "map":
      x = function(x)
      continue
    kernel, bias = next(linear)
    if kind == "dense":
      x = jax.lax.dot_general(
        x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST
      )
    else:
      strides, padding, dilation = geometry
      x = _convolve(x, kernel, strides, padding, dilation)
    x = x + bias
  return x


_evaluate_jitted = jax.jit(evaluate_certified, static_argnums=0)


def certified_chain(model: nn.Module, variables: Any, input_shape: Sequence[int]) -> CertifiedChain:
  """The certificate of a ``LipschitzSequential`` with the operators it bounds (arguments and
  errors as ``layer_lipschitz_bounds``)."""
  if type(model) is not LipschitzSequential:  # pylint: disable=unidiomatic-typecheck
    raise TypeError(
      f"Only a LipschitzSequential chain can be certified, got {type(model).__name__}."
    )
  bound = model.bind(variables)
  probe = jnp.asarray(
    np.random.default_rng(0).standard_normal((2,) + tuple(input_shape)), jnp.float32
  )
  bounds: list[LayerBound] = []
  operators: list[CertifiedOperator] = []
  # The probe runs at the highest matmul precision (no TF32 on GPUs); lipdp's release calls
  # this in float64 on float64 weights (`lipdp.latent_release.release_arithmetic`), and the
  # match check below holds to 4e-6 whether the layer computes in float32 or float64.
  with jax.default_matmul_precision("highest"):
    _walk(bound, probe, "", bounds, operators)
  return CertifiedChain(tuple(bounds), tuple(operators))


def layer_lipschitz_bounds(
  model: nn.Module, variables: Any, input_shape: Sequence[int]
) -> list[LayerBound]:
  """Per-layer certified bounds of a ``LipschitzSequential``, in order (nested chains flattened).

  Args:
    model: an unbound ``LipschitzSequential``.
    variables: its variables (``params`` and, for spectral layers, ``lipschitz_state``).
    input_shape: shape of one input record, without the batch axis.

  Returns:
    One ``LayerBound`` per layer; their product is ``certified_lipschitz_bound``.

  Raises:
    TypeError: for a model that is not a ``LipschitzSequential``, for a layer the certificate
      cannot bound, or for a layer whose forward pass is not the operator it exposes.
  """
  return list(certified_chain(model, variables, input_shape).bounds)


def certified_lipschitz_bound(
  model: nn.Module, variables: Any, input_shape: Sequence[int]
) -> float:
  """Certified upper bound on ``Lip(model)`` (l2 -> l2), a host-side float64 number.

  Args:
    model: an unbound ``LipschitzSequential``.
    variables: its variables (``params`` and, for spectral layers, ``lipschitz_state``).
    input_shape: shape of one input record, without the batch axis.

  Returns:
    The product of the per-layer bounds of ``layer_lipschitz_bounds``.
  """
  return chain_bound(layer_lipschitz_bounds(model, variables, input_shape))


def chain_bound(bounds: Sequence[LayerBound]) -> float:
  """Lip(f_n o ... o f_1) <= prod_i Lip(f_i): the bound of a chain from its layers' bounds."""
  return float(np.prod([b.bound for b in bounds], dtype=np.float64))


def rounding_error_bound(
  bounds: Sequence[LayerBound], input_norm: float, unit: float = FLOAT64_UNIT
) -> tuple[float, float]:
  """An upper bound on ||f_computed(x) - f(x)||_2 for every input with ||x||_2 <= input_norm,
  when each layer computes the operator it is certified for, its certified kernel itself
  (`CertifiedChain`, which evaluates exactly those), and the evaluation rounds with unit
  `unit` (2^-53 for float64, 2^-24 for float32).

  Each output of a linear layer is an inner product of m = fan_in products plus the bias.
  Evaluated in floating point in any order, with or without fused multiply-adds, it is off by
  at most gamma_{m+1} (sum_k |A_jk| |a_k| + |b_j|), gamma_n = n u / (1 - n u) (Higham,
  "Accuracy and Stability of Numerical Algorithms", 2nd ed. 2002, section 3.1), where every
  operation rounds relatively. Below the smallest normal number lambda, XLA on a CPU flushes
  to zero, an absolute error up to lambda per operation (an independent review built an
  encoder that this took 4.5 L D away from its exact map): with the 2m + 1 operations of an
  output, at most (2m + 1) lambda (1 + gamma_{m+1}) more. In l2 a layer with n outputs is off
  by at most gamma_{m+1} (|| |A| ||_2 ||a||_2 + ||b||_2) + sqrt(n) (2m + 1) lambda
  (1 + gamma_{m+1}). The activations the certificate knows (MaxMin,
  GroupSort, FullSort, ReLU) and Flatten compute exactly in floating point, are 1-Lipschitz
  and map 0 to 0, so they neither add error nor grow a norm. By induction, with R the bound on
  the exact activations' norm and E the bound on the error:
      R_l = Lip_l R_{l-1} + ||b_l||,   E_l = Lip_l E_{l-1} + gamma (|| |A_l| || (R_{l-1} +
      E_{l-1}) + ||b_l||).
  Returns (E, R): the error bound and the bound on the exact output's norm. Raises ValueError
  for a layer too wide for the bound (m u >= 1/2)."""
  if unit not in SMALLEST_NORMAL:
    raise ValueError(f"unit must be float64's 2^-53 or float32's 2^-24, got {unit}")
  flushed = SMALLEST_NORMAL[unit]
  norm, error = float(input_norm), 0.0
  for b in bounds:
    if b.abs_norm is None:  # exact, 1-Lipschitz, 0 at 0
      continue
    terms = b.fan_in + 1
    if not terms * unit < 0.5:
      raise ValueError(f"{b.path}: {b.fan_in} products are too many for the rounding bound")
    gamma = rounding.gamma(terms, unit)
    outputs = float(np.prod(b.output_shape))
    underflow = math.sqrt(outputs) * (2 * b.fan_in + 1) * flushed * (1.0 + gamma)
    local = gamma * (b.abs_norm * (norm + error) + b.bias_norm) + underflow
    error = b.bound * error + local
    norm = b.bound * norm + b.bias_norm
  # Each step above may round down by a relative 2^-52 or so; 1e-12 relative covers them.
  return error * (1.0 + 1e-12), norm * (1.0 + 1e-12)


def rounding_slack(bounds: Sequence[LayerBound]) -> float:
  """The share of the certified bound that the rounding of the evaluation may use, relative:
  1 - ((1 + _MATCH_RTOL) / (1 + FLOAT_SAFETY_MARGIN))^n over the n linear layers.

  The certified bound is prod_l sigma_l (1 + FLOAT_SAFETY_MARGIN), sigma_l the float64 SVD's
  (or FFT's) norm of the certified kernel. Evaluated as its certified operators
  (`CertifiedChain`), the exact map is prod_l sigma_l-Lipschitz up to that SVD's error; this
  share still sets aside the factor 1 + _MATCH_RTOL per layer that the forward cross-check
  accepts, so it also holds for a forward pass that the cross-check accepted. L D times it is
  left over for the evaluation's additive rounding (twice E, for two records)."""
  linear = sum(1 for b in bounds if b.abs_norm is not None)
  ratio = (1.0 + _MATCH_RTOL) / (1.0 + FLOAT_SAFETY_MARGIN)
  # The margin also covers the SVD's / FFT's float64 error (~1e-13 per layer): 1e-12 reserved.
  return (1.0 - ratio**linear - 1e-12 * linear) * (1.0 - 1e-9)  # rounded down


@functools.partial(jax.jit, static_argnums=0)
def _apply(module: nn.Module, variables: Any, x: jax.Array) -> jax.Array:
  return module.apply(variables, x)  # Evaluation mode: no collection is mutable.


@functools.partial(jax.jit, static_argnums=0)
def _effective_kernel(module: nn.Module, variables: Any) -> jax.Array:
  return module.apply(variables, method=type(module).effective_kernel)


class _Layer:
  """A module of the chain as the certificate sees it: the unbound module and its variables,
  with jitted (and cached per module and shape) forward pass and effective kernel."""

  def __init__(self, bound: nn.Module):
    self.module, self.variables = bound.unbind()
    try:
      hash(self.module)
      self._apply, self._kernel = _apply, _effective_kernel
    except TypeError:  # An unhashable attribute (e.g. an array mask): compile per call.
      self._apply = lambda module, v, x: jax.jit(lambda v, x: module.apply(v, x))(v, x)
      self._kernel = lambda module, v: jax.jit(
        lambda v: module.apply(v, method=type(module).effective_kernel)
      )(v)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self._apply(self.module, self.variables, x)

  def effective_kernel(self) -> jax.Array:
    return self._kernel(self.module, self.variables)


def _walk(
  chain: nn.Module,
  x: jax.Array,
  prefix: str,
  out: list[LayerBound],
  operators: list[CertifiedOperator],
) -> jax.Array:
  for index, layer in enumerate(chain.layers):
    is_module = isinstance(layer, nn.Module)
    path = prefix + (layer.name if is_module else f"[{index}]")
    if is_module and type(layer) is LipschitzSequential:  # pylint: disable=unidiomatic-typecheck
      x = _walk(layer, x, path + "/", out, operators)
      continue
    handler = _handler(layer)
    if is_module:
      _refuse_low_precision(layer)
      layer = _Layer(layer)
    y = layer(x)
    value, method, linear, operator = handler(layer, x, y)
    name = type(layer.module).__name__ if is_module else getattr(layer, "__name__", repr(layer))
    shapes = (tuple(x.shape[1:]), tuple(y.shape[1:]))
    out.append(LayerBound(path, name, value, method, *shapes, *linear))
    operators.append(operator)
    x = y
  return x


def _handler(layer: Any) -> Callable[[Any, jax.Array, jax.Array], tuple]:
  if isinstance(layer, nn.Module):
    handler = _MODULE_HANDLERS.get(type(layer))
    if handler is None:
      raise TypeError(
        f"Cannot certify a {type(layer).__name__}: the certificate only knows "
        f"{sorted(t.__name__ for t in _MODULE_HANDLERS)} and nested LipschitzSequential "
        "(exact types; subclasses are refused)."
      )
    return handler
  for function in _ONE_LIPSCHITZ_FUNCTIONS:
    if layer is function:
      return _one_lipschitz_function
  raise TypeError(
    f"Cannot certify the function {layer!r}: only jax.nn.relu is known to be 1-Lipschitz. "
    "Wrap other maps in a module the certificate knows."
  )


def _refuse_low_precision(module: nn.Module) -> None:
  """A layer computing in 16-bit rounds its inputs: not a linear map at the certified scale."""
  dtype = getattr(module, "dtype", None)
  if dtype is not None and jnp.finfo(dtype).bits < 32:
    raise TypeError(
      f"Cannot certify {type(module).__name__} computing in {jnp.dtype(dtype).name}: "
      "the certificate needs float32 or float64 computation (16-bit parameters are fine)."
    )


def _with_margin(value: float) -> float:
  return float(value) * (1.0 + FLOAT_SAFETY_MARGIN)


def _check_matches(layer: _Layer, x: jax.Array, y: jax.Array, reference: np.ndarray) -> np.ndarray:
  """Raises unless ``layer(x) - layer(0)`` equals the linear operator's ``reference`` output;
  returns ``layer(0)`` for one record (the bias: the certified operator's, `CertifiedOperator`).

  The test is relative: ``||layer(x) - layer(0) - A x|| <= _MATCH_RTOL ||A x||``. A bias much
  larger than ``A x`` would make the float32 subtraction lose digits, so the probe is first
  scaled up (the operator is linear, ``A (s x) = s A x``) until ``||A x||`` dominates the bias.
  A forward pass that the test accepts may still multiply the operator by up to
  ``1 + _MATCH_RTOL``; ``FLOAT_SAFETY_MARGIN`` covers that factor.
  """
  name = type(layer.module).__name__
  offset = np.asarray(layer(jnp.zeros_like(x)), np.float64)
  if offset.shape != reference.shape:
    raise TypeError(
      f"{name}: forward output {offset.shape} does not match the certified operator's "
      f"{reference.shape}."
    )
  ref_norm = np.linalg.norm(reference)
  scale = 1.0
  if 0 < ref_norm < _PROBE_DOMINANCE * np.linalg.norm(offset):
    scale = min(_PROBE_DOMINANCE * np.linalg.norm(offset) / ref_norm, _MAX_PROBE_SCALE)
    y = layer(x * jnp.asarray(scale, x.dtype))
  actual = np.asarray(y, np.float64) - offset
  expected = reference * scale
  error = np.linalg.norm(actual - expected)
  # The second term only admits the float32 rounding of the bias itself (a zero kernel).
  tolerance = _MATCH_RTOL * np.linalg.norm(expected) + 4 * FLOAT32_UNIT * np.linalg.norm(offset)
  if not error <= tolerance:
    raise TypeError(
      f"{name}: its forward pass is not the linear operator the certificate would bound "
      f"(relative mismatch {error / max(np.linalg.norm(expected), 1e-30):.2e})."
    )
  return offset[0]  # the bias is the same for every record


def _refuse_custom_ops(module: nn.Module, names: Sequence[str]) -> None:
  """flax layers can swap their contraction for any function; the certificate does not guess.

  `promote_dtype` is refused too unless it is flax's own: it receives the input, so a custom
  one can be nonlinear in it, which the forward-pass probes (two fixed inputs) cannot rule out
  (an independent review built one whose true Lipschitz ratio was 319 against a certified
  1.72)."""
  for name in names:
    if getattr(module, name, None) is not None:
      raise TypeError(f"Cannot certify {type(module).__name__} with a custom {name}.")
  if getattr(module, "promote_dtype", flax_dtypes.promote_dtype) is not flax_dtypes.promote_dtype:
    raise TypeError(f"Cannot certify {type(module).__name__} with a custom promote_dtype.")


def _as_computed(module: nn.Module, kernel: jax.Array) -> jax.Array:
  """The kernel in the dtype the flax layer computes with (e.g. rounded to bfloat16)."""
  return kernel if module.dtype is None else jnp.asarray(kernel).astype(module.dtype)


def _dense_kernel(layer: _Layer) -> jax.Array:
  if type(layer.module) is nn.Dense:  # pylint: disable=unidiomatic-typecheck
    _refuse_custom_ops(layer.module, ("dot_general", "dot_general_cls"))
    return _as_computed(layer.module, layer.variables["params"]["kernel"])
  return layer.effective_kernel()


def _as_read(kernel) -> np.ndarray:
  """The kernel as float64, its subnormal entries zeroed: XLA on a CPU reads subnormal inputs
  as zero, so that is the operator a float64 evaluation applies (an independent review built a
  raw float64 kernel whose subnormal entries, invisible to the probes, the SVD counted and the
  evaluation dropped: 1.14 L D between two released means). Harmless elsewhere: float32
  weights cast to float64 have no float64 subnormals."""
  kernel = np.asarray(kernel, np.float64)
  return np.where(np.abs(kernel) < SMALLEST_NORMAL[FLOAT64_UNIT], 0.0, kernel)


def _dense_bound(layer: _Layer, x: jax.Array, y: jax.Array) -> tuple:
  kernel = _as_read(_dense_kernel(layer))
  if kernel.ndim != 2:
    raise TypeError(f"{type(layer.module).__name__}: expected a 2-D kernel, got {kernel.shape}.")
  bias = _check_matches(layer, x, y, np.asarray(x, np.float64) @ kernel)
  abs_norm = _with_margin(np.linalg.norm(kernel))  # || |A| ||_2 <= ||A||_F
  bound = _with_margin(np.linalg.svd(kernel, compute_uv=False)[0])
  linear = (abs_norm, _with_margin(np.linalg.norm(bias)), kernel.shape[0])
  return bound, "svd", linear, CertifiedOperator("dense", kernel, bias)


def _conv_kernel_and_geometry(layer: _Layer, rank: int):
  """The effective kernel, strides and kernel dilation of a supported convolution."""
  module = layer.module
  if type(module) is nn.Conv:  # pylint: disable=unidiomatic-typecheck
    _refuse_custom_ops(module, ("conv_general_dilated", "conv_general_dilated_cls"))
    if as_tuple(module.input_dilation, rank) != (1,) * rank:
      raise TypeError("Cannot certify nn.Conv with input_dilation != 1.")
    if module.feature_group_count != 1:
      raise TypeError("Cannot certify nn.Conv with feature_group_count != 1.")
    kernel = layer.variables["params"]["kernel"]
    if module.mask is not None:
      kernel = kernel * module.mask
    strides, dilation = as_tuple(module.strides, rank), as_tuple(module.kernel_dilation, rank)
    return _as_computed(module, kernel), strides, dilation
  return layer.effective_kernel(), as_tuple(module.strides, rank), (1,) * rank


def _conv_bound(layer: _Layer, x: jax.Array, y: jax.Array) -> tuple:
  rank = x.ndim - 2
  kernel, strides, dilation = _conv_kernel_and_geometry(layer, rank)
  if kernel.ndim != rank + 2:
    raise TypeError(
      f"{type(layer.module).__name__}: kernel {kernel.shape} does not fit input {x.shape}."
    )
  padding = resolve_padding(
    layer.module.padding, x.shape[1:-1], kernel.shape[:rank], strides, dilation
  )
  geometry = (tuple(strides), padding, tuple(dilation))
  reference = _conv_reference(x, kernel, *geometry)
  bias = _check_matches(layer, x, y, np.asarray(reference, np.float64))
  kernel = _as_read(kernel)
  value, method = conv_operator_norm_bound(kernel, x.shape[1:-1], strides, padding, dilation)
  # Each output sums at most the window times c_in products (its row of |A| sums to at most
  # max_o sum |K[..., :, o]|); each input enters at most the window times c_out outputs (its
  # column, max_i sum |K[..., i, :]|); || |A| ||_2 <= sqrt(max row sum * max column sum).
  magnitude = np.abs(kernel)
  rows = magnitude.sum(axis=tuple(range(rank + 1))).max()
  columns = magnitude.sum(axis=tuple(range(rank)) + (rank + 1,)).max()
  abs_norm = _with_margin(np.sqrt(rows * columns))
  fan_in = int(np.prod(kernel.shape[: rank + 1]))
  linear = (abs_norm, _with_margin(np.linalg.norm(bias)), fan_in)
  return _with_margin(value), method, linear, CertifiedOperator("conv", kernel, bias, geometry)


def _convolve(x, kernel, strides, padding: ConvPadding, dilation) -> jax.Array:
  """The certified operator: the convolution rebuilt from the explicit padding, in the dtype
  of its arguments."""
  if padding.circular:
    x = jnp.pad(x, ((0, 0),) + padding.pads + ((0, 0),), mode="wrap")
    pads = "VALID"
  else:
    pads = list(padding.pads)
  return conv(
    x,
    kernel,
    strides=strides,
    padding=pads,
    kernel_dilation=dilation,
    precision=jax.lax.Precision.HIGHEST,
  )


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _conv_reference(x, kernel, strides, padding: ConvPadding, dilation) -> jax.Array:
  """The certified operator in float32, for the forward cross-check (`_check_matches`)."""
  return _convolve(
    x.astype(jnp.float32), jnp.asarray(kernel, jnp.float32), strides, padding, dilation
  )


def conv_operator_norm_bound(
  kernel: np.ndarray,
  spatial_shape: Sequence[int],
  strides: Sequence[int],
  padding: ConvPadding,
  kernel_dilation: Optional[Sequence[int]] = None,
) -> tuple[float, str]:
  """Upper bound on the operator norm of a convolution, via the DFT (Sedghi et al. 2019).

  Args:
    kernel: ``(*kernel_size, c_in, c_out)``, float64.
    spatial_shape: spatial size of the input.
    strides: stride per spatial dimension.
    padding: explicit padding (``linear_ops.resolve_padding``).
    kernel_dilation: dilation per spatial dimension (default 1).

  Returns:
    ``(bound, method)``. The bound is the exact norm of the circular convolution on the input
    grid (circular padding) or on the zero-padded grid (zero padding); ``method`` says which.

  Raises:
    TypeError: for a circular padding whose strided outputs wrap onto each other.
  """
  kernel = np.asarray(kernel, np.float64)
  rank = kernel.ndim - 2
  dilation = tuple(kernel_dilation or (1,) * rank)
  if any(d > 1 for d in dilation):
    sizes = tuple((k - 1) * d + 1 for k, d in zip(kernel.shape[:rank], dilation))
    dilated = np.zeros(sizes + kernel.shape[rank:])
    dilated[tuple(slice(None, None, d) for d in dilation)] = kernel
    kernel = dilated
  sizes = kernel.shape[:rank]
  if padding.circular:
    for n, k, s, (lo, hi) in zip(spatial_shape, sizes, strides, padding.pads):
      outputs = (n + lo + hi - k) // s + 1
      if (outputs - 1) * s >= n:
        raise TypeError("Cannot certify a circular convolution whose outputs wrap around.")
    grid = tuple(int(n) for n in spatial_shape)
    method = "fft-circular"
  else:
    grid = tuple(int(n) + lo + hi for n, (lo, hi) in zip(spatial_shape, padding.pads))
    method = "fft-zero-padded"
  # Place the taps on the grid (wrapping taps that do not fit, as the circular operator does).
  folded = np.zeros(grid + kernel.shape[rank:])
  for tap in np.ndindex(*sizes):
    folded[tuple(t % g for t, g in zip(tap, grid))] += kernel[tap]
  spectrum = np.fft.rfftn(folded, axes=tuple(range(rank)))
  c_in, c_out = kernel.shape[rank:]
  matrices = spectrum.reshape(-1, c_in, c_out)
  top = 0.0
  for start in range(0, matrices.shape[0], _FFT_CHUNK):
    chunk = matrices[start : start + _FFT_CHUNK]
    if c_in <= c_out:
      gram = chunk @ np.conj(np.swapaxes(chunk, 1, 2))
    else:
      gram = np.conj(np.swapaxes(chunk, 1, 2)) @ chunk
    top = max(top, float(np.linalg.eigvalsh(gram)[:, -1].max()))
  return float(np.sqrt(max(top, 0.0))), method


@dataclasses.dataclass(frozen=True)
class _ParameterFree:
  """A parameter-free module of the chain (an activation, Flatten) as a function of x."""

  module: nn.Module

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.module.apply({}, x)


def _one_lipschitz_function(layer, x, y) -> tuple:
  del x, y
  return 1.0, "1-Lipschitz function", (), CertifiedOperator("map", function=layer)


def _sort_bound(layer, x, y) -> tuple:
  if y.shape != x.shape:
    raise TypeError(f"{type(layer.module).__name__} changed the shape {x.shape} -> {y.shape}.")
  operator = CertifiedOperator("map", function=_ParameterFree(layer.module))
  return 1.0, "permutation per region", (), operator


def _flatten_bound(layer, x, y) -> tuple:
  if y.size != x.size:
    raise TypeError(f"Flatten changed the size {x.shape} -> {y.shape}.")
  return 1.0, "reshape", (), CertifiedOperator("map", function=_ParameterFree(layer.module))


_MODULE_HANDLERS = {
  BjorckDense: _dense_bound,
  SpectralDense: _dense_bound,
  AOLDense: _dense_bound,
  nn.Dense: _dense_bound,
  SpectralConv: _conv_bound,
  AOLConv: _conv_bound,
  nn.Conv: _conv_bound,
  MaxMin: _sort_bound,
  GroupSort: _sort_bound,
  FullSort: _sort_bound,
  Flatten: _flatten_bound,
}
_ONE_LIPSCHITZ_FUNCTIONS = (jax.nn.relu,)
