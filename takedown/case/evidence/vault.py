"""The evidence vault: content-addressed items and their chain of custody in a Merkle log.

Layout of ``HOME/vault/``::

    VAULT.json         origin (the log's name in checkpoints), format version, creation time
    custody.log        the append-only custody log (see custody.py); the only index
    objects/ab/ab…     item content by SHA-256, mode 0444, never rewritten
    checkpoints/       signed checkpoints (see note.py), one file each
    keys/              verifier keys; the passphrase-protected signing key by default
    tmp/               staging folders of processes adding items (see store.py)
    torn/              torn tails of the log left by crashes, kept for inspection
    .lock              held (flock) while an entry is appended: one writer at a time

Items and their metadata are rebuilt from the log on open: there is no other index to fall out
of step or to be tampered with.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from takedown.case.evidence import custody, merkle, store
from takedown.case.evidence.custody import ACTIONS, CustodyEntry
from takedown.errors import EvidenceError
from takedown.home import Home

__all__ = [
    "CustodyEntry",
    "FileStat",
    "Item",
    "Vault",
    "folder_manifest",
    "vault_folder",
    "walk_files",
]

log = logging.getLogger(__name__)

_RESERVED = frozenset({"received", "key"})
_HEX = frozenset("0123456789abcdef")
Progress = Callable[[int], None]


def vault_folder(home: Home) -> Path:
    return home.root / "vault"


@dataclass(frozen=True)
class Item:
    """One piece of evidence, as its first ``received`` entry describes it."""

    sha256: str
    md5: str
    size: int
    name: str
    kind: str  # "file", "folder" (a manifest of files) or "bytes"
    source: str
    handler: str
    place: str
    tool: str
    tool_version: str
    parent: str | None
    added: dt.datetime
    note: str

    def row(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "md5": self.md5,
            "added": custody.format_time(self.added),
            "handler": self.handler,
            "source": self.source,
            "place": self.place,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "parent": self.parent or "",
            "note": self.note,
        }


class FileStat(NamedTuple):
    """What was seen of a file added as part of a folder."""

    size: int
    mtime_ns: int
    sha256: str
    md5: str


@dataclass
class _Staged:
    digest: store.Digest
    part: Path
    details: dict[str, Any]


def _check_handler(handler: str) -> str:
    handler = handler.strip()
    if not handler or "\n" in handler:
        raise EvidenceError(
            "every custody entry names its handler: give one (a name, one line), e.g. "
            "TAKEDOWN_HANDLER='Jane Analyst, CERT' or `handler = ...` in HOME/config.toml"
        )
    return handler


class Vault:
    """An open evidence vault. Use ``Vault.open(home)``; also a context manager."""

    def __init__(self, root: Path) -> None:
        self.folder = root
        self.objects = root / "objects"
        self.log_path = root / "custody.log"
        self.checkpoint_dir = root / "checkpoints"
        self.keys_dir = root / "keys"
        self.tmp = root / "tmp"
        self.origin = ""
        self._reset()

    def _reset(self) -> None:
        self.tree = merkle.Tree()
        self._entries: list[CustodyEntry] = []
        self._items: dict[str, Item] = {}
        self._offset = 0
        self._stopped = ""  # why reading the log stopped early
        self._chain = ""  # the first entry whose previous root does not match

    @property
    def damage(self) -> str:
        """What is wrong with the log as read ("" when nothing): appending is then refused
        and `takedown evidence verify` names it."""
        return self._stopped or self._chain

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, home: Home) -> Vault:
        """Open (creating on first use) the vault of ``home``; finishes or removes what a
        crashed writer left behind."""
        return cls.open_at(vault_folder(home))

    @classmethod
    def open_at(cls, root: Path) -> Vault:
        vault = cls(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            for folder in (vault.objects, vault.checkpoint_dir, vault.keys_dir, vault.tmp):
                folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise EvidenceError(f"{root}: cannot create the vault: {exc.strerror}") from None
        with vault._locked():
            vault._init_files()
            vault._refresh(writer=True)
            for note in store.recover_staging(vault.tmp, vault.objects, vault.has):
                log.warning("vault recovery: %s", note)
        return vault

    def _init_files(self) -> None:
        meta = self.folder / "VAULT.json"
        if not meta.exists():
            # The log first: a vault whose description exists always had a log.
            if not self.log_path.exists():
                _atomic_write(self.log_path, custody.MAGIC)
            info = {
                "format": "takedown-evidence-vault",
                "version": 1,
                "origin": f"takedown.evidence/{uuid.uuid4().hex}",
                "created": custody.format_time(dt.datetime.now(dt.UTC)),
            }
            _atomic_write(meta, json.dumps(info, indent=2).encode() + b"\n")
        try:
            info = json.loads(meta.read_text())
            self.origin = str(info["origin"])
        except (OSError, ValueError, KeyError) as exc:
            raise EvidenceError(f"{meta}: unreadable vault description ({exc})") from None
        if not self.log_path.exists():
            raise EvidenceError(
                f"{self.log_path}: the custody log is missing from an existing vault; "
                "restore it from a backup or a bundle"
            )

    def close(self) -> None:
        """Nothing is held between calls; kept for ``with`` and symmetry."""

    def __enter__(self) -> Vault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- reading the log -----------------------------------------------------------------
    def _refresh(self, writer: bool = False) -> None:
        """Read entries appended since the last look (by this or any other process). A writer
        (holding the lock) also cuts a torn tail; damage stops reading and is kept in
        ``self.damage`` (appending is then refused, verify names it)."""
        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            raise EvidenceError(f"{self.log_path}: the custody log is missing") from None
        if size < self._offset:
            self._reset()  # shrank under us: only a repair (or tampering) does that; reread
        if size == self._offset:
            return
        scan = custody.scan_log(self.log_path, self._offset)
        pos = self._offset or len(custody.MAGIC)
        self._stopped = ""
        for leaf in scan.leaves:
            index = self.tree.size
            try:
                entry = custody.parse_leaf(leaf, f"entry {index}")
            except EvidenceError as exc:
                self._stopped = str(exc)
                return
            if entry.index != index:
                self._stopped = f"entry {index} says it is entry {entry.index}"
                return
            if entry.prev != self.tree.root().hex() and not self._chain:
                # Read on (the items stay listed) but refuse to append.
                self._chain = f"entry {index} records a different root for the log before it"
            self._apply(entry)
            pos += 8 + len(leaf)
            self._offset = pos
        self._offset = scan.end
        if scan.problem and scan.torn and writer:
            self._cut_torn_tail(scan.end)
        elif scan.problem and not scan.torn:
            self._stopped = f"{scan.problem} at byte {scan.end}"

    def _cut_torn_tail(self, end: int) -> None:
        """A crash mid-append left a partial record (never acknowledged): keep its bytes in
        ``torn/`` for inspection and cut it off, so the next entry follows the last good one."""
        with open(self.log_path, "rb") as fh:
            fh.seek(end)
            tail = fh.read()
        (self.folder / "torn").mkdir(exist_ok=True)
        _atomic_write(self.folder / "torn" / f"custody.log@{end}.bin", tail)
        fd = os.open(self.log_path, os.O_WRONLY)
        try:
            os.ftruncate(fd, end)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.warning(
            "custody log: cut a torn tail of %d bytes at byte %d (kept in torn/)", len(tail), end
        )

    def _apply(self, entry: CustodyEntry) -> None:
        self.tree.append(entry.leaf)
        self._entries.append(entry)
        if entry.action == "received" and entry.item and entry.item not in self._items:
            d = entry.details
            self._items[entry.item] = Item(
                sha256=entry.item,
                md5=str(d.get("md5", "")),
                size=int(d.get("size", 0)),
                name=str(d.get("name", "")),
                kind=str(d.get("kind", "file")),
                source=str(d.get("source", "")),
                handler=entry.handler,
                place=str(d.get("place", "")),
                tool=str(d.get("tool", "")),
                tool_version=str(d.get("tool_version", "")),
                parent=d.get("parent") or None,
                added=entry.time,
                note=str(d.get("note", "")),
            )

    # -- queries -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Entries in the custody log (the Merkle tree size)."""
        self._refresh()
        return self.tree.size

    def has(self, sha256: str) -> bool:
        self._refresh()
        return sha256 in self._items

    def resolve(self, ref: str) -> str:
        """The full SHA-256 of an item given by its hash or a unique prefix (≥ 8 hex)."""
        self._refresh()
        ref = ref.strip().lower()
        if ref in self._items:
            return ref
        if len(ref) < 8 or not set(ref) <= _HEX:
            raise EvidenceError(f"item {ref!r}: give its SHA-256 or at least 8 hex digits of it")
        found = [s for s in self._items if s.startswith(ref)]
        if not found:
            raise EvidenceError(f"item {ref}: not in the vault")
        if len(found) > 1:
            raise EvidenceError(f"item {ref}: ambiguous ({len(found)} items start so)")
        return found[0]

    def item(self, sha256: str) -> Item:
        return self._items[self.resolve(sha256)]

    def items(self) -> list[Item]:
        self._refresh()
        return list(self._items.values())

    def path_of(self, sha256: str) -> Path:
        return store.object_path(self.objects, self.resolve(sha256))

    def entry(self, index: int) -> CustodyEntry:
        self._refresh()
        if not 0 <= index < len(self._entries):
            raise EvidenceError(f"custody entry {index}: the log has {len(self._entries)}")
        return self._entries[index]

    def custody(self, sha256: str | None = None) -> list[CustodyEntry]:
        """The whole custody log, or the entries about one item (hash or prefix)."""
        self._refresh()
        if sha256 is None:
            return list(self._entries)
        full = self.resolve(sha256)
        return [e for e in self._entries if e.item == full]

    def root(self, size: int | None = None) -> bytes:
        self._refresh()
        return self.tree.root(size)

    # -- writing -------------------------------------------------------------------------
    def _append(
        self,
        handler: str,
        specs: Sequence[tuple[str, str | None, dict[str, Any]]],
        ready: dict[str, Path] | None = None,
    ) -> list[CustodyEntry]:
        """Append entries (action, item, details) as one fsync'd write, then promote staged
        objects; all under the vault lock so that two processes never fork the log."""
        with self._locked():
            self._refresh(writer=True)
            if self.damage:
                raise EvidenceError(
                    f"{self.log_path}: {self.damage}; nothing will be appended: "
                    "run `takedown evidence verify`"
                )
            start, offset = self.tree.size, self._offset
            now = dt.datetime.now(dt.UTC)
            if self._entries and now < self._entries[-1].time:
                now = self._entries[-1].time  # a clock stepping back keeps the log in order
            entries = []
            try:
                for action, item, details in specs:
                    index, prev = self.tree.size, self.tree.root()
                    leaf = custody.make_leaf(index, now, handler, action, item, details, prev)
                    # Details as a reader of the log will see them (JSON types only).
                    stored = json.loads(leaf)["details"]
                    entry = CustodyEntry(
                        index, now, handler, action, item, stored, prev.hex(), leaf
                    )
                    self._apply(entry)
                    entries.append(entry)
                self._offset = custody.append_records(
                    self.log_path, [e.leaf for e in entries], offset
                )
            except BaseException:
                self._reset()
                self._refresh()
                raise
            if ready:
                store.promote(self.objects, ready)
        log.debug("custody entries %d..%d appended", start, start + len(entries) - 1)
        return entries

    def record(
        self,
        sha256: str | None,
        action: str,
        *,
        handler: str,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one custody entry (about an item, or about the case when ``None``); returns
        its leaf index."""
        return self.record_many([(sha256, action, details)], handler=handler)[0]

    def record_many(
        self,
        entries: Iterable[tuple[str | None, str, dict[str, Any] | None]],
        *,
        handler: str,
    ) -> list[int]:
        """Append several custody entries with one write and one fsync; returns their indices."""
        handler = _check_handler(handler)
        specs = []
        for sha256, action, details in entries:
            if action not in ACTIONS or action in _RESERVED:
                allowed = ", ".join(a for a in ACTIONS if a not in _RESERVED)
                raise EvidenceError(f"custody action {action!r}: choose one of {allowed}")
            item = None if sha256 is None else self.resolve(sha256)
            specs.append((action, item, dict(details or {})))
        return [e.index for e in self._append(handler, specs)]

    def register_key(self, verifier_key: str, key_id: str, *, handler: str) -> int:
        """Record a checkpoint signing key in the log (checkpoints are trusted only with keys
        the log introduced) and keep its verifier key in ``keys/``."""
        handler = _check_handler(handler)
        _atomic_write(self.keys_dir / f"{key_id}.pub", verifier_key.encode() + b"\n")
        details = {"verifier_key": verifier_key, "key_id": key_id}
        return self._append(handler, [("key", None, details)])[0].index

    def signing_keys(self) -> list[tuple[int, str]]:
        """(entry index, verifier key) of every key the log introduced."""
        self._refresh()
        return [
            (e.index, str(e.details.get("verifier_key", "")))
            for e in self._entries
            if e.action == "key"
        ]

    def _receipt(
        self, digest: store.Digest, name: str, kind: str, meta: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": name,
            "kind": kind,
            "size": digest.size,
            "md5": digest.md5,
            **meta,
        }

    def _meta(
        self,
        source: str,
        place: str,
        tool: str,
        tool_version: str,
        parent: str | None,
        note: str,
    ) -> dict[str, Any]:
        return {
            "source": source,
            "place": place,
            "tool": tool,
            "tool_version": tool_version,
            "parent": None if parent is None else self.resolve(parent),
            "note": note,
        }

    def _commit(self, handler: str, staging: store.Staging, staged: list[_Staged]) -> None:
        ready = staging.make_ready((s.digest, s.part) for s in staged)
        specs = [("received", s.digest.sha256, s.details) for s in staged]
        self._append(handler, specs, ready)

    def add_file(
        self,
        path: Path,
        *,
        handler: str,
        source: str = "",
        place: str = "",
        tool: str = "",
        tool_version: str = "",
        parent: str | None = None,
        note: str = "",
        progress: Progress | None = None,
    ) -> Item:
        """Add a file, or a folder (its files, then a manifest item listing them, returned).
        Content already in the vault is stored once; the receipt is recorded again."""
        handler = _check_handler(handler)
        path = Path(path)
        meta = self._meta(source, place, tool, tool_version, parent, note)
        if path.is_dir():
            return self.add_folder(
                path,
                handler=handler,
                source=source,
                place=place,
                tool=tool,
                tool_version=tool_version,
                parent=parent,
                note=note,
                progress=progress,
            )[0]
        with store.Staging(self.tmp) as staging:
            digest, part = staging.stage_file(path, progress)
            details = self._receipt(digest, path.name, "file", meta)
            self._commit(handler, staging, [_Staged(digest, part, details)])
        return self._items[digest.sha256]

    def add_many(
        self,
        paths: Iterable[Path],
        *,
        handler: str,
        source: str = "",
        place: str = "",
        tool: str = "",
        tool_version: str = "",
        parent: str | None = None,
        note: str = "",
        progress: Progress | None = None,
    ) -> list[Item]:
        """Add many files as one batch: one log write and one fsync of the log, the files'
        fsyncs issued together. Much faster than ``add_file`` per small file."""
        handler = _check_handler(handler)
        meta = self._meta(source, place, tool, tool_version, parent, note)
        with store.Staging(self.tmp) as staging:
            staged = []
            for path in paths:
                digest, part = staging.stage_file(Path(path), progress)
                details = self._receipt(digest, Path(path).name, "file", meta)
                staged.append(_Staged(digest, part, details))
            self._commit(handler, staging, staged)
        return [self._items[s.digest.sha256] for s in staged]

    def add_bytes(
        self,
        data: bytes,
        name: str,
        *,
        handler: str,
        source: str = "",
        parent: str | None = None,
        note: str = "",
    ) -> Item:
        """Add content held in memory (an e-mail, a WHOIS answer, a generated report)."""
        handler = _check_handler(handler)
        meta = self._meta(source, "", "", "", parent, note)
        with store.Staging(self.tmp) as staging:
            digest, part = staging.stage_bytes(bytes(data))
            details = self._receipt(digest, name, "bytes", meta)
            self._commit(handler, staging, [_Staged(digest, part, details)])
        return self._items[digest.sha256]

    def add_folder(
        self,
        folder: Path,
        *,
        handler: str,
        source: str = "",
        place: str = "",
        tool: str = "",
        tool_version: str = "",
        parent: str | None = None,
        note: str = "",
        progress: Progress | None = None,
        known: Mapping[str, FileStat] | None = None,
    ) -> tuple[Item, dict[str, FileStat]]:
        """Add a folder: each file as an item, then a manifest item (returned) listing them.

        ``known`` maps relative paths to what an earlier seal saw (size, mtime, hashes): a file
        still of that size and mtime whose content is in the vault is listed without being
        read again. Returns the manifest item and what was seen of every file now.
        """
        handler = _check_handler(handler)
        meta = self._meta(source, place, tool, tool_version, parent, note)
        known = known or {}
        seen: dict[str, FileStat] = {}
        with store.Staging(self.tmp) as staging:
            staged: list[_Staged] = []
            files: list[dict[str, Any]] = []
            links: list[dict[str, str]] = []
            for path in walk_files(folder):
                rel = path.relative_to(folder).as_posix()
                if path.is_symlink():
                    links.append({"path": rel, "target": os.readlink(path)})
                    continue
                with store.open_regular(path) as fh:
                    info = os.fstat(fh.fileno())
                    before = known.get(rel)
                    if (
                        before is not None
                        and (before.size, before.mtime_ns) == (info.st_size, info.st_mtime_ns)
                        and self.has(before.sha256)
                    ):
                        digest = store.Digest(before.sha256, before.md5, before.size)
                        if progress is not None:
                            progress(before.size)
                    else:
                        digest, part = staging.stage_stream(fh, progress, info.st_size)
                        file_meta = {**meta, "parent": None}
                        details = self._receipt(digest, f"{folder.name}/{rel}", "file", file_meta)
                        staged.append(_Staged(digest, part, details))
                seen[rel] = FileStat(digest.size, info.st_mtime_ns, digest.sha256, digest.md5)
                files.append(
                    {"path": rel, "sha256": digest.sha256, "md5": digest.md5, "size": digest.size}
                )
            manifest = folder_manifest(folder.name, files, links)
            digest, part = staging.stage_bytes(manifest)
            for s in staged:
                s.details["in_folder"] = digest.sha256
            details = self._receipt(digest, folder.name, "folder", meta)
            details["files"] = len(files)
            details["bytes"] = sum(f["size"] for f in files)
            staged.append(_Staged(digest, part, details))
            self._commit(handler, staging, staged)
        return self._items[digest.sha256], seen

    def manifest(self, sha256: str) -> dict[str, Any]:
        """The file list of a folder item."""
        item = self.item(sha256)
        if item.kind != "folder":
            raise EvidenceError(f"item {item.sha256[:16]} ({item.name}) is not a folder")
        result: dict[str, Any] = json.loads(self.path_of(item.sha256).read_bytes())
        return result

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest (smallest tree) first."""
        return sorted(self.checkpoint_dir.glob("*.txt"))

    def save_checkpoint(self, size: int, key_id: str, text: str) -> Path:
        path = self.checkpoint_dir / f"{size:012d}-{key_id}.txt"
        _atomic_write(path, text.encode())
        return path


def walk_files(folder: Path) -> list[Path]:
    """Every file and symlink under ``folder``, sorted, not following links; dot-files of
    writers in progress (``.name.tmp``) are skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames):
            path = base / name
            if name.startswith(".") and name.endswith(".tmp"):
                continue
            if path.is_symlink() or path.is_file():
                found.append(path)
            else:
                log.warning("%s: not a regular file; left out of the folder item", path)
        for name in list(dirnames):
            if (base / name).is_symlink():
                dirnames.remove(name)
                found.append(base / name)
    return sorted(found)


def folder_manifest(name: str, files: list[dict[str, Any]], links: list[dict[str, str]]) -> bytes:
    return custody.canonical(
        {
            "format": "takedown-folder-manifest",
            "version": 1,
            "folder": name,
            "files": sorted(files, key=lambda f: str(f["path"])),
            "symlinks": sorted(links, key=lambda f: f["path"]),
        }
    )


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        store._write_all(fd, memoryview(data))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    store.fsync_dir(path.parent)
