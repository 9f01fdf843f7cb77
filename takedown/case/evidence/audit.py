"""Verify the live vault: every byte of every item, the whole log, every checkpoint.

Nothing here trusts the vault's own reading of itself: the log is rescanned from its first
byte and checked with the same code that checks exported bundles (offline.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from takedown.case.evidence import custody, note, offline, store
from takedown.case.evidence.offline import Report
from takedown.case.evidence.vault import Vault

__all__ = ["Report", "verify_vault"]

log = logging.getLogger(__name__)

_SHA = re.compile(r"[0-9a-f]{64}")


def verify_vault(
    vault: Vault,
    pinned: Sequence[note.VerifierKey] = (),
    *,
    quick: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Check the vault; each problem found is named in the report.

    ``quick`` compares item sizes instead of rehashing their content; ``pinned`` keys, when
    given, are the only ones checkpoints may be signed with.
    """
    report = Report()
    scan = custody.scan_log(vault.log_path, 0)
    if scan.problem:
        where = f"at byte {scan.end}, after entry {len(scan.leaves) - 1}"
        if scan.torn:
            report.note(f"custody.log: an append in progress or interrupted {where}")
        else:
            report.problem(f"custody.log: {scan.problem} {where}: the log was damaged or altered")
    tree, entries = offline.check_log(scan.leaves, report)
    receipts = offline.receipts(entries)
    _check_objects(vault, receipts, report, quick, progress)
    trusted = [(-1, k) for k in pinned]
    if not pinned:
        trusted += offline.log_keys(entries, report)
    latest = None
    for path in vault.checkpoints():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            report.problem(f"checkpoint {path.name}: unreadable ({exc})")
            continue
        cp = offline.check_checkpoint(text, path.name, vault.origin, tree, trusted, report)
        if cp is not None and (latest is None or cp.size >= latest.size):
            latest = cp
    if latest is None:
        report.note(
            "no signed checkpoint yet: a truncated log cannot be told from a short one; "
            "sign one with `takedown evidence checkpoint`"
        )
    else:
        report.note(f"latest checkpoint covers {latest.size} of {tree.size} entries")
        if latest.size < tree.size:
            report.note(f"entries {latest.size}..{tree.size - 1} are not signed yet")
    report.note(f"{tree.size} custody entries, {len(receipts)} items")
    report.finish()
    return report


def _check_objects(
    vault: Vault,
    receipts: dict[str, dict[str, object]],
    report: Report,
    quick: bool,
    progress: Callable[[int], None] | None,
) -> None:
    for sha, receipt in receipts.items():
        path = store.object_path(vault.objects, sha)
        details = receipt["details"]
        assert isinstance(details, dict)
        name = details.get("name", "")
        if not path.is_file():
            report.problem(f"item {sha} ({name}) is missing from the vault", "missing item")
            continue
        if path.stat().st_mode & 0o222:
            report.note(f"item {sha} ({name}) is writable; items are stored read-only (0444)")
        if quick:
            if path.stat().st_size != details.get("size"):
                report.problem(f"item {sha} ({name}) has changed: its size differs", "changed item")
        else:
            offline.check_item(path, sha, receipt, report)
        if progress is not None:
            progress(path.stat().st_size)
    for path in _object_files(vault.objects):
        sha = path.name
        if not _SHA.fullmatch(sha) or path.parent.name != sha[:2]:
            report.problem(f"objects/{path.parent.name}/{sha}: not an item's content")
        elif sha not in receipts:
            report.problem(
                f"object {sha} is in the vault but no custody entry records it "
                "(the log may have been truncated)",
                "unrecorded object",
            )


def _object_files(objects: Path) -> list[Path]:
    if not objects.is_dir():
        return []
    return sorted(p for d in objects.iterdir() if d.is_dir() for p in d.iterdir())
