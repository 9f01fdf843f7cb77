"""`make demo`: a sinkhole on loopback, simulated Rustock-like check-ins, ingest, the catch."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console

from takedown import lake
from takedown.errors import TakedownError
from takedown.home import Home
from takedown.output import Format, render
from takedown.simulate.loadgen import C2_HOSTS, run_load

__all__ = ["run_demo", "start_sinkhole", "stop_sinkhole"]


def start_sinkhole(
    home: Home,
    *extra: str,
    timeout: float = 20.0,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    http: str = "127.0.0.1:0",
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start `takedown sinkhole serve` on free loopback ports; wait until it listens."""
    home.ensure()
    ready = home.run / "sinkhole.json"
    ready.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "takedown",
        "--home",
        str(home.root),
        "sinkhole",
        "serve",
        "--http",
        http,
        *extra,
    ]
    stderr = open(log, "ab") if log is not None else None  # noqa: SIM115 (child keeps it)
    try:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stderr=stderr)
    finally:
        if stderr is not None:
            stderr.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return proc, json.loads(ready.read_text())
        if proc.poll() is not None:
            raise TakedownError(f"sinkhole exited with code {proc.returncode} before listening")
        time.sleep(0.05)
    proc.kill()
    raise TakedownError(f"sinkhole did not start listening within {timeout:.0f}s")


def stop_sinkhole(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def run_demo(home: Home, *, requests: int = 20000, console: Console | None = None) -> None:
    console = console or Console()
    console.rule("[bold]takedown demo: sinkholing a Rustock-like botnet on loopback")
    console.print("All names and addresses here are fictional; traffic stays on 127.0.0.0/8.")
    zones = ",".join(C2_HOSTS)
    home.ensure()
    # A user rule, as an analyst would add one: look-ups of the C2 names are Rustock's too.
    (home.rules / "demo-rustock-dns.toml").write_text(
        "# Written by `takedown demo`: the demo's (fictional) Rustock C2 names.\n"
        "[[rule]]\nid = 'demo.rustock-c2-lookup'\nmalware = 'rustock'\nconfidence = 60\n"
        "basis = 'The C2 host names hard-coded in the (simulated) Rustock samples.'\n"
        f"qname = '(^|\\.)({'|'.join(h.replace('.', '[.]') for h in C2_HOSTS)})$'\n"
    )
    log = home.run / "sinkhole.log"
    proc, info = start_sinkhole(
        home,
        "--dns",
        "127.0.0.1:0",
        *[a for z in zones.split(",") for a in ("--zone", z)],
        log=log,
    )
    http_port, dns_port = info["http"][1], info["dns"][1]
    console.print(
        f"1. sinkhole listening: http 127.0.0.1:{http_port}, dns 127.0.0.1:{dns_port}"
        f" (pid {proc.pid}), spooling to {home.spool}, log in {log}"
    )
    try:
        result = asyncio.run(
            run_load(
                "127.0.0.1",
                http_port,
                requests=requests,
                connections=32,
                bots=3000,
                dns=("127.0.0.1", dns_port),
                dns_queries=min(2000, requests // 10),
            )
        )
    finally:
        stop_sinkhole(proc)
    console.print(
        f"2. {result.sent:,} simulated check-ins from 3,000 bots; "
        f"{len(result.answered):,} answered after they were on disk "
        f"({len(result.answered) / max(result.elapsed, 1e-9):,.0f}/s), "
        f"{result.dns_answered:,} DNS queries answered"
    )
    from takedown.enrich import Enricher

    report = lake.ingest(home, enricher=Enricher.default())
    console.print(f"3. {report.summary()}")
    src = lake.events_sql(home)
    con = duckdb.connect()
    by_family = con.sql(
        f"SELECT malware.name AS family, extra.rule AS rule, count(*) AS events, "
        f"count(DISTINCT source.ip) AS unique_ips, count(DISTINCT extra.bot_id) AS bot_ids "
        f"FROM {src} GROUP BY ALL ORDER BY events DESC"
    ).to_arrow_table()
    by_hour = con.sql(
        f"SELECT strftime(date_trunc('hour', \"time\".source), '%Y-%m-%d %H:00') AS hour_utc, "
        f"protocol.application AS app, count(*) AS events, count(DISTINCT source.ip) AS ips "
        f"FROM {src} GROUP BY ALL ORDER BY ALL"
    ).to_arrow_table()
    con.close()
    console.print("4. what the sinkhole caught:")
    render(by_family, Format.table, title="By family", console=console)
    render(by_hour, Format.table, title="By hour (UTC)", console=console)
    sample = lake.query_events(home, family="rustock", limit=5)
    render(
        sample,
        Format.table,
        title="Latest Rustock check-ins",
        console=console,
        columns=[
            "time.source",
            "source.ip",
            "destination.fqdn",
            "extra.http.method",
            "extra.http.target",
            "extra.body.size",
        ],
    )
    summary = Path(home.root) / "demo-summary.md"
    summary.write_text(
        "# takedown demo\n\n"
        + f"Check-ins answered: {len(result.answered):,}\n\n## By family\n\n"
        + _markdown(by_family)
        + "\n## By hour (UTC)\n\n"
        + _markdown(by_hour)
    )
    console.print(
        f"\nLook further: `takedown --home {home.root} events --family rustock`, "
        f"`takedown --home {home.root} status`; summary in {summary}"
    )
    measure_demo(Home(home.root / "simulation"), console)
    case_demo(home, console)


def case_demo(home: Home, console: Console) -> None:
    """The case file: the sinkhole's telemetry sealed into the evidence vault, the legal
    documents and the attribution graph of a FICTIONAL case (every name invented)."""
    from takedown.case.evidence.seal import seal_ingested
    from takedown.case.graph.demo import demo_graph
    from takedown.case.legal.demo import DEMO_HANDLER, demo_legal

    console.rule("[bold]case file: evidence, legal documents, attribution (fictional case)")
    console.print(f"   {seal_ingested(home, DEMO_HANDLER).summary()}")
    written = demo_legal(home, console)
    written += demo_graph(home, console)
    console.print("\nCase file written (all of it fictional, and it says so):")
    for path in written:
        console.print(f"   {path}", highlight=False)


def measure_demo(home: Home, console: Console) -> None:
    """A month around a (simulated) Rustock takedown: machines, not IPs, and the charts."""
    from takedown.measure.counts import Window
    from takedown.measure.engine import DuckDBEngine
    from takedown.measure.estimate import estimate
    from takedown.measure.report import effect_rows, make_charts
    from takedown.simulate.scenario import load_scenario
    from takedown.simulate.writer import simulate_to_lake

    console.rule("[bold]measuring: a simulated month around a Rustock-like takedown")
    scenario = load_scenario("rustock-small")
    summary = simulate_to_lake(home, scenario, replace=True)
    console.print(f"5. {summary.line()}")
    from takedown.enrich import Enricher
    from takedown.enrich.lakefill import enrich_lake

    files, events = enrich_lake(home, Enricher.default())
    console.print(f"   enriched {events:,} events in {files} files (AS, network, country; offline)")
    engine = DuckDBEngine(home)
    try:
        window = Window()
        est = estimate(engine, window)
        total = est.total_window()
        console.print(
            f"6. over the month: {total['ips']:,.0f} unique IPs, but an estimated "
            f"{total['machines']:,.0f} infected machines (90% interval "
            f"{total['low']:,.0f}-{total['high']:,.0f}); the simulator's truth is in "
            f"{home.lake / 'truth'}"
        )
        at = scenario.takedown.at
        takedown = at.date() if at is not None else None
        if takedown is not None:
            rows = effect_rows(engine, window, takedown, None, None, est)
            render(
                rows, Format.table, title="Takedown effect (estimated machines)", console=console
            )
        con = duckdb.connect()
        truth = con.execute(
            f"SELECT day, sum(infected_machines) FROM '{home.lake / 'truth' / 'daily.parquet'}' "
            "GROUP BY day"
        ).fetchall()
        con.close()
        paths = make_charts(engine, window, home.root / "charts", takedown, dict(truth), est=est)
    finally:
        engine.close()
    console.print("7. charts for the report: " + ", ".join(str(p) for p in paths))


def _markdown(table: pa.Table) -> str:
    names = table.schema.names
    lines = ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]
    for row in table.to_pylist():
        lines.append("| " + " | ".join("" if row[n] is None else str(row[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"
