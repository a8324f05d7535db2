"""Where randomness comes from: secret by default, reproducible only on explicit request.

Privacy-relevant noise (the encoder noise released at synthesis, the DP-SGD noise, the Poisson
batch masks, the shuffle of the release) must be unpredictable to anyone who does not hold the
seed (docs/method.md, "Secret noise"). So there are two kinds of seed:

- a *secret* seed, `fresh_seed()`: 256 bits from the operating system's CSPRNG (`secrets`),
  tagged by bit 256 (`is_secret_seed`). Its NumPy streams are AES-128 in counter mode (FIPS
  197; NIST SP 800-38A; `randomgen.AESCounter`, with the processor's AES instructions where it
  has them), each keyed by keyed BLAKE2b (RFC 7693) of the stream's path under the seed: a
  cryptographic generator, so no feasible amount of its output predicts the rest. Nothing but
  the run that drew it can reproduce it;
- a *user* seed, an integer in [0, 2**128): the noise is reproducible, and so not private
  against whoever knows the seed (callers record `seeded_by_user` in the privacy report). Its
  streams are NumPy's PCG64 seeded with all its bits through SeedSequence, as they always were,
  so that every seeded run and every committed row reproduces. PCG64 is not a cryptographic
  generator; for a seeded run that costs nothing the seed has not already given away.

`numpy_rng(seed, *path)` is the one door to both. Every privacy-relevant draw comes from it: the
release noise and shuffle, the DP-SGD noise, the Poisson batch masks (and the baselines' noise,
`lipdp.baselines.base.noise_rng`). `key_from_seed(seed)` depends on every bit of the seed. A
threefry key holds 64 bits, so the JAX streams (parameter initialisation, the VAE's sampling
during training, prior latents) have at most 64 bits of state; none of them is privacy noise.
`jax.random.key(seed)` alone would keep only the low 32 bits of a large seed when x64 is
disabled.
"""

import hashlib
import secrets

import jax
import numpy as np
import randomgen
from scipy import stats

SEED_BITS = 128  # a user's seed
SECRET_KEY_BITS = 256  # a secret seed's random bits
_SECRET_TAG = 1 << SECRET_KEY_BITS  # set in every secret seed, never in a user's
_STREAM_KEY_BYTES = 16  # AES-128's key

# Privacy noise is drawn by NumPy's float64 ziggurat (`Generator.standard_normal`), not by
# `jax.random.normal`: without x64, JAX samples float32 as sqrt(2) erfinv(u) with a float32
# uniform, whose outputs stop near 5.2 standard deviations, so a mean shifted by Delta leaves
# an event of probability P(xi > 5.2 - Delta / sigma) that the neighbour can never produce
# (2.3e-4 at sigma / Delta = 0.6), far above typical deltas. The float64 ziggurat's tail step
# returns r + x with r = 3.65415... and x^2 < 2 * (-log(2^-53)), so |xi| < 12.2258.
FLOAT64_NORMAL_MAX = 12.2258


def normal_tail_mass(standard_deviations: float) -> float:
  """P(|N(0,1)| > standard_deviations)."""
  return float(2.0 * stats.norm.sf(standard_deviations))


def normal_truncation_mass() -> float:
  """P(|N(0,1)| > FLOAT64_NORMAL_MAX) (~2.3e-34): the mass the float64 sampler cannot reach.

  Each of the d * k released coordinates can add at most (1 + e^epsilon) times this to delta
  (an event the truncated sampler never produces has that much probability under the ideal
  Gaussian); callers check that it is negligible against their delta.
  """
  return normal_tail_mass(FLOAT64_NORMAL_MAX)


def standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
  """float64 N(0, 1) draws for privacy noise (see FLOAT64_NORMAL_MAX for why not JAX's)."""
  return rng.standard_normal(shape, dtype=np.float64)


def fresh_seed() -> int:
  """A secret seed: 256 bits of OS entropy, tagged as secret (its streams are AES-CTR's)."""
  return _SECRET_TAG | secrets.randbits(SECRET_KEY_BITS)


def is_secret_seed(seed: int) -> bool:
  """Whether `seed` is of `fresh_seed`'s kind (bit 256 set) rather than a user's."""
  return seed >> SECRET_KEY_BITS == 1


def check_seed(seed: int) -> int:
  """`seed` as an int: a user's seed in [0, 2**128), or a secret seed (`fresh_seed`)."""
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f"seed must be an integer, got {seed!r}")
  seed = int(seed)
  if not (0 <= seed < 2**SEED_BITS or is_secret_seed(seed)):
    raise ValueError(
      f"seed must be in [0, 2**{SEED_BITS}) (or a secret seed from fresh_seed), got {seed}"
    )
  return seed


def is_user_seed(seed) -> bool:
  """Whether `seed` is an integer a user may fix: in [0, 2**128) (a secret seed's range, bit
  256, is `fresh_seed`'s alone, so that a seed given by hand always means PCG64 streams)."""
  return (
    not isinstance(seed, bool) and isinstance(seed, (int, np.integer)) and 0 <= seed < 2**SEED_BITS
  )


def check_user_seed(seed: int) -> int:
  """`seed` as an int, if a user may fix it (`is_user_seed`); a ValueError otherwise."""
  if not is_user_seed(seed):
    raise ValueError(f"a fixed seed must be an integer in [0, 2**{SEED_BITS}), got {seed!r}")
  return int(seed)


def _secret_digest(seed: int, purpose: bytes, path: tuple, size: int) -> bytes:
  """Keyed BLAKE2b of a stream's path (length-prefixed, so (a,) and (a, 0) differ) under the
  secret seed's 256 bits: a pseudo-random function, so streams of one seed are independent."""
  if any(
    isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= p < 2**128 for p in path
  ):
    raise ValueError(f"a stream path holds integers in [0, 2**128), got {path!r}")
  message = len(path).to_bytes(8, "little") + b"".join(int(p).to_bytes(16, "little") for p in path)
  key = (seed & (_SECRET_TAG - 1)).to_bytes(SECRET_KEY_BITS // 8, "little")
  return hashlib.blake2b(message, key=key, digest_size=size, person=purpose).digest()


def key_from_seed(seed: int) -> jax.Array:
  """A threefry PRNG key that depends on every bit of `seed`.

  A user's seed: its low 64 bits are the key's two 32-bit words (so a seed below 2**64 keeps the
  key it always had, and seeded runs reproduce); the high 64 bits, if any, are folded in, 32
  bits at a time. A secret seed: 64 bits of its keyed BLAKE2b digest.
  """
  seed = check_seed(seed)
  if is_secret_seed(seed):
    digest = _secret_digest(seed, b"lipdp-jax-key", (), 8)
    data = np.frombuffer(digest, dtype="<u4").astype(np.uint32)
    return jax.random.wrap_key_data(data, impl="threefry2x32")
  low, high = seed & (2**64 - 1), seed >> 64
  data = np.array([low >> 32, low & 0xFFFFFFFF], dtype=np.uint32)
  key = jax.random.wrap_key_data(data, impl="threefry2x32")
  if high:
    key = jax.random.fold_in(key, np.uint32(high >> 32))
    key = jax.random.fold_in(key, np.uint32(high & 0xFFFFFFFF))
  return key


def stream_key(seed: int, *path: int) -> int:
  """The AES-128 key of a secret seed's stream `path` (a little-endian integer, as
  `randomgen.AESCounter` takes it)."""
  return int.from_bytes(_secret_digest(seed, b"lipdp-aes-ctr", path, _STREAM_KEY_BYTES), "little")


def numpy_rng(seed: int, *path: int) -> np.random.Generator:
  """A NumPy generator for the stream `path` (e.g. (step, 1)) of `seed`.

  A secret seed gives AES-128-CTR keyed by `stream_key(seed, *path)`, counter 0. A user's seed
  gives PCG64 through SeedSequence, which takes all its bits. A trap for new streams of a user's
  seed: SeedSequence pads a short entropy list with zeros, so for a seed below 2**64 the paths
  (a,) and (a, 0) give one generator. Streams that must be independent of one another differ in
  a non-zero element, not in length. (Not changed for user seeds: every seeded row would stop
  reproducing; a secret seed's paths are length-prefixed.)
  """
  seed = check_seed(seed)
  if is_secret_seed(seed):
    return np.random.Generator(randomgen.AESCounter(key=stream_key(seed, *path), counter=0))
  return np.random.default_rng([seed, *path])
