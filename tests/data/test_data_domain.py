"""Domains: records lie in the domain, projection is idempotent, diameters are exact.

The reference diameters here are computed independently of lipdp.privacy:

* [0, 1]^d intersected with B(0, R): for any x, y in it, replacing min(x_i, y_i) by 0 in both
  keeps them in the set and does not shrink |x - y|, so a farthest pair has disjoint supports
  S, T and |x - y|^2 = |x|^2 + |y|^2, each maximised separately: min(|S|, R^2). Hence
  D^2 = max over k + m <= d of min(k, R^2) + min(m, R^2) (= 2 R^2 when d >= 2 ceil(R^2)).
* Tabular: sqrt(#numeric + 2 #categorical).
The tests check that no pair of encoded/projected records is farther apart than this, and
that an explicit pair of records attains it.
"""

import itertools
import json
import math

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from lipdp.data import (
  Block,
  CategoricalColumn,
  ImageDomain,
  NumericColumn,
  TabularDomain,
  domain_from_description,
)

SETTINGS = hypothesis.settings(max_examples=40, deadline=None, derandomize=True)


def ref_nonnegative_ball_diameter(radius, dim):
  r2 = radius * radius
  best = max(min(k, r2) + min(m, r2) for k in range(dim + 1) for m in range(dim + 1 - k))
  return math.sqrt(best)


def ref_image_diameter(domain):
  d2 = ref_nonnegative_ball_diameter(domain.radius, domain.image_dim) ** 2
  if domain.num_classes is not None:
    d2 += 2.0
  return math.sqrt(d2)


def ref_tabular_diameter(domain):
  return math.sqrt(sum(1 if isinstance(c, NumericColumn) else 2 for c in domain.columns))


def _vector_of_norm(k, radius, dim, offset):
  """A vector in [0,1]^dim supported on [offset, offset + k) with norm min(sqrt(k), R)."""
  v = np.zeros(dim)
  r2 = radius * radius
  if k <= r2:
    v[offset : offset + k] = 1.0
  else:
    f = int(math.floor(r2))
    v[offset : offset + f] = 1.0
    if r2 > f:
      v[offset + f] = math.sqrt(r2 - f)
  return v


def worst_image_pair(domain):
  """Raw images (in pixel units) and labels of a pair at maximal distance."""
  d, r2 = domain.image_dim, domain.radius**2
  k, m = max(
    ((k, m) for k in range(d + 1) for m in range(d + 1 - k)),
    key=lambda km: min(km[0], r2) + min(km[1], r2),
  )
  x = _vector_of_norm(k, domain.radius, d, 0)
  y = _vector_of_norm(m, domain.radius, d, k)
  images = np.stack([x, y]).reshape((2,) + domain.image_shape) * domain.pixel_max
  labels = np.array([0, 1]) if domain.num_classes else None
  return images, labels


def assert_in_image_domain(domain, records):
  assert records.dtype == np.float32
  assert records.shape[1] == domain.dim
  x = records.astype(np.float64)
  pixels = x[:, : domain.image_dim]
  assert pixels.min() >= 0.0 and pixels.max() <= 1.0
  assert np.all(np.linalg.norm(pixels, axis=1) <= domain.radius)
  assert np.all(np.sqrt(np.sum(pixels**2, axis=1)) <= domain.radius)
  if domain.num_classes is not None:
    lab = x[:, domain.image_dim :]
    assert np.all((lab == 0) | (lab == 1)) and np.all(lab.sum(axis=1) == 1)


def assert_in_tabular_domain(domain, records):
  assert records.dtype == np.float32
  assert records.shape[1] == domain.dim
  x = records.astype(np.float64)
  for b in domain.blocks:
    part = x[:, b.start : b.stop]
    if b.kind == "numeric":
      assert part.min() >= 0.0 and part.max() <= 1.0
    else:
      assert np.all((part == 0) | (part == 1)) and np.all(part.sum(axis=1) == 1)


def max_pairwise_distance(records):
  x = records.astype(np.float64)
  sq = np.sum(x * x, axis=1)
  d2 = sq[:, None] + sq[None, :] - 2 * x @ x.T
  return math.sqrt(max(d2.max(), 0.0))


# ----------------------------------------------------------------------------------------------
# Reference diameter itself: checked against brute force in tiny dimensions.


@pytest.mark.parametrize("radius,dim", [(0.5, 1), (1.0, 2), (1.2, 2), (1.5, 3), (0.8, 3), (3.0, 4)])
def test_reference_diameter_matches_brute_force(radius, dim):
  rng = np.random.default_rng(0)
  # Candidate extreme points: vertices of the cube scaled onto the ball, plus random points.
  pts = [np.array(v, float) for v in itertools.product([0.0, 1.0], repeat=dim)]
  pts += list(rng.uniform(0, 1, size=(3000, dim)))
  pts += list(rng.uniform(0, 1, size=(3000, dim)) * (rng.uniform(size=(3000, dim)) < 0.5))
  pts = np.array(pts)
  norms = np.linalg.norm(pts, axis=1)
  pts = pts * np.minimum(1.0, radius / np.maximum(norms, 1e-300))[:, None]
  brute = max_pairwise_distance(pts)
  ref = ref_nonnegative_ball_diameter(radius, dim)
  assert brute <= ref + 1e-9
  assert brute >= ref * 0.97  # random search gets close to the supremum


# ----------------------------------------------------------------------------------------------
# ImageDomain.


def test_image_blocks_and_dim():
  dom = ImageDomain((4, 4, 1), radius=2.0, pixel_max=255, num_classes=3)
  assert dom.dim == 19 and dom.image_dim == 16
  assert dom.blocks == (
    Block("image", "image", 0, 16),
    Block("label", "categorical", 16, 19, (0, 1, 2)),
  )
  assert ImageDomain((4, 4), 2.0, 255).blocks == (Block("image", "image", 0, 16),)


def test_image_encode_is_scaling_clipping_and_ball_rescaling():
  dom = ImageDomain((2, 2), radius=1.0, pixel_max=10)
  raw = np.array(
    [
      [[5.0, 0.0], [0.0, 0.0]],  # inside the ball: unchanged (0.5)
      [[10.0, 10.0], [0.0, 0.0]],  # norm sqrt(2): rescaled onto the ball
      [[20.0, -3.0], [0.0, 0.0]],
    ]
  )  # clipped to [0, 1] first
  rec = dom.encode(raw)
  np.testing.assert_array_equal(rec[0], [0.5, 0, 0, 0])
  np.testing.assert_allclose(rec[1], [1 / math.sqrt(2), 1 / math.sqrt(2), 0, 0], rtol=1e-5)
  np.testing.assert_allclose(rec[2], [1, 0, 0, 0], rtol=1e-5)
  assert_in_image_domain(dom, rec)


def test_image_round_trip_inside_ball():
  rng = np.random.default_rng(1)
  dom = ImageDomain((5, 5, 1), radius=5.0, pixel_max=255, num_classes=4)  # R = sqrt(d): no-op
  images = rng.integers(0, 256, size=(30, 5, 5, 1)).astype(np.uint8)
  labels = rng.integers(0, 4, size=30)
  rec = dom.encode(images, labels)
  out, out_labels = dom.decode(rec)
  assert out.shape == (30, 5, 5, 1) and out.dtype == np.float32
  np.testing.assert_allclose(out * 255, images, atol=1e-4)
  np.testing.assert_array_equal(out_labels, labels)
  np.testing.assert_array_equal(dom.labels(rec), labels)


def test_image_accepts_flat_and_channel_less_shapes():
  dom = ImageDomain((3, 3, 1), radius=1.0, pixel_max=1.0)
  x = np.random.default_rng(2).uniform(size=(4, 3, 3, 1))
  a = dom.encode(x)
  np.testing.assert_array_equal(a, dom.encode(x.reshape(4, 9)))
  np.testing.assert_array_equal(a, dom.encode(x[..., 0]))


@SETTINGS
@hypothesis.given(
  h=st.integers(1, 4),
  w=st.integers(1, 4),
  radius=st.floats(0.1, 5.0),
  with_labels=st.booleans(),
  seed=st.integers(0, 2**31 - 1),
  scale=st.sampled_from([1.0, 16.0, 255.0]),
)
def test_image_records_in_domain_and_within_diameter(h, w, radius, with_labels, seed, scale):
  rng = np.random.default_rng(seed)
  nc = 3 if with_labels else None
  dom = ImageDomain((h, w), radius=radius, pixel_max=scale, num_classes=nc)
  n = 25
  raw = rng.uniform(-0.5, 1.5, size=(n, h, w)) * scale
  raw[rng.uniform(size=raw.shape) < 0.4] = 0.0  # sparse images reach the far corners
  labels = rng.integers(0, 3, size=n) if with_labels else None
  rec = dom.encode(raw, labels)
  assert_in_image_domain(dom, rec)
  assert max_pairwise_distance(rec) <= ref_image_diameter(dom) + 1e-9
  # Arbitrary vectors, projected.
  v = rng.normal(0, 3, size=(n, dom.dim))
  proj = dom.project(v)
  assert_in_image_domain(dom, proj)
  np.testing.assert_array_equal(dom.project(proj), proj)  # idempotent, bit for bit
  np.testing.assert_array_equal(dom.project(rec), rec)  # records are fixed points
  allrec = np.concatenate([rec, proj])
  assert max_pairwise_distance(allrec) <= ref_image_diameter(dom) + 1e-9


def test_weighted_label_block():
  dom = ImageDomain((4, 4), radius=2.0, pixel_max=16, num_classes=3, label_weight=5.0)
  images, labels = worst_image_pair(dom)
  rec = dom.encode(images, labels)
  np.testing.assert_array_equal(rec[:, 16:].max(axis=1), [5.0, 5.0])
  np.testing.assert_array_equal(dom.labels(rec), labels)
  np.testing.assert_array_equal(dom.project(rec), rec)
  assert dom.diameter == pytest.approx(math.sqrt(2 * 4.0 + 2 * 25.0), rel=1e-12)
  dist = float(np.linalg.norm(rec[0].astype(np.float64) - rec[1].astype(np.float64)))
  assert dist == pytest.approx(dom.diameter, rel=1e-5)  # attained
  noisy = rec + np.random.default_rng(0).normal(size=rec.shape)
  projected = dom.project(noisy)
  assert set(np.unique(projected[:, 16:])) <= {0.0, 5.0}
  assert domain_from_description(dom.describe()) == dom
  assert dom != ImageDomain((4, 4), radius=2.0, pixel_max=16, num_classes=3)
  with pytest.raises(ValueError, match="label_weight"):
    ImageDomain((4, 4), radius=2.0, pixel_max=16, num_classes=3, label_weight=0.0)


@pytest.mark.parametrize(
  "shape,radius,nc",
  [
    ((2, 2), 1.0, None),
    ((2, 2), 1.0, 2),
    ((3, 3), 1.7, 10),
    ((2, 2), 1.5, None),
    ((1, 3), 2.0, 3),
    ((8, 8), 4.0, 10),
    ((4, 4), 10.0, None),
  ],
)
def test_image_worst_case_pair_attains_reference_diameter(shape, radius, nc):
  dom = ImageDomain(shape, radius=radius, pixel_max=16, num_classes=nc)
  images, labels = worst_image_pair(dom)
  rec = dom.encode(images, labels)
  assert_in_image_domain(dom, rec)
  dist = float(np.linalg.norm(rec[0].astype(np.float64) - rec[1].astype(np.float64)))
  assert dist == pytest.approx(ref_image_diameter(dom), rel=1e-5)


@pytest.mark.parametrize(
  "shape,radius,nc",
  [
    ((2, 2), 1.0, None),
    ((2, 2), 1.0, 2),
    ((3, 3), 1.7, 10),
    ((2, 2), 1.5, None),
    ((1, 3), 2.0, 3),
    ((28, 28, 1), 14.0, 10),
    ((4, 4), 10.0, None),
  ],
)
def test_image_diameter_property_is_exact(shape, radius, nc):
  dom = ImageDomain(shape, radius=radius, pixel_max=255, num_classes=nc)
  assert dom.diameter == pytest.approx(ref_image_diameter(dom), rel=1e-12)
  if dom.image_dim >= 2 * math.ceil(radius**2):
    expected = math.sqrt(2 * radius**2 + (2 if nc else 0))
    assert dom.diameter == pytest.approx(expected, rel=1e-12)


def test_image_bad_inputs():
  dom = ImageDomain((2, 2), radius=1.0, pixel_max=255, num_classes=3)
  ok = np.zeros((2, 2, 2))
  with pytest.raises(ValueError, match="shape"):
    dom.encode(np.zeros((2, 3, 3)), [0, 1])
  with pytest.raises(ValueError, match="NaN"):
    dom.encode(np.full((2, 2, 2), np.nan), [0, 1])
  with pytest.raises(ValueError, match=r"\[0, 3\)"):
    dom.encode(ok, [0, 3])
  with pytest.raises(ValueError, match=r"\[0, 3\)"):
    dom.encode(ok, [-1, 0])
  with pytest.raises(ValueError, match="pass labels"):
    dom.encode(ok)
  with pytest.raises(ValueError, match="shape"):
    dom.encode(ok, [0, 1, 2])
  with pytest.raises(ValueError, match="integers"):
    dom.encode(ok, [0.5, 1])
  with pytest.raises(ValueError, match="dropped"):
    ImageDomain((2, 2), 1.0, 255).encode(ok, [0, 1])
  with pytest.raises(ValueError, match="NaN"):
    dom.project(np.full((1, dom.dim), np.nan))
  with pytest.raises(ValueError, match="shape"):
    dom.project(np.zeros((1, dom.dim + 1)))
  with pytest.raises(ValueError, match="single vector"):
    dom.project(np.zeros(dom.dim))
  for kwargs in (
    {"radius": 0.0},
    {"radius": None},
    {"radius": float("inf")},
    {"pixel_max": 0},
    {"pixel_max": None},
    {"num_classes": 1},
    {"image_shape": (0, 2)},
    {"image_shape": (2.5, 2)},
    {"image_shape": "ab"},
  ):
    args = dict(image_shape=(2, 2), radius=1.0, pixel_max=255)
    args.update(kwargs)
    with pytest.raises(ValueError):
      ImageDomain(**args)


def test_project_handles_infinities():
  dom = ImageDomain((2, 2), radius=1.0, pixel_max=255, num_classes=2)
  v = np.array([[np.inf, -np.inf, 0.2, 0.0, -np.inf, 3.0]])
  p = dom.project(v)
  assert_in_image_domain(dom, p)
  np.testing.assert_array_equal(p[0, 4:], [0, 1])


# ----------------------------------------------------------------------------------------------
# TabularDomain.


def _table_domain(label=True):
  cols = [
    NumericColumn("age", 0, 100),
    CategoricalColumn("color", ("red", "green", "blue")),
    NumericColumn("income", -10.0, 10.0),
    CategoricalColumn("y", (0, 1)),
  ]
  return TabularDomain(cols, label_column="y" if label else None)


def test_tabular_layout_and_round_trip():
  dom = _table_domain()
  assert dom.dim == 1 + 3 + 1 + 2
  assert [b.kind for b in dom.blocks] == ["numeric", "categorical", "numeric", "categorical"]
  assert dom.blocks[1] == Block("color", "categorical", 1, 4, ("red", "green", "blue"))
  assert dom.num_classes == 2
  table = {
    "age": np.array([0.0, 37.5, 100.0]),
    "color": np.array(["blue", "red", "green"]),
    "income": np.array([-10.0, 2.5, 10.0]),
    "y": np.array([1, 0, 1]),
  }
  rec = dom.encode(table)
  assert_in_tabular_domain(dom, rec)
  np.testing.assert_allclose(rec[:, 0], [0.0, 0.375, 1.0])
  out = dom.decode(rec)
  assert list(out) == ["age", "color", "income", "y"]
  np.testing.assert_allclose(out["age"], table["age"], atol=1e-5)
  np.testing.assert_allclose(out["income"], table["income"], atol=1e-5)
  np.testing.assert_array_equal(out["color"], table["color"])
  np.testing.assert_array_equal(out["y"], table["y"])
  np.testing.assert_array_equal(dom.labels(rec), [1, 0, 1])
  # The same table as a 2-D object array in column order.
  arr = np.array(
    [[0.0, "blue", -10.0, 1], [37.5, "red", 2.5, 0], [100.0, "green", 10.0, 1]], dtype=object
  )
  np.testing.assert_array_equal(dom.encode(arr), rec)


def test_tabular_clips_to_declared_bounds():
  dom = TabularDomain([NumericColumn("v", 10, 20)])
  rec = dom.encode({"v": np.array([-1e9, 5.0, 15.0, 25.0, np.inf, -np.inf])})
  np.testing.assert_allclose(rec[:, 0], [0, 0, 0.5, 1, 1, 0])
  np.testing.assert_allclose(dom.decode(rec)["v"], [10, 10, 15, 20, 20, 10])


def test_bounds_whose_width_is_not_a_finite_float_are_refused():
  """Finding 5: high - low overflowing to inf made encode return NaN."""
  big = np.finfo(np.float64).max
  for low, high in [(-1e308, 1e308), (-big, big / 2)]:
    with pytest.raises(ValueError, match="width"):
      NumericColumn("v", low, high)
  dom = TabularDomain([NumericColumn("v", -8e307, 8e307)])  # the widest that still fits
  rec = dom.encode({"v": np.array([1e308, -np.inf, np.inf, 0.0])})
  assert np.all(np.isfinite(rec))
  np.testing.assert_allclose(rec[:, 0], [1, 0, 1, 0.5])


def test_tabular_unknown_category_is_an_error():
  dom = _table_domain()
  table = {"age": [1.0], "color": ["purple"], "income": [0.0], "y": [0]}
  with pytest.raises(ValueError, match="purple.*never extended"):
    dom.encode(table)
  table = {"age": [1.0], "color": ["red"], "income": [0.0], "y": [2]}
  with pytest.raises(ValueError, match="declared categories"):
    dom.encode(table)
  assert dom.column("color").categories == ("red", "green", "blue")  # unchanged


def test_tabular_bad_inputs():
  dom = _table_domain()
  good = {"age": [1.0], "color": ["red"], "income": [0.0], "y": [0]}
  with pytest.raises(ValueError, match="lacks declared columns"):
    dom.encode({k: v for k, v in good.items() if k != "age"})
  with pytest.raises(ValueError, match="does not declare"):
    dom.encode(dict(good, extra=[1]))
  with pytest.raises(ValueError, match="NaN"):
    dom.encode(dict(good, age=[np.nan]))
  with pytest.raises(ValueError, match="different lengths"):
    dom.encode(dict(good, age=[1.0, 2.0]))
  with pytest.raises(ValueError, match="non-numeric"):
    dom.encode(dict(good, age=["old"]))
  with pytest.raises(ValueError, match="shape"):
    dom.encode(np.zeros((2, 3)))
  with pytest.raises(ValueError):
    NumericColumn("a", 1.0, 1.0)
  with pytest.raises(ValueError):
    NumericColumn("a", 0.0, np.inf)
  with pytest.raises(ValueError):
    NumericColumn("a", None, 1.0)
  with pytest.raises(ValueError, match="at least two"):
    CategoricalColumn("c", ("only",))
  with pytest.raises(ValueError, match="distinct"):
    CategoricalColumn("c", ("a", "a"))
  with pytest.raises(ValueError):
    CategoricalColumn("c", ("a", None))
  with pytest.raises(ValueError, match="Duplicate"):
    TabularDomain([NumericColumn("a", 0, 1), NumericColumn("a", 0, 1)])
  with pytest.raises(ValueError, match="categorical"):
    TabularDomain([NumericColumn("a", 0, 1)], label_column="a")
  with pytest.raises(ValueError, match="not a declared column"):
    TabularDomain([NumericColumn("a", 0, 1)], label_column="b")


@SETTINGS
@hypothesis.given(
  kinds=st.lists(st.one_of(st.just(0), st.integers(2, 4)), min_size=1, max_size=5),
  seed=st.integers(0, 2**31 - 1),
)
def test_tabular_records_in_domain_and_within_diameter(kinds, seed):
  rng = np.random.default_rng(seed)
  cols = []
  for j, k in enumerate(kinds):
    if k == 0:
      lo = float(rng.normal())
      cols.append(NumericColumn(f"c{j}", lo, lo + float(rng.uniform(0.1, 5))))
    else:
      cols.append(CategoricalColumn(f"c{j}", tuple(range(k))))
  dom = TabularDomain(cols)
  n = 20
  table = {}
  for c in cols:
    if isinstance(c, NumericColumn):
      table[c.name] = rng.uniform(c.low - 2, c.high + 2, size=n)
    else:
      table[c.name] = rng.integers(0, len(c.categories), size=n)
  rec = dom.encode(table)
  assert_in_tabular_domain(dom, rec)
  proj = dom.project(rng.normal(0, 2, size=(n, dom.dim)))
  assert_in_tabular_domain(dom, proj)
  np.testing.assert_array_equal(dom.project(proj), proj)
  np.testing.assert_array_equal(dom.project(rec), rec)
  assert max_pairwise_distance(np.concatenate([rec, proj])) <= ref_tabular_diameter(dom) + 1e-9
  # The worst-case pair: opposite bounds, different categories everywhere.
  a = {c.name: ([c.low] if isinstance(c, NumericColumn) else [c.categories[0]]) for c in cols}
  b = {c.name: ([c.high] if isinstance(c, NumericColumn) else [c.categories[1]]) for c in cols}
  pair = np.concatenate([dom.encode(a), dom.encode(b)]).astype(np.float64)
  assert np.linalg.norm(pair[0] - pair[1]) == pytest.approx(ref_tabular_diameter(dom), rel=1e-6)


def test_tabular_diameter_property_is_exact():
  dom = _table_domain()
  assert dom.diameter == pytest.approx(math.sqrt(2 + 2 * 2), rel=1e-12)
  assert dom.diameter == pytest.approx(ref_tabular_diameter(dom), rel=1e-12)
  only_num = TabularDomain([NumericColumn(f"x{i}", 0, 1) for i in range(5)])
  assert only_num.diameter == pytest.approx(math.sqrt(5), rel=1e-12)
  only_cat = TabularDomain([CategoricalColumn(f"x{i}", ("a", "b", "c")) for i in range(3)])
  assert only_cat.diameter == pytest.approx(math.sqrt(6), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# No dependence on the data: record-wise encoding.


def test_encoding_is_record_wise_images():
  rng = np.random.default_rng(3)
  dom = ImageDomain((6, 6, 1), radius=2.0, pixel_max=255, num_classes=5)
  images = rng.integers(0, 256, size=(50, 6, 6, 1)).astype(np.uint8)
  labels = rng.integers(0, 5, size=50)
  together = dom.encode(images, labels)
  for i in range(0, 50, 7):
    np.testing.assert_array_equal(dom.encode(images[i : i + 1], labels[i : i + 1])[0], together[i])
  # Changing all other records (to extreme values) leaves record 0 unchanged.
  other = np.full_like(images, 255)
  other[0] = images[0]
  np.testing.assert_array_equal(dom.encode(other, labels)[0], together[0])


def test_encoding_is_record_wise_tables():
  rng = np.random.default_rng(4)
  dom = _table_domain()
  n = 40
  table = {
    "age": rng.uniform(-50, 150, n),
    "color": rng.choice(["red", "green", "blue"], n),
    "income": rng.normal(0, 20, n),
    "y": rng.integers(0, 2, n),
  }
  together = dom.encode(table)
  for i in range(0, n, 5):
    alone = dom.encode({k: v[i : i + 1] for k, v in table.items()})
    np.testing.assert_array_equal(alone[0], together[i])
  scaled = {k: (v * 1000 if k in ("age", "income") else v) for k, v in table.items()}
  scaled["age"][0], scaled["income"][0] = table["age"][0], table["income"][0]
  np.testing.assert_array_equal(dom.encode(scaled)[0], together[0])


# ----------------------------------------------------------------------------------------------
# Descriptions.


def test_domain_from_spec_round_trip():
  for dom in (
    ImageDomain((28, 28, 1), 14.0, 255, 10),
    ImageDomain((8, 8), 4.0, 16),
    _table_domain(),
    _table_domain(label=False),
  ):
    spec = json.loads(json.dumps(dom.describe_spec()))
    assert domain_from_description(spec) == dom
  with pytest.raises(ValueError, match="Unknown domain type"):
    domain_from_description({"type": "audio"})
  with pytest.raises(ValueError, match="low"):
    domain_from_description({"columns": [{"name": "a", "type": "numeric", "high": 1}]})
  with pytest.raises(ValueError, match="dim"):
    domain_from_description(dict(_table_domain().describe_spec(), dim=3))


def test_describe_is_json_and_rebuilds_the_domain():
  for dom in (ImageDomain((28, 28, 1), 14.0, 255, 10), _table_domain()):
    desc = dom.describe()
    text = json.dumps(desc)
    rebuilt = domain_from_description(text)
    assert rebuilt == dom
    assert desc["dim"] == dom.dim
    assert desc["diameter"] == pytest.approx(dom.diameter)
    assert "diameter_derivation" in desc and "preprocessing" in desc
  with pytest.raises(ValueError, match="diameter"):
    domain_from_description(dict(_table_domain().describe(), diameter=1.0))


@pytest.mark.parametrize("weight", [0.1, 0.3, 1.1, 2.2, math.pi, 1 / 3])
def test_a_label_weight_float32_rounds_is_the_one_the_diameter_uses(weight):
  """float32(w) > w for these w: the records hold float32(w), and the diameter must cover them
  (found by a review: with w itself, two records were 1.2e-7 farther apart than D at w = pi)."""
  dom = ImageDomain((2, 2), radius=1.0, pixel_max=1.0, num_classes=3, label_weight=weight)
  images, labels = worst_image_pair(dom)
  rec = dom.encode(images, labels)
  dist = float(np.linalg.norm(rec[0].astype(np.float64) - rec[1].astype(np.float64)))
  assert dist <= dom.diameter  # with D from w itself: 2e-10 to 1.2e-7 over
  assert dist == pytest.approx(dom.diameter, rel=1e-6)  # attained
  assert dom.label_weight == float(np.float32(weight))
  with pytest.raises(ValueError, match="representable in float32"):
    ImageDomain((2, 2), radius=1.0, pixel_max=1.0, num_classes=3, label_weight=1e39)
