import math

import numpy as np
import pytest

from takedown.errors import ConfigError
from takedown.simulate import population as popmod
from takedown.simulate.population import DAY_US, NEVER, Simulation, build_population
from takedown.simulate.scenario import parse_scenario

ALWAYS_ON = "online_by_hour = [" + ", ".join(["1.0"] * 24) + "]"


def make(
    *,
    network: str = 'dynamics = "static"',
    machines: int = 400,
    days: int = 7,
    sampling: float = 0.5,
    seed: int = 1,
    extra: str = "",
    family: str = "",
    prefixes: str = '["79.192.0.0/10"]',
    sections: str = "",
):
    text = f"""
[scenario]
name = "t"
seed = {seed}
start = 2011-03-01
days = {days}
sampling = {sampling}

[population]
machines = {machines}
{extra}

[[family]]
name = "rustock"
checkin_interval_minutes = 20
{family}

[[network]]
asn = 3320
as_name = "DTAG"
country = "DE"
prefixes = {prefixes}
{network}
{sections}
"""
    return parse_scenario(text, "t.toml")


def run(scenario):
    """Every batch and day truth of a whole scenario."""
    sim = Simulation(scenario)
    batches, truths = [], []
    for d in range(scenario.days):
        truths.append(sim.run_day(d, batches.append))
    return sim, batches, truths


def cat(batches, name):
    return np.concatenate([getattr(b, name) for b in batches])


def ips_per_machine(batches):
    pairs = popmod.distinct(cat(batches, "machine").astype(np.int64) << 32 | cat(batches, "addr"))
    return np.bincount((pairs >> 32).astype(np.int64))


def test_same_seed_same_everything_other_seed_differs():
    s = make(network='dynamics = "dhcp"\nlease_hours = 6', days=3)
    _, b1, t1 = run(s)
    _, b2, t2 = run(s)
    for name in ("time_us", "addr", "port", "family", "host", "bot_id", "machine"):
        assert np.array_equal(cat(b1, name), cat(b2, name)), name
    for x, y in zip(t1, t2, strict=True):
        for name in ("infected", "online", "active", "events", "unique_ips", "addresses"):
            assert np.array_equal(getattr(x, name), getattr(y, name)), name
    _, b3, _ = run(make(network='dynamics = "dhcp"\nlease_hours = 6', days=3, seed=2))
    assert not np.array_equal(cat(b1, "addr")[:100], cat(b3, "addr")[:100])


def test_truth_matches_the_events_exactly():
    s = make(network='dynamics = "home_nat"\nmachines_per_household = 2', days=3)
    sim, batches, truths = run(s)
    day = (cat(batches, "time_us") - sim.pop.start_us) // DAY_US
    machine, addr = cat(batches, "machine"), cat(batches, "addr")
    for d, truth in enumerate(truths):
        on = day == d
        assert truth.events.sum() == on.sum()
        assert truth.active.sum() == popmod.distinct(machine[on]).size
        assert truth.unique_ips.sum() == popmod.distinct(addr[on]).size
        assert np.array_equal(truth.addresses, popmod.distinct(addr[on]))
        assert truth.active.sum() <= truth.online.sum() <= truth.infected.sum()
    # Events are in time order within a batch and inside their machine's infected window.
    t = cat(batches, "time_us")
    assert all((np.diff(b.time_us) >= 0).all() for b in batches)
    assert (t >= sim.pop.infected_at[machine]).all() and (t < sim.pop.remediated_at[machine]).all()


def test_static_addresses_one_per_machine():
    _, batches, _ = run(make(network='dynamics = "static"'))
    per = ips_per_machine(batches)
    assert (per[per > 0] == 1).all()
    addr = cat(batches, "addr")
    lo = int.from_bytes(bytes([79, 192, 0, 0]), "big")
    assert ((addr >= lo) & (addr < lo + (1 << 22))).all()  # inside 79.192.0.0/10


def test_dhcp_gives_a_machine_several_addresses_a_week():
    s = make(network='dynamics = "dhcp"\nlease_hours = 24\nlease_sigma = 0.1')
    _, batches, _ = run(s)
    per = ips_per_machine(batches)
    assert 3.0 < per[per > 0].mean() < 8.0
    # Addresses handed out are never held by two machines at once (the pool is large).
    machine, addr, t = (cat(batches, n) for n in ("machine", "addr", "time_us"))
    hour = t // 3_600_000_000
    key = popmod.distinct((addr.astype(np.int64) << 20) | hour)
    both = popmod.distinct((addr.astype(np.int64) << 40) | (hour << 20) | machine)
    assert key.size == both.size


def test_cgnat_shares_few_addresses_among_many_machines():
    s = make(network='dynamics = "cgnat"\nmachines_per_address = 20', machines=2000, days=2)
    sim, batches, truths = run(s)
    assert sim.pop.pools.size[0] == round(sim.pop.size / 20)
    seen = popmod.distinct(cat(batches, "machine")).size
    ips = popmod.distinct(cat(batches, "addr")).size
    assert ips <= sim.pop.pools.size[0] < seen / 10
    assert all(t.unique_ips.sum() < t.active.sum() / 5 for t in truths)


def test_home_nat_households_share_one_address():
    s = make(
        network='dynamics = "home_nat"\nmachines_per_household = 3\nhousehold_dynamics = "static"',
        days=2,
    )
    sim, batches, _ = run(s)
    pop = sim.pop
    assert (pop.household >= 0).all()
    sizes = np.bincount(pop.household)
    assert 2.5 < sizes[sizes > 0].mean() < 3.5
    machine, addr = cat(batches, "machine"), cat(batches, "addr")
    per_household = ips_per_machine([
        popmod.EventBatch(*(getattr(b, f) for f in ("time_us", "addr", "port", "family",
                                                     "host", "bot_id", "prefix")),
                          machine=pop.household[b.machine], machine_seen=b.machine_seen)
        for b in batches
    ])  # fmt: skip
    assert (per_household[per_household > 0] == 1).all()
    assert popmod.distinct(addr).size < popmod.distinct(machine).size


def test_takedown_remediation_follows_the_curve():
    takedown = "[takedown]\nat = 2011-03-03T00:00:00Z\nhalf_life_days = 4\nfloor = 0.2\n"
    s = make(
        machines=20000,
        days=12,
        sampling=0.05,
        sections=takedown,
        network='dynamics = "static"\n' + ALWAYS_ON,
    )
    _, _, truths = run(s)
    infected = np.array([t.infected.sum() for t in truths])
    active = np.array([t.active.sum() for t in truths])
    assert infected[0] == infected[1] == 20000  # nobody cleaned before the takedown
    for d in range(3, 12):
        # Infected at any moment of day d = still infected at its start.
        expect = 20000 * (0.2 + 0.8 * math.exp(-math.log(2) * (d - 2) / 4))
        assert abs(infected[d] - expect) < 0.03 * 20000, (d, infected[d], expect)
    drop = 1 - active[-1] / active[:2].mean()
    expect_drop = 1 - (0.2 + 0.8 * math.exp(-math.log(2) * 9.5 / 4))
    assert abs(drop - expect_drop) < 0.05, (drop, expect_drop)


def test_new_infections_and_bot_ids():
    s = make(
        machines=1000,
        days=10,
        extra="new_infections_per_day = 0.05",
        family="bot_id_fraction = 0.5",
    )
    pop = build_population(s)
    new = pop.size - 1000
    assert 400 < new < 600  # 50 a day for 10 days
    assert (pop.infected_at[pop.infected_at >= pop.start_us] < pop.end_us).all()
    has = pop.bot_id != 0
    assert 0.4 < has.mean() < 0.6
    assert popmod.distinct(pop.bot_id[has]).size == has.sum()
    assert (pop.remediated_at == NEVER).all()


def test_online_hours_keep_the_profile():
    profile = [0.1] * 12 + [0.9] * 12
    s = make(machines=5000, days=2, network="online_by_hour = " + str(profile))
    sim = Simulation(s)
    mask, alive = sim._online_hours(
        sim.pop.start_us, sim.pop.start_us + DAY_US, np.random.default_rng(3)
    )
    assert alive.all()
    # DE is UTC+0 here (utc_offset defaults to 0): hour h's bit follows profile[h].
    share = [((mask >> h) & 1).mean() for h in range(24)]
    assert all(abs(a - b) < 0.03 for a, b in zip(share, profile, strict=True))
    # Persistence: most machines on at 13:00 were on at 12:00 too.
    on12, on13 = (mask >> 12) & 1, (mask >> 13) & 1
    assert (on12 & on13).sum() / on13.sum() > 0.9


def test_pool_addresses_are_a_bijection_inside_the_prefix():
    s = make(prefixes='["79.192.0.0/22", "91.0.0.0/24"]', machines=300)
    pools = build_population(s).pools
    for p, bits in enumerate(pools.bits):
        slots = np.arange(1 << int(bits), dtype=np.int64)
        addr = pools.addresses(np.full(slots.size, p, dtype=np.int32), slots)
        assert popmod.distinct(addr).size == slots.size
        assert addr.min() >= pools.base[p] and addr.max() < pools.base[p] + slots.size


def test_a_prefix_too_small_for_its_machines_is_refused():
    with pytest.raises(ConfigError, match="holds 256 addresses but gets"):
        build_population(make(prefixes='["91.0.0.0/24"]', machines=300))


def test_nth_set_bit_and_distinct():
    rng = np.random.default_rng(5)
    masks = rng.integers(1, 1 << 24, size=2000)
    counts = np.array([bin(int(m)).count("1") for m in masks])
    r = (rng.random(2000) * counts).astype(np.int64)
    got = popmod._nth_set_bit(masks, r)
    want = [
        [b for b in range(24) if int(m) >> b & 1][int(k)] for m, k in zip(masks, r, strict=True)
    ]
    assert got.tolist() == want
    values = rng.integers(0, 50, size=500)
    assert np.array_equal(popmod.distinct(values), np.unique(values))
