"""Seal collected telemetry into the vault: ingested spool segments and daily lake partitions.

Called at the end of ``takedown ingest`` (and by ``takedown evidence seal``). Idempotent:
each seal is a ``sealed`` custody entry naming the path and what was seen of it (size and
mtime of each file); what is unchanged since its last seal is skipped without being read. A
day partition is sealed as a folder item (a manifest of its Parquet files); when it changes
(a later ingest added to the day, enrichment rewrote it), a new version is sealed with the
previous one as its parent.
"""

from __future__ import annotations

import fcntl
import getpass
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takedown import __version__
from takedown.case.evidence.vault import FileStat, Vault
from takedown.errors import EvidenceError
from takedown.home import Home

__all__ = ["SealReport", "automatic_handler", "seal_ingested"]

log = logging.getLogger(__name__)


@dataclass
class SealReport:
    segments: int = 0
    partitions: int = 0
    new_versions: int = 0
    unchanged: int = 0
    bytes: int = 0
    changed_segments: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not (self.segments or self.partitions):
            return f"evidence: nothing new to seal ({self.unchanged} already sealed)"
        line = (
            f"evidence: sealed {self.segments} spool segment(s) and {self.partitions} lake "
            f"partition(s) into the vault ({self.bytes / (1 << 20):,.1f} MiB)"
        )
        if self.new_versions:
            line += f", {self.new_versions} of them new versions of changed partitions"
        if self.changed_segments:
            line += f"; WARNING: sealed segments changed: {', '.join(self.changed_segments[:3])}"
        return line + f"; {self.unchanged} already sealed"


def automatic_handler() -> str:
    """Who an unattended seal is recorded as when no handler is configured."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"takedown (automatic, {user}@{socket.gethostname()})"


@contextmanager
def _seal_lock(vault: Vault) -> Iterator[None]:
    fd = os.open(vault.folder / ".seal.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class _Last:
    item: str
    files: dict[str, FileStat]


def _last_seals(vault: Vault) -> dict[str, _Last]:
    """The latest seal of every path, with what it saw of each file."""
    last: dict[str, _Last] = {}
    for entry in vault.custody():
        if entry.action != "sealed" or entry.item is None:
            continue
        d = entry.details
        files = {
            rel: FileStat(int(v[0]), int(v[1]), str(v[2]), str(v[3]))
            for rel, v in dict(d.get("files", {})).items()
        }
        last[str(d.get("path", ""))] = _Last(entry.item, files)
    return last


def _stat(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def seal_ingested(
    home: Home, handler: str, progress: Callable[[int], None] | None = None
) -> SealReport:
    """Seal every ingested spool segment and lake day partition not sealed as it is now."""
    if not handler.strip():
        handler = automatic_handler()
        log.warning("no handler configured (TAKEDOWN_HANDLER): sealing as %r", handler)
    report = SealReport()
    segments = sorted(home.ingested.glob("*/*.seg")) if home.ingested.is_dir() else []
    days = (
        sorted(p for p in home.events.glob("day=*") if p.is_dir()) if home.events.is_dir() else []
    )
    if not segments and not days:
        return report
    common: dict[str, Any] = {
        "place": socket.gethostname(),
        "tool": "takedown",
        "tool_version": __version__,
    }
    with Vault.open(home) as vault, _seal_lock(vault):
        last = _last_seals(vault)
        _seal_segments(vault, home, segments, last, handler, common, report, progress)
        for day in days:
            _seal_day(vault, home, day, last, handler, common, report, progress)
    return report


def _seal_segments(
    vault: Vault,
    home: Home,
    segments: list[Path],
    last: dict[str, _Last],
    handler: str,
    common: dict[str, Any],
    report: SealReport,
    progress: Callable[[int], None] | None,
) -> None:
    new: list[tuple[Path, str, tuple[int, int]]] = []
    for seg in segments:
        rel = seg.relative_to(home.root).as_posix()
        seen = _stat(seg)
        before = last.get(rel)
        if before is not None and before.files.get(seg.name, (None, None))[:2] == seen:
            report.unchanged += 1
            continue
        new.append((seg, rel, seen))
    if not new:
        return
    items = vault.add_many(
        [seg for seg, _, _ in new],
        handler=handler,
        source="takedown sinkhole spool (closed segment)",
        progress=progress,
        **common,
    )
    entries: list[tuple[str | None, str, dict[str, Any] | None]] = []
    for (seg, rel, seen), item in zip(new, items, strict=True):
        before = last.get(rel)
        if before is not None and before.item != item.sha256:
            report.changed_segments.append(rel)
            log.error("%s changed since it was sealed as %s", rel, before.item)
        stat = FileStat(seen[0], seen[1], item.sha256, item.md5)
        details: dict[str, Any] = {
            "path": rel,
            "kind": "spool-segment",
            "sensor": seg.parent.name,
            "files": {seg.name: list(stat)},
        }
        if before is not None:
            details["previous"] = before.item
        entries.append((item.sha256, "sealed", details))
        report.segments += 1
        report.bytes += item.size
    vault.record_many(entries, handler=handler)


def _seal_day(
    vault: Vault,
    home: Home,
    day: Path,
    last: dict[str, _Last],
    handler: str,
    common: dict[str, Any],
    report: SealReport,
    progress: Callable[[int], None] | None,
) -> None:
    rel = day.relative_to(home.root).as_posix()
    before = last.get(rel)
    now = {p.name: _stat(p) for p in day.iterdir() if p.is_file() and not p.name.startswith(".")}
    if before is not None and {k: v[:2] for k, v in before.files.items()} == now:
        report.unchanged += 1
        return
    try:
        item, seen = vault.add_folder(
            day,
            handler=handler,
            source="takedown lake (events partition)",
            parent=before.item if before is not None else None,
            progress=progress,
            known=before.files if before is not None else None,
            **common,
        )
    except EvidenceError as exc:
        # A file replaced by a concurrent ingest between listing and reading: next time.
        log.warning("%s: not sealed this time: %s", rel, exc)
        return
    details: dict[str, Any] = {
        "path": rel,
        "kind": "lake-partition",
        "day": day.name.removeprefix("day="),
        "files": {k: list(v) for k, v in seen.items()},
    }
    if before is not None:
        details["previous"] = before.item
        if before.item != item.sha256:
            report.new_versions += 1
    vault.record_many([(item.sha256, "sealed", details)], handler=handler)
    report.partitions += 1
    report.bytes += sum(
        v.size for k, v in seen.items() if before is None or before.files.get(k) != v
    )
