"""Random address generation: inside the networks asked for, seeded, vectorised."""

from __future__ import annotations

import ipaddress

import pytest

from takedown.enrich.ipsample import addresses_in, mixed_sample, uniform_addresses


def test_addresses_fall_inside_their_networks() -> None:
    nets = [
        "10.0.0.0/8",
        "192.0.2.0/24",
        "203.0.113.7/32",
        "2001:db8::/32",
        "2001:db8:1::/127",
        "::/0",
    ]
    out = addresses_in(nets, 2000, seed=1).to_pylist()
    parsed = [ipaddress.ip_network(n) for n in nets]
    assert len(out) == 2000
    for text in out:
        addr = ipaddress.ip_address(text)
        assert str(addr) == text
        assert any(addr in n for n in parsed if n.version == addr.version)
    assert "203.0.113.7" in out
    assert (
        addresses_in(nets, 100, seed=7).to_pylist() == addresses_in(nets, 100, seed=7).to_pylist()
    )


def test_uniform_and_errors() -> None:
    out = uniform_addresses(500, "0.0.0.0/0", seed=3).to_pylist()
    assert len(set(out)) > 490 and all(ipaddress.ip_address(x).version == 4 for x in out)
    with pytest.raises(ValueError):
        uniform_addresses(1, "not a net")
    with pytest.raises(ValueError):
        addresses_in([], 1)
    with pytest.raises(ValueError, match="not a network"):
        addresses_in(["1.2.3/8"], 1)


def test_mixed_sample_shares() -> None:
    nets = ["198.51.100.0/24", "2001:db8::/48"]
    out = mixed_sample(nets, 1000, seed=2, v6_share=0.3, announced_share=0.5).to_pylist()
    addrs = [ipaddress.ip_address(x) for x in out]
    assert len(out) == 1000
    assert sum(a.version == 6 for a in addrs) == 300
    networks = [ipaddress.ip_network(n) for n in nets]
    inside = sum(any(n.version == a.version and a in n for n in networks) for a in addrs)
    assert 495 <= inside <= 510  # half drawn inside; a uniform draw almost never lands there
