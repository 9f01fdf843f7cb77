"""Exact and approximate counts over the lake: events, addresses, bot ids, by time and place.

Every function builds one DuckDB-dialect query over the ``events`` view and runs it on an
``Engine`` (DuckDB or Spark), so both engines compute the same figures from the same files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from takedown.errors import TakedownError
from takedown.measure.engine import Engine

__all__ = ["GROUPS", "Window", "addresses", "base_cte", "by_group", "timeline"]

GROUPS = {
    "country": "cc",
    "asn": "asn",
    "network": "network",
    "family": "family",
}


@dataclass(frozen=True, slots=True)
class Window:
    """Which events to count: [since, until) by UTC day, and optionally one family."""

    since: dt.date | None = None
    until: dt.date | None = None
    family: str | None = None

    def where(self) -> str:
        clauses = []
        if self.since is not None:
            clauses.append(f"day >= '{self.since.isoformat()}'")
        if self.until is not None:
            clauses.append(f"day < '{self.until.isoformat()}'")
        if self.family:
            clauses.append(f"malware.name = '{_quote(self.family.lower())}'")
        return ("WHERE " + " AND ".join(clauses)) if clauses else ""


def _quote(text: str) -> str:
    return text.replace("'", "''")


def base_cte(window: Window) -> str:
    """``ev``: one row per event with the columns measurement needs, flat."""
    return f"""ev AS (
    SELECT "time".source AS ts,
           CAST("time".source AS DATE) AS d,
           source.ip AS ip,
           coalesce(source.network, 'unknown') AS network,
           coalesce('AS' || CAST(source.asn AS VARCHAR), source.as_name, 'unknown') AS asn,
           coalesce(source.as_name, '') AS as_name,
           coalesce(source.geolocation.cc, '??') AS cc,
           coalesce(malware.name, 'unknown') AS family,
           extra.bot_id AS bot_id
    FROM events
    {window.where()}
)"""


def timeline(engine: Engine, window: Window, period: str = "day") -> pa.Table:
    """Per hour or day: events, unique IPs (exact and HyperLogLog), unique bot ids."""
    if period not in ("hour", "day"):
        raise TakedownError(f"--by {period!r}: choose hour or day")
    sql = f"""WITH {base_cte(window)}
SELECT date_trunc('{period}', ts) AS period,
       count(*) AS events,
       count(DISTINCT ip) AS unique_ips,
       approx_count_distinct(ip) AS unique_ips_hll,
       count(DISTINCT bot_id) AS bot_ids
FROM ev GROUP BY date_trunc('{period}', ts) ORDER BY 1"""
    return engine.query(sql)


def by_group(engine: Engine, window: Window, group: str, limit: int | None = None) -> pa.Table:
    """Per country, ASN, network or family: events, unique IPs, bot ids, first and last seen."""
    if group not in GROUPS:
        raise TakedownError(f"--by {group!r}: choose one of {', '.join(GROUPS)}")
    key = GROUPS[group]
    extra = ", max(as_name) AS as_name" if group in ("asn", "network") else ""
    extra += ", max(cc) AS cc" if group in ("asn", "network") else ""
    sql = f"""WITH {base_cte(window)}
SELECT {key} AS {group}{extra},
       count(*) AS events,
       count(DISTINCT ip) AS unique_ips,
       count(DISTINCT bot_id) AS bot_ids,
       min(ts) AS first_seen,
       max(ts) AS last_seen
FROM ev GROUP BY {key} ORDER BY unique_ips DESC, {group}"""
    if limit:
        sql += f" LIMIT {int(limit)}"
    return engine.query(sql)


def addresses(engine: Engine, window: Window, limit: int | None = 100) -> pa.Table:
    """First and last seen per address, with its events, active days and family."""
    sql = f"""WITH {base_cte(window)}
SELECT ip, max(family) AS family, max(network) AS network, max(asn) AS asn, max(cc) AS cc,
       count(*) AS events, count(DISTINCT d) AS days_active,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM ev GROUP BY ip ORDER BY events DESC, ip"""
    if limit:
        sql += f" LIMIT {int(limit)}"
    return engine.query(sql)
