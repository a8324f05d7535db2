import jax
import numpy as np
import pytest

from lipdp import randomness


def test_keys_use_all_64_bits_of_the_seed():
  low = 123456789
  a = jax.random.normal(randomness.key_from_seed(low), (4,))
  b = jax.random.normal(randomness.key_from_seed(low + 2**32), (4,))
  assert not np.allclose(a, b)


def test_fresh_seeds_differ_and_fit():
  seeds = {randomness.fresh_seed() for _ in range(50)}
  assert len(seeds) == 50
  assert all(0 <= s < 2**64 for s in seeds)
  assert max(seeds) >= 2**32  # with 50 draws, all below 2**32 has probability 2**-1600


def test_numpy_streams_are_reproducible_and_distinct():
  a = randomness.numpy_rng(7, 3, 1).random(5)
  np.testing.assert_array_equal(a, randomness.numpy_rng(7, 3, 1).random(5))
  assert not np.allclose(a, randomness.numpy_rng(7, 3, 2).random(5))


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, "3", True])
def test_bad_seeds_raise(bad):
  with pytest.raises(ValueError, match="seed"):
    randomness.key_from_seed(bad)
