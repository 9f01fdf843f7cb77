"""Offline enrichment: IP → ASN, AS name, announced network, country; vectorised over Arrow.

``Enricher.default()`` uses the data the geoip2fast package ships (MaxMind GeoLite2-derived);
``Enricher.from_files(...)`` reads MaxMind MMDB files or pyasn tables instead.
"""

from __future__ import annotations

from takedown.enrich.datafiles import EnrichError
from takedown.enrich.enricher import INVALID_IP, NOT_A_STRING, RESULT_TYPE, Enricher
from takedown.enrich.ipparse import ParsedIPs, parse_ips

__all__ = [
    "INVALID_IP",
    "NOT_A_STRING",
    "RESULT_TYPE",
    "EnrichError",
    "Enricher",
    "ParsedIPs",
    "parse_ips",
]
