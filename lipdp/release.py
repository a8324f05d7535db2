"""The release folder: written whole or not at all, and checked against its own report.

A release is a folder with three files:

    synthetic.npz          the synthetic records (shuffled, no identifiers) and their decoded
                           parts (`domain.to_arrays`: images and labels, or one array per column)
    privacy_report.json    the privacy report (`lipdp.privacy.PrivacyReport`)
    domain.json            the domain description, to decode the records later

`write_release` writes them into `<dir>.partial/` and renames that folder into place once
complete, so a failure leaves no half-written release; it writes nothing else. `verify_release`
checks what the report alone cannot: that the folder holds exactly these files, that domain.json
is the domain the report was made for (the digest the report records), and that synthetic.npz
holds exactly the records the report counts, in that domain, and their decode.
"""

import json
import math
import os
import shutil

import numpy as np

from lipdp import data as data_lib
from lipdp import files
from lipdp import privacy

SYNTHETIC_FILE = "synthetic.npz"
REPORT_FILE = "privacy_report.json"
DOMAIN_FILE = "domain.json"
RELEASE_FILES = (DOMAIN_FILE, REPORT_FILE, SYNTHETIC_FILE)


def write_release(
  release_dir: str,
  records: np.ndarray,
  domain,
  report: privacy.PrivacyReport,
  replace: bool = False,
) -> str:
  """Writes the release folder atomically; refuses to overwrite one unless `replace`.

  The report must record the digest of this very domain (`make_report(domain_description=
  domain.describe())`): `verify_release` compares it with domain.json.
  """
  if report.domain_digest != privacy.domain_digest(domain.describe()):
    raise ValueError(
      "the privacy report does not record the digest of the release's domain "
      + ("(it records none)" if report.domain_digest is None else "(it records another)")
      + "; make the report with domain_description=domain.describe()"
    )
  if os.path.exists(release_dir) and not replace:
    raise ValueError(f"{release_dir} already exists; a release is never overwritten silently")
  staging = release_dir + ".partial"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  files.atomic_write_text(
    os.path.join(staging, DOMAIN_FILE), json.dumps(domain.describe(), indent=2)
  )
  files.atomic_savez(
    os.path.join(staging, SYNTHETIC_FILE), records=records, **domain.to_arrays(records)
  )
  report.save(os.path.join(staging, REPORT_FILE))
  if os.path.exists(release_dir):
    shutil.rmtree(release_dir)
  os.replace(staging, release_dir)
  return release_dir


def verify_release(release_dir: str, rtol: float = 1e-9) -> privacy.PrivacyReport:
  """Checks a release folder against its report; returns the report, or raises ValueError.

  Checks, in order (docs/privacy.md section 7):
  1. the folder holds exactly the three files of a release;
  2. `PrivacyReport.verify`: the report is consistent, and a per-record release carries its
     certificate, within the L used;
  3. domain.json is the domain the report was made for (its digest, recorded in the report);
  4. that domain's diameter, recomputed from its declaration, equals the report's D;
  5. synthetic.npz holds exactly `records` and the arrays `domain.to_arrays` gives for them;
     the number of records is num_records * k (the sample count for prior sampling and the
     central baselines); they lie in the domain; every decoded array equals, in dtype, shape
     and every value, a fresh decode of `records`.
  It cannot check L against the weights (that needs them: `lipdp.latent_release.certify_encoder`),
  the scope (how the weights were trained), nor that the records came from the mechanism.
  """
  present = sorted(os.listdir(release_dir))
  extra = [name for name in present if name not in RELEASE_FILES]
  if extra:
    raise ValueError(
      f"{release_dir} holds {extra}, which a release does not: a release folder is exactly "
      f"{list(RELEASE_FILES)}"
    )
  report = privacy.PrivacyReport.load(os.path.join(release_dir, REPORT_FILE))
  report.verify(rtol=rtol)
  with open(os.path.join(release_dir, DOMAIN_FILE), encoding="utf-8") as f:
    description = json.load(f)
  # Before anything is read through it: a domain.json the report was not made for would make
  # every check below meaningless.
  if report.domain_digest is None:
    raise ValueError(
      f"{release_dir}: its privacy report records no digest of the domain, so {DOMAIN_FILE} "
      "cannot be tied to it"
    )
  if privacy.domain_digest(description) != report.domain_digest:
    raise ValueError(
      f"{release_dir}: {DOMAIN_FILE} is not the domain the privacy report was made for (its "
      f"digest is {privacy.domain_digest(description)[:16]}..., the report's "
      f"{report.domain_digest[:16]}...)"
    )
  domain = data_lib.domain_from_description(description)
  problems = []
  if report.diameter is not None and not math.isclose(
    domain.diameter, report.diameter, rel_tol=1e-12
  ):
    problems.append(
      f"the domain file's diameter is {domain.diameter!r}, the report's {report.diameter!r}"
    )
  with np.load(os.path.join(release_dir, SYNTHETIC_FILE), allow_pickle=False) as npz:
    problems.extend(_synthetic_problems(npz, domain, report))
  if problems:
    raise ValueError(f"{release_dir} does not match its privacy report: " + "; ".join(problems))
  return report


def _synthetic_problems(npz, domain, report: privacy.PrivacyReport) -> list:
  """What in synthetic.npz does not match the report and the domain (verify_release, step 5).

  An array beyond `records` and its decode could carry anything (a copy of the private
  records), and a decoded array is what a reader of the release uses: each must be exactly
  `domain.to_arrays(records)`.
  """
  names = set(npz.files)
  decoded_names = set(domain.to_arrays(np.zeros((0, domain.dim), np.float32)))
  expected_names = {"records"} | decoded_names
  problems = []
  extra, missing = sorted(names - expected_names), sorted(expected_names - names)
  if extra:
    problems.append(f"{SYNTHETIC_FILE} holds arrays {extra} that a release does not")
  if missing:
    problems.append(f"{SYNTHETIC_FILE} lacks the arrays {missing}")
  if "records" not in names:
    return problems
  records = npz["records"]
  expected = (
    report.release.num_samples
    if isinstance(report.release, (privacy.PriorSampling, privacy.CentralRelease))
    else report.num_records * report.k
  )
  if records.ndim != 2 or records.shape[0] != expected:
    problems.append(
      f"the release holds {records.shape[0] if records.ndim else 0} records; "
      f"the report's num_records * k is {expected}"
    )
    return problems
  if records.shape[1] != domain.dim or not np.array_equal(domain.project(records), records):
    problems.append("the released records do not lie in the domain of domain.json")
    return problems
  fresh = domain.to_arrays(records)
  for name in sorted(decoded_names & names):
    try:
      stored = npz[name]
    except ValueError:  # an object array: it needs pickle, which is never loaded
      problems.append(f"{SYNTHETIC_FILE}: the array {name!r} cannot be read without pickle")
      continue
    if not (
      stored.dtype == fresh[name].dtype
      and stored.shape == fresh[name].shape
      and np.array_equal(stored, fresh[name])
    ):
      problems.append(
        f"{SYNTHETIC_FILE}: the array {name!r} is not the decode of the records "
        "(domain.to_arrays of `records` under domain.json)"
      )
  return problems
