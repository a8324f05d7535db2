"""The `lipdp` console script: an end-to-end run on a generated mixed table, and bad input.

Every bad-input case asserts the message and that no output (the synthetic CSV, the report, the
work directory) exists afterwards, or that an existing output is untouched.
"""

import csv
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest

from lipdp import checks
from lipdp import cli
from lipdp import data as data_lib
from lipdp import privacy
from lipdp import release as release_lib
from lipdp import spec as spec_lib
from lipdp import table_options
from lipdp.data import sources
from lipdp.methods import vae

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "experiments", "configs", "default.py")

FILE_ORDER = ["id", "score", "city", "age", "smoker", "visits", "outcome"]
SCHEMA = {
  "label_column": "outcome",
  "columns": [
    {"name": "age", "type": "numeric", "low": 18, "high": 90, "integer": True},
    {"name": "score", "type": "numeric", "low": 0, "high": 100},
    {"name": "visits", "type": "numeric", "low": 0, "high": 20, "integer": True},
    {"name": "city", "type": "categorical", "categories": ["Köln", "Paris", "Rome"]},
    {"name": "smoker", "type": "categorical", "categories": ["no", "yes"]},
    {"name": "outcome", "type": "categorical", "categories": [0, 1]},
  ],
}
NUM_ROWS = 120  # 96 private training records, 24 held out
STEPS = 30

# Runs the console script in a fresh process with a small model (the default one is the study's
# model for tables; the point here is the tool, not the model).
_RUNNER = textwrap.dedent("""
    import sys
    from lipdp import spec
    _table_config = spec.table_config
    def small():
      c = _table_config()
      c.model.latent_dim, c.model.style_dim = 4, 0
      c.model.encoder_hidden, c.model.decoder_hidden = (32,), (32,)
      c.train.log_every = c.train.checkpoint_every = 10
      c.evaluation.fast = True
      return c
    spec.table_config = small
    from lipdp import cli
    sys.exit(cli.main(sys.argv[1:]))
""")


def _table_rows(rng, n):
  rows = []
  for i in range(n):
    rows.append(
      [
        str(i),
        f"{rng.uniform(0, 100):.2f}",
        rng.choice(["Köln", "Paris", "Rome"]),
        str(int(rng.integers(18, 91))),
        rng.choice(["no", "yes"]),
        str(int(rng.integers(0, 21))),
        str(int(rng.integers(0, 2))),
      ]
    )
  rows[5][3] = "95"  # above the declared 90: clipped and counted
  return rows


def _write_table(folder, n=NUM_ROWS, rows=None):
  path = os.path.join(folder, "people.csv")
  with open(path, "w", encoding="utf-8", newline="") as f:
    out = csv.writer(f)
    out.writerow(FILE_ORDER)
    out.writerows(rows if rows is not None else _table_rows(np.random.default_rng(0), n))
  return path


def _write_schema(folder, schema=None, name="schema.json"):
  path = os.path.join(folder, name)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(schema or SCHEMA, f)
  return path


def _run_cli(args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run(
    [sys.executable, "-c", _RUNNER, *args],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
    check=False,
  )


@pytest.fixture(scope="module")
def end_to_end(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("cli"))
  data, schema = _write_table(folder), _write_schema(folder)
  args = [
    "synthesize",
    "--data",
    data,
    "--schema",
    schema,
    "--scope",
    "conditional",  # asked for by name: the tests of its labels and warnings below
    "--epsilon",
    "2",
    "--delta",
    "1e-5",
    "--k",
    "2",
    "--steps",
    str(STEPS),
    "--batch-size",
    "32",
    "--out",
    "synth.csv",
    "--report",
    "report.json",
  ]
  proc = _run_cli(args, folder)
  return folder, args, proc


@pytest.fixture(autouse=True)
def _restore_logging():
  """main() configures logging for a terminal; give the other tests theirs back."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  root, lipdp_logger = logging.getLogger(), logging.getLogger("lipdp")
  saved = (
    root.level,
    absl_logging.get_verbosity(),
    lipdp_logger.level,
    list(lipdp_logger.handlers),
    lipdp_logger.propagate,
    list(warnings.filters),
  )
  yield
  root.setLevel(saved[0])
  absl_logging.set_verbosity(saved[1])
  lipdp_logger.setLevel(saved[2])
  lipdp_logger.handlers[:] = saved[3]
  lipdp_logger.propagate = saved[4]
  warnings.filters[:] = saved[5]


# ------------------------------------------------------------------------------------------------
# End to end.


def test_synthetic_csv_has_the_original_columns_types_categories_and_bounds(end_to_end):
  folder, _, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  with open(os.path.join(folder, "synth.csv"), encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f))
  assert rows[0] == FILE_ORDER[1:]  # the file's order; the undeclared 'id' is not released
  body = rows[1:]
  assert len(body) == 96 * 2  # k records per private training record
  columns = dict(zip(rows[0], zip(*body)))
  for name, low, high in (("age", 18, 90), ("visits", 0, 20)):
    assert all(v.lstrip("-").isdigit() for v in columns[name]), name  # integers, as integers
    assert all(low <= int(v) <= high for v in columns[name]), name
  scores = [float(v) for v in columns["score"]]
  assert all(0 <= s <= 100 for s in scores) and len(set(scores)) > 1
  assert set(columns["city"]) <= {"Köln", "Paris", "Rome"}
  assert set(columns["smoker"]) <= {"no", "yes"}
  assert set(columns["outcome"]) <= {"0", "1"}


def test_report_recomputes_and_matches_the_release(end_to_end):
  folder, _, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  report = privacy.PrivacyReport.load(os.path.join(folder, "report.json"))
  report.verify()
  assert report.recompute_epsilon() == pytest.approx(2.0, rel=1e-6)
  assert report.delta == 1e-5 and report.k == 2 and report.num_records == 96
  released = release_lib.verify_release(os.path.join(folder, "synth.lipdp", "release"))
  assert released.to_dict() == report.to_dict()
  text = json.dumps(report.to_dict())
  assert "above_high" not in text and "1 above" not in text  # private counts stay out


def test_console_is_short_and_says_what_happened(end_to_end):
  _, _, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  err = proc.stderr.splitlines()
  assert len(err) < 25, proc.stderr
  for noise in ("Traceback", "orbax", "libtpu", "backend 'tpu'", "Scheduling D2H", "absl"):
    assert noise not in proc.stderr, noise
  assert not [line for line in err if line[:1] in "IWE" and line[1:5].isdigit()]  # absl format
  assert "clipped to the declared bounds: age 1 above" in proc.stderr
  assert "not in the schema, not read: id" in proc.stderr
  assert f"Training: {STEPS} steps" in proc.stderr
  out = proc.stdout
  words = " ".join(out.split())
  assert "Privacy: epsilon = 2 at delta = 1e-05" in out and "scope conditional" in out
  assert (
    "Holdout: 24 records (20%) were kept out of training and synthesis, used only to "
    "evaluate the release"
  ) in words
  for path in ("synth.csv", "report.json", os.path.join("synth.lipdp", "evaluation.json")):
    assert path in out
  assert "Time: " in out and "training" in out


def test_conditional_scope_limits_are_beside_each_file_and_among_the_warnings(end_to_end):
  """Issue 17, item 7: in the conditional scope the "Wrote:" list said "(for release)" with no
  qualifier, the shuffled central epsilon (not claimed) was printed beside the headline, and
  no line about the scope reached the warnings."""
  folder, _, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  out = proc.stdout
  assert "(for release)" not in out
  assert "central epsilon =" not in out
  wrote = out[out.index("Wrote:") :].splitlines()
  for name in ("synth.csv", "report.json", os.path.join("synth.lipdp", "release") + os.sep):
    (line,) = [line for line in wrote if line.split()[:1] == [name]]
    assert "fit WITHOUT DP, is not covered" in line, line
  warnings_ = [line for line in out.splitlines() if line.startswith("warning: ")]
  assert any(line.startswith("warning: scope conditional:") for line in warnings_), out
  text = " ".join(out.split())
  assert "the model's own dependence on the private records" in text


def test_the_summary_labels_files_with_what_each_scope_covers():
  from types import SimpleNamespace  # pylint: disable=g-import-not-at-top

  from lipdp.cli import console  # pylint: disable=g-import-not-at-top

  labels = {}
  for scope in ("conditional", "dp-sgd", "public", "dp-measurements"):
    report = SimpleNamespace(scope=privacy.Scope.parse(scope), epsilon=1.0)
    labels[scope] = console.coverage(report)
    assert labels[scope].startswith("for release")
    assert bool(console.scope_warnings(report)) == (scope == "conditional")
  assert "not covered" in labels["conditional"]
  assert "end to end" in labels["dp-sgd"]
  assert len(set(labels.values())) == 4


def test_report_command_says_the_guarantee(end_to_end, capsys):
  folder, _, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  assert cli.main(["report", os.path.join(folder, "report.json")]) == 0
  out = capsys.readouterr().out
  assert "verified" in out and "epsilon = 2 at delta = 1e-05" in out
  assert "WITHOUT differential privacy" in out  # the conditional scope, in words
  assert cli.main(["report", os.path.join(folder, "synth.lipdp", "release")]) == 0
  assert "released records and domain match" in capsys.readouterr().out


def test_report_command_refuses_a_tampered_or_foreign_file(end_to_end, tmp_path, capsys):
  folder, _, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  with open(os.path.join(folder, "report.json"), encoding="utf-8") as f:
    report = json.load(f)
  report["per_record_epsilon"] = 0.5
  tampered = tmp_path / "tampered.json"
  tampered.write_text(json.dumps(report))
  assert cli.main(["report", str(tampered)]) == 1
  assert "does not verify" in capsys.readouterr().err
  other = tmp_path / "other.json"
  other.write_text("[1, 2")
  assert cli.main(["report", str(other)]) == 1
  assert "is not a privacy report (not JSON" in capsys.readouterr().err
  assert cli.main(["report", str(tmp_path / "nope.json")]) == 1
  assert "no such file or folder" in capsys.readouterr().err


def test_rerun_refuses_a_second_release_and_keeps_the_outputs(end_to_end, capsys):
  folder, args, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  before = {
    name: open(os.path.join(folder, name), "rb").read() for name in ("synth.csv", "report.json")
  }
  cwd = os.getcwd()
  os.chdir(folder)
  try:
    assert cli.main(args) == 1
  finally:
    os.chdir(cwd)
  assert "synth.lipdp already holds a release" in capsys.readouterr().err
  for name, content in before.items():
    assert open(os.path.join(folder, name), "rb").read() == content


@pytest.mark.slow
def test_an_interrupted_run_resumes_and_says_so(end_to_end):
  folder, args, proc = end_to_end
  assert proc.returncode == 0, proc.stderr
  # As if killed after the checkpoint at step STEPS - 10: the last one is gone.
  checkpoints = os.path.join(folder, "synth.lipdp", "checkpoints")
  assert sorted(os.listdir(checkpoints)) == [str(STEPS - 10), str(STEPS)]
  shutil.rmtree(os.path.join(checkpoints, str(STEPS)))
  rerun = _run_cli(
    args
    + [
      "--replace-release",
      "--out",
      "again.csv",
      "--report",
      "again.json",
      "--workdir",
      "synth.lipdp",
      "--no-evaluation",
    ],
    folder,
  )
  assert rerun.returncode == 0, rerun.stderr
  assert f"Resuming from step {STEPS - 10} of {STEPS}" in rerun.stderr
  assert os.path.exists(os.path.join(folder, "again.csv"))


# ------------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing written.


@pytest.fixture
def files(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  return {"data": _write_table(str(tmp_path), n=40), "schema": _write_schema(str(tmp_path))}


def _synthesize(files, *extra, data=None, schema=None, out="out.csv", report="out.json"):
  argv = [
    "synthesize",
    "--data",
    data or files["data"],
    "--schema",
    schema or files["schema"],
    "--delta",
    "1e-5",
    "--out",
    out,
    "--report",
    report,
    "--steps",
    "2",
  ]
  if "--epsilon" not in extra and "--total-epsilon" not in extra:
    argv += ["--epsilon", "1"]
  return cli.main(argv + list(extra))


def _assert_refused(capsys, rc, match, outputs=("out.csv", "out.json", "out.lipdp")):
  err = capsys.readouterr().err
  assert rc != 0
  assert match in err, err
  assert "Traceback" not in err
  lines = err.strip().splitlines()
  first = next(i for i, line in enumerate(lines) if ": error: " in line)
  assert len(lines) - first <= 2, err  # the error itself: one or two lines
  for path in outputs:
    assert not os.path.exists(path), path


def _text_file(name, content):
  with open(name, "wb") as f:
    f.write(content)
  return name


HEADER = ",".join(FILE_ORDER) + "\n"
ROW = "1,50.5,Paris,40,no,3,1\n"

BAD_DATA = [
  ("missing", None, "--data missing.csv: no such file"),
  ("directory", "dir", "is a directory, not a file"),
  ("empty", b"", "is empty (a header row is required)"),
  ("header only", HEADER.encode(), "has a header row but no data rows"),
  (
    "too few fields",
    (HEADER + ROW + "2,50,Paris,40,no,3\n").encode(),
    "line 3: 6 fields, but the header has 7",
  ),
  (
    "too many fields",
    (HEADER + ROW + "2,50,Paris,40,no,3,1,9\n").encode(),
    "line 3: 8 fields, but the header has 7",
  ),
  (
    "latin-1",
    (HEADER + "2,50,K\xf6ln,40,no,3,1\n").encode("latin-1"),
    "is not valid UTF-8: byte 0xf6 at byte offset 46, line 2",
  ),
  ("utf-16", (HEADER + ROW).encode("utf-16"), "it is UTF-16, not UTF-8"),
  (
    "nan",
    (HEADER + ROW + "2,nan,Paris,40,no,3,1\n").encode(),
    "line 3: numeric column 'score' has a missing value ('nan')",
  ),
  (
    "inf",
    (HEADER + ROW + "2,inf,Paris,40,no,3,1\n").encode(),
    "line 3: numeric column 'score' holds 'inf', not a finite number",
  ),
  (
    "empty numeric",
    (HEADER + ROW + "2,,Paris,40,no,3,1\n").encode(),
    "line 3: numeric column 'score' has a missing value (an empty cell)",
  ),
  (
    "undeclared category",
    (HEADER + ROW + "2,50,Berlin,40,no,3,1\n").encode(),
    "line 3: column 'city' holds 'Berlin', not one of the declared categories",
  ),
  (
    "schema mismatch",
    b"id,score,town,age,smoker,visits,outcome\n1,50,Paris,40,no,3,1\n",
    "lacks declared columns ['city'] (the schema does not match the header",
  ),
]


@pytest.mark.parametrize("case, content, match", BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_refused_before_anything_is_written(files, capsys, case, content, match):
  name = "missing.csv"
  if content == "dir":
    name = "adir"
    os.mkdir(name)
  elif content is not None:
    name = _text_file("bad.csv", content)
  del case
  _assert_refused(capsys, _synthesize(files, data=name), match)


def test_out_of_bounds_numbers_are_refused_with_strict(files, capsys):
  # The generated table has age 95 above the declared 90 (clipped and counted by default).
  _assert_refused(
    capsys,
    _synthesize(files, "--strict"),
    "column 'age' holds 95, outside its declared bounds [18, 90]",
  )


def test_a_byte_order_mark_and_whitespace_around_cells_are_read(files, capsys):
  text = (HEADER + ROW + " 2 , 50 , Rome , 41 , yes , 0 , 0 \n") * 1
  name = _text_file("bom.csv", b"\xef\xbb\xbf" + text.encode())
  assert cli.main(["schema", "check", "--schema", files["schema"], "--data", name]) == 0
  out = capsys.readouterr().out
  assert "2 rows read (utf-8, byte-order mark dropped)" in out
  assert "7 cells had surrounding whitespace (removed)" in out


def test_an_unreadable_file_is_refused(files, capsys, monkeypatch):
  real_access = os.access
  monkeypatch.setattr(
    os, "access", lambda p, mode: False if str(p).endswith("people.csv") else real_access(p, mode)
  )
  _assert_refused(capsys, _synthesize(files), "people.csv: permission denied")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused_for_real(files, capsys):
  os.chmod(files["data"], 0)
  _assert_refused(capsys, _synthesize(files), "permission denied")


BAD_SETTINGS = [
  (("--epsilon", "0"), "epsilon must be positive and finite, got 0.0"),
  (("--epsilon", "-1"), "epsilon must be positive and finite"),
  (
    ("--epsilon", "1e9"),
    "an end-to-end epsilon of 1e+09 is more than lipdp supports at delta = 1e-05",
  ),
  (
    ("--scope", "conditional", "--epsilon", "1e9"),
    "a per-record epsilon of 1e+09 is more than lipdp supports at delta = 1e-05",
  ),
  (("--delta", "1"), "delta must be in (0, 1), got 1.0"),
  (("--k", "0"), "k must be a positive integer, got 0"),
  (
    ("--total-epsilon", "1", "--scope", "conditional"),
    "--total-epsilon is one end-to-end budget for DP-SGD",
  ),
  (("--epsilon", "1", "--total-epsilon", "1", "--scope", "dp-sgd"), "not both"),
  (("--scope", "public"), "--scope public needs --public-data"),
  (
    ("--set", "train.public_pretrain_steps=5"),
    "--set train.public_pretrain_steps needs --public-data",
  ),
  (
    ("--scope", "conditional", "--set", "train.public_pretrain_steps=5"),
    "--set train.public_pretrain_steps pretrains before DP-SGD: it needs scope 'dp-sgd'",
  ),
  (("--holdout-fraction", "1"), "--holdout-fraction must be in [0, 1)"),
  (("--epsilonn", "1"), "unrecognized arguments: --epsilonn"),
  (("--scope", "trust-me"), "argument --scope: invalid choice: 'trust-me'"),
]


@pytest.mark.parametrize("extra, match", BAD_SETTINGS, ids=[" ".join(e) for e, _ in BAD_SETTINGS])
def test_bad_settings_are_refused_before_anything_is_written(files, capsys, extra, match):
  try:
    rc = _synthesize(files, *extra)
  except SystemExit as e:  # argparse's usage errors
    rc = e.code
  _assert_refused(capsys, rc, match)


def test_the_private_table_is_not_public_data(files, capsys):
  # Under any spelling of its path, and as a copy (found by a review: './people.csv' passed).
  os.symlink(os.path.abspath(files["data"]), "link.csv")
  spellings = (files["data"], "./" + os.path.basename(files["data"]), "link.csv")
  for public in spellings:
    for extra in (("--scope", "public"), ("--set", "train.public_pretrain_steps=3")):
      rc = _synthesize(files, "--public-data", public, *extra)
      _assert_refused(capsys, rc, "--public-data names the private data set itself")
  shutil.copyfile(files["data"], "copy.csv")
  with open(files["data"], encoding="utf-8") as f:
    lines = f.read().splitlines()
  with open("registry.csv", "w", encoding="utf-8") as f:  # every private row and one more
    f.write("\n".join(lines + [lines[-1].replace(lines[-1].split(",")[0], "999", 1)]) + "\n")
  for public in ("copy.csv", "registry.csv"):
    rc = _synthesize(files, "--public-data", public, "--scope", "public")
    _assert_refused(capsys, rc, "--public-data holds every private record")


@pytest.mark.slow  # 30 s; the runner's pretraining test covers the note by default
def test_synthesize_pretrains_on_public_data_before_dpsgd(files, tmp_path):
  """`--public-data` with `--set train.public_pretrain_steps=N` in scope dp-sgd: the report
  names the public data the weights started from (the guarantee assumes it public)."""
  (tmp_path / "public").mkdir()
  public_rows = _table_rows(np.random.default_rng(1), 30)  # not the private rows (seed 0)
  public = _write_table(str(tmp_path / "public"), rows=public_rows)
  rc = _synthesize(
    files,
    "--total-epsilon",
    "5",
    "--public-data",
    public,
    "--set",
    "train.public_pretrain_steps=3",
  )
  assert rc == 0
  report = json.load(open("out.json", encoding="utf-8"))
  notes = " ".join(report["notes"])
  assert "pretrained without noise for 3 steps on 30 records of the public data set" in notes
  assert report["scope"] == "dp-sgd"


def test_an_existing_output_survives_a_failed_run(files, capsys):
  with open("out.csv", "w", encoding="utf-8") as f:
    f.write("keep me\n")
  rc = _synthesize(files, "--epsilon", "1e9")  # fails after the data loaded, before training
  _assert_refused(
    capsys, rc, "more than lipdp supports at delta", outputs=("out.json", "out.lipdp")
  )
  assert open("out.csv", encoding="utf-8").read() == "keep me\n"


@pytest.mark.parametrize(
  "setup, kwargs, match",
  [
    ("dir", {"out": "adir"}, "--out adir is a directory; give a file name"),
    (None, {"out": "nowhere/out.csv"}, "the folder"),
    ("file", {"report": "afile/out.json"}, "afile is not a folder"),
    (None, {"report": "out.csv"}, "--out and --report are the same file"),
    (None, {"out": "people.csv"}, "--out would overwrite the --data file"),
    (
      "file",
      {"out": "out.csv", "report": "out.json", "workdir": "afile"},
      "the work directory afile is a file, not a folder",
    ),
  ],
)
def test_outputs_that_cannot_be_written_are_refused_before_training(
  files, capsys, setup, kwargs, match
):
  if setup == "dir":
    os.mkdir("adir")
  elif setup == "file":
    _text_file("afile", b"x")
  workdir = kwargs.pop("workdir", None)
  extra = ("--workdir", workdir) if workdir else ()
  before = open(files["data"], "rb").read()
  rc = _synthesize(files, *extra, **kwargs)
  _assert_refused(capsys, rc, match, outputs=("out.lipdp", "out.json", "nowhere"))
  assert open(files["data"], "rb").read() == before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_an_unwritable_output_folder_is_refused(files, capsys):
  rc = _synthesize(files, out="/proc/self/out.csv")
  _assert_refused(capsys, rc, "--out /proc/self/out.csv: cannot write in /proc/self")


def test_a_declared_category_with_spaces_and_a_draft_schema_are_refused(files, capsys):
  schema = json.loads(json.dumps(SCHEMA))
  schema["columns"][3]["categories"] = [" Köln", "Paris", "Rome"]
  spaced = _write_schema(".", schema, "spaced.json")
  _assert_refused(
    capsys,
    _synthesize(files, schema=spaced),
    "declares the category ' Köln', with surrounding whitespace",
  )
  draft = _write_schema(
    ".", dict(SCHEMA, **{sources.DRAFT_SCHEMA_KEY: "not private"}), "draft.json"
  )
  _assert_refused(capsys, _synthesize(files, schema=draft), "is a draft read from the private data")


def test_verbose_shows_the_traceback(files, capsys):
  rc = _synthesize(files, "--verbose", data="missing.csv")
  err = capsys.readouterr().err
  assert rc == 1 and "Traceback" in err and "no such file" in err


# ------------------------------------------------------------------------------------------------
# lipdp schema draft.


def test_schema_draft_warns_and_is_refused_until_edited(files, capsys):
  assert (
    cli.main(
      ["schema", "draft", "--data", files["data"], "--out", "draft.json", "--label", "outcome"]
    )
    == 0
  )
  captured = capsys.readouterr()
  assert "draft.json IS NOT PRIVATE" in captured.err
  assert "replace every bound and" in captured.err
  with open("draft.json", encoding="utf-8") as f:
    drafted = json.load(f)
  columns = {c["name"]: c for c in drafted["columns"]}
  assert columns["age"]["type"] == "numeric" and columns["age"]["integer"] is True
  assert columns["age"]["high"] == 95  # read from the private data: hence the warning
  assert "integer" not in columns["score"]
  assert columns["city"]["categories"] == ["Köln", "Paris", "Rome"]
  assert columns["outcome"]["categories"] == [0, 1]
  assert columns["id"]["type"] == "numeric"  # more than 10 distinct numbers
  assert drafted["label_column"] == "outcome" and sources.DRAFT_SCHEMA_KEY in drafted
  # Refused as it is; accepted once a person removed the marker (after fixing the bounds).
  assert cli.main(["schema", "check", "--schema", "draft.json"]) == 1
  assert "is a draft read from the private data" in capsys.readouterr().err
  del drafted[sources.DRAFT_SCHEMA_KEY]
  _write_schema(".", drafted, "edited.json")
  assert cli.main(["schema", "check", "--schema", "edited.json", "--data", files["data"]]) == 0
  # An existing schema is not overwritten without --force.
  assert cli.main(["schema", "draft", "--data", files["data"], "--out", "edited.json"]) == 1
  assert "pass --force" in capsys.readouterr().err


def test_schema_draft_leaves_out_identifiers_and_constants(tmp_path, capsys):
  path = tmp_path / "t.csv"
  path.write_text("name,const,y\n" + "".join(f"person{i},1,{i % 2}\n" for i in range(60)))
  assert (
    cli.main(
      ["schema", "draft", "--data", str(path), "--out", str(tmp_path / "s.json"), "--label", "y"]
    )
    == 0
  )
  out = capsys.readouterr().out
  assert "left out name: 60 distinct values" in out
  assert "left out const: a single value" in out


# ------------------------------------------------------------------------------------------------
# Warnings and configuration.


def _table_spec(**options):
  return table_options.table_spec("csv:x.csv", "s.json", options, table_options.cli_naming)


def test_budget_warnings_for_a_weak_epsilon_and_delta():
  spec = _table_spec(scope="conditional", epsilon=20.0, delta=5e-3)
  plan = vae.plan_budget(spec, 500)
  warned = vae.check_budget(spec, plan, 500)
  assert any("e^20 = 4.9e+08: it gives practically no protection" in w for w in warned)
  spec = _table_spec(scope="conditional", epsilon=1.0, delta=1e-6)
  assert not vae.check_budget(spec, vae.plan_budget(spec, 500), 500)


def test_noise_beyond_the_exact_samplers_lattice_is_refused_before_training():
  """Only a tiny delta needs that much noise (the Gaussian's sigma / Delta stays below about
  1 / (2.5 delta) however small epsilon is); the float64 sampler has no such limit."""
  spec = _table_spec(epsilon=3.0, delta=1e-6)
  plan = dataclasses.replace(vae.plan_budget(spec, 500), noise_ratio=2.0**29)
  with pytest.raises(spec_lib.SettingError, match="more than the exact sampler's lattice"):
    vae.check_budget(spec, plan, 500)
  float_spec = table_options.table_spec(
    "csv:x.csv",
    "s.json",
    dict(epsilon=3.0, delta=1e-6),
    table_options.cli_naming,
    config_overrides={"noise_sampler": "float64"},
  )
  vae.check_budget(float_spec, dataclasses.replace(plan, noise_ratio=2.0**29), 500)


def test_clip_options_reach_dpsgd():
  spec = _table_spec(epsilon=3.0, delta=1e-6, clip_quantile=0.5, clip_norm=2.0)
  assert (spec.train.dp_clip_quantile, spec.train.dp_clip_norm) == (0.5, 2.0)
  assert _table_spec(epsilon=3.0, delta=1e-6).train.dp_clip_quantile is None
  with pytest.raises(spec_lib.SettingError, match="--clip-quantile must be in"):
    _table_spec(epsilon=3.0, delta=1e-6, clip_quantile=1.5)
  grouped = _table_spec(epsilon=3.0, delta=1e-6, clip_quantile=0.5, clip_groups="poutcome")
  assert grouped.train.dp_clip_groups == "poutcome"
  # Per group the count moves by up to max(c, 1 - c): at 0.9, q n must exceed about 18 z, and
  # the refusal says what else would do.
  high = _table_spec(epsilon=3.0, delta=1e-6, clip_quantile=0.9, clip_groups="poutcome")
  plan = vae.plan_budget(high, 600)
  with pytest.raises(spec_lib.SettingError, match=r"above 17.9688 times .*a quantile nearer 0.5"):
    vae._adaptive_clipping_settings(high, plan, 600, domain=None)
  # At the median a group's count moves by 1/2, as one count's does: nothing else to suggest.
  plan = vae.plan_budget(grouped, 100)
  with pytest.raises(spec_lib.SettingError, match="above 10 times") as refused:
    vae._adaptive_clipping_settings(grouped, plan, 100, domain=None)
  assert "per group" not in str(refused.value)
  with pytest.raises(spec_lib.SettingError, match="set --clip-quantile too"):
    _table_spec(epsilon=3.0, delta=1e-6, clip_groups="poutcome")
  # The count's noise q n / 20 must exceed z / 2: refused under the setting's name, not deep in
  # training; a small batch that passes is warned about.
  for records, refused in ((100, True), (3000, False)):
    plan = vae.plan_budget(spec, records)
    if refused:
      with pytest.raises(spec_lib.SettingError, match="needs an expected batch q n above 10 times"):
        vae._adaptive_clipping_settings(spec, plan, records, domain=None)
    else:
      settings = vae._adaptive_clipping_settings(spec, plan, records, domain=None)
      assert settings.gradient_noise_multiplier > settings.noise_multiplier
      # 'auto' keeps the float32 sum with adaptive clipping (the grid needs a fixed clip norm),
      # and the report's note says so.
      assert settings.sum_arithmetic == "float32"
      assert "summed in plain float32" in vae.adaptive_clipping_note(settings)


def test_epsilon_is_end_to_end_unless_the_conditional_scope_is_asked_for_by_name():
  """Issue 15, section 5: one epsilon that covers the weights and the release by default."""
  spec = _table_spec(epsilon=3.0, delta=1e-6)
  assert spec.scope is privacy.Scope.DP_SGD and spec.privacy.total_epsilon == 3.0
  spec = _table_spec(method="prior", epsilon=3.0, delta=1e-6)
  assert spec.scope is privacy.Scope.DP_SGD and spec.privacy.total_epsilon == 3.0
  spec = _table_spec(scope="conditional", epsilon=3.0, delta=1e-6)
  assert spec.scope is privacy.Scope.CONDITIONAL
  assert (spec.privacy.epsilon, spec.privacy.total_epsilon) == (3.0, None)
  # DP-SGD's noise fixed by hand: epsilon is the release's own, the report states the total.
  spec = _table_spec(epsilon=3.0, delta=1e-6, dp_noise_multiplier=2.0)
  assert spec.scope is privacy.Scope.DP_SGD
  assert (spec.privacy.epsilon, spec.privacy.total_epsilon) == (3.0, None)
  # Given together, one would be silently dropped (a review): refused by name.
  with pytest.raises(spec_lib.SettingError, match="--total-epsilon or --dp-noise-multiplier"):
    _table_spec(total_epsilon=3.0, delta=1e-6, dp_noise_multiplier=2.0)
  with pytest.raises(spec_lib.SettingError, match="releases no latents.*drop --epsilon"):
    _table_spec(method="prior", epsilon=0.01, delta=1e-6, dp_noise_multiplier=1.3)
  spec = _table_spec(method="prior", delta=1e-6, dp_noise_multiplier=1.3)
  assert spec.train.dp_noise_multiplier == 1.3 and spec.privacy.total_epsilon is None
  spec = _table_spec(method="mst", epsilon=3.0, delta=1e-6)
  assert spec.scope is privacy.Scope.DP_MEASUREMENTS and spec.privacy.epsilon == 3.0
  # The plan meets the total: DP-SGD and the release composed, at most 3.
  plan = vae.plan_budget(_table_spec(epsilon=3.0, delta=1e-6), 500)
  assert plan.total_epsilon <= 3.0 * (1 + 1e-6) and plan.total_epsilon == pytest.approx(
    3.0, rel=2e-3
  )
  assert plan.dpsgd_noise_multiplier > 0 and plan.release_epsilon < 3.0


def test_label_conditioned_is_a_switch_of_synthesize_and_defaults_off():
  assert _table_spec(epsilon=3.0, delta=1e-6).model.label_conditioned is False
  spec = _table_spec(epsilon=3.0, delta=1e-6, label_conditioned=True)
  assert spec.model.label_conditioned is True and spec.model.label_prior is None
  parser = cli.build_parser()
  args = parser.parse_args(
    ["synthesize", "--data", "x.csv", "--schema", "s.json", "--out", "o.csv", "--report", "r.json"]
    + ["--epsilon", "3", "--delta", "1e-6", "--label-conditioned"]
  )
  assert args.label_conditioned is True


def test_numeric_bins_sets_the_decoders_numeric_likelihood():
  default = _table_spec(epsilon=3.0, delta=1e-6).model.numeric_bins
  assert default == spec_lib.ModelSpec().numeric_bins > 0
  assert _table_spec(epsilon=3.0, delta=1e-6).model.numeric_likelihood == "auto"
  spec = _table_spec(epsilon=3.0, delta=1e-6, numeric_likelihood="binned")
  assert spec.model.numeric_likelihood == "binned"
  with pytest.raises(spec_lib.SettingError, match="numeric.likelihood"):
    _table_spec(epsilon=3.0, delta=1e-6, numeric_likelihood="bins")
  assert _table_spec(epsilon=3.0, delta=1e-6, numeric_bins=0).model.numeric_bins == 0
  parser = cli.build_parser()
  args = parser.parse_args(
    ["synthesize", "--data", "x.csv", "--schema", "s.json", "--out", "o.csv", "--report", "r.json"]
    + ["--epsilon", "3", "--delta", "1e-6", "--numeric-bins", "0", "--numeric-likelihood", "auto"]
  )
  assert args.numeric_bins == 0 and args.numeric_likelihood == "auto"
  with pytest.raises(spec_lib.SettingError, match="numeric.bins"):
    _table_spec(epsilon=3.0, delta=1e-6, numeric_bins=-1)


def _synthesize_args(*extra):
  return cli.build_parser().parse_args(
    ["synthesize", "--data", "x.csv", "--schema", "s.json", "--out", "o.csv", "--report", "r.json"]
    + ["--epsilon", "3", "--delta", "1e-6", *extra]
  )


def test_the_switches_and_the_budget_read_as_given():
  assert cli.table_spec(_synthesize_args("--no-evaluation")).evaluation.enabled is False
  assert cli.table_spec(_synthesize_args()).evaluation.enabled is True
  prior = cli.build_parser().parse_args(
    ["synthesize", "--data", "x.csv", "--schema", "s.json", "--out", "o.csv", "--report", "r.json"]
    + ["--delta", "1e-6", "--method", "prior"]
  )
  with pytest.raises(spec_lib.SettingError, match=r"^give --epsilon: the end-to-end epsilon"):
    cli.table_spec(prior)  # not DP-SGD's default noise, a budget nobody chose
  group = _synthesize_args("--dp-noise-multiplier", "2", "--set", "train={'num_steps': 3}")
  with pytest.raises(spec_lib.SettingError, match=r"^--set train would set --dp-noise"):
    cli.table_spec(group)  # the group's replacement would drop the option's value
  for flag in ("--dp-noise-multiplier", "--clip-norm"):  # not ignored where nothing reads them
    args = _synthesize_args("--scope", "conditional", flag, "2")
    with pytest.raises(spec_lib.SettingError, match=f"^{flag} sets DP-SGD's training"):
      cli.table_spec(args)


def test_set_reaches_any_other_setting():
  args = _synthesize_args(
    "--set",
    "model.latent_dim=4",
    "--set",
    "model.encoder_hidden=(32,)",
    "--set",
    "model.activation=groupsort",
  )
  spec = cli.table_spec(args)
  assert spec.model.latent_dim == 4
  assert tuple(spec.model.encoder_hidden) == (32,)
  assert spec.model.activation == "groupsort"
  assert cli.table_spec(_synthesize_args()).model.latent_dim == spec_lib.ModelSpec().latent_dim


@pytest.mark.parametrize(
  "setting, message",
  [
    ("model.latent_dim", "KEY=VALUE"),
    ("model.numeric_bins=0", "use the option --numeric-bins"),
    ("dataset=digits", "given by --data"),
    ("public_options.strict=True", "given by --data"),
    ("model.latent_dimm=4", "model.latent_dimm"),
    ("modle.latent_dim=4", "no group 'modle'"),
    ("model.latent_dim=-2", "--set model.latent_dim"),
  ],
)
def test_set_refuses_what_it_cannot_set_in_one_line(setting, message):
  with pytest.raises(spec_lib.SettingError, match=message):
    cli.table_spec(_synthesize_args("--set", setting))


def test_degenerate_releases_are_named_with_their_epsilon():
  domain = sources.load_schema(SCHEMA)
  rng = np.random.default_rng(0)
  table = {  # numeric columns far from uniform on their bounds (that has its own warning)
    "age": np.clip(rng.normal(40, 5, 50), 18, 90).round(),
    "score": 100 * rng.beta(2, 8, 50),
    "visits": np.minimum(rng.poisson(2, 50), 20),
    "city": ["Rome"] * 50,
    "smoker": rng.choice(["no", "yes"], 50),
    "outcome": [1] * 50,
  }
  records = domain.encode(table)

  class Report:
    epsilon, headline, delta = 0.1, "per-record epsilon of the release", 1e-6

  warned = checks.release_warnings(domain, records, Report())
  assert len(warned) == 1
  assert "degenerate at epsilon = 0.1" in warned[0]
  assert "column 'city' takes a single value ('Rome')" in warned[0]
  assert "the label 'outcome' has a single class (1)" in warned[0]
  collapsed = np.repeat(records[:1], 50, axis=0)
  assert (
    "all records lie near their mean" in checks.release_warnings(domain, collapsed, Report())[0]
  )
  healthy = domain.encode(
    dict(table, city=rng.choice(["Rome", "Paris"], 50), outcome=rng.integers(0, 2, 50))
  )
  assert not checks.release_warnings(domain, healthy, Report())


def test_numeric_columns_left_uniform_over_their_bounds_are_named():
  domain = sources.load_schema(SCHEMA)
  rng = np.random.default_rng(0)
  n = 400
  learnt = {
    "age": np.clip(rng.normal(40, 5, n), 18, 90).round(),
    "score": 100 * rng.beta(2, 8, n),
    "visits": np.minimum(rng.poisson(2, n), 20),
    "city": rng.choice(["Rome", "Paris"], n),
    "smoker": rng.choice(["no", "yes"], n),
    "outcome": rng.integers(0, 2, n),
  }

  class Report:
    epsilon, headline, delta = 1.0, "total epsilon", 1e-6

  assert not checks.release_warnings(domain, domain.encode(learnt), Report())
  # One uniform column of three (a day of the month is uniform in real data): no warning.
  one = dict(learnt, score=rng.uniform(0, 100, n))
  assert not checks.release_warnings(domain, domain.encode(one), Report())
  two = dict(one, age=rng.integers(18, 91, n))
  (warned,) = checks.release_warnings(domain, domain.encode(two), Report())
  assert "2 of the 3 numeric columns" in warned and "'age', 'score'" in warned
  assert "--numeric-likelihood gaussian" in warned
  assert checks.uniform_numeric_columns(domain, domain.encode(two)) == (
    ["age", "score"],
    ["age", "score", "visits"],
  )


def test_cli_spec_has_the_model_and_training_of_the_experiments_bank_config():
  """The console script trains the study's table model: every model, training and evaluation
  setting of the experiments' 'bank' variant, from one definition (lipdp.spec.table_config)."""
  ours = _table_spec(epsilon=1.0, delta=1e-6)
  theirs = spec_lib.from_config(spec_lib.config_from_file(CONFIGS, "bank"))
  for section in ("model", "train", "evaluation", "release", "method"):
    assert getattr(ours, section) == getattr(theirs, section), section


def test_main_py_errors_are_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  main_py = os.path.join(ROOT, "experiments", "main.py")
  proc = subprocess.run(
    [sys.executable, main_py, f"--workdir={tmp_path / 'run'}", "--config.epsilonn=4"],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
    check=False,
  )
  assert proc.returncode == 2
  assert "the configuration has no field 'epsilonn' (Did you mean \"epsilon\"" in proc.stderr
  assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 2
  proc = subprocess.run(
    [
      sys.executable,
      main_py,
      f"--workdir={tmp_path / 'run'}",
      f"--config.dataset=csv:{tmp_path / 'nope.csv'}",
      f"--config.schema={tmp_path / 'schema.json'}",
    ],
    capture_output=True,
    text=True,
    env=env,
    timeout=300,
    check=False,
  )
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith("experiments/main.py: error: Schema file not found")
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(tmp_path / "run")


# ------------------------------------------------------------------------------------------------
# The synthetic CSV table (lipdp.cli.tables).


def test_csv_numbers_at_a_bound_stay_inside_and_read_back_to_the_records(tmp_path, capsys):
  """Issue 17, item 2: 7 significant digits wrote a low of 0.1000000049 as 0.1 (below it) and a
  high of 0.123456789 as 0.1234568 (above it), so `schema check --strict` refused lipdp's own
  output. Every number must lie in [low, high] and read back to the released record."""
  from lipdp.cli import tables  # pylint: disable=g-import-not-at-top

  schema = {
    "columns": [
      {"name": "x", "type": "numeric", "low": 0.1000000049, "high": 0.123456789},
      {"name": "y", "type": "numeric", "low": -1e6, "high": 3.0000001},
      {"name": "c", "type": "categorical", "categories": ["a", "b"]},
    ]
  }
  schema_path = _write_schema(str(tmp_path), schema)
  domain = sources.load_schema(schema_path)
  rng = np.random.default_rng(0)
  inner = rng.random((200, 2)).astype(np.float32)
  edges = np.array([[0, 0], [1, 1], [0, 1], [1, 0], [1e-7, 1 - 6e-8]], np.float32)
  numeric = np.concatenate([edges, inner])
  records = np.concatenate(
    [numeric, np.eye(2, dtype=np.float32)[rng.integers(0, 2, len(numeric))]], 1
  )
  records = domain.project(records)
  out = str(tmp_path / "synth.csv")
  tables.write_csv(out, domain, records)
  table = sources.read_csv_table(out, domain, strict=True)  # raises for a number out of bounds
  for name, low, high in (("x", 0.1000000049, 0.123456789), ("y", -1e6, 3.0000001)):
    values = table.columns[name]
    assert values.min() >= low and values.max() <= high, name
  np.testing.assert_array_equal(domain.encode(table.columns), records)
  assert cli.main(["schema", "check", "--schema", schema_path, "--data", out, "--strict"]) == 0
  assert capsys.readouterr().out.rstrip().endswith("OK")
  with open(out, encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert lines[1].split(",")[:2] == ["0.1000000049", "-1000000"]  # the bounds, as declared


# ------------------------------------------------------------------------------------------------
# `lipdp report` on a tampered release folder: one plain line naming what does not match.

_TABLE_SCHEMA = {
  "columns": [
    {"name": "age", "type": "numeric", "low": 0, "high": 100},
    {"name": "smoker", "type": "categorical", "categories": ["no", "yes"]},
  ]
}


def _release_folder(tmp_path):
  """A release written by `write_release`, as `lipdp synthesize` writes it (conditional)."""
  domain = sources.load_schema(_TABLE_SCHEMA)
  rng = np.random.default_rng(0)
  records = domain.encode({"age": rng.uniform(0, 100, 40), "smoker": rng.choice(["no", "yes"], 40)})
  report = privacy.make_report(
    privacy.GaussianRelease(5.0),
    lipschitz=0.5,
    domain="a table",
    diameter=domain.diameter,
    delta=1e-5,
    scope="conditional",
    num_records=40,
    certificate={"layer_bounds": [0.5, 1.0]},
    domain_description=domain.describe(),
  )
  folder = str(tmp_path / "release")
  release_lib.write_release(folder, records, domain, report)
  return folder, domain, records


def _rewrite_npz(folder, **arrays):
  path = os.path.join(folder, release_lib.SYNTHETIC_FILE)
  with np.load(path, allow_pickle=False) as npz:
    content = {key: npz[key] for key in npz.files}
  content.update(arrays)
  np.savez(path, **content)


def _tamper_extra_array(folder, domain, records):
  del domain
  _rewrite_npz(folder, private_copy=records)  # e.g. the private training records
  return "private_copy"


def _tamper_decoded_column(folder, domain, records):
  del domain
  with np.load(os.path.join(folder, release_lib.SYNTHETIC_FILE)) as npz:
    ages = npz["column_age"].copy()
  ages[3] = 999.0  # the schema says at most 100
  _rewrite_npz(folder, column_age=ages)
  return "column_age"


def _tamper_certificate(folder, domain, records):
  """Layer bounds deleted and L divided by 5, every number recomputed: consistent alone."""
  del domain, records
  path = os.path.join(folder, release_lib.REPORT_FILE)
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  data["lipschitz"] /= 5
  data["certificate"] = {}
  fresh = privacy.PrivacyReport.from_dict(data).recompute()
  for name in ("sensitivity", "per_record_epsilon", "central_epsilon", "shuffle_delta"):
    data[name] = fresh[name]
  data.update(epsilon=fresh["epsilon"], headline=fresh["headline"], components=fresh["components"])
  with open(path, "w", encoding="utf-8") as f:
    json.dump(data, f)
  return "layer bounds"


def _tamper_domain_bounds(folder, domain, records):
  """A numeric column's bounds widened (age high 100 -> 1e6): the diameter does not see it."""
  del domain, records
  path = os.path.join(folder, release_lib.DOMAIN_FILE)
  with open(path, encoding="utf-8") as f:
    desc = json.load(f)
  desc["columns"][0]["high"] = 1e6
  with open(path, "w", encoding="utf-8") as f:
    json.dump(desc, f)
  return "domain.json"


@pytest.mark.parametrize(
  "tamper",
  [_tamper_extra_array, _tamper_decoded_column, _tamper_certificate, _tamper_domain_bounds],
  ids=["item1-extra-array", "item1-decoded-column", "item4-certificate", "item5-domain"],
)
def test_report_command_refuses_a_tampered_release_folder_in_one_line(tmp_path, capsys, tamper):
  """Issue 17, items 1, 4, 5: each of these verified, and the command said the released records
  and domain match."""
  folder, domain, records = _release_folder(tmp_path)
  assert cli.main(["report", folder]) == 0
  capsys.readouterr()
  name = tamper(folder, domain, records)
  assert cli.main(["report", folder]) == 1
  captured = capsys.readouterr()
  assert "match" not in captured.out
  lines = captured.err.splitlines()
  assert len(lines) == 1, captured.err
  assert lines[0].startswith("lipdp report: error: ") and name in lines[0], lines[0]


def test_report_command_shows_notes_as_supplied_text_apart_from_what_was_verified(tmp_path, capsys):
  """Issue 17, item 6: a note saying "(0.01, 1e-9)-DP, covers the weights" was printed under
  "Notes:" after the verified guarantee, as if it were part of it."""
  note = "(0.01, 1e-9)-DP, covers the weights"
  report = privacy.make_report(
    privacy.GaussianRelease(5.0),
    lipschitz=0.5,
    domain="a table",
    diameter=2.0,
    delta=1e-5,
    scope="conditional",
    num_records=40,
    certificate={"layer_bounds": [0.5]},
    notes=(note,),
  )
  path = str(tmp_path / "report.json")
  report.save(path)
  assert cli.main(["report", path]) == 0
  out = capsys.readouterr().out
  assert "Notes:" not in out
  heading = "Not verified: notes supplied by whoever made the report, verbatim:"
  assert out.count(note) == 1 and heading in out
  verified, supplied = out.split(heading)
  assert note in supplied and f'"{note}"' in supplied
  assert "Caveats:" in verified and "Caveats:" not in supplied  # nothing verified after it


# ------------------------------------------------------------------------------------------------
# lipdp synthesize --method, and lipdp evaluate.


def test_method_offers_every_method_that_releases_under_a_guarantee():
  parser = cli.build_parser()
  synth = parser._subparsers._group_actions[0].choices["synthesize"]  # pylint: disable=protected-access
  (method,) = [a for a in synth._actions if a.dest == "method"]  # pylint: disable=protected-access
  assert list(method.choices) == ["lipdp", "prior", "mst", "aim", "private_measure", "dp_merf"]
  assert "copy_train" not in method.choices  # a reference without a guarantee is no release
  (delta,) = [a for a in synth._actions if a.dest == "delta"]  # pylint: disable=protected-access
  assert delta.required  # delta is chosen against n: never a silent default
  with pytest.raises(SystemExit):
    parser.parse_args(["synthesize", "--data", "d", "--schema", "s", "--delta", "1e-6",
                       "--out", "o", "--report", "r", "--method", "copy_train"])  # fmt: skip


def test_a_baseline_through_the_command_writes_the_same_outputs(tmp_path, capsys):
  rng = np.random.default_rng(2)
  data = tmp_path / "numbers.csv"
  data.write_text("u,v\n" + "".join(f"{u:.4f},{v:.4f}\n" for u, v in rng.beta(2, 5, (150, 2))))
  schema = _write_schema(
    str(tmp_path),
    {"columns": [{"name": n, "type": "numeric", "low": 0, "high": 1} for n in "uv"]},
    "numbers.json",
  )
  out, report = tmp_path / "out.csv", tmp_path / "out.json"
  argv = ["synthesize", "--data", str(data), "--schema", schema, "--method", "private_measure"]
  argv += ["--epsilon", "1", "--delta", "1e-5", "--out", str(out), "--report", str(report)]
  assert cli.main(argv + ["--no-evaluation"]) == 0, capsys.readouterr().err
  text = capsys.readouterr().out
  assert "covered in full: post-processing of noisy measurements" in text
  loaded = privacy.PrivacyReport.load(str(report))
  assert loaded.scope is privacy.Scope.DP_MEASUREMENTS and loaded.epsilon <= 1.0 + 1e-9
  assert release_lib.verify_release(str(tmp_path / "out.lipdp" / "release")) == loaded
  rows = list(csv.reader(open(out, encoding="utf-8")))
  assert rows[0] == ["u", "v"] and len(rows) == 1 + 120
  # A central baseline has one central epsilon: --epsilon, never --total-epsilon.
  argv = ["synthesize", "--data", str(data), "--schema", schema, "--method", "private_measure"]
  argv += [
    "--delta",
    "1e-5",
    "--out",
    str(tmp_path / "b.csv"),
    "--report",
    str(tmp_path / "b.json"),
  ]
  assert cli.main(argv) == 1
  assert "give --epsilon: the central epsilon" in capsys.readouterr().err
  assert cli.main(argv + ["--epsilon", "1", "--total-epsilon", "1"]) == 1
  assert "not both" in capsys.readouterr().err


def test_evaluate_an_identical_pair_gives_tstr_equal_trtr_and_zero_marginal_distance(
  tmp_path, capsys
):
  table = _write_table(str(tmp_path), n=200)
  schema = _write_schema(str(tmp_path))
  out = tmp_path / "eval"
  argv = ["evaluate", "--synthetic", table, "--real", table, "--schema", schema, "--fast"]
  assert cli.main(argv + ["--train", table, "--out", str(out)]) == 0, capsys.readouterr().err
  printed = capsys.readouterr().out
  metrics = json.load(open(out / "evaluation.json"))
  for model in ("logreg", "hgb"):
    assert metrics[f"tstr/{model}"] == metrics[f"trtr/{model}"]
  assert metrics["fidelity/tv_mean"] == 0.0 and metrics["fidelity/wasserstein_mean"] == 0.0
  assert metrics["fidelity/association_diff_mean"] == 0.0
  assert metrics["privacy/exact_match_train"] == 1.0  # a copy of its training records
  assert "Utility, holdout accuracy TSTR vs TRTR" in printed and "NOT private" in printed
  assert (out / "marginals.png").stat().st_size > 1000
  # Another tool's table, without its training records: TSTR and fidelity, the rest skipped.
  assert cli.main(argv + ["--out", str(tmp_path / "e2")]) == 0
  alone = json.load(open(tmp_path / "e2" / "evaluation.json"))
  assert "tstr/logreg" in alone and "trtr/logreg" not in alone
  assert alone["fidelity/tv_mean"] == 0.0 and "privacy" in alone["meta/skipped"]


def test_clip_groups_must_name_a_categorical_block_of_two_or_more():
  """Refused under the setting's name (lipdp's own domains declare at least two categories;
  the check guards any other domain)."""
  spec = _table_spec(epsilon=3.0, delta=1e-6, clip_quantile=0.5, clip_groups="a")
  one = types.SimpleNamespace(blocks=(data_lib.Block("a", "categorical", 0, 1, ("x",)),))
  with pytest.raises(spec_lib.SettingError, match="declares 1 category: per-group clipping"):
    vae.clip_group_block(spec, one)
  two = types.SimpleNamespace(
    blocks=(data_lib.Block("n", "numeric", 0, 1), data_lib.Block("a", "categorical", 1, 3, (0, 1)))
  )
  assert vae.clip_group_block(spec, two) == (1, 3)
  with pytest.raises(spec_lib.SettingError, match=r"the categorical columns are \['a'\]"):
    vae.clip_group_block(
      _table_spec(epsilon=3.0, delta=1e-6, clip_quantile=0.5, clip_groups="n"), two
    )
