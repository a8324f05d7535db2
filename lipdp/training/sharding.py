"""Placing training data on a 1-D device mesh, on one host or many.

The mesh has one axis, `'data'`, over all devices of all processes (`jax.devices()` after
`jax.distributed.initialize()`). The state is replicated; batches are split along `'data'`, so
XLA inserts the gradient all-reduce. Every host holds the same host-side values (records,
indices, DP noise: all functions of the seed and the step), and each contributes only the parts
that live on its own devices, so nothing is sent between hosts but the collectives of the step.
"""

from typing import Any, Optional, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

DATA_AXIS = "data"

# Records up to this size are replicated on every device, so a batch is a local gather; larger
# ones are split by rows across the devices, and XLA gathers each batch across them.
REPLICATE_RECORDS_UP_TO_BYTES = 1 << 30


def data_mesh(devices: Optional[Sequence[jax.Device]] = None) -> jax.sharding.Mesh:
  """A 1-D mesh over the given (default: all global) devices, axis name 'data'."""
  devices = list(jax.devices() if devices is None else devices)
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def replicate(mesh: jax.sharding.Mesh, tree: Any) -> Any:
  """Places host arrays, identical on every host, replicated on all devices of the mesh."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree_util.tree_map(
    lambda x: jax.make_array_from_callback(
      np.shape(x), sharding, lambda index: np.asarray(x)[index]
    ),
    tree,
  )


def shard_along(mesh: jax.sharding.Mesh, global_array: np.ndarray, axis: int = 0) -> jax.Array:
  """Places a global host array (identical on every host) split along `axis` over the mesh.

  Each host contributes the contiguous slice for its own devices
  (`jax.make_array_from_process_local_data`); `global_array.shape[axis]` must be a multiple of
  the number of devices.
  """
  spec = [None] * global_array.ndim
  spec[axis] = DATA_AXIS
  sharding = NamedSharding(mesh, PartitionSpec(*spec))
  if jax.process_count() == 1:
    return jax.device_put(global_array, sharding)
  return jax.make_array_from_callback(
    global_array.shape, sharding, lambda index: global_array[index]
  )


def shard_rows(mesh: jax.sharding.Mesh, global_rows: np.ndarray) -> jax.Array:
  """Places a global batch (rows identical on every host) on the mesh, sharded by rows."""
  return shard_along(mesh, global_rows, 0)


def place_records(mesh: jax.sharding.Mesh, records: np.ndarray) -> jax.Array:
  """The private records on the devices, once: replicated if small, else split by rows.

  Rows are padded with zeros to a multiple of the device count when split; the padding is never
  indexed (batch indices are < n).
  """
  if records.nbytes <= REPLICATE_RECORDS_UP_TO_BYTES:
    return replicate(mesh, records)
  num_devices = mesh.devices.size
  pad = -records.shape[0] % num_devices
  if pad:
    records = np.concatenate([records, np.zeros((pad,) + records.shape[1:], records.dtype)])
  return shard_along(mesh, records, 0)


def host_value(tree: Any) -> Any:
  """NumPy copies of replicated arrays, read from this host's first copy (works on many hosts,
  where a global array is not fully addressable)."""
  return jax.tree_util.tree_map(
    lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x), tree
  )
