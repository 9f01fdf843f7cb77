"""What the graph holds: entity and link kinds, confidence rules, references to entities.

Entities are identified by ``(kind, key)``: ``key`` is the normalised identifier (an e-mail
address, an E.164 number, an IDNA domain) for technical identifiers, and a record key for the
things that can only be told apart probabilistically (people, registrant records).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from takedown.errors import GraphError

__all__ = [
    "ENTITY_KINDS",
    "LINK_KINDS",
    "UNKNOWN_PRIOR",
    "Entity",
    "EntityRef",
    "LinkSpec",
    "check_confidence",
    "parse_ref",
    "path_weight",
]

# kind → what it is (docs/graph.md is generated from the same table by `graph kinds`).
ENTITY_KINDS: dict[str, str] = {
    "person": "A natural person, as named by one source record (never merged: see same-as).",
    "alias": "A nickname or handle (casefolded, NFKC).",
    "email": "An e-mail address (lowercase, IDNA domain; dot/plus rules of named providers).",
    "phone": "A telephone number in E.164.",
    "payment": "A payment account: e-wallet, bank account, crypto wallet.",
    "card": "A payment card (kept as its first six and last four digits and a fingerprint).",
    "hosting-account": "An account at a hosting provider (provider/account id).",
    "server": "A physical or virtual server (provider/hostname or provider/server id).",
    "ip": "An IP address (canonical text; IPv4-mapped IPv6 folded to IPv4).",
    "network": "An IP network in CIDR form.",
    "domain": "A domain name (lowercase IDNA A-label, no trailing dot).",
    "registrant": "A registrant record of a domain registration (WHOIS/RDAP), as one record.",
    "sample": "A malware sample, by SHA-256.",
    "botnet": "A botnet, named by its malware family.",
    "organisation": "A company, provider or other organisation.",
}

# kind → what it asserts, read as "SRC kind DST".
LINK_KINDS: dict[str, str] = {
    "registered": "SRC registered (or signed up for) DST.",
    "paid-for": "SRC (a payment account or card) paid for DST.",
    "rented": "SRC (an account) rented DST (a server).",
    "logged-in-from": "SRC (an account) was used from DST (an address).",
    "uses-alias": "SRC used the nickname DST.",
    "controls": "SRC controls DST.",
    "beacons-to": "SRC (a botnet or sample) calls home to DST (observed at the sinkhole).",
    "hosted-on": "SRC (a domain or service) is served from DST (an address or server).",
    "has-address": "SRC (a server) has the address DST.",
    "appears-in": "SRC was found inside DST (a file, sample, record, server).",
    "same-as": "SRC and DST are the same real-world thing (scored; never merged).",
    "contact": "SRC names DST as its contact (e-mail, phone, address).",
    "named": "SRC (a record or account) names DST (a person or organisation) as its holder.",
    "holds": "SRC (a person) holds DST (an account, card or wallet).",
    "sent-from": "SRC (an e-mail address) sent mail from DST (an address).",
    "reply-to": "Mail from SRC asked for replies to DST.",
    "sent-via": "Mail from SRC was handed to the mail system of DST (Message-ID domain).",
    "member-of": "SRC is part of DST (an address of a network, a sample of a botnet).",
    "delegated-to": "SRC (a domain) is delegated to the name server DST.",
    "customer-of": "SRC is a customer of DST (an organisation).",
    "reported-stolen": "SRC (a person) reported DST opened or used in their name without consent.",
    "related-to": "SRC and DST are related in a way no other kind says (see the note).",
}

# A link with no stated confidence counts as this (percent) when paths are weighed: a stated,
# low prior, so that an unknown link never outweighs a link somebody vouched for.
UNKNOWN_PRIOR = 25


def check_confidence(value: Any, where: str) -> int | None:
    """0–100 as an int; None, "" and "unknown" are unknown (kept apart from 0)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"", "unknown", "null", "none", "?"}:
            return None
        try:
            value = float(text)
        except ValueError:
            raise GraphError(f"{where}: confidence {value!r} is not 0-100 or 'unknown'") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise GraphError(f"{where}: confidence {value!r} is not 0-100 or 'unknown'")
    if not 0 <= value <= 100:
        raise GraphError(f"{where}: confidence {value!r} is outside 0-100")
    return round(value)


def path_weight(confidence: int | None) -> float:
    """Edge weight for the strongest path: -log(p); unknown → the prior; 0 → unusable."""
    pct = UNKNOWN_PRIOR if confidence is None else confidence
    if pct <= 0:
        return math.inf
    return -math.log(min(pct, 100) / 100.0) + 1e-6


@dataclass(frozen=True, slots=True)
class EntityRef:
    """A reference typed by a user: ``kind:value``, ``#id`` or a bare value."""

    kind: str | None
    value: str
    id: int | None = None


def parse_ref(text: str) -> EntityRef:
    text = text.strip()
    if not text:
        raise GraphError("empty entity reference: give KIND:VALUE (e.g. ip:203.0.113.7) or #ID")
    if text.startswith("#") and text[1:].isdigit():
        return EntityRef(None, text, int(text[1:]))
    kind, sep, value = text.partition(":")
    if sep and kind in ENTITY_KINDS:
        return EntityRef(kind, value)
    return EntityRef(None, text)


@dataclass(slots=True)
class Entity:
    id: int
    kind: str
    key: str
    label: str
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.key}"

    def display(self) -> str:
        return self.ref if self.label == self.key else f"{self.ref} ({self.label})"


@dataclass(slots=True)
class LinkSpec:
    """One link to add: both ends by (kind, key), what it asserts and what it cites."""

    src_kind: str
    src_key: str
    kind: str
    dst_kind: str
    dst_key: str
    confidence: int | None
    evidence: list[tuple[str, str]]  # (sha256, locator within the item)
    valid_from: dt.datetime | None = None
    valid_to: dt.datetime | None = None
    note: str = ""
    src_label: str | None = None
    dst_label: str | None = None
    src_attrs: dict[str, Any] | None = None
    dst_attrs: dict[str, Any] | None = None
    score: float | None = None
    model: str | None = None
