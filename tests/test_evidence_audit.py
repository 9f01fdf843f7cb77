"""`verify` on the live vault: every kind of tampering is found and named."""

import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from takedown.case.evidence import audit, custody, keys, note
from takedown.case.evidence.vault import Vault
from takedown.errors import EvidenceError
from takedown.home import Home

H = "Jane Analyst, CERT-Test"
PASS = b"correct horse battery"


def make_vault(root):
    """A vault with a key, three items, two actions and a checkpoint over the 6 entries."""
    vault = Vault.open(Home(root))
    path = keys.default_key_path(vault)
    keys.generate_key(path, PASS)
    signer = keys.load_signer(path, PASS, vault.origin)
    keys.ensure_registered(vault, signer, H)
    items = [
        vault.add_bytes(b"disk image " * 1000, "disk.img", handler=H, source="C2 server"),
        vault.add_bytes(b"From: spam@example\n\nbuy", "spam.eml", handler=H),
        vault.add_bytes(b"Domain: c2.example", "whois.txt", handler=H),
    ]
    vault.record(items[0].sha256, "analysed", handler=H, details={"tool": "strings"})
    vault.record(items[1].sha256, "transferred", handler=H, details={"to": "Det. Doe"})
    keys.sign_checkpoint(vault, signer, H)
    return vault, signer, items


@pytest.fixture
def setup(tmp_path):
    return make_vault(tmp_path / "home")


def problems(vault, **kw):
    report = audit.verify_vault(Vault.open_at(vault.folder), **kw)
    return "\n".join(report.problems)


def rewrite_log(vault, change):
    leaves = custody.scan_log(vault.log_path).leaves
    leaves = change(list(leaves))
    vault.log_path.write_bytes(custody.MAGIC + b"".join(custody.encode_record(x) for x in leaves))


def edit_leaf(leaf, **changes):
    obj = json.loads(leaf)
    obj.update(changes)
    return custody.canonical(obj)


def test_an_untouched_vault_verifies(setup):
    vault, _, items = setup
    report = audit.verify_vault(vault)
    assert report.ok, report.problems
    assert any("latest checkpoint covers 6 of 6" in n for n in report.notes)
    vault.record(items[0].sha256, "accessed", handler=H)
    report = audit.verify_vault(vault)
    assert report.ok and any("entries 6..6 are not signed yet" in n for n in report.notes)


def test_a_changed_byte_in_an_item_is_named(setup):
    vault, _, items = setup
    path = vault.path_of(items[0].sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[5000] ^= 1
    path.write_bytes(bytes(data))
    found = problems(vault)
    assert f"item {items[0].sha256} (disk.img) has changed" in found
    assert "quick" not in found
    # Same size: only a full rehash finds it.
    assert problems(vault, quick=True) == ""


def test_a_missing_item_is_named(setup):
    vault, _, items = setup
    vault.path_of(items[1].sha256).unlink()
    assert f"item {items[1].sha256} (spam.eml) is missing from the vault" in problems(vault)


def test_reordered_entries_are_named(setup):
    vault, _, _ = setup
    rewrite_log(vault, lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]])
    found = problems(vault)
    assert "custody entry at position 2 says it is entry 3" in found
    assert "checkpoint" in found  # and the signed root no longer matches


def test_a_removed_entry_is_named(setup):
    vault, _, _ = setup
    rewrite_log(vault, lambda ls: ls[:4] + ls[5:])
    found = problems(vault)
    assert "custody entry at position 4 says it is entry 5" in found
    assert "truncated" in found  # the checkpoint signed 6 entries, 5 are left


def test_a_truncated_log_is_named(setup):
    vault, _, _ = setup
    rewrite_log(vault, lambda ls: ls[:4])
    found = problems(vault)
    assert "signed 6 entries but the log has 4: the log was truncated (entries 4..5" in found


def test_an_altered_entry_is_named_even_with_a_valid_crc(setup):
    vault, _, _ = setup
    rewrite_log(vault, lambda ls: [ls[0], edit_leaf(ls[1], handler="Someone Else"), *ls[2:]])
    found = problems(vault)
    assert "custody entry 1 was altered" in found
    assert "the log's first 6 entries hash to" in found
    # The vault still lists its items but appends nothing to an altered log.
    reopened = Vault.open_at(vault.folder)
    assert len(reopened.items()) == 3
    with pytest.raises(EvidenceError, match="entry 2 records a different root"):
        reopened.record(None, "note", handler=H)


def test_an_altered_last_entry_is_caught_by_the_checkpoint(setup):
    vault, _, _ = setup
    rewrite_log(vault, lambda ls: [*ls[:-1], edit_leaf(ls[-1], details={"to": "nobody"})])
    assert "(size 6): the log's first 6 entries hash to" in problems(vault)


def test_a_deleted_log_is_not_silently_recreated(setup):
    vault, _, _ = setup
    vault.log_path.unlink()
    with pytest.raises(EvidenceError, match="custody log is missing from an existing vault"):
        Vault.open_at(vault.folder)


def test_a_corrupt_record_is_named_with_its_place(setup):
    vault, _, _ = setup
    data = bytearray(vault.log_path.read_bytes())
    data[len(custody.MAGIC) + 30] ^= 1
    vault.log_path.write_bytes(bytes(data))
    assert "custody.log: record fails its CRC at byte 16" in problems(vault)


def test_forged_checkpoints_are_named(setup):
    vault, _, _ = setup
    (path,) = vault.checkpoints()
    text = path.read_text()
    # Changed size, same signature.
    path.write_text(text.replace("\n6\n", "\n5\n"))
    assert f"checkpoint {path.name}: its signature does not verify" in problems(vault)
    # Signed by a key the log never introduced.
    stranger = keys.Signer(Ed25519PrivateKey.generate(), vault.origin)
    forged = note.sign_checkpoint(
        vault.origin, 6, vault.root(6), vault.origin, stranger.public, stranger.sign
    )
    path.write_text(forged)
    assert "signed by a key that is not trusted here" in problems(vault)
    path.write_text("garbage\n")
    assert f"checkpoint {path.name}: malformed" in problems(vault)


def test_a_pinned_key_must_have_signed(setup):
    vault, signer, _ = setup
    assert problems(vault, pinned=[signer.verifier]) == ""
    other = note.VerifierKey(vault.origin, os.urandom(32))
    assert "not trusted here" in problems(vault, pinned=[other])


def test_an_object_no_entry_records_is_named(setup):
    vault, _, _ = setup
    sha = "ab" * 32
    (vault.objects / "ab").mkdir(exist_ok=True)
    (vault.objects / "ab" / sha).write_bytes(b"planted")
    assert f"object {sha} is in the vault but no custody entry records it" in problems(vault)
