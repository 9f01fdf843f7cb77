"""Content-addressed object storage: stream, hash (SHA-256 and MD5 in one pass), stage, promote.

An object is ``objects/<2 hex>/<sha256>``, mode 0444, never rewritten. Content is copied into a
staging folder of the adding process (``tmp/<random>/``, held by a lock file while it lives):
first ``<n>.part`` while it streams, then, hashed and fsync'd, ``<sha256>.ready``. Only after
the custody entry is durable is a ready file renamed into ``objects/``. Recovery (on open, under
the vault lock) looks only at staging folders whose owner is gone: ``.part`` files are deleted,
``.ready`` files are promoted if the log records them, deleted otherwise. So a crash at any
moment leaves an item recorded and whole, or not there at all.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from takedown.errors import EvidenceError

__all__ = [
    "CHUNK",
    "Digest",
    "Staging",
    "digest_file",
    "fsync_dir",
    "object_path",
    "open_regular",
]

log = logging.getLogger(__name__)

CHUNK = 4 << 20  # read size: large enough that per-call overhead vanishes, small for the cache
_SMALL = 1 << 20  # below this, hash on the calling thread (a thread hand-off costs more)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Digest:
    sha256: str
    md5: str
    size: int


def object_path(objects: Path, sha256: str) -> Path:
    return objects / sha256[:2] / sha256


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _stream(
    src: BinaryIO, dst: int | None, progress: Progress | None, expect: int | None = None
) -> Digest:
    """One read pass into two reused buffers: SHA-256 (and the copy) on this thread while
    MD5 of the same buffer runs on a helper thread (hashlib drops the GIL), so the pass costs
    about max(SHA-256, MD5), not their sum. Small files take the plain path below."""
    if expect is not None and expect < _SMALL:
        return _stream_small(src, dst, progress, expect)
    sha, md5 = hashlib.sha256(), hashlib.md5()
    size = 0
    bufs = (bytearray(CHUNK), bytearray(CHUNK))
    pending: Future[None] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="md5") as pool:
        i = 0
        while n := src.readinto(bufs[i & 1]):  # type: ignore[attr-defined]
            view = memoryview(bufs[i & 1])[:n]
            fut = pool.submit(md5.update, view)
            sha.update(view)
            if dst is not None:
                _write_all(dst, view)
            if pending is not None:
                pending.result()  # MD5 is done with the other buffer: it can be read into
            pending = fut
            size += n
            i += 1
            if progress is not None:
                progress(n)
        if pending is not None:
            pending.result()
    return Digest(sha.hexdigest(), md5.hexdigest(), size)


def _stream_small(src: BinaryIO, dst: int | None, progress: Progress | None, expect: int) -> Digest:
    """A small file: one buffer just big enough (an item must not pay for zeroing 8 MiB),
    both hashes on this thread."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    size = 0
    buf = bytearray(max(expect + 1, 1 << 16))
    while n := src.readinto(buf):  # type: ignore[attr-defined]
        view = memoryview(buf)[:n]
        sha.update(view)
        md5.update(view)
        if dst is not None:
            _write_all(dst, view)
        size += n
        if progress is not None:
            progress(n)
    return Digest(sha.hexdigest(), md5.hexdigest(), size)


def digest_file(path: Path, progress: Progress | None = None) -> Digest:
    """SHA-256, MD5 and size of a file in one constant-memory pass (no copy)."""
    with open_regular(path) as fh:
        return _stream(fh, None, progress, os.fstat(fh.fileno()).st_size)


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading (never blocking on a FIFO or device); EvidenceError
    naming the file otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise EvidenceError(f"{path}: not a regular file")
    os.set_blocking(fd, True)
    _advise(fd)
    return os.fdopen(fd, "rb", buffering=0)


def _advise(fd: int) -> None:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


class Staging:
    """One process's staging folder in the vault's ``tmp/``, locked while it is alive."""

    def __init__(self, tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        # Made under a dot-name and renamed once locked, so recovery never sees it unlocked.
        new = tmp / f".{name}"
        new.mkdir()
        self._lock = os.open(new / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.folder = tmp / name
        new.rename(self.folder)
        self._n = 0

    def close(self) -> None:
        """Remove the folder: everything in it was committed (or is not wanted)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._lock)

    def abandon(self) -> None:
        """Release the folder as it is, for the next open's recovery to sort out: a ready
        file whose entry did reach the log is promoted then, the rest removed."""
        os.close(self._lock)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()

    def stage_stream(
        self, src: BinaryIO, progress: Progress | None = None, expect: int | None = None
    ) -> tuple[Digest, Path]:
        """Copy ``src`` into a ``.part`` file while hashing it; returns the unsynced part."""
        self._n += 1
        part = self.folder / f"{self._n}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            digest = _stream(src, fd, progress, expect)
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        return digest, part

    def stage_file(self, path: Path, progress: Progress | None = None) -> tuple[Digest, Path]:
        with open_regular(path) as fh:
            return self.stage_stream(fh, progress, os.fstat(fh.fileno()).st_size)

    def stage_bytes(self, data: bytes) -> tuple[Digest, Path]:
        self._n += 1
        part = self.folder / f"{self._n}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, memoryview(data))
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        digest = Digest(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data))
        return digest, part

    def make_ready(self, parts: Iterable[tuple[Digest, Path]]) -> dict[str, Path]:
        """fsync every part (in parallel: the journal commits them together), rename each to
        ``<sha256>.ready``, fsync the folder. Duplicates within the batch are dropped."""
        parts = list(parts)
        _fsync_many([p for _, p in parts])
        ready: dict[str, Path] = {}
        for digest, part in parts:
            if digest.sha256 in ready:
                part.unlink()
                continue
            target = self.folder / f"{digest.sha256}.ready"
            part.replace(target)
            ready[digest.sha256] = target
        fsync_dir(self.folder)
        return ready


def _fsync_many(paths: list[Path]) -> None:
    def sync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            if hasattr(os, "posix_fadvise") and os.fstat(fd).st_size >= 64 << 20:
                # A disk image just copied need not push everything else out of the cache.
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

    if len(paths) <= 2:
        for p in paths:
            sync(p)
        return
    with ThreadPoolExecutor(min(32, len(paths)), thread_name_prefix="fsync") as pool:
        list(pool.map(sync, paths))


def promote(objects: Path, ready: dict[str, Path]) -> None:
    """Rename ready files into ``objects/`` (an object already there wins) and fsync the
    folders touched. The caller holds the vault lock and has made the log entries durable."""
    touched: set[Path] = set()
    for sha, path in ready.items():
        target = object_path(objects, sha)
        if target.exists():
            path.unlink()
            continue
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            touched.add(objects)
        path.replace(target)
        touched.add(target.parent)
    _fsync_many_dirs(sorted(touched))


def _fsync_many_dirs(dirs: list[Path]) -> None:
    if len(dirs) <= 2:
        for d in dirs:
            fsync_dir(d)
        return
    with ThreadPoolExecutor(min(16, len(dirs)), thread_name_prefix="fsync") as pool:
        list(pool.map(fsync_dir, dirs))


def recover_staging(tmp: Path, objects: Path, recorded: Callable[[str], bool]) -> list[str]:
    """Clean the staging folders of dead processes; returns notes on what was done."""
    notes: list[str] = []
    if not tmp.is_dir():
        return notes
    for folder in sorted(p for p in tmp.iterdir() if p.is_dir()):
        try:
            fd: int | None = os.open(folder / ".lock", os.O_RDWR)
        except FileNotFoundError:
            # Died before its lock existed (a dot-name) or while removing its folder; a
            # young dot-folder may still be on its way to being locked.
            fd = None
            if folder.name.startswith(".") and time.time() - folder.stat().st_mtime < 600:
                continue
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive and adding
            ready = {
                p.name.removesuffix(".ready"): p for p in folder.glob("*.ready") if p.is_file()
            }
            keep = {s: p for s, p in ready.items() if recorded(s)}
            if keep:
                promote(objects, keep)
                notes.append(f"completed {len(keep)} recorded item(s) left by {folder.name}")
            dropped = len(ready) - len(keep) + len(list(folder.glob("*.part")))
            if dropped:
                notes.append(f"removed {dropped} unrecorded temporary file(s) of {folder.name}")
            shutil.rmtree(folder, ignore_errors=True)
        finally:
            if fd is not None:
                os.close(fd)
    return notes
