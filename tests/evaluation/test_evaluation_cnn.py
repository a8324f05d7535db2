"""The small CNN: its convolution is nn.Conv's operator, training is deterministic and fast."""

import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from lipdp.data import load_dataset
from lipdp.evaluation import cnn
from lipdp.evaluation import downstream


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits")


@pytest.mark.parametrize("stride", [1, 2])
def test_patch_conv_is_the_convolution_operator(stride):
  x = jax.random.uniform(jax.random.key(0), (2, 7, 8, 3))
  patch = cnn.PatchConv(5, 3, stride)
  params = patch.init(jax.random.key(1), x)
  w = params["params"]["Dense_0"]["kernel"]  # (C * k * k, F), channel-major patches
  b = params["params"]["Dense_0"]["bias"]
  kernel = w.reshape(3, 3, 3, 5).transpose(1, 2, 0, 3)  # -> (kh, kw, C, F), HWIO
  conv = nn.Conv(5, (3, 3), strides=stride, padding="SAME")
  expected = conv.apply({"params": {"kernel": kernel, "bias": b}}, x)
  np.testing.assert_allclose(patch.apply(params, x), expected, rtol=1e-5, atol=1e-5)


def test_cnn_features_and_determinism(digits):
  x, y = downstream.features_and_labels(digits.domain, digits.train[:600])  # 600: shared compile
  a = cnn.CNNClassifier(10, digits.domain.image_shape, seed=4).fit(x, y)
  b = cnn.CNNClassifier(10, digits.domain.image_shape, seed=4).fit(x, y)
  c = cnn.CNNClassifier(10, digits.domain.image_shape, seed=5).fit(x, y)
  fa, fb, fc = a.features(x[:7]), b.features(x[:7]), c.features(x[:7])
  assert fa.shape == (7, cnn.CNN_SETTINGS["dense_features"])
  np.testing.assert_array_equal(fa, fb)
  assert not np.array_equal(fa, fc)
  assert a.predict(x[:0]).shape == (0,)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LIPDP_DATA_DIR"), reason="LIPDP_DATA_DIR is not set")
def test_cnn_on_mnist_size_is_accurate():
  # Accuracy only: its speed is a benchmark's to measure, not a timed test's (and the suite
  # compiles without XLA's optimisations, tests/conftest.py).
  data = load_dataset("mnist_idx")
  x, y = downstream.features_and_labels(data.domain, data.train)
  xh, yh = downstream.features_and_labels(data.domain, data.holdout)
  clf = cnn.CNNClassifier(10, data.domain.image_shape, seed=0).fit(x, y)
  assert np.mean(clf.predict(xh) == yh) > 0.95
