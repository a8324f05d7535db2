"""Record likelihoods for the VAE decoder, block by block, and how records are drawn from them.

A record is a flat vector made of blocks (see `lipdp.data.domain.Block`): an image block with
values in [0, 1], numeric columns rescaled to [0, 1], and one-hot categorical blocks. The decoder
emits logits laid out block by block (`output_sizes`); each block has its own likelihood:

- image: Bernoulli (continuous cross-entropy against values in [0, 1], as in Kingma and Welling
  2014's MNIST experiments) or Gaussian with a fixed unit variance on sigmoid(logit); one logit
  per pixel;
- numeric, `numeric_bins = B > 0` ("binned"): a piecewise-constant density on [0, 1], B
  equal-width bins with softmax probabilities p and uniform mass inside each bin, so
  -log p(x) = -log p_b(x) - log B. The bins are fixed by B alone (the declared bounds map to
  [0, 1]), never by the data; unlike a Gaussian this density can put a spike at one value and
  a long tail elsewhere, as real columns do (a balance, a count of days);
- numeric, edges e_0 = 0 < e_1 < ... < e_B = 1 ("declared": the column's declared bins,
  `lipdp.data.bins`): the same density on bins of widths w_b = e_(b+1) - e_b, so
  -log p(x) = -log p_b(x) + log w_b. Equal-width bins spread a value that a column holds in
  bulk over a whole bin (bank-marketing's pdays = -1 came back in 1.3% of released records
  against 82% of real ones, docs/results.md); a declared edge can isolate it;
- numeric, `numeric_bins = 0` ("gaussian"): a Gaussian with the fixed scale NUMERIC_SCALE on
  sigmoid(logit); one logit;
- categorical: softmax cross-entropy against the (scaled) one-hot block; one logit per category.

A synthetic record is post-processing of the decoder's output, in one of two ways and their
variants (`DECODINGS`; "auto" is "sample" for records without an image block and "mean" for
images): "sample" draws it from the likelihood (a category from the block's softmax, a numeric
value from its bin probabilities and uniformly inside the bin, or from its Gaussian clipped to
[0, 1]); "mean" takes the likelihood's mean (sigmoid(logit), the expected bin centre) and the
projection onto the domain then keeps each categorical block's most probable category. Taking
the mode drops minority categories and shrinks numeric columns towards their centre; drawing
keeps the marginals the decoder learnt. An image's label is the exception that "auto" makes:
drawn from a softmax that is not sharp, the label disagrees with the pixels drawn beside it
(train-on-synthetic accuracy on MNIST fell from 0.64 to 0.31 in the DP-SGD recipe study,
docs/results.md), so images keep their most probable class. "sample_modal_label" applies the
same exception to tables: every column drawn, the label its most probable class given the
latent (`with_modal_label`). Image pixels are their mean intensity in all of these but
"sample_pixels", which draws each pixel from its Bernoulli likelihood (a binary image,
`sampled_record(draw_pixels=True)`) and keeps the label's most probable class; on MNIST's best
end-to-end runs it left logistic train-on-synthetic accuracy where the mean is (0.844 against
0.847), so it is not the default (docs/results.md, "Drawn pixels").

Blocks are static (Python tuples), so these functions trace once under `jax.jit`.
"""

from typing import Mapping, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

IMAGE_LIKELIHOODS = ("bernoulli", "gaussian")
DECODINGS = ("auto", "sample", "mean", "sample_modal_label", "sample_pixels")
NUMERIC_LIKELIHOODS = ("auto", "binned", "gaussian", "declared")
# One bin count for every numeric column, or one entry per block (`bins_per_block`): a count
# of equal-width bins (0: a Gaussian) or a tuple of bin edges in [0, 1].
BlockBins = Union[int, Tuple[float, ...]]
NumericBins = Union[int, Tuple[BlockBins, ...]]

# Fixed observation scale for Gaussian blocks on [0, 1]; 0.1 keeps the reconstruction term of a
# numeric column comparable in size to a Bernoulli pixel.
NUMERIC_SCALE = 0.1


def _check_image_likelihood(image_likelihood: str) -> None:
  if image_likelihood not in IMAGE_LIKELIHOODS:
    raise ValueError(
      f"image_likelihood must be one of {IMAGE_LIKELIHOODS}, got {image_likelihood!r}"
    )


def _check_numeric_bins(numeric_bins: int) -> int:
  if int(numeric_bins) != numeric_bins or numeric_bins < 0 or numeric_bins == 1:
    raise ValueError(f"numeric_bins must be 0 (Gaussian) or an integer >= 2, got {numeric_bins}")
  return int(numeric_bins)


def _check_block_bins(entry) -> BlockBins:
  """One block's entry: a count (`_check_numeric_bins`) or edges 0 = e_0 < ... < e_B = 1
  with B >= 2 (a tuple of Python floats, so a model holding it stays hashable)."""
  if not isinstance(entry, (tuple, list, np.ndarray)):
    return _check_numeric_bins(entry)
  edges = tuple(float(e) for e in entry)
  if (
    len(edges) < 3
    or edges[0] != 0.0
    or edges[-1] != 1.0
    or not all(a < b for a, b in zip(edges, edges[1:]))
  ):
    raise ValueError(
      f"bin edges must increase strictly from 0 to 1 and make at least two bins, got {edges}"
    )
  return edges


def _count(entry: BlockBins) -> int:
  """The number of bins of a checked entry (0 for a Gaussian)."""
  return len(entry) - 1 if isinstance(entry, tuple) else entry


def bins_per_block(blocks: Sequence, numeric_bins: NumericBins = 0) -> Tuple[BlockBins, ...]:
  """Each block's number of bins: B > 0 for a binned numeric column, 0 for a Gaussian one and
  for every other kind of block.

  `numeric_bins` is one B for every numeric column, or a tuple with one entry per block (what
  `numeric_bins_for` returns: a likelihood chosen per column), each a count B or a tuple of
  bin edges in [0, 1] (then returned as a tuple of floats).
  """
  if isinstance(numeric_bins, (tuple, list)):
    if len(numeric_bins) != len(blocks):
      raise ValueError(
        f"numeric_bins has {len(numeric_bins)} entries for {len(blocks)} blocks; give one per block"
      )
    checked = tuple(_check_block_bins(b) for b in numeric_bins)
    for block, b in zip(blocks, checked):
      if b and block.kind != "numeric":
        raise ValueError(f"block {block.name!r} is {block.kind}, not numeric: it has no bins")
    return checked
  b = _check_numeric_bins(numeric_bins)
  return tuple(b if block.kind == "numeric" else 0 for block in blocks)


def numeric_bins_for(domain, choice: str, numeric_bins: int) -> Tuple[BlockBins, ...]:
  """The per-block bins of `NUMERIC_LIKELIHOODS[choice]` in `domain` (its `blocks`, and for a
  table its `columns`; a domain without columns has no numeric block to bin).

  "binned": `numeric_bins` bins for every numeric column; "gaussian": a Gaussian for every one;
  "auto": bins for the columns declared `integer` (counts, days, amounts in whole units: the
  columns whose values pile up on a few points, such as bank-marketing's pdays at -1), a
  Gaussian for the others (measurements on a continuous scale, such as breast cancer's);
  "declared": the edges a column declares (`NumericColumn.bins`, e.g. a schema's "bins"
  entry) for every column that declares them, "auto" for the others. The choice reads only
  the declared schema, never the records. `numeric_bins` = 0 keeps every numeric column
  Gaussian whatever the choice (the older spelling of "gaussian").
  """
  if choice not in NUMERIC_LIKELIHOODS:
    raise ValueError(f"numeric likelihood must be one of {NUMERIC_LIKELIHOODS}, got {choice!r}")
  numeric_bins = _check_numeric_bins(numeric_bins)
  columns = {column.name: column for column in getattr(domain, "columns", ())}
  per_block = []
  for block in domain.blocks:
    column = columns.get(block.name)
    declares = block.kind == "numeric" and getattr(column, "bins", None) is not None
    if numeric_bins and choice == "declared" and declares:
      per_block.append(_declared_edges(column))
      continue
    binned = block.kind == "numeric" and (
      choice == "binned"
      or (choice in ("auto", "declared") and bool(getattr(column, "integer", False)))
    )
    per_block.append(numeric_bins if binned else 0)
  return tuple(per_block)


def _declared_edges(column) -> Tuple[float, ...]:
  """A column's declared bins as the edges entry of `bins_per_block` (two bins or more)."""
  edges = column.unit_edges()
  if len(edges) < 3:
    raise ValueError(
      f"column {column.name!r} declares one bin: a likelihood needs two or more; declare "
      "more bins or use another numeric likelihood"
    )
  return tuple(float(e) for e in edges)


def output_sizes(blocks: Sequence, numeric_bins: NumericBins = 0) -> tuple:
  """The number of decoder outputs of each block (numeric: B bins, or 1 logit)."""
  return _sizes(blocks, bins_per_block(blocks, numeric_bins))


def _sizes(blocks: Sequence, bins: Tuple[int, ...]) -> tuple:
  """`output_sizes` for bins already checked by `bins_per_block`."""
  return tuple(
    (_count(b) or 1) if block.kind == "numeric" else block.stop - block.start
    for block, b in zip(blocks, bins)
  )


def output_dim(blocks: Sequence, numeric_bins: NumericBins = 0) -> int:
  """The decoder's output dimension for these blocks."""
  return sum(output_sizes(blocks, numeric_bins))


def _split(logits: jax.Array, blocks: Sequence, numeric_bins: NumericBins):
  """(block, its bins, its logits) triples, checking the decoder's output layout."""
  bins = bins_per_block(blocks, numeric_bins)
  sizes = _sizes(blocks, bins)
  if logits.shape[-1] != sum(sizes):
    raise ValueError(
      f"decoder outputs {logits.shape[-1]} values per record; these blocks need {sum(sizes)} "
      f"(numeric_bins={numeric_bins})"
    )
  triples, start = [], 0
  for block, b, size in zip(blocks, bins, sizes):
    triples.append((block, b, logits[..., start : start + size]))
    start += size
  return triples


def _bin_index(x: jax.Array, numeric_bins: BlockBins) -> jax.Array:
  """The bin of each value of [0, 1] (the top edge belongs to the last bin).

  Declared edges compare in float32, the records' precision, as `lipdp.data.bins.bin_of` does:
  a value declared exactly at an edge is encoded as the float32 of the same quotient as the
  edge, so it lands in the upper bin.
  """
  if isinstance(numeric_bins, tuple):
    inner = _edges32(numeric_bins)[1:-1]
    return jnp.searchsorted(inner, x.astype(jnp.float32), side="right").astype(jnp.int32)
  return jnp.clip(jnp.floor(x * numeric_bins), 0, numeric_bins - 1).astype(jnp.int32)


def _edges32(edges: Tuple[float, ...]) -> jax.Array:
  """Declared edges in float32, the records' precision (each the float32 of its float64)."""
  return jnp.asarray(np.asarray(edges, np.float64).astype(np.float32))


def _log_widths(edges: Tuple[float, ...]) -> jax.Array:
  return jnp.asarray(np.log(np.diff(np.asarray(edges, np.float64))), jnp.float32)


def negative_log_likelihood(
  logits: jax.Array,
  records: jax.Array,
  blocks: Sequence,
  image_likelihood: str = "bernoulli",
  block_weights: Optional[Mapping[str, float]] = None,
  numeric_bins: NumericBins = 0,
) -> jax.Array:
  """Per-record negative log-likelihood, summed over blocks: shape (batch,).

  Args:
    logits: decoder outputs, shape (batch, output_dim(blocks, numeric_bins)).
    records: targets in the domain, shape (batch, dim).
    blocks: the domain's blocks, each with `kind`, `start`, `stop`.
    image_likelihood: 'bernoulli' or 'gaussian' for image blocks.
    block_weights: optional weight per block name (default 1): the sum is then
      sum_b w_b * nll_b. A heavily weighted label term makes the decoder keep the label
      consistent with the rest of the record, which a 784-pixel image term would otherwise
      drown (a training choice only: it changes no privacy accounting).
    numeric_bins: B > 0 for the binned density of numeric columns, 0 for the Gaussian; one
      value for every numeric column, or one per block (`bins_per_block`).
  """
  _check_image_likelihood(image_likelihood)
  weights = dict(block_weights or {})
  unknown = set(weights) - {block.name for block in blocks}
  if unknown:
    raise ValueError(f"block_weights names no block of the domain: {sorted(unknown)}")
  if logits.shape[:-1] != records.shape[:-1]:
    raise ValueError(f"logits {logits.shape} and records {records.shape} differ in batch shape")
  total = jnp.zeros(records.shape[:-1], dtype=logits.dtype)
  for block, bins, lg in _split(logits, blocks, numeric_bins):
    x = records[..., block.start : block.stop]
    if block.kind == "image" and image_likelihood == "bernoulli":
      # -x log p - (1 - x) log(1 - p), with log p = -softplus(-l), log(1 - p) = -softplus(l).
      nll = jnp.sum(x * jax.nn.softplus(-lg) + (1.0 - x) * jax.nn.softplus(lg), axis=-1)
    elif block.kind == "image":
      nll = 0.5 * jnp.sum(jnp.square(jax.nn.sigmoid(lg) - x), axis=-1)
    elif block.kind == "numeric" and bins:
      # Density p_b / w_b on bin b: -log p(x) = -log p_b + log w_b (w_b = 1 / B if equal).
      log_p = jax.nn.log_softmax(lg, axis=-1)
      b = _bin_index(x[..., 0], bins)
      nll = -jnp.take_along_axis(log_p, b[..., None], axis=-1)[..., 0]
      if isinstance(bins, tuple):
        nll = nll + _log_widths(bins)[b]
      else:
        nll = nll - jnp.log(bins)
    elif block.kind == "numeric":
      nll = 0.5 * jnp.sum(jnp.square((jax.nn.sigmoid(lg) - x) / NUMERIC_SCALE), axis=-1)
    elif block.kind == "categorical":
      # The block is scale * one-hot (a declared weight); the likelihood is of the category.
      nll = -jnp.sum((x / block.scale) * jax.nn.log_softmax(lg, axis=-1), axis=-1)
    else:
      raise ValueError(f"unknown block kind {block.kind!r} in block {block.name!r}")
    total = total + float(weights.get(block.name, 1.0)) * nll
  return total


def _bin_centres(numeric_bins: BlockBins) -> jax.Array:
  if isinstance(numeric_bins, tuple):
    edges = np.asarray(numeric_bins, np.float64)
    return jnp.asarray((edges[:-1] + edges[1:]) / 2, jnp.float32)
  return (jnp.arange(numeric_bins) + 0.5) / numeric_bins


def decoded_mean(logits: jax.Array, blocks: Sequence, numeric_bins: NumericBins = 0) -> jax.Array:
  """Maps decoder logits to a point of record space: each block's likelihood mean.

  Image and Gaussian numeric blocks become sigmoid(logit) in [0, 1]; binned numeric blocks the
  expected bin centre; categorical blocks their softmax probabilities times the block's scale
  (the domain's `project` turns them into scaled one-hots of the most probable category).
  """
  parts = []
  for block, bins, lg in _split(logits, blocks, numeric_bins):
    if block.kind == "image" or (block.kind == "numeric" and not bins):
      parts.append(jax.nn.sigmoid(lg))
    elif block.kind == "numeric":
      parts.append(jax.nn.softmax(lg, axis=-1) @ _bin_centres(bins)[:, None])
    elif block.kind == "categorical":
      parts.append(block.scale * jax.nn.softmax(lg, axis=-1))
    else:
      raise ValueError(f"unknown block kind {block.kind!r} in block {block.name!r}")
  return jnp.concatenate(parts, axis=-1)


def resolve_decoding(decoding: str, blocks: Sequence) -> str:
  """ "auto" -> "mean" for records with an image block, else "sample"; others unchanged."""
  if decoding not in DECODINGS:
    raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
  if decoding != "auto":
    return decoding
  return "mean" if any(block.kind == "image" for block in blocks) else "sample"


def with_modal_label(
  drawn: jax.Array, mean: jax.Array, blocks: Sequence, label: Optional[str]
) -> jax.Array:
  """`drawn` (a `sampled_record`) with the label block taken from `mean` (a `decoded_mean`,
  whose projection keeps the most probable class): decoding "sample_modal_label"."""
  found = [b for b in blocks if b.name == label and b.kind == "categorical"]
  if label is None or len(found) != 1:
    raise ValueError(
      f"decoding 'sample_modal_label' needs a categorical label block, got {label!r}"
    )
  block = found[0]
  return drawn.at[..., block.start : block.stop].set(mean[..., block.start : block.stop])


def num_uniforms(blocks: Sequence, draw_pixels: bool = False) -> int:
  """How many U(0, 1) values `sampled_record` reads per record (two per numeric column: which
  bin, or the Gaussian's noise by inversion, and where in the bin; one per categorical block;
  with `draw_pixels`, one per pixel of an image block)."""
  per_block = {"numeric": 2, "categorical": 1}
  return sum(
    block.stop - block.start
    if block.kind == "image" and draw_pixels
    else per_block.get(block.kind, 0)
    for block in blocks
  )


def _draw_index(probabilities: jax.Array, u: jax.Array) -> jax.Array:
  """Inverse-CDF draw of an index from each row of `probabilities` with its uniform `u`."""
  cdf = jnp.cumsum(probabilities, axis=-1)
  return jnp.minimum(jnp.sum(cdf < u[..., None] * cdf[..., -1:], axis=-1), cdf.shape[-1] - 1)


def sampled_record(
  logits: jax.Array,
  blocks: Sequence,
  uniforms: jax.Array,
  numeric_bins: NumericBins = 0,
  draw_pixels: bool = False,
) -> jax.Array:
  """A record drawn from the decoder's likelihood, given U(0, 1) values (batch, num_uniforms).

  Categorical blocks: the category drawn from softmax(logits), as a scaled one-hot. Binned
  numeric: bin b drawn from its probabilities, then (b + v) / B with v uniform, or
  e_b + v (e_(b+1) - e_b) for declared edges. Gaussian
  numeric: clip(sigmoid(l) + NUMERIC_SCALE * Phi^-1(u), 0, 1). Images: the mean intensity, or
  with `draw_pixels` each pixel drawn from its Bernoulli likelihood, 1 where u < sigmoid(l)
  (a draw of the Bernoulli image likelihood; the uniforms are read block by block).
  Post-processing of the decoder output: any randomness will do for privacy; the caller passes
  uniforms from the release's noise generator so a seeded release stays reproducible.
  """
  needed = num_uniforms(blocks, draw_pixels)
  if uniforms.shape[-1] != needed:
    raise ValueError(f"need {needed} uniforms per record, got {uniforms.shape[-1]}")
  parts, used = [], 0
  for block, bins, lg in _split(logits, blocks, numeric_bins):
    if block.kind == "image" and draw_pixels:
      width = block.stop - block.start
      parts.append((uniforms[..., used : used + width] < jax.nn.sigmoid(lg)).astype(lg.dtype))
      used += width
    elif block.kind == "image":
      parts.append(jax.nn.sigmoid(lg))
    elif block.kind == "numeric":
      u, v = uniforms[..., used], uniforms[..., used + 1]
      used += 2
      if isinstance(bins, tuple):
        b = _draw_index(jax.nn.softmax(lg, axis=-1), u)
        e = _edges32(bins)
        low, high = e[:-1], e[1:]
        # Uniform in [e_b, e_(b+1)); kept below the upper edge in float32, where a value at
        # the edge would belong to the next bin (the last bin holds 1).
        drawn = low[b] + v * (high[b] - low[b])
        below = jnp.minimum(drawn, jnp.nextafter(high[b], low[b]))
        value = jnp.where(b == len(bins) - 2, drawn, below)
      elif bins:
        b = _draw_index(jax.nn.softmax(lg, axis=-1), u)
        value = (b.astype(lg.dtype) + v) / bins
      else:
        eps = jnp.finfo(lg.dtype).eps
        normal = jax.scipy.special.ndtri(jnp.clip(u, eps, 1.0 - eps))
        value = jax.nn.sigmoid(lg[..., 0]) + NUMERIC_SCALE * normal
      parts.append(jnp.clip(value, 0.0, 1.0)[..., None])
    elif block.kind == "categorical":
      index = _draw_index(jax.nn.softmax(lg, axis=-1), uniforms[..., used])
      used += 1
      parts.append(block.scale * jax.nn.one_hot(index, lg.shape[-1], dtype=lg.dtype))
    else:
      raise ValueError(f"unknown block kind {block.kind!r} in block {block.name!r}")
  return jnp.concatenate(parts, axis=-1)
