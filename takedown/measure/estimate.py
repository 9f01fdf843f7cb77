"""How many machines, not addresses: the population estimator.

Counting unique IPs is a loose proxy: DHCP churn gives one machine many addresses over a week
(Torpig: 6.8 per bot), NAT gives many machines one address. The estimator here works on
*machine-hours*, which neither distorts:

1. Per family, the check-in rate of one machine, ``r``: the median of check-ins per active
   address-hour (most address-hours are one machine, so the median is one machine's rate).
2. Per address and hour, machines behind it ``max(1, checkins / r)`` (NAT multiplicity); summed
   over the hours an address is active, machine-hours. An address change (DHCP) moves a
   machine's hours to another address but does not add hours, so churn cancels out.
3. The share of the day a machine is online, ``p``: the mean active hours per day of
   long-lived single-machine addresses (seen on ≥ 3 days, rate ≈ r): static or long-lease
   addresses show a machine's own diurnal rhythm.
4. Machines on a day = machine-hours / (24 p), per network; over a window, the peak of the
   3-day rolling mean per network, summed over networks (a declining or stable population's
   union is its peak; new infections after the peak are missed — see docs/measure.md).

Families whose events carry a stable bot id are counted exactly (distinct ids) instead.
Each figure has a 90% interval from the sampling error of ``p`` and of the machine-hours, and
a model-error term calibrated on the simulator's scenario matrix (``MODEL_ERROR``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from takedown.measure.counts import Window, base_cte
from takedown.measure.engine import Engine

__all__ = ["MODEL_ERROR", "Estimate", "FamilyModel", "estimate"]

MODEL_ERROR = 0.08  # relative, 1 sigma; from the scenario matrix (bench/bench_measure.py)
Z90 = 1.6449
BOT_ID_SHARE = 0.9  # a family counts by bot id when this share of its events carry one
MIN_LONG_LIVED_DAYS = 3


@dataclass(frozen=True, slots=True)
class FamilyModel:
    family: str
    by_bot_id: bool
    rate: float  # check-ins per machine per active hour
    online: float  # share of the day a machine is online (p)
    online_se: float
    sample: int  # address-days behind ``online``


@dataclass
class Estimate:
    """Daily and window estimates, per network and in total."""

    models: dict[str, FamilyModel]
    daily: pa.Table  # day, family, network, asn, cc, ips, machine_hours, machines, low, high
    window: pa.Table  # family, network, asn, cc, ips, machines, low, high (whole window)

    def total_daily(self) -> pa.Table:
        return _sum_by(self.daily, ["day"])

    def total_window(self) -> dict[str, float]:
        cols = self.window.to_pydict()
        out = {"ips": float(sum(cols["ips"])), "machines": float(sum(cols["machines"]))}
        out.update(_sum_interval(cols["machines"], cols["low"], cols["high"]))
        return out

    def by(self, key: str) -> pa.Table:
        return _sum_by(self.window, [key])


def _sum_interval(est: list[float], low: list[float], high: list[float]) -> dict[str, float]:
    """Interval of a sum: independent parts add in quadrature around the summed estimate."""
    total = float(sum(est))
    down = math.sqrt(sum((e - lo) ** 2 for e, lo in zip(est, low, strict=True)))
    up = math.sqrt(sum((h - e) ** 2 for e, h in zip(est, high, strict=True)))
    # Each part's interval holds the model error too, but that error is shared by all parts,
    # so summing in quadrature would shrink it: keep at least the common share.
    common = MODEL_ERROR * Z90 * total
    return {"low": max(0.0, total - max(down, common)), "high": total + max(up, common)}


def _sum_by(table: pa.Table, keys: list[str]) -> pa.Table:
    groups: dict[tuple[object, ...], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    cols = table.to_pydict()
    n = table.num_rows
    for i in range(n):
        key = tuple(cols[k][i] for k in keys)
        for c in ("ips", "machines", "low", "high"):
            groups[key][c].append(float(cols[c][i]))
    rows = []
    for key, vals in sorted(groups.items(), key=lambda kv: str(kv[0])):
        row: dict[str, object] = dict(zip(keys, key, strict=True))
        row["ips"] = sum(vals["ips"])
        row["machines"] = sum(vals["machines"])
        row.update(_sum_interval(vals["machines"], vals["low"], vals["high"]))
        rows.append(row)
    return pa.Table.from_pylist(rows)


def _ip_hours(engine: Engine, window: Window) -> None:
    """``ih``: check-ins per address and hour, computed once (the only scan of the events)."""
    engine.materialize(
        "ih",
        f"""WITH {base_cte(window)}
SELECT family, network, asn, cc, ip, d, date_trunc('hour', ts) AS h, count(*) AS c,
       count(bot_id) AS with_id
FROM ev GROUP BY family, network, asn, cc, ip, d, date_trunc('hour', ts)""",
    )


def _models(engine: Engine) -> dict[str, FamilyModel]:
    hist = engine.query(
        "SELECT family, c, count(*) AS n, sum(with_id) AS with_id FROM ih GROUP BY family, c"
    ).to_pydict()
    per_family: dict[str, list[tuple[int, int]]] = defaultdict(list)
    events: dict[str, int] = defaultdict(int)
    with_id: dict[str, int] = defaultdict(int)
    for fam, c, n, w in zip(hist["family"], hist["c"], hist["n"], hist["with_id"], strict=True):
        per_family[fam].append((int(c), int(n)))
        events[fam] += int(c) * int(n)
        with_id[fam] += int(w)
    rates: dict[str, float] = {}
    for fam, pairs in per_family.items():
        pairs.sort()
        total = sum(n for _, n in pairs)
        acc = 0
        for c, n in pairs:
            acc += n
            if acc >= total / 2:
                rates[fam] = float(c)
                break
    rate_table = pa.table({"family": list(rates), "r": list(rates.values())})
    online = engine.query(
        f"""WITH
idy AS (SELECT ih.family, ip, d, count(*) AS hours, max(c / r) AS peak
        FROM ih JOIN rates ON ih.family = rates.family GROUP BY ih.family, ip, d),
lived AS (SELECT family, ip FROM idy GROUP BY family, ip
          HAVING count(*) >= {MIN_LONG_LIVED_DAYS} AND max(peak) < 1.5)
SELECT idy.family, avg(hours / 24.0) AS p, stddev_samp(hours / 24.0) AS sd, count(*) AS n
FROM idy JOIN lived ON idy.family = lived.family AND idy.ip = lived.ip
GROUP BY idy.family""",
        views={"rates": rate_table},
    ).to_pydict()
    p_by = {f: (p, sd or 0.0, n) for f, p, sd, n in zip(*online.values(), strict=True)}
    models = {}
    for fam, r in rates.items():
        p, sd, n = p_by.get(fam, (math.nan, math.nan, 0))
        if not n or not p or math.isnan(p):
            p, sd, n = _pooled(p_by)
        share = with_id[fam] / events[fam] if events[fam] else 0.0
        models[fam] = FamilyModel(
            fam,
            share >= BOT_ID_SHARE,
            r,
            float(p),
            float(sd) / math.sqrt(n) if n else math.nan,
            int(n),
        )
    return models


def _pooled(p_by: dict[str, tuple[float, float, int]]) -> tuple[float, float, int]:
    """A family with no long-lived addresses borrows the others' online share."""
    usable = [(p, sd, n) for p, sd, n in p_by.values() if n]
    if not usable:
        return 1.0, 0.5, 1  # nothing to learn from: count machine-days, say it loudly
    n = sum(u[2] for u in usable)
    p = sum(u[0] * u[2] for u in usable) / n
    sd = math.sqrt(sum((u[1] ** 2) * u[2] for u in usable) / n)
    return p, sd, n


def _interval(est: np.ndarray, rel_se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    spread = np.sqrt(rel_se**2 + MODEL_ERROR**2) * Z90
    return est * np.exp(-spread), est * np.exp(spread)


def estimate(engine: Engine, window: Window) -> Estimate:
    """Machines per network and day, and over the whole window, with 90% intervals."""
    _ip_hours(engine, window)
    models = _models(engine)
    rate_table = pa.table({"family": list(models), "r": [m.rate for m in models.values()]})
    daily = engine.query(
        """SELECT d AS day, ih.family, network, max(asn) AS asn, max(cc) AS cc,
       count(DISTINCT ip) AS ips, sum(greatest(1.0, c / r)) AS machine_hours,
       count(*) AS ip_hours
FROM ih JOIN rates ON ih.family = rates.family GROUP BY d, ih.family, network
ORDER BY 1, 2, 3""",
        views={"rates": rate_table},
    )
    id_families = sorted(f for f, m in models.items() if m.by_bot_id)
    id_map: dict[tuple[object, ...], int] = {}
    if id_families:
        names = ", ".join("'" + f.replace("'", "''") + "'" for f in id_families)
        ids_daily = engine.query(f"""WITH {base_cte(window)}
SELECT d AS day, family, network, count(DISTINCT bot_id) AS ids FROM ev
WHERE bot_id IS NOT NULL AND family IN ({names}) GROUP BY d, family, network""").to_pydict()
        id_map = {(d, f, n): k for d, f, n, k in zip(*ids_daily.values(), strict=True)}
    cols = daily.to_pydict()
    n = daily.num_rows
    machines = np.zeros(n)
    rel = np.zeros(n)
    for i in range(n):
        m = models[cols["family"][i]]
        if m.by_bot_id:
            machines[i] = id_map.get((cols["day"][i], cols["family"][i], cols["network"][i]), 0)
        else:
            machines[i] = cols["machine_hours"][i] / (24.0 * m.online)
            rel[i] = math.hypot(
                m.online_se / m.online if m.online else 1.0,
                1.0 / math.sqrt(max(cols["ip_hours"][i], 1)),
            )
    low, high = _interval(machines, rel)
    for i in range(n):
        if models[cols["family"][i]].by_bot_id:
            low[i] = high[i] = machines[i]
    daily = (
        daily.append_column("machines", pa.array(machines))
        .append_column("low", pa.array(low))
        .append_column("high", pa.array(high))
    )
    window_table = _window(engine, window, models, daily, id_families)
    return Estimate(models, daily, window_table)


def _window(
    engine: Engine,
    window: Window,
    models: dict[str, FamilyModel],
    daily: pa.Table,
    id_families: list[str],
) -> pa.Table:
    per = engine.query(
        "SELECT family, network, max(asn) AS asn, max(cc) AS cc, "
        "count(DISTINCT ip) AS ips FROM ih GROUP BY family, network"
    ).to_pylist()
    ids: dict[tuple[str, str], int] = {}
    if id_families:
        names = ", ".join("'" + f.replace("'", "''") + "'" for f in id_families)
        got = engine.query(f"""WITH {base_cte(window)}
SELECT family, network, count(DISTINCT bot_id) AS ids FROM ev
WHERE family IN ({names}) GROUP BY family, network""").to_pylist()
        ids = {(r["family"], r["network"]): r["ids"] for r in got}
    series: dict[tuple[str, str], list[tuple[dt.date, float, float, float]]] = defaultdict(list)
    for row in daily.to_pylist():
        series[(row["family"], row["network"])].append(
            (row["day"], row["machines"], row["low"], row["high"])
        )
    rows = []
    for row in per:
        key = (row["family"], row["network"])
        model = models[row["family"]]
        if model.by_bot_id:
            est = lo = hi = float(ids.get(key, 0))
        else:
            est, lo, hi = _peak(sorted(series.get(key, [])))
        rows.append(
            {
                "family": row["family"],
                "network": row["network"],
                "asn": row["asn"],
                "cc": row["cc"],
                "ips": row["ips"],
                "machines": est,
                "low": lo,
                "high": hi,
            }
        )
    return (
        pa.Table.from_pylist(rows)
        if rows
        else pa.table(
            {k: [] for k in ("family", "network", "asn", "cc", "ips", "machines", "low", "high")}
        )
    )


def _peak(points: list[tuple[dt.date, float, float, float]]) -> tuple[float, float, float]:
    """Peak of the 3-day rolling mean (days missing from the series count as zero)."""
    if not points:
        return 0.0, 0.0, 0.0
    first, last = points[0][0], points[-1][0]
    span = (last - first).days + 1
    vals = np.zeros((span, 3))
    for d, m, lo, hi in points:
        vals[(d - first).days] = (m, lo, hi)
    if span >= 3:
        kernel = np.ones(3) / 3
        smooth = np.stack([np.convolve(vals[:, j], kernel, mode="valid") for j in range(3)], 1)
    else:
        smooth = vals.mean(axis=0, keepdims=True)
    i = int(np.argmax(smooth[:, 0]))
    return float(smooth[i, 0]), float(smooth[i, 1]), float(smooth[i, 2])
