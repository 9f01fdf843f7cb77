"""Compare the enricher with geoip2fast's own lookup, address by address, and explain gaps.

geoip2fast reports ``asn_name``, ``asn_cidr`` and ``country_code`` ("--" for reserved and
unknown networks; no AS numbers). A row agrees when as_name, network and cc all match (with
"" and "--" read as null). Every disagreement is put in a class:

- ``g2f-asn-range-misses-ip``: geoip2fast returns an ASN whose own range does not contain
  the address. In its IPv4+IPv6 files it measures every ASN range with the IPv6 prefix size,
  so an IPv4 address in a gap between ASN ranges inherits the range before the gap.
- ``g2f-no-asn-without-country``: geoip2fast stops before the ASN lookup when the address has
  no country range; the ASN range is there.
- ``ipv4-mapped``: ``::ffff:a.b.c.d`` is looked up as IPv4 here, as IPv6 by geoip2fast.
- ``ipv4-compatible``: geoip2fast reads IPv6 addresses below 2**32 (``::a.b.c.d``) as IPv4.
- ``unexplained``: anything else (the test suite requires none).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from takedown.enrich.enricher import Enricher

__all__ = ["CrossCheck", "crosscheck_geoip2fast", "geoip2fast_reader", "tally"]


@dataclass
class CrossCheck:
    """Counts of agreement and of each disagreement class, with one example per class."""

    total: int = 0
    agree: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Share of addresses on which both agree."""
        return self.agree / self.total if self.total else 1.0

    @property
    def explained_rate(self) -> float:
        """Share that agrees or disagrees for an explained reason."""
        return 1 - self.classes.get("unexplained", 0) / self.total if self.total else 1.0


def geoip2fast_reader(path: str | None = None) -> Any:
    """A GeoIP2Fast instance on the same file the default enricher embeds."""
    from geoip2fast import GeoIP2Fast

    from takedown.enrich.g2fdat import default_path

    return GeoIP2Fast(geoip2fast_data_file=str(path or default_path()))


def _theirs(result: Any) -> tuple[str | None, str | None, str | None]:
    cc = result.country_code
    return (result.asn_name or None, result.asn_cidr or None, None if cc in ("", "--") else cc)


def _classify(ip: str, ours: dict[str, Any], result: Any) -> str:
    addr = ipaddress.ip_address(ip)
    name, cidr, _ = _theirs(result)
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return "ipv4-mapped"
    if addr.version == 6 and int(addr) < 2**32:
        return "ipv4-compatible"
    if (ours["as_name"], ours["network"]) != (name, cidr):
        if cidr is not None and addr not in ipaddress.ip_network(cidr, strict=False):
            return "g2f-asn-range-misses-ip"
        if cidr is None and result.country_name == "<not found in database>":
            return "g2f-no-asn-without-country"
    return "unexplained"


def tally(ips: Sequence[str], ours: Sequence[dict[str, Any]], theirs: Sequence[Any]) -> CrossCheck:
    """Agreement of our rows with geoip2fast results for the same addresses."""
    check = CrossCheck(total=len(ips))
    for ip, mine, result in zip(ips, ours, theirs, strict=True):
        if (mine["as_name"], mine["network"], mine["cc"]) == _theirs(result):
            check.agree += 1
            continue
        cls = _classify(ip, mine, result)
        check.classes[cls] += 1
        check.examples.setdefault(cls, (ip, mine, result.to_dict()))
    return check


def crosscheck_geoip2fast(
    enricher: Enricher, ips: Sequence[str], reader: Any | None = None
) -> CrossCheck:
    """Look every address up both ways and count agreement and disagreement classes."""
    reader = reader or geoip2fast_reader()
    return tally(ips, enricher.lookup(ips), [reader.lookup(ip) for ip in ips])
