"""Test-wide set-up. Must happen before JAX is first imported.

- Four virtual CPU devices, so that the data-parallel code paths (and the multi-device
  equivalence tests) run on a machine without accelerators.
- XLA's CPU backend compiles without LLVM's optimisations: the suite's time goes mostly to
  compiling small programs once each, and this cuts it by about a third (test_runner.py: 79 to
  50 CPU seconds). The programs are the same HLO, only their machine code is less optimised;
  every comparison inside a test is computed under the same flags. A test of the accuracy of
  compiled code itself compiles it in a subprocess without these two flags
  (test_baselines_dp_merf.py's fast cos and sin, whose float32 error at |t| = 300 depends on
  them). Set `xla_backend_optimization_level` in XLA_FLAGS yourself to test at another level.
- A persistent compilation cache in a temporary folder for this test process (removed at its
  end): many tests build the same small programs again (a new jitted function per training run,
  the same HLO), and XLA then loads them instead of compiling them again. It cut the CPU time
  of tests/training/test_loop.py and test_ghost_clipping.py from 97 to 73 seconds, from an
  empty cache. The cached executable is the one XLA would compile for the same program and
  options, so no result changes. Set in this process only (jax.config, not the environment):
  the subprocesses some tests start compile for themselves. `LIPDP_TEST_COMPILATION_CACHE=0`
  turns it off.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_FLAGS = {
  "xla_force_host_platform_device_count": "4",
  "xla_backend_optimization_level": "0",
  "xla_llvm_disable_expensive_passes": "true",
}
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_backend_optimization_level" in _flags:  # the user's level, and LLVM's passes with it
  _FLAGS.pop("xla_llvm_disable_expensive_passes")
for _name, _value in _FLAGS.items():
  if _name not in _flags:
    _flags += f" --{_name}={_value}"
os.environ["XLA_FLAGS"] = _flags.strip()

if os.environ.get("LIPDP_TEST_COMPILATION_CACHE", "1") != "0":
  # After XLA_FLAGS, which JAX reads once; the sweeps' own cache settings.
  from lipdp.studies import points  # pylint: disable=g-import-not-at-top

  _cache_root = tempfile.mkdtemp(prefix="lipdp-test-xla-cache-")
  atexit.register(shutil.rmtree, _cache_root, ignore_errors=True)
  points.use_compilation_cache(_cache_root)
