"""The sinkhole's I/O: asyncio (uvloop) listeners for HTTP and DNS, group commit to the spool.

Every request becomes one spool row; the row's block is written and fdatasync'd by the spool
thread, and only then is the request answered (200, or 503 when the disk refused it). Parsing
and row building are in ``protocol`` and ``dns``; this module only moves bytes and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from functools import partial
from pathlib import Path
from typing import Any, cast

import uvloop

from takedown.config import Settings
from takedown.errors import ConfigError, SpoolError
from takedown.home import Home
from takedown.sinkhole import accept, dns, fastpath, spool
from takedown.sinkhole.commit import GroupCommit
from takedown.sinkhole.fastpath import read_simple
from takedown.sinkhole.protocol import (
    SPOOL_SCHEMA,
    HttpRequestReader,
    ParsedRequest,
    Sensor,
    classify_fields,
    dns_row,
    http_base,
    http_row_of,
)
from takedown.sinkhole.rules import BUILTIN_RULES, RuleSet
from takedown.sinkhole.spool import SpoolWriter

__all__ = ["parse_listen", "serve"]

log = logging.getLogger(__name__)

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def parse_listen(value: str, what: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' to (host, port); one clear error otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what}: {value!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


@dataclass
class Responses:
    """Pre-built neutral answers, refreshed once a second for the Date header."""

    status: int
    body: bytes
    content_type: str
    _cache: dict[tuple[int, bool, bool], bytes] | None = None
    _date: str = ""

    def tick(self) -> None:
        date = formatdate(usegmt=True)
        if date != self._date:
            self._date = date
            self._cache = {}

    def get(self, status: int, keep_alive: bool, head: bool) -> bytes:
        assert self._cache is not None
        key = (status, keep_alive, head)
        hit = self._cache.get(key)
        if hit is None:
            body = self.body if status == self.status else b""
            lines = [
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
                f"Date: {self._date}",
                f"Content-Type: {self.content_type}",
                f"Content-Length: {len(body)}",
                "Connection: keep-alive" if keep_alive else "Connection: close",
            ]
            if status == 503:
                lines.append("Retry-After: 30")
            hit = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)
            self._cache[key] = hit
        return hit


class Worker:
    """One sinkhole process: its listeners, rules, spool and connections."""

    def __init__(self, settings: Settings, index: int) -> None:
        self.settings = settings
        self.index = index
        self.home = Home(Path(settings.home))
        self.sensor = Sensor(
            name=f"{socket.gethostname()}-w{index}",
            provider=settings.feed_provider,
            headers_kept=tuple(
                h.strip().lower() for h in settings.headers_kept.split(",") if h.strip()
            ),
        )
        folders = [self.home.rules]
        if settings.rules_dir:
            folders.insert(0, Path(settings.rules_dir))
        self.rules = RuleSet([*folders, BUILTIN_RULES])
        self.responses = Responses(
            settings.response_status,
            settings.response_body.encode(),
            settings.response_content_type,
        )
        self.responses.tick()
        # Settings read on every connection or request, as plain attributes.
        # read_simple's arguments after (buf, pos), in its order; a reader takes the same caps
        self.simple_caps = (settings.raw_bytes, settings.max_header_bytes, settings.max_body_bytes)
        # The fields of every HTTP row (sensor, feed; the local address once it is known) that
        # a connection does not change; the peer is set in each row.
        self.base: list[Any] = http_base(peer=("", 0), local=("", 0), sensor=self.sensor)
        self.max_connections: int = settings.max_connections
        self.max_pipeline: int = settings.max_pipeline
        self.response_status: int = settings.response_status
        self.local: tuple[str, int] | None = None  # the HTTP address, when not a wildcard
        self.connections: set[HttpConnection] = set()
        self.commit: GroupCommit | None = None
        self.fast: accept.FastAccept | None = None  # the C accept path, when in use
        self.dns_policy: dns.DnsPolicy | None = None
        self.refused_connections = 0
        self.timeouts = 0

    # -- HTTP ---------------------------------------------------------------------------------
    def new_reader(self) -> HttpRequestReader:
        raw, head, body = self.simple_caps
        return HttpRequestReader(raw_bytes=raw, max_header_bytes=head, max_body_bytes=body)

    def row(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        size: int,
        sha: str,
        prefix: bytes,
        error: str | None,
        status: int,
        peer: tuple[str, int],
        base: list[Any],
    ) -> tuple[Any, ...]:
        """The spool row of one HTTP request, classified by the rules (unless it failed)."""
        match = (
            None if error else classify_fields(self.rules, method, target, headers, size, prefix)
        )
        return http_row_of(
            method,
            target,
            version,
            headers,
            size,
            sha,
            prefix,
            error,
            match,
            time.time_ns() // 1000,
            peer,
            base,
            self.sensor.headers_kept,
            status,
        )

    async def run(self, ready: Callable[[dict[str, Any]], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        writer = SpoolWriter(
            self.home.spool / self.sensor.name,
            self.sensor.name,
            SPOOL_SCHEMA,
            segment_max_bytes=self.settings.segment_max_bytes,
            segment_max_age=self.settings.segment_max_age,
        )
        for note in writer.open():
            log.warning("spool recovery: %s", note)
        self.commit = GroupCommit(
            loop, writer, delay=self.settings.commit_delay, batch=self.settings.commit_batch
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.rules.reload_if_changed)
        servers: list[asyncio.AbstractServer] = []
        transports: list[asyncio.BaseTransport] = []
        socks: list[socket.socket] = []
        info: dict[str, Any] = {"pid": os.getpid(), "sensor": self.sensor.name}
        try:
            host, port = parse_listen(self.settings.http_listen, "--http")
            if self.settings.fast_accept and accept.NATIVE:
                socks = accept.listen_sockets(host, port)
                sockname = socks[0].getsockname()
            else:
                http = await loop.create_server(
                    lambda: HttpConnection(self), host, port, reuse_port=True, backlog=4096
                )
                servers.append(http)
                sockname = http.sockets[0].getsockname()
            info["http"] = list(sockname[:2])
            if info["http"][0] not in ("0.0.0.0", "::"):
                self.local = (info["http"][0], info["http"][1])
                self.base = http_base(peer=("", 0), local=self.local, sensor=self.sensor)
            if socks:
                self.fast = accept.FastAccept(self, socks, partial(HttpConnection, self))
            if self.settings.dns_listen:
                dhost, dport = parse_listen(self.settings.dns_listen, "--dns")
                answer_v4 = self.settings.dns_answer_ipv4 or (host if ":" not in host else "")
                self.dns_policy = dns.DnsPolicy.build(
                    self.settings.dns_zones.split(","),
                    answer_v4 or None,
                    self.settings.dns_answer_ipv6 or None,
                    self.settings.dns_ttl,
                )
                # Port 0: the system picks a free UDP port, and TCP must have the same one; it
                # may be taken for TCP (say by a client's connection), then another is tried.
                tries = 1 if dport else 20
                for attempt in range(tries):
                    udp, _ = await loop.create_datagram_endpoint(
                        lambda: DnsUdp(self), local_addr=(dhost, dport), reuse_port=True
                    )
                    sockname = list(udp.get_extra_info("sockname")[:2])
                    try:
                        tcp = await loop.create_server(
                            lambda: DnsTcp(self), dhost, sockname[1], reuse_port=True
                        )
                    except OSError as exc:
                        udp.close()
                        if exc.errno != errno.EADDRINUSE or attempt == tries - 1:
                            raise
                        continue
                    break
                transports.append(udp)
                servers.append(tcp)
                info["dns"] = sockname
        except OSError as exc:
            for sock in socks:
                sock.close()
            self.commit.close()
            raise ConfigError(f"cannot listen: {exc.strerror} ({exc.filename or ''})") from None
        log.info(
            "sinkhole %s listening: http %s dns %s; %d rules",
            self.sensor.name,
            info.get("http"),
            info.get("dns", "off"),
            len(self.rules.rules),
        )
        missing = [
            name
            for name, built in (
                ("_scan", fastpath.NATIVE),
                ("_ipc", spool.NATIVE),
                ("_accept", accept.NATIVE),
            )
            if not built
        ]
        if missing:  # (the committer, _commit, says so itself)
            log.warning("native %s not built; using the slower Python versions", ", ".join(missing))
        if ready is not None:
            ready(info)
        # Start-up's objects (modules, rules, settings) live as long as the worker: moved out
        # of the collector's sight, and with young collections rarer, the per-request objects
        # (freed by reference counting) no longer pay for scans of them.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        sweeper = asyncio.create_task(self._sweep())
        await stop.wait()
        log.info("sinkhole %s stopping: finishing answered requests", self.sensor.name)
        sweeper.cancel()
        if self.fast is not None:
            self.fast.close()
        for srv in servers:
            srv.close()
        for tr in transports:
            tr.close()
        for conn in list(self.connections):
            conn.stop_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.commit.drain(), 30)
        for conn in list(self.connections):
            conn.close()
        self.commit.close()
        log.info(
            "sinkhole %s stopped: %d events spooled, %d refused (spool not writable)",
            self.sensor.name,
            self.commit.committed,
            self.commit.failed,
        )
        if self.fast is not None:
            log.info(
                "sinkhole %s: %d connections accepted in C, %d of them handed to the loop, "
                "%d closed over the connection cap",
                self.sensor.name,
                self.fast.accepted,
                self.fast.handed_over,
                self.fast.refused,
            )

    async def _sweep(self) -> None:
        assert self.commit is not None
        s = self.settings
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            self.responses.tick()
            now = time.monotonic()
            for conn in list(self.connections):
                conn.check_timeouts(now, s.request_timeout, s.idle_timeout)
            if tick % 2 == 0:
                self.rules.reload_if_changed()
            await self.commit.rotate_if_due()


class HttpConnection(asyncio.Protocol):
    """One client connection: parse, spool, answer in order once durable."""

    __slots__ = (
        "base",
        "closing",
        "initial",
        "last_activity",
        "paused",
        "peer",
        "pending",
        "reader",
        "request_started",
        "transport",
        "worker",
    )

    def __init__(
        self, worker: Worker, initial: bytes = b"", peer: tuple[str, int] | None = None
    ) -> None:
        self.worker = worker
        # A connection the C accept path hands over: the bytes it read, and the peer it knows.
        self.initial = initial
        self.transport: asyncio.Transport | None = None
        # Made when the connection first sends something other than whole simple requests
        # one at a time (see ``data_received``); most connections never need one.
        self.reader: HttpRequestReader | None = None
        self.pending: deque[tuple[int, bool, bool]] = deque()
        self.closing = False
        self.paused = False
        self.last_activity = time.monotonic()
        self.request_started: float | None = None
        self.peer: tuple[str, int] = peer or ("", 0)
        self.base: list[Any] = worker.base  # the fields all this connection's rows share

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        w = self.worker
        if len(w.connections) >= w.max_connections:
            w.refused_connections += 1
            if w.refused_connections % 1000 == 1:
                log.warning("connection cap %d reached; closing new connections", w.max_connections)
            transport.abort()
            return
        self.transport = transport
        if not self.peer[0]:
            peer = transport.get_extra_info("peername")
            self.peer = (peer[0], peer[1]) if peer else ("", 0)
        if w.local is None:  # a wildcard address: each connection's own, in its own base row
            sock = transport.get_extra_info("sockname")
            local = (sock[0], sock[1]) if sock else ("", 0)
            self.base = http_base(peer=self.peer, local=local, sensor=w.sensor)
        # else the worker's base row holds the listening address: no system call to ask
        w.connections.add(self)
        if self.initial:
            data, self.initial = self.initial, b""
            self.data_received(data)
            if self.paused:
                # uvloop starts reading after connection_made whatever was paused in it
                asyncio.get_running_loop().call_soon(self._pause_again)

    def _pause_again(self) -> None:
        if self.paused and self.transport is not None:
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        now = time.monotonic()
        self.last_activity = now
        reader = self.reader
        if reader is None:
            # Nothing held from earlier reads. A read that is exactly one whole simple request
            # (nearly every check-in) is read here in one call, as the reader's fast path would
            # read it; anything else (a part, several, a request for llhttp) goes to a reader,
            # from the first byte.
            w = self.worker
            got = read_simple(data, 0, *w.simple_caps)
            if got is not None and got[8] == len(data):
                self.request_started = None
                # (method, target, version, headers, size, sha, prefix, keep-alive)
                self._record(*got[:8], None, w.response_status)
                return
            reader = self.reader = self.worker.new_reader()
        for req in reader.feed(data):
            self._handle(req)
            if self.closing:
                break
        if reader.in_request:
            if self.request_started is None:
                self.request_started = now
        else:
            self.request_started = None

    def _handle(self, req: ParsedRequest) -> None:
        self._record(
            *req.fields(),
            req.keep_alive and req.error is None,
            req.error,
            req.status or self.worker.response_status,
        )

    def _record(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        size: int,
        sha: str,
        prefix: bytes,
        keep: bool,
        error: str | None,
        status: int,
    ) -> None:
        """Spool one request's row; its answer goes out once the row is durable."""
        w = self.worker
        assert w.commit is not None
        row = w.row(
            method, target, version, headers, size, sha, prefix, error, status, self.peer, self.base
        )
        pending = self.pending
        pending.append((status, keep, method == "HEAD"))
        if not keep:
            # Answered, then closed: what else comes is ignored (``closing``). Reading is not
            # paused for it, which would cost a system call per connection.
            self.closing = True
        elif len(pending) > w.max_pipeline and not self.paused and self.transport is not None:
            self.paused = True  # too far ahead of its answers: read again at half (``_durable``)
            self.transport.pause_reading()
        w.commit.submit(row, self._durable)

    def _durable(self, ok: bool) -> None:
        status, keep, head = self.pending.popleft()
        transport = self.transport
        if transport is None:
            return
        if not ok:
            status = 503
        transport.write(self.worker.responses.get(status, keep, head))
        if not keep:
            transport.close()
        elif self.paused and len(self.pending) <= self.worker.max_pipeline // 2:
            self.paused = False
            transport.resume_reading()

    def stop_reading(self) -> None:
        self.closing = True
        if self.transport is not None and not self.paused:
            self.paused = True
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()
        if not self.pending:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def check_timeouts(self, now: float, request_timeout: float, idle_timeout: float) -> None:
        if self.transport is None or self.pending:
            return
        if self.request_started is not None and now - self.request_started > request_timeout:
            # Slow request (slowloris): answer 408 without recording a half request.
            self.worker.timeouts += 1
            self.transport.write(self.worker.responses.get(408, False, False))
            self.close()
        elif self.request_started is None and now - self.last_activity > idle_timeout:
            self.close()


# -- DNS -------------------------------------------------------------------------------------
def _dns_decide(
    worker: Worker, packet: bytes, peer: tuple[str, int], local: tuple[str, int], transport: str
) -> tuple[tuple[Any, ...], bytes | None, bytes | None]:
    """(row, answer, answer-if-spool-fails) for one query packet."""
    assert worker.dns_policy is not None
    now_us = time.time_ns() // 1000
    try:
        query = dns.parse_query(packet)
    except dns.DnsError as exc:
        reply = dns.error_response(exc)
        row = dns_row(
            None,
            None,
            "FORMERR" if reply else "DROPPED",
            None,
            packet,
            now_us=now_us,
            peer=peer,
            local=local,
            transport=transport,
            sensor=worker.sensor,
            error=str(exc),
        )
        return row, reply, None
    reply, rcode = dns.answer(query, worker.dns_policy)
    match = worker.rules.classify_dns(query.qname, query.qtype_name)
    row = dns_row(
        query.qname,
        query.qtype_name,
        rcode,
        match,
        packet,
        now_us=now_us,
        peer=peer,
        local=local,
        transport=transport,
        sensor=worker.sensor,
    )
    return row, reply, dns.servfail(query)


class DnsUdp(asyncio.DatagramProtocol):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        local = transport.get_extra_info("sockname")
        self.local = (local[0], local[1])

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        peer = (str(addr[0]), int(addr[1]))
        row, reply, fail = _dns_decide(self.worker, data, peer, self.local, "udp")
        assert self.worker.commit is not None
        self.worker.commit.submit(row, partial(self._send, addr, reply, fail))

    def _send(self, addr: Any, reply: bytes | None, fail: bytes | None, ok: bool) -> None:
        out = reply if ok else fail
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


class DnsTcp(asyncio.Protocol):
    """DNS over TCP: 2-byte length-prefixed messages, answered in order."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.peer = (peer[0], peer[1])
        self.local = (local[0], local[1])

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > 1 << 20:
            self.buffer.clear()
            if self.transport is not None:
                self.transport.close()
            return
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break
            packet = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            row, reply, fail = _dns_decide(self.worker, packet, self.peer, self.local, "tcp")
            assert self.worker.commit is not None
            self.worker.commit.submit(row, partial(self._send, reply, fail))

    def _send(self, reply: bytes | None, fail: bytes | None, ok: bool) -> None:
        out = reply if ok else fail
        if self.transport is None:
            return
        if out is None:
            self.transport.close()
        else:
            self.transport.write(len(out).to_bytes(2, "big") + out)


# -- processes -------------------------------------------------------------------------------
def _run_worker(settings: Settings, index: int, ready_file: Path | None) -> None:
    worker = Worker(settings, index)

    def ready(info: dict[str, Any]) -> None:
        if ready_file is None:
            return
        tmp = ready_file.with_name(f".{ready_file.name}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(info))
            tmp.replace(ready_file)
        except OSError as exc:  # a full disk must not stop the sinkhole: it answers 503
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            log.warning("cannot write %s (%s); serving anyway", ready_file, exc.strerror)

    uvloop.run(worker.run(ready))


def _free_port(host: str, kind: int) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(settings: Settings) -> None:
    """Run the sinkhole until SIGTERM/SIGINT: one worker inline, or N supervised processes."""
    home = Home(Path(settings.home))
    home.ensure()
    run_dir = home.run
    workers = max(1, int(settings.workers))
    if workers == 1:
        _run_worker(settings, 0, run_dir / "sinkhole.json")
        return
    # Several workers share the ports through SO_REUSEPORT; a port 0 is resolved first.
    host, port = parse_listen(settings.http_listen, "--http")
    if port == 0:
        settings = settings.replace(http_listen=f"{host}:{_free_port(host, socket.SOCK_STREAM)}")
    if settings.dns_listen:
        dhost, dport = parse_listen(settings.dns_listen, "--dns")
        if dport == 0:
            settings = settings.replace(
                dns_listen=f"{dhost}:{_free_port(dhost, socket.SOCK_DGRAM)}"
            )
    ctx = multiprocessing.get_context("fork")
    procs: dict[int, multiprocessing.process.BaseProcess] = {}

    def start(i: int) -> None:
        p = ctx.Process(
            target=_run_worker,
            args=(settings, i, run_dir / f"sinkhole-w{i}.json"),
            name=f"sinkhole-w{i}",
        )
        p.start()
        procs[i] = p

    stopping = False

    def forward(sig: int, _frame: Any) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for p in procs.values():
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, sig)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        for i in range(workers):
            start(i)
        while True:
            time.sleep(0.2)
            for i, p in list(procs.items()):
                if p.is_alive():
                    continue
                if stopping:
                    procs.pop(i)
                    continue
                log.error("sinkhole worker %d exited (code %s); restarting it", i, p.exitcode)
                time.sleep(1.0)
                start(i)
            if stopping and not procs:
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def spool_writable(home: Home) -> None:
    """Fail early, with the fix, when the home cannot hold a spool."""
    try:
        home.ensure()
    except OSError as exc:
        raise SpoolError(f"cannot create {home.root}: {exc.strerror}") from None
