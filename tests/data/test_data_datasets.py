"""Train/holdout split and load_dataset dispatch."""

import json
import math

import numpy as np
import pytest

from lipdp import data


@pytest.mark.parametrize(
  "n,fraction", [(10000, 0.2), (1797, 0.2), (569, 0.25), (5, 0.0), (1, 0.5), (0, 0.2)]
)
def test_split_is_deterministic_disjoint_and_covering(n, fraction):
  train, holdout = data.train_holdout_split(n, fraction, seed=0)
  again = data.train_holdout_split(n, fraction, seed=0)
  np.testing.assert_array_equal(train, again[0])
  np.testing.assert_array_equal(holdout, again[1])
  assert len(np.intersect1d(train, holdout)) == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train, holdout])), np.arange(n))
  assert len(holdout) == int(round(n * fraction))


def test_split_sizes_and_seed():
  train, holdout = data.train_holdout_split(10000, 0.2, 0)
  assert (len(train), len(holdout)) == (8000, 2000)
  other_train, _ = data.train_holdout_split(10000, 0.2, 1)
  assert not np.array_equal(train, other_train)
  # Pinned: the legacy RandomState stream is stable across NumPy versions.
  # RandomState(0).permutation(10) = [2, 8, 4, 9, ...]: the first three are held out.
  np.testing.assert_array_equal(data.train_holdout_split(10, 0.3, 0)[1], [2, 4, 8])
  # The documented MNIST split (8,000 / 2,000 of the test set, seed 0).
  assert holdout[:6].tolist() == [9, 15, 18, 23, 31, 32] and int(holdout.sum()) == 10125536
  for bad in (
    dict(n=-1),
    dict(holdout_fraction=1.0),
    dict(holdout_fraction=-0.1),
    dict(seed=-1),
    dict(seed=0.5),
  ):
    args = dict(n=10, holdout_fraction=0.2, seed=0)
    args.update(bad)
    with pytest.raises(ValueError):
      data.train_holdout_split(**args)


def test_load_digits_dataset():
  prepared = data.load_dataset("digits")
  dom = prepared.domain
  assert isinstance(dom, data.ImageDomain)
  assert dom.image_shape == (8, 8, 1) and dom.pixel_max == 16 and dom.num_classes == 10
  assert dom.radius == data.default_image_radius((8, 8, 1)) == 4.0
  assert prepared.train.shape == (1438, 74) and prepared.holdout.shape == (359, 74)
  assert prepared.train.dtype == np.float32
  np.testing.assert_array_equal(dom.labels(prepared.train), prepared.train_labels)
  for records in (prepared.train, prepared.holdout):
    np.testing.assert_array_equal(dom.project(records), records)
    assert np.linalg.norm(records[:, :64].astype(np.float64), axis=1).max() <= 4.0
  # Same call, same records.
  again = data.load_dataset("digits")
  np.testing.assert_array_equal(again.train, prepared.train)
  # Options.
  small = data.load_dataset(
    "digits", radius=2.0, include_labels=False, split_seed=3, holdout_fraction=0.1
  )
  assert small.domain.dim == 64 and small.domain.radius == 2.0 and small.split_seed == 3
  assert small.holdout.shape[0] == 180 and small.train_labels.shape == (1617,)


def test_prepared_data_describe():
  summary = json.loads(json.dumps(data.load_dataset("digits").describe()))
  assert summary["num_train"] == 1438 and summary["split_seed"] == 0
  assert summary["domain"]["type"] == "image" and summary["labels_in_records"]
  assert summary["domain"]["diameter"] == pytest.approx(math.sqrt(2 * 16 + 2))


def test_load_breast_cancer_dataset():
  prepared = data.load_dataset("breast_cancer")
  assert isinstance(prepared.domain, data.TabularDomain)
  assert prepared.train.shape == (455, 32) and prepared.holdout.shape == (114, 32)
  np.testing.assert_array_equal(prepared.domain.labels(prepared.train), prepared.train_labels)
  unlabeled = data.load_dataset("breast_cancer", include_labels=False)
  assert unlabeled.domain.dim == 30 and unlabeled.domain.label_column is None
  np.testing.assert_array_equal(unlabeled.train_labels, prepared.train_labels)
  np.testing.assert_array_equal(unlabeled.train, prepared.train[:, :30])
  # Its bounds are published statistics of these very records: every release says so.
  assert prepared.notes == (data.sources.BREAST_CANCER_BOUNDS_NOTE,)
  assert "statistics of the very records" in prepared.notes[0]
  assert data.load_dataset("digits").notes == ()


def test_load_dataset_errors(monkeypatch):
  with pytest.raises(ValueError, match="Unknown dataset 'cifar'"):
    data.load_dataset("cifar")
  with pytest.raises(ValueError, match="unexpected options"):
    data.load_dataset("digits", split="test")
  with pytest.raises(ValueError, match="image data only"):
    data.load_dataset("breast_cancer", radius=3.0)
  with pytest.raises(ValueError, match="TFDS name"):
    data.load_dataset("tfds:")
  monkeypatch.delenv("LIPDP_DATA_DIR", raising=False)
  with pytest.raises(ValueError, match="LIPDP_DATA_DIR"):
    data.load_dataset("mnist_idx")


def test_mnist_idx_accepts_the_data_root(tmp_path, monkeypatch):
  rng = np.random.default_rng(0)
  folder = tmp_path / "mnist-test"
  folder.mkdir()
  images = rng.integers(0, 256, size=(20, 28, 28)).astype(np.uint8)
  labels = rng.integers(0, 10, size=20).astype(np.uint8)
  for name, arr, magic in (
    ("t10k-images-idx3-ubyte", images, 2051),
    ("t10k-labels-idx1-ubyte", labels, 2049),
  ):
    header = magic.to_bytes(4, "big") + b"".join(s.to_bytes(4, "big") for s in arr.shape)
    (folder / name).write_bytes(header + arr.tobytes())
  a = data.load_dataset("mnist_idx", data_dir=str(folder))
  b = data.load_dataset("mnist_idx", data_dir=str(tmp_path))
  monkeypatch.setenv("LIPDP_DATA_DIR", str(tmp_path))
  c = data.load_dataset("mnist_idx")
  for other in (b, c):
    np.testing.assert_array_equal(a.train, other.train)
  assert a.train.shape == (16, 794)
