"""Constants of floating-point rounding analysis, shared by every bound that uses them.

Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed. 2002, section 3.1: with unit
roundoff u (2^-53 for IEEE binary64, 2^-24 for binary32), an operation rounds by a relative u,
and n of them compound to at most gamma_n = n u / (1 - n u) for n u < 1. XLA on a CPU flushes
subnormal results (and inputs) to zero, so an operation may also be off by the smallest normal
number, absolutely: 2^-1022 in float64, 2^-126 in float32.

Used by the certificate's bound on the released means' rounding (`lipdp.nn.certify`), and by
the baselines' bounds on their scores' and embedding's rounding (`lipdp.baselines`).
"""

FLOAT64_UNIT = 2.0**-53
FLOAT32_UNIT = 2.0**-24
# The smallest normal number of each format, by its unit roundoff.
SMALLEST_NORMAL = {FLOAT64_UNIT: 2.0**-1022, FLOAT32_UNIT: 2.0**-126}


def gamma(n: int, unit: float = FLOAT64_UNIT) -> float:
  """gamma_n = n u / (1 - n u); raises ValueError unless n u < 1/2 (where the bounds built on it
  stay meaningful)."""
  if not n * unit < 0.5:
    raise ValueError(f"{n} roundings are too many for the rounding bound (unit {unit})")
  return n * unit / (1.0 - n * unit)
