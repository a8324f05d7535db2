"""Loaders: bundled sets, IDX (written here and the real MNIST test set), TFDS mock, CSV, NPZ."""

import gzip
import hashlib
import json
import os

import numpy as np
import pytest

from lipdp import data
from lipdp.data import sources

MNIST_IMAGES_MD5 = "2646ac647ad5339dbf082846283269ea"
MNIST_LABELS_MD5 = "27ae3e4e09519cfbb04c329615203637"


def _mnist_dir():
  root = os.environ.get("LIPDP_DATA_DIR")
  if not root:
    pytest.skip(
      "LIPDP_DATA_DIR is not set (it names the folder holding mnist-test/ with the "
      "MNIST test set in IDX format); skipping the real-MNIST check."
    )
  path = os.path.join(root, "mnist-test")
  if not os.path.isdir(path):
    pytest.skip(f"LIPDP_DATA_DIR={root} has no mnist-test/ folder.")
  return path


# ----------------------------------------------------------------------------------------------
# Bundled scikit-learn sets.


def test_load_digits():
  images, labels = data.load_digits()
  assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
  assert images.min() == 0 and images.max() <= sources.DIGITS_PIXEL_MAX
  assert set(np.unique(labels)) == set(range(10))


def test_digits_in_mnist_frame():
  """The 8x8 digits resized into MNIST's 20x20 box, centred in 28x28, scaled to 0..255."""
  images, _ = data.load_digits()
  framed = sources.digits_in_mnist_frame(images[:50])
  assert framed.shape == (50, 28, 28)
  assert framed.min() >= 0.0 and framed.max() <= sources.MNIST_PIXEL_MAX
  # The 4-pixel margin is empty; the box holds the digit.
  box = np.zeros((28, 28), bool)
  box[4:24, 4:24] = True
  assert np.all(framed[:, ~box] == 0.0) and np.all(framed[:, box].sum(axis=1) > 0)
  # Linear interpolation: a constant image stays constant (rescaled) inside the box, and the
  # ink (mean intensity, rescaled) is kept within a few percent.
  flat = sources.digits_in_mnist_frame(np.full((1, 8, 8), 8.0))
  np.testing.assert_allclose(flat[0, box], 8.0 * 255.0 / 16.0)
  ink_in = images[:50].mean(axis=(1, 2)) * 255.0 / 16.0
  ink_out = framed[:, box].reshape(50, 20, 20).mean(axis=(1, 2))
  np.testing.assert_allclose(ink_out, ink_in, rtol=0.1)
  with pytest.raises(ValueError, match="8, 8"):
    sources.digits_in_mnist_frame(np.zeros((2, 28, 28)))


def test_digits_in_mnist_frame_shares_mnists_domain():
  framed = data.load_dataset("digits", frame="mnist", label_weight=5.0)
  mnist = data.load_dataset("mnist_idx", data_dir=_mnist_dir(), label_weight=5.0)
  assert framed.domain == mnist.domain
  assert framed.train.shape[1] == mnist.train.shape[1] == 28 * 28 + 10
  np.testing.assert_array_equal(framed.domain.project(framed.train), framed.train)
  with pytest.raises(ValueError, match="frame"):
    data.load_dataset("digits", frame="cifar")


def test_load_breast_cancer_and_declared_bounds():
  table = data.load_breast_cancer()
  dom = data.breast_cancer_domain()
  assert list(table) == list(dom.column_names)
  assert all(v.shape == (569,) for v in table.values())
  assert dom.num_numeric == 30 and dom.label_column == "target" and dom.dim == 32
  # The declared constants (from the documentation) contain every real value: no clipping.
  for name, low, high in data.BREAST_CANCER_BOUNDS:
    assert low <= table[name].min() and table[name].max() <= high, name
  rec = dom.encode(table)
  assert rec.shape == (569, 32)
  np.testing.assert_allclose(dom.decode(rec)["mean area"], table["mean area"], rtol=1e-5)
  # The domain is a constant: building it needs no data.
  assert data.breast_cancer_domain() == dom
  assert data.breast_cancer_domain(include_label=False).dim == 30


# ----------------------------------------------------------------------------------------------
# IDX.


def _idx_bytes(array, magic):
  header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
  return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_idx(directory, prefix, images, labels, gz=False, image_magic=2051, label_magic=2049):
  os.makedirs(directory, exist_ok=True)
  suffix = ".gz" if gz else ""
  opener = gzip.open if gz else open
  with opener(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"), "wb") as f:
    f.write(_idx_bytes(images, image_magic))
  with opener(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"), "wb") as f:
    f.write(_idx_bytes(labels, label_magic))


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_round_trip(tmp_path, gz):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(7, 5, 4)).astype(np.uint8)
  labels = rng.integers(0, 10, size=7).astype(np.uint8)
  _write_idx(tmp_path, "t10k", images, labels, gz=gz)
  got_images, got_labels = data.load_idx(tmp_path)
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64


def test_load_idx_errors(tmp_path):
  images = np.zeros((3, 2, 2), np.uint8)
  labels = np.zeros(3, np.uint8)
  _write_idx(tmp_path / "bad_magic", "t10k", images, labels, gz=True, image_magic=2049)
  with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
    data.load_idx(tmp_path / "bad_magic")
  _write_idx(tmp_path / "bad_label_magic", "t10k", images, labels, label_magic=2051)
  with pytest.raises(ValueError, match="magic"):
    data.load_idx(tmp_path / "bad_label_magic")
  _write_idx(tmp_path / "count", "t10k", images, np.zeros(2, np.uint8))
  with pytest.raises(ValueError, match="3 images but 2 labels"):
    data.load_idx(tmp_path / "count")
  # A header that promises more bytes than the file holds.
  trunc = tmp_path / "trunc"
  _write_idx(trunc, "t10k", images, labels)
  path = trunc / "t10k-images-idx3-ubyte"
  path.write_bytes(path.read_bytes()[:-1])
  with pytest.raises(ValueError, match="header declares shape"):
    data.load_idx(trunc)
  with pytest.raises(ValueError, match="not found: .*nowhere"):
    data.load_idx(tmp_path / "nowhere")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="No IDX images file .*empty"):
    data.load_idx(tmp_path / "empty")
  both = tmp_path / "both"
  _write_idx(both, "t10k", images, labels)
  _write_idx(both, "train", images, labels)
  with pytest.raises(ValueError, match="prefix"):
    data.load_idx(both)
  assert data.load_idx(both, prefix="train")[0].shape == (3, 2, 2)
  with pytest.raises(ValueError, match="File not found"):
    data.read_idx(tmp_path / "missing-idx")


def test_real_mnist_test_set():
  directory = _mnist_dir()
  with gzip.open(os.path.join(directory, "t10k-images-idx3-ubyte.gz"), "rb") as f:
    assert hashlib.md5(f.read()).hexdigest() == MNIST_IMAGES_MD5
  with gzip.open(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
    assert hashlib.md5(f.read()).hexdigest() == MNIST_LABELS_MD5
  images, labels = data.load_idx(directory)
  assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
  prepared = data.load_dataset("mnist_idx")
  assert prepared.train.shape == (8000, 794) and prepared.holdout.shape == (2000, 794)
  assert prepared.domain.radius == 14.0 and prepared.domain.image_shape == (28, 28, 1)
  norms = np.linalg.norm(prepared.train[:, :784].astype(np.float64), axis=1)
  assert norms.max() <= 14.0 and prepared.train.min() >= 0 and prepared.train.max() <= 1


# ----------------------------------------------------------------------------------------------
# TFDS (mocked: nothing is downloaded).


def test_load_tfds_with_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    images, labels, info = data.load_tfds("mnist", split="train", with_info=True)
    assert images.shape == (6, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (6,) and labels.dtype == np.int64
    assert info.features["label"].num_classes == 10
    images, labels = data.load_tfds("fashion_mnist", split="test")
    assert images.shape == (6, 28, 28, 1)
    with pytest.raises(ValueError, match="no feature 'pixels'"):
      data.load_tfds("mnist", image_key="pixels")
    prepared = data.load_dataset("tfds:mnist", holdout_fraction=0.5)
    assert prepared.train.shape == (3, 794) and prepared.holdout.shape == (3, 794)
    assert prepared.domain.pixel_max == 255 and prepared.domain.num_classes == 10
    assert prepared.name == "tfds:mnist"


def test_load_tfds_unprepared_says_how_to_prepare(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(ValueError, match="tfds build mnist"):
    data.load_tfds("mnist", split="train", data_dir=str(tmp_path))
  assert not any(tmp_path.iterdir())  # nothing was downloaded or written


# ----------------------------------------------------------------------------------------------
# CSV, NPZ and schemas.

SCHEMA = {
  "columns": [
    {"name": "age", "type": "numeric", "low": 0, "high": 120},
    {"name": "smoker", "type": "categorical", "categories": ["no", "yes"]},
    {"name": "stage", "type": "categorical", "categories": [1, 2, 3]},
  ],
  "label_column": "smoker",
}


def _write_schema(tmp_path):
  path = tmp_path / "schema.json"
  path.write_text(json.dumps(SCHEMA))
  return path


def test_load_csv(tmp_path):
  schema = _write_schema(tmp_path)
  csv_path = tmp_path / "t.csv"
  csv_path.write_text("id,age,stage,smoker\n1,30,2,no\n2, 55.5 ,3,yes\n3,130,1,yes\n")
  table = data.load_csv(csv_path, schema)
  assert list(table) == ["age", "smoker", "stage"]  # 'id' is not declared, not read
  np.testing.assert_array_equal(table["age"], [30, 55.5, 130])
  np.testing.assert_array_equal(table["smoker"], ["no", "yes", "yes"])
  np.testing.assert_array_equal(table["stage"], [2, 3, 1])
  dom = data.load_schema(schema)
  rec = dom.encode(table)
  assert rec[2, 0] == 1.0  # 130 clipped to the declared 120
  prepared = data.load_dataset(f"csv:{csv_path}", schema=str(schema), holdout_fraction=0.34)
  assert prepared.train.shape[0] + prepared.holdout.shape[0] == 3
  assert prepared.domain == dom
  assert sorted(np.concatenate([prepared.train_labels, prepared.holdout_labels])) == [0, 1, 1]


def test_load_csv_errors(tmp_path):
  schema = _write_schema(tmp_path)
  bad = tmp_path / "bad.csv"
  bad.write_text("age,smoker,stage\n30,maybe,2\n")
  with pytest.raises(ValueError, match="line 2.*'maybe'.*declared categories"):
    data.load_csv(bad, schema)
  bad.write_text("age,smoker,stage\n,no,2\n")
  with pytest.raises(ValueError, match="line 2.*numeric"):
    data.load_csv(bad, schema)
  bad.write_text("age,stage\n30,2\n")
  with pytest.raises(ValueError, match="lacks declared columns \\['smoker'\\]"):
    data.load_csv(bad, schema)
  with pytest.raises(ValueError, match="CSV file not found: .*nope.csv"):
    data.load_csv(tmp_path / "nope.csv", schema)
  with pytest.raises(ValueError, match="Schema file not found"):
    data.load_csv(bad, tmp_path / "nope.json")
  no_bounds = {"columns": [{"name": "age", "type": "numeric", "low": 0}]}
  with pytest.raises(ValueError, match="must declare both 'low' and 'high'"):
    data.load_csv(bad, no_bounds)
  with pytest.raises(ValueError, match="schema="):
    data.load_dataset(f"csv:{bad}")


def test_load_npz_images(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(10, 6, 6)).astype(np.uint8)
  labels = rng.integers(0, 3, size=10)
  path = tmp_path / "img.npz"
  np.savez(path, images=images, labels=labels)
  got_images, got_labels = data.load_npz(path)
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  prepared = data.load_dataset(f"npz:{path}", num_classes=3)
  assert prepared.domain.image_shape == (6, 6, 1) and prepared.domain.pixel_max == 255
  assert prepared.domain.radius == 3.0 and prepared.domain.dim == 36 + 3
  with pytest.raises(ValueError, match="declare num_classes"):
    data.load_dataset(f"npz:{path}")
  no_labels = data.load_dataset(f"npz:{path}", include_labels=False)
  assert no_labels.domain.dim == 36 and no_labels.train_labels is not None
  float_path = tmp_path / "float.npz"
  np.savez(float_path, x=images.astype(np.float32) / 255.0)
  with pytest.raises(ValueError, match="pixel_max"):
    data.load_dataset(f"npz:{float_path}", image_key="x")
  bad_labels = tmp_path / "bad_labels.npz"
  np.savez(bad_labels, images=images, labels=labels + 0.5)
  with pytest.raises(ValueError, match="integers"):
    data.load_dataset(f"npz:{bad_labels}", include_labels=False)
  ok = data.load_dataset(f"npz:{float_path}", image_key="x", pixel_max=1.0)
  assert ok.train_labels is None and ok.domain.num_classes is None
  with pytest.raises(ValueError, match="no array 'images'"):
    data.load_npz(float_path)
  with pytest.raises(ValueError, match="NPZ file not found"):
    data.load_npz(tmp_path / "missing.npz")


def test_load_npz_table(tmp_path):
  schema = _write_schema(tmp_path)
  by_column = tmp_path / "cols.npz"
  np.savez(
    by_column, age=np.array([10.0, 20.0]), smoker=np.array(["no", "yes"]), stage=np.array([1, 3])
  )
  table = data.load_npz(by_column, schema)
  dom = data.load_schema(schema)
  rec = dom.encode(table)
  assert rec.shape == (2, dom.dim)
  as_2d = tmp_path / "table.npz"
  np.savez(as_2d, table=np.array([[10.0, 0, 1], [20.0, 1, 3]]))
  numeric_schema = dict(
    SCHEMA,
    columns=[
      SCHEMA["columns"][0],
      {"name": "smoker", "type": "categorical", "categories": [0, 1]},
      SCHEMA["columns"][2],
    ],
  )
  rec2 = data.load_schema(numeric_schema).encode(data.load_npz(as_2d, numeric_schema))
  np.testing.assert_array_equal(rec2, rec)
  with pytest.raises(ValueError, match="not found"):
    data.load_npz(as_2d, schema, table_key="other")
  prepared = data.load_dataset(
    f"npz:{by_column}", schema=schema, holdout_fraction=0.5, include_labels=False
  )
  assert prepared.domain.column_names == ("age", "stage") and prepared.domain.dim == 4
  assert prepared.train_labels is not None


def test_load_tfds_falls_back_to_tensorflow_without_downloading(monkeypatch):
  """A dataset prepared as tfrecord is read with tfds.load(download=False) if TF is present."""
  import sys
  import types

  tfds = pytest.importorskip("tensorflow_datasets")
  calls = {}

  def failing_source(*args, **kwargs):
    raise NotImplementedError("Random access data source for file format TFRECORD")

  def fake_load(name, **kwargs):
    calls.update(kwargs, name=name)
    arrays = {"image": np.zeros((4, 3, 3, 1), np.uint8), "label": np.arange(4)}
    return arrays, "info"

  monkeypatch.setattr(tfds, "data_source", failing_source)
  monkeypatch.setattr(tfds, "load", fake_load)
  monkeypatch.setattr(tfds, "as_numpy", lambda x: x)
  monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
  images, labels, info = data.load_tfds("mnist", split="test", with_info=True)
  assert images.shape == (4, 3, 3, 1) and labels.tolist() == [0, 1, 2, 3] and info == "info"
  assert calls["download"] is False and calls["split"] == "test" and calls["name"] == "mnist"
