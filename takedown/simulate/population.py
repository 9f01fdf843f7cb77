"""A botnet population with ground truth, and its check-ins day by day: pure, vectorised, seeded.

``build_population`` places every machine ever infected in the window: its family, network,
prefix, address holder (itself, its household or a CGNAT mapping), infection and remediation
times and, for some families, a stable bot id. ``Simulation.run_day`` then steps one UTC day:
address holders change addresses (DHCP leases, CGNAT re-mappings), machines go on and off line
hour by hour (a two-state Markov chain that keeps each local hour's online probability exactly),
and online machines check in (a Poisson process per family, thinned by ``sampling``). It hands
the day's check-ins to a sink in batches of arrays and returns the day's exact truth.

Nothing here touches files or sockets; the same seed gives the same arrays, bit for bit.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from takedown.errors import ConfigError
from takedown.simulate.scenario import DYNAMICS, Network, Scenario

__all__ = [
    "DAY_US",
    "HOUR_US",
    "NEVER",
    "DayTruth",
    "EventBatch",
    "Pools",
    "Population",
    "Simulation",
    "build_population",
    "distinct",
    "epoch_us",
    "expected_events",
]

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
B = npt.NDArray[np.bool_]
_T = TypeVar("_T", bound=np.generic)

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
NEVER = np.iinfo(np.int64).max
_MAX_DURATION = 1e17  # µs, ~3,000 years: keeps float → int64 casts in range
_MIN_HOLD_US = 60 * US  # no address is held for less than a minute
BATCH_EVENTS = 1 << 19  # events handed to the sink at a time (bounds memory, not output)
_ROUNDS = 3
_CGNAT = DYNAMICS.index("cgnat")
_HOME_NAT = DYNAMICS.index("home_nat")

# The ith set bit of a byte, and how many bits a byte has set: for picking online hours.
_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)
_SEL8 = np.zeros(256 * 8, dtype=np.int32)  # [byte * 8 + n]: position of the byte's n-th set bit
for _byte in range(256):
    _bits = [b for b in range(8) if _byte >> b & 1]
    _SEL8[_byte * 8 : _byte * 8 + len(_bits)] = _bits


def epoch_us(when: dt.datetime) -> int:
    """Microseconds since the Unix epoch of an aware date-time."""
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * US + delta.microseconds


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream for each (seed, purpose, day, ...)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def distinct(values: npt.NDArray[_T]) -> npt.NDArray[_T]:
    """The sorted distinct values (np.unique without its slow hash path in numpy 2.4)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


@dataclass
class Pools:
    """The address pools: one per announced prefix of the scenario's networks."""

    cidr: list[str]
    network: I32  # index into scenario.networks
    base: I64  # first address, as an integer
    bits: I64  # host bits: the prefix holds 2**bits addresses
    dynamics: I32  # index into DYNAMICS
    fresh: B  # a new address is the pool's next unused one (else: uniform over `size`)
    size: I64  # slots a holder can draw from (2**bits, or the CGNAT pool)
    hold_median_us: F64  # median holding time of an address; 0 = held for ever
    hold_sigma: F64
    mult: U64  # (prefixes, rounds) odd multipliers of the address permutation
    add: U64  # (prefixes, rounds)
    holders: I64  # address holders placed in each prefix
    machines: I64  # machines placed in each prefix

    def addresses(self, prefix: I32, slot: I64) -> U32:
        """The address of pool slot ``slot`` in ``prefix``: a seeded bijection on the prefix.

        Consecutive slots land far apart, and distinct slots below 2**bits never collide.
        """
        bits = self.bits[prefix].astype(np.uint64)
        mask = (np.uint64(1) << bits) - np.uint64(1)
        x = slot.astype(np.uint64) & mask
        half = (bits + np.uint64(1)) >> np.uint64(1)
        for r in range(_ROUNDS):
            x = (x * self.mult[prefix, r]) & mask
            x ^= x >> half
            x = (x + self.add[prefix, r]) & mask
        out: U32 = (self.base[prefix].astype(np.uint64) + x).astype(np.uint32)
        return out


@dataclass
class Population:
    """Every machine infected at some moment of the window, with its fixed traits."""

    scenario: Scenario
    start_us: int
    end_us: int
    takedown_us: int | None
    family: I32
    network: I32
    prefix: I32
    holder: I32  # global address-holder index
    household: I32  # home_nat: the household's holder index; -1 elsewhere
    infected_at: I64
    remediated_at: I64  # NEVER: not cleaned
    bot_id: U64  # 0: sends no bot id
    holder_prefix: I32
    pools: Pools

    @property
    def size(self) -> int:
        return int(self.family.size)

    @property
    def groups(self) -> int:
        """Truth is counted per (family, prefix): this many groups."""
        return len(self.scenario.families) * len(self.pools.cidr)

    def group_of(self, family: I32, prefix: I32) -> I64:
        return family.astype(np.int64) * len(self.pools.cidr) + prefix


def build_population(scenario: Scenario) -> Population:
    """Place every machine of the scenario (pure: the same scenario gives the same arrays)."""
    s = scenario
    rng = _rng(s.seed, 0)
    start = epoch_us(s.start_dt)
    end = start + s.days * DAY_US
    takedown = None if s.takedown.at is None else epoch_us(s.takedown.at)
    n0 = s.infection.machines
    since = s.infection.infected_since_days * DAY_US
    initial = start - (rng.random(n0) * since).astype(np.int64)
    infected_at = np.concatenate([initial, _new_infections(s, rng, start, takedown)])
    n = int(infected_at.size)
    family = _pick(rng, [f.weight for f in s.families], n)
    network = _pick(rng, [net.weight for net in s.networks], n)
    pools, prefix = _place(s, rng, network)
    # Machines sorted by prefix (so by network): the per-network work runs over slices.
    order = np.argsort(prefix, kind="stable")
    family, network, prefix = family[order], network[order], prefix[order]
    infected_at = infected_at[order]
    holder, household, holder_prefix = _holders(s, rng, pools, prefix)
    remediated_at = _remediation(s, rng, network, infected_at, start, takedown)
    bot_id = _bot_ids(s, rng, family)
    return Population(
        scenario=s, start_us=start, end_us=end, takedown_us=takedown,
        family=family, network=network, prefix=prefix, holder=holder, household=household,
        infected_at=infected_at, remediated_at=remediated_at, bot_id=bot_id,
        holder_prefix=holder_prefix, pools=pools,
    )  # fmt: skip


def _pick(rng: np.random.Generator, weights: list[float], n: int) -> I32:
    w = np.asarray(weights, dtype=np.float64)
    return rng.choice(w.size, size=n, p=w / w.sum()).astype(np.int32)


def _new_infections(s: Scenario, rng: np.random.Generator, start: int, td: int | None) -> I64:
    """Infection times of the machines infected during the window, in time order."""
    per_day = s.infection.new_infections_per_day * s.infection.machines
    if per_day <= 0:
        return np.zeros(0, dtype=np.int64)
    day0 = start + np.arange(s.days, dtype=np.int64) * DAY_US
    cut = np.clip((td if td is not None else NEVER) - day0, 0, DAY_US)
    # Each day splits at the takedown into a part before it and a part after it.
    seg_start = np.concatenate([day0, day0 + cut])
    seg_len = np.concatenate([cut, DAY_US - cut])
    rate = np.concatenate(
        [np.full(s.days, per_day), np.full(s.days, per_day * s.takedown.infections_after)]
    )
    counts = rng.poisson(rate * seg_len / DAY_US)
    offs = (rng.random(int(counts.sum())) * np.repeat(seg_len, counts)).astype(np.int64)
    return np.sort(np.repeat(seg_start, counts) + offs)


def _place(s: Scenario, rng: np.random.Generator, network: I32) -> tuple[Pools, I32]:
    """Build the prefix pools and put each machine in one prefix of its network."""
    cidr: list[str] = []
    owner: list[int] = []
    for j, net in enumerate(s.networks):
        cidr += net.prefixes
        owner += [j] * len(net.prefixes)
    nets = [ipaddress.IPv4Network(c) for c in cidr]
    bits = np.array([32 - p.prefixlen for p in nets], dtype=np.int64)
    prefix = np.zeros(network.size, dtype=np.int32)
    first = 0
    for j, net in enumerate(s.networks):
        k = len(net.prefixes)
        where = np.flatnonzero(network == j)
        sizes = np.exp2(bits[first : first + k].astype(np.float64))
        prefix[where] = first + rng.choice(k, size=where.size, p=sizes / sizes.sum())
        first += k
    dyn = np.array([DYNAMICS.index(s.networks[o].dynamics) for o in owner], dtype=np.int32)
    hold_h = np.array([_hold_hours(s.networks[o]) for o in owner], dtype=np.float64)
    sigma = np.array([s.networks[o].lease_sigma for o in owner], dtype=np.float64)
    m = len(cidr)
    pools = Pools(
        cidr=cidr, network=np.array(owner, dtype=np.int32),
        base=np.array([int(p.network_address) for p in nets], dtype=np.int64), bits=bits,
        dynamics=dyn, fresh=dyn != _CGNAT, size=np.exp2(bits).astype(np.int64),
        hold_median_us=hold_h * HOUR_US, hold_sigma=sigma,
        mult=rng.integers(0, 1 << 62, size=(m, _ROUNDS), dtype=np.uint64) * np.uint64(2)
        + np.uint64(1),
        add=rng.integers(0, 1 << 62, size=(m, _ROUNDS), dtype=np.uint64),
        holders=np.zeros(m, dtype=np.int64),
        machines=np.bincount(prefix, minlength=m).astype(np.int64),
    )  # fmt: skip
    return pools, prefix


def _hold_hours(net: Network) -> float:
    """Median time an address is held in this network; 0 = for ever."""
    if net.dynamics == "dhcp" or (net.dynamics == "home_nat" and net.household_dynamics == "dhcp"):
        return net.lease_hours
    if net.dynamics == "cgnat":
        return net.remap_hours
    return 0.0


def _holders(
    s: Scenario, rng: np.random.Generator, pools: Pools, prefix: I32
) -> tuple[I32, I32, I32]:
    """Who holds each machine's public address: itself, its household, or a CGNAT mapping."""
    n = prefix.size
    holder = np.zeros(n, dtype=np.int32)
    household = np.full(n, -1, dtype=np.int32)
    order = np.argsort(prefix, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(pools.machines)])
    next_holder = 0
    for p in range(len(pools.cidr)):
        members = order[bounds[p] : bounds[p + 1]]
        net = s.networks[int(pools.network[p])]
        if net.dynamics == "home_nat":
            members = rng.permutation(members)
            sizes = 1 + rng.poisson(net.machines_per_household - 1, size=members.size)
            local = np.searchsorted(np.cumsum(sizes), np.arange(members.size), side="right")
            count = int(local[-1]) + 1 if members.size else 0
            holder[members] = next_holder + local
            household[members] = next_holder + local
        else:
            count = members.size
            holder[members] = next_holder + np.arange(count)
        if net.dynamics == "cgnat":
            pools.size[p] = max(1, round(members.size / net.machines_per_address))
        elif count > pools.size[p]:
            raise ConfigError(
                f"{s.source}: [[network]] AS{net.asn}: prefix {pools.cidr[p]} "
                f"holds {pools.size[p]:,} addresses but gets {count:,} "
                "machines; add prefixes or lower its weight"
            )
        elif pools.hold_median_us[p] > 0 and count > pools.size[p] // 2:
            log.warning(
                "AS%d %s: %d address holders in %d addresses; re-used addresses may "
                "overlap in time",
                net.asn,
                pools.cidr[p],
                count,
                pools.size[p],
            )
        pools.holders[p] = count
        next_holder += count
    holder_prefix = np.repeat(np.arange(len(pools.cidr), dtype=np.int32), pools.holders)
    return holder, household, holder_prefix


def _remediation(
    s: Scenario,
    rng: np.random.Generator,
    network: I32,
    infected_at: I64,
    start: int,
    td: int | None,
) -> I64:
    """When each machine is cleaned: background cleanup, then the takedown's curve."""
    n = infected_at.size
    out = np.full(n, NEVER, dtype=np.int64)
    exposed = np.maximum(infected_at, start).astype(np.float64)
    bg = s.infection.background_half_life_days
    if bg > 0:
        wait = rng.exponential(bg / math.log(2) * DAY_US, size=n)
        out = np.minimum(out, (exposed + np.minimum(wait, _MAX_DURATION)).astype(np.int64))
    if td is not None:
        t = s.takedown
        half = np.array([net.half_life_days or t.half_life_days for net in s.networks])
        floor = np.array([t.floor if net.floor is None else net.floor for net in s.networks])
        begin = td + t.delay_days * DAY_US
        wait = rng.exponential(1.0, size=n) * (half[network] / math.log(2) * DAY_US)
        cured = rng.random(n) >= floor[network]
        when = np.maximum(infected_at, int(begin)).astype(np.float64)
        when += np.minimum(wait, _MAX_DURATION)
        out = np.where(cured, np.minimum(out, when.astype(np.int64)), out)
    return out


def _bot_ids(s: Scenario, rng: np.random.Generator, family: I32) -> U64:
    """A random, unique 64-bit id for machines whose family sends one; 0 for the rest."""
    fraction = np.array([f.bot_id_fraction for f in s.families])
    has = rng.random(family.size) < fraction[family]
    ids = np.zeros(family.size, dtype=np.uint64)
    ids[has] = rng.integers(1, np.iinfo(np.int64).max, size=int(has.sum()), dtype=np.int64)
    while True:
        holders = np.flatnonzero(has)
        order = np.argsort(ids[holders], kind="stable")
        ranked = ids[holders][order]
        dup = holders[order[1:][ranked[1:] == ranked[:-1]]]  # every repeat after the first
        if not dup.size:
            return ids
        ids[dup] = rng.integers(1, np.iinfo(np.int64).max, size=dup.size, dtype=np.int64)


def expected_events(scenario: Scenario) -> float:
    """Roughly how many events a scenario writes (for budgets and warnings, not for truth)."""
    s = scenario
    per_hour = np.array([60.0 / f.checkin_interval_minutes for f in s.families])
    w = np.array([f.weight for f in s.families])
    online = float(np.mean(s.diurnal.online_by_hour))
    growth = 1 + s.infection.new_infections_per_day * s.days / 2
    return (
        s.infection.machines
        * growth
        * online
        * 24
        * s.days
        * s.sampling
        * float(per_hour @ (w / w.sum()))
    )


# -- one day at a time -------------------------------------------------------------------------
@dataclass
class EventBatch:
    """Check-ins as arrays, one row per event, in time order. ``machine`` stays internal."""

    time_us: I64
    addr: U32
    port: I32
    family: I32
    host: I32  # index into Simulation.hosts
    bot_id: U64  # 0: none sent
    prefix: I32
    machine: I32
    machine_seen: I32  # the distinct machines of the batch

    @property
    def size(self) -> int:
        return int(self.time_us.size)


@dataclass
class DayTruth:
    """One day's exact truth per (family, prefix) group, and its distinct addresses."""

    day: dt.date
    infected: I64  # infected at any moment of the day
    online: I64  # infected and online in at least one hour of the day
    active: I64  # with at least one event written that day
    events: I64
    unique_ips: I64  # distinct source addresses among the day's events
    addresses: U32 = field(repr=False)  # every distinct address of the day's events


class Simulation:
    """Steps a population day by day (state: who is online, who holds which address)."""

    def __init__(self, scenario: Scenario, population: Population | None = None) -> None:
        self.scenario = scenario
        self.next_day = 0
        self.pop = population if population is not None else build_population(scenario)
        pop, s = self.pop, scenario
        rng = _rng(s.seed, 1)
        self.hosts: list[str] = [h for f in s.families for h in f.hosts]
        counts = [len(f.hosts) for f in s.families]
        self._host_first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        self._host_count = np.array(counts, dtype=np.int64)
        self._rate = np.array([60.0 / f.checkin_interval_minutes * s.sampling for f in s.families])
        self._group = pop.group_of(pop.family, pop.prefix)
        self._trans_a, self._trans_b, first_p = _transitions(s)
        self.online = rng.random(pop.size) < first_p[pop.network]
        per_net = np.bincount(pop.network, minlength=len(s.networks))
        self._net_bounds: list[int] = [0, *np.cumsum(per_net).tolist()]
        pools = pop.pools
        h = pop.holder_prefix
        self.slot = np.zeros(h.size, dtype=np.int64)
        self._counter = np.zeros(len(pools.cidr), dtype=np.int64)
        fresh = pools.fresh[h]
        rank = np.arange(h.size) - np.repeat(
            np.cumsum(pools.holders) - pools.holders, pools.holders
        )
        self.slot[fresh] = rank[fresh]
        self._counter[:] = np.where(pools.fresh, pools.holders, 0)
        self.slot[~fresh] = rng.integers(0, pools.size[h[~fresh]])
        first_change = pop.start_us + (rng.random(h.size) * self._hold(h, rng)).astype(np.int64)
        self.next_change = np.where(pools.hold_median_us[h] > 0, first_change, NEVER)
        # XP-era stacks pick source ports 1025-5000; NAT boxes anywhere above 1023.
        natted = np.isin(pools.dynamics, [_CGNAT, _HOME_NAT])
        self._port_lo = np.where(natted, 1024, 1025)
        self._port_span = np.where(natted, 65536 - 1024, 5001 - 1025)

    def _hold(self, holder_prefix: I32, rng: np.random.Generator) -> F64:
        pools = self.pop.pools
        med = pools.hold_median_us[holder_prefix]
        sig = pools.hold_sigma[holder_prefix]
        d = med * np.exp(sig * rng.standard_normal(holder_prefix.size))
        return np.clip(d, _MIN_HOLD_US, _MAX_DURATION)

    def day_date(self, d: int) -> dt.date:
        return self.scenario.start + dt.timedelta(days=d)

    def run_day(self, d: int, sink: Callable[[EventBatch], None]) -> DayTruth:
        """Simulate day ``d`` (0-based; days must run in order) and return its truth."""
        if d != self.next_day:
            raise ValueError(f"day {d} asked for, but the simulation is at day {self.next_day}")
        self.next_day += 1
        pop = self.pop
        d0 = pop.start_us + d * DAY_US
        d1 = d0 + DAY_US
        changes = self._advance_holders(d0, d1, _rng(self.scenario.seed, 2, d))
        mask, alive = self._online_hours(d0, d1, _rng(self.scenario.seed, 3, d))
        rng = _rng(self.scenario.seed, 4, d)
        groups = pop.groups
        truth = DayTruth(
            day=self.day_date(d),
            infected=np.bincount(self._group[alive], minlength=groups),
            online=np.bincount(self._group[mask != 0], minlength=groups),
            active=np.zeros(groups, dtype=np.int64), events=np.zeros(groups, dtype=np.int64),
            unique_ips=np.zeros(groups, dtype=np.int64), addresses=np.zeros(0, np.uint32),
        )  # fmt: skip
        idx = np.flatnonzero(mask).astype(np.int32)
        hours = np.bitwise_count(mask[idx]).astype(np.int64)
        counts = rng.poisson(self._rate[pop.family[idx]] * hours)
        ends = np.cumsum(counts)
        cuts = np.searchsorted(
            ends,
            np.arange(BATCH_EVENTS, int(ends[-1]) if ends.size else 0, BATCH_EVENTS),
            side="right",
        )
        keys: list[npt.NDArray[np.int64]] = []
        lo = 0
        for hi in [*cuts.tolist(), idx.size]:
            if hi <= lo:
                continue
            sel = slice(lo, hi)
            batch = self._events(idx[sel], counts[sel], mask[idx[sel]], d0, changes, rng)
            lo = hi
            if not batch.size:
                continue
            g = pop.group_of(batch.family, batch.prefix)
            truth.events += np.bincount(g, minlength=groups)
            truth.active += np.bincount(self._group[batch.machine_seen], minlength=groups)
            keys.append(distinct((g << 32) | batch.addr.astype(np.int64)))
            sink(batch)
        if keys:
            uniq = distinct(np.concatenate(keys))
            truth.unique_ips = np.bincount(uniq >> 32, minlength=groups)
            truth.addresses = distinct((uniq & 0xFFFFFFFF).astype(np.uint32))
        return truth

    def _advance_holders(self, d0: int, d1: int, rng: np.random.Generator) -> _Changes:
        """Apply every address change of the day; remember them for look-ups by time."""
        start_slot = self.slot.copy()
        hs: list[I64] = []
        ts: list[I64] = []
        ss: list[I64] = []
        active = np.flatnonzero(self.next_change < d1)
        while active.size:
            t = self.next_change[active]
            new = self._draw_slots(active, rng)
            self.slot[active] = new
            hs.append(active)
            ts.append(t)
            ss.append(new)
            hold = self._hold(self.pop.holder_prefix[active], rng).astype(np.int64)
            self.next_change[active] = t + hold
            active = active[self.next_change[active] < d1]
        n = self.slot.size
        if not hs:
            return _Changes(
                start_slot,
                np.zeros(n, np.int64),
                np.zeros(n, np.int64),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
            )
        h = np.concatenate(hs)
        order = np.argsort(h, kind="stable")  # rounds run in time order: (holder, time) order
        count = np.bincount(h, minlength=n)
        first = np.cumsum(count) - count
        return _Changes(
            start_slot, first, count, np.concatenate(ts)[order], np.concatenate(ss)[order]
        )

    def _draw_slots(self, holders: I64, rng: np.random.Generator) -> I64:
        pools = self.pop.pools
        p = self.pop.holder_prefix[holders]
        out = np.empty(holders.size, dtype=np.int64)
        fresh = pools.fresh[p]
        f = np.flatnonzero(fresh)
        if f.size:
            # Each prefix hands out its next unused slots, in holder order.
            order = np.argsort(p[f], kind="stable")
            ps = p[f][order]
            count = np.bincount(ps, minlength=self._counter.size)
            rank = np.arange(ps.size) - (np.cumsum(count) - count)[ps]
            out[f[order]] = self._counter[ps] + rank
            self._counter += count
        u = np.flatnonzero(~fresh)
        if u.size:
            out[u] = rng.integers(0, pools.size[p[u]])
        return out

    def _online_hours(self, d0: int, d1: int, rng: np.random.Generator) -> tuple[U32, B]:
        """A 24-bit mask per machine of the UTC hours it was infected and online."""
        pop = self.pop
        bounds = self._net_bounds
        hours = np.empty((24, pop.size), dtype=np.bool_)
        state = self.online
        for h in range(24):
            u = rng.random(pop.size, dtype=np.float32)
            row = hours[h]
            for j, (a, b) in enumerate(zip(self._trans_a[h], self._trans_b[h], strict=True)):
                lo, hi = bounds[j], bounds[j + 1]
                row[lo:hi] = u[lo:hi] < b + (a - b) * state[lo:hi]  # a if on, else b
            state = row
        self.online = state.copy()
        packed = np.packbits(hours, axis=0, bitorder="little").astype(np.uint32)
        mask = packed[0] | (packed[1] << np.uint32(8)) | (packed[2] << np.uint32(16))
        inf, rem = pop.infected_at, pop.remediated_at
        alive = (inf < d1) & (rem > d0)
        partial = np.flatnonzero(alive & ((inf > d0) | (rem < d1)))
        alive_bits = np.where(alive, np.uint32(0xFFFFFF), np.uint32(0))
        first = np.clip((inf[partial] - d0) // HOUR_US, 0, 24)
        last = np.clip((rem[partial] - 1 - d0) // HOUR_US + 1, 0, 24)  # exclusive
        bits = ((np.int64(1) << last) - 1) & ~((np.int64(1) << first) - 1)
        alive_bits[partial] = bits.astype(np.uint32)
        return mask & alive_bits, alive

    def _events(
        self, idx: I32, counts: I64, mask: U32, d0: int, changes: _Changes, rng: np.random.Generator
    ) -> EventBatch:
        pop = self.pop
        m = np.repeat(idx, counts)
        msk = np.repeat(mask, counts).astype(np.int64)
        n = m.size
        online = np.bitwise_count(msk).astype(np.int64)
        r = np.minimum((rng.random(n) * online).astype(np.int64), online - 1)
        t = d0 + _nth_set_bit(msk, r) * HOUR_US + rng.integers(0, HOUR_US, size=n)
        keep = (t >= pop.infected_at[m]) & (t < pop.remediated_at[m])
        kept = np.bincount(np.repeat(np.arange(idx.size), counts)[keep], minlength=idx.size)
        m, t = m[keep], t[keep]
        n = m.size
        # Look everything up while the events are in machine order (memory order), then sort.
        prefix = pop.prefix[m]
        fam = pop.family[m]
        addr = pop.pools.addresses(prefix, changes.slot_at(pop.holder[m], t))
        port = self._port_lo[prefix] + (rng.random(n) * self._port_span[prefix]).astype(np.int64)
        host = self._host_first[fam] + (rng.random(n) * self._host_count[fam]).astype(np.int64)
        order = np.argsort(t)  # time order: row order says nothing of which machine sent it
        return EventBatch(
            time_us=t[order], addr=addr[order], port=port[order].astype(np.int32),
            family=fam[order], host=host[order].astype(np.int32), bot_id=pop.bot_id[m][order],
            prefix=prefix[order], machine=m[order], machine_seen=idx[kept > 0],
        )  # fmt: skip


@dataclass
class _Changes:
    """One day's address changes, grouped by holder in time order; the slots held at 00:00."""

    start_slot: I64  # per holder
    first: I64  # per holder: index of its first change below
    count: I64  # per holder: its changes that day
    time: I64
    slot: I64

    def slot_at(self, holder: I32, t: I64) -> I64:
        """The slot each holder held at each time."""
        out = self.start_slot[holder]
        left = self.count[holder]
        sel = np.flatnonzero(left > 0)
        k = 0
        while sel.size:  # the k-th change of each holder with one, while it is not after t
            pos = self.first[holder[sel]] + k
            passed = self.time[pos] <= t[sel]
            out[sel[passed]] = self.slot[pos[passed]]
            sel = sel[passed & (left[sel] > k + 1)]
            k += 1
        return out


def _nth_set_bit(mask: I64, r: I64) -> I64:
    """The position of the r-th (0-based) set bit of each 24-bit mask."""
    m = mask.astype(np.int32)
    k = r.astype(np.int32)
    b0, b1, b2 = m & 255, (m >> 8) & 255, (m >> 16) & 255
    c0 = _POP8[b0]
    c01 = c0 + _POP8[b1]
    # `& 7` keeps every index in range; only the byte that holds the bit is used.
    h0 = _SEL8[(b0 << 3) | (k & 7)]
    h1 = _SEL8[(b1 << 3) | ((k - c0) & 7)] + 8
    h2 = _SEL8[(b2 << 3) | ((k - c01) & 7)] + 16
    out: I64 = np.where(k < c0, h0, np.where(k < c01, h1, h2)).astype(np.int64)
    return out


def _profile_at(profile: tuple[float, ...], local: float) -> float:
    """A profile's online probability for the hour starting at fractional local hour ``local``."""
    i = math.floor(local) % 24
    f = local - math.floor(local)
    return profile[i] * (1 - f) + profile[(i + 1) % 24] * f


def _transitions(s: Scenario) -> tuple[list[F32], list[F32], F64]:
    """Per UTC hour and network: P(on | was on), P(on | was off), keeping the marginals.

    With persistence ρ, a machine that was on stays on with p + ρ(1-p) where the marginals
    allow it; the chance of switching on is then what keeps P(on) equal to the profile's p.
    """
    rho = s.diurnal.persistence
    nets = s.networks
    a_by_hour: list[F32] = []
    b_by_hour: list[F32] = []
    first = np.zeros(len(nets))
    for h in range(24):
        a = np.zeros(len(nets))
        b = np.zeros(len(nets))
        for j, net in enumerate(nets):
            profile = net.online_by_hour or s.diurnal.online_by_hour
            prev = _profile_at(profile, h - 1 + net.utc_offset)
            cur = _profile_at(profile, h + net.utc_offset)
            if h == 0:
                first[j] = prev
            if prev <= 0:
                a[j], b[j] = 1.0, cur
            elif prev >= 1:
                a[j], b[j] = cur, 0.0
            else:
                a[j] = min(cur + rho * (1 - cur), cur / prev)
                b[j] = min(1.0, max(0.0, (cur - prev * a[j]) / (1 - prev)))
        a_by_hour.append(a.astype(np.float32))
        b_by_hour.append(b.astype(np.float32))
    return a_by_hour, b_by_hour, first
