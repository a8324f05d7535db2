"""DP-SGD accounting and its composition with the release, against dp_accounting."""

import math

import dp_accounting
import numpy
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.pld import privacy_loss_distribution as pld_lib

from lipdp import privacy

REPLACE = dp_accounting.NeighboringRelation.REPLACE_ONE
ADD_REMOVE = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
COARSE = 1e-3  # PLD grid for the slower tests (pessimistic, so still upper bounds).


def _accountant_epsilon(event, delta, relation=REPLACE, interval=1e-4):
  accountant = pld_privacy_accountant.PLDAccountant(
    relation, value_discretization_interval=interval
  )
  return accountant.compose(event).get_epsilon(delta)


def test_release_event_reproduces_analytic_gaussian():
  # The replace-one event with noise multiplier 2 sigma / Delta is the Gaussian pair
  # at distance Delta: the PLD epsilon is the analytic one, up to the (pessimistic) grid.
  for sigma, sens, k in [(3.7306, 1.0, 1), (2.0, 0.5, 3), (10.0, 4.0, 7)]:
    exact = privacy.gaussian_epsilon(sigma, sens, 1e-5, k)
    pld = privacy.pld_epsilon(privacy.gaussian_release_event(sigma, sens, k), 1e-5)
    assert exact <= pld <= exact + 1e-3 * max(exact, 1.0)


def test_dpsgd_matches_pld_accountant_directly():
  z, q, steps, delta = 1.1, 0.01, 300, 1e-5
  event = dp_accounting.SelfComposedDpEvent(
    dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps
  )
  assert privacy.dpsgd_epsilon(z, q, steps, delta) == _accountant_epsilon(event, delta)
  # Replace-one is strictly more expensive than add/remove for the same run.
  assert privacy.dpsgd_epsilon(z, q, steps, delta) > _accountant_epsilon(event, delta, ADD_REMOVE)


def test_dpsgd_full_batch_one_step_is_gaussian_at_distance_2c():
  # q = 1, one step: the clipped sum moves by up to 2C under replace-one, noise z C.
  z, delta = 3.0, 1e-6
  exact = privacy.gaussian_epsilon(z, 2.0, delta)
  pld = privacy.dpsgd_epsilon(z, 1.0, 1, delta)
  assert exact <= pld <= exact * (1 + 1e-3)


def test_composition_matches_accountant_and_independent_plds():
  z, q, steps, sigma, sens, k, delta = 1.0, 0.02, 100, 6.0, 1.5, 2, 1e-5
  result = privacy.compose_dpsgd_and_release(z, q, steps, sigma, sens, delta, k)
  # 1. The dp_accounting PLD accountant, given both events directly.
  events = dp_accounting.ComposedDpEvent(
    [
      dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps
      ),
      dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(2 * sigma / sens), k),
    ]
  )
  assert result.total_epsilon == _accountant_epsilon(events, delta)
  # 2. PLDs built by hand: the release as a Gaussian at distance Delta with std
  #    sigma/sqrt(k) (add/remove PLD of a sensitivity-Delta Gaussian is the same pair).
  training = pld_lib.from_gaussian_mechanism(
    standard_deviation=z, sampling_prob=q, neighboring_relation=REPLACE
  ).self_compose(steps)
  release = pld_lib.from_gaussian_mechanism(
    standard_deviation=sigma / math.sqrt(k), sensitivity=sens
  )
  by_hand = training.compose(release).get_epsilon_for_delta(delta)
  assert result.total_epsilon == pytest.approx(by_hand, rel=2e-3)
  # Components, and the total between the largest part and the sum.
  assert result.release_epsilon == privacy.gaussian_epsilon(sigma, sens, delta, k)
  assert result.dpsgd_epsilon == privacy.dpsgd_epsilon(z, q, steps, delta)
  assert max(result.dpsgd_epsilon, result.release_epsilon) < result.total_epsilon
  assert result.total_epsilon < result.dpsgd_epsilon + result.release_epsilon
  assert "replace-one" in result.neighboring_relation


def test_dpsgd_pld_is_built_once_per_run_and_every_epsilon_stays_the_accountants():
  # DP-SGD's PLD is kept between calls (calibration, the shuffled bound and the report all need
  # the same run's); reuse must not change a digit, and nothing may mutate the kept PLD.
  z, q, steps, delta = 1.3, 0.05, 60, 1e-5
  training = dp_accounting.SelfComposedDpEvent(
    dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps
  )
  first = privacy.compose_dpsgd_and_release(z, q, steps, 2.0, 1.0, delta, k=3)
  other = privacy.compose_dpsgd_and_release(z, q, steps, 0.7, 1.0, delta)  # same run, new release
  again = privacy.compose_dpsgd_and_release(
    numpy.float64(z), q, numpy.int64(steps), 2.0, 1.0, delta, k=3
  )
  for sigma, k, result in [(2.0, 3, first), (0.7, 1, other), (2.0, 3, again)]:
    release = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(2 * sigma), k)
    composed = dp_accounting.ComposedDpEvent([training, release])
    assert result.total_epsilon == _accountant_epsilon(composed, delta)
    assert result.dpsgd_epsilon == _accountant_epsilon(training, delta)
  # The (epsilon, delta) composition uses the bare subsampled PLD, as it always has.
  by_hand = (
    pld_lib.from_gaussian_mechanism(
      standard_deviation=z, sampling_prob=q, neighboring_relation=REPLACE
    )
    .self_compose(steps)
    .compose(
      pld_lib.from_privacy_parameters(
        dp_accounting.pld.common.DifferentialPrivacyParameters(0.5, delta / 2)
      )
    )
    .get_epsilon_for_delta(delta)
  )
  assert privacy.compose_dpsgd_and_dp_mechanism(z, q, steps, 0.5, delta / 2, delta) == by_hand
  with pytest.raises(ValueError, match="noise_multiplier"):
    privacy.dpsgd_epsilon(-1.0, q, steps, delta)


def test_noise_multiplier_for_target_epsilon():
  q, steps, delta, target = 0.05, 50, 1e-5, 2.0
  z = privacy.dpsgd_noise_multiplier(
    target, q, steps, delta, value_discretization_interval=COARSE, tol=1e-3
  )
  assert privacy.dpsgd_epsilon(z, q, steps, delta, COARSE) <= target
  assert privacy.dpsgd_epsilon(z * 0.98, q, steps, delta, COARSE) > target


def test_compose_with_an_epsilon_delta_mechanism():
  z, q, steps, delta = 1.0, 0.02, 100, 1e-5
  alone = privacy.dpsgd_epsilon(z, q, steps, delta)
  total = privacy.compose_dpsgd_and_dp_mechanism(z, q, steps, 0.5, delta / 2, delta)
  assert total > alone
  assert total > 0.5
  with pytest.raises(ValueError, match="mechanism_delta"):
    privacy.compose_dpsgd_and_dp_mechanism(z, q, steps, 0.5, delta, delta)
