"""Exported bundles: verified offline, by `verify_bundle` and by the standalone script; every
kind of tampering found and named."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_evidence_audit import H, make_vault

from takedown.case.evidence import bundle, keys, note, offline
from takedown.errors import EvidenceError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    vault, signer, items = make_vault(root / "home")
    result = bundle.export_bundle(vault, signer, root / "case-1", handler=H)
    return vault, signer, items, result.path


@pytest.fixture
def copy(exported, tmp_path):
    """A writable copy of the exported bundle folder, to tamper with."""
    target = tmp_path / "copy"
    shutil.copytree(exported[3], target)
    for p in target.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return target


def problems(folder, **kw):
    report = offline.verify_bundle(folder, **kw)
    return "\n".join(report.problems)


def test_bundle_contents_and_clean_verification(exported):
    vault, signer, items, folder = exported
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "README.md",
        "bundle.json",
        "checkpoint.txt",
        "checkpoints",
        "custody.jsonl",
        "items",
        "keys",
        "merkle.py",
        "note.py",
        "proofs.json",
        "verify.py",
    ]
    assert sorted(p.name for p in (folder / "items").iterdir()) == sorted(i.sha256 for i in items)
    meta = json.loads((folder / "bundle.json").read_text())
    # The export recorded itself (3 exported entries) before the checkpoint was signed.
    assert meta["tree_size"] == 6 + 3
    exported_entries = [e for e in vault.custody() if e.action == "exported"]
    assert {e.details["bundle_id"] for e in exported_entries} == {meta["bundle_id"]}
    assert str(signer.verifier) in (folder / "README.md").read_text()
    for pure in (False, True):
        report = offline.verify_bundle(folder, pure=pure)
        assert report.ok, report.problems
    assert offline.verify_bundle(folder, [signer.verifier]).ok
    report = offline.verify_bundle(folder)
    assert any("1 earlier checkpoints proved consistent" in n for n in report.notes)


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz"])
def test_archives_verify(exported, tmp_path, suffix):
    vault, signer, items, _ = exported
    target = tmp_path / f"case{suffix}"
    bundle.export_bundle(vault, signer, target, handler=H, items=[items[1].sha256[:12]])
    with offline.open_bundle(target) as folder:
        report = offline.verify_bundle(folder)
        assert report.ok, report.problems
        assert [p.name for p in (folder / "items").iterdir()] == [items[1].sha256]


def test_export_refuses_an_existing_target(exported, tmp_path):
    vault, signer, _, folder = exported
    with pytest.raises(EvidenceError, match="already exists"):
        bundle.export_bundle(vault, signer, folder, handler=H)


def test_a_changed_item_is_named(copy, exported):
    sha = exported[2][0].sha256
    with open(copy / "items" / sha, "r+b") as fh:
        fh.seek(100)
        fh.write(b"X")
    assert f"item {sha} (disk.img) has changed" in problems(copy)


def test_a_missing_item_is_named(copy, exported):
    sha = exported[2][2].sha256
    (copy / "items" / sha).unlink()
    assert f"item {sha} (whois.txt) is missing from the bundle" in problems(copy)


def test_a_planted_item_is_named(copy):
    (copy / "items" / ("cd" * 32)).write_bytes(b"planted")
    found = problems(copy)
    assert f"item {'cd' * 32}: in the bundle, but its export is not in the log" in found


def log_lines(folder):
    return (folder / "custody.jsonl").read_bytes().split(b"\n")[:-1]


def write_lines(folder, lines):
    (folder / "custody.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))


def test_reordered_log_is_named(copy):
    lines = log_lines(copy)
    lines[3], lines[4] = lines[4], lines[3]
    write_lines(copy, lines)
    found = problems(copy)
    assert "custody entry at position 3 says it is entry 4" in found
    assert "the log's first 9 entries hash to" in found


def test_truncated_log_is_named(copy):
    write_lines(copy, log_lines(copy)[:-2])
    assert "signed 9 entries but the log has 7: the log was truncated" in problems(copy)
    (copy / "custody.jsonl").write_bytes((copy / "custody.jsonl").read_bytes()[:-30])
    assert "the last line is incomplete" in problems(copy)


def test_an_edited_entry_is_named(copy):
    lines = log_lines(copy)
    obj = json.loads(lines[2])
    obj["handler"] = "Someone Else"
    lines[2] = offline.canonical(obj)
    write_lines(copy, lines)
    found = problems(copy)
    assert "custody entry 2 was altered" in found
    assert "the inclusion proof of entry 2 does not verify" in found


def test_entries_added_after_signing_are_named(copy):
    lines = log_lines(copy)
    write_lines(copy, [*lines, lines[-1]])
    assert "1 more than the signed checkpoint covers" in problems(copy)


def test_forged_checkpoints_are_named(copy, exported):
    vault = exported[0]
    text = (copy / "checkpoint.txt").read_text()
    (copy / "checkpoint.txt").write_text(text.replace("\n9\n", "\n8\n"))
    assert "checkpoint checkpoint.txt: its signature does not verify" in problems(copy)
    # A whole new signature by another key, whose public half is put in keys/ too.
    stranger = keys.Signer(Ed25519PrivateKey.generate(), vault.origin)
    root = bytes.fromhex(json.loads((copy / "proofs.json").read_text())["root"])
    forged = note.sign_checkpoint(
        vault.origin, 9, root, vault.origin, stranger.public, stranger.sign
    )
    (copy / "checkpoint.txt").write_text(forged)
    (copy / "keys" / "stranger.pub").write_text(str(stranger.verifier))
    assert "signed by a key that is not trusted here" in problems(copy)
    # And with that key pinned, the stranger's checkpoint passes but the log's own old
    # checkpoint, signed by the real key, no longer does.
    assert "checkpoints/" in problems(copy, pinned=[stranger.verifier])


def test_a_rewritten_earlier_checkpoint_is_named(copy):
    (old,) = (copy / "checkpoints").iterdir()
    old.write_text(old.read_text().replace("\n6\n", "\n5\n"))
    found = problems(copy)
    assert f"checkpoints/{old.name}: its signature does not verify" in found
    assert "is not consistent with the bundle's checkpoint" in found


def test_an_edited_proof_is_named(copy):
    proofs = json.loads((copy / "proofs.json").read_text())
    first = next(iter(proofs["inclusion"]))
    proofs["inclusion"][first][0] = "00" * 32
    (copy / "proofs.json").write_text(json.dumps(proofs))
    assert f"the inclusion proof of entry {first} does not verify" in problems(copy)


def test_an_edited_bundle_id_is_named(copy):
    meta = json.loads((copy / "bundle.json").read_text())
    meta["bundle_id"] = "0" * 32
    (copy / "bundle.json").write_text(json.dumps(meta))
    assert "no custody entry records the export of this bundle" in problems(copy)


def test_a_wrong_pinned_key_is_named(copy):
    other = note.VerifierKey("someone", os.urandom(32))
    assert "not trusted here" in problems(copy, pinned=[other])


def run_script(folder, *args, python=sys.executable, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [python, "-I", str(folder / "verify.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or "/",
        env=env,
        check=False,
    )


def test_standalone_script_on_clean_and_tampered_bundles(copy, exported):
    done = run_script(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("VERIFIED")
    done = run_script(copy, "--pure", "--key", str(exported[1].verifier))
    assert done.returncode == 0, done.stdout + done.stderr
    sha = exported[2][0].sha256
    with open(copy / "items" / sha, "r+b") as fh:
        fh.write(b"Z")
    write_lines(copy, log_lines(copy)[:-1])
    done = run_script(copy)
    assert done.returncode == 1
    assert f"PROBLEM: item {sha} (disk.img) has changed" in done.stdout
    assert "the log was truncated" in done.stdout
    assert "FAILED" in done.stdout


def test_standalone_script_needs_no_takedown(exported, tmp_path):
    """Run by a Python that has neither takedown nor (maybe) cryptography installed."""
    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.skip("no system python3 beside the venv")
    probe = subprocess.run(
        [str(system), "-I", "-c", "import takedown"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        pytest.skip("the system python3 can import takedown")
    done = run_script(exported[3], python=str(system), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERIFIED" in done.stdout


def test_a_failed_export_is_recorded_as_such(tmp_path):
    vault, signer, _ = make_vault(tmp_path / "home")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(EvidenceError, match="export failed"):
        bundle.export_bundle(vault, signer, tmp_path / "a-file" / "case", handler=H)
    last = vault.custody()[-1]
    assert last.action == "note" and "export_failed" in last.details
    exported = [e for e in vault.custody() if e.action == "exported"]
    assert {e.details["bundle_id"] for e in exported} == {last.details["bundle_id"]}
