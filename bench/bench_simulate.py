"""Benchmark the botnet simulator: events per minute into the lake, and where the time goes.

Three timings over the same scenario (same seed, so the same events):

* ``generate``: the population model alone (``Simulation.run_day`` into a sink that drops the
  batches): numpy only;
* ``lake``: ``takedown.simulate.writer.simulate_to_lake`` into a fresh home, everything: the
  model, Arrow tables, Parquet files (fsync'd), the truth;
* ``parquet floor`` (the peer): ``pyarrow.parquet.write_table`` of the same events, already
  built as lake tables in memory (building them is not timed), with the lake's settings.

Wall time and CPU time are both printed: on a shared machine the CPU time is the steadier one.

Usage::

    .venv/bin/python bench/bench_simulate.py                          # rustock-small
    .venv/bin/python bench/bench_simulate.py --scenario rustock --days 3
    .venv/bin/python bench/bench_simulate.py --scenario rustock       # the full month: minutes
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from takedown.home import Home
from takedown.simulate.population import EventBatch, Simulation
from takedown.simulate.scenario import load_scenario, with_overrides
from takedown.simulate.writer import _Lookups, events_table, simulate_to_lake


def rate(events: int, seconds: float) -> str:
    return f"{events / max(seconds, 1e-9) * 60 / 1e6:8.1f}M events/min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="rustock-small", help="name or file")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--sampling", type=float, default=None)
    parser.add_argument("--machines", type=int, default=None)
    parser.add_argument("--floor-days", type=int, default=3, help="days for the Parquet floor")
    args = parser.parse_args()
    scenario = with_overrides(load_scenario(args.scenario), days=args.days,
                              sampling=args.sampling, machines=args.machines)  # fmt: skip
    print(f"# {scenario.name}: {scenario.infection.machines:,} machines at start, "
          f"{scenario.days} days, sampling {scenario.sampling}")  # fmt: skip
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip

    start, cpu = time.monotonic(), time.process_time()
    sim = Simulation(scenario)
    built = time.monotonic() - start
    events = 0
    for d in range(scenario.days):
        events += int(sim.run_day(d, lambda batch: None).events.sum())
    generated = time.monotonic() - start
    cpu = time.process_time() - cpu
    print(f"generate       {generated:7.1f}s {rate(events, generated)}  "
          f"({cpu:.1f} CPU-s; {sim.pop.size:,} machines placed in {built:.1f}s)")  # fmt: skip

    root = Path(tempfile.mkdtemp(prefix="bench-simulate-"))
    try:
        cpu = time.process_time()
        summary = simulate_to_lake(Home(root / "home"), scenario)
        cpu = time.process_time() - cpu
        size = sum(f.stat().st_size for f in (root / "home").rglob("*.parquet"))
        print(f"lake           {summary.seconds:7.1f}s {rate(summary.events, summary.seconds)}  "
              f"({cpu:.1f} CPU-s in two threads; {size / 1e6:,.0f} MB of Parquet)")  # fmt: skip
        print(f"#   {summary.line()}")

        floor_days = min(args.floor_days, scenario.days)
        sim = Simulation(scenario)
        lookups = _Lookups.build(sim)
        tables: list[pa.Table] = []

        def keep(batch: EventBatch) -> None:
            tables.append(events_table(batch, lookups))

        for d in range(floor_days):
            sim.run_day(d, keep)
        rows = sum(t.num_rows for t in tables)
        start = time.monotonic()
        for i, table in enumerate(tables):
            pq.write_table(table, root / f"floor-{i}.parquet", compression="zstd",
                           compression_level=1, row_group_size=1 << 20)  # fmt: skip
        floor = time.monotonic() - start
        print(f"parquet floor  {floor:7.1f}s {rate(rows, floor)}  ({floor_days} days, "
              "tables prebuilt)")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
