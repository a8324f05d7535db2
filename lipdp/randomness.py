"""Where randomness comes from: secret by default, reproducible only on explicit request.

Privacy-relevant noise (the encoder noise released at synthesis, the DP-SGD noise, the Poisson
batch masks, the shuffle of the release) must be unpredictable to anyone who does not hold the
seed (design.md section 1, "Secret noise"). So:

- `fresh_seed()` draws 64 bits from the operating system's CSPRNG (`secrets`);
- `key_from_seed(seed)` uses all 64 bits. `jax.random.key(seed)` alone would keep only the low
  32 bits of a large seed when x64 is disabled, which would make the noise brute-forceable.

A seed the user fixes makes every draw reproducible, and so not private against whoever knows it:
callers record `seeded_by_user` in the privacy report.
"""

import secrets

import jax
import numpy as np

SEED_BITS = 64


def fresh_seed() -> int:
  """A 64-bit seed from OS entropy."""
  return secrets.randbits(SEED_BITS)


def check_seed(seed: int) -> int:
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f"seed must be an integer, got {seed!r}")
  seed = int(seed)
  if not 0 <= seed < 2**SEED_BITS:
    raise ValueError(f"seed must be in [0, 2**{SEED_BITS}), got {seed}")
  return seed


def key_from_seed(seed: int) -> jax.Array:
  """A threefry PRNG key carrying all 64 bits of `seed`."""
  seed = check_seed(seed)
  data = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
  return jax.random.wrap_key_data(data, impl="threefry2x32")


def numpy_rng(seed: int, *path: int) -> np.random.Generator:
  """A NumPy generator for the stream `path` (e.g. (step, 1)) of `seed`; PCG64 takes all bits."""
  return np.random.default_rng([check_seed(seed), *path])
