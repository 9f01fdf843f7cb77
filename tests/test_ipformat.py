"""Address and prefix formatting matches ipaddress (RFC 5952 for IPv6)."""

from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from takedown.enrich.ipformat import format_networks, format_v4, format_v6

MASK64 = (1 << 64) - 1


@st.composite
def v6_values(draw: st.DrawFn) -> int:
    """128-bit values with runs of zero groups (where '::' compression is decided)."""
    value = draw(st.integers(0, 2**128 - 1))
    for group in range(8):
        if draw(st.booleans()):
            value &= ~(0xFFFF << (16 * group))
    return value


@settings(max_examples=150, deadline=None)
@given(st.lists(v6_values(), max_size=40))
def test_format_v6_matches_ipaddress(values: list[int]) -> None:
    hi = np.array([v >> 64 for v in values], np.uint64)
    lo = np.array([v & MASK64 for v in values], np.uint64)
    assert format_v6(hi, lo).to_pylist() == [str(ipaddress.IPv6Address(v)) for v in values]


@given(st.lists(st.integers(0, 2**32 - 1), max_size=40))
def test_format_v4_matches_ipaddress(values: list[int]) -> None:
    got = format_v4(np.array(values, np.uint64)).to_pylist()
    assert got == [str(ipaddress.IPv4Address(v)) for v in values]


def test_format_networks_mixed_order() -> None:
    nets = [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("0.0.0.0/0"),
        ipaddress.ip_network("::/0"),
        ipaddress.ip_network("fe80::1/128"),
    ]
    values = [int(n.network_address) for n in nets]
    got = format_networks(
        np.array([v >> 64 for v in values], np.uint64),
        np.array([v & MASK64 for v in values], np.uint64),
        np.array([n.prefixlen for n in nets]),
        np.array([n.version == 6 for n in nets]),
    )
    assert got.to_pylist() == [str(n) for n in nets]
