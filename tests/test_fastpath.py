"""The one-pass reader of simple requests, held to llhttp's answer on everything it accepts.

Each stream is read twice, by a reader with the fast path and by one without (llhttp alone);
the requests, and the reader's state after them, must be identical. Streams are well-formed
pipelines, their mutations and arbitrary bytes, plus hand-picked near misses: whatever the
fast path is unsure of must reach llhttp unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_protocol import CAPS, FUZZ, mutate, state, well_formed

from takedown.sinkhole.fastpath import read_simple
from takedown.sinkhole.protocol import HttpRequestReader, ParsedRequest

LIMITS = {"raw_bytes": 512, "max_header_bytes": 32768, "max_body_bytes": 64 << 20}
CHECKIN = (
    b"POST /login.php HTTP/1.1\r\nHost: c2.example\r\nUser-Agent: Mozilla/4.0\r\n"
    b"Content-Length: 4\r\n\r\nbody"
)


def both(stream: bytes, **caps: int) -> tuple[Any, Any]:
    """The state after ``stream`` of a reader with the fast path and of one without."""
    fast = HttpRequestReader(**caps)
    slow = HttpRequestReader(**caps)
    slow.fast = False
    return state(fast.feed(stream), fast), state(slow.feed(stream), slow)


class _NoLlhttp:
    def feed_data(self, data: Any) -> None:
        raise AssertionError("llhttp was asked to read a simple request")


def test_simple_pipelines_never_reach_llhttp() -> None:
    reader = HttpRequestReader()
    reader._parser = _NoLlhttp()  # type: ignore[assignment]
    close = CHECKIN.replace(b"Host:", b"Connection: close\r\nHost:")
    got = reader.feed(CHECKIN * 3 + close + CHECKIN)
    assert [r.keep_alive for r in got] == [True, True, True, False]
    assert reader.broken and not reader.in_request


def test_a_checkin_is_read_in_one_pass() -> None:
    got = read_simple(CHECKIN, 0, **LIMITS)
    assert got is not None
    method, target, version, headers, size, sha, prefix, keep, end = got
    assert (method, target, version, size, prefix, keep, end) == (
        "POST",
        "/login.php",
        "1.1",
        4,
        b"body",
        True,
        len(CHECKIN),
    )
    assert headers == {"host": "c2.example", "user-agent": "Mozilla/4.0", "content-length": "4"}
    assert sha == hashlib.sha256(b"body").hexdigest()


def test_pipelined_checkins_are_read_from_their_offsets() -> None:
    stream = CHECKIN * 3
    pos, seen = 0, 0
    while pos < len(stream):
        got = read_simple(stream, pos, **LIMITS)
        assert got is not None
        pos = got[-1]
        seen += 1
    assert seen == 3


@pytest.mark.parametrize(
    "stream",
    [
        CHECKIN[:-1],  # body not all here yet
        CHECKIN.replace(b"\r\n\r\n", b"\r\n"),  # head not finished
        CHECKIN.replace(b"POST", b"PROPFIND"),  # a method bots seldom use: llhttp's
        CHECKIN.replace(b"/login.php", b"login.php"),  # not origin-form
        CHECKIN.replace(b"HTTP/1.1", b"HTTP/2.0"),
        CHECKIN.replace(b"Host:", b"Host :"),  # space before the colon
        CHECKIN.replace(b"c2.example", b"c2.\xe9xample"),  # obs-text
        CHECKIN.replace(b"c2.example", b"c2.\x01example"),  # control character
        CHECKIN.replace(b"Content-Length: 4", b"Content-Length: 4\r\nContent-Length: 4"),
        CHECKIN.replace(b"Content-Length: 4", b"Transfer-Encoding: chunked"),
        CHECKIN.replace(b"Content-Length: 4", b"Content-Length: +4"),
        CHECKIN.replace(b"Host: c2.example", b"Connection: Upgrade\r\nUpgrade: h2c"),
        CHECKIN.replace(b"Host: c2.example", b"Connection: keep-alive, TE"),
        CHECKIN.replace(b"Host: c2.example", b"Proxy-Connection: close"),
        CHECKIN.replace(b"Host: c2.example", b"X: a\r\nX: b"),  # repeats are joined: llhttp's
        b"\r\n" + CHECKIN,  # an empty line before the request
    ],
)
def test_what_the_fast_path_leaves_to_llhttp(stream: bytes) -> None:
    assert read_simple(stream, 0, **LIMITS) is None
    fast, slow = both(stream)
    assert fast == slow


def test_a_head_near_the_cap_is_left_to_llhttp_to_count() -> None:
    caps = {**LIMITS, "max_header_bytes": len(CHECKIN) - 4}
    assert read_simple(CHECKIN, 0, **caps) is None
    fast, slow = both(CHECKIN, max_header_bytes=caps["max_header_bytes"])
    assert fast == slow


def test_a_body_over_the_cap_is_left_to_llhttp() -> None:
    assert read_simple(CHECKIN, 0, **{**LIMITS, "max_body_bytes": 3}) is None
    fast, slow = both(CHECKIN, max_body_bytes=3)
    assert fast == slow
    assert fast[0][0]["status"] == 413


@pytest.mark.parametrize(
    ("value", "kept"),
    [(b"a  ", "a  "), (b"  a b \t", "a b \t"), (b"\ta", "a"), (b"", ""), (b"  ", "")],
)
def test_value_whitespace_as_llhttp_keeps_it(value: bytes, kept: str) -> None:
    stream = b"GET / HTTP/1.1\r\nX: " + value + b"\r\nHost: h\r\n\r\n"
    got = read_simple(stream, 0, **LIMITS)
    assert got is not None and got[3]["x"] == kept
    fast, slow = both(stream)
    assert fast == slow


def test_connection_header_decides_keep_alive_as_llhttp_does() -> None:
    for version, connection, keep in [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
    ]:
        head = b"GET / HTTP/" + version + b"\r\n"
        if connection is not None:
            head += b"Connection: " + connection + b"\r\n"
        stream = head + b"\r\n" + b"GET /next HTTP/1.1\r\n\r\n"
        got = read_simple(stream, 0, **LIMITS)
        assert got is not None and got[7] is keep
        fast, slow = both(stream)
        assert fast == slow
        assert len(fast[0]) == (2 if keep else 1)


def as_dicts(reqs: list[ParsedRequest]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in reqs]


@FUZZ
@given(case=well_formed())
def test_fuzz_well_formed_streams_read_as_llhttp_reads_them(
    case: tuple[bytes, list[dict[str, Any]]],
) -> None:
    fast, slow = both(case[0])
    assert fast == slow


@FUZZ
@given(case=well_formed(), data=st.data(), caps=CAPS)
@example(case=(CHECKIN, []), data=None, caps={"max_header_bytes": 80}).via("a cap in the head")
def test_fuzz_mutated_streams_read_as_llhttp_reads_them(
    case: tuple[bytes, list[dict[str, Any]]], data: st.DataObject | None, caps: dict[str, int]
) -> None:
    stream = case[0] if data is None else mutate(data, case[0])
    fast, slow = both(stream, **caps)
    assert fast == slow


@FUZZ
@given(stream=st.binary(max_size=300), caps=CAPS)
def test_fuzz_arbitrary_bytes_read_as_llhttp_reads_them(
    stream: bytes, caps: dict[str, int]
) -> None:
    fast, slow = both(stream, **caps)
    assert fast == slow


@FUZZ
@given(
    prefix=st.binary(max_size=40),
    cut=st.integers(0, len(CHECKIN)),
    caps=CAPS,
)
def test_fuzz_checkin_near_misses_read_as_llhttp_reads_them(
    prefix: bytes, cut: int, caps: dict[str, int]
) -> None:
    stream = CHECKIN[:cut] + prefix + CHECKIN[cut:]
    fast, slow = both(stream, **caps)
    assert fast == slow
