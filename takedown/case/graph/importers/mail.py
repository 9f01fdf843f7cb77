"""E-mail headers (.eml, or an mbox of many): who sent it, from where, answered where.

Only headers are read. Links from the sender's address: ``uses-alias`` its display name,
``reply-to`` a different Reply-To, ``sent-via`` the Message-ID's domain, ``sent-from`` the
originating address (X-Originating-IP, else the bottom-most public address of the Received
chain: the first hop the sender's own machine talked to). Relays further up the chain are
kept as ``related-to`` with unknown confidence: they carried the mail, nothing more.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import ipaddress
import re
from collections.abc import Iterator
from email.message import Message
from typing import Any

from takedown.case.graph.importers.base import (
    Parsed,
    RecordLinks,
    Reject,
    parse_time,
    run_records,
)

__all__ = ["CONFIDENCE", "parse_mail", "split_mbox"]

CONFIDENCE = {
    "display-name": 40,  # anyone can type any display name
    "reply-to": 70,
    "message-id": 60,
    "x-originating-ip": 75,  # added by the sender's webmail provider
    "received-origin": 60,  # forgeable below the first trusted hop
}

_IP_IN_BRACKETS = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]{3,45})\]")
_IP_BARE = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
_MAX_HEADER = 8192


def split_mbox(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(first line number, message bytes) per message of an mbox (``From `` separator lines)."""
    start, line_no, first_line = 0, 1, 1
    pos = 0
    found_any = False
    while True:
        nl = data.find(b"\n", pos)
        line_end = len(data) if nl < 0 else nl + 1
        if data.startswith(b"From ", pos) and (pos == 0 or data[pos - 1 : pos] == b"\n"):
            if found_any and pos > start:
                yield first_line, data[start:pos]
            start, first_line, found_any = line_end, line_no + 1, True
        if nl < 0:
            break
        pos = line_end
        line_no += 1
    if found_any:
        if start < len(data):
            yield first_line, data[start:]
    else:
        yield 1, data


# Hops inside a mail provider's own network tell nothing about the sender: private, shared
# (CGNAT), loopback, link-local and reserved addresses are skipped. The documentation ranges
# are kept: they are never routed, so they only appear in examples such as the demo case.
_INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def _public(text: str) -> str | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if (
        addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or (addr.is_reserved and addr.version == 4)
        or any(addr in net for net in _INTERNAL if net.version == addr.version)
    ):
        return None
    return str(addr)


def _received_ips(msg: Message) -> list[str]:
    """Public addresses of the Received chain, bottom (oldest hop) first."""
    out: list[str] = []
    for header in reversed(msg.get_all("Received") or []):
        text = str(header)[:_MAX_HEADER]
        from_part = text.split(" by ", 1)[0]
        for m in [*_IP_IN_BRACKETS.finditer(from_part), *_IP_BARE.finditer(from_part)]:
            ip = _public(m.group(1))
            if ip and ip not in out:
                out.append(ip)
                break
    return out


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, TypeError, IndexError, AttributeError):
        return ""
    return "" if value is None else str(value)[:_MAX_HEADER]


def _address(msg: Message, name: str) -> tuple[str, str] | None:
    text = _header(msg, name)
    if not text:
        return None
    pairs = email.utils.getaddresses([text])
    for display, addr in pairs:
        if "@" in addr:
            return display.strip(), addr.strip()
    return None


def parse_mail(data: bytes, sha256: str, name: str = "") -> Parsed:
    """Each message of an .eml or mbox file is one record."""

    def records() -> Iterator[tuple[str, Any, str]]:
        for line, chunk in split_mbox(data):
            where = f"message at line {line}"
            head = chunk.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
            raw = head[:4000].decode("utf-8", "replace")
            try:
                msg = email.message_from_bytes(head + b"\n\n", policy=email.policy.compat32)
            except Exception as exc:  # the email package is not fuzz-proof
                yield where, Reject(where, f"unreadable headers: {exc!r}", raw), raw
                continue
            yield where, msg, raw

    def build(rec: RecordLinks, msg: Message) -> None:
        sender = _address(msg, "From") or _address(msg, "Sender")
        if sender is None:
            from takedown.case.graph.importers.base import RecordError

            raise RecordError("From: no address")
        display, addr = sender
        when = None
        try:
            when = parse_time(_header(msg, "Date") or None, "Date")
        except Exception:
            when = None
        src = rec.ref("email", addr, "From", required=True)
        msgid = _header(msg, "Message-ID").strip().strip("<>")
        note = f"Message-ID <{msgid[:200]}>" if msgid else ""
        span = (when, when)
        if display and "@" not in display:
            rec.link(
                src,
                "uses-alias",
                rec.ref("alias", display, "From display name"),
                CONFIDENCE["display-name"],
                column="From",
                valid_from=span[0],
                valid_to=span[1],
                dst_label=display[:128],
                note=note,
            )
        reply = _address(msg, "Reply-To")
        if reply is not None:
            rec.link(
                src,
                "reply-to",
                rec.ref("email", reply[1], "Reply-To"),
                CONFIDENCE["reply-to"],
                column="Reply-To",
                valid_from=span[0],
                valid_to=span[1],
                note=note,
            )
        if "@" in msgid:
            rec.link(
                src,
                "sent-via",
                rec.ref("domain", msgid.rsplit("@", 1)[1], "Message-ID"),
                CONFIDENCE["message-id"],
                column="Message-ID",
                valid_from=span[0],
                valid_to=span[1],
                note=note,
            )
        origin = _public(_header(msg, "X-Originating-IP").strip().strip("[]"))
        if origin:
            rec.link(
                src,
                "sent-from",
                rec.ref("ip", origin, "X-Originating-IP"),
                CONFIDENCE["x-originating-ip"],
                column="X-Originating-IP",
                valid_from=span[0],
                valid_to=span[1],
                note=note,
            )
        chain = _received_ips(msg)
        for i, ip in enumerate(chain):
            first = i == 0 and not origin
            rec.link(
                src,
                "sent-from" if first else "related-to",
                rec.ref("ip", ip, "Received"),
                CONFIDENCE["received-origin"] if first else None,
                column=f"Received hop {i + 1} from the bottom",
                valid_from=span[0],
                valid_to=span[1],
                note=(note + "; " if note else "")
                + ("originating hop" if first else "relay in the Received chain"),
            )

    return run_records(records(), sha256, build)
