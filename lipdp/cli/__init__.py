"""`lipdp`: private synthetic copies of CSV tables from the command line.

    lipdp schema draft --data in.csv --out schema.json [--label COLUMN]
    lipdp schema check --schema schema.json [--data in.csv]
    lipdp synthesize --data in.csv --schema schema.json --epsilon 1 --delta 1e-6 \\
        --out synth.csv --report report.json [--scope conditional|dp-sgd|public] [--k K]
    lipdp report report.json          (or a release folder)

Errors are one plain line and a non-zero exit status (2 for bad usage, 1 for bad input or a
failed run, 130 when interrupted); --verbose adds the traceback and the libraries' logs. The
configuration, the data and the output paths are checked before anything is written, and every
output is written atomically, so a failed run leaves an existing output untouched. README.md
has a worked example; docs/data.md the CSV reading rules.
"""

import argparse
import json
import os
import sys
import tempfile
import textwrap
from typing import List, Optional

PROG = "lipdp"
SCOPES = ("conditional", "dp-sgd", "public")


class CliError(ValueError):
  """Bad input or usage, said in one line."""


class _Parser(argparse.ArgumentParser):
  """argparse with a two-line error (message, where to find help) instead of the full usage."""

  def error(self, message):
    print(
      f"{self.prog}: error: {message}\nRun '{self.prog} --help' for the options.", file=sys.stderr
    )
    raise SystemExit(2)


def _version() -> str:
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top

    return metadata.version("lipdp")
  except Exception:  # pylint: disable=broad-except
    return "unknown"


def _common() -> argparse.ArgumentParser:
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument(
    "-v", "--verbose", action="store_true", help="show tracebacks and the libraries' logs"
  )
  common.add_argument(
    "-q", "--quiet", action="store_true", help="only warnings and errors (and the final summary)"
  )
  return common


def _csv_options(parser: argparse.ArgumentParser, strict: bool = True) -> None:
  parser.add_argument("--delimiter", default=",", help="field delimiter (default ',')")
  parser.add_argument(
    "--encoding",
    default="utf-8",
    help="the file's encoding (default utf-8; a byte-order mark is accepted)",
  )
  if strict:
    parser.add_argument(
      "--strict",
      action="store_true",
      help="refuse numbers outside the declared bounds (default: clip them "
      "and count them on the console)",
    )


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of the `lipdp` command."""
  common = _common()
  parser = _Parser(
    prog=PROG,
    allow_abbrev=False,
    description="Differentially private synthetic tables from Lipschitz VAEs.",
  )
  parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
  commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

  schema = commands.add_parser("schema", help="draft or check a schema", allow_abbrev=False)
  schema_commands = schema.add_subparsers(
    dest="schema_command", metavar="SUBCOMMAND", parser_class=_Parser
  )
  draft = schema_commands.add_parser(
    "draft",
    parents=[common],
    allow_abbrev=False,
    help="draft a schema from a CSV file (NOT private: replace its bounds and categories)",
    description="Drafts a schema (column types, bounds, categories) from a CSV file. The "
    "bounds and categories are read from the private data and are not private: "
    "replace them with values known independently before synthesis.",
  )
  draft.add_argument("--data", required=True, help="the CSV file")
  draft.add_argument("--out", required=True, help="the schema file to write (JSON)")
  draft.add_argument("--label", help="the label column (categorical), if any")
  draft.add_argument(
    "--max-categories",
    type=int,
    default=50,
    help="leave out non-numeric columns with more distinct values (default 50)",
  )
  draft.add_argument("--force", action="store_true", help="replace an existing --out file")
  _csv_options(draft, strict=False)

  check = schema_commands.add_parser(
    "check",
    parents=[common],
    allow_abbrev=False,
    help="check a schema, and a CSV file against it, without training",
    description="Checks a schema and, with --data, reads the CSV file under it: what "
    "`lipdp synthesize` would read, clip and ignore.",
  )
  check.add_argument("--schema", required=True, help="the schema file (JSON)")
  check.add_argument("--data", help="a CSV file to read with the schema")
  _csv_options(check)

  synth = commands.add_parser(
    "synthesize",
    parents=[common],
    allow_abbrev=False,
    help="train, certify and release a private synthetic copy of a CSV table",
    description="Trains a Lipschitz VAE on the table, certifies its Lipschitz constant, "
    "releases k synthetic records per private record with (epsilon, delta) per "
    "record, and writes the synthetic CSV and the privacy report.",
  )
  synth.add_argument("--data", required=True, help="the private CSV file (.csv or .csv.gz)")
  synth.add_argument(
    "--schema", required=True, help="the schema file (JSON): bounds and categories known in advance"
  )
  synth.add_argument(
    "--epsilon", type=float, help="the per-record epsilon of the release (or use --total-epsilon)"
  )
  synth.add_argument("--delta", type=float, required=True, help="delta, well below 1/n (e.g. 1e-6)")
  synth.add_argument("--out", required=True, help="the synthetic CSV file to write")
  synth.add_argument("--report", required=True, help="the privacy report to write (JSON)")
  synth.add_argument(
    "--scope",
    choices=SCOPES,
    default="conditional",
    help="what the weights are covered by: conditional (default; trained on "
    "the private data without DP, NOT covered), dp-sgd, public",
  )
  synth.add_argument(
    "--k", type=int, default=1, help="synthetic records per private record (default 1)"
  )
  synth.add_argument(
    "--total-epsilon",
    type=float,
    help="one end-to-end epsilon for DP-SGD training and the release (scope dp-sgd)",
  )
  synth.add_argument(
    "--dp-noise-multiplier",
    type=float,
    default=1.0,
    help="DP-SGD noise multiplier (scope dp-sgd without --total-epsilon)",
  )
  synth.add_argument(
    "--public-data", help="scope public: a public CSV file in the same schema to train on"
  )
  synth.add_argument(
    "--workdir",
    help="folder for checkpoints, the release and the evaluation (default: "
    "--out with the extension .lipdp); rerun to resume",
  )
  synth.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
  synth.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
  synth.add_argument(
    "--holdout-fraction",
    type=float,
    default=0.2,
    help="fraction of records held out of training and synthesis to evaluate "
    "the release (default 0.2; 0: synthesize from all, no evaluation)",
  )
  synth.add_argument(
    "--no-evaluation", action="store_true", help="skip the (not private) evaluation on the holdout"
  )
  synth.add_argument(
    "--replace-release",
    action="store_true",
    help="replace the release already in --workdir (only if never published)",
  )
  synth.add_argument(
    "--noise-seed",
    type=int,
    help="fix the release noise (reproducible, so NOT private against whoever "
    "knows it; recorded in the report)",
  )
  _csv_options(synth)

  report = commands.add_parser(
    "report",
    parents=[common],
    allow_abbrev=False,
    help="verify a privacy report and say its guarantee in plain words",
    description="Verifies a privacy report (every number recomputed from its inputs; a "
    "release folder also against its records and domain) and prints the "
    "guarantee in plain words.",
  )
  report.add_argument("path", help="privacy report (JSON) or release folder")
  return parser


# ------------------------------------------------------------------------------------------------
# Checks that run before anything is written.


def _check_input_file(path: str, flag: str) -> None:
  if not path:
    raise CliError(f"{flag} is empty")
  if not os.path.exists(path):
    raise CliError(f"{flag} {path}: no such file")
  if os.path.isdir(path):
    raise CliError(f"{flag} {path} is a directory, not a file")
  if not os.access(path, os.R_OK):
    raise CliError(f"{flag} {path}: permission denied")


def check_output_path(path: str, flag: str) -> None:
  """A clear error unless `path` can be written as a file (probed with a temporary file)."""
  if not path:
    raise CliError(f"{flag} is empty")
  if os.path.isdir(path):
    raise CliError(f"{flag} {path} is a directory; give a file name")
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.exists(folder):
    raise CliError(f"{flag} {path}: the folder {folder} does not exist")
  if not os.path.isdir(folder):
    raise CliError(f"{flag} {path}: {folder} is not a folder")
  try:
    fd, probe = tempfile.mkstemp(prefix=".lipdp-write-check-", dir=folder)
    os.close(fd)
    os.unlink(probe)
  except OSError as e:
    raise CliError(f"{flag} {path}: cannot write in {folder} ({e.strerror or e})") from e


def _same_file(a: str, b: str) -> bool:
  return os.path.realpath(a) == os.path.realpath(b)


def default_workdir(out: str) -> str:
  """--out without its extension(s), plus '.lipdp' (synth.csv -> synth.lipdp)."""
  base = out[:-3] if out.endswith(".gz") else out
  root, _ = os.path.splitext(base)
  return (root or base) + ".lipdp"


# ------------------------------------------------------------------------------------------------
# Commands.


def _schema_draft(args) -> int:
  from lipdp import files  # pylint: disable=g-import-not-at-top
  from lipdp.cli import draft as draft_lib  # pylint: disable=g-import-not-at-top
  from lipdp.data import sources  # pylint: disable=g-import-not-at-top

  _check_input_file(args.data, "--data")
  if os.path.exists(args.out) and not args.force:
    raise CliError(
      f"--out {args.out} exists; pass --force to replace it (a schema you have "
      "already edited would be lost)"
    )
  if _same_file(args.out, args.data):
    raise CliError("--out is the --data file")
  check_output_path(args.out, "--out")
  rows = sources.read_csv_rows(args.data, delimiter=args.delimiter, encoding=args.encoding)
  drafted = draft_lib.draft_schema(rows, label=args.label, max_categories=args.max_categories)
  files.atomic_write_text(args.out, draft_lib.to_json(drafted.schema))

  columns = drafted.schema["columns"]
  print(
    f"Drafted {args.out} from {args.data} ({len(rows.rows):,} rows): {len(columns)} "
    f"columns, label {drafted.schema['label_column'] or 'none'}."
  )
  width = max(len(c["name"]) for c in columns)
  for c in columns:
    print(f"  {c['name']:<{width}}  {draft_lib.describe_column(c)}")
  for name, why in drafted.left_out:
    print(f"  left out {name}: {why}")
  for note in drafted.notes:
    print(f"  note: {note}")
  if drafted.schema["label_column"] is None:
    print(
      "  no --label: the evaluation's utility measures (train on synthetic, test on real) "
      "need a categorical label column"
    )
  bar = "!" * 78
  text = (
    f"Its bounds (minimum, maximum) and category lists were read from the private data in "
    f"{args.data}. They are statistics of the private records: a release that uses them "
    "leaks them, whatever epsilon you choose. Before synthesis, replace every bound and "
    "category list with values known independently of this data (documentation, domain "
    "knowledge, legal or physical ranges, a public data set), then delete the key "
    f'"{sources.DRAFT_SCHEMA_KEY}": lipdp refuses a schema that still carries it.'
  )
  print(
    "\n".join([bar, f"WARNING: {args.out} IS NOT PRIVATE.", textwrap.fill(text, 78), bar]),
    file=sys.stderr,
  )
  return 0


def _schema_check(args) -> int:
  from lipdp.data import CategoricalColumn, sources  # pylint: disable=g-import-not-at-top

  _check_input_file(args.schema, "--schema")
  domain = sources.load_schema(args.schema)
  print(
    f"{args.schema}: {len(domain.columns)} columns, label "
    f"{domain.label_column or 'none'}; records of dimension {domain.dim}, domain diameter "
    f"D = {domain.diameter:.6g}."
  )
  width = max(len(c.name) for c in domain.columns)
  for c in domain.columns:
    if isinstance(c, CategoricalColumn):
      what = f"categorical  {len(c.categories)} categories"
    else:
      what = f"{'integer' if c.integer else 'numeric':<11}  [{c.low:g}, {c.high:g}]" + (
        f", missing -> {c.missing:g}" if c.missing is not None else ""
      )
    print(f"  {c.name:<{width}}  {what}")
  if args.data:
    _check_input_file(args.data, "--data")
    table = sources.read_csv_table(
      args.data, domain, delimiter=args.delimiter, encoding=args.encoding, strict=args.strict
    )
    print(
      f"{args.data}: {table.num_rows:,} rows read ({table.encoding}"
      f"{', byte-order mark dropped' if table.bom else ''})."
    )
    if table.ignored_columns:
      print(f"  not in the schema, not read: {', '.join(table.ignored_columns)}")
    if table.stripped_cells:
      print(f"  {table.stripped_cells:,} cells had surrounding whitespace (removed)")
    for name, count in table.missing.items():
      print(f"  {name}: {count:,} missing cells given the declared value")
    for name, (below, above) in table.clipped.items():
      print(
        f"  {name}: {below:,} below and {above:,} above the declared bounds, to be clipped "
        "(counts of the private data: do not publish)"
      )
  print("OK")
  return 0


def _synthesize(args) -> int:
  from lipdp import pipeline  # pylint: disable=g-import-not-at-top
  from lipdp.cli import config as config_lib  # pylint: disable=g-import-not-at-top
  from lipdp.cli import console  # pylint: disable=g-import-not-at-top
  from lipdp.cli import tables  # pylint: disable=g-import-not-at-top
  from lipdp.data import sources  # pylint: disable=g-import-not-at-top

  if args.epsilon is None and args.total_epsilon is None:
    raise CliError("give --epsilon (per record) or --total-epsilon (end to end, scope dp-sgd)")
  if args.epsilon is not None and args.total_epsilon is not None:
    raise CliError(
      "give --epsilon or --total-epsilon, not both (--total-epsilon sets the "
      "release's share itself)"
    )
  if args.public_data is not None and args.scope != "public":
    raise CliError("--public-data is for --scope public")
  if args.scope == "public" and args.public_data is None:
    raise CliError(
      "--scope public needs --public-data: a public CSV file in the same schema "
      "(a split of the private data is not public)"
    )
  if args.steps < 1:
    raise CliError(f"--steps must be at least 1, got {args.steps}")
  if args.batch_size < 1:
    raise CliError(f"--batch-size must be at least 1, got {args.batch_size}")
  if not 0.0 <= args.holdout_fraction < 1.0:
    raise CliError(f"--holdout-fraction must be in [0, 1), got {args.holdout_fraction}")
  _check_input_file(args.data, "--data")
  _check_input_file(args.schema, "--schema")
  if args.public_data is not None:
    _check_input_file(args.public_data, "--public-data")
  sources.load_schema(args.schema)  # a clear error now rather than after the checks below
  check_output_path(args.out, "--out")
  check_output_path(args.report, "--report")
  if _same_file(args.out, args.report):
    raise CliError("--out and --report are the same file")
  for flag, path in (("--data", args.data), ("--schema", args.schema)):
    for out_flag, out in (("--out", args.out), ("--report", args.report)):
      if _same_file(path, out):
        raise CliError(f"{out_flag} would overwrite the {flag} file {path}")
  workdir = args.workdir or default_workdir(args.out)
  pipeline.check_workdir(workdir)
  if (
    os.path.exists(os.path.join(workdir, "release", "privacy_report.json"))
    and not args.replace_release
  ):
    raise CliError(
      f"{workdir} already holds a release (an earlier run of this command?). A second release "
      "from the same private records composes with the first; pass --replace-release only if "
      "the first was never published, or give another --workdir"
    )

  config = config_lib.table_config(
    args.data,
    args.schema,
    epsilon=args.epsilon,
    delta=args.delta,
    k=args.k,
    scope=args.scope,
    total_epsilon=args.total_epsilon,
    steps=args.steps,
    batch_size=args.batch_size,
    holdout_fraction=args.holdout_fraction,
    evaluation=not args.no_evaluation,
    strict=args.strict,
    encoding=args.encoding,
    delimiter=args.delimiter,
    replace_release=args.replace_release,
    public_data=args.public_data,
    dp_noise_multiplier=args.dp_noise_multiplier,
    noise_seed=args.noise_seed,
  )
  pipeline.check_config(config)

  log = console.log()
  log.info("lipdp synthesize: %s -> %s (work directory %s)", args.data, args.out, workdir)
  progress = not args.quiet and sys.stderr.isatty()
  result = pipeline.run(config, workdir, progress_bar=progress)
  order = result.data.source_info.get("column_order")
  rows = tables.write_csv(
    args.out,
    result.data.domain,
    result.synthetic_records,
    column_order=order,
    delimiter=args.delimiter,
  )
  result.report.save(args.report)
  covers = console.coverage(result.report)
  outputs = [
    (
      args.out,
      f"{rows:,} synthetic records, {len(result.data.domain.columns)} columns ({covers})",
    ),
    (args.report, f"the privacy report ({covers}; `lipdp report` reads it)"),
  ]
  print(console.run_summary(result, workdir, outputs))
  return 0


def _report(args) -> int:
  from lipdp import privacy  # pylint: disable=g-import-not-at-top
  from lipdp.cli.console import wrap  # pylint: disable=g-import-not-at-top
  from lipdp import release as release_lib  # pylint: disable=g-import-not-at-top

  path = args.path
  if not os.path.exists(path):
    raise CliError(f"{path}: no such file or folder")
  if os.path.isdir(path):
    if not os.path.exists(os.path.join(path, release_lib.REPORT_FILE)):
      raise CliError(
        f"{path} is a folder without {release_lib.REPORT_FILE}: give a privacy "
        "report file or a release folder"
      )
    try:
      report = release_lib.verify_release(path)
    except (KeyError, OSError) as e:
      raise CliError(f"{path} is not a complete release ({e})") from e
    checked = (
      "verified: every number recomputes from its inputs"
      + (", L is within its certificate" if report.lipschitz is not None else "")
      + "; the released records and domain match it (domain.json is the domain the report "
      "was made for; synthetic.npz holds exactly the records it counts, in that domain, and "
      "their decode)"
    )
  else:
    try:
      report = privacy.PrivacyReport.load(path)
    except UnicodeDecodeError as e:
      raise CliError(f"{path} is not a privacy report (not UTF-8 text)") from e
    except json.JSONDecodeError as e:
      raise CliError(f"{path} is not a privacy report (not JSON: {e})") from e
    except KeyError as e:
      raise CliError(f"{path} is not a lipdp privacy report (it lacks {e})") from e
    except (TypeError, AttributeError) as e:
      raise CliError(f"{path} is not a lipdp privacy report ({e})") from e
    except ValueError as e:
      raise CliError(f"{path} is not a valid lipdp privacy report: {e}") from e
    try:
      report.verify()
    except ValueError as e:
      raise CliError(f"{path} does not verify: {e}") from e
    checked = "verified: every number recomputes from the report's own inputs" + (
      ", and L is within its certificate" if report.lipschitz is not None else ""
    )
  print(f"{path} ({checked}; its inputs, such as L and the scope, are taken as stated)")
  for i, line in enumerate(report.summary().splitlines()):
    print(line if i == 0 else wrap(line.strip()))
  print(wrap(f"Neighbouring records: {report.neighboring_relation.statement}"))
  if report.caveats:
    print("Caveats:")
    for caveat in report.caveats:
      print(wrap(f"- {caveat}"))
  if report.notes:
    # Free text from whoever made the report: quoted, after everything derived or verified,
    # so that a note cannot pass for part of the guarantee.
    print()
    print("Not verified: notes supplied by whoever made the report, verbatim:")
    for note in report.notes:
      print(wrap(json.dumps(note, ensure_ascii=False), indent="  > "))
  return 0


def main(argv: Optional[List[str]] = None) -> int:
  """The `lipdp` console script; returns the exit status."""
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.command is None:
    parser.print_help()
    return 2
  if args.command == "schema" and args.schema_command is None:
    parser.error("schema needs a subcommand: draft or check")
  verbose = getattr(args, "verbose", False)
  from lipdp.cli import console  # pylint: disable=g-import-not-at-top

  console.configure_logging(verbose=verbose, quiet=getattr(args, "quiet", False))
  prog = f"{PROG} {args.command}" + (f" {args.schema_command}" if args.command == "schema" else "")
  commands = {
    ("schema", "draft"): _schema_draft,
    ("schema", "check"): _schema_check,
    ("synthesize", None): _synthesize,
    ("report", None): _report,
  }
  command = commands[(args.command, getattr(args, "schema_command", None))]
  try:
    return command(args)
  except KeyboardInterrupt:
    print(
      f"\n{prog}: interrupted. Rerun the same command to resume from the last checkpoint.",
      file=sys.stderr,
    )
    return 130
  except (ValueError, OSError) as e:  # lipdp's own clear messages, and the system's
    console.print_error(prog, e, verbose=verbose, expected=True)
    return 1
  except Exception as e:  # pylint: disable=broad-except
    console.print_error(prog, e, verbose=verbose, expected=False)
    return 1
