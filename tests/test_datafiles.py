"""Which file fills which role; recognising files by content; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from takedown.enrich import Enricher, EnrichError
from takedown.enrich.datafiles import detect, load, plan
from takedown.enrich.g2fdat import default_path
from takedown.errors import TakedownError


def test_detect_by_content(tmp_path: Path) -> None:
    assert detect(default_path()) == "geoip2fast"
    txt = tmp_path / "x.mmdb"
    txt.write_text("1.0.0.0/8\t1\n")
    with pytest.raises(EnrichError):
        detect(txt)


def test_plan_precedence(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("1.0.0.0/8\t1\n")
    g = default_path()
    roles = [(i.role, i.kind) for i in plan(g, None, None, f, None, False)]
    assert roles == [("asn", "pyasn")]  # pyasn wins the ASN role over asn=
    roles = [(i.role, i.kind) for i in plan(None, None, g, None, None, False)]
    assert roles == [("asn", "mmdb"), ("geo", "mmdb")]
    roles = [(i.role, i.kind) for i in plan(None, g, None, None, None, True)]
    assert roles == [("asn", "geoip2fast"), ("geo", "geoip2fast")]
    names = tmp_path / "n.json"
    names.write_text("{}")
    assert [i.role for i in plan(None, None, None, f, names, False)] == ["asn", "names"]


def test_errors_are_one_line_takedown_errors(tmp_path: Path) -> None:
    with pytest.raises(EnrichError, match="no data files given"):
        Enricher.from_files()
    with pytest.raises(EnrichError, match="not found"):
        Enricher.from_files(asn=tmp_path / "missing.mmdb")
    assert issubclass(EnrichError, TakedownError) and issubclass(EnrichError, ValueError)
    empty = tmp_path / "empty.dat.gz"
    empty.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(EnrichError, match="cannot read as geoip2fast"):
        load(plan(empty, None, None, None, None, False))


def test_missing_roles_stay_empty(tmp_path: Path) -> None:
    f = tmp_path / "t.dat"
    f.write_text("8.8.8.0/24\t15169\n")
    e = Enricher.from_files(pyasn=f, cache_dir=tmp_path / "c")
    assert e.lookup(["8.8.8.8"])[0]["cc"] is None
    assert e.sources["geo"] == "none"
