"""Group commit: the sinkhole's rows batched into spool blocks, each written and synced once.

A worker's requests arriving while a block is being synced wait for the next block, which
takes them all; each request is answered (through its waiter) only once its block is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from takedown.sinkhole.spool import SpoolWriter

__all__ = ["GroupCommit", "native_committer"]

log = logging.getLogger(__name__)


def native_committer() -> Any:
    """The native spool I/O thread (``_commit.Committer``), or None where it was not built."""
    try:
        from takedown.sinkhole._commit import Committer
    except ImportError as exc:  # pragma: no cover - the package build compiles it
        log.warning("native spool I/O not built (%s); syncing on a Python thread", exc)
        return None
    return Committer()


class GroupCommit:
    """Batches rows arriving while the previous block is being synced (group commit).

    The block is encoded on the event loop's thread. Its write and fdatasync run on the
    native committer's thread, which never needs the GIL, and the loop hears of the result
    through an eventfd. Opening and rotating segments (file work beyond one write) go to a
    Python thread, as does everything when the committer is not there (``native=False``).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        writer: SpoolWriter,
        *,
        native: bool = True,
        delay: float = 0.0,
        batch: int = 1,
    ) -> None:
        self.loop = loop
        self.writer = writer
        # Commit delay (after PostgreSQL's commit_delay): a block starts at once when it has
        # ``batch`` rows or ``delay`` has passed since the previous block started; otherwise
        # it waits for more rows until then. Each block costs a fixed encode and fdatasync,
        # and under load from new connections (one request each) blocks of two or three rows
        # spent most of the CPU on that. When requests come slower than one per ``delay``,
        # nothing waits; a burst waits at most ``delay``.
        self.delay = delay
        self.batch = batch
        self._last_start = -1e9
        self._timer: asyncio.TimerHandle | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self.io: Any = native_committer() if native else None
        if self.io is not None:
            loop.add_reader(self.io.fileno(), self._io_done)
        self._rows: list[tuple[Any, ...]] = []
        self._waiters: list[Callable[[bool], None]] = []
        self._inflight: tuple[list[Callable[[bool], None]], int, int] | None = None
        self._busy = False
        self._scheduled = False
        self._filling = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.committed = 0
        self.failed = 0

    def submit(self, row: tuple[Any, ...], waiter: Callable[[bool], None]) -> None:
        self._rows.append(row)
        self._waiters.append(waiter)
        self._idle.clear()
        if not self._busy:
            if not self._scheduled:
                self._schedule()
            elif self._timer is not None and self._enough():  # waited for rows: they came
                self._timer.cancel()
                self._timer = None
                self.loop.call_soon(self._start)

    def _enough(self) -> bool:
        """Whether the rows waiting make a block worth starting now."""
        if self.delay <= 0 or self.loop.time() - self._last_start >= self.delay:
            return True
        return len(self._rows) >= self.batch

    def _schedule(self) -> None:
        self._scheduled = True
        if self._enough():
            # Let this loop iteration's other requests join the block.
            self.loop.call_soon(self._start)
        else:
            when = self._last_start + self.delay
            self._timer = self.loop.call_at(when, self._start)

    def _start(self) -> None:
        self._scheduled = False
        self._timer = None
        if self._busy or not self._rows:
            return
        self._last_start = self.loop.time()
        rows, waiters = self._rows, self._waiters
        self._rows, self._waiters = [], []
        self._busy = True
        try:
            frame, payload = self.writer.encode(rows)
        except Exception:  # a row the schema cannot hold: its block is refused, not the server
            log.exception("encoding a spool block failed; answering 503")
            self._complete(waiters, False)
            return
        size = len(frame) + len(payload)
        where = None if self.io is None else self.writer.place(size)
        if where is None:  # no committer, or a segment to open or rotate first: off the loop
            fut = self.loop.run_in_executor(
                self.executor, self.writer.write_encoded, frame, payload, len(rows)
            )
            fut.add_done_callback(partial(self._done, waiters))
            return
        self._inflight = (waiters, size, len(rows))
        self.io.submit(where[0], (frame, payload), where[1])

    def _io_done(self) -> None:
        result = self.io.result()
        if result is None or self._inflight is None:
            return
        waiters, size, n = self._inflight
        self._inflight = None
        ok = True
        try:
            self.writer.finish(size, n, *result)
        except OSError:
            ok = False  # logged by the writer
        except Exception:
            log.exception("spool write failed; answering 503")
            ok = False
        self._complete(waiters, ok)

    def _done(self, waiters: list[Callable[[bool], None]], fut: asyncio.Future[None]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        ok = not fut.cancelled() and exc is None
        if exc is not None and not isinstance(exc, OSError):
            log.error("spool write failed; answering 503", exc_info=exc)
        self._complete(waiters, ok)

    def _complete(self, waiters: list[Callable[[bool], None]], ok: bool) -> None:
        if ok:
            self.committed += len(waiters)
        else:
            self.failed += len(waiters)
        self._busy = False
        for waiter in waiters:
            try:
                waiter(ok)
            except Exception:  # one broken connection must not stop the others' answers
                log.exception("answering a request failed")
        if not self._filling and self.writer.fill_due():
            self._filling = True  # zeros ahead of the blocks, beside them (SpoolWriter.fill)
            self.loop.run_in_executor(self.executor, self.writer.fill).add_done_callback(
                self._filled
            )
        if not self._rows:
            self._idle.set()
        elif not self._scheduled:
            if self._enough():
                self._start()
            else:
                self._schedule()

    def _filled(self, fut: asyncio.Future[None]) -> None:
        self._filling = False
        if not fut.cancelled() and fut.exception() is not None:
            log.error("zero-filling the spool segment failed", exc_info=fut.exception())

    async def drain(self) -> None:
        await self._idle.wait()

    async def rotate_if_due(self) -> None:
        if self._busy or self._rows:
            return
        self._busy = True  # no block may start while the segment changes
        try:
            await self.loop.run_in_executor(self.executor, self.writer.rotate_if_due)
        finally:
            self._busy = False
            if self._rows and not self._scheduled:
                self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.io is not None:
            self.loop.remove_reader(self.io.fileno())
            self.io.close()
        self.executor.submit(self.writer.close).result()
        self.executor.shutdown()
