"""Simulated check-ins straight into the lake, and the ground truth beside them.

Events go to ``HOME/lake/events/day=YYYY-MM-DD/sim-<scenario>-<day>.parquet`` with exactly the
lake schema (flat columns built from the arrays, then ``schema.nest``); names that the
sinkhole's ingest never uses (``<sensor>--<segment>.parquet``), so they never collide. The truth
goes to ``HOME/lake/truth/``: ``daily.parquet``, ``machines.parquet``, ``scenario.toml`` and
``summary.json`` (written last: its presence says the rest is complete). Events never carry the
machine: only a family's bot id, where it sends one, ties events of one machine together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from takedown import schema
from takedown.errors import ConfigError
from takedown.home import Home
from takedown.simulate.population import (
    NEVER,
    DayTruth,
    EventBatch,
    Population,
    Simulation,
    distinct,
)
from takedown.simulate.scenario import DYNAMICS, Scenario

__all__ = [
    "FEED_NAME",
    "SimSummary",
    "TruthTables",
    "daily_table",
    "events_table",
    "ipv4_strings",
    "machines_table",
    "simulate_to_lake",
    "truth_dir",
]

log = logging.getLogger(__name__)

FEED_NAME = "takedown-simulator"
_EMPTY_SHA256 = hashlib.sha256(b"").digest()
_US = pa.timestamp("us", tz="UTC")

# Each byte value's decimal digits, left-aligned in 3 bytes (zero bytes pad; '0' is 48).
_DIGITS = np.zeros((256, 3), dtype=np.uint8)
for _v in range(256):
    _text = str(_v).encode()
    _DIGITS[_v, : len(_text)] = np.frombuffer(_text, dtype=np.uint8)
_LENGTH = np.array([len(str(v)) for v in range(256)], dtype=np.int32)
# Each byte value as two lower-case hex digits.
_HEX2 = np.frombuffer(b"".join(f"{v:02x}".encode() for v in range(256)), np.uint8).reshape(256, 2)


def truth_dir(home: Home) -> Path:
    """Where the ground truth of simulated events lives: beside the event table."""
    return home.lake / "truth"


def ipv4_strings(addr: npt.NDArray[np.uint32]) -> pa.StringArray:
    """Dotted-quad text of IPv4 addresses, built without a Python loop."""
    n = addr.size
    octets = addr.astype(">u4").view(np.uint8).reshape(n, 4)
    grid = np.empty((n, 4, 4), dtype=np.uint8)
    grid[:, :, :3] = _DIGITS[octets]
    grid[:, :, 3] = ord(".")
    grid[:, 3, 3] = 0
    filled = grid.reshape(n, 16) != 0
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(_LENGTH[octets].sum(axis=1, dtype=np.int32) + 3, out=offsets[1:])
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(grid[filled.reshape(n, 4, 4)])
    )


def _hex16(
    ids: npt.NDArray[np.uint64], valid: npt.NDArray[np.bool_] | None = None
) -> pa.StringArray:
    """Fixed-width lower-case hex of 64-bit ids; null where ``valid`` is False."""
    n = ids.size
    data = _HEX2[ids.astype(">u8").view(np.uint8)]
    offsets = np.arange(0, 16 * (n + 1), 16, dtype=np.int32)
    bitmap = None
    nulls = 0
    if valid is not None:
        nulls = int(n - valid.sum())
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


def _const(value: str | int | None, n: int, kind: pa.DataType) -> pa.Array:
    """A column holding one value n times."""
    if value is None:
        return pa.nulls(n, kind)
    if isinstance(value, str):
        raw = value.encode()
        offsets = np.arange(0, len(raw) * (n + 1), len(raw), dtype=np.int32)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))
    return pa.array(np.full(n, value, dtype=kind.to_pandas_dtype()), kind)


@dataclass
class _Lookups:
    """Per-family and per-prefix values, taken by index into each batch's columns."""

    scenario: Scenario
    population: Population
    hosts: pa.Array
    fam: dict[str, pa.Array]
    target_prefix: pa.Array
    prefix_cols: dict[str, pa.Array]

    @classmethod
    def build(cls, sim: Simulation) -> _Lookups:
        s = sim.scenario
        fams = s.families
        pools = sim.pop.pools
        nets = [s.networks[int(j)] for j in pools.network]
        return cls(
            scenario=s, population=sim.pop, hosts=pa.array(sim.hosts, pa.string()),
            fam={
                "malware.name": pa.array([f.name for f in fams], pa.string()),
                "extra.rule": pa.array([f.rule for f in fams], pa.string()),
                "extra.http.method": pa.array([f.method for f in fams], pa.string()),
                "extra.http.target": pa.array([f.path for f in fams], pa.string()),
                "extra.http.user_agent": pa.array([f.user_agent for f in fams], pa.string()),
                "extra.body.size": pa.array([f.body_size for f in fams], pa.int64()),
                "extra.body.sha256": pa.array(
                    [_EMPTY_SHA256 if f.body_size == 0 else None for f in fams], pa.binary(32)),
                "raw": pa.array([b"" if f.body_size == 0 else None for f in fams], pa.binary()),
            },
            target_prefix=pa.array([f"{f.path}?{f.bot_id_param}=" for f in fams], pa.string()),
            prefix_cols={
                "source.asn": pa.array([n.asn for n in nets], pa.int64()),
                "source.as_name": pa.array([n.as_name for n in nets], pa.string()),
                "source.network": pa.array(pools.cidr, pa.string()),
                "source.geolocation.cc": pa.array([n.country for n in nets], pa.string()),
            },
        )  # fmt: skip


def events_table(batch: EventBatch, lookups: _Lookups) -> pa.Table:
    """One batch of simulated check-ins as a lake table (nested, exactly the lake schema)."""
    s = lookups.scenario
    n = batch.size
    when = pa.array(batch.time_us, pa.int64()).cast(_US)
    fam = pa.array(batch.family, pa.int32())
    has_id = batch.bot_id != 0
    cols: dict[str, pa.Array] = {
        "time.source": when,
        "time.observation": when,
        "source.ip": ipv4_strings(batch.addr),
        "source.port": pa.array(batch.port, pa.int32()),
        "destination.ip": _const(s.sensor.ip, n, pa.string()),
        "destination.port": _const(s.sensor.port, n, pa.int32()),
        "destination.fqdn": lookups.hosts.take(pa.array(batch.host, pa.int32())),
        "protocol.transport": _const("tcp", n, pa.string()),
        "protocol.application": _const("http", n, pa.string()),
        "classification.taxonomy": _const("malicious-code", n, pa.string()),
        "classification.type": _const("infected-system", n, pa.string()),
        "feed.name": _const(FEED_NAME, n, pa.string()),
        "feed.provider": _const(s.sensor.provider, n, pa.string()),
        "extra.http.version": _const("1.1", n, pa.string()),
        "extra.http.status": _const(200, n, pa.int32()),
        "extra.sensor": _const(s.sensor.name, n, pa.string()),
    }
    for name, values in lookups.fam.items():
        cols[name] = values.take(fam)
    if has_id.any():
        ids = _hex16(batch.bot_id, has_id)
        with_id = pc.binary_join_element_wise(lookups.target_prefix.take(fam), ids, "")
        cols["extra.http.target"] = pc.if_else(pa.array(has_id), with_id, cols["extra.http.target"])
        cols["extra.bot_id"] = ids
    if s.sensor.fill_source:
        prefix = pa.array(batch.prefix, pa.int32())
        for name, values in lookups.prefix_cols.items():
            cols[name] = values.take(prefix)
    return schema.nest(pa.RecordBatch.from_pydict(cols))


# -- truth -----------------------------------------------------------------------------------
@dataclass
class TruthTables:
    """Collects each day's truth into the rows of daily.parquet."""

    population: Population
    rows: dict[str, list[Any]] = field(default_factory=dict)
    addresses: list[npt.NDArray[np.uint32]] = field(default_factory=list)

    def add(self, truth: DayTruth) -> None:
        keep = np.flatnonzero((truth.infected > 0) | (truth.events > 0))
        prefixes = len(self.population.pools.cidr)
        part = {
            "day": [truth.day] * keep.size,
            "family_index": (keep // prefixes).tolist(),
            "prefix_index": (keep % prefixes).tolist(),
            "infected_machines": truth.infected[keep].tolist(),
            "online_machines": truth.online[keep].tolist(),
            "active_machines": truth.active[keep].tolist(),
            "events": truth.events[keep].tolist(),
            "true_unique_ips_that_day": truth.unique_ips[keep].tolist(),
        }
        for key, values in part.items():
            self.rows.setdefault(key, []).extend(values)
        self.addresses.append(truth.addresses)

    def unique_ips(self) -> int:
        """Distinct addresses over the whole window."""
        if not self.addresses:
            return 0
        return int(distinct(np.concatenate(self.addresses)).size)


def daily_table(truth: TruthTables) -> pa.Table:
    """daily.parquet: per day, family and prefix, the true figures (see docs/simulate.md)."""
    pop = truth.population
    s = pop.scenario
    rows = truth.rows
    fam = np.asarray(rows.get("family_index", []), dtype=np.int64)
    pre = np.asarray(rows.get("prefix_index", []), dtype=np.int64)
    nets = [s.networks[int(j)] for j in pop.pools.network[pre]] if pre.size else []
    count = {k: pa.array(rows.get(k, []), pa.int64()) for k in (
        "infected_machines", "online_machines", "active_machines", "events",
        "true_unique_ips_that_day")}  # fmt: skip
    return pa.table({
        "scenario": pa.array([s.name] * fam.size, pa.string()),
        "day": pa.array(rows.get("day", []), pa.date32()),
        "family": pa.array([s.families[int(i)].name for i in fam], pa.string()),
        "asn": pa.array([n.asn for n in nets], pa.int64()),
        "as_name": pa.array([n.as_name for n in nets], pa.string()),
        "cc": pa.array([n.country for n in nets], pa.string()),
        "network": pa.array([pop.pools.cidr[int(i)] for i in pre], pa.string()),
        "dynamics": pa.array([n.dynamics for n in nets], pa.string()),
        **count,
    })  # fmt: skip


def machines_table(pop: Population) -> pa.Table:
    """machines.parquet: every machine infected at some moment of the window."""
    s = pop.scenario
    pools = pop.pools
    net_of = pools.network[pop.prefix]
    has_id = pop.bot_id != 0
    never = pop.remediated_at == NEVER

    def pick(values: list[Any], index: npt.NDArray[Any], kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).take(pa.array(index, pa.int32()))

    return pa.table({
        "machine_id": pa.array(np.arange(pop.size, dtype=np.int32)),
        "family": pick([f.name for f in s.families], pop.family, pa.string()),
        "asn": pick([n.asn for n in s.networks], net_of, pa.int64()),
        "as_name": pick([n.as_name for n in s.networks], net_of, pa.string()),
        "cc": pick([n.country for n in s.networks], net_of, pa.string()),
        "network": pick(pools.cidr, pop.prefix, pa.string()),
        "dynamics": pick(list(DYNAMICS), pools.dynamics[pop.prefix], pa.string()),
        "household": pa.array(pop.household, pa.int32(), mask=pop.household < 0),
        "has_bot_id": pa.array(has_id),
        "bot_id": _hex16(pop.bot_id, has_id),
        "infected_at": pa.array(pop.infected_at, pa.int64()).cast(_US),
        "remediated_at": pa.array(np.where(never, 0, pop.remediated_at), pa.int64(),
                                  mask=never).cast(_US),
    })  # fmt: skip


# -- the whole run ----------------------------------------------------------------------------
@dataclass
class SimSummary:
    """What a simulation wrote: figures for a one-line report and the bench."""

    scenario: str
    days: int
    machines: int  # infected at some moment of the window
    peak_infected: int  # most machines infected on one day
    last_day_infected: int
    machines_seen: int  # machines with at least one event
    events: int
    unique_ips: int  # distinct source addresses over the window
    seconds: float
    files: list[str] = field(default_factory=list)

    @property
    def events_per_minute(self) -> float:
        return self.events / max(self.seconds, 1e-9) * 60

    def line(self) -> str:
        return (
            f"simulated {self.scenario}: {self.machines:,} machines (peak {self.peak_infected:,}"
            f" infected), {self.events:,} events from {self.unique_ips:,} addresses over "
            f"{self.days} days in {self.seconds:.1f}s ({self.events_per_minute:,.0f} "
            "events/min)"
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=1)
    _fsync(tmp)
    tmp.replace(path)


def _simulated_files(home: Home) -> dict[str, list[Path]]:
    """The simulator's event files in the lake, by scenario (``sim-<scenario>-<day>.parquet``)."""
    found: dict[str, list[Path]] = {}
    for path in home.events.glob("day=*/sim-*.parquet"):
        found.setdefault(path.name[4 : -len("-YYYY-MM-DD.parquet")], []).append(path)
    return found


def _clear(home: Home, scenario: Scenario, replace: bool) -> None:
    """Remove what an earlier simulation into this home left; refuse to mix two scenarios."""
    files = _simulated_files(home)
    previous = set(files)
    summary = truth_dir(home) / "summary.json"
    if summary.exists():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            previous.add(str(json.loads(summary.read_text())["scenario"]))
    others = sorted(previous - {scenario.name})
    if others and not replace:
        raise ConfigError(
            f"{home.root}: the lake already holds simulated scenario {others[0]!r}; "
            "use another --home, or --replace to drop it"
        )
    for paths in files.values():  # with replace, every scenario's; else only this one's
        for old in paths:
            old.unlink()
    for name in ("summary.json", "daily.parquet", "machines.parquet", "scenario.toml"):
        (truth_dir(home) / name).unlink(missing_ok=True)


def _scenario_text(scenario: Scenario) -> str:
    try:
        return Path(scenario.source).read_text(encoding="utf-8")
    except OSError:
        return f"# scenario {scenario.name!r} was not read from a file ({scenario.source})\n"


def simulate_to_lake(
    home: Home,
    scenario: Scenario,
    progress: Callable[[int, int], None] | None = None,
    *,
    replace: bool = False,
) -> SimSummary:
    """Simulate ``scenario`` and write its events into the lake and its truth beside them.

    Re-running the same scenario rewrites the same files. A home that holds another simulated
    scenario is refused unless ``replace`` (its simulated events and truth are then removed).
    """
    started = time.monotonic()
    home.ensure()
    _clear(home, scenario, replace)
    sim = Simulation(scenario)
    lookups = _Lookups.build(sim)
    truth = TruthTables(sim.pop)
    files: list[str] = []
    events = 0
    seen = np.zeros(sim.pop.size, dtype=np.bool_)
    if progress:
        progress(0, scenario.days)
    # One thread builds and writes Arrow tables while the main one simulates the next batch.
    with ThreadPoolExecutor(1, thread_name_prefix="sim-writer") as pool:
        pending: deque[Future[Any]] = deque()
        writer: _DayWriter | None = None

        def submit(job: Callable[[], Any]) -> Future[Any]:
            pending.append(pool.submit(job))
            while len(pending) > 2:
                pending.popleft().result()
            return pending[-1]

        try:
            for d in range(scenario.days):
                day = sim.day_date(d).isoformat()
                target = home.events / f"day={day}" / f"sim-{scenario.name}-{day}.parquet"
                writer = _DayWriter(target)

                def sink(batch: EventBatch, w: _DayWriter = writer) -> None:
                    seen[batch.machine_seen] = True
                    submit(lambda: _write_batch(w, batch, lookups))

                day_truth = sim.run_day(d, sink)
                closed = submit(writer.close)
                while pending:
                    pending.popleft().result()
                if closed.result():
                    files.append(str(target.relative_to(home.root)))
                writer = None
                events += int(day_truth.events.sum())
                truth.add(day_truth)
                if progress:
                    progress(d + 1, scenario.days)
        except BaseException:
            for job in pending:
                job.cancel()
            wait(pending)
            if writer is not None:
                writer.abort()
            raise
    _write_truth(home, scenario, truth)
    infected = _infected_by_day(truth, scenario.days)
    summary = SimSummary(
        scenario=scenario.name, days=scenario.days, machines=sim.pop.size,
        peak_infected=max(infected, default=0), last_day_infected=infected[-1] if infected else 0,
        machines_seen=int(seen.sum()), events=events, unique_ips=truth.unique_ips(),
        seconds=time.monotonic() - started, files=files,
    )  # fmt: skip
    (truth_dir(home) / "summary.json").write_text(
        json.dumps({**dataclasses.asdict(summary), "files": len(files)}, indent=2) + "\n"
    )
    return summary


def _infected_by_day(truth: TruthTables, days: int) -> list[int]:
    by_day: dict[dt.date, int] = {}
    for day, count in zip(
        truth.rows.get("day", []), truth.rows.get("infected_machines", []), strict=True
    ):
        by_day[day] = by_day.get(day, 0) + count
    return [by_day[d] for d in sorted(by_day)][:days]


def _write_truth(home: Home, scenario: Scenario, truth: TruthTables) -> None:
    folder = truth_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(daily_table(truth), folder / "daily.parquet")
    _write_atomic(machines_table(truth.population), folder / "machines.parquet")
    (folder / "scenario.toml").write_text(_scenario_text(scenario), encoding="utf-8")


def _write_batch(writer: _DayWriter, batch: EventBatch, lookups: _Lookups) -> None:
    writer.write(events_table(batch, lookups))
    # schema.nest leaves its flat columns in a reference cycle (a recursive closure); collect
    # them now rather than when the cyclic collector next runs, or memory grows by the day.
    gc.collect(0)


class _DayWriter:
    """One day's Parquet file, written batch by batch to a temporary name, then renamed."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.tmp")
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.tmp,
                schema.lake_schema(),
                compression="zstd",
                compression_level=1,
                write_statistics=["time.source", "time.observation"],
            )
        self._writer.write_table(table, row_group_size=1 << 20)

    def close(self) -> bool:
        """Finish the file; False if the day had no events (then there is no file)."""
        if self._writer is None:
            return False
        self._writer.close()
        _fsync(self.tmp)
        self.tmp.replace(self.target)
        _fsync(self.target.parent)
        return True

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)
