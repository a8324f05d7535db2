import jax
import numpy as np
import pytest
import randomgen

from lipdp import randomness


def test_keys_use_all_64_bits_of_the_seed():
  low = 123456789
  a = jax.random.normal(randomness.key_from_seed(low), (4,))
  b = jax.random.normal(randomness.key_from_seed(low + 2**32), (4,))
  assert not np.allclose(a, b)


def test_fresh_seeds_differ_and_are_secret():
  """256 bits of OS entropy under the secret tag; a user's seed is never taken for one."""
  seeds = {randomness.fresh_seed() for _ in range(50)}
  assert len(seeds) == 50
  assert all(randomness.is_secret_seed(s) and s.bit_length() == 257 for s in seeds)
  assert max(s & (2**256 - 1) for s in seeds) >= 2**200  # all below: probability 2**-2800
  assert not any(randomness.is_secret_seed(s) for s in (0, 1, 2**64, 2**128 - 1))
  for bad in (2**128, 2**256 - 1, 2**257):
    with pytest.raises(ValueError, match="seed"):
      randomness.numpy_rng(bad)


def _gf_mul(a: int, b: int) -> int:
  """Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (AES's field)."""
  product = 0
  while b:
    product ^= a if b & 1 else 0
    a = ((a << 1) ^ 0x11B) if a & 0x80 else a << 1
    b >>= 1
  return product


def _aes_sbox() -> list:
  """FIPS 197 section 5.1.1: the multiplicative inverse (x^254), then the affine map."""
  box = []
  for x in range(256):
    inverse = 1
    for _ in range(254):
      inverse = _gf_mul(inverse, x)
    rotations = [((inverse << k) | (inverse >> (8 - k))) & 0xFF for k in range(5)]
    box.append(rotations[0] ^ rotations[1] ^ rotations[2] ^ rotations[3] ^ rotations[4] ^ 0x63)
  return box


def _aes128_encrypt(key: bytes, block: bytes, sbox: list) -> bytes:
  """AES-128 (FIPS 197), written out here so the test does not trust the library it checks."""
  words = [list(key[4 * i : 4 * i + 4]) for i in range(4)]
  rcon = 1
  for i in range(4, 44):  # the key schedule
    t = list(words[i - 1])
    if i % 4 == 0:
      t = [sbox[b] for b in t[1:] + t[:1]]
      t[0] ^= rcon
      rcon = _gf_mul(rcon, 2)
    words.append([a ^ b for a, b in zip(words[i - 4], t)])
  round_key = lambda r: sum(words[4 * r : 4 * r + 4], [])  # noqa: E731
  state = [b ^ k for b, k in zip(block, round_key(0))]
  for r in range(1, 11):
    state = [sbox[b] for b in state]
    state = [state[(i + 4 * (i % 4)) % 16] for i in range(16)]  # ShiftRows, column-major
    if r < 10:  # MixColumns
      mixed = []
      for c in range(4):
        a = state[4 * c : 4 * c + 4]
        for row in range(4):
          coefficients = (2, 3, 1, 1)[-row:] + (2, 3, 1, 1)[:-row] if row else (2, 3, 1, 1)
          value = 0
          for coefficient, byte in zip(coefficients, a):
            value ^= _gf_mul(byte, coefficient)
          mixed.append(value)
      state = mixed
    state = [b ^ k for b, k in zip(state, round_key(r))]
  return bytes(state)


@pytest.fixture(scope="module")
def sbox():
  return _aes_sbox()


def test_the_reference_is_aes128(sbox):
  """FIPS 197, appendix C.1."""
  ciphertext = _aes128_encrypt(
    bytes(range(16)), bytes.fromhex("00112233445566778899aabbccddeeff"), sbox
  )
  assert ciphertext.hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


def test_secret_streams_are_aes_ctr_keyed_by_their_path(sbox):
  """A secret seed's stream is AES-128 of the counters 0, 1, ... under its path's key: the
  privacy noise of an unseeded run comes from a cryptographic generator, not PCG64."""
  seed = randomness.fresh_seed()
  path = (12, 2)
  key = randomness.stream_key(seed, *path).to_bytes(16, "little")
  raw = randomness.numpy_rng(seed, *path).bit_generator.random_raw(8)
  expected = []
  for counter in range(4):
    block = _aes128_encrypt(key, counter.to_bytes(16, "little"), sbox)
    expected += [int.from_bytes(block[:8], "little"), int.from_bytes(block[8:], "little")]
  assert [int(r) for r in raw] == expected
  assert randomness.stream_key(seed, *path) != randomness.stream_key(seed, 12, 1)


def test_secret_streams_are_reproducible_and_distinct():
  seed = randomness.fresh_seed()
  draw = lambda s, *path: randomness.numpy_rng(s, *path).standard_normal(4)  # noqa: E731
  np.testing.assert_array_equal(draw(seed, 3, 2), draw(seed, 3, 2))  # resumption needs this
  # the user-seed trap ((a,) and (a, 0) alike) is closed for secret seeds: paths are prefixed
  others = [draw(seed, 3), draw(seed, 3, 0), draw(seed, 3, 1), draw(seed ^ 1, 3, 2), draw(seed)]
  for other in others:
    assert not np.allclose(draw(seed, 3, 2), other)
  assert not np.allclose(
    jax.random.normal(randomness.key_from_seed(seed), (4,)),
    jax.random.normal(randomness.key_from_seed(seed ^ 2**255), (4,)),
  )


def test_the_baselines_secret_noise_is_aes_ctr_and_a_seed_keeps_pcg64():
  from lipdp.baselines import base  # pylint: disable=g-import-not-at-top

  assert isinstance(base.noise_rng(None).bit_generator, randomgen.AESCounter)
  assert isinstance(
    base.post_processing_rng(base.noise_rng(None), None).bit_generator, randomgen.AESCounter
  )
  assert isinstance(base.noise_rng(5).bit_generator, np.random.PCG64)


def test_dpsgd_noise_of_a_secret_seed_is_its_aes_stream():
  from lipdp.training import batching, dpsgd  # pylint: disable=g-import-not-at-top

  seed, params = randomness.fresh_seed(), {"w": np.zeros((3, 4), np.float32)}
  dp = dpsgd.DPSGDConfig(noise_multiplier=2.0, clip_norm=0.5, sampling_rate=0.1)
  expected = 1.0 * randomness.standard_normal(
    randomness.numpy_rng(seed, 7, batching.NOISE_STREAM), (3, 4)
  )
  np.testing.assert_array_equal(
    dpsgd.dpsgd_noise(params, dp, seed, 7)["w"], expected.astype(np.float32)
  )


def test_every_host_receives_all_of_a_secret_seed(monkeypatch):
  """The multi-host broadcast carries all 257 bits (nine 32-bit words): a cut seed would not be
  secret-tagged, and its host would fall back to PCG64."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  from lipdp.training import loop  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(loop.jax, "process_count", lambda: 2)
  monkeypatch.setattr(multihost_utils, "broadcast_one_to_all", lambda words: words)
  for seed in (randomness.fresh_seed(), 2**127 + 3, 0):
    assert loop._same_on_all_hosts(seed) == seed  # pylint: disable=protected-access


def test_user_seeds_keep_their_pcg64_streams():
  """Every seeded run and committed row reproduces: a user's seed is SeedSequence + PCG64."""
  for seed, path in ((7, (3, 1)), (2**127 + 5, (0,)), (0, ())):
    rng = randomness.numpy_rng(seed, *path)
    assert isinstance(rng.bit_generator, np.random.PCG64)
    np.testing.assert_array_equal(rng.random(5), np.random.default_rng([seed, *path]).random(5))


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
