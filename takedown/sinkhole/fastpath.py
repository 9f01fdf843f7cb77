"""The common request read in one pass, without llhttp's per-header callbacks.

Nearly every bot check-in is a plain request whose head and body arrive in one read: a known
method, a printable target, HTTP/1.0 or 1.1, well-formed header lines, no Transfer-Encoding,
at most one Content-Length. ``read_simple`` recognises exactly that case with one regular
expression over the head (C speed) and builds the request's fields from it; anything else
(or anything it is not sure of) is left to the llhttp path in ``protocol``, which reads the
same bytes from the same position. A differential test holds the two to the same answer on
every input the fast path accepts.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

__all__ = ["NATIVE", "Simple", "read_simple", "read_simple_python"]

# The methods llhttp accepts that bots use; any other method takes the llhttp path.
_METHODS = rb"GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH"
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# Targets start with "/" (llhttp judges the other forms); header values are tabs and
# printable ASCII (obs-text and controls are llhttp's to judge); llhttp drops the spaces and
# tabs before a value, and keeps those after it.
_HEAD = re.compile(
    rb"(?:" + _METHODS + rb") /[!-~]* HTTP/1\.([01])\r\n(?:" + _TOKEN + rb":[\t -~]*\r\n)*\r\n"
)
# Headers that change how llhttp frames or hands over the connection: never on the fast path.
_FRAMING = frozenset({"transfer-encoding", "upgrade", "proxy-connection"})

# (method, target, version, headers, body size, body SHA-256, body prefix, keep-alive, end)
Simple = tuple[str, str, str, dict[str, str], int, str, bytes, bool, int]


def read_simple_python(
    buf: bytes, pos: int, raw_bytes: int, max_header_bytes: int, max_body_bytes: int
) -> Simple | None:
    """The request starting at ``buf[pos]`` when it is simple and complete, else None.

    The reference: ``_scan.read_simple`` (C) gives the same answer for every input, about five
    times faster, and is what ``read_simple`` is wherever the package was built."""
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0 or end - pos > max_header_bytes:
        return None
    m = _HEAD.match(buf, pos, end + 4)
    if m is None or m.end() != end + 4:
        return None
    lines = buf[pos:end].decode("ascii").split("\r\n")
    # llhttp's count of head bytes (request line + 2, each header line + 1 at most) stays
    # within the cap when this does; a head near the cap is left to llhttp to count.
    if end - pos + len(lines) + 2 > max_header_bytes:
        return None
    method, target, _ = lines[0].split(" ")
    del lines[0]
    headers = {
        name.lower(): value.lstrip(" \t")
        for name, _, value in [line.partition(":") for line in lines]
    }
    if len(headers) != len(lines) or not headers.keys().isdisjoint(_FRAMING):
        return None  # a repeated header (llhttp joins or refuses them) or a framing one
    version = "1.1" if m.group(1) == b"1" else "1.0"
    connection = headers.get("connection")
    if connection is None:
        keep = version == "1.1"
    else:
        token = connection.lower()
        if token == "close":
            keep = False
        elif token == "keep-alive":
            keep = True
        else:
            return None
    length = headers.get("content-length")
    body_start = end + 4
    if length is None:
        body = b""
    else:
        if not (length.isdigit() and len(length) <= 18):
            return None
        n = int(length)
        if n > max_body_bytes or body_start + n > len(buf):
            return None
        body = buf[body_start : body_start + n]
    return (
        method,
        target,
        version,
        headers,
        len(body),
        hashlib.sha256(body).hexdigest(),
        body[:raw_bytes],
        keep,
        body_start + len(body),
    )


class _Reader(Protocol):
    def __call__(
        self, buf: bytes, pos: int, raw_bytes: int, max_header_bytes: int, max_body_bytes: int
    ) -> Simple | None: ...


read_simple: _Reader
try:
    from takedown.sinkhole._scan import read_simple
except ImportError:  # pragma: no cover - the package build compiles it
    read_simple = read_simple_python
NATIVE = read_simple is not read_simple_python
