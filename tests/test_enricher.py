"""The Enricher API: list lookups, Arrow arrays, event tables (flat and nested), prefixes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from takedown import schema
from takedown.enrich import INVALID_IP, NOT_A_STRING, RESULT_TYPE, Enricher
from takedown.enrich.layers import ASN_SCHEMA, GEO_SCHEMA, Layer
from takedown.enrich.ranges import Partition

U64 = np.uint64


def _v4(ranges: list[tuple[str, str]]) -> tuple[Partition, Partition]:
    import ipaddress

    first = [int(ipaddress.IPv4Address(a)) for a, _ in ranges]
    last = [int(ipaddress.IPv4Address(b)) for _, b in ranges]
    z = np.zeros(len(ranges), U64)
    p = Partition.from_disjoint(
        32, z, U64(first), z.copy(), U64(last), np.arange(len(ranges), dtype=np.int32)
    )
    return p, Partition.empty(128)


@pytest.fixture(scope="module")
def small() -> Enricher:
    v4, v6 = _v4([("192.0.2.0", "192.0.2.255"), ("198.51.100.0", "198.51.100.127")])
    asn = Layer(
        "asn",
        v4,
        v6,
        pa.Table.from_arrays(
            [
                pa.array([64500, 64501], pa.int64()),
                pa.array(["EXAMPLE-A", "EXAMPLE-B"]).dictionary_encode(),
                pa.array(["192.0.2.0/24", "198.51.100.0/25"]),
            ],
            schema=ASN_SCHEMA,
        ),
        "test",
    )
    g4, g6 = _v4([("192.0.2.0", "192.0.2.127"), ("192.0.2.128", "198.51.100.255")])
    geo = Layer(
        "geo",
        g4,
        g6,
        pa.Table.from_arrays([pa.array(["NL", "BE"]).dictionary_encode()], schema=GEO_SCHEMA),
        "test",
    )
    return Enricher.from_layers(asn, geo)


def test_lookup_rows_in_order(small: Enricher) -> None:
    rows = small.lookup(
        ["198.51.100.7", "192.0.2.200", "nope", None, "203.0.113.1", 42, "::ffff:192.0.2.1"]
    )  # type: ignore[list-item]
    assert [list(r) for r in rows] == [["ip", "asn", "as_name", "network", "cc", "error"]] * 7
    assert rows[0] == {
        "ip": "198.51.100.7",
        "asn": 64501,
        "as_name": "EXAMPLE-B",
        "network": "198.51.100.0/25",
        "cc": "BE",
        "error": None,
    }
    assert rows[1]["cc"] == "BE" and rows[1]["asn"] == 64500
    assert rows[2] == {
        "ip": "nope",
        "asn": None,
        "as_name": None,
        "network": None,
        "cc": None,
        "error": INVALID_IP,
    }
    assert rows[3]["error"] is None and rows[3]["asn"] is None
    assert rows[4]["asn"] is None and rows[4]["error"] is None  # valid, just unknown
    assert rows[5]["error"] == NOT_A_STRING and rows[5]["ip"] == 42
    assert rows[6]["asn"] == 64500 and rows[6]["cc"] == "NL"
    assert small.lookup([]) == []


def test_enrich_arrow_types(small: Enricher) -> None:
    arr = pa.chunked_array([pa.array(["192.0.2.1", None]), pa.array(["x"])])
    out = small.enrich_arrow(arr)
    assert out.type == RESULT_TYPE
    assert out.to_pylist()[0] == {
        "asn": 64500,
        "as_name": "EXAMPLE-A",
        "network": "192.0.2.0/24",
        "cc": "NL",
        "error": None,
    }
    assert out.field("error").to_pylist() == [None, None, INVALID_IP]
    d = small.enrich_arrow(arr, dictionary=True)
    assert pa.types.is_dictionary(d.field("as_name").type)
    assert d.field("as_name").to_pylist() == out.field("as_name").to_pylist()


def test_enrich_flat_table(small: Enricher) -> None:
    t = pa.table(
        {
            "source.ip": ["192.0.2.9", "198.51.100.1", "bad"],
            "source.asn": pa.array([1, None, None], pa.int64()),
        }
    )
    out = small.enrich_table(t)
    assert out.column("source.asn").to_pylist() == [1, 64501, None]  # existing value kept
    assert out.column("source.as_name").to_pylist() == ["EXAMPLE-A", "EXAMPLE-B", None]
    assert out.column("source.geolocation.cc").to_pylist() == ["NL", "BE", None]
    assert out.schema.field("source.network").type == pa.string()
    over = small.enrich_table(t, overwrite=True)
    assert over.column("source.asn").to_pylist() == [64500, 64501, None]


def test_enrich_nested_lake_table(small: Enricher) -> None:
    flat = pa.table(
        {
            "source.ip": ["192.0.2.9", None, "198.51.100.1"],
            "source.port": pa.array([1, 2, 3], pa.int32()),
        }
    )
    nested = schema.nest(flat)
    out = small.enrich_table(nested)
    assert out.schema == schema.lake_schema()
    back = schema.flatten(out)
    assert back.column("source.asn").to_pylist() == [64500, None, 64501]
    assert back.column("source.geolocation.cc").to_pylist() == ["NL", None, "BE"]
    assert back.column("source.port").to_pylist() == [1, 2, 3]


def test_enrich_table_without_ip_column(small: Enricher) -> None:
    with pytest.raises(ValueError, match=r"no 'source\.ip'"):
        small.enrich_table(pa.table({"x": [1]}))
    with pytest.raises(ValueError, match="no 'ip' field"):
        small.enrich_table(pa.table({"source": pa.array([{"port": 1}])}))
    minimal = small.enrich_table(pa.table({"source": pa.array([{"ip": "192.0.2.1"}])}))
    assert minimal.column("source").to_pylist()[0]["geolocation"] == {"cc": "NL"}


def test_prefixes_and_asn_table(small: Enricher) -> None:
    assert small.prefixes(64500) == ["192.0.2.0/24"]
    assert small.prefixes("EXAMPLE-B") == ["198.51.100.0/25"]
    assert small.prefixes(1) == []
    t = small.asn_table()
    assert t.column_names == ["network", "asn", "as_name", "cc"]
    assert t.to_pylist()[0] == {
        "network": "192.0.2.0/24",
        "asn": 64500,
        "as_name": "EXAMPLE-A",
        "cc": "NL",
    }


def test_default_enricher() -> None:
    e = Enricher.default()
    rows = e.lookup(["8.8.8.8", "2001:4860:4860::8888", "192.168.1.1"])
    assert (
        rows[0]["as_name"] == "GOOGLE"
        and rows[0]["network"] == "8.8.8.0/24"
        and rows[0]["cc"] == "US"
    )
    assert rows[0]["asn"] is None  # geoip2fast's data has AS names, no numbers
    assert rows[1]["as_name"] == "GOOGLE"
    assert rows[2]["network"] == "192.168.0.0/16" and rows[2]["cc"] is None
    assert "8.8.8.0/24" in e.prefixes("GOOGLE")
    assert e.asn_table().num_rows > 600_000
    assert e.sources["asn"].startswith("geoip2fast 1.2.2")
    assert Enricher.default() is not e  # a new handle, same cached tables


def test_large_inputs_are_processed_in_pieces(small: Enricher) -> None:
    from takedown.enrich import enricher

    n = enricher._CHUNK + 5
    arr = pa.array(["192.0.2.1", "x"] * (n // 2) + ["198.51.100.1"])
    out = small.enrich_arrow(arr)
    assert len(out) == len(arr) and out.type == RESULT_TYPE
    assert out.field("asn").to_pylist()[-3:] == [64500, None, 64501]
    d = small.enrich_arrow(pa.chunked_array([arr]), dictionary=True)
    assert d.field("network").to_pylist()[-1] == "198.51.100.0/25"


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_repeated_addresses_are_looked_up_once_with_the_same_result(
    small: Enricher, layout: str
) -> None:
    from takedown.enrich import enricher

    pool = ["192.0.2.9", None, "198.51.100.1", "bad", "203.0.113.5", "::ffff:192.0.2.9"]
    n = enricher._DEDUPE_FROM * 2
    ips = [pool[(i * 7) % len(pool)] for i in range(n)]
    flat = pa.table({"source.ip": ips})
    table = schema.nest(flat) if layout == "nested" else flat
    out = small.enrich_table(table)
    back = schema.flatten(out) if layout == "nested" else out
    want = small.enrich_arrow(pa.array(ips))  # row by row, no de-duplication (one piece)
    assert back.column("source.asn").to_pylist() == want.field("asn").to_pylist()
    assert back.column("source.as_name").to_pylist() == want.field("as_name").to_pylist()
    assert back.column("source.network").to_pylist() == want.field("network").to_pylist()
    assert back.column("source.geolocation.cc").to_pylist() == want.field("cc").to_pylist()
    assert back.column("source.asn").to_pylist()[:2] == [64500, None]
