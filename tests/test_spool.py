import os
import struct

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown.errors import SpoolError
from takedown.sinkhole import spool
from takedown.sinkhole.spool import SpoolWriter, decode_block, read_header, scan_blocks

SCHEMA = pa.schema([("n", pa.int64()), ("s", pa.string()), ("b", pa.binary())])


def rows(start, count):
    return [(i, f"row-{i}", bytes([i % 256]) * (i % 7)) for i in range(start, start + count)]


def write_segment(folder, blocks, **kw):
    w = SpoolWriter(folder, "s1", SCHEMA, preallocate=0, **kw)
    w.open()
    n = 0
    for size in blocks:
        w.write(rows(n, size))
        n += size
    path = w.segment
    return w, path


def all_rows(path):
    header, scan, _ = spool.read_segment(path)
    return [r for b in scan.blocks for r in decode_block(header.schema, b).to_pylist()]


def test_round_trip_and_close_renames(tmp_path):
    w, path = write_segment(tmp_path, [3, 1, 5])
    assert path.suffix == ".open"
    w.close()
    closed = spool.closed_segments(tmp_path)
    assert [p.stem for p in closed] == [path.stem]
    got = all_rows(closed[0])
    assert [r["n"] for r in got] == list(range(9))
    assert got[4] == {"n": 4, "s": "row-4", "b": b"\x04" * 4}


def test_lock_keeps_a_second_writer_out(tmp_path):
    w, _ = write_segment(tmp_path, [1])
    other = SpoolWriter(tmp_path, "s1", SCHEMA)
    with pytest.raises(SpoolError, match="in use by another sinkhole"):
        other.open()
    w.close()
    other.open()
    other.close()


def test_rotation_by_size_and_age(tmp_path):
    w, _ = write_segment(tmp_path, [50] * 10, segment_max_bytes=2000)
    w.close()
    segs = spool.closed_segments(tmp_path)
    assert len(segs) > 2
    assert sum(len(all_rows(p)) for p in segs) == 500
    sub = tmp_path / "age"
    w2 = SpoolWriter(sub, "s2", SCHEMA, segment_max_age=0.0, preallocate=0)
    w2.open()
    w2.write(rows(0, 1))
    w2.rotate_if_due()
    assert w2.segment is None and len(spool.closed_segments(sub)) == 1
    w2.close()


def test_preallocated_tail_of_zeros_is_not_torn(tmp_path):
    w = SpoolWriter(tmp_path, "s1", SCHEMA, preallocate=1 << 16)
    w.open()
    w.write(rows(0, 4))
    path = w.segment
    data = path.read_bytes()
    assert len(data) == 1 << 16
    scan = scan_blocks(data, read_header(data).size)
    assert scan.records == 4 and scan.torn_bytes == 0 and not scan.corrupt
    os.close(w._fd)  # simulate a crash: no close, no truncate
    w._fd = None
    os.close(w._lock_fd)
    w._lock_fd = None
    notes = spool.recover_folder(tmp_path)
    assert "closed with 4 events" in notes[0]
    (seg,) = spool.closed_segments(tmp_path)
    assert len(all_rows(seg)) == 4 and seg.stat().st_size < 1 << 16


def test_blocks_are_placed_only_where_zeros_are_ready(tmp_path):
    # A new segment comes with its first zeros (at most 1 MiB); ``fill`` adds a step past
    # them and past every block; ``place`` (the native thread's writes) stays below them.
    w = SpoolWriter(tmp_path, "s1", SCHEMA, preallocate=1 << 16, segment_max_bytes=1 << 18)
    w.open()
    w.make_room(1)
    path = w.segment
    assert path.stat().st_size == 1 << 16 and w._ready == 1 << 16
    fd, offset = w.place(100)
    assert w.place((1 << 16) - offset) == (fd, offset)
    assert w.place((1 << 16) - offset + 1) is None  # past the zeros: the writer's own thread
    assert w.fill_due()
    w.fill()
    assert w.fills == 1 and w._ready == 2 << 16 and path.stat().st_size == 2 << 16
    assert path.read_bytes()[offset:] == bytes((2 << 16) - offset)
    assert not w.fill_due()  # a whole step ahead of the blocks already
    w.write(rows(0, 6000))  # past the zeros: the file grows; the next fill starts past it
    end = w._offset
    assert end > w._ready and w.fill_due()
    w.fill()
    assert w._ready == end + (1 << 16) and path.stat().st_size == w._ready
    w.fill()
    assert w.fills == 2  # a step ahead: nothing to do
    w.write(rows(0, 2000))
    assert w.fill_due()
    w.fill()
    assert w._ready == 1 << 18 and not w.fill_due()  # never past the segment's size
    end = w._offset
    w.close()
    (seg,) = spool.closed_segments(tmp_path)
    assert seg.stat().st_size == end and len(all_rows(seg)) == 8000


def test_no_zeros_ahead_on_a_disk_without_room_to_spare(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "_SPARE", 1 << 62)
    w = SpoolWriter(tmp_path, "s1", SCHEMA, preallocate=1 << 16)
    w.open()
    w.write(rows(0, 4))
    assert w.segment.stat().st_size == w._offset  # no zeros: it grows as it is written
    w.fill()
    assert w.fills == 0 and not w.fill_due() and w.segment.stat().st_size == w._offset
    w.close()


def test_corrupt_middle_block_is_skipped_later_blocks_kept(tmp_path):
    w, _ = write_segment(tmp_path, [2, 2, 2])
    w.close()
    (seg,) = spool.closed_segments(tmp_path)
    data = bytearray(seg.read_bytes())
    header = read_header(bytes(data))
    scan = scan_blocks(bytes(data), header.size)
    middle = scan.blocks[1]
    data[middle.offset + 20] ^= 0xFF
    scan2 = scan_blocks(bytes(data), header.size)
    assert [b.offset for b in scan2.blocks] == [scan.blocks[0].offset, scan.blocks[2].offset]
    assert scan2.corrupt == [(middle.offset, scan.blocks[2].offset)]
    assert scan2.torn_bytes == 0


def test_header_errors_are_one_line(tmp_path):
    with pytest.raises(SpoolError, match="bad magic"):
        read_header(b"NOTSPOOL" + b"\0" * 20)
    good = spool.encode_header({"a": 1}, SCHEMA)
    with pytest.raises(SpoolError, match="truncated"):
        read_header(good[:10])
    bad = bytearray(good)
    bad[14] ^= 1
    with pytest.raises(SpoolError, match="CRC"):
        read_header(bytes(bad))


def test_disk_error_closes_segment_and_next_write_opens_a_new_one(tmp_path):
    w, first = write_segment(tmp_path, [2])
    fd = w._fd
    os.close(fd)
    w._fd = os.open(os.devnull, os.O_RDONLY)  # writes now fail with EBADF
    with pytest.raises(OSError):
        w.write(rows(2, 2))
    assert w.segment is None
    w.write(rows(4, 2))
    assert w.segment is not None and w.segment != first
    w.close()


# -- fuzzing: the reader over truncated and corrupted segments never raises, never invents ---
def _segment_bytes(block_sizes):
    header = spool.encode_header({"format": 1}, SCHEMA)
    out = bytearray(header)
    n = 0
    for size in block_sizes:
        batch = spool.rows_to_batch(rows(n, size), SCHEMA)
        payload = batch.serialize().to_pybytes()
        out += (
            struct.pack("<IIII", spool.BLOCK_MAGIC, len(payload), spool._crc(size, payload), size)
            + payload
        )
        n += size
    return bytes(out), len(header)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
)
def test_fuzz_truncated_and_corrupted_segments(sizes, cut, flips):
    data, start = _segment_bytes(sizes)
    body = bytearray(data[: start + cut % (len(data) - start + 1)])
    for pos, mask in flips:
        if start < len(body):
            i = start + pos % (len(body) - start)
            body[i] ^= mask
    scan = scan_blocks(bytes(body), start)
    seen = []
    for block in scan.blocks:
        seen.extend(r["n"] for r in decode_block(SCHEMA, block).to_pylist())
    # Whatever survives is a subset of what was written, in order, never duplicated.
    assert seen == sorted(set(seen))
    assert set(seen) <= set(range(sum(sizes)))
    if not flips:
        # Pure truncation keeps exactly the complete blocks before the cut.
        complete = 0
        total = 0
        for s in sizes:
            if len(_segment_bytes(sizes[: complete + 1])[0]) <= len(body):
                complete += 1
                total += s
        assert seen == list(range(total))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_arbitrary_bytes(blob):
    try:
        header = read_header(blob)
    except SpoolError:
        header = None
    start = header.size if header else 0
    scan = scan_blocks(blob, min(start, len(blob)))
    assert scan.valid_end <= len(blob)


# -- rows_to_batch: constant, empty and repeated columns ----------------------------------------
WIDE = pa.schema(
    [
        ("t1", pa.timestamp("us", tz="UTC")),
        ("t2", pa.timestamp("us", tz="UTC")),
        ("port", pa.int32()),
        ("size", pa.int64()),
        ("name", pa.string()),
        ("same_as_name", pa.string()),
        ("raw", pa.binary()),
        ("flag", pa.bool_()),
    ]
)


def reference(rows_, schema):
    """The plain conversion: one struct array of all the rows."""
    return pa.RecordBatch.from_struct_array(pa.array(rows_, type=pa.struct(list(schema))))


_CELLS = [
    st.none() | st.integers(0, 3),
    st.none() | st.integers(0, 3),
    st.none() | st.integers(0, 2),
    st.none() | st.integers(-(2**40), 2**40),
    st.none() | st.sampled_from(["", "a", "é", "a" * 40]),
    st.none() | st.sampled_from(["", "a", "é"]),
    st.none() | st.sampled_from([b"", b"\x00", b"x" * 96]),
    st.none() | st.booleans(),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*_CELLS), min_size=1, max_size=40), st.data())
def test_fuzz_rows_to_batch_equals_the_plain_conversion(rows_, data):
    if data.draw(st.booleans()):  # a block where the two times (and names) agree
        rows_ = [(r[0], r[0], r[2], r[3], r[4], r[4], r[6], r[7]) for r in rows_]
    for _ in range(2):  # the second time, constant columns come from the cache
        got = spool.rows_to_batch(rows_, WIDE)
        assert got.schema == WIDE
        assert got.equals(reference(rows_, WIDE))
        assert got.to_pylist() == reference(rows_, WIDE).to_pylist()


def test_rows_to_batch_empty_and_wrong_width():
    assert spool.rows_to_batch([], WIDE).num_rows == 0
    with pytest.raises(ValueError, match="row of 2 values for a schema of 8 fields"):
        spool.rows_to_batch([(1, 2)], WIDE)
