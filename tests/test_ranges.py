"""Range partitions and their searches, against brute force over small random tables."""

from __future__ import annotations

import ipaddress
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from takedown.enrich.ranges import (
    FamilyTable,
    Partition,
    prefix_last,
    search_u32,
    search_u128,
    truncate_at_next_start,
    u128_add1,
)

U64 = np.uint64
MASK64 = (1 << 64) - 1


def halves(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([v >> 64 for v in values], U64),
        np.array([v & MASK64 for v in values], U64),
    )


def join(hi: np.ndarray, lo: np.ndarray) -> list[int]:
    return [(int(h) << 64) | int(lo_) for h, lo_ in zip(hi, lo, strict=True)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2**128 - 1), min_size=1, max_size=40, unique=True),
    st.lists(st.integers(0, 2**128 - 1), min_size=1, max_size=40),
    st.booleans(),
)
def test_search_u128_matches_bisect(starts: list[int], queries: list[int], tie: bool) -> None:
    starts = sorted(starts)
    if tie:  # many starts sharing a high half: exercises the tie-breaking binary search
        base = starts[0] & ~MASK64
        starts = sorted({base | (s & MASK64) for s in starts})
        queries = [base | (q & MASK64) for q in queries] + queries
    s_hi, s_lo = halves(starts)
    q_hi, q_lo = halves(queries)
    got = search_u128(s_hi, s_lo, q_hi, q_lo).tolist()
    import bisect

    want = [bisect.bisect_right(starts, q) - 1 for q in queries]
    assert got == want


def test_search_u32_sorted_and_small_paths_agree() -> None:
    rng = np.random.default_rng(5)
    starts = np.unique(rng.integers(0, 2**32, 5000, dtype=np.uint64)).astype(np.uint32)
    for n in (10, 5000, 20000):
        q = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
        want = np.searchsorted(starts, q, side="right") - 1
        assert (search_u32(starts, q) == want).all()


def test_u128_add1_carries_and_overflows() -> None:
    hi, lo = halves([0, MASK64, 2**128 - 1, 5])
    h, lw, over = u128_add1(hi, lo)
    assert join(h, lw) == [1, 2**64, 0, 6]
    assert over.tolist() == [False, False, True, False]


@given(st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_prefix_last_v6(addr: int, plen: int) -> None:
    net = ipaddress.IPv6Network((addr, plen), strict=False)
    hi, lo = halves([int(net.network_address)])
    lh, ll = prefix_last(hi, lo, np.array([plen]), 128)
    assert join(lh, ll) == [int(net.broadcast_address)]


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_prefix_last_v4(addr: int, plen: int) -> None:
    net = ipaddress.IPv4Network((addr, plen), strict=False)
    lh, ll = prefix_last(U64([0]), U64([int(net.network_address)]), np.array([plen]), 32)
    assert int(ll[0]) == int(net.broadcast_address) and int(lh[0]) == 0


def test_truncate_at_next_start_is_last_start_wins() -> None:
    # [0, 99] overlaps the next start 50; [50, 60] and [200, 300] do not overlap.
    hi, lo = halves([0, 50, 200])
    last_hi, last_lo = halves([99, 60, 300])
    nh, nl, cut = truncate_at_next_start(hi, lo, last_hi, last_lo)
    assert join(nh, nl) == [49, 60, 300] and cut == 1


def _brute_lpm(prefixes: list[tuple[int, int, int]], addr: int, bits: int) -> int:
    best, best_len = -1, -1
    for row, (start, plen, _) in enumerate(prefixes):
        size = 1 << (bits - plen)
        if start <= addr < start + size and plen >= best_len:
            best, best_len = row, plen
    return best


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_from_prefixes_is_longest_prefix_match(data: st.DataObject) -> None:
    bits = data.draw(st.sampled_from([32, 128]))
    n = data.draw(st.integers(1, 25))
    raw = []
    for _ in range(n):
        plen = data.draw(st.integers(0, bits))
        addr = data.draw(st.integers(0, 2**bits - 1))
        start = (addr >> (bits - plen)) << (bits - plen) if plen else 0
        raw.append((start, plen, 0))
    hi, lo = halves([s for s, _, _ in raw])
    part = Partition.from_prefixes(
        bits, hi, lo, np.array([p for _, p, _ in raw]), np.arange(n, dtype=np.int32)
    )
    assert part.hi[0] == 0 and part.lo[0] == 0
    probes = [s for s, _, _ in raw] + [data.draw(st.integers(0, 2**bits - 1)) for _ in range(20)]
    probes += [s + (1 << (bits - p)) - 1 for s, p, _ in raw]
    probes += [min(s + (1 << (bits - p)), 2**bits - 1) for s, p, _ in raw]
    q_hi, q_lo = halves(probes)
    got = part.lookup(q_hi, q_lo)[:, 0].tolist()
    # Rows of duplicate prefixes: the last duplicate wins, so compare by prefix, not row.
    want = [_brute_lpm(raw, a, bits) for a in probes]
    assert [raw[g][:2] if g >= 0 else None for g in got] == [
        raw[w][:2] if w >= 0 else None for w in want
    ]


def test_from_disjoint_overlay_and_compact() -> None:
    a = Partition.from_disjoint(
        32, U64([0, 0]), U64([10, 20]), U64([0, 0]), U64([14, 29]), np.array([0, 1], np.int32)
    )
    b = Partition.from_disjoint(
        32, U64([0]), U64([12]), U64([0]), U64([25]), np.array([7], np.int32)
    )
    both = a.overlay(b)
    table = FamilyTable.of(both)
    q = np.arange(0, 40, dtype=np.uint64)
    got = table.lookup(np.zeros_like(q), q).tolist()
    want = []
    for x in range(40):
        ra = 0 if 10 <= x <= 14 else 1 if 20 <= x <= 29 else -1
        rb = 7 if 12 <= x <= 25 else -1
        want.append([ra, rb])
    assert got == want
    # No two neighbouring intervals carry the same values after compact().
    assert (both.values[1:] != both.values[:-1]).any(axis=1).all()
    assert both.sizes().sum() == 2**32


def test_empty_partition_and_random_v6_table() -> None:
    empty = Partition.empty(128)
    assert empty.lookup(U64([5]), U64([5]))[0, 0] == -1
    rng = random.Random(3)
    nets = {
        ipaddress.IPv6Network((rng.getrandbits(128), rng.randint(16, 128)), strict=False)
        for _ in range(300)
    }
    nets_l = sorted(nets, key=lambda n: (int(n.network_address), n.prefixlen))
    disjoint: list[ipaddress.IPv6Network] = []
    for net in nets_l:
        if not disjoint or not disjoint[-1].overlaps(net):
            disjoint.append(net)
    hi, lo = halves([int(n.network_address) for n in disjoint])
    lh, ll = halves([int(n.broadcast_address) for n in disjoint])
    part = Partition.from_disjoint(128, hi, lo, lh, ll, np.arange(len(disjoint), dtype=np.int32))
    probes = [int(n.network_address) + rng.randrange(n.num_addresses) for n in disjoint]
    probes += [rng.getrandbits(128) for _ in range(200)]
    got = part.lookup(*halves(probes))[:, 0].tolist()
    want = []
    for p in probes:
        addr = ipaddress.IPv6Address(p)
        want.append(next((i for i, n in enumerate(disjoint) if addr in n), -1))
    assert got == want
