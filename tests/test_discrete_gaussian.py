"""The exact discrete Gaussian sampler (lipdp.discrete_gaussian) and the lattice release."""

import math

import numpy as np
import pytest
from scipy import stats

from lipdp import discrete_gaussian as dg
from lipdp import privacy


class ScriptedWords(dg.WordSource):
  """A word source that returns given words (to reach the tie branch of `bernoulli`)."""

  def __init__(self, words):
    super().__init__(None)
    self._script = list(words)

  def word(self):
    return self._script.pop(0)


def test_bernoulli_reads_further_words_only_on_a_tie():
  half = 1 << 63  # the first 64 binary digits of 1/2; the rest are 0
  assert ScriptedWords([half - 1]).bernoulli(1, 2)
  assert not ScriptedWords([half + 1]).bernoulli(1, 2)
  assert not ScriptedWords([half, 5]).bernoulli(1, 2)  # U = 1/2 + 5 2^-128 > 1/2
  # 1/3 = 0.0101...: its words are all (2^64 - 1) / 3; a tie then a smaller word is below.
  third = ((1 << 64) - 1) // 3
  assert ScriptedWords([third, third - 1]).bernoulli(1, 3)
  assert not ScriptedWords([third, third + 1]).bernoulli(1, 3)
  assert ScriptedWords([0]).bernoulli(1, 1) and not ScriptedWords([0]).bernoulli(0, 1)


def _binomial_z(hits, n, p):
  return (hits - n * p) / math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p,q", [(1, 3), (5, 2), (0, 7), (7, 7)])
def test_bernoulli_exp_has_probability_exp_minus_p_over_q(p, q):
  source = dg.WordSource(np.random.default_rng(1))
  n = 40_000
  hits = sum(dg.bernoulli_exp(source, p, q) for _ in range(n))
  target = math.exp(-p / q)
  if target == 1.0:
    assert hits == n
  else:
    assert abs(_binomial_z(hits, n, target)) < 4.5


def _chi_square_p(samples, pmf, support):
  counts = np.array([np.sum(samples == y) for y in support], float)
  expected = len(samples) * pmf / pmf.sum()
  assert np.sum(samples < support[0]) + np.sum(samples > support[-1]) <= 1e-3 * len(samples)
  keep = expected > 5
  return stats.chisquare(counts[keep], expected[keep] * counts[keep].sum() / expected[keep].sum())


def test_discrete_laplace_matches_its_pmf():
  t = 3
  source = dg.WordSource(np.random.default_rng(2))
  samples = np.array([dg.discrete_laplace(source, t) for _ in range(60_000)])
  support = np.arange(-40, 41)
  assert _chi_square_p(samples, np.exp(-np.abs(support) / t), support).pvalue > 1e-4


@pytest.mark.parametrize(
  "scale_squared,vectorised", [(2, False), (10, False), (1, True), (9, True), (100, True)]
)
def test_discrete_gaussian_matches_its_pmf_and_not_a_neighbour(scale_squared, vectorised):
  samples = dg.discrete_gaussian_array(
    np.random.default_rng(3), scale_squared, (80_000,), vectorised=vectorised
  )
  span = int(7 * math.sqrt(scale_squared)) + 3
  support = np.arange(-span, span + 1)
  pmf = np.exp(-(support**2) / (2.0 * scale_squared))
  assert _chi_square_p(samples, pmf, support).pvalue > 1e-4
  # The test has power: a variance 15% larger is rejected.
  wrong = np.exp(-(support**2) / (2.0 * 1.15 * scale_squared))
  assert _chi_square_p(samples, wrong, support).pvalue < 1e-8


def test_the_vectorised_bernoulli_is_exact_where_words_are_redrawn():
  q = 3 * 2**61  # 2^64 mod q = 2^61: a quarter of the words are redrawn
  p = np.full(100_000, 2**61, np.int64)
  bernoulli = dg._bernoulli_fraction  # pylint: disable=protected-access
  hits = bernoulli(np.random.default_rng(9), p, q).sum()
  assert abs(_binomial_z(hits, p.size, 1 / 3)) < 4.5


def test_far_tail_proposals_take_the_python_int_path(monkeypatch):
  """Proposals beyond 2^31 are decided in Python ints; with the limit lowered to reach that
  branch often, the draws keep the target law."""
  monkeypatch.setattr(dg, "_BIG_PROPOSAL", 4)
  samples = dg.discrete_gaussian_array(np.random.default_rng(10), 9, (40_000,))
  support = np.arange(-20, 21)
  assert np.mean(np.abs(samples) >= 4) > 0.1
  assert _chi_square_p(samples, np.exp(-(support**2) / 18.0), support).pvalue > 1e-4


def test_discrete_gaussian_at_the_release_scale():
  scale = 2**16 + 12_345
  samples = dg.discrete_gaussian_array(np.random.default_rng(4), scale**2, (20_000,))
  assert samples.dtype == np.int64
  assert abs(samples.mean()) < 4.5 * scale / math.sqrt(len(samples))
  assert abs(samples.std() / scale - 1.0) < 0.03
  assert len(np.unique(samples)) > 19_000  # no coarse grid inside


def test_samples_reproduce_from_a_seeded_generator_and_differ_across_seeds():
  a = dg.discrete_gaussian_array(np.random.default_rng(5), 1000, (3, 4))
  b = dg.discrete_gaussian_array(np.random.default_rng(5), 1000, (3, 4))
  c = dg.discrete_gaussian_array(np.random.default_rng(6), 1000, (3, 4))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  with pytest.raises(ValueError, match="scale_squared"):
    dg.discrete_gaussian_array(np.random.default_rng(5), 2.5, (3,))


def test_lattice_release_lies_on_the_lattice_around_the_rounded_means():
  lattice = privacy.LatticeNoise.covering(0.7, 2.0, 3)
  gamma = lattice.grid
  means = np.array([[0.1, -2.5, 3.0], [1e-9, 0.0, 7.25]])
  out = dg.lattice_release(np.random.default_rng(7), means, lattice, k=4)
  assert out.shape == (2, 4, 3) and out.dtype == np.float64
  steps = out / gamma
  np.testing.assert_array_equal(steps, np.round(steps))  # exact multiples of gamma
  centres = np.rint(means / gamma)
  noise = steps - centres[:, None, :]
  # The noise is the discrete Gaussian of scale s_g grid units: about sigma, centred.
  assert 0.5 < noise.std() / lattice.scale < 1.6
  assert np.all(np.abs(noise) < 8 * lattice.scale)


def test_lattice_release_clips_far_means_instead_of_refusing_them():
  """A refusal that reads the means would depend on the private records (a review's finding):
  a mean beyond 2^52 grid steps is clipped there, still exact, and only NaN is refused."""
  lattice = privacy.LatticeNoise.covering(0.7, 2.0, 2)
  rng = np.random.default_rng(8)
  with pytest.raises(ValueError, match="shape"):
    dg.lattice_release(rng, np.zeros((2, 3)), lattice, 1)
  with pytest.raises(ValueError, match="NaN"):
    dg.lattice_release(rng, np.array([[0.0, np.nan]]), lattice, 1)
  out = dg.lattice_release(rng, np.array([[-np.inf, 1e30]]), lattice, 2)
  steps = out / lattice.grid
  np.testing.assert_array_equal(steps, np.round(steps))
  limit = 2**52 - 1
  assert np.all(np.abs(steps - np.array([-limit, limit])) < 40 * lattice.scale)


def test_gaussian_measurements_keep_counts_on_their_grid_and_cover_other_values():
  """Counts lie on the grid, so the measurement adds noise of accounted sigma at least sigma
  and rounds nothing; real values are rounded, and the lattice's accounted ratio covers it."""
  rng = np.random.default_rng(11)
  counts = rng.integers(0, 50, size=4000).astype(np.float64)
  noisy = dg.gaussian_measurement(rng, counts, 3.0, math.sqrt(2.0), counts=True)
  noise = noisy - counts
  gamma = 2.0 ** (math.frexp(3.0)[1] - 1 - privacy.lattice.SCALE_BITS)
  np.testing.assert_array_equal(noise / gamma, np.round(noise / gamma))
  assert abs(noise.std() / 3.0 - 1.0) < 0.05 and abs(noise.mean()) < 0.2
  assert privacy.LatticeNoise.at_least(3.0, -15, 7).accounted_sigma() >= 3.0
  values = rng.normal(size=(5, 6))
  noisy = dg.gaussian_measurement(rng, values, 0.5, 0.1, counts=False)
  with pytest.raises(ValueError, match="counts must be integers"):
    dg.gaussian_measurement(rng, values, 0.5, 0.1, counts=True)
  assert noisy.shape == values.shape
  assert abs(np.std(noisy - values) / 0.5 - 1.0) < 0.5


def test_laplace_measurements_are_discrete_laplaces_at_least_as_wide_on_the_counts_grid():
  rng = np.random.default_rng(12)
  counts = rng.integers(0, 30, size=60_000).astype(np.float64)
  scale = 2.5
  noise = dg.laplace_measurement(rng, counts, scale) - counts
  gamma = 2.0 ** (math.frexp(scale)[1] - 1 - privacy.lattice.SCALE_BITS)
  steps = noise / gamma
  np.testing.assert_array_equal(steps, np.round(steps))
  # Laplace(b): mean |noise| = b, sd = sqrt(2) b (t = ceil(b / gamma) >= b / gamma).
  assert abs(np.mean(np.abs(noise)) / scale - 1.0) < 0.02
  assert abs(noise.std() / (math.sqrt(2.0) * scale) - 1.0) < 0.03
  with pytest.raises(ValueError, match="counts must be integers"):
    dg.laplace_measurement(rng, np.array([0.1]), scale)
  # A scale past 2^16: the grid stays 1, so odd counts are as much on it as even ones.
  wide = dg.laplace_measurement(rng, np.array([3.0, 4.0]), 2.0**17 + 1)
  np.testing.assert_array_equal(wide, np.round(wide))


def test_the_exponential_mechanism_matches_its_distribution():
  """Frequencies of 4,000 draws against exp(s_i / T) / Z (chi-squared, and a neighbour with one
  score moved by T ln 2 is rejected), with scores whose exact binary values matter (0.1);
  a gap of 2,000 T is never crossed, and equal scores are uniform."""
  rng = np.random.default_rng(0)
  scores, temperature = np.array([0.1, 1.0, 2.5, -0.7]), 0.9
  draws = np.bincount([dg.exponential_mechanism(rng, scores, temperature) for _ in range(4000)])
  weights = np.exp(scores / temperature)
  assert stats.chisquare(draws, 4000 * weights / weights.sum()).pvalue > 1e-4
  moved = weights * np.array([1, 1, 2, 1])
  assert stats.chisquare(draws, 4000 * moved / moved.sum()).pvalue < 1e-6
  assert {dg.exponential_mechanism(rng, [0.0, -2000.0], 1.0) for _ in range(50)} == {0}
  equal = np.bincount([dg.exponential_mechanism(rng, [3.0] * 3, 0.5) for _ in range(1500)])
  assert stats.chisquare(equal).pvalue > 1e-4
  for bad in ([], [[1.0]], [1.0, math.nan]):
    with pytest.raises(ValueError, match="scores"):
      dg.exponential_mechanism(rng, bad, 1.0)
  with pytest.raises(ValueError, match="temperature"):
    dg.exponential_mechanism(rng, [1.0], 0.0)
