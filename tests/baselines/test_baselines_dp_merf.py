"""DP-MERF (lipdp.baselines.dp_merf): its feature map, sensitivity, accounting and records.

The sensitivity is checked on the embedding itself (float64, `dp_merf.embedding`) for pairs of
neighbouring data sets built to be adversarial: a record moved to another class (the bound is
attained), and a record moved within its class to where every frequency's phase turns by pi
(the same-class worst case). The accounting is checked against dp_accounting's PLD of the same
Gaussian. Generator runs here are a few dozen steps of small networks (post-processing: their
length has no privacy meaning).
"""

import csv
import json
import math
import os
import subprocess
import sys

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant
import jax
import numpy as np
import pytest

from lipdp import baselines
from lipdp import methods
from lipdp import privacy
from lipdp import release as release_lib
from lipdp import runner
from lipdp import spec as spec_lib
from lipdp.baselines import dp_merf
from lipdp.data import CategoricalColumn, ImageDomain, NumericColumn, TabularDomain
from lipdp.methods import central
from lipdp.studies import points as sweep_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "experiments", "configs", "default.py")


def _get_config(variant):
  return spec_lib.config_from_file(CONFIGS, variant)


def _run(config, workdir):
  """The main job's path: the config validated into a spec, then the one run."""
  return runner.run(spec_lib.from_config(config), workdir)


TABLE = TabularDomain(
  [
    NumericColumn("a", 0.0, 10.0),
    CategoricalColumn("b", ["x", "y", "z"]),
    NumericColumn("c", -1.0, 1.0),
    CategoricalColumn("label", [0, 1]),
  ],
  label_column="label",
)
# Small and fast settings: the generator is post-processing, its size changes no guarantee.
SMALL = {"num_features": 200, "num_steps": 30, "batch_size": 64, "hidden": (32, 32)}


def _table(n, seed, domain=TABLE):
  rng = np.random.default_rng(seed)
  a = rng.uniform(0, 10, n)
  columns = {
    "a": a,
    "b": rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1]),
    "c": np.tanh(a / 5 - 1 + rng.normal(0, 0.3, n)),
    "label": (a + rng.normal(0, 2, n) > 5).astype(int),
  }
  return domain.encode({c.name: columns[c.name] for c in domain.columns})


def _images(n, seed, domain):
  rng = np.random.default_rng(seed)
  raw = (rng.random((n,) + domain.image_shape) < 0.3) * rng.integers(
    0, 256, (n,) + domain.image_shape
  )
  labels = rng.integers(0, domain.num_classes, n) if domain.num_classes else None
  return domain.encode(raw, labels)


# ----------------------------------------------------------------------------- the feature map.


@pytest.mark.parametrize("bandwidth", [0.05, 1.0, 30.0])
def test_features_have_norm_one(bandwidth):
  rng = np.random.default_rng(0)
  w = dp_merf.frequencies(7, 400, bandwidth, seed=3)
  u = np.concatenate([rng.random((50, 7)), 1e3 * rng.standard_normal((5, 7)), np.zeros((1, 7))])
  phi = dp_merf.features(u, w)
  assert phi.shape == (56, 401)
  np.testing.assert_allclose(np.linalg.norm(phi, axis=1), 1.0, rtol=0, atol=1e-13)
  # The constant coordinate is 1/sqrt(2) for every record: half the norm, whatever u is.
  np.testing.assert_array_equal(phi[:, -1], 1.0 / math.sqrt(2.0))


def test_the_float64_embeddings_sensitivity_is_bounded_whatever_cos_and_sin_return(monkeypatch):
  """With cos and sin 30% off (NumPy's accuracy is no IEEE guarantee), every record's r part
  still has norm at most (1 + eta) / sqrt(2) + a (`feature_norm_bound`), and neighbouring
  embeddings lie within `released_sensitivity`. Against the exact mean of the computed features
  (Fractions), the float64 embedding is within the rounding share of that sensitivity; it is
  6e-9 above sqrt(2) / n at n = 36,000. Non-finite cos and sin (an overflowed argument) are
  zeroed, and cos and sin below their exact size leave the features undivided."""
  from fractions import Fraction  # pylint: disable=g-import-not-at-top

  cos = np.cos
  monkeypatch.setattr(np, "cos", lambda x: 1.3 * cos(x))
  rng = np.random.default_rng(5)
  n, num_features, classes = 30, 40, 3
  w = dp_merf.frequencies(3, num_features, 0.5, seed=2)
  eta, a = dp_merf.feature_norm_bound(num_features)
  x, labels = rng.random((n, 3)), rng.integers(0, classes, n)
  phi = dp_merf.features(x, w)
  assert np.all(np.linalg.norm(phi[:, :-1], axis=1) <= (1 + eta) / math.sqrt(2.0) + a)
  for off in (lambda t: np.where(t > 0.5, np.nan, 0.7 * cos(t)), lambda t: -np.inf * t):
    monkeypatch.setattr(np, "cos", off)
    bad = dp_merf.features(x, w)
    assert np.all(np.isfinite(bad))
    assert np.all(np.linalg.norm(bad[:, :-1], axis=1) <= (1 + eta) / math.sqrt(2.0) + a)
  monkeypatch.setattr(np, "cos", lambda t: 1.3 * cos(t))
  bound = dp_merf.released_sensitivity(n, num_features, classes)
  assert bound > dp_merf.sensitivity(n)
  for _ in range(50):
    x2, labels2 = x.copy(), labels.copy()
    i = rng.integers(n)
    x2[i], labels2[i] = rng.random(3), rng.integers(0, classes)
    assert _embedding_change(x, x2, labels, labels2, w, classes) <= bound
  mu = dp_merf.embedding(x, labels, w, classes, n)
  exact = np.zeros(mu.shape, dtype=object)
  for row, y in zip(phi, labels):
    exact[y] += np.array([Fraction(float(v)) for v in row], dtype=object)
  error = math.sqrt(sum(float(Fraction(float(v)) - e / n) ** 2 for v, e in zip(mu.ravel(),
                                                                                exact.ravel())))  # fmt: skip
  share = (bound - (math.sqrt(2.0) * (1 + eta) + 2 * a) / n) / 2
  assert error <= share
  monkeypatch.undo()
  relative = dp_merf.released_sensitivity(36_000, 10_000, 10) / dp_merf.sensitivity(36_000) - 1
  assert 1e-9 < relative < 2e-8


def test_frequencies_depend_on_the_public_seed_only():
  a = dp_merf.frequencies(5, 100, 2.0, seed=11)
  np.testing.assert_array_equal(a, dp_merf.frequencies(5, 100, 2.0, seed=11))
  assert not np.array_equal(a, dp_merf.frequencies(5, 100, 2.0, seed=12))
  # w ~ N(0, l^-2 I): the empirical standard deviation is 1 / l.
  big = dp_merf.frequencies(20, 20_000, 4.0, seed=0)
  assert big.std() == pytest.approx(0.25, rel=0.01)


_COS_SIN_PROGRAM = """
import sys
import jax
import numpy as np
from lipdp.baselines import dp_merf
t = np.linspace(-300.0, 300.0, 200_001, dtype=np.float32)
c, s = jax.jit(dp_merf._cos_sin)(t)
c_small, _ = jax.jit(dp_merf._cos_sin)(t[np.abs(t) < 10])
np.savez(sys.argv[1], c=c, s=s, c_small=c_small)
"""


def test_fast_cos_sin_match_numpy(tmp_path):
  # Accuracy is a property of the machine code users run: compiled in a subprocess with XLA's
  # default optimisations, which the rest of the suite turns off (tests/conftest.py).
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "optimization_level" not in f]
  flags = [f for f in flags if "disable_expensive_passes" not in f]
  env = dict(os.environ, XLA_FLAGS=" ".join(flags))
  out = tmp_path / "cos_sin.npz"
  subprocess.run(
    [sys.executable, "-c", _COS_SIN_PROGRAM, str(out)], env=env, check=True, timeout=300
  )
  got = np.load(out)
  t = np.linspace(-300.0, 300.0, 200_001, dtype=np.float32)
  exact = t.astype(np.float64)
  assert np.abs(got["c"] - np.cos(exact)).max() < 2e-5  # float32 range reduction at 300
  assert np.abs(got["s"] - np.sin(exact)).max() < 2e-5
  small = exact[np.abs(t) < 10]
  assert np.abs(got["c_small"] - np.cos(small)).max() < 2e-6
  # Its derivative is (-sin, cos).
  grad = jax.grad(lambda x: dp_merf._cos_sin(x)[0] + 2 * dp_merf._cos_sin(x)[1])(1.3)  # pylint: disable=protected-access
  assert float(grad) == pytest.approx(-math.sin(1.3) + 2 * math.cos(1.3), abs=1e-5)


def test_default_bandwidth_comes_from_the_declared_domain():
  mnist = ImageDomain((28, 28, 1), 14.0, 255, num_classes=10, label_weight=5.0)
  assert dp_merf.default_bandwidth(mnist) == pytest.approx(math.sqrt(784 / 6))  # no label
  # Two numeric columns (1/6 each) and a categorical one of 3 (2 (1 - 1/3)); the label is out.
  assert dp_merf.default_bandwidth(TABLE) == pytest.approx(math.sqrt(2 / 6 + 2 * (2 / 3)))
  only_label = TabularDomain([CategoricalColumn("y", [0, 1])], label_column="y")
  with pytest.raises(ValueError, match="no coordinate besides its label"):
    dp_merf.default_bandwidth(only_label)


# ----------------------------------------------------------------------------- the sensitivity.


def _embedding_change(x, x2, labels, labels2, w, num_classes):
  n = len(x)
  a = dp_merf.embedding(x, labels, w, num_classes, n)
  b = dp_merf.embedding(x2, labels2, w, num_classes, n)
  return np.linalg.norm(a - b)


def test_sensitivity_holds_on_adversarial_neighbours():
  """|mu(X) - mu(X')| <= sqrt(2)/n for replace-one neighbours, attained across classes and,
  where the domain allows it, within a class (a phase turn of pi at every frequency)."""
  n, bound = 40, dp_merf.sensitivity(40)
  assert bound == math.sqrt(2.0) / 40
  rng = np.random.default_rng(0)
  # One frequency in one dimension, w = 2 pi: u and u + 1/2 have r(u') = -r(u).
  w = np.array([[2.0 * math.pi]])
  x = rng.random((n, 1)) * 0.5
  labels = rng.integers(0, 3, n)
  x2, same = x.copy(), labels.copy()
  x2[0, 0] += 0.5
  within = _embedding_change(x, x2, labels, same, w, 3)
  assert within == pytest.approx(bound, rel=1e-12)  # attained within a class
  other = labels.copy()
  other[0] = (labels[0] + 1) % 3
  across = _embedding_change(x, x, labels, other, w, 3)
  assert across == pytest.approx(bound, rel=1e-12)  # attained across classes
  # The paper's map (r without the constant coordinate) moves by 2/n here: above the bound,
  # which is why the constant coordinate is there.
  r = dp_merf.features(x, w)[:, :-1] * math.sqrt(2.0)
  r2 = dp_merf.features(x2, w)[:, :-1] * math.sqrt(2.0)
  assert np.linalg.norm(r.mean(0) - r2.mean(0)) == pytest.approx(2.0 / n)
  # Many frequencies: random and worst-case-searched replacements never exceed the bound.
  w = dp_merf.frequencies(4, 300, 0.3, seed=1)
  x = rng.random((n, 4))
  labels = rng.integers(0, 2, n)
  worst = 0.0
  for _ in range(200):
    x2, labels2 = x.copy(), labels.copy()
    i = rng.integers(n)
    x2[i] = rng.random(4)
    labels2[i] = rng.integers(0, 2)
    worst = max(worst, _embedding_change(x, x2, labels, labels2, w, 2))
  assert worst <= bound * (1 + 1e-12)
  assert worst == pytest.approx(bound, rel=1e-9)  # some pair crossed the classes
  # Within a class, the replacement that maximises |r(u') - r(u)| over a grid of the box.
  grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 9)] * 4), -1).reshape(-1, 4)
  r_grid = dp_merf.features(grid, w)
  far = np.argmax(np.linalg.norm(r_grid - dp_merf.features(x[:1], w), axis=1))
  x2 = x.copy()
  x2[0] = grid[far]
  assert _embedding_change(x, x2, labels, labels, w, 2) <= bound * (1 + 1e-12)


def test_class_proportions_come_from_the_release():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 1000)
  mu = dp_merf.embedding(rng.random((1000, 3)), labels, np.ones((3, 5)), 4, 1000)
  np.testing.assert_allclose(math.sqrt(2.0) * mu[:, -1], np.bincount(labels, minlength=4) / 1000)
  np.testing.assert_allclose(dp_merf.proportions(mu), np.bincount(labels, minlength=4) / 1000)
  noisy = np.zeros((3, 4))
  noisy[:, -1] = [-0.1, 0.2, 0.6]  # a negative noisy proportion is clipped
  np.testing.assert_allclose(dp_merf.proportions(noisy), [0.0, 0.25, 0.75])
  noisy[:, -1] = -1.0
  np.testing.assert_allclose(dp_merf.proportions(noisy), [1 / 3] * 3)
  assert list(dp_merf.allocate(np.array([0.5, 0.3, 0.2]), 7)) == [4, 2, 1]


# ----------------------------------------------------------------------------- the accounting.


@pytest.mark.parametrize("epsilon", [1.0, 10.0])
def test_report_verifies_and_matches_dp_accounting(epsilon):
  train = _table(300, 0)
  release = dp_merf.fit(
    train, TABLE, epsilon=epsilon, delta=1e-5, seed=0, **dict(SMALL, num_steps=0)
  )
  report = release.report
  report.verify(rtol=0.0)
  assert report.recompute_epsilon() == report.epsilon
  assert privacy.PrivacyReport.from_json(report.to_json()) == report
  assert report.scope is privacy.Scope.DP_MEASUREMENTS and report.noise_seeded
  assert report.headline == privacy.accounting.HEADLINE_CENTRAL_GAUSSIAN
  (m,) = report.release.measurements
  assert (m.kind, m.query, m.count) == ("gaussian", "mean_embedding", 1)
  assert report.release.exact_noise  # drawn on a lattice: no floating-point noise
  # sqrt(2) / n, raised by the float64 embedding's rounding bound (a relative 1e-11 or so here).
  raised = dp_merf.released_sensitivity(300, SMALL["num_features"], 2)
  assert m.sensitivity == raised and 0 < raised / (math.sqrt(2.0) / 300) - 1 < 1e-9
  assert m.scale == privacy.calibrate_sigma(epsilon, 1e-5, raised)
  # Calibration meets the target and spends it: not more, and not visibly less.
  assert epsilon * (1 - 1e-9) <= report.epsilon <= epsilon
  assert privacy.gaussian_epsilon(m.scale * (1 - 1e-6), m.sensitivity, 1e-5) > epsilon
  # dp_accounting's PLD of the same Gaussian (unit sensitivity, noise sigma / Delta).
  accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4)
  accountant.compose(dp_accounting.GaussianDpEvent(m.scale / m.sensitivity))
  pld = accountant.get_epsilon(1e-5)
  assert report.epsilon == pytest.approx(pld, rel=1e-3) and report.epsilon <= pld * (1 + 1e-9)
  # The zCDP conversion of the same Gaussian is only an upper bound.
  assert report.components["zcdp_epsilon"] > report.epsilon
  notes = report.notes[-1]
  assert f"feature seed {release.info['feature_seed']}" in notes and "bandwidth" in notes


def test_secret_noise_by_default_and_seeded_noise_on_request():
  train = _table(100, 0)
  tiny = dict(SMALL, num_steps=0)  # the release is made before the generator trains
  a = dp_merf.fit(train, TABLE, epsilon=1.0, delta=1e-5, **tiny)
  b = dp_merf.fit(train, TABLE, epsilon=1.0, delta=1e-5, **tiny)
  assert not a.report.noise_seeded
  assert a.info["feature_seed"] != b.info["feature_seed"]  # OS entropy
  c = dp_merf.fit(train, TABLE, epsilon=1.0, delta=1e-5, seed=5, **tiny)
  d = dp_merf.fit(train, TABLE, epsilon=1.0, delta=1e-5, seed=5, **tiny)
  assert c.report.noise_seeded and privacy.report.CAVEAT_NOISE_SEEDED in c.report.caveats
  assert c.info["feature_seed"] == d.info["feature_seed"]
  np.testing.assert_array_equal(c.records, d.records)


def test_the_noise_added_is_sigma_on_every_coordinate_of_the_embedding(monkeypatch):
  """What the generator fits is the exact embedding plus N(0, sigma^2) on every coordinate (the
  label proportions' included): the report's sigma is the noise added (two mutations a review
  ran, noise of sigma / 2 and none on the proportions, had passed the tests)."""
  seen = {}
  embedding, train_generator = dp_merf.embedding, dp_merf.train_generator

  def keep_embedding(*args):
    seen["exact"] = embedding(*args)
    return seen["exact"].copy()

  def keep_target(target, *args, **kwargs):
    seen["target"] = np.array(target)
    return train_generator(target, *args, **kwargs)

  monkeypatch.setattr(dp_merf, "embedding", keep_embedding)
  monkeypatch.setattr(dp_merf, "train_generator", keep_target)
  release = dp_merf.fit(
    _table(200, 0), TABLE, epsilon=1.0, delta=1e-5, **dict(SMALL, num_features=4000, num_steps=1)
  )
  noise = seen["target"] - seen["exact"]
  assert seen["target"].dtype == np.float64 and np.all(noise != 0)
  (m,) = release.report.release.measurements
  assert abs(noise.std() / m.scale - 1) < 0.03  # 8,000 coordinates: 4 standard errors
  assert np.all(noise[:, -1] != 0)  # the constant coordinate, whence the class proportions


def test_everything_after_the_release_reads_only_the_release(monkeypatch):
  """With the embedding fixed, two private data sets of the same size (their labels, proportions
  and values far apart) give bit-identical records and reports: the generator, the class
  proportions, the sampling and the report read nothing private but the noisy embedding."""
  fixed = {}
  embedding = dp_merf.embedding

  def fixed_embedding(*args):
    fixed.setdefault("value", embedding(*args))
    return fixed["value"].copy()

  monkeypatch.setattr(dp_merf, "embedding", fixed_embedding)
  first = _table(150, 1)
  rng = np.random.default_rng(2)  # other values, the majority label the other way round
  second = TABLE.encode(
    {
      "a": rng.uniform(8, 10, 150),
      "b": np.full(150, "z"),
      "c": rng.uniform(-1, -0.5, 150),
      "label": (rng.random(150) < 0.1).astype(int),
    }
  )
  outs = [
    dp_merf.fit(data, TABLE, epsilon=2.0, delta=1e-5, seed=11, num_samples=120, **SMALL)
    for data in (first, second)
  ]
  np.testing.assert_array_equal(outs[0].records, outs[1].records)
  assert outs[0].report.to_json() == outs[1].report.to_json()


# ----------------------------------------------------------------------------- the generator.


def test_generator_reduces_the_mmd_on_a_toy_problem():
  domain = TabularDomain(
    [NumericColumn("u", 0, 1), NumericColumn("v", 0, 1), CategoricalColumn("y", [0, 1])],
    label_column="y",
  )
  rng = np.random.default_rng(0)
  centres = np.array([[0.2, 0.25], [0.8, 0.7]])
  labels = rng.integers(0, 2, 2000)
  u = np.clip(centres[labels] + rng.normal(0, 0.05, (2000, 2)), 0, 1)
  w = dp_merf.frequencies(2, 400, 0.2, seed=0)
  target = dp_merf.embedding(u, labels, w, 2, 2000)
  p = dp_merf.proportions(target)
  key = jax.random.PRNGKey(0)

  def mmd(num_steps):
    gen, params, losses = dp_merf.train_generator(
      target, p, w, domain, key=key, num_steps=num_steps, batch_size=200, hidden=(32, 32)
    )
    y = np.repeat([0, 1], 500)
    records = dp_merf.generate(gen, params, domain, y, dp_merf.CODE_DIM, np.random.default_rng(1))
    fresh = dp_merf.embedding(records[:, :2], y, w, 2, 1000) * 2 * p[:, None]
    return np.sum((fresh - target) ** 2), records, y, losses

  before, _, _, _ = mmd(0)  # the generator as initialised
  after, records, y, losses = mmd(300)
  assert losses[-20:].mean() < 0.2 * losses[:5].mean()
  assert after < 0.1 * before
  for k in (0, 1):  # each class's records sit at its centre
    np.testing.assert_allclose(records[y == k, :2].mean(0), centres[k], atol=0.05)


# ----------------------------------------------------------------------------- records.


@pytest.mark.parametrize("categorical", ["sample", "argmax"])
def test_table_records_lie_in_the_domain(categorical):
  train = _table(300, 0)
  release = dp_merf.fit(
    train,
    TABLE,
    epsilon=5.0,
    delta=1e-5,
    seed=1,
    categorical=categorical,
    num_samples=257,
    **SMALL,
  )
  records = release.records
  assert records.shape == (257, TABLE.dim) and records.dtype == np.float32
  assert np.array_equal(TABLE.project(records), records)
  for block in TABLE.blocks:
    if block.kind == "categorical":
      assert np.array_equal(records[:, block.start : block.stop].sum(1), np.ones(257))
  # Labels follow the released proportions (largest remainder).
  counts = np.bincount(TABLE.labels(records), minlength=2)
  assert list(counts) == list(dp_merf.allocate(np.array(release.info["proportions"]), 257))


def test_a_table_without_a_label_column_has_one_class():
  domain = TABLE.without_column("label")
  train = _table(200, 0, domain)
  release = dp_merf.fit(train, domain, epsilon=2.0, delta=1e-5, seed=0, **SMALL)
  assert release.info["num_classes"] == 1 and release.info["proportions"] == [1.0]
  assert np.array_equal(domain.project(release.records), release.records)
  release.report.verify(rtol=0.0)


@pytest.mark.parametrize("pixel_max", [255, 1.0])
def test_image_records_lie_in_the_domain(pixel_max):
  # A radius small enough that the ball binds: the records must still be inside it.
  domain = ImageDomain((4, 4, 1), 1.5, pixel_max, num_classes=3)
  train = _images(120, 0, ImageDomain((4, 4, 1), 1.5, 255, num_classes=3))
  release = dp_merf.fit(train, domain, epsilon=3.0, delta=1e-5, seed=0, **SMALL)
  records = release.records
  assert np.array_equal(domain.project(records), records)
  assert np.all(np.linalg.norm(records[:, :16].astype(np.float64), axis=1) <= 1.5)
  assert set(np.unique(domain.labels(records))) <= {0, 1, 2}
  if pixel_max == 255:  # an integer format: each image is the encoding of integer pixels
    images, labels = domain.decode(records)
    raw = np.rint(images.reshape(len(records), -1) * 255)
    np.testing.assert_array_equal(domain.encode(raw, labels), records)


# ----------------------------------------------------------------------------- refusals.


@pytest.mark.parametrize(
  "options, match",
  [
    ({"epsilon": 0.0}, "epsilon must be positive"),
    ({"delta": 0.0}, "delta must be in"),
    ({"num_features": 301}, "must be even"),
    ({"num_features": 0}, "num_features must be an integer"),
    ({"bandwidth": -1.0}, "bandwidth must be positive"),
    ({"bandwidth": float("nan")}, "bandwidth must be positive"),
    ({"categorical": "mode"}, "categorical must be one of"),
    ({"hidden": ()}, "hidden must be positive"),
    ({"feature_seed": -3}, "feature_seed must be"),
    ({"num_samples": 0}, "num_samples must be"),
  ],
)
def test_bad_settings_are_refused(options, match):
  kwargs = dict(epsilon=1.0, delta=1e-5, seed=0, **SMALL)
  kwargs.update(options)
  with pytest.raises(ValueError, match=match):
    dp_merf.fit(_table(50, 0), TABLE, **kwargs)


def test_records_outside_the_domain_are_refused():
  train = _table(50, 0)
  train[0, 0] = 1.5
  with pytest.raises(ValueError, match="outside the domain"):
    dp_merf.fit(train, TABLE, epsilon=1.0, delta=1e-5, seed=0, **SMALL)


# ----------------------------------------------------------------------------- the main job.


def _config(variant="conditional", **fields):
  c = _get_config(variant)
  c.method, c.scope, c.epsilon, c.delta, c.noise_seed = "dp_merf", "dp-measurements", 2.0, 1e-5, 0
  c.dp_merf.num_features, c.dp_merf.num_steps, c.dp_merf.hidden = 500, 20, (32, 32)
  c.evaluation.fast = True
  for key, value in fields.items():
    setattr(c, key, value)
  return c


def test_main_job_runs_dp_merf_on_digits(tmp_path):
  config = _config()
  config.evaluation.enabled = False  # the table below runs the evaluation
  result = _run(config, str(tmp_path / "run"))
  report = release_lib.verify_release(result.release_dir)  # the files agree with the report
  assert report == result.report
  assert report.scope is privacy.Scope.DP_MEASUREMENTS
  assert report.headline == privacy.accounting.HEADLINE_CENTRAL_GAUSSIAN
  assert 2.0 * (1 - 1e-9) <= report.epsilon <= 2.0
  domain = result.data.domain
  assert result.synthetic_records.shape == (len(result.data.train), domain.dim)
  assert np.array_equal(domain.project(result.synthetic_records), result.synthetic_records)
  assert "image records of dimension 74" in report.domain
  assert result.model is None and not os.path.exists(tmp_path / "run" / "checkpoints")


def test_main_job_runs_dp_merf_on_a_table(tmp_path):
  rng = np.random.default_rng(0)
  a = rng.uniform(0, 10, 300)
  rows = [
    [f"{x:.3f}", rng.choice(["x", "y", "z"]), f"{np.tanh(x / 5 - 1):.3f}", int(x > 5)] for x in a
  ]
  data = tmp_path / "table.csv"
  with open(data, "w", encoding="utf-8", newline="") as f:
    csv.writer(f).writerows([["a", "b", "c", "label"]] + rows)
  schema = tmp_path / "schema.json"
  schema.write_text(
    json.dumps({"label_column": "label", "columns": [c.as_dict() for c in TABLE.columns]})
  )
  config = _config(dataset="csv:" + str(data), schema=str(schema))
  result = _run(config, str(tmp_path / "run"))
  report = release_lib.verify_release(result.release_dir)
  assert report == result.report and report.noise_seeded
  assert 0.0 <= result.metrics["tstr/logreg"] <= 1.0
  assert result.metrics["meta/privacy_scope"] == "dp-measurements"


@pytest.mark.parametrize(
  "changes, match",
  [
    ({"scope": "conditional"}, "pass --config.scope=dp-measurements"),
    ({"k": 2}, "does not use --config.k"),
    ({"total_epsilon": 2.0}, "does not use --config.total_epsilon"),
    ({"epsilon": float("inf")}, "epsilon must be positive"),
  ],
)
def test_main_job_refuses_bad_settings_before_writing(tmp_path, changes, match):
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=match):
    _run(_config(**changes), str(workdir))
  assert not workdir.exists()


def test_options_and_sweep_points():
  config = _config()
  config.dp_merf.bandwidth = 2.5
  assert central.fit_options(spec_lib.from_config(config), None) == {
    "num_features": 500,
    "num_steps": 20,
    "hidden": (32, 32),
    "bandwidth": 2.5,
  }
  # Unset fields take the module's defaults: an unset section adds nothing.
  plain = _get_config("conditional")
  plain.method, plain.scope = "dp_merf", "dp-measurements"
  assert central.fit_options(spec_lib.from_config(plain), None) == {}
  point = sweep_lib.point("s", "dp-merf", "quick", 10.0, 3, {"dp_merf.num_steps": 7})
  spec = sweep_lib.make_spec(point, CONFIGS)
  assert (spec.method.name, spec.privacy.scope, spec.privacy.epsilon) == (
    "dp_merf",
    privacy.Scope.DP_MEASUREMENTS,
    10.0,
  )
  assert spec.release.noise_seed == 3 and central.fit_options(spec, None) == {"num_steps": 7}
  assert "dp_merf" in baselines.PRIVATE_BASELINES
  assert methods.get("dp_merf").kind == methods.CENTRAL  # one entry makes it a method


def test_a_work_directory_written_before_the_dp_merf_section_still_resumes(tmp_path):
  """config.dp_merf is all unset by default, so a config.json without it is the same run."""
  config = _get_config("smoke")
  spec = spec_lib.from_config(config)
  older = json.loads(spec_lib.to_config(spec).to_json())
  del older["dp_merf"]
  (tmp_path / "config.json").write_text(json.dumps(older))
  runner.open_for(spec, str(tmp_path))
  config.dp_merf.num_steps = 5  # a set field is a different run
  with pytest.raises(ValueError, match="other settings"):
    runner.open_for(spec_lib.from_config(config), str(tmp_path))
