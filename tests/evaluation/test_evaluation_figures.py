"""Readable figures: bars of the most frequent categories, the rest grouped; image mosaics."""

import matplotlib.pyplot as plt
import numpy as np

from lipdp.evaluation import figures


def test_a_40_category_column_shows_the_most_frequent_and_groups_the_rest(tmp_path):
  rng = np.random.default_rng(0)
  names = [f"a long category name number {i:02d}" for i in range(40)]
  weights = np.arange(40, 0, -1, dtype=float)
  real = {
    "job": rng.choice(names, 2000, p=weights / weights.sum()),
    "age": rng.uniform(18, 90, 2000),
  }
  synthetic = {"job": rng.choice(names, 2000), "age": rng.uniform(18, 90, 2000)}
  fig = figures.column_marginals_figure(real, synthetic, bounds={"age": (0.0, 120.0)})
  try:
    job, age = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in job.get_yticklabels()]
    assert len(labels) == figures.MAX_CATEGORIES
    assert labels[-1] == f"other ({40 - figures.MAX_CATEGORIES + 1} categories)"
    assert labels[0].startswith("a long category name")  # the most frequent real one on top
    assert all(len(label) <= figures.MAX_LABEL_CHARS for label in labels)
    assert len(job.patches) == 2 * figures.MAX_CATEGORIES  # real and synthetic bars
    assert job.patches[0].get_width() > 0 and job.patches[0].get_height() < 1  # horizontal
    # The histogram spans the declared bounds, not the values' range.
    edges = sorted({p.get_x() for p in age.patches})
    assert edges[0] == 0.0 and max(p.get_x() + p.get_width() for p in age.patches) == 120.0
  finally:
    plt.close(fig)
  path = figures.column_marginals(real, synthetic, str(tmp_path / "m.png"))
  assert (tmp_path / "m.png").stat().st_size > 1000 and path.endswith("m.png")


def test_category_bars_keep_every_category_up_to_the_limit_and_sum_to_one():
  labels, real, synthetic = figures.category_bars(["x", "y", "y"], ["x", "x", "z"])
  assert labels == ["y", "x", "z"]
  np.testing.assert_allclose(real, [2 / 3, 1 / 3, 0])
  np.testing.assert_allclose(synthetic, [0, 2 / 3, 1 / 3])
  labels, real, _ = figures.category_bars(list("abcdefghijklmnop"), list("abc"), max_categories=4)
  assert labels[-1] == "other (13 categories)" and np.isclose(real.sum(), 1.0)


def test_image_mosaic_tiles_images_row_by_row_with_white_gaps():
  images = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3, 1) / 30
  mosaic = figures.image_mosaic(images, cols=2, pad=1, row_pad=2)
  assert mosaic.shape == (3 * 2 + 2 * 2, 2 * 3 + 1)
  np.testing.assert_array_equal(mosaic[0:2, 4:7], images[1, ..., 0])  # row 0, column 1
  np.testing.assert_array_equal(mosaic[8:10, 0:3], images[4, ..., 0])  # row 2, column 0
  assert np.all(mosaic[2:4] == 1.0) and np.all(mosaic[:, 3] == 1.0)  # the gaps
  assert np.all(mosaic[8:10, 4:7] == 1.0)  # no sixth image


def test_image_grid_writes_a_png(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.random((20, 8, 8))
  path = figures.image_grid(images, images, str(tmp_path / "g.png"), range(20), range(20), "t")
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
