"""The native spool I/O thread (``_commit.Committer``) and the group commit built on it.

Real files, real threads, a real uvloop loop: what the committer writes is read back byte for
byte, and the group commit's blocks are read back through the spool's own reader.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from takedown.sinkhole._commit import Committer
from takedown.sinkhole.commit import GroupCommit
from takedown.sinkhole.spool import SpoolWriter, iter_batches, read_segment

SCHEMA = pa.schema([("i", pa.int64()), ("s", pa.string())])


@pytest.fixture
def committer():
    c = Committer()
    yield c
    c.close()


def test_writes_buffers_at_the_offset_then_reports(tmp_path: Path, committer: Committer):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert committer.result() is None  # nothing in flight
        committer.submit(fd, [b"abc", memoryview(b"defgh"), bytearray(b"!")], 10)
        assert committer.busy
        assert committer.wait() == (9, 0)
        assert not committer.busy
        assert committer.result() is None  # taken once
        assert os.pread(fd, 100, 0) == b"\0" * 10 + b"abcdefgh!"
    finally:
        os.close(fd)


def test_the_eventfd_says_when_a_block_is_done(tmp_path: Path, committer: Committer):
    import select

    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        committer.submit(fd, [b"x" * 4096], 0)
        readable, _, _ = select.select([committer.fileno()], [], [], 10)
        assert readable == [committer.fileno()]
        assert committer.result() == (4096, 0)
        readable, _, _ = select.select([committer.fileno()], [], [], 0)
        assert readable == []  # drained by result()
    finally:
        os.close(fd)


def test_errors_come_back_as_errno(tmp_path: Path, committer: Committer):
    fd = os.open(tmp_path / "f", os.O_RDONLY | os.O_CREAT)
    try:
        committer.submit(fd, [b"x"], 0)
        assert committer.wait() == (0, errno.EBADF)
    finally:
        os.close(fd)
    committer.submit(10_000, [b"x"], 0)  # no such descriptor
    assert committer.wait() == (0, errno.EBADF)


def test_misuse_is_refused_clearly(tmp_path: Path, committer: Committer):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(ValueError, match="between 1 and 8 buffers"):
            committer.submit(fd, [], 0)
        with pytest.raises(ValueError, match="between 1 and 8 buffers"):
            committer.submit(fd, [b"x"] * 9, 0)
        with pytest.raises(TypeError):
            committer.submit(fd, ["text is not bytes"], 0)
        with pytest.raises(ValueError, match="must not be negative"):
            committer.submit(fd, [b"x"], -1)
        committer.submit(fd, [b"x" * (1 << 20)], 0)
        with pytest.raises(RuntimeError, match="already in flight"):
            committer.submit(fd, [b"y"], 0)
        assert committer.wait() == (1 << 20, 0)
    finally:
        os.close(fd)
    committer.close()
    committer.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        committer.submit(0, [b"x"], 0)
    with pytest.raises(ValueError, match="closed"):
        committer.fileno()


def test_close_finishes_the_block_in_flight(tmp_path: Path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        c = Committer()
        data = os.urandom(4 << 20)
        c.submit(fd, [data], 0)
        del data  # the committer holds the buffer until it is done
        c.close()
        assert os.fstat(fd).st_size == 4 << 20
    finally:
        os.close(fd)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1 << 16),
            st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_same_bytes_as_pwrite(tmp_path_factory: pytest.TempPathFactory, jobs):
    folder = tmp_path_factory.mktemp("c")
    ours = os.open(folder / "ours", os.O_RDWR | os.O_CREAT)
    theirs = os.open(folder / "theirs", os.O_RDWR | os.O_CREAT)
    c = Committer()
    try:
        for offset, bufs in jobs:
            c.submit(ours, bufs, offset, sync=False)
            assert c.wait() == (sum(map(len, bufs)), 0)
            os.pwrite(theirs, b"".join(bufs), offset)
        size = os.fstat(theirs).st_size
        assert os.fstat(ours).st_size == size
        assert os.pread(ours, size, 0) == os.pread(theirs, size, 0)
    finally:
        c.close()
        os.close(ours)
        os.close(theirs)


# -- the group commit on top of it ------------------------------------------------------------
def _open_commit(
    folder: Path, segment_max_bytes: int = 64 << 20, preallocate: int = 4 << 20, **kw: Any
) -> GroupCommit:
    """A group commit on the running loop over a fresh spool in ``folder``."""
    writer = SpoolWriter(
        folder, "t", SCHEMA, segment_max_bytes=segment_max_bytes, preallocate=preallocate
    )
    writer.open()
    return GroupCommit(asyncio.get_running_loop(), writer, **kw)


def _run_group_commit(
    folder: Path,
    native: bool,
    bursts: list[int],
    *,
    segment_max_bytes: int = 64 << 20,
    preallocate: int = 4 << 20,
    block_per_burst: bool = False,
) -> tuple[list[bool], GroupCommit]:
    async def main() -> tuple[list[bool], GroupCommit]:
        commit = _open_commit(
            folder, native=native, segment_max_bytes=segment_max_bytes, preallocate=preallocate
        )
        answers: list[bool] = []
        i = 0
        for burst in bursts:
            for _ in range(burst):
                commit.submit((i, f"row {i}"), answers.append)
                i += 1
            await asyncio.sleep(0)  # let a block start; the next burst joins the one after
            if block_per_burst:
                await asyncio.wait_for(commit.drain(), 30)
        await asyncio.wait_for(commit.drain(), 30)
        commit.close()
        return answers, commit

    return uvloop.run(main())


def _spooled(folder: Path) -> list[int]:
    rows: list[int] = []
    for seg in sorted(folder.glob("*.seg")):
        for batch in iter_batches(seg):
            rows.extend(batch.column("i").to_pylist())
    return rows


@pytest.mark.parametrize("native", [True, False], ids=["native", "python-thread"])
def test_group_commit_spools_every_row_once_in_order(tmp_path: Path, native: bool):
    bursts = [1, 5, 64, 3, 200, 1, 1, 17]
    answers, commit = _run_group_commit(tmp_path, native, bursts)
    assert (commit.io is not None) == native
    assert answers == [True] * sum(bursts)
    assert commit.committed == sum(bursts) and commit.failed == 0
    assert _spooled(tmp_path) == list(range(sum(bursts)))


def test_group_commit_rotates_segments_between_native_writes(tmp_path: Path):
    # Segments of 4 KiB: many blocks need a rotation first (done on the Python thread), the
    # others go to the native thread; the order and the count must not change.
    bursts = [3, 9, 27, 2, 50, 1] * 4
    answers, _ = _run_group_commit(
        tmp_path, True, bursts, segment_max_bytes=4096, block_per_burst=True
    )
    assert answers == [True] * sum(bursts)
    assert len(list(tmp_path.glob("*.seg"))) > 3
    assert _spooled(tmp_path) == list(range(sum(bursts)))


@pytest.mark.parametrize("native", [True, False], ids=["native", "python-thread"])
def test_zeros_are_written_ahead_beside_the_blocks(tmp_path: Path, native: bool):
    # Steps of 2 KiB: a fill runs on the Python thread after nearly every block, while the
    # next blocks go to the native thread below what is filled (or, past it, wait for the
    # Python thread). Segments of 64 KiB rotate in between. Nothing may be lost, doubled,
    # reordered or overwritten with zeros.
    bursts = [1, 40, 7, 300, 2, 90, 13, 1, 150] * 4
    answers, commit = _run_group_commit(
        tmp_path,
        native,
        bursts,
        segment_max_bytes=64 << 10,
        preallocate=2048,
        block_per_burst=True,
    )
    assert answers == [True] * sum(bursts)
    assert commit.writer.fills > 10
    assert _spooled(tmp_path) == list(range(sum(bursts)))
    for seg in tmp_path.glob("*.seg"):
        _header, scan, data = read_segment(seg)
        assert not scan.corrupt and scan.torn_bytes == 0 and scan.valid_end == len(data)


def test_a_failed_native_write_answers_false_and_the_next_block_recovers(tmp_path: Path):
    async def main() -> tuple[list[bool], list[bool]]:
        commit = _open_commit(tmp_path)
        writer = commit.writer
        writer.make_room(1)
        assert commit.io is not None
        bad = os.open(tmp_path / "read-only", os.O_RDONLY | os.O_CREAT)
        real_place = writer.place
        writer.place = lambda size: (bad, 0)  # type: ignore[method-assign]
        first: list[bool] = []
        commit.submit((0, "lost"), first.append)
        await asyncio.wait_for(commit.drain(), 10)
        writer.place = real_place  # type: ignore[method-assign]
        second: list[bool] = []
        commit.submit((1, "kept"), second.append)
        await asyncio.wait_for(commit.drain(), 10)
        commit.close()
        os.close(bad)
        return first, second

    first, second = uvloop.run(main())
    assert first == [False]  # EBADF: not durable, so answered 503 by the server
    assert second == [True]
    assert _spooled(tmp_path) == [1]


def test_commit_delay_batches_a_burst_but_never_holds_a_lone_request(tmp_path: Path):
    async def main() -> None:
        # A delay far longer than the test: whatever waits for it would time the test out.
        commit = _open_commit(tmp_path, delay=30.0, batch=16)
        writer = commit.writer
        answers: list[bool] = []
        commit.submit((0, "alone"), answers.append)
        assert commit._timer is None  # nothing started lately: it goes at once
        await asyncio.wait_for(commit.drain(), 10)
        assert writer.blocks_written == 1
        for i in range(1, 4):  # a block just started: these wait for more company
            commit.submit((i, "early"), answers.append)
        assert commit._timer is not None
        await asyncio.sleep(0.05)
        assert writer.blocks_written == 1 and answers == [True]
        for i in range(4, 17):  # the 16th row starts the block without waiting out the delay
            commit.submit((i, "burst"), answers.append)
        assert commit._timer is None
        await asyncio.wait_for(commit.drain(), 10)
        assert writer.blocks_written == 2
        assert answers == [True] * 17
        commit.close()

    uvloop.run(main())
    assert _spooled(tmp_path) == list(range(17))


def test_rows_waiting_out_the_delay_are_written_when_it_ends(tmp_path: Path):
    async def main() -> list[bool]:
        commit = _open_commit(tmp_path, delay=0.05, batch=1000)
        writer = commit.writer
        answers: list[bool] = []
        commit.submit((0, "first"), answers.append)
        await asyncio.wait_for(commit.drain(), 10)
        for i in range(1, 6):
            commit.submit((i, "waits"), answers.append)
        await asyncio.wait_for(commit.drain(), 10)
        assert writer.blocks_written == 2
        commit.close()
        return answers

    assert uvloop.run(main()) == [True] * 6
    assert _spooled(tmp_path) == list(range(6))
