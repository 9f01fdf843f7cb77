"""Strings dumps and configuration files from seized servers and samples.

Each line of text is a record. What it finds links ``appears-in`` the container (``--from``:
a server, a sample; by default a sample entity named by the imported file's SHA-256):
e-mail addresses, URLs and domains, IP addresses, payment ids (WebMoney purses, Bitcoin
addresses with a valid checksum, IBANs with a valid check digit), and handles. Handles come
from explicit markers (``nick=``, ``coded by``, ``@name``, ``C:\\Users\\name\\``,
``/home/name/``) and from a watch-list: aliases already in the graph, found whole (or their
stem, e.g. ``cosma`` of ``cosma2k``) in the text after look-alike folding.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from takedown.case.graph.importers.base import Parsed, RecordLinks, Ref, decode, run_records
from takedown.case.graph.normalize import NormalizeError, handle, handle_skeleton

__all__ = ["CONFIDENCE", "parse_strings"]

CONFIDENCE = {
    "exact": 90,  # validated identifiers (address, checksummed wallet) are really in the file
    "domain": 60,  # a dotted word with a known TLD may be a file name or a version string
    "handle-marker": 70,
    "watch-whole": 60,
    "watch-stem": 35,
}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}")
_URL = re.compile(r"\b(?:https?|ftp)://([A-Za-z0-9.-]{1,253})(?::\d{1,5})?", re.IGNORECASE)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"\b((?:{_LABEL}\.){{1,8}}[A-Za-z]{{2,24}})\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.])({_OCTET}(?:\.{_OCTET}){{3}})(?![\d.])")
_HEX = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(
    rf"(?<![0-9A-Fa-f:])((?:{_HEX}:){{2,7}}{_HEX}|(?:{_HEX}:){{1,7}}:(?:{_HEX})?)(?![0-9A-Fa-f:])"
)
_WEBMONEY = re.compile(r"\b([ZREUBGX]\d{12})\b")
_BTC = re.compile(r"\b([13][a-km-zA-HJ-NP-Z1-9]{25,34}|bc1[ac-hj-np-z02-9]{11,71})\b")
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)\b")
_MARKER = re.compile(
    r"(?i)\b(?:nick(?:name)?|handle|user(?:name)?|login|author|coded[ _]by|written[ _]by|"
    r"greets?[ _]to)(?:\s*[:=]\s*|\s+)[\"']?([A-Za-z0-9_.\-]{3,32})"
)
_AT_HANDLE = re.compile(r"(?<![A-Za-z0-9._%+-])@([A-Za-z0-9_]{3,32})\b")
_USER_PATH = re.compile(
    r"(?i)(?:[A-Z]:\\(?:Users|Documents and Settings)\\|/home/)([^\\/\s:*?\"<>|]{2,32})"
)
_TOKEN = re.compile(r"[^\s\"'=:;,/\\()<>\[\]{}]{3,256}")
# Top-level domains worth believing in a strings dump: the generic ones criminals use most,
# and every two-letter country code except those that are also common file extensions.
_GENERIC_TLDS = frozenset(
    re.findall(
        r"\w+",
        "com net org info biz name pro xyz top online site club shop store app dev io cc tv me co"
        " su ws ru ua by kz pw tk ml ga cf gq in cn uk de fr nl eu example test invalid onion",
    )
)
_FILE_EXTENSIONS = frozenset(
    re.findall(r"\w+", "py sh pl pm md js ts cs so db gz bz xz ps am ai ax mo id rs sc sy cf")
)
_SKIP_HANDLES = frozenset({"admin", "administrator", "root", "user", "guest", "public", "default"})
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_MAX_LINE = 4096


def _tld_ok(name: str) -> bool:
    tld = name.rsplit(".", 1)[-1].lower()
    if tld in _GENERIC_TLDS:
        return True
    return len(tld) == 2 and tld not in _FILE_EXTENSIONS


def _base58check(text: str) -> bool:
    num = 0
    for c in text:
        i = _B58.find(c)
        if i < 0:
            return False
        num = num * 58 + i
    pad = len(text) - len(text.lstrip("1"))
    try:
        raw = b"\0" * pad + num.to_bytes((num.bit_length() + 7) // 8, "big")
    except OverflowError:
        return False
    if len(raw) != 25:
        return False
    check = hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()[:4]
    return check == raw[-4:]


def _bech32(text: str) -> bool:
    hrp, _, data = text.lower().rpartition("1")
    if hrp != "bc" or len(data) < 6:
        return False
    values = [_BECH32.find(c) for c in data]
    if min(values) < 0:
        return False
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk in (1, 0x2BC830A3)  # bech32 or bech32m


def _stem(skeleton: str) -> str:
    """A handle's stem: trailing digits and a trailing year/"k" tag removed (cosma2k → cosma)."""
    stem = re.sub(r"(?:\d+k?|k)$", "", skeleton)
    return stem if len(stem) >= 4 else ""


def parse_strings(
    data: bytes,
    sha256: str,
    name: str = "",
    *,
    container: Ref | None = None,
    container_label: str | None = None,
    watch: Sequence[str] = (),
) -> Parsed:
    """Identifiers found in the text, each ``appears-in`` the container."""
    box: Ref = container or ("sample", sha256)
    label = container_label or (name if container is None else None)
    watch_list: list[tuple[str, str, str]] = []  # (alias key, skeleton, stem)
    for alias in watch:
        try:
            skel = handle_skeleton(alias)
        except NormalizeError:
            continue
        if len(skel) >= 3:
            watch_list.append((handle(alias), skel, _stem(skel)))

    def records() -> Iterator[tuple[str, Any, str]]:
        for n, line in enumerate(decode(data).splitlines(), 1):
            if line.strip():
                yield f"line {n}", line[:_MAX_LINE], line[:2000]

    def found(rec: RecordLinks, ref: Ref | None, conf: int, what: str, note: str = "") -> None:
        rec.link(ref, "appears-in", box, conf, column=what, note=note, dst_label=label)

    def build(rec: RecordLinks, line: str) -> None:
        taken: set[tuple[int, int]] = set()
        for m in _EMAIL.finditer(line):
            taken.add(m.span())
            found(rec, rec.ref("email", m.group(0), "e-mail"), CONFIDENCE["exact"], "e-mail")
        for m in _URL.finditer(line):
            taken.add(m.span())
            found(rec, rec.ref("domain", m.group(1), "URL"), CONFIDENCE["exact"], "URL host")
        for m in _DOMAIN.finditer(line):
            if any(a <= m.start() < b for a, b in taken) or not _tld_ok(m.group(1)):
                continue
            if _IPV4.fullmatch(m.group(1)):
                continue
            found(rec, rec.ref("domain", m.group(1), "domain"), CONFIDENCE["domain"], "domain")
        for m in _IPV4.finditer(line):
            found(rec, rec.ref("ip", m.group(1), "IPv4"), CONFIDENCE["exact"], "IPv4")
        for m in _IPV6.finditer(line):
            if m.group(1).count(":") >= 2:
                try:
                    ref = rec.ref("ip", m.group(1), "IPv6")
                except NormalizeError:
                    ref = None
                found(rec, ref, CONFIDENCE["exact"], "IPv6")
        for m in _WEBMONEY.finditer(line):
            found(
                rec,
                rec.ref("payment", m.group(1), "WebMoney purse"),
                CONFIDENCE["exact"],
                "WebMoney purse",
            )
        for m in _BTC.finditer(line):
            text = m.group(1)
            if _bech32(text) if text.startswith("bc1") else _base58check(text):
                found(rec, rec.ref("payment", text, "Bitcoin"), CONFIDENCE["exact"], "Bitcoin")
        for m in _IBAN.finditer(line):
            iban = m.group(1).replace(" ", "")
            try:
                ref = rec.ref("payment", f"iban:{iban}", "IBAN")
            except NormalizeError:
                ref = None
            if ref is not None:
                found(rec, ref, CONFIDENCE["exact"], "IBAN")
        handles: dict[str, str] = {}
        for pattern, what in (
            (_MARKER, "handle marker"),
            (_AT_HANDLE, "@handle"),
            (_USER_PATH, "user folder"),
        ):
            for m in pattern.finditer(line):
                text = m.group(1).strip(".-_")
                if text and text.lower() not in _SKIP_HANDLES and not text.isdigit():
                    handles.setdefault(text, what)
        for text, what in handles.items():
            found(rec, rec.ref("alias", text, what), CONFIDENCE["handle-marker"], what)
        if watch_list:
            skeletons = []
            for tok in _TOKEN.findall(line):
                try:
                    skeletons.append(handle_skeleton(tok))
                except NormalizeError:
                    continue
            line_skel = "\x00".join(skeletons)  # tokens apart: no match across two words
            for key, skel, stem in watch_list:
                if skel in line_skel:
                    found(
                        rec,
                        ("alias", key),
                        CONFIDENCE["watch-whole"],
                        "watch-list",
                        note=f"known alias {key!r} found (look-alikes folded)",
                    )
                elif stem and stem in line_skel:
                    found(
                        rec,
                        ("alias", key),
                        CONFIDENCE["watch-stem"],
                        "watch-list",
                        note=f"the stem {stem!r} of known alias {key!r} found",
                    )

    return run_records(records(), sha256, build)
