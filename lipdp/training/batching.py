"""Batch selection on the host, in NumPy: which records each training step reads.

As in jax_privacy, sampling is host-side and exactly what the accountant assumes; JAX only ever
sees indices. Every function here is a pure function of (seed, step), so a resumed run, or each
host of a multi-host run, selects the same batches without communicating.

* Plain training: `shuffled_batch_indices`, epoch-wise random permutations (without replacement
  within an epoch; the last `n mod B` records of an epoch's permutation are skipped).
* DP-SGD: `poisson_batch_indices`, Poisson sampling (each record independently with probability
  q), which is what `lipdp.privacy.DPSGDEvent` accounts for. The batch size is random and
  unbounded: `pad_to_chunks` lays it out as whole microbatches of a fixed size, in a capacity
  rounded up to a power of two so that XLA compiles a handful of shapes, and never drops an
  index.
* `Prefetcher` runs the host-side work of the next steps (indices, float64 DP noise) on a
  background thread while the device computes the current one.
"""

import concurrent.futures
import math
from typing import Any, Callable, NamedTuple

import numpy as np

from lipdp import randomness

# Stream numbers of `randomness.numpy_rng(seed, step, stream)`; fixed forever, since they decide
# which batches and noise a seed produces (changing them would change every seeded run).
SHUFFLE_STREAM = 0
POISSON_STREAM = 1
NOISE_STREAM = 2


def shuffled_batch_indices(num_records: int, batch_size: int, seed: int, step: int) -> np.ndarray:
  """Indices of the plain-mode batch of `step`: epoch-wise permutations, a function of
  (seed, step)."""
  per_epoch = num_records // batch_size
  epoch, slot = divmod(step, per_epoch)
  order = randomness.numpy_rng(seed, epoch, SHUFFLE_STREAM).permutation(num_records)
  return order[slot * batch_size : (slot + 1) * batch_size]


class EpochShuffler:
  """`shuffled_batch_indices` with the current epoch's permutation cached (one per epoch)."""

  def __init__(self, num_records: int, batch_size: int, seed: int):
    if not 1 <= batch_size <= num_records:
      raise ValueError(f"batch_size must be in [1, {num_records}], got {batch_size}")
    self.num_records, self.batch_size, self.seed = num_records, batch_size, seed
    self._cached = (None, None)  # (epoch, permutation), replaced as one tuple (thread-safe)

  def __call__(self, step: int) -> np.ndarray:
    epoch, slot = divmod(step, self.num_records // self.batch_size)
    cached_epoch, order = self._cached
    if epoch != cached_epoch:
      order = randomness.numpy_rng(self.seed, epoch, SHUFFLE_STREAM).permutation(self.num_records)
      self._cached = (epoch, order)
    return order[slot * self.batch_size : (slot + 1) * self.batch_size]


def poisson_batch_indices(
  num_records: int, sampling_rate: float, seed: int, step: int
) -> np.ndarray:
  """Indices of the records in step `step`'s Poisson batch (each included w.p. q, independently).

  One float64 uniform per record, compared with q: the inclusion probability is q to within
  2^-53, the batch is never truncated, and its size is Binomial(n, q).
  """
  rng = randomness.numpy_rng(seed, step, POISSON_STREAM)
  return np.flatnonzero(rng.random(num_records) < sampling_rate)


class ChunkedBatch(NamedTuple):
  """A variable-size batch laid out as microbatches.

  Attributes:
    indices: (capacity, chunk_size) int32; row c holds microbatch c. Slots past `count` hold 0
      (a valid index whose contribution the step masks out).
    count: the number of real indices (the batch size).
  """

  indices: np.ndarray
  count: int

  @property
  def num_chunks(self) -> int:
    """Microbatches that hold at least one real index (the step loops over these only)."""
    return -(-self.count // self.indices.shape[1])


def chunk_capacity(count: int, chunk_size: int, minimum: int = 1) -> int:
  """Microbatch slots for a batch of `count`: a power of two >= max(needed, minimum)."""
  needed = max(-(-count // chunk_size), minimum, 1)
  return 1 << (needed - 1).bit_length()


def pad_to_chunks(indices: np.ndarray, chunk_size: int, minimum_chunks: int = 1) -> ChunkedBatch:
  """Lays `indices` out as whole microbatches of `chunk_size` (see `ChunkedBatch`).

  Every index is kept (nothing is truncated, whatever the batch size); the capacity only sets
  how many compiled shapes the step needs: about log2 of the range of batch sizes seen.
  """
  count = int(indices.shape[0])
  capacity = chunk_capacity(count, chunk_size, minimum_chunks)
  flat = np.zeros(capacity * chunk_size, np.int32)
  flat[:count] = indices
  return ChunkedBatch(flat.reshape(capacity, chunk_size), count)


class PlacedBatch(NamedTuple):
  """A Poisson batch laid out with each record at a place fixed by its index
  (`place_by_index`).

  Attributes:
    indices: (capacity, chunk_size) int32; record j sits in column j mod chunk_size, in the row
      given by its rank among the batch's records of that column; empty slots hold -1.
    count: the number of records (the batch size).
    num_chunks: the rows (microbatches) that hold at least one record.
  """

  indices: np.ndarray
  count: int
  num_chunks: int


def place_by_index(indices: np.ndarray, chunk_size: int, minimum_chunks: int = 1) -> PlacedBatch:
  """Lays `indices` out so that record j always sits at place j mod `chunk_size` of its
  microbatch, whichever other records the batch holds.

  Why (`lipdp.training.fixed_point`): a record's computed gradient may depend on its place in a
  microbatch (XLA need not compute every row of a vmapped computation by the same instructions),
  and the privacy argument compares the batch with and without one record; packed in order, the
  records after it would change places. Here no record moves: a record only ever changes
  microbatch (row), and every microbatch is the same computation. Costs padding: the rows
  needed are the largest column's count, not count / chunk_size. Nothing is dropped.
  """
  indices = np.asarray(indices, np.int64)
  count = int(indices.shape[0])
  if count != len(np.unique(indices)):
    raise ValueError("place_by_index needs distinct indices (a Poisson batch has no repeats)")
  places = indices % chunk_size
  order = np.lexsort((indices, places))  # by place, then by index
  sorted_places = places[order]
  first = np.searchsorted(sorted_places, sorted_places, side="left")
  ranks = np.empty(count, np.int64)
  ranks[order] = np.arange(count) - first
  num_chunks = int(ranks.max()) + 1 if count else 0
  capacity = chunk_capacity(num_chunks * chunk_size, chunk_size, minimum_chunks)
  laid_out = np.full((capacity, chunk_size), -1, np.int32)
  laid_out[ranks, places] = indices
  return PlacedBatch(laid_out, count, num_chunks)


def typical_placed_chunks(num_records: int, sampling_rate: float, chunk_size: int) -> int:
  """Rows that hold a `place_by_index` layout's largest column in most steps: the mean count of
  a column plus 4 standard deviations plus 2 (a minimum capacity, so common batches share one
  compiled shape)."""
  per_column = -(-num_records // chunk_size)
  mean = sampling_rate * per_column
  return max(1, math.ceil(mean + 4 * math.sqrt(mean * (1 - sampling_rate)) + 2))


def placed_chunks_cap(num_records: int, sampling_rate: float, chunk_size: int) -> int:
  """The most microbatches a `place_by_index` layout may take where their count enters a
  rounding bound (bounded float sums, `lipdp.training.fixed_point`): a column's mean count plus
  10 standard deviations plus 10, at most a column's size. A function of the sampled indices
  alone; a layout needing more adds noise only (`lipdp.training.steps.DPSGDStep`)."""
  per_column = -(-num_records // chunk_size)
  mean = sampling_rate * per_column
  return min(per_column, math.ceil(mean + 10 * math.sqrt(mean * (1 - sampling_rate)) + 10))


# Records expected in each place of a `place_by_index` layout at the microbatch
# `placed_chunk_size` picks (on digits 16 per place, a microbatch of 8, was the fastest of
# 128, 32, 16 and 8: docs/performance.md).
PLACED_RECORDS_PER_PLACE = 16
# The smallest microbatch `placed_chunk_size` picks (below it a step's loop overhead dominates).
MIN_PLACED_CHUNK = 8


def placed_chunk_size(num_records: int, sampling_rate: float, largest: int) -> int:
  """The microbatch of a `place_by_index` layout when none is given: the largest power of two
  at most q n / 16 (about 16 records expected per place), within [8, `largest`]. A layout
  needs as many microbatches as its fullest place holds records, about mean + sqrt(2 mean
  ln(places)), so a microbatch much larger than a typical batch's share of it is mostly
  padding, and a much smaller one pays the loop's overhead per microbatch: for digits'
  ./run.sh (q n = 129) 1,000 bounded DP-SGD steps took 6.5 times the packed float32 steps'
  time at 128, 1.9 times at 16 and 1.6 times at 8; at the MNIST recipe's q n = 256 a bounded
  step at 16 took 2.6 plain steps, at 128 2.9 (docs/performance.md). A function of public
  sizes only (n is public under replace-one)."""
  per_place_target = sampling_rate * num_records / PLACED_RECORDS_PER_PLACE
  size = 1 << max(0, math.floor(math.log2(max(per_place_target, 1.0))))
  return int(min(largest, max(MIN_PLACED_CHUNK, size)))


def typical_chunks(num_records: int, sampling_rate: float, chunk_size: int) -> int:
  """Microbatches that hold a Poisson batch of mean q n plus 4 standard deviations.

  Used as the minimum capacity, so the common batch sizes share one compiled shape.
  """
  mean = sampling_rate * num_records
  return max(1, math.ceil((mean + 4 * math.sqrt(mean * (1 - sampling_rate))) / chunk_size))


class Prefetcher:
  """Computes `fn(step)` for the next steps on one background thread.

  `get(step)` returns `fn(step)` and schedules `fn` for the following `depth` steps, so host
  work (NumPy sampling, float64 noise, host-to-device copies) overlaps the device's work on the
  current step. `fn` must depend only on `step` (it runs out of order with the caller).
  """

  def __init__(self, fn: Callable[[int], Any], end: int, depth: int = 2):
    self._fn, self._end, self._depth = fn, end, depth
    self._pool = concurrent.futures.ThreadPoolExecutor(
      max_workers=1, thread_name_prefix="lipdp-prefetch"
    )
    self._pending: dict[int, concurrent.futures.Future] = {}

  def get(self, step: int) -> Any:
    for ahead in range(step, min(step + self._depth + 1, self._end)):
      if ahead not in self._pending:
        self._pending[ahead] = self._pool.submit(self._fn, ahead)
    for stale in [s for s in self._pending if s < step]:
      self._pending.pop(stale).cancel()
    return self._pending.pop(step).result()

  def close(self) -> None:
    for future in self._pending.values():
      future.cancel()
    self._pending.clear()
    self._pool.shutdown(wait=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
