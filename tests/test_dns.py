"""The DNS sinkhole's sans-I/O core: query packets built by hand per RFC 1035, answers read back.

No DNS library: queries are assembled byte by byte here and answers are decoded by the small
parser below, so the test does not share assumptions with the code under test.

Golden files: ``tests/golden/dns/NAME.bin`` is a query packet as received, ``NAME.json`` what
the sinkhole must make of it under ``GOLDEN_POLICY`` (checked by hand). ``UPDATE_GOLDEN=1
pytest tests/test_dns.py`` rewrites the JSON from the current code; review the diff.
"""

from __future__ import annotations

import ipaddress
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown.sinkhole.dns import (
    QTYPES,
    DnsError,
    DnsPolicy,
    DnsQuery,
    answer,
    error_response,
    parse_query,
    servfail,
)

GOLDEN = Path(__file__).parent / "golden" / "dns"
V4 = "192.0.2.1"
V6 = "2001:db8::1"
POLICY = DnsPolicy.build(["c2.example", "Rustock-C2.Example."], V4, V6, ttl=300)
POLICY_V4_ONLY = DnsPolicy.build(["c2.example"], V4, None, ttl=60)
GOLDEN_POLICY = POLICY
A, NS, MX, TXT, AAAA, ANY = 1, 2, 15, 16, 28, 255
IN, CH = 1, 3
RD, AA, QR = 0x0100, 0x0400, 0x8000
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


# -- building queries (RFC 1035 4.1) ----------------------------------------------------------
def wire_name(name: str | list[bytes]) -> bytes:
    labels = [x.encode() for x in name.split(".") if x] if isinstance(name, str) else name
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def query(
    name: str | list[bytes],
    qtype: int = A,
    qclass: int = IN,
    *,
    qid: int = 0x1234,
    flags: int = RD,
    qdcount: int = 1,
    tail: bytes = b"",
    arcount: int = 0,
) -> bytes:
    header = struct.pack("!HHHHHH", qid, flags, qdcount, 0, 0, arcount)
    return header + wire_name(name) + struct.pack("!HH", qtype, qclass) + tail


# An EDNS(0) OPT pseudo-record (RFC 6891): root name, type 41, UDP size 1232, no options.
OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


# -- reading answers back ---------------------------------------------------------------------
@dataclass
class Record:
    name: bytes  # wire form, pointers expanded
    type: int
    cls: int
    ttl: int
    rdata: bytes


@dataclass
class Response:
    id: int
    flags: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    question: bytes  # wire form as found
    qname: bytes
    qtype: int
    qclass: int
    answers: list[Record]

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


def read_name(pkt: bytes, pos: int) -> tuple[bytes, int]:
    """Name at ``pos`` in wire form with pointers followed; the position after it."""
    out = b""
    end = None
    hops = 0
    while True:
        length = pkt[pos]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = struct.unpack_from("!H", pkt, pos)[0] & 0x3FFF
            hops += 1
            assert hops < 10, "pointer loop"
            continue
        assert length & 0xC0 == 0, "extended label in a response"
        out += pkt[pos : pos + 1 + length]
        pos += 1 + length
        assert pos <= len(pkt)
        if length == 0:
            return out, (pos if end is None else end)


def read_response(pkt: bytes) -> Response:
    """Strict: every byte accounted for, or AssertionError."""
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", pkt)
    pos = 12
    qname, qtype, qclass, question = b"", 0, 0, b""
    assert qd in (0, 1)
    if qd:
        qname, pos = read_name(pkt, pos)
        qtype, qclass = struct.unpack_from("!HH", pkt, pos)
        pos += 4
        question = pkt[12:pos]
    answers = []
    for _ in range(an + ns + ar):
        name, pos = read_name(pkt, pos)
        rtype, rcls, ttl, rdlen = struct.unpack_from("!HHIH", pkt, pos)
        pos += 10
        answers.append(Record(name, rtype, rcls, ttl, pkt[pos : pos + rdlen]))
        pos += rdlen
        assert pos <= len(pkt)
    assert pos == len(pkt), "trailing bytes"
    return Response(qid, flags, qd, an, ns, ar, question, qname, qtype, qclass, answers)


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


# -- parse_query ------------------------------------------------------------------------------
def test_parse_a_query() -> None:
    pkt = query("bot.c2.example", A, qid=0xBEEF)
    q = parse_query(pkt)
    assert (q.id, q.flags, q.qname, q.qtype, q.qclass) == (0xBEEF, RD, "bot.c2.example", A, IN)
    assert q.question == pkt[12:]
    assert q.qtype_name == "A"


def test_parse_keeps_the_question_as_sent_but_folds_the_name() -> None:
    # DNS 0x20: resolvers randomise the case; the echo must keep it, the name must not.
    pkt = query("BoT.c2.ExAmPlE", AAAA, tail=OPT, arcount=1)
    q = parse_query(pkt)
    assert q.qname == "bot.c2.example"
    assert q.question == wire_name("BoT.c2.ExAmPlE") + struct.pack("!HH", AAAA, IN)
    assert q.qtype_name == "AAAA"


def test_parse_root_and_unknown_types() -> None:
    q = parse_query(query([], NS))
    assert (q.qname, q.qtype_name) == ("", "NS")
    assert parse_query(query("x.example", 65280)).qtype_name == "TYPE65280"
    assert all(parse_query(query("x", t)).qtype_name == n for t, n in QTYPES.items())


def test_parse_ignores_flags_and_sections_after_the_question() -> None:
    q = parse_query(query("a.b", TXT, flags=0x0010 | 0x0020, tail=OPT, arcount=1))
    assert (q.flags, q.qname, q.qtype) == (0x0030, "a.b", TXT)


def test_non_ascii_bytes_are_not_case_folded() -> None:
    q = parse_query(query([b"\xc4X\xe4", b"c2", b"example"]))
    assert q.qname == "\xc4x\xe4.c2.example"


def test_dots_and_backslashes_inside_labels_are_escaped() -> None:
    # One label "evil.c2" under "example" must not pass for the two labels evil + c2.
    q = parse_query(query([b"evil.c2", b"example"]))
    assert q.qname == "evil\\046c2.example"
    assert not POLICY.covers(q.qname)
    q = parse_query(query([b"x.c2.example"]))
    assert q.qname == "x\\046c2\\046example"
    assert answer(q, POLICY)[1] == "REFUSED"
    assert parse_query(query([b"a\\b", b"c2", b"example"])).qname == "a\\092b.c2.example"


def test_name_length_limit() -> None:
    # 255 octets on the wire at most, root label included (RFC 1035 2.3.4).
    labels = [b"a" * 63] * 3 + [b"b" * 61]
    assert len(wire_name(labels)) == 255
    assert parse_query(query(labels)).qname.endswith("b" * 61)
    labels[-1] = b"b" * 62
    assert len(wire_name(labels)) == 256
    with pytest.raises(DnsError, match="longer than 255"):
        parse_query(query(labels))


HEADER_OK = struct.pack("!HHHHHH", 0x4242, RD, 1, 0, 0, 0)
BAD_QUERIES = {
    "empty": (b"", None),
    "short header": (b"\x12\x34\x01\x00\x00", None),
    "response": (struct.pack("!HHHHHH", 7, QR | RD, 1, 1, 0, 0) + wire_name("a") + b"\0\1\0\1", 7),
    "opcode STATUS": (query("a", qid=8, flags=(2 << 11)), 8),
    "opcode NOTIFY": (query("a", qid=9, flags=(4 << 11) | AA), 9),
    "no question": (query("a", qid=10, qdcount=0), 10),
    "two questions": (query("a", qid=11, qdcount=2) + wire_name("b") + b"\0\1\0\1", 11),
    "label past packet": (HEADER_OK + b"\x03ab", 0x4242),
    "no root label": (HEADER_OK + b"\x03abc", 0x4242),
    "pointer": (HEADER_OK + b"\xc0\x0c\x00\x01\x00\x01", 0x4242),
    "extended label": (HEADER_OK + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01", 0x4242),
    "no type": (HEADER_OK + b"\x01a\x00\x00", 0x4242),
    "no class": (HEADER_OK + b"\x01a\x00\x00\x01\x00", 0x4242),
}


@pytest.mark.parametrize(("pkt", "qid"), BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_malformed_queries_raise_dns_error(pkt: bytes, qid: int | None) -> None:
    with pytest.raises(DnsError) as info:
        parse_query(pkt)
    assert info.value.query_id == qid
    assert isinstance(info.value, ValueError)


# -- answer -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["c2.example", "bot.c2.example", "a.b.c.C2.EXAMPLE", "x.rustock-c2.example"]
)
@pytest.mark.parametrize("flags", [0, RD])
def test_a_answer_in_and_under_zones(name: str, flags: int) -> None:
    pkt = query(name, A, qid=0xCAFE, flags=flags)
    reply, rcode = answer(parse_query(pkt), POLICY)
    assert rcode == "NOERROR"
    r = read_response(reply)
    assert r.id == 0xCAFE
    assert r.flags == QR | AA | flags  # QR, AA, RD copied, opcode 0, RA 0, rcode 0
    assert (r.qdcount, r.ancount, r.nscount, r.arcount) == (1, 1, 0, 0)
    assert r.question == pkt[12:]
    (rec,) = r.answers
    assert (rec.name, rec.type, rec.cls, rec.ttl, rec.rdata) == (r.qname, A, IN, 300, ip(V4))
    # Exact bytes: header, the question echoed, one record whose name points at offset 12.
    expect = (
        struct.pack("!HHHHHH", 0xCAFE, QR | AA | flags, 1, 1, 0, 0)
        + pkt[12:]
        + struct.pack("!HHHIH", 0xC00C, A, IN, 300, 4)
        + bytes([192, 0, 2, 1])
    )
    assert reply == expect


def test_aaaa_answer() -> None:
    pkt = query("Bot.C2.example", AAAA, qid=1)
    reply, rcode = answer(parse_query(pkt), POLICY)
    r = read_response(reply)
    assert (rcode, r.rcode, r.ancount) == ("NOERROR", 0, 1)
    (rec,) = r.answers
    assert (rec.type, rec.cls, rec.ttl, rec.rdata) == (AAAA, IN, 300, ip(V6))
    assert len(rec.rdata) == 16
    assert reply[-16:] == bytes.fromhex("20010db8000000000000000000000001")


def test_aaaa_without_ipv6_is_nodata() -> None:
    reply, rcode = answer(parse_query(query("bot.c2.example", AAAA, qid=2)), POLICY_V4_ONLY)
    r = read_response(reply)
    assert (rcode, r.rcode, r.flags & AA, r.ancount, r.answers) == ("NOERROR", 0, AA, 0, [])
    reply, _ = answer(parse_query(query("bot.c2.example", A, qid=2)), POLICY_V4_ONLY)
    assert read_response(reply).answers[0].ttl == 60


@pytest.mark.parametrize("qtype", [NS, MX, TXT, 6, 33, 65, ANY])
def test_other_types_in_zone_are_nodata(qtype: int) -> None:
    pkt = query("bot.c2.example", qtype, qid=3, flags=0)
    reply, rcode = answer(parse_query(pkt), POLICY)
    r = read_response(reply)
    assert rcode == "NOERROR"
    assert (r.flags, r.qdcount, r.ancount, r.question) == (QR | AA, 1, 0, pkt[12:])
    assert reply == struct.pack("!HHHHHH", 3, QR | AA, 1, 0, 0, 0) + pkt[12:]


@pytest.mark.parametrize(
    "name",
    [
        "example",
        "badc2.example",  # suffix, but not at a label boundary
        "c2.example.evil",
        "c2.examplex",
        "xc2.example",
        "example.com",
        "",
    ],
)
def test_refused_outside_the_zones(name: str) -> None:
    pkt = query(name, A, qid=4)
    reply, rcode = answer(parse_query(pkt), POLICY)
    r = read_response(reply)
    assert rcode == "REFUSED"
    assert (r.rcode, r.flags & AA, r.flags & RD, r.ancount, r.question) == (5, 0, RD, 0, pkt[12:])


def test_label_boundary_example_com() -> None:
    policy = DnsPolicy.build(["example.com"], V4, None)
    assert answer(parse_query(query("badexample.com")), policy)[1] == "REFUSED"
    assert answer(parse_query(query("bad.example.com")), policy)[1] == "NOERROR"
    assert answer(parse_query(query("example.com")), policy)[1] == "NOERROR"


def test_classes() -> None:
    assert answer(parse_query(query("bot.c2.example", A, CH)), POLICY)[1] == "REFUSED"
    reply, rcode = answer(parse_query(query("bot.c2.example", A, 255)), POLICY)
    assert rcode == "NOERROR"
    assert read_response(reply).answers[0].cls == IN


def test_policy_build_normalises() -> None:
    p = DnsPolicy.build(
        [" Example.COM. ", "", "  ", "a.example", "example.com"], "192.0.2.9", "::1", 5
    )
    assert p.zones == ("a.example", "example.com")
    assert (p.ipv4, p.ipv6, p.ttl) == (bytes([192, 0, 2, 9]), bytes(15) + b"\x01", 5)
    assert DnsPolicy.build([], None, None).ipv4 is None
    with pytest.raises(ValueError):
        DnsPolicy.build(["x"], "not-an-ip", None)
    with pytest.raises(ValueError):
        DnsPolicy.build(["x"], "::1", None)


@pytest.mark.parametrize("ttl", [-1, 2**31, 2**32])
def test_policy_rejects_ttls_dns_cannot_carry(ttl: int) -> None:
    with pytest.raises(ValueError, match="TTL"):
        DnsPolicy.build(["x"], V4, None, ttl=ttl)


def test_max_ttl() -> None:
    p = DnsPolicy.build(["x"], V4, None, ttl=2**31 - 1)
    assert read_response(answer(parse_query(query("x")), p)[0]).answers[0].ttl == 2**31 - 1


# -- error_response and servfail --------------------------------------------------------------
def error_reply(pkt: bytes) -> bytes | None:
    with pytest.raises(DnsError) as info:
        parse_query(pkt)
    return error_response(info.value)


def test_formerr() -> None:
    reply = error_reply(query("a", qid=0x0BAD, qdcount=2) + wire_name("b") + b"\0\1\0\1")
    assert reply == struct.pack("!HHHHHH", 0x0BAD, QR | RD | 1, 0, 0, 0, 0)
    reply = error_reply(query("a", qid=5, flags=0, qdcount=0))
    assert reply is not None
    r = read_response(reply)
    assert (r.id, r.flags, r.qdcount) == (5, QR | 1, 0)


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_notimp_echoes_the_opcode(opcode: int) -> None:
    reply = error_reply(query("a", qid=6, flags=(opcode << 11) | RD))
    assert reply is not None
    r = read_response(reply)
    assert (r.id, r.rcode, r.opcode, r.flags & RD, r.flags & QR) == (6, 4, opcode, RD, QR)
    assert (r.qdcount, r.ancount) == (0, 0)


@pytest.mark.parametrize("pkt", [b"", b"\x00" * 11, BAD_QUERIES["response"][0]])
def test_no_reply_when_nothing_can_be_said(pkt: bytes) -> None:
    assert error_reply(pkt) is None


def test_servfail() -> None:
    pkt = query("Bot.c2.example", AAAA, qid=0x5EF, flags=RD)
    reply = servfail(parse_query(pkt))
    assert reply == struct.pack("!HHHHHH", 0x5EF, QR | RD | 2, 1, 0, 0, 0) + pkt[12:]
    r = read_response(reply)
    assert (r.rcode, r.flags & AA, r.question) == (2, 0, pkt[12:])


# -- golden files -----------------------------------------------------------------------------
def describe(reply: bytes | None) -> dict[str, Any] | None:
    if reply is None:
        return None
    r = read_response(reply)
    return {
        "id": r.id,
        "qr": bool(r.flags & QR),
        "opcode": r.opcode,
        "aa": bool(r.flags & AA),
        "tc": bool(r.flags & 0x0200),
        "rd": bool(r.flags & RD),
        "ra": bool(r.flags & 0x0080),
        "rcode": r.rcode,
        "counts": [r.qdcount, r.ancount, r.nscount, r.arcount],
        "question": r.question.hex(),
        "answers": [
            {
                "name": a.name.hex(),
                "type": a.type,
                "class": a.cls,
                "ttl": a.ttl,
                "rdata": a.rdata.hex(),
            }
            for a in r.answers
        ],
    }


def golden_view(pkt: bytes) -> dict[str, Any]:
    try:
        q = parse_query(pkt)
    except DnsError as exc:
        reply = error_response(exc)
        return {
            "query": None,
            "error": str(exc),
            "error_query_id": exc.query_id,
            "rcode": None,
            "response": reply.hex() if reply is not None else None,
            "decoded": describe(reply),
        }
    reply, rcode = answer(q, GOLDEN_POLICY)
    return {
        "query": {
            "id": q.id,
            "flags": q.flags,
            "qname": q.qname,
            "qtype": q.qtype_name,
            "qclass": q.qclass,
            "question": q.question.hex(),
        },
        "error": None,
        "error_query_id": None,
        "rcode": rcode,
        "response": reply.hex(),
        "decoded": describe(reply),
    }


GOLDEN_CASES = sorted(p.stem for p in GOLDEN.glob("*.bin"))


def test_golden_files_are_present() -> None:
    assert len(GOLDEN_CASES) >= 12


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden(name: str) -> None:
    got = golden_view((GOLDEN / f"{name}.bin").read_bytes())
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2) + "\n")
    expect = json.loads(path.read_text())
    assert set(got) == set(expect)
    for key in expect:
        assert got[key] == expect[key], f"{name}: {key}"


# -- fuzzing ----------------------------------------------------------------------------------
ZONE_LABELS = [[b"c2", b"example"], [b"rustock-c2", b"example"]]
LABEL = st.binary(min_size=1, max_size=63) | st.sampled_from(
    [b"c2", b"C2", b"example", b"EXAMPLE", b"badc2", b"a.b", b"\\", b"x"]
)


@st.composite
def names(draw: st.DrawFn) -> list[bytes]:
    labels = draw(st.lists(LABEL, max_size=6))
    if draw(st.booleans()):
        labels += draw(st.sampled_from(ZONE_LABELS))
    while len(wire_name(labels)) > 255:
        labels.pop(0)
    return labels


def covered(labels: list[bytes]) -> bool:
    """In a zone of POLICY, decided on labels (independent of the code's string form)."""
    low = [x.lower() for x in labels]
    return any(len(low) >= len(z) and low[len(low) - len(z) :] == z for z in ZONE_LABELS)


@FUZZ
@given(pkt=st.binary(max_size=300))
def test_fuzz_parse_raises_only_dns_error(pkt: bytes) -> None:
    try:
        q = parse_query(pkt)
    except DnsError as exc:
        reply = error_response(exc)
        if reply is not None:
            r = read_response(reply)
            assert r.id == exc.query_id and r.flags & QR and r.rcode in (1, 4)
        return
    assert isinstance(q, DnsQuery)
    assert pkt[12 : 12 + len(q.question)] == q.question
    reply, rcode = answer(q, POLICY)
    assert rcode in ("NOERROR", "REFUSED")
    assert read_response(reply).question == q.question
    read_response(servfail(q))


@FUZZ
@given(
    labels=names(),
    qid=st.integers(0, 0xFFFF),
    flags=st.integers(0, 0xFFFF).map(lambda f: f & ~0xF800),  # a query, opcode 0
    qtype=st.sampled_from([A, AAAA, TXT, MX, ANY]) | st.integers(0, 0xFFFF),
    qclass=st.sampled_from([IN, IN, CH, 255]) | st.integers(0, 0xFFFF),
    tail=st.sampled_from([b"", OPT]) | st.binary(max_size=20),
    v6=st.booleans(),
)
def test_fuzz_answers_parse_back_consistently(
    labels: list[bytes], qid: int, flags: int, qtype: int, qclass: int, tail: bytes, v6: bool
) -> None:
    pkt = query(labels, qtype, qclass, qid=qid, flags=flags, tail=tail)
    q = parse_query(pkt)
    assert (q.id, q.flags, q.qtype, q.qclass) == (qid, flags, qtype, qclass)
    assert q.question == wire_name(labels) + struct.pack("!HH", qtype, qclass)
    assert q.qname.count(".") == max(len(labels) - 1, 0)
    policy = POLICY if v6 else DnsPolicy.build(["c2.example", "rustock-c2.example"], V4, None)
    reply, rcode = answer(q, policy)
    r = read_response(reply)
    assert (r.id, r.opcode, r.flags & RD, r.flags & QR) == (qid, 0, flags & RD, QR)
    assert (r.qdcount, r.question, r.qname, r.qtype, r.qclass) == (
        1,
        q.question,
        wire_name(labels),
        qtype,
        qclass,
    )
    assert (r.nscount, r.arcount) == (0, 0)
    inside = covered(labels) and qclass in (IN, 255)
    assert rcode == ("NOERROR" if inside else "REFUSED")
    assert r.rcode == (0 if inside else 5)
    assert bool(r.flags & AA) is inside
    rdata = {A: policy.ipv4, AAAA: policy.ipv6}.get(qtype) if inside else None
    if rdata is None:
        assert (r.ancount, r.answers) == (0, [])
    else:
        (rec,) = r.answers
        assert (rec.name, rec.type, rec.cls, rec.ttl, rec.rdata) == (r.qname, qtype, IN, 300, rdata)
    fail = read_response(servfail(q))
    assert (fail.id, fail.rcode, fail.question, fail.ancount) == (qid, 2, q.question, 0)


@FUZZ
@given(labels=names(), data=st.data())
def test_fuzz_mutated_queries(labels: list[bytes], data: st.DataObject) -> None:
    pkt = bytearray(query(labels, data.draw(st.integers(0, 0xFFFF)), tail=OPT, arcount=1))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(pkt) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            pkt[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del pkt[i:]
            if not pkt:
                break
        else:
            pkt[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        q = parse_query(bytes(pkt))
    except DnsError as exc:
        reply = error_response(exc)
        assert reply is None or read_response(reply).id == exc.query_id
    else:
        read_response(answer(q, POLICY)[0])
