"""Bad arguments raise a ValueError naming the argument; the module stays model-free."""

import ast
import math
import pathlib
import subprocess
import sys

import pytest

from lipdp import privacy

NAN, INF = math.nan, math.inf
BAD_DELTAS = [0.0, 1.0, -1e-5, 1.5, NAN, INF]
BAD_POSITIVE = [0.0, -1.0, NAN, INF, True]
BAD_NONNEGATIVE = [-1e-3, NAN, INF]
BAD_K = [0, -1, 1.5, True, NAN]


def _cases():
  good = dict(sigma=2.0, sensitivity=1.0, delta=1e-5, epsilon=1.0, k=1)
  calls = {
    "gaussian_epsilon": lambda a: privacy.gaussian_epsilon(
      a["sigma"], a["sensitivity"], a["delta"], a["k"]
    ),
    "gaussian_delta": lambda a: privacy.gaussian_delta(
      a["sigma"], a["sensitivity"], a["epsilon"], a["k"]
    ),
    "calibrate_sigma": lambda a: privacy.calibrate_sigma(
      a["epsilon"], a["delta"], a["sensitivity"], a["k"]
    ),
    "classic_gaussian_sigma": lambda a: privacy.classic_gaussian_sigma(
      a["epsilon"], a["delta"], a["sensitivity"], a["k"]
    ),
  }
  for name, call in calls.items():
    for bad in BAD_DELTAS:
      if name != "gaussian_delta":
        yield name, call, dict(good, delta=bad), "delta"
    for bad in BAD_POSITIVE:
      if name in ("gaussian_epsilon", "gaussian_delta"):
        yield name, call, dict(good, sigma=bad), "sigma"
      if name != "gaussian_epsilon":
        yield name, call, dict(good, epsilon=bad), "epsilon"
    for bad in BAD_NONNEGATIVE:
      yield name, call, dict(good, sensitivity=bad), "sensitivity"
    for bad in BAD_K:
      yield name, call, dict(good, k=bad), "k"


@pytest.mark.parametrize("name,call,args,argname", list(_cases()))
def test_gaussian_argument_validation(name, call, args, argname):
  with pytest.raises(ValueError, match=argname):
    call(args)


@pytest.mark.parametrize(
  "call,argname",
  [
    (lambda: privacy.sensitivity(-1.0, 1.0), "lipschitz"),
    (lambda: privacy.sensitivity(1.0, -1.0), "diameter"),
    (lambda: privacy.sensitivity(NAN, 1.0), "lipschitz"),
    (lambda: privacy.sensitivity(1.0, INF), "diameter"),
    (lambda: privacy.l2_ball_diameter(-1.0), "radius"),
    (lambda: privacy.nonnegative_ball_diameter(-1.0, 3), "radius"),
    (lambda: privacy.nonnegative_ball_diameter(1.0, 0), "dim"),
    (lambda: privacy.box_diameter([0.0, 1.0], [1.0, 0.0]), "high"),
    (lambda: privacy.box_diameter([0.0, NAN], 1.0), "low"),
    (lambda: privacy.box_diameter([0.0, 0.0], [1.0, 1.0, 1.0]), "low and high"),
    (lambda: privacy.one_hot_diameter(-1), "num_blocks"),
    (lambda: privacy.one_hot_diameter([2, 0]), "num_blocks"),
    (lambda: privacy.product_diameter(1.0, -2.0), "diameters"),
    (lambda: privacy.max_lipschitz(1.0, 1.0, 1e-5, 0.0), "diameter"),
    (lambda: privacy.max_lipschitz(-1.0, 1.0, 1e-5, 1.0), "sigma"),
    (lambda: privacy.dpsgd_epsilon(0.0, 0.1, 10, 1e-5), "noise_multiplier"),
    (lambda: privacy.dpsgd_epsilon(1.0, 0.0, 10, 1e-5), "sampling_rate"),
    (lambda: privacy.dpsgd_epsilon(1.0, 1.5, 10, 1e-5), "sampling_rate"),
    (lambda: privacy.dpsgd_epsilon(1.0, 0.1, 0, 1e-5), "steps"),
    (lambda: privacy.dpsgd_epsilon(1.0, 0.1, 10, 0.0), "delta"),
    (lambda: privacy.dpsgd_noise_multiplier(0.0, 0.1, 10, 1e-5), "target_epsilon"),
    (lambda: privacy.compose_dpsgd_and_release(1.0, 0.1, 10, 0.0, 1.0, 1e-5), "sigma"),
    (lambda: privacy.compose_dpsgd_and_release(1.0, 0.1, 10, 1.0, 1.0, 1e-5, k=0), "k"),
    (lambda: privacy.heteroscedastic_rdp(1.0, 1.0, 0.1, 1.0, 1.0, 2.0, 4), "alpha"),
    (lambda: privacy.heteroscedastic_rdp(2.0, -1.0, 0.1, 1.0, 1.0, 2.0, 4), "lipschitz"),
    (lambda: privacy.heteroscedastic_rdp(2.0, 1.0, -0.1, 1.0, 1.0, 2.0, 4), "lipschitz_log_sigma"),
    (lambda: privacy.heteroscedastic_rdp(2.0, 1.0, 0.1, 1.0, 0.0, 2.0, 4), "sigma_min"),
    (lambda: privacy.heteroscedastic_rdp(2.0, 1.0, 0.1, 1.0, 2.0, 1.0, 4), "sigma_max"),
    (lambda: privacy.heteroscedastic_rdp(2.0, 1.0, 0.1, 1.0, 1.0, 2.0, 0), "latent_dim"),
    (lambda: privacy.heteroscedastic_epsilon(1.0, 1.0, 0.1, 1.0, 1.0, 2.0, 4), "delta"),
    (lambda: privacy.shuffle_epsilon(0.0, 100, 1e-5), "eps0"),
    (lambda: privacy.shuffle_epsilon(1.0, 0, 1e-5), "n"),
    (lambda: privacy.shuffle_epsilon(1.0, 100, 1.0), "delta"),
    (lambda: privacy.shuffle_epsilon(1.0, 100, 1e-5, method="magic"), "method"),
    (lambda: privacy.shuffled_gaussian_epsilon(1.0, 1.0, 100, NAN), "delta"),
    (lambda: privacy.calibrate_sigma_shuffled(-1.0, 1e-5, 1.0, 100), "epsilon"),
    (
      lambda: privacy.make_report(
        privacy.GaussianRelease(1.0),
        lipschitz=-1.0,
        domain="d",
        diameter=1.0,
        delta=1e-5,
        scope="public",
        num_records=10,
      ),
      "lipschitz",
    ),
    (lambda: privacy.GaussianRelease(1.0, k=0), "k"),
    (
      lambda: privacy.make_report(
        privacy.GaussianRelease(1.0),
        lipschitz=1.0,
        domain="",
        diameter=1.0,
        delta=1e-5,
        scope="public",
        num_records=10,
      ),
      "domain",
    ),
    (
      lambda: privacy.make_report(
        privacy.GaussianRelease(1.0),
        lipschitz=1.0,
        domain="d",
        diameter=1.0,
        delta=1e-5,
        scope="public",
        num_records=0,
      ),
      "num_records",
    ),
    (lambda: privacy.DPSGDEvent(1.0, 0.0, 10), "sampling_rate"),
    (lambda: privacy.HeteroscedasticRelease(2.0, 1.0, 0.1, 4), "sigma_max"),
  ],
)
def test_argument_validation(call, argname):
  with pytest.raises(ValueError, match=argname):
    call()


PRIVACY_DIR = pathlib.Path(privacy.__file__).parent
ALLOWED_ROOTS = {
  "numpy",
  "scipy",
  "dp_accounting",
  "lipdp",
  "abc",
  "collections",
  "dataclasses",
  "enum",
  "fractions",
  "functools",
  "hashlib",
  "importlib",
  "json",
  "math",
  "numbers",
  "os",
  "platform",
  "tempfile",
  "typing",
}
# lipdp modules outside the package that it may use: model-free utilities only.
ALLOWED_LIPDP = ("lipdp.privacy", "lipdp.files")


def test_sources_import_only_numpy_scipy_dp_accounting():
  for path in sorted(PRIVACY_DIR.glob("*.py")):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        names = [f"{node.module or ''}.{alias.name}" for alias in node.names]
      else:
        continue
      for name in names:
        assert name.split(".")[0] in ALLOWED_ROOTS, f"{path.name} imports {name}"
        if name.split(".")[0] == "lipdp":
          assert name.startswith(ALLOWED_LIPDP), f"{path.name} imports model code {name}"


def test_importing_the_module_does_not_import_jax_or_flax():
  code = (
    "import sys, lipdp.privacy; "
    "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax')); "
    "assert not bad, bad"
  )
  subprocess.run([sys.executable, "-c", code], check=True)
