"""The graph's one door to the evidence vault: every citation goes through here.

A link may only cite items that are in the vault; an importer first adds the file it imports
and cites that. ``open_vault`` is the single place that knows how the vault is reached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from takedown.errors import GraphError
from takedown.home import Home

__all__ = ["EvidenceDoor", "ItemInfo", "open_vault", "require"]


@dataclass(frozen=True, slots=True)
class ItemInfo:
    sha256: str
    name: str
    size: int
    source: str


class EvidenceDoor(Protocol):
    def has(self, sha256: str) -> bool: ...
    def info(self, sha256_or_prefix: str) -> ItemInfo: ...
    def add_file(self, path: Path, *, handler: str, source: str) -> ItemInfo: ...
    def add_bytes(self, data: bytes, name: str, *, handler: str, source: str) -> ItemInfo: ...
    def cited(self, entries: Sequence[tuple[str, Mapping[str, Any]]], *, handler: str) -> None: ...


class _VaultDoor:
    """Adapter over ``takedown.case.evidence.vault.Vault``.

    Content already in the vault is not received again (the vault would record a second
    receipt): importing a file twice cites the item it already holds.
    """

    def __init__(self, vault: Any) -> None:
        self._v = vault

    @staticmethod
    def _info(item: Any) -> ItemInfo:
        return ItemInfo(item.sha256, item.name, int(item.size), str(item.source or ""))

    def has(self, sha256: str) -> bool:
        return bool(self._v.has(sha256))

    def info(self, sha256_or_prefix: str) -> ItemInfo:
        return self._info(self._v.item(sha256_or_prefix))

    def add_file(self, path: Path, *, handler: str, source: str) -> ItemInfo:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        if self._v.has(digest.hexdigest()):
            return self.info(digest.hexdigest())
        return self._info(self._v.add_file(path, handler=handler, source=source))

    def add_bytes(self, data: bytes, name: str, *, handler: str, source: str) -> ItemInfo:
        sha = hashlib.sha256(data).hexdigest()
        if self._v.has(sha):
            return self.info(sha)
        return self._info(self._v.add_bytes(data, name, handler=handler, source=source))

    def cited(self, entries: Sequence[tuple[str, Mapping[str, Any]]], *, handler: str) -> None:
        """One ``linked`` custody entry per item, written together (one fsync)."""
        if entries:
            self._v.record_many(
                [(sha, "linked", dict(details)) for sha, details in entries], handler=handler
            )


@contextmanager
def open_vault(home: Home) -> Iterator[EvidenceDoor]:
    """The evidence vault of ``home`` (HOME/vault), opened for the graph's use."""
    from takedown.case.evidence.vault import Vault

    with Vault.open(home) as vault:
        yield _VaultDoor(vault)


def require(door: EvidenceDoor, shas: list[str], where: str) -> None:
    """Every SHA-256 in ``shas`` is a vault item, or a GraphError naming the first that is not."""
    for sha in shas:
        if not isinstance(sha, str) or len(sha) != 64:
            raise GraphError(f"{where}: evidence {sha!r} is not a SHA-256 (64 hex digits)")
        if not door.has(sha):
            raise GraphError(
                f"{where}: evidence {sha} is not in the vault; add it first "
                "(takedown evidence add FILE) and cite its SHA-256"
            )
