"""STIX 2.1 out (built with the OASIS ``stix2`` library, checked with ``stix2-validator``) and in.

Out: each entity becomes the STIX object closest to it (see ``docs/graph.md``); each link a
relationship carrying its confidence (left out when unknown: STIX has no "unknown" other than
absence), its time range and, as external references, the SHA-256 and name of every evidence
item it cites. Sinkhole observations become indicators with sightings; each botnet gets an
intrusion set, and its top candidate operators threat actors attributed to person identities.
Ids are derived from the entities' keys, so a second export updates the same objects.

In: a partner's bundle is one evidence item; each relationship and sighting a record.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import stix2  # type: ignore[import-untyped]

from takedown.case.graph.importers.base import (
    Parsed,
    RecordError,
    RecordLinks,
    Ref,
    Reject,
    parse_time,
    run_records,
)
from takedown.case.graph.model import LINK_KINDS, Entity, check_confidence
from takedown.case.graph.normalize import NormalizeError, key_for
from takedown.case.graph.store import GraphStore
from takedown.errors import GraphError

__all__ = ["parse_stix", "stix_bundle", "validate"]

_NS = uuid.UUID("5d3c5b0e-6c55-4f53-9b0e-7a4e2c9f1d11")  # takedown's namespace for STIX ids
_STIX_TO_LINK = {
    "resolves-to": "hosted-on",
    "consists-of": "has-address",
    "duplicate-of": "same-as",
    "variant-of": "member-of",
    "communicates-with": "beacons-to",
    "beacons-to": "beacons-to",
    "controls": "controls",
    "hosts": "hosted-on",
    "uses": "controls",
}


def _sid(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(_NS, key)}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class _Builder:
    def __init__(self, store: GraphStore, snap: Any) -> None:
        self.store = store
        self.snap = snap
        self.objects: dict[str, Any] = {}
        self.primary: dict[int, str] = {}
        self.me = stix2.Identity(
            id=_sid("identity", f"takedown:{snap.home_name}"),
            name=f"takedown case {snap.home_name}",
            identity_class="organization",
            description="The team that built this attribution graph (takedown).",
        )
        self.add(self.me)

    def add(self, obj: Any) -> str:
        self.objects[obj.id] = obj
        return str(obj.id)

    def entity(self, ent: Entity, c2_servers: set[int]) -> None:
        k, key, label = ent.kind, ent.key, ent.label
        common = {"created_by_ref": self.me.id}
        obj: Any
        if k == "botnet":
            obj = stix2.Malware(
                id=_sid("malware", f"botnet:{key}"),
                name=label,
                is_family=True,
                malware_types=["bot"],
                **common,
            )
            iset = stix2.IntrusionSet(
                id=_sid("intrusion-set", f"operators:{key}"), name=f"operators of {label}", **common
            )
            self.add(iset)
            self.add(
                stix2.Relationship(
                    id=_sid("relationship", f"uses:{key}"),
                    source_ref=iset.id,
                    relationship_type="uses",
                    target_ref=obj.id,
                    **common,
                )
            )
        elif k == "sample":
            file = stix2.File(hashes={"SHA-256": key}, name=label if label != key else None)
            self.add(file)
            obj = stix2.Malware(
                id=_sid("malware", f"sample:{key}"),
                name=f"sample {key[:16]}",
                is_family=False,
                sample_refs=[file.id],
                **common,
            )
        elif k == "server":
            types = ["command-and-control"] if ent.id in c2_servers else None
            obj = stix2.Infrastructure(
                id=_sid("infrastructure", f"server:{key}"),
                name=label,
                infrastructure_types=types,
                **common,
            )
        elif k in ("ip", "network"):
            cls = stix2.IPv6Address if ":" in key else stix2.IPv4Address
            obj = cls(value=key)
        elif k == "domain":
            obj = stix2.DomainName(value=key)
        elif k == "email":
            obj = stix2.EmailAddress(value=key)
        elif k == "alias":
            obj = stix2.UserAccount(account_login=key, display_name=label)
        elif k in ("hosting-account", "payment", "card", "phone"):
            obj = stix2.UserAccount(user_id=f"{k}:{key}", display_name=label)
        else:  # person, registrant, organisation
            cls_name = {"person": "individual", "organisation": "organization"}.get(k, "unknown")
            contact = "; ".join(
                str(ent.attrs[f])
                for f in ("email", "phone", "street", "city", "country")
                if ent.attrs.get(f)
            )
            obj = stix2.Identity(
                id=_sid("identity", f"{k}:{key}"),
                name=label[:250],
                identity_class=cls_name,
                contact_information=contact or None,
                description=f"takedown {k} {key}",
                **common,
            )
        self.primary[ent.id] = self.add(obj)

    def relationship(self, lk: dict[str, Any]) -> None:
        src, dst = self.primary.get(lk["src"]), self.primary.get(lk["dst"])
        if src is None or dst is None:
            return
        kind = lk["kind"]
        rtype = kind
        src_type, dst_type = src.split("--")[0], dst.split("--")[0]
        if kind == "beacons-to":
            rtype = "beacons-to" if dst_type == "infrastructure" else "communicates-with"
        elif kind == "hosted-on" and src_type == "domain-name":
            rtype = "resolves-to"
        elif kind == "has-address" and src_type == "infrastructure":
            rtype = "consists-of"
        elif kind == "same-as":
            rtype = "duplicate-of"
        elif kind == "member-of" and src_type == dst_type == "malware":
            rtype = "variant-of"
        start, stop = lk["valid_from"], lk["valid_to"]
        if start is not None and stop is not None and stop <= start:
            stop = start + dt.timedelta(seconds=1)
        refs = [
            {
                "source_name": "takedown-evidence",
                "description": f"{e['name']}, {e['locator'] or 'whole item'}",
                "external_id": e["sha256"],
                "hashes": {"SHA-256": e["sha256"]},
            }
            for e in lk["evidence"]
        ]
        desc = f"takedown link #{lk['id']} ({kind}), asserted by {lk['asserted_by']} " + (
            f"({lk['method']})" + (f": {lk['note']}" if lk["note"] else "")
        )
        if lk.get("model"):
            desc += f"; model {lk['model']}, match weight {lk['score']:.3f}"
        self.add(
            stix2.Relationship(
                id=_sid("relationship", f"link:{lk['id']}:{src}:{kind}:{dst}"),
                source_ref=src,
                relationship_type=rtype,
                target_ref=dst,
                confidence=lk["confidence"],
                start_time=start,
                stop_time=stop,
                description=desc,
                external_references=refs,
                created_by_ref=self.me.id,
                created=lk["asserted_at"],
                modified=lk["asserted_at"],
            )
        )
        if kind == "beacons-to" and dst_type in ("domain-name", "ipv4-addr", "ipv6-addr"):
            self.sighting(lk, src, dst, dst_type, refs)

    def sighting(
        self, lk: dict[str, Any], malware: str, target: str, kind: str, refs: list[dict[str, Any]]
    ) -> None:
        value = self.objects[target].value
        ind = stix2.Indicator(
            id=_sid("indicator", f"c2:{value}"),
            name=f"C2 {value} (sinkholed)",
            description="A command-and-control name or address its bots were seen calling.",
            pattern=f"[{kind}:value = '{_quote(value)}']",
            pattern_type="stix",
            valid_from=lk["valid_from"] or lk["asserted_at"],
            indicator_types=["malicious-activity"],
            created_by_ref=self.me.id,
        )
        self.add(ind)
        self.add(
            stix2.Relationship(
                id=_sid("relationship", f"indicates:{value}:{malware}"),
                source_ref=ind.id,
                relationship_type="indicates",
                target_ref=malware,
                created_by_ref=self.me.id,
            )
        )
        count = re.search(r"(\d+) check-ins", lk["note"] or "")
        first, last = lk["valid_from"], lk["valid_to"]
        if first is not None and last is not None and last < first:
            last = first
        self.add(
            stix2.Sighting(
                id=_sid("sighting", f"sinkhole:{lk['id']}"),
                sighting_of_ref=ind.id,
                count=min(int(count.group(1)), 999_999_999) if count else None,
                first_seen=first,
                last_seen=last,
                where_sighted_refs=[self.me.id],
                confidence=lk["confidence"],
                external_references=refs,
                description=lk["note"] or None,
                created_by_ref=self.me.id,
            )
        )

    def candidates(self, limit: int = 3) -> None:
        from takedown.case.graph.adjacency import load_adjacency
        from takedown.case.graph.questions import candidates

        bots = [e for e in self.snap.entities.values() if e.kind == "botnet"]
        if not bots:
            return
        adj = load_adjacency(self.store)
        for bot in bots:
            iset = _sid("intrusion-set", f"operators:{bot.key}")
            for cand in candidates(self.store, adj, bot, hops=8, limit=limit):
                person = self.primary.get(cand.person.id)
                if person is None or cand.independent < 1:
                    continue
                conf = round(cand.strongest * 100)
                actor = stix2.ThreatActor(
                    id=_sid("threat-actor", f"candidate:{bot.key}:{cand.person.key}"),
                    name=f"candidate operator of {bot.label}: {cand.person.label}"[:250],
                    threat_actor_types=["criminal"],
                    confidence=conf,
                    description=cand.explanation()[:4000],
                    created_by_ref=self.me.id,
                )
                self.add(actor)
                for src, dst, key in ((actor.id, person, "who"), (iset, actor.id, "ops")):
                    self.add(
                        stix2.Relationship(
                            id=_sid(
                                "relationship", f"attributed:{key}:{bot.key}:{cand.person.key}"
                            ),
                            source_ref=src,
                            relationship_type="attributed-to",
                            target_ref=dst,
                            confidence=conf,
                            created_by_ref=self.me.id,
                        )
                    )


def stix_bundle(store: GraphStore, snap: Any, candidate_limit: int = 3) -> stix2.Bundle:
    """The snapshot as a STIX 2.1 bundle."""
    b = _Builder(store, snap)
    c2: set[int] = set()
    targets = {lk["dst"] for lk in snap.links if lk["kind"] == "beacons-to"}
    targets |= {
        lk["dst"] for lk in snap.links if lk["kind"] == "hosted-on" and lk["src"] in targets
    }
    for lk in snap.links:
        if lk["kind"] == "has-address" and lk["dst"] in targets:
            c2.add(lk["src"])
    for ent in snap.entities.values():
        b.entity(ent, c2)
    for lk in snap.links:
        b.relationship(lk)
    b.candidates(candidate_limit)
    return stix2.Bundle(objects=list(b.objects.values()), allow_custom=False)


def validate(text: str) -> list[str]:
    """Validate with stix2-validator in-process; raise on errors, return the warnings."""
    from stix2validator import (  # type: ignore[import-untyped]
        ValidationOptions,
        validate_string,
    )

    result = validate_string(text, ValidationOptions(version="2.1", strict=False))
    errors = [str(e) for e in (result.errors or [])]
    if not result.is_valid or errors:
        raise GraphError(f"STIX bundle failed validation: {'; '.join(errors[:3])}")
    return [str(w) for w in (result.warnings or [])]


# -- import ------------------------------------------------------------------------------------
_PATTERN = re.compile(
    r"^\[\s*(ipv4-addr|ipv6-addr|domain-name|email-addr|url):value\s*=\s*'((?:[^'\\]|\\.)*)'\s*\]$"
)


def _ref_of(obj: Mapping[str, Any], partner: str) -> tuple[Ref, str] | None:
    """(entity, label) for a STIX object, or None if it has no counterpart."""
    t = obj.get("type", "")
    try:
        if t in ("ipv4-addr", "ipv6-addr"):
            value = str(obj["value"])
            kind = "network" if "/" in value else "ip"
            return (kind, key_for(kind, value)), value
        if t == "domain-name":
            return ("domain", key_for("domain", str(obj["value"]))), str(obj["value"])
        if t == "email-addr":
            return ("email", key_for("email", str(obj["value"]))), str(obj["value"])
        if t == "user-account":
            uid = str(obj.get("user_id") or "")
            kind, sep, rest = uid.partition(":")
            if sep and kind in ("hosting-account", "payment", "card", "phone"):
                return (kind, key_for(kind, rest)), str(obj.get("display_name") or rest)
            login = obj.get("account_login") or obj.get("display_name") or uid
            return ("alias", key_for("alias", str(login))), str(login)
        if t == "file":
            sha = (obj.get("hashes") or {}).get("SHA-256")
            return (
                (("sample", key_for("sample", str(sha))), str(obj.get("name") or sha))
                if sha
                else None
            )
        if t == "malware":
            if obj.get("is_family", True):
                return ("botnet", key_for("botnet", str(obj["name"]))), str(obj["name"])
            return ("sample", key_for("sample", f"{uuid.uuid5(_NS, obj['id']).hex * 2}")), str(
                obj.get("name") or obj["id"]
            )
        if t == "infrastructure":
            return ("server", key_for("server", f"{partner}/{obj['name']}")), str(obj["name"])
        if t in ("identity", "threat-actor", "intrusion-set"):
            name = str(obj.get("name") or obj["id"])
            individual = t == "threat-actor" or obj.get("identity_class") == "individual"
            kind = "person" if individual else "organisation"
            key = f"stix:{obj['id']}" if kind == "person" else name
            return (kind, key_for(kind, key)), name
        if t == "indicator":
            m = _PATTERN.match(str(obj.get("pattern", "")).strip())
            if m is None:
                return None
            kind_s, value = m.group(1), m.group(2).replace("\\'", "'").replace("\\\\", "\\")
            if kind_s == "url":
                host = re.match(r"^[a-z]+://([^/:?#]+)", value, re.IGNORECASE)
                if host is None:
                    return None
                value, kind_s = host.group(1), "domain-name"
            return _ref_of({"type": kind_s, "value": value}, partner)
    except (KeyError, NormalizeError, TypeError):
        return None
    return None


def parse_stix(data: bytes, sha256: str, name: str = "") -> Parsed:
    """Relationships (and sightings) of a partner's STIX 2.1 bundle become links."""
    try:
        doc = json.loads(data.decode("utf-8", "replace"))
    except (json.JSONDecodeError, RecursionError) as exc:
        out = Parsed(records=1)
        out.rejects.append(Reject("bundle", f"not JSON: {exc}", data[:2000].decode("latin-1")))
        return out
    objects = doc.get("objects") if isinstance(doc, dict) else doc
    if not isinstance(objects, list):
        out = Parsed(records=1)
        out.rejects.append(Reject("bundle", "no objects list", str(doc)[:2000]))
        return out
    by_id = {o["id"]: o for o in objects if isinstance(o, dict) and isinstance(o.get("id"), str)}
    authors = {o.get("created_by_ref") for o in by_id.values()}
    partner = next(
        (
            str(o.get("name"))[:100]
            for i, o in by_id.items()
            if o.get("type") == "identity" and i in authors and o.get("name")
        ),
        "partner",
    )

    def records() -> Iterator[tuple[str, Any, str]]:
        for i, obj in enumerate(objects, 1):
            if isinstance(obj, dict) and obj.get("type") in ("relationship", "sighting"):
                where = f"object {i} ({str(obj.get('id'))[:80]})"
                raw = json.dumps(obj, ensure_ascii=False, default=str)[:4000]
                yield where, obj, raw

    def build(rec: RecordLinks, obj: Mapping[str, Any]) -> None:
        try:
            stix2.parse(dict(obj), allow_custom=True, version="2.1")
        except Exception as exc:  # the stix2 library raises many kinds
            raise RecordError(f"not valid STIX 2.1: {str(exc).splitlines()[0][:200]}") from None
        if obj["type"] == "relationship":
            a = _ref_of(by_id.get(obj.get("source_ref"), {}), partner)
            b = _ref_of(by_id.get(obj.get("target_ref"), {}), partner)
            rtype = str(obj.get("relationship_type", ""))
        else:
            a = _ref_of(by_id.get(obj.get("sighting_of_ref"), {}), partner)
            where = (obj.get("where_sighted_refs") or [None])[0]
            b = _ref_of(by_id.get(where, {}), partner)
            rtype = "sighted-by"
        if a is None or b is None:
            raise RecordError("source or target is missing from the bundle or has no counterpart")
        kind = rtype if rtype in LINK_KINDS else _STIX_TO_LINK.get(rtype, "related-to")
        src, dst = a, b
        if rtype == "attributed-to":
            kind, src, dst = "controls", b, a
        conf = check_confidence(obj.get("confidence"), f"{rec.locator}, confidence")
        refs = [
            r.get("external_id") or r.get("url") or r.get("source_name")
            for r in obj.get("external_references") or []
            if isinstance(r, dict)
        ]
        note = f"partner {partner}: {rtype}" + (
            f" — {str(obj.get('description'))[:300]}" if obj.get("description") else ""
        )
        if refs:
            note += f" (their references: {', '.join(str(r) for r in refs[:5])})"
        start = obj.get("start_time") or obj.get("first_seen")
        stop = obj.get("stop_time") or obj.get("last_seen")
        rec.link(
            src[0],
            kind,
            dst[0],
            conf,
            column=str(obj.get("id", ""))[:80],
            valid_from=parse_time(start, "start_time"),
            valid_to=parse_time(stop, "stop_time"),
            note=note,
            src_label=src[1][:200],
            dst_label=dst[1][:200],
        )

    return run_records(records(), sha256, build)
