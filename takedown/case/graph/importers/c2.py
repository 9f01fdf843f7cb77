"""The sinkhole's own observations: which C2 names and addresses each botnet's bots call.

``c2_summary`` reads the lake (one row per family, C2 host and protocol: check-ins, distinct
sources, first and last seen) and writes it as a CSV file, which is added to the vault and
imported like any other file: the evidence for ``botnet beacons-to domain`` is that file,
whose rows say how they were counted. ``destination.ip`` is not used: once sinkholed it is
the sinkhole's own address. A C2 given to bots as an address literal arrives as the HTTP
Host (``destination.fqdn``) and becomes an IP entity.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from takedown import lake
from takedown.case.graph.importers.base import (
    Parsed,
    RecordError,
    RecordLinks,
    parse_time,
    pick,
    read_records,
    run_records,
)
from takedown.case.graph.normalize import NormalizeError, ip
from takedown.errors import GraphError
from takedown.home import Home

__all__ = ["C2_QUERY", "CONFIDENCE", "c2_summary", "parse_c2"]

CONFIDENCE = {"beacons-to": 99}  # observed: the bots asked our sinkhole for it

C2_QUERY = """
SELECT malware.name AS botnet, destination.fqdn AS c2, protocol.application AS application,
       count(*) AS checkins, count(DISTINCT source.ip) AS sources,
       min("time".source) AS first_seen, max("time".source) AS last_seen
FROM {events}
WHERE malware.name IS NOT NULL AND malware.name <> '' AND destination.fqdn IS NOT NULL
      AND destination.fqdn <> ''
GROUP BY ALL ORDER BY botnet, c2, application
"""


def c2_summary(home: Home, out_dir: Path | None = None) -> Path:
    """Summarise the lake's C2 look-ups into a CSV file (to be added to the vault)."""
    if not lake.has_events(home):
        raise GraphError(
            f"{home.events}: no events in the lake; run the sinkhole and `takedown ingest` first"
        )
    con = duckdb.connect()
    try:
        rows = con.execute(C2_QUERY.format(events=lake.events_sql(home))).fetchall()
        files = con.execute(
            f"SELECT count(DISTINCT filename) FROM read_parquet('{home.events}/*/*.parquet', "
            "filename = true)"
        ).fetchall()[0][0]
    finally:
        con.close()
    now = dt.datetime.now(dt.UTC)
    buf = io.StringIO()
    buf.write(
        "# takedown sinkhole C2 summary: per malware family, the C2 host names (HTTP Host or DNS\n"
        f"# name) its bots asked the sinkhole for. Lake {home.events} ({files} Parquet files),\n"
        "# summarised with:"
        + " ".join(C2_QUERY.split()).replace("{events}", "<lake events>")
        + "\n"
    )
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["botnet", "c2", "application", "checkins", "sources", "first_seen", "last_seen"]
    )
    for botnet, c2, app, n, sources, first, last in rows:
        writer.writerow([botnet, c2, app, n, sources, _iso(first), _iso(last)])
    target_dir = out_dir or home.root / "case" / "imports"
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / f"sinkhole-c2-{now:%Y%m%dT%H%M%S}.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return str(value.astimezone(dt.UTC).isoformat())
    return "" if value is None else str(value)


def parse_c2(data: bytes, sha256: str, name: str = "") -> Parsed:
    """botnet →beacons-to→ domain (or IP), spanning first to last check-in."""

    def build(rec: RecordLinks, r: Mapping[str, Any]) -> None:
        botnet = rec.ref("botnet", pick(r, "botnet", "malware", "family"), "botnet", required=True)
        target_text = str(pick(r, "c2", "fqdn", "host", "destination") or "").strip()
        if not target_text:
            raise RecordError("c2: required, but empty")
        target: tuple[str, str] | None
        try:
            target = ("ip", ip(target_text))
        except NormalizeError:
            target = rec.ref("domain", target_text, "c2", required=True)
        checkins = pick(r, "checkins", "events", "count")
        sources = pick(r, "sources", "unique_ips")
        app = pick(r, "application", "protocol")
        note = " ".join(
            part
            for part in (
                f"{checkins} check-ins" if checkins else "",
                f"from {sources} addresses" if sources else "",
                f"over {app}" if app else "",
            )
            if part
        )
        rec.link(
            botnet,
            "beacons-to",
            target,
            CONFIDENCE["beacons-to"],
            column="c2",
            valid_from=parse_time(pick(r, "first_seen"), "first_seen"),
            valid_to=parse_time(pick(r, "last_seen"), "last_seen"),
            note=(note + " observed at the sinkhole").strip(),
        )

    return run_records(read_records(data, name), sha256, build)
