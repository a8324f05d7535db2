"""lipdp.privacy: the analytic privacy module (numpy, scipy, dp_accounting only).

Everything a reviewer needs to check the privacy math is here, and nothing here
imports jax, flax or any lipdp model code. One neighbouring relation throughout:
replace-one (bounded DP). See docs/privacy.md for the derivations.

  events           the relation, the scope, one typed event per mechanism
  diameters        l2 diameters of declared domains; Delta = L * D
  gaussian         exact analytic Gaussian mechanism (Balle and Wang 2018)
  lattice          the release's exact discrete Gaussian noise, accounted as a continuous one
  composition      DP-SGD (Poisson-sampled Gaussian) composed with the release (PLD)
  heteroscedastic  RDP of a learned, bounded sigma(x) (Gil et al. 2013; Mironov 2017)
  zcdp             zCDP of noisy measurements and its (epsilon, delta) (the baselines)
  shuffle          amplification by shuffling (Feldman, McMillan, Talwar 2021)
  information      what a per-record release can carry about its record (a capacity bound)
  accounting       every epsilon of one release, and which one is the headline
  budget           the noise of the release and of DP-SGD, fixed before training
  report           PrivacyReport: JSON, atomic save, recompute_epsilon, verify
  audit            empirical Clopper-Pearson lower bound on epsilon
"""

from lipdp.privacy.audit import AuditResult
from lipdp.privacy.audit import audit_mechanism
from lipdp.privacy.audit import clopper_pearson_lower
from lipdp.privacy.audit import clopper_pearson_upper
from lipdp.privacy.audit import gaussian_mechanism
from lipdp.privacy.accounting import Accounting
from lipdp.privacy.accounting import account
from lipdp.privacy.budget import BudgetPlan
from lipdp.privacy.budget import calibrate_dpsgd_noise
from lipdp.privacy.budget import plan_budget
from lipdp.privacy.composition import CompositionResult
from lipdp.privacy.composition import compose_dpsgd_and_dp_mechanism
from lipdp.privacy.composition import compose_dpsgd_and_release
from lipdp.privacy.composition import dpsgd_epsilon
from lipdp.privacy.composition import dpsgd_event
from lipdp.privacy.composition import dpsgd_noise_multiplier
from lipdp.privacy.composition import gaussian_release_event
from lipdp.privacy.composition import pld_epsilon
from lipdp.privacy.gaussian import calibrate_sigma
from lipdp.privacy.gaussian import classic_gaussian_sigma
from lipdp.privacy.gaussian import gaussian_delta
from lipdp.privacy.gaussian import gaussian_epsilon
from lipdp.privacy.gaussian import max_lipschitz
from lipdp.privacy.information import fano_error_lower_bound
from lipdp.privacy.lattice import LatticeNoise
from lipdp.privacy.information import release_information_bound
from lipdp.privacy.heteroscedastic import HeteroscedasticResult
from lipdp.privacy.heteroscedastic import WorstCasePair
from lipdp.privacy.heteroscedastic import calibrate_lipschitz as heteroscedastic_lipschitz
from lipdp.privacy.heteroscedastic import gaussian_rdp
from lipdp.privacy.heteroscedastic import heteroscedastic_epsilon
from lipdp.privacy.heteroscedastic import heteroscedastic_rdp
from lipdp.privacy.heteroscedastic import heteroscedastic_worst_case
from lipdp.privacy.heteroscedastic import isotropic_gaussian_renyi_divergence
from lipdp.privacy.heteroscedastic import max_finite_order
from lipdp.privacy.heteroscedastic import max_sigma_ratio
from lipdp.privacy.heteroscedastic import rdp_to_epsilon
from lipdp.privacy.events import REPLACE_ONE
from lipdp.privacy.events import CentralRelease
from lipdp.privacy.events import DPSGD_SUM_ARITHMETICS, DPSGDEvent
from lipdp.privacy.events import GaussianRelease
from lipdp.privacy.events import HeteroscedasticRelease
from lipdp.privacy.events import NeighboringRelation
from lipdp.privacy.events import NoisyMeasurement
from lipdp.privacy.events import PriorSampling
from lipdp.privacy.events import Scope
from lipdp.privacy.report import PrivacyReport
from lipdp.privacy.report import domain_digest
from lipdp.privacy.report import library_versions
from lipdp.privacy.report import make_report
from lipdp.privacy.diameters import box_diameter
from lipdp.privacy.diameters import l2_ball_diameter
from lipdp.privacy.diameters import nonnegative_ball_diameter
from lipdp.privacy.diameters import one_hot_diameter
from lipdp.privacy.diameters import product_diameter
from lipdp.privacy.diameters import sensitivity
from lipdp.privacy.shuffle import ShuffledCompositionResult
from lipdp.privacy.shuffle import ShuffleResult
from lipdp.privacy.shuffle import calibrate_sigma_shuffled
from lipdp.privacy.shuffle import clones_approximate_dp
from lipdp.privacy.shuffle import clones_closed_form
from lipdp.privacy.shuffle import clones_numerical_delta
from lipdp.privacy.shuffle import clones_numerical_epsilon
from lipdp.privacy.shuffle import clones_validity_limit
from lipdp.privacy.shuffle import gaussian_clone_slack
from lipdp.privacy.shuffle import gaussian_clones_delta
from lipdp.privacy.shuffle import compose_dpsgd_and_shuffled_release
from lipdp.privacy.shuffle import shuffle_epsilon
from lipdp.privacy.shuffle import shuffled_gaussian_delta
from lipdp.privacy.shuffle import shuffled_gaussian_epsilon
from lipdp.privacy.zcdp import gaussian_rho
from lipdp.privacy.zcdp import zcdp_epsilon
from lipdp.privacy.zcdp import zcdp_rho
