"""The sinkhole as a real process on loopback, driven through real sockets (and one
connection driven directly, for what a socket on loopback cannot show)."""

import json
import socket
import struct
import time

import duckdb
import pytest

from takedown import lake
from takedown.config import load_settings
from takedown.demo import start_sinkhole, stop_sinkhole
from takedown.home import Home
from takedown.simulate.loadgen import dns_query
from takedown.sinkhole.protocol import SPOOL_FIELDS, http_base
from takedown.sinkhole.server import HttpConnection, Worker

ZONE = "c2.example"
ENV = {
    "TAKEDOWN_REQUEST_TIMEOUT": "1",
    "TAKEDOWN_IDLE_TIMEOUT": "2",
    "TAKEDOWN_MAX_CONNECTIONS": "40",
    "TAKEDOWN_MAX_HEADER_BYTES": "4096",
}


@pytest.fixture(scope="module", params=["fast-accept", "uvloop-only"])
def sinkhole(request, tmp_path_factory):
    """The sinkhole with its C accept path (the default), and with every connection through
    uvloop's transports (``fast_accept`` off): each test runs against both."""
    home = Home(tmp_path_factory.mktemp("home"))
    env = {**ENV, "TAKEDOWN_FAST_ACCEPT": "1" if request.param == "fast-accept" else "0"}
    proc, info = start_sinkhole(home, "--dns", "127.0.0.1:0", "--zone", ZONE, env=env)
    yield home, proc, info
    if proc.poll() is None:
        stop_sinkhole(proc)


def connect(info):
    s = socket.create_connection(("127.0.0.1", info["http"][1]), timeout=5)
    return s


def read_responses(sock, count):
    data = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return out, data
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = dict(line.split(b": ", 1) for line in lines[1:])
        length = int(headers.get(b"Content-Length", b"0"))
        while len(data) < length:
            data += sock.recv(65536)
        out.append((int(lines[0].split()[1]), headers))
        data = data[length:]
    return out, data


def closed_by_peer(sock, wait=5.0):
    sock.settimeout(wait)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def post(path, body, extra=""):
    return (
        f"POST {path} HTTP/1.1\r\nHost: c2.example:80\r\nUser-Agent: t\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_keep_alive_and_pipelining(sinkhole):
    _, _, info = sinkhole
    with connect(info) as s:
        s.sendall(post("/login.php?t=ka1", b"x" * 96))
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 200 and resp[1][b"Connection"] == b"keep-alive"
        # Three requests in one write: three answers, in order, on the same connection.
        s.sendall(b"".join(post(f"/login.php?t=pipe{i}", b"y" * 96) for i in range(3)))
        resps, rest = read_responses(s, 3)
        assert [r[0] for r in resps] == [200, 200, 200] and rest == b""


def test_whole_split_and_pipelined_requests_on_one_connection(sinkhole):
    """A connection starts on the one-call path (whole simple requests) and moves to a reader
    when a request comes in pieces; every request is answered, in order, and recorded."""
    _, _, info = sinkhole
    with connect(info) as s:
        for i in range(2):  # the same head twice: the fast reader's memo answers the second
            s.sendall(post("/login.php?t=mix-whole", bytes([i]) * 96))
            (resp,), _ = read_responses(s, 1)
            assert resp[0] == 200
        split = post("/login.php?t=mix-split", b"s" * 96)
        s.sendall(split[:30])
        time.sleep(0.2)
        s.sendall(split[30:])
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 200
        s.sendall(post("/login.php?t=mix-pipe-a", b"a" * 96) + post("/x?t=mix-pipe-b", b"b"))
        resps, rest = read_responses(s, 2)
        assert [r[0] for r in resps] == [200, 200] and rest == b""


def test_chunked_body_and_connection_close(sinkhole):
    _, _, info = sinkhole
    with connect(info) as s:
        s.sendall(
            b"POST /gate.php?t=chunked HTTP/1.1\r\nHost: c2.example\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 200 and resp[1][b"Connection"] == b"close"
        assert closed_by_peer(s)


def test_http10_closes_by_default(sinkhole):
    _, _, info = sinkhole
    with connect(info) as s:
        s.sendall(b"GET /?t=http10 HTTP/1.0\r\n\r\n")
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 200
        assert closed_by_peer(s)


def test_malformed_and_oversized_requests_are_answered_and_closed(sinkhole):
    _, _, info = sinkhole
    with connect(info) as s:
        s.sendall(b"GARBAGE\x00\x01 nonsense\r\n\r\n")
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 400
        assert closed_by_peer(s)
    with connect(info) as s:
        s.sendall(b"GET /?t=big HTTP/1.1\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 431
        assert closed_by_peer(s)


def test_slow_request_gets_408_and_idle_connection_is_closed(sinkhole):
    _, _, info = sinkhole
    with connect(info) as slow, connect(info) as idle:
        slow.sendall(b"GET /slowloris HTTP/1.1\r\nHost: x\r\n")  # never finished
        t0 = time.monotonic()
        resps, _ = read_responses(slow, 1)
        assert resps and resps[0][0] == 408
        assert time.monotonic() - t0 < 4.5
        # A connection that sends nothing: the kernel holds it a second or two before the C
        # accept path takes it (TCP_DEFER_ACCEPT), then the idle timeout (2 s) closes it.
        assert closed_by_peer(idle, wait=8)


def test_connection_cap_closes_extra_connections_but_keeps_serving(sinkhole):
    _, _, info = sinkhole
    socks = [connect(info) for _ in range(40)]
    try:
        for i, s in enumerate(socks):  # 40 open (keep-alive) connections: the cap
            s.sendall(post(f"/login.php?t=cap{i}", b"c" * 96))
            (resp,), _ = read_responses(s, 1)
            assert resp[0] == 200
        extra = connect(info)
        extra.sendall(post("/login.php?t=overcap", b"o" * 96))
        try:
            resps, _ = read_responses(extra, 1)
        except ConnectionResetError:  # closed with the request unread: a reset
            resps = []
        assert resps == []  # closed unanswered (and unrecorded)
        extra.close()
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    with connect(info) as s:
        s.sendall(post("/login.php?t=aftercap", b"z" * 96))
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 200


def test_dns_udp_and_tcp(sinkhole):
    _, _, info = sinkhole
    port = info["dns"][1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(dns_query(0x1234, f"cc.{ZONE}"), ("127.0.0.1", port))
        answer = u.recv(4096)
        assert answer[:2] == b"\x12\x34"
        assert answer[3] & 0x0F == 0 and struct.unpack("!H", answer[6:8])[0] == 1
        assert answer[-4:] == socket.inet_aton("127.0.0.1")
        u.sendto(dns_query(0x4321, "www.not-sinkholed.test"), ("127.0.0.1", port))
        refused = u.recv(4096)
        assert refused[3] & 0x0F == 5
    with socket.create_connection(("127.0.0.1", port), timeout=5) as t:
        q = dns_query(7, f"tcp.{ZONE}")
        t.sendall(len(q).to_bytes(2, "big") + q)
        size = int.from_bytes(t.recv(2), "big")
        data = b""
        while len(data) < size:
            data += t.recv(size - len(data))
        assert data[:2] == b"\x00\x07" and data[-4:] == socket.inet_aton("127.0.0.1")


def test_rules_reload_without_restart(sinkhole):
    home, _, info = sinkhole
    (home.rules / "local.toml").write_text(
        "[[rule]]\nid = 'local.beacon'\nmalware = 'testbot'\nbasis = 'test'\n"
        "confidence = 60\npath = '^/beacon$'\n"
    )
    time.sleep(3.5)  # the worker polls rule files every 2 s
    with connect(info) as s:
        s.sendall(b"GET /beacon HTTP/1.1\r\nHost: x\r\n\r\n")
        (resp,), _ = read_responses(s, 1)
        assert resp[0] == 200


def test_zz_sigterm_flushes_and_every_request_is_an_event(sinkhole):
    home, proc, _ = sinkhole
    assert stop_sinkhole(proc) == 0
    assert not list(home.spool.glob("*/*.open"))
    report = lake.ingest(home)
    assert report.events > 0
    src = lake.events_sql(home)
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT extra.http.target AS t, extra.http.status AS st, malware.name AS m, "
        f"destination.fqdn AS host, extra.body.size AS size, extra.error AS e, "
        f"extra.dns.rcode AS rcode, protocol.transport AS tr FROM {src}"
    ).fetchall()
    by_target = {r[0]: r for r in rows if r[0]}
    assert by_target["/login.php?t=ka1"][2] == "rustock"
    assert by_target["/login.php?t=ka1"][3] == "c2.example"
    assert all(f"/login.php?t=pipe{i}" in by_target for i in range(3))
    assert by_target["/gate.php?t=chunked"][4] == 11
    assert by_target["/?t=big"][1] == 431 and by_target["/?t=big"][5]
    assert by_target["/beacon"][2] == "testbot"
    assert "/slowloris" not in by_target  # a half request is not an event
    assert all(f"/login.php?t=cap{i}" in by_target for i in range(40))
    assert "/login.php?t=overcap" not in by_target
    whole = [r for r in rows if r[0] == "/login.php?t=mix-whole"]
    assert len(whole) == 2 and all(r[2] == "rustock" and r[3] == "c2.example" for r in whole)
    assert by_target["/login.php?t=mix-split"][4] == 96
    assert by_target["/x?t=mix-pipe-b"][4] == 1
    dns = [r for r in rows if r[6]]
    assert {(r[6], r[7]) for r in dns} >= {
        ("NOERROR", "udp"),
        ("REFUSED", "udp"),
        ("NOERROR", "tcp"),
    }
    assert any(r[5] and "malformed" in r[5] for r in rows)


def test_two_workers_share_the_port_each_with_its_own_spool(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "takedown",
            "--home",
            str(tmp_path),
            "sinkhole",
            "serve",
            "--http",
            "127.0.0.1:0",
            "--workers",
            "2",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(list(home.run.glob("sinkhole-w*.json"))) < 2:
            time.sleep(0.05)
        infos = [json.loads(p.read_text()) for p in sorted(home.run.glob("sinkhole-w*.json"))]
        assert len(infos) == 2 and infos[0]["http"] == infos[1]["http"]
        for i in range(60):
            with connect(infos[0]) as s:
                s.sendall(post(f"/login.php?t=w{i}", b"w" * 96, "Connection: close\r\n"))
                (resp,), _ = read_responses(s, 1)
                assert resp[0] == 200
    finally:
        stop_sinkhole(proc)
    sensors = {p.name for p in home.spool.iterdir() if p.is_dir()}
    assert len(sensors) == 2
    assert lake.ingest(home).events == 60


class _Transport:
    """Just what HttpConnection asks of a transport (for the unit test below)."""

    def __init__(self, peer, local):
        self.extra = {"peername": peer, "sockname": local}
        self.sent = []

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def write(self, data):
        self.sent.append(data)

    def close(self):
        pass


def test_rows_carry_each_connections_own_addresses(tmp_path):
    """Listening on a wildcard address, each connection's local address is its own (asked of
    the transport); on a fixed one it is the worker's. Both reach every row, on the one-call
    path and through the reader."""
    worker = Worker(load_settings({"home": str(tmp_path)}, {}), 0)
    rows = []

    class Commit:
        def submit(self, row, waiter):
            rows.append(row)
            waiter(True)

    worker.commit = Commit()  # type: ignore[assignment]
    index = {f.name: i for i, f in enumerate(SPOOL_FIELDS)}

    def run(peer, local, data):
        conn = HttpConnection(worker)
        transport = _Transport(peer, local)
        conn.connection_made(transport)  # type: ignore[arg-type]
        for piece in data:
            conn.data_received(piece)
        return transport

    whole = post("/login.php?t=own", b"o" * 96)
    assert worker.local is None
    run(("10.1.1.1", 1111), ("192.0.2.7", 80), [whole])
    run(("10.2.2.2", 2222), ("198.51.100.9", 8080), [whole[:20], whole[20:]])
    worker.local = ("127.0.0.1", 9)
    worker.base = http_base(peer=("", 0), local=worker.local, sensor=worker.sensor)
    sent = run(("10.3.3.3", 3333), ("203.0.113.5", 1), [whole])
    assert sent.sent and sent.sent[0].startswith(b"HTTP/1.1 200")

    def field(row, name):
        return row[index[name]]

    got = [
        (
            field(r, "source.ip"),
            field(r, "source.port"),
            field(r, "destination.ip"),
            field(r, "destination.port"),
            field(r, "malware.name"),
        )
        for r in rows
    ]
    assert got == [
        ("10.1.1.1", 1111, "192.0.2.7", 80, "rustock"),
        ("10.2.2.2", 2222, "198.51.100.9", 8080, "rustock"),
        ("10.3.3.3", 3333, "127.0.0.1", 9, "rustock"),
    ]
