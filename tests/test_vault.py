"""The vault's public API on real files: content addressing, items, custody, concurrency."""

import hashlib
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from takedown.case.evidence import audit, store
from takedown.case.evidence.vault import Vault
from takedown.errors import EvidenceError
from takedown.home import Home

H = "Jane Analyst, CERT-Test"


@pytest.fixture
def home(tmp_path):
    return Home(tmp_path / "home")


@pytest.fixture
def vault(home):
    return Vault.open(home)


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_add_file_stores_content_read_only_by_sha256(vault, tmp_path):
    data = os.urandom(3 * store.CHUNK + 17)  # several reads, and the MD5 thread
    src = write(tmp_path / "disk.img", data)
    item = vault.add_file(
        src,
        handler=H,
        source="C2 server, rack 4",
        place="lab 2",
        tool="dc3dd",
        tool_version="7.3.1",
        note="seized 2011-03-16",
    )
    assert item.sha256 == hashlib.sha256(data).hexdigest()
    assert item.md5 == hashlib.md5(data).hexdigest()
    assert (item.size, item.name, item.kind) == (len(data), "disk.img", "file")
    assert (item.source, item.place, item.tool, item.tool_version) == (
        "C2 server, rack 4",
        "lab 2",
        "dc3dd",
        "7.3.1",
    )
    assert item.handler == H and item.parent is None and item.note == "seized 2011-03-16"
    assert item.added.tzinfo is not None
    path = vault.path_of(item.sha256)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert vault.has(item.sha256) and vault.item(item.sha256) == item
    (entry,) = vault.custody(item.sha256)
    assert (entry.index, entry.action, entry.handler, entry.item) == (0, "received", H, item.sha256)


def test_same_content_is_stored_once_and_received_twice(vault, tmp_path):
    a = write(tmp_path / "a.eml", b"From: x\n\nhello")
    b = write(tmp_path / "copy-of-a.eml", b"From: x\n\nhello")
    first = vault.add_file(a, handler=H, source="mailbox 1")
    again = vault.add_file(b, handler="Det. Other", source="mailbox 2")
    assert again == first  # the item is described by its first receipt
    assert [e.handler for e in vault.custody(first.sha256)] == [H, "Det. Other"]
    assert len(list(vault.objects.glob("*/*"))) == 1


def test_add_bytes_and_derived_items(vault):
    whois = vault.add_bytes(b"Domain: rustock-c2.example\n", "whois.txt", handler=H, source="RDAP")
    assert whois.kind == "bytes" and vault.path_of(whois.sha256).read_bytes().startswith(b"Domain")
    derived = vault.add_bytes(b"summary", "summary.txt", handler=H, parent=whois.sha256[:10])
    assert derived.parent == whois.sha256
    with pytest.raises(EvidenceError, match="deadbeefdead"):
        vault.add_bytes(b"x", "x", handler=H, parent="deadbeefdead")


def test_folder_becomes_files_plus_a_manifest_item(vault, tmp_path):
    folder = tmp_path / "seized"
    write(folder / "etc" / "passwd", b"root:x:0:0\n")
    write(folder / "var" / "log" / "c2.log", b"bot 1 checked in\n")
    write(folder / ".hidden.tmp", b"a writer's temporary file, left out")
    os.symlink("etc/passwd", folder / "link")
    item = vault.add_file(folder, handler=H, source="server image")
    assert (item.kind, item.name) == ("folder", "seized")
    manifest = vault.manifest(item.sha256)
    assert [f["path"] for f in manifest["files"]] == ["etc/passwd", "var/log/c2.log"]
    assert manifest["symlinks"] == [{"path": "link", "target": "etc/passwd"}]
    for f in manifest["files"]:
        member = vault.item(f["sha256"])
        assert member.name == f"seized/{f['path']}" and member.size == f["size"]
        assert vault.custody(f["sha256"])[0].details["in_folder"] == item.sha256
    assert hashlib.sha256(vault.path_of(item.sha256).read_bytes()).hexdigest() == item.sha256


def test_item_lookup_by_prefix(vault):
    items = [vault.add_bytes(str(i).encode(), f"n{i}", handler=H) for i in range(40)]
    target = items[7]
    assert vault.item(target.sha256[:8]) == target
    assert vault.item(target.sha256.upper()) == target
    with pytest.raises(EvidenceError, match="at least 8 hex"):
        vault.item(target.sha256[:7])
    with pytest.raises(EvidenceError, match=r"item 0123456789abcdef: not in the vault"):
        vault.item("0123456789abcdef")
    # Two of 40 hashes sharing one leading hex digit is certain; 8 hex digits, not.
    with pytest.raises(EvidenceError, match="at least 8"):
        vault.item(target.sha256[:1])


def test_record_and_custody(vault):
    item = vault.add_bytes(b"spam", "spam.eml", handler=H)
    i = vault.record(item.sha256, "analysed", handler=H, details={"tool": "spamassassin"})
    j = vault.record(None, "served", handler="Clerk", details={"method": "publication"})
    assert (i, j) == (1, 2)
    assert [e.action for e in vault.custody(item.sha256)] == ["received", "analysed"]
    assert [e.action for e in vault.custody()] == ["received", "analysed", "served"]
    assert vault.entry(2).details == {"method": "publication"}
    assert vault.record_many(
        [(None, "linked", {"a": 1}), (item.sha256, "accessed", None)], handler=H
    ) == [3, 4]
    with pytest.raises(EvidenceError, match="choose one of"):
        vault.record(item.sha256, "shredded", handler=H)
    with pytest.raises(EvidenceError, match="choose one of"):
        vault.record(item.sha256, "received", handler=H)  # only adding receives
    with pytest.raises(EvidenceError, match="handler"):
        vault.record(item.sha256, "accessed", handler="  ")
    with pytest.raises(EvidenceError, match="not in the vault"):
        vault.record("ff" * 32, "accessed", handler=H)
    with pytest.raises(EvidenceError, match="custody entry 99"):
        vault.entry(99)


def test_entries_chain_each_to_the_root_before_it(vault):
    for n in range(6):
        vault.record(None, "note", handler=H, details={"n": n})
    for e in vault.custody():
        assert e.prev == vault.root(e.index).hex()


def test_reopening_rebuilds_the_same_state(home, vault, tmp_path):
    a = vault.add_bytes(b"a", "a", handler=H)
    vault.record(a.sha256, "accessed", handler=H)
    again = Vault.open(home)
    assert again.items() == vault.items()
    assert again.custody() == vault.custody()
    assert again.root() == vault.root() and again.origin == vault.origin
    # A second open object sees what the first appends (another process would too).
    vault.record(a.sha256, "exported", handler=H)
    assert again.size == 3 and again.custody()[-1].action == "exported"


def test_add_many_is_one_batch(vault, tmp_path):
    paths = [write(tmp_path / f"f{i}", f"item {i}".encode()) for i in range(50)]
    paths.append(write(tmp_path / "dup", b"item 3"))
    items = vault.add_many(paths, handler=H, source="batch")
    assert len(items) == 51 and items[-1] == items[3]
    assert len(vault.items()) == 50 and vault.size == 51
    assert audit.verify_vault(vault).ok


def test_unreadable_input_is_named(vault, tmp_path):
    with pytest.raises(EvidenceError, match="nope"):
        vault.add_file(tmp_path / "nope", handler=H)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(EvidenceError, match="not a regular file"):
        vault.add_many([tmp_path / "fifo"], handler=H)


def test_leftovers_of_a_dead_writer_are_cleaned_or_completed_on_open(home, vault):
    recorded = vault.add_bytes(b"recorded", "r", handler=H)
    # A writer that died: one part half-written, one ready but never recorded, and one
    # recorded whose rename into objects/ never happened.
    st = store.Staging(vault.tmp)
    st.stage_bytes(b"half")
    _, part = st.stage_bytes(b"never recorded")
    obj = vault.path_of(recorded.sha256)
    os.chmod(obj.parent, 0o755)
    ready = st.make_ready([(store.Digest("0" * 64, "", 0), part)])
    os.replace(obj, st.folder / f"{recorded.sha256}.ready")
    st.abandon()
    assert not obj.exists() and ready
    reopened = Vault.open(home)
    assert obj.read_bytes() == b"recorded"
    assert list(vault.tmp.iterdir()) == []
    assert audit.verify_vault(reopened).ok


def test_a_live_writers_staging_is_left_alone(home, vault):
    st = store.Staging(vault.tmp)
    st.stage_bytes(b"in progress")
    Vault.open(home)
    assert list(st.folder.glob("*.part"))
    st.close()
    assert list(vault.tmp.iterdir()) == []


def test_torn_tail_is_cut_and_kept_aside_on_open(home, vault):
    vault.add_bytes(b"x", "x", handler=H)
    size = vault.log_path.stat().st_size
    with open(vault.log_path, "ab") as fh:
        fh.write(b'\x00\x00\x01\x00{"half an entry')
    reopened = Vault.open(home)
    assert vault.log_path.stat().st_size == size
    assert list((vault.folder / "torn").iterdir())
    reopened.record(None, "note", handler=H)
    assert audit.verify_vault(reopened).ok


def test_damaged_log_refuses_appends_and_names_the_damage(home, vault):
    for i in range(3):
        vault.add_bytes(bytes([i]), str(i), handler=H)
    data = bytearray(vault.log_path.read_bytes())
    data[40] ^= 0x20  # inside the first record: its CRC fails
    vault.log_path.write_bytes(bytes(data))
    reopened = Vault.open(home)
    assert "CRC" in reopened.damage
    with pytest.raises(EvidenceError, match="nothing will be appended"):
        reopened.record(None, "note", handler=H)


CONCURRENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from takedown.case.evidence.vault import Vault
    from takedown.home import Home

    who, n, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    vault = Vault.open(Home(Path(sys.argv[4])))
    for i in range(n):
        if i % 3 == 0:
            p = folder / f"{who}-{i}"
            p.write_bytes(f"{who} {i}".encode() * 1000)
            vault.add_file(p, handler=who)
        elif i % 3 == 1:
            vault.add_bytes(f"{who} bytes {i}".encode(), f"{who}-{i}", handler=who)
        else:
            vault.record(None, "note", handler=who, details={"i": i})
    """
)


def test_concurrent_processes_never_fork_the_log(home, vault, tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, f"w{k}", "45", str(tmp_path), str(home.root)]
        )
        for k in range(4)
    ]
    for p in procs:
        assert p.wait(120) == 0
    again = Vault.open(home)
    entries = again.custody()
    assert [e.index for e in entries] == list(range(4 * 45))
    for k in range(4):
        mine = [e for e in entries if e.handler == f"w{k}"]
        assert len(mine) == 45
        assert [e.details.get("i") for e in mine if e.action == "note"] == list(range(2, 45, 3))
    assert len(again.items()) == 4 * 30
    report = audit.verify_vault(again)
    assert report.ok, report.problems
