"""Read MaxMind DB (MMDB) files into layers, via the ``maxminddb`` reader.

Understood record shapes (the first that matches wins):

- ASN: ``autonomous_system_number`` / ``autonomous_system_organization`` (GeoLite2-ASN,
  DB-IP ASN Lite; also under ``traits`` as in GeoIP2 Enterprise), or ipinfo's ``asn``
  (``"AS15169"``) / ``as_name``;
- country: ``country.iso_code``, else ``registered_country.iso_code`` (GeoLite2-Country and
  -City, DB-IP Country Lite), or a top-level ``country_code`` (ipinfo).

The whole tree is walked once (a few seconds for a full country database); the result is
cached by the enricher, keyed by the file's hash.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from takedown.enrich.layers import ASN_SCHEMA, GEO_SCHEMA, Layer
from takedown.enrich.ranges import Partition, prefix_last

__all__ = ["MMDB_MARKER", "is_mmdb", "layers_from_mmdb", "record_asn", "record_cc"]

MMDB_MARKER = b"\xab\xcd\xefMaxMind.com"


def is_mmdb(path: Path) -> bool:
    """Whether the file ends with an MMDB metadata section (marker in the last 128 KiB)."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 128 * 1024))
        return MMDB_MARKER in fh.read()


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**32 else None
    if isinstance(value, str):
        text = value.strip().upper().removeprefix("AS")
        return int(text) if text.isdigit() and int(text) < 2**32 else None
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def record_asn(record: Any) -> tuple[int | None, str | None]:
    """(AS number, AS name) of one MMDB record, either possibly ``None``."""
    if not isinstance(record, dict):
        return None, None
    for holder in (record, record.get("traits")):
        if isinstance(holder, dict) and (
            "autonomous_system_number" in holder or "autonomous_system_organization" in holder
        ):
            return (
                _int_or_none(holder.get("autonomous_system_number")),
                _str_or_none(holder.get("autonomous_system_organization")),
            )
    if "asn" in record or "as_name" in record:
        return _int_or_none(record.get("asn")), _str_or_none(record.get("as_name"))
    return None, None


def record_cc(record: Any) -> str | None:
    """ISO 3166-1 alpha-2 country of one MMDB record, or ``None``."""
    if not isinstance(record, dict):
        return None
    for key in ("country", "registered_country"):
        sub = record.get(key)
        if isinstance(sub, dict):
            code = _str_or_none(sub.get("iso_code"))
            if code:
                return code.upper()
    code = _str_or_none(record.get("country_code"))
    return code.upper() if code else None


@dataclass
class _Rows:
    start: list[int] = field(default_factory=list)
    plen: list[int] = field(default_factory=list)
    v6: list[bool] = field(default_factory=list)

    def add(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
        self.start.append(int(net.network_address))
        self.plen.append(net.prefixlen)
        self.v6.append(net.version == 6)

    def arrays(
        self,
    ) -> tuple[NDArray[np.uint64], NDArray[np.uint64], NDArray[np.int16], NDArray[np.bool_]]:
        obj = np.array(self.start, dtype=object)
        if obj.size == 0:
            z = np.zeros(0, np.uint64)
            return z, z.copy(), np.zeros(0, np.int16), np.zeros(0, bool)
        hi = (obj >> 64).astype(np.uint64)
        lo = (obj & 0xFFFF_FFFF_FFFF_FFFF).astype(np.uint64)
        return hi, lo, np.array(self.plen, np.int16), np.array(self.v6, bool)


def _partitions(rows: _Rows) -> tuple[Partition, Partition]:
    hi, lo, plen, v6 = rows.arrays()
    out = []
    for sel, bits in ((~v6, 32), (v6, 128)):
        idx = np.flatnonzero(sel)
        h, lw, pl = hi[idx], lo[idx], plen[idx]
        order = np.lexsort((lw, h))
        idx, h, lw, pl = idx[order], h[order], lw[order], pl[order]
        last_hi, last_lo = prefix_last(h, lw, pl, bits)
        out.append(Partition.from_disjoint(bits, h, lw, last_hi, last_lo, idx.astype(np.int32)))
    return out[0], out[1]


def layers_from_mmdb(path: Path, source: str) -> tuple[Layer | None, Layer | None]:
    """(asn, geo) layers of an MMDB file; a role the file has no data for is ``None``."""
    asn_rows, geo_rows = _Rows(), _Rows()
    asns: list[int | None] = []
    names: list[str | None] = []
    nets: list[str] = []
    ccs: list[str | None] = []
    with maxminddb.open_database(str(path)) as reader:
        for net, record in reader:
            number, name = record_asn(record)
            if number is not None or name is not None:
                asn_rows.add(net)
                asns.append(number)
                names.append(name)
                nets.append(str(net))
            cc = record_cc(record)
            if cc is not None:
                geo_rows.add(net)
                ccs.append(cc)
    asn_layer = geo_layer = None
    if nets:
        v4, v6 = _partitions(asn_rows)
        payload = pa.Table.from_arrays(
            [
                pa.array(asns, pa.int64()),
                pa.array(names, pa.string()).dictionary_encode(),
                pa.array(nets, pa.string()),
            ],
            schema=ASN_SCHEMA,
        )
        asn_layer = Layer("asn", v4, v6, payload, source)
    if ccs:
        v4, v6 = _partitions(geo_rows)
        cc = pa.array(ccs, pa.string()).dictionary_encode()
        geo_layer = Layer("geo", v4, v6, pa.Table.from_arrays([cc], schema=GEO_SCHEMA), source)
    return asn_layer, geo_layer
