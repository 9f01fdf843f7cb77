"""New HTTP connections accepted and read in C; the common check-in answered without uvloop.

Nearly every bot check-in is a new connection with one whole request that asks to be closed.
``FastAccept`` listens itself, and on each wake-up ``_accept.Acceptor`` (C) accepts the waiting
connections and reads each once. A connection whose first read is exactly one simple request
(``fastpath.read_simple``) that closes the connection is recorded here and, once its event is
durable, answered and closed by ``Acceptor.reply``: no transport, no protocol object, no loop
pass between accept and read. Every other connection (nothing read yet, part of a request,
keep-alive, pipelining, a request for llhttp) is handed to uvloop with the bytes already read,
and from there is an ordinary ``HttpConnection``. Where ``_accept`` was not built, or the
``fast_accept`` setting is off, the worker listens through uvloop alone.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from takedown.sinkhole.fastpath import read_simple
from takedown.sinkhole.protocol import http_base

if TYPE_CHECKING:
    from takedown.sinkhole.server import Worker

Acceptor: Any
try:
    from takedown.sinkhole._accept import Acceptor
except ImportError:  # pragma: no cover - the package build compiles it
    Acceptor = None

__all__ = ["NATIVE", "FastAccept", "listen_sockets"]

log = logging.getLogger(__name__)

NATIVE = Acceptor is not None
DEFER_ACCEPT = 1  # seconds (TCP_DEFER_ACCEPT)
BATCH = 128  # connections accepted per wake-up at most (then the loop serves the rest)
_OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def listen_sockets(host: str, port: int, backlog: int = 4096) -> list[socket.socket]:
    """Listening TCP sockets on every address of ``host`` (as ``loop.create_server`` makes
    them: SO_REUSEADDR, SO_REUSEPORT so that workers share the port, IPv6 only on IPv6)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr[0]) in seen:
                continue
            seen.add((family, addr[0]))
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # Port 0: the others take the port the system chose for the first.
            sock.bind((addr[0], port, *addr[2:]))
            port = sock.getsockname()[1]
            # A connection is accepted once its first bytes are there (or a second has passed,
            # for one that sends nothing): the one read finds the request.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


class FastAccept:
    """A worker's HTTP listening sockets, each watched by the loop and drained by an
    ``Acceptor``."""

    def __init__(
        self,
        worker: Worker,
        socks: list[socket.socket],
        connection: Callable[[bytes, tuple[str, int]], asyncio.Protocol],
    ) -> None:
        assert Acceptor is not None
        self.worker = worker
        self.loop = asyncio.get_running_loop()
        self.socks = socks
        self.connection = connection  # makes the protocol of a handed-over connection
        wildcard = worker.local is None
        self.acceptors = [Acceptor(s.fileno(), self._leftover, wildcard) for s in socks]
        self.handed_over = 0
        self.closed = False
        self._refused_logged = 0
        self._files_logged = 0.0
        for sock, acc in zip(socks, self.acceptors, strict=True):
            self.loop.add_reader(sock.fileno(), self._ready, acc)

    @property
    def held(self) -> int:
        """Connections accepted here and not yet answered or handed over."""
        return sum(a.held for a in self.acceptors)

    @property
    def refused(self) -> int:
        return sum(a.refused for a in self.acceptors)

    @property
    def accepted(self) -> int:
        return sum(a.accepted for a in self.acceptors)

    def _ready(self, acc: Any) -> None:
        w = self.worker
        commit = w.commit
        assert commit is not None
        room = w.max_connections - len(w.connections) - self.held
        refused = acc.refused
        caps = w.simple_caps
        status = w.response_status
        responses = w.responses
        reply = acc.reply
        for fd, host, port, data, local in acc.accept(BATCH, room):
            try:
                got = read_simple(data, 0, *caps) if data else None
                if got is None or got[7] or got[8] != len(data):
                    self._hand_over(fd, data, (host, port))
                    acc.held -= 1
                    continue
                method, target, version, headers, size, sha, prefix = got[:7]
                peer = (host, port)
                base = (
                    w.base if local is None else http_base(peer=peer, local=local, sensor=w.sensor)
                )
                row = w.row(
                    method, target, version, headers, size, sha, prefix, None, status, peer, base
                )
                head = method == "HEAD"
                answer = responses.get(status, False, head)
                commit.submit(row, partial(reply, fd, answer, responses.get(503, False, head)))
            except Exception:  # one connection must not take the batch's others down with it
                log.exception("taking a new connection failed; closed unanswered")
                reply(fd, b"", b"", False)  # nothing sent, closed, no longer held
        if acc.refused != refused:
            self._cap_reached()
        if acc.error:
            self._accept_failed(acc)

    def _cap_reached(self) -> None:
        refused = self.refused
        if not self._refused_logged or refused // 1000 != self._refused_logged // 1000:
            log.warning(
                "connection cap %d reached; closing new connections (%d so far)",
                self.worker.max_connections,
                refused,
            )
        self._refused_logged = refused

    def _accept_failed(self, acc: Any) -> None:
        """accept() failed for want of descriptors or memory: the queue stays full, so the
        socket is not watched for a tenth of a second (else the loop would spin on it)."""
        err = acc.error
        now = time.monotonic()
        if now - self._files_logged > 10:
            self._files_logged = now
            log.warning("cannot accept connections: %s", errno.errorcode.get(err, err))
        if err in _OUT_OF_FILES:
            self.loop.remove_reader(acc.fd)
            self.loop.call_later(0.1, self._watch_again, acc)

    def _watch_again(self, acc: Any) -> None:
        if not self.closed:
            self.loop.add_reader(acc.fd, self._ready, acc)

    def _hand_over(self, fd: int, data: bytes, peer: tuple[str, int]) -> None:
        """The connection on ``fd`` goes on as an ordinary uvloop connection; ``data`` (what
        was read of it) is what its protocol hears first."""
        protocol = self.connection(data, peer)  # before the socket object owns ``fd``
        # Family (from the peer's address: the IPv6 sockets take IPv6 only) and type given,
        # the socket object asks the system nothing.
        family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
        self._adopt(socket.socket(family, socket.SOCK_STREAM, 0, fileno=fd), protocol)
        self.handed_over += 1

    def _leftover(self, fd: int, rest: bytes) -> None:
        """The rest of a reply the socket did not take at once: a transport sends it."""
        self._adopt(socket.socket(fileno=fd), _SendAndClose(rest))

    def _adopt(self, sock: socket.socket, protocol: asyncio.Protocol) -> None:
        _drive(self.loop.connect_accepted_socket(lambda: protocol, sock))

    def close(self) -> None:
        """Stop accepting; connections already held are answered as their events commit."""
        for sock in self.socks:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self.closed = True


def _drive(coro: Coroutine[Any, Any, Any], _: object = None) -> None:
    """Run a coroutine to its end, resuming it when each future it waits for is done: what a
    Task does, without a Task's scheduling and context (``connect_accepted_socket`` makes the
    transport in its first step and then waits once, for ``connection_made``)."""
    try:
        future = coro.send(None)
    except StopIteration:
        return
    except Exception as exc:  # the peer went away before the loop took it: nothing answered
        log.debug("handing a connection to the loop failed: %s", exc)
        return
    if future is None:  # a bare yield: go on at the loop's next turn
        asyncio.get_running_loop().call_soon(_drive, coro)
    else:
        future.add_done_callback(partial(_drive, coro))


class _SendAndClose(asyncio.Protocol):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        t.write(self.data)
        t.close()
