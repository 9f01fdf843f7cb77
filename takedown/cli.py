"""The `takedown` command: one Typer app, a sub-command group per capability."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from takedown import config, lake, schema
from takedown.errors import TakedownError
from takedown.home import Home
from takedown.output import Format, render

app = typer.Typer(
    help="takedown: sinkhole a botnet's C2, record every bot that calls in, and keep the "
    "evidence. Defensive only: it observes, measures and documents.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
sinkhole_app = typer.Typer(
    help="Run the HTTP/DNS sinkhole and inspect its signature rules.", no_args_is_help=True
)
app.add_typer(sinkhole_app, name="sinkhole")
measure_app = typer.Typer(
    help="How many machines are infected (not just IPs), where, and how fast they fall.",
    no_args_is_help=True,
)
app.add_typer(measure_app, name="measure")
# Capabilities with their own command modules (each a Typer app of its own).
from takedown.case.evidence.cli import app as evidence_app  # noqa: E402
from takedown.case.graph.cli import app as graph_app  # noqa: E402
from takedown.case.legal.cli import app as legal_app  # noqa: E402

app.add_typer(evidence_app, name="evidence")
app.add_typer(legal_app, name="legal")
app.add_typer(graph_app, name="graph")

err = Console(stderr=True)
out = Console()

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


class State:
    settings: config.Settings
    overrides: dict[str, Any]


state = State()


def _home() -> Home:
    return Home(Path(state.settings.home))


def current_home() -> Home:
    """The home folder chosen by ``--home``/env/config (for sub-command modules)."""
    return _home()


def current_settings() -> config.Settings:
    """The settings in force (for sub-command modules)."""
    return state.settings


@app.callback()
def main_callback(
    home: Annotated[
        str | None,
        typer.Option(
            "--home",
            help="Folder holding all state [env: TAKEDOWN_HOME] [default: ./takedown-data].",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
    ] = 0,
) -> None:
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err, show_path=False)],
        force=True,
    )
    state.overrides = {"home": home}
    state.settings = config.load_settings(state.overrides)


@sinkhole_app.command("serve")
def sinkhole_serve(
    http: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT for HTTP check-ins (port 0: any free port) [default: 127.0.0.1:8080].",
            show_default=False,
        ),
    ] = None,
    dns: Annotated[
        str | None,
        typer.Option(help="HOST:PORT for the DNS sinkhole (UDP and TCP); off unless given."),
    ] = None,
    zone: Annotated[
        list[str] | None,
        typer.Option(help="Zone the DNS sinkhole answers for (repeat the option for more)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes sharing the ports (SO_REUSEPORT), each with its own spool "
            "[default: 1].",
            show_default=False,
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(help="Extra rule folder, tried before HOME/rules and the built-ins."),
    ] = None,
) -> None:
    """Receive bot check-ins and record every one durably before answering it.

    Every request is written to the spool (HOME/spool) and fdatasync'd before the bot gets
    its neutral answer; when the disk is full it answers 503 instead and recovers by itself.
    Stop it with Ctrl-C or SIGTERM: it finishes what it holds and closes its segment.
    Rules reload when their files change (or on SIGHUP).

    Example: takedown --home case1 sinkhole serve --http 127.0.0.1:8080 --dns 127.0.0.1:5353
    --zone rustock-c2.example
    """
    from takedown.sinkhole import server

    changes: dict[str, Any] = {}
    if http is not None:
        changes["http_listen"] = http
    if dns is not None:
        changes["dns_listen"] = dns
    if zone:
        changes["dns_zones"] = ",".join(zone)
    if workers is not None:
        changes["workers"] = workers
    if rules is not None:
        changes["rules_dir"] = str(rules)
    settings = state.settings.replace(**changes)
    server.parse_listen(settings.http_listen, "--http")
    if settings.dns_listen:
        server.parse_listen(settings.dns_listen, "--dns")
    if settings.dns_listen and not settings.dns_zones:
        raise TakedownError("--dns needs at least one --zone to answer for (or TAKEDOWN_DNS_ZONES)")
    server.serve(settings)


@sinkhole_app.command("rules")
def sinkhole_rules(
    fmt: FormatOpt = Format.table,
    rules: Annotated[Path | None, typer.Option(help="Extra rule folder to include.")] = None,
) -> None:
    """List the signature rules in force, in the order they are tried.

    Rules are TOML files: HOME/rules/*.toml (yours, tried first) and the built-ins. See
    docs/rules.md for every field. A broken file is reported with its path, rule and field.
    """
    from takedown.sinkhole.rules import BUILTIN_RULES, load_rules

    folders = [_home().rules, BUILTIN_RULES]
    if rules is not None:
        folders.insert(0, rules)
    rows = [
        {
            "id": r.id,
            "malware": r.malware,
            "protocol": r.protocol,
            "confidence": r.confidence,
            "bot_id": r.bot_id[0] if r.bot_id else "",
            "source": Path(r.source).name,
            "basis": r.basis,
        }
        for r in load_rules(folders)
    ]
    _emit(rows, fmt, "Signature rules (first match wins)")


@app.command("ingest")
def ingest_cmd(
    enrich: Annotated[
        bool | None,
        typer.Option(
            "--enrich/--no-enrich",
            help="Fill source network, AS and country on the way in "
            "[default: setting enrich_on_ingest, on].",
            show_default=False,
        ),
    ] = None,
    seal: Annotated[
        bool | None,
        typer.Option(
            "--seal/--no-seal",
            help="Seal the ingested segments and changed day partitions into the evidence "
            "vault [default: setting seal_on_ingest, on].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Move closed spool segments into the Parquet lake, exactly once.

    Safe to run while sinkholes are running (their open segments are left alone) and safe to
    kill: run it again and every event is in the lake once. Segments of sinkholes that died
    are recovered first (a torn tail is cut). Ingested segments are kept in HOME/spool-ingested.
    Events are enriched as they enter (embedded data, or the files set in enrich_mmdb /
    enrich_pyasn), so the network and country are those of the time of capture. Then the
    segments and the day partitions they changed are sealed into the evidence vault (custody
    entries by the configured handler), so the telemetry a court sees is the one collected.
    """
    home = _home()
    enricher = None
    if state.settings.enrich_on_ingest if enrich is None else enrich:
        from takedown.enrich.lakefill import enricher_from_settings

        enricher = enricher_from_settings(state.settings)
    with Progress(
        TextColumn("ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("segments", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = lake.ingest(home, progress=tick, enricher=enricher)
    for note in report.recovered:
        err.print(f"recovered {note}")
    err.print(report.summary())
    if state.settings.seal_on_ingest if seal is None else seal:
        from takedown.case.evidence.seal import seal_ingested

        err.print(seal_ingested(home, state.settings.handler).summary())


def _parse_time(value: str | None, what: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise TakedownError(
            f"{what}: {value!r} is not an ISO date or time (e.g. 2011-03-16 or 2011-03-16T12:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


_EVENT_COLUMNS = [
    "time.source",
    "source.ip",
    "source.port",
    "malware.name",
    "protocol.application",
    "destination.fqdn",
    "extra.http.method",
    "extra.http.target",
    "extra.dns.qtype",
    "extra.body.size",
    "extra.bot_id",
]


@app.command("events")
def events_cmd(
    since: Annotated[str | None, typer.Option(help="From this UTC time (ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this UTC time (ISO).")] = None,
    family: Annotated[str | None, typer.Option(help="Only this malware.name.")] = None,
    ip: Annotated[str | None, typer.Option(help="Only this source.ip.")] = None,
    app_: Annotated[str | None, typer.Option("--app", help="http or dns.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest); 0 for all.")] = 20,
    fmt: FormatOpt = Format.table,
    all_fields: Annotated[
        bool, typer.Option("--all-fields", help="Every schema field, not a summary.")
    ] = False,
) -> None:
    """List events in the lake, oldest first among the newest LIMIT.

    Only ingested events are listed: run `takedown ingest` first. CSV and JSON use the flat
    dotted IntelMQ field names; `raw` is base64.

    Example: takedown events --family rustock --since 2011-03-16 --format csv --limit 0
    """
    table = lake.query_events(
        _home(),
        since=_parse_time(since, "--since"),
        until=_parse_time(until, "--until"),
        family=family,
        ip=ip,
        application=app_,
        limit=limit or None,
    )
    columns = None if all_fields or fmt is not Format.table else _EVENT_COLUMNS
    if fmt is Format.table and all_fields:
        columns = None
    _emit(table, fmt, f"{table.num_rows} events", columns)


@app.command("status")
def status_cmd(fmt: FormatOpt = Format.table) -> None:
    """What the home holds: sinkhole spools (running or not), waiting events, the lake."""
    home = _home()
    spools = lake.spool_summary(home)
    days = lake.lake_summary(home)
    if fmt is not Format.table:
        rows: list[dict[str, Any]] = [{"kind": "spool", **s} for s in spools]
        rows += [{"kind": "lake-day", **d} for d in days]
        _emit(rows, fmt, "")
        return
    out.print(f"[bold]home[/bold] {home.root.resolve()}")
    if spools:
        _emit(spools, fmt, "Spool (per sinkhole worker)")
    else:
        out.print("spool: empty (start one with `takedown sinkhole serve`)")
    if days:
        _emit(days, fmt, "Lake: events by day")
        out.print(f"lake total: {sum(d['events'] for d in days):,} events")
    else:
        out.print("lake: empty (run `takedown ingest` after the sinkhole has seen traffic)")


@app.command("schema")
def schema_cmd(
    kind: Annotated[
        str, typer.Option("--as", help="markdown, duckdb, spark or arrow.")
    ] = "markdown",
) -> None:
    """Print the event schema (IntelMQ field names) in one of its generated forms."""
    forms: dict[str, Callable[[], str]] = {
        "markdown": schema.doc_markdown,
        "duckdb": schema.duckdb_ddl,
        "spark": schema.spark_ddl,
        "arrow": lambda: str(schema.lake_schema()),
    }
    if kind not in forms:
        raise TakedownError(f"--as {kind!r}: choose one of {', '.join(forms)}")
    sys.stdout.write(forms[kind]() + "\n")


class MeasureState:
    engine: str = "duckdb"
    since: str | None = None
    until: str | None = None
    family: str | None = None


measure_state = MeasureState()


@measure_app.callback()
def measure_callback(
    engine: Annotated[str, typer.Option(help="duckdb (embedded) or spark (scale-out).")] = "duckdb",
    since: Annotated[str | None, typer.Option(help="First UTC day (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Day after the last (YYYY-MM-DD).")] = None,
    family: Annotated[str | None, typer.Option(help="Only this malware.name.")] = None,
) -> None:
    """Measure the population in the lake. The options here apply to every sub-command.

    Example: takedown measure --since 2011-03-01 --until 2011-04-01 daily
    """
    measure_state.engine = engine
    measure_state.since = since
    measure_state.until = until
    measure_state.family = family


def _day(value: str | None, what: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise TakedownError(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


def _measure() -> tuple[Any, Any]:
    from takedown.measure.counts import Window
    from takedown.measure.engine import open_engine

    window = Window(
        _day(measure_state.since, "--since"),
        _day(measure_state.until, "--until"),
        measure_state.family,
    )
    with err.status(f"starting {measure_state.engine} ..."):
        engine = open_engine(measure_state.engine, _home())
    return engine, window


@measure_app.command("daily")
def measure_daily(fmt: FormatOpt = Format.table) -> None:
    """Per UTC day: events, unique IPs (exact and HyperLogLog), bot ids, and estimated
    infected machines with a 90% interval."""
    from takedown.measure.report import daily_population

    engine, window = _measure()
    try:
        rows = daily_population(engine, window)
    finally:
        engine.close()
    _emit(rows, fmt, "Population by day (machines: estimate [90% interval])")


@measure_app.command("hourly")
def measure_hourly(fmt: FormatOpt = Format.table) -> None:
    """Per UTC hour: events, unique IPs (exact and HyperLogLog), bot ids, and the estimated
    infected machines of that hour's day with their 90% interval.

    Infection does not change by the hour and one hour holds too few check-ins per address
    to tell NAT from churn, so the machine estimate's resolution is the day (docs/measure.md).
    """
    from takedown.measure.report import hourly_population

    engine, window = _measure()
    try:
        rows = hourly_population(engine, window)
    finally:
        engine.close()
    _emit(rows, fmt, "Population by hour")


@measure_app.command("where")
def measure_where(
    by: Annotated[str, typer.Option(help="country, asn, network or family.")] = "country",
    limit: Annotated[int, typer.Option(help="Top N (0 for all).")] = 20,
    fmt: FormatOpt = Format.table,
) -> None:
    """Where the machines are: per country, ASN or network, over the whole window, with
    first and last seen."""
    from takedown.measure.report import where_rows

    engine, window = _measure()
    try:
        rows = where_rows(engine, window, by, limit or None)
    finally:
        engine.close()
    _emit(rows, fmt, f"By {by}")


@measure_app.command("addresses")
def measure_addresses(
    limit: Annotated[int, typer.Option(help="Most active N (0 for all).")] = 50,
    fmt: FormatOpt = Format.table,
) -> None:
    """First and last seen per address, with its events and active days."""
    from takedown.measure.counts import addresses

    engine, window = _measure()
    try:
        table = addresses(engine, window, limit or None)
    finally:
        engine.close()
    _emit(table, fmt, "Addresses")


@measure_app.command("effect")
def measure_effect(
    takedown: Annotated[str, typer.Option(help="Day of the takedown (YYYY-MM-DD).")],
    to: Annotated[str | None, typer.Option(help="Compare with this day (default: last).")] = None,
    by: Annotated[str | None, typer.Option(help="Also per country, asn or network.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Takedown effect: change in estimated machines since the takedown (as in 1,601,619 →
    702,860, −56%) and the remediation half-life with its 90% interval.

    Example: takedown measure effect --takedown 2011-03-16 --by country
    """
    from takedown.measure.report import effect_rows

    day = _day(takedown, "--takedown")
    assert day is not None
    engine, window = _measure()
    try:
        rows = effect_rows(engine, window, day, _day(to, "--to"), by)
    finally:
        engine.close()
    _emit(rows, fmt, "Takedown effect (estimated machines)")


@measure_app.command("truth")
def measure_truth(
    groups: Annotated[bool, typer.Option(help="Also per family, network, ASN, country.")] = True,
    fmt: FormatOpt = Format.table,
) -> None:
    """Every estimate next to the simulator's ground truth (HOME/lake/truth), with the error
    and whether the 90% interval covers it: check the estimator on a scenario of your own.

    Example: takedown --home sim simulate -s dhcp-churn && takedown --home sim measure truth
    """
    from takedown.measure.truth import compare, summary

    engine, window = _measure()
    try:
        rows = compare(engine, _home(), window, groups=groups)
    finally:
        engine.close()
    _emit(rows, fmt, "Estimates against the ground truth")
    if fmt is Format.table:
        for scope, figures in summary(rows).items():
            out.print(f"{scope}: {figures}")


@measure_app.command("charts")
def measure_charts(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the PNG and SVG files.")
    ] = Path("charts"),
    takedown: Annotated[str | None, typer.Option(help="Mark this day (YYYY-MM-DD).")] = None,
) -> None:
    """Charts for a report: population over time (machines vs IPs, takedown marked) and the
    top networks, each as PNG and SVG."""
    from takedown.measure.report import make_charts

    engine, window = _measure()
    try:
        paths = make_charts(engine, window, out_dir, _day(takedown, "--takedown"))
    finally:
        engine.close()
    for path in paths:
        out.print(str(path))


@app.command("simulate")
def simulate_cmd(
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", "-s", help="Scenario file, or the name of a shipped one."),
    ] = None,
    days: Annotated[int | None, typer.Option(help="Override the scenario's days.")] = None,
    sampling: Annotated[
        float | None, typer.Option(help="Override the fraction of check-ins written.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    machines: Annotated[
        int | None, typer.Option(help="Override the infected machines at the start.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Drop another simulated scenario from this home.")
    ] = False,
    live: Annotated[
        str | None,
        typer.Option(help="Send the check-ins to a sinkhole at HOST:PORT (loopback only)."),
    ] = None,
    max_events: Annotated[int, typer.Option(help="Live mode: at most this many check-ins.")] = (
        20000
    ),
    list_: Annotated[bool, typer.Option("--list", help="List the shipped scenarios.")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Simulate a botnet with ground truth: into the lake, or live at a loopback sinkhole.

    The truth (machines per day and network) is written beside the events, in
    HOME/lake/truth, for `takedown measure` to be checked against. See docs/simulate.md.

    Example: takedown --home sim simulate --scenario rustock-small
    """
    from takedown.errors import ConfigError
    from takedown.simulate.scenario import list_scenarios, load_scenario, with_overrides

    if list_:
        rows = []
        for name in list_scenarios():
            sc = load_scenario(name)
            rows.append(
                {
                    "scenario": name,
                    "machines": sc.infection.machines,
                    "days": sc.days,
                    "sampling": sc.sampling,
                    "description": sc.description,
                }
            )
        _emit(rows, fmt, "Shipped scenarios")
        return
    if scenario is None:
        raise ConfigError(
            f"--scenario is required (a file, or one of: {', '.join(list_scenarios())})"
        )
    sc = with_overrides(
        load_scenario(scenario), days=days, sampling=sampling, seed=seed, machines=machines
    )
    home = _home()
    if live is not None:
        from takedown.simulate.live import install_rules, simulate_live
        from takedown.sinkhole.server import parse_listen

        host, port = parse_listen(live, "--live")
        install_rules(home, sc)  # the sinkhole must run with the same --home to pick these up
        err.print(simulate_live(sc, host, port, home=home, max_events=max_events).line())
        return
    from takedown.simulate.writer import simulate_to_lake

    with Progress(
        TextColumn("simulating {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(sc.name, total=sc.days)
        summary = simulate_to_lake(
            home, sc, lambda done, total: bar.update(task, completed=done), replace=replace
        )
    err.print(summary.line())
    err.print(f"truth in {home.lake / 'truth'} (daily.parquet, machines.parquet)")


@app.command("enrich")
def enrich_cmd(
    ips: Annotated[list[str] | None, typer.Argument(help="Addresses to look up.")] = None,
    fmt: FormatOpt = Format.table,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Lake mode: replace values already there.")
    ] = False,
) -> None:
    """IP → ASN, AS name, announced network, country; offline.

    With addresses: prints their enrichment, in input order. Without: enriches every event
    already in the lake whose source fields are empty (simulated or imported events).
    The embedded data is geoip2fast's (MaxMind GeoLite2-derived; AS names, no AS numbers);
    point at MMDB or pyasn files with the enrich_mmdb / enrich_pyasn settings. docs/enrich.md.

    Example: takedown enrich 8.8.8.8 2001:4860:4860::8888 --format json
    """
    from takedown.enrich.lakefill import enrich_lake, enricher_from_settings

    with err.status("loading enrichment data ..."):
        enricher = enricher_from_settings(state.settings)
    if ips:
        _emit(enricher.lookup(ips), fmt, "Enrichment")
        return
    with Progress(
        TextColumn("enrich"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("files", total=None)
        files, events = enrich_lake(
            _home(),
            enricher,
            lambda d, t: bar.update(task, completed=d, total=t),
            overwrite=overwrite,
        )
    err.print(f"enriched {events:,} events in {files:,} lake files")


@app.command("settings")
def settings_cmd(
    fmt: FormatOpt = Format.table,
    docs: Annotated[bool, typer.Option("--docs", help="Print docs/config.md instead.")] = False,
) -> None:
    """Every setting with the value in force here, and where to change it.

    Precedence: command-line option > environment (TAKEDOWN_<NAME>) > HOME/config.toml >
    default.
    """
    if docs:
        sys.stdout.write(config.doc_markdown())
        return
    rows = [
        {
            "setting": s.name,
            "value": state.settings[s.name],
            "default": s.default,
            "env": s.env,
            "help": s.help,
        }
        for s in config.SETTINGS
    ]
    _emit(rows, fmt, "Settings")


@app.command("loadgen")
def loadgen_cmd(
    target: Annotated[
        str, typer.Option(help="Sinkhole HTTP HOST:PORT (loopback only).")
    ] = "127.0.0.1:8080",
    requests: Annotated[int, typer.Option(help="Check-ins to send.")] = 10000,
    connections: Annotated[int, typer.Option(help="Concurrent connections.")] = 32,
    bots: Annotated[int, typer.Option(help="Distinct simulated bots (127.x source IPs).")] = 2000,
    close: Annotated[bool, typer.Option("--close", help="Connection: close per request.")] = False,
) -> None:
    """Drive simulated bot check-ins at a sinkhole on loopback (never anywhere else)."""
    from takedown.simulate.loadgen import run_load
    from takedown.sinkhole.server import parse_listen

    host, port = parse_listen(target, "--target")
    result = asyncio.run(
        run_load(
            host, port, requests=requests, connections=connections, bots=bots, keep_alive=not close
        )
    )
    err.print(
        f"sent {result.sent:,}, answered 200: {len(result.answered):,}, other status: "
        f"{result.refused:,}, errors: {result.errors:,} in {result.elapsed:.1f}s "
        f"({len(result.answered) / max(result.elapsed, 1e-9):,.0f}/s)"
    )


@app.command("demo")
def demo_cmd(
    requests: Annotated[int, typer.Option(help="Simulated check-ins to send.")] = 20000,
) -> None:
    """Sinkhole on loopback, simulated Rustock-like check-ins, ingest, and what was caught."""
    from takedown.demo import run_demo

    run_demo(_home(), requests=requests, console=out)


def _emit(data: Any, fmt: Format, title: str, columns: list[str] | None = None) -> None:
    text = render(data, fmt, title=title or None, columns=columns, console=out)
    if text is not None:
        sys.stdout.write(text)


def main() -> None:
    try:
        app()
    except TakedownError as exc:
        # Plain write: one line however narrow the terminal (rich would wrap it).
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
