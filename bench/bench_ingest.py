"""Benchmark `takedown ingest` (spool → Parquet lake) against plain Parquet writers.

Generates N events straight into real spool segments under a temporary home
(``HOME/spool/<sensor>/``): rows are built like the sinkhole builds them (``http_row`` on parsed
requests, classified by the built-in rules), then varied per event with Arrow compute (source
address and port, time, a unique 96-byte body and its SHA-256), cut into group-commit blocks
and framed exactly as ``SpoolWriter.write`` frames them, so the real reader is exercised. The
generation is not timed.

Timed: ``takedown.lake.ingest(Home(path))`` in a fresh child process (wall clock, peak RSS),
``--runs`` times on the same spool (restored between runs). Peers over the same events, already
decoded and nested in memory (loading them is not timed), with the lake's Parquet settings:

* ``pyarrow.parquet.write_table``, one file per segment, as many threads as ingest (the floor);
* DuckDB ``COPY (FROM arrow_table) TO '...parquet'`` with ``SET threads`` to the same number.

Usage::

    .venv/bin/python bench/bench_ingest.py                       # 20M events, small blocks
    .venv/bin/python bench/bench_ingest.py --events 2000000 --blocks both --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from results import write_section

from takedown import lake, schema
from takedown.config import SETTINGS
from takedown.home import Home
from takedown.sinkhole.protocol import SPOOL_SCHEMA, ParsedRequest, Sensor, classify, http_row
from takedown.sinkhole.rules import BUILTIN_RULES, RuleSet
from takedown.sinkhole.spool import (
    _BLOCK,
    BLOCK_MAGIC,
    SpoolWriter,
    _crc,
    closed_segments,
    decode_block,
    read_segment,
    rows_to_batch,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Spool → Parquet ingest"

BLOCK_SIZES = {"small": (64, 512), "large": (8192, 16384)}
POOL_ROWS = 16384  # distinct request shapes (family, host, target, user agent, bot id)
IP_POOL = 1 << 18  # distinct infected machines
BODY_POOL = 1 << 20  # distinct 96-byte bodies (and SHA-256 digests) before reuse
CHUNK = 1 << 16  # rows generated per Arrow compute pass, then cut into blocks
BODY = 96
SPAN_US = 36 * 3600 * 1_000_000  # the run covers 36 hours: some segments cross midnight
START_US = int(dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC).timestamp() * 1_000_000)

# (weight, method, path, user agent, query with a bot id?)
FAMILIES = (
    (75, "POST", "/login.php", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", False),
    (15, "POST", "/panel/gate.php", "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1)", False),
    (10, "POST", "/c/check.php", "Mozilla/5.0 (Windows NT 6.1; WOW64)", True),
)
# The sinkhole's default list of recorded headers (setting ``headers_kept``).
HEADERS_KEPT = tuple(next(s for s in SETTINGS if s.name == "headers_kept").default.split(","))
HOSTS = (
    "onlinescannow.example",
    "guardandprotector.example",
    "piecefordesktop.example",
    "update-srv.example",
    "cdn-telemetry.example",
)


# -- generation --------------------------------------------------------------------------------
def _pool_batch(rng: random.Random, sensor: Sensor) -> pa.RecordBatch:
    """Distinct realistic rows, built the way the sinkhole builds them."""
    rules = RuleSet([BUILTIN_RULES])
    weights = [f[0] for f in FAMILIES]
    rows = []
    for i in range(POOL_ROWS):
        _, method, path, ua, with_id = rng.choices(FAMILIES, weights)[0]
        query = f"id={rng.getrandbits(64):016x}" if with_id else ""
        if rng.random() < 0.3:
            query = f"{query}&v=2.{rng.randrange(9)}" if query else f"v=2.{rng.randrange(9)}"
        host = HOSTS[i % len(HOSTS)]
        headers = {
            "host": host,
            "user-agent": ua,
            "accept": "*/*",
            "content-type": "application/octet-stream" if i % 4 else "text/plain",
            "content-length": str(BODY),
            "connection": "keep-alive",
        }
        req = ParsedRequest(
            method=method,
            target=f"{path}?{query}" if query else path,
            version="1.1",
            headers=headers,
            body_size=BODY,
            body_sha256="0" * 64,
            body_prefix=bytes(BODY),
            keep_alive=True,
        )
        rows.append(
            http_row(
                req,
                classify(rules, req),
                now_us=START_US,
                peer=("0.0.0.0", 0),
                local=("192.0.2.10", 80),
                sensor=sensor,
                status=200,
            )
        )
    return rows_to_batch(rows, SPOOL_SCHEMA)


def _ip_pool(rng: random.Random) -> pa.Array:
    ips = set()
    while len(ips) < IP_POOL:
        a = rng.choice(
            (
                24,
                31,
                41,
                46,
                59,
                77,
                78,
                85,
                89,
                95,
                103,
                113,
                117,
                151,
                177,
                186,
                187,
                190,
                197,
                201,
            )
        )
        ips.add(f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
    return pa.array(sorted(ips), pa.string())


def _randint(n: int, lo: int, hi: int, seed: int) -> pa.Array:
    """n uniform integers in [lo, hi)."""
    x = pc.multiply(pc.random(n, initializer=seed), float(hi - lo))
    return pc.add(pc.cast(pc.floor(x), pa.int64()), lo)


def _fixed_width(kind: pa.DataType, data: pa.Buffer, width: int, n: int, start: int) -> pa.Array:
    offsets = pa.array(range(0, width * (n + 1), width), pa.int32()).buffers()[1]
    return pa.Array.from_buffers(
        kind, n, [None, offsets, data[start * width : (start + n) * width]]
    )


@dataclass
class Generated:
    events: int = 0
    blocks: int = 0
    segments: int = 0
    bytes: int = 0
    seconds: float = 0.0


def _write_block(writer: SpoolWriter, batch: pa.RecordBatch) -> int:
    """``SpoolWriter.write`` for a prebuilt batch: same framing, same rotation, no fdatasync."""
    payload = batch.serialize()
    n = batch.num_rows
    frame = _BLOCK.pack(BLOCK_MAGIC, payload.size, _crc(n, payload), n)
    if writer._fd is not None and writer._due(len(frame) + payload.size):
        writer._close_segment()
    if writer._fd is None:
        writer._open_segment()
    assert writer._fd is not None
    written = os.pwritev(writer._fd, [frame, payload], writer._offset)
    if written != len(frame) + payload.size:
        raise OSError("short write")
    writer._offset += written
    writer.blocks_written += 1
    writer.records_written += n
    return written


def generate(
    home: Home, events: int, sensors: int, block_rows: tuple[int, int], seed: int = 7
) -> Generated:
    t0 = time.perf_counter()
    rng = random.Random(seed)
    gen = Generated()
    ips = _ip_pool(rng)
    bodies = pa.py_buffer(rng.randbytes(BODY_POOL * BODY))
    digests = pa.py_buffer(rng.randbytes(BODY_POOL * 32))
    names = SPOOL_SCHEMA.names
    col = {name: i for i, name in enumerate(names)}
    per_sensor = [events // sensors + (1 if s < events % sensors else 0) for s in range(sensors)]
    seed_n = seed
    for s, n_events in enumerate(per_sensor):
        name = f"bench-w{s}"
        sensor = Sensor(name=name, provider="takedown-bench", headers_kept=HEADERS_KEPT)
        pool = _pool_batch(rng, sensor)
        writer = SpoolWriter(home.spool / name, name, SPOOL_SCHEMA, segment_max_age=1e12)
        writer.open()
        try:
            done = 0
            while done < n_events:
                n = min(CHUNK, n_events - done)
                seed_n += 1
                arrays = pool.take(_randint(n, 0, POOL_ROWS, seed_n)).columns
                idx = pa.array(range(done, done + n), pa.int64())
                us = pc.add(pc.divide(pc.multiply(idx, SPAN_US), n_events), START_US)
                ts = pc.cast(us, pa.timestamp("us", tz="UTC"))
                arrays[col["time.source"]] = ts
                arrays[col["time.observation"]] = ts
                arrays[col["source.ip"]] = ips.take(_randint(n, 0, IP_POOL, seed_n + 10**6))
                arrays[col["source.port"]] = pc.cast(
                    _randint(n, 1024, 65536, seed_n + 2 * 10**6), pa.int32()
                )
                start = rng.randrange(BODY_POOL - n + 1)
                arrays[col["raw"]] = _fixed_width(pa.binary(), bodies, BODY, n, start)
                arrays[col["extra.body.sha256"]] = pa.Array.from_buffers(
                    pa.binary(32), n, [None, digests[start * 32 : (start + n) * 32]]
                )
                chunk = pa.RecordBatch.from_arrays(arrays, schema=SPOOL_SCHEMA)
                pos = 0
                while pos < n:
                    k = min(rng.randint(*block_rows), n - pos)
                    gen.bytes += _write_block(writer, chunk.slice(pos, k))
                    gen.blocks += 1
                    pos += k
                done += n
        finally:
            writer.close()
        gen.events += n_events
    for folder in home.spool.iterdir():
        gen.segments += len(closed_segments(folder))
    gen.seconds = time.perf_counter() - t0
    return gen


def check_format(home: Home) -> None:
    """The real reader decodes what was generated; a real ``SpoolWriter.write`` block matches."""
    seg = closed_segments(next(p for p in sorted(home.spool.iterdir()) if p.is_dir()))[0]
    header, scan, _data = read_segment(seg)
    assert not scan.corrupt and not scan.torn_bytes, seg
    batch = decode_block(header.schema, scan.blocks[0])
    assert batch.schema.equals(SPOOL_SCHEMA)
    with tempfile.TemporaryDirectory() as tmp:
        w = SpoolWriter(Path(tmp), "check", SPOOL_SCHEMA, preallocate=0)
        w.open()
        w.write([tuple(r.values()) for r in batch.to_pylist()])
        w.close()
        h2, s2, _ = read_segment(closed_segments(Path(tmp))[0])
        assert decode_block(h2.schema, s2.blocks[0]).equals(batch)


# -- timing --------------------------------------------------------------------------------------
_CHILD = """
import importlib.util, json, resource, sys, time
from pathlib import Path
from takedown.home import Home
if sys.argv[3]:
    spec = importlib.util.spec_from_file_location("lake_under_test", sys.argv[3])
    lake = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = lake
    spec.loader.exec_module(lake)
    old_schema = Path(sys.argv[3]).with_name("schema_before.py")
    if old_schema.exists():  # the old lake with the old schema.nest, as it was
        spec = importlib.util.spec_from_file_location("schema_under_test", old_schema)
        lake.schema = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = lake.schema
        spec.loader.exec_module(lake.schema)
else:
    from takedown import lake
u = resource.getrusage(resource.RUSAGE_SELF)
c = u.ru_utime + u.ru_stime
t = time.perf_counter()
enricher = None
if len(sys.argv) > 4 and sys.argv[4] == "enrich":  # as `takedown ingest` does by default
    from takedown.enrich import Enricher
    enricher = Enricher.default()
r = lake.ingest(Home(Path(sys.argv[1])), threads=int(sys.argv[2]), enricher=enricher)
s = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
# ru_maxrss survives execve on Linux (it would report the forking parent's peak): read this
# process's own high-water mark instead.
hwm = u.ru_maxrss
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
except OSError:
    pass
print(json.dumps({"seconds": s, "events": r.events, "segments": r.segments,
                  "corrupt": r.corrupt_ranges, "cpu": u.ru_utime + u.ru_stime - c,
                  "maxrss_kib": hwm}))
"""


def reset(home: Home) -> None:
    """Put the ingested segments back in the spool and empty the lake and catalog."""
    if home.ingested.is_dir():
        for folder in home.ingested.iterdir():
            for seg in folder.glob("*.seg"):
                seg.replace(home.spool / folder.name / seg.name)
        shutil.rmtree(home.ingested)
    for p in (home.lake, home.quarantine):
        shutil.rmtree(p, ignore_errors=True)
    for p in home.root.glob("takedown.duckdb*"):
        p.unlink()


def warm(home: Home) -> None:
    """Read the spool into the page cache, as it is when ingest follows the sinkhole closely."""
    buf = bytearray(8 << 20)
    for seg in home.spool.glob("*/*.seg"):
        with open(seg, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def time_ingest(
    home: Home, threads: int, module: Path | None, cache: str, enrich: bool = False
) -> dict[str, Any]:
    reset(home)
    if cache == "warm":
        warm(home)
    load = os.getloadavg()[0]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(home.root),
            str(threads),
            str(module or ""),
            "enrich" if enrich else "",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = max(load, os.getloadavg()[0])
    files = list(home.events.glob("*/*.parquet"))
    result["lake_bytes"] = sum(f.stat().st_size for f in files)
    result["lake_rows"] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    result["days"] = sorted({f.parent.name for f in files})
    return result


def _nested_segments(home: Home, per_group: int) -> Iterator[list[pa.Table]]:
    segs = [s for folder in sorted(home.spool.iterdir()) for s in closed_segments(folder)]
    for i in range(0, len(segs), per_group):
        group = []
        for seg in segs[i : i + per_group]:
            header, scan, _data = read_segment(seg)
            batches = [decode_block(header.schema, b) for b in scan.blocks]
            group.append(schema.nest(pa.Table.from_batches(batches, schema=header.schema)))
        yield group


@dataclass
class PeerResult:
    seconds: float = 0.0
    events: int = 0
    bytes: int = 0


def peer_pyarrow(home: Home, scratch: Path, threads: int) -> PeerResult:
    res = PeerResult()
    opts = getattr(
        lake,
        "_PARQUET_OPTIONS",
        {"compression": "zstd", "compression_level": 1, "row_group_size": 1 << 20},
    )

    def write(arg: tuple[int, pa.Table]) -> int:
        path = scratch / f"pa-{arg[0]}.parquet"
        pq.write_table(arg[1], path, **opts)
        return path.stat().st_size

    with ThreadPoolExecutor(threads) as pool:
        for group in _nested_segments(home, threads):
            t = time.perf_counter()
            sizes = list(pool.map(write, enumerate(group)))
            res.seconds += time.perf_counter() - t
            res.events += sum(g.num_rows for g in group)
            res.bytes += sum(sizes)
            for p in scratch.glob("pa-*.parquet"):
                p.unlink()
    return res


def peer_duckdb(home: Home, scratch: Path, threads: int) -> PeerResult:
    res = PeerResult()
    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    path = scratch / "duck.parquet"
    try:
        for group in _nested_segments(home, threads):
            table = pa.concat_tables(group)
            con.register("segment_events", table)
            t = time.perf_counter()
            con.execute(
                f"COPY (FROM segment_events) TO '{path}' (FORMAT parquet, COMPRESSION zstd, "
                "COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1048576)"
            )
            res.seconds += time.perf_counter() - t
            res.events += table.num_rows
            res.bytes += path.stat().st_size
            con.unregister("segment_events")
            path.unlink()
    finally:
        con.close()
    return res


# -- report -------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def _rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f}" if seconds else "-"


@dataclass
class Row:
    """One line of the results table: one way of turning the events into Parquet."""

    blocks: str
    events: int
    what: str
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    rss_kib: int = 0
    out_bytes: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def rate(self) -> float:
        return self.events / self.median


def render(args: argparse.Namespace, rows: list[Row], spool: dict[str, tuple[int, int]]) -> str:
    cmd = " ".join([".venv/bin/python", "bench/bench_ingest.py", *sys.argv[1:]])
    loads = [x for r in rows for x in r.load]
    lines = [
        SECTION,
        "",
        f"Command: `{cmd}`  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; nproc {os.cpu_count()}; "
        f"CPU {_cpu_model()}; Python {platform.python_version()}; pyarrow {pa.__version__}; "
        f"duckdb {duckdb.__version__}; 1-minute load average during the ingest runs "
        f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} (other work shared the "
        "machine).",
        "",
        f"{args.events:,} events from {args.sensors} sensors in spool segments of 64 MiB (the "
        "default `segment_max_bytes`), written in the real on-disk format: rows built by "
        "`http_row` and classified by the built-in rules, varied per event (source address "
        "and port, time spread over 36 h so some segments cross midnight, a unique 96-byte "
        "body and its SHA-256), framed in group-commit blocks. "
        + (
            "The spool is read into the page cache before each run (untimed), as it is when "
            "ingest follows the sinkhole. "
            if args.cache == "warm"
            else "The spool is left wherever the page cache has it. "
        )
        + f"`takedown.lake.ingest` runs in a fresh process with {args.threads} threads; its "
        "wall clock covers recovery, the catalog, decoding, Parquet, fsync and renames"
        + (
            " (after one untimed warm-up run; on this VM the first process to touch fresh "
            "memory pays for it)"
            if args.warmup
            else ""
        )
        + (". Its variants take turns, run by run. " if args.before or args.enrich else ". ")
        + "The "
        "peers get the same events already decoded and nested in memory and write them with "
        "the lake's Parquet settings, one file per segment, "
        f"{args.threads} at a time (pyarrow) or with `SET threads={args.threads}` (DuckDB); "
        "only their write is timed. CPU is user + system seconds of the ingest process per "
        "million events.",
        "",
        "| blocks (rows) | spool | what | runs (s) | median (s) | events/s | CPU s / M events "
        "| peak RSS | Parquet | ingest ÷ this |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ingest_rate = {r.blocks: r.rate for r in rows if r.what == "takedown ingest"}
    for r in rows:
        segs, size = spool[r.blocks]
        cpu = f"{statistics.median(r.cpu) / r.events * 1e6:.2f}" if r.cpu else "-"
        rss = _mib(r.rss_kib * 1024) if r.rss_kib else "-"
        ratio = f"{ingest_rate[r.blocks] / r.rate:.2f}" if r.blocks in ingest_rate else "-"
        lines.append(
            f"| {r.blocks} | {size / (1 << 20):,.0f} MiB, {segs} segments | {r.what} | "
            f"{', '.join(f'{x:.2f}' for x in r.runs)} | {r.median:.2f} | **{r.rate:,.0f}** | "
            f"{cpu} | {rss} | {_mib(r.out_bytes)} | {ratio} |"
        )
    lines += [
        "",
        f"Events per run: {args.events:,}. Target (issue): ≥ 1,000,000 events/s for 20 M "
        "events. Peak RSS is the ingest process's maximum resident set. On a busy shared "
        "machine the wall clock follows the CPU left over; CPU seconds per million events "
        "are the steadier measure (2 idle cores give at most 2 / that, in millions/s).",
        "",
        "The ingest path being measured (`takedown/lake.py`): each segment is memory-mapped "
        "and its blocks CRC-checked in place (corrupt or torn segments go through the spool's "
        "own scanner); small group-commit blocks are concatenated into one batch, large ones "
        "(≥ 4,096 rows on average) are nested and written as they are; a segment within one "
        "day skips the per-row day split; Parquet is written with dictionary encoding only "
        "on repeating columns, min/max statistics only on the columns queries filter on, "
        "delta-encoded times, zstd level 1 (lz4 for the body prefix; the body hash, 32 raw "
        "bytes since the schema keeps it so, stored uncompressed). Two segments are "
        "processed at once.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--events",
        type=int,
        default=20_000_000,
        help="events in the spool (default 20M, the issue's)",
    )
    ap.add_argument(
        "--sensors", type=int, default=2, help="sensors writing the spool, one directory each"
    )
    ap.add_argument(
        "--blocks",
        choices=["small", "large", "both"],
        default="small",
        help="group-commit block sizes: small 64–512 rows, large 8192–16384",
    )
    ap.add_argument("--runs", type=int, default=3, help="ingest runs per variant (median)")
    ap.add_argument(
        "--threads", type=int, default=2, help="ingest threads, and the peers' (default 2)"
    )
    ap.add_argument(
        "--no-peers", action="store_true", help="time takedown ingest only, not pyarrow and DuckDB"
    )
    ap.add_argument(
        "--enrich", action="store_true", help="also time ingest with enrichment (as the CLI)"
    )
    ap.add_argument("--dir", type=Path, default=None, help="where the temporary home goes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument(
        "--spool-dir",
        type=Path,
        default=None,
        help="generate the spool here once and reuse it on later runs (not deleted)",
    )
    ap.add_argument(
        "--cache",
        choices=["warm", "as-is"],
        default="warm",
        help="read the spool into the page cache before each run (default) or not",
    )
    ap.add_argument(
        "--before",
        metavar="GIT_REV",
        help="also time takedown/lake.py and schema.py as of this git revision (before/after)",
    )
    ap.add_argument("--before-runs", type=int, default=1, help="runs of the --before version")
    ap.add_argument(
        "--warmup",
        action="store_true",
        help="one untimed ingest before the timed ones (on a VM, the first process to touch "
        "fresh memory pays for it: the first run is often the slowest)",
    )
    ap.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    args = ap.parse_args()

    before = None
    if args.before:
        before = Path(tempfile.mkdtemp(prefix="td-bench-before-")) / "lake_before.py"
        for name in ("lake", "schema"):
            source = subprocess.run(
                ["git", "show", f"{args.before}:takedown/{name}.py"],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
            before.with_name(f"{name}_before.py").write_text(source)

    rows: list[Row] = []
    spool: dict[str, tuple[int, int]] = {}
    kinds = ["small", "large"] if args.blocks == "both" else [args.blocks]
    for kind in kinds:
        reuse = args.spool_dir is not None
        if reuse:
            base = args.spool_dir / f"{kind}-{args.events}-{args.sensors}"
            base.mkdir(parents=True, exist_ok=True)
        else:
            base = Path(tempfile.mkdtemp(prefix="td-bench-ingest-", dir=args.dir))
        home = Home(base / "home")
        meta = base / "generated.json"
        try:
            if reuse and meta.exists():
                gen = Generated(**json.loads(meta.read_text()))
                reset(home)
                print(f"[{kind}] reusing the spool in {home.root}", file=sys.stderr)
            else:
                shutil.rmtree(home.root, ignore_errors=True)
                home.ensure()
                print(f"[{kind}] generating {args.events:,} events ...", file=sys.stderr)
                gen = generate(home, args.events, args.sensors, BLOCK_SIZES[kind])
                meta.write_text(json.dumps(gen.__dict__))
            print(
                f"[{kind}] {gen.events:,} events, {gen.blocks:,} blocks, {gen.segments} "
                f"segments, {_mib(gen.bytes)} (generated in {gen.seconds:.1f} s)",
                file=sys.stderr,
            )
            check_format(home)
            blocks = "{}–{}".format(*BLOCK_SIZES[kind])
            spool[blocks] = (gen.segments, gen.bytes)
            runners: list[tuple[str, Path | None, bool]] = [("takedown ingest", None, False)]
            if args.enrich:
                runners.append(("takedown ingest + enrichment (the CLI's default)", None, True))
            if before is not None:
                runners.append((f"takedown ingest at {args.before} (before)", before, False))
            # Round-robin over the variants (the first round after a warm-up run), so a
            # machine that speeds up or slows down during the benchmark shifts them alike.
            if args.warmup:
                time_ingest(home, args.threads, None, args.cache)
            by_variant = {what: Row(blocks, gen.events, what) for what, _, _ in runners}
            turns = [
                (i, what, module, enrich)
                for i in range(max(args.runs, args.before_runs if before is not None else 0))
                for what, module, enrich in runners
                if i < (args.runs if module is None else args.before_runs)
            ]
            for i, what, module, enrich in turns:
                row = by_variant[what]
                r = time_ingest(home, args.threads, module, args.cache, enrich)
                assert r["events"] == gen.events == r["lake_rows"], r
                assert r["corrupt"] == 0, r
                row.runs.append(r["seconds"])
                row.cpu.append(r["cpu"])
                row.load.append(r["load"])
                row.rss_kib = max(row.rss_kib, r["maxrss_kib"])
                row.out_bytes = r["lake_bytes"]
                print(
                    f"[{kind}] {what} run {i + 1}: {r['seconds']:.2f} s = "
                    f"{_rate(gen.events, r['seconds'])} events/s, CPU {r['cpu']:.2f} s, "
                    f"peak RSS {_mib(r['maxrss_kib'] * 1024)}, load {r['load']:.2f}, "
                    f"days {r['days']}",
                    file=sys.stderr,
                )
            rows.extend(by_variant.values())
            reset(home)
            if not args.no_peers:
                scratch = base / "peer"
                scratch.mkdir()
                for what, fn in (
                    ("pyarrow.parquet.write_table (floor)", peer_pyarrow),
                    ("DuckDB COPY … TO parquet", peer_duckdb),
                ):
                    peer = fn(home, scratch, args.threads)
                    rows.append(
                        Row(blocks, peer.events, what, runs=[peer.seconds], out_bytes=peer.bytes)
                    )
                    print(
                        f"[{kind}] {what}: {peer.seconds:.2f} s = "
                        f"{_rate(peer.events, peer.seconds)} events/s",
                        file=sys.stderr,
                    )
        finally:
            if reuse:
                reset(home)
                shutil.rmtree(base / "peer", ignore_errors=True)
            elif args.keep:
                print(f"kept {base}", file=sys.stderr)
            else:
                shutil.rmtree(base, ignore_errors=True)
    if before is not None:
        shutil.rmtree(before.parent, ignore_errors=True)
    section = render(args, rows, spool)
    print(section)
    if args.write:
        write_section(SECTION, section)
        print(f"updated {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
