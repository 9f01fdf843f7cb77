"""Live mode: a small scenario's check-ins sent as HTTP requests to a sinkhole on loopback.

The simulation is the same as in lake mode; each check-in becomes one request on its own
connection, from a loopback source address (127.x.y.z) standing for its simulated public
address: one distinct loopback address per distinct public address, so the sinkhole sees
exactly as many sources as the simulated Internet would show. Only loopback targets are
accepted (``loadgen.check_loopback``), the number of requests is bounded, and so is the time.

The truth goes to ``HOME/lake/truth/live/``: ``requests.parquet`` (each request: simulated time
and address, the loopback address that stood for it, family, machine, bot id, the status the
sinkhole answered), plus ``daily.parquet``, ``machines.parquet`` and ``scenario.toml`` as in
lake mode (their days are simulated days; the sinkhole stamps its own clock).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from takedown.errors import ConfigError
from takedown.home import Home
from takedown.simulate.loadgen import bot_address, check_loopback
from takedown.simulate.population import EventBatch, Simulation, distinct, expected_events
from takedown.simulate.scenario import Scenario
from takedown.simulate.writer import (
    TruthTables,
    daily_table,
    ipv4_strings,
    machines_table,
    truth_dir,
)

__all__ = [
    "MAX_LIVE_EVENTS",
    "LiveSummary",
    "family_rules_toml",
    "install_rules",
    "run_live",
    "simulate_live",
]

MAX_LIVE_EVENTS = 20_000
_US = pa.timestamp("us", tz="UTC")


@dataclass
class LiveSummary:
    scenario: str
    sent: int
    answered: int  # status 200
    refused: int  # answered with another status
    errors: int  # no answer: connection refused, reset, timed out
    addresses: int  # distinct simulated public addresses (= loopback sources)
    seconds: float
    truth: str | None = None

    def line(self) -> str:
        return (
            f"live {self.scenario}: sent {self.sent:,} check-ins from {self.addresses:,} "
            f"loopback sources, answered 200: {self.answered:,}, other status: "
            f"{self.refused:,}, errors: {self.errors:,} in {self.seconds:.1f}s"
        )


def family_rules_toml(scenario: Scenario) -> str:
    """Signature rules naming the scenario's own families (those without a built-in rule)."""
    out = [f"# Written by takedown.simulate for scenario {scenario.name!r}: one rule per "
           "simulated family", "# that has no built-in rule, matching the shape the simulator "
           "sends.", ""]  # fmt: skip
    for fam in scenario.families:
        if not fam.rule.startswith("sim."):
            continue  # the family claims a built-in rule's shape; that rule names it
        hosts = "|".join(re.escape(h) for h in fam.hosts)
        out += [
            "[[rule]]",
            f"id = {_toml_str(fam.rule)}",
            f"malware = {_toml_str(fam.name)}",
            "confidence = 90",
            f"basis = {_toml_str('The takedown simulator sends this shape for ' + fam.name)}",
            f"method = {_toml_str(fam.method)}",
            f"path = {_toml_str('^' + re.escape(fam.path) + '$')}",
            f"host = {_toml_str('^(' + hosts + ')(:[0-9]+)?$')}",
            f"body_size = [{fam.body_size}, {fam.body_size}]",
        ]
        if fam.bot_id_fraction > 0:
            out.append(f"bot_id = {{ query = [{_toml_str(fam.bot_id_param)}] }}")
        out.append("")
    return "\n".join(out)


def _toml_str(value: str) -> str:
    if "'" not in value and "\n" not in value:
        return "'" + value + "'"  # a literal string: regex backslashes stay as they are
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def install_rules(home: Home, scenario: Scenario) -> Path:
    """Put the scenario's family rules in HOME/rules, so a sinkhole there names them."""
    home.rules.mkdir(parents=True, exist_ok=True)
    path = home.rules / f"sim-{scenario.name}.toml"
    path.write_text(family_rules_toml(scenario), encoding="utf-8")
    return path


@dataclass
class _Plan:
    """Every check-in to send, in time order."""

    sim: Simulation
    truth: TruthTables
    time_us: npt.NDArray[np.int64]
    addr: npt.NDArray[np.uint32]
    family: npt.NDArray[np.int32]
    host: npt.NDArray[np.int32]
    bot_id: npt.NDArray[np.uint64]
    machine: npt.NDArray[np.int32]
    source: npt.NDArray[np.int64]  # index of the loopback address standing for addr


def _plan(scenario: Scenario, max_events: int) -> _Plan:
    rough = expected_events(scenario)
    if rough > 10 * max_events:
        raise ConfigError(
            f"{scenario.source}: scenario {scenario.name!r} would send about "
            f"{rough:,.0f} check-ins live (limit {max_events:,}); lower its "
            "machines, days or sampling, or write it to the lake instead"
        )
    sim = Simulation(scenario)
    truth = TruthTables(sim.pop)
    batches: list[EventBatch] = []
    total = 0
    for d in range(scenario.days):

        def keep(batch: EventBatch) -> None:
            batches.append(batch)

        day = sim.run_day(d, keep)
        truth.add(day)
        total += int(day.events.sum())
        if total > max_events:
            raise ConfigError(
                f"{scenario.source}: scenario {scenario.name!r} sends more than "
                f"{max_events:,} check-ins live; lower its machines, days or "
                "sampling, or write it to the lake instead"
            )

    def cat(name: str) -> npt.NDArray[np.generic]:
        return np.concatenate([getattr(b, name) for b in batches]) if batches else np.zeros(0)

    addr = cat("addr").astype(np.uint32)
    # One loopback source per public address, numbered in order of first appearance.
    uniq = distinct(addr)
    pos = np.searchsorted(uniq, addr)
    first = np.full(uniq.size, addr.size, dtype=np.int64)
    np.minimum.at(first, pos, np.arange(addr.size))
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.size)
    source = rank[pos]
    return _Plan(
        sim=sim, truth=truth, time_us=cat("time_us").astype(np.int64), addr=addr,
        family=cat("family").astype(np.int32), host=cat("host").astype(np.int32),
        bot_id=cat("bot_id").astype(np.uint64), machine=cat("machine").astype(np.int32),
        source=source,
    )  # fmt: skip


def _request(plan: _Plan, i: int, body: bytes) -> bytes:
    fam = plan.sim.scenario.families[int(plan.family[i])]
    target = fam.path
    if plan.bot_id[i]:
        target += f"?{fam.bot_id_param}={int(plan.bot_id[i]):016x}"
    lines = [
        f"{fam.method} {target} HTTP/1.1",
        f"Host: {plan.sim.hosts[int(plan.host[i])]}",
        f"User-Agent: {fam.user_agent}",
        "Accept: */*",
        "Connection: close",
    ]
    if fam.method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1])


async def run_live(
    scenario: Scenario,
    target_host: str,
    target_port: int,
    *,
    home: Home | None = None,
    max_events: int = MAX_LIVE_EVENTS,
    connections: int = 16,
    duration: float = 120.0,
    rate: float | None = None,
) -> LiveSummary:
    """Send the scenario's check-ins to a sinkhole on loopback; see :func:`simulate_live`."""
    host = check_loopback(target_host)
    if not 0 < target_port < 65536:
        raise ConfigError(f"target port {target_port} is not a TCP port")
    plan = _plan(scenario, max_events)
    n = int(plan.time_us.size)
    status = np.zeros(n, dtype=np.int32)
    sent_at = np.zeros(n, dtype=np.int64)
    bodies = np.random.default_rng([scenario.seed, 5]).bytes(
        sum(f.body_size for f in scenario.families) + 1
    )
    started = time.monotonic()
    deadline = started + duration
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            if time.monotonic() > deadline:
                return
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            size = scenario.families[int(plan.family[i])].body_size
            offset = int(i % max(1, len(bodies) - size))
            request = _request(plan, i, bodies[offset : offset + size])
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        host, target_port, local_addr=(bot_address(int(plan.source[i])), 0)
                    ),
                    5,
                )
                sent_at[i] = time.time_ns() // 1000
                writer.write(request)
                status[i] = await asyncio.wait_for(_status(reader), 10)
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
                IndexError,
            ):
                status[i] = -1
            finally:
                if writer is not None:
                    writer.close()

    await asyncio.gather(*(worker() for _ in range(max(1, connections))))
    done = sent_at > 0
    summary = LiveSummary(
        scenario=scenario.name, sent=int(done.sum()), answered=int((status == 200).sum()),
        refused=int(((status > 0) & (status != 200)).sum()), errors=int((status < 0).sum()),
        addresses=int(distinct(plan.source[done]).size),
        seconds=time.monotonic() - started,
    )  # fmt: skip
    if home is not None:
        summary.truth = str(_write_live_truth(home, plan, status, sent_at))
    return summary


def simulate_live(
    scenario: Scenario,
    target_host: str,
    target_port: int,
    *,
    home: Home | None = None,
    max_events: int = MAX_LIVE_EVENTS,
    connections: int = 16,
    duration: float = 120.0,
    rate: float | None = None,
) -> LiveSummary:
    """Drive the scenario's check-ins at a sinkhole on loopback, at most ``max_events`` of them
    and for at most ``duration`` seconds (optionally ``rate`` per second); refuses any target
    that is not a loopback address. With ``home``, the truth and the address mapping go to
    ``HOME/lake/truth/live/``.
    """
    return asyncio.run(run_live(
        scenario, target_host, target_port, home=home, max_events=max_events,
        connections=connections, duration=duration, rate=rate))  # fmt: skip


def _write_live_truth(
    home: Home, plan: _Plan, status: npt.NDArray[np.int32], sent_at: npt.NDArray[np.int64]
) -> Path:
    folder = truth_dir(home) / "live"
    folder.mkdir(parents=True, exist_ok=True)
    s = plan.sim.scenario
    n = int(plan.time_us.size)
    fams = pa.array([f.name for f in s.families], pa.string())
    has_id = plan.bot_id != 0
    loop = pa.array(
        [bot_address(int(i)) for i in range(int(plan.source.max(initial=-1)) + 1)], pa.string()
    )
    table = pa.table({
        "seq": pa.array(np.arange(n, dtype=np.int64)),
        "sim_time": pa.array(plan.time_us, pa.int64()).cast(_US),
        "sim_ip": ipv4_strings(plan.addr),
        "loopback_ip": loop.take(pa.array(plan.source, pa.int64())),
        "family": fams.take(pa.array(plan.family, pa.int32())),
        "machine_id": pa.array(plan.machine, pa.int32()),
        "bot_id": pa.array([f"{int(b):016x}" if b else None for b in plan.bot_id], pa.string()),
        "has_bot_id": pa.array(has_id),
        "status": pa.array(status, pa.int32(), mask=status == 0),
        "sent_at": pa.array(sent_at, pa.int64(), mask=sent_at == 0).cast(_US),
    })  # fmt: skip
    pq.write_table(table, folder / "requests.parquet", compression="zstd")
    pq.write_table(daily_table(plan.truth), folder / "daily.parquet", compression="zstd")
    pq.write_table(machines_table(plan.sim.pop), folder / "machines.parquet", compression="zstd")
    try:
        text = Path(s.source).read_text(encoding="utf-8")
    except OSError:
        text = f"# scenario {s.name!r} was not read from a file\n"
    (folder / "scenario.toml").write_text(text, encoding="utf-8")
    return folder
