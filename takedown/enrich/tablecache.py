"""Where converted range tables are cached, and the get-or-build step.

The cache key is a SHA-256 over the converter's format number and, for every input file, its
role, kind and content hash: a new data file (or a new converter) gets a new entry, and a
stale entry is never read. The directory is ``$TAKEDOWN_CACHE_DIR``, else
``$XDG_CACHE_HOME/takedown``, else ``~/.cache/takedown``; when none is writable the tables are
built in memory only. Within one process, built tables are also kept in memory by key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from takedown.enrich.overlay import FORMAT, Tables

__all__ = ["cache_root", "file_digest", "get_or_build", "table_key"]

log = logging.getLogger(__name__)

_memo: dict[str, Tables] = {}
_lock = threading.Lock()


def cache_root(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The cache directory to use, or ``None`` if no candidate is writable."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get("TAKEDOWN_CACHE_DIR"):
        candidates.append(Path(os.environ["TAKEDOWN_CACHE_DIR"]))
    else:
        if os.environ.get("XDG_CACHE_HOME"):
            candidates.append(Path(os.environ["XDG_CACHE_HOME"]) / "takedown")
        with contextlib.suppress(RuntimeError):  # no home directory can be determined
            candidates.append(Path.home() / ".cache" / "takedown")
        candidates.append(Path(tempfile.gettempdir()) / f"takedown-cache-{os.getuid()}")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    return None


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content, hex."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def table_key(inputs: list[tuple[str, str, str]]) -> str:
    """Cache key for a list of (role, kind, content digest) inputs."""
    blob = json.dumps({"format": FORMAT, "inputs": sorted(inputs)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def get_or_build(
    key: str, build: Callable[[], Tables], directory: str | os.PathLike[str] | None = None
) -> Tables:
    """Tables for ``key``: from memory, else from the cache file, else built (and saved)."""
    with _lock:
        hit = _memo.get(key)
    if hit is not None:
        return hit
    root = cache_root(directory)
    path = root / f"enrich-{key}.npz" if root is not None else None
    tables: Tables | None = None
    if path is not None and path.exists():
        try:
            tables = Tables.load(path)
        except ValueError as exc:
            log.warning("ignoring enrichment cache: %s", exc)
    if tables is None:
        tables = build()
        if path is not None:
            try:
                tables.save(path)
            except OSError as exc:
                log.warning("could not write enrichment cache %s: %s", path, exc)
    with _lock:
        _memo[key] = tables
    return tables
