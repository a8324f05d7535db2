"""Declared bins, the bank-marketing schema, the CSV loader's .gz/CRLF path, NumPy inference."""

import gzip
import itertools
import json
import os

import numpy as np
import pytest

from lipdp import data as lipdp_data
from lipdp.baselines import discretize
from lipdp.data import CategoricalColumn, NumericColumn, TabularDomain

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BANK_SCHEMA = os.path.join(REPO, "experiments", "schemas", "bank_marketing.json")
BANK_FILE = os.path.join("bank-marketing", "bank-full.csv.gz")

DOMAIN = TabularDomain(
  [NumericColumn("age", 18, 100), CategoricalColumn("y", ["no", "yes"]), NumericColumn("t", 0, 1)],
  label_column="y",
)


def test_declared_edges_and_round_trip():
  edges = discretize.numeric_edges(DOMAIN, {"age": [18, 30, 60, 100]})
  assert np.allclose(edges["age"], [0, 12 / 82, 42 / 82, 1])
  assert np.allclose(edges["t"], np.linspace(0, 1, discretize.DEFAULT_NUMERIC_BINS + 1))
  records = DOMAIN.encode(
    {"age": [18, 29.9, 30, 59, 100, 120], "y": ["no"] * 6, "t": [0, 0.1, 0.5, 0.7, 0.99, 1]}
  )
  attrs = discretize.to_attributes(records, DOMAIN, edges)
  assert attrs["age"].tolist() == [0, 0, 1, 1, 2, 2]  # 120 was clipped to 100
  assert attrs["y"].tolist() == [0] * 6
  back = discretize.from_attributes(attrs, DOMAIN, edges, np.random.default_rng(0))
  assert np.array_equal(DOMAIN.project(back), back)
  again = discretize.to_attributes(back, DOMAIN, edges)
  for name in attrs:
    assert np.array_equal(again[name], attrs[name])


@pytest.mark.parametrize(
  "spec,match",
  [
    ([20, 50, 100], "declared bounds"),
    ([18, 50, 40, 100], "increase"),
    (0, "at least one"),
    ("ten", "count or a list"),
  ],
)
def test_bad_bins_are_refused(spec, match):
  with pytest.raises(ValueError, match=match):
    discretize.numeric_edges(DOMAIN, {"age": spec})


def test_a_columns_declared_bins_are_kept_and_used():
  """The schema's "bins" become the column's `bins`; discretising uses them unless told
  otherwise; an invalid declaration is refused when the column is made."""
  schema = {
    "type": "tabular",
    "columns": [
      {"name": "age", "type": "numeric", "low": 18, "high": 100, "bins": [18, 30, 100]},
      {"name": "n", "type": "numeric", "low": 0, "high": 8, "bins": 4},
      {"name": "y", "type": "categorical", "categories": ["no", "yes"]},
    ],
  }
  domain = lipdp_data.domain_from_description(schema)
  assert domain.column("age").bins == (18.0, 30.0, 100.0) and domain.column("n").bins == 4
  assert domain.describe_spec()["columns"][0]["bins"] == [18.0, 30.0, 100.0]
  assert lipdp_data.domain_from_description(domain.describe_spec()) == domain
  edges = discretize.numeric_edges(domain)
  np.testing.assert_allclose(edges["age"], [0, 12 / 82, 1])
  np.testing.assert_allclose(edges["n"], [0, 0.25, 0.5, 0.75, 1])
  np.testing.assert_allclose(discretize.numeric_edges(domain, {"age": 2})["age"], [0, 0.5, 1])
  for bad, match in (([18, 50, 40, 100], "increase"), ([20, 100], "declared bounds"), (0, "one")):
    with pytest.raises(ValueError, match=match):
      NumericColumn("age", 18, 100, bins=bad)


def test_bank_schema_is_declared_and_loads():
  domain = lipdp_data.load_schema(BANK_SCHEMA)
  assert len(domain.columns) == 17 and domain.label_column == "subscription"
  assert domain.num_numeric == 7 and domain.num_categorical == 10
  bins = discretize.bins_from_schema(BANK_SCHEMA)
  assert set(bins) == {c.name for c in domain.columns if isinstance(c, NumericColumn)}
  edges = discretize.numeric_edges(domain, bins)  # every declared edge list is valid
  assert all(len(e) >= 3 for e in edges.values())
  with open(BANK_SCHEMA, encoding="utf-8") as f:
    assert "docs/baselines.md" in json.load(f)["description"]


def test_csv_loader_reads_gzip_and_crlf(tmp_path):
  schema = {
    "columns": [
      {"name": "age", "type": "numeric", "low": 18, "high": 100},
      {"name": "y", "type": "categorical", "categories": ["no", "yes"]},
    ],
    "label_column": "y",
  }
  text = "age,y,extra\r\n30,no,1\r\n41,yes,2\r\n"
  plain = tmp_path / "t.csv"
  plain.write_bytes(text.encode())
  packed = tmp_path / "t.csv.gz"
  packed.write_bytes(gzip.compress(text.encode()))
  a = lipdp_data.load_csv(str(plain), schema)
  b = lipdp_data.load_csv(str(packed), schema)
  assert a["age"].tolist() == b["age"].tolist() == [30.0, 41.0]
  assert b["y"].tolist() == ["no", "yes"]  # no stray carriage return in the last column


def test_bank_marketing_file_through_the_csv_loader():
  root = os.environ.get(lipdp_data.DATA_DIR_ENV)
  if not root or not os.path.isfile(os.path.join(root, BANK_FILE)):
    pytest.skip(
      f"bank-marketing not found: set {lipdp_data.DATA_DIR_ENV} to a folder holding {BANK_FILE}"
    )
  prepared = lipdp_data.load_dataset("csv:" + os.path.join(root, BANK_FILE), schema=BANK_SCHEMA)
  assert prepared.train.shape[0] + prepared.holdout.shape[0] == 45211
  assert prepared.train.shape[1] == 53


def test_numpy_marginals_equal_mbi():
  """_inference answers out-of-clique pairs exactly as mbi's variable elimination."""
  mbi = pytest.importorskip("mbi")
  del mbi
  from lipdp.baselines import _inference  # pylint: disable=g-import-not-at-top
  from lipdp.baselines import _pgm  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  sizes = {"a": 3, "b": 4, "c": 2, "d": 3, "e": 2}
  attrs = {k: rng.integers(v, size=300) for k, v in sizes.items()}
  attrs["b"] = (attrs["a"] + rng.integers(2, size=300)) % 4
  attrs["d"] = (attrs["c"] + attrs["b"]) % 3
  mbi = _pgm.import_mbi()
  measured = [("a",), ("b",), ("c",), ("d",), ("e",), ("a", "b"), ("b", "c"), ("c", "d")]
  ms = [
    _pgm.measurement(
      mbi,
      _pgm.marginal(attrs, sizes, cl) + rng.normal(0, 3, np.prod([sizes[v] for v in cl])),
      cl,
      3.0,
    )
    for cl in measured
  ]
  model = _pgm.estimate(mbi, _pgm.mbi_domain(mbi, sizes), ms, 300, 200)
  ours = _inference.ModelMarginals(model, mbi)
  for pair in [("a", "d"), ("a", "e"), ("b", "d")] + [("a",), ("c", "d")]:
    assert np.allclose(ours.marginal(pair), _pgm.project(model, pair), atol=1e-8), pair
  assert all(np.isclose(ours.marginal(p).sum(), 300) for p in itertools.combinations(sizes, 2))
