from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from takedown import schema

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_page_is_generated_from_the_table():
    assert (DOCS / "schema.md").read_text() == schema.doc_markdown() + "\n"


def test_every_field_is_described_and_typed():
    names = [f.name for f in schema.FIELDS]
    assert len(names) == len(set(names))
    for f in schema.FIELDS:
        assert f.description.endswith("."), f.name
        assert schema.arrow_type(f) is not None
    # IntelMQ harmonization names the architecture page promises.
    for required in (
        "time.source",
        "time.observation",
        "source.ip",
        "source.asn",
        "source.geolocation.cc",
        "destination.fqdn",
        "malware.name",
        "classification.taxonomy",
        "feed.name",
        "raw",
    ):
        assert required in names


def _sample_flat() -> pa.Table:
    cols = {}
    for f in schema.FIELDS:
        t = schema.arrow_type(f)
        if pa.types.is_timestamp(t):
            cols[f.name] = pa.array([1_300_000_000_000_000, None], t)
        elif pa.types.is_integer(t):
            cols[f.name] = pa.array([7, None], t)
        elif pa.types.is_fixed_size_binary(t):
            cols[f.name] = pa.array([bytes(range(t.byte_width)), None], t)
        elif pa.types.is_binary(t):
            cols[f.name] = pa.array([b"\x00\x01", None], t)
        else:
            cols[f.name] = pa.array([f"v-{f.name}", None], t)
    return pa.table(cols, schema=schema.flat_schema())


def test_nest_and_flatten_are_inverse():
    flat = _sample_flat()
    nested = schema.nest(flat)
    assert nested.schema == schema.lake_schema()
    assert schema.flatten(nested).equals(flat)


def test_nest_fills_missing_fields_with_nulls():
    part = pa.table({"source.ip": ["192.0.2.1"]})
    nested = schema.nest(part)
    assert nested.schema == schema.lake_schema()
    row = schema.flatten(nested).to_pylist()[0]
    assert row["source.ip"] == "192.0.2.1"
    assert row["malware.name"] is None


def test_duckdb_ddl_matches_the_parquet_duckdb_reads(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(schema.nest(_sample_flat()), tmp_path / "e.parquet")
    con = duckdb.connect()
    con.execute(schema.duckdb_ddl("declared"))
    declared = con.execute("DESCRIBE declared").fetchall()
    read = con.execute(f"DESCRIBE SELECT * FROM '{tmp_path / 'e.parquet'}'").fetchall()
    assert [(r[0], r[1]) for r in declared] == [(r[0], r[1]) for r in read]
    # Dotted names read naturally.
    ip = con.execute(f"SELECT source.ip FROM '{tmp_path / 'e.parquet'}' LIMIT 1").fetchone()
    assert ip == ("v-source.ip",)


def test_spark_ddl_names_every_top_level_group():
    ddl = schema.spark_ddl()
    for top in {f.name.split(".")[0] for f in schema.FIELDS}:
        assert f"`{top}`" in ddl
    assert "STRUCT<" in ddl


@pytest.mark.parametrize("field", schema.FIELDS, ids=lambda f: f.name)
def test_each_field_lands_in_its_struct(field):
    node = schema.lake_schema()
    *parents, leaf = field.name.split(".")
    t = node.field(parents[0]).type if parents else node.field(leaf).type
    for p in parents[1:]:
        t = t.field(p).type
    if parents:
        t = t.field(leaf).type
    assert t == schema.arrow_type(field)
