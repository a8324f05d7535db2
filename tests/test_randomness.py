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
  """Issue 17, item 8: 128 bits of OS entropy, as the baselines draw (the VAE path drew 64)."""
  seeds = {randomness.fresh_seed() for _ in range(50)}
  assert len(seeds) == 50
  assert all(0 <= s < 2**128 for s in seeds)
  assert max(seeds) >= 2**64  # with 50 draws, all below 2**64 has probability 2**-3200


def test_every_bit_of_a_128_bit_seed_changes_the_streams():
  seed = 2**127 + 12345
  for other in (seed ^ 1, seed ^ 2**64, seed ^ 2**100):
    assert not np.array_equal(
      randomness.numpy_rng(seed, 3, 1).random(5), randomness.numpy_rng(other, 3, 1).random(5)
    )
    assert not np.allclose(
      jax.random.normal(randomness.key_from_seed(seed), (4,)),
      jax.random.normal(randomness.key_from_seed(other), (4,)),
    )
  randomness.check_seed(2**128 - 1)


def test_seeds_below_2_64_keep_their_keys():
  """Reproducibility of seeded runs: the key of a seed below 2**64 is its two 32-bit halves."""
  seed = 2**40 + 7
  expected = jax.random.wrap_key_data(
    np.array([seed >> 32, seed & 0xFFFFFFFF], np.uint32), impl="threefry2x32"
  )
  np.testing.assert_array_equal(
    jax.random.key_data(randomness.key_from_seed(seed)), jax.random.key_data(expected)
  )


def test_numpy_streams_are_reproducible_and_distinct():
  a = randomness.numpy_rng(7, 3, 1).random(5)
  np.testing.assert_array_equal(a, randomness.numpy_rng(7, 3, 1).random(5))
  assert not np.allclose(a, randomness.numpy_rng(7, 3, 2).random(5))


@pytest.mark.parametrize("bad", [-1, 2**128, 1.5, "3", True])
def test_bad_seeds_raise(bad):
  with pytest.raises(ValueError, match="seed"):
    randomness.key_from_seed(bad)
