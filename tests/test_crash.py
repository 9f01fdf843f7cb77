"""Crash safety with real processes and sockets: kill -9 the sinkhole and ingest at random moments.

The guarantee: a check-in answered 200 is in the spool (block written and fdatasync'd before the
answer) even across ``kill -9``; a restart cuts only the torn tail of the open segment; ingest
moves closed segments into the lake exactly once, however often it is killed and rerun.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import random
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Sinkhole, check_bodies, free_port, lake_rows, takedown_cmd

from takedown import lake
from takedown.errors import SpoolError
from takedown.home import Home
from takedown.simulate.loadgen import (
    FAMILIES,
    LoadResult,
    body_for,
    bot_address,
    request_for,
    run_load,
)
from takedown.sinkhole.protocol import (
    SPOOL_SCHEMA,
    HttpRequestReader,
    Sensor,
    classify,
    http_row,
)
from takedown.sinkhole.rules import BUILTIN_RULES, RuleSet
from takedown.sinkhole.spool import (
    SpoolWriter,
    read_segment,
    recover_folder,
    scan_blocks,
    try_lock,
)

# The day Rustock's C2 was seized; TAKEDOWN_CRASH_SEED=n runs other kill schedules.
SEED = int(os.environ.get("TAKEDOWN_CRASH_SEED", "20110316"))
KILLS = int(os.environ.get("TAKEDOWN_CRASH_KILLS", "5"))


class LoadThread(threading.Thread):
    """The loopback load generator, running until told to stop, across sinkhole restarts.

    It calls ``run_load`` in short slices, each with its own id range, so a slice never waits
    for the end of the whole test; ``run_load`` itself retries connection errors.
    """

    SLICE_IDS = 100_000
    MAX_SLICES = 200

    def __init__(self, port: int, slice_seconds: float = 0.5) -> None:
        super().__init__(name="loadgen", daemon=True)
        self.port = port
        self.slice_seconds = slice_seconds
        self.halt = threading.Event()
        self.answered: set[int] = set()
        self.sent = self.errors = self.refused = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            for n in range(self.MAX_SLICES):
                if self.halt.is_set():
                    break
                result: LoadResult = asyncio.run(
                    run_load(
                        "127.0.0.1",
                        self.port,
                        requests=self.SLICE_IDS,
                        connections=16,
                        bots=2000,
                        duration=self.slice_seconds,
                        seed=SEED + n,
                        first_id=n * self.SLICE_IDS,
                    )
                )
                self.answered |= result.answered
                self.sent += result.sent
                self.errors += result.errors
                self.refused += result.refused
        except BaseException as exc:  # surfaced by the test
            self.failure = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(60)
        assert not self.is_alive(), "load generator did not stop"
        assert self.failure is None, f"load generator failed: {self.failure!r}"


@pytest.mark.slow
def test_sigkill_never_loses_an_answered_checkin(tmp_path: Path, sinkholes: list[Sinkhole]):
    rng = random.Random(SEED)
    home = Home(tmp_path / "home")
    # Small segments: the kills also land around rotations, not only inside one segment.
    sk = Sinkhole(home, free_port(), tmp_path / "logs", {"TAKEDOWN_SEGMENT_MAX_BYTES": "262144"})
    sinkholes.append(sk)
    sk.start()
    load = LoadThread(sk.port)
    load.start()
    windows = []  # (spawned, ended) wall times of each server process
    try:
        for _ in range(KILLS):
            sk.wait_for_segment()  # it has traffic; now kill it at a random moment
            time.sleep(rng.uniform(0.2, 0.8))
            assert sk.alive(), sk.log(-1)
            sk.kill()
            windows.append((sk.spawned[-1], time.time()))
            sk.start()
        sk.wait_for_segment()
        time.sleep(rng.uniform(0.5, 1.0))
    finally:
        load.stop()
    assert sk.stop() == 0, sk.log(-1)
    windows.append((sk.spawned[-1], time.time()))

    # Restarts found the killed process's open segment and closed it, cutting its torn tail.
    # (All but one: a kill may land in the instant between closing a segment and opening the
    # next, when there is no open segment to recover.)
    notes = [
        re.findall(r"spool recovery: (\d+)\.open: closed with (\d+) events", sk.log(i))
        for i in range(1, KILLS + 1)
    ]
    assert sum(bool(n) for n in notes) >= KILLS - 1, notes
    assert "stopped:" in sk.log(-1)

    report = lake.ingest(home)
    # Ingest took in the recovered segments, with the events recovery counted in them.
    catalog = dict(lake.iter_ingested(home))
    sensor = sk.info["sensor"]
    for stem, events in (note for per_restart in notes for note in per_restart):
        assert catalog[f"{sensor}--{stem}"] == int(events), stem
    rows = lake_rows(home)
    ids = Counter(r.id for r in rows)
    dups = sorted(i for i, n in ids.items() if n > 1)
    assert not dups, f"{len(dups)} ids twice in the lake, e.g. {dups[:10]}"
    lost = sorted(load.answered - ids.keys())
    assert not lost, f"{len(lost)} answered ids missing from the lake, e.g. {lost[:10]}"
    check_bodies(rows)
    assert report.events == len(rows)
    assert report.corrupt_ranges == 0, report.quarantined  # restarts cut torn tails cleanly
    assert report.segments == len(list(home.ingested.glob("*/*.seg")))
    assert report.segments > KILLS  # one per killed process at least, plus rotations
    for segment in home.ingested.glob("*/*.seg"):
        # Closed at the end of its last block: no preallocated zeros, no torn tail kept.
        _header, scan, data = read_segment(segment)
        assert scan.valid_end == len(data) and not scan.corrupt, segment

    # Each server process answered some check-ins (time.source is stamped by the process).
    answered_times = [r.time_us / 1e6 for r in rows if r.id in load.answered]
    for n, (start, end) in enumerate(windows):
        inside = sum(start <= t <= end for t in answered_times)
        assert inside > 0, f"server process {n} answered nothing ({start:.3f}..{end:.3f})"
    # The kills did interrupt traffic (else this test proves little).
    assert load.errors > 0
    print(
        f"\n{len(load.answered)} answered, {len(rows)} in the lake "
        f"({len(ids.keys() - load.answered)} recorded but unanswered), "
        f"{load.errors} client errors, {report.segments} segments"
    )


# -- spool rows and segments built directly ----------------------------------------------------

_IX = {name: i for i, name in enumerate(SPOOL_SCHEMA.names)}
_FAMILY_NAMES = sorted(FAMILIES)
_BASE_US = 1_300_276_800_000_000  # 2011-03-16T12:00Z


@functools.cache
def _template(sensor: str, family: str) -> tuple[Any, ...]:
    """A real spool row (parsed, classified, built by http_row) to vary per id."""
    (req,) = HttpRequestReader().feed(request_for(0, family, 0, True))
    return http_row(
        req,
        classify(RuleSet([BUILTIN_RULES]), req),
        now_us=_BASE_US,
        peer=("127.1.0.1", 40000),
        local=("127.0.0.1", 8080),
        sensor=Sensor(sensor, "takedown", ("host", "user-agent", "content-length")),
        status=200,
    )


def make_rows(sensor: str, ids: range) -> list[tuple[Any, ...]]:
    """Rows as the sinkhole would spool them for load-generator requests ``ids``."""
    rows = []
    for i in ids:
        family = _FAMILY_NAMES[i % len(_FAMILY_NAMES)]
        _method, path, size, _ua = FAMILIES[family]
        body = body_for(i, size)
        bot = i % 3000
        row = list(_template(sensor, family))
        row[_IX["extra.http.target"]] = f"{path}?lg={i}"
        row[_IX["extra.body.sha256"]] = hashlib.sha256(body).digest()
        row[_IX["raw"]] = body
        row[_IX["time.source"]] = row[_IX["time.observation"]] = _BASE_US + i * 1000
        row[_IX["source.ip"]] = bot_address(bot)
        row[_IX["source.port"]] = 1024 + i % 60000
        rows.append(tuple(row))
    return rows


def write_segment(
    folder: Path, sensor: str, first_id: int, blocks: int, per_block: int, *, close: bool = True
) -> Path:
    """One segment of ``blocks`` blocks; with close=False, left open as a killed writer leaves
    it (preallocated, unlocked). Returns its path."""
    writer = SpoolWriter(folder, sensor, SPOOL_SCHEMA)
    writer.open()
    n = first_id
    for _ in range(blocks):
        writer.write(make_rows(sensor, range(n, n + per_block)))
        n += per_block
    path = writer.segment
    assert path is not None
    if close:
        writer.close()
        return path.with_suffix(".seg")
    # Die without closing: drop the descriptors, leave the file as it is.
    for fd in (writer._fd, writer._lock_fd):
        assert fd is not None
        os.close(fd)
    return path


def pending_segments(home: Home) -> int:
    return sum(1 for p in home.spool.glob("*/*") if p.suffix in (".seg", ".open"))


def moved_segments(home: Home) -> int:
    return sum(1 for _ in home.ingested.glob("*/*.seg"))


@pytest.mark.slow
def test_ingest_killed_at_any_moment_is_exactly_once(tmp_path: Path):
    rng = random.Random(SEED)
    home = Home(tmp_path / "home")
    home.ensure()
    per_block, blocks = 500, 3
    expected: set[tuple[str, int]] = set()
    segment_ids: set[str] = set()
    next_id = 0
    for n in range(40):
        sensor = f"sensor-{'ab'[n % 2]}"
        path = write_segment(home.spool / sensor, sensor, next_id, blocks, per_block)
        segment_ids.add(f"{sensor}--{path.stem}")
        ids = range(next_id, next_id + blocks * per_block)
        next_id = ids.stop
        if n == 7:
            # A rotten middle block in a closed segment: skipped and quarantined, once.
            _header, scan, data = read_segment(path)
            mid = scan.blocks[1]
            flip = mid.offset + 16 + len(mid.payload) // 2
            with open(path, "r+b") as fh:
                fh.seek(flip)
                fh.write(bytes([data[flip] ^ 0xFF]))
            ids = range(ids.start, ids.start + per_block)
            expected.update((sensor, i) for i in range(ids.start + 2 * per_block, next_id))
        expected.update((sensor, i) for i in ids)
    # A sinkhole killed mid-block: two whole blocks and a torn third, zeros after it.
    sensor = "sensor-b"
    path = write_segment(home.spool / sensor, sensor, next_id, 3, per_block, close=False)
    _header, scan, data = read_segment(path)
    third = scan.blocks[2]
    cut = rng.randrange(third.offset + 1, third.offset + 16 + len(third.payload))
    with open(path, "r+b") as fh:
        fh.seek(cut)
        fh.write(b"\0" * (third.offset + 16 + len(third.payload) - cut))
    expected.update((sensor, i) for i in range(next_id, next_id + 2 * per_block))
    segment_ids.add(f"{sensor}--{path.stem}")
    total_segments = pending_segments(home)
    assert total_segments == 41

    landed = []  # (segments moved when started, when killed, lake files when killed)
    for attempt in range(16):
        left = pending_segments(home)
        if len(landed) >= 5 or left < 2:
            break
        before = moved_segments(home)
        goal = rng.randrange(0, min(left, 8))  # let a few segments through, then kill
        errors = tmp_path / f"ingest-{attempt}.log"
        with open(errors, "wb") as err:
            proc = subprocess.Popen(
                takedown_cmd(home, "ingest"), stdout=subprocess.DEVNULL, stderr=err
            )
        if goal == 0:
            # Start-up, recovery, the first segments. Short: a whole ingest of this spool takes
            # well under a second once the interpreter is up.
            until = time.monotonic() + rng.uniform(0.05, 0.6)
            while time.monotonic() < until and moved_segments(home) < before + 2:
                time.sleep(0.001)
        else:
            deadline = time.monotonic() + 60
            while moved_segments(home) < before + goal and proc.poll() is None:
                assert time.monotonic() < deadline, "ingest made no progress"
                time.sleep(0.001)
        time.sleep(rng.uniform(0.0, 0.02))
        if proc.poll() is None:
            proc.kill()
            landed.append((before, moved_segments(home), len(list(home.events.rglob("*")))))
        elif proc.returncode != 0:
            pytest.fail(f"ingest failed by itself:\n{errors.read_text()}")
        proc.wait(30)
        # At every kill point: nothing twice, nothing that was not written.
        rows = lake_rows(home)
        seen = Counter((r.sensor, r.id) for r in rows)
        assert max(seen.values(), default=1) == 1, "an event is twice in the lake"
        assert seen.keys() <= expected
    print(f"\nkills (moved before, moved at kill, lake entries): {landed}")
    assert len(landed) >= 4, landed
    assert sum(0 < at < total_segments for _before, at, _files in landed) >= 2, landed

    done = subprocess.run(
        takedown_cmd(home, "ingest"), check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    again = lake.ingest(home)  # and once more: nothing left to do, nothing done twice
    assert (again.segments, again.events, again.skipped_already) == (0, 0, 0)

    rows = lake_rows(home)
    seen = Counter((r.sensor, r.id) for r in rows)
    assert max(seen.values()) == 1
    assert seen.keys() == expected
    assert len(rows) == len(expected)
    check_bodies(rows)
    assert pending_segments(home) == 0
    assert moved_segments(home) == total_segments

    con = duckdb.connect(str(home.catalog), read_only=True)
    try:
        catalog = con.execute(
            "SELECT segment, events, corrupt_ranges, files FROM ingested_segments"
        ).fetchall()
    finally:
        con.close()
    assert {c[0] for c in catalog} == segment_ids
    assert sum(c[1] for c in catalog) == len(rows)
    assert sum(c[2] for c in catalog) == 1
    cataloged = {f for c in catalog for f in c[3]}
    on_disk = {str(p.relative_to(home.root)) for p in home.events.rglob("*") if p.is_file()}
    assert on_disk == cataloged  # no stray or temporary files in the lake
    assert len(list(home.quarantine.glob("*.bin"))) == 1


# -- spool recovery, file level ----------------------------------------------------------------


def test_recovery_cuts_a_torn_last_block_at_every_offset(tmp_path: Path):
    src = write_segment(tmp_path / "src", "s", 0, 3, 1)
    header, scan, data = read_segment(src)
    last = scan.blocks[-1]
    end = last.offset + 16 + len(last.payload)
    assert len(data) == end
    # Thousands of recoveries: on a tmpfs when there is one (fsync costs nothing there).
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else tmp_path) as scratch:
        folder = Path(scratch) / "s"
        folder.mkdir()
        seg = folder / f"{src.stem}.open"
        for cut in range(last.offset, end + 1):
            # As a killed writer leaves it: the block written up to `cut`, then either nothing
            # (no preallocation) or the preallocated zeros.
            for tail in (b"", b"\0" * 8192):
                seg.write_bytes(data[:cut] + tail)
                notes = recover_folder(folder)
                assert len(notes) == 1
                kept = seg.with_suffix(".seg").read_bytes()
                # Zeros already in place complete a block whose missing end is zeros (Arrow
                # pads with them): that block is whole on disk and is kept, rightly.
                whole = cut == end or (tail and data[cut:end].count(0) == end - cut)
                if whole:
                    assert kept == data, cut
                    assert "closed with 3 events" in notes[0]
                else:
                    assert kept == data[: last.offset], cut  # earlier blocks byte for byte
                    assert "closed with 2 events" in notes[0]
                    assert ("torn" in notes[0]) == (cut > last.offset), (cut, notes)
                assert not seg.exists()
                seg.with_suffix(".seg").unlink()
    # What is left decodes to the rows of the blocks before the torn one.
    assert scan_blocks(data[: last.offset], header.size).records == 2


@pytest.mark.parametrize("left", ["nothing", "zeros", "half-header"])
def test_recovery_of_a_segment_killed_before_its_header(tmp_path: Path, left: str):
    """Killed after creating (and preallocating) a segment, before its header was synced."""
    folder = tmp_path / "spool" / "s"
    folder.mkdir(parents=True)
    path = folder / "01300276800000000000.open"
    path.write_bytes(
        {"nothing": b"", "zeros": bytes(1 << 20), "half-header": b"TDSPOOL1\x10\0\0\0{"}[left]
    )
    notes = recover_folder(folder)
    assert len(notes) == 1 and "held no" in notes[0], notes
    assert not path.exists() and not list(folder.glob("*.seg"))
    # Only zeros (or nothing) is removed; anything else is kept aside for a look.
    assert path.with_suffix(".bad").exists() == (left == "half-header")


def _flip(path: Path, at: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.parametrize(
    "where", ["magic", "length", "crc", "records", "payload", "payload-end", "orphan"]
)
def test_corrupt_middle_block_is_skipped_reported_and_quarantined(tmp_path: Path, where: str):
    home = Home(tmp_path / "home")
    home.ensure()
    per_block = 10
    orphan = where == "orphan"
    path = write_segment(home.spool / "s", "s", 0, 5, per_block, close=not orphan)
    _header, scan, _ = read_segment(path)
    bad = scan.blocks[2]
    at = {
        "magic": bad.offset,
        "length": bad.offset + 4,
        "crc": bad.offset + 8,
        "records": bad.offset + 12,
        "payload": bad.offset + 16 + len(bad.payload) // 2,
        "payload-end": bad.offset + 16 + len(bad.payload) - 1,
        "orphan": bad.offset + 20,
    }[where]
    data = _flip(path, at)
    _header, scan, _ = read_segment(path)
    assert len(scan.blocks) == 4
    assert scan.corrupt == [(bad.offset, scan.blocks[2].offset)]
    assert scan.records == 4 * per_block

    report = lake.ingest(home)
    assert report.events == 4 * per_block
    assert report.corrupt_ranges == 1
    seg_id = f"s--{path.stem}"
    assert report.quarantined == [f"quarantine/{seg_id}@{bad.offset}.bin"]
    quarantined = home.quarantine / f"{seg_id}@{bad.offset}.bin"
    assert quarantined.read_bytes() == data[bad.offset : scan.blocks[2].offset]
    if orphan:
        # A killed writer's open segment: ingest recovered it and says so.
        assert len(report.recovered) == 1
        assert "closed with 40 events" in report.recovered[0]
        assert "1 corrupt ranges kept aside" in report.recovered[0]
    else:
        assert report.recovered == []
    ids = sorted(r.id for r in lake_rows(home))
    assert ids == [i for i in range(5 * per_block) if not 2 * per_block <= i < 3 * per_block]
    # Ingest again: nothing twice, the quarantine unchanged.
    again = lake.ingest(home)
    assert again.events == 0 and again.corrupt_ranges == 0
    assert len(lake_rows(home)) == 4 * per_block


def test_a_restarting_sinkhole_waits_while_ingest_holds_its_folder(tmp_path: Path):
    """`takedown ingest` (or `status`) locks a dead sinkhole's folder for a moment to close its
    segment; a sinkhole restarted in that moment waits instead of exiting "in use"."""
    folder = tmp_path / "spool" / "s"
    held = try_lock(folder)  # as lake's orphan recovery takes it
    assert held is not None
    timer = threading.Timer(0.3, os.close, (held,))
    timer.start()
    try:
        started = time.monotonic()
        writer = SpoolWriter(folder, "s", SPOOL_SCHEMA, lock_wait=10)
        writer.open()
        assert 0.25 < time.monotonic() - started < 5
    finally:
        timer.join()
    # A live sinkhole holding the folder is still refused at once, naming it.
    other = SpoolWriter(folder, "s", SPOOL_SCHEMA, lock_wait=10)
    started = time.monotonic()
    with pytest.raises(SpoolError, match=rf"in use by another sinkhole \(pid {os.getpid()}\)"):
        other.open()
    assert time.monotonic() - started < 1
    writer.close()
