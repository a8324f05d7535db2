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
"""

import os

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
