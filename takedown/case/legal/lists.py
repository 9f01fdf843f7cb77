"""Domain and IP address lists the user gives: one entry a line, ``#`` comments. Pure.

The lists go into court documents, so a bad line is never guessed at: it is reported with its
file and line number and the reason. The same checks run on the host names the bots sent to
the sinkhole (hostile input), where a bad value is skipped and counted instead.
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "MAX_LINE",
    "Entry",
    "LineError",
    "ParsedList",
    "check_domain",
    "check_ip",
    "parse_domain_list",
    "parse_ip_list",
]

MAX_LINE = 1000  # characters; longer lines are refused, not cut
_LDH = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


@dataclass(frozen=True, slots=True)
class Entry:
    """One good line: the normalised value, its line number and its trailing comment."""

    value: str
    line: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    text: str
    reason: str

    def where(self, source: str) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"{source}:{self.line}: {shown!r} {self.reason}"


@dataclass(slots=True)
class ParsedList:
    source: str
    entries: list[Entry] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    duplicates: int = 0

    def first_error(self) -> str:
        """The first bad line as one message, with the line numbers of the others."""
        head = self.errors[0].where(self.source)
        rest = [e.line for e in self.errors[1:]]
        if not rest:
            return head
        shown = ", ".join(str(n) for n in rest[:10]) + (", ..." if len(rest) > 10 else "")
        return f"{head} ({len(rest)} more bad line{'s' if len(rest) > 1 else ''}: {shown})"


def _ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _check_ldh(label: str) -> None:
    if not _LDH.match(label):
        if len(label) > 63:
            raise ValueError("has a label longer than 63 characters")
        raise ValueError(
            f"has a label ({label[:20]}) with characters other than letters, digits and "
            "inner hyphens"
        )


def _label_to_ascii(label: str) -> str:
    """One label, lower case, as its A-label; ValueError with the reason if it is not one."""
    if not label:
        raise ValueError("has an empty label (two dots in a row, or a leading dot)")
    if not label.isascii():
        try:
            ascii_label = encodings.idna.ToASCII(label).decode("ascii").lower()
        except UnicodeError:
            raise ValueError(
                f"has a label that is not a valid international name ({label[:20]})"
            ) from None
        _check_ldh(ascii_label)
        return ascii_label
    label = label.lower()
    _check_ldh(label)
    if label.startswith("xn--"):
        bad = ValueError(f"has a label that is not valid punycode ({label[:20]})")
        try:
            unicode = label[4:].encode("ascii").decode("punycode")
            again = encodings.idna.ToASCII(unicode).decode("ascii").lower() if unicode else ""
        except UnicodeError:
            raise bad from None
        if again != label:
            raise bad
    return label


def check_domain(text: str) -> tuple[str, str]:
    """A domain name as (A-label form, Unicode form), lower case, no trailing dot.

    Raises ValueError with the reason (phrased to follow the quoted value) if it is not one.
    """
    name = text.strip()
    if not name:
        raise ValueError("is empty")
    if any(c.isspace() for c in name):
        raise ValueError("has a space in it (one entry per line)")
    if "://" in name or "/" in name:
        raise ValueError("looks like a URL: give the host name only")
    if "@" in name:
        raise ValueError("looks like an e-mail address: give the domain only")
    if "*" in name:
        raise ValueError("is a wildcard: list each name, or the registered domain")
    if _ip_literal(name):
        raise ValueError("is an IP address: put it in the IP list")
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if len(labels) < 2:
        raise ValueError("is a single label, not a domain name")
    ascii_labels = [_label_to_ascii(label) for label in labels]
    if ascii_labels[-1].isdigit():
        raise ValueError("has an all-numeric top-level label")
    ascii_name = ".".join(ascii_labels)
    if len(ascii_name) > 253:
        raise ValueError("is longer than 253 characters")
    unicode_name = ".".join(
        encodings.idna.ToUnicode(label) if label.startswith("xn--") else label
        for label in ascii_labels
    )
    return ascii_name, unicode_name


def check_ip(text: str) -> str:
    """An IP address or CIDR network in canonical text form; ValueError with the reason."""
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    if any(c.isspace() for c in value):
        raise ValueError("has a space in it (one entry per line)")
    if "%" in value:
        raise ValueError("has a zone index (%...): link-local addresses cannot be seized")
    if "/" in value:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                try:
                    fixed = ipaddress.ip_network(value, strict=False)
                except ValueError:
                    raise ValueError("is not an IP network (address/prefix length)") from None
                raise ValueError(f"has host bits set (did you mean {fixed}?)") from None
            raise ValueError("is not an IP network (address/prefix length)") from None
        if net.num_addresses == 1:  # one address: written as the address itself would be
            return check_ip(str(net.network_address))
        return str(net)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IP address (IPv4 dotted quad or IPv6)") from None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _lines(data: bytes | str) -> list[tuple[int, str | None, str]]:
    """(number, text or None if undecodable, raw shown) per line; a UTF-8 BOM is dropped."""
    if isinstance(data, str):
        raw_lines: list[bytes] = [
            line.encode("utf-8", "surrogatepass") for line in data.split("\n")
        ]
    else:
        raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[0].startswith(b"\xef\xbb\xbf"):
        raw_lines[0] = raw_lines[0][3:]
    out: list[tuple[int, str | None, str]] = []
    for number, raw in enumerate(raw_lines, 1):
        line = raw.removesuffix(b"\r")
        try:
            out.append((number, line.decode("utf-8"), ""))
        except UnicodeDecodeError:
            out.append((number, None, line.decode("utf-8", "replace")))
    return out


def _parse(
    data: bytes | str, source: str, check: Callable[[str], str | tuple[str, str]]
) -> ParsedList:
    parsed = ParsedList(source)
    seen: set[str] = set()
    for number, text, shown in _lines(data):
        if text is None:
            parsed.errors.append(LineError(number, shown, "is not UTF-8 text"))
            continue
        if len(text) > MAX_LINE:
            parsed.errors.append(LineError(number, text, f"is longer than {MAX_LINE} characters"))
            continue
        if "\x00" in text:
            parsed.errors.append(LineError(number, text, "has a NUL character in it"))
            continue
        body, _, note = text.partition("#")
        if not body.strip():
            continue
        try:
            value = check(body)
        except ValueError as exc:
            parsed.errors.append(LineError(number, body.strip(), str(exc)))
            continue
        key = value[0] if isinstance(value, tuple) else value
        if key in seen:
            parsed.duplicates += 1
            continue
        seen.add(key)
        parsed.entries.append(Entry(key, number, note.strip()))
    return parsed


def parse_domain_list(data: bytes | str, source: str = "<domains>") -> ParsedList:
    """Domain names, one a line; values are A-labels (``xn--…`` for international names)."""
    return _parse(data, source, check_domain)


def parse_ip_list(data: bytes | str, source: str = "<ips>") -> ParsedList:
    """IP addresses and CIDR networks, one a line; values in canonical text form."""
    return _parse(data, source, check_ip)
