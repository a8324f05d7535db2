"""PrivacyReport: JSON round trip, atomic save, recomputation, derived statements, headlines."""

import json
import math
import os

import pytest

from lipdp import files
from lipdp import privacy

COARSE = 1e-3
GAUSS6 = privacy.GaussianRelease(6.0)
DPSGD = privacy.DPSGDEvent(noise_multiplier=1.0, sampling_rate=0.02, steps=100)
HETERO = privacy.HeteroscedasticRelease(
  sigma_min=4.0, sigma_max=8.0, lipschitz_log_sigma=0.05, latent_dim=16
)

BASE = dict(
  lipschitz=1.0,
  domain="images in [0,1]^784 rescaled into the l2 ball of radius 1",
  diameter=privacy.nonnegative_ball_diameter(1.0, 784),
  delta=1e-5,
  num_records=60000,
)

CASES = {
  "public": dict(release=privacy.GaussianRelease(6.0, k=2), scope="public"),
  "public_shuffled": dict(release=privacy.GaussianRelease(3.0), scope="public", shuffled=True),
  "conditional": dict(
    release=GAUSS6, scope="conditional", certificate={"layer_bounds": [0.5, 2.0]}
  ),
  "conditional_shuffled": dict(
    release=privacy.GaussianRelease(3.0), scope="conditional", shuffled=True, noise_seeded=True
  ),
  "dp_sgd": dict(release=GAUSS6, scope="dp-sgd", dpsgd=DPSGD, value_discretization_interval=COARSE),
  "dp_sgd_shuffled": dict(
    release=privacy.GaussianRelease(3.0),
    scope="dp-sgd",
    shuffled=True,
    dpsgd=DPSGD,
    training_seeded=True,
    value_discretization_interval=COARSE,
  ),
  "heteroscedastic": dict(
    release=HETERO,
    scope="public",
    shuffled=True,
    certificate={
      "layer_bounds": [0.8, 1.5],
      "mean_scale": 0.8,
      "log_sigma_lipschitz": 0.06,
      "log_sigma_scale": 0.8,
    },
  ),
  "heteroscedastic_dp_sgd": dict(
    release=HETERO, scope="dp-sgd", dpsgd=DPSGD, value_discretization_interval=COARSE
  ),
}


def _make(case):
  case = dict(case)
  release = case.pop("release")
  if isinstance(release, privacy.HeteroscedasticRelease):
    case.setdefault("certificate", {"layer_bounds": [1.0], "log_sigma_lipschitz": 0.05})
  elif isinstance(release, privacy.GaussianRelease):
    case.setdefault("certificate", {"layer_bounds": [1.0]})  # L = 1 certified
  if "certificate" in case:  # what latent_release certifies and releases in now
    case["certificate"] = {"arithmetic": "float64", **case["certificate"]}
  return privacy.make_report(release, **BASE, **case)


@pytest.fixture(scope="module")
def reports():
  return {name: _make(case) for name, case in CASES.items()}


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
  assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def test_headline_numbers(reports):
  public = reports["public"]
  assert public.sensitivity == BASE["lipschitz"] * BASE["diameter"]
  assert public.epsilon == privacy.gaussian_epsilon(6.0, public.sensitivity, 1e-5, 2)
  assert public.central_epsilon is None and not public.shuffled
  assert "replace" in public.neighboring_relation.statement
  dpsgd = reports["dp_sgd"]
  assert dpsgd.dpsgd == DPSGD
  assert set(dpsgd.components) == {"release", "dp_sgd"}
  assert dpsgd.epsilon > max(dpsgd.components.values())
  assert reports["dp_sgd_shuffled"].epsilon < dpsgd.epsilon * 1.5


def test_headline_follows_the_scope(reports):
  """Finding 4: shuffling amplifies the headline only where the weights are covered."""
  conditional = reports["conditional_shuffled"]
  assert conditional.central_epsilon < conditional.per_record_epsilon  # both kept
  assert conditional.epsilon == conditional.per_record_epsilon
  assert conditional.headline == privacy.accounting.HEADLINE_PER_RECORD
  assert privacy.report.CAVEAT_CONDITIONAL_SHUFFLE in conditional.caveats
  # Issue 17, item 7: the shuffled central epsilon is not printed beside the headline as if it
  # were a guarantee, in a scope whose weights are not covered.
  summary = conditional.summary()
  assert "central epsilon =" not in summary
  assert f"{conditional.central_epsilon:.4g}" not in summary
  assert "no central epsilon of the shuffled release is claimed in this scope" in summary
  assert "central epsilon of the shuffled release =" in reports["public_shuffled"].summary()
  public = reports["public_shuffled"]
  assert public.epsilon == public.central_epsilon < public.per_record_epsilon
  assert public.headline == privacy.accounting.HEADLINE_CENTRAL
  assert privacy.report.CAVEAT_CONDITIONAL_SHUFFLE not in public.caveats
  assert reports["dp_sgd_shuffled"].headline == privacy.accounting.HEADLINE_TOTAL_SHUFFLED
  # The heteroscedastic mechanism claims no amplification, and says so.
  hetero = reports["heteroscedastic"]
  assert hetero.central_epsilon is None and hetero.epsilon == hetero.per_record_epsilon
  assert privacy.report.CAVEAT_HETEROSCEDASTIC_SHUFFLE in hetero.caveats


def test_conditional_scope_says_model_dependence_not_covered(reports):
  text = reports["conditional"].scope_statement
  assert "NOT covered" in text
  assert "model" in text and "private records" in text
  assert "NOT covered" not in reports["public"].scope_statement
  assert privacy.report.CAVEAT_CONDITIONAL_MODEL in reports["conditional"].caveats


def test_seeded_noise_is_stated(reports):
  seeded = reports["conditional_shuffled"]
  assert seeded.noise_seeded
  assert "not private against whoever knows or guesses the seed" in seeded.noise_statement
  assert privacy.report.CAVEAT_NOISE_SEEDED in seeded.caveats
  assert not reports["public"].noise_seeded
  assert "readable by its owner only" in reports["public"].noise_statement
  assert privacy.report.CAVEAT_TRAINING_SEEDED in reports["dp_sgd_shuffled"].caveats
  assert "not private" in reports["dp_sgd_shuffled"].noise_statement


def test_versions_are_recorded(reports):
  report = _make(dict(release=GAUSS6, scope="public", extra_versions={"jax": "0.0-t"}))
  for key in ("lipdp", "numpy", "scipy", "dp_accounting", "jax"):
    assert key in report.versions


def test_tampering_with_numbers_is_detected(reports):
  data = reports["public"].to_dict()
  data["sensitivity"] = data["sensitivity"] / 2  # the classic factor-2 bug
  with pytest.raises(ValueError, match="sensitivity"):
    privacy.PrivacyReport.from_dict(data).verify()
  data = reports["public"].to_dict()
  data["release"]["sigma"] = data["release"]["sigma"] * 2  # the noise differs from the claim
  with pytest.raises(ValueError, match="epsilon"):
    privacy.PrivacyReport.from_dict(data).verify()
  data = reports["conditional_shuffled"].to_dict()
  data["epsilon"] = data["central_epsilon"]  # the old, amplified headline
  with pytest.raises(ValueError, match="epsilon"):
    privacy.PrivacyReport.from_dict(data).verify()


@pytest.mark.parametrize(
  "case,field",
  [
    ("public", "epsilon"),
    ("public", "sensitivity"),
    ("public", "per_record_epsilon"),
    ("conditional_shuffled", "central_epsilon"),
    ("dp_sgd", "components.dp_sgd"),
    ("dp_sgd", "components.release"),
  ],
)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_numbers_are_rejected(reports, case, field, bad):
  """Finding 1: `abs(nan - x) > tol` is False, so a NaN used to verify."""
  data = reports[case].to_dict()
  if field.startswith("components."):
    data["components"][field.split(".")[1]] = bad
  else:
    data[field] = bad
  report = privacy.PrivacyReport.from_json(json.dumps(data))
  with pytest.raises(ValueError, match="finite"):
    report.verify()


@pytest.mark.parametrize(
  "field,value",
  [
    ("scope_statement", "all covered"),
    ("scope_statement", privacy.Scope.PUBLIC.statement),  # a statement of another scope
    ("neighboring_relation", "add-or-remove"),
    ("neighboring_relation_statement", "add or remove one record"),
    ("noise_statement", privacy.report.UNSEEDED_STATEMENT),  # hides a seeded noise
    ("caveats", []),  # emptying the notes the inputs imply
    ("accounting_methods", "exact"),
  ],
)
def test_statements_are_derived_not_free_text(reports, field, value):
  """Finding 2: statements follow from the inputs; a file that says otherwise is refused."""
  data = reports["conditional_shuffled"].to_dict()
  data[field] = value
  with pytest.raises(ValueError, match=field):
    privacy.PrivacyReport.from_dict(data)


def test_a_report_says_the_arithmetic_its_certificate_names(reports):
  """The certificate names the released means' arithmetic; a certificate without it was
  written when the release computed in float32, and its report says float32 (it still loads).
  The caveat follows the certificate, whatever the file's caveats say."""
  for name, report in reports.items():
    data = report.to_dict()
    assert data["certificate"]["arithmetic"] == "float64", name
    del data["certificate"]["arithmetic"]
    with pytest.raises(ValueError, match="caveats"):  # it still says float64
      privacy.PrivacyReport.from_dict(data)
    data["caveats"] = [
      c.replace(c[c.index("computed") :], _FLOAT32_WORDING)
      if "computed in float64 from" in c
      else c
      for c in data["caveats"]
    ]
    loaded = privacy.PrivacyReport.from_dict(data)
    assert loaded.epsilon == report.epsilon, name
    assert loaded.to_dict()["caveats"] == data["caveats"], name  # re-saved, still float32
    assert not any("float64 from" in c for c in loaded.caveats), name
    data["certificate"]["arithmetic"] = "float16"
    with pytest.raises(ValueError, match="arithmetic"):
      privacy.PrivacyReport.from_dict(data).verify()


_FLOAT32_WORDING = privacy.report.CAVEAT_FLOAT32_ENCODER.split("{what} ")[1]


def test_changing_the_scope_changes_every_statement(reports):
  """A report relabelled 'public' must recompute its headline and cannot keep old statements."""
  data = reports["conditional_shuffled"].to_dict()
  data["scope"] = "public"
  with pytest.raises(ValueError, match="scope_statement"):
    privacy.PrivacyReport.from_dict(data)
  data["scope_statement"] = privacy.Scope.PUBLIC.statement
  data["caveats"] = [
    c for c in data["caveats"] if "private records without DP" not in c and "linked back" not in c
  ]
  report = privacy.PrivacyReport.from_dict(data)
  with pytest.raises(ValueError, match="epsilon|headline"):  # the headline is now the central one
    report.verify()


def test_certificate_must_be_within_the_bound_used(reports):
  data = reports["conditional"].to_dict()
  data["certificate"]["layer_bounds"] = [0.5, 2.5]  # certified 1.25 > L = 1
  with pytest.raises(ValueError, match="certified"):
    privacy.PrivacyReport.from_dict(data).verify()
  data = reports["heteroscedastic"].to_dict()
  data["certificate"]["log_sigma_scale"] = 1.0  # certified L_s 0.06 > the 0.05 used
  with pytest.raises(ValueError, match="L_s"):
    privacy.PrivacyReport.from_dict(data).verify()


def test_atomic_save_keeps_old_file_on_failure(reports, tmp_path, monkeypatch):
  path = tmp_path / "report.json"
  reports["public"].save(str(path))
  before = path.read_text()

  def broken_replace(src, dst):
    raise OSError("disk full")

  monkeypatch.setattr(files.os, "replace", broken_replace)
  with pytest.raises(OSError):
    reports["conditional"].save(str(path))
  assert path.read_text() == before
  assert os.listdir(tmp_path) == ["report.json"]


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(release=privacy.GaussianRelease(5.0), scope="dp-sgd"), "dp-sgd"),
    (dict(release=privacy.GaussianRelease(5.0), scope="public", dpsgd=DPSGD), "dp-sgd"),
    (dict(release=privacy.GaussianRelease(5.0), scope="everything"), "scope"),
    (dict(release=5.0, scope="public"), "release"),
    (dict(release=privacy.GaussianRelease(5.0), scope="public", shuffled="yes"), "shuffled"),
    (
      dict(release=privacy.GaussianRelease(5.0), scope="public", training_seeded=True),
      "training_seeded",
    ),
    (
      dict(release=privacy.GaussianRelease(5.0), scope="public", certificate={"mean_scale": 1.5}),
      "mean_scale",
    ),
  ],
)
def test_bad_report_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _make(kwargs)


def test_unknown_fields_and_versions_rejected(reports):
  data = reports["public"].to_dict()
  data["epsilon_extra"] = 1.0
  with pytest.raises(ValueError, match="unknown"):
    privacy.PrivacyReport.from_dict(data)
  data = reports["public"].to_dict()
  data["schema_version"] = 1
  with pytest.raises(ValueError, match="schema_version"):
    privacy.PrivacyReport.from_dict(data)
  # Version 2 reports had no domain digest, and a per-record one could lack its certificate.
  data = reports["public"].to_dict()
  data.pop("domain_digest")
  data["schema_version"] = 2
  with pytest.raises(ValueError, match="schema_version 2.*lack the domain digest"):
    privacy.PrivacyReport.from_dict(data)


def test_the_floating_point_arithmetic_is_stated_as_caveats(reports):
  """Issue 17, item 8: the encoder mean is computed in float64 from float32 weights (the
  certificate bounds the exact map with a relative margin, not the rounding on its own), and
  DP-SGD noise is drawn in float64 but added in float32."""
  for name, report in reports.items():
    caveats = " ".join(report.caveats)
    assert "computed in float64 from the float32 weights" in caveats, name
    assert "rounding is not bounded on its own" in caveats, name
    dp_sgd = report.dpsgd is not None
    assert ("cast to float32 before it is added" in caveats) == dp_sgd, name
  prior = privacy.make_report(
    privacy.PriorSampling(10),
    lipschitz=None,
    diameter=None,
    domain="d",
    delta=1e-5,
    scope="dp-sgd",
    num_records=10,
    dpsgd=DPSGD,
    value_discretization_interval=COARSE,
  )
  caveats = " ".join(prior.caveats)
  assert "cast to float32 before it is added" in caveats
  assert "computed in float64 from" not in caveats  # no encoder mean is released


def _recomputed(data):
  """`data` with every number recomputed from its (edited) inputs: consistent, as a careful
  forger would leave it."""
  fresh = privacy.PrivacyReport.from_dict(data).recompute()
  for name in ("sensitivity", "per_record_epsilon", "central_epsilon", "shuffle_delta"):
    data[name] = fresh[name]
  data.update(epsilon=fresh["epsilon"], headline=fresh["headline"])
  data["components"] = dict(fresh["components"])
  return data


def test_a_per_record_release_without_its_certificate_does_not_verify(reports):
  """Issue 17, item 4: deleting the layer bounds and dividing L by 5, every number recomputed to
  match, verified (epsilon 1.0 became 0.17). A per-record release carries its certificate, and
  the certified bounds must be within the L used."""
  for name in ("conditional", "heteroscedastic"):
    data = reports[name].to_dict()
    data["lipschitz"] /= 5
    data["certificate"].pop("layer_bounds")
    forged = privacy.PrivacyReport.from_dict(_recomputed(data))
    assert forged.epsilon < reports[name].epsilon
    with pytest.raises(ValueError, match="certificate.*layer bounds"):
      forged.verify()
    data["certificate"]["layer_bounds"] = reports[name].certificate["layer_bounds"]
    with pytest.raises(ValueError, match="exceeds the L used"):  # L divided, bounds kept
      privacy.PrivacyReport.from_dict(_recomputed(data)).verify()
  data = reports["heteroscedastic"].to_dict()
  data["certificate"].pop("log_sigma_lipschitz")
  with pytest.raises(ValueError, match="certificate.*log_sigma_lipschitz"):
    privacy.PrivacyReport.from_dict(data).verify()


def test_make_report_refuses_a_per_record_release_without_a_certificate():
  with pytest.raises(ValueError, match="certificate.*layer bounds"):
    privacy.make_report(GAUSS6, **BASE, scope="public")
  with pytest.raises(ValueError, match="no encoder"):
    privacy.make_report(
      privacy.PriorSampling(10),
      **dict(BASE, lipschitz=None, diameter=None),
      scope="dp-sgd",
      dpsgd=DPSGD,
      value_discretization_interval=COARSE,
      certificate={"layer_bounds": [1.0]},
    )
