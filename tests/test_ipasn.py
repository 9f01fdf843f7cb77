"""pyasn-style tables: longest-prefix match, comments, bad lines, gzip, AS names."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from takedown.enrich import Enricher
from takedown.enrich.ipasn import layer_from_ipasn, read_as_names

IPASN = """\
; IP-ASN32-DAT file
; Original source:\trib.20240601.0000.bz2
; Converted on  :\tSat Jun  1 12:00:00 2024
; Prefixes-v4   :\t4
; Prefixes-v6   :\t2
8.0.0.0/9\t3356
8.8.8.0/24\t15169
1.1.1.0/24\t13335
1.0.0.0/8\t{64512,64513}
192.0.2.7/24\t64496
this is not a line
9.9.9.9/33\t1
10.0.0.0/8\tAS-NOT-A-NUMBER
2001:4860::/32\t15169
2001:4860:4860::/48\t64497
"""


@pytest.fixture()
def ipasn_file(tmp_path: Path) -> Path:
    path = tmp_path / "ipasn_20240601.dat.gz"
    path.write_bytes(gzip.compress(IPASN.encode()))
    return path


def test_longest_prefix_match_and_rejects(
    ipasn_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        layer = layer_from_ipasn(ipasn_file, "t")
    assert "3 of 10 lines rejected" in caplog.text
    from takedown.enrich.layers import Layer

    e = Enricher.from_layers(layer, Layer.empty("geo"))
    ips = [
        "8.8.8.8",
        "8.8.9.1",
        "8.200.0.1",
        "1.1.1.1",
        "1.2.3.4",
        "192.0.2.200",
        "2001:4860::1",
        "2001:4860:4860::8888",
        "9.9.9.9",
    ]
    got = [(r["asn"], r["network"]) for r in e.lookup(ips)]
    assert got == [
        (15169, "8.8.8.0/24"),
        (3356, "8.0.0.0/9"),
        (None, None),
        (13335, "1.1.1.0/24"),
        (64512, "1.0.0.0/8"),  # an AS set keeps its first AS
        (64496, "192.0.2.0/24"),  # host bits cleared
        (15169, "2001:4860::/32"),
        (64497, "2001:4860:4860::/48"),
        (None, None),
    ]


def test_as_names_json_and_tsv(tmp_path: Path) -> None:
    js = tmp_path / "asnames.json"
    js.write_text(
        json.dumps({"15169": "GOOGLE - Google LLC, US", "AS13335": "CLOUDFLARENET", "x": 1})
    )
    assert read_as_names(js) == {15169: "GOOGLE - Google LLC, US", 13335: "CLOUDFLARENET"}
    tsv = tmp_path / "asnames.txt"
    tsv.write_text("# comment\n15169\tGOOGLE\nAS3356\tLEVEL3\nbad line\n")
    assert read_as_names(tsv) == {15169: "GOOGLE", 3356: "LEVEL3"}


def test_from_files_with_names_and_default_country(ipasn_file: Path, tmp_path: Path) -> None:
    names = tmp_path / "asnames.json"
    names.write_text(json.dumps({"15169": "GOOGLE - Google LLC, US"}))
    e = Enricher.from_files(
        pyasn=ipasn_file, as_names=names, fill_default=True, cache_dir=tmp_path / "c"
    )
    row = e.lookup(["8.8.8.8"])[0]
    assert row == {
        "ip": "8.8.8.8",
        "asn": 15169,
        "as_name": "GOOGLE - Google LLC, US",
        "network": "8.8.8.0/24",
        "cc": "US",
        "error": None,
    }
    assert e.lookup(["1.1.1.1"])[0]["as_name"] is None
    assert e.prefixes(15169) == ["8.8.8.0/24", "2001:4860::/32"]
    assert e.sources["asn"].startswith("pyasn") and e.sources["geo"].startswith("geoip2fast")
