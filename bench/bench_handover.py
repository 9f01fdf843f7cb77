"""What the sinkhole's C accept path gains and costs, per connection, by kind of client.

The C accept path (``fast_accept``, see docs/sinkhole.md) answers a connection whose first read
is one whole request that asks to be closed without uvloop; any other connection is handed to
uvloop with the bytes read. This script measures the server's CPU per connection with the path
on and off, interleaved, for two kinds of client that each open a connection, send one check-in,
read the answer and close:

* ``close``: the request says ``Connection: close`` (the server closes): the path's case;
* ``keep-alive, one request``: an HTTP/1.1 request without ``Connection``; the client closes
  after the answer. Such connections are handed over, which costs more than uvloop accepting
  them itself.

The clients are Python processes on the same machine, so the rate is theirs more than the
server's; the figure that matters is the server's CPU per connection. wrk cannot make the
second kind of client (it keeps its connections), hence this script.

    .venv/bin/python bench/bench_handover.py               # 3 interleaved rounds
    .venv/bin/python bench/bench_handover.py --write       # and update bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sinkhole import cpu_seconds, process_tree, settle, sinkhole_server
from results import machine_line, median, write_section

TITLE = "## Sinkhole: the C accept path by kind of client"
BODY = bytes(range(96))
KINDS = {
    "close": b"Connection: close\r\n",
    "keep-alive, one request": b"",
}


def request(extra: bytes) -> bytes:
    return (
        b"POST /login.php HTTP/1.1\r\nHost: onlinescannow.example\r\nUser-Agent: bench\r\n"
        + extra
        + b"Content-Length: 96\r\n\r\n"
        + BODY
    )


def client(args: tuple[int, bytes, float]) -> int:
    """Connections made, each with one request answered in full, until the time is up."""
    port, data, seconds = args
    done = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("closed before the answer")
                got += chunk
            head, _, body = got.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"answered {head[:40]!r}")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            while len(body) < length:
                body += sock.recv(4096)
        done += 1
    return done


def run(kind: str, fast: bool, args: argparse.Namespace, base: Path) -> tuple[float, float]:
    """(connections/s, server CPU µs per connection)."""
    os.environ["TAKEDOWN_FAST_ACCEPT"] = "1" if fast else "0"
    try:
        settle(args.settle)
        with sinkhole_server(base, args.python, 1) as (port, proc, _):
            pids = process_tree(proc.pid)
            data = request(KINDS[kind])
            with Pool(args.clients) as pool:
                pool.map(client, [(port, data, 0.5)] * args.clients)  # warm-up
                cpu0, t0 = cpu_seconds(pids), time.monotonic()
                n = sum(pool.map(client, [(port, data, args.duration)] * args.clients))
                cpu1, t1 = cpu_seconds(pids), time.monotonic()
    finally:
        os.environ.pop("TAKEDOWN_FAST_ACCEPT", None)
    return n / (t1 - t0), (cpu1 - cpu0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per run")
    ap.add_argument("--clients", type=int, default=16, help="client processes")
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--python", default=sys.executable, help="interpreter running the sinkhole")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-handover-"))
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for rnd in range(args.rounds):
        for kind in KINDS:
            order = (True, False) if rnd % 2 == 0 else (False, True)
            for fast in order:
                rate, cpu = run(kind, fast, args, base)
                results.setdefault((kind, fast), []).append((rate, cpu))
                print(
                    f"round {rnd + 1} {kind:24s} fast_accept {'on ' if fast else 'off'} "
                    f"{rate:7,.0f} conn/s  server CPU {cpu:6.1f} µs/conn",
                    flush=True,
                )
    lines = [
        TITLE,
        "",
        f"Command: `.venv/bin/python bench/bench_handover.py --rounds {args.rounds} "
        f"--clients {args.clients} --write` (from the project root)  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Machine: {machine_line()}",
        "",
        f"One sinkhole worker, default settings; {args.clients} Python client processes on the "
        "same machine, each opening a connection, sending one 96-byte check-in, reading the "
        f"answer and closing, for {args.duration:g} s per run; fast_accept on and off "
        f"interleaved, {args.rounds} rounds, medians. The clients bound the rate; the "
        "server's CPU per connection is the measure.",
        "",
        "| client | fast_accept | conn/s (median) | server CPU µs/conn (median) | rounds µs/conn "
        "| on ÷ off |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    for kind in KINDS:
        off = median([c for _, c in results[(kind, False)]])
        for fast in (True, False):
            got = results[(kind, fast)]
            cpu = median([c for _, c in got])
            lines.append(
                f"| {kind} | {'on' if fast else 'off'} | {median([r for r, _ in got]):,.0f} | "
                f"{cpu:.1f} | {' / '.join(f'{c:.0f}' for _, c in got)} | "
                f"{cpu / off:.2f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(TITLE, text)
        print("updated bench/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
