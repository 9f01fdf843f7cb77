"""Estimates against the simulator's truth: the comparison rows on a handcrafted case."""

import datetime as dt
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from takedown.errors import TakedownError
from takedown.home import Home
from takedown.measure.counts import Window
from takedown.measure.estimate import Z90, Estimate
from takedown.measure.truth import compare, load_truth, summary, window_truth

D1, D2, D3 = dt.date(2011, 3, 1), dt.date(2011, 3, 2), dt.date(2011, 3, 3)
UTC = dt.UTC


def _ts(day, hour=0):
    return dt.datetime.combine(day, dt.time(hour), UTC)


def write_truth(home: Home) -> None:
    folder = home.lake / "truth"
    folder.mkdir(parents=True)
    daily = pa.table({
        "scenario": ["hand"] * 4,
        "day": [D1, D1, D2, D3],
        "family": ["rustock"] * 4,
        "asn": [3320, 7922, 3320, 3320],
        "cc": ["DE", "US", "DE", "DE"],
        "network": ["79.192.0.0/10", "24.0.0.0/12", "79.192.0.0/10", "79.192.0.0/10"],
        "infected_machines": [60, 40, 90, 80],
    })  # fmt: skip
    pq.write_table(daily, folder / "daily.parquet")
    # Four machines: one cleaned before D2, one infected on D3, one never cleaned, one cleaned
    # on D2 at noon; and one cleaned before the window even starts.
    machines = pa.table({
        "machine_id": pa.array([0, 1, 2, 3, 4], pa.int32()),
        "family": ["rustock"] * 5,
        "asn": [3320, 3320, 7922, 3320, 3320],
        "cc": ["DE", "DE", "US", "DE", "DE"],
        "network": ["79.192.0.0/10", "79.192.0.0/10", "24.0.0.0/12", "79.192.0.0/10",
                    "79.192.0.0/10"],
        "infected_at": pa.array([_ts(D1) - dt.timedelta(days=30), _ts(D3, 5),
                                 _ts(D1) - dt.timedelta(days=9), _ts(D1, 3),
                                 _ts(D1) - dt.timedelta(days=20)], pa.timestamp("us", tz="UTC")),
        "remediated_at": pa.array([_ts(D2), None, None, _ts(D2, 12), _ts(D1)],
                                  pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    pq.write_table(machines, folder / "machines.parquet")


def make_estimate() -> Estimate:
    daily = pa.table({
        "day": [D1, D1, D2],
        "family": ["rustock"] * 3,
        "network": ["79.192.0.0/10", "24.0.0.0/12", "79.192.0.0/10"],
        "asn": ["3320", "7922", "3320"],
        "cc": ["DE", "US", "DE"],
        "events": [500.0, 300.0, 700.0],
        "ips": [150.0, 30.0, 200.0],
        "ids": [0.0, 0.0, 0.0],
        "machines": [66.0, 40.0, 81.0],
        "low": [60.0, 36.0, 72.0],
        "high": [72.0, 44.0, 85.0],
        "sd_shared": [4.0, 2.0, 1.0],
        "sd_own": [1.0, 1.0, 1.0],
    })  # fmt: skip
    window = pa.table({
        "family": ["rustock", "rustock"],
        "network": ["79.192.0.0/10", "24.0.0.0/12"],
        "asn": ["3320", "7922"],
        "cc": ["DE", "US"],
        "events": [1200.0, 300.0],
        "ips": [320.0, 30.0],
        "ids": [0.0, 0.0],
        "machines": [3.0, 1.0],
        "low": [2.5, 0.9],
        "high": [3.5, 1.2],
        "sd_shared": [0.2, 0.05],
        "sd_own": [0.1, 0.05],
    })  # fmt: skip
    return Estimate({}, daily, window, (D1, D2))


def test_window_truth_counts_machines_infected_at_any_moment(tmp_path):
    home = Home(tmp_path)
    write_truth(home)
    truth = load_truth(home)
    assert truth.scenario == "hand"
    ids = sorted(window_truth(truth, D1, D2).column("machine_id").to_pylist())
    assert ids == [0, 2, 3]  # 1 comes later, 4 was cleaned before D1 00:00 (not after it)
    assert sorted(window_truth(truth, D3, D3).column("machine_id").to_pylist()) == [1, 2]
    assert window_truth(truth, D1, D3, family="other").num_rows == 0


def test_compare_rows_on_a_handcrafted_case(tmp_path):
    home = Home(tmp_path)
    write_truth(home)
    rows = compare(make_estimate(), home, Window(D1, D3))
    days = [r for r in rows if r["scope"] == "day"]
    assert [r["key"] for r in days] == ["2011-03-01", "2011-03-02"]
    d1, d2 = days
    # Day 1: 66 + 40 = 106 against 60 + 40 = 100 infected: +6%. The rows' shared errors add
    # up (4 + 2), their own ones in quadrature (1, 1): sd = sqrt(6² + 2).
    assert d1["estimate"] == 106.0 and d1["truth"] == 100 and d1["error_pct"] == 6.0
    assert d1["naive_ips"] == 180 and d1["ips_per_machine"] == 1.8
    spread = math.exp(Z90 * math.sqrt(38) / 106)
    assert d1["low"] == round(106 / spread, 1) and d1["high"] == round(106 * spread, 1)
    assert d1["covered"]
    assert d2["estimate"] == 81.0 and d2["truth"] == 90 and d2["error_pct"] == -10.0
    assert d2["high"] < 90 and not d2["covered"]
    (win,) = [r for r in rows if r["scope"] == "window"]
    assert win["key"] == "2011-03-01..2011-03-02"
    assert win["estimate"] == 4.0 and win["truth"] == 3 and win["naive_ips"] == 350
    assert win["error_pct"] == pytest.approx(33.3) and not win["covered"]
    by = {(r["scope"], r["key"]): r for r in rows}
    assert by[("network", "79.192.0.0/10")]["truth"] == 2
    assert by[("network", "79.192.0.0/10")]["estimate"] == 3.0
    assert by[("network", "79.192.0.0/10")]["covered"] is False
    assert by[("network", "24.0.0.0/12")]["truth"] == 1
    assert by[("network", "24.0.0.0/12")]["covered"] is True
    assert by[("country", "US")]["error_pct"] == 0.0
    assert by[("asn", "3320")]["truth"] == 2
    assert ("family", "rustock") not in by  # one family: nothing to split
    s = summary(rows)
    assert s["day"]["rows"] == 2 and s["day"]["within"] == 1.0 and s["day"]["covered"] == 0.5
    assert s["window"]["within"] == 0.0


def test_compare_skips_places_when_events_are_not_enriched(tmp_path):
    home = Home(tmp_path)
    write_truth(home)
    est = make_estimate()
    for name in ("daily", "window"):
        table = getattr(est, name)
        n = table.num_rows
        for col, value in (("network", "unknown"), ("asn", "unknown"), ("cc", "??")):
            i = table.schema.get_field_index(col)
            table = table.set_column(i, col, pa.array([value] * n))
        setattr(est, name, table)
    scopes = {r["scope"] for r in compare(est, home, Window(D1, D3))}
    assert scopes == {"day", "window"}


def test_no_truth_is_an_error(tmp_path):
    with pytest.raises(TakedownError, match="no simulator truth"):
        compare(make_estimate(), Home(tmp_path), Window())
