"""Estimates against the simulator's ground truth: is the estimator right, and by how much?

The simulator writes, beside its events, exactly how many machines were infected
(``HOME/lake/truth/``, see docs/simulate.md). ``compare`` puts every estimate next to it:

- per **day**: machines infected at any moment of the day (``daily.parquet``,
  ``infected_machines``), against the day's estimate;
- over the **window**: machines infected at any moment of it (``machines.parquet``:
  ``infected_at`` before the window's end and not remediated before its start), against the
  window estimate, in total and per family, and per network, ASN and country where the events
  carry them (enriched, or simulated with ``fill_source``) — the truth always has them.

Infected, not "seen": sampling leaves some infected machines without an event on a day, and
the estimator is meant to count them too (docs/measure.md). Each row: the estimate and its 90%
interval, the truth, the naive count (distinct source addresses), the error and whether the
interval covers the truth.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from takedown.errors import TakedownError
from takedown.home import Home
from takedown.measure.counts import Window, base_cte
from takedown.measure.engine import Engine
from takedown.measure.estimate import Estimate, estimate

__all__ = ["Truth", "compare", "daily_truth", "load_truth", "summary", "window_truth"]

_GROUPS = (("family", "family"), ("asn", "asn"), ("network", "network"), ("country", "cc"))


class Truth:
    """The simulator's truth of one home: daily counts and every machine."""

    def __init__(self, daily: pa.Table, machines: pa.Table, scenario: str) -> None:
        self.daily = daily
        self.machines = machines
        self.scenario = scenario


def load_truth(home: Home) -> Truth:
    folder = Path(home.lake) / "truth"
    daily, machines = folder / "daily.parquet", folder / "machines.parquet"
    if not daily.exists() or not machines.exists():
        raise TakedownError(
            f"no simulator truth in {folder}: `takedown simulate` writes it beside its events"
        )
    d = pq.read_table(daily)
    name = str(d.column("scenario")[0]) if d.num_rows else ""
    return Truth(d, pq.read_table(machines), name)


def _family_filter(table: pa.Table, family: str | None) -> pa.Table:
    if not family:
        return table
    return table.filter(pc.equal(table.column("family"), family.lower()))


def daily_truth(truth: Truth, family: str | None = None) -> dict[dt.date, int]:
    """Machines infected at any moment of each day."""
    out: dict[dt.date, int] = defaultdict(int)
    t = _family_filter(truth.daily, family)
    for day, n in zip(
        t.column("day").to_pylist(), t.column("infected_machines").to_pylist(), strict=True
    ):
        out[day] += int(n)
    return dict(out)


def window_truth(
    truth: Truth, first: dt.date, last: dt.date, family: str | None = None
) -> pa.Table:
    """The machines infected at any moment of days ``first`` .. ``last`` (inclusive)."""
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC)
    m = _family_filter(truth.machines, family)
    infected = pc.less(m.column("infected_at"), pa.scalar(end, m.schema.field("infected_at").type))
    rem = m.column("remediated_at")
    alive = pc.or_kleene(
        pc.is_null(rem), pc.greater(rem, pa.scalar(start, m.schema.field("remediated_at").type))
    )
    return m.filter(pc.and_kleene(infected, alive))


def _row(
    scope: str,
    key: str,
    est: float,
    low: float,
    high: float,
    truth: float,
    ips: float | None,
) -> dict[str, Any]:
    err = 100.0 * (est - truth) / truth if truth else math.nan
    return {
        "scope": scope,
        "key": key,
        "estimate": round(est, 1),
        "low": round(low, 1),
        "high": round(high, 1),
        "truth": int(truth),
        "naive_ips": None if ips is None else int(ips),
        "ips_per_machine": None if ips is None or not truth else round(ips / truth, 2),
        "error_pct": None if math.isnan(err) else round(err, 1),
        "covered": bool(low <= truth <= high),
    }


def _exact_ips(engine: Engine, window: Window) -> tuple[dict[dt.date, int], int]:
    per_day = engine.query(
        f"WITH {base_cte(window)} SELECT d AS day, count(DISTINCT ip) AS ips FROM ev GROUP BY d"
    ).to_pydict()
    total = engine.query(f"WITH {base_cte(window)} SELECT count(DISTINCT ip) AS ips FROM ev")
    return (
        dict(zip(per_day["day"], per_day["ips"], strict=True)),
        int(total.column("ips")[0].as_py() or 0),
    )


def compare(
    source: Engine | Estimate,
    home: Home,
    window: Window,
    *,
    engine: Engine | None = None,
    groups: bool = True,
) -> list[dict[str, Any]]:
    """Every estimate next to the truth: per day, the window, and per group (see the module).

    ``source``: an engine (the estimate is made here) or an ``Estimate`` already made for
    ``window``. The naive counts are exact distinct addresses when there is an engine (the
    source, or ``engine``); from an estimate alone they are its per-network sums (a few too
    many where families share an address). Rows, ready to print: scope (day, window,
    family, asn, network, country), key, estimate, low, high, truth, naive_ips,
    ips_per_machine, error_pct, covered.
    """
    truth = load_truth(home)
    if isinstance(source, Estimate):
        est = source
    else:
        est, engine = estimate(source, window), source
    if engine is None:
        day_ips = {r["day"]: r["ips"] for r in est.total_daily().to_pylist()}
        total_ips: float = est.total_window()["ips"]
    else:
        exact, total = _exact_ips(engine, window)
        day_ips, total_ips = {k: float(v) for k, v in exact.items()}, float(total)
    rows: list[dict[str, Any]] = []
    if est.window_days is None:
        return rows
    first, last = est.window_days
    per_day = daily_truth(truth, window.family)
    for r in est.total_daily().to_pylist():
        rows.append(
            _row("day", r["day"].isoformat(), r["machines"], r["low"], r["high"],
                 per_day.get(r["day"], 0), day_ips.get(r["day"]))
        )  # fmt: skip
    machines = window_truth(truth, first, last, window.family)
    tot = est.total_window()
    key = f"{first.isoformat()}..{last.isoformat()}"
    rows.append(
        _row("window", key, tot["machines"], tot["low"], tot["high"], machines.num_rows, total_ips)
    )
    if groups:
        rows += _group_rows(est, machines)
    return rows


def _group_rows(est: Estimate, machines: pa.Table) -> list[dict[str, Any]]:
    """Per family, and per ASN, network and country where the events say which.

    Places are compared where the estimate and the truth name them alike (an enrichment may
    name a network differently from the simulator's prefix): a scope is left out when the
    names shared hold less than half the truth's machines.
    """
    rows: list[dict[str, Any]] = []
    for scope, key in _GROUPS:
        got = {str(r[key]): r for r in est.by(key).to_pylist()} if est.window.num_rows else {}
        counts: dict[str, int] = defaultdict(int)
        for value in machines.column(key).to_pylist():
            counts[str(value)] += 1
        if key == "family" and len(counts) < 2:
            continue
        shared = set(got) & set(counts)
        if sum(counts[k] for k in shared) < 0.5 * sum(counts.values()):
            continue  # not enriched, or named otherwise: nothing to compare per place
        for name in sorted(set(counts) | set(got), key=lambda k: -counts.get(k, 0)):
            r = got.get(name)
            if r is None:
                rows.append(_row(scope, name, 0.0, 0.0, 0.0, counts[name], 0))
            elif name in counts or key == "family":
                rows.append(
                    _row(scope, name, r["machines"], r["low"], r["high"], counts[name],
                         r["ips"])
                )  # fmt: skip
    return rows


def summary(rows: list[dict[str, Any]], tolerance: float = 15.0) -> dict[str, Any]:
    """Per scope: rows, share within ±``tolerance``% and share covered by the interval."""
    out: dict[str, Any] = {}
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["truth"]:
            by[r["scope"]].append(r)
    for scope, rs in by.items():
        errs = [abs(r["error_pct"]) for r in rs if r["error_pct"] is not None]
        out[scope] = {
            "rows": len(rs),
            "within": sum(e <= tolerance for e in errs) / len(errs) if errs else math.nan,
            "covered": sum(r["covered"] for r in rs) / len(rs),
            "median_abs_error_pct": sorted(errs)[len(errs) // 2] if errs else math.nan,
        }
    return out
