"""How much a per-record release can say about its record: a capacity bound.

This is a ceiling on the release's *utility*, implied by its privacy: whatever the design (latent
size, k, decoder, share of the budget), a Gaussian release calibrated to a per-record (epsilon,
delta) can carry only a few nats about each record at the epsilons end-to-end budgets allow.
docs/privacy.md (section 9) and docs/results.md ("What a release can carry") use it.

Setting (`lipdp.privacy.gaussian`). A record x is released as k latents z_j = mu(x) + sigma xi_j,
xi_j ~ N(0, I_d) independent, and ||mu(x) - mu(x')||_2 <= Delta = L * D for every two records of
the domain.

Claim. For every distribution of the record X,

    I(X; Z_1, ..., Z_k) <= (d / 2) log(1 + k R_d^2 / (d sigma^2)) < k Delta^2 / (4 sigma^2) nats,
    R_d^2 = Delta^2 d / (2 (d + 1)),

and k Delta^2 / sigma^2 = mu^2, where mu = sqrt(k) Delta / sigma is the mechanism's Gaussian-DP
parameter (Dong, Roth and Su 2022): the bound depends on the per-record privacy alone, mu^2 / 4.

Proof.
1. X -> mu(X) -> (Z_1..Z_k) is a Markov chain and mu(X) is a function of X, so I(X; Z) =
   I(mu(X); Z); the mean Zbar = mu(X) + (sigma / sqrt(k)) xi is a sufficient statistic for
   mu(X), so I(mu(X); Z) = I(mu(X); Zbar) (Cover and Thomas 2006, Section 2.9).
2. The means {mu(x)} form a set of diameter at most Delta in R^d. By Jung's theorem (Jung 1901)
   it lies in a closed ball of radius R_d around some centre c, so E ||mu(X) - c||^2 <= R_d^2;
   a translation by c changes no mutual information.
3. The Gaussian channel Zbar = U + s xi in R^d with E ||U||^2 <= P has capacity
   (d / 2) log(1 + P / (d s^2)) (Cover and Thomas 2006, Section 9.4: parallel Gaussian channels
   of equal noise, where water-filling spreads the power evenly). With P = R_d^2 and
   s^2 = sigma^2 / k this is the first bound; log(1 + t) <= t and R_d^2 < Delta^2 / 2 give the
   second. QED.

What it means. A label of c equally likely classes holds log(c) nats; by Fano's inequality
(Cover and Thomas 2006, Theorem 2.10.1) any rule that reads the label from the released latents
alone errs with probability at least 1 - (I + log 2) / log(c) (`fano_error_lower_bound`; the
label is a function of the record, so its information is at most I). At per-record epsilon 5,
delta 1e-5, mu = 1.12 and I < 0.31 nats: under a seventh of what a digit's label holds.
"""

import math
from typing import Optional

import numpy as np
from scipy import special

from lipdp.privacy import _validation
from lipdp.privacy import gaussian


def jung_radius_squared(diameter: float, dim: int) -> float:
  """R_d^2 = Delta^2 d / (2 (d + 1)): the squared radius of a ball that holds every set of
  diameter `diameter` in R^dim (Jung 1901)."""
  diameter = _validation.nonnegative(diameter, "diameter")
  dim = _validation.positive_int(dim, "dim")
  return diameter**2 * dim / (2.0 * (dim + 1))


def release_information_bound(
  sigma: float, sensitivity: float, k: int = 1, latent_dim: Optional[int] = None
) -> float:
  """An upper bound, in nats, on what one record's k released latents carry about the record:
  I(X; Z_1..Z_k) for every distribution of X (module docstring).

  Args:
    sigma: the release noise (> 0).
    sensitivity: Delta = L * D, the largest distance between two records' encoder means.
    k: latents released per record.
    latent_dim: d, the latent dimension; None gives the dimension-free bound
      k Delta^2 / (4 sigma^2), which holds for every d.
  """
  sigma = _validation.positive(sigma, "sigma")
  sensitivity = _validation.nonnegative(sensitivity, "sensitivity")
  k = _validation.positive_int(k, "k")
  if latent_dim is None:
    return k * sensitivity**2 / (4.0 * sigma**2)
  power = jung_radius_squared(sensitivity, latent_dim)
  return 0.5 * latent_dim * math.log1p(k * power / (latent_dim * sigma**2))


def fano_error_lower_bound(information: float, num_classes: int) -> float:
  """Fano's inequality: any rule that recovers a label of `num_classes` equally likely classes
  from an observation carrying at most `information` nats about it errs with probability at
  least 1 - (information + log 2) / log(num_classes) (clipped at 0)."""
  information = _validation.nonnegative(information, "information")
  num_classes = _validation.positive_int(num_classes, "num_classes")
  if num_classes < 2:
    raise ValueError(f"num_classes must be at least 2, got {num_classes}")
  return max(0.0, 1.0 - (information + math.log(2.0)) / math.log(num_classes))


def per_record_information_bound(epsilon: float, delta: float) -> float:
  """The dimension-free bound, in nats, of a homoscedastic Gaussian release whose per-record
  privacy is (epsilon, delta) (its k latents together; replace-one): mu^2 / 4, where
  mu = sqrt(k) Delta / sigma is the ratio the analytic Gaussian mechanism calibrates to
  (epsilon, delta) (`lipdp.privacy.gaussian`). For rows and reports that kept the per-record
  epsilon but not sigma and Delta."""
  epsilon = _validation.positive(epsilon, "epsilon")
  delta = _validation.probability_open(delta, "delta")
  unit_sigma = gaussian.calibrate_sigma(epsilon, delta, 1.0)
  return release_information_bound(unit_sigma, 1.0)


def uniform_mixture_information(
  means: np.ndarray,
  sigma: float,
  k: int = 1,
  draws: int = 4,
  seed: int = 0,
  chunk: int = 512,
) -> tuple:
  """What the release says about *which* of n records it came from, estimated: I(J; Z) in nats
  for J uniform on the n rows of `means` (each record's encoder mean, shape (n, d)) and Z its k
  latents of noise sigma, by Monte Carlo over `draws` noise draws per record:

      I(J; Z) = E[log p(Z | J) - log((1 / n) sum_j p(Z | j))],  p(. | j) = N(means[j], s^2 I),

  with s = sigma / sqrt(k) (the latents' mean is sufficient). At most log n, and at most
  `release_information_bound` for means within the certified sensitivity (for the same n
  records, the bound holds for every distribution, the uniform one included).

  Applied to the training records it is a statistic of private data, covered by no guarantee:
  a diagnostic for the one who holds the data (experiments/release_information.py).

  Returns:
    (estimate, its standard error over the n * draws terms).
  """
  means = np.asarray(means, np.float64)
  if means.ndim != 2 or len(means) < 1:
    raise ValueError(f"means must have shape (n, d) with n >= 1, got {means.shape}")
  if not np.all(np.isfinite(means)):
    raise ValueError("means must be finite")
  sigma = _validation.positive(sigma, "sigma")
  k = _validation.positive_int(k, "k")
  draws = _validation.positive_int(draws, "draws")
  chunk = _validation.positive_int(chunk, "chunk")
  scale = sigma / math.sqrt(k)
  n = len(means)
  means = means - means.mean(axis=0)  # a translation changes nothing, and keeps the sums exact
  rng = np.random.default_rng(seed)
  noise = rng.standard_normal((draws * n, means.shape[1]))
  z = np.tile(means, (draws, 1)) + scale * noise
  own = -np.sum(noise**2, axis=1) / 2.0
  squared_norms = np.sum(means**2, axis=1)
  terms = []
  for start in range(0, len(z), chunk):
    block = z[start : start + chunk]
    squared = squared_distances(block, means, squared_norms)
    log_mixture = special.logsumexp(-np.maximum(squared, 0.0) / (2.0 * scale**2), axis=1)
    terms.append(own[start : start + chunk] - (log_mixture - math.log(n)))
  terms = np.concatenate(terms)
  return float(terms.mean()), float(terms.std() / math.sqrt(terms.size))


def squared_distances(rows: np.ndarray, points: np.ndarray, point_squared_norms=None) -> np.ndarray:
  """||rows_i - points_j||^2 for every i and j, shape (len(rows), len(points)), as ||r||^2 -
  2 r.p + ||p||^2 (one matrix product; may round slightly below 0 for equal rows).
  `point_squared_norms` may hold the points' squared norms, computed once for many blocks."""
  if point_squared_norms is None:
    point_squared_norms = np.sum(points**2, axis=1)
  return np.sum(rows**2, axis=1)[:, None] - 2.0 * rows @ points.T + point_squared_norms[None, :]
