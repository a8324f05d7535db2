"""Per-example losses and gradient norms: what every way of clipping shares.

`lipdp.training.dpsgd` (per-example gradients by vmap) and `lipdp.training.ghost_clipping`
(norms from each layer's inputs and output gradients) both clip to norm C; the clipped gradient's
exact l2 norm must stay at most C after float rounding, or DP-SGD's sensitivity is not the one
accounted. The sums of squares here are blocked so that their rounding error has a bound
(Higham 2002) whatever order XLA adds in, and `per_example_norms` returns the margin that bound
needs. Both clipping modules import this one, and neither imports the other's internals.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

# loss_fn(params, model_state, records, rng, mutable) -> (per-example losses (b,), aux, new
# model state): aux maps names to per-example (b,) arrays; new model state is {} unless
# `mutable` names collections to update.
LossFn = Callable[..., tuple[jax.Array, dict, Any]]

NORM_BLOCK = 1024


def per_example_norms(grads: Any) -> tuple[jax.Array, float]:
  """l2 norms of per-example gradients (leading axis) and the clipping margin they need.

  The squared norm is summed in two levels: blocks of at most NORM_BLOCK squares, then the
  block sums. Whatever order XLA adds each level in, a sum of m non-negative floats has relative
  error at most gamma_m = m u / (1 - m u) (u the unit roundoff; Higham 2002, Lemma 3.1 and
  eq. 4.4), so the computed squared norm is within gamma_{B + M} of the exact one (B the block
  length, M the number of block sums, squaring adding u), and its square root within about
  gamma_{B+M} / 2 + u. Scaling by min(1, C' / norm) then rounds the scale and each coordinate
  (u each). Hence with

      m = gamma_{B + M + 1} + 8 u       (twice the first-order total, for safety),

  the clipped gradient's exact norm is at most C' (1 + u)^2 / (1 - gamma/2 - u) <= C when
  C' = C (1 - m). For a million parameters in float32, m is about 1e-4: a negligible change.

  Returns:
    (norms of shape (batch,), m), m a Python float fixed by the shapes and dtypes.
  """
  squares, num_blocks = blocked_sum_of_squares(grads)
  unit = max(float(jnp.finfo(leaf.dtype).eps) / 2 for leaf in jax.tree_util.tree_leaves(grads))
  norms = jnp.sqrt(squares)
  terms = NORM_BLOCK + num_blocks + 1
  margin = terms * unit / (1.0 - terms * unit) + 8.0 * unit
  return norms, margin


def blocked_sum_of_squares(tree: Any) -> tuple[jax.Array, int]:
  """Per-row sums of squares of the leaves of `tree` (each (batch, ...)), and the block count.

  Summed in two levels, blocks of `NORM_BLOCK` squares, then the block sums, so that the
  relative error is at most gamma_{NORM_BLOCK + blocks + 1} whatever order XLA adds in (see
  `per_example_norms`; `lipdp.training.ghost_clipping` uses the same bound).
  """
  leaves = jax.tree_util.tree_leaves(tree)
  batch = leaves[0].shape[0]
  partial_sums, num_blocks = [], 0
  for leaf in leaves:
    flat = leaf.reshape(batch, -1)
    size = flat.shape[1]
    blocks = -(-size // NORM_BLOCK)
    flat = jnp.pad(flat, ((0, 0), (0, blocks * NORM_BLOCK - size)))
    partial_sums.append(jnp.sum(jnp.square(flat.reshape(batch, blocks, NORM_BLOCK)), axis=-1))
    num_blocks += blocks
  return jnp.sum(jnp.concatenate(partial_sums, axis=1), axis=1), num_blocks


def row_keys(rng: jax.Array, rows: int) -> jax.Array:
  """The model-noise keys of a microbatch's rows: row i's is `jax.random.split(rng, rows)[i]`,
  or `rng[i]` when `rng` already holds one key per row (a device's share of a microbatch split
  across a mesh, `lipdp.training.steps.mesh_clipped_sum`: the same keys as on one device)."""
  # A typed key is a scalar; a raw (legacy uint32) key carries its data on a last axis.
  single = () if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng.shape[-1:]
  if rng.shape == single:
    return jax.random.split(rng, rows)
  if rng.shape != (rows,) + single:
    raise ValueError(f"expected one key or {rows} keys, got keys of shape {rng.shape}")
  return rng


def record_keys(rng: jax.Array, record_ids: jax.Array) -> jax.Array:
  """One model-noise key per row, by record index: fold_in(rng, record_ids[i]), so a record's
  draws do not depend on where the batch placed it (records laid out by index, on the integer
  grid: `lipdp.training.fixed_point`)."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, record_ids)


def record_loss(loss_fn: LossFn) -> Callable[..., jax.Array]:
  """`f(params, model_state, record, rng) -> loss` of one record (no batch axis), for
  per-example gradients by vmap; the model state is read, never written."""

  def one(params, model_state, record, rng):
    losses, _, _ = loss_fn(params, model_state, record[None], rng, False)
    return losses[0]

  return one


def gradient_norms(
  loss_fn: LossFn,
  params: Any,
  model_state: Any,
  records: Any,
  rng: jax.Array,
  chunk_size: int = 512,
) -> np.ndarray:
  """Exact l2 norms of each record's gradient of `loss_fn` (float64 array of len(records)).

  A diagnostic, not a step: per-example gradients by vmap, `chunk_size` records at a time
  (record i of a chunk uses key i of `jax.random.split`, as the float vmap clipping path does;
  the fixed-point path keys each record by its index, so its draws of the model's noise, and
  the norms it clips, differ by those draws). The norms are of the kind DP-SGD clips: their spread
  across groups of records is clipping's disparate impact (at clip norm C every record pulls with
  force min(|g|, C), so a group whose gradients are larger is shrunk more; Bagdasaryan et al. 2019).
  They are statistics of the records and must stay private.
  """
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  grads_of = jax.jit(jax.vmap(jax.grad(record_loss(loss_fn)), in_axes=(None, None, 0, 0)))
  records = np.asarray(records)
  norms = []
  for start in range(0, len(records), chunk_size):
    chunk = jnp.asarray(records[start : start + chunk_size])
    keys = jax.random.split(jax.random.fold_in(rng, start), len(chunk))
    squares, _ = blocked_sum_of_squares(grads_of(params, model_state, chunk, keys))
    norms.append(np.sqrt(np.asarray(squares, np.float64)))
  return np.concatenate(norms) if norms else np.zeros((0,), np.float64)


def centred_unclipped(
  norms, finite, mask, clip_norm, centre=0.5, groups=None, num_groups=None
) -> jax.Array:
  """sum_i (1[|g_i| <= C_i] - centre) over the real rows with a finite gradient: adaptive
  clipping's count before its noise (`clip_norm` C_i a scalar, or one per row). Each row adds
  -centre, 1 - centre, or 0 (padding, and a non-finite gradient, which also adds nothing to the
  sum), so one record moves it by at most max(centre, 1 - centre) from an absent record's 0
  (`lipdp.training.dpsgd`, adaptive clipping). With `groups` (rows,), each row's group index,
  the `num_groups` per-group sums instead (a scatter-add, not a matrix product, so that no
  platform rounds it to a lower matmul precision): each row still moves a single one of them."""
  terms = jnp.where(finite, (norms <= clip_norm) - centre, 0.0) * mask
  if groups is None:
    return jnp.sum(terms)
  return jax.ops.segment_sum(terms, groups, num_segments=num_groups)


def row_clip_norms(clip_norm, groups=None) -> tuple:
  """(the clip norm of each row, the number of groups): `clip_norm` itself (a scalar) and None,
  or with `groups` (rows,), each row's group's entry of `clip_norm` (G,), gathered exactly,
  and G (per-group adaptive clipping)."""
  if groups is None:
    return clip_norm, None
  if jnp.ndim(clip_norm) != 1:
    raise ValueError(
      f"per-group clipping needs one clip norm per group (a vector), got shape "
      f"{jnp.shape(clip_norm)}"
    )
  return jnp.take(clip_norm, groups), jnp.shape(clip_norm)[0]


def clipping_stats(
  losses, norms, finite, mask, clip_norm, count_centre, groups=None, num_groups=None
):
  """What both clipping paths report of a microbatch, as sums over its real rows: `loss_sum`
  (finite losses), `clipped_fraction_sum` (rows whose norm exceeded their C), `count`, and
  `centred_unclipped_sum`, adaptive clipping's count before its noise (`centred_unclipped`).
  `clip_norm` is per row (`row_clip_norms`). Private: only the count is released, with noise."""
  return {
    "loss_sum": jnp.sum(jnp.where(finite, losses, 0.0) * mask),
    "clipped_fraction_sum": jnp.sum((norms > clip_norm) * mask),
    "count": jnp.sum(mask),
    "centred_unclipped_sum": centred_unclipped(
      norms, finite, mask, clip_norm, count_centre, groups, num_groups
    ),
  }
