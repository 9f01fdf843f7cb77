"""The append-only spool: what the sinkhole has answered is on disk before it answers.

A spool is one folder per sensor (one sinkhole worker) holding segment files. A segment is::

    b"TDSPOOL1" | u32 header_len | header JSON | u32 schema_len | Arrow schema (IPC) | u32 crc32c
    then blocks:  u32 BLOCK_MAGIC | u32 payload_len | u32 crc32c | u32 n_records | payload

Each block is one group commit: the Arrow IPC record-batch message of every event that arrived
while the previous block was being written, framed with its length and a CRC32C (over the record
count and the payload). A block is written and fdatasync'd before any of its requests is
answered, so a torn block holds only unanswered requests. The open segment is named ``*.open``;
closed ones ``*.seg``. On start the open segments of a folder nobody holds are scanned: a torn or
corrupt tail is cut, a corrupt range followed by valid blocks is kept and skipped by readers.

Parsing (``scan_blocks``, ``read_header``) is pure and fuzzed; only ``SpoolWriter`` and
``recover_folder`` touch files.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crc32c
import pyarrow as pa

from takedown.errors import SpoolError

try:  # the C encoder (setup.py builds it); pyarrow does the same work, slower, without it
    from takedown.sinkhole import _ipc
except ImportError:  # pragma: no cover - a machine without a C compiler
    _ipc = None  # type: ignore[assignment]
NATIVE = _ipc is not None  # whether blocks are encoded in C

__all__ = [
    "BLOCK_MAGIC",
    "NATIVE",
    "SEGMENT_MAGIC",
    "Block",
    "Scan",
    "SegmentHeader",
    "SpoolWriter",
    "closed_segments",
    "decode_block",
    "encode_rows",
    "read_header",
    "read_segment",
    "recover_folder",
    "rows_to_batch",
    "scan_blocks",
    "try_lock",
]

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"TDSPOOL1"
BLOCK_MAGIC = 0x7D5B10CC
_BLOCK = struct.Struct("<IIII")
_U32 = struct.Struct("<I")
_BLOCK_MAGIC_BYTES = _U32.pack(BLOCK_MAGIC)
MAX_BLOCK_BYTES = 256 << 20
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _crc(n_records: int, payload: bytes | memoryview) -> int:
    return int(crc32c.crc32c(payload, crc32c.crc32c(_U32.pack(n_records))))


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    meta: dict[str, Any]
    schema: pa.Schema
    size: int  # bytes before the first block


@dataclass(frozen=True, slots=True)
class Block:
    offset: int
    n_records: int
    payload: memoryview


@dataclass(slots=True)
class Scan:
    """What a segment holds: its valid blocks, the corrupt ranges skipped, where it ends."""

    blocks: list[Block] = field(default_factory=list)
    corrupt: list[tuple[int, int]] = field(default_factory=list)  # [start, end) ranges
    valid_end: int = 0  # end of the last valid block: everything after it is a torn tail
    torn_bytes: int = 0

    @property
    def records(self) -> int:
        return sum(b.n_records for b in self.blocks)


def encode_header(meta: dict[str, Any], schema: pa.Schema) -> bytes:
    meta_bytes = json.dumps(meta, sort_keys=True).encode()
    schema_bytes: bytes = schema.serialize().to_pybytes()
    body = _U32.pack(len(meta_bytes)) + meta_bytes + _U32.pack(len(schema_bytes)) + schema_bytes
    return SEGMENT_MAGIC + body + _U32.pack(crc32c.crc32c(body))


def read_header(data: bytes | memoryview) -> SegmentHeader:
    """Parse a segment header; raises SpoolError naming what is wrong."""
    view = memoryview(data)
    if bytes(view[:8]) != SEGMENT_MAGIC:
        raise SpoolError("not a takedown spool segment (bad magic)")
    try:
        (meta_len,) = _U32.unpack_from(view, 8)
        meta_end = 12 + meta_len
        (schema_len,) = _U32.unpack_from(view, meta_end)
        schema_end = meta_end + 4 + schema_len
        (crc,) = _U32.unpack_from(view, schema_end)
    except struct.error:
        raise SpoolError("segment header is truncated") from None
    if crc32c.crc32c(view[8:schema_end]) != crc:
        raise SpoolError("segment header fails its CRC")
    try:
        meta = json.loads(bytes(view[12:meta_end]))
        schema = pa.ipc.read_schema(pa.py_buffer(bytes(view[meta_end + 4 : schema_end])))
    except (ValueError, pa.ArrowException) as exc:
        raise SpoolError(f"segment header unreadable: {exc}") from None
    if not isinstance(meta, dict):
        raise SpoolError("segment header metadata is not an object")
    return SegmentHeader(meta, schema, schema_end + 4)


def _block_at(view: memoryview, pos: int) -> Block | None:
    if pos + _BLOCK.size > len(view):
        return None
    magic, length, crc, n = _BLOCK.unpack_from(view, pos)
    if magic != BLOCK_MAGIC or length > MAX_BLOCK_BYTES:
        return None
    start = pos + _BLOCK.size
    end = start + length
    if end > len(view):
        return None
    payload = view[start:end]
    if _crc(n, payload) != crc:
        return None
    return Block(pos, n, payload)


def scan_blocks(data: bytes | memoryview, start: int) -> Scan:
    """Walk the blocks from ``start``; never raises on any input."""
    raw = data if isinstance(data, bytes) else bytes(data)
    view = memoryview(raw)
    scan = Scan(valid_end=start)
    pos = start
    while pos < len(view):
        block = _block_at(view, pos)
        if block is not None:
            scan.blocks.append(block)
            pos = block.offset + _BLOCK.size + len(block.payload)
            scan.valid_end = pos
            continue
        # Not a valid block here: a torn tail, unless a valid block follows (then corruption).
        nxt = _resync(raw, view, pos + 1)
        if nxt is None:
            break
        scan.corrupt.append((pos, nxt))
        pos = nxt
    scan.torn_bytes = len(view) - scan.valid_end
    # Preallocated zeros after a clean end are not torn data.
    if scan.torn_bytes and raw.count(b"\0", scan.valid_end) == scan.torn_bytes:
        scan.torn_bytes = 0
    return scan


def _resync(raw: bytes, view: memoryview, pos: int) -> int | None:
    while True:
        idx = raw.find(_BLOCK_MAGIC_BYTES, pos)
        if idx < 0:
            return None
        if _block_at(view, idx) is not None:
            return idx
        pos = idx + 1


def decode_block(schema: pa.Schema, block: Block) -> pa.RecordBatch:
    """The record batch in a block (CRC already checked)."""
    batch = pa.ipc.read_record_batch(pa.py_buffer(block.payload), schema)
    if batch.num_rows != block.n_records:
        raise SpoolError(
            f"block at {block.offset}: {batch.num_rows} rows, header says {block.n_records}"
        )
    return batch


def read_segment(path: Path) -> tuple[SegmentHeader, Scan, bytes]:
    """Read a whole segment file (header, scan, bytes the scan's views point into)."""
    data = path.read_bytes()
    try:
        header = read_header(data)
    except SpoolError as exc:
        raise SpoolError(f"{path}: {exc}") from None
    return header, scan_blocks(data, header.size), data


class _Plan:
    """What ``rows_to_batch`` needs of a schema, worked out once: its types, which columns
    share the type of the one before, and the arrays of columns that held one value (or
    none) throughout a block, by (column, value, rows). Most of a sinkhole row is the same
    in every row of a block (the sensor, the feed, the rule, the empty DNS fields), and a
    cached array costs nothing to reuse."""

    MAX_CONSTANTS = 4096

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.types = list(schema.types)
        self.same_type = [False] + [a.equals(b) for a, b in itertools.pairwise(self.types)]
        self.constants: dict[tuple[int, Any, int], pa.Array] = {}
        self.kinds, self.widths = _native_layout(self.types)


def _native_layout(types: list[pa.DataType]) -> tuple[str | None, tuple[int, ...]]:
    """The column kinds of ``_ipc.encode`` for these types, or None if one has no kind."""
    kinds = []
    widths = []
    for kind in types:
        width = 0
        if pa.types.is_int32(kind):
            code = "i"
        elif pa.types.is_int64(kind) or pa.types.is_timestamp(kind):
            code = "q"
        elif pa.types.is_string(kind):
            code = "s"
        elif pa.types.is_binary(kind):
            code = "b"
        elif pa.types.is_fixed_size_binary(kind):
            code, width = "f", kind.byte_width
        else:
            return None, ()
        kinds.append(code)
        widths.append(width)
    return "".join(kinds), tuple(widths)


_PLANS: dict[int, _Plan] = {}


def _plan(schema: pa.Schema) -> _Plan:
    plan = _PLANS.get(id(schema))
    if plan is None or plan.schema is not schema:
        plan = _PLANS[id(schema)] = _Plan(schema)
    return plan


def encode_rows(rows: Sequence[tuple[Any, ...]], schema: pa.Schema) -> bytes | pa.Buffer:
    """Rows (tuples in schema order) to the Arrow IPC message of their record batch.

    The C encoder (``_ipc``) writes the message directly when it can take every value; any
    row it does not take (another type, an int out of range, the wrong width) goes through
    ``rows_to_batch``, which converts it or raises as pyarrow does. Either message decodes to
    the same batch (tests/test_ipc.py).
    """
    plan = _plan(schema)
    if _ipc is not None and plan.kinds is not None and isinstance(rows, list):
        try:
            return _ipc.encode(rows, plan.kinds, plan.widths)
        except _ipc.UnsupportedError:
            pass
    return rows_to_batch(rows, schema).serialize()


def rows_to_batch(rows: Sequence[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    """Rows (tuples in schema order) to an Arrow record batch.

    Column by column: a column with one value in every row is taken from a cache, a column
    equal to the one before it (the two times) reuses its array, and only the rest are
    converted. Each conversion has a fixed cost that, in blocks of a few dozen rows (the
    sinkhole's usual size), outweighs the rows themselves.
    """
    width = len(schema)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row of {len(row)} values for a schema of {width} fields")
    n = len(rows)
    if n == 0:
        return pa.RecordBatch.from_pylist([], schema=schema)
    plan = _plan(schema)
    constants = plan.constants
    arrays: list[pa.Array] = []
    prev: tuple[Any, ...] = ()
    for i, col in enumerate(zip(*rows, strict=True)):
        first = col[0]
        if col.count(first) == n:
            key = (i, first, n)
            arr = constants.get(key)
            if arr is None:
                if len(constants) >= plan.MAX_CONSTANTS:
                    constants.clear()
                kind = plan.types[i]
                arr = pa.nulls(n, kind) if first is None else pa.array(col, kind)
                constants[key] = arr
        elif plan.same_type[i] and col == prev:
            arr = arrays[-1]
        else:
            arr = pa.array(col, plan.types[i])
        arrays.append(arr)
        prev = col
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_WRITER_MARK = "sinkhole"


def try_lock(folder: Path, *, holder: str = "check") -> int | None:
    """Take the folder's lock without waiting; the fd, or None if a live process holds it.

    The lock file then reads ``"<pid> <holder>"``: the writer of the folder marks itself
    ``sinkhole``; anyone else (ingest recovering orphans, ``status``) holds it only briefly.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    # Who holds it is information only: on a full disk the lock is held all the same.
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {holder}".encode())
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            os.close(fd)
            raise
    return fd


def _lock_holder(folder: Path) -> tuple[int | None, str]:
    """(pid, holder) as the lock file names them; (None, "") if unreadable."""
    try:
        pid, _, holder = (folder / ".lock").read_text().strip().partition(" ")
        return int(pid), holder
    except (OSError, ValueError):
        return None, ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def closed_segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.seg"))


def recover_folder(folder: Path) -> list[str]:
    """Close the open segments a dead writer left: cut torn tails, keep everything before.

    The caller holds the folder's lock. Returns one line per segment touched.
    """
    notes = []
    for path in sorted(folder.glob("*.open")):
        data = path.read_bytes()
        try:
            header = read_header(data)
        except SpoolError as exc:
            # The header is written and synced before any block, so no answered event is here.
            if data.count(0) == len(data):
                # Killed between preallocating and writing the header: only zeros, up to
                # 16 MiB of them. Nothing to keep.
                path.unlink()
                notes.append(f"{path.name}: no header, only zeros; removed (held no event)")
                continue
            bad = path.with_suffix(".bad")
            path.rename(bad)
            notes.append(f"{path.name}: {exc}; set aside as {bad.name} (held no answered event)")
            continue
        scan = scan_blocks(data, header.size)
        cut = len(data) - scan.valid_end
        with open(path, "r+b") as fh:
            fh.truncate(scan.valid_end)
            fh.flush()
            os.fsync(fh.fileno())
        path.rename(path.with_suffix(".seg"))
        torn = f", cut {scan.torn_bytes} torn bytes" if scan.torn_bytes else ""
        corrupt = f", {len(scan.corrupt)} corrupt ranges kept aside" if scan.corrupt else ""
        notes.append(
            f"{path.name}: closed with {scan.records} events{torn}{corrupt} ({cut} bytes trimmed)"
        )
    if notes:
        _fsync_dir(folder)
    return notes


_FIRST_FILL = 1 << 20  # zeros written with a new segment's header, before any fill
_ZEROS = bytes(1 << 20)
# Zeros are written ahead only while the file system keeps this much free beside them: on a
# nearly full disk the room is left to everything else (ingest's Parquet first), and the
# spool grows its segment block by block as it would without them.
_SPARE = 64 << 20


def _zero_fill(fd: int, start: int, end: int) -> bool:
    """Write zeros over [start, end) of the file (not synced). False, with nothing kept, when
    the file system has no room to spare for them or runs out of room part way (the file is
    cut back to ``start``); other errors are raised."""
    st = os.fstatvfs(fd)
    if st.f_bavail * st.f_frsize < end - start + _SPARE:
        return False
    view = memoryview(_ZEROS)
    pos = start
    try:
        while pos < end:
            written = os.pwrite(fd, view[: min(len(_ZEROS), end - pos)], pos)
            if written <= 0:
                raise _short_write(written, end - pos)
            pos += written
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        os.ftruncate(fd, start)  # give back what the zeros took
        return False
    return True


def _short_write(written: int, wanted: int) -> OSError:
    # A regular file takes fewer bytes than asked only when the file system is out of room.
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (wrote {written} of {wanted} bytes)")


class SpoolWriter:
    """Single writer of one sensor's spool folder.

    One thread at a time writes blocks (``write``, or ``place`` + another thread's write +
    ``finish``). ``fill`` may run on a second thread meanwhile: it zero-fills the segment
    ahead of the blocks, where no block goes until it is done (``place`` keeps blocks below
    ``ready``), so a block's fdatasync overwrites blocks already on disk and commits no
    file-system metadata (no journal commit, which two workers' syncs would queue on).
    """

    def __init__(
        self,
        folder: Path,
        sensor: str,
        schema: pa.Schema,
        *,
        segment_max_bytes: int = 64 << 20,
        segment_max_age: float = 60.0,
        preallocate: int = 4 << 20,
        lock_wait: float = 10.0,
    ) -> None:
        self.folder = folder
        self.sensor = sensor
        self.schema = schema
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age = segment_max_age
        # Zeros written (and synced) ahead of the blocks, in steps of this size; 0: none.
        self.preallocate = preallocate
        self.lock_wait = lock_wait
        self._ready = 0  # the current segment is zero-filled and synced up to here
        self._fill_lock = threading.Lock()  # a fill and the segment's close exclude each other
        self._fill_failed = False  # no more fills in this segment (the disk is full)
        self.fills = 0
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._path: Path | None = None
        self._offset = 0
        self._opened_at = 0.0
        self._start = 0
        self.disk_full = False
        self.blocks_written = 0
        self.records_written = 0

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> list[str]:
        """Lock the folder and recover what a previous writer left. Returns recovery notes.

        Another live sinkhole holding the folder is an error at once. Anyone else holds the
        lock only briefly (``takedown ingest`` closing a dead sinkhole's segment, ``status``):
        a sinkhole (re)started meanwhile waits up to ``lock_wait`` seconds for it.
        """
        deadline = time.monotonic() + self.lock_wait
        while (fd := try_lock(self.folder, holder=_WRITER_MARK)) is None:
            pid, holder = _lock_holder(self.folder)
            writer = holder == _WRITER_MARK and pid is not None and _alive(pid)
            if writer or time.monotonic() >= deadline:
                raise SpoolError(
                    f"spool {self.folder} is in use by another "
                    f"{'sinkhole' if writer or not holder else holder} (pid {pid or '?'})"
                )
            time.sleep(0.05)
        self._lock_fd = fd
        return recover_folder(self.folder)

    def close(self) -> None:
        try:
            self._close_segment()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    @property
    def segment(self) -> Path | None:
        return self._path

    # -- writing ------------------------------------------------------------------------------
    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append one block and make it durable. Raises OSError if it is not on disk."""
        frame, payload = self.encode(rows)
        self.write_encoded(frame, payload, len(rows))

    def encode(self, rows: Sequence[tuple[Any, ...]]) -> tuple[bytes, bytes | pa.Buffer]:
        """One block of rows: its frame (magic, length, CRC, count) and its Arrow payload."""
        payload = encode_rows(rows, self.schema)
        size = len(payload)
        frame = _BLOCK.pack(BLOCK_MAGIC, size, _crc(len(rows), payload), len(rows))
        return frame, payload

    def write_encoded(self, frame: bytes, payload: bytes | pa.Buffer, n_records: int) -> None:
        """Append an encoded block (``encode``) and make it durable, opening or rotating the
        segment first when due. Raises OSError if it is not on disk."""
        size = len(frame) + len(payload)
        self.make_room(size)
        assert self._fd is not None
        try:
            written = os.pwritev(self._fd, [frame, payload], self._offset)
            if written == size:
                os.fdatasync(self._fd)
        except OSError as exc:
            self._fail(exc)
            raise
        self.finish(size, n_records, written, 0)  # a short write fails there

    # A block written by another thread (the native committer): ``place`` says where, without
    # any file work, and ``finish`` takes the outcome.
    def place(self, size: int) -> tuple[int, int] | None:
        """(fd, offset) where a block of ``size`` bytes goes now, or None when the segment must
        first be opened or rotated (``write_encoded`` does that)."""
        if self._fd is None or self._due(size) or self._offset + size > self._ready:
            return None
        return self._fd, self._offset

    def finish(self, size: int, n_records: int, written: int, err: int) -> None:
        """Account for a block written at ``place``: ``written`` bytes reached the file and
        ``err`` is the errno of the write or sync that failed (0: none). Raises OSError if the
        block is not durable (and closes the segment at the last good block, as ``write``)."""
        if err or written != size:
            exc = OSError(err, os.strerror(err)) if err else _short_write(written, size)
            self._fail(exc)
            raise exc
        self._offset += written
        self.blocks_written += 1
        self.records_written += n_records
        if self.disk_full:
            self.disk_full = False
            log.warning("spool %s writable again; answering bots normally", self.folder)

    def fill_due(self) -> bool:
        """Whether the zeros ahead of the blocks are running short (``fill`` adds more)."""
        return (
            self._fd is not None
            and self.preallocate > 0
            and not self._fill_failed
            and self._ready - self._offset < self.preallocate
            and self._ready < self.segment_max_bytes
        )

    def fill(self) -> None:
        """Zero-fill the next ``preallocate`` bytes of the segment past what is ready (and
        past every block) and sync them; ``ready`` moves on only when they are on disk.

        Runs on another thread than the blocks' writer (never with ``write_encoded``): no
        block is placed past ``ready``, so the two never touch the same bytes. Out of room,
        it gives up for this segment, and blocks extend the file as they would without it.
        """
        with self._fill_lock:
            fd = self._fd
            if fd is None or not self.fill_due():
                return
            start = max(self._ready, self._offset)
            end = min(start + self.preallocate, self.segment_max_bytes)
            try:
                filled = _zero_fill(fd, start, end)
                if filled:
                    os.fdatasync(fd)
            except OSError as exc:
                log.debug("spool %s: zero-filling ahead stopped: %s", self.folder, exc)
                filled = False
            if not filled:  # blocks past ``ready`` grow the file, as they would without it
                self._fill_failed = True
                return
            self._ready = end
            self.fills += 1

    def make_room(self, size: int) -> None:
        """Open a segment, or close a full or old one and open the next, so that a block of
        ``size`` bytes can be appended."""
        if self._fd is not None and self._due(size):
            try:
                self._close_segment()
            except OSError as exc:
                # Its blocks are durable already; left ``.open``, it is closed at the next
                # start. The new block goes to a new segment.
                log.error("spool %s: could not close segment cleanly: %s", self.folder, exc)
        if self._fd is None:
            self._open_segment()

    def rotate_if_due(self) -> None:
        if self._fd is not None and self._due(0):
            self._close_segment()

    def _due(self, incoming: int) -> bool:
        if self._offset + incoming > self.segment_max_bytes and self._offset > self._start:
            return True
        return time.monotonic() - self._opened_at > self.segment_max_age

    def _fail(self, exc: OSError) -> None:
        # A failed write or sync: the block's requests get 503. The segment is closed at the
        # last good block (after a failed fsync the page cache cannot be trusted) and a new one
        # is tried at the next commit.
        if exc.errno in _DISK_FULL and not self.disk_full:
            log.error(
                "spool %s: disk full (%s); answering 503 until space returns",
                self.folder,
                exc.strerror,
            )
        elif exc.errno not in _DISK_FULL:
            log.error("spool %s: write failed (%s); answering 503", self.folder, exc)
        self.disk_full = self.disk_full or exc.errno in _DISK_FULL
        try:
            self._close_segment()
        except OSError as close_exc:
            log.error("spool %s: could not close segment cleanly: %s", self.folder, close_exc)
            self._fd = None
            self._path = None

    def _open_segment(self) -> None:
        name = f"{time.time_ns():020d}"
        path = self.folder / f"{name}.open"
        while path.exists() or path.with_suffix(".seg").exists():
            name = f"{int(name) + 1:020d}"
            path = self.folder / f"{name}.open"
        header = encode_header(
            {
                "format": 1,
                "sensor": self.sensor,
                "segment": name,
                "pid": os.getpid(),
                "created_ns": time.time_ns(),
            },
            self.schema,
        )
        try:
            # Creating the file fails too when the file system has no inode left.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            self._fail(exc)
            raise
        ready = len(header)
        try:
            written = os.pwrite(fd, header, 0)
            if written != len(header):
                raise _short_write(written, len(header))
            first = min(self.preallocate, _FIRST_FILL, self.segment_max_bytes)
            if first > ready and _zero_fill(fd, ready, first):
                ready = first  # the first zeros go with the header's sync; ``fill`` adds more
            os.fsync(fd)
            _fsync_dir(self.folder)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            self._fail(exc)
            raise
        self._fd, self._path = fd, path
        self._offset = self._start = len(header)
        self._ready = ready
        self._fill_failed = False
        self._opened_at = time.monotonic()

    def _close_segment(self) -> None:
        if self._fd is None or self._path is None:
            return
        with self._fill_lock:  # not while a fill writes to it
            fd, path = self._fd, self._path
            self._fd = None
            self._path = None
            self._ready = 0
        try:
            os.ftruncate(fd, self._offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        if self._offset <= self._start:
            path.unlink()  # held no block
        else:
            path.rename(path.with_suffix(".seg"))
        _fsync_dir(self.folder)


def iter_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Every record batch of a closed segment, skipping corrupt ranges."""
    header, scan, _data = read_segment(path)
    for block in scan.blocks:
        yield decode_block(header.schema, block)
