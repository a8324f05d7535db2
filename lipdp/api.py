"""The Python entry points, for notebooks: `lipdp.synthesize` and `lipdp.evaluate`.

    synthetic, report = lipdp.synthesize(df, "schema.json", epsilon=1, delta=1e-6,
                                         workdir="runs/people")
    metrics = lipdp.evaluate(synthetic, holdout, "schema.json", train=df)

`synthesize` takes a table in memory (a pandas DataFrame when pandas is installed, else a
mapping of NumPy columns) and a schema, and runs the same run as `lipdp synthesize` with the
same options (`lipdp.table_options`) and the same checks: its cells are read by the CSV reading
rules, as the text a CSV file would hold (`lipdp.data.sources.rows_from_columns`). It returns the
synthetic table, of the type it was given, with the declared columns in the table's order, and
the privacy report. `evaluate` measures any synthetic table (lipdp's or another tool's) against
held-out real records (`lipdp.evaluation.evaluate_release`), and `evaluate_csv` the same from
CSV files (`lipdp evaluate`).

pandas is optional (`pip install 'lipdp[pandas]'`): it is imported only when a DataFrame is
given or returned.
"""

import json
import os
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from lipdp import console
from lipdp import data as data_lib
from lipdp import evaluation
from lipdp import files
from lipdp import privacy
from lipdp import runner
from lipdp import spec as spec_lib
from lipdp import table_options
from lipdp import workdir as workdir_lib
from lipdp.data import sources
from lipdp.evaluation import figures

# What `evaluate_csv` writes into its folder: the metrics, and each column real against synthetic.
EVALUATION_FILE = workdir_lib.EVALUATION_FILE
MARGINALS_FIGURE = "marginals.png"


def _is_dataframe(table: Any) -> bool:
  return type(table).__module__.split(".")[0] == "pandas" and hasattr(table, "columns")


def _columns(table: Any) -> Mapping[str, Any]:
  """{column name: values} of a DataFrame or a mapping of columns."""
  if _is_dataframe(table):
    return {str(name): table[name].to_numpy(dtype=object) for name in table.columns}
  if isinstance(table, Mapping):
    return {str(name): values for name, values in table.items()}
  raise TypeError(
    f"a table is a pandas DataFrame or a mapping of column name to values, got "
    f"{type(table).__name__}"
  )


def _like(table: Any, columns: Mapping[str, np.ndarray]):
  """`columns` as the type of `table` (a DataFrame, or a dict of NumPy arrays)."""
  if _is_dataframe(table):
    import pandas  # pylint: disable=g-import-not-at-top  (optional: only for DataFrames)

    return pandas.DataFrame(dict(columns))
  return dict(columns)


def synthesize(
  table: Any,
  schema: Any,
  *,
  workdir: str,
  progress: bool = True,
  config_overrides: Optional[Mapping[str, Any]] = None,
  **options: Any,
) -> Tuple[Any, privacy.PrivacyReport]:
  """A private synthetic copy of a table in memory, and its privacy report.

  Args:
    table: the private records: a pandas DataFrame, or a mapping of column name to values.
      Columns the schema does not declare are not read.
    schema: the schema (a JSON file, or its dict): bounds and categories known in advance,
      never read from the private data (docs/data.md).
    workdir: the run's folder (checkpoints, the release, the evaluation); rerunning with the same
      table and settings resumes; it holds one release.
    progress: show the run's lines and training's progress on stderr (lipdp's own logger
      only, and only if the application has not configured it).
    config_overrides: other settings, {config key: value} (e.g. {"model.latent_dim": 8}).
    **options: the options of `lipdp synthesize` as keywords (`lipdp.table_options.OPTIONS`):
      method, epsilon or total_epsilon, delta (required), scope, k, steps, batch_size,
      holdout_fraction, evaluation, replace_release, noise_seed, train_seed, strict, ...

  Returns:
    (synthetic table of the type of `table`, with the declared columns in its order and the
    declared types; the release's `lipdp.privacy.PrivacyReport`).

  Raises:
    lipdp.spec.SettingError: settings that cannot run, named as keywords; ValueError: a table
      that does not match its schema (naming the column and the row's position).
  """
  spec = table_spec(table, schema, config_overrides=config_overrides, **options)
  if progress:
    console.show_lines()  # the run's lines and progress, unless the application set logging up
  try:
    result = runner.run(spec, workdir, progress=progress)
  except spec_lib.SettingError as e:
    raise e.named(table_options.python_naming) from None
  domain = result.data.domain
  decoded = domain.decode(result.synthetic_records)
  order = result.data.source_info["column_order"]
  return _like(table, {name: decoded[name] for name in order}), result.report


def table_spec(
  table: Any,
  schema: Any,
  *,
  config_overrides: Optional[Mapping[str, Any]] = None,
  **options: Any,
) -> spec_lib.Spec:
  """The spec `synthesize` runs (the same as `lipdp synthesize`'s for the same options, but
  for its data set: a table in memory, named by its digest)."""
  if options.get("scope") == spec_lib.NO_GUARANTEE:  # the reason first, before any setting's
    raise _no_guarantee_refused()
  for option in table_options.OPTIONS:
    if option.required and options.get(option.name) is None:
      raise TypeError(f"synthesize() needs {option.name}= ({option.help})")
  if isinstance(schema, Mapping):
    schema_setting = None  # a dict is not a setting of the config layout: the loader gets it
  else:
    schema_setting = os.fspath(schema)
  rows = sources.rows_from_columns(_columns(table))
  dataset = "table:" + sources.table_digest(rows)
  overrides = dict(config_overrides or {})
  if schema_setting is None:
    overrides["data_options.schema"] = dict(schema)
  spec = table_options.table_spec(
    dataset,
    schema_setting,
    options,
    table_options.python_naming,
    table=rows,
    config_overrides=overrides,
  )
  if spec.privacy is None:  # what it returns is for release: never a table without a guarantee
    raise _no_guarantee_refused()
  return spec


def _no_guarantee_refused() -> spec_lib.SettingError:
  return spec_lib.SettingError(
    f"lipdp.synthesize returns a synthetic table for release, under a guarantee; "
    f"{spec_lib.setting('scope', spec_lib.NO_GUARANTEE)} (a reference without one, such as "
    "copy_train) runs through the main job or the sweeps, which release nothing",
    table_options.python_naming,
  )


def evaluate(
  synthetic: Any,
  real: Any,
  schema: Any,
  *,
  train: Any = None,
  seed: int = 0,
  fast: bool = False,
  strict: bool = False,
) -> dict:
  """Utility, fidelity and empirical privacy of a synthetic table against held-out real records.

  Every table (a DataFrame or a mapping of columns) is read through the schema by the CSV
  reading rules. `real` must be records the synthetic table's maker never saw. `train`, the
  real records it was made from, adds TRAIN-on-real (TRTR), the label agreement of a classifier
  trained on them, the training set's own fidelity, and the membership metrics; without it they
  are skipped (`meta/skipped` says why). See `lipdp.evaluation.evaluate_release`.
  """
  domain = sources.load_schema(schema)
  return evaluation.evaluate_release(
    domain,
    _records(domain, synthetic, strict),
    None if train is None else _records(domain, train, strict),
    _records(domain, real, strict),
    seed=seed,
    fast=fast,
  )


def _records(domain, table: Any, strict: bool) -> np.ndarray:
  rows = sources.rows_from_columns(_columns(table))
  return domain.encode(sources.parse_csv_rows(rows, domain, strict).columns)


def evaluate_csv(
  synthetic: str,
  real: str,
  schema: str,
  *,
  train: Optional[str] = None,
  out: Optional[str] = None,
  seed: int = 0,
  fast: bool = False,
  strict: bool = False,
  delimiter: str = ",",
  encoding: str = "utf-8",
) -> dict:
  """`evaluate` from CSV files (`lipdp evaluate`); with `out`, writes the metrics into
  out/EVALUATION_FILE and each column, real holdout against synthetic, into
  out/MARGINALS_FIGURE."""
  options = {"schema": schema, "delimiter": delimiter, "encoding": encoding, "strict": strict}

  def read(path):
    return data_lib.load_dataset("csv:" + path, holdout_fraction=0.0, **options).train

  domain = sources.load_schema(schema)
  synthetic_records, real_records = read(synthetic), read(real)
  metrics = evaluation.evaluate_release(
    domain,
    synthetic_records,
    None if train is None else read(train),
    real_records,
    seed=seed,
    fast=fast,
  )
  if out is not None:
    files.atomic_write_text(
      os.path.join(out, EVALUATION_FILE),
      json.dumps(metrics, indent=2, sort_keys=True, default=files.json_default),
    )
    figures.column_marginals(
      domain.decode(real_records),
      domain.decode(synthetic_records),
      os.path.join(out, MARGINALS_FIGURE),
      f"{os.path.basename(synthetic)} against {os.path.basename(real)}",
      max_columns=len(domain.columns),
      bounds=figures.declared_bounds(domain),
    )
  return metrics
