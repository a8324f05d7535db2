"""The release folder: written atomically, and checked against its report."""

import dataclasses
import json
import os

import numpy as np
import pytest

from lipdp import data as data_lib
from lipdp import privacy
from lipdp import release as release_lib

DOMAIN = data_lib.ImageDomain((8, 8, 1), radius=4.0, pixel_max=16.0, num_classes=10)


def _report(num_records, k=1, diameter=DOMAIN.diameter):
  return privacy.make_report(
    privacy.GaussianRelease(5.0, k=k),
    lipschitz=0.1,
    domain="digits",
    diameter=diameter,
    delta=1e-5,
    scope="conditional",
    num_records=num_records,
    certificate={"layer_bounds": [0.1]},
    domain_description=DOMAIN.describe(),
  )


def _records(n, seed=0):
  rng = np.random.default_rng(seed)
  return DOMAIN.project(rng.random((n, DOMAIN.dim)))


def test_a_written_release_verifies(tmp_path):
  path = str(tmp_path / "release")
  records = _records(30)
  release_lib.write_release(path, records, DOMAIN, _report(15, k=2))
  assert sorted(os.listdir(path)) == ["domain.json", "privacy_report.json", "synthetic.npz"]
  assert not os.path.exists(path + ".partial")
  report = release_lib.verify_release(path)
  assert report.num_records == 15
  with np.load(os.path.join(path, "synthetic.npz")) as npz:
    assert npz["images"].shape == (30, 8, 8, 1) and npz["labels"].shape == (30,)


def test_a_consistent_report_with_a_false_record_count_is_caught(tmp_path):
  """Finding 2: num_records x 100 and recomputed epsilons verify alone, not against the files."""
  path = str(tmp_path / "release")
  release_lib.write_release(path, _records(20), DOMAIN, _report(20))
  inflated = _report(2000)
  inflated.verify()  # consistent on its own
  inflated.save(os.path.join(path, "privacy_report.json"))
  with pytest.raises(ValueError, match="num_records"):
    release_lib.verify_release(path)


def test_a_domain_file_with_another_diameter_is_caught(tmp_path):
  path = str(tmp_path / "release")
  release_lib.write_release(path, _records(20), DOMAIN, _report(20))
  desc = DOMAIN.describe()
  desc.update(radius=2.0)
  desc.pop("diameter")
  with open(os.path.join(path, "domain.json"), "w") as f:
    json.dump(desc, f)
  with pytest.raises(ValueError, match="domain.json is not the domain"):
    release_lib.verify_release(path)


def test_a_report_with_another_diameter_is_caught(tmp_path):
  """A consistent report made for this domain (its digest) but with a smaller D."""
  path = str(tmp_path / "release")
  release_lib.write_release(path, _records(20), DOMAIN, _report(20, diameter=DOMAIN.diameter / 2))
  with pytest.raises(ValueError, match="diameter"):
    release_lib.verify_release(path)


def test_records_outside_the_domain_are_caught(tmp_path):
  path = str(tmp_path / "release")
  records = _records(20)
  records[0, 0] = 3.0
  release_lib.write_release(path, records, DOMAIN, _report(20))
  with pytest.raises(ValueError, match="do not lie in the domain"):
    release_lib.verify_release(path)


def test_an_existing_release_is_never_overwritten_silently(tmp_path):
  path = str(tmp_path / "release")
  release_lib.write_release(path, _records(20), DOMAIN, _report(20))
  with pytest.raises(ValueError, match="already exists"):
    release_lib.write_release(path, _records(20, seed=1), DOMAIN, _report(20))
  release_lib.write_release(path, _records(20, seed=1), DOMAIN, _report(20), replace=True)
  with np.load(os.path.join(path, "synthetic.npz")) as npz:
    np.testing.assert_array_equal(npz["records"], _records(20, seed=1))


TABLE = data_lib.TabularDomain(
  [
    data_lib.NumericColumn("age", 0, 100),
    data_lib.CategoricalColumn("smoker", ("no", "yes")),
  ]
)


def _table_release(tmp_path):
  rng = np.random.default_rng(0)
  records = TABLE.encode({"age": rng.uniform(0, 100, 30), "smoker": rng.choice(["no", "yes"], 30)})
  report = privacy.make_report(
    privacy.GaussianRelease(5.0),
    lipschitz=0.1,
    domain="a table",
    diameter=TABLE.diameter,
    delta=1e-5,
    scope="conditional",
    num_records=30,
    certificate={"layer_bounds": [0.1]},
    domain_description=TABLE.describe(),
  )
  path = str(tmp_path / "release")
  release_lib.write_release(path, records, TABLE, report)
  return path, records, report


def test_a_domain_file_with_other_bounds_but_the_same_diameter_is_caught(tmp_path):
  """Issue 17, item 5: age high 100 -> 1e6 in domain.json verified (the diameter is the same).
  The report records a digest of the domain description; the check compares it."""
  path, _, report = _table_release(tmp_path)
  assert report.domain_digest == privacy.domain_digest(TABLE.describe())
  with open(os.path.join(path, "domain.json"), encoding="utf-8") as f:
    desc = json.load(f)
  assert privacy.domain_digest(desc) == report.domain_digest  # the JSON round trip keeps it
  desc["columns"][0]["high"] = 1e6
  with open(os.path.join(path, "domain.json"), "w", encoding="utf-8") as f:
    json.dump(desc, f)
  assert data_lib.domain_from_description(desc).diameter == TABLE.diameter
  with pytest.raises(ValueError, match="domain.json.*digest"):
    release_lib.verify_release(path)


def test_a_release_needs_the_digest_of_its_own_domain(tmp_path):
  path, records, report = _table_release(tmp_path)
  undigested = dataclasses.replace(report, domain_digest=None)
  with pytest.raises(ValueError, match="digest"):
    release_lib.write_release(str(tmp_path / "other"), records, TABLE, undigested)
  other = data_lib.TabularDomain(
    [data_lib.NumericColumn("age", 0, 120), data_lib.CategoricalColumn("smoker", ("no", "yes"))]
  )
  with pytest.raises(ValueError, match="digest"):
    release_lib.write_release(str(tmp_path / "other"), records, other, report)
  undigested.save(os.path.join(path, "privacy_report.json"))  # a report without the digest
  with pytest.raises(ValueError, match="digest"):
    release_lib.verify_release(path)


def _rewrite_npz(path, drop=(), **arrays):
  npz_path = os.path.join(path, "synthetic.npz")
  with np.load(npz_path, allow_pickle=False) as npz:
    content = {key: npz[key] for key in npz.files if key not in drop}
  content.update(arrays)
  np.savez(npz_path, **content)


def test_an_extra_array_in_the_synthetic_file_is_caught(tmp_path):
  """Issue 17, item 1: only `records` was read, so an extra array holding a copy of the private
  training records verified."""
  path, records, _ = _table_release(tmp_path)
  _rewrite_npz(path, private_records=records)
  with pytest.raises(ValueError, match="synthetic.npz.*'private_records'"):
    release_lib.verify_release(path)


def test_a_missing_decoded_array_is_caught(tmp_path):
  path, _, _ = _table_release(tmp_path)
  _rewrite_npz(path, drop=("column_smoker",))
  with pytest.raises(ValueError, match="synthetic.npz.*'column_smoker'"):
    release_lib.verify_release(path)


@pytest.mark.parametrize(
  "column,edit",
  [
    ("column_age", lambda a: np.where(np.arange(len(a)) == 3, 999.0, a)),  # schema: at most 100
    ("column_age", lambda a: a.astype(np.float32)),  # same values, another dtype
    ("column_smoker", lambda a: np.where(a == "no", "yes", a)),
  ],
)
def test_a_decoded_array_that_is_not_the_decoded_records_is_caught(tmp_path, column, edit):
  """Issue 17, item 1: a decoded column edited to 999 where the schema says at most 100
  verified. Every decoded array must equal a fresh decode of `records`."""
  path, _, _ = _table_release(tmp_path)
  with np.load(os.path.join(path, "synthetic.npz")) as npz:
    edited = edit(npz[column])
  _rewrite_npz(path, **{column: edited})
  with pytest.raises(ValueError, match=f"'{column}' is not the decode of the records"):
    release_lib.verify_release(path)


def test_an_extra_file_in_the_release_folder_is_caught(tmp_path):
  path, records, _ = _table_release(tmp_path)
  np.save(os.path.join(path, "train.npy"), records)
  with pytest.raises(ValueError, match="train.npy"):
    release_lib.verify_release(path)
