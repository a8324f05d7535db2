"""The network builders: structure, target spreading, validation."""

import jax
import jax.numpy as jnp
import pytest

from lipdp.nn import (
  AOLConv,
  AOLDense,
  BjorckDense,
  Flatten,
  FullSort,
  GroupSort,
  LipschitzSequential,
  MaxMin,
  SpectralConv,
  SpectralDense,
  lipschitz_convnet,
  lipschitz_mlp,
)


def test_mlp_structure_and_per_layer_scale():
  model = lipschitz_mlp([16, 8, 4], lipschitz_target=8.0)
  assert isinstance(model, LipschitzSequential)
  types = [type(layer) for layer in model.layers]
  assert types == [BjorckDense, MaxMin, BjorckDense, MaxMin, BjorckDense]
  assert [layer.lipschitz for layer in model.layers[::2]] == pytest.approx([2.0] * 3)
  assert [layer.features for layer in model.layers[::2]] == [16, 8, 4]


@pytest.mark.parametrize(
  "dense,activation,dense_cls,act_cls",
  [("spectral", "groupsort", SpectralDense, GroupSort), ("aol", "fullsort", AOLDense, FullSort)],
)
def test_mlp_choices(dense, activation, dense_cls, act_cls):
  model = lipschitz_mlp(
    [12, 12, 3], 1.0, dense=dense, activation=activation, group_size=3, use_bias=False
  )
  assert [type(layer) for layer in model.layers] == [dense_cls, act_cls] * 2 + [dense_cls]
  assert not model.layers[0].use_bias
  if act_cls is GroupSort:
    assert model.layers[1].group_size == 3


def test_mlp_validation():
  with pytest.raises(ValueError, match="at least one"):
    lipschitz_mlp([], 1.0)
  with pytest.raises(ValueError, match="positive"):
    lipschitz_mlp([4], 0.0)
  with pytest.raises(ValueError, match="Unknown dense"):
    lipschitz_mlp([4], 1.0, dense="cayley")
  with pytest.raises(ValueError, match="Unknown activation"):
    lipschitz_mlp([4], 1.0, activation="relu")
  with pytest.raises(ValueError, match="divisible by 2"):
    lipschitz_mlp([5, 4], 1.0)  # A MaxMin after 5 features.
  with pytest.raises(ValueError, match="divisible by 4"):
    lipschitz_mlp([6, 4], 1.0, activation="groupsort", group_size=4)
  lipschitz_mlp([5], 1.0)  # No activation after the last layer: any width.


def test_convnet_structure_and_shapes():
  model = lipschitz_convnet([4, 6], [10, 2], lipschitz_target=16.0, strides=[1, 2])
  types = [type(layer) for layer in model.layers]
  assert types == [AOLConv, MaxMin, AOLConv, MaxMin, Flatten, BjorckDense, MaxMin, BjorckDense]
  linear = [layer for layer in model.layers if hasattr(layer, "lipschitz")]
  assert [layer.lipschitz for layer in linear] == pytest.approx([2.0] * 4)
  assert [layer.strides for layer in linear[:2]] == [1, 2]
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 3)))
  assert variables["params"]["layers_2"]["kernel"].shape == (3, 3, 4, 6)
  out = jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((5, 8, 8, 3), jnp.float32))
  assert out.shape == (5, 2)
  spectral = lipschitz_convnet([4], [2], conv="spectral", dense="spectral", padding="CIRCULAR")
  types = [type(layer) for layer in spectral.layers]
  assert types == [SpectralConv, MaxMin, Flatten, SpectralDense]
  assert spectral.layers[0].padding == "CIRCULAR"
  with pytest.raises(ValueError, match="one entry per convolution"):
    lipschitz_convnet([4, 4], [2], strides=[1])
  with pytest.raises(ValueError, match="at least one"):
    lipschitz_convnet([4], [])
