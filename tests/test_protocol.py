"""HttpRequestReader over real HTTP/1.x byte streams, http_row/dns_row, golden files, fuzzing.

The reader's result must not depend on how TCP happened to cut the stream, so most tests feed
the same bytes whole, byte by byte and cut at every boundary, and demand identical results.

Golden files: ``tests/golden/http/NAME.http`` holds a request stream exactly as on the wire,
``NAME.json`` the requests it must parse into (checked by hand). ``UPDATE_GOLDEN=1 pytest
tests/test_protocol.py`` rewrites the JSON from the current code; review the diff before
committing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown.sinkhole.protocol import (
    SPOOL_SCHEMA,
    HttpRequestReader,
    ParsedRequest,
    Sensor,
    classify,
    dns_row,
    http_row,
)
from takedown.sinkhole.rules import BUILTIN_RULES, Match, RuleSet
from takedown.sinkhole.spool import rows_to_batch

GOLDEN = Path(__file__).parent / "golden" / "http"
RULES = RuleSet([BUILTIN_RULES])
SENSOR = Sensor(name="test-w0", provider="tests", headers_kept=("host", "user-agent", "x-kept"))
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
# FUZZ_EXAMPLES=20000 for a long hunt; the default keeps the file quick.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


# -- helpers ----------------------------------------------------------------------------------
def run(pieces: list[bytes], **caps: int) -> tuple[list[ParsedRequest], HttpRequestReader]:
    reader = HttpRequestReader(**caps)
    out: list[ParsedRequest] = []
    for piece in pieces:
        got = reader.feed(piece)
        assert isinstance(got, list)
        out.extend(got)
    return out, reader


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def bytewise(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


def state(reqs: list[ParsedRequest], reader: HttpRequestReader) -> Any:
    return [dataclasses.asdict(r) for r in reqs], reader.broken, reader.in_request


def parse(stream: bytes, **caps: int) -> list[ParsedRequest]:
    """Parse ``stream`` whole, byte by byte and in 7-byte pieces; all three must agree."""
    whole = run([stream], **caps)
    assert state(*run(bytewise(stream), **caps)) == state(*whole)
    assert state(*run(cut(stream, list(range(7, len(stream), 7))), **caps)) == state(*whole)
    return whole[0]


def assert_split_invariant(stream: bytes, **caps: int) -> None:
    """Every two-piece cut, and byte by byte, gives what the whole stream gives."""
    expect = state(*run([stream], **caps))
    for i in range(len(stream) + 1):
        assert state(*run(cut(stream, [i]), **caps)) == expect, f"cut at {i}"
    assert state(*run(bytewise(stream), **caps)) == expect


def req(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def chunked(body_chunks: list[bytes], trailers: bytes = b"") -> bytes:
    out = b""
    for c in body_chunks:
        out += f"{len(c):x}".encode() + b"\r\n" + c + b"\r\n"
    return out + b"0\r\n" + trailers + b"\r\n"


def golden_view(r: ParsedRequest) -> dict[str, Any]:
    m = None if r.error else classify(RULES, r)
    return {
        "method": r.method,
        "target": r.target,
        "version": r.version,
        "host": r.host,
        "body_size": r.body_size,
        "body_sha256": r.body_sha256,
        "keep_alive": r.keep_alive,
        "error": r.error,
        "status": r.status,
        "malware": m.malware if m else None,
        "rule": m.rule if m else None,
        "bot_id": m.bot_id if m else None,
    }


# -- keep-alive -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("head", "keep"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive(head: bytes, keep: bool) -> None:
    follow = b"GET /next HTTP/1.1\r\n\r\n"
    reqs, reader = run([head + follow])
    assert reqs[0].keep_alive is keep
    assert reqs[0].error is None
    if keep:
        assert [r.target for r in reqs] == ["/", "/next"]
        assert not reader.broken
    else:
        # The connection closes after the answer: what follows is not read, and is no error.
        assert [r.target for r in reqs] == ["/"]
        assert reader.broken
        assert reader.feed(follow) == []
    assert_split_invariant(head + follow)


def test_http10_version_and_09_request_line() -> None:
    (r,) = parse(b"GET /x HTTP/1.0\r\n\r\n")
    assert (r.version, r.keep_alive) == ("1.0", False)
    (r,) = parse(b"GET /abc\r\n\r\n")  # HTTP/0.9: no version, no headers, never kept alive
    assert (r.method, r.target, r.version, r.keep_alive, r.error) == (
        "GET",
        "/abc",
        "0.9",
        False,
        None,
    )


# -- pipelining and splitting -----------------------------------------------------------------
PIPELINE = (
    req("GET", "/first?x=1", {"Host": "a.example", "User-Agent": "bot/1"})
    + req("POST", "/gate.php", {"Host": "a.example", "Content-Length": "12"}, b"GET / HTTP/1")
    + req("POST", "/up", {"Transfer-Encoding": "chunked"}, chunked([b"ab\r\n", b"\x00" * 17]))
    + req("PUT", "/empty", {"Content-Length": "0"})
    + req("DELETE", "/last", {"Connection": "close"})
)


def test_pipelined_requests_in_one_feed() -> None:
    reqs = parse(PIPELINE)
    assert [(r.method, r.target) for r in reqs] == [
        ("GET", "/first?x=1"),
        ("POST", "/gate.php"),
        ("POST", "/up"),
        ("PUT", "/empty"),
        ("DELETE", "/last"),
    ]
    assert [r.body_size for r in reqs] == [0, 12, 21, 0, 0]
    assert reqs[1].body_prefix == b"GET / HTTP/1"  # a body that looks like a request stays body
    assert reqs[2].body_sha256 == hashlib.sha256(b"ab\r\n" + b"\x00" * 17).hexdigest()
    assert [r.keep_alive for r in reqs] == [True, True, True, True, False]
    assert all(r.error is None and r.status == 0 for r in reqs)


def test_pipeline_is_split_invariant_at_every_byte() -> None:
    assert_split_invariant(PIPELINE)


def test_pipeline_three_piece_cuts() -> None:
    expect = state(*run([PIPELINE]))
    n = len(PIPELINE)
    for i in range(0, n, 5):
        for j in range(i, n, 11):
            assert state(*run(cut(PIPELINE, [i, j]))) == expect, (i, j)


def test_requests_come_out_as_they_complete() -> None:
    reader = HttpRequestReader()
    first = req("GET", "/1")
    second = req("POST", "/2", {"Content-Length": "4"}, b"body")
    assert [r.target for r in reader.feed(first + second[:-1])] == ["/1"]
    assert reader.in_request
    assert [r.target for r in reader.feed(second[-1:])] == ["/2"]
    assert not reader.in_request
    assert reader.feed(b"") == []


def test_in_request_tracks_partial_heads() -> None:
    reader = HttpRequestReader()
    assert not reader.in_request
    assert reader.feed(b"GE") == []
    assert reader.in_request
    assert reader.feed(b"T /x HTTP/1.1\r\nHost: a") == []
    assert reader.in_request
    assert [r.host for r in reader.feed(b"\r\n\r\n")] == ["a"]
    assert not reader.in_request
    assert reader.feed(b"\r\n") == []  # blank lines between requests are allowed and ignored
    assert not reader.in_request


# -- bodies -----------------------------------------------------------------------------------
def test_content_length_body() -> None:
    body = bytes(range(256)) * 3
    (r,) = parse(req("POST", "/p", {"Content-Length": str(len(body))}, body))
    assert r.body_size == len(body)
    assert r.body_sha256 == hashlib.sha256(body).hexdigest()
    assert r.body_prefix == body[:512]


def test_content_length_with_whitespace() -> None:
    (r,) = parse(b"POST / HTTP/1.1\r\nContent-Length:  5  \r\n\r\nabcde")
    assert (r.body_size, r.body_prefix) == (5, b"abcde")


def test_no_body_hashes_empty() -> None:
    (r,) = parse(req("GET", "/"))
    assert (r.body_size, r.body_sha256, r.body_prefix) == (0, EMPTY_SHA, b"")


def test_chunked_body_with_extensions_and_trailers() -> None:
    stream = (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;name=value;flag\r\nWiki\r\n"
        b'6;q="quoted"\r\npedia \r\n'
        b"E\r\nin \r\n\r\nchunks.\r\n"
        b"0;last\r\nExpires: never\r\nHost: trailer.example\r\n\r\n"
    )
    (r,) = parse(stream)
    body = b"Wikipedia in \r\n\r\nchunks."
    assert r.body_size == len(body)
    assert r.body_sha256 == hashlib.sha256(body).hexdigest()
    assert r.body_prefix == body
    # Trailers are not request headers: a trailing Host must not change the host.
    assert r.headers == {"host": "h", "transfer-encoding": "chunked"}
    assert_split_invariant(stream)


@pytest.mark.parametrize("te", ["chunked", "Chunked", "gzip, chunked"])
def test_transfer_encodings_ending_in_chunked(te: str) -> None:
    (r,) = parse(req("POST", "/", {"Transfer-Encoding": te}, chunked([b"xyz"])))
    assert (r.body_size, r.error) == (3, None)


def test_body_hash_and_size_cover_the_whole_body_however_fed() -> None:
    body = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB with newlines in it here and there
    body = body.replace(b"\x00", b"\n")
    stream = req("POST", "/big", {"Content-Length": str(len(body))}, body) + req("GET", "/after")
    expect = hashlib.sha256(body).hexdigest()
    for size in (1, 1000, 4093, 65536, len(stream)):
        if size == 1:
            reqs, _ = run([*bytewise(stream[:3000]), stream[3000:]])
        else:
            reqs, _ = run(cut(stream, list(range(size, len(stream), size))))
        assert [r.target for r in reqs] == ["/big", "/after"]
        assert (reqs[0].body_size, reqs[0].body_sha256) == (len(body), expect)
        assert reqs[0].body_prefix == body[:512]


@pytest.mark.parametrize("raw_bytes", [0, 1, 16, 96, 10_000])
def test_prefix_is_capped_at_raw_bytes(raw_bytes: int) -> None:
    body = bytes(range(200))
    stream = req("POST", "/", {"Content-Length": "200"}, body)
    (r,) = parse(stream, raw_bytes=raw_bytes)
    assert r.body_prefix == body[:raw_bytes]
    assert r.body_size == 200
    assert r.body_sha256 == hashlib.sha256(body).hexdigest()
    (c,) = parse(req("POST", "/", {"Transfer-Encoding": "chunked"}, chunked([body[:7], body[7:]])))
    assert c.body_prefix == body[:512]


# -- methods and targets ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "method",
    [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "OPTIONS",
        "TRACE",
        "PATCH",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "SEARCH",
        "REPORT",
        "MKACTIVITY",
        "CHECKOUT",
        "MERGE",
        "M-SEARCH",
        "NOTIFY",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "PURGE",
        "MKCALENDAR",
        "LINK",
        "UNLINK",
        "SOURCE",
        "QUERY",
        "ACL",
        "BIND",
        "REBIND",
        "UNBIND",
    ],
)
def test_any_method_llhttp_accepts(method: str) -> None:
    (r,) = parse(req(method, "/p/a.php?id=1&x=%20y", {"Host": "h"}))
    assert (r.method, r.error) == (method, None)
    assert (r.path, r.query) == ("/p/a.php", "id=1&x=%20y")


@pytest.mark.parametrize("method", [b"BREW", b"get", b"FOO", b"G ET"])
def test_unknown_methods_are_malformed(method: bytes) -> None:
    (r,) = parse(method + b" / HTTP/1.1\r\n\r\n")
    assert (r.status, r.keep_alive) == (400, False)
    assert r.error is not None and r.error.startswith("malformed HTTP")


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/a/b.php", "/a/b.php", ""),
        ("/a?", "/a", ""),
        ("/a?b=1&c", "/a", "b=1&c"),
        ("/a?b=?c", "/a", "b=?c"),
        ("http://evil.example/x?y=1", "http://evil.example/x", "y=1"),
        ("*", "*", ""),
        ("/%00%ff?%3f", "/%00%ff", "%3f"),
    ],
)
def test_targets_paths_and_queries(target: str, path: str, query: str) -> None:
    (r,) = parse(req("OPTIONS" if target == "*" else "GET", target))
    assert (r.target, r.path, r.query) == (target, path, query)


def test_headers_are_lower_cased_and_repeats_joined() -> None:
    (r,) = parse(b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nUser-Agent: Bot \xe9\r\n\r\n")
    assert r.headers == {"x-a": "1, 2", "user-agent": "Bot \xe9"}


# -- caps -------------------------------------------------------------------------------------
def test_head_exactly_at_the_cap_passes_one_byte_more_is_431() -> None:
    # The cap counts the request line and the header lines as sent (CRLF included), not the
    # blank line that ends the head.
    stream = req("GET", "/abc", {"Host": "a.example", "X-Pad": "p" * 50})
    head = len(stream) - 2
    (ok,) = parse(stream, max_header_bytes=head)
    assert ok.error is None
    (bad,) = parse(stream, max_header_bytes=head - 1)
    assert (bad.status, bad.keep_alive) == (431, False)
    assert bad.error == f"request head over {head - 1} bytes"


def test_header_cap_431_one_long_value() -> None:
    stream = b"GET /x HTTP/1.1\r\nHost: a\r\nX-Long: " + b"v" * 1500 + b"\r\n\r\n"
    (r,), reader = run([stream], max_header_bytes=1024)
    assert (r.status, r.error, r.keep_alive) == (431, "request head over 1024 bytes", False)
    assert reader.broken
    assert (r.method, r.target, r.headers) == ("GET", "/x", {"host": "a"})
    assert reader.feed(b"GET / HTTP/1.1\r\n\r\n") == []
    assert_split_invariant(stream, max_header_bytes=1024)


def test_header_cap_431_many_headers() -> None:
    headers = {f"X-H{i}": "v" * 20 for i in range(40)}
    stream = req("GET", "/", headers) + req("GET", "/next")
    (r,) = parse(stream, max_header_bytes=500)
    assert r.status == 431
    # Request line 16 bytes, "X-H0: v..v" lines 28, "X-H10: v..v" lines 29: 17 headers make 499
    # bytes, the 18th would make 528.
    assert len(r.headers) == 17
    assert_split_invariant(stream, max_header_bytes=500)


def test_header_cap_431_long_target() -> None:
    stream = req("GET", "/" + "a" * 3000)
    (r,) = parse(stream, max_header_bytes=1000)
    assert (r.status, r.target, r.headers) == (431, "", {})


def test_header_cap_holds_no_more_than_the_cap_without_a_newline() -> None:
    # A header line that never ends must not be buffered without bound: 431 once it is over.
    reader = HttpRequestReader(max_header_bytes=4096)
    assert reader.feed(b"GET / HTTP/1.1\r\nX: ") == []
    got: list[ParsedRequest] = []
    for _ in range(100):
        got += reader.feed(b"z" * 100)
        if got:
            break
    assert [r.status for r in got] == [431]
    assert reader.broken


def test_header_cap_applies_to_each_pipelined_request_alone() -> None:
    one = req("GET", "/", {"X": "y" * 300})
    reqs = parse(one * 10, max_header_bytes=400)
    assert len(reqs) == 10
    assert all(r.error is None for r in reqs)


def test_body_exactly_at_the_cap_passes_one_byte_more_is_413() -> None:
    body = bytes(range(100))
    (ok,) = parse(req("POST", "/", {"Content-Length": "100"}, body), max_body_bytes=100)
    assert (ok.error, ok.body_size) == (None, 100)
    stream = req("POST", "/", {"Content-Length": "101"}, body + b"!") + req("GET", "/n")
    (r,), reader = run([stream], max_body_bytes=100)
    assert (r.status, r.keep_alive) == (413, False)
    assert r.error == "body over 100 bytes (the first 100 hashed)"
    # What was hashed is said exactly: the first max_body_bytes bytes.
    assert (r.body_size, r.body_sha256) == (100, hashlib.sha256(body).hexdigest())
    assert reader.broken
    assert_split_invariant(stream, max_body_bytes=100)


def test_body_cap_chunked() -> None:
    stream = req("POST", "/", {"Transfer-Encoding": "chunked"}, chunked([b"a" * 60, b"b" * 60]))
    (r,) = parse(stream, max_body_bytes=100, raw_bytes=8)
    assert (r.status, r.body_size, r.body_prefix) == (413, 100, b"a" * 8)
    assert r.body_sha256 == hashlib.sha256(b"a" * 60 + b"b" * 40).hexdigest()
    assert_split_invariant(stream, max_body_bytes=100)


def test_body_cap_fails_before_the_whole_body_arrived() -> None:
    reader = HttpRequestReader(max_body_bytes=1000)
    assert reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n") == []
    assert reader.feed(b"x" * 999) == []
    assert [r.status for r in reader.feed(b"xx")] == [413]


# -- malformed input --------------------------------------------------------------------------
MALFORMED = {
    "bad header token": b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
    "control char in header value": b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    "control char in target": b"GET /a\x7fb HTTP/1.1\r\n\r\n",
    "LF line ends": b"GET / HTTP/1.1\nHost: a\n\n",
    "bad version": b"GET / HTTP/1.2\r\n\r\n",
    "garbage version": b"GET / HTTX/1.1\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
    "CL and TE": (
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "duplicate CL": b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "non-numeric CL": b"POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\nabc",
    "TE not chunked": b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "bad chunk size": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk overrun": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
    "TLS client hello": bytes.fromhex("1603010200010001fc0303") + bytes(32),
    "SSH banner": b"SSH-2.0-OpenSSH_8.9\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "leading space": b" GET / HTTP/1.1\r\n\r\n",
    "NUL": b"\x00",
}


@pytest.mark.parametrize("stream", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_400_and_the_reader_stops(stream: bytes) -> None:
    good = req("GET", "/before", {"Host": "a"})
    reqs, reader = run([good + stream])
    assert [r.target for r in reqs[:1]] == ["/before"]
    assert len(reqs) == 2, reqs
    bad = reqs[1]
    assert (bad.status, bad.keep_alive) == (400, False)
    assert bad.error is not None and bad.error.startswith("malformed HTTP: ")
    assert reader.broken and not reader.in_request
    assert reader.feed(req("GET", "/after")) == []
    assert_split_invariant(good + stream)


def test_junk_without_newline_fails_at_once() -> None:
    # A TLS hello sent to port 80 has no line end; it must not wait for one.
    reader = HttpRequestReader()
    (r,) = reader.feed(bytes.fromhex("16030100c4010000c00303") + bytes(20))
    assert r.status == 400


def test_error_request_does_not_inherit_the_previous_request() -> None:
    stream = req("POST", "/prev", {"Content-Length": "5"}, b"hello") + b"\x16\x03\x01junk"
    reqs = parse(stream)
    assert len(reqs) == 2
    bad = reqs[1]
    # Junk starts a request of its own: an empty one, not the last one's target or body.
    assert (bad.method, bad.target, bad.headers, bad.status) == ("", "", {}, 400)
    assert (bad.body_sha256, bad.body_prefix, bad.body_size) == (EMPTY_SHA, b"", 0)


def test_bytes_after_connection_close_are_no_request() -> None:
    # Regression: these bytes used to come out as a 400 request carrying the previous request's
    # target, body hash and body prefix.
    stream = req("POST", "/prev", {"Connection": "close", "Content-Length": "5"}, b"hello")
    reqs = parse(stream + req("GET", "/next"))
    assert [(r.target, r.body_prefix, r.error) for r in reqs] == [("/prev", b"hello", None)]


def test_error_request_keeps_what_was_complete() -> None:
    stream = b"POST /gate.php?id=1 HTTP/1.1\r\nHost: h.example\r\nUser-Agent: u\r\nBad: v\x01\r\n"
    (r,) = parse(stream)
    assert (r.method, r.target, r.version) == ("POST", "/gate.php?id=1", "")
    assert r.headers == {"host": "h.example", "user-agent": "u"}
    assert (r.body_sha256, r.status) == (EMPTY_SHA, 400)
    # httptools hands a header over only once the next one starts: a bad name loses the header
    # line before it (the same however the stream is split).
    stream = b"POST /g HTTP/1.1\r\nHost: h.example\r\nUser-Agent: u\r\nBad\x01: v\r\n"
    (r,) = parse(stream)
    assert (r.method, r.target, r.headers) == ("POST", "/g", {"host": "h.example"})
    assert_split_invariant(stream)


def test_bad_target_leaves_no_partial_target() -> None:
    stream = b"GET /gate.php?id=12\x0034 HTTP/1.1\r\n\r\n"
    (r,) = parse(stream)
    assert (r.method, r.target, r.status) == ("", "", 400)
    assert_split_invariant(stream)


def test_truncated_stream_yields_nothing_yet() -> None:
    stream = req("POST", "/", {"Content-Length": "10"}, b"12345")
    reqs, reader = run([stream])
    assert reqs == []
    assert reader.in_request and not reader.broken
    assert_split_invariant(stream)


# -- CONNECT and Upgrade ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "stream",
    [
        b"CONNECT mail.example:25 HTTP/1.1\r\nHost: mail.example:25\r\n\r\nEHLO x\r\n",
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05",
        b"POST /u HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\nabc",
    ],
)
def test_connect_and_upgrade_are_recorded_then_closed(stream: bytes) -> None:
    reqs, reader = run([req("GET", "/first") + stream])
    assert [r.error for r in reqs] == [None, None]
    assert reqs[1].keep_alive is False
    assert reader.broken
    assert reader.feed(req("GET", "/x")) == []
    assert_split_invariant(req("GET", "/first") + stream)


def test_connect_target() -> None:
    (r,) = parse(b"CONNECT mail.example:25 HTTP/1.1\r\n\r\n")
    assert (r.method, r.target, r.path) == ("CONNECT", "mail.example:25", "mail.example:25")


def test_upgrade_header_without_connection_upgrade_is_plain() -> None:
    reqs = parse(req("GET", "/", {"Upgrade": "h2c"}) + req("GET", "/2"))
    assert [(r.target, r.keep_alive) for r in reqs] == [("/", True), ("/2", True)]


# -- rows -------------------------------------------------------------------------------------
def row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    assert len(row) == len(SPOOL_SCHEMA)
    return dict(zip(SPOOL_SCHEMA.names, row, strict=True))


def as_batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    batch = rows_to_batch(rows, SPOOL_SCHEMA)
    assert batch.schema.equals(SPOOL_SCHEMA)
    assert batch.num_rows == len(rows)
    return batch


def make_http_row(
    r: ParsedRequest, match: Match | None = None, status: int = 200
) -> tuple[Any, ...]:
    return http_row(
        r,
        match,
        now_us=1_700_000_000_123_456,
        peer=("198.51.100.7", 49152),
        local=("192.0.2.1", 80),
        sensor=SENSOR,
        status=status,
    )


def test_http_row_matches_the_spool_schema() -> None:
    body = bytes(range(96))
    (r,) = parse(
        req(
            "POST",
            "/login.php",
            {"Host": "C2.Example:8080", "User-Agent": "IE", "Content-Length": "96", "X-Other": "1"},
            body,
        )
    )
    m = classify(RULES, r)
    assert (m.malware, m.rule) == ("rustock", "rustock.c2-login")
    row = make_http_row(r, m)
    d = row_dict(row)
    assert d["time.source"] == d["time.observation"] == 1_700_000_000_123_456
    assert (d["source.ip"], d["source.port"]) == ("198.51.100.7", 49152)
    assert (d["destination.ip"], d["destination.port"]) == ("192.0.2.1", 80)
    assert d["destination.fqdn"] == "c2.example"
    assert (d["protocol.transport"], d["protocol.application"]) == ("tcp", "http")
    assert (d["feed.name"], d["feed.provider"]) == ("takedown-sinkhole", "tests")
    assert (d["extra.http.method"], d["extra.http.target"]) == ("POST", "/login.php")
    assert (d["extra.http.version"], d["extra.http.user_agent"]) == ("1.1", "IE")
    assert json.loads(d["extra.http.headers"]) == {"host": "C2.Example:8080", "user-agent": "IE"}
    assert d["extra.http.status"] == 200
    assert (d["extra.body.size"], d["extra.body.sha256"]) == (96, hashlib.sha256(body).digest())
    assert (d["malware.name"], d["extra.rule"], d["extra.bot_id"]) == (
        "rustock",
        "rustock.c2-login",
        None,
    )
    assert (d["classification.taxonomy"], d["classification.type"]) == (
        "malicious-code",
        "infected-system",
    )
    assert (d["extra.sensor"], d["extra.error"], d["raw"]) == ("test-w0", None, body)
    assert d["extra.dns.qtype"] is None and d["extra.dns.rcode"] is None
    batch = as_batch([row])
    assert batch.column("extra.body.size").to_pylist() == [96]
    assert batch.column("time.source").type == pa.timestamp("us", tz="UTC")


def test_spool_schema_has_no_enrichment_fields() -> None:
    names = set(SPOOL_SCHEMA.names)
    assert not names & {"source.asn", "source.as_name", "source.network", "source.geolocation.cc"}
    assert "raw" in names and "extra.body.sha256" in names


@pytest.mark.parametrize(
    ("host", "fqdn"),
    [
        ("Example.COM", "example.com"),
        ("Example.COM:8080", "example.com"),
        ("example.com.", "example.com"),
        ("EXAMPLE.com.:80", "example.com"),
        ("192.0.2.1:80", "192.0.2.1"),
        ("[2001:DB8::1]:8080", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        (":80", None),
        ("", None),
        ("a" * 300, "a" * 255),
    ],
)
def test_http_row_fqdn_is_host_lower_cased_without_port(host: str, fqdn: str | None) -> None:
    r = ParsedRequest(
        method="GET", target="/", version="1.1", headers={"host": host} if host else {}
    )
    assert row_dict(make_http_row(r))["destination.fqdn"] == fqdn


def test_http_row_kept_headers_json() -> None:
    r = ParsedRequest(headers={"x-kept": 'a "quoted" \xe9', "cookie": "secret", "host": "h"})
    d = row_dict(make_http_row(r))
    assert json.loads(d["extra.http.headers"]) == {"host": "h", "x-kept": 'a "quoted" \xe9'}
    assert list(json.loads(d["extra.http.headers"])) == ["host", "x-kept"]  # sensor's order
    assert (
        row_dict(make_http_row(ParsedRequest(headers={"cookie": "c"})))["extra.http.headers"]
        is None
    )


def test_head_fields_are_remembered_by_the_headers_dict_itself() -> None:
    headers = {"host": "C2.Example:80", "user-agent": "bot/1", "x-kept": "1"}
    first = make_http_row(ParsedRequest(headers=headers))
    assert row_dict(make_http_row(ParsedRequest(headers=headers))) == row_dict(first)
    # An equal dict is another dict (and a changed copy gives its own fields, not the memo's).
    changed = {**headers, "host": "other.example"}
    d = row_dict(make_http_row(ParsedRequest(headers=changed)))
    assert d["destination.fqdn"] == "other.example"
    assert row_dict(first)["destination.fqdn"] == "c2.example"
    many = [{"host": f"h{i}.example"} for i in range(5000)]  # past the memo's size
    assert [
        row_dict(make_http_row(ParsedRequest(headers=h)))["destination.fqdn"] for h in many
    ] == [f"h{i}.example" for i in range(5000)]


def test_http_row_of_error_request_and_no_match() -> None:
    (r,) = parse(b"\x16\x03\x01")
    d = row_dict(make_http_row(r, None, status=r.status))
    assert d["extra.http.status"] == 400
    assert d["extra.error"].startswith("malformed HTTP")
    assert d["malware.name"] is None and d["extra.rule"] is None
    assert (d["extra.http.method"], d["extra.http.target"]) == (None, None)
    empty = bytes.fromhex(EMPTY_SHA)
    assert (d["extra.body.size"], d["extra.body.sha256"], d["raw"]) == (0, empty, b"")
    as_batch([make_http_row(r)])


def test_http_row_unknown_match_and_bot_id() -> None:
    (r,) = parse(req("GET", "/check.php?id=0123456789abcdef", {"Host": "x"}))
    m = classify(RULES, r)
    d = row_dict(make_http_row(r, m))
    assert (d["malware.name"], d["extra.rule"], d["extra.bot_id"]) == (
        "generic-http-bot",
        "generic.checkin-with-bot-id",
        "0123456789abcdef",
    )
    (u,) = parse(req("GET", "/index.html"))
    d = row_dict(make_http_row(u, classify(RULES, u)))
    assert (d["malware.name"], d["extra.rule"], d["classification.taxonomy"]) == (
        "unknown",
        None,
        "other",
    )


def test_http_row_caps_the_target() -> None:
    r = ParsedRequest(method="GET", target="/" + "t" * 10_000)
    assert len(row_dict(make_http_row(r))["extra.http.target"]) == 8192


def make_dns_row(**kw: Any) -> tuple[Any, ...]:
    args: dict[str, Any] = {
        "qname": "bot.c2.example",
        "qtype": "A",
        "rcode": "NOERROR",
        "match": None,
        "packet": b"\x12\x34" + bytes(600),
        "now_us": 1_700_000_000_000_000,
        "peer": ("2001:db8::53", 5353),
        "local": ("192.0.2.53", 53),
        "transport": "udp",
        "sensor": SENSOR,
    }
    args.update(kw)
    return dns_row(
        args.pop("qname"),
        args.pop("qtype"),
        args.pop("rcode"),
        args.pop("match"),
        args.pop("packet"),
        **args,
    )


def test_dns_row_matches_the_spool_schema() -> None:
    m = Match("conficker", "conficker.dga", None, "malicious-code", "infected-system")
    d = row_dict(make_dns_row(match=m))
    assert (d["destination.fqdn"], d["extra.dns.qtype"], d["extra.dns.rcode"]) == (
        "bot.c2.example",
        "A",
        "NOERROR",
    )
    assert (d["protocol.transport"], d["protocol.application"]) == ("udp", "dns")
    assert (d["source.ip"], d["source.port"]) == ("2001:db8::53", 5353)
    assert (d["malware.name"], d["extra.rule"], d["extra.bot_id"]) == (
        "conficker",
        "conficker.dga",
        None,
    )
    assert len(d["raw"]) == 512
    assert d["extra.http.method"] is None and d["extra.http.status"] is None
    err = row_dict(
        make_dns_row(qname=None, qtype=None, rcode="FORMERR", error="bad", transport="tcp")
    )
    assert (err["destination.fqdn"], err["extra.error"], err["malware.name"]) == (None, "bad", None)
    as_batch([make_dns_row(), make_dns_row(qname=None, qtype=None, rcode="DROPPED", packet=b"")])


def test_http_and_dns_rows_share_one_batch() -> None:
    (r,) = parse(req("GET", "/"))
    batch = as_batch([make_http_row(r), make_dns_row(), make_http_row(r, classify(RULES, r))])
    assert batch.column("protocol.application").to_pylist() == ["http", "dns", "http"]


# -- golden files -----------------------------------------------------------------------------
GOLDEN_CASES = sorted(p.stem for p in GOLDEN.glob("*.http"))


def test_golden_files_are_present() -> None:
    assert len(GOLDEN_CASES) >= 12
    for name in GOLDEN_CASES:
        assert (GOLDEN / f"{name}.json").exists() or os.environ.get("UPDATE_GOLDEN"), name


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden(name: str) -> None:
    stream = (GOLDEN / f"{name}.http").read_bytes()
    got = [golden_view(r) for r in parse(stream)]
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2) + "\n")
    expect = json.loads(path.read_text())
    assert len(got) == len(expect)
    for i, (g, e) in enumerate(zip(got, expect, strict=True)):
        assert g == e, f"{name} request #{i}"
    assert_split_invariant(stream)


# -- fuzzing ----------------------------------------------------------------------------------
TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12
)
PATH_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-._~%/=&+,;:@!$'()*"
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "M-SEARCH", "PURGE"]
SKIP_HEADERS = {"content-length", "transfer-encoding", "connection", "upgrade", "expect"}


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[bytes, list[dict[str, Any]]]:
    """A pipeline of valid requests and what each must parse into."""
    stream = b""
    expect = []
    n = draw(st.integers(1, 4))
    for i in range(n):
        method = draw(st.sampled_from(METHODS))
        path = "/" + draw(st.text(PATH_CHARS, max_size=30))
        query = draw(st.none() | st.text(PATH_CHARS + "?", max_size=20))
        target = path if query is None else f"{path}?{query}"
        version = draw(st.sampled_from(["1.0", "1.1"]))
        last = i == n - 1
        close = last and draw(st.booleans())
        headers = []
        for _ in range(draw(st.integers(0, 5))):
            name = draw(TOKEN)
            if name.lower() in SKIP_HEADERS:
                continue
            value = draw(
                st.text(
                    st.characters(
                        min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"
                    ),
                    max_size=30,
                )
            )
            headers.append((name, value.strip()))
        if version == "1.0" and not close:
            headers.append(("Connection", "keep-alive"))
        elif version == "1.1" and close:
            headers.append(("Connection", "close"))
        body = draw(st.binary(max_size=300))
        framing = draw(st.sampled_from(["cl", "chunked", "none"])) if body else "none"
        if framing == "cl" or (framing == "none" and draw(st.booleans())):
            headers.append(("Content-Length", str(len(body))))
            wire_body = body
        elif framing == "chunked" and version == "1.1":
            headers.append(("Transfer-Encoding", "chunked"))
            cuts = sorted(draw(st.lists(st.integers(1, max(len(body) - 1, 1)), max_size=4)))
            parts = [p for p in cut(body, [c for c in cuts if c < len(body)]) if p]
            wire_body = b""
            for p in parts:
                ext = draw(st.sampled_from([b"", b";a=b", b';n="v v"', b";x"]))
                wire_body += f"{len(p):X}".encode() + ext + b"\r\n" + p + b"\r\n"
            trailer = draw(st.sampled_from([b"", b"X-Trailer: t\r\n", b"A: 1\r\nB: 2\r\n"]))
            wire_body += b"0\r\n" + trailer + b"\r\n"
        else:
            headers.append(("Content-Length", str(len(body))))
            wire_body = body
        head = f"{method} {target} HTTP/{version}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        stream += draw(st.sampled_from([b"", b"\r\n"])) if i else b""
        stream += head.encode("latin-1") + b"\r\n" + wire_body
        expect.append(
            {
                "method": method,
                "target": target,
                "version": version,
                "body_size": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "body_prefix": body[:512],
                "keep_alive": not close,
            }
        )
    return stream, expect


def mutate(data: st.DataObject, stream: bytes) -> bytes:
    b = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        i = data.draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            b[i:i] = data.draw(
                st.sampled_from([b"\r\n", b"\n", b" ", b":", b"\x00", b"0\r\n", b"\xff"])
            )
        elif op == "delete" and b:
            del b[i : i + data.draw(st.integers(1, 5))]
        elif op == "truncate":
            del b[i:]
        elif op == "dup":
            b[i:i] = b[i : i + data.draw(st.integers(1, 40))]
    return bytes(b)


def draw_cuts(data: st.DataObject, stream: bytes) -> list[bytes]:
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    return cut(stream, points)


CAPS = st.fixed_dictionaries(
    {},
    optional={
        "raw_bytes": st.integers(0, 64),
        "max_header_bytes": st.integers(16, 400),
        "max_body_bytes": st.integers(0, 400),
    },
)


@FUZZ
@given(case=well_formed(), data=st.data())
def test_fuzz_well_formed_requests_parse_exactly(
    case: tuple[bytes, list[dict[str, Any]]], data: st.DataObject
) -> None:
    stream, expect = case
    reqs, reader = run(draw_cuts(data, stream))
    got = [{k: dataclasses.asdict(r)[k] for k in expect[0]} for r in reqs]
    assert got == expect
    assert all(r.error is None and r.status == 0 for r in reqs)
    assert not reader.in_request
    assert reader.broken is (not expect[-1]["keep_alive"])


@FUZZ
@given(case=well_formed(), data=st.data(), caps=CAPS)
def test_fuzz_mutated_requests_are_split_invariant(
    case: tuple[bytes, list[dict[str, Any]]], data: st.DataObject, caps: dict[str, int]
) -> None:
    stream = mutate(data, case[0])
    whole = state(*run([stream], **caps))
    assert state(*run(draw_cuts(data, stream), **caps)) == whole
    reqs = whole[0]
    assert all(r["error"] is None for r in reqs[:-1])  # only the last can be an error
    for r in reqs:
        assert (r["error"] is None) == (r["status"] == 0)
        assert r["status"] in (0, 400, 413, 431)
        assert len(r["body_prefix"]) <= caps.get("raw_bytes", 512)
        assert r["body_size"] <= caps.get("max_body_bytes", 64 << 20)


@FUZZ
@given(stream=st.binary(max_size=400), data=st.data())
def test_fuzz_arbitrary_bytes(stream: bytes, data: st.DataObject) -> None:
    reqs, reader = run(draw_cuts(data, stream))
    assert all(isinstance(r, ParsedRequest) for r in reqs)
    assert state(reqs, reader) == state(*run([stream]))
    rows = [
        make_http_row(r, None if r.error else classify(RULES, r), r.status or 200) for r in reqs
    ]
    as_batch(rows)


@FUZZ
@given(stream=st.binary(max_size=200).map(lambda b: b"GET /" + b), data=st.data())
def test_fuzz_bytes_after_a_request_line_start(stream: bytes, data: st.DataObject) -> None:
    whole = state(*run([stream]))
    assert state(*run(draw_cuts(data, stream))) == whole


LATIN1 = st.text(st.characters(codec="latin-1"), max_size=40)


@FUZZ
@given(
    r=st.builds(
        ParsedRequest,
        method=LATIN1,
        target=st.text(st.characters(codec="latin-1"), max_size=9000),
        version=LATIN1,
        headers=st.dictionaries(
            st.sampled_from(["host", "user-agent", "x-kept", "cookie"]), LATIN1
        ),
        body_size=st.integers(0, 2**62),
        body_sha256=st.sampled_from(["", EMPTY_SHA]),
        body_prefix=st.binary(max_size=600),
        keep_alive=st.booleans(),
        error=st.none() | LATIN1,
        status=st.sampled_from([0, 400, 413, 431]),
    ),
    match=st.none() | st.builds(Match, LATIN1, LATIN1, st.none() | LATIN1, LATIN1, LATIN1),
    status=st.integers(100, 599),
    port=st.integers(0, 65535),
)
def test_fuzz_http_row_always_fits_the_schema(
    r: ParsedRequest, match: Match | None, status: int, port: int
) -> None:
    row = http_row(
        r,
        match,
        now_us=1,
        peer=("2001:db8::1", port),
        local=("192.0.2.1", port),
        sensor=SENSOR,
        status=status,
    )
    batch = as_batch([row, row])
    assert batch.column("extra.http.status").to_pylist() == [status, status]
