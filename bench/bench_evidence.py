"""Benchmark the evidence vault: hashing a big file against sha256sum, and adding many items.

Part 1, hashing: a file of ``--size-gb`` GiB of random bytes is written to a temporary folder
on disk (``--dir``, default /var/tmp, which is not a tmpfs here) and read once untimed, so
every contender reads it from the page cache. Then, interleaved for ``--runs`` rounds, each
in its own process, timed by wall clock (and its CPU seconds):

* ``sha256sum`` (GNU coreutils), the peer the target is set against, and ``md5sum``;
* ``openssl dgst -sha256`` when installed (OpenSSL's SHA-256, SHA-NI where the CPU has it);
* the vault's hashing pass, ``store.digest_file`` (SHA-256 and MD5 of one read pass);
* ``hashlib.file_digest(sha256)`` alone (what Python's OpenSSL binding does by itself);
* ``Vault.add_file`` into a fresh vault: hash, copy, fsync, custody entry (``--no-add`` skips).

Part 2, many small items: ``--items`` files of 200–2,000 bytes, added to a fresh vault with
``Vault.add_many`` (one batch: one log write and fsync, the files' fsyncs issued together),
and ``--single`` of them with ``Vault.add_file`` one by one (per-item cost).

Usage::

    .venv/bin/python bench/bench_evidence.py                  # 2 GiB, 3 rounds, 10,000 items
    .venv/bin/python bench/bench_evidence.py --size-gb 0.25 --runs 1 --items 1000
    .venv/bin/python bench/bench_evidence.py --write          # also update bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from results import ROOT, machine_line, median, write_section

SECTION = "## Evidence vault: hashing and adding"
PY = sys.executable

DIGEST = """
import sys
from pathlib import Path
from takedown.case.evidence.store import digest_file
print(digest_file(Path(sys.argv[1])).sha256)
"""
FILE_DIGEST = """
import hashlib, sys
with open(sys.argv[1], "rb") as fh:
    print(hashlib.file_digest(fh, "sha256").hexdigest())
"""
ADD = """
import sys
from pathlib import Path
from takedown.case.evidence.vault import Vault
vault = Vault.open_at(Path(sys.argv[2]))
print(vault.add_file(Path(sys.argv[1]), handler="bench").sha256)
"""
MANY = """
import json, sys, time
from pathlib import Path
from takedown.case.evidence.vault import Vault
src, dst, single = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
files = sorted(src.iterdir())
vault = Vault.open_at(dst / "batch")
t = time.perf_counter()
items = vault.add_many(files, handler="bench", source="bench")
batch = time.perf_counter() - t
t = time.perf_counter()
one = Vault.open_at(dst / "single")
for f in files[:single]:
    one.add_file(f, handler="bench")
each = (time.perf_counter() - t) / max(single, 1)
t = time.perf_counter()
reopened = Vault.open_at(dst / "batch")
n = len(reopened.items())
reopen = time.perf_counter() - t
print(json.dumps({"batch": batch, "each": each, "items": len(items), "reopen": reopen, "n": n}))
"""


@dataclass
class Contender:
    name: str
    argv: list[str]
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    digest: str = ""

    def run(self, path: Path, scratch: Path | None = None) -> None:
        argv = [a.replace("{file}", str(path)) for a in self.argv]
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
            argv = [a.replace("{vault}", str(scratch)) for a in argv]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.loads.append(os.getloadavg()[0])
        t = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
        self.runs.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        words = done.stdout.split()
        self.digest = words[-1] if self.name.startswith("openssl") else words[0]
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def make_file(path: Path, size: int) -> None:
    block = 8 << 20
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(block, left)
            fh.write(os.urandom(n))
            left -= n
        fh.flush()
        os.fsync(fh.fileno())


def warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(8 << 20)
        while fh.readinto(buf):
            pass


def fs_type(path: Path) -> str:
    done = subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "?"


def bench_hashing(args: argparse.Namespace, base: Path) -> tuple[list[Contender], int]:
    size = int(args.size_gb * (1 << 30))
    big = base / "big.bin"
    print(f"writing {size / (1 << 30):.2f} GiB to {big} ...", file=sys.stderr)
    make_file(big, size)
    warm(big)
    contenders = [
        Contender("sha256sum (coreutils)", ["sha256sum", "{file}"]),
        Contender("vault hashing pass (SHA-256 + MD5)", [PY, "-c", DIGEST, "{file}"]),
        Contender("hashlib.file_digest SHA-256 only", [PY, "-c", FILE_DIGEST, "{file}"]),
        Contender("md5sum (coreutils)", ["md5sum", "{file}"]),
    ]
    if shutil.which("openssl"):
        contenders.append(
            Contender("openssl dgst -sha256", ["openssl", "dgst", "-sha256", "{file}"])
        )
    adder = None
    if not args.no_add:
        adder = Contender(
            "Vault.add_file (hash, copy, fsync, log)", [PY, "-c", ADD, "{file}", "{vault}"]
        )
        contenders.append(adder)
    for r in range(args.runs):
        order = contenders[:] if r % 2 == 0 else contenders[::-1]  # interleaved, alternating
        for c in order:
            c.run(big, base / "vault" if c is adder else None)
            print(f"round {r + 1}: {c.name}: {c.runs[-1]:.2f} s", file=sys.stderr)
    sha = {c.digest for c in contenders if "md5" not in c.name}
    assert len(sha) == 1, f"contenders disagree on the SHA-256: {sha}"
    big.unlink()
    return contenders, size


def bench_items(args: argparse.Namespace, base: Path) -> dict[str, float]:
    src = base / "items"
    src.mkdir()
    rng = random.Random(4)
    for i in range(args.items):
        (src / f"{i:06d}.eml").write_bytes(
            f"Message-ID: <{i}@bench>\n\n".encode() + rng.randbytes(rng.randint(200, 2000))
        )
    load = os.getloadavg()[0]
    done = subprocess.run(
        [PY, "-c", MANY, str(src), str(base / "vaults"), str(args.single)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(done.stdout)
    result["load"] = max(load, os.getloadavg()[0])
    print(f"{args.items:,} items: {result}", file=sys.stderr)
    return result


def render(
    args: argparse.Namespace,
    contenders: list[Contender],
    size: int,
    items: dict[str, float],
    where: str,
) -> str:
    cmd = shlex.join([".venv/bin/python", "bench/bench_evidence.py", *sys.argv[1:]])
    peer = next(c for c in contenders if c.name.startswith("sha256sum"))
    loads = [x for c in contenders for x in c.loads] + [items["load"]]
    mib = size / (1 << 20)
    lines = [
        SECTION,
        "",
        f"Command: `{cmd}`  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine_line()}; 1-minute load "
        f"average during the runs {min(loads):.1f}–{max(loads):.1f} (other work shared the "
        "machine).",
        "",
        f"**Hashing a {size / (1 << 30):.2f} GiB file** ({where}; read once before the runs, so "
        f"every contender reads it from the page cache). {args.runs} interleaved rounds (order "
        "reversed every other round), each contender in its own process, wall clock; median.",
        "",
        "| what | runs (s) | median (s) | MiB/s | CPU s (median) | speed ÷ sha256sum |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for c in contenders:
        m = median(c.runs)
        lines.append(
            f"| {c.name} | {', '.join(f'{x:.2f}' for x in c.runs)} | {m:.2f} | "
            f"**{mib / m:,.0f}** | {median(c.cpu):.2f} | {median(peer.runs) / m:.2f} |"
        )
    vault = next(c for c in contenders if c.name.startswith("vault hashing"))
    ratio = median(peer.runs) / median(vault.runs)
    lines += [
        "",
        f"Target (issue): the vault hashes at ≥ 80% of sha256sum's speed on the same file: "
        f"**{ratio:.0%}**, {'met' if ratio >= 0.8 else 'missed'}. The vault's pass computes "
        "SHA-256 and MD5 of each 4 MiB buffer at once (MD5 on a second thread; hashlib drops "
        "the GIL), so it runs at about the slower of the two. Python's hashlib is OpenSSL's, "
        "which uses the CPU's SHA extensions (SHA-NI); this Debian sha256sum (coreutils 9.1) "
        "is built without OpenSSL and does not, which is why the vault is ahead; "
        "`openssl dgst -sha256` shows what SHA-NI alone gives, and MD5 (no hardware help) is "
        "what bounds the vault's pass. `Vault.add_file` also copies the file into the vault "
        "and fsyncs it, so it adds the disk's write speed to the bill.",
        "",
        f"**Adding {int(items['items']):,} small items** (200–2,000 bytes each) to a fresh "
        f"vault: `Vault.add_many` (one batch) **{items['batch']:.1f} s** "
        f"({items['items'] / items['batch']:,.0f} items/s); `Vault.add_file` one at a time "
        f"{items['each'] * 1000:.1f} ms per item (over {args.single}, i.e. "
        f"{items['each'] * items['items']:.0f} s for all of them); reopening the vault with "
        f"{int(items['n']):,} items (the index is rebuilt from the custody log) "
        f"{items['reopen']:.2f} s. Target (issue): seconds, not minutes. Each item is "
        "fsync'd before its custody entry is written (the batch issues those fsyncs "
        "together, on a pool of threads, so the journal commits them in groups); the log "
        "is written and fsync'd once per batch.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, default=2.0, help="GiB of the big file")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=500, help="items added one by one")
    ap.add_argument("--no-add", action="store_true", help="skip Vault.add_file of the big file")
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the files go")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="td-bench-evidence-", dir=args.dir))
    where = f"in {args.dir}, {fs_type(base)} file system"
    try:
        contenders, size = bench_hashing(args, base)
        items = bench_items(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    section = render(args, contenders, size, items, where)
    print(section)
    if args.write:
        write_section(SECTION, section)
        print("updated bench/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
