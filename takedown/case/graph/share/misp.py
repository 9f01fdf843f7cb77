"""A MISP event built offline with PyMISP objects: one object per entity, one reference per
link (its kind as the relationship, confidence and evidence in the comment), and every cited
evidence item as a ``file`` object (name, size, SHA-256), not for detection (``to_ids`` off)."""

from __future__ import annotations

import uuid
from typing import Any

from pymisp import MISPEvent, MISPObject

from takedown.case.graph.model import Entity

__all__ = ["misp_event"]

_NS = uuid.UUID("0b6f7d1e-2f3a-4c5d-8e9f-a1b2c3d4e5f6")


def _object(ent: Entity) -> MISPObject:
    k, key, label = ent.kind, ent.key, ent.label
    attrs: list[tuple[str, str]]
    if k == "ip":
        name, attrs = "domain-ip", [("ip", key)]
    elif k == "network":
        name, attrs = "domain-ip", [("ip", key), ("text", "network")]
    elif k == "domain":
        name, attrs = "domain-ip", [("domain", key)]
    elif k == "server":
        name, attrs = "infrastructure", [("name", label), ("description", f"server {key}")]
    elif k == "botnet":
        name, attrs = "malware", [("name", label), ("is_family", "true")]
    elif k == "sample":
        name, attrs = "file", [("sha256", key)]
    elif k == "email":
        name, attrs = "user-account", [("email", key), ("account-type", "email")]
    elif k in ("alias", "hosting-account"):
        name, attrs = "user-account", [("username", label), ("user-id", f"{k}:{key}")]
    elif k == "phone":
        name, attrs = "phone", [("msisdn", key)]
    elif k == "payment":
        scheme, _, ident = key.partition(":")
        if scheme == "btc":
            name, attrs = "btc-wallet", [("wallet-address", ident)]
        elif scheme == "iban":
            name, attrs = "bank-account", [("iban", ident)]
        else:
            name, attrs = "bank-account", [("account", ident), ("institution-name", scheme)]
    elif k == "card":
        name, attrs = "credit-card", [("iin", key[:6]), ("comment", key)]
    elif k == "registrant":
        name = "whois"
        attrs = [("registrant-name", str(ent.attrs.get("name") or label)), ("text", key)]
        for field, misp in (
            ("email", "registrant-email"),
            ("phone", "registrant-phone"),
            ("domain", "domain"),
            ("organisation", "registrant-org"),
        ):
            if ent.attrs.get(field):
                attrs.append((misp, str(ent.attrs[field])))
    elif k == "organisation":
        name, attrs = "legal-entity", [("name", label)]
    else:  # person
        name, attrs = "person", [("full-name", label)]
    obj = MISPObject(name, standalone=False)
    obj.uuid = str(uuid.uuid5(_NS, f"{k}:{key}"))
    obj.comment = f"takedown {k} #{ent.id}"
    for rel, value in attrs:
        obj.add_attribute(rel, value=value, to_ids=False)
    return obj


def misp_event(snap: Any) -> MISPEvent:
    event = MISPEvent()
    event.info = f"takedown case {snap.home_name}: attribution graph (version {snap.version})"
    event.uuid = str(uuid.uuid5(_NS, f"event:{snap.home_name}"))
    event.distribution = 0  # this organisation only, until someone decides otherwise
    event.threat_level_id = 2
    event.analysis = 1
    event.add_tag("tlp:amber")
    objects = {eid: _object(ent) for eid, ent in snap.entities.items()}
    evidence: dict[str, dict[str, Any]] = {}
    for lk in snap.links:
        src, dst = objects.get(lk["src"]), objects.get(lk["dst"])
        if src is None or dst is None:
            continue
        conf = "unknown" if lk["confidence"] is None else str(lk["confidence"])
        cites = "; ".join(
            f"{e['name']} ({e['locator'] or 'whole item'}) sha256:{e['sha256']}"
            for e in lk["evidence"]
        )
        src.add_reference(
            dst.uuid, lk["kind"], comment=f"confidence {conf}; link #{lk['id']}; evidence: {cites}"
        )
        for e in lk["evidence"]:
            evidence.setdefault(e["sha256"], e)
    for obj in objects.values():
        event.add_object(obj)
    for sha, e in sorted(evidence.items()):
        item = MISPObject("file", standalone=False)
        item.uuid = str(uuid.uuid5(_NS, f"evidence:{sha}"))
        item.comment = "evidence item in the takedown vault (not an indicator)"
        item.add_attribute("sha256", value=sha, to_ids=False)
        if e.get("name"):
            item.add_attribute("filename", value=str(e["name"]), to_ids=False)
        if e.get("size") is not None:
            item.add_attribute("size-in-bytes", value=int(e["size"]), to_ids=False)
        event.add_object(item)
    return event
