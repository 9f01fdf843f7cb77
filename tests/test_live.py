import duckdb
import pyarrow.parquet as pq
import pytest

from takedown import lake
from takedown.demo import start_sinkhole, stop_sinkhole
from takedown.errors import ConfigError
from takedown.home import Home
from takedown.simulate import live
from takedown.simulate.loadgen import NotLoopbackError
from takedown.simulate.scenario import load_scenario, parse_scenario
from takedown.sinkhole.rules import HttpFacts, parse_rules

TINY = """
[scenario]
name = "live-tiny"
seed = 3
start = 2011-03-16
days = 2
sampling = 0.04

[population]
machines = 120

[[family]]
name = "rustock"
method = "POST"
path = "/login.php"
body_size = 96
rule = "rustock.c2-login"
hosts = ["onlinescannow.example"]

[[family]]
name = "idbot"
checkin_interval_minutes = 30
method = "GET"
path = "/c/check.php"
hosts = ["update-check.example"]
bot_id_fraction = 1.0

[[network]]
asn = 3320
as_name = "DTAG"
country = "DE"
prefixes = ["79.192.0.0/10"]
dynamics = "dhcp"
lease_hours = 8

[[network]]
asn = 7552
as_name = "Viettel"
country = "VN"
prefixes = ["171.224.0.0/11"]
dynamics = "cgnat"
machines_per_address = 6
"""


def test_refuses_non_loopback_targets_and_big_scenarios():
    tiny = parse_scenario(TINY, "tiny.toml")
    for host in ("192.0.2.1", "10.0.0.1", "8.8.8.8"):
        with pytest.raises(NotLoopbackError):
            live.simulate_live(tiny, host, 80)
    with pytest.raises(ConfigError, match="would send about"):
        live.simulate_live(load_scenario("rustock"), "127.0.0.1", 9)
    with pytest.raises(ConfigError, match="sends more than 100 check-ins live"):
        live.simulate_live(tiny, "127.0.0.1", 9, max_events=100)


def test_family_rules_name_the_simulated_families():
    tiny = parse_scenario(TINY, "tiny.toml")
    rules = parse_rules(live.family_rules_toml(tiny), "sim.toml")
    assert [r.id for r in rules] == ["sim.idbot"]  # rustock has a built-in rule
    facts = HttpFacts("GET", "/c/check.php", "id=00000000000000ff", "update-check.example",
                      "ua", {}, 0, b"")  # fmt: skip
    match = rules[0].match_http(facts)
    assert match is not None and match.malware == "idbot" and match.bot_id == "00000000000000ff"


def test_live_check_ins_reach_a_real_sinkhole_and_match_the_truth(tmp_path):
    home = Home(tmp_path)
    tiny = parse_scenario(TINY, "tiny.toml")
    live.install_rules(home, tiny)
    proc, info = start_sinkhole(home)
    try:
        summary = live.simulate_live(tiny, "127.0.0.1", info["http"][1], home=home,
                                     connections=8, duration=60)  # fmt: skip
    finally:
        stop_sinkhole(proc)
    assert summary.errors == 0 and summary.refused == 0
    assert summary.answered == summary.sent > 100
    lake.ingest(home)
    requests = pq.read_table(home.lake / "truth" / "live" / "requests.parquet").to_pylist()
    assert len(requests) == summary.sent and all(r["status"] == 200 for r in requests)
    sim_ips = {r["sim_ip"] for r in requests}
    loop_ips = {r["loopback_ip"] for r in requests}
    assert len(sim_ips) == len(loop_ips) == summary.addresses
    assert all(ip.startswith("127.") for ip in loop_ips)
    con = duckdb.connect()
    got = dict(
        ((family, "events"), n) for family, n in con.execute(
            f"SELECT malware.name, count(*) FROM {lake.events_sql(home)} GROUP BY ALL"
        ).fetchall()
    )  # fmt: skip
    ips = con.execute(f"SELECT count(DISTINCT source.ip) FROM {lake.events_sql(home)}").fetchone()
    ids = con.execute(f"SELECT count(DISTINCT extra.bot_id) FROM {lake.events_sql(home)} "
                      "WHERE malware.name = 'idbot'").fetchone()  # fmt: skip
    con.close()
    want = {}
    for r in requests:
        want[(r["family"], "events")] = want.get((r["family"], "events"), 0) + 1
    assert got == want
    assert ips is not None and ips[0] == len(loop_ips)
    sent_ids = {r["bot_id"] for r in requests if r["family"] == "idbot"}
    assert ids is not None and ids[0] == len(sent_ids) > 10
    daily = pq.read_table(home.lake / "truth" / "live" / "daily.parquet")
    assert sum(daily.column("events").to_pylist()) == summary.sent
