"""Benchmark the speed of measurement: `takedown measure daily` against one hand-written query.

The lake: a Rustock-like month simulated at scale (rustock-small with ``--machines`` machines
and ``--sampling``; about 20 million events by default), networks filled in as on ingest. It
is built once and kept in ``--cache`` (default ``~/.cache/takedown-bench/measure-speed``).

Side by side, each in a fresh child process, alternating, ``--rounds`` times:

- **takedown**: ``takedown.measure.report.daily_population`` on the DuckDB engine, i.e. what
  ``takedown measure daily`` computes: per day events, unique IPs (exact and HyperLogLog), bot
  ids, and the estimated infected machines with their 90% interval (which needs the per-day,
  per-family and per-network counts, the unit histograms of the calibration window and the
  model fit). Timed from opening the engine to the finished rows.
- **hand-written DuckDB**: one SQL query over the same Parquet files computing every
  aggregate those figures are made of: per day (events, exact and approximate unique IPs, bot
  ids), per day × family × network and per family × network (events, events with a bot id,
  unique IPs and bot ids), and the per-unit histogram the machine estimates are fitted to.
  Written the fast way (one scan into a materialized CTE, UNION ALL of the aggregates; the
  same with GROUPING SETS was slower here). Timed from connecting to the fetched result.

Target (issue "Measure the botnet"): takedown takes at most 1.5x the hand-written query.
Both use all cores (DuckDB's default threads).

Usage::

    .venv/bin/python bench/bench_measure_speed.py            # 20M events, 5 rounds
    .venv/bin/python bench/bench_measure_speed.py --quick    # 2M events, 2 rounds
    .venv/bin/python bench/bench_measure_speed.py --write    # and update bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from results import ROOT, machine_line, median, write_section

SECTION = "## Measurement speed (20M events)"

# What a person would write by hand to get these figures in one go: one scan of the Parquet
# files into a materialized CTE, then every aggregate the report is made of. The unit
# histogram (per family, per address and per bot id: days between first and last sighting,
# and events on the days at least two days from both) is what the machine estimates are
# fitted to; the fit itself (numpy, a few hundred rows) is the one thing no query does.
HAND_WRITTEN = """
WITH ev AS MATERIALIZED (
    SELECT CAST("time".source AS DATE) AS d, coalesce(malware.name, 'unknown') AS family,
           coalesce(source.network, 'unknown') AS network, source.ip AS ip,
           extra.bot_id AS bot_id
    FROM read_parquet('{glob}', hive_partitioning = true)
),
kd AS (
    SELECT family, 'ip' AS kind, ip AS unit, d, count(*) AS c FROM ev GROUP BY ALL
    UNION ALL
    SELECT family, 'id', bot_id, d, count(*) FROM ev WHERE bot_id IS NOT NULL GROUP BY ALL
),
unit AS (
    SELECT family, kind, unit, min(d) AS f, max(d) AS l FROM kd GROUP BY ALL
    HAVING max(d) - min(d) >= 4
),
per_unit AS (
    SELECT kd.family, kd.kind, u.l - u.f - 3 AS n,
           sum(CASE WHEN kd.d - u.f >= 2 AND u.l - kd.d >= 2 THEN c ELSE 0 END) AS e
    FROM kd JOIN unit u USING (family, kind, unit) GROUP BY kd.family, kd.kind, kd.unit, n
)
SELECT 'day' AS g, d, NULL AS family, NULL AS network, count(*) AS events,
       count(DISTINCT ip) AS ips, approx_count_distinct(ip) AS ips_hll,
       count(DISTINCT bot_id) AS ids, NULL AS n
FROM ev GROUP BY d
UNION ALL
SELECT 'day-network', d, family, network, count(*), count(DISTINCT ip), NULL,
       count(DISTINCT bot_id), count(bot_id)
FROM ev GROUP BY d, family, network
UNION ALL
SELECT 'network', NULL, family, network, count(*), count(DISTINCT ip), NULL,
       count(DISTINCT bot_id), count(bot_id)
FROM ev GROUP BY family, network
UNION ALL
SELECT 'histogram', NULL, family, kind, sum(e), count(*), NULL, NULL, n
FROM per_unit GROUP BY family, kind, n, e
"""

CHILD_TAKEDOWN = """
import json, sys, time
t0 = time.perf_counter()
from takedown.home import Home
from takedown.measure.counts import Window
from takedown.measure.engine import DuckDBEngine
from takedown.measure.report import daily_population
t1 = time.perf_counter()
engine = DuckDBEngine(Home(__import__("pathlib").Path(sys.argv[1])))
rows = daily_population(engine, Window())
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "imports": t1 - t0, "rows": len(rows),
                  "machines": max(r["machines"] for r in rows)}))
"""

CHILD_DUCKDB = """
import json, sys, time
t0 = time.perf_counter()
import duckdb
t1 = time.perf_counter()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
rows = con.sql(sys.argv[2]).fetchall()
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "imports": t1 - t0, "rows": len(rows)}))
"""


def build_lake(cache: Path, machines: int, sampling: float) -> tuple[Path, int]:
    """Simulate the lake once (networks filled as ingest does); reuse it when it is there."""
    from takedown.home import Home
    from takedown.simulate.scenario import load_scenario, with_overrides
    from takedown.simulate.writer import simulate_to_lake

    home = cache / f"rustock-{machines}-{sampling}"
    stamp = home / "built.json"
    if stamp.exists():
        return home, int(json.loads(stamp.read_text())["events"])
    shutil.rmtree(home, ignore_errors=True)
    scenario = with_overrides(load_scenario("rustock-small"), machines=machines, sampling=sampling)
    import dataclasses

    scenario = dataclasses.replace(
        scenario, sensor=dataclasses.replace(scenario.sensor, fill_source=True)
    )
    t = time.perf_counter()
    summary = simulate_to_lake(Home(home), scenario, replace=True)
    print(f"simulated {summary.line()} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    stamp.write_text(json.dumps({"events": summary.events}))
    return home, summary.events


def run_child(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--machines", type=int, default=200_000)
    ap.add_argument("--sampling", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2M events, 2 rounds")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/takedown-bench/measure")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.machines, args.rounds = 20_000, 2
    started = machine_line()
    home, events = build_lake(args.cache, args.machines, args.sampling)
    glob = str(home / "lake" / "events" / "*" / "*.parquet")
    sql = HAND_WRITTEN.format(glob=glob)
    ours: list[float] = []
    peer: list[float] = []
    detail: dict[str, float] = {}
    for i in range(args.rounds):
        for name in ("takedown", "duckdb") if i % 2 == 0 else ("duckdb", "takedown"):
            if name == "takedown":
                r = run_child(CHILD_TAKEDOWN, str(home))
                ours.append(r["seconds"])
                detail.update(days=r["rows"], machines=r["machines"])
            else:
                r = run_child(CHILD_DUCKDB, str(home), sql)
                peer.append(r["seconds"])
                detail["groups"] = r["rows"]
            print(f"round {i + 1} {name:9s} {r['seconds']:7.2f} s", file=sys.stderr)
    ratio = median(ours) / median(peer)
    cmd = "python bench/bench_measure_speed.py " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `.venv/bin/{cmd.strip()}` (from the project root)  ",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
            f"Machine: {started}",
            "",
            f"Lake: rustock-small scaled to {args.machines:,} machines, sampling {args.sampling}: "
            f"{events:,} events over {detail.get('days', 0):.0f} days, networks filled. "
            f"{args.rounds} rounds, each side in a fresh process, alternating; times exclude "
            "interpreter start and imports.",
            "",
            "| job | median s | all rounds (s) |",
            "|---|---:|---|",
            f"| takedown measure daily (DuckDB engine) | {median(ours):.2f} | "
            + ", ".join(f"{x:.2f}" for x in ours)
            + " |",
            f"| hand-written DuckDB query ({detail.get('groups', 0):,.0f} rows) | "
            f"{median(peer):.2f} | " + ", ".join(f"{x:.2f}" for x in peer) + " |",
            "",
            f"**Ratio: {ratio:.2f}x** the hand-written query (target at most 1.5x): "
            f"{'met' if ratio <= 1.5 else 'NOT met'}.",
        ]
    )
    print(text)
    if args.write:
        write_section(SECTION, text)
        print("updated bench/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
