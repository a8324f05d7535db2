"""PrivacyReport: JSON round trip, atomic save, recomputation, scopes."""

import json
import os
import subprocess
import sys

import pytest

from lipdp import privacy
from lipdp.privacy import report as report_lib

COARSE = 1e-3

BASE = dict(lipschitz=1.0, domain="images in [0,1]^784 rescaled into the l2 ball of radius 1",
            diameter=privacy.nonnegative_ball_diameter(1.0, 784), delta=1e-5)

CASES = {
    "public": dict(scope="public", sigma=6.0, k=2),
    "conditional": dict(scope="conditional", sigma=6.0),
    "conditional_shuffled": dict(scope="conditional", sigma=3.0, shuffled=True,
                                 num_records=60000, noise_seeded=True),
    "dp_sgd": dict(scope="dp-sgd", sigma=6.0, dpsgd_noise_multiplier=1.0,
                   dpsgd_sampling_rate=0.02, dpsgd_steps=100,
                   value_discretization_interval=COARSE),
    "dp_sgd_shuffled": dict(scope="dp-sgd", sigma=3.0, shuffled=True, num_records=60000,
                            dpsgd_noise_multiplier=1.0, dpsgd_sampling_rate=0.02,
                            dpsgd_steps=100, value_discretization_interval=COARSE),
    "heteroscedastic": dict(scope="public", mechanism="heteroscedastic_gaussian", sigma_min=4.0,
                            sigma_max=8.0, lipschitz_log_sigma=0.05, latent_dim=16),
    "heteroscedastic_dp_sgd": dict(scope="dp-sgd", mechanism="heteroscedastic_gaussian",
                                   sigma_min=4.0, sigma_max=8.0, lipschitz_log_sigma=0.05,
                                   latent_dim=16, dpsgd_noise_multiplier=1.0,
                                   dpsgd_sampling_rate=0.02, dpsgd_steps=100,
                                   value_discretization_interval=COARSE),
}


@pytest.fixture(scope="module")
def reports():
  return {name: privacy.make_report(**BASE, **case) for name, case in CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_round_trip_recomputes_identical_epsilon(reports, name, tmp_path):
  report = reports[name]
  path = tmp_path / "sub" / "privacy_report.json"
  report.save(str(path))
  assert os.listdir(path.parent) == ["privacy_report.json"]  # no temporary file left
  loaded = privacy.PrivacyReport.load(str(path))
  assert loaded == report
  assert privacy.PrivacyReport.from_json(report.to_json()) == report
  assert loaded.recompute_epsilon() == report.epsilon
  loaded.verify(rtol=0.0)
  json.loads(path.read_text())  # plain JSON


def test_headline_numbers(reports):
  public = reports["public"]
  assert public.sensitivity == BASE["lipschitz"] * BASE["diameter"]
  assert public.epsilon == privacy.gaussian_epsilon(6.0, public.sensitivity, 1e-5, 2)
  assert public.central_epsilon is None and not public.shuffled
  assert "replace" in public.neighboring_relation_statement
  shuffled = reports["conditional_shuffled"]
  assert shuffled.central_epsilon < shuffled.per_record_epsilon  # both kept
  assert shuffled.epsilon == shuffled.central_epsilon
  dpsgd = reports["dp_sgd"]
  assert dpsgd.dpsgd == {"noise_multiplier": 1.0, "sampling_rate": 0.02, "steps": 100}
  assert set(dpsgd.components) == {"release", "dp_sgd"}
  assert dpsgd.epsilon > max(dpsgd.components.values())
  assert reports["dp_sgd_shuffled"].epsilon < dpsgd.epsilon * 1.5


def test_conditional_scope_says_model_dependence_not_covered(reports):
  text = reports["conditional"].scope_statement
  assert "NOT covered" in text
  assert "model" in text and "private records" in text
  assert "NOT covered" not in reports["public"].scope_statement


def test_seeded_noise_is_stated(reports):
  seeded = reports["conditional_shuffled"]
  assert seeded.noise_seeded
  assert "not private against whoever knows the seed" in seeded.noise_statement
  assert not reports["public"].noise_seeded


def test_versions_without_importing_jax():
  report = privacy.make_report(**BASE, scope="public", sigma=5.0,
                               extra_versions={"jax": "0.0-test"})
  for key in ("lipdp", "numpy", "scipy", "dp_accounting", "jax"):
    assert key in report.versions
  code = ("import sys; from lipdp import privacy; "
          "privacy.library_versions({'flax': '1'}); "
          "bad = [m for m in sys.modules if m.split('.')[0] in ('jax', 'flax')]; "
          "assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_tampering_is_detected(reports):
  data = reports["public"].to_dict()
  data["sensitivity"] = data["sensitivity"] / 2  # the classic factor-2 bug
  with pytest.raises(ValueError, match="sensitivity"):
    privacy.PrivacyReport.from_dict(data).verify()
  data = reports["public"].to_dict()
  data["sigma"] = data["sigma"] * 2  # noise in the report differs from the claim
  with pytest.raises(ValueError, match="epsilon"):
    privacy.PrivacyReport.from_dict(data).verify()
  data = reports["conditional"].to_dict()
  data["scope_statement"] = "all covered"
  with pytest.raises(ValueError, match="scope_statement"):
    privacy.PrivacyReport.from_dict(data).verify()


def test_atomic_save_keeps_old_file_on_failure(reports, tmp_path, monkeypatch):
  path = tmp_path / "report.json"
  reports["public"].save(str(path))
  before = path.read_text()

  def broken_replace(src, dst):
    raise OSError("disk full")

  monkeypatch.setattr(report_lib.os, "replace", broken_replace)
  with pytest.raises(OSError):
    reports["conditional"].save(str(path))
  assert path.read_text() == before
  assert os.listdir(tmp_path) == ["report.json"]


@pytest.mark.parametrize("kwargs,match", [
    (dict(scope="dp-sgd", sigma=5.0), "dp-sgd"),
    (dict(scope="public", sigma=5.0, dpsgd_noise_multiplier=1.0, dpsgd_sampling_rate=0.1,
          dpsgd_steps=10), "scope"),
    (dict(scope="public", sigma=5.0, dpsgd_noise_multiplier=1.0), "dpsgd"),
    (dict(scope="public", sigma=5.0, shuffled=True), "num_records"),
    (dict(scope="everything", sigma=5.0), "scope"),
    (dict(scope="public"), "sigma"),
    (dict(scope="public", mechanism="heteroscedastic_gaussian", sigma_min=1.0), "sigma_max"),
    (dict(scope="public", sigma=5.0, shuffled="yes"), "shuffled"),
])
def test_bad_report_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    privacy.make_report(**BASE, **kwargs)


def test_unknown_fields_rejected(reports):
  data = reports["public"].to_dict()
  data["epsilon_extra"] = 1.0
  with pytest.raises(ValueError, match="unknown"):
    privacy.PrivacyReport.from_dict(data)
