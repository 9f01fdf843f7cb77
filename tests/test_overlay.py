"""Overlaid tables: lookups through both layers, main country per network, save and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from takedown.enrich.layers import ASN_SCHEMA, GEO_SCHEMA, Layer
from takedown.enrich.overlay import Tables
from takedown.enrich.ranges import Partition

U64 = np.uint64


def v4_layer(role: str, ranges: list[tuple[int, int]], payload: pa.Table) -> Layer:
    hi = np.zeros(len(ranges), U64)
    part = Partition.from_disjoint(
        32,
        hi,
        U64([a for a, _ in ranges]),
        hi.copy(),
        U64([b for _, b in ranges]),
        np.arange(len(ranges), dtype=np.int32),
    )
    return Layer(role, part, Partition.empty(128), payload, role)  # type: ignore[arg-type]


@pytest.fixture()
def tables() -> Tables:
    asn = pa.Table.from_arrays(
        [
            pa.array([64500, None], pa.int64()),
            pa.array(["NET-A", "NET-B"]).dictionary_encode(),
            pa.array(["0.0.0.0/28", "0.0.0.32/27"]),
        ],
        schema=ASN_SCHEMA,
    )
    geo = pa.Table.from_arrays(
        [pa.array(["DE", "FR", None]).dictionary_encode()], schema=GEO_SCHEMA
    )
    # ASN row 0 = [0, 15]; row 1 = [32, 63]. Countries: DE [0, 3], FR [4, 40], null [41, 50].
    return Tables.build(
        v4_layer("asn", [(0, 15), (32, 63)], asn),
        v4_layer("geo", [(0, 3), (4, 40), (41, 50)], geo),
    )


def test_lookup_and_main_country(tables: Tables) -> None:
    q = np.arange(0, 70, dtype=U64)
    rows = tables.v4.lookup(np.zeros_like(q), q)
    assert (
        rows[0].tolist() == [0, 0] and rows[20].tolist() == [-1, 1] and rows[45].tolist() == [1, 2]
    )
    assert rows[64].tolist() == [-1, -1]
    # NET-A: 4 addresses DE, 12 FR → FR. NET-B: 9 FR, 10 null-country (ignored) → FR.
    assert tables.asn_cc.to_pylist() == ["FR", "FR"]


def test_save_and_load_round_trip(tables: Tables, tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    tables.save(path)
    back = Tables.load(path)
    assert back.asn.equals(tables.asn) and back.geo.equals(tables.geo)
    assert back.asn_cc.to_pylist() == tables.asn_cc.to_pylist()
    assert back.sources == tables.sources
    q = np.arange(0, 70, dtype=U64)
    assert (back.v4.lookup(q * 0, q) == tables.v4.lookup(q * 0, q)).all()
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_junk(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"nope")
    with pytest.raises(ValueError):
        Tables.load(junk)


def test_build_checks_roles(tables: Tables) -> None:
    with pytest.raises(ValueError):
        Tables.build(Layer.empty("geo"), Layer.empty("geo"))
    with pytest.raises(ValueError):
        Layer("asn", Partition.empty(32), Partition.empty(128), GEO_SCHEMA.empty_table(), "x")
