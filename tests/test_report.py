"""What `takedown measure` shows, on a small simulated Rustock month with its truth."""

import dataclasses
import datetime as dt

import duckdb
import pytest

from takedown import lake
from takedown.home import Home
from takedown.measure import report
from takedown.measure.counts import Window
from takedown.measure.engine import DuckDBEngine
from takedown.measure.estimate import estimate
from takedown.simulate.scenario import load_scenario, with_overrides
from takedown.simulate.writer import simulate_to_lake


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = with_overrides(load_scenario("rustock-small"), machines=3000, seed=5)
    s = dataclasses.replace(s, sensor=dataclasses.replace(s.sensor, fill_source=True))
    home = Home(tmp_path_factory.mktemp("report"))
    simulate_to_lake(home, s)
    engine = DuckDBEngine(home)
    yield s, home, engine
    engine.close()


def direct(home, sql):
    return duckdb.connect().sql(sql.format(events=lake.events_sql(home))).fetchall()


def test_daily_counts_are_exact_and_come_from_the_estimates_scan(sim):
    _s, home, engine = sim
    window = Window()
    est = estimate(engine, window)
    rows = report.daily_population(engine, window, est)
    want = direct(
        home,
        'SELECT CAST("time".source AS DATE), count(*), count(DISTINCT source.ip), '
        "count(DISTINCT extra.bot_id) FROM {events} GROUP BY 1 ORDER BY 1",
    )
    assert [(r["day"], r["events"], r["unique_ips"], r["bot_ids"]) for r in rows] == want
    # The same rows when the counts are taken by a second scan of the lake.
    again = report.daily_population(engine, window, dataclasses.replace(est, counts=None))
    assert again == rows
    for r in rows:
        assert r["machines_low"] <= r["machines"] <= r["machines_high"]
        assert abs(r["unique_ips_hll"] - r["unique_ips"]) <= 0.1 * r["unique_ips"] + 5


def test_hourly_rows_add_up_to_the_days_and_carry_the_days_estimate(sim):
    s, _home, engine = sim
    window = Window(s.start, s.start + dt.timedelta(days=3))
    est = estimate(engine, window)
    hours = report.hourly_population(engine, window, est)
    days = {r["day"]: r for r in report.daily_population(engine, window, est)}
    assert len(hours) == 3 * 24
    assert [h["hour"] for h in hours] == sorted(h["hour"] for h in hours)
    for day, d in days.items():
        mine = [h for h in hours if h["hour"].date() == day]
        assert sum(h["events"] for h in mine) == d["events"]
        assert max(h["unique_ips"] for h in mine) <= d["unique_ips"]
        assert {h["machines_day"] for h in mine} == {d["machines"]}
        assert {h["machines_day_low"] for h in mine} == {d["machines_low"]}


def test_where_rows_are_ranked_by_machines_and_cover_every_event(sim):
    _s, home, engine = sim
    rows = report.where_rows(engine, Window(), "country", None)
    (total,) = direct(home, "SELECT count(*) FROM {events}")[0]
    assert sum(r["events"] for r in rows) == total
    machines = [r["machines"] for r in rows]
    assert machines == sorted(machines, reverse=True)
    assert report.where_rows(engine, Window(), "country", 2) == rows[:2]


def test_effect_shows_the_fall_after_the_takedown(sim):
    s, _home, engine = sim
    assert s.takedown.at is not None
    rows = report.effect_rows(engine, Window(), s.takedown.at.date(), None, None)
    assert len(rows) == 1
    (row,) = rows
    assert row["change_pct"] < -10  # the remediation curve of the scenario
    assert row["half_life_days"] is None or row["half_life_low"] <= row["half_life_high"]


def test_charts_are_written_as_png_and_svg(sim, tmp_path):
    s, _home, engine = sim
    paths = report.make_charts(engine, Window(), tmp_path, takedown=s.takedown.at.date())
    names = sorted(p.name for p in paths)
    assert names == ["population.png", "population.svg", "top-networks.png", "top-networks.svg"]
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 5000
        assert data.startswith(b"\x89PNG") if p.suffix == ".png" else b"<svg" in data[:2000]
