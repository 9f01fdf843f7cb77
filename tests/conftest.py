"""Shared helpers of the real-process tests: a restartable sinkhole process, the lake's rows."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from takedown import lake
from takedown.home import Home
from takedown.simulate.loadgen import FAMILIES, body_for

_LG = re.compile(r"[?&]lg=(\d+)")
BODY_SIZE = {path: size for _method, path, size, _ua in FAMILIES.values()}


def free_port() -> int:
    """A loopback TCP port nobody listens on, that can be reused across restarts.

    Tried first below the kernel's ephemeral range, so that no other process on the machine
    (another test's server on port 0, an outgoing connection) is given it while our sinkhole
    is down between a kill and its restart; the bind-to-0 trick otherwise.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    candidates = [rng.randrange(low - 8000, low) for _ in range(20)] if low > 10000 else []
    for port in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise AssertionError("no free loopback port")


def takedown_cmd(home: Home, *args: str) -> list[str]:
    return [sys.executable, "-m", "takedown", "--home", str(home.root), *args]


class Sinkhole:
    """`takedown sinkhole serve` as a real process on one fixed loopback port, restartable.

    Each start logs to its own file (``log(i)``); ``spawned`` is the wall time of each start.
    """

    def __init__(self, home: Home, port: int, logs: Path, env: dict[str, str]) -> None:
        self.home = home
        self.port = port
        self.logs = logs
        # Wide lines: Rich wraps log records at the terminal width, the tests grep them.
        self.env = {**os.environ, "COLUMNS": "500", **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned: list[float] = []
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 30.0, *, ready_file: bool = True) -> dict[str, Any]:
        """Start it and wait until it listens: its ready file, or (when no file can be
        written, ``ready_file=False``) until the port takes a connection."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.logs.mkdir(parents=True, exist_ok=True)
        ready = self.home.run / "sinkhole.json"
        ready.unlink(missing_ok=True)
        cmd = takedown_cmd(self.home, "sinkhole", "serve", "--http", f"127.0.0.1:{self.port}")
        with open(self.logs / f"sinkhole-{len(self.spawned)}.log", "wb") as log:
            self.spawned.append(time.time())
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready_file and ready.exists():
                self.info = json.loads(ready.read_text())
                return self.info
            if not ready_file:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", self.port)) == 0:
                        self.info = {"pid": self.proc.pid}
                        return self.info
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self.kill()
        raise AssertionError(f"sinkhole did not come up:\n{self.log(-1)}")

    def wait_for_segment(self, timeout: float = 60.0) -> None:
        """Until this process has opened a spool segment (it has recorded a check-in)."""
        folder = self.home.spool / self.info["sensor"]
        since = int(self.spawned[-1] * 1e9)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(int(p.stem) > since for p in folder.glob("*.open")):
                return
            assert self.alive(), self.log(-1)
            time.sleep(0.005)
        raise AssertionError(f"sinkhole recorded nothing in {timeout:.0f}s:\n{self.log(-1)}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, i: int) -> str:
        n = len(self.spawned)
        return (self.logs / f"sinkhole-{i % n}.log").read_text(errors="replace") if n else ""


@pytest.fixture
def sinkholes() -> Iterator[list[Sinkhole]]:
    """Register every Sinkhole here: whatever still runs at the end is killed."""
    made: list[Sinkhole] = []
    yield made
    for sk in made:
        sk.kill()


@dataclass(frozen=True)
class LakeRow:
    id: int
    sensor: str
    target: str
    size: int
    sha256: str
    time_us: int


def lake_rows(home: Home) -> list[LakeRow]:
    """Every event in the lake, with its load-generator id (``lg=`` of the target)."""
    if not lake.has_events(home):
        return []
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT extra.sensor, extra.http.target, extra.body.size, extra.body.sha256, "
            f'epoch_us("time".source) FROM {lake.events_sql(home)}'
        ).fetchall()
    finally:
        con.close()
    out = []
    for sensor, target, size, sha, us in rows:
        m = _LG.search(target or "")
        assert m is not None, f"event without an lg= id: {target!r}"
        out.append(LakeRow(int(m.group(1)), sensor, target, size, sha, us))
    return out


def check_bodies(rows: list[LakeRow]) -> None:
    """Every row's body is the one its id was sent with: right size, right hash (not torn)."""
    bad = []
    for r in rows:
        size = BODY_SIZE[r.target.split("?", 1)[0]]
        if r.size != size or r.sha256 != hashlib.sha256(body_for(r.id, size)).digest():
            bad.append(r)
    assert not bad, f"{len(bad)} rows with a wrong body, e.g. {bad[:3]}"
