"""Spool → Parquet lake, exactly once; and reading the lake back with DuckDB.

Ingest takes each closed spool segment and writes its events to
``lake/events/day=YYYY-MM-DD/<sensor>--<segment>.parquet``. The file names derive from the
segment alone, and every file is written to a temporary name, synced and renamed, so running
ingest again after a kill at any moment rewrites the same files and never duplicates an event.
Only after the files are durable is the segment recorded in the catalog and moved aside.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from takedown import schema
from takedown.errors import IngestError, SpoolError
from takedown.home import Home

if TYPE_CHECKING:
    from takedown.enrich.enricher import Enricher
from takedown.sinkhole.spool import (
    _BLOCK,
    BLOCK_MAGIC,
    Scan,
    SegmentHeader,
    _block_at,
    closed_segments,
    decode_block,
    read_header,
    read_segment,
    recover_folder,
    try_lock,
)

__all__ = [
    "IngestReport",
    "SegmentResult",
    "events_sql",
    "ingest",
    "lake_summary",
    "query_events",
    "spool_summary",
]

log = logging.getLogger(__name__)

_CATALOG_DDL = """
CREATE TABLE IF NOT EXISTS ingested_segments (
    segment VARCHAR PRIMARY KEY,
    sensor VARCHAR,
    events BIGINT,
    corrupt_ranges INTEGER,
    files VARCHAR[],
    ingested_at TIMESTAMPTZ
)
"""


@dataclass
class SegmentResult:
    segment: str
    sensor: str
    events: int
    files: list[str]
    corrupt: list[tuple[int, int]] = field(default_factory=list)
    already: bool = False


@dataclass
class IngestReport:
    segments: int = 0
    events: int = 0
    skipped_already: int = 0
    corrupt_ranges: int = 0
    recovered: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = f"ingested {self.events:,} events from {self.segments:,} segments"
        if self.skipped_already:
            line += f" ({self.skipped_already} already in the lake, moved aside)"
        if self.corrupt_ranges:
            line += (
                f"; {self.corrupt_ranges} corrupt ranges skipped → "
                f"{', '.join(self.quarantined[:3])}"
            )
        return line


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _ingest_lock(home: Home) -> Iterator[None]:
    home.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(home.root / ".ingest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IngestError(
                f"another `takedown ingest` is running on {home.root}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


# Parquet settings of the lake, chosen with bench/bench_ingest.py (see bench/RESULTS.md): the
# writer's per-value work dominates ingest, so it is spent only where it pays. Dictionary
# encoding for the columns that repeat (not for times, addresses, ports, hashes and bodies,
# which would fill the dictionary and fall back to plain after hashing every value); min/max
# statistics only for the columns queries filter on; delta encoding for the near-monotonic
# times; zstd level 1 everywhere but the body prefix, mostly encrypted or compressed bot
# traffic, which lz4 stores as fast as it gives up, and the body hash, 32 random bytes that no
# codec shrinks (stored as they are: a quarter of the writer's work was zstd failing on them).
_NOT_DICTIONARY = frozenset(
    {
        "time.source",
        "time.observation",
        "source.ip",
        "source.port",
        "extra.body.sha256",
        "raw",
    }
)
_STATISTICS = ("time.source", "time.observation", "malware.name", "protocol.application")
# No Arrow schema in the files: a column that holds one value throughout reaches the writer as
# a one-entry dictionary (``_constants_as_dictionaries``), and its stored Arrow type would make
# pyarrow read it back as one. Without it every reader takes the types from the Parquet schema,
# which gives the lake's types exactly (tests/test_lake.py reads a file back to check).
_CODEC = {"raw": "lz4", "extra.body.sha256": "none"}
_PARQUET_OPTIONS: dict[str, Any] = {
    "row_group_size": 1 << 20,
    "compression": {n: _CODEC.get(n, "zstd") for n in schema.FIELD_NAMES},
    "compression_level": {n: 1 for n in schema.FIELD_NAMES if n not in _CODEC},
    "use_dictionary": [n for n in schema.FIELD_NAMES if n not in _NOT_DICTIONARY],
    "write_statistics": list(_STATISTICS),
    "store_schema": False,
    "column_encoding": {
        "time.source": "DELTA_BINARY_PACKED",
        "time.observation": "DELTA_BINARY_PACKED",
    },
}


def _write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **_PARQUET_OPTIONS)
    _fsync_path(tmp)
    tmp.replace(path)
    _fsync_path(path.parent)


def _day_partitions(table: pa.Table) -> list[tuple[str, pa.Table]]:
    times = pc.struct_field(table.column("time"), "source")
    if times.null_count == 0 and len(times):
        # The common case, a segment within one day: two scalars cast, not every row.
        bounds = pc.min_max(times)
        lo = pc.cast(bounds["min"], pa.date32()).as_py()
        if lo == pc.cast(bounds["max"], pa.date32()).as_py():
            return [(lo.isoformat(), table)]
    days = pc.cast(times, pa.date32())
    lo, hi = pc.min(days).as_py(), pc.max(days).as_py()
    if lo is None:
        return [("unknown", table)]
    if lo == hi and days.null_count == 0:
        return [(lo.isoformat(), table)]
    out = []
    for day in pc.unique(days).to_pylist():
        if day is None:
            out.append(("unknown", table.filter(pc.is_null(days))))
        else:
            out.append((day.isoformat(), table.filter(pc.equal(days, day))))
    return out


def _map_segment(path: Path) -> tuple[SegmentHeader, Scan, bytes | mmap.mmap]:
    """``read_segment`` without copying the file: map it and walk its blocks in place.

    Only a clean segment (valid blocks from the header to the end of the file) is read this
    way; anything else is handed to ``read_segment``, whose scanner (fuzzed) finds the corrupt
    ranges and the torn tail. Closed segments are never written again, so the map is stable.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return read_segment(path)
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    data.madvise(mmap.MADV_SEQUENTIAL)
    view = memoryview(data)
    try:
        header = read_header(view)
    except SpoolError as exc:
        raise SpoolError(f"{path}: {exc}") from None
    scan = Scan(valid_end=header.size)
    pos = header.size
    while pos < size:
        block = _block_at(view, pos)
        if block is None:
            return read_segment(path)
        scan.blocks.append(block)
        pos = block.offset + _BLOCK.size + len(block.payload)
    scan.valid_end = pos
    return header, scan, data


# Below this many rows per block on average, a segment's blocks are copied into one batch
# before they are nested: the Parquet writer pays about half a millisecond per chunk, far more
# than the copy when group commits are small. Bigger blocks are written as they are.
_COPY_BELOW_ROWS = 4096


def _nest_blocks(batches: list[pa.RecordBatch]) -> pa.Table:
    rows = sum(b.num_rows for b in batches)
    if len(batches) > 1 and rows < _COPY_BELOW_ROWS * len(batches):
        batches = [pa.concat_batches(batches)]
    batches = _constants_as_dictionaries(batches)
    if len(batches) == 1:
        return schema.nest(batches[0], dictionaries=True)
    return pa.concat_tables([schema.nest(b, dictionaries=True) for b in batches])


# Most of a sinkhole's row holds one value throughout a segment: the sensor, the feed, the
# classification, the protocol, the sinkhole's address. Given as plain text, the Parquet writer
# hashes and compares every one of those values to build a dictionary of one entry, about a
# fifth of its work; given as a one-entry dictionary, it writes the indices (a run of zeros) as
# they are. The file holds the same dictionary pages and values either way. Finding such a
# column costs two comparisons of memory (its offsets and its bytes, each against itself
# shifted by one value), about 25 ns a row for all the columns together.
_CONSTANT_CANDIDATES = frozenset(
    n
    for n in _PARQUET_OPTIONS["use_dictionary"]
    # source.*: the enricher fills and reads these as text
    if not n.startswith("source.")
)


def _constant_text(col: pa.Array) -> pa.Buffer | None:
    """The bytes of the one value of a string column without nulls, or None if it has more."""
    n = len(col)
    if n == 0 or col.null_count or not pa.types.is_string(col.type):
        return None
    _, offsets_buf, data = col.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, n + 1, col.offset * 4)
    start = int(offsets[0])
    width = int(offsets[1]) - start
    if int(offsets[n]) - start != n * width:
        return None
    if n > 1:
        rest = (n - 1) * width
        if not data.slice(start, rest).equals(data.slice(start + width, rest)):
            return None
        if not bool((np.diff(offsets) == width).all()):
            return None
    return data.slice(start, width)


def _shared_constant(columns: list[pa.Array]) -> pa.Buffer | None:
    """The bytes of the one value all these string columns hold, or None if they hold more."""
    value = _constant_text(columns[0])
    if value is None:
        return None
    for col in columns[1:]:
        text = _constant_text(col)
        if text is None or not text.equals(value):
            return None
    return value


def _constants_as_dictionaries(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """The batches with each column that holds one value in all of them as a dictionary."""
    names = batches[0].schema.names
    swap: dict[int, pa.Array] = {}
    for i, name in enumerate(names):
        if name in _CONSTANT_CANDIDATES:
            value = _shared_constant([batch.column(i) for batch in batches])
            if value is not None:
                # The bytes as they are (no decoding: what the spool holds is what is written).
                ends = pa.py_buffer(np.array([0, value.size], np.int32).tobytes())
                swap[i] = pa.Array.from_buffers(pa.string(), 1, [None, ends, value])
    if not swap:
        return batches
    out = []
    for batch in batches:
        columns = batch.columns
        zeros = pa.array(np.zeros(batch.num_rows, np.int8))
        for i, dictionary in swap.items():
            columns[i] = pa.DictionaryArray.from_arrays(zeros, dictionary, safe=False)
        out.append(pa.RecordBatch.from_arrays(columns, names=names))
    return out


_SHA = "extra.body.sha256"


def _hash_as_text(spool_schema: pa.Schema) -> int:
    """Where a spool written before the body hash was kept as bytes has it as hex text."""
    i = spool_schema.get_field_index(_SHA)
    return i if i >= 0 and pa.types.is_string(spool_schema.field(i).type) else -1


def _hash_to_bytes(batch: pa.RecordBatch, i: int) -> pa.RecordBatch:
    """Such a spool's hex hashes as the 32 bytes the lake keeps (anything else as null)."""

    def digest(text: str | None) -> bytes | None:
        try:
            raw = bytes.fromhex(text) if text is not None else None
        except ValueError:
            return None
        return raw if raw is not None and len(raw) == 32 else None

    values = [digest(t) for t in batch.column(i).to_pylist()]
    return batch.set_column(i, pa.field(_SHA, pa.binary(32)), pa.array(values, pa.binary(32)))


def _segment_to_lake(home: Home, path: Path, enricher: Enricher | None = None) -> SegmentResult:
    sensor = path.parent.name
    seg_id = f"{sensor}--{path.stem}"
    header, scan, data = _map_segment(path)
    batches = []
    corrupt = list(scan.corrupt)
    upgrade = _hash_as_text(header.schema)
    for block in scan.blocks:
        try:
            batch = decode_block(header.schema, block)
            batches.append(_hash_to_bytes(batch, upgrade) if upgrade >= 0 else batch)
        except (pa.ArrowException, SpoolError) as exc:
            log.error("%s: block at %d unreadable: %s", path, block.offset, exc)
            end = block.offset + 16 + len(block.payload)
            corrupt.append((block.offset, end))
    if scan.torn_bytes:
        corrupt.append((scan.valid_end, len(data)))
    files: list[str] = []
    events = 0
    if batches:
        nested = _nest_blocks(batches)
        del batches
        if enricher is not None:
            nested = enricher.enrich_table(nested)
        events = nested.num_rows
        for day, part in _day_partitions(nested):
            target = home.events / f"day={day}" / f"{seg_id}.parquet"
            _write_parquet(part, target)
            files.append(str(target.relative_to(home.root)))
    if corrupt:
        _quarantine(home, seg_id, data, corrupt)
    del data
    return SegmentResult(seg_id, sensor, events, files, corrupt)


def _quarantine(
    home: Home, seg_id: str, data: bytes | mmap.mmap, ranges: Sequence[tuple[int, int]]
) -> None:
    home.quarantine.mkdir(parents=True, exist_ok=True)
    for start, end in ranges:
        out = home.quarantine / f"{seg_id}@{start}.bin"
        out.write_bytes(data[start:end])
        out.with_suffix(".txt").write_text(
            f"segment {seg_id}: bytes {start}..{end} failed their CRC or could not be decoded; "
            "the events around them were ingested.\n"
        )


def _catalog(home: Home, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(home.catalog), read_only=read_only)
    if not read_only:
        con.execute(_CATALOG_DDL)
    return con


def _recover_orphans(home: Home, report: IngestReport) -> None:
    """Close open segments of sinkholes that are no longer running."""
    for folder in sorted(p for p in home.spool.iterdir() if p.is_dir()):
        fd = try_lock(folder)
        if fd is None:
            continue  # a live sinkhole owns it
        try:
            report.recovered.extend(f"{folder.name}/{n}" for n in recover_folder(folder))
        finally:
            os.close(fd)


def ingest(
    home: Home,
    progress: Callable[[int, int], None] | None = None,
    threads: int = 2,
    enricher: Enricher | None = None,
) -> IngestReport:
    """Move every closed spool segment into the lake, exactly once.

    With an ``enricher``, each event's source network, AS and country are filled in on the
    way (values a sensor already set are kept): the lookup is then of the time of capture.
    """
    home.ensure()
    report = IngestReport()
    with _ingest_lock(home):
        _recover_orphans(home, report)
        segments = [
            s
            for folder in sorted(p for p in home.spool.iterdir() if p.is_dir())
            for s in closed_segments(folder)
        ]
        con = _catalog(home)
        try:
            done = {r[0] for r in con.execute("SELECT segment FROM ingested_segments").fetchall()}
            todo = []
            for seg in segments:
                if f"{seg.parent.name}--{seg.stem}" in done:
                    _move_aside(home, seg)
                    report.skipped_already += 1
                else:
                    todo.append(seg)
            total = len(todo)
            if progress:
                progress(0, total)
            with ThreadPoolExecutor(max(1, threads)) as pool:
                for i, result in enumerate(pool.map(partial_segment(home, enricher), todo), 1):
                    con.execute(
                        "INSERT OR REPLACE INTO ingested_segments VALUES (?, ?, ?, ?, ?, now())",
                        [
                            result.segment,
                            result.sensor,
                            result.events,
                            len(result.corrupt),
                            result.files,
                        ],
                    )
                    _move_aside(home, todo[i - 1])
                    report.segments += 1
                    report.events += result.events
                    report.corrupt_ranges += len(result.corrupt)
                    report.quarantined.extend(
                        f"quarantine/{result.segment}@{s}.bin" for s, _ in result.corrupt
                    )
                    if progress:
                        progress(i, total)
        finally:
            con.close()
    return report


def partial_segment(
    home: Home, enricher: Enricher | None = None
) -> Callable[[Path], SegmentResult]:
    def run(path: Path) -> SegmentResult:
        try:
            return _segment_to_lake(home, path, enricher)
        except SpoolError as exc:
            raise IngestError(str(exc)) from None

    return run


def _move_aside(home: Home, seg: Path) -> None:
    target_dir = home.ingested / seg.parent.name
    target_dir.mkdir(parents=True, exist_ok=True)
    seg.replace(target_dir / seg.name)
    _fsync_path(target_dir)
    _fsync_path(seg.parent)


# -- reading ---------------------------------------------------------------------------------
def _glob(home: Home) -> str:
    return str(home.events / "*" / "*.parquet")


def has_events(home: Home) -> bool:
    return home.events.is_dir() and any(home.events.glob("*/*.parquet"))


def events_sql(home: Home) -> str:
    """A DuckDB table expression over the whole event lake."""
    return (
        f"read_parquet('{_glob(home)}', hive_partitioning = true, "
        "hive_types = {'day': VARCHAR}, union_by_name = true)"
    )


def event_filter(
    since: dt.datetime | None,
    until: dt.datetime | None,
    family: str | None,
    ip: str | None,
    application: str | None,
) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause on the events (day partitions pruned) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses += ["day >= ?", '"time".source >= ?']
        params += [since.date().isoformat(), since]
    if until is not None:
        clauses += ["day <= ?", '"time".source < ?']
        params += [until.date().isoformat(), until]
    if family:
        clauses.append("malware.name = ?")
        params.append(family.lower())
    if ip:
        clauses.append("source.ip = ?")
        params.append(ip)
    if application:
        clauses.append("protocol.application = ?")
        params.append(application)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def query_events(
    home: Home,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    family: str | None = None,
    ip: str | None = None,
    application: str | None = None,
    limit: int | None = 100,
) -> pa.Table:
    """Events matching the filters, newest last, with flat dotted column names."""
    if not has_events(home):
        return schema.flatten(schema.lake_schema().empty_table())
    where, params = event_filter(since, until, family, ip, application)
    cols = ", ".join(f'"{name}"' for name in schema.lake_schema().names)
    sql = f'SELECT {cols} FROM {events_sql(home)}{where} ORDER BY "time".source DESC'
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    con = duckdb.connect()
    try:
        table = con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()
    flat = schema.flatten(table)
    flat = flat.take(pa.array(range(flat.num_rows - 1, -1, -1), pa.int64()))
    return _digests_as_hex(flat)


def _digests_as_hex(flat: pa.Table) -> pa.Table:
    """The body hash as people read and compare it: 64 hex digits."""
    name = "extra.body.sha256"
    i = flat.schema.get_field_index(name)
    if i < 0:
        return flat
    text = [None if d is None else d.hex() for d in flat.column(i).to_pylist()]
    return flat.set_column(i, pa.field(name, pa.string()), pa.array(text, pa.string()))


def lake_summary(home: Home) -> list[dict[str, Any]]:
    """Per day: events, unique source IPs, families."""
    if not has_events(home):
        return []
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT day, count(*) AS events, count(DISTINCT source.ip) AS ips, "
            f"count(DISTINCT malware.name) AS families FROM {events_sql(home)} "
            "GROUP BY day ORDER BY day"
        ).fetchall()
    finally:
        con.close()
    return [dict(zip(("day", "events", "unique_ips", "families"), r, strict=True)) for r in rows]


_BLOCK_HEAD = struct.Struct("<IIII")


def count_records(path: Path) -> int:
    """Events in a segment, from block headers only (no CRC check): for status displays."""
    total = 0
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        try:
            offset = read_header(head).size
        except SpoolError:
            return 0
        size = os.fstat(fh.fileno()).st_size
        while offset + 16 <= size:
            fh.seek(offset)
            magic, length, _crc, n = _BLOCK_HEAD.unpack(fh.read(16))
            if magic != BLOCK_MAGIC:
                break
            total += n
            offset += 16 + length
    return total


def spool_summary(home: Home) -> list[dict[str, Any]]:
    """Per sensor: open and closed segments and the events waiting in them."""
    out: list[dict[str, Any]] = []
    if not home.spool.is_dir():
        return out
    for folder in sorted(p for p in home.spool.iterdir() if p.is_dir()):
        open_segs = sorted(folder.glob("*.open"))
        closed = closed_segments(folder)
        lock_fd = try_lock(folder)
        running = lock_fd is None
        if lock_fd is not None:
            os.close(lock_fd)
        out.append(
            {
                "sensor": folder.name,
                "running": running,
                "open_segments": len(open_segs),
                "closed_segments": len(closed),
                "waiting_events": sum(count_records(p) for p in [*open_segs, *closed]),
                "bytes": sum(p.stat().st_size for p in [*open_segs, *closed]),
            }
        )
    return out


def iter_ingested(home: Home) -> Iterable[tuple[str, int]]:
    if not home.catalog.exists():
        return []
    try:
        con = _catalog(home, read_only=True)
    except duckdb.Error:
        return []
    try:
        return [
            (r[0], r[1])
            for r in con.execute(
                "SELECT segment, events FROM ingested_segments ORDER BY segment"
            ).fetchall()
        ]
    except duckdb.CatalogException:
        return []
    finally:
        con.close()
