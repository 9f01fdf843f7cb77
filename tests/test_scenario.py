import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from takedown.errors import ConfigError
from takedown.simulate import scenario as sc

DOCS = Path(__file__).parent.parent / "docs" / "simulate.md"

MINIMAL = """
[scenario]
name = "tiny"
start = 2011-03-01
days = 2

[population]
machines = 10

[[family]]
name = "rustock"

[[network]]
asn = 3320
as_name = "DTAG"
country = "DE"
prefixes = ["79.192.0.0/10"]
"""


def parse(text: str = MINIMAL, source: str = "tiny.toml") -> sc.Scenario:
    return sc.parse_scenario(text, source)


def test_shipped_scenarios_load_and_are_documented():
    names = sc.list_scenarios()
    for required in ("rustock", "rustock-small", "dhcp-churn", "cgnat-heavy", "bot-ids"):
        assert required in names
    for name in names:
        s = sc.load_scenario(name)
        assert s.name == name
        assert s.source.endswith(f"{name}.toml")
        text = Path(s.source).read_text()
        assert "real allocations" in text  # says what the prefixes are and are not
    rustock = sc.load_scenario("rustock")
    assert rustock.takedown.at == dt.datetime(2011, 3, 16, 15, tzinfo=dt.UTC)
    assert 1_500_000 < rustock.infection.machines < 1_700_000
    assert {n.dynamics for n in rustock.networks} == set(sc.DYNAMICS)


def test_defaults_fill_in():
    s = parse()
    assert s.seed == 1 and s.sampling == 1.0 and s.takedown.at is None
    assert len(s.diurnal.online_by_hour) == 24
    fam = s.families[0]
    assert fam.rule == "sim.rustock" and fam.hosts == ("c2.example",)
    net = s.networks[0]
    assert net.dynamics == "static" and net.half_life_days is None
    assert s.start_dt == dt.datetime(2011, 3, 1, tzinfo=dt.UTC)
    assert s.end_dt - s.start_dt == dt.timedelta(days=2)


def test_docs_hold_the_generated_key_tables():
    text = DOCS.read_text()
    assert sc.doc_tables() in text, "docs/simulate.md is out of step: paste sc.doc_tables()"
    for section, keys in sc.KEYS.items():
        for key in keys:
            assert f"| `{key.name}` |" in text, f"{section}.{key.name} undocumented"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("[population]", "[population]\nmachnes = 3"), "[population] unknown key 'machnes'"),
        (("days = 2", 'days = "two"'), "[scenario] key 'days': expected an integer"),
        (("days = 2", "days = 0"), "[scenario] key 'days': 0 is out of range >= 1"),
        (("days = 2", "days = 2\nsampling = 0"), "key 'sampling': 0.0 is out of range > 0"),
        (("days = 2", "days = 2\nsampling = true"), "key 'sampling': expected a number"),
        (("start = 2011-03-01", "start = 2011-03-01T00:00:00Z"), "key 'start': expected a date"),
        (("machines = 10", ""), "[population] key 'machines' is required"),
        (("[scenario]", "[scenaro]\n[scenario]"), "unknown section [scenaro]"),
        (('name = "tiny"', 'name = "Tiny Botnet"'), "key 'name': 'Tiny Botnet' must match"),
        (('country = "DE"', 'country = "Germany"'), "key 'country': 'Germany' is not an ISO"),
        (('"79.192.0.0/10"', '"79.192.0.1/10"'), "key 'prefixes': '79.192.0.1/10' is not"),
        (('"79.192.0.0/10"', '"10.0.0.0/8"'), "must be a global unicast prefix"),
        (('"79.192.0.0/10"', '"79.192.0.0/10", "79.200.0.0/16"'), "prefixes overlap"),
        (('country = "DE"', 'country = "DE"\nlease_hours = 3'), "applies only to dynamics"),
        (('country = "DE"', 'country = "DE"\ndynamics = "nat"'), "expected one of 'static'"),
        (('name = "rustock"', 'name = "rustock"\nmethod = "GET"\nbody_size = 9'), "has no body"),
        (('name = "rustock"', 'name = "rustock"\nhosts = []'), "a non-empty list of strings"),
        (("[population]", '[takedown]\nat = "soon"\n[population]'), "expected a date-time"),
        (("[population]", "[diurnal]\nonline_by_hour = [0.5]\n[population]"), "24 probabil"),
    ],
)
def test_validation_errors_are_one_line_naming_file_and_key(change, message):
    old, new = change
    assert old in MINIMAL
    with pytest.raises(ConfigError) as info:
        parse(MINIMAL.replace(old, new, 1))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("tiny.toml: ")
    assert message in text


def test_array_and_toml_errors():
    with pytest.raises(ConfigError, match="at least one \\[\\[network\\]\\]"):
        parse(MINIMAL.split("[[network]]", maxsplit=1)[0])
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse("[scenario\n")
    dup = MINIMAL.replace("[[network]]", '[[family]]\nname = "rustock"\n\n[[network]]')
    with pytest.raises(ConfigError, match="name 'rustock' used twice"):
        parse(dup)
    second = MINIMAL + '\n[[network]]\nasn = 1\nas_name = "x"\ncountry = "US"\n'
    with pytest.raises(ConfigError, match=r"\[\[network\]\] #2 \(1\) key 'prefixes' is required"):
        parse(second)


def test_takedown_times_and_files(tmp_path):
    s = parse(MINIMAL + "\n[takedown]\nat = 2011-03-16T10:00:00-05:00\n")
    assert s.takedown.at == dt.datetime(2011, 3, 16, 15, tzinfo=dt.UTC)
    s = parse(MINIMAL + "\n[takedown]\nat = 2011-03-16\n")
    assert s.takedown.at == dt.datetime(2011, 3, 16, tzinfo=dt.UTC)
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL)
    assert sc.load_scenario(path).source == str(path)
    assert sc.load_scenario(str(path)).name == "tiny"
    with pytest.raises(ConfigError, match="no such scenario"):
        sc.load_scenario("no-such-scenario")
    with pytest.raises(ConfigError, match="cannot read"):
        sc.load_scenario(tmp_path / "missing.toml")


def test_overrides_are_validated():
    s = parse()
    t = sc.with_overrides(s, seed=9, days=5, sampling=0.5, machines=99)
    assert (t.seed, t.days, t.sampling, t.infection.machines) == (9, 5, 0.5, 99)
    assert dataclasses.replace(t, seed=1, days=2, sampling=1.0, infection=s.infection) == s
    with pytest.raises(ConfigError, match=r"--sampling: 2\.0 is out of range"):
        sc.with_overrides(s, sampling=2.0)
    with pytest.raises(ConfigError, match="--days"):
        sc.with_overrides(s, days=0)
