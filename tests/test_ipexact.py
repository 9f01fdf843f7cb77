"""The exact parser on its own (the fast paths are bypassed): same answers as ipaddress."""

from __future__ import annotations

import ipaddress

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown.enrich.ipexact import parse_exact

ALPHABET = "0123456789abcdefABCDEF::..%/x"


def reference(text: str | None) -> tuple[int, int | None]:
    try:
        addr = ipaddress.ip_address(text)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return 0, None
    return addr.version, int(addr)


def exact(texts: list[str | None]) -> list[tuple[int, int | None]]:
    p = parse_exact(pa.array(texts, pa.string()))
    return [
        (int(v), ((int(h) << 64) | int(lo)) if v else None)
        for v, h, lo in zip(p.version, p.hi, p.lo, strict=True)
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.text(alphabet=ALPHABET, max_size=48), st.text(max_size=50)), max_size=40)
)
def test_exact_parser_agrees_with_ipaddress(texts: list[str]) -> None:
    assert exact(texts) == [reference(t) for t in texts]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.ip_addresses(), min_size=1, max_size=40))
def test_exact_parser_reads_every_spelling(
    addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    texts: list[str | None] = []
    for a in addrs:
        texts.append(str(a))
        if a.version == 6:
            texts.append(a.exploded)
            texts.append(str(a).upper() + "%eth0")
            texts.append(a.exploded[:30] + str(ipaddress.IPv4Address(int(a) & 0xFFFF_FFFF)))
    assert exact(texts) == [reference(t) for t in texts]


def test_exact_parser_edge_cases() -> None:
    texts = [
        None,
        "",
        "::",
        "::00.0.0",
        "::1.2.3",
        "1:2:3:4:5:6:7:8:9",
        "1::2::3",
        "a" * 100,
        "fe80::1%" + "z" * 80,
        "0000:0000:0000:0000:0000:0000:255.255.255.255",
        ":1::",
        "1.2.3.4",
    ]
    assert exact(texts) == [reference(t) for t in texts]
    assert exact(["1.2.3.4"] * 70_000)[-1] == (4, 0x01020304)  # more than one block
