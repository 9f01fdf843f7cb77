"""The event schema, declared once as data.

Field names follow IntelMQ's harmonization so events travel to and from the CSIRT world
unchanged. Every other form of the schema (the flat Arrow schema of the spool, the nested Arrow
schema of the lake, DuckDB and Spark DDL, the docs page) is generated from ``FIELDS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import pyarrow as pa

__all__ = [
    "FIELDS",
    "FIELD_NAMES",
    "Field",
    "arrow_type",
    "doc_markdown",
    "duckdb_ddl",
    "flat_schema",
    "flatten",
    "lake_schema",
    "nest",
    "spark_ddl",
]


@dataclass(frozen=True, slots=True)
class Field:
    """One event field: its dotted IntelMQ name, its type and what it means."""

    name: str
    type: str  # one of _TYPES
    description: str


_TYPES: dict[str, tuple[pa.DataType, str, str]] = {
    # name: (arrow, duckdb, spark)
    "timestamp": (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", "TIMESTAMP"),
    "string": (pa.string(), "VARCHAR", "STRING"),
    "int32": (pa.int32(), "INTEGER", "INT"),
    "int64": (pa.int64(), "BIGINT", "BIGINT"),
    "binary": (pa.binary(), "BLOB", "BINARY"),
    # A digest as its 32 bytes: half the size of hex text, and nothing for a codec to do.
    "sha256": (pa.binary(32), "BLOB", "BINARY"),
}

FIELDS: tuple[Field, ...] = (
    Field("time.source", "timestamp", "When the event happened, as the source saw it (UTC)."),
    Field("time.observation", "timestamp", "When takedown observed or imported the event (UTC)."),
    Field("source.ip", "string", "Address of the infected machine (IPv4 or IPv6, text form)."),
    Field("source.port", "int32", "Source TCP/UDP port of the infected machine."),
    Field("source.asn", "int64", "Autonomous system announcing source.ip (filled by enrich)."),
    Field("source.as_name", "string", "Name of source.asn (filled by enrich)."),
    Field("source.network", "string", "Announced prefix containing source.ip, CIDR."),
    Field("source.geolocation.cc", "string", "ISO 3166-1 alpha-2 country of source.ip."),
    Field("destination.ip", "string", "Address the bot connected to (the sinkhole's)."),
    Field("destination.port", "int32", "Port the bot connected to."),
    Field("destination.fqdn", "string", "Host name the bot asked for (HTTP Host, DNS qname)."),
    Field("protocol.transport", "string", "tcp or udp."),
    Field("protocol.application", "string", "http or dns."),
    Field("malware.name", "string", "Family, lower case, from the matching rule; unknown if none."),
    Field("classification.taxonomy", "string", "IntelMQ taxonomy, e.g. malicious-code."),
    Field("classification.type", "string", "IntelMQ type, e.g. infected-system."),
    Field("feed.name", "string", "Which sensor or feed produced the event."),
    Field("feed.provider", "string", "Who runs that sensor or feed."),
    Field("extra.http.method", "string", "HTTP request method, as sent."),
    Field("extra.http.target", "string", "HTTP request target: path and query, as sent."),
    Field("extra.http.version", "string", "HTTP version of the request, e.g. 1.1."),
    Field("extra.http.user_agent", "string", "User-Agent header."),
    Field("extra.http.headers", "string", "Selected request headers as a JSON object."),
    Field("extra.http.status", "int32", "Status the sinkhole answered with."),
    Field("extra.body.size", "int64", "Full request body size in bytes (even past the cap)."),
    Field(
        "extra.body.sha256",
        "sha256",
        "SHA-256 of the full request body: 32 bytes (`takedown events` shows hex).",
    ),
    Field("extra.dns.qtype", "string", "DNS query type, e.g. A, AAAA, TXT."),
    Field("extra.dns.rcode", "string", "DNS response code the sinkhole gave."),
    Field("extra.bot_id", "string", "Bot identifier, where the family's rule says one sits."),
    Field("extra.rule", "string", "Id of the signature rule that named the family."),
    Field("extra.sensor", "string", "Sinkhole instance (host and worker) that saw it."),
    Field("extra.error", "string", "Why the request could not be parsed, if it could not."),
    Field("raw", "binary", "First bytes of the request body (HTTP) or the query packet (DNS)."),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)


def arrow_type(field: Field) -> pa.DataType:
    """The Arrow type of one field."""
    return _TYPES[field.type][0]


def flat_schema(fields: Sequence[Field] = FIELDS) -> pa.Schema:
    """Arrow schema with one column per dotted name (the spool's form)."""
    return pa.schema([pa.field(f.name, arrow_type(f)) for f in fields])


def _tree(fields: Iterable[Field]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for f in fields:
        *parents, leaf = f.name.split(".")
        node = root
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = f
    return root


def _struct_fields(node: dict[str, Any]) -> list[pa.Field]:
    out = []
    for key, value in node.items():
        if isinstance(value, Field):
            out.append(pa.field(key, arrow_type(value)))
        else:
            out.append(pa.field(key, pa.struct(_struct_fields(value))))
    return out


def lake_schema(fields: Sequence[Field] = FIELDS) -> pa.Schema:
    """Arrow schema with dotted names as nested structs (the lake's form)."""
    return pa.schema(_struct_fields(_tree(fields)))


@cache
def _lake_form() -> tuple[dict[str, Any], pa.Schema]:
    """The field tree and the lake schema of FIELDS, built once (``nest`` runs per batch)."""
    return _tree(FIELDS), lake_schema()


def nest(table: pa.Table | pa.RecordBatch, *, dictionaries: bool = False) -> pa.Table:
    """Turn flat dotted columns into nested struct columns, without copying data.

    Chunked columns (a Table of several batches) are combined first, which copies them.
    With ``dictionaries``, a column may come dictionary-encoded (of its field's type) and
    stays so; the lake's writer hands it columns that hold one value throughout that way.
    """
    columns = {name: table.column(name) for name in table.schema.names}
    length = table.num_rows
    tree, lake = _lake_form()
    out_cols = []
    for key, value in tree.items():
        if isinstance(value, Field):
            col = columns.get(key)
            out_cols.append(
                _combine(col) if col is not None else pa.nulls(length, arrow_type(value))
            )
        else:
            out_cols.append(_struct(value, key + ".", columns, length))
    # Built from the arrays' own types and then compared: ``from_arrays(schema=...)`` takes a
    # struct whose children have other types without a word, and the file would then be wrong.
    out = pa.Table.from_arrays(out_cols, names=lake.names)
    if out.schema != lake:
        for got, want in zip(out.schema, lake, strict=True):
            plain = _decoded(got.type) if dictionaries else got.type
            if plain != want.type:
                raise TypeError(f"column {got.name}: {got.type} where the lake has {want.type}")
    return out


def _decoded(kind: pa.DataType) -> pa.DataType:
    """A type with every dictionary replaced by its value type."""
    if pa.types.is_dictionary(kind):
        return _decoded(kind.value_type)
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_decoded(f.type)) for f in kind])
    return kind


def _struct(
    node: dict[str, Any],
    prefix: str,
    columns: dict[str, pa.Array | pa.ChunkedArray],
    length: int,
) -> pa.Array:
    # A module-level function, not a closure in nest: a recursive closure is a reference cycle
    # that would keep the input columns (and the file they map) alive until the next GC pass.
    children = []
    names = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, Field):
            col = columns.get(path)
            if col is None:
                col = pa.nulls(length, arrow_type(value))
            children.append(_combine(col))
        else:
            children.append(_struct(value, path + ".", columns, length))
        names.append(key)
    return pa.StructArray.from_arrays(children, names=names)


def _combine(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks()
    return col


def flatten(table: pa.Table) -> pa.Table:
    """Inverse of :func:`nest`: nested struct columns back to dotted columns."""
    while any(pa.types.is_struct(t) for t in table.schema.types):
        table = table.flatten()
    return table


def duckdb_ddl(table: str = "events") -> str:
    """CREATE TABLE statement for DuckDB with nested STRUCT columns."""
    return f"CREATE TABLE {table} (\n{_ddl_body(_tree(FIELDS))}\n)"


def spark_ddl() -> str:
    """Spark DDL schema string (for ``spark.read.schema(...)``)."""
    return _spark_fields(_tree(FIELDS))


def _quote(name: str) -> str:
    return f'"{name}"'


def _duck_type(node: dict[str, Any] | Field) -> str:
    if isinstance(node, Field):
        return _TYPES[node.type][1]
    inner = ", ".join(f"{_quote(k)} {_duck_type(v)}" for k, v in node.items())
    return f"STRUCT({inner})"


def _ddl_body(node: dict[str, Any]) -> str:
    pad = "  "
    return ",\n".join(f"{pad}{_quote(k)} {_duck_type(v)}" for k, v in node.items())


def _spark_type(node: dict[str, Any] | Field) -> str:
    if isinstance(node, Field):
        return _TYPES[node.type][2]
    return "STRUCT<" + ", ".join(f"`{k}`: {_spark_type(v)}" for k, v in node.items()) + ">"


def _spark_fields(node: dict[str, Any]) -> str:
    return ", ".join(f"`{k}` {_spark_type(v)}" for k, v in node.items())


def doc_markdown() -> str:
    """The schema docs page (docs/schema.md), generated; a test keeps the file in step."""
    lines = [
        "# Event schema",
        "",
        "Generated from `takedown/schema.py` by `takedown schema`;",
        "do not edit by hand. Field names follow IntelMQ's harmonization. In the Parquet",
        "lake the dotted names are nested structs (`source.ip` reads naturally in DuckDB",
        "and Spark); in the spool, CSV and JSON output they stay flat, dotted.",
        "",
        "| field | type | DuckDB | Spark | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in FIELDS:
        _, duck, spark = _TYPES[f.type]
        lines.append(f"| `{f.name}` | {f.type} | {duck} | {spark} | {f.description} |")
    lines += ["", "## DuckDB DDL", "", "```sql", duckdb_ddl(), "```", ""]
    lines += ["## Spark DDL", "", "```", spark_ddl(), "```", ""]
    return "\n".join(lines)
