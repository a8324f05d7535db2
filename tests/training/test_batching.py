"""Host-side batch selection: nothing truncated, functions of (seed, step), prefetching."""

import threading

import numpy as np
import pytest

from lipdp.training import batching


def test_epoch_shuffler_matches_the_stateless_function():
  shuffler = batching.EpochShuffler(50, 8, seed=3)
  for step in [0, 1, 5, 6, 7, 13, 2, 40]:  # crosses epochs (6 batches each), and goes back
    np.testing.assert_array_equal(shuffler(step), batching.shuffled_batch_indices(50, 8, 3, step))
  epoch = np.concatenate([shuffler(s) for s in range(6)])
  assert len(set(epoch.tolist())) == 48  # without replacement within an epoch


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 64, 65, 1000])
def test_padding_keeps_every_index(count):
  indices = np.random.default_rng(count).permutation(5000)[:count]
  batch = batching.pad_to_chunks(indices, chunk_size=8, minimum_chunks=2)
  capacity = batch.indices.shape[0]
  assert batch.indices.shape[1] == 8 and capacity & (capacity - 1) == 0  # a power of two
  assert capacity >= max(2, -(-count // 8))
  assert batch.count == count and batch.num_chunks == -(-count // 8)
  np.testing.assert_array_equal(batch.indices.reshape(-1)[:count], indices)
  assert np.all(batch.indices.reshape(-1)[count:] == 0)


def test_typical_capacity_covers_almost_every_poisson_batch():
  chunks = batching.typical_chunks(10_000, 0.01, 16)
  sizes = [len(batching.poisson_batch_indices(10_000, 0.01, 1, s)) for s in range(300)]
  assert np.mean(np.array(sizes) <= chunks * 16) > 0.99
  assert batching.chunk_capacity(max(sizes), 16, chunks) <= 2 * batching.chunk_capacity(
    0, 16, chunks
  )


def test_prefetcher_returns_each_steps_value_computed_off_thread():
  main = threading.get_ident()
  calls = []

  def fn(step):
    calls.append((step, threading.get_ident() != main))
    return step * step

  with batching.Prefetcher(fn, end=10, depth=2) as prefetch:
    assert [prefetch.get(t) for t in range(3, 10)] == [t * t for t in range(3, 10)]
  assert sorted(s for s, _ in calls) == list(range(3, 10))  # each step computed once
  assert all(off_thread for _, off_thread in calls)


def test_a_placed_layout_picks_a_microbatch_with_about_sixteen_records_per_place():
  # q n / 16 rounded down to a power of two, within [8, largest]: digits' ./run.sh (q n =
  # 129), the MNIST recipe (256), a large batch (4,096), and a tiny test batch (20).
  assert batching.placed_chunk_size(1_438, 0.09, 128) == 8
  assert batching.placed_chunk_size(8_000, 0.032, 128) == 16
  assert batching.placed_chunk_size(8_000, 0.032, 8) == 8  # never above the path's default
  assert batching.placed_chunk_size(40_960, 0.1, 128) == 128
  assert batching.placed_chunk_size(200, 0.1, 128) == batching.MIN_PLACED_CHUNK
  # The padding it saves on digits' batches: the rows the layout runs (its fullest place's
  # count times the microbatch) stay near the batch's size at 8, and are several times more at
  # the ghost path's 128.
  rng = np.random.default_rng(0)
  rows, sizes = {8: [], 128: []}, []
  for _ in range(20):
    indices = np.flatnonzero(rng.uniform(size=1_438) < 0.09)
    sizes.append(len(indices))
    for chunk in rows:
      rows[chunk].append(batching.place_by_index(indices, chunk).num_chunks * chunk)
  assert np.mean(rows[8]) < 1.5 * np.mean(sizes)
  assert np.mean(rows[128]) > 2.5 * np.mean(rows[8])
