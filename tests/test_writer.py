import ipaddress
import json

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from takedown import lake, schema
from takedown.errors import ConfigError
from takedown.home import Home
from takedown.simulate import writer
from takedown.simulate.scenario import load_scenario, parse_scenario, with_overrides

SCENARIO = """
[scenario]
name = "mixed"
seed = 7
start = 2011-03-14
days = 4
sampling = 0.3

[population]
machines = 1500
new_infections_per_day = 0.01

[takedown]
at = 2011-03-16T15:00:00Z
half_life_days = 3
floor = 0.25

[sensor]
name = "test-sim"

[[family]]
name = "rustock"
weight = 2
method = "POST"
path = "/login.php"
body_size = 96
rule = "rustock.c2-login"
hosts = ["a.example", "b.example"]

[[family]]
name = "idbot"
checkin_interval_minutes = 30
method = "GET"
path = "/c/check.php"
bot_id_fraction = 1.0

[[network]]
asn = 3320
as_name = "DTAG"
country = "DE"
prefixes = ["79.192.0.0/10", "84.128.0.0/10"]
utc_offset = 1
dynamics = "dhcp"
lease_hours = 12

[[network]]
asn = 7552
as_name = "Viettel"
country = "VN"
prefixes = ["171.224.0.0/11"]
utc_offset = 7
dynamics = "cgnat"
machines_per_address = 10

[[network]]
asn = 7922
as_name = "Comcast"
country = "US"
prefixes = ["24.0.0.0/12"]
utc_offset = -5
dynamics = "home_nat"
machines_per_household = 2
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("sim"))
    scenario = parse_scenario(SCENARIO, "mixed.toml")
    ticks = []
    summary = writer.simulate_to_lake(home, scenario, progress=lambda d, t: ticks.append((d, t)))
    return home, scenario, summary, ticks


def sql(home, query):
    con = duckdb.connect()
    try:
        return con.execute(query.replace("EVENTS", lake.events_sql(home))).fetchall()
    finally:
        con.close()


def test_files_named_apart_from_the_sinkhole_with_the_lake_schema(written):
    home, _scenario, summary, ticks = written
    assert ticks[0] == (0, 4) and ticks[-1] == (4, 4)
    files = sorted(home.events.glob("*/*.parquet"))
    assert [f.relative_to(home.events).as_posix() for f in files] == [
        f"day=2011-03-{d}/sim-mixed-2011-03-{d}.parquet" for d in (14, 15, 16, 17)
    ]
    assert summary.files == [str(f.relative_to(home.root)) for f in files]
    for f in files:
        assert pq.read_schema(f).equals(schema.lake_schema())
    assert not list(home.events.glob("*/.*.tmp"))
    (events, families, feed, null_asn, sensors) = sql(
        home,
        "SELECT count(*), count(DISTINCT malware.name), min(feed.name), "
        "count(*) FILTER (source.asn IS NULL), min(extra.sensor) FROM EVENTS",
    )[0]
    assert events == summary.events > 10_000
    assert families == 2 and feed == "takedown-simulator" and null_asn == events
    assert sensors == "test-sim"


def test_truth_matches_what_the_events_imply(written):
    home, _scenario, summary, _ = written
    truth = home.lake / "truth"
    daily = f"read_parquet('{truth}/daily.parquet')"
    got = sql(
        home,
        f"""WITH ev AS (
              SELECT day, malware.name AS family, count(*) AS events,
                     count(DISTINCT source.ip) AS ips, count(DISTINCT extra.bot_id) AS ids
              FROM EVENTS GROUP BY ALL),
            tr AS (
              SELECT strftime(day, '%Y-%m-%d') AS day, family, sum(events) AS events,
                     sum(true_unique_ips_that_day) AS ips, sum(active_machines) AS active
              FROM {daily} GROUP BY ALL)
          SELECT tr.day, tr.family, tr.events, ev.events, tr.ips, ev.ips, tr.active, ev.ids
          FROM tr JOIN ev USING (day, family) ORDER BY ALL""",
    )
    assert len(got) == 8
    for day, family, t_ev, e_ev, t_ips, e_ips, t_active, e_ids in got:
        assert t_ev == e_ev, (day, family)
        assert t_ips == e_ips, (day, family)  # prefixes are disjoint: per-prefix sums add up
        if family == "idbot":
            assert t_active == e_ids, day  # one stable id per machine
        else:
            assert e_ids == 0
    per_day_ips = sql(home, "SELECT day, count(DISTINCT source.ip) FROM EVENTS GROUP BY day")
    assert sum(n for _, n in per_day_ips) >= summary.unique_ips > 1000


def test_truth_tables_columns_and_totals(written):
    home, _scenario, summary, _ = written
    truth = home.lake / "truth"
    machines = pq.read_table(truth / "machines.parquet")
    assert machines.column_names == [
        "machine_id", "family", "asn", "as_name", "cc", "network", "dynamics", "household",
        "has_bot_id", "bot_id", "infected_at", "remediated_at",
    ]  # fmt: skip
    assert machines.num_rows == summary.machines > 1500
    rows = machines.to_pylist()
    assert {r["dynamics"] for r in rows} == {"dhcp", "cgnat", "home_nat"}
    assert all((r["household"] is not None) == (r["dynamics"] == "home_nat") for r in rows)
    assert all(r["has_bot_id"] == (r["family"] == "idbot") == (r["bot_id"] is not None)
               for r in rows)  # fmt: skip
    never = sum(r["remediated_at"] is None for r in rows)
    assert 0.15 < never / len(rows) < 0.35  # the floor
    daily = pq.read_table(truth / "daily.parquet")
    assert daily.column_names == [
        "scenario", "day", "family", "asn", "as_name", "cc", "network", "dynamics",
        "infected_machines", "online_machines", "active_machines", "events",
        "true_unique_ips_that_day",
    ]  # fmt: skip
    assert sum(daily.column("events").to_pylist()) == summary.events
    by_day: dict = {}
    for r in daily.to_pylist():
        by_day[r["day"]] = by_day.get(r["day"], 0) + r["infected_machines"]
    assert max(by_day.values()) == summary.peak_infected
    meta = json.loads((truth / "summary.json").read_text())
    assert meta["scenario"] == "mixed" and meta["events"] == summary.events
    assert "[[network]]" not in (truth / "scenario.toml").read_text()  # not read from a file


def test_events_carry_no_machine_identity(written):
    home, _, _, _ = written
    names = set(schema.flatten(lake.query_events(home, limit=5)).column_names)
    assert names == set(schema.FIELD_NAMES)
    targets = sql(home, "SELECT DISTINCT extra.http.target FROM EVENTS WHERE malware.name = "
                        "'rustock'")  # fmt: skip
    assert targets == [("/login.php",)]
    ids = sql(home, "SELECT DISTINCT extra.bot_id, extra.http.target FROM EVENTS "
                    "WHERE malware.name = 'idbot' LIMIT 50")  # fmt: skip
    assert all(target == f"/c/check.php?id={bot}" and len(bot) == 16 for bot, target in ids)


def test_same_scenario_same_lake_and_homes_refuse_mixing(tmp_path, written):
    home, scenario, _summary, _ = written
    again = Home(tmp_path / "again")
    writer.simulate_to_lake(again, scenario)
    for f in sorted(home.events.glob("*/*.parquet")):
        other = again.events / f.relative_to(home.events)
        assert pq.read_table(f).equals(pq.read_table(other))
    assert pq.read_table(home.lake / "truth" / "daily.parquet").equals(
        pq.read_table(again.lake / "truth" / "daily.parquet"))  # fmt: skip
    # A rerun rewrites, never duplicates; fewer days leave no stale day behind.
    shorter = with_overrides(scenario, days=2)
    writer.simulate_to_lake(again, shorter)
    assert len(list(again.events.glob("*/*.parquet"))) == 2
    other = parse_scenario(SCENARIO.replace('name = "mixed"', 'name = "other"'), "o.toml")
    with pytest.raises(ConfigError, match="already holds simulated scenario 'mixed'"):
        writer.simulate_to_lake(again, with_overrides(other, days=1))
    writer.simulate_to_lake(again, with_overrides(other, days=1), replace=True)
    assert [f.name for f in again.events.glob("*/*.parquet")] == ["sim-other-2011-03-14.parquet"]
    # A scenario whose name starts with another's is still another scenario.
    longer = parse_scenario(SCENARIO.replace('name = "mixed"', 'name = "other-x"'), "x.toml")
    with pytest.raises(ConfigError, match="already holds simulated scenario 'other'"):
        writer.simulate_to_lake(again, with_overrides(longer, days=1))
    (again.lake / "truth" / "summary.json").unlink()  # as after a run killed half-way
    with pytest.raises(ConfigError, match="already holds simulated scenario 'other'"):
        writer.simulate_to_lake(again, with_overrides(longer, days=1))


def test_fill_source_takes_network_fields_from_the_scenario(tmp_path):
    text = SCENARIO.replace('name = "test-sim"', 'name = "test-sim"\nfill_source = true')
    home = Home(tmp_path)
    writer.simulate_to_lake(home, with_overrides(parse_scenario(text, "m.toml"), days=1))
    rows = sql(home, "SELECT source.ip, source.asn, source.network, source.geolocation.cc "
                     "FROM EVENTS USING SAMPLE 300 ROWS")  # fmt: skip
    assert rows
    for ip, asn, network, cc in rows:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(network)
        assert (asn, cc) in {(3320, "DE"), (7552, "VN"), (7922, "US")}


def test_ipv4_strings_match_the_standard_library():
    addr = np.random.default_rng(3).integers(0, 1 << 32, size=5000, dtype=np.uint64)
    addr = np.concatenate([addr, [0, 255, 1 << 24, (1 << 32) - 1]]).astype(np.uint32)
    assert writer.ipv4_strings(addr).to_pylist() == [
        str(ipaddress.IPv4Address(int(a))) for a in addr
    ]


def test_rustock_small_end_to_end(tmp_path):
    summary = writer.simulate_to_lake(Home(tmp_path), load_scenario("rustock-small"))
    assert summary.days == 31
    assert 19_000 < summary.peak_infected < 21_000
    assert 0.8e6 < summary.events < 1.4e6
    assert summary.unique_ips > summary.peak_infected  # DHCP churn outweighs NAT here
    assert summary.last_day_infected < 0.92 * summary.peak_infected  # the remediation curve
