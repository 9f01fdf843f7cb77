"""Deterministic normalisation of technical identifiers: the same thing gets the same key.

Every function takes hostile text and returns the key or raises ``NormalizeError`` (a
``GraphError``) naming what is wrong; each is idempotent (``f(f(x)) == f(x)``), which the
property tests check. Nothing here guesses about people: names are resolved by the scored
model in ``resolve.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable

import idna
import phonenumbers

from takedown.errors import GraphError

__all__ = [
    "EMAIL_PROVIDER_RULES",
    "NormalizeError",
    "card",
    "domain",
    "email",
    "handle",
    "handle_skeleton",
    "ip",
    "key_for",
    "network",
    "organisation",
    "payment",
    "person_name",
    "phone",
    "scoped",
]


class NormalizeError(GraphError, ValueError):
    """A value is not a valid identifier of its kind (the message says why)."""


_MAX = 512  # no identifier is longer; longer input is refused rather than processed


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise NormalizeError(f"{what}: expected text, got {type(value).__name__}")
    if len(value) > _MAX * 4:
        raise NormalizeError(f"{what}: {len(value)} characters is too long")
    text = value.strip().strip("\u200b\ufeff").strip()
    if not text:
        raise NormalizeError(f"{what}: empty")
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in text):
        raise NormalizeError(f"{what}: {text[:40]!r} contains control characters")
    return text


# -- domains ----------------------------------------------------------------------------------
_LDH = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def domain(value: str) -> str:
    """Lowercase IDNA A-labels (UTS #46, non-transitional), no trailing dot."""
    text = _text(value, "domain").rstrip(".")
    if not text:
        raise NormalizeError("domain: empty")
    if text.isascii():
        # Plain ASCII names (the common case) skip IDNA, which also lets `_dmarc`-style
        # service labels through; `xn--` labels are still checked by IDNA below.
        lowered = text.lower()
        labels = lowered.split(".")
        if all(_LDH.match(lb) for lb in labels) and not any(lb.startswith("xn--") for lb in labels):
            if len(lowered) > 253:
                raise NormalizeError(f"domain: {text[:40]!r}… is longer than 253 characters")
            return lowered
    try:
        out = idna.encode(text, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise NormalizeError(f"domain: {text[:60]!r} is not a valid name ({exc})") from None
    out = out.lower().rstrip(".")
    if not out or len(out) > 253:
        raise NormalizeError(f"domain: {text[:60]!r} is not a valid name")
    return out


# -- e-mail ----------------------------------------------------------------------------------
# Providers documented to ignore dots in the local part and/or deliver `local+tag` to `local`.
# Only these are folded; everywhere else `a.b@` and `ab@` stay distinct mailboxes, because the
# receiving system decides and we do not know it does the same.
EMAIL_PROVIDER_RULES: dict[str, tuple[bool, bool, str]] = {
    # domain: (ignores dots, plus-addressing, canonical domain)
    "gmail.com": (True, True, "gmail.com"),
    "googlemail.com": (True, True, "gmail.com"),
    "outlook.com": (False, True, "outlook.com"),
    "hotmail.com": (False, True, "hotmail.com"),
    "live.com": (False, True, "live.com"),
    "protonmail.com": (False, True, "protonmail.com"),
    "proton.me": (False, True, "proton.me"),
    "fastmail.com": (False, True, "fastmail.com"),
    "icloud.com": (False, True, "icloud.com"),
}
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")


def email(value: str) -> str:
    """Lowercase address with an IDNA domain; provider dot/plus rules only where stated."""
    text = _text(value, "e-mail")
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    local, sep, dom = text.rpartition("@")
    if not sep or not local or not dom:
        raise NormalizeError(f"e-mail: {text[:60]!r} has no local@domain form")
    local = unicodedata.normalize("NFC", local).lower()
    if local.startswith('"') or not (local.isascii() and _LOCAL.match(local)):
        if not local.isascii() and all(unicodedata.category(c)[0] in "LNP" for c in local):
            pass  # SMTPUTF8 local parts (RFC 6531) are allowed as they are
        else:
            raise NormalizeError(f"e-mail: local part {local[:40]!r} is not a mailbox name")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise NormalizeError(f"e-mail: local part {local[:40]!r} has a misplaced dot")
    try:
        dom = domain(dom)
    except NormalizeError as exc:
        raise NormalizeError(f"e-mail: {exc}") from None
    if "." not in dom:
        raise NormalizeError(f"e-mail: domain {dom!r} has no dot")
    rule = EMAIL_PROVIDER_RULES.get(dom)
    if rule is not None:
        dots, plus, canonical = rule
        if plus and "+" in local:
            local = local.split("+", 1)[0]
            if local.endswith("."):  # "a.+tag": the mailbox it delivers to ("a.") cannot exist
                raise NormalizeError(f"e-mail: local part {local[:40]!r} has a misplaced dot")
        if dots:
            local = local.replace(".", "")
        dom = canonical
        if not local:
            raise NormalizeError(f"e-mail: {text[:60]!r} has an empty mailbox")
    return f"{local}@{dom}"


# -- phones -----------------------------------------------------------------------------------
def phone(value: str, region: str | None = None) -> str:
    """E.164 (``+`` and digits). A number without ``+`` needs ``region`` (ISO 3166 alpha-2)."""
    text = _text(value, "phone")
    if len(text) > 64:
        raise NormalizeError(f"phone: {text[:40]!r}… is too long for a number")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if text.startswith("+") or region else " (give +country code or a region)"
        raise NormalizeError(f"phone: {text!r} is not a number: {exc}{hint}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise NormalizeError(f"phone: {text!r} is not a possible number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# -- addresses --------------------------------------------------------------------------------
def ip(value: str) -> str:
    """Canonical text form; IPv4-mapped IPv6 (``::ffff:a.b.c.d``) becomes IPv4."""
    text = _text(value, "IP address")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:
        text = text.split("%", 1)[0]  # a zone index names an interface, not the host
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise NormalizeError(f"IP address: {text[:60]!r} is not an address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def network(value: str) -> str:
    """CIDR with host bits cleared (``198.51.100.7/24`` → ``198.51.100.0/24``)."""
    text = _text(value, "network")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise NormalizeError(f"network: {text[:60]!r} is not a CIDR network") from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return str(ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False))
    return str(net)


# -- handles and names ------------------------------------------------------------------------
def _fold(text: str) -> str:
    # NFKC and casefold do not commute for every code point: iterate to the fixed point so
    # the key is idempotent (three rounds settle anything Unicode defines today).
    for _ in range(4):
        nxt = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if nxt == text:
            break
        text = nxt
    return text


def handle(value: str) -> str:
    """A nickname: NFKC, casefolded, whitespace collapsed, a leading ``@`` dropped."""
    text = _fold(_text(value, "handle"))
    text = " ".join(text.split()).lstrip("@").strip()
    text = _fold(text)
    if not text:
        raise NormalizeError("handle: empty")
    if len(text) > 128:
        raise NormalizeError(f"handle: {text[:40]!r}… is longer than 128 characters")
    return text


# Look-alikes for matching, never for keys: Cyrillic and Greek letters that render as Latin
# ones, and the common leetspeak digits. Optional (`--skeleton`), as the issue allows.
_CONFUSABLE = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "α": "a",
        "β": "b",
        "ε": "e",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "0": "o",
        "1": "l",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
    }
)


def handle_skeleton(value: str) -> str:
    """A handle reduced for look-alike matching: confusables and leet folded, punctuation gone."""
    key = handle(value).translate(_CONFUSABLE)
    return "".join(c for c in key if c.isalnum())


def person_name(value: str) -> str:
    """A person's name for display and comparison: NFKC, whitespace collapsed (case kept)."""
    text = unicodedata.normalize("NFKC", _text(value, "name"))
    text = " ".join(text.split())
    if len(text) > 256:
        raise NormalizeError(f"name: {text[:40]!r}… is longer than 256 characters")
    return text


def organisation(value: str) -> str:
    text = _fold(_text(value, "organisation"))
    return " ".join(text.split())[:256]


# -- payment ----------------------------------------------------------------------------------
_WEBMONEY = re.compile(r"^([ZREUBGXKCVHL])(\d{12})$")
_WMID = re.compile(r"^\d{12}$")
_BTC_LEGACY = re.compile(r"^[13][a-km-zA-HJ-NP-Z1-9]{25,34}$")
_BTC_BECH32 = re.compile(r"^(bc1|tb1)[ac-hj-np-z02-9]{11,71}$")
_IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$")


def payment(value: str, provider: str | None = None) -> str:
    """``scheme:id``: webmoney (purse), wmid, btc, iban, or ``provider:id`` as given."""
    text = _text(value, "payment account")
    if ":" in text and text.split(":", 1)[0] in {"webmoney", "wmid", "btc", "iban"}:
        scheme, _, rest = text.partition(":")
        return _payment_known(scheme, rest.strip(), text)
    if provider is None and ":" in text:
        # A key made with a provider ("provider:id") reads back as itself.
        head, _, tail = text.partition(":")
        with contextlib.suppress(NormalizeError):
            if head and " ".join(tail.split()) and organisation(head).replace(":", "-") == head:
                return payment(tail, head)
    compact = re.sub(r"[\s-]", "", text)
    if _WEBMONEY.match(compact.upper()):
        return f"webmoney:{compact.upper()}"
    if _BTC_BECH32.match(compact.lower()):
        return f"btc:{compact.lower()}"
    if _BTC_LEGACY.match(compact):
        return f"btc:{compact}"
    if _IBAN.match(compact.upper()) and _iban_ok(compact.upper()):
        return f"iban:{compact.upper()}"
    if provider:
        prov = organisation(provider).replace(":", "-")
        if prov in {"webmoney", "wmid", "btc", "iban"} and compact:
            return _payment_known(prov, compact, text)
        ident = " ".join(text.split())
        if ident.startswith(prov + ":"):
            ident = ident[len(prov) + 1 :]
        if ident and len(ident) <= 128:
            return f"{prov}:{ident}"
    if _WMID.match(compact):
        return f"wmid:{compact}"
    raise NormalizeError(
        f"payment account: {text[:60]!r} is no purse, wallet or IBAN we know; give its provider"
    )


def _payment_known(scheme: str, ident: str, text: str) -> str:
    compact = re.sub(r"[\s-]", "", ident)
    if scheme == "webmoney" and _WEBMONEY.match(compact.upper()):
        return f"webmoney:{compact.upper()}"
    if scheme == "wmid" and _WMID.match(compact):
        return f"wmid:{compact}"
    if scheme == "btc" and _BTC_BECH32.match(compact.lower()):
        return f"btc:{compact.lower()}"
    if scheme == "btc" and _BTC_LEGACY.match(compact):
        return f"btc:{compact}"
    if scheme == "iban" and _IBAN.match(compact.upper()) and _iban_ok(compact.upper()):
        return f"iban:{compact.upper()}"
    raise NormalizeError(f"payment account: {text[:60]!r} is not a valid {scheme} id")


def _iban_ok(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    digits = "".join(str(int(c, 36)) for c in moved)
    return int(digits) % 97 == 1


_CARD_KEY = re.compile(r"^\d{6}\*+\d{4}#[0-9a-f]{12}$")


def card(value: str) -> str:
    """``BIN6******LAST4#fingerprint``: the number itself is not kept as the key.

    The fingerprint (SHA-256 prefix of the digits) tells cards apart; it is no protection
    against someone who can enumerate numbers of a BIN.
    """
    text = _text(value, "card")
    if _CARD_KEY.match(text):
        return text
    digits = re.sub(r"[\s-]", "", text)
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise NormalizeError("card: not a card number (12-19 digits)")
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    if total % 10:
        raise NormalizeError("card: the number fails its Luhn check")
    masked = digits[:6] + "*" * (len(digits) - 10) + digits[-4:]
    return f"{masked}#{hashlib.sha256(digits.encode()).hexdigest()[:12]}"


def scoped(value: str, what: str) -> str:
    """``scope/id`` keys (hosting accounts, servers): each part folded, spaces collapsed."""
    text = _text(value, what)
    scope, sep, ident = text.partition("/")
    if not sep or not scope.strip() or not ident.strip():
        raise NormalizeError(f"{what}: {text[:60]!r} is not PROVIDER/ID")
    out = organisation(scope).replace("/", "-") + "/" + " ".join(_fold(ident).split())
    if len(out) > _MAX:
        raise NormalizeError(f"{what}: {text[:40]!r}… is too long")
    return out


def _record(value: str) -> str:
    text = _text(value, "record key")
    return " ".join(text.split())[:_MAX]


def _sample(value: str) -> str:
    text = _text(value, "sample").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise NormalizeError(f"sample: {text[:70]!r} is not a SHA-256 (64 hex digits)")
    return text


_BY_KIND: dict[str, Callable[[str], str]] = {
    "person": _record,
    "alias": handle,
    "email": email,
    "phone": phone,
    "payment": payment,
    "card": card,
    "hosting-account": lambda v: scoped(v, "hosting account"),
    "server": lambda v: scoped(v, "server"),
    "ip": ip,
    "network": network,
    "domain": domain,
    "registrant": _record,
    "sample": _sample,
    "botnet": handle,
    "organisation": organisation,
}


def key_for(kind: str, value: str) -> str:
    """The key of ``value`` as an entity of ``kind`` (raises NormalizeError)."""
    try:
        fn = _BY_KIND[kind]
    except KeyError:
        raise NormalizeError(f"unknown entity kind {kind!r}") from None
    return fn(value)
