"""Per-record private synthesis and its privacy report.

For each private record x and j = 1..k: z_j = mu(x) + sigma(x) * xi_j with xi_j ~ N(0, I) drawn
from a secret key, and the synthetic record is drawn from the decoder's likelihood at z_j (or
its mean; `decode_latents`) and projected into the domain. Releasing the
k latents of x is the Gaussian mechanism with l2 sensitivity Delta = L * D, k times, which
composes exactly to one Gaussian with noise sigma / sqrt(k) (docs/method.md). Decoding and
projecting are post-processing. The n * k outputs are shuffled with a secret permutation and
carry no record identifiers.

L is `lipdp.nn.certified_lipschitz_bound` of the *trained* encoder mean, D is the domain's exact
diameter, and the report records the scope of the model weights.

The release's privacy profile is fixed before training, as adaptive composition with DP-SGD
needs (`lipdp.privacy.composition`):
- homoscedastic: sigma is calibrated on the certified L, so sigma / (L D) (all that matters, by
  scale invariance) and k are the values the configuration fixed;
- heteroscedastic: the release multiplies mu(x) by min(1, L_target / L_certified) and the
  log-sigma network's output by min(1, L_s,target / L_s,certified), so the released map is
  certified within the targets the model was built with, and epsilon is computed from those
  targets, never from a number measured on the trained weights.
"""

import collections
import contextlib
import dataclasses
import fractions
import math
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from lipdp import discrete_gaussian
from lipdp import nn as lnn
from lipdp import privacy
from lipdp import randomness
from lipdp import rounding
from lipdp.models import likelihood
from lipdp.models import vae as vae_lib


def submodule_variables(variables: Any, name: str) -> dict:
  """The variables of the submodule `name` in every collection that has some."""
  variables = flax.core.unfreeze(variables)
  return {col: tree[name] for col, tree in variables.items() if name in tree}


@dataclasses.dataclass(frozen=True)
class EncoderCertificate:
  """Certified Lipschitz constants of the trained encoder (l2 -> l2, over the record vector)."""

  mean_lipschitz: float
  log_sigma_lipschitz: Optional[float]
  mean_layer_bounds: tuple
  mean_layers: tuple = ()  # the `lipdp.nn.LayerBound`s of the mean, for its rounding bound
  # The operators those bounds are about: the release evaluates the mean (and a
  # heteroscedastic model's log sigma) as these (the certified kernels themselves,
  # `lipdp.nn.CertifiedChain`), never the layers' forward pass.
  mean_chain: Optional[lnn.CertifiedChain] = None
  log_sigma_chain: Optional[lnn.CertifiedChain] = None


@contextlib.contextmanager
def release_arithmetic():
  """The arithmetic of the released map and of its certificate: float64 (`jax.enable_x64`) at
  the highest matmul precision.

  The certificate's safety margin is relative (`lipdp.nn.FLOAT_SAFETY_MARGIN`, 5e-6 per layer),
  but the rounding of a forward pass is additive, about the unit roundoff times the size of the
  activations. In float32 (unit 6e-8) two records' released means could lie farther apart than
  L D once the activations reach about 100 L D (an independent review measured 1.00002 L D
  with a bias of 1,000 on a map of L D = 2.8); in float64 (unit 1.1e-16) that needs activations
  some 1e10 times L D. The weights stay float32 in training; only the release reads them in
  float64 (`in_float64`).
  """
  with jax.enable_x64(True), jax.default_matmul_precision("highest"):
    yield


def in_float64(tree: Any) -> Any:
  """`tree` with every floating-point leaf as a float64 array (call inside
  `release_arithmetic`, where JAX keeps float64)."""

  def cast(x):
    x = jnp.asarray(x)
    return x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x

  return jax.tree_util.tree_map(cast, tree)


# What a report's certificate says of the arithmetic the released means were computed in
# (`lipdp.privacy.PrivacyReport.certificate["arithmetic"]`).
ARITHMETIC = "float64"


def _refuse_fixed_precision(module: Any, where: str) -> None:
  """A layer whose `dtype` is fixed computes in it whatever `release_arithmetic` asks: one
  fixed to float32 would put its rounding back into the released means, with no dtype check
  at the output to see it (from an independent review). Refused for the release."""
  if isinstance(module, lnn.LipschitzSequential):
    for layer in module.layers:
      _refuse_fixed_precision(layer, where)
    return
  dtype = getattr(module, "dtype", None)
  if dtype is not None and jnp.dtype(dtype) != jnp.float64:
    raise TypeError(
      f"{where}: {type(module).__name__} computes in {jnp.dtype(dtype).name} (its dtype is "
      "fixed); the release computes the certified map in float64: leave the layer's dtype "
      "unset"
    )


def certify_encoder(model: vae_lib.LipschitzVAE, variables: Any, dim: int) -> EncoderCertificate:
  """Certifies mu (and log sigma, if heteroscedastic) from the trained weights.

  Runs in `release_arithmetic`, like `release_latents`, so the certificate bounds the map the
  release computes (Björck's iterations, for one, run in float64 there) and its check that each
  layer computes the operator it bounds sees the same arithmetic. A layer whose dtype is fixed
  to something other than float64 is refused.
  """
  _refuse_fixed_precision(model.encoder_mean, "the encoder mean")
  if model.heteroscedastic:
    _refuse_fixed_precision(model.log_sigma_net, "the log-sigma network")
  with release_arithmetic():
    return _certify_encoder(model, _release_variables(variables), dim)


def _certify_encoder(model, variables, dim) -> EncoderCertificate:
  chain = lnn.certified_chain(
    model.encoder_mean, submodule_variables(variables, "encoder_mean"), (dim,)
  )
  layers = chain.bounds
  mean_bound = lnn.chain_bound(layers)  # = certified_lipschitz_bound, one walk instead of two
  layer_bounds = tuple(float(b.bound) for b in layers)
  log_sigma_bound = log_sigma_chain = None
  if model.heteroscedastic:
    log_sigma_chain = lnn.certified_chain(
      model.log_sigma_net, submodule_variables(variables, "log_sigma_net"), (dim,)
    )
    log_sigma_bound = lnn.chain_bound(log_sigma_chain.bounds)
  return EncoderCertificate(
    float(mean_bound), log_sigma_bound, layer_bounds, layers, chain, log_sigma_chain
  )


def rounding_error(certificate: EncoderCertificate, domain, mean_scale: float = 1.0) -> float:
  """A bound on ||mu_computed(x) - mu(x)|| over the domain for the float64 evaluation of the
  mean (times `mean_scale`, one more rounding), given that each layer computes the operator
  it is certified for (`lipdp.nn.rounding_error_bound`). Every record lies within D of the
  domain's image of 0, so its norm is at most that point's norm plus D."""
  anchor = domain.project(np.zeros((1, domain.dim), np.float32))[0]
  input_norm = (float(np.linalg.norm(anchor.astype(np.float64))) + float(domain.diameter)) * (
    1 + 1e-9
  )
  error, norm = lnn.rounding_error_bound(certificate.mean_layers, input_norm)
  # The product with mean_scale rounds by a relative u, or flushes a subnormal result to zero.
  outputs = float(np.prod(certificate.mean_layers[-1].output_shape))
  unit = rounding.FLOAT64_UNIT
  flushed = math.sqrt(outputs) * rounding.SMALLEST_NORMAL[unit]
  return mean_scale * error + unit * mean_scale * (norm + error) + flushed


def check_rounding(certificate: EncoderCertificate, lipschitz: float, diameter: float, error):
  """Two records' computed means may differ by the exact map's L D plus twice the rounding
  error: that must fit in the share of the certified L D the margin leaves
  (`lipdp.nn.rounding_slack`), or the release is refused (the weights and the domain decide,
  never the records)."""
  slack = lnn.rounding_slack(certificate.mean_layers) * lipschitz * diameter
  if not 2.0 * error <= slack:
    raise ValueError(
      f"the float64 evaluation of the encoder mean may be off by up to {error:.3g} per record, "
      f"more than the certificate's margin leaves ({slack / 2:.3g}): its activations are too "
      "large for its Lipschitz bound (a huge bias?), or so small that they underflow; the "
      "release would not be covered"
    )


# Device work of synthesis: the weights are arguments of the jitted functions (not constants
# baked into them), one compiled shape per batch size (the last chunk is padded), and a few
# chunks in flight so the host's float64 noise and copies overlap the device's work.
_IN_FLIGHT = 3
_JIT_CACHE_SIZE = 16
_jit_cache: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()


def _cached_jit(model, kind: str, extra: Any, build: Callable[[], Callable]) -> Callable:
  """`jax.jit(build())`, reused across calls for the same model object.

  Flax modules holding lists are unhashable, so they cannot be static arguments; the cache is
  keyed by the model's identity and keeps the model alive, so an id is never reused while its
  entry exists (a few entries, least recently used dropped).
  """
  key = (id(model), kind, extra)
  entry = _jit_cache.get(key)
  if entry is not None and entry[0] is model:
    _jit_cache.move_to_end(key)
    return entry[1]
  fn = jax.jit(build())
  _jit_cache[key] = (model, fn)
  while len(_jit_cache) > _JIT_CACHE_SIZE:
    _jit_cache.popitem(last=False)
  return fn


def _on_one_device(tree: Any) -> Any:
  """The weights on this host's first device (a copy of a replicated or multi-host array), so
  synthesis runs once, not once per device of a training mesh."""
  device = jax.local_devices()[0]

  def move(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)
    return jax.device_put(x, device)

  return jax.tree_util.tree_map(move, tree)


def _in_chunks(fn: Callable, inputs: tuple, batch_size: int, consume: Callable, dtype=None) -> None:
  """Calls `consume(begin, count, fn(*chunks))` for consecutive chunks of `inputs` (arrays with
  the same leading length), in order; every chunk is cast to `dtype` on the host (if given),
  padded with zeros to `batch_size` rows (one compiled shape), and `_IN_FLIGHT` are dispatched
  ahead of the one consumed."""
  total = inputs[0].shape[0]
  pending = collections.deque()
  for begin in range(0, total, batch_size):
    parts = []
    for x in inputs:
      part = x[begin : begin + batch_size]
      part = part if dtype is None else np.asarray(part, dtype)
      if part.shape[0] < batch_size:
        part = np.concatenate(
          [part, np.zeros((batch_size - part.shape[0],) + part.shape[1:], part.dtype)]
        )
      parts.append(jnp.asarray(part))
    pending.append((begin, min(batch_size, total - begin), fn(*parts)))
    if len(pending) > _IN_FLIGHT:
      consume(*pending.popleft())
  while pending:
    consume(*pending.popleft())


def release_latents(
  model: vae_lib.LipschitzVAE,
  variables: Any,
  records: np.ndarray,
  k: int,
  noise_rng: np.random.Generator,
  sigma: Optional[float] = None,
  batch_size: int = 4096,
  mean_scale: float = 1.0,
  log_sigma_scale: float = 1.0,
  lattice: Optional[privacy.LatticeNoise] = None,
  certificate: Optional[EncoderCertificate] = None,
) -> np.ndarray:
  """The mechanism itself: k noisy latents per record, float64, shape (n, k, latent_dim).

  The means are the certified map's: the encoder mean evaluated as the operators its
  certificate bounded (`EncoderCertificate.mean_chain`; `certificate`, or certified here from
  `variables`), so that the L the noise is calibrated on is, by construction, a bound for the
  map that is released, whatever the layers' forward pass computes; a heteroscedastic model's
  log sigma likewise (`log_sigma_chain`). A `certificate` passed in is trusted to be the one
  `sigma` was calibrated on (`synthesize` passes its own); nothing here recomputes its bounds.

  With `lattice` the noise is drawn exactly: each mean is rounded to the lattice and given
  discrete Gaussian noise on it (`lipdp.discrete_gaussian.lattice_release`; accounted by
  `lipdp.privacy.lattice`); `sigma` must then be the lattice's accounted sigma. Otherwise:

  mu(x) (and sigma(x)) are computed on the device in float64 at the highest matmul precision
  (`release_arithmetic`; `synthesize` bounds the mean's rounding and checks that it fits in
  the certificate's margin, `check_rounding`); the Gaussian noise is
  drawn on the host in float64 (`lipdp.randomness.standard_normal`), which reaches 12.2
  standard deviations where JAX's float32 sampler stops near 5.2.

  `sigma` overrides the model's homoscedastic noise (the calibrated release noise); it must not
  be given for a heteroscedastic model, whose noise sigma(x), clipped to [sigma_min, sigma_max]
  in float64, is part of the certified mechanism. `mean_scale` and `log_sigma_scale` (in (0, 1])
  scale mu and log sigma's network (`LipschitzVAE.encode`).
  """
  _check_scale("mean_scale", mean_scale)
  _check_scale("log_sigma_scale", log_sigma_scale)
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  if sigma is not None and model.heteroscedastic:
    raise ValueError("a heteroscedastic model releases with its own sigma(x); do not override it")
  if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
    raise ValueError(f"sigma must be positive and finite, got {sigma}")
  if lattice is not None and (sigma is None or sigma != lattice.accounted_sigma()):
    raise ValueError(
      f"a lattice release is accounted with sigma = {lattice.accounted_sigma()!r} "
      f"(its accounted_sigma()), got {sigma!r}"
    )

  certificate = _mean_certificate(model, variables, records, certificate)
  encode = _jitted_encode(model, certificate, mean_scale, log_sigma_scale)
  out = []

  def consume(begin, count, encoded):
    del begin
    mu, model_sigma = encoded
    mu = np.asarray(mu, np.float64)[:count]
    if lattice is not None:
      out.append(discrete_gaussian.lattice_release(noise_rng, mu, lattice, k))
      return
    if sigma is not None:
      noise_sigma = np.full(mu.shape[0], float(sigma))
    elif model.heteroscedastic:
      noise_sigma = np.clip(
        np.asarray(model_sigma, np.float64)[:count], model.sigma_min, model.sigma_max
      )
    else:
      noise_sigma = np.full(mu.shape[0], float(model.sigma))
    xi = randomness.standard_normal(noise_rng, (mu.shape[0], k, mu.shape[-1]))
    out.append(mu[:, None, :] + noise_sigma[:, None, None] * xi)

  _encode_in_float64(encode, certificate, records, batch_size, consume)
  return np.concatenate(out, axis=0)


def _mean_certificate(model, variables, records, certificate) -> EncoderCertificate:
  """`certificate`, or the encoder's, certified now from `variables`; refused without the
  operators the release evaluates."""
  if certificate is None:
    certificate = certify_encoder(model, variables, np.shape(records)[-1])
  missing = certificate.mean_chain is None or (
    model.heteroscedastic and certificate.log_sigma_chain is None
  )
  if missing:
    raise ValueError(
      "the certificate holds no certified operators (mean_chain, and log_sigma_chain for a "
      "heteroscedastic model) to evaluate: make it with certify_encoder"
    )
  return certificate


def _release_variables(variables: Any) -> Any:
  """The weights as the release reads them: on one device, in float64 (inside
  `release_arithmetic`)."""
  return in_float64(_on_one_device(variables))


def _encode_in_float64(encode, certificate, records, batch_size: int, consume) -> None:
  """`encode` (a `_jitted_encode`) over the records in chunks, in `release_arithmetic`, on the
  certified operators; each chunk's output given to `consume(begin, count, encoded)`."""
  with release_arithmetic():
    chains = (certificate.mean_chain, certificate.log_sigma_chain)
    arrays = tuple(None if c is None else c.arrays() for c in chains)
    arrays = jax.device_put(arrays, jax.local_devices()[0])
    records = np.asarray(records, np.float32)  # the float32 vectors the domain holds
    # Cast to float64 on the host, chunk by chunk (exact): XLA on a CPU would read a subnormal
    # float32 coordinate as zero (a review's finding), moving a record by up to 2^-126.
    _in_chunks(
      lambda chunk: encode(arrays, chunk), (records,), batch_size, consume, dtype=np.float64
    )


def _check_scale(name: str, scale: float) -> None:
  """A scale of the encoder's certified map (`LipschitzVAE.encode`) must lie in (0, 1]."""
  if not 0 < scale <= 1:
    raise ValueError(f"{name} must be in (0, 1], got {scale}")


def _jitted_encode(
  model: vae_lib.LipschitzVAE,
  certificate: EncoderCertificate,
  mean_scale: float,
  log_sigma_scale: float,
):
  """(operators, records) -> (mu, sigma), compiled once per model and chain structure; to be
  called in `release_arithmetic` (no float32 or TF32 rounding) with the certificate's chains'
  arrays, `(mean_chain.arrays(), log_sigma_chain.arrays() or None)`.

  What `LipschitzVAE.encode` computes, on the certified operators (`lipdp.nn
  .evaluate_certified`): mu = mean_scale * the mean chain's map; sigma = exp(clip(
  log_sigma_scale * the log-sigma chain's map, log sigma_min, log sigma_max)) for a
  heteroscedastic model, the model's constant sigma otherwise. The records come in float64
  chunks, cast on the host (`_encode_in_float64`), so the host never holds a float64 copy of
  every record."""
  mean_structure = certificate.mean_chain.structure()
  log_sigma_structure = None
  if model.heteroscedastic:
    log_sigma_structure = certificate.log_sigma_chain.structure()

  def build():
    def encode(arrays, chunk):
      x = chunk.astype(jnp.float64)
      mu = lnn.evaluate_certified(mean_structure, arrays[0], x) * mean_scale
      if model.heteroscedastic:
        log_sigma = lnn.evaluate_certified(log_sigma_structure, arrays[1], x)[..., 0]
        log_sigma = jnp.clip(
          log_sigma * log_sigma_scale, jnp.log(model.sigma_min), jnp.log(model.sigma_max)
        )
        sigma = jnp.exp(log_sigma)
      else:
        sigma = jnp.full(mu.shape[:-1], model.sigma, dtype=mu.dtype)
      return mu, sigma

    return encode

  scales = (float(mean_scale), float(log_sigma_scale))
  structure = (mean_structure, log_sigma_structure)
  try:
    hash(structure)
  except TypeError:  # an unhashable map in a chain: compiled for this call
    return jax.jit(build())
  return _cached_jit(model, "encode", (scales, structure), build)


def encoder_means(
  model: vae_lib.LipschitzVAE,
  variables: Any,
  records: np.ndarray,
  mean_scale: float = 1.0,
  batch_size: int = 4096,
  certificate: Optional[EncoderCertificate] = None,
) -> np.ndarray:
  """mu(x) of each record, float64, shape (n, latent_dim): the means `release_latents` adds its
  noise to (the same certified map, the same precision), without the noise. For diagnostics of
  a trained encoder (experiments/release_information.py): the means of private records are not
  released."""
  _check_scale("mean_scale", mean_scale)
  certificate = _mean_certificate(model, variables, records, certificate)
  encode = _jitted_encode(model, certificate, mean_scale, 1.0)
  out = []

  def consume(begin, count, encoded):
    del begin
    out.append(np.asarray(encoded[0], np.float64)[:count])

  _encode_in_float64(encode, certificate, records, batch_size, consume)
  return np.concatenate(out, axis=0)


def check_decoding(decoding: str, domain) -> str:
  """`decoding` resolved for the domain (`likelihood.resolve_decoding`), refused if its records
  cannot take it: "sample_modal_label" and "sample_pixels" keep a categorical label's most
  probable class, and "sample_pixels" draws the pixels of an image block. Called before
  training too, so a refusal comes before anything is trained."""
  blocks = tuple(domain.blocks)
  decoding = likelihood.resolve_decoding(decoding, blocks)
  if decoding == "sample_pixels" and not any(block.kind == "image" for block in blocks):
    raise ValueError("decoding 'sample_pixels' draws an image's pixels: the records have no image")
  if decoding in ("sample_modal_label", "sample_pixels"):
    label = domain.label_column
    if label is None or not any(b.name == label and b.kind == "categorical" for b in blocks):
      raise ValueError(
        f"decoding {decoding!r} keeps the label's most probable class: the records need a "
        f"categorical label column, got {label!r}"
      )
  return decoding


def decode_latents(
  model: vae_lib.LipschitzVAE,
  variables: Any,
  latents: np.ndarray,
  domain,
  batch_size: int = 4096,
  style_rng: Optional[np.random.Generator] = None,
  decoding: str = "auto",
  temperature: float = 1.0,
) -> np.ndarray:
  """Post-processing: each latent's record drawn from the decoder (or its mean), in the domain.

  `decoding` (`lipdp.models.likelihood.DECODINGS`; "auto": "sample" for tables, "mean" for
  images, `likelihood.resolve_decoding`): "sample" draws each record from the
  decoder's likelihood (`likelihood.sampled_record`), "mean" takes the likelihood's mean, whose
  projection keeps each category's mode, "sample_modal_label" draws every column but keeps the
  label's most probable class, "sample_pixels" draws too and draws an image's pixels from
  their Bernoulli likelihood (binary images; records with an image block only). A model with
  a style latent decodes each z with a fresh u ~ N(0, I); a label-conditioned decoder
  (`vae_lib.LipschitzVAE.condition_block`) decodes it with a label drawn from the model's
  learned label prior, or uniformly over the classes without one, which becomes the record's
  label. u, the labels and the draw's uniforms
  come from `style_rng` (public randomness, independent of the data given the weights: not part
  of the mechanism). `temperature` tau multiplies every latent the decoder sees (z and u)
  before decoding: a public constant applied to released values, so post-processing too; at
  tau = 1 (the default) the records are exactly those decoded without it.
  """
  if not (np.isfinite(temperature) and temperature > 0):
    raise ValueError(f"temperature must be a positive number, got {temperature!r}")
  blocks = tuple(domain.blocks)
  decoding = check_decoding(decoding, domain)
  draw_pixels = decoding == "sample_pixels"
  bins = model.numeric_bins
  conditioned = model.condition_block is not None

  def build():
    def decode(variables, z, *extra):
      extra = list(extra)
      u = extra.pop(0) if model.style_dim else None
      condition = extra.pop(0) if conditioned else None
      logits = model.apply(variables, z, u, condition, method=vae_lib.LipschitzVAE.decode)
      if decoding == "mean":
        out = likelihood.decoded_mean(logits, blocks, bins)
      else:
        out = likelihood.sampled_record(logits, blocks, extra[-1], bins, draw_pixels)
        if decoding in ("sample_modal_label", "sample_pixels"):
          mean = likelihood.decoded_mean(logits, blocks, bins)
          out = likelihood.with_modal_label(out, mean, blocks, label)
      if conditioned:  # the record's label is the one it was decoded for
        start, stop = model.condition_block
        out = out.at[..., start:stop].set(condition)
      return out

    return decode

  label = domain.label_column
  decode = _cached_jit(model, "decode", (blocks, decoding, label), build)
  variables = _on_one_device(variables)
  flat = np.asarray(latents.reshape(-1, latents.shape[-1]), np.float32)
  rng = style_rng if style_rng is not None else np.random.default_rng()
  inputs = (flat,)
  if model.style_dim:
    inputs += (rng.standard_normal((flat.shape[0], model.style_dim)).astype(np.float32),)
  if temperature != 1.0:  # z and u so far, the same draws scaled: tau changes no random number
    inputs = tuple(np.float32(temperature) * x for x in inputs)
  if conditioned:
    inputs += (_drawn_label_blocks(rng, flat.shape[0], model, variables, blocks),)
  if decoding != "mean":
    count = likelihood.num_uniforms(blocks, draw_pixels)
    inputs += (rng.random((flat.shape[0], count), dtype=np.float32),)
  parts = []
  # A domain is a set of single records, so projecting a batch projects each row on its own:
  # chunk by chunk, on the host while the device decodes the next chunks.
  _in_chunks(
    lambda *chunk: decode(variables, *chunk),
    inputs,
    batch_size,
    lambda begin, count, decoded: parts.append(
      domain.project(np.asarray(decoded)[:count]).astype(np.float32)
    ),
  )
  return np.concatenate(parts, axis=0)


def label_prior_probabilities(model: vae_lib.LipschitzVAE, variables: Any) -> np.ndarray:
  """p(y) of a label-conditioned model: its learned label prior, or uniform without one."""
  start, stop = model.condition_block
  if model.label_prior is None:
    return np.full(stop - start, 1.0 / (stop - start))
  logits = model.apply(variables, method=vae_lib.LipschitzVAE.label_prior_logits)
  logits = np.asarray(logits, np.float64)[0]
  p = np.exp(logits - logits.max())
  return p / p.sum()


def _drawn_label_blocks(rng: np.random.Generator, num: int, model, variables, blocks):
  """`num` label blocks (scale times one-hot) of classes drawn from the model's label prior
  (`label_prior_probabilities`), from public randomness."""
  block = vae_lib.label_block(model, blocks)
  num_classes = block.stop - block.start
  if model.label_prior is None:
    classes = rng.integers(0, num_classes, size=num)
  else:
    classes = rng.choice(num_classes, size=num, p=label_prior_probabilities(model, variables))
  return (block.scale * np.eye(num_classes, dtype=np.float32)[classes]).astype(np.float32)


def sample_prior(
  model: vae_lib.LipschitzVAE,
  variables: Any,
  num_samples: int,
  domain,
  seed: Optional[int] = None,
  decoding: str = "auto",
  temperature: float = 1.0,
) -> np.ndarray:
  """Synthetic records decoded from z ~ N(0, I): no privacy cost beyond training the decoder.

  This is the DP-SGD baseline's sampler; its guarantee is the training event's alone.
  `decoding` and `temperature` as in `decode_latents` (z ~ N(0, tau^2 I) at temperature tau).
  """
  seed = randomness.fresh_seed() if seed is None else randomness.check_user_seed(seed)
  latent_dim = _latent_dim(model, variables, domain.dim)
  z = jax.random.normal(randomness.key_from_seed(seed), (num_samples, 1, latent_dim))
  return decode_latents(
    model,
    variables,
    np.asarray(z),
    domain,
    style_rng=randomness.numpy_rng(seed, 2),
    decoding=decoding,
    temperature=temperature,
  )


@dataclasses.dataclass
class SyntheticData:
  records: np.ndarray  # (n * k, dim), shuffled, in the domain
  report: Any  # lipdp.privacy.PrivacyReport
  sigma: Optional[float]  # the release noise (homoscedastic), None if heteroscedastic
  certificate: EncoderCertificate  # certified from the weights the release used


def synthesize(
  model: vae_lib.LipschitzVAE,
  variables: Any,
  records: np.ndarray,
  domain,
  *,
  epsilon: Optional[float],
  delta: float,
  scope,
  k: int = 1,
  noise_ratio: Optional[float] = None,
  shuffled_release: bool = True,
  seed: Optional[int] = None,
  dpsgd: Optional[privacy.DPSGDEvent] = None,
  training_seeded: bool = False,
  batch_size: int = 4096,
  notes=(),
  decoding: str = "auto",
  temperature: float = 1.0,
  noise_sampler: str = "auto",
) -> SyntheticData:
  """Private synthesis: k synthetic records per private record, shuffled, with the report.

  Homoscedastic models release with sigma = calibrate_sigma(epsilon, delta, L * D, k), where L is
  certified from the trained weights now, so the per-record guarantee is exactly
  (epsilon, delta) whatever the training aimed at. With `epsilon=None` the model's own sigma is
  used and epsilon is computed; with `noise_ratio` (sigma / Delta, fixed before training, e.g.
  by `lipdp.privacy.plan_budget`) sigma = noise_ratio * L * D. Heteroscedastic models use their
  own sigma(x), capped to the model's Lipschitz targets (module docstring), and epsilon is
  computed by RDP.

  The certificate is always recomputed here from `variables`, so the report's L is that of the
  weights that produced the release.

  Args:
    records: the private records (n, dim), already in `domain`.
    scope: a `lipdp.privacy.Scope` or its value.
    seed: None (default) draws the noise and the shuffle from OS entropy. An integer makes them
      reproducible, and not private against whoever knows it; the report says so.
    dpsgd: the `DPSGDEvent` that trained the weights (scope 'dp-sgd').
    training_seeded: for scope 'dp-sgd', whether the DP-SGD noise was seeded.
    notes: free-form remarks for the report.
    decoding: how each released latent becomes a record (`decode_latents`): post-processing.
    temperature: the decoding's temperature (`decode_latents`): post-processing.
    noise_sampler: how the release noise is drawn (`check_noise_sampler`): 'exact' (a
      homoscedastic model's noise as an exact discrete Gaussian on a lattice,
      `lipdp.privacy.lattice`), 'float64' (NumPy's float64 sampler), or 'auto' (exact where
      the model allows it: homoscedastic models).
  """
  scope = privacy.Scope.parse(scope)
  exact_noise = check_noise_sampler(noise_sampler, model) == "exact"
  records = np.asarray(records, np.float32)
  if records.ndim != 2 or records.shape[1] != domain.dim:
    raise ValueError(f"records must have shape (n, {domain.dim}), got {records.shape}")
  # The mechanism's guarantee needs every input inside the domain of diameter D.
  if not np.array_equal(domain.project(records), records):
    raise ValueError("records lie outside the declared domain; encode them with the domain first")
  if (scope is privacy.Scope.DP_SGD) != (dpsgd is not None):
    raise ValueError(
      f"scope {scope.value!r} and the DP-SGD training event {dpsgd!r} disagree: "
      "the event is required with scope 'dp-sgd' and only there"
    )
  # Always certified here, from the very weights that produce the release.
  certificate = certify_encoder(model, variables, domain.dim)
  seeded = seed is not None
  seed = randomness.fresh_seed() if seed is None else randomness.check_user_seed(seed)
  diameter = float(domain.diameter)
  latent_dim = _latent_dim(model, variables, domain.dim)
  cert_info = {"layer_bounds": list(certificate.mean_layer_bounds), "arithmetic": ARITHMETIC}

  release_sigma = lattice = None
  mean_scale = log_sigma_scale = 1.0
  if not model.heteroscedastic:
    lipschitz = certificate.mean_lipschitz
    if epsilon is not None and noise_ratio is not None:
      raise ValueError("give epsilon or noise_ratio, not both")
    if noise_ratio is not None:
      if not (np.isfinite(noise_ratio) and noise_ratio > 0):
        raise ValueError(f"noise_ratio must be positive and finite, got {noise_ratio}")
      release_sigma = float(noise_ratio) * lipschitz * diameter
    elif epsilon is not None:
      release_sigma = privacy.calibrate_sigma(epsilon, delta, lipschitz * diameter, k=k)
    else:
      release_sigma = float(model.sigma)
    if exact_noise:  # at least as private as the continuous release at release_sigma
      lattice = privacy.LatticeNoise.covering(
        release_sigma, privacy.sensitivity(lipschitz, diameter), latent_dim
      )
      release_sigma = lattice.accounted_sigma()
    release = privacy.GaussianRelease(release_sigma, k, lattice)
  else:
    lipschitz, lipschitz_log_sigma, mean_scale, log_sigma_scale = _heteroscedastic_bounds(
      model, certificate, scope
    )
    release = privacy.HeteroscedasticRelease(
      model.sigma_min, model.sigma_max, lipschitz_log_sigma, latent_dim, k
    )
    cert_info.update(
      mean_scale=mean_scale,
      log_sigma_lipschitz=certificate.log_sigma_lipschitz,
      log_sigma_scale=log_sigma_scale,
    )
  # The float64 evaluation's own rounding, bounded and checked to fit in the margin, where
  # the bound's model of the arithmetic was checked: XLA on a CPU (IEEE binary64 with
  # subnormals flushed to zero). A TPU emulates float64, and a GPU may run a float64
  # convolution through an FFT; there the report keeps saying the rounding is not bounded.
  if jax.default_backend() == "cpu":
    cert_info["rounding_error"] = rounding_error(certificate, domain, mean_scale)
    check_rounding(certificate, lipschitz, diameter, cert_info["rounding_error"])

  latents = release_latents(
    model,
    variables,
    records,
    k,
    randomness.numpy_rng(seed, 0),
    sigma=release_sigma,
    batch_size=batch_size,
    mean_scale=mean_scale,
    log_sigma_scale=log_sigma_scale,
    lattice=lattice,
    certificate=certificate,
  )
  # Everything below is post-processing of the float64 latents. Its draws (style latents,
  # sampled categories, the shuffle) show in the released records, so secret noise gets a
  # post-processing seed of its own: nothing in the records is an output of the noise's
  # generator or of its seed, whatever that generator's strength (a secret seed's is AES-CTR,
  # lipdp.randomness). A seeded run derives both from its seed, so that the seed reproduces it.
  post_seed = seed if seeded else randomness.fresh_seed()
  synthetic = decode_latents(
    model,
    variables,
    latents.astype(np.float32),
    domain,
    style_rng=randomness.numpy_rng(post_seed, 2),
    decoding=decoding,
    temperature=temperature,
  )
  order = randomness.numpy_rng(post_seed, 1).permutation(synthetic.shape[0])
  synthetic = synthetic[order] if shuffled_release else synthetic

  desc = domain.describe()
  report = privacy.make_report(
    release,
    lipschitz=lipschitz,
    diameter=diameter,
    delta=delta,
    scope=scope,
    num_records=records.shape[0],
    shuffled=bool(shuffled_release),
    dpsgd=dpsgd,
    noise_seeded=seeded,
    training_seeded=bool(training_seeded) and dpsgd is not None,
    certificate=cert_info,
    domain=domain_text(domain),
    domain_description=desc,
    extra_versions={"jax": jax.__version__, "flax": flax.__version__},
    notes=notes,
  )
  if lattice is None:  # the lattice's sampler is exact: nothing is truncated
    _check_truncation_is_negligible(report, latents.shape[-1] * k)
  return SyntheticData(
    records=synthetic, report=report, sigma=release_sigma, certificate=certificate
  )


def check_noise_sampler(noise_sampler: str, model) -> str:
  """The sampler a release of `model` (the VAE, or its `ModelSpec`: only `heteroscedastic` is
  read) uses: 'exact' or 'float64' ('auto': exact for a homoscedastic model; a heteroscedastic one's sigma(x) varies continuously with x, which
  the lattice's accounting does not cover, so it keeps float64 noise)."""
  if noise_sampler not in discrete_gaussian.NOISE_SAMPLERS:
    raise ValueError(
      f"noise_sampler must be one of {discrete_gaussian.NOISE_SAMPLERS}, got {noise_sampler!r}"
    )
  if noise_sampler == "auto":
    return "float64" if model.heteroscedastic else "exact"
  if noise_sampler == "exact" and model.heteroscedastic:
    raise ValueError(
      "noise_sampler 'exact' covers homoscedastic releases only: a heteroscedastic model's "
      "sigma(x) is not on a lattice; use 'float64' (or 'auto')"
    )
  return noise_sampler


def domain_text(domain) -> str:
  """The report's `domain` field: the domain's description in words."""
  desc = domain.describe()
  return (
    f"{desc['type']} records of dimension {desc['dim']}: {desc['preprocessing']} "
    f"Diameter: {desc['diameter_derivation']}"
  )


def _latent_dim(model, variables, dim: int) -> int:
  return jax.eval_shape(
    lambda v: model.apply(v, jnp.zeros((1, dim)), method=vae_lib.LipschitzVAE.encode), variables
  )[0].shape[-1]


def _heteroscedastic_bounds(model, certificate: EncoderCertificate, scope):
  """(L, L_s, mean_scale, log_sigma_scale) for a heteroscedastic release (module docstring).

  With targets, the release is scaled so that its certified constants are within them, and the
  targets (fixed before training) are the numbers accounted. Without targets (a model built by
  hand), the certified constants are used, which is refused in the 'dp-sgd' scope: there the
  epsilon would depend on the trained weights, i.e. be chosen adaptively after DP-SGD.
  """
  targets = (model.lipschitz_target, model.log_sigma_lipschitz_target)
  if None in targets:
    if scope is privacy.Scope.DP_SGD:
      raise ValueError(
        "a heteroscedastic release in scope 'dp-sgd' needs the model's Lipschitz "
        "targets (lipschitz_target, log_sigma_lipschitz_target), fixed before "
        "training; an epsilon computed from the trained weights would be "
        "adaptive and its composition with DP-SGD invalid"
      )
    return certificate.mean_lipschitz, certificate.log_sigma_lipschitz, 1.0, 1.0
  mean_target, log_sigma_target = (float(t) for t in targets)
  mean_scale = _scale_within(mean_target, certificate.mean_lipschitz)
  log_sigma_scale = (
    1.0
    if certificate.log_sigma_lipschitz == 0
    else _scale_within(log_sigma_target, certificate.log_sigma_lipschitz)
  )
  return mean_target, log_sigma_target, mean_scale, log_sigma_scale


def _scale_within(target: float, certified: float) -> float:
  """min(1, target / certified), rounded down to a float32 value s with s * certified <= target
  exactly: the encoder multiplies in float32, and a scale that float32 (or the division) rounds
  up would put the released map's constant above its target by up to 6e-8 (found by a
  review)."""
  if certified <= target:
    return 1.0
  scale = np.float32(target / certified)
  while fractions.Fraction(float(scale)) * fractions.Fraction(certified) > fractions.Fraction(
    target
  ):
    scale = np.nextafter(scale, np.float32(0.0))
  return float(scale)


def _per_record_epsilon_at(report, delta: float) -> float:
  """The per-record epsilon of a Gaussian release at `delta` (the shuffle's delta differs from
  the report's, so the two epsilons are compared there: found by a review); inf for any other
  release, so that its central claim always counts every record."""
  release = getattr(report, "release", None)
  if not isinstance(release, privacy.GaussianRelease) or not report.sensitivity:
    return math.inf
  return privacy.gaussian_epsilon(release.sigma, report.sensitivity, delta, release.k)


def _check_truncation_is_negligible(report, num_coordinates: int) -> None:
  """The float64 sampler stops at 12.2 sigma; the delta it adds must be negligible.

  An output region the truncated sampler never reaches has probability at most the number of
  truncated coordinates times normal_truncation_mass() under the ideal Gaussian, which adds at
  most (1 + e^epsilon) times that to delta. We require it below 1e-6 of the stated delta:
  - the per-record claim sees one record's latents (`num_coordinates`, d k): the other records'
    latents are the same independent mechanism under both neighbours;
  - an amplified central claim of the shuffled release (and the total, which may compose it)
    sees the whole multiset, so every record's latents count (n d k), at the central epsilon
    and its delta (found by an independent review; never binding at the sizes used: about
    4e-23 of delta at n = 36,169 and 24 latent coordinates). A central epsilon equal to the
    per-record one claims no amplification: the multiset is then post-processing of the
    per-record release.
  """
  claims = [("per-record epsilon", report.per_record_epsilon, report.delta, num_coordinates)]
  central = getattr(report, "central_epsilon", None)
  if central is not None and central < _per_record_epsilon_at(report, report.shuffle_delta):
    everyone = num_coordinates * report.num_records
    claims.append(("central epsilon", central, report.shuffle_delta, everyone))
    claims.append(("epsilon", report.epsilon, report.delta, everyone))
  for name, epsilon, delta, coordinates in claims:
    extra = (1.0 + np.exp(min(epsilon, 700.0))) * coordinates * randomness.normal_truncation_mass()
    if extra > 1e-6 * delta:
      raise ValueError(
        f"the release's {name} {epsilon:.4g} at delta={delta:g} is beyond the float64 noise "
        f"sampler: its truncation at {randomness.FLOAT64_NORMAL_MAX} sigma could add up to "
        f"{extra:.2g} to delta (at most 1e-6 delta is allowed), and such an epsilon protects "
        "nothing; release at a smaller epsilon"
      )
