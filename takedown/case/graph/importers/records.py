"""Tabular importers: WHOIS/registrant records, hosting-provider exports, payment records, and
plain link lists. Each reads CSV, JSON or JSON Lines with the columns in docs/graph.md.

People are never merged here: each record that names someone gets a person entity of its own
(keyed by the file and record), and ``takedown graph resolve`` scores which are the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from takedown.case.graph.importers.base import (
    Parsed,
    RecordError,
    RecordLinks,
    Ref,
    Reject,
    parse_time,
    pick,
    read_records,
    run_records,
    text_of,
)
from takedown.case.graph.model import ENTITY_KINDS, LINK_KINDS, check_confidence
from takedown.case.graph.normalize import NormalizeError, key_for, person_name

__all__ = ["CONFIDENCE", "parse_hosting", "parse_links", "parse_payments", "parse_whois"]

# What each importer vouches for by default (percent). A record proves that a provider or
# registry *holds* a statement; how far the statement is true is what these numbers weigh.
CONFIDENCE: dict[str, dict[str, int]] = {
    "whois": {
        "registered": 90,  # the registry ties this record to the domain
        "contact-email": 70,  # registrars verify the e-mail address (ICANN WAPR)
        "contact-phone": 50,
        "named-person": 40,  # self-declared, unverified names are often false
        "named-organisation": 40,
        "registrar": 95,
        "delegated-to": 90,
    },
    "hosting": {
        "customer-of": 95,
        "uses-alias": 90,  # the account's own login name
        "contact-email": 85,  # used to sign up and receive invoices
        "contact-phone": 60,
        "named-person": 50,
        "logged-in-from": 90,
        "paid-for": 95,
        "rented": 95,
        "has-address": 95,
    },
    "payments": {
        "named-person": 50,  # KYC data may belong to a stolen identity
        "contact-email": 70,
        "contact-phone": 60,
        "logged-in-from": 80,
        "paid-for": 95,
        "paid-to": 90,
    },
}


def _person_attrs(record: Mapping[str, Any], prefix: str, source: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"source": source}
    for field in ("name", "email", "phone", "street", "city", "postcode", "country", "dob"):
        value = pick(record, f"{prefix}{field}", field) if prefix else pick(record, field)
        if field == "postcode" and value is None:
            value = pick(record, f"{prefix}postal_code", "postal_code", "zip")
        if field == "street" and value is None:
            value = pick(record, f"{prefix}address", "address")
        if field == "dob" and value is None:
            value = pick(record, "date_of_birth", "birth_date")
        if value is not None:
            attrs[field] = text_of(value)
    return attrs


def _person(rec: RecordLinks, name: Any, key: str, column: str) -> tuple[Ref | None, str | None]:
    if name is None or not str(name).strip():
        return None, None
    try:
        label = person_name(str(name))
    except NormalizeError as exc:
        rec.out.rejects.append(_field_reject(rec, column, exc))
        return None, None
    return ("person", key), label


def _field_reject(rec: RecordLinks, column: str, exc: Exception) -> Reject:
    return Reject(f"{rec.locator}, field {column}", str(exc), rec.raw[:2000], whole=False)


# -- WHOIS / registrant records -----------------------------------------------------------------
def parse_whois(data: bytes, sha256: str, name: str = "", *, region: str | None = None) -> Parsed:
    """One registrant record per row: registrant →registered→ domain, its contacts and names."""
    conf = CONFIDENCE["whois"]

    def build(rec: RecordLinks, r: Mapping[str, Any]) -> None:
        dom = rec.ref(
            "domain", pick(r, "domain", "domain_name", "ldhname"), "domain", required=True
        )
        assert dom is not None
        created = parse_time(pick(r, "created", "creation_date", "registered"), "created")
        expires = parse_time(
            pick(r, "expires", "expiration_date", "registry_expiry_date"), "expires"
        )
        who = pick(r, "registrant_name", "name", "registrant")
        org = pick(
            r,
            "registrant_organization",
            "registrant_organisation",
            "organization",
            "organisation",
            "org",
        )
        email = pick(r, "registrant_email", "email")
        label = f"registrant of {dom[1]}: {who or org or email or '(no name)'}"
        attrs = _person_attrs(r, "registrant_", "whois")
        attrs.update(
            {
                "domain": dom[1],
                "organisation": text_of(org),
                "record": rec.locator,
                "registrar": text_of(pick(r, "registrar")),
            }
        )
        reg = ("registrant", f"whois:{sha256[:12]}:{rec.locator}")
        rec.link(
            reg,
            "registered",
            dom,
            conf["registered"],
            column="domain",
            src_label=label,
            src_attrs=attrs,
            valid_from=created,
            valid_to=expires,
        )
        em = rec.ref("email", email, "registrant_email")
        rec.link(
            reg,
            "contact",
            em,
            conf["contact-email"],
            column="registrant_email",
            valid_from=created,
            valid_to=expires,
        )
        ph = rec.ref(
            "phone", pick(r, "registrant_phone", "phone"), "registrant_phone", region=region
        )
        rec.link(
            reg,
            "contact",
            ph,
            conf["contact-phone"],
            column="registrant_phone",
            valid_from=created,
            valid_to=expires,
        )
        person, plabel = _person(rec, who, f"{reg[1]}:person", "registrant_name")
        rec.link(
            reg,
            "named",
            person,
            conf["named-person"],
            column="registrant_name",
            dst_label=plabel,
            dst_attrs=attrs,
            valid_from=created,
            valid_to=expires,
        )
        org_ref = rec.ref("organisation", org, "registrant_organization")
        rec.link(
            reg,
            "named",
            org_ref,
            conf["named-organisation"],
            column="registrant_organization",
            dst_label=text_of(org),
            valid_from=created,
            valid_to=expires,
        )
        registrar = rec.ref("organisation", pick(r, "registrar"), "registrar")
        rec.link(
            dom,
            "customer-of",
            registrar,
            conf["registrar"],
            column="registrar",
            valid_from=created,
            valid_to=expires,
        )
        servers = pick(r, "name_servers", "nameservers", "nserver")
        if isinstance(servers, str):
            servers = servers.replace(";", ",").replace(" ", ",").split(",")
        for ns in servers if isinstance(servers, list) else []:
            ns_ref = rec.ref("domain", ns, "name_servers")
            rec.link(
                dom,
                "delegated-to",
                ns_ref,
                conf["delegated-to"],
                column="name_servers",
                valid_from=created,
                valid_to=expires,
            )

    return run_records(read_records(data, name), sha256, build)


# -- hosting-provider account exports -----------------------------------------------------------
def parse_hosting(
    data: bytes,
    sha256: str,
    name: str = "",
    *,
    provider: str | None = None,
    region: str | None = None,
) -> Parsed:
    """One row per account (or per account and server): who, how paid, from where, what rented."""
    conf = CONFIDENCE["hosting"]

    def build(rec: RecordLinks, r: Mapping[str, Any]) -> None:
        prov = pick(r, "provider", "hoster") or provider
        if not prov:
            raise RecordError("provider: empty (add a provider column or pass --provider)")
        account = pick(r, "account_id", "account", "customer_id", "client_id")
        if account is None:
            raise RecordError("account_id: required, but empty")
        acct = rec.ref("hosting-account", f"{prov}/{account}", "account_id", required=True)
        assert acct is not None
        login = pick(r, "username", "login", "user")
        since = parse_time(pick(r, "signup_date", "created", "registered"), "signup_date")
        attrs = _person_attrs(r, "customer_", "hosting")
        attrs["account"] = text_of(account)
        rec.link(
            acct,
            "customer-of",
            rec.ref("organisation", prov, "provider"),
            conf["customer-of"],
            column="provider",
            src_label=text_of(login or account),
            valid_from=since,
        )
        rec.link(
            acct,
            "uses-alias",
            rec.ref("alias", login, "username"),
            conf["uses-alias"],
            column="username",
            dst_label=text_of(login),
        )
        rec.link(
            acct,
            "contact",
            rec.ref("email", pick(r, "email", "customer_email"), "email"),
            conf["contact-email"],
            column="email",
        )
        phone = rec.ref("phone", pick(r, "phone", "customer_phone"), "phone", region=region)
        rec.link(acct, "contact", phone, conf["contact-phone"], column="phone")
        person, plabel = _person(
            rec,
            pick(r, "customer_name", "name", "full_name"),
            f"hosting:{sha256[:12]}:{acct[1]}:person",
            "customer_name",
        )
        rec.link(
            acct,
            "named",
            person,
            conf["named-person"],
            column="customer_name",
            dst_label=plabel,
            dst_attrs=attrs,
        )
        rec.link(
            acct,
            "logged-in-from",
            rec.ref("ip", pick(r, "signup_ip"), "signup_ip"),
            conf["logged-in-from"],
            column="signup_ip",
            valid_from=since,
            valid_to=since,
            note="sign-up",
        )
        last = parse_time(pick(r, "last_login", "last_login_at"), "last_login")
        rec.link(
            acct,
            "logged-in-from",
            rec.ref("ip", pick(r, "last_login_ip"), "last_login_ip"),
            conf["logged-in-from"],
            column="last_login_ip",
            valid_from=last,
            valid_to=last,
            note="last login",
        )
        logins = pick(r, "login_ips", "ips")
        for ip_text in str(logins).replace(";", ",").split(",") if logins else []:
            rec.link(
                acct,
                "logged-in-from",
                rec.ref("ip", ip_text, "login_ips"),
                conf["logged-in-from"],
                column="login_ips",
            )
        pay_text = pick(r, "payment_account", "payment", "wallet")
        pay = rec.ref(
            "payment",
            pay_text,
            "payment_account",
            provider=pick(r, "payment_provider", "payment_method"),
        )
        rec.link(pay, "paid-for", acct, conf["paid-for"], column="payment_account")
        card = rec.ref("card", pick(r, "card", "card_number"), "card")
        rec.link(card, "paid-for", acct, conf["paid-for"], column="card")
        server_id = pick(r, "server_id", "hostname", "server")
        if server_id is not None:
            server = rec.ref("server", f"{prov}/{server_id}", "server_id")
            rented = parse_time(pick(r, "rented_from", "server_created"), "rented_from")
            until = parse_time(pick(r, "rented_to", "server_cancelled"), "rented_to")
            rec.link(
                acct,
                "rented",
                server,
                conf["rented"],
                column="server_id",
                valid_from=rented,
                valid_to=until,
                dst_label=text_of(server_id),
            )
            rec.link(
                server,
                "has-address",
                rec.ref("ip", pick(r, "server_ip"), "server_ip"),
                conf["has-address"],
                column="server_ip",
                valid_from=rented,
                valid_to=until,
            )

    return run_records(read_records(data, name), sha256, build)


# -- payment records ---------------------------------------------------------------------------
def parse_payments(
    data: bytes,
    sha256: str,
    name: str = "",
    *,
    provider: str | None = None,
    region: str | None = None,
) -> Parsed:
    """One row per payment (or per account): the account, its holder, what it paid for."""
    conf = CONFIDENCE["payments"]

    def build(rec: RecordLinks, r: Mapping[str, Any]) -> None:
        prov = pick(r, "provider", "payment_provider") or provider
        acct_text = pick(r, "account", "purse", "wallet", "payment_account")
        acct = rec.ref("payment", acct_text, "account", required=True, provider=prov)
        assert acct is not None
        when = parse_time(pick(r, "date", "paid_at", "timestamp"), "date")
        registered = parse_time(pick(r, "registered", "opened"), "registered")
        holder = pick(r, "holder_name", "holder", "name")
        attrs = _person_attrs(r, "holder_", "payments")
        attrs["account"] = acct[1]
        person, plabel = _person(
            rec, holder, f"payments:{sha256[:12]}:{acct[1]}:{holder}", "holder_name"
        )
        rec.link(
            acct,
            "named",
            person,
            conf["named-person"],
            column="holder_name",
            dst_label=plabel,
            dst_attrs=attrs,
            valid_from=registered,
        )
        rec.link(
            acct,
            "contact",
            rec.ref("email", pick(r, "holder_email", "email"), "holder_email"),
            conf["contact-email"],
            column="holder_email",
        )
        rec.link(
            acct,
            "contact",
            rec.ref("phone", pick(r, "holder_phone", "phone"), "holder_phone", region=region),
            conf["contact-phone"],
            column="holder_phone",
        )
        rec.link(
            acct,
            "logged-in-from",
            rec.ref("ip", pick(r, "registration_ip", "ip"), "registration_ip"),
            conf["logged-in-from"],
            column="registration_ip",
            valid_from=registered,
            valid_to=registered,
        )
        amount = " ".join(str(x) for x in (pick(r, "amount"), pick(r, "currency")) if x)
        note = " ".join(x for x in (amount, text_of(pick(r, "purpose", "description"))) if x)
        merchant = pick(r, "merchant", "payee_name")
        reference = pick(r, "reference", "merchant_account", "customer_ref")
        if merchant and reference:
            target = rec.ref("hosting-account", f"{merchant}/{reference}", "reference")
            rec.link(
                acct,
                "paid-for",
                target,
                conf["paid-for"],
                column="reference",
                valid_from=when,
                valid_to=when,
                note=note,
            )
        elif merchant:
            rec.link(
                acct,
                "paid-for",
                rec.ref("organisation", merchant, "merchant"),
                conf["paid-for"],
                column="merchant",
                valid_from=when,
                valid_to=when,
                note=note,
            )
        payee = rec.ref("payment", pick(r, "payee", "counterparty"), "payee", provider=prov)
        rec.link(
            acct,
            "related-to",
            payee,
            conf["paid-to"],
            column="payee",
            valid_from=when,
            valid_to=when,
            note=("paid to; " + note).strip("; "),
        )

    return run_records(read_records(data, name), sha256, build)


# -- plain link lists ---------------------------------------------------------------------------
def _endpoint(rec: RecordLinks, text: Any, column: str) -> Ref:
    value = "" if text is None else str(text).strip()
    kind, sep, raw = value.partition(":")
    if not sep or kind not in ENTITY_KINDS:
        raise RecordError(f"{column}: {value[:60]!r} is not KIND:VALUE (e.g. ip:203.0.113.7)")
    try:
        return (kind, key_for(kind, raw))
    except NormalizeError as exc:
        raise RecordError(f"{column}: {exc}") from None


def _attrs(value: Any, column: str) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(str(value))
    except (json.JSONDecodeError, RecursionError):
        raise RecordError(f"{column}: not a JSON object") from None
    if not isinstance(parsed, dict):
        raise RecordError(f"{column}: not a JSON object")
    return parsed


def parse_links(data: bytes, sha256: str, name: str = "") -> Parsed:
    """Analyst assertions or passive DNS: src, kind, dst, confidence, valid_from, valid_to, note."""

    def build(rec: RecordLinks, r: Mapping[str, Any]) -> None:
        src = _endpoint(rec, pick(r, "src", "source", "from_entity"), "src")
        dst = _endpoint(rec, pick(r, "dst", "target", "to_entity"), "dst")
        kind = str(pick(r, "kind", "link", "relationship") or "").strip().lower()
        if kind not in LINK_KINDS:
            raise RecordError(f"kind: {kind[:40]!r} is not a link kind ({', '.join(LINK_KINDS)})")
        conf = check_confidence(pick(r, "confidence"), f"{rec.locator}, confidence")
        rec.link(
            src,
            kind,
            dst,
            conf,
            valid_from=parse_time(pick(r, "valid_from", "first_seen"), "valid_from"),
            valid_to=parse_time(pick(r, "valid_to", "last_seen"), "valid_to"),
            note=text_of(pick(r, "note", "comment")) or "",
            src_label=text_of(pick(r, "src_label")),
            dst_label=text_of(pick(r, "dst_label")),
            src_attrs=_attrs(pick(r, "src_attrs"), "src_attrs"),
            dst_attrs=_attrs(pick(r, "dst_attrs"), "dst_attrs"),
        )
        if src == dst:
            raise RecordError("src and dst are the same entity")

    return run_records(read_records(data, name), sha256, build)
