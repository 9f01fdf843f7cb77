"""Disk full, for real: the sinkhole's home on a 4 MiB tmpfs, filled up, then freed.

While the spool cannot be written the sinkhole answers 503 (never 200 for a request it did not
record), keeps answering, says why in its log, and goes back to 200 by itself once space
returns. Needs root (it mounts a tmpfs); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Sinkhole, check_bodies, free_port, lake_rows

from takedown import lake
from takedown.home import Home
from takedown.simulate.loadgen import LoadResult, run_load
from takedown.sinkhole import spool
from takedown.sinkhole.protocol import SPOOL_SCHEMA
from takedown.sinkhole.spool import SpoolWriter, read_segment

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture
def small_tmpfs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A 4 MiB tmpfs (mount options: the test's indirect parameter), unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (disk-full test)")
    options = getattr(request, "param", "size=4m")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"{options},mode=0755", "tmpfs", str(mnt)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> int:
    """Append to ``path`` until the file system refuses: the bytes added."""
    added = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 16, 4096, 1):
            while True:
                try:
                    n = os.write(fd, b"\xff" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
                added += n
                if n < chunk:
                    break
    finally:
        os.close(fd)
    return added


def load(port: int, first_id: int, requests: int) -> LoadResult:
    return asyncio.run(
        run_load("127.0.0.1", port, requests=requests, connections=4, bots=200, first_id=first_id)
    )


def test_disk_full_answers_503_then_recovers_by_itself(
    tmp_path: Path, small_tmpfs: Path, sinkholes: list[Sinkhole]
):
    home = Home(small_tmpfs / "home")
    sk = Sinkhole(home, free_port(), tmp_path / "logs", {})
    sinkholes.append(sk)
    pid = sk.start()["pid"]
    answered: set[int] = set()

    # 1. Room: every check-in recorded and answered. A 4 MiB file system has no room to spare
    #    for zeros ahead of the blocks: the spool grows the segment as it writes.
    before = load(sk.port, 0, 300)
    assert (len(before.answered), before.refused, before.errors) == (300, 0, 0)
    answered |= before.answered
    (segment,) = (home.spool / sk.info["sensor"]).glob("*.open")
    assert segment.stat().st_size < 1 << 20

    # 2. Full. The first refused writes may free a partial page or two (the spool cuts its
    #    segment back to the last whole block), so fill again until a round is all refused.
    filler = small_tmpfs / "filler"
    assert fill(filler) > 0
    for attempt in range(6):
        settle = load(sk.port, 10_000 + attempt * 100, 20)
        answered |= settle.answered  # recorded in what room was left: fine
        assert settle.errors == 0
        if settle.refused == 20:
            break
        fill(filler)
    else:
        pytest.fail("the spool kept finding room on a full tmpfs")
    started = time.monotonic()
    full = load(sk.port, 20_000, 300)
    took = time.monotonic() - started
    assert full.answered == set(), "answered 200 while the disk was full"
    assert (full.refused, full.errors) == (300, 0)  # it answered every one, with a 503
    assert took < 15, f"300 refusals took {took:.1f}s: the sinkhole stalls when full"
    assert sk.alive()
    why = r"disk full \(No space left on device.*\); answering 503 until space returns"
    assert re.search(why, sk.log(-1)), sk.log(-1)

    # 3. Room again: back to 200 with no restart.
    filler.unlink()
    after = load(sk.port, 30_000, 300)
    assert (len(after.answered), after.refused, after.errors) == (300, 0, 0)
    answered |= after.answered
    assert sk.alive() and sk.info["pid"] == pid
    assert "writable again; answering bots normally" in sk.log(-1)

    assert sk.stop() == 0, sk.log(-1)
    assert "stopped:" in sk.log(-1)

    # 4. Everything answered 200 is in the lake once; nothing refused crept in. Ingest runs on
    #    a copy: Parquet and the catalog need more room than the 4 MiB tmpfs has.
    copy = Home(tmp_path / "copy")
    shutil.copytree(home.root, copy.root)
    report = lake.ingest(copy)
    assert report.corrupt_ranges == 0, report.quarantined
    rows = lake_rows(copy)
    ids = Counter(r.id for r in rows)
    assert max(ids.values()) == 1, "an event is twice in the lake"
    assert answered <= ids.keys(), sorted(answered - ids.keys())[:10]
    assert not ids.keys() & set(range(20_000, 20_300)), "a refused check-in was recorded"
    check_bodies(rows)
    print(f"\n{len(answered)} answered, {len(rows)} in the lake, {report.segments} segments")


def use_up_inodes(folder: Path) -> list[Path]:
    """Create empty files until the file system has no inode left: the files."""
    folder.mkdir()
    made = []
    for n in range(100_000):
        try:
            (folder / str(n)).touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return made
        made.append(folder / str(n))
    raise AssertionError("the inodes never ran out")


@pytest.mark.parametrize(
    ("small_tmpfs", "short_of"),
    [("size=4m", "bytes"), ("size=4m,nr_inodes=32", "inodes")],
    indirect=["small_tmpfs"],
)
def test_spool_writer_on_a_full_disk_refuses_logs_once_and_recovers(
    small_tmpfs: Path, short_of: str, caplog: pytest.LogCaptureFixture
):
    folder = small_tmpfs / "spool" / "s"
    folder.mkdir(parents=True)
    caplog.set_level(logging.WARNING, logger="takedown.sinkhole.spool")
    writer = SpoolWriter(folder, "s", SPOOL_SCHEMA)
    filler = small_tmpfs / "filler"
    inodes = short_of == "inodes"
    if inodes:
        writer.open()
        used = use_up_inodes(filler)  # a new segment file cannot even be created
    else:
        fill(filler)
        writer.open()  # locks and recovers even with no byte to spare
    rows = [tuple(None for _ in SPOOL_SCHEMA)] * 10
    for _ in range(5):
        with pytest.raises(OSError) as refused:
            writer.write(rows)
        assert refused.value.errno == errno.ENOSPC
        assert writer.disk_full and writer.segment is None
    full = [r.getMessage() for r in caplog.records]
    assert len(full) == 1 and "disk full (No space left on device" in full[0], full
    assert not list(folder.glob("*.open")) and not list(folder.glob("*.seg"))

    if inodes:
        for path in used:
            path.unlink()
    else:
        filler.unlink()
    writer.write(rows)
    assert not writer.disk_full
    assert "writable again" in caplog.records[-1].getMessage()
    # No room to spare for zeros ahead on 4 MiB: the segment grows as it is written.
    assert writer.segment is not None and writer.segment.stat().st_size < 1 << 20
    writer.close()
    (segment,) = folder.glob("*.seg")
    _header, scan, _ = read_segment(segment)
    assert scan.records == 10 and not scan.corrupt and scan.torn_bytes == 0


def test_zeros_ahead_that_do_not_fit_are_given_back(
    small_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
):
    # Asked to keep nothing spare, the writer tries to zero-fill 16 MiB ahead on a 4 MiB
    # tmpfs: the fill runs out of room part way, takes back the zeros it wrote (the room
    # stays free for others) and stops for this segment; blocks grow the file as they come.
    monkeypatch.setattr(spool, "_SPARE", 0)
    folder = small_tmpfs / "spool" / "s"
    folder.mkdir(parents=True)
    writer = SpoolWriter(folder, "s", SPOOL_SCHEMA, preallocate=16 << 20)
    writer.open()
    rows = [tuple(None for _ in SPOOL_SCHEMA)] * 10
    writer.write(rows)
    assert writer.segment is not None
    first = writer.segment.stat().st_size
    assert first == 1 << 20  # the first zeros fitted
    free = shutil.disk_usage(small_tmpfs).free
    assert writer.fill_due()
    writer.fill()
    assert writer.fills == 0 and not writer.fill_due()
    assert writer.segment.stat().st_size == first
    assert shutil.disk_usage(small_tmpfs).free == free
    for _ in range(3):
        writer.write(rows)
    writer.close()
    (segment,) = folder.glob("*.seg")
    _header, scan, _ = read_segment(segment)
    assert scan.records == 40 and not scan.corrupt and scan.torn_bytes == 0


def test_sinkhole_started_on_a_full_disk_answers_503_then_200(
    tmp_path: Path, small_tmpfs: Path, sinkholes: list[Sinkhole]
):
    home = Home(small_tmpfs / "home")
    home.ensure()
    filler = small_tmpfs / "filler"
    fill(filler)
    sk = Sinkhole(home, free_port(), tmp_path / "logs", {})
    sinkholes.append(sk)
    sk.start(ready_file=False)  # no ready file can be written: wait for the port
    full = load(sk.port, 0, 50)
    assert (full.answered, full.refused, full.errors) == (set(), 50, 0)
    assert "disk full (No space left on device" in sk.log(-1)
    filler.unlink()
    room = load(sk.port, 1000, 50)
    assert (len(room.answered), room.refused, room.errors) == (50, 0, 0)
    assert sk.stop() == 0
