"""The seizure list from a real lake and lists: registered domains, registries, networks."""

import datetime as dt

import pytest
from test_legal_support import T0, event, write_lake

from takedown.case.legal.lists import parse_domain_list, parse_ip_list
from takedown.case.legal.registries import DomainClassifier
from takedown.case.legal.seizure import build_seizure, scan_lake
from takedown.home import Home


class FakeLookup:
    """A stand-in enricher with known answers (the real one is used in test_legal_cli)."""

    def lookup(self, ips):
        table = {
            "192.0.2.10": {"asn": 64500, "as_name": "EXAMPLE-HOSTING", "network": "192.0.2.0/24"},
            "8.8.8.8": {"asn": None, "as_name": "GOOGLE", "network": "8.8.8.0/24", "cc": "US"},
        }
        return [{"ip": ip, **table.get(ip, {})} for ip in ips]


@pytest.fixture
def home(tmp_path):
    home = Home(tmp_path / "home")
    names = [
        "cc.onlinescannow.example",
        "update.onlinescannow.example",
        "bad host!",
        "203.0.113.9",
        "c2.пример.рф",
        None,
        "evil.blogspot.com",
        "co.uk",
    ]
    dsts = ["127.0.0.1", "8.8.8.8", None, "10.1.2.3"]
    write_lake(home, [event(i, names[i % len(names)], dsts[i % len(dsts)]) for i in range(80)])
    write_lake(
        home,
        [event(i + 1440, "other.example", "8.8.8.8", "zeus") for i in range(5)],
        day="2011-03-17",
    )
    return home


def test_scan_lake_counts_and_filters_hostile_values(home):
    scan = scan_lake(home, family="rustock")
    names = {o.value: o.events for o in scan.names}
    assert names == {
        "cc.onlinescannow.example": 10,
        "update.onlinescannow.example": 10,
        "c2.xn--e1afmkfd.xn--p1ai": 10,
        "evil.blogspot.com": 10,
        "co.uk": 10,
    }
    # 8.8.8.8 as a destination (20 events); 203.0.113.9 (a Host header) is not public.
    assert [(o.value, o.events) for o in scan.ips] == [("8.8.8.8", 20)]
    assert scan.skipped["host names that are not domain names"] == 10
    assert scan.skipped["events to non-public destination 127.0.0.1"] == 20
    assert scan.skipped["events to non-public destination 10.1.2.3"] == 20
    assert scan.skipped["events to non-public destination 203.0.113.9"] == 10
    first = next(o for o in scan.names if o.value == "cc.onlinescannow.example")
    assert first.first_seen == T0 and first.last_seen == T0 + dt.timedelta(minutes=72)
    assert len(scan_lake(home).names) == 6  # the zeus day too
    assert scan_lake(home, ips="none").ips == []
    assert {o.value for o in scan_lake(home, ips="all", family="rustock").ips} == {
        "127.0.0.1",
        "8.8.8.8",
        "10.1.2.3",
        "203.0.113.9",
    }
    assert len(scan_lake(home, since=dt.datetime(2011, 3, 17, tzinfo=dt.UTC)).names) == 1
    assert scan_lake(home, min_events=11, family="rustock").names == []


def test_build_merges_lake_and_lists_numbered_by_registry_then_network(home):
    domains = parse_domain_list(
        "onlinescannow.example # complaint\nfallback.example.com\nco.uk\n", "d.txt"
    )
    ips = parse_ip_list("192.0.2.10\n198.51.100.0/28\n8.8.8.8\n", "i.txt")
    seizure = build_seizure(
        domain_lists=[domains],
        ip_lists=[ips],
        scan=scan_lake(home),
        classifier=DomainClassifier(),
        enricher=FakeLookup(),
    )
    assert seizure.problems == [
        "d.txt:3: 'co.uk' is a public suffix (co.uk), not a registrable domain"
    ]
    rows = {r["target"]: r for r in seizure.rows()}
    assert [r["no"] for r in seizure.rows()] == list(range(1, len(rows) + 1))
    c2 = rows["onlinescannow.example"]
    assert c2["hostnames"] == (
        "cc.onlinescannow.example; onlinescannow.example; update.onlinescannow.example"
    )
    assert c2["events"] == 20 and c2["sources"] == "sinkhole; d.txt:1" and c2["note"] == "complaint"
    assert c2["registry"].startswith("special-use")
    assert rows["xn--e1afmkfd.xn--p1ai"]["target_unicode"] == "пример.рф"
    assert rows["xn--e1afmkfd.xn--p1ai"]["registry"] == "Coordination Center for TLD RU"
    assert rows["evil.blogspot.com"]["platform"] == "blogspot.com"
    assert "hosting service" in rows["evil.blogspot.com"]["note"]
    assert rows["example.com"]["events"] is None and rows["example.com"]["sources"] == "d.txt:2"
    assert rows["8.8.8.8"]["sources"] == "sinkhole; i.txt:3" and rows["8.8.8.8"]["events"] == 25
    assert rows["192.0.2.10"]["asn"] == 64500 and rows["198.51.100.0/28"]["kind"] == "network"
    assert rows["198.51.100.0/28"]["as_name"] == ""
    registries = [name for name, _ in seizure.by_registry()]
    assert registries == sorted(registries, key=str.casefold)
    networks = [name for name, _ in seizure.by_network()]
    assert networks == ["AS64500 EXAMPLE-HOSTING", "GOOGLE", "unknown network"]
    kinds = [t.kind for t in seizure.targets]
    assert kinds == sorted(kinds, key=lambda k: k != "domain")  # domains first


def test_source_lines_fold_into_ranges():
    text = "".join(f"c{i}.example.com\n" for i in range(40)) + "\nc99.example.com\n"
    parsed = parse_domain_list(text, "many.txt")
    seizure = build_seizure(domain_lists=[parsed], classifier=DomainClassifier(), enricher=None)
    (row,) = seizure.rows()
    assert row["sources"] == "many.txt:1-40,42" and len(row["hostnames"].split("; ")) == 41


def test_empty_home(tmp_path):
    scan = scan_lake(Home(tmp_path))
    assert scan.names == [] and scan.ips == []
    assert build_seizure(scan=scan, classifier=DomainClassifier(), enricher=None).targets == []
