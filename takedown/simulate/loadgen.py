"""A loopback load generator: simulated bot check-ins against our own sinkhole.

It only ever connects to loopback addresses (127.0.0.0/8, ::1) and refuses anything else. Each
simulated bot binds its own 127.x.y.z source address, so the sinkhole sees distinct machines.
Every request carries a unique id (``?lg=<id>`` in the target) and a body derived from it, and
the generator remembers which ids were answered 200: the crash tests compare that with the lake.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from takedown.errors import TakedownError

__all__ = ["FAMILIES", "LoadResult", "body_for", "check_loopback", "request_for", "run_load"]

# name: (method, path, body size, user agent) — shapes written from the rules' public bases.
FAMILIES: dict[str, tuple[str, str, int, str]] = {
    "rustock": (
        "POST",
        "/login.php",
        96,
        "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
    ),
    "gate": ("POST", "/panel/gate.php", 180, "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1)"),
    "checkin": ("GET", "/c/check.php", 0, "Mozilla/5.0 (Windows NT 6.1; WOW64)"),
    "noise": ("GET", "/", 0, "Mozilla/5.0 (X11; Linux x86_64) curl-like scanner"),
}
C2_HOSTS = ("onlinescannow.example", "guardandprotector.example", "piecefordesktop.example")


class NotLoopbackError(TakedownError, ValueError):
    """The target is not a loopback address: the generator never sends traffic elsewhere."""


def check_loopback(host: str) -> str:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        infos = socket.getaddrinfo(host, None)
        addr = ipaddress.ip_address(infos[0][4][0])
    if not addr.is_loopback:
        raise NotLoopbackError(
            f"{host} is not a loopback address; the load generator only targets 127.0.0.0/8 or ::1"
        )
    return str(addr)


def body_for(request_id: int, size: int) -> bytes:
    """The deterministic body of request ``request_id`` (so a test can check its hash)."""
    seed = hashlib.sha256(str(request_id).encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def bot_address(bot: int) -> str:
    """Bot n's own loopback source address: 127.1.0.1 upwards."""
    last, rest = 1 + bot % 254, bot // 254  # never .0 or .255
    return f"127.{1 + (rest // 256) % 254}.{rest % 256}.{last}"


def request_for(request_id: int, family: str, bot: int, keep_alive: bool) -> bytes:
    method, path, size, ua = FAMILIES[family]
    body = body_for(request_id, size)
    query = f"lg={request_id}"
    if family == "checkin":
        query += f"&id={bot:016x}"
    lines = [
        f"{method} {path}?{query} HTTP/1.1",
        f"Host: {C2_HOSTS[bot % len(C2_HOSTS)]}",
        f"User-Agent: {ua}",
        "Accept: */*",
    ]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    sent: int = 0
    answered: set[int] = field(default_factory=set)  # ids answered 200
    refused: int = 0  # answered, but not 200 (e.g. 503)
    errors: int = 0  # connection failures and unanswered requests
    dns_answered: int = 0
    elapsed: float = 0.0
    by_family: dict[str, int] = field(default_factory=dict)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _client(
    host: str,
    port: int,
    ids: Callable[[], int | None],
    bots: int,
    mix: list[str],
    keep_alive: bool,
    result: LoadResult,
    rng: random.Random,
    deadline: float,
) -> None:
    reader = writer = None
    bot, left = 0, 0
    while time.monotonic() < deadline:
        request_id = ids()
        if request_id is None:
            break
        if writer is None or left <= 0:
            # A connection is one bot checking in a few times, then another bot's turn.
            if writer is not None:
                writer.close()
                reader = writer = None
            bot, left = rng.randrange(bots), rng.randint(1, 8)
        left -= 1
        family = rng.choice(mix)
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(bot_address(bot), 0)), 5
                )
            assert reader is not None and writer is not None
            writer.write(request_for(request_id, family, bot, keep_alive))
            result.sent += 1
            status = await asyncio.wait_for(_read_response(reader), 10)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
            IndexError,
        ):
            result.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
            continue
        if status == 200:
            result.answered.add(request_id)
            result.by_family[family] = result.by_family.get(family, 0) + 1
        else:
            result.refused += 1
        if not keep_alive and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def dns_query(qid: int, name: str, qtype: int = 1) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


async def _dns_client(
    host: str, port: int, names: list[str], bots: int, result: LoadResult
) -> None:
    loop = asyncio.get_running_loop()
    for i, name in enumerate(names):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            if ":" not in host:
                sock.bind((bot_address(i % bots), 0))
            await loop.sock_sendto(sock, dns_query(i & 0xFFFF, name), (host, port))
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
            if len(data) >= 12 and data[:2] == (i & 0xFFFF).to_bytes(2, "big"):
                result.dns_answered += 1
        except (OSError, TimeoutError):
            result.errors += 1
        finally:
            sock.close()


async def run_load(
    host: str,
    port: int,
    *,
    requests: int = 1000,
    connections: int = 16,
    bots: int = 500,
    mix: dict[str, float] | None = None,
    keep_alive: bool = True,
    duration: float = 600.0,
    seed: int = 1,
    first_id: int = 0,
    dns: tuple[str, int] | None = None,
    dns_queries: int = 0,
) -> LoadResult:
    """Send ``requests`` check-ins over ``connections`` concurrent connections."""
    host = check_loopback(host)
    if dns is not None:
        check_loopback(dns[0])
    mix = mix or {"rustock": 0.7, "gate": 0.1, "checkin": 0.15, "noise": 0.05}
    weights = [(name, w) for name, w in mix.items() if w > 0 and name in FAMILIES]
    bag = [name for name, w in weights for _ in range(max(1, round(w * 100)))]
    result = LoadResult()
    counter = iter(range(first_id, first_id + requests))

    def next_id() -> int | None:
        return next(counter, None)

    rng = random.Random(seed)
    start = time.monotonic()
    deadline = start + duration
    tasks = [
        _client(
            host,
            port,
            next_id,
            bots,
            bag,
            keep_alive,
            result,
            random.Random(rng.random()),
            deadline,
        )
        for _ in range(connections)
    ]
    if dns is not None and dns_queries:
        names = [
            f"{rng.choice(['cc', 'update', 'api'])}.{rng.choice(C2_HOSTS)}"
            for _ in range(dns_queries)
        ]
        tasks.append(_dns_client(dns[0], dns[1], names, bots, result))
    await asyncio.gather(*tasks)
    result.elapsed = time.monotonic() - start
    return result
