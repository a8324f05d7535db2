"""The gradient-ascent attack, and the certificate against it on every layer type and network.

The attack's ratio is a lower bound on the true Lipschitz constant (recomputed in float64), so a
certified bound below it would be a wrong certificate.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipdp.nn import (
  FLOAT_SAFETY_MARGIN,
  AOLConv,
  AOLDense,
  BjorckDense,
  FullSort,
  GroupSort,
  LipschitzSequential,
  MaxMin,
  SpectralConv,
  SpectralDense,
  certified_lipschitz_bound,
  empirical_lipschitz_lower_bound,
  lipschitz_convnet,
  lipschitz_mlp,
)


def test_attack_finds_the_norm_of_a_linear_map_and_never_exceeds_it():
  a = np.random.default_rng(0).standard_normal((5, 12)).astype(np.float32)
  sigma = np.linalg.norm(a.astype(np.float64), 2)
  fn = lambda x: x @ a.T
  found, (x, y) = empirical_lipschitz_lower_bound(
    fn, (12,), jax.random.key(0), num_starts=8, num_steps=200, return_pair=True
  )
  assert 0.999 * sigma <= found <= sigma * (1 + 1e-9)
  ratio = np.linalg.norm((x - y) @ a.T.astype(np.float64)) / np.linalg.norm(x - y)
  assert ratio == pytest.approx(found, rel=1e-9)


def test_attack_on_a_nonlinear_map_is_below_its_constant():
  # f(x) = 2 * sin(x) coordinatewise: Lip = 2, reached only in the limit of close pairs.
  found = empirical_lipschitz_lower_bound(
    lambda x: 2.0 * jnp.sin(x), (4,), jax.random.PRNGKey(1), num_starts=16, num_steps=200
  )
  assert 1.9 <= found <= 2.0


def _check(model, input_shape, num_starts=16, num_steps=100, seed=0):
  variables = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.ones((1,) + input_shape))
  certified = certified_lipschitz_bound(model, variables, input_shape)
  found = empirical_lipschitz_lower_bound(
    lambda x: model.apply(variables, x),
    input_shape,
    jax.random.PRNGKey(seed + 1),
    num_starts=num_starts,
    num_steps=num_steps,
  )
  # The attack's ratio is itself computed in float64; 1e-12 covers only that rounding (a
  # permutation's ratio can come out as 1 + 2e-16), far below the certificate's own margin.
  assert 0 < found <= certified * (1 + 1e-12), (found, certified)
  return found, certified


SINGLE_LAYERS = {
  "bjorck": (lambda: BjorckDense(6, lipschitz=1.7), (10,)),
  "spectral-dense": (lambda: SpectralDense(6, lipschitz=1.7), (10,)),
  "aol-dense": (lambda: AOLDense(6, lipschitz=1.7), (10,)),
  "nn.Dense": (lambda: nn.Dense(6), (10,)),
  "spectral-conv-circular": (lambda: SpectralConv(3, (3, 3), padding="CIRCULAR"), (5, 5, 2)),
  "aol-conv-strided": (lambda: AOLConv(3, (3, 3), lipschitz=1.7, strides=2), (5, 5, 2)),
  "nn.Conv": (lambda: nn.Conv(3, (3, 3)), (5, 5, 2)),
  "maxmin": (lambda: MaxMin(), (6,)),
  "groupsort": (lambda: GroupSort(3), (6,)),
  "fullsort": (lambda: FullSort(), (6,)),
  "relu": (lambda: jax.nn.relu, (6,)),
}


@pytest.mark.parametrize("name", sorted(SINGLE_LAYERS))
def test_certificate_dominates_the_attack_on_each_layer(name):
  make, shape = SINGLE_LAYERS[name]
  found, certified = _check(LipschitzSequential([make()]), shape)
  if name in ("bjorck", "nn.Dense", "spectral-conv-circular", "maxmin", "fullsort", "groupsort"):
    # Single linear layers (and permutations) are tight: the bound is the exact norm.
    assert found >= 0.99 * certified


NETWORKS = {
  "bjorck-maxmin": (lambda: lipschitz_mlp([32, 32, 16, 8], 2.0), (32,)),
  "spectral-groupsort": (
    lambda: lipschitz_mlp(
      [32, 32, 16, 8], 2.0, dense="spectral", activation="groupsort", group_size=4
    ),
    (32,),
  ),
  "aol-fullsort": (
    lambda: lipschitz_mlp([16, 16, 16, 8], 2.0, dense="aol", activation="fullsort"),
    (16,),
  ),
  "plain-relu": (
    lambda: LipschitzSequential(
      [nn.Dense(16), jax.nn.relu, nn.Dense(16), jax.nn.relu, nn.Dense(16), jax.nn.relu, nn.Dense(4)]
    ),
    (12,),
  ),
  "aol-convnet-strided": (
    lambda: lipschitz_convnet([4, 4], [16, 8], 2.0, strides=[1, 2], dense="aol"),
    (6, 6, 2),
  ),
  "spectral-convnet-circular": (
    lambda: lipschitz_convnet(
      [4, 4], [16, 8], 2.0, conv="spectral", padding="CIRCULAR", dense="spectral"
    ),
    (6, 6, 2),
  ),
}


# Three short attacks (7-14 s each) run in the slow suite, beside every network's long attack
# (`test_long_attack_on_a_wide_bjorck_network_is_tight` checks tightness there too); their
# layers keep their short attacks here (SINGLE_LAYERS), and three networks keep theirs.
_SLOW_SHORT = ("bjorck-maxmin", "spectral-convnet-circular", "spectral-groupsort")


@pytest.mark.parametrize(
  "name",
  [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_SHORT else n for n in sorted(NETWORKS)],
)
def test_certificate_dominates_the_attack_on_four_layer_networks(name):
  make, shape = NETWORKS[name]
  found, certified = _check(make(), shape)
  if name == "bjorck-maxmin":
    # Orthonormal layers with non-increasing widths and a norm-preserving activation: every
    # Jacobian has all singular values 2.0, so the bound is tight (up to the per-layer margin).
    assert found >= 0.9 * certified
    assert certified == pytest.approx(2.0 * (1 + FLOAT_SAFETY_MARGIN) ** 4, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_long_attack_on_four_layer_networks(name):
  make, shape = NETWORKS[name]
  for seed in range(3):
    _check(make(), shape, num_starts=256, num_steps=1000, seed=seed)


@pytest.mark.slow
def test_long_attack_on_a_wide_bjorck_network_is_tight():
  found, certified = _check(
    lipschitz_mlp([256, 256, 128, 16], 1.0), (256,), num_starts=128, num_steps=1000
  )
  assert found >= 0.99 * certified
