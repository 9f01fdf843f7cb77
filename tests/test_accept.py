"""The C accept path: ``_accept.Acceptor`` on real loopback sockets, and the sinkhole's use of
it (``FastAccept``) as a real process."""

import asyncio
import contextlib
import logging
import os
import resource
import select
import socket
import threading
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown import lake
from takedown.config import load_settings
from takedown.demo import start_sinkhole, stop_sinkhole
from takedown.home import Home
from takedown.sinkhole import accept
from takedown.sinkhole._accept import Acceptor
from takedown.sinkhole.server import Worker

CHECKIN = (
    b"POST /login.php HTTP/1.1\r\nHost: c2.example\r\nUser-Agent: t\r\nConnection: close\r\n"
    b"Content-Length: 96\r\n\r\n" + b"k" * 96
)


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    yield sock
    sock.close()


def client(listener, data=b""):
    c = socket.create_connection(listener.getsockname(), timeout=5)
    if data:
        c.sendall(data)
    return c


def waiting(listener, timeout=5.0):
    """Wait until a connection is queued on the listening socket."""
    assert select.select([listener], [], [], timeout)[0]


def accept_all(acc, count, room=100, timeout=5.0):
    """``count`` connections from ``acc`` (they may take a moment to reach the queue)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += acc.accept(count - len(got), room - len(got))
        time.sleep(0.01)
    return got


def recv_all(c):
    data = b""
    while True:
        try:
            chunk = c.recv(65536)
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


def nothing_left(_fd, _rest):
    raise AssertionError("a short answer went out whole")


def test_a_connection_is_accepted_read_once_and_answered_then_closed(listener):
    acc = Acceptor(listener.fileno(), nothing_left)
    c = client(listener, CHECKIN)
    time.sleep(0.05)  # the request reaches the server's socket before it is accepted
    ((fd, host, port, data, local),) = accept_all(acc, 1)
    assert (host, port) == c.getsockname()
    assert data == CHECKIN and local is None
    assert acc.held == 1 and acc.accepted == 1
    acc.reply(fd, b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 503 x\r\n\r\n", True)
    assert acc.held == 0
    assert recv_all(c) == (b"HTTP/1.1 200 OK\r\n\r\n", "eof")
    c.close()


def test_a_refused_write_sends_the_failure_answer(listener):
    acc = Acceptor(listener.fileno(), nothing_left)
    c = client(listener, CHECKIN)
    time.sleep(0.05)
    ((fd, *_),) = accept_all(acc, 1)
    acc.reply(fd, b"ok", b"503", False)
    assert recv_all(c) == (b"503", "eof")


def test_nothing_read_yet_comes_back_empty_and_a_silent_close_not_at_all(listener):
    acc = Acceptor(listener.fileno(), nothing_left)
    quiet = client(listener)  # connected, nothing sent: the worker hands it to the loop
    gone = client(listener)
    gone.close()  # closed before sending anything: no connection to speak of
    time.sleep(0.2)
    got = acc.accept(10, 100)
    assert [(g[1], g[2], g[3]) for g in got] == [(*quiet.getsockname(), b"")]
    assert acc.empty == 1 and acc.accepted == 2 and acc.held == 1
    quiet.close()


def test_connections_past_the_room_left_are_closed_at_once(listener):
    acc = Acceptor(listener.fileno(), nothing_left)
    clients = [client(listener, CHECKIN) for _ in range(3)]
    time.sleep(0.1)
    got = acc.accept(10, 1)
    assert len(got) == 1 and acc.refused == 2 and acc.held == 1
    (taken,) = [c for c in clients if c.getsockname()[1] == got[0][2]]
    assert [recv_all(c)[0] for c in clients if c is not taken] == [b"", b""]  # closed
    acc.reply(got[0][0], b"x", b"y", True)
    assert recv_all(taken) == (b"x", "eof")


def test_a_batch_takes_at_most_its_size_and_the_rest_waits(listener):
    acc = Acceptor(listener.fileno(), nothing_left)
    clients = [client(listener, CHECKIN) for _ in range(5)]
    time.sleep(0.1)
    first = acc.accept(2, 100)
    assert len(first) == 2 and acc.error == 0
    rest = accept_all(acc, 3)
    assert len(rest) == 3 and acc.accept(10, 100) == [] and acc.error == 0
    for fd, *_ in first + rest:
        acc.reply(fd, b"a", b"b", True)
    assert [recv_all(c)[0] for c in clients] == [b"a"] * 5


def test_the_local_address_is_asked_for_on_a_wildcard_listen():
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen(8)
    sock.setblocking(False)
    try:
        acc = Acceptor(sock.fileno(), nothing_left, True)
        c = socket.create_connection(("127.0.0.1", sock.getsockname()[1]), timeout=5)
        c.sendall(CHECKIN)
        time.sleep(0.05)
        ((fd, host, _, _, local),) = accept_all(acc, 1)
        assert local == ("127.0.0.1", sock.getsockname()[1]) and host == "127.0.0.1"
        acc.reply(fd, b"", b"", True)
        c.close()
    finally:
        sock.close()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_peers_read_as_uvloop_gives_them():
    try:
        sock = socket.socket(socket.AF_INET6)
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    sock.listen(8)
    sock.setblocking(False)
    try:
        acc = Acceptor(sock.fileno(), nothing_left)
        c = socket.create_connection(("::1", sock.getsockname()[1]), timeout=5)
        c.sendall(CHECKIN)
        time.sleep(0.05)
        ((fd, host, port, data, _),) = accept_all(acc, 1)
        assert (host, port) == c.getsockname()[:2] == ("::1", port) and data == CHECKIN
        acc.reply(fd, b"v6", b"", True)
        assert recv_all(c) == (b"v6", "eof")
    finally:
        sock.close()


def test_an_answer_the_socket_cannot_take_at_once_goes_to_leftover(listener):
    # 8 MiB to a client that is not reading: the socket takes what its buffers hold, and the
    # rest (fd still open) is handed on; here a thread sends it, as the loop would.
    answer = bytes(range(256)) * (8 << 12)
    handed = []

    def leftover(fd, rest):
        handed.append(len(rest))

        def finish():
            s = socket.socket(fileno=fd)
            s.setblocking(True)
            s.sendall(rest)
            s.close()

        threading.Thread(target=finish).start()

    acc = Acceptor(listener.fileno(), leftover)
    c = client(listener, CHECKIN)
    time.sleep(0.05)
    ((fd, *_),) = accept_all(acc, 1)
    acc.reply(fd, answer, b"", True)
    assert acc.partial == 1 and len(handed) == 1 and 0 < handed[0] < len(answer)
    assert recv_all(c) == (answer, "eof")


def test_bad_arguments_are_errors_not_crashes(listener):
    acc = Acceptor(listener.fileno(), nothing_left)
    with pytest.raises(TypeError):
        acc.accept(1)
    with pytest.raises(TypeError):
        acc.reply(1, "text", b"", True)
    with pytest.raises(ValueError):
        acc.reply(-1, b"", b"", True)
    with pytest.raises(TypeError):
        Acceptor(listener.fileno(), "not callable")


def test_listen_sockets_defer_accept_and_share_the_port():
    socks = accept.listen_sockets("127.0.0.1", 0)
    try:
        (sock,) = socks
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        again = accept.listen_sockets("127.0.0.1", sock.getsockname()[1])  # a second worker
        again[0].close()
    finally:
        for s in socks:
            s.close()


# -- the sinkhole with it -------------------------------------------------------------------
SEEN: dict[str, tuple[tuple[str, int], int]] = {}  # from a test to the module's last


@pytest.fixture(scope="module")
def wildcard(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("home"))
    env = {"TAKEDOWN_MAX_PIPELINE": "4", "TAKEDOWN_REQUEST_TIMEOUT": "1"}
    proc, info = start_sinkhole(home, env=env, http="0.0.0.0:0")
    yield home, proc, info
    if proc.poll() is None:
        stop_sinkhole(proc)


def send(info, data, shut=False):
    with socket.create_connection(("127.0.0.1", info["http"][1]), timeout=10) as c:
        c.sendall(data)
        if shut:
            c.shutdown(socket.SHUT_WR)
        return recv_all(c)[0], c.getsockname()


def test_checkins_on_a_wildcard_listen_head_and_pipelined_past_the_cap(wildcard):
    _, _, info = wildcard
    answer, here = send(info, CHECKIN.replace(b"/login.php", b"/login.php?t=wild"))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in answer
    head, _ = send(info, b"HEAD /?t=head HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")  # no body
    # 12 requests in one write, the last closing, with 4 unanswered at most before the
    # worker stops reading: handed to the loop, all answered in order.
    pipe = b"".join(
        f"GET /?t=pipe{i} HTTP/1.1\r\nHost: h\r\n{'Connection: close' if i == 11 else 'X: y'}"
        f"\r\n\r\n".encode()
        for i in range(12)
    )
    answers, _ = send(info, pipe)
    assert answers.count(b"HTTP/1.1 200 OK") == 12
    SEEN["wild"] = (here, info["http"][1])  # the client's address and the listening port


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.builds(
            lambda cut, junk: CHECKIN[:cut] + junk,
            st.integers(0, len(CHECKIN)),
            st.binary(max_size=40),
        ),
    ),
    st.booleans(),
)
def test_any_first_read_leaves_the_sinkhole_serving(wildcard, data, shut):
    _, proc, info = wildcard
    with socket.create_connection(("127.0.0.1", info["http"][1]), timeout=10) as c:
        if data:
            c.sendall(data)
        if shut:
            c.shutdown(socket.SHUT_WR)
        c.settimeout(0.05 if not shut else 10)
        with contextlib.suppress(TimeoutError):  # unfinished, still waited for: not in the way
            recv_all(c)
    answer, _ = send(info, CHECKIN)
    assert answer.startswith(b"HTTP/1.1 200") and proc.poll() is None


def test_zz_events_of_the_c_path_carry_their_addresses(wildcard):
    home, proc, _ = wildcard
    assert stop_sinkhole(proc) == 0
    lake.ingest(home)
    rows = (
        duckdb.connect()
        .sql(
            f"SELECT extra.http.target, source.ip, source.port, destination.ip, "
            f"destination.port, malware.name, extra.http.method FROM {lake.events_sql(home)}"
        )
        .fetchall()
    )
    by_target = {r[0]: r for r in rows}
    (client_ip, client_port), port = SEEN["wild"]
    assert by_target["/login.php?t=wild"][1:6] == (
        client_ip,
        client_port,
        "127.0.0.1",
        port,
        "rustock",
    )
    assert by_target["/?t=head"][6] == "HEAD"
    assert all(f"/?t=pipe{i}" in by_target for i in range(12))


def test_a_connection_that_cannot_be_recorded_is_closed_unanswered_and_the_rest_go_on(
    tmp_path, caplog
):
    """In-process: FastAccept on a real listening socket and loop, its worker's row builder
    failing for one request; that connection is closed without an answer (nothing recorded,
    nothing acknowledged), the ones around it are answered."""
    worker = Worker(load_settings({"home": str(tmp_path)}, {}), 0)
    rows = []

    class Commit:
        def submit(self, row, waiter):
            rows.append(row)
            asyncio.get_running_loop().call_soon(waiter, True)

    worker.commit = Commit()  # type: ignore[assignment]
    real_row = worker.row

    def row(method, target, *rest):
        if "boom" in target:
            raise RuntimeError("a row that cannot be built")
        return real_row(method, target, *rest)

    worker.row = row  # type: ignore[method-assign]

    async def main():
        socks = accept.listen_sockets("127.0.0.1", 0)
        worker.local = socks[0].getsockname()[:2]
        fast = accept.FastAccept(worker, socks, lambda data, peer: None)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()

        def exchange(target):
            with socket.create_connection(worker.local, timeout=5) as c:
                c.sendall(CHECKIN.replace(b"/login.php", target))
                return recv_all(c)

        try:
            got = [await loop.run_in_executor(None, exchange, t) for t in (b"/a", b"/boom", b"/b")]
        finally:
            fast.close()
        return got, fast

    with caplog.at_level(logging.ERROR, logger="takedown.sinkhole.accept"):
        got, fast = asyncio.run(main())
    assert [g[0][:15] for g in got] == [b"HTTP/1.1 200 OK", b"", b"HTTP/1.1 200 OK"]
    assert len(rows) == 2 and fast.held == 0 and fast.accepted == 3
    assert "taking a new connection failed" in caplog.text


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_the_worker_waits_and_serves_again(tmp_path):
    """accept() failing with EMFILE (the worker's descriptors used up by open connections)
    neither crashes nor spins the worker: it logs, waits, and once descriptors are free
    again answers the connection that waited in the queue."""
    home = Home(tmp_path)
    log_file = tmp_path / "sinkhole.log"
    proc, info = start_sinkhole(home, log=log_file)
    try:
        pid = info["pid"]
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 20, hard))
        port = info["http"][1]
        held = []
        keep = b"GET /?t=hold HTTP/1.1\r\nHost: h\r\n\r\n"
        for _ in range(40):  # keep-alive connections until the worker has no descriptor left
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(keep)
            c.settimeout(0.5)
            try:
                answered = c.recv(4096).startswith(b"HTTP/1.1 200")
            except TimeoutError:
                answered = False
            held.append(c)
            if not answered:
                break
        else:
            pytest.fail("40 open connections did not use up the worker's descriptors")
        waiting = socket.create_connection(("127.0.0.1", port), timeout=15)
        waiting.sendall(CHECKIN.replace(b"/login.php", b"/login.php?t=after-emfile"))
        before = cpu_seconds(pid)
        time.sleep(1.0)
        assert proc.poll() is None
        assert cpu_seconds(pid) - before < 0.5  # waiting, not spinning on the full queue
        for c in held:
            c.close()
        answer, how = recv_all(waiting)
        assert answer.startswith(b"HTTP/1.1 200") and how == "eof"
        waiting.close()
    finally:
        stop_sinkhole(proc)
    assert "cannot accept connections: EMFILE" in log_file.read_text()


def test_an_ipv6_sinkhole_answers_on_both_paths(tmp_path):
    """On an IPv6 address: a closing check-in answered from C, a keep-alive one handed to
    uvloop (an IPv6 socket object), both recorded with the client's IPv6 address."""
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    finally:
        probe.close()
    home = Home(tmp_path)
    proc, info = start_sinkhole(home, http="[::1]:0")
    try:
        for target, extra in ((b"/v6-close", b"Connection: close\r\n"), (b"/v6-keep", b"")):
            with socket.create_connection(("::1", info["http"][1]), timeout=10) as c:
                c.sendall(
                    b"POST "
                    + target
                    + b" HTTP/1.1\r\nHost: h\r\n"
                    + extra
                    + b"Content-Length: 2\r\n\r\nhi"
                )
                c.settimeout(10)
                assert c.recv(4096).startswith(b"HTTP/1.1 200 OK")
    finally:
        assert stop_sinkhole(proc) == 0
    lake.ingest(home)
    rows = (
        duckdb.connect()
        .sql(f"SELECT extra.http.target, source.ip, destination.ip FROM {lake.events_sql(home)}")
        .fetchall()
    )
    assert sorted(rows) == [("/v6-close", "::1", "::1"), ("/v6-keep", "::1", "::1")]
