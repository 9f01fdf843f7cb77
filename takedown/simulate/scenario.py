"""Simulation scenarios: TOML files whose every key is declared once, here, as data.

``KEYS`` declares each section's keys (type, default, range, meaning). Loading, validation and
the key tables of docs/simulate.md are all generated from it, and a test keeps the docs in step.
A wrong key or value is one line naming the file and the key (:class:`ConfigError`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import itertools
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from takedown.errors import ConfigError

__all__ = [
    "KEYS",
    "SCENARIOS",
    "Diurnal",
    "Family",
    "Infection",
    "Key",
    "Network",
    "Scenario",
    "Sensor",
    "Takedown",
    "doc_tables",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "scenario_path",
    "with_overrides",
]

SCENARIOS = Path(__file__).parent / "scenarios"
REQUIRED: Any = object()
DYNAMICS = ("static", "dhcp", "cgnat", "home_nat")

# A residential PC: off overnight, on in the evening (local hour 0..23).
DEFAULT_PROFILE = (
    0.30, 0.25, 0.22, 0.20, 0.20, 0.22, 0.28, 0.38, 0.48, 0.55, 0.58, 0.60,
    0.60, 0.60, 0.60, 0.62, 0.65, 0.70, 0.76, 0.80, 0.80, 0.74, 0.58, 0.42,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Key:
    """One scenario key: its type, default, allowed range and meaning."""

    name: str
    kind: str  # str, int, float, bool, date, datetime, choice, list[str], list[float]
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself not allowed
    choices: tuple[str, ...] = ()
    applies: tuple[str, ...] = ()  # network keys: the dynamics they apply to


# fmt: off
KEYS: dict[str, tuple[Key, ...]] = {
    "scenario": (
        Key("name", "str", REQUIRED, "Short name (a-z, 0-9, `-`, `_`); names the lake files "
            "`sim-<name>-<day>.parquet`."),
        Key("description", "str", "", "One or two sentences: what the scenario is for."),
        Key("seed", "int", 1, "Seed of every random draw: the same seed gives the same "
            "population, events and truth, byte for byte.", lo=0),
        Key("start", "date", REQUIRED, "First simulated day (00:00 UTC)."),
        Key("days", "int", REQUIRED, "Number of simulated days.", lo=1, hi=3660),
        Key("sampling", "float", 1.0, "Fraction of check-ins written as events (Poisson "
            "thinning). 1 writes every check-in; lower it to keep huge populations "
            "affordable (see *Sampling*).", lo=0, hi=1, lo_open=True),
    ),
    "population": (
        Key("machines", "int", REQUIRED, "Infected machines at `start`.", lo=1, hi=50_000_000),
        Key("new_infections_per_day", "float", 0.0, "New infections per day before the "
            "takedown, as a fraction of `machines`.", lo=0, hi=10),
        Key("background_half_life_days", "float", 0.0, "Half-life of infections cleaned up "
            "before (and regardless of) the takedown, from `start` or infection; 0 = none.",
            lo=0),
        Key("infected_since_days", "float", 180.0, "The machines infected at `start` were "
            "infected uniformly over this many days before it (`infected_at` in the truth).",
            lo=0),
    ),
    "diurnal": (
        Key("online_by_hour", "list[float]", DEFAULT_PROFILE, "24 probabilities: the chance a "
            "machine is online in each local hour 0..23 (networks shift it by `utc_offset`)."),
        Key("persistence", "float", 0.85, "How strongly a machine stays in its state from one "
            "hour to the next (0 = independent hours, near 1 = long sessions). The hourly "
            "probabilities are kept exactly.", lo=0, hi=1),
    ),
    "takedown": (
        Key("at", "datetime", None, "The takedown moment (UTC if no offset). Absent: no "
            "takedown, no remediation curve."),
        Key("half_life_days", "float", 78.0, "Remediation after the takedown: each infected "
            "machine is cleaned after an exponential time with this half-life (networks may "
            "override).", lo=0, lo_open=True),
        Key("floor", "float", 0.0, "Fraction of machines that are never cleaned (networks may "
            "override).", lo=0, hi=1),
        Key("delay_days", "float", 0.0, "Days between the takedown and the start of "
            "remediation (notifications, cleanup tools shipping).", lo=0),
        Key("infections_after", "float", 0.0, "New-infection rate after the takedown, as a "
            "multiple of the rate before it (0 = the takedown stops the spread).", lo=0),
    ),
    "sensor": (
        Key("name", "str", "sim-sensor", "`extra.sensor` of every event."),
        Key("provider", "str", "takedown-simulator", "`feed.provider` of every event."),
        Key("ip", "str", "192.0.2.1", "`destination.ip`: the sinkhole's address (lake mode)."),
        Key("port", "int", 80, "`destination.port` (lake mode).", lo=1, hi=65535),
        Key("fill_source", "bool", False, "Fill `source.asn`, `source.as_name`, "
            "`source.network` and `source.geolocation.cc` from the scenario. Off by default: "
            "the pipeline's enrichment fills them, as for real events."),
    ),
    "family": (
        Key("name", "str", REQUIRED, "Family name, lower case: `malware.name` of its events."),
        Key("weight", "float", 1.0, "Share of the machines in this family (weights are "
            "normalised).", lo=0, lo_open=True),
        Key("checkin_interval_minutes", "float", 20.0, "Mean time between check-ins of an "
            "online bot (a Poisson process).", lo=0, lo_open=True),
        Key("method", "choice", "POST", "HTTP method of the check-in.",
            choices=("GET", "POST")),
        Key("path", "str", "/", "HTTP path of the check-in (`extra.http.target` without "
            "query)."),
        Key("user_agent", "str", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
            "User-Agent header."),
        Key("body_size", "int", 0, "Request body size in bytes (`extra.body.size`); 0 for "
            "GET.", lo=0, hi=1 << 20),
        Key("hosts", "list[str]", ("c2.example",), "C2 host names the bots ask for, picked "
            "at random per check-in (`destination.fqdn`)."),
        Key("rule", "str", "", "`extra.rule` of its events; empty: `sim.<name>`. Set it to a "
            "built-in rule id (e.g. `rustock.c2-login`) when the shape matches that rule."),
        Key("bot_id_fraction", "float", 0.0, "Fraction of its machines that send a stable "
            "bot identifier (`extra.bot_id`, and `?<bot_id_param>=<id>` in the target).",
            lo=0, hi=1),
        Key("bot_id_param", "str", "id", "Query parameter that carries the bot id."),
    ),
    "network": (
        Key("asn", "int", REQUIRED, "Autonomous system number (real).", lo=1, hi=4294967295),
        Key("as_name", "str", REQUIRED, "Name of the AS."),
        Key("country", "str", REQUIRED, "ISO 3166-1 alpha-2 country code."),
        Key("prefixes", "list[str]", REQUIRED, "IPv4 prefixes (CIDR) of the network; each "
            "machine is placed in one, weighted by size, and keeps to it."),
        Key("weight", "float", 1.0, "Share of the machines in this network (weights are "
            "normalised).", lo=0, lo_open=True),
        Key("utc_offset", "float", 0.0, "Local time minus UTC, hours (no daylight saving).",
            lo=-12, hi=14),
        Key("dynamics", "choice", "static", "How machines get public addresses: `static`, "
            "`dhcp`, `cgnat` or `home_nat`.", choices=DYNAMICS),
        Key("lease_hours", "float", 24.0, "Median time an address is held before the next "
            "one (lognormal): dhcp, and home_nat with `household_dynamics = \"dhcp\"`.",
            lo=0, lo_open=True, applies=("dhcp", "home_nat")),
        Key("lease_sigma", "float", 0.5, "Spread (sigma of the log) of the holding times.",
            lo=0, hi=5, applies=("dhcp", "home_nat", "cgnat")),
        Key("machines_per_address", "float", 16.0, "Infected machines per public address "
            "(sets the pool size).", lo=1, applies=("cgnat",)),
        Key("remap_hours", "float", 0.0, "Median time before a machine is mapped to another "
            "public address of the pool; 0 = sticky.", lo=0, applies=("cgnat",)),
        Key("machines_per_household", "float", 1.5, "Mean infected machines behind one "
            "household address (1 + Poisson).", lo=1, hi=64, applies=("home_nat",)),
        Key("household_dynamics", "choice", "dhcp", "The household address is `static` or "
            "`dhcp` (using `lease_hours`).", choices=("static", "dhcp"),
            applies=("home_nat",)),
        Key("half_life_days", "float", None, "Overrides `takedown.half_life_days` here.",
            lo=0, lo_open=True),
        Key("floor", "float", None, "Overrides `takedown.floor` here.", lo=0, hi=1),
        Key("online_by_hour", "list[float]", None, "Overrides `diurnal.online_by_hour` here."),
    ),
}
# fmt: on
_ARRAYS = ("family", "network")


@dataclass(frozen=True, slots=True)
class Infection:
    machines: int
    new_infections_per_day: float
    background_half_life_days: float
    infected_since_days: float


@dataclass(frozen=True, slots=True)
class Diurnal:
    online_by_hour: tuple[float, ...]
    persistence: float


@dataclass(frozen=True, slots=True)
class Takedown:
    at: dt.datetime | None
    half_life_days: float
    floor: float
    delay_days: float
    infections_after: float


@dataclass(frozen=True, slots=True)
class Sensor:
    name: str
    provider: str
    ip: str
    port: int
    fill_source: bool


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    weight: float
    checkin_interval_minutes: float
    method: str
    path: str
    user_agent: str
    body_size: int
    hosts: tuple[str, ...]
    rule: str
    bot_id_fraction: float
    bot_id_param: str


@dataclass(frozen=True, slots=True)
class Network:
    asn: int
    as_name: str
    country: str
    prefixes: tuple[str, ...]
    weight: float
    utc_offset: float
    dynamics: str
    lease_hours: float
    lease_sigma: float
    machines_per_address: float
    remap_hours: float
    machines_per_household: float
    household_dynamics: str
    half_life_days: float | None
    floor: float | None
    online_by_hour: tuple[float, ...] | None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. ``source`` is the file it came from (for messages)."""

    name: str
    description: str
    seed: int
    start: dt.date
    days: int
    sampling: float
    infection: Infection
    diurnal: Diurnal
    takedown: Takedown
    sensor: Sensor
    families: tuple[Family, ...]
    networks: tuple[Network, ...]
    source: str = "<scenario>"

    @property
    def start_dt(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

    @property
    def end_dt(self) -> dt.datetime:
        return self.start_dt + dt.timedelta(days=self.days)


# -- loading ---------------------------------------------------------------------------------
def scenario_path(name_or_path: str | Path) -> Path:
    """A scenario file: a path, or the name of a shipped scenario (``rustock-small``)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    shipped = SCENARIOS / f"{name_or_path}.toml"
    if shipped.exists():
        return shipped
    names = ", ".join(list_scenarios())
    raise ConfigError(f"{name_or_path}: no such scenario file or shipped scenario ({names})")


def list_scenarios() -> list[str]:
    """Names of the scenarios shipped with takedown."""
    return sorted(p.stem for p in SCENARIOS.glob("*.toml"))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (or a shipped scenario, by name)."""
    file = scenario_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the scenario: {exc.strerror}") from None
    return parse_scenario(text, str(file))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario TOML text; ``source`` names it in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(raw) - set(KEYS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"{source}: unknown section [{key}] (known: {', '.join(KEYS)})")
    tables: dict[str, dict[str, Any]] = {}
    for section, keys in KEYS.items():
        if section in _ARRAYS:
            continue
        value = raw.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        tables[section] = _section(source, f"[{section}]", keys, value)
    families = [
        _section(source, where, KEYS["family"], t) for where, t in _array(source, raw, "family")
    ]
    networks = [_network(source, where, t) for where, t in _array(source, raw, "network")]
    s, p, d, t, se = (
        tables[k] for k in ("scenario", "population", "diurnal", "takedown", "sensor")
    )
    _check_name(source, "[scenario] key 'name'", s["name"], r"[a-z0-9][a-z0-9_-]{0,63}")
    _check_profile(source, "[diurnal] key 'online_by_hour'", d["online_by_hour"])
    fams = tuple(_family(source, i, f) for i, f in enumerate(families, 1))
    seen: set[str] = set()
    for i, fam in enumerate(fams, 1):
        if fam.name in seen:
            raise ConfigError(f"{source}: [[family]] #{i}: name {fam.name!r} used twice")
        seen.add(fam.name)
    nets = tuple(networks)
    _check_overlaps(source, nets)
    return Scenario(
        name=s["name"],
        description=s["description"],
        seed=s["seed"],
        start=s["start"],
        days=s["days"],
        sampling=s["sampling"],
        infection=Infection(
            p["machines"],
            p["new_infections_per_day"],
            p["background_half_life_days"],
            p["infected_since_days"],
        ),
        diurnal=Diurnal(tuple(d["online_by_hour"]), d["persistence"]),
        takedown=Takedown(
            t["at"], t["half_life_days"], t["floor"], t["delay_days"], t["infections_after"]
        ),
        sensor=Sensor(se["name"], se["provider"], se["ip"], se["port"], se["fill_source"]),
        families=fams,
        networks=nets,
        source=source,
    )


def _array(source: str, raw: Mapping[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    items = raw.get(name)
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{source}: at least one [[{name}]] table is required")
    out = []
    for i, item in enumerate(items, 1):
        label = f"[[{name}]] #{i}"
        if not isinstance(item, dict):
            raise ConfigError(f"{source}: {label} must be a table")
        tag = item.get("name", item.get("asn"))
        out.append((f"{label} ({tag})" if tag is not None else label, item))
    return out


def _section(
    source: str, where: str, keys: Sequence[Key], table: Mapping[str, Any]
) -> dict[str, Any]:
    known = {k.name: k for k in keys}
    for name in table:
        if name not in known:
            raise ConfigError(f"{source}: {where} unknown key {name!r} (known: {', '.join(known)})")
    out: dict[str, Any] = {}
    for key in keys:
        if key.name in table:
            out[key.name] = _value(source, f"{where} key {key.name!r}", key, table[key.name])
        elif key.default is REQUIRED:
            raise ConfigError(f"{source}: {where} key {key.name!r} is required")
        else:
            out[key.name] = key.default
    return out


def _value(source: str, where: str, key: Key, value: Any) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: expected {expected}, got {value!r}")

    kind = key.kind
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "choice":
        if value not in key.choices:
            raise bad("one of " + ", ".join(repr(c) for c in key.choices))
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "date":
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise bad("a date (YYYY-MM-DD)")
        return value
    if kind == "datetime":
        if isinstance(value, dt.datetime):
            return (
                value.replace(tzinfo=dt.UTC) if value.tzinfo is None else (value.astimezone(dt.UTC))
            )
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
        raise bad("a date-time (YYYY-MM-DDTHH:MM:SSZ)")
    if kind == "list[str]":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise bad("a non-empty list of strings")
        return tuple(value)
    if kind == "list[float]":
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise bad("a list of numbers")
        return tuple(float(v) for v in value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif kind == "float":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise bad("a number")
        value = float(value)
    _check_range(source, where, key, value)
    return value


def _check_range(source: str, where: str, key: Key, value: float) -> None:
    lo_bad = key.lo is not None and (value < key.lo or (key.lo_open and value == key.lo))
    hi_bad = key.hi is not None and value > key.hi
    if lo_bad or hi_bad:
        raise ConfigError(f"{source}: {where}: {value!r} is out of range {_range(key)}")


def _range(key: Key) -> str:
    lo = "" if key.lo is None else f"{'>' if key.lo_open else '>='} {_num(key.lo)}"
    hi = "" if key.hi is None else f"<= {_num(key.hi)}"
    return " and ".join(p for p in (lo, hi) if p)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_name(source: str, where: str, value: str, pattern: str) -> None:
    if not re.fullmatch(pattern, value):
        raise ConfigError(f"{source}: {where}: {value!r} must match {pattern}")


def _check_profile(source: str, where: str, profile: Sequence[float]) -> None:
    if len(profile) != 24 or not all(0.0 <= p <= 1.0 for p in profile):
        raise ConfigError(
            f"{source}: {where}: expected 24 probabilities in [0, 1], got {len(profile)} values"
        )


def _family(source: str, index: int, f: dict[str, Any]) -> Family:
    where = f"[[family]] #{index}"
    _check_name(source, f"{where} key 'name'", f["name"], r"[a-z0-9][a-z0-9._-]{0,63}")
    if not f["path"].startswith("/") or any(c in f["path"] for c in "?# \r\n"):
        raise ConfigError(
            f"{source}: {where} key 'path': {f['path']!r} must start with / and "
            "hold no query, space or fragment"
        )
    for host in f["hosts"]:
        _check_name(source, f"{where} key 'hosts'", host, r"[A-Za-z0-9.-]{1,253}")
    _check_name(source, f"{where} key 'bot_id_param'", f["bot_id_param"], r"[A-Za-z0-9_]{1,32}")
    if any(ord(c) < 32 for c in f["user_agent"]):
        raise ConfigError(f"{source}: {where} key 'user_agent': control characters")
    if f["method"] == "GET" and f["body_size"]:
        raise ConfigError(f"{source}: {where} key 'body_size': a GET check-in has no body")
    return Family(
        name=f["name"],
        weight=f["weight"],
        checkin_interval_minutes=f["checkin_interval_minutes"],
        method=f["method"],
        path=f["path"],
        user_agent=f["user_agent"],
        body_size=f["body_size"],
        hosts=tuple(h.lower() for h in f["hosts"]),
        rule=f["rule"] or f"sim.{f['name']}",
        bot_id_fraction=f["bot_id_fraction"],
        bot_id_param=f["bot_id_param"],
    )


def _network(source: str, where: str, table: dict[str, Any]) -> Network:
    n = _section(source, where, KEYS["network"], table)
    for key in KEYS["network"]:
        if key.applies and key.name in table and n["dynamics"] not in key.applies:
            raise ConfigError(
                f"{source}: {where} key {key.name!r} applies only to dynamics "
                f"{' or '.join(key.applies)}, not {n['dynamics']!r}"
            )
    if not re.fullmatch(r"[A-Z]{2}", n["country"]):
        raise ConfigError(
            f"{source}: {where} key 'country': {n['country']!r} is not an ISO "
            "3166-1 alpha-2 code (two capital letters)"
        )
    for prefix in n["prefixes"]:
        try:
            net = ipaddress.IPv4Network(prefix)
        except ValueError:
            raise ConfigError(
                f"{source}: {where} key 'prefixes': {prefix!r} is not an IPv4 "
                "prefix with its host bits zero (e.g. 84.128.0.0/10)"
            ) from None
        if net.prefixlen < 8 or not net.is_global:
            raise ConfigError(
                f"{source}: {where} key 'prefixes': {prefix!r} must be a global "
                "unicast prefix of /8 or longer"
            )
    if n["online_by_hour"] is not None:
        _check_profile(source, f"{where} key 'online_by_hour'", n["online_by_hour"])
    return Network(
        asn=n["asn"],
        as_name=n["as_name"],
        country=n["country"],
        prefixes=tuple(str(ipaddress.IPv4Network(p)) for p in n["prefixes"]),
        weight=n["weight"],
        utc_offset=n["utc_offset"],
        dynamics=n["dynamics"],
        lease_hours=n["lease_hours"],
        lease_sigma=n["lease_sigma"],
        machines_per_address=n["machines_per_address"],
        remap_hours=n["remap_hours"],
        machines_per_household=n["machines_per_household"],
        household_dynamics=n["household_dynamics"],
        half_life_days=n["half_life_days"],
        floor=n["floor"],
        online_by_hour=None if n["online_by_hour"] is None else tuple(n["online_by_hour"]),
    )


def _check_overlaps(source: str, networks: Sequence[Network]) -> None:
    spans = sorted(
        (int(net.network_address), int(net.broadcast_address), str(net), n.asn)
        for n in networks
        for net in map(ipaddress.IPv4Network, n.prefixes)
    )
    for (_, hi1, p1, a1), (lo2, _, p2, a2) in itertools.pairwise(spans):
        if lo2 <= hi1:
            raise ConfigError(
                f"{source}: [[network]] prefixes overlap: {p1} (AS{a1}) and "
                f"{p2} (AS{a2}); the truth is counted per prefix"
            )


# -- changing and describing -----------------------------------------------------------------
def with_overrides(
    scenario: Scenario,
    *,
    seed: int | None = None,
    days: int | None = None,
    sampling: float | None = None,
    machines: int | None = None,
) -> Scenario:
    """The scenario with a few top-level figures replaced (for the CLI and benchmarks)."""
    src = scenario.source

    def check(section: str, name: str, value: Any) -> Any:
        key = next(k for k in KEYS[section] if k.name == name)
        return _value(src, f"--{name}", key, value)

    changes: dict[str, Any] = {}
    for name, value in (("seed", seed), ("days", days), ("sampling", sampling)):
        if value is not None:
            changes[name] = check("scenario", name, value)
    if machines is not None:
        n = check("population", "machines", machines)
        changes["infection"] = dataclasses.replace(scenario.infection, machines=n)
    return dataclasses.replace(scenario, **changes)


def _default_text(key: Key) -> str:
    if key.default is REQUIRED:
        return "**required**"
    if key.default is None:
        return "—"
    if key.kind == "list[float]":
        return "a residential day (see below)"
    if isinstance(key.default, bool):
        return f"`{str(key.default).lower()}`"
    if isinstance(key.default, str):
        return f'`"{key.default}"`'
    if isinstance(key.default, tuple):
        return "`[" + ", ".join(f'"{v}"' for v in key.default) + "]`"
    return f"`{_num(key.default)}`"


def doc_tables() -> str:
    """The key tables of docs/simulate.md, generated from ``KEYS``."""
    lines: list[str] = []
    for section, keys in KEYS.items():
        head = f"[[{section}]]" if section in _ARRAYS else f"[{section}]"
        lines += [
            f"### `{head}`",
            "",
            "| key | type | default | range | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for k in keys:
            kind = " \\| ".join(f"`{c}`" for c in k.choices) if k.choices else k.kind
            rng = _range(k) if k.kind in ("int", "float") else ""
            help_text = k.help
            if k.applies:
                help_text += f" *({', '.join(k.applies)} only)*"
            lines.append(f"| `{k.name}` | {kind} | {_default_text(k)} | {rng} | {help_text} |")
        lines.append("")
    return "\n".join(lines)
