"""The custody log: one canonical-JSON leaf per action, in an append-only file.

File format (``HOME/vault/custody.log``): the 16-byte magic ``TDCUSTODYLOG v1\\n``, then one
record per entry: ``u32 length`` (big-endian), the leaf bytes, ``u32 CRC-32`` (zlib's) of the
leaf. The CRC tells a torn write (a crash mid-append) from a complete record; tampering is
found by the Merkle tree over the leaves, never by the CRC.

A leaf is the entry as canonical JSON (keys sorted, no spaces, UTF-8, no NaN): ``v``, ``index``,
``time`` (UTC, microseconds, ``Z``), ``handler``, ``action``, ``item`` (SHA-256 hex or null),
``details`` (an object) and ``prev``: the root of the tree before this entry, so that an entry
moved, removed or changed breaks every later entry even before a checkpoint is compared.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takedown.errors import EvidenceError

__all__ = [
    "ACTIONS",
    "MAGIC",
    "CustodyEntry",
    "LogScan",
    "canonical",
    "encode_record",
    "format_time",
    "parse_leaf",
    "scan_log",
]

MAGIC = b"TDCUSTODYLOG v1\n"
MAX_LEAF = 1 << 20
_LEN = struct.Struct(">I")

ACTIONS: dict[str, str] = {
    "received": "the item entered the vault (its first entry holds its description)",
    "accessed": "someone read or opened the item",
    "exported": "the item left the vault in a bundle or a copy",
    "transferred": "custody passed to another person or place",
    "analysed": "the item was examined (tool and findings in the details)",
    "sealed": "collected telemetry was sealed (spool segment, lake partition)",
    "served": "service of process (method: publication, mail, e-mail, …)",
    "linked": "an attribution-graph assertion that rests on the item",
    "key": "a checkpoint signing key was introduced (its verifier key in the details)",
    "note": "any other event worth recording",
}


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN or infinities."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class CustodyEntry:
    index: int
    time: dt.datetime
    handler: str
    action: str
    item: str | None
    details: dict[str, Any]
    prev: str  # hex root of the log before this entry
    leaf: bytes = field(repr=False)

    def row(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": format_time(self.time),
            "handler": self.handler,
            "action": self.action,
            "item": self.item or "",
            "details": json.dumps(self.details, ensure_ascii=False, sort_keys=True),
        }


def make_leaf(
    index: int,
    when: dt.datetime,
    handler: str,
    action: str,
    item: str | None,
    details: dict[str, Any],
    prev: bytes,
) -> bytes:
    obj = {
        "v": 1,
        "index": index,
        "time": format_time(when),
        "handler": handler,
        "action": action,
        "item": item,
        "details": details,
        "prev": prev.hex(),
    }
    try:
        leaf = canonical(obj)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"custody entry {index} ({action}): details not JSON: {exc}") from None
    if len(leaf) > MAX_LEAF:
        raise EvidenceError(f"custody entry {index} ({action}): details larger than 1 MiB")
    return leaf


def parse_leaf(leaf: bytes, where: str) -> CustodyEntry:
    """Decode one leaf; EvidenceError naming ``where`` if it is not a canonical entry."""
    try:
        obj = json.loads(leaf.decode("utf-8"))
        if not isinstance(obj, dict) or obj.get("v") != 1:
            raise ValueError("not a version 1 entry")
        if canonical(obj) != leaf:
            raise ValueError("not in canonical form")
        when = dt.datetime.strptime(obj["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        item = obj["item"]
        details = obj["details"]
        if not isinstance(details, dict) or not (item is None or isinstance(item, str)):
            raise ValueError("item or details of the wrong type")
        entry = CustodyEntry(
            int(obj["index"]),
            when,
            str(obj["handler"]),
            str(obj["action"]),
            item,
            details,
            str(obj["prev"]),
            leaf,
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise EvidenceError(f"{where}: not a custody entry ({exc})") from None
    return entry


def encode_record(leaf: bytes) -> bytes:
    return _LEN.pack(len(leaf)) + leaf + _LEN.pack(zlib.crc32(leaf))


@dataclass
class LogScan:
    leaves: list[bytes]
    end: int  # offset just past the last good record
    size: int  # file size
    problem: str = ""  # why reading stopped before the end of the file ("" if it did not)
    torn: bool = False  # the stop is an incomplete or CRC-failing last record


def scan_log(path: Path, start: int = 0) -> LogScan:
    """Read complete records from ``start`` (0: the beginning, magic included) to the end."""
    with open(path, "rb") as fh:
        data = fh.read() if start == 0 else (fh.seek(start), fh.read())[1]
    base = start
    pos = 0
    if start == 0:
        if data[: len(MAGIC)] != MAGIC:
            return LogScan([], 0, len(data), "the file does not start with the custody magic")
        pos = len(MAGIC)
    leaves: list[bytes] = []
    while pos < len(data):
        if pos + 4 > len(data):
            return LogScan(leaves, base + pos, base + len(data), "incomplete record", torn=True)
        (n,) = _LEN.unpack_from(data, pos)
        if n > MAX_LEAF:
            return LogScan(leaves, base + pos, base + len(data), f"record length {n} is impossible")
        end = pos + 4 + n + 4
        if end > len(data):
            return LogScan(leaves, base + pos, base + len(data), "incomplete record", torn=True)
        leaf = data[pos + 4 : pos + 4 + n]
        (crc,) = _LEN.unpack_from(data, pos + 4 + n)
        if zlib.crc32(leaf) != crc:
            last = end == len(data)
            return LogScan(leaves, base + pos, base + len(data), "record fails its CRC", torn=last)
        leaves.append(leaf)
        pos = end
    return LogScan(leaves, base + pos, base + len(data))


def append_records(path: Path, leaves: list[bytes], expected_size: int) -> int:
    """Append and fsync; the caller holds the vault lock. Returns the new file size."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size != expected_size:
            raise EvidenceError(
                f"{path}: changed under the lock ({size} bytes, expected {expected_size})"
            )
        payload = b"".join(encode_record(leaf) for leaf in leaves)
        view = memoryview(payload)
        try:
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            # Not acknowledged, so not kept: cut what part of the batch reached the file.
            os.ftruncate(fd, size)
            raise EvidenceError(f"{path}: cannot append: {exc.strerror}") from None
        return size + len(payload)
    finally:
        os.close(fd)
