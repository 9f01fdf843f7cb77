"""Every listing command's ``--format table|csv|json|ndjson``, in one place."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

__all__ = ["Format", "render"]


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    ndjson = "ndjson"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _rows(data: pa.Table | Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    if isinstance(data, pa.Table):
        return list(data.schema.names), data.to_pylist()
    rows = list(data)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns, rows


def render(
    data: pa.Table | Sequence[dict[str, Any]],
    fmt: Format,
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
    console: Console | None = None,
) -> str | None:
    """Render rows; the table form prints to ``console`` and returns None, others return text."""
    names, rows = _rows(data)
    if columns is not None:
        names = [c for c in columns if c in names]
    if fmt is Format.table:
        console = console or Console()
        table = Table(title=title, show_lines=False, header_style="bold")
        for name in names:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*("" if row.get(n) is None else _cell(row.get(n)) for n in names))
        console.print(table)
        return None
    if fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=names, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({n: _plain(row.get(n)) for n in names})
        return buf.getvalue()
    plain = [{n: _plain(row.get(n)) for n in names} for row in rows]
    if fmt is Format.json:
        return json.dumps(plain, indent=2, ensure_ascii=False) + "\n"
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in plain)


def _cell(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return str(value)
