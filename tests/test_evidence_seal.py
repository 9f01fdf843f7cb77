"""Automatic sealing of ingested spool segments and lake day partitions."""

import hashlib
import os

from test_lake import DAY1, DAY2, fill, row

from takedown import lake
from takedown.case.evidence import audit
from takedown.case.evidence.seal import seal_ingested
from takedown.case.evidence.vault import Vault
from takedown.home import Home

H = "Jane Analyst, CERT-Test"


def ingested_home(tmp_path):
    home = Home(tmp_path / "home")
    home.ensure()
    fill(home, "a-w0", [[row(i, DAY1) for i in range(5)], [row(i, DAY2) for i in range(5, 9)]])
    fill(home, "b-w0", [[row(i, DAY2, "gozi") for i in range(9, 12)]])
    lake.ingest(home)
    return home


def test_segments_and_partitions_are_sealed_once(tmp_path):
    home = ingested_home(tmp_path)
    report = seal_ingested(home, H)
    assert (report.segments, report.partitions, report.new_versions) == (2, 2, 0)
    assert "sealed 2 spool segment(s) and 2 lake partition(s)" in report.summary()
    vault = Vault.open(home)
    seals = [e for e in vault.custody() if e.action == "sealed"]
    assert (
        sorted(e.details["kind"] for e in seals) == ["lake-partition"] * 2 + ["spool-segment"] * 2
    )
    for e in seals:
        assert e.handler == H
        if e.details["kind"] == "spool-segment":
            seg = home.root / e.details["path"]
            assert hashlib.sha256(seg.read_bytes()).hexdigest() == e.item
            assert vault.item(e.item).source.startswith("takedown sinkhole spool")
        else:
            manifest = vault.manifest(e.item)
            day = home.root / e.details["path"]
            assert [f["path"] for f in manifest["files"]] == sorted(p.name for p in day.iterdir())
    again = seal_ingested(home, H)
    assert (again.segments, again.partitions, again.unchanged) == (0, 0, 4)
    assert "nothing new to seal" in again.summary()
    assert Vault.open(home).size == vault.size
    assert audit.verify_vault(Vault.open(home)).ok


def test_a_changed_partition_is_sealed_again_with_its_parent(tmp_path):
    home = ingested_home(tmp_path)
    seal_ingested(home, H)
    vault = Vault.open(home)
    (first,) = [
        e for e in vault.custody() if e.action == "sealed" and "2011-03-17" in e.details["path"]
    ]
    # A later ingest adds to the day.
    fill(home, "c-w0", [[row(i, DAY2) for i in range(20, 23)]])
    lake.ingest(home)
    before = vault.size
    report = seal_ingested(home, H)
    assert (report.segments, report.partitions, report.new_versions) == (1, 1, 1)
    entries = Vault.open(home).custody()
    latest = [e for e in entries if e.action == "sealed" and "2011-03-17" in e.details["path"]][-1]
    assert latest.item != first.item and latest.details["previous"] == first.item
    new = vault.item(latest.item)
    assert new.parent == first.item and new.kind == "folder"
    # Only the new segment and the day's new Parquet file were read; the files the day had
    # were listed from the earlier seal.
    received = [e.details["name"] for e in entries[before:] if e.action == "received"]
    assert sorted(received) == sorted(
        [
            next(home.ingested.glob("c-w0/*.seg")).name,
            f"day=2011-03-17/{next(home.events.glob('day=2011-03-17/c-w0--*')).name}",
            "day=2011-03-17",
        ]
    )
    assert len(vault.manifest(new.sha256)["files"]) == 3
    assert audit.verify_vault(Vault.open(home)).ok


def test_a_sealed_segment_that_changes_is_flagged(tmp_path):
    home = ingested_home(tmp_path)
    seal_ingested(home, H)
    seg = sorted(home.ingested.glob("*/*.seg"))[0]
    os.chmod(seg, 0o644)
    with open(seg, "ab") as fh:
        fh.write(b"appended later")
    report = seal_ingested(home, H)
    assert report.segments == 1 and report.changed_segments
    assert "WARNING: sealed segments changed" in report.summary()


def test_nothing_to_seal_and_an_empty_handler(tmp_path):
    home = Home(tmp_path / "home")
    assert seal_ingested(home, H).summary().startswith("evidence: nothing new")
    assert not (home.root / "vault").exists()
    home = ingested_home(tmp_path)
    seal_ingested(home, "")
    assert all(e.handler.startswith("takedown (automatic, ") for e in Vault.open(home).custody())
