"""The release noise as an exact discrete Gaussian on a lattice, and what it is accounted as.

Floating-point Gaussian noise is not the mechanism its accounting describes: the set of floats
mu + sigma * xi can reach depends on mu, so the low-order bits of a released value can tell
neighbouring inputs apart (Mironov 2012, for the Laplace mechanism; Jin, McMurtry, Rubinstein
and Ohrimenko 2022 attack Gaussian samplers too). The lattice release draws no float:

    c = round(mu(x) / gamma)            (gamma = 2^e, so mu / gamma and the rounding are exact)
    z_j = gamma * (c + Y_j),  Y_j ~ N_Z(0, s_g^2)^d   (j = 1..k),

where N_Z(0, s_g^2) is the discrete Gaussian on the integers, P(y) proportional to
exp(-y^2 / (2 s_g^2)), sampled exactly from uniform integers (Canonne, Kamath and Steinke 2020,
Algorithm 3; `lipdp.discrete_gaussian`), and gamma * (c + Y) is exact in float64. Each
released coordinate is an exact number with an exact distribution.

**What it is accounted as.** With integer s_g and a smoothing width s < s_g, let
s_c^2 = s_g^2 - s^2 and K(x, v) = g_s(v - x) / theta_s(x) for v in Z, where g_s is the N(0, s^2)
density and theta_s(x) = sum_v g_s(v - x): a Markov kernel from R to Z that does not depend on
the data. Apply K to each coordinate of X ~ N(c, s_c^2 I). By Poisson summation
theta_s(x) = sum_m exp(-2 pi^2 s^2 m^2) cos(2 pi m x) lies in [1 - eta, 1 + eta] with
eta = 2 sum_{m >= 1} exp(-2 pi^2 s^2 m^2), so the probability of v lies within the factors
1 / (1 +- eta) of (phi_{s_c} * g_s)(v - c) = phi_{s_g}(v - c), the N(0, s_g^2) density. The
discrete Gaussian's probability of v is phi_{s_g}(v - c) / theta_{s_g}(0), and theta_{s_g}(0)
lies in [1, 1 + eta] (s_g > s). So, coordinate by coordinate, the lattice release's probability
of every output is within a factor exp(+-3 eta) of that of the post-processing K of the
*continuous* Gaussian mechanism with mean c and noise s_c (grid units). A mechanism pointwise
within exp(+-a) of an (epsilon, delta)-DP one is (epsilon + 2a, exp(a) delta)-DP. Hence:

* the lattice release is accounted exactly as the continuous `GaussianRelease` with
  sigma = gamma * sqrt(s_g^2 - s^2) (`accounted_sigma`, rounded down) and sensitivity
  L D + gamma sqrt(d) (`rounded_sensitivity`, rounded up: each coordinate of c moves by at
  most 1/2 in rounding, so two records' c differ by at most (L D) / gamma + sqrt(d) in l2),
  for the per-record claim and, since shuffling is post-processing of the n records' outputs,
  for the shuffled central claim too;
* plus a slack a = 3 eta times the number of released coordinates the claim covers (d k for a
  record, n d k for the shuffled multiset; `log_ratio_slack`). With s = 3, eta < 2e-77: the
  slack is below 1e-60 for any release that fits in memory, far below a float64 epsilon's last
  bit; the accounting refuses a release whose slack would exceed 1e-30.

The neighbouring relation is replace-one (lipdp's only one): the number of records n is public,
so the shuffled claim's n d k coordinates are fixed. In scope 'dp-sgd' the release is composed
with DP-SGD adaptively, given the weights (`lipdp.privacy.composition`); the pointwise bound
holds given the weights, so the composition carries it over too (d k or n d k coordinates).
The means are clipped to 2^52 - 1 grid steps before rounding (1-Lipschitz, so the sensitivity
holds), so that no release is refused because of its records.

The grid is chosen at most 2^-16 of sigma and of L D / sqrt(d): the rounding adds gamma sqrt(d),
at most 2^-16 L D, to the sensitivity, and `covering` raises s_g until the accounted
ratio (L D + gamma sqrt(d)) / accounted_sigma is at most the calibrated L D / sigma, so the
lattice release is never less private than the continuous release it replaces.
"""

import dataclasses
import fractions
import math
from typing import Any, Mapping

from lipdp.privacy import _validation

# The smoothing width s in grid units. eta(3) = 2 exp(-18 pi^2) / (1 - exp(-18 pi^2)) < 2e-77.
SMOOTHING = 3
# The grid gamma is at most 2^-SCALE_BITS of sigma (and, with rounding, of L D / sqrt(d)).
SCALE_BITS = 16
# The largest log-ratio slack the accounting accepts.
MAX_LOG_RATIO_SLACK = 1e-30
# |c + Y| must stay below 2^53 for gamma * (c + Y) to be exact in float64.
MAX_LATTICE_INDEX = 2**53
MAX_SCALE = 2**46


def smoothing_eta(smoothing: float) -> float:
  """eta(s) = an upper bound on 2 sum_{m >= 1} exp(-2 pi^2 s^2 m^2) (m^2 >= m: a geometric
  series), the relative distance of theta_s from 1 (module docstring)."""
  a = 2.0 * math.pi**2 * smoothing**2
  return 2.0 * math.exp(-a) / -math.expm1(-a)


def _float_at_least(x: fractions.Fraction) -> float:
  f = float(x)
  return math.nextafter(f, math.inf) if fractions.Fraction(f) < x else f


def _sqrt_at_most(n: int) -> float:
  r = math.sqrt(n)
  return math.nextafter(r, 0.0) if fractions.Fraction(r) ** 2 > n else r


def _sqrt_at_least(n: int) -> float:
  r = math.sqrt(n)
  return math.nextafter(r, math.inf) if fractions.Fraction(r) ** 2 < n else r


@dataclasses.dataclass(frozen=True)
class LatticeNoise:
  """The lattice release's parameters (module docstring).

  Attributes:
    grid_exponent: e, the grid gamma = 2^e.
    scale: s_g, the discrete Gaussian's scale in grid units (an integer > smoothing).
    smoothing: s, the smoothing width of the accounting argument (an integer >= 1).
    dim: d, the number of coordinates rounded per record (the latent dimension).
  """

  grid_exponent: int
  scale: int
  dim: int
  smoothing: int = SMOOTHING

  def __post_init__(self):
    for name in ("grid_exponent", "scale", "dim", "smoothing"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    # gamma * (c + Y), |c + Y| < 2^53, stays a normal float64 (no underflow, no overflow).
    if not -1000 <= self.grid_exponent <= 950:
      raise ValueError(f"grid_exponent must lie in [-1000, 950], got {self.grid_exponent}")
    if self.smoothing < 1:
      raise ValueError(f"smoothing must be >= 1, got {self.smoothing}")
    if self.scale <= self.smoothing:
      raise ValueError(f"scale must exceed smoothing ({self.smoothing}), got {self.scale}")
    if self.scale >= MAX_SCALE:  # 40 scales stay below 2^52 grid steps
      raise ValueError(f"scale must be below 2^46, got {self.scale}")
    if self.dim < 1:
      raise ValueError(f"dim must be >= 1, got {self.dim}")

  @property
  def grid(self) -> float:
    return math.ldexp(1.0, self.grid_exponent)

  def accounted_sigma(self) -> float:
    """gamma sqrt(s_g^2 - s^2), rounded down: the continuous noise the release is accounted
    as."""
    return math.ldexp(_sqrt_at_most(self.scale**2 - self.smoothing**2), self.grid_exponent)

  def rounded_sensitivity(self, sensitivity: float) -> float:
    """Delta + gamma sqrt(d), rounded up: the l2 sensitivity of the rounded means c (in the
    records' units) when the exact means have sensitivity Delta."""
    sensitivity = _validation.nonnegative(sensitivity, "sensitivity")
    exact = fractions.Fraction(sensitivity) + fractions.Fraction(self.grid) * fractions.Fraction(
      _sqrt_at_least(self.dim)
    )
    return _float_at_least(exact)

  def log_ratio_slack(self, num_coordinates: int) -> float:
    """a = 3 eta(s) per released coordinate: the lattice release is (epsilon + 2a, e^a delta)
    when the continuous mechanism it is accounted as is (epsilon, delta)."""
    num_coordinates = _validation.positive_int(num_coordinates, "num_coordinates")
    return 3.0 * smoothing_eta(self.smoothing) * num_coordinates

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "LatticeNoise":
    names = [f.name for f in dataclasses.fields(cls)]
    _validation.known_keys(data, names, "lattice")
    return cls(**{n: data[n] for n in names if n in data})

  @classmethod
  def covering(cls, sigma: float, sensitivity: float, dim: int) -> "LatticeNoise":
    """The lattice whose accounted ratio rounded_sensitivity / accounted_sigma is at most
    sensitivity / sigma (so it is at least as private as the continuous release with noise
    sigma), with the largest power-of-two grid at most 2^-16 of sigma and of
    sensitivity / sqrt(dim), and the smallest such integer scale."""
    sigma = _validation.positive(sigma, "sigma")
    sensitivity = _validation.positive(sensitivity, "sensitivity")
    dim = _validation.positive_int(dim, "dim")
    # gamma <= 2^-16 sigma and gamma sqrt(d) <= 2^-16 Delta: the rounding costs at most
    # 2^-16 relative, even where Delta is small against sigma.
    exponent = min(math.frexp(sigma)[1], math.frexp(sensitivity / math.sqrt(dim))[1])
    exponent -= 1 + SCALE_BITS
    rounded = cls(exponent, SMOOTHING + 1, dim).rounded_sensitivity(sensitivity)
    # accounted_sigma >= sigma * rounded / sensitivity, exactly.
    needed = fractions.Fraction(rounded) * fractions.Fraction(sigma)
    return cls._smallest_scale(exponent, dim, needed / fractions.Fraction(sensitivity))

  @classmethod
  def at_least(cls, sigma: float, grid_exponent: int, dim: int) -> "LatticeNoise":
    """The lattice 2^grid_exponent Z^dim with the smallest integer scale whose accounted sigma
    is at least `sigma` (for values already on the grid, which the rounding does not move)."""
    sigma = _validation.positive(sigma, "sigma")
    return cls._smallest_scale(grid_exponent, dim, fractions.Fraction(sigma))

  @classmethod
  def _smallest_scale(cls, exponent: int, dim: int, needed: fractions.Fraction) -> "LatticeNoise":
    """The lattice 2^exponent Z^dim with the smallest integer scale whose accounted sigma is at
    least `needed`: start just below sqrt(target^2 + s^2) and step up, compared exactly."""
    target = float(needed) / math.ldexp(1.0, exponent)
    scale = max(SMOOTHING + 1, math.isqrt(max(int(target**2) - 4 * int(target), 0)))
    while True:
      lattice = cls(exponent, scale, dim)
      if fractions.Fraction(lattice.accounted_sigma()) >= needed:
        return lattice
      scale += 1

  def describe(self) -> str:
    return (
      f"exact discrete Gaussian on the lattice 2^{self.grid_exponent} Z^{self.dim}, scale "
      f"{self.scale} grid units (accounted as continuous noise "
      f"{self.accounted_sigma():.6g} on the means' sensitivity L D + 2^{self.grid_exponent} "
      f"sqrt({self.dim}))"
    )
