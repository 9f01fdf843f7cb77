"""What `takedown measure` shows: the functions the CLI (and later the web app) call."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from takedown.measure import charts, counts
from takedown.measure.effect import fit_decay, reduction
from takedown.measure.engine import Engine
from takedown.measure.estimate import Estimate, estimate

__all__ = ["daily_population", "effect_rows", "hourly_population", "make_charts", "where_rows"]


def daily_population(
    engine: Engine, window: counts.Window, est: Estimate | None = None
) -> list[dict[str, Any]]:
    """Per day: events, unique IPs (exact, HLL), bot ids, estimated machines with interval."""
    est = est or estimate(engine, window)
    day_counts = est.counts if est.counts is not None else counts.timeline(engine, window, "day")
    base = day_counts.to_pylist()
    machines = {r["day"]: r for r in est.total_daily().to_pylist()}
    rows = []
    for r in base:
        day = r["period"].date() if isinstance(r["period"], dt.datetime) else r["period"]
        m = machines.get(day, {})
        rows.append(
            {
                "day": day,
                "events": r["events"],
                "unique_ips": r["unique_ips"],
                "unique_ips_hll": r["unique_ips_hll"],
                "bot_ids": r["bot_ids"],
                "machines": round(m.get("machines", 0.0)),
                "machines_low": round(m.get("low", 0.0)),
                "machines_high": round(m.get("high", 0.0)),
            }
        )
    return rows


def hourly_population(
    engine: Engine, window: counts.Window, est: Estimate | None = None
) -> list[dict[str, Any]]:
    """Per hour: events, unique IPs (exact, HLL), bot ids, and the day's estimated machines."""
    est = est or estimate(engine, window)
    machines = {r["day"]: r for r in est.total_daily().to_pylist()}
    rows = []
    for r in counts.timeline(engine, window, "hour").to_pylist():
        hour = r["period"]
        m = machines.get(hour.date(), {})
        rows.append(
            {
                "hour": hour,
                "events": r["events"],
                "unique_ips": r["unique_ips"],
                "unique_ips_hll": r["unique_ips_hll"],
                "bot_ids": r["bot_ids"],
                "machines_day": round(m.get("machines", 0.0)),
                "machines_day_low": round(m.get("low", 0.0)),
                "machines_day_high": round(m.get("high", 0.0)),
            }
        )
    return rows


def where_rows(
    engine: Engine,
    window: counts.Window,
    group: str,
    limit: int | None,
    est: Estimate | None = None,
) -> list[dict[str, Any]]:
    """Per country / ASN / network / family: counts and estimated machines over the window."""
    est = est or estimate(engine, window)
    base = counts.by_group(engine, window, group).to_pylist()
    key = counts.GROUPS[group]
    machines = {str(r[key]): r for r in est.by(key).to_pylist()} if est.window.num_rows else {}
    rows = []
    for r in base:
        m = machines.get(str(r[group]), {})
        rows.append(
            {
                **r,
                "machines": round(m.get("machines", 0.0)),
                "machines_low": round(m.get("low", 0.0)),
                "machines_high": round(m.get("high", 0.0)),
            }
        )
    rows.sort(key=lambda r: (-r["machines"], -r["unique_ips"]))
    return rows[:limit] if limit else rows


def effect_rows(
    engine: Engine,
    window: counts.Window,
    takedown: dt.date,
    until: dt.date | None,
    group: str | None,
    est: Estimate | None = None,
) -> list[dict[str, Any]]:
    """Reduction since the takedown and remediation half-life, overall or per group."""
    est = est or estimate(engine, window)
    daily = est.daily.to_pylist()
    key = counts.GROUPS[group] if group else None
    series: dict[str, dict[dt.date, float]] = {}
    for r in daily:
        name = str(r[key]) if key else "all"
        bucket = series.setdefault(name, {})
        bucket[r["day"]] = bucket.get(r["day"], 0.0) + r["machines"]
    rows: list[dict[str, Any]] = []
    for name, values in series.items():
        days = sorted(values)
        vals = [values[d] for d in days]
        if not days:
            continue
        red = reduction(days, vals, takedown, until)
        decay = fit_decay(days, vals, takedown)
        rows.append(
            {
                (group or "scope"): name,
                "from_day": red.start_day,
                "machines_from": round(red.start),
                "to_day": red.end_day,
                "machines_to": round(red.end),
                "change_pct": round(100 * red.change, 1),
                "half_life_days": None if decay is None else round(decay.half_life_days, 1),
                "half_life_low": None if decay is None else round(decay.low, 1),
                "half_life_high": None if decay is None else round(decay.high, 1),
            }
        )
    rows.sort(key=lambda r: -r["machines_from"])
    return rows


def make_charts(
    engine: Engine,
    window: counts.Window,
    out_dir: Path,
    takedown: dt.date | None = None,
    truth: dict[dt.date, float] | None = None,
    est: Estimate | None = None,
    top: int = 15,
) -> list[Path]:
    """population (machines vs IPs, takedown marked) and top networks, as PNG and SVG."""
    est = est or estimate(engine, window)
    rows = daily_population(engine, window, est)
    days = [r["day"] for r in rows]
    fig = charts.population_chart(
        days,
        [r["machines"] for r in rows],
        [r["machines_low"] for r in rows],
        [r["machines_high"] for r in rows],
        [r["unique_ips"] for r in rows],
        takedown=takedown,
        truth=[truth.get(d, 0.0) for d in days] if truth else None,
    )
    paths = charts.save(fig, out_dir, "population")
    nets = where_rows(engine, window, "network", top, est)
    labels = [f"{r['network']} {r.get('as_name') or ''} {r.get('cc') or ''}".strip() for r in nets]
    fig = charts.top_networks_chart(
        labels,
        [r["machines"] for r in nets],
        [r["unique_ips"] for r in nets],
        f"Top {len(nets)} networks by estimated machines",
    )
    paths += charts.save(fig, out_dir, "top-networks")
    return paths


def as_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows)
