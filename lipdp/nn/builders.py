"""Builders of Lipschitz networks: ``lipschitz_mlp`` and ``lipschitz_convnet``.

A target ``L`` is spread evenly over the ``n`` linear layers of the chain: each gets
``lipschitz = L ** (1 / n)``, the activations (MaxMin, GroupSort, FullSort) and ``Flatten`` are
1-Lipschitz, so the nominal constant of the network is ``L``. Nominal only: the privacy report
uses ``certified_lipschitz_bound`` on the trained weights.
"""

from typing import Any, Mapping, Optional, Sequence, Union

import flax.linen as nn

from lipdp.nn.activations import FullSort, GroupSort, MaxMin
from lipdp.nn.aol import AOLConv, AOLDense
from lipdp.nn.bjorck import BjorckDense
from lipdp.nn.sequential import Flatten, LipschitzSequential
from lipdp.nn.spectral import SpectralConv, SpectralDense

_DENSE = {"bjorck": BjorckDense, "spectral": SpectralDense, "aol": AOLDense}
_CONV = {"aol": AOLConv, "spectral": SpectralConv}
_ACTIVATIONS = ("maxmin", "groupsort", "fullsort")


def make_activation(name: str, group_size: int = 2) -> nn.Module:
  """``'maxmin'``, ``'groupsort'`` (with ``group_size``) or ``'fullsort'``."""
  if name == "maxmin":
    return MaxMin()
  if name == "groupsort":
    return GroupSort(group_size)
  if name == "fullsort":
    return FullSort()
  raise ValueError(f"Unknown activation {name!r}; expected one of {_ACTIVATIONS}.")


def _check_width(width: int, activation: str, group_size: int) -> None:
  divisor = {"maxmin": 2, "groupsort": group_size, "fullsort": 1}[activation]
  if width % divisor:
    raise ValueError(f"A {activation} activation needs widths divisible by {divisor}, got {width}.")


def _lookup(table: Mapping[str, Any], name: str, what: str) -> Any:
  if name not in table:
    raise ValueError(f"Unknown {what} {name!r}; expected one of {sorted(table)}.")
  return table[name]


def _per_layer(lipschitz_target: float, num_layers: int) -> float:
  if not lipschitz_target > 0:
    raise ValueError(f"lipschitz_target must be positive, got {lipschitz_target}.")
  return float(lipschitz_target) ** (1.0 / num_layers)


def lipschitz_mlp(
  features: Sequence[int],
  lipschitz_target: float = 1.0,
  dense: str = "bjorck",
  activation: str = "maxmin",
  group_size: int = 2,
  **dense_kwargs: Any,
) -> LipschitzSequential:
  """A chain of ``len(features)`` dense layers with activations between them (none at the end).

  Args:
    features: output width of each dense layer.
    lipschitz_target: nominal Lipschitz constant of the whole network.
    dense: ``'bjorck'`` (orthonormal, tight), ``'spectral'`` (power iteration) or ``'aol'``.
    activation: ``'maxmin'``, ``'groupsort'`` or ``'fullsort'``.
    group_size: group size of GroupSort.
    **dense_kwargs: extra attributes of every dense layer (e.g. ``use_bias``, ``num_iters``).

  Returns:
    A ``LipschitzSequential``, each dense layer with ``lipschitz = target ** (1 / n)``.
  """
  if not features:
    raise ValueError("features must name at least one layer.")
  layer_cls = _lookup(_DENSE, dense, "dense layer")
  make_activation(activation, group_size)  # Validates the name.
  scale = _per_layer(lipschitz_target, len(features))
  layers = []
  for i, width in enumerate(features):
    layers.append(layer_cls(features=width, lipschitz=scale, **dense_kwargs))
    if i < len(features) - 1:
      _check_width(width, activation, group_size)
      layers.append(make_activation(activation, group_size))
  return LipschitzSequential(layers)


def lipschitz_convnet(
  conv_features: Sequence[int],
  dense_features: Sequence[int],
  lipschitz_target: float = 1.0,
  conv: str = "aol",
  dense: str = "bjorck",
  kernel_size: Union[int, Sequence[int]] = (3, 3),
  strides: Union[int, Sequence[Any]] = 1,
  padding: Any = "SAME",
  activation: str = "maxmin",
  group_size: int = 2,
  conv_kwargs: Optional[Mapping[str, Any]] = None,
  dense_kwargs: Optional[Mapping[str, Any]] = None,
) -> LipschitzSequential:
  """Convolutions (each followed by an activation), ``Flatten``, then a dense chain.

  Args:
    conv_features: output channels of each convolution.
    dense_features: output width of each dense layer (at least one).
    lipschitz_target: nominal Lipschitz constant of the whole network.
    conv: ``'aol'`` (1-Lipschitz by construction) or ``'spectral'`` (power iteration).
    dense: ``'bjorck'``, ``'spectral'`` or ``'aol'``.
    kernel_size: kernel size of every convolution.
    strides: an int or tuple applied to every convolution, or a ``list`` with one entry per
      convolution.
    padding: padding of every convolution.
    activation: ``'maxmin'``, ``'groupsort'`` or ``'fullsort'``.
    group_size: group size of GroupSort.
    conv_kwargs: extra attributes of every convolution.
    dense_kwargs: extra attributes of every dense layer.

  Returns:
    A ``LipschitzSequential``; each of the ``n`` linear layers has ``lipschitz = target**(1/n)``.
  """
  if not dense_features:
    raise ValueError("dense_features must name at least one layer.")
  conv_cls = _lookup(_CONV, conv, "convolution")
  dense_cls = _lookup(_DENSE, dense, "dense layer")
  make_activation(activation, group_size)
  if isinstance(strides, list):
    if len(strides) != len(conv_features):
      raise ValueError("A list of strides needs one entry per convolution.")
    per_conv_strides = strides
  else:
    per_conv_strides = [strides] * len(conv_features)
  scale = _per_layer(lipschitz_target, len(conv_features) + len(dense_features))
  layers = []
  for width, stride in zip(conv_features, per_conv_strides):
    _check_width(width, activation, group_size)
    layers.append(
      conv_cls(
        features=width,
        kernel_size=kernel_size,
        lipschitz=scale,
        strides=stride,
        padding=padding,
        **dict(conv_kwargs or {}),
      )
    )
    layers.append(make_activation(activation, group_size))
  layers.append(Flatten())
  for i, width in enumerate(dense_features):
    layers.append(dense_cls(features=width, lipschitz=scale, **dict(dense_kwargs or {})))
    if i < len(dense_features) - 1:
      _check_width(width, activation, group_size)
      layers.append(make_activation(activation, group_size))
  return LipschitzSequential(layers)
