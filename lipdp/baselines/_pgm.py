"""What MST and AIM share: marginals, noisy measurements, selections, and mbi (Private-PGM).

The optional `mbi` package (McKenna, Sheldon, Miklau, "Graphical-model based estimation and
inference for differential privacy", ICML 2019; version 2 is written in JAX) estimates a
graphical model from noisy marginals and samples synthetic records from it. Everything it does is
post-processing of the measurements made here. mbi is imported only when MST or AIM runs, so
lipdp works without it.

Privacy noise comes from the caller's NumPy generator, exactly: the Gaussian measurements as
discrete Gaussians on a lattice (`lipdp.discrete_gaussian.gaussian_measurement`), the
exponential-mechanism selections by rejection with exact Bernoulli draws on the float64 scores,
whose rounding is bounded and added to their sensitivity (`exponential_select`). mbi's own
sampling and domain decompression draw from NumPy's global generator; `_seeded_global_numpy`
seeds it from the caller's generator for the call and restores it afterwards (post-processing
randomness, made reproducible).
"""

import contextlib
import importlib.metadata
import math
import warnings
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np

from lipdp import discrete_gaussian
from lipdp import privacy
from lipdp import rounding
from lipdp.privacy import zcdp

# Replace-one sensitivities (lipdp.privacy.zcdp): a histogram moves one count down and one up.
HISTOGRAM_L2_SENSITIVITY = math.sqrt(2.0)
HISTOGRAM_L1_SENSITIVITY = 2.0

MBI_MISSING = (
  "MST and AIM run on the optional mbi package (Private-PGM): install it with "
  "pip install 'lipdp[baselines]' (or pip install mbi)"
)


def import_mbi():
  """mbi, imported quietly (it warns about float32 JAX at import; we estimate in float64)."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      import mbi  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(MBI_MISSING) from e
  return mbi


@contextlib.contextmanager
def _x64():
  import jax  # pylint: disable=g-import-not-at-top

  with jax.enable_x64(True):
    yield


@contextlib.contextmanager
def _seeded_global_numpy(rng: np.random.Generator):
  state = np.random.get_state()
  np.random.seed(int(rng.integers(2**32)))
  try:
    yield
  finally:
    np.random.set_state(state)


def marginal(
  attributes: Mapping[str, np.ndarray], sizes: Mapping[str, int], clique: Sequence[str]
) -> np.ndarray:
  """The histogram of the records over the cells of `clique`, flattened in C order."""
  shape = tuple(sizes[a] for a in clique)
  flat = np.ravel_multi_index(tuple(attributes[a] for a in clique), shape)
  return np.bincount(flat, minlength=math.prod(shape)).astype(np.float64)


def gaussian_measure(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
  """x (a histogram) plus exact discrete Gaussian noise on a lattice, at least as private as
  x + N(0, sigma^2 I) (`lipdp.discrete_gaussian.gaussian_measurement`; counts lie on its grid,
  so nothing is rounded)."""
  return discrete_gaussian.gaussian_measurement(
    rng, x, sigma, HISTOGRAM_L2_SENSITIVITY, counts=True
  )


def score_rounding_bound(
  total: float, model: np.ndarray, weight: float = 1.0, offset: float = 0.0
) -> float:
  """A bound on |q_computed - q| for the score q = weight (sum_i |a_i - x_i| - offset) computed
  in float64 as NumPy does it (the differences, their absolute values, a sum in any order,
  then the offset and the weight), where a is a histogram of `total` records over the m cells
  of x = `model`, the model's marginal. The model, the offset and the weight are fixed
  by public values and earlier outputs, and `total` is public under replace-one, so the bound
  is the same for neighbouring data sets: the computed score's sensitivity is at most the
  exact score's plus twice it.

  S = sum |a_i - x_i| <= total + sum |x_i| =: S_max. Each |a_i - x_i| rounds by a relative u
  and the sum of m terms by gamma_{m-1} times their sum in any order (Higham, "Accuracy and
  Stability of Numerical Algorithms", 2nd ed. 2002, section 4.2), so |S~ - S| <= gamma_m
  S_max, plus 2 m lambda (lambda = 2^-1022) should an operation flush a subnormal result to
  zero. The offset and the weight round once each: |q~ - q| <= |w| (E_S + 2 u (1 + u) (S_max +
  E_S + |offset|)) + 2 lambda. sum |x_i| is NumPy's sum, raised by its own rounding."""
  model = np.asarray(model, np.float64)
  m = model.size
  if m < 1:
    raise ValueError("the model's marginal has no cells")
  u, flushed = rounding.FLOAT64_UNIT, rounding.SMALLEST_NORMAL[rounding.FLOAT64_UNIT]
  gamma = rounding.gamma(m)
  # NumPy's sum of |x| is within gamma_m of the exact one (any order): divided back out.
  model_mass = float(np.abs(model).sum()) * (1.0 + 2.0 * gamma)
  top = (float(total) + model_mass) * (1.0 + 1e-12)
  sum_error = gamma * top + 2 * m * flushed
  tail = 2.0 * u * (1.0 + u) * (top + sum_error + abs(float(offset)))
  # The product with the weight may flush to zero absolutely (2 lambda, whatever the weight).
  # Each step above may round down by a relative 2^-52 or so; 1e-12 relative covers them.
  return (abs(float(weight)) * (sum_error + tail) + 2 * flushed) * (1.0 + 1e-12)


def exponential_select(
  scores: np.ndarray,
  temperature: float,
  sensitivity: float,
  rounding: float,
  rng: np.random.Generator,
) -> Tuple[int, Any]:
  """The exponential mechanism, drawn exactly, on float64 scores each within `rounding` of its
  exact value (`score_rounding_bound`), whose exact sensitivity is `sensitivity`.

  The computed scores' sensitivity is at most Delta' = sensitivity + 2 rounding, so the
  selection runs at a temperature T' >= T Delta' / Delta at which it is accounted at no more
  than the epsilon = 2 Delta / T planned (`covering_temperature`), and draws index i with
  probability exactly proportional to exp(s_i / T') (`lipdp.discrete_gaussian
  .exponential_mechanism`). Returns the index and the `NoisyMeasurement` of the selection."""
  bound = math.nextafter(sensitivity + 2.0 * rounding, math.inf)  # rounded up
  raised = covering_temperature(temperature, sensitivity, bound)
  index = discrete_gaussian.exponential_mechanism(rng, scores, raised)
  return index, selections(raised, bound, 1)


def covering_temperature(temperature: float, sensitivity: float, raised: float) -> float:
  """The temperature at which the exponential mechanism with sensitivity `raised` (>=
  `sensitivity`) is accounted at no more than with (`temperature`, `sensitivity`):
  T Delta' / Delta, moved up by ulps until the accountant's epsilon = 2 Delta' / T' is no
  larger."""
  if not raised >= sensitivity:
    raise ValueError(f"the raised sensitivity {raised} is below {sensitivity}")
  planned = zcdp.exponential_epsilon(temperature, sensitivity)
  out = temperature * (raised / sensitivity)
  while zcdp.exponential_epsilon(out, raised) > planned:
    out = math.nextafter(out, math.inf)
  return out


def mbi_domain(mbi, sizes: Mapping[str, int]):
  return mbi.Domain(tuple(sizes), tuple(int(v) for v in sizes.values()))


def measurement(mbi, y: np.ndarray, clique: Sequence[str], sigma: float):
  return mbi.LinearMeasurement(np.asarray(y, np.float64), tuple(clique), stddev=float(sigma))


def estimate(mbi, domain, measurements: Sequence[Any], total: float, iters: int, warm_start=None):
  """Private-PGM's estimate (mirror descent) with the known total n (public under replace-one)."""
  with _x64():
    return mbi.estimation.MirrorDescent().estimate(
      domain, list(measurements), known_total=float(total), iters=int(iters), warm_start=warm_start
    )


def project(model, clique: Sequence[str]) -> np.ndarray:
  """The model's marginal on `clique`, flattened in C order, as float64."""
  with _x64():
    return np.asarray(model.project(tuple(clique)).datavector(), dtype=np.float64)


def sample(model, rows: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
  """`rows` synthetic records from the model (mbi's randomised rounding)."""
  with _x64(), _seeded_global_numpy(rng):
    data = model.synthetic_data(rows=int(rows))
  return {a: np.asarray(v, dtype=np.int64) for a, v in data.to_dict().items()}


def decompress(
  mbi,
  attributes: Mapping[str, np.ndarray],
  sizes: Mapping[str, int],
  mapping: Mapping[str, np.ndarray],
  rng: np.random.Generator,
) -> Dict[str, np.ndarray]:
  """Undo a domain compression: a merged value becomes one of its originals, uniformly."""
  compressed = {a: int(np.max(mapping[a]) + 1) if a in mapping else sizes[a] for a in sizes}
  dataset = mbi.Dataset(dict(attributes), mbi_domain(mbi, compressed))
  with _seeded_global_numpy(rng):
    restored = dataset.decompress(dict(mapping))
  return {a: np.asarray(v, dtype=np.int64) for a, v in restored.to_dict().items()}


def gaussian_histograms(sigma: float, count: int):
  """The `NoisyMeasurement` of `count` Gaussian histogram queries with noise sigma."""
  return privacy.NoisyMeasurement(
    zcdp.GAUSSIAN, sigma, HISTOGRAM_L2_SENSITIVITY, count, "histogram"
  )


def selections(temperature: float, sensitivity: float, count: int):
  """The `NoisyMeasurement` of `count` exponential-mechanism selections."""
  return privacy.NoisyMeasurement(zcdp.EXPONENTIAL, temperature, sensitivity, count, "score")


def group(measurements: Sequence[Any]) -> Tuple[Any, ...]:
  """Merges consecutive identical (kind, scale, sensitivity, query) groups, keeping order."""
  out = []
  for m in measurements:
    if out and (out[-1].kind, out[-1].scale, out[-1].sensitivity, out[-1].query) == (
      m.kind,
      m.scale,
      m.sensitivity,
      m.query,
    ):
      prev = out.pop()
      m = type(m)(m.kind, m.scale, m.sensitivity, prev.count + m.count, m.query)
    out.append(m)
  return tuple(out)


def versions() -> Dict[str, str]:
  """mbi's and jax's versions, for the report."""
  out = {}
  for name in ("mbi", "jax"):
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "unknown"
  return out
