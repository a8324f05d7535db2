"""DP-MERF (Harder, Adamczewski, Park 2021), accounted under replace-one, in JAX/Flax.

"DP-MERF: Differentially Private Mean Embeddings with Random Features for Practical
Privacy-Preserving Data Generation", AISTATS 2021 (PMLR 130). The private records enter once,
through one Gaussian release of their class-conditional kernel mean embedding; a generator is
then fit to that release for as long as wanted, which is post-processing.

1. Feature map, public and data-independent. A record x is split into its label y in
   {0, ..., C - 1} (the domain's label block; C = 1 without one) and its feature part u (every
   other coordinate of the record, in the domain's own units). With m frequencies
   W = [w_1 ... w_m], w_k ~ N(0, l^-2 I) drawn from a recorded seed (never from the data),

       r(u)   = sqrt(1/m) [cos(w_1.u), ..., cos(w_m.u), sin(w_1.u), ..., sin(w_m.u)]  (2m coords)
       phi(u) = (1/sqrt(2)) [r(u), 1]                                              (2m + 1)

   <r(u), r(u')> = (1/m) sum_k cos(w_k.(u - u')) estimates the Gaussian kernel
   exp(-|u - u'|^2 / (2 l^2)) (Rahimi and Recht 2007). |r(u)|^2 = (1/m) sum_k (cos^2 + sin^2) = 1,
   so |phi(u)|^2 = (1 + 1) / 2 = 1 for EVERY u: the norm bound comes from the map itself, not
   from the data or from the domain's diameter.
2. Release (the only access to the private records): with n records (public under
   replace-one),

       mu = (1/n) sum_i phi(u_i) e_{y_i}^T  in R^{(2m + 1) x C},   released  mu + N(0, sigma^2 I),

   sigma calibrated by the analytic Gaussian mechanism (Balle and Wang 2018,
   `lipdp.privacy.calibrate_sigma`) to (epsilon, delta) at the sensitivity below.
3. Class proportions, from the same release: column c's constant coordinate is n_c / (sqrt(2) n),
   so p_c = max(0, sqrt(2) * noisy value), normalised (uniform if all vanish).
4. Generator (post-processing): G(z, y), z ~ N(0, I), a Flax MLP whose outputs are mapped into
   the feature part (sigmoid pixels, rescaled onto the image ball; sigmoid numeric columns;
   softmax per categorical block, the relaxation trained through), minimises the paper's
   objective |mu_noisy - mu_G|^2 (Frobenius), where each step draws `batch_size / C` codes per
   class and mu_G's column c is p_c times the mean of phi(G(z, c)) over them (the class weights
   are the released proportions, as the embedding's own columns are). Adam at 1e-3, decayed by
   0.9 per `LR_DECAY_STEPS` (the paper's per-epoch decay on MNIST: 60,000 / 500 = 120 steps).
5. Records: labels allocated to the released proportions (largest remainder), one code each,
   G's output with each categorical block sampled from its softmax (or its argmax, on request);
   images in an integer pixel format rounded to it and encoded like real images
   (`domain.encode`), everything else projected into the domain (`domain.project`).

Sensitivity under replace-one (n public). Replacing (u, y) by (u', y') moves n * mu by
phi(u') e_{y'}^T - phi(u) e_y^T. If y' != y the two terms sit in different columns, orthogonal,
and the change has norm sqrt(|phi(u')|^2 + |phi(u)|^2) = sqrt(2). If y' = y the constant
coordinates cancel and the change is (1/sqrt(2)) |r(u') - r(u)| <= (1/sqrt(2)) * 2 = sqrt(2).
Hence

    Delta = max_{X ~ X'} |mu(X) - mu(X')|_F = sqrt(2) / n,

attained (so no smaller constant holds) by any two records of different classes when C >= 2.
With C = 1 only the same-class case exists, and sqrt(2) / n is attained only if some pair of the
domain has r(u') = -r(u); it is not tightened here. The paper's feature map (r alone, no
constant coordinate) has Delta = 2 / n (same class, r(u') = -r(u)); the constant coordinate of
weight 1/sqrt(2) lowers Delta to sqrt(2) / n and scales r by 1/sqrt(2), so the signal-to-noise
ratio of the kernel part is the paper's (1/2 per unit of sigma * n either way), and the class
proportions come with it at no extra cost.

Bandwidth l (data-independent): unless given, l^2 is the mean squared distance between two
independent records drawn uniformly from the declared box of the feature part, summed over its
blocks: 1/6 per pixel or numeric coordinate in [0, 1], 2 w^2 (1 - 1/K) per categorical block of K
categories with hot value w (the image ball is ignored). It depends on the declared domain only:
never a median heuristic on the private data. MNIST: l^2 = 784 / 6 = 130.7, beside the
authors' code's hand-set 105 (MNIST) and 127 (Fashion-MNIST).

Accounting: one `NoisyMeasurement('gaussian', sigma, Delta', 1, 'mean_embedding')` in a
`CentralRelease`; its report (scope 'dp-measurements') recomputes the analytic Gaussian epsilon
(`lipdp.privacy.accounting.gaussian_composition_epsilon`). The embedding is computed in float64,
and its rounding is bounded (since 2026-12-07): each record's cosines and sines (non-finite
ones zeroed) are divided by max(1, sqrt(2) |r|) as computed, so their norm is at most a few
ulps above 1 / sqrt(2) whatever cos and sin return (`feature_norm_bound`), and the sum's and
the division's rounding is Higham's bound: Delta' = `released_sensitivity`, sqrt(2) / n raised
by about 2 (1024 + n / 1024) u relative (6e-9 at n = 36,000; a review had measured 1.8e-12 at
n = 1e5 before it was bounded). The records are embedded in a secret random order, so that
each record's computed features do not depend on where the data set put it (a BLAS product's
last bits can depend on a row's place in its chunk): for neighbours the orders can be coupled
so that the replaced record takes the same place and every other row computes the same
features, and the release is a mixture of such coupled pairs. The noise is exact, a discrete
Gaussian on a lattice at least as private as the recorded one
(`lipdp.discrete_gaussian.gaussian_measurement`).
"""

import logging
import math
import secrets
import time
from typing import Any, Optional, Sequence, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lipdp import discrete_gaussian
from lipdp import privacy
from lipdp import rounding
from lipdp.baselines import base
from lipdp.data import image_domain

NAME = "dp_merf"
log = logging.getLogger("lipdp.baselines.dp_merf")
# A progress line every this many generator steps (the main job shows them).
_LOG_EVERY = 500
# The paper's MNIST settings (its code's defaults): 10,000 random features (5,000 frequencies),
# batches of 500 generated records, Adam decayed by 0.9 per epoch of 120 steps.
NUM_FEATURES = 10_000
BATCH_SIZE = 500
LR_DECAY = 0.9
LR_DECAY_STEPS = 120
# Adam's rate: the paper's 0.01 (for its convolutional generator with batch normalisation) makes
# this MLP's pixel outputs random-walk on MNIST (speckled images; the objective stalls 20 times
# above where 1e-3 takes it in 600 steps without noise). On digits, the public proxy (three
# seeds, 2,000 steps), 1e-3 gave logistic TSTR 0.91 against 0.85 at epsilon 10, 0.70 at both
# rates at epsilon 1.
LEARNING_RATE = 1e-3
# Code dimension: the paper's tabular generator's 10 (its MNIST generator has 5).
CODE_DIM = 10
# Two hidden layers, the width of lipdp's own VAE decoder (config.model.decoder_hidden), with
# layer normalisation (the paper's generators use batch normalisation; layer normalisation needs
# no batch statistics at synthesis and keeps the generator a pure function).
HIDDEN = (256, 512)
# Generator steps (post-processing: no privacy cost, only time). On digits (the public proxy,
# three seeds, epsilon 10, rate 0.01) logistic TSTR was 0.79 after the paper's 600 steps, 0.83
# after 1,000 and 0.85 after 2,000 (epsilon 1: 0.70 after 1,000 and 2,000); a step on
# MNIST-sized records costs about 0.1 s on two CPU cores.
NUM_STEPS = 2000
CATEGORICAL = ("sample", "argmax")
# Records embedded (float64) and generated per chunk.
_CHUNK = 1024


def sensitivity(num_records: int) -> float:
  """Delta = sqrt(2) / n, the replace-one l2 sensitivity of the embedding in exact arithmetic
  (module docstring); `released_sensitivity` is the float64 computation's."""
  if isinstance(num_records, bool) or int(num_records) != num_records or num_records < 1:
    raise ValueError(f"num_records must be a positive integer, got {num_records!r}")
  return math.sqrt(2.0) / int(num_records)


_UNIT = rounding.FLOAT64_UNIT
_SMALLEST_NORMAL = rounding.SMALLEST_NORMAL[_UNIT]


def feature_norm_bound(num_features: int) -> Tuple[float, float]:
  """(eta, a) with |r^(u)|_2 <= (1 + eta) / sqrt(2) + a and the constant coordinate at most
  (1 + eta) / sqrt(2), for `features` in float64, whatever values cos and sin return.

  `features` divides r~ (the 2m = num_features computed cosines and sines, times
  1/sqrt(2m)) by f = max(1, fl(fl(sqrt(fl(sum r~_j^2))) fl(sqrt 2))). The sum of squares is
  at least (1 - gamma_2m) |r~|^2 - 4 m lambda (Higham 2002, any order; lambda = 2^-1022 per
  operation should one flush), each of the square root, the product and the division rounds by
  a relative u, and fl(sqrt 2) >= sqrt(2) (1 - u) (non-finite entries of r~, from an overflowed
  argument, are zeroed first). So if f > 1, |r^| <= |r~| (1 + u) / f <=
  (1 + u) / ((1 - u)^3 sqrt(1 - gamma_2m)) / sqrt(2) + (1 + u) sqrt(4 m lambda / (1 -
  gamma_2m)), and if f = 1 (nothing divided) the same bound holds with f's own inequality.
  fl(1 / fl(sqrt 2)) is within (1 + 3u) / sqrt(2)."""
  m2 = int(num_features)
  gamma = rounding.gamma(m2)
  eta = (1.0 + _UNIT) / ((1.0 - _UNIT) ** 3 * math.sqrt(1.0 - gamma)) - 1.0 + 4.0 * _UNIT
  a = (1.0 + _UNIT) * math.sqrt(2.0 * m2 * _SMALLEST_NORMAL / (1.0 - gamma))
  return eta * (1.0 + 1e-9), a * (1.0 + 1e-9)


def released_sensitivity(num_records: int, num_features: int, num_classes: int) -> float:
  """The replace-one l2 sensitivity of the embedding as `embedding` computes it in float64:
  sqrt(2) / n raised by the features' and the sum's rounding, the same for neighbouring data
  sets (n is public under replace-one), rounded up.

  With |phi^(u)| <= 1 + eta + a (`feature_norm_bound`), one record's replacement moves the
  exact sum of the computed features by at most sqrt(2) (1 + eta) + 2 a (across classes: two
  orthogonal columns; within a class: the constant coordinates cancel, and the r parts differ by
  at most twice their bound). The float64 sum of each entry, a product's sum over the at most
  `_CHUNK` rows of a chunk and then the chunks' sums one by one, is within gamma_N
  sum_i |phi^_i| <= gamma_N n (1 + eta + a) of the exact one, N = min(n, chunk) + n / chunk + 1
  (plus 2 N lambda per entry, should an operation flush), and the division by n rounds by a
  relative u: the computed mean is within E of the exact mean of the computed features for
  every data set, so its sensitivity is at most (sqrt(2) (1 + eta) + 2 a) / n + 2 E: about
  sqrt(2) / n (1 + 2 (chunk + n / chunk) u) in all (6e-9 relative at n = 36,000)."""
  n = int(num_records)
  exact = sensitivity(n)  # validates n
  eta, a = feature_norm_bound(num_features)
  norm = 1.0 + eta + a
  terms = min(n, _CHUNK) + -(-n // _CHUNK) + 1
  entries = int(num_classes) * (int(num_features) + 1)
  sum_error = rounding.gamma(terms) * n * norm + math.sqrt(entries) * 2 * terms * _SMALLEST_NORMAL
  # The division rounds by u relative, or flushes a subnormal quotient (lambda per entry).
  flushed = math.sqrt(entries) * _SMALLEST_NORMAL
  mean_error = (sum_error + _UNIT * (n * norm + sum_error)) / n + flushed
  per_record = (math.sqrt(2.0) * (1.0 + eta) + 2.0 * a) / n
  return max(exact, (per_record + 2.0 * mean_error) * (1.0 + 1e-12))


def feature_blocks(domain: Any) -> Tuple[Any, Any]:
  """(the blocks the feature map reads, the label block or None), in record order."""
  label = domain.label_column
  label_block = next((b for b in domain.blocks if label is not None and b.name == label), None)
  blocks = tuple(b for b in domain.blocks if b is not label_block)
  if not blocks:
    raise ValueError(f"{NAME}: the domain has no coordinate besides its label")
  for b in blocks:
    if b.kind not in ("image", "numeric", "categorical"):
      raise ValueError(f"{NAME}: unsupported block kind {b.kind!r} ({b.name!r})")
  return blocks, label_block


def default_bandwidth(domain: Any) -> float:
  """l from the declared domain alone (module docstring): the RMS distance of two uniform
  records of the feature part's declared box."""
  blocks, _ = feature_blocks(domain)
  total = 0.0
  for b in blocks:
    if b.kind == "categorical":
      k = b.stop - b.start
      total += 2.0 * b.scale**2 * (1.0 - 1.0 / k)
    else:
      total += (b.stop - b.start) / 6.0
  return math.sqrt(total)


def frequencies(dim: int, num_features: int, bandwidth: float, seed: int) -> np.ndarray:
  """W (dim, num_features / 2), w_k ~ N(0, bandwidth^-2 I), from the public `seed` only."""
  return np.random.default_rng(seed).standard_normal((dim, num_features // 2)) / bandwidth


def features(u: np.ndarray, w: np.ndarray) -> np.ndarray:
  """phi(u) (n, 2m + 1) in float64, of norm 1 for every row (module docstring).

  The 2m cosines and sines are divided by max(1, sqrt(2) |r|) as computed: exactly they have
  |r| = 1 / sqrt(2) and nothing changes (but the last bits), and in floating point |r| stays
  within `feature_norm_bound` whatever NumPy's cos and sin return (their accuracy is no IEEE
  guarantee)."""
  proj = np.asarray(u, np.float64) @ w
  m = w.shape[1]
  scale = 1.0 / math.sqrt(2.0 * m)
  r = np.concatenate([np.cos(proj) * scale, np.sin(proj) * scale], axis=1)
  # An argument that overflowed (an absurdly small bandwidth) would give NaN, which would
  # poison the whole embedding and make the release's refusal depend on one record (a review).
  r = np.where(np.isfinite(r), r, 0.0)
  norms = np.sqrt(np.einsum("ij,ij->i", r, r)) * math.sqrt(2.0)
  r = r / np.maximum(norms, 1.0)[:, None]
  const = np.full((proj.shape[0], 1), 1.0 / math.sqrt(2.0))
  return np.concatenate([r, const], axis=1)


@jax.custom_jvp
def _cos_sin(t):
  """(cos t, sin t) in float32 from multiplications only, within 1e-6 of the exact values.

  XLA's CPU cos and sin are about ten times slower than this, and they are most of the
  generator's cost. t is reduced to [-pi, pi], h = t / 4 goes through the Taylor polynomials of
  sin (to h^9) and cos (to h^10), whose remainders are below 2e-9 for |h| <= pi / 4, and two
  angle doublings, (s, c) -> (2 s c, c^2 - s^2), return to t. Used only for the generator's
  objective (post-processing); the released embedding uses NumPy's float64 cos and sin.
  """
  t = t - (2.0 * math.pi) * jnp.round(t * (0.5 / math.pi))
  h = t * 0.25
  h2 = h * h
  s = h * (1 - h2 / 6 * (1 - h2 / 20 * (1 - h2 / 42 * (1 - h2 / 72))))
  c = 1 - h2 / 2 * (1 - h2 / 12 * (1 - h2 / 30 * (1 - h2 / 56 * (1 - h2 / 90))))
  for _ in range(2):
    s, c = 2 * s * c, (c - s) * (c + s)
  return c, s


@_cos_sin.defjvp
def _cos_sin_jvp(primals, tangents):
  # d cos = -sin dt, d sin = cos dt: the backward pass reuses the forward values.
  (t,), (dt,) = primals, tangents
  c, s = _cos_sin(t)
  return (c, s), (-s * dt, c * dt)


def _class_means(u, w, num_classes: int):
  """The mean of phi(u) over each class's rows, (C, 2m + 1) in float32: u holds C groups of
  equally many rows, class by class (the same map as `features`, averaged before the constant
  coordinate is appended, which saves a copy of the (rows, 2m) features)."""
  c, s = _cos_sin(u @ w)
  scale = 1.0 / math.sqrt(2.0 * w.shape[1])
  mc = jnp.mean(c.reshape(num_classes, -1, c.shape[-1]), axis=1)
  ms = jnp.mean(s.reshape(num_classes, -1, s.shape[-1]), axis=1)
  const = jnp.full((num_classes, 1), 1.0 / math.sqrt(2.0), u.dtype)
  return jnp.concatenate([mc * scale, ms * scale, const], axis=1)


def embedding(
  u: np.ndarray, labels: np.ndarray, w: np.ndarray, num_classes: int, num_records: int
) -> np.ndarray:
  """mu (C, 2m + 1) = (1/n) sum_i e_{y_i} phi(u_i)^T in float64, in chunks of records."""
  out = np.zeros((num_classes, w.shape[1] * 2 + 1), np.float64)
  for start in range(0, len(u), _CHUNK):
    phi = features(u[start : start + _CHUNK], w)
    onehot = np.eye(num_classes)[labels[start : start + _CHUNK]]
    out += onehot.T @ phi
  return out / num_records


def proportions(noisy: np.ndarray) -> np.ndarray:
  """The class proportions read off the release: sqrt(2) times each column's constant
  coordinate, negatives clipped, normalised (uniform if none is positive). Post-processing."""
  p = np.maximum(math.sqrt(2.0) * np.asarray(noisy, np.float64)[:, -1], 0.0)
  return p / p.sum() if p.sum() > 0 else np.full(len(p), 1.0 / len(p))


def allocate(p: np.ndarray, total: int) -> np.ndarray:
  """Counts summing to `total` in proportion to p (largest remainder)."""
  raw = np.asarray(p, np.float64) * total
  counts = np.floor(raw).astype(np.int64)
  rest = total - int(counts.sum())
  if rest > 0:
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
  return counts


class Generator(nn.Module):
  """G(z, y): an MLP with layer normalisation on [z, one-hot(y)], outputs unconstrained."""

  hidden: Tuple[int, ...]
  out_dim: int

  @nn.compact
  def __call__(self, code, onehot):
    h = jnp.concatenate([code, onehot], axis=-1)
    for width in self.hidden:
      h = nn.relu(nn.LayerNorm()(nn.Dense(width)(h)))
    return nn.Dense(self.out_dim)(h)


def _output_map(domain: Any, blocks: Sequence[Any]):
  """The map from G's outputs to the feature part: sigmoid for pixels (then onto the image
  ball) and numeric columns, softmax (times the hot value) per categorical block."""
  radius = domain.radius if isinstance(domain, image_domain.ImageDomain) else None
  spans, start = [], 0
  for b in blocks:
    spans.append((b.kind, start, start + b.stop - b.start, float(b.scale)))
    start += b.stop - b.start

  def apply(logits):
    parts = []
    for kind, lo, hi, scale in spans:
      z = logits[:, lo:hi]
      if kind == "categorical":
        parts.append(jax.nn.softmax(z, axis=-1) * scale)
      elif kind == "image" and radius is not None:
        x = jax.nn.sigmoid(z)
        norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)
        parts.append(x * jnp.minimum(1.0, radius / norm))
      else:
        parts.append(jax.nn.sigmoid(z))
    return jnp.concatenate(parts, axis=-1)

  return apply, spans


def _check_options(num_features, bandwidth, num_steps, batch_size, learning_rate, code_dim, hidden):
  def positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
      raise ValueError(f"{NAME}: {name} must be an integer >= {minimum}, got {value!r}")

  positive_int(num_features, "num_features", 2)
  if num_features % 2:
    raise ValueError(f"{NAME}: num_features must be even (cos and sin), got {num_features}")
  if bandwidth is not None and not (
    isinstance(bandwidth, (int, float, np.floating)) and math.isfinite(bandwidth) and bandwidth > 0
  ):
    raise ValueError(f"{NAME}: bandwidth must be positive and finite, got {bandwidth!r}")
  positive_int(num_steps, "num_steps", 0)
  positive_int(batch_size, "batch_size")
  if not (isinstance(learning_rate, (int, float)) and 0 < learning_rate < math.inf):
    raise ValueError(f"{NAME}: learning_rate must be positive, got {learning_rate!r}")
  positive_int(code_dim, "code_dim")
  if not hidden or any(
    isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden
  ):
    raise ValueError(f"{NAME}: hidden must be positive layer widths, got {hidden!r}")


def train_generator(
  target: np.ndarray,
  weights: np.ndarray,
  w: np.ndarray,
  domain: Any,
  *,
  key: jax.Array,
  num_steps: int = NUM_STEPS,
  batch_size: int = BATCH_SIZE,
  learning_rate: float = LEARNING_RATE,
  code_dim: int = CODE_DIM,
  hidden: Sequence[int] = HIDDEN,
):
  """Fits G to a (noisy) embedding: post-processing of `target` (module docstring, step 4).

  Args:
    target: the embedding (C, 2m + 1) to match.
    weights: the class proportions (C,) that weigh mu_G's columns.
    w: the frequencies (feature dimension, m).
    domain: the records' domain (its feature blocks shape G's outputs).
    key: the PRNG key of the codes and the initialisation.
    num_steps, batch_size, learning_rate, code_dim, hidden: as in `fit`.

  Returns:
    (generator, params, losses): the module, its trained parameters, and the objective at
    every step (float32 numpy).
  """
  blocks, _ = feature_blocks(domain)
  out_map, _ = _output_map(domain, blocks)
  num_classes = target.shape[0]
  out_dim = sum(b.stop - b.start for b in blocks)
  per_class = max(1, -(-int(batch_size) // num_classes))
  gen = Generator(tuple(int(h) for h in hidden), out_dim)
  init_key, key = jax.random.split(key)
  onehot = jnp.repeat(jnp.eye(num_classes, dtype=jnp.float32), per_class, axis=0)
  params = gen.init(init_key, jnp.zeros((1, code_dim)), onehot[:1])
  schedule = optax.exponential_decay(learning_rate, LR_DECAY_STEPS, LR_DECAY, staircase=True)
  opt = optax.adam(schedule)
  opt_state = opt.init(params)
  target = jnp.asarray(target, jnp.float32)
  weights = jnp.asarray(weights, jnp.float32)
  w = jnp.asarray(w, jnp.float32)

  def objective(params, code):
    x = out_map(gen.apply(params, code, onehot))
    mu_g = weights[:, None] * _class_means(x, w, num_classes)
    return jnp.sum((target - mu_g) ** 2)

  @jax.jit
  def step(params, opt_state, key):
    code = jax.random.normal(key, (num_classes * per_class, code_dim))
    loss, grads = jax.value_and_grad(objective)(params, code)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  losses = []
  for i, step_key in enumerate(jax.random.split(key, int(num_steps)) if num_steps else ()):
    params, opt_state, loss = step(params, opt_state, step_key)
    losses.append(loss)
    if (i + 1) % _LOG_EVERY == 0 or i + 1 == num_steps:
      log.info("Generator step %d of %d: objective %.4g", i + 1, num_steps, float(loss))
  return gen, params, np.asarray(jax.device_get(losses), np.float32)


def integer_pixel_format(domain: Any) -> bool:
  """Whether the domain's images come in an integer format (pixel_max an integer >= 2, e.g.
  255 for uint8, 16 for digits), whose pixels take the values k / pixel_max."""
  pixel_max = getattr(domain, "pixel_max", None)
  return pixel_max is not None and pixel_max >= 2 and float(pixel_max).is_integer()


def generate(
  gen: Generator,
  params: Any,
  domain: Any,
  labels: np.ndarray,
  code_dim: int,
  rng: np.random.Generator,
  categorical: str = "sample",
  round_pixels: bool = True,
) -> np.ndarray:
  """Records in the domain for the given labels (post-processing).

  G's outputs; each categorical block drawn from its softmax ('sample') or its argmax
  ('argmax'). Images in an integer format (`integer_pixel_format`) are, with `round_pixels`,
  rounded to that format's integers and encoded like real images (`domain.encode`), as saving
  them would do: the real images' background is exactly 0, which a sigmoid never reaches, and
  the near-constant values it leaves there (spread 1e-9) are blown up by any per-pixel
  standardisation downstream. Everything else is projected into the domain (`domain.project`).
  """
  blocks, label_block = feature_blocks(domain)
  out_map, spans = _output_map(domain, blocks)
  num_classes = 1 if label_block is None else label_block.stop - label_block.start
  apply = jax.jit(lambda p, c, y: out_map(gen.apply(p, c, y)))
  n = len(labels)
  codes = rng.standard_normal((n, code_dim)).astype(np.float32)
  onehot = np.eye(num_classes, dtype=np.float32)[labels]
  out = (
    np.concatenate(
      [
        np.asarray(apply(params, codes[s : s + _CHUNK], onehot[s : s + _CHUNK]), np.float64)
        for s in range(0, n, _CHUNK)
      ]
    )
    if n
    else np.zeros((0, sum(hi - lo for _, lo, hi, _ in spans)))
  )
  records = np.zeros((n, domain.dim), np.float64)
  for b, (kind, lo, hi, scale) in zip(blocks, spans):
    part = out[:, lo:hi]
    if kind == "categorical":
      probs = part / np.maximum(part.sum(axis=1, keepdims=True), 1e-300)
      if categorical == "argmax":
        idx = np.argmax(probs, axis=1)
      else:
        idx = np.minimum((np.cumsum(probs, axis=1) < rng.random((n, 1))).sum(axis=1), hi - lo - 1)
      part = np.zeros_like(part)
      part[np.arange(n), idx] = scale
    records[:, b.start : b.stop] = part
  if label_block is not None:
    records[np.arange(n), label_block.start + labels] = label_block.scale
  if round_pixels and isinstance(domain, image_domain.ImageDomain) and integer_pixel_format(domain):
    pixels = np.rint(records[:, : domain.image_dim] * domain.pixel_max)
    return domain.encode(pixels, None if label_block is None else labels)
  return domain.project(records)


def _domain_text(domain: Any) -> str:
  if isinstance(domain, image_domain.ImageDomain):
    desc = domain.describe()
    return f"image records of dimension {desc['dim']}: {desc['preprocessing']}"
  return base.table_description(domain)


def fit(
  train: Any,
  domain: Any,
  *,
  epsilon: float,
  delta: float,
  seed: Optional[int] = None,
  num_features: int = NUM_FEATURES,
  bandwidth: Optional[float] = None,
  feature_seed: Optional[int] = None,
  num_steps: int = NUM_STEPS,
  batch_size: int = BATCH_SIZE,
  learning_rate: float = LEARNING_RATE,
  code_dim: int = CODE_DIM,
  hidden: Sequence[int] = HIDDEN,
  categorical: str = "sample",
  round_pixels: bool = True,
  num_samples: Optional[int] = None,
  notes=(),
) -> base.BaselineRelease:
  """DP-MERF synthetic records in the domain, with their replace-one privacy report.

  Args:
    train: the private records (n, domain.dim), in the domain (images or a table).
    domain: a `lipdp.data.ImageDomain` or `lipdp.data.TabularDomain`; its label block (if any)
      gives the classes, every other coordinate is the feature part.
    epsilon: the target epsilon (> 0).
    delta: the target delta in (0, 1).
    seed: None draws the noise from OS entropy; an integer makes it reproducible (and says so
      in the report).
    num_features: 2m, the random features (cos and sin of m frequencies; even).
    bandwidth: the Gaussian kernel's length scale l; default `default_bandwidth(domain)`.
    feature_seed: the public seed of the frequencies (recorded in the report); default drawn
      from OS entropy (from `seed` when the noise is seeded).
    num_steps, batch_size, learning_rate, code_dim, hidden: the generator and its training
      (post-processing).
    categorical: 'sample' draws each categorical value from the generator's softmax, 'argmax'
      takes its mode.
    round_pixels: images in an integer pixel format are rounded to it (`generate`).
    num_samples: synthetic records to release (default n).
    notes: remarks carried into the report.

  Returns:
    A `BaselineRelease` whose report recomputes epsilon from the one Gaussian measurement.
  """
  base.check_budget(epsilon, delta, NAME)
  x = base.check_records(train, domain)
  n = x.shape[0]
  num_samples = n if num_samples is None else int(num_samples)
  if num_samples < 1:
    raise ValueError(f"{NAME}: num_samples must be >= 1, got {num_samples}")
  _check_options(num_features, bandwidth, num_steps, batch_size, learning_rate, code_dim, hidden)
  if categorical not in CATEGORICAL:
    raise ValueError(f"{NAME}: categorical must be one of {CATEGORICAL}, got {categorical!r}")
  blocks, label_block = feature_blocks(domain)
  num_classes = 1 if label_block is None else label_block.stop - label_block.start
  labels = (
    np.zeros(n, np.int64)
    if label_block is None
    else np.argmax(x[:, label_block.start : label_block.stop], axis=1)
  )
  columns = np.concatenate([np.arange(b.start, b.stop) for b in blocks])
  # The public feature map, fixed before the data is read.
  length = default_bandwidth(domain) if bandwidth is None else float(bandwidth)
  if feature_seed is None:
    # Not drawn from the noise generator: publishing it must reveal nothing of the noise.
    feature_seed = (
      secrets.randbits(63)
      if seed is None
      else int(np.random.default_rng([int(seed), 1]).integers(2**63))
    )
  elif isinstance(feature_seed, bool) or int(feature_seed) != feature_seed or feature_seed < 0:
    raise ValueError(f"{NAME}: feature_seed must be a non-negative integer, got {feature_seed!r}")
  w = frequencies(len(columns), int(num_features), length, int(feature_seed))
  rng = base.noise_rng(seed)
  # sqrt(2) / n, raised by the float64 embedding's rounding (6e-9 relative at n = 36,000).
  delta_2 = released_sensitivity(n, int(num_features), num_classes)
  sigma = privacy.calibrate_sigma(epsilon, delta, delta_2)

  # The one release.
  t0 = time.time()
  # In a secret random order: each record's computed features then do not depend on its
  # place in the data set (module docstring, "Accounting").
  order = rng.permutation(n)
  mu = embedding(x[np.ix_(order, columns)], labels[order], w, num_classes, n)
  # Exact discrete Gaussian noise on a lattice, at least as private as N(0, sigma^2 I).
  noisy = discrete_gaussian.gaussian_measurement(rng, mu, sigma, delta_2, counts=False)
  del mu
  embed_s = time.time() - t0
  log.info(
    "Released the noisy mean embedding (%d x %d, sigma %.4g) in %.1f s; fitting the generator "
    "to it (post-processing)",
    num_classes,
    noisy.shape[1],
    sigma,
    embed_s,
  )

  # Post-processing.
  post = base.post_processing_rng(rng, seed)
  p = proportions(noisy)
  t0 = time.time()
  gen, params, losses = train_generator(
    noisy,
    p,
    w,
    domain,
    key=jax.random.PRNGKey(int(post.integers(2**31))),
    num_steps=num_steps,
    batch_size=batch_size,
    learning_rate=learning_rate,
    code_dim=code_dim,
    hidden=hidden,
  )
  train_s = time.time() - t0
  synth_labels = post.permutation(np.repeat(np.arange(num_classes), allocate(p, num_samples)))
  records = generate(
    gen, params, domain, synth_labels, code_dim, post, categorical, bool(round_pixels)
  )

  measurement = privacy.NoisyMeasurement("gaussian", sigma, delta_2, 1, "mean_embedding")
  event = privacy.CentralRelease(NAME, (measurement,), num_samples, exact_noise=True)
  report = base.central_report(
    event,
    domain=_domain_text(domain),
    domain_description=domain.describe(),
    delta=delta,
    num_records=n,
    seed=seed,
    extra_versions={"jax": jax.__version__, "flax": flax.__version__},
    notes=tuple(notes)
    + (
      f"DP-MERF: target epsilon {epsilon:g}; one Gaussian release of the class-conditional "
      f"mean embedding ({num_classes} x {int(num_features) + 1} coordinates: "
      f"{int(num_features) // 2} random Fourier frequencies of feature seed {int(feature_seed)}, "
      f"bandwidth {length:.6g}, and a constant coordinate), replace-one sensitivity "
      f"sqrt(2)/n raised by the float64 embedding's bounded rounding = {delta_2:.6g}, sigma "
      f"{sigma:.6g}; generator training is post-processing",
    ),
  )
  base.check_spent(report, epsilon, NAME)
  info = {
    "sigma": sigma,
    "sensitivity": delta_2,
    "bandwidth": length,
    "num_features": int(num_features),
    "feature_seed": int(feature_seed),
    "num_classes": num_classes,
    "proportions": p.tolist(),
    "num_steps": int(num_steps),
    "loss_first": float(losses[0]) if len(losses) else None,
    "loss_last": float(losses[-1]) if len(losses) else None,
    "embed_s": embed_s,
    "train_s": train_s,
  }
  return base.BaselineRelease(NAME, records, report, True, info)
