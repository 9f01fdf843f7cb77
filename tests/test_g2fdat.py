"""Reading geoip2fast's .dat.gz files: the embedded data, the safe unpickler, odd files."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from takedown.enrich.g2fdat import default_path, layers_from_dat, read_dat


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return read_dat(default_path())


def test_embedded_file_decodes(data) -> None:  # type: ignore[no-untyped-def]
    assert data.has_asn
    assert data.info.startswith("MAXMIND:GeoLite2-CountryASN-IPv4IPv6")
    hi, lo, plen, ids = data.geo
    assert hi.shape == lo.shape == plen.shape == ids.shape and hi.shape[0] > 700_000
    a_hi, a_lo, a_plen, _a_ids = data.asn
    assert a_hi.shape[0] > 600_000
    assert "GOOGLE" in data.asn_names and "IANA.ORG" in data.asn_names
    # Both families in one integer space, each list sorted.
    starts = [(int(h) << 64) | int(lw) for h, lw in zip(a_hi[:1000], a_lo[:1000], strict=True)]
    assert starts == sorted(starts)
    assert (plen <= 128).all() and (a_plen <= 128).all()


def test_layers_carry_names_networks_and_no_asn_numbers(data) -> None:  # type: ignore[no-untyped-def]
    asn, geo = layers_from_dat(data, "test")
    assert asn is not None
    assert asn.payload.column("asn").null_count == asn.payload.num_rows  # geoip2fast has none
    nets = asn.payload.column("network").to_pylist()
    assert "8.8.8.0/24" in nets and "2001:4860::/36" in nets
    ccs = geo.payload.column("cc").combine_chunks().dictionary.to_pylist()
    assert "US" in ccs and "--" not in ccs and not any(c.isdigit() for c in ccs)
    assert len(asn.v4) > 100_000 and len(asn.v6) > 10_000


def _write(path: Path, obj: object, gz: bool = True) -> Path:
    raw = pickle.dumps(obj, protocol=4)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_refuses_pickles_that_name_classes(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, ("echo pwned > /dev/null",))

    bad = _write(tmp_path / "evil.dat.gz", Boom())
    with pytest.raises(ValueError, match="refusing to load"):
        read_dat(bad)


def test_rejects_other_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a geoip2fast data file"):
        read_dat(_write(tmp_path / "a.dat.gz", [1, 2, 3]))
    with pytest.raises(ValueError, match="version"):
        read_dat(_write(tmp_path / "b.dat", (999, {}, 0, []), gz=False))
    city = (120, {"country": False, "city": True, "asn": False, "info": "x"}, 0, [])
    with pytest.raises(ValueError, match="only geoip2fast country"):
        read_dat(_write(tmp_path / "c.dat.gz", city))
    garbage = tmp_path / "d.dat.gz"
    garbage.write_bytes(gzip.compress(b"not a pickle"))
    with pytest.raises(ValueError):
        read_dat(garbage)


def test_small_country_only_file(tmp_path: Path) -> None:
    # Same layout geoip2fast writes, with two chunks: 1.0.0.0/24 AU, 8.0.0.0/8 US, 10/8 reserved.
    names = [
        "01:Reserved",
        "02:Private Network Class A",
        "99:<not found in database>",
        "AU:Australia",
        "US:United States",
    ]
    first = [[0, 16777216], [134217728, 167772160]]
    ids = [[0, 3], [4, 1]]
    lens = [[8, 24], [8, 8]]
    info = {"info": "test", "country": True, "city": False, "asn": False, "ipv6": False}
    db = [[0, 134217728], names, first, ids, lens]
    data = read_dat(_write(tmp_path / "small.dat.gz", (120, info, 4, db)))
    asn, geo = layers_from_dat(data, "small")
    assert asn is None
    from takedown.enrich import Enricher
    from takedown.enrich.layers import Layer

    e = Enricher.from_layers(Layer.empty("asn"), geo)
    got = [r["cc"] for r in e.lookup(["1.0.0.9", "1.0.1.0", "8.8.8.8", "10.0.0.1", "0.1.2.3"])]
    assert got == ["AU", None, "US", None, None]
    assert np.array_equal(geo.v6.values[:, 0], [-1])
