"""What every importer shares: records in, links out, bad records kept with their error.

Parsers are pure: bytes (and the SHA-256 of the vault item they came from) → ``Parsed``. A
record that cannot be used is a ``Reject`` (its locator, the error, the record's text); a
field that cannot be used drops only that field, also kept as a ``Reject``. Nothing a record
holds stops the batch.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from takedown.case.graph.model import LinkSpec
from takedown.case.graph.normalize import NormalizeError, key_for
from takedown.errors import GraphError

__all__ = [
    "Parsed",
    "RecordError",
    "RecordLinks",
    "Ref",
    "Reject",
    "decode",
    "parse_time",
    "pick",
    "read_records",
    "run_records",
    "text_of",
]

log = logging.getLogger(__name__)

Ref = tuple[str, str]  # (kind, key)


class RecordError(GraphError):
    """This record cannot be used (the message names the field)."""


@dataclass(frozen=True, slots=True)
class Reject:
    locator: str
    error: str
    record: str
    whole: bool = True  # False: one field dropped, the rest of the record imported


@dataclass
class Parsed:
    records: int = 0
    links: list[LinkSpec] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(1 for r in self.rejects if r.whole)

    @property
    def dropped_fields(self) -> int:
        return sum(1 for r in self.rejects if not r.whole)


def parse_time(value: Any, what: str) -> dt.datetime | None:
    """ISO 8601 dates and times, RFC 2822 dates, or Unix seconds; naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(float(value), dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise RecordError(f"{what}: {value!r} is not a time") from None
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError, OverflowError):
                raise RecordError(f"{what}: {text[:40]!r} is not a date or time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise RecordError(f"{what}: {value!r} is out of range") from None


class RecordLinks:
    """Collects the links of one record; normalises every identifier it is given."""

    def __init__(self, sha256: str, locator: str, out: Parsed, raw: str) -> None:
        self.sha256 = sha256
        self.locator = locator
        self.out = out
        self.raw = raw
        self.links: list[LinkSpec] = []

    def ref(
        self, kind: str, value: Any, column: str, *, required: bool = False, **opts: Any
    ) -> Ref | None:
        """The (kind, key) of a field's value; None if it is empty or (optional and) bad."""
        text = "" if value is None else str(value).strip()
        if not text:
            if required:
                raise RecordError(f"{column}: required, but empty")
            return None
        try:
            if kind == "phone" and opts.get("region"):
                from takedown.case.graph.normalize import phone

                key = phone(text, opts["region"])
            elif kind == "payment" and opts.get("provider"):
                from takedown.case.graph.normalize import payment

                key = payment(text, opts["provider"])
            else:
                key = key_for(kind, text)
        except NormalizeError as exc:
            if required:
                raise RecordError(f"{column}: {exc}") from None
            self.out.rejects.append(
                Reject(f"{self.locator}, field {column}", str(exc), self.raw[:2000], whole=False)
            )
            return None
        return (kind, key)

    def link(
        self,
        src: Ref | None,
        kind: str,
        dst: Ref | None,
        confidence: int | None,
        *,
        column: str = "",
        valid_from: dt.datetime | None = None,
        valid_to: dt.datetime | None = None,
        note: str = "",
        src_label: str | None = None,
        dst_label: str | None = None,
        src_attrs: dict[str, Any] | None = None,
        dst_attrs: dict[str, Any] | None = None,
    ) -> None:
        if src is None or dst is None or src == dst:
            return
        where = self.locator + (f", {column}" if column else "")
        self.links.append(
            LinkSpec(
                src[0],
                src[1],
                kind,
                dst[0],
                dst[1],
                confidence,
                [(self.sha256, where)],
                valid_from,
                valid_to,
                note,
                src_label,
                dst_label,
                src_attrs,
                dst_attrs,
            )
        )


def run_records(
    records: Iterator[tuple[str, Any, str]],
    sha256: str,
    build: Callable[[RecordLinks, Any], None],
) -> Parsed:
    """Feed each (locator, record, raw text) to ``build``; a failing record becomes a Reject."""
    out = Parsed()
    for locator, record, raw in records:
        out.records += 1
        if isinstance(record, Reject):
            out.rejects.append(record)
            continue
        rec = RecordLinks(sha256, locator, out, raw)
        try:
            build(rec, record)
        except GraphError as exc:  # RecordError, NormalizeError, a bad confidence
            out.rejects.append(Reject(locator, str(exc), raw[:2000]))
            continue
        except Exception as exc:  # a bug or hostile input we did not foresee: keep going
            log.debug("%s: %r", locator, exc, exc_info=True)
            out.rejects.append(Reject(locator, f"{type(exc).__name__}: {exc}", raw[:2000]))
            continue
        out.links.extend(rec.links)
    return out


# -- reading tables ---------------------------------------------------------------------------
def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _column(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def _rows_csv(text: str) -> Iterator[tuple[str, Any, str]]:
    # Leading '#' lines are comments (the demo files say what they are there).
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        start += 1
    body = io.StringIO("".join(lines[start:]).replace("\0", ""))
    reader = csv.reader(body)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return
    names = [_column(h) for h in header]
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = f"line {start + reader.line_num}"
            yield (where, Reject(where, f"CSV: {exc}", ""), "")
            continue
        if not any(cell.strip() for cell in row):
            continue
        raw = ",".join(row)
        locator = f"line {start + reader.line_num}"
        if len(row) > len(names):
            extra = Reject(locator, f"{len(row)} fields, the header has {len(names)}", raw[:2000])
            yield (locator, extra, raw)
            continue
        yield (locator, dict(zip(names, row, strict=False)), raw)


def _rows_json(text: str) -> Iterator[tuple[str, Any, str]]:
    stripped = text.lstrip()
    try:
        doc = json.loads(text) if stripped[:1] in "[{" else None
    except (json.JSONDecodeError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        for key in ("records", "items", "data", "results"):
            if isinstance(doc.get(key), list):
                doc = doc[key]
                break
        else:
            doc = [doc]
    if isinstance(doc, list):
        for i, item in enumerate(doc, 1):
            raw = json.dumps(item, ensure_ascii=False, default=str)[:4000]
            if not isinstance(item, dict):
                yield (f"record {i}", Reject(f"record {i}", "not a JSON object", raw), raw)
            else:
                yield (f"record {i}", {_column(k): v for k, v in item.items()}, raw)
        return
    for n, line in enumerate(text.splitlines(), 1):  # JSON Lines
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield (f"line {n}", Reject(f"line {n}", f"JSON: {exc}", line[:2000]), line)
            continue
        if not isinstance(item, dict):
            yield (f"line {n}", Reject(f"line {n}", "not a JSON object", line[:2000]), line)
            continue
        yield (f"line {n}", {_column(k): v for k, v in item.items()}, line)


def read_records(data: bytes, name: str = "") -> Iterator[tuple[str, Any, str]]:
    """(locator, record dict or Reject, raw text) per record of a CSV, JSON or JSON Lines file."""
    text = decode(data)
    head = text.lstrip()[:1]
    if name.lower().endswith((".json", ".jsonl", ".ndjson")) or head in ("[", "{"):
        return _rows_json(text)
    return _rows_csv(text)


def pick(record: Mapping[str, Any], *names: str) -> Any:
    """The first non-empty value among several column names (exports spell them differently)."""
    for n in names:
        value = record.get(n)
        if value is not None and (not isinstance(value, str) or value.strip()):
            return value.strip() if isinstance(value, str) else value
    return None


def text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)[:512]
    text = str(value).strip()
    return text[:512] or None
