"""Where randomness comes from: secret by default, reproducible only on explicit request.

Privacy-relevant noise (the encoder noise released at synthesis, the DP-SGD noise, the Poisson
batch masks, the shuffle of the release) must be unpredictable to anyone who does not hold the
seed (docs/method.md, "Secret noise"). So:

- `fresh_seed()` draws 128 bits from the operating system's CSPRNG (`secrets`), as the
  baselines do (`lipdp.baselines.base.noise_rng`);
- `numpy_rng(seed, *path)` feeds all 128 bits to NumPy's SeedSequence. Every privacy-relevant
  draw comes from it: the release noise and shuffle, the DP-SGD noise, the Poisson batch masks;
- `key_from_seed(seed)` depends on every bit of the seed. A threefry key holds 64 bits, so the
  JAX streams (parameter initialisation, the VAE's sampling during training, prior latents) have
  at most 64 bits of state; none of them is privacy noise. `jax.random.key(seed)` alone would
  keep only the low 32 bits of a large seed when x64 is disabled.

A seed the user fixes makes every draw reproducible, and so not private against whoever knows it:
callers record `seeded_by_user` in the privacy report.
"""

import secrets

import jax
import numpy as np
from scipy import stats

SEED_BITS = 128

# Privacy noise is drawn by NumPy's float64 ziggurat (`Generator.standard_normal`), not by
# `jax.random.normal`: without x64, JAX samples float32 as sqrt(2) erfinv(u) with a float32
# uniform, whose outputs stop near 5.2 standard deviations, so a mean shifted by Delta leaves
# an event of probability P(xi > 5.2 - Delta / sigma) that the neighbour can never produce
# (2.3e-4 at sigma / Delta = 0.6), far above typical deltas. The float64 ziggurat's tail step
# returns r + x with r = 3.65415... and x^2 < 2 * (-log(2^-53)), so |xi| < 12.2258.
FLOAT64_NORMAL_MAX = 12.2258


def normal_truncation_mass() -> float:
  """P(|N(0,1)| > FLOAT64_NORMAL_MAX) (~2.3e-34): the mass the float64 sampler cannot reach.

  Each of the d * k released coordinates can add at most (1 + e^epsilon) times this to delta
  (an event the truncated sampler never produces has that much probability under the ideal
  Gaussian); callers check that it is negligible against their delta.
  """
  return float(2.0 * stats.norm.sf(FLOAT64_NORMAL_MAX))


def standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
  """float64 N(0, 1) draws for privacy noise (see FLOAT64_NORMAL_MAX for why not JAX's)."""
  return rng.standard_normal(shape, dtype=np.float64)


def fresh_seed() -> int:
  """A 128-bit seed from OS entropy."""
  return secrets.randbits(SEED_BITS)


def check_seed(seed: int) -> int:
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
    raise ValueError(f"seed must be an integer, got {seed!r}")
  seed = int(seed)
  if not 0 <= seed < 2**SEED_BITS:
    raise ValueError(f"seed must be in [0, 2**{SEED_BITS}), got {seed}")
  return seed


def key_from_seed(seed: int) -> jax.Array:
  """A threefry PRNG key that depends on every bit of `seed`.

  The low 64 bits are the key's two 32-bit words (so a seed below 2**64 keeps the key it always
  had, and seeded runs reproduce); the high 64 bits, if any, are folded in, 32 bits at a time.
  """
  seed = check_seed(seed)
  low, high = seed & (2**64 - 1), seed >> 64
  data = np.array([low >> 32, low & 0xFFFFFFFF], dtype=np.uint32)
  key = jax.random.wrap_key_data(data, impl="threefry2x32")
  if high:
    key = jax.random.fold_in(key, np.uint32(high >> 32))
    key = jax.random.fold_in(key, np.uint32(high & 0xFFFFFFFF))
  return key


def numpy_rng(seed: int, *path: int) -> np.random.Generator:
  """A NumPy generator for the stream `path` (e.g. (step, 1)) of `seed`; PCG64 takes all bits.

  A trap for new streams: SeedSequence pads a short entropy list with zeros, so for a seed below
  2**64 (a user's seed; fresh seeds have 128 bits) the paths (a,) and (a, 0) give one generator.
  Streams that must be independent of one another differ in a non-zero element, not in length.
  (Not changed here: every seeded row would stop reproducing.)
  """
  return np.random.default_rng([check_seed(seed), *path])
