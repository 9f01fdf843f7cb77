import asyncio
import hashlib

import pytest

from takedown.demo import start_sinkhole, stop_sinkhole
from takedown.home import Home
from takedown.simulate import loadgen


def test_refuses_anything_but_loopback():
    assert loadgen.check_loopback("127.0.0.1") == "127.0.0.1"
    assert loadgen.check_loopback("::1") == "::1"
    assert loadgen.check_loopback("localhost") in ("127.0.0.1", "::1")
    for host in ("10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1"):
        with pytest.raises(loadgen.NotLoopbackError):
            loadgen.check_loopback(host)
    with pytest.raises(loadgen.NotLoopbackError):
        asyncio.run(loadgen.run_load("192.0.2.1", 80, requests=1))


def test_bodies_and_bot_addresses_are_deterministic_and_loopback():
    assert loadgen.body_for(7, 96) == loadgen.body_for(7, 96)
    assert len(loadgen.body_for(7, 96)) == 96
    assert (
        hashlib.sha256(loadgen.body_for(7, 96)).hexdigest()
        != hashlib.sha256(loadgen.body_for(8, 96)).hexdigest()
    )
    addrs = {loadgen.bot_address(i) for i in range(5000)}
    assert len(addrs) == 5000
    assert all(loadgen.check_loopback(a) for a in list(addrs)[:50])


def test_request_shapes():
    req = loadgen.request_for(42, "rustock", 3, keep_alive=True)
    head, _, body = req.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /login.php?lg=42 HTTP/1.1")
    assert b"Content-Length: 96" in head and len(body) == 96
    close = loadgen.request_for(1, "checkin", 255, keep_alive=False)
    assert b"Connection: close" in close and b"&id=00000000000000ff" in close


def test_against_a_real_sinkhole_every_answer_is_remembered(tmp_path):
    proc, info = start_sinkhole(Home(tmp_path))
    try:
        result = asyncio.run(
            loadgen.run_load("127.0.0.1", info["http"][1], requests=300, connections=8, bots=50)
        )
    finally:
        stop_sinkhole(proc)
    assert result.answered == set(range(300))
    assert result.errors == 0 and sum(result.by_family.values()) == 300
