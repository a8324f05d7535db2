"""Test-wide set-up.

Four virtual CPU devices, so that the data-parallel code paths (and the multi-device equivalence
test) run on a machine without accelerators. Must happen before JAX is first imported.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=4").strip()
