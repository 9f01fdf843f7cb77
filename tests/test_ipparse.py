"""The vectorised IP parser agrees with ``ipaddress`` and never raises (hypothesis fuzzing)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown.enrich.ipparse import as_string_array, non_string_mask, parse_ips

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_SLOW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(text: str | None) -> tuple[int, int | None]:
    """(version, integer) as ipaddress sees it; (0, None) if it is not an address."""
    if text is None:
        return 0, None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return 0, None
    return addr.version, int(addr)


def parsed(texts: list[str | None]) -> list[tuple[int, int | None]]:
    p = parse_ips(pa.array(texts, pa.string()))
    return [
        (int(v), ((int(h) << 64) | int(lo)) if v else None)
        for v, h, lo in zip(p.version, p.hi, p.lo, strict=True)
    ]


def check(texts: list[str | None]) -> None:
    got = parsed(texts)
    assert len(got) == len(texts)
    assert got == [reference(t) for t in texts]


# Near-miss text: the characters addresses are made of, and a few that break them.
ALPHABET = "0123456789abcdefABCDEFg:.:.%/ \x00é٣"
near_miss = st.text(alphabet=ALPHABET, max_size=50)


def mutated(draw: st.DrawFn, text: str) -> str:
    chars = list(text)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["del", "ins", "sub"]))
        i = draw(st.integers(0, len(chars)))
        if op == "del" and chars:
            chars.pop(min(i, len(chars) - 1))
        elif op == "ins":
            chars.insert(i, draw(st.sampled_from(ALPHABET)))
        elif chars:
            chars[min(i, len(chars) - 1)] = draw(st.sampled_from(ALPHABET))
    return "".join(chars)


@st.composite
def address_text(draw: st.DrawFn) -> str:
    """Valid addresses in every spelling ipaddress accepts, then maybe damaged."""
    addr = draw(st.ip_addresses())
    if addr.version == 4:
        text = str(addr)
    else:
        form = draw(st.sampled_from(["short", "exploded", "upper", "tail", "mapped", "zone"]))
        text = {
            "short": str(addr),
            "exploded": addr.exploded,
            "upper": str(addr).upper(),
            "tail": str(addr).rsplit(":", 2)[0].rstrip(":")
            + "::"
            + str(ipaddress.IPv4Address(int(addr) & 0xFFFF_FFFF)),
            "mapped": "::ffff:" + str(ipaddress.IPv4Address(int(addr) & 0xFFFF_FFFF)),
            "zone": str(addr) + "%" + draw(st.sampled_from(["eth0", "1", "a b", "x:y"])),
        }[form]
    return mutated(draw, text) if draw(st.booleans()) else text


@FUZZ
@given(st.lists(st.text(max_size=60), max_size=30))
def test_arbitrary_text_never_raises(texts: list[str]) -> None:
    check(texts)


@FUZZ
@given(st.lists(near_miss, max_size=30))
def test_near_miss_text_agrees_with_ipaddress(texts: list[str]) -> None:
    check(texts)


@FUZZ_SLOW
@given(st.lists(address_text(), min_size=1, max_size=30))
def test_addresses_round_trip(texts: list[str]) -> None:
    check(texts)


@FUZZ_SLOW
@given(st.lists(st.ip_addresses(), min_size=1, max_size=50))
def test_canonical_text_round_trips(
    addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    got = parsed([str(a) for a in addrs])
    assert got == [(a.version, int(a)) for a in addrs]


GOLDEN: list[tuple[str | None, str | None]] = [
    ("1.2.3.4", "1.2.3.4"),
    ("0.0.0.0", "0.0.0.0"),
    ("255.255.255.255", "255.255.255.255"),
    ("256.1.1.1", None),
    ("01.2.3.4", None),  # leading zeros are refused, as inet_pton and ipaddress do
    ("1.2.3", None),
    ("1.2.3.4 ", None),
    ("1.2.3.٤", None),  # non-ASCII digit
    ("::", "::"),
    (":::", None),
    ("1::", "1::"),
    ("::ffff:1.2.3.4", "::ffff:102:304"),
    ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
    ("::1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"),
    ("1:2:3:4:5:6:7:8:9", None),
    ("1:2:3:4:5:6::1.2.3.4", None),
    ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"),
    ("fe80::1%eth0", "fe80::1"),
    ("fe80::1%", None),
    ("fe80::1%a%b", None),
    ("fe80::1%a/b", None),
    ("1.2.3.4%x", None),
    ("0000:0000:0000:0000:0000:0000:255.255.255.255", "::ffff:ffff"),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN)
def test_golden(text: str | None, expected: str | None) -> None:
    ((version, value),) = parsed([text])
    if expected is None:
        assert version == 0 and value is None
    else:
        assert value == int(ipaddress.ip_address(expected))
    assert len(parsed([text, text])) == 2


def test_inputs_of_every_arrow_shape() -> None:
    texts = ["8.8.8.8", None, "2001:db8::1", "nope", "8.8.8.8"]
    want = [reference(t) for t in texts]
    p = parse_ips(pa.chunked_array([pa.array(texts[:2]), pa.array(texts[2:])]))
    assert p.null.tolist() == [False, True, False, False, False]
    assert p.invalid.tolist() == [False, False, False, True, False]
    for arr in (
        pa.array(texts, pa.large_string()),
        pa.array(texts).dictionary_encode(),
        pa.array(texts).slice(0),
        pa.chunked_array([pa.array(texts)]),
    ):
        q = parse_ips(arr)
        got = [
            (int(v), ((int(h) << 64) | int(lo)) if v else None)
            for v, h, lo in zip(q.version, q.hi, q.lo, strict=True)
        ]
        assert got == want
    sliced = parse_ips(pa.array(["x", *texts]).slice(1))
    assert sliced.version.tolist() == [4, 0, 6, 0, 4]
    assert len(parse_ips(pa.array([], pa.string()))) == 0
    assert parse_ips(pa.nulls(3)).null.all()


def test_python_sequences_with_non_strings() -> None:
    items: list[object] = ["1.2.3.4", 5, None, "\ud800", b"1.2.3.4"]
    arr = as_string_array(items)
    assert arr.to_pylist() == ["1.2.3.4", None, None, None, None]
    assert non_string_mask(items).tolist() == [False, True, False, True, True]
    assert parse_ips(items).version.tolist() == [4, 0, 0, 0, 0]


def test_large_batches_cross_block_boundaries() -> None:
    rng = np.random.default_rng(9)
    v4 = [str(ipaddress.IPv4Address(int(x))) for x in rng.integers(0, 2**32, 40_000)]
    v6 = [
        str(ipaddress.IPv6Address(int(x) << 64 | 1)) + "%z" for x in rng.integers(0, 2**63, 40_000)
    ]
    texts = [t for pair in zip(v4, v6, strict=True) for t in pair]  # zones: the exact path
    got = parsed(texts)
    assert got[::997] == [reference(t) for t in texts[::997]]
    assert all(v in (4, 6) for v, _ in got)
