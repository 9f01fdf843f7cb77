"""MMDB reading, against small databases written here by a minimal MaxMind DB writer.

The writer follows the MaxMind DB format spec 2.0 (binary search tree with 24-bit records,
16-byte separator, data section, metadata after the marker); the tests first check that the
``maxminddb`` reader itself reads what it writes, then test ``takedown.enrich.mmdb`` on it.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Any

import maxminddb
import pytest

from takedown.enrich import Enricher, EnrichError
from takedown.enrich.mmdb import is_mmdb, layers_from_mmdb, record_asn, record_cc

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- a minimal MMDB writer ---------------------------------------------------------------------


def _ctrl(type_: int, size: int) -> bytes:
    if size < 29:
        head, extra = size, b""
    elif size < 285:
        head, extra = 29, bytes([size - 29])
    elif size < 65821:
        head, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        head, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_ <= 7:
        return bytes([(type_ << 5) | head]) + extra
    return bytes([head, type_ - 7]) + extra


class Uint:
    """An unsigned int with an explicit MMDB type (the C reader checks metadata types)."""

    def __init__(self, value: int, type_: int) -> None:
        self.value, self.type_ = value, type_


def encode(value: Any) -> bytes:
    """MaxMind DB data-section encoding of str, int, bool, float, list and dict values."""
    if isinstance(value, Uint):
        raw = value.value.to_bytes((value.value.bit_length() + 7) // 8, "big")
        return _ctrl(value.type_, len(raw)) + raw
    if isinstance(value, bool):
        return _ctrl(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _ctrl(2, len(raw)) + raw
    if isinstance(value, float):
        return _ctrl(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative ints not needed here")
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
        type_ = 5 if value < 2**16 else 6 if value < 2**32 else 9
        return _ctrl(type_, len(raw)) + raw
    if isinstance(value, dict):
        out = _ctrl(7, len(value))
        for k, v in value.items():
            out += encode(str(k)) + encode(v)
        return out
    if isinstance(value, list):
        return _ctrl(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(type(value))


def write_mmdb(path: Path, networks: list[tuple[str, dict[str, Any]]], ip_version: int = 6) -> Path:
    """Write ``(cidr, record)`` pairs; later (longer) networks override earlier ones."""
    bits = 128 if ip_version == 6 else 32
    nodes: list[list[Any]] = [[None, None]]  # record: None | ("node", i) | ("data", key)
    blobs: dict[str, bytes] = {}

    def insert(net: Net, key: str) -> None:
        if net.version == 4 and bits == 128:
            value, plen = int(net.network_address), net.prefixlen + 96
        else:
            value, plen = int(net.network_address), net.prefixlen
        node = 0
        for depth in range(plen):
            bit = (value >> (bits - 1 - depth)) & 1
            rec = nodes[node][bit]
            if depth == plen - 1:
                nodes[node][bit] = ("data", key)
                return
            if rec is None or rec[0] == "data":
                nodes.append([rec, rec])  # push an existing shorter prefix down
                nodes[node][bit] = ("node", len(nodes) - 1)
            node = nodes[node][bit][1]

    for cidr, record in sorted(
        networks, key=lambda x: ipaddress.ip_network(x[0], strict=False).prefixlen
    ):
        key = repr(sorted(record.items()))
        blobs.setdefault(key, encode(record))
        insert(ipaddress.ip_network(cidr, strict=False), key)

    offsets: dict[str, int] = {}
    data = b""
    for key, blob in blobs.items():
        offsets[key] = len(data)
        data += blob
    count = len(nodes)

    def rec_value(rec: Any) -> int:
        if rec is None:
            return count
        if rec[0] == "node":
            return int(rec[1])
        return count + 16 + offsets[rec[1]]

    tree = b"".join(
        rec_value(left).to_bytes(3, "big") + rec_value(right).to_bytes(3, "big")
        for left, right in nodes
    )
    meta = {
        "node_count": Uint(count, 6),
        "record_size": Uint(24, 5),
        "ip_version": Uint(ip_version, 5),
        "database_type": "Takedown-Test",
        "languages": ["en"],
        "binary_format_major_version": Uint(2, 5),
        "binary_format_minor_version": Uint(0, 5),
        "build_epoch": Uint(1_700_000_000, 9),
        "description": {"en": "test database"},
    }
    path.write_bytes(tree + b"\x00" * 16 + data + b"\xab\xcd\xefMaxMind.com" + encode(meta))
    return path


# -- fixtures ------------------------------------------------------------------------------------

ASN_RECORDS = [
    ("8.8.8.0/24", {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"}),
    ("1.1.1.0/24", {"autonomous_system_number": 13335, "autonomous_system_organization": "CF"}),
    ("1.1.0.0/16", {"autonomous_system_number": 64500, "autonomous_system_organization": "BIG"}),
    (
        "2001:4860::/32",
        {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"},
    ),
    (
        "2a00:1450::/29",
        {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"},
    ),
]
COUNTRY_RECORDS = [
    ("8.0.0.0/8", {"country": {"iso_code": "US", "names": {"en": "United States"}}}),
    ("1.1.1.0/24", {"country": {"iso_code": "AU"}, "registered_country": {"iso_code": "US"}}),
    ("1.1.2.0/24", {"registered_country": {"iso_code": "JP"}}),
    ("2001:4860::/32", {"country": {"iso_code": "US"}}),
    ("2a00:1450::/32", {"country": {"iso_code": "IE"}}),
]


@pytest.fixture()
def asn_db(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "asn.mmdb", ASN_RECORDS)


@pytest.fixture()
def country_db(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "country.mmdb", COUNTRY_RECORDS)


# -- the writer is read back by maxminddb itself ---------------------------------------------------


def test_writer_is_readable_by_maxminddb(asn_db: Path) -> None:
    with maxminddb.open_database(str(asn_db)) as reader:
        assert reader.get("8.8.8.8") == ASN_RECORDS[0][1]
        assert reader.get("1.1.1.1")["autonomous_system_number"] == 13335  # type: ignore[index]
        assert reader.get("1.1.9.9")["autonomous_system_number"] == 64500  # type: ignore[index]
        assert reader.get("9.9.9.9") is None
        assert reader.get("2001:4860::1")["autonomous_system_organization"] == "GOOGLE"  # type: ignore[index]
        nets = {str(n) for n, _ in reader}
    assert {"8.8.8.0/24", "1.1.1.0/24", "2001:4860::/32"} <= nets


def test_ipv4_only_database(tmp_path: Path) -> None:
    db = write_mmdb(tmp_path / "v4.mmdb", ASN_RECORDS[:3], ip_version=4)
    asn, geo = layers_from_mmdb(db, "t")
    assert geo is None and asn is not None
    e = Enricher.from_layers(asn, _empty_geo())
    assert e.lookup(["8.8.8.8"])[0]["asn"] == 15169


def _empty_geo():  # type: ignore[no-untyped-def]
    from takedown.enrich.layers import Layer

    return Layer.empty("geo")


# -- record shapes -------------------------------------------------------------------------------


def test_record_asn_shapes() -> None:
    assert record_asn(ASN_RECORDS[0][1]) == (15169, "GOOGLE")
    assert record_asn({"traits": {"autonomous_system_number": 7}}) == (7, None)
    assert record_asn({"asn": "AS15169", "as_name": "Google LLC"}) == (15169, "Google LLC")
    assert record_asn({"asn": "bogus"}) == (None, None)
    assert record_asn({"country": {"iso_code": "US"}}) == (None, None)
    assert record_asn("not a dict") == (None, None)
    assert record_asn({"autonomous_system_number": True}) == (None, None)


def test_record_cc_shapes() -> None:
    assert record_cc(COUNTRY_RECORDS[0][1]) == "US"
    assert record_cc(COUNTRY_RECORDS[1][1]) == "AU"  # country wins over registered_country
    assert record_cc(COUNTRY_RECORDS[2][1]) == "JP"  # registered_country as the fallback
    assert record_cc({"country_code": "de"}) == "DE"
    assert record_cc({"country": "US"}) is None
    assert record_cc([]) is None


# -- through the enricher ------------------------------------------------------------------


def test_from_files_asn_and_country(asn_db: Path, country_db: Path, tmp_path: Path) -> None:
    assert is_mmdb(asn_db)
    e = Enricher.from_files(asn=asn_db, country=country_db, cache_dir=tmp_path / "c")
    ips = ["8.8.8.8", "1.1.1.1", "1.1.2.3", "1.2.3.4", "2001:4860::8888", "2a00:1450:4001::1"]
    rows = e.lookup([*ips, "8.1.2.3", "9.9.9.9"])
    got = [(r["asn"], r["as_name"], r["network"], r["cc"]) for r in rows]
    assert got == [
        (15169, "GOOGLE", "8.8.8.0/24", "US"),
        (13335, "CF", "1.1.1.0/24", "AU"),
        (64500, "BIG", "1.1.2.0/23", "JP"),  # MMDB leaf network around 1.1.2.0 under /16
        (None, None, None, None),
        (15169, "GOOGLE", "2001:4860::/32", "US"),
        (15169, "GOOGLE", "2a00:1450::/29", "IE"),
        (None, None, None, "US"),
        (None, None, None, None),
    ]
    assert e.prefixes(15169) == ["8.8.8.0/24", "2001:4860::/32", "2a00:1450::/29"]
    table = e.asn_table().to_pylist()
    by_net = {row["network"]: row for row in table}
    assert by_net["2a00:1450::/29"]["cc"] == "IE"
    assert by_net["1.1.0.0/24"]["asn"] == 64500  # the /16 split around the nested /24


def test_combined_mmdb(tmp_path: Path) -> None:
    both = [
        ("8.8.8.0/24", {**ASN_RECORDS[0][1], "country": {"iso_code": "US"}}),
        ("2a00:1450::/29", {"asn": "AS15169", "as_name": "Google LLC", "country_code": "IE"}),
    ]
    db = write_mmdb(tmp_path / "both.mmdb", both)
    e = Enricher.from_files(mmdb=db, cache_dir=tmp_path / "c")
    assert e.lookup(["8.8.8.8"])[0] | {"ip": None} == {
        "ip": None,
        "asn": 15169,
        "as_name": "GOOGLE",
        "network": "8.8.8.0/24",
        "cc": "US",
        "error": None,
    }
    assert e.lookup(["2a00:1450::9"])[0]["as_name"] == "Google LLC"
    assert e.sources["asn"] == e.sources["geo"] == "mmdb both.mmdb"


def test_country_only_file_has_no_asn_role(country_db: Path, tmp_path: Path) -> None:
    with pytest.raises(EnrichError, match="no ASN data"):
        Enricher.from_files(asn=country_db, cache_dir=tmp_path / "c")
    e = Enricher.from_files(country=country_db, cache_dir=tmp_path / "c")
    assert e.lookup(["8.1.2.3"])[0]["cc"] == "US"
    assert e.lookup(["8.1.2.3"])[0]["asn"] is None


def test_not_an_mmdb(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"hello")
    assert not is_mmdb(junk)
    with pytest.raises(EnrichError, match="neither an MMDB"):
        Enricher.from_files(country=junk, cache_dir=tmp_path / "c")
