"""Sans-I/O DNS side of the sinkhole: parse a query, decide, build the answer (RFC 1035).

Only what a sinkhole needs: the header and the first question. Names in sinkholed zones get
the sinkhole's own address for A (and AAAA when one is configured) and an empty NOERROR for
other types; names outside the zones are REFUSED; packets that are not queries get FORMERR
(when the header can be read) or nothing.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "QTYPES",
    "DnsError",
    "DnsPolicy",
    "DnsQuery",
    "answer",
    "error_response",
    "parse_query",
    "servfail",
]

_HEADER = struct.Struct("!HHHHHH")
QTYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    43: "DS",
    48: "DNSKEY",
    64: "SVCB",
    65: "HTTPS",
    255: "ANY",
}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsError(ValueError):
    """The packet is not a DNS query the sinkhole can answer; ``query_id`` if the header read."""

    def __init__(self, message: str, query_id: int | None = None, flags: int = 0) -> None:
        super().__init__(message)
        self.query_id = query_id
        self.flags = flags


@dataclass(frozen=True, slots=True)
class DnsQuery:
    id: int
    flags: int
    qname: str  # ASCII lower case, no trailing dot, "" for the root; see parse_query
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the answer

    @property
    def qtype_name(self) -> str:
        return QTYPES.get(self.qtype, f"TYPE{self.qtype}")


def parse_query(packet: bytes) -> DnsQuery:
    """Parse a query packet; raises DnsError (never anything else) on any malformed input."""
    if len(packet) < _HEADER.size:
        raise DnsError("packet shorter than a DNS header")
    qid, flags, qdcount, _an, _ns, _ar = _HEADER.unpack_from(packet)
    if flags & 0x8000:
        raise DnsError("packet is a response, not a query", qid, flags)
    if (flags >> 11) & 0xF != 0:
        raise DnsError("only standard queries (opcode 0) are answered", qid, flags)
    if qdcount != 1:
        raise DnsError(f"query has {qdcount} questions, not 1", qid, flags)
    pos = _HEADER.size
    labels: list[str] = []
    total = 0
    while True:
        if pos >= len(packet):
            raise DnsError("question name runs past the packet", qid, flags)
        length = packet[pos]
        if length & 0xC0:
            # Compression pointers cannot appear in the first question: nothing precedes it.
            raise DnsError("compressed or extended label in the question", qid, flags)
        pos += 1
        if length == 0:
            break
        if pos + length > len(packet):
            raise DnsError("label runs past the packet", qid, flags)
        total += length + 1
        if total + 1 > 255:  # with the root label's length byte (RFC 1035 2.3.4)
            raise DnsError("question name longer than 255 bytes", qid, flags)
        # bytes.lower() folds ASCII only, as DNS does (RFC 4343). A "." or "\" inside a label
        # is escaped (RFC 1035 5.1) so that a label can never pass for two.
        label = packet[pos : pos + length].lower().decode("latin-1")
        labels.append(label.replace("\\", "\\092").replace(".", "\\046"))
        pos += length
    if pos + 4 > len(packet):
        raise DnsError("question type and class missing", qid, flags)
    qtype, qclass = struct.unpack_from("!HH", packet, pos)
    question = packet[_HEADER.size : pos + 4]
    return DnsQuery(qid, flags, ".".join(labels), qtype, qclass, question)


@dataclass(frozen=True, slots=True)
class DnsPolicy:
    """What the DNS sinkhole answers."""

    zones: tuple[str, ...]
    ipv4: bytes | None
    ipv6: bytes | None
    ttl: int = 300

    def __post_init__(self) -> None:
        if not 0 <= self.ttl <= 0x7FFFFFFF:  # RFC 2181 8; answer() could not pack it
            raise ValueError(f"DNS TTL must be 0..2147483647 seconds, not {self.ttl}")

    @classmethod
    def build(
        cls, zones: Iterable[str], ipv4: str | None, ipv6: str | None, ttl: int = 300
    ) -> DnsPolicy:
        clean = tuple(sorted({z.strip().strip(".").lower() for z in zones if z.strip()}))
        v4 = ipaddress.IPv4Address(ipv4).packed if ipv4 else None
        v6 = ipaddress.IPv6Address(ipv6).packed if ipv6 else None
        return cls(clean, v4, v6, ttl)

    def covers(self, qname: str) -> bool:
        return any(qname == z or qname.endswith("." + z) for z in self.zones)


def _response(
    qid: int,
    query_flags: int,
    rcode: int,
    question: bytes,
    answers: list[bytes],
    authoritative: bool,
) -> bytes:
    flags = 0x8000 | (query_flags & 0x7900) | rcode  # QR, copy OPCODE and RD (RFC 1035 4.1.1)
    if authoritative:
        flags |= 0x0400
    header = _HEADER.pack(qid, flags, 1 if question else 0, len(answers), 0, 0)
    return header + question + b"".join(answers)


def answer(query: DnsQuery, policy: DnsPolicy) -> tuple[bytes, str]:
    """The response packet and its rcode name."""
    if query.qclass not in (1, 255) or not policy.covers(query.qname):
        return _response(query.id, query.flags, 5, query.question, [], False), "REFUSED"
    answers = []
    rdata = {1: policy.ipv4, 28: policy.ipv6}.get(query.qtype)
    if rdata is not None:
        # Name is a pointer to the question (offset 12); class IN.
        answers.append(
            struct.pack("!HHHIH", 0xC00C, query.qtype, 1, policy.ttl, len(rdata)) + rdata
        )
    return _response(query.id, query.flags, 0, query.question, answers, True), "NOERROR"


def error_response(exc: DnsError) -> bytes | None:
    """FORMERR/NOTIMP for a query whose header could be read; None when nothing can be said."""
    if exc.query_id is None or exc.flags & 0x8000:
        return None
    rcode = 4 if (exc.flags >> 11) & 0xF else 1
    return _response(exc.query_id, exc.flags, rcode, b"", [], False)


def servfail(query: DnsQuery) -> bytes:
    """SERVFAIL for a query the sinkhole could not record (its spool is not writable)."""
    return _response(query.id, query.flags, 2, query.question, [], False)
