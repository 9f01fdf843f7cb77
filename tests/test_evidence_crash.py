"""Crash safety with real processes: SIGKILL a process adding evidence at random moments.

The guarantee: after the next open, every item the log records is whole in objects/, no
object is unrecorded, no staging file is left, and the log verifies; an add that was not
acknowledged left nothing behind but, at most, a torn tail kept aside in torn/.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from takedown.case.evidence import audit
from takedown.case.evidence.vault import Vault
from takedown.home import Home

SEED = int(os.environ.get("TAKEDOWN_CRASH_SEED", "20110316"))
ROUNDS = int(os.environ.get("TAKEDOWN_EVIDENCE_KILLS", "6"))
BIG = 24 << 20

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from takedown.case.evidence.vault import Vault
    from takedown.home import Home

    home, big, small = Home(Path(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
    vault = Vault.open(home)
    print("open", flush=True)
    vault.add_file(big, handler="crash-test", source="seized disk")
    vault.add_many(sorted(small.iterdir()), handler="crash-test", source="mailbox")
    for i in range(20):
        vault.record(None, "note", handler="crash-test", details={"i": i})
    print("done", flush=True)
    """
)


def start(home, big, small):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home.root), str(big), str(small)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def round_files(tmp_path, k, block):
    big = tmp_path / f"big-{k}.img"
    with open(big, "wb") as fh:
        fh.write(k.to_bytes(8, "big"))
        fh.write(block)
    small = tmp_path / f"mail-{k}"
    small.mkdir()
    for i in range(100):
        (small / f"{i:03d}.eml").write_bytes(f"round {k} message {i}\n".encode() * 20)
    return big, small


def check(home, big):
    vault = Vault.open(home)  # recovery runs here
    assert list(vault.tmp.iterdir()) == [], "staging left behind"
    report = audit.verify_vault(vault, quick=True)
    assert report.ok, report.problems
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    path = vault.objects / sha[:2] / sha
    if vault.has(sha):
        assert path.stat().st_size == big.stat().st_size
    else:
        assert not path.exists()
    return vault


@pytest.mark.slow
def test_sigkill_mid_add_leaves_no_half_item(tmp_path):
    rng = random.Random(SEED)
    home = Home(tmp_path / "home")
    block = os.urandom(BIG)
    # One run without a kill tells how long a round's work takes here.
    big, small = round_files(tmp_path, 0, block)
    proc = start(home, big, small)
    began = time.monotonic()  # from the open: kills land in the adding, not the start-up
    assert proc.wait(120) == 0 and proc.stdout.read().strip() == "done"
    duration = time.monotonic() - began
    check(home, big)
    outcomes = []
    for k in range(1, ROUNDS + 1):
        big, small = round_files(tmp_path, k, block)
        proc = start(home, big, small)
        time.sleep(rng.uniform(0.0, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        vault = check(home, big)
        outcomes.append(vault.size)
    # Several kills landed before the end, and every later open found a consistent vault.
    print(f"round takes {duration:.2f}s; log sizes after each kill: {outcomes}")
    assert len(set(outcomes)) > 1
    report = audit.verify_vault(Vault.open(home))
    assert report.ok, report.problems
