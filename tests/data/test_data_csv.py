"""CSV reading rules (lipdp.data.sources) and the schema's 'integer' and 'missing' keys."""

import codecs
import gzip
import json

import numpy as np
import pytest

from lipdp import data
from lipdp.data import sources

SCHEMA = {
  "columns": [
    {"name": "age", "type": "numeric", "low": 0, "high": 120, "integer": True},
    {"name": "income", "type": "numeric", "low": 0, "high": 1000},
    {"name": "city", "type": "categorical", "categories": ["Köln", "Paris"]},
    {"name": "smoker", "type": "categorical", "categories": ["no", "yes"]},
  ],
  "label_column": "smoker",
}
HEADER = "age,income,city,smoker\n"


def _write(tmp_path, text, name="t.csv", encoding="utf-8"):
  path = tmp_path / name
  path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
  return path


def _read(path, schema=None, **kw):
  return sources.read_csv_table(path, schema or SCHEMA, **kw)


def test_reads_columns_counts_clipping_and_keeps_the_header_order(tmp_path):
  path = _write(
    tmp_path,
    "id,smoker,age,income,city\n1,no,30,10.5,Paris\n2, yes ,130,-4,Köln\n3,yes,7,2000,Paris\n",
  )
  table = _read(path)
  assert list(table.columns) == ["age", "income", "city", "smoker"]  # schema order
  assert table.column_order == ("smoker", "age", "income", "city")  # file order
  assert table.ignored_columns == ("id",)
  np.testing.assert_array_equal(table.columns["age"], [30, 130, 7])
  assert table.clipped == {"age": (0, 1), "income": (1, 1)}
  assert table.stripped_cells == 1  # ' yes ' read as 'yes' (the documented whitespace rule)
  assert table.num_rows == 3 and table.encoding == "utf-8" and not table.bom
  with pytest.raises(
    ValueError,
    match="line 3: column 'age' holds 130, outside its declared "
    "bounds \\[0, 120\\] \\(1 value\\(s\\) in all\\)",
  ):
    _read(path, strict=True)


def test_byte_order_mark_gzip_crlf_and_blank_lines(tmp_path):
  text = HEADER + "30,1,Paris,no\r\n\r\n40,2,Köln,yes\r\n\n"
  path = _write(tmp_path, codecs.BOM_UTF8 + text.encode("utf-8"))
  table = _read(path)
  assert table.bom and table.num_rows == 2
  gz = tmp_path / "t.csv.gz"
  gz.write_bytes(gzip.compress(text.encode("utf-8")))
  assert _read(gz).columns["city"].tolist() == ["Paris", "Köln"]


@pytest.mark.parametrize(
  "content, match",
  [
    (b"", "is empty \\(a header row is required\\)"),
    (b"\n  \n", "is empty"),
    (HEADER.encode(), "has a header row but no data rows"),
    (
      (HEADER + "30,1,Paris\n").encode(),
      "line 2: 3 fields, but the header has 4 \\(a missing field\\?\\)",
    ),
    (
      (HEADER + "30,1,Paris,no\n30,1,Paris,no,7\n").encode(),
      "line 3: 5 fields, but the header has 4 \\(an unquoted delimiter",
    ),
    (
      (HEADER + "30,1,Paris,no\n41,2,K\xf6ln,no\n").encode("latin-1"),
      "is not valid UTF-8: byte 0xf6 at byte offset 43, line 3, cannot be decoded",
    ),
    ((HEADER + "30,1,Paris,no\n").encode("utf-16"), "UTF-16 byte-order mark"),
    ((HEADER + "30,1,Paris,no\n").encode("utf-16-le"), "line 1: NUL character"),
    (
      (HEADER + ",1,Paris,no\n").encode(),
      "line 2: numeric column 'age' has a missing value \\(an empty cell\\)",
    ),
    (
      (HEADER + "NaN,1,Paris,no\n").encode(),
      "line 2: numeric column 'age' has a missing value \\('NaN'\\)",
    ),
    (
      (HEADER + "30,inf,Paris,no\n").encode(),
      "line 2: numeric column 'income' holds 'inf', not a finite number",
    ),
    ((HEADER + "30,1e999,Paris,no\n").encode(), "holds '1e999', not a finite number"),
    ((HEADER + "30,1_000,Paris,no\n").encode(), "is numeric but holds '1_000'"),
    (
      (HEADER + "30,1,paris,no\n").encode(),
      "line 2: column 'city' holds 'paris', not one of the "
      "declared categories.*case-sensitive: 'Paris'",
    ),
    (
      (HEADER + "30,1,Paris,no\n30,1,Rome,no\n30,1,,no\n").encode(),
      "line 3: column 'city' holds 'Rome'.*Other undeclared values: \\[''\\]",
    ),
    (
      b"age,income,City,smoker\n30,1,Paris,no\n",
      "lacks declared columns \\['city'\\].*'city' vs the file's 'City'",
    ),
    (
      b"age,income,city,city,smoker\n30,1,Paris,Paris,no\n",
      "names the declared column\\(s\\) \\['city'\\] more than once",
    ),
    ((HEADER + '30,1,"Par"is,no\n').encode(), "line 2: malformed CSV"),
  ],
)
def test_bad_files_are_refused_with_the_place(tmp_path, content, match):
  path = _write(tmp_path, content)
  with pytest.raises(ValueError, match=match):
    _read(path)


def test_other_encodings_on_request(tmp_path):
  path = _write(tmp_path, HEADER + "41,2,Köln,no\n", encoding="latin-1")
  assert _read(path, encoding="latin-1").columns["city"].tolist() == ["Köln"]
  path = _write(tmp_path, HEADER + "41,2,Köln,no\n", encoding="utf-16")
  assert _read(path, encoding="utf-16").columns["city"].tolist() == ["Köln"]
  with pytest.raises(ValueError, match="Unknown encoding 'klingon'"):
    _read(path, encoding="klingon")


def test_missing_paths(tmp_path):
  with pytest.raises(ValueError, match="CSV file not found"):
    _read(tmp_path / "nope.csv")
  with pytest.raises(ValueError, match="is a directory, not a CSV file"):
    _read(tmp_path)
  bad_gz = _write(tmp_path, b"not gzip", name="t.csv.gz")
  with pytest.raises(ValueError, match="is not a readable gzip file"):
    _read(bad_gz)


def test_declared_missing_value_is_substituted_and_counted(tmp_path):
  schema = json.loads(json.dumps(SCHEMA))
  schema["columns"][1]["missing"] = 0
  path = _write(tmp_path, HEADER + "30,,Paris,no\n31,nan,Paris,no\n32,5,Paris,no\n")
  table = _read(path, schema)
  np.testing.assert_array_equal(table.columns["income"], [0, 0, 5])
  assert table.missing == {"income": 2}
  schema["columns"][1]["missing"] = 5000
  with pytest.raises(ValueError, match="'missing' value 5000 must be a number within"):
    _read(path, schema)


def test_whitespace_in_a_declared_category_is_refused(tmp_path):
  schema = json.loads(json.dumps(SCHEMA))
  schema["columns"][2]["categories"] = [" Köln", "Paris"]
  path = _write(tmp_path, HEADER + "30,1,Paris,no\n")
  with pytest.raises(
    ValueError, match="declares the category ' Köln', with surrounding whitespace.*Declare 'Köln'"
  ):
    _read(path, schema)
  schema["columns"][2]["categories"] = [1, "1"]
  with pytest.raises(ValueError, match="print alike"):
    _read(path, schema)


def test_draft_schemas_are_refused_until_the_marker_is_removed(tmp_path):
  path = tmp_path / "schema.json"
  path.write_text(json.dumps(dict(SCHEMA, **{sources.DRAFT_SCHEMA_KEY: "not private"})))
  with pytest.raises(ValueError, match="is a draft read from the private data"):
    data.load_schema(path)
  assert data.load_schema(path, allow_draft=True).column_names[0] == "age"
  (tmp_path / "bad.json").write_text("{")
  with pytest.raises(ValueError, match="not valid JSON"):
    data.load_schema(tmp_path / "bad.json")
  with pytest.raises(ValueError, match="is a directory"):
    data.load_schema(tmp_path)


def test_integer_columns_decode_to_whole_numbers_within_bounds():
  domain = data.load_schema(
    {
      "columns": [
        {"name": "n", "type": "numeric", "low": 0.5, "high": 10.5, "integer": True},
        {"name": "x", "type": "numeric", "low": 0, "high": 1},
      ]
    }
  )
  records = np.array([[0.0, 0.25], [1.0, 0.5], [0.53, 1.0]], np.float32)
  out = domain.decode(records)
  assert out["n"].dtype == np.int64 and out["n"].tolist() == [1, 10, 6]
  assert out["x"].dtype == np.float64
  assert domain.describe_spec()["columns"][0]["integer"] is True
  assert "integer" not in domain.describe_spec()["columns"][1]  # unchanged when not declared
  assert data.domain_from_description(domain.describe()) == domain
  assert "rounded to whole numbers" in domain.describe()["preprocessing"]


@pytest.mark.parametrize(
  "column, match",
  [
    (
      {"name": "a", "type": "numeric", "low": 0, "high": 1, "interger": True},
      "unknown key\\(s\\) \\['interger'\\]",
    ),
    (
      {"name": "a", "type": "numeric", "low": 0.2, "high": 0.8, "integer": True},
      "contain no whole number",
    ),
    (
      {"name": "a", "type": "numeric", "low": 0, "high": 1, "integer": "yes"},
      "'integer' must be true or false",
    ),
    ({"name": "a", "type": "categorical", "categories": "ab"}, "'categories' must be a list"),
  ],
)
def test_schema_key_errors(column, match):
  with pytest.raises(ValueError, match=match):
    data.load_schema({"columns": [column]})


@pytest.mark.parametrize(
  "categories, text",
  [
    ([1, "1"], "1"),
    ([True, "True"], "True"),
    ([0.5, "0.5"], "0.5"),
    (["a", False, "False"], "False"),
  ],
)
def test_categories_that_print_alike_are_refused_when_the_schema_loads(tmp_path, categories, text):
  """Issue 17, item 3: the CSV (and the decoded arrays) write str(category), so two categories
  with the same text could not be told apart in the synthetic table: refused, column named."""
  schema = json.loads(json.dumps(SCHEMA))
  schema["columns"][2]["categories"] = categories
  path = tmp_path / "schema.json"
  path.write_text(json.dumps(schema))
  with pytest.raises(ValueError, match=f"(?i)column 'city'.*print alike as '{text}'"):
    data.load_schema(path)
  with pytest.raises(ValueError, match="print alike"):
    data.CategoricalColumn("city", tuple(categories))
