"""lipdp: differentially private synthetic data from Lipschitz-constrained VAEs.

The encoder's own Gaussian noise is the privacy mechanism: with a certified Lipschitz bound L
on the encoder mean and records in a bounded domain of l2 diameter D, each released latent is a
Gaussian mechanism of l2 sensitivity L * D; the decoder is post-processing. README.md
states the method, what the guarantee covers, and the privacy rules the code keeps.

For notebooks: `lipdp.synthesize(table, schema, ...)` makes a private synthetic copy of a table
in memory, and `lipdp.evaluate(synthetic, holdout, schema, ...)` measures any synthetic table
(lipdp.api). Importing lipdp itself stays light: they load JAX when first used.
"""

__version__ = "0.1.0"

_API = ("synthesize", "evaluate")


def __getattr__(name):
  if name in _API:
    from lipdp import api  # pylint: disable=g-import-not-at-top  (keeps `import lipdp` light)

    return getattr(api, name)
  raise AttributeError(f"module 'lipdp' has no attribute {name!r}")
