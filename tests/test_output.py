import csv
import datetime as dt
import io
import json

import pyarrow as pa
from rich.console import Console

from takedown.output import Format, render

ROWS = [
    {
        "ip": "198.51.100.7",
        "n": 12345,
        "when": dt.datetime(2011, 3, 16, tzinfo=dt.UTC),
        "raw": b"\x00\xff",
    },
    {"ip": "2001:db8::1", "n": None, "extra": "only here"},
]


def test_json_ndjson_csv_agree():
    as_json = json.loads(render(ROWS, Format.json))
    as_nd = [json.loads(line) for line in render(ROWS, Format.ndjson).splitlines()]
    as_csv = list(csv.DictReader(io.StringIO(render(ROWS, Format.csv))))
    assert as_json == as_nd
    assert len(as_json) == len(as_csv) == 2
    assert as_json[0]["when"] == "2011-03-16T00:00:00+00:00"
    assert as_json[0]["raw"] == "AP8="  # base64
    assert as_json[1]["extra"] == "only here" and as_json[0]["extra"] is None
    assert as_csv[0]["n"] == "12345" and as_csv[1]["n"] == ""


def test_table_prints_all_columns_and_groups_digits():
    console = Console(file=io.StringIO(), width=200)
    assert render(ROWS, Format.table, title="T", console=console) is None
    text = console.file.getvalue()
    assert "12,345" in text and "2001:db8::1" in text and "extra" in text


def test_arrow_tables_and_column_selection():
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    out = json.loads(render(table, Format.json, columns=["b", "missing"]))
    assert out == [{"b": "x"}, {"b": "y"}]
