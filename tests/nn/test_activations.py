"""MaxMin, GroupSort, FullSort: permutations per region, hence exactly 1-Lipschitz."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lipdp.nn import FullSort, GroupSort, MaxMin

ACTIVATIONS = [MaxMin(), GroupSort(2), GroupSort(4), FullSort()]


def _apply(act, x):
  return np.asarray(act.apply({}, jnp.asarray(x)))


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: repr(a))
def test_output_is_a_permutation_of_the_input(act):
  x = np.random.default_rng(0).standard_normal((5, 3, 8)).astype(np.float32)
  y = _apply(act, x)
  assert y.shape == x.shape
  np.testing.assert_array_equal(np.sort(y, axis=-1), np.sort(x, axis=-1))


def test_values():
  x = np.array([[3.0, -1.0, 2.0, 5.0, 0.0, 4.0, 1.0, -2.0]], np.float32)
  np.testing.assert_array_equal(_apply(MaxMin(), x), [[3, 4, 2, 5, 0, -1, 1, -2]])
  np.testing.assert_array_equal(_apply(GroupSort(2), x), [[-1, 3, 2, 5, 0, 4, -2, 1]])
  np.testing.assert_array_equal(_apply(GroupSort(4), x), [[-1, 2, 3, 5, -2, 0, 1, 4]])
  np.testing.assert_array_equal(_apply(FullSort(), x), [np.sort(x[0])])
  np.testing.assert_array_equal(_apply(GroupSort(8), x), _apply(FullSort(), x))


# Normal floats only: XLA on CPU flushes subnormal inputs to zero (1e-45 -> 0), which keeps
# the map 1-Lipschitz but not norm-preserving at those values.
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
  x=hnp.arrays(np.float32, (2, 12), elements=finite),
  y=hnp.arrays(np.float32, (2, 12), elements=finite),
  which=st.integers(0, len(ACTIVATIONS) - 1),
)
def test_one_lipschitz_and_norm_preserving(x, y, which):
  act = ACTIVATIONS[which]
  fx, fy = _apply(act, x).astype(np.float64), _apply(act, y).astype(np.float64)
  x64, y64 = x.astype(np.float64), y.astype(np.float64)
  # max/min/sort are exact in floating point, so these hold up to float64 summation error.
  assert np.all(np.linalg.norm(fx - fy, axis=1) <= np.linalg.norm(x64 - y64, axis=1) * (1 + 1e-12))
  np.testing.assert_allclose(np.linalg.norm(fx, axis=1), np.linalg.norm(x64, axis=1), rtol=1e-12)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: repr(a))
def test_gradient_is_a_permutation_under_jit(act):
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 8)), jnp.float32)
  w = jnp.arange(1.0, 33.0).reshape(4, 8)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(act.apply({}, x) * w)))(x)
  np.testing.assert_array_equal(np.sort(grad, axis=-1), np.sort(w, axis=-1))


def test_invalid_widths_raise():
  with pytest.raises(ValueError, match="multiple of the group size"):
    MaxMin().apply({}, jnp.ones((1, 5)))
  with pytest.raises(ValueError, match="multiple of the group size"):
    GroupSort(3).apply({}, jnp.ones((1, 8)))
  with pytest.raises(ValueError, match="group_size must be"):
    GroupSort(0).apply({}, jnp.ones((1, 8)))


def test_no_parameters():
  for act in ACTIVATIONS:
    assert act.init(jax.random.PRNGKey(0), jnp.ones((1, 8))) == {}
