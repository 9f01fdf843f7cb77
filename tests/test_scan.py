"""The C fast reader (``_scan.read_simple``) against its Python reference, answer for answer.

``fastpath.read_simple_python`` is the specification (test_fastpath holds it, and through the
reader the C version, to llhttp). Here both are asked about every start position of well-formed,
mutated, arbitrary and header-heavy streams, with random caps, and must agree exactly: same
None, or the same nine fields.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_protocol import CAPS, FUZZ, mutate, well_formed

from takedown.sinkhole import _scan, fastpath
from takedown.sinkhole._scan import read_simple as read_c
from takedown.sinkhole.fastpath import read_simple_python as read_py

DEFAULT_CAPS = {"raw_bytes": 512, "max_header_bytes": 32768, "max_body_bytes": 64 << 20}
BODY = bytes(range(96))
CHECKIN = (
    b"POST /login.php HTTP/1.1\r\nHost: onlinescannow.example\r\n"
    b"User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)\r\n"
    b"Content-Length: 96\r\n\r\n" + BODY
)


def agree(stream: bytes, caps: dict[str, int] | None = None) -> list[Any]:
    """Both readers at every start position of ``stream``; their (equal) answers."""
    kw = {**DEFAULT_CAPS, **(caps or {})}
    out = []
    for pos in range(len(stream) + 1):
        c, py = read_c(stream, pos, **kw), read_py(stream, pos, **kw)
        assert c == py, (stream, pos, kw)
        out.append(c)
    return out


def test_the_package_uses_the_c_reader():
    assert fastpath.NATIVE
    assert fastpath.read_simple is read_c


def test_bodies_are_hashed_by_openssl_sha256_context_functions_any_size():
    # The C reader found OpenSSL's SHA256_Init/Update/Final in hashlib's libcrypto (Debian's
    # OpenSSL 3), not the one-shot SHA256() that fetches the algorithm on every call; hashlib
    # stays only as the fallback. Sizes around the block edges and past the size hashed
    # without the GIL, all equal to hashlib's.
    assert _scan.OPENSSL_SHA256 == "SHA256_Init/Update/Final"
    for size in (1, 55, 56, 63, 64, 65, 96, 1000, (1 << 16) - 1, 1 << 16, 3 << 20):
        body = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
        head = b"POST /b HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size
        got = read_c(head + body, 0, 512, 32768, 64 << 20)
        assert got is not None and got[4] == size
        assert got[5] == hashlib.sha256(body).hexdigest(), size


def test_a_checkin():
    got = read_c(CHECKIN, 0, **DEFAULT_CAPS)
    assert got == (
        "POST",
        "/login.php",
        "1.1",
        {
            "host": "onlinescannow.example",
            "user-agent": "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
            "content-length": "96",
        },
        96,
        hashlib.sha256(BODY).hexdigest(),
        BODY,
        True,
        len(CHECKIN),
    )
    agree(CHECKIN + CHECKIN)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: close \r\n\r\n",  # trailing space: left to llhttp
        b"GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nUPGRADE: h2c\r\n\r\n",
        b"GET / HTTP/1.1\r\nProxy-Connection: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",  # repeated, in another case
        b"GET / HTTP/1.1\r\nX-A:\t \tv \t\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A:\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 000000000000000003\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: 0000000000000000003\r\n\r\nabc",  # 19 digits
        b"POST / HTTP/1.1\r\nContent-Length: 3 \r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabc",  # body not all here
        b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"PATCH /a?b=c&d HTTP/1.1\r\n\r\n",
        b"PURGE / HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.2\r\n\r\n",
        b"GET / HTTP/1.1\n\r\n\r\n",
        b"GET / HTTP/1.1\r\nA B: c\r\n\r\n",
        b"GET / HTTP/1.1\r\n: c\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: \xe9\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"GET",
        b"",
    ],
)
def test_edges(head: bytes):
    agree(head)
    agree(head + CHECKIN)


def test_long_names_and_many_headers():
    long_name = b"X-" + b"a" * 300
    agree(b"GET / HTTP/1.1\r\n" + long_name + b": v\r\n\r\n")
    many = b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(200))
    got = agree(b"GET / HTTP/1.1\r\n" + many + b"\r\n")
    assert got[0] is not None and len(got[0][3]) == 200
    dup = many + b"x-h150: again\r\n"
    assert agree(b"GET / HTTP/1.1\r\n" + dup + b"\r\n")[0] is None


@pytest.mark.parametrize("raw_bytes", [-200, -96, -5, 0, 1, 95, 96, 97, 1000])
def test_prefix_is_a_python_slice(raw_bytes: int):
    agree(CHECKIN, {"raw_bytes": raw_bytes})


def test_caps_at_their_edges():
    head_len = CHECKIN.index(b"\r\n\r\n")
    for cap in range(head_len - 3, head_len + 10):
        agree(CHECKIN, {"max_header_bytes": cap})
    for cap in (0, 95, 96, 97):
        agree(CHECKIN, {"max_body_bytes": cap})


def test_a_repeated_head_is_read_from_the_memo_with_its_caps_and_body_checked_anew():
    head = CHECKIN[: CHECKIN.index(b"\r\n\r\n") + 4]
    first = read_c(head + BODY, 0, **DEFAULT_CAPS)
    other = bytes(reversed(BODY))
    again = read_c(b"xx" + head + other, 2, **DEFAULT_CAPS)
    assert first is not None and again is not None
    assert again[3] is first[3] and again[1] is first[1]  # the same objects: remembered
    assert again[5] == hashlib.sha256(other).hexdigest() != first[5]
    assert again[6] == other and again[8] == len(head) + 98
    # What depends on the caps or the buffer is checked on every call, as in Python.
    head_len = len(head) - 4
    for cap in range(head_len - 2, head_len + 8):
        agree(head + other, {"max_header_bytes": cap})
    agree(head + other, {"max_body_bytes": 95})
    agree(head + other[:50], {})  # body not all here


def test_the_memo_starts_over_when_full():
    """More distinct heads than the memo holds (1,024): every answer still agrees."""
    for i in range(2_600):
        stream = CHECKIN.replace(b"/login.php", f"/l{i}.php".encode())
        agree(stream, {})
        if i % 100 == 0:
            agree(CHECKIN, {})


def test_arguments_are_checked():
    with pytest.raises(TypeError):
        read_c("text", 0, **DEFAULT_CAPS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        read_c(CHECKIN, 0, raw_bytes=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        read_c(CHECKIN, "0", 512, 32768, 1 << 26)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        read_c("text", 0, 512, 32768, 1 << 26)  # type: ignore[arg-type]
    by_position = read_c(CHECKIN, 0, 512, 32768, 1 << 26)
    assert by_position == read_c(CHECKIN, 0, **DEFAULT_CAPS) is not None
    assert read_c(CHECKIN, len(CHECKIN) + 5, **DEFAULT_CAPS) is None
    assert read_c(memoryview(CHECKIN), 0, **DEFAULT_CAPS) == read_py(CHECKIN, 0, **DEFAULT_CAPS)  # type: ignore[arg-type]


@FUZZ
@given(case=well_formed(), data=st.data(), caps=CAPS)
@example(case=(CHECKIN, []), data=None, caps={})
def test_fuzz_well_formed_and_mutated(
    case: tuple[bytes, list[dict[str, Any]]], data: st.DataObject | None, caps: dict[str, int]
):
    agree(case[0], caps)
    if data is not None:
        agree(mutate(data, case[0]), caps)


@FUZZ
@given(stream=st.binary(max_size=300), caps=CAPS)
def test_fuzz_arbitrary_bytes(stream: bytes, caps: dict[str, int]):
    agree(stream, caps)


NAMES = st.sampled_from(
    [
        "Host",
        "host",
        "Connection",
        "CONNECTION",
        "Content-Length",
        "content-length",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Connection",
        "User-Agent",
        "X-Bot",
        "x-bot",
        "A",
    ]
)
VALUES = st.sampled_from(
    ["close", "Keep-Alive", "keep-alive ", "0", "3", "007", "", " 3", "\t3", "x", "chunked"]
) | st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"]),
    version=st.sampled_from(["1.0", "1.1", "1.2", "2.0"]),
    headers=st.lists(st.tuples(NAMES, VALUES), max_size=6),
    body=st.binary(max_size=12),
    caps=CAPS,
)
def test_fuzz_header_grammar(
    method: str, version: str, headers: list[tuple[str, str]], body: bytes, caps: dict[str, int]
):
    head = f"{method} /x HTTP/{version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    agree(head.encode("latin-1") + b"\r\n" + body, caps)
