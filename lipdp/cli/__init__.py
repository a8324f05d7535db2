"""`lipdp`: private synthetic copies of CSV tables from the command line.

    lipdp schema draft --data in.csv --out schema.json [--label COLUMN]
    lipdp schema check --schema schema.json [--data in.csv]
    lipdp synthesize --data in.csv --schema schema.json --epsilon 1 --delta 1e-6 \\
        --out synth.csv --report report.json [--method lipdp|prior|mst|aim|...] [--k K]
    lipdp report report.json          (or a release folder)
    lipdp evaluate --synthetic synth.csv --real holdout.csv --schema schema.json [--train in.csv]

`synthesize` builds a `lipdp.spec.Spec` from its options (`lipdp.table_options`, shared with
`lipdp.synthesize`) and runs `lipdp.runner.run`, the run every entry point uses; settings are
checked there, once, and named here by their flags.

Errors are one plain line and a non-zero exit status (2 for bad usage, 1 for bad input or a
failed run, 130 when interrupted); --verbose adds the traceback and the libraries' logs. The
configuration, the data and the output paths are checked before anything is written, and every
output is written atomically, so a failed run leaves an existing output untouched. README.md
has a worked example; docs/data.md the CSV reading rules.
"""

import argparse
import ast
from importlib import metadata
import json
import os
import sys
import tempfile
import textwrap
from typing import List, Optional

from lipdp import api
from lipdp import console
from lipdp import evaluation
from lipdp import files
from lipdp import methods
from lipdp import privacy
from lipdp import release as release_lib
from lipdp import runner
from lipdp import spec as spec_lib
from lipdp import table_options
from lipdp.cli import draft as draft_lib
from lipdp.cli import tables
from lipdp.data import CategoricalColumn
from lipdp.data import sources

PROG = "lipdp"
SCOPES = ("conditional", "dp-sgd", "public", "dp-measurements")


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
    return metadata.version("lipdp")
  except metadata.PackageNotFoundError:
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
  """--delimiter, --encoding (and --strict): the CSV reading options of `lipdp.table_options`."""
  for name in ("delimiter", "encoding") + (("strict",) if strict else ()):
    option = table_options.BY_NAME[name]
    if option.type is bool:
      parser.add_argument(option.cli_flag, action="store_true", help=option.help)
    else:
      parser.add_argument(option.cli_flag, help=option.help)


def _csv_kwargs(args) -> dict:
  """The CSV reading options given (the reader's own defaults for the others)."""
  return {k: getattr(args, k) for k in ("delimiter", "encoding") if getattr(args, k) is not None}


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
    description="Makes a private synthetic copy of a table with one of lipdp's methods (by "
    "default: trains a Lipschitz VAE with DP-SGD, certifies its encoder's Lipschitz constant "
    "and releases k synthetic records per private record, shuffled, with one end-to-end "
    "(epsilon, delta) that covers the training and the release), and writes the synthetic CSV "
    "and the privacy report.",
  )
  synth.add_argument("--data", required=True, help="the private CSV file (.csv or .csv.gz)")
  synth.add_argument(
    "--schema", required=True, help="the schema file (JSON): bounds and categories known in advance"
  )
  synth.add_argument("--out", required=True, help="the synthetic CSV file to write")
  synth.add_argument("--report", required=True, help="the privacy report to write (JSON)")
  synth.add_argument(
    "--workdir",
    help="folder for checkpoints, the release and the evaluation (default: "
    "--out with the extension .lipdp); rerun to resume",
  )
  for option in table_options.OPTIONS:
    kwargs = {"help": option.help}
    if option.name == "method":
      kwargs["choices"] = methods.releasing_names()
    elif option.name == "scope":
      kwargs["choices"] = SCOPES
    if option.required:
      kwargs["required"] = True
    elif option.key is not None and option.name not in ("method", "scope", "epsilon"):
      if option.type is not bool and table_options.default(option.name) is not None:
        kwargs["help"] += f" (default {table_options.default(option.name)})"
    if option.type is bool:
      synth.add_argument(option.cli_flag, dest=option.name, action="store_true", **kwargs)
    else:
      synth.add_argument(option.cli_flag, dest=option.name, type=option.type, **kwargs)
  synth.add_argument(
    "--set",
    dest="settings",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="any other setting (the keys of lipdp.spec, as the main job's --config.KEY), e.g. "
    "--set model.latent_dim=4 --set 'model.encoder_hidden=(32,)'; a Python literal, else "
    "text; repeatable",
  )
  synth.set_defaults(evaluation=None, replace_release=None, strict=None)

  evaluate = commands.add_parser(
    "evaluate",
    parents=[common],
    allow_abbrev=False,
    help="measure a synthetic table (any tool's) against held-out real records",
    description="Reads a synthetic CSV table and held-out real records through the schema "
    "(lipdp's CSV reading rules) and prints the utility (train on synthetic, test on real), "
    "fidelity and, with --train, the empirical privacy metrics; writes them and a figure of "
    "every column. The numbers are computed from private data: NOT differentially private.",
  )
  evaluate.add_argument("--synthetic", required=True, help="the synthetic CSV table")
  evaluate.add_argument(
    "--real", required=True, help="real records the synthetic table's maker never saw"
  )
  evaluate.add_argument("--schema", required=True, help="the schema file (JSON)")
  evaluate.add_argument(
    "--train",
    help="the real records the synthetic table was made from: adds TRTR, label agreement and "
    "the membership metrics",
  )
  evaluate.add_argument(
    "--out",
    help="folder for evaluation.json and marginals.png (default: --synthetic with the "
    "extension .evaluation)",
  )
  evaluate.add_argument("--seed", type=int, default=0, help="seed of the models (default 0)")
  evaluate.add_argument("--fast", action="store_true", help="skip the slower downstream models")
  _csv_options(evaluate)

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


def check_output_path(path: str, flag: str, create_folder: bool = False) -> None:
  """A clear error unless `path` can be written as a file (probed with a temporary file);
  with `create_folder`, its folder may be missing and is then probed where it would be made."""
  if not path:
    raise CliError(f"{flag} is empty")
  if os.path.isdir(path):
    raise CliError(f"{flag} {path} is a directory; give a file name")
  folder = os.path.dirname(os.path.abspath(path))
  while create_folder and not os.path.exists(folder):
    folder = os.path.dirname(folder)
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


def default_workdir(out: str, extension: str = ".lipdp") -> str:
  """--out without its extension(s), plus `extension` (synth.csv -> synth.lipdp)."""
  base = out[:-3] if out.endswith(".gz") else out
  root, _ = os.path.splitext(base)
  return (root or base) + extension


# ------------------------------------------------------------------------------------------------
# Commands.


def _schema_draft(args) -> int:
  _check_input_file(args.data, "--data")
  if os.path.exists(args.out) and not args.force:
    raise CliError(
      f"--out {args.out} exists; pass --force to replace it (a schema you have "
      "already edited would be lost)"
    )
  if _same_file(args.out, args.data):
    raise CliError("--out is the --data file")
  check_output_path(args.out, "--out")
  rows = sources.read_csv_rows(args.data, **_csv_kwargs(args))
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
    table = sources.read_csv_table(args.data, domain, strict=args.strict, **_csv_kwargs(args))
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


# Settings `lipdp synthesize` sets from its own arguments.
_SET_BY_THE_COMMAND = ("dataset", "schema", "public_dataset")


def parse_settings(pairs) -> dict:
  """{key: value} of `--set KEY=VALUE` arguments: each value a Python literal (4, 0.5, (32,),
  True), else the text itself (groupsort)."""
  settings = {}
  for pair in pairs or ():
    key, sep, text = pair.partition("=")
    key = key.strip()
    if not sep or not key:
      raise spec_lib.SettingError(f"--set expects KEY=VALUE, got {pair!r}")
    if key in table_options.BY_KEY:
      option = table_options.BY_KEY[key]
      raise spec_lib.SettingError(f"--set {key}: use the option {option.cli_flag} for it")
    if key in _SET_BY_THE_COMMAND or key.split(".")[0] in ("data_options", "public_options"):
      raise spec_lib.SettingError(
        f"--set {key}: the data are given by --data, --schema and --public-data (and their "
        "reading options), not by --set"
      )
    try:
      settings[key] = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      settings[key] = text.strip()
  return settings


def table_spec(args) -> spec_lib.Spec:
  """The spec of `lipdp synthesize ARGS` (its options: `lipdp.table_options`; other settings
  through --set)."""
  options = {o.name: getattr(args, o.name) for o in table_options.OPTIONS}
  for o in table_options.OPTIONS:
    if o.invert:  # a switch such as --no-evaluation: present sets the setting to False
      options[o.name] = False if options[o.name] else None
  return table_options.table_spec(
    "csv:" + args.data,
    args.schema,
    options,
    table_options.cli_naming,
    config_overrides=parse_settings(getattr(args, "settings", None)),
  )


def _synthesize(args) -> int:
  method = methods.get(args.method or table_options.default("method"))
  if method.kind == methods.CENTRAL and args.epsilon is None:
    raise CliError(f"give --epsilon: the central epsilon of method {method.name!r}")
  if method.name == "lipdp" and args.epsilon is None and args.total_epsilon is None:
    raise CliError(
      "give --epsilon: end to end (DP-SGD training and the release; per record with "
      "--scope conditional or public)"
    )
  if args.epsilon is not None and args.total_epsilon is not None:
    raise CliError(
      "give --epsilon or --total-epsilon, not both (--total-epsilon sets the "
      "release's share itself)"
    )
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
  spec = table_spec(args)  # every setting checked, once
  workdir = args.workdir or default_workdir(args.out)

  console.log().info("lipdp synthesize: %s -> %s (work directory %s)", args.data, args.out, workdir)
  result = runner.run(spec, workdir, progress=not args.quiet)
  rows = tables.write_csv(
    args.out,
    result.data.domain,
    result.synthetic_records,
    column_order=result.data.source_info.get("column_order"),
    **{k: v for k, v in _csv_kwargs(args).items() if k == "delimiter"},  # the input's
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


def _evaluate(args) -> int:
  for flag, path in (
    ("--synthetic", args.synthetic),
    ("--real", args.real),
    ("--schema", args.schema),
    ("--train", args.train),
  ):
    if path is not None:
      _check_input_file(path, flag)
  sources.load_schema(args.schema)
  out = args.out or default_workdir(args.synthetic, ".evaluation")
  if os.path.exists(out) and not os.path.isdir(out):
    raise CliError(f"--out {out} is a file, not a folder")
  check_output_path(os.path.join(out, api.EVALUATION_FILE), "--out", create_folder=True)
  metrics = api.evaluate_csv(
    args.synthetic,
    args.real,
    args.schema,
    train=args.train,
    out=out,
    seed=args.seed,
    fast=args.fast,
    strict=args.strict,
    **_csv_kwargs(args),
  )
  for line in evaluation.summary_lines(metrics):
    print(console.wrap(line, indent=""))
  written = [os.path.join(out, name) for name in (api.EVALUATION_FILE, api.MARGINALS_FIGURE)]
  print(
    f"Wrote {written[0]} and {written[1]} (computed from private records: NOT private, do not "
    "publish)."
  )
  return 0


def _report(args) -> int:
  wrap = console.wrap
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
  console.configure_logging(verbose=verbose, quiet=getattr(args, "quiet", False))
  prog = f"{PROG} {args.command}" + (f" {args.schema_command}" if args.command == "schema" else "")
  commands = {
    ("schema", "draft"): _schema_draft,
    ("schema", "check"): _schema_check,
    ("synthesize", None): _synthesize,
    ("evaluate", None): _evaluate,
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
  except spec_lib.SettingError as e:  # a setting, named by this command's flags
    console.print_error(prog, e.named(table_options.cli_naming), verbose=verbose, expected=True)
    return 1
  except (ValueError, OSError) as e:  # lipdp's own clear messages, and the system's
    console.print_error(prog, e, verbose=verbose, expected=True)
    return 1
  except Exception as e:  # pylint: disable=broad-except
    console.print_error(prog, e, verbose=verbose, expected=False)
    return 1
