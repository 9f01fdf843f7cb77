"""The custody log's file format: canonical leaves, length-prefixed records with a CRC."""

import datetime as dt
import struct
import zlib

import pytest

from takedown.case.evidence import custody
from takedown.errors import EvidenceError

WHEN = dt.datetime(2011, 3, 16, 12, 0, 0, 123456, tzinfo=dt.UTC)
PREV = bytes(32)


def leaf(i=0, **details):
    return custody.make_leaf(i, WHEN, "Jane Analyst", "analysed", "ab" * 32, details, PREV)


def test_leaf_is_canonical_json_and_round_trips():
    raw = leaf(tool="strings", note="Ünïcode ✓", n=3)
    assert (
        raw
        == (
            '{"action":"analysed","details":{"n":3,"note":"Ünïcode ✓","tool":"strings"},'
            '"handler":"Jane Analyst","index":0,"item":"'
            + "ab" * 32
            + '","prev":"'
            + "00" * 32
            + '","time":"2011-03-16T12:00:00.123456Z","v":1}'
        ).encode()
    )
    entry = custody.parse_leaf(raw, "test")
    assert entry.time == WHEN and entry.details["note"] == "Ünïcode ✓"
    assert entry.row()["time"] == "2011-03-16T12:00:00.123456Z"


def test_non_canonical_or_bad_leaves_are_refused():
    raw = leaf()
    with pytest.raises(EvidenceError, match="canonical"):
        custody.parse_leaf(raw.replace(b'"v":1}', b'"v": 1}'), "entry 7")
    with pytest.raises(EvidenceError, match="entry 7"):
        custody.parse_leaf(b"\xff", "entry 7")
    with pytest.raises(EvidenceError, match="not JSON"):
        leaf(x=float("nan"))
    with pytest.raises(EvidenceError, match="1 MiB"):
        leaf(blob="x" * (1 << 20))


def write_log(path, leaves):
    path.write_bytes(custody.MAGIC + b"".join(custody.encode_record(x) for x in leaves))


def test_scan_reads_records_and_resumes_from_an_offset(tmp_path):
    path = tmp_path / "custody.log"
    leaves = [leaf(i) for i in range(5)]
    write_log(path, leaves)
    scan = custody.scan_log(path)
    assert scan.leaves == leaves and not scan.problem and scan.end == path.stat().st_size
    after_two = len(custody.MAGIC) + sum(8 + len(x) for x in leaves[:2])
    assert custody.scan_log(path, after_two).leaves == leaves[2:]


def test_torn_tail_and_corruption_are_told_apart(tmp_path):
    path = tmp_path / "custody.log"
    leaves = [leaf(i) for i in range(3)]
    write_log(path, leaves)
    good = path.read_bytes()
    path.write_bytes(good + custody.encode_record(leaf(3))[:-5])  # a crash mid-append
    scan = custody.scan_log(path)
    assert scan.torn and scan.leaves == leaves and scan.end == len(good)
    # A flipped byte in a middle record: damage, not a torn tail.
    data = bytearray(good)
    data[len(custody.MAGIC) + 10] ^= 1
    path.write_bytes(bytes(data))
    scan = custody.scan_log(path)
    assert scan.problem == "record fails its CRC" and not scan.torn and scan.leaves == []
    path.write_bytes(b"NOT A CUSTODY LOG")
    assert "magic" in custody.scan_log(path).problem


def test_record_layout(tmp_path):
    raw = leaf()
    rec = custody.encode_record(raw)
    assert rec == struct.pack(">I", len(raw)) + raw + struct.pack(">I", zlib.crc32(raw))


def test_append_refuses_a_file_changed_under_the_lock(tmp_path):
    path = tmp_path / "custody.log"
    write_log(path, [leaf(0)])
    size = path.stat().st_size
    assert custody.append_records(path, [leaf(1)], size) > size
    with pytest.raises(EvidenceError, match="changed under the lock"):
        custody.append_records(path, [leaf(2)], size)
