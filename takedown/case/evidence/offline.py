"""Verify an exported evidence bundle offline: no database, no vault, no takedown needed.

This file is copied into every bundle as ``verify.py`` (beside ``merkle.py`` and ``note.py``)
and runs there with the Python standard library alone (3.9+); with the ``cryptography``
package installed it checks the signature with OpenSSL, otherwise with a pure-Python Ed25519
verifier. ``takedown evidence verify BUNDLE`` runs the same code.

Usage (inside the bundle folder): ``python3 verify.py [--key VERIFIER_KEY] [BUNDLE]``
Exit status: 0 when everything checks out, 1 when a problem is found (each one named).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__:
    from takedown.case.evidence import merkle, note
else:  # the copy inside a bundle, run as a script: its siblings are plain modules
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import merkle  # type: ignore[import-not-found,no-redef]
    import note  # type: ignore[import-not-found,no-redef]

__all__ = [
    "Report",
    "check_log",
    "key_text",
    "main",
    "open_bundle",
    "parse_entry",
    "verify_bundle",
]

_SHA = re.compile(r"[0-9a-f]{64}")
_REPEAT = 5  # problems of one kind named individually before they are counted
BUNDLE_FORMAT = "takedown-evidence-bundle"


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _kinds: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, message: str, kind: str = "") -> None:
        if kind:
            seen = self._kinds[kind] = self._kinds.get(kind, 0) + 1
            if seen > _REPEAT:
                return
        self.problems.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def finish(self) -> None:
        for kind, seen in self._kinds.items():
            if seen > _REPEAT:
                self.problems.append(f"... and {seen - _REPEAT} more of the kind: {kind}")


def canonical(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def parse_entry(leaf: bytes) -> dict[str, Any] | None:
    """A custody leaf as a dict, or None when it is not a canonical version 1 entry."""
    try:
        obj = json.loads(leaf.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or obj.get("v") != 1 or canonical(obj) != leaf:
        return None
    keys = {"v", "index", "time", "handler", "action", "item", "details", "prev"}
    if set(obj) != keys or not isinstance(obj["index"], int):
        return None
    if not isinstance(obj["details"], dict):
        return None
    return obj


def check_log(leaves: Sequence[bytes], report: Report) -> tuple[merkle.Tree, list[Any]]:
    """Rebuild the Merkle tree and check each entry's position and previous root: an entry
    changed, removed, inserted or moved is named. Returns the tree and the parsed entries."""
    tree = merkle.Tree()
    entries: list[dict[str, Any] | None] = []
    chain_broken = False
    for i, leaf in enumerate(leaves):
        obj = parse_entry(leaf)
        if obj is None:
            report.problem(f"custody entry {i}: not a canonical custody entry", "unreadable entry")
        elif obj["index"] != i:
            report.problem(
                f"custody entry at position {i} says it is entry {obj['index']}: entries were "
                "removed, inserted or reordered",
                "entry out of place",
            )
        elif obj["prev"] != tree.root().hex() and not chain_broken:
            chain_broken = True
            report.problem(
                f"custody entry {i - 1} was altered (or one before it): entry {i} records a "
                "different root for the log before it"
            )
        tree.append(leaf)
        entries.append(obj)
    return tree, entries


def receipts(entries: Sequence[dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """The first ``received`` entry of each item."""
    found: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e and e["action"] == "received" and isinstance(e["item"], str):
            found.setdefault(e["item"], e)
    return found


def digest(path: Path) -> tuple[str, str, int]:
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            view = memoryview(buf)[:n]
            sha.update(view)
            md5.update(view)
            size += n
    return sha.hexdigest(), md5.hexdigest(), size


def check_item(path: Path, sha: str, receipt: dict[str, Any] | None, report: Report) -> None:
    """Does the content at ``path`` hash to ``sha``, with the MD5 and size of its receipt?"""
    name = receipt["details"].get("name", "") if receipt else ""
    label = f"item {sha} ({name})" if name else f"item {sha}"
    if receipt is None:
        report.problem(f"{label}: no custody entry records its receipt", "unrecorded item")
        return
    got_sha, got_md5, got_size = digest(path)
    d = receipt["details"]
    if got_sha != sha:
        report.problem(
            f"{label} has changed: its content hashes to {got_sha} ({got_size} bytes, "
            f"recorded {d.get('size')})",
            "changed item",
        )
    elif got_md5 != d.get("md5") or got_size != d.get("size"):
        report.problem(
            f"{label}: MD5 or size differs from its receipt (entry {receipt['index']})",
            "changed item",
        )


def check_checkpoint(
    text: str,
    label: str,
    origin: str,
    tree: merkle.Tree,
    trusted: Sequence[tuple[int, note.VerifierKey]],
    report: Report,
    *,
    pure: bool = False,
) -> note.Checkpoint | None:
    """Check one checkpoint against the log: signed by a trusted key (one the log introduced
    before the checkpoint's size, or one pinned by the caller: index -1), same origin, and a
    root equal to the log's first ``size`` entries."""
    try:
        cp = note.parse_checkpoint(text)
    except ValueError as exc:
        report.problem(f"checkpoint {label}: malformed ({exc})")
        return None
    if cp.origin != origin:
        report.problem(f"checkpoint {label}: origin {cp.origin!r} is not this log's {origin!r}")
    keys = [k for at, k in trusted if at < cp.size]
    if not any(cp.verify(k, pure=pure) for k in keys):
        signers = ", ".join(f"{n} {kid.hex()}" for n, kid, _ in cp.signatures)
        known = {k.id for k in keys}
        if any(kid in known for _, kid, _ in cp.signatures):
            report.problem(
                f"checkpoint {label}: its signature does not verify (forged or altered); "
                f"signed as {signers}"
            )
        else:
            report.problem(
                f"checkpoint {label}: signed by a key that is not trusted here ({signers}); "
                "forged, or give the right key with --key"
            )
    if cp.size > tree.size:
        report.problem(
            f"checkpoint {label} signed {cp.size} entries but the log has {tree.size}: the log "
            f"was truncated (entries {tree.size}..{cp.size - 1} are missing)"
        )
    elif tree.root(cp.size) != cp.root:
        report.problem(
            f"checkpoint {label} (size {cp.size}): the log's first {cp.size} entries hash to "
            f"{tree.root(cp.size).hex()}, the checkpoint signed {cp.root.hex()}: the log or "
            "the checkpoint was altered"
        )
    return cp


def log_keys(
    entries: Sequence[dict[str, Any] | None], report: Report
) -> list[tuple[int, note.VerifierKey]]:
    """The checkpoint keys the log introduced, with the index of their entry."""
    found = []
    for e in entries:
        if e and e["action"] == "key":
            try:
                found.append((e["index"], note.VerifierKey.parse(e["details"]["verifier_key"])))
            except (ValueError, KeyError, TypeError):
                report.problem(f"custody entry {e['index']}: unreadable verifier key")
    return found


@contextlib.contextmanager
def open_bundle(path: Path) -> Iterator[Path]:
    """A bundle folder as it is; a .tar, .tar.gz or .zip extracted to a temporary folder."""
    if path.is_dir():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="td-bundle-") as tmp:
        target = Path(tmp)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    name = Path(info.filename)
                    if name.is_absolute() or ".." in name.parts:
                        raise ValueError(f"{path}: unsafe member {info.filename!r}")
                zf.extractall(target)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(target, filter="data")
                else:  # Python before 3.9.17/3.11.4: check the names ourselves
                    for m in tf.getmembers():
                        if m.name.startswith("/") or ".." in Path(m.name).parts:
                            raise ValueError(f"{path}: unsafe member {m.name!r}")
                        if not (m.isfile() or m.isdir()):
                            raise ValueError(f"{path}: unexpected member {m.name!r}")
                    tf.extractall(target)
        else:
            raise ValueError(f"{path}: not a bundle folder, .tar or .zip")
        inner = [p for p in target.iterdir()]
        yield inner[0] if len(inner) == 1 and inner[0].is_dir() else target


def verify_bundle(
    folder: Path, pinned: Sequence[note.VerifierKey] = (), *, pure: bool = False
) -> Report:
    """Every check of a bundle: the signed checkpoint, the whole custody log against it, the
    inclusion and consistency proofs, and every item's content against its receipt."""
    report = Report()
    try:
        meta = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
        if meta.get("format") != BUNDLE_FORMAT:
            raise ValueError("not a takedown evidence bundle")
    except (OSError, ValueError) as exc:
        report.problem(f"bundle.json: unreadable ({exc})")
        report.finish()
        return report
    origin = str(meta.get("origin", ""))
    try:
        lines = (folder / "custody.jsonl").read_bytes().split(b"\n")
    except OSError as exc:
        report.problem(f"custody.jsonl: unreadable ({exc})")
        lines = [b""]
    if lines[-1] != b"":
        report.problem("custody.jsonl: the last line is incomplete (the log was cut)")
    tree, entries = check_log(lines[:-1], report)
    trusted: list[tuple[int, note.VerifierKey]] = [(-1, k) for k in pinned]
    introduced = log_keys(entries, report)
    if not pinned:
        trusted += introduced
    try:
        text = (folder / "checkpoint.txt").read_text(encoding="utf-8")
    except OSError as exc:
        report.problem(f"checkpoint.txt: unreadable ({exc})")
        report.finish()
        return report
    cp = check_checkpoint(text, "checkpoint.txt", origin, tree, trusted, report, pure=pure)
    if cp is not None and tree.size > cp.size:
        report.problem(
            f"custody.jsonl has {tree.size} entries, {tree.size - cp.size} more than the signed "
            f"checkpoint covers ({cp.size}): entries were added after signing"
        )
    if cp is not None:
        _check_proofs(folder, cp, trusted, origin, report, pure=pure)
        for _, key in introduced:
            report.note(f"log signing key: {key}")
        report.note(
            f"checkpoint: {cp.origin}, {cp.size} entries, root {cp.root.hex()}; compare the "
            "key id with the one the vault's owner declared"
        )
    _check_items(folder, meta, entries, report)
    report.finish()
    return report


def _check_proofs(
    folder: Path,
    cp: note.Checkpoint,
    trusted: Sequence[tuple[int, note.VerifierKey]],
    origin: str,
    report: Report,
    *,
    pure: bool,
) -> None:
    try:
        proofs = json.loads((folder / "proofs.json").read_text(encoding="utf-8"))
        inclusion = proofs["inclusion"]
        consistency = proofs["consistency"]
    except (OSError, ValueError, KeyError) as exc:
        report.problem(f"proofs.json: unreadable ({exc})")
        return
    leaves = (folder / "custody.jsonl").read_bytes().split(b"\n")[:-1]
    for key, path in inclusion.items():
        index = int(key)
        ok = 0 <= index < len(leaves) and merkle.verify_inclusion(
            merkle.leaf_hash(leaves[index]),
            index,
            cp.size,
            [bytes.fromhex(h) for h in path],
            cp.root,
        )
        if not ok:
            report.problem(
                f"proofs.json: the inclusion proof of entry {index} does not verify against "
                "the checkpoint",
                "bad inclusion proof",
            )
    report.note(f"{len(inclusion)} inclusion proofs checked against the checkpoint")
    for c in consistency:
        label = f"checkpoints/{c['file']}"
        try:
            old = note.parse_checkpoint((folder / "checkpoints" / c["file"]).read_text())
        except (OSError, ValueError) as exc:
            report.problem(f"{label}: unreadable ({exc})")
            continue
        keys = [k for at, k in trusted if at < old.size]
        if not any(old.verify(k, pure=pure) for k in keys):
            report.problem(f"{label}: its signature does not verify (forged or altered)")
        proof = [bytes.fromhex(h) for h in c["proof"]]
        if old.origin != origin or not merkle.verify_consistency(
            old.size, cp.size, old.root, cp.root, proof
        ):
            report.problem(
                f"{label} (size {old.size}) is not consistent with the bundle's checkpoint: "
                "the log was rewritten since that checkpoint was signed"
            )
    if consistency:
        report.note(f"{len(consistency)} earlier checkpoints proved consistent with this one")


def _check_items(
    folder: Path, meta: dict[str, Any], entries: Sequence[dict[str, Any] | None], report: Report
) -> None:
    got = receipts(entries)
    bundle_id = meta.get("bundle_id")
    expected = {
        e["item"]
        for e in entries
        if e and e["action"] == "exported" and e["details"].get("bundle_id") == bundle_id
    }
    if not expected:
        report.problem("no custody entry records the export of this bundle (bundle.json altered?)")
    items_dir = folder / "items"
    present = {p.name: p for p in items_dir.iterdir()} if items_dir.is_dir() else {}
    for sha in sorted(expected - set(present)):
        name = got[sha]["details"].get("name", "") if sha in got else ""
        report.problem(f"item {sha} ({name}) is missing from the bundle", "missing item")
    for name, path in sorted(present.items()):
        if not _SHA.fullmatch(name) or not path.is_file():
            report.problem(f"items/{name}: not an item (items are named by their SHA-256)")
            continue
        if name not in expected:
            report.problem(f"item {name}: in the bundle, but its export is not in the log")
        check_item(path, name, got.get(name), report)
    report.note(f"{len(present)} items checked (SHA-256, MD5, size) against their receipts")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verify a takedown evidence bundle offline.")
    ap.add_argument("bundle", nargs="?", default=str(Path(__file__).resolve().parent))
    ap.add_argument("--key", action="append", default=[], help="trusted verifier key (or file)")
    ap.add_argument("--pure", action="store_true", help="pure-Python Ed25519 even if possible")
    args = ap.parse_args(argv)
    try:
        pinned = [note.VerifierKey.parse(key_text(k)) for k in args.key]
        with open_bundle(Path(args.bundle)) as folder:
            report = verify_bundle(folder, pinned, pure=args.pure)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.notes:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"PROBLEM: {line}")
    print("VERIFIED" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def key_text(value: str) -> str:
    """A verifier key given as itself or as the file holding it."""
    path = Path(value)
    return path.read_text().strip() if "+" not in value and path.is_file() else value


if __name__ == "__main__":
    sys.exit(main())
