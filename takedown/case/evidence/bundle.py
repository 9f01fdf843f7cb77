"""Export evidence as a self-verifying bundle (a folder, .tar, .tar.gz or .zip).

A bundle holds the items, the whole custody log up to a checkpoint signed for the export,
inclusion proofs of every entry about the exported items, consistency proofs from each
earlier checkpoint, the verifier keys, a README for the court-side expert, and ``verify.py``
(with ``merkle.py`` and ``note.py``): the offline checker, standard library only.

The export itself is recorded first, one ``exported`` entry per item naming the bundle, and
the checkpoint signed after: the bundle proves its own export.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from takedown import __version__
from takedown.case.evidence import custody, keys, note, offline
from takedown.case.evidence.vault import Item, Vault
from takedown.errors import EvidenceError

__all__ = ["ExportResult", "export_bundle"]

_HERE = Path(__file__).resolve().parent
_SCRIPTS = {"verify.py": "offline.py", "merkle.py": "merkle.py", "note.py": "note.py"}
_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    bundle_id: str
    items: int
    bytes: int
    tree_size: int
    root: str
    key: str


def _archive_kind(target: Path) -> str:
    name = target.name.lower()
    return next((s for s in _ARCHIVES if name.endswith(s)), "")


def _expand(vault: Vault, refs: Sequence[str] | None) -> list[Item]:
    """The items to export; a folder item brings its files along."""
    if refs is None:
        return sorted(vault.items(), key=lambda i: i.added)
    chosen: dict[str, Item] = {}
    for ref in refs:
        item = vault.item(ref)
        chosen[item.sha256] = item
        if item.kind == "folder":
            for f in vault.manifest(item.sha256)["files"]:
                chosen.setdefault(f["sha256"], vault.item(f["sha256"]))
    return list(chosen.values())


def export_bundle(
    vault: Vault,
    signer: keys.Signer,
    target: Path,
    *,
    handler: str,
    items: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Record the export, sign a checkpoint and write the bundle to ``target``."""
    kind = _archive_kind(target)
    if target.exists() and (kind or any(target.iterdir())):
        raise EvidenceError(f"{target}: already exists; choose a new bundle name")
    chosen = _expand(vault, items)
    if not chosen:
        raise EvidenceError("the vault holds no items to export")
    bundle_id = uuid.uuid4().hex
    vault.record_many(
        [(i.sha256, "exported", {"bundle_id": bundle_id, "bundle": target.name}) for i in chosen],
        handler=handler,
    )
    try:
        cp_path, cp_text = keys.sign_checkpoint(vault, signer, handler)
        cp = note.parse_checkpoint(cp_text)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".bundle-", dir=target.parent) as tmp:
            folder = Path(tmp) / (target.name.split(".")[0] if kind else target.name)
            folder.mkdir()
            total = _write_folder(vault, folder, chosen, bundle_id, cp, cp_path, handler, progress)
            if not kind:
                if target.exists():
                    target.rmdir()
                folder.rename(target)
            else:
                _archive(folder, target, kind)
    except (OSError, EvidenceError) as exc:
        # The log says the items were exported: say too that the bundle was never written.
        failure = {"bundle_id": bundle_id, "bundle": target.name, "export_failed": str(exc)}
        vault.record(None, "note", handler=handler, details=failure)
        if isinstance(exc, EvidenceError):
            raise
        raise EvidenceError(f"{target}: export failed: {exc}") from None
    return ExportResult(
        target, bundle_id, len(chosen), total, cp.size, cp.root.hex(), str(signer.verifier)
    )


def _write_folder(
    vault: Vault,
    folder: Path,
    chosen: list[Item],
    bundle_id: str,
    cp: note.Checkpoint,
    cp_path: Path,
    handler: str,
    progress: Callable[[int], None] | None,
) -> int:
    entries = vault.custody()[: cp.size]
    (folder / "custody.jsonl").write_bytes(b"".join(e.leaf + b"\n" for e in entries))
    shutil.copyfile(cp_path, folder / "checkpoint.txt")
    wanted = {i.sha256 for i in chosen}
    inclusion = {
        str(e.index): [h.hex() for h in vault.tree.inclusion_proof(e.index, cp.size)]
        for e in entries
        if e.item in wanted or e.action == "key"
    }
    (folder / "checkpoints").mkdir()
    consistency = []
    for path in vault.checkpoints():
        try:
            old = note.parse_checkpoint(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # `takedown evidence verify` names it; it has no place in a bundle
        if old.size < cp.size and old.origin == cp.origin:
            shutil.copyfile(path, folder / "checkpoints" / path.name)
            proof = vault.tree.consistency_proof(old.size, cp.size)
            consistency.append({"file": path.name, "old_size": old.size, "proof": _hex(proof)})
    proofs = {"tree_size": cp.size, "root": cp.root.hex(), "inclusion": inclusion}
    proofs["consistency"] = consistency
    _write_json(folder / "proofs.json", proofs)
    (folder / "keys").mkdir()
    key_lines = []
    for _, text in vault.signing_keys():
        vkey = note.VerifierKey.parse(text)
        (folder / "keys" / f"{vkey.id.hex()}.pub").write_text(text + "\n")
        (folder / "keys" / f"{vkey.id.hex()}.pem").write_bytes(keys.public_pem(vkey.public))
        key_lines.append(text)
    (folder / "items").mkdir()
    total = 0
    for item in chosen:
        _copy(vault.path_of(item.sha256), folder / "items" / item.sha256, progress)
        total += item.size
    for name, source in _SCRIPTS.items():
        shutil.copyfile(_HERE / source, folder / name)
    meta = {
        "format": offline.BUNDLE_FORMAT,
        "version": 1,
        "bundle_id": bundle_id,
        "origin": cp.origin,
        "tree_size": cp.size,
        "root": cp.root.hex(),
        "created": custody.format_time(dt.datetime.now(dt.UTC)),
        "exported_by": handler,
        "takedown_version": __version__,
        "verifier_keys": key_lines,
        "items": [i.row() for i in chosen],
    }
    _write_json(folder / "bundle.json", meta)
    (folder / "README.md").write_text(_readme(meta, chosen, total), encoding="utf-8")
    return total


def _hex(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _copy(src: Path, dst: Path, progress: Callable[[int], None] | None) -> None:
    with open(src, "rb", buffering=0) as fin, open(dst, "wb") as fout:
        buf = bytearray(4 << 20)
        while n := fin.readinto(buf):
            fout.write(memoryview(buf)[:n])
            if progress is not None:
                progress(n)
    os.chmod(dst, 0o444)


def _archive(folder: Path, target: Path, kind: str) -> None:
    tmp = target.with_name(f".{target.name}.part")
    if kind == ".zip":
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for path in sorted(folder.rglob("*")):
                arc = path.relative_to(folder.parent).as_posix()
                packed = path.parent.name != "items"
                zf.write(
                    path, arc, compress_type=zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED
                )
    else:
        gz = kind in (".tar.gz", ".tgz")
        with (
            tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT, compresslevel=1)
            if gz
            else tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT)
        ) as tf:
            tf.add(folder, arcname=folder.name)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(target)


def _readme(meta: dict[str, Any], chosen: list[Item], total: int) -> str:
    keys_text = "\n".join(f"    {k}" for k in meta["verifier_keys"])
    rows = "\n".join(
        f"| `{i.sha256}` | {i.name} | {i.size:,} | {i.source} | {i.handler} |" for i in chosen[:200]
    )
    more = f"\n\n… and {len(chosen) - 200} more: see bundle.json." if len(chosen) > 200 else ""
    return f"""# Evidence bundle {meta["bundle_id"]}

- Vault: `{meta["origin"]}`
- Exported: {meta["created"]} by {meta["exported_by"]} (takedown {meta["takedown_version"]})
- Contents: {len(chosen)} items, {total:,} bytes, with their whole chain of custody

## What is here

- `items/<sha256>`: each item's content, named by its SHA-256.
- `custody.jsonl`: the whole custody log, one entry per line. Each line is exactly the bytes
  of one leaf of an RFC 9162 Merkle tree (leaf hash SHA-256(0x00 || line), node hash
  SHA-256(0x01 || left || right)). An item's first `received` entry describes it (name, size,
  MD5, source, handler, place, acquisition tool and version, parent item); later entries record
  every action on it, each naming who did it.
- `checkpoint.txt`: the tree size and root hash, signed with Ed25519 (a C2SP signed note:
  origin line, size, base64 root, blank line, `— <key name> <base64(key id || signature)>`).
- `checkpoints/`: earlier checkpoints; `proofs.json` proves each consistent with this one
  (the log only grew) and proves every entry about the exported items included in it.
- `keys/`: the signing key's public half, as a verifier key (`.pub`) and as PEM (`.pem`).
- `verify.py`, `merkle.py`, `note.py`: the checker (Python 3.9+, standard library only).

Signing key (tree size {meta["tree_size"]}, root `{meta["root"]}`):

{keys_text}

Compare the key id (the hex between the `+` signs) with the one the vault's owner declared
(for example in a declaration filed with the court): it is what ties the signature to them.

## How to verify

    python3 verify.py                # in this folder; or: python3 verify.py --key KEY

It checks that the checkpoint's signature verifies; that the custody log hashes to the signed
root, every entry in its place and chained to the ones before it (nothing changed, removed,
inserted, reordered or cut); the proofs; and that every item hashes to its SHA-256, MD5 and
size as received. It prints each problem it finds and exits 1, or prints VERIFIED and exits 0.
`verify.py` ships with the bundle as a convenience: an independent expert may rather check
with their own tools, by the rules above (e.g. `sha256sum items/*`; the signature with
`openssl pkeyutl -verify -pubin -inkey keys/<id>.pem -rawin -in <body> -sigfile <sig>`, where
the body is the checkpoint's first three lines, newlines included, and the signature is the
base64 blob of its signature line, decoded, less its first 4 bytes, the key id).

## Items

| SHA-256 | name | bytes | source | received by |
| --- | --- | ---: | --- | --- |
{rows}{more}
"""
