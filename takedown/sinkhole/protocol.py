"""Sans-I/O HTTP side of the sinkhole: bytes in, parsed requests out, requests to event rows.

``HttpRequestReader`` wraps httptools (the llhttp parser) and turns a connection's byte stream
into ``ParsedRequest`` objects (pipelining, chunked and Content-Length bodies), enforcing the
header and body caps. ``http_row`` and ``dns_row`` build one spool row per request. Nothing here
touches a socket, a file or a clock of its own; it is all fuzzed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import httptools

from takedown.schema import FIELDS, flat_schema
from takedown.sinkhole.fastpath import read_simple
from takedown.sinkhole.rules import Match, RuleSet

__all__ = [
    "SPOOL_FIELDS",
    "SPOOL_SCHEMA",
    "HttpRequestReader",
    "ParsedRequest",
    "Sensor",
    "dns_row",
    "http_base",
    "http_row",
    "http_row_of",
]

# Enrichment fields are filled later, from the lake; the sinkhole spools the rest.
_ENRICHED = {"source.asn", "source.as_name", "source.network", "source.geolocation.cc"}
SPOOL_FIELDS = tuple(f for f in FIELDS if f.name not in _ENRICHED)
SPOOL_SCHEMA = flat_schema(SPOOL_FIELDS)
_SPOOL_NAMES = tuple(f.name for f in SPOOL_FIELDS)
_to_row = itemgetter(*_SPOOL_NAMES)
_EMPTY_ROW: dict[str, Any] = dict.fromkeys(_SPOOL_NAMES)
_EMPTY: tuple[None, ...] = (None,) * len(_SPOOL_NAMES)
_I = {name: i for i, name in enumerate(_SPOOL_NAMES)}
# Positions of the fields http_row fills (a list by position is 3x cheaper than a dict).
_I_TS, _I_OBS = _I["time.source"], _I["time.observation"]
_I_SRC_IP, _I_SRC_PORT = _I["source.ip"], _I["source.port"]
_I_DST_IP, _I_DST_PORT = _I["destination.ip"], _I["destination.port"]
_I_FQDN, _I_TRANSPORT, _I_APP = (
    _I["destination.fqdn"],
    _I["protocol.transport"],
    _I["protocol.application"],
)
_I_FEED, _I_PROVIDER = _I["feed.name"], _I["feed.provider"]
_I_METHOD, _I_TARGET, _I_VERSION = (
    _I["extra.http.method"],
    _I["extra.http.target"],
    _I["extra.http.version"],
)
_I_UA, _I_HEADERS, _I_STATUS = (
    _I["extra.http.user_agent"],
    _I["extra.http.headers"],
    _I["extra.http.status"],
)
_I_BODY_SIZE, _I_SHA = _I["extra.body.size"], _I["extra.body.sha256"]
_I_SENSOR, _I_ERROR, _I_RAW = _I["extra.sensor"], _I["extra.error"], _I["raw"]
_I_MALWARE, _I_TAXONOMY, _I_TYPE = (
    _I["malware.name"],
    _I["classification.taxonomy"],
    _I["classification.type"],
)
_I_RULE, _I_BOT_ID = _I["extra.rule"], _I["extra.bot_id"]


@dataclass(slots=True)
class ParsedRequest:
    """One HTTP request as received (or as far as it could be parsed)."""

    method: str = ""
    target: str = ""
    version: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body_size: int = 0
    body_sha256: str = ""
    body_prefix: bytes = b""
    keep_alive: bool = False
    error: str | None = None
    status: int = 0  # non-zero: the status this request must be answered with (an error)

    def fields(self) -> tuple[str, str, str, dict[str, str], int, str, bytes]:
        """(method, target, version, headers, body size, body SHA-256, body prefix): the
        order of ``read_simple``'s answer, which ``http_row_of`` and the server take."""
        return (
            self.method,
            self.target,
            self.version,
            self.headers,
            self.body_size,
            self.body_sha256,
            self.body_prefix,
        )

    @property
    def host(self) -> str:
        return self.headers.get("host", "")

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) > 1 else ""


_METHOD_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


def _not_a_request_line(start: bytes) -> bool:
    """Whether the start of a line (no LF in it yet) can be no request line: llhttp fails it
    within the method, before it reports anything, however it is split."""
    if start[:1] == b"\r":
        return len(start) > 1  # CR not followed by LF
    if start[:1] == b" ":
        return True
    return bool(start.split(b" ", 1)[0].translate(None, _METHOD_CHARS))


class _CapError(Exception):
    """Raised in a parser callback to stop llhttp at a cap (the reason is in ``_abort``)."""


class HttpRequestReader:
    """Incremental HTTP/1.x request parser for one connection.

    ``feed(data)`` returns the requests completed by ``data``. After a request with ``error``
    set, or one that does not keep the connection alive, the connection must be answered and
    closed: ``broken`` is True and later data is ignored.

    What comes out does not depend on how the stream was split into ``feed`` calls. llhttp
    reports a value that straddles two calls in pieces, and a piece reported just before a parse
    error would make the error request (and the caps) depend on the split. So the bytes of a
    request head reach llhttp only as whole lines (the start of a line is held back, at most
    ``max_header_bytes`` of it), a Content-Length body is fed up to its exact end, and the caps
    are enforced inside the callbacks, at the byte that crosses them.
    """

    __slots__ = (
        "_abort",
        "_body_end",
        "_cur",
        "_done",
        "_header_bytes",
        "_held",
        "_in_body",
        "_parser",
        "_prefix",
        "_saw_url",
        "_sha",
        "_url",
        "broken",
        "fast",
        "in_request",
        "max_body_bytes",
        "max_header_bytes",
        "raw_bytes",
    )

    def __init__(
        self, *, raw_bytes: int = 512, max_header_bytes: int = 32768, max_body_bytes: int = 64 << 20
    ) -> None:
        self.raw_bytes = raw_bytes
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        # llhttp, made when a request first needs it (most never do: see ``fastpath``).
        self._parser: Any = None
        self._done: list[ParsedRequest] = []
        self._cur: ParsedRequest | None = None
        self._url = b""
        self._saw_url = False
        self._header_bytes = 0
        self._sha: Any = None
        self._prefix = bytearray()
        self._in_body = False  # headers complete, message not yet
        self._body_end: int | None = None  # Content-Length of the body being read
        self._held = b""  # start of a head line, not yet given to llhttp
        self._abort: tuple[str, int] | None = None
        self.broken = False
        self.in_request = False  # bytes of an unfinished request have arrived
        self.fast = True  # read simple whole requests without llhttp (see ``fastpath``)

    # httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._cur = ParsedRequest()
        self._url = b""
        self._saw_url = False
        self._header_bytes = 0
        self._sha = hashlib.sha256()
        self._prefix = bytearray()
        self._in_body = False
        self._body_end = None

    def _head_over(self) -> None:
        self._abort = (f"request head over {self.max_header_bytes} bytes", 431)
        raise _CapError

    def on_url(self, url: bytes) -> None:
        # The request line as sent: method, target, "HTTP/x.y", two spaces and CRLF.
        line = 0 if self._saw_url else len(self._parser.get_method()) + 12
        self._header_bytes += len(url) + line
        if self._header_bytes > self.max_header_bytes:
            self._head_over()
        self._saw_url = True
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        cur = self._cur
        if cur is None or self._in_body:
            return  # a trailer of a chunked body: not a request header
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.max_header_bytes:
            self._head_over()
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = cur.headers.get(key)
        cur.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        cur = self._cur
        if cur is None:
            return
        cur.method = self._parser.get_method().decode("latin-1")
        cur.target = self._url.decode("latin-1")
        cur.version = self._parser.get_http_version()
        cur.keep_alive = bool(self._parser.should_keep_alive())
        self._in_body = True
        length = cur.headers.get("content-length")
        if length is not None and "transfer-encoding" not in cur.headers:
            length = length.strip()
            if length.isascii() and length.isdigit():
                self._body_end = int(length)

    def on_body(self, body: bytes) -> None:
        cur = self._cur
        if cur is None:
            return
        room = self.max_body_bytes - cur.body_size
        over = len(body) > room
        if over:
            body = body[: max(room, 0)]
        cur.body_size += len(body)
        self._sha.update(body)
        need = self.raw_bytes - len(self._prefix)
        if need > 0:
            self._prefix += body[:need]
        if over:
            limit = self.max_body_bytes
            self._abort = (f"body over {limit} bytes (the first {limit} hashed)", 413)
            raise _CapError

    def on_message_complete(self) -> None:
        cur = self._cur
        if cur is None:
            return
        self._finish(cur)
        self._done.append(cur)
        self._cur = None
        self._in_body = False
        self._body_end = None
        if not cur.keep_alive:
            self.broken = True  # answered, then closed: what follows is not read

    # -----------------------------------------------------------------------------------------
    def _finish(self, cur: ParsedRequest) -> None:
        cur.body_sha256 = self._sha.hexdigest()
        cur.body_prefix = bytes(self._prefix)

    def _fail(self, error: str, status: int) -> None:
        cur = self._cur
        if cur is None:
            cur = ParsedRequest()  # nothing of a request yet: no state of the last one leaks in
        else:
            if not cur.target:
                cur.target = self._url.decode("latin-1")
            if not cur.method and self._saw_url:
                cur.method = self._parser.get_method().decode("latin-1")
            self._finish(cur)
        cur.error = error
        cur.status = status
        cur.keep_alive = False
        self._done.append(cur)
        self._cur = None
        self._held = b""
        self.broken = True

    def _fail_head(self) -> None:
        if not self.broken:
            self._fail(f"request head over {self.max_header_bytes} bytes", 431)

    def _parse(self, data: memoryview) -> None:
        if self._parser is None:
            self._parser = httptools.HttpRequestParser(self)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # CONNECT or Upgrade: the request is recorded, then the connection is closed.
            if self._cur is not None:
                self._fail("protocol upgrade not supported by the sinkhole", 400)
            else:
                self.broken = True
                if self._done:
                    self._done[-1].keep_alive = False
        except httptools.HttpParserError as exc:
            abort, self._abort = self._abort, None
            if abort is not None:
                self._fail(*abort)
            elif not self.broken:  # else: bytes after a request that closes the connection
                self._fail(f"malformed HTTP: {exc}", 400)

    def _read_simple(self, buf: bytes) -> int:
        """Read the simple whole requests at the start of ``buf``; where the rest begins."""
        pos, done = 0, self._done
        raw, head, body = self.raw_bytes, self.max_header_bytes, self.max_body_bytes
        while True:
            got = read_simple(buf, pos, raw, head, body)
            if got is None:
                return pos
            method, target, version, headers, size, sha, prefix, keep, pos = got
            done.append(ParsedRequest(method, target, version, headers, size, sha, prefix, keep))
            if not keep:
                self.broken = True  # answered, then closed: what follows is not read
                return pos

    def feed(self, data: bytes) -> list[ParsedRequest]:
        if self.broken:
            return []
        self._done = []
        buf = bytes(data)
        if self._held:
            buf = self._held + buf
            self._held = b""
        end = len(buf)
        pos = 0
        if self.fast and self._cur is None:
            pos = self._read_simple(buf)
            if pos == end or self.broken:
                self.in_request = False
                return self._done
        view = memoryview(buf)
        while pos < end and not self.broken:
            cur = self._cur
            if self._in_body and cur is not None and self._body_end is not None:
                left = self._body_end - cur.body_size
                if left <= 0:  # llhttp read the length otherwise: stop steering
                    self._body_end = None
                    continue
                stop = min(end, pos + left)  # the body to its last byte, not a byte more
            else:
                stop = buf.rfind(b"\n", pos) + 1  # whole lines
                if stop <= pos:  # only the start of a line is left
                    if self._in_body:
                        stop = end  # chunked: it ends with a line, so this is all body
                    elif cur is None and _not_a_request_line(buf[pos:]):
                        stop = end  # junk (say a TLS hello on port 80) fails at once
                    elif end - pos <= self.max_header_bytes:
                        self._held = buf[pos:]
                        break
                    else:
                        # A head line over the cap. llhttp sees what there is of it first, so
                        # that an error in it wins, as it would had the line come whole.
                        self._parse(view[pos:])
                        self._fail_head()
                        break
            self._parse(view[pos:stop])
            if buf[stop - 1] == 0x0A and self._cur is not None and not self._in_body:
                # llhttp reports a header line only once the next one starts: check it now.
                start = max(pos, buf.rfind(b"\n", pos, stop - 1) + 1)
                if stop - 1 - start > self.max_header_bytes:
                    self._fail_head()
            pos = stop
        self.in_request = not self.broken and (self._cur is not None or bool(self._held))
        return self._done


@dataclass(frozen=True, slots=True)
class Sensor:
    """Who is recording: fixed per worker, stamped on every row."""

    name: str
    provider: str
    headers_kept: Sequence[str]


def _host_name(host: str) -> str | None:
    """The name in a Host header: lower case, without port, brackets or trailing dot."""
    host = host.strip()
    # An IPv6 literal keeps its colons: "[2001:db8::1]:8080".
    bracketed = host.startswith("[")
    host = host[1:].split("]", 1)[0] if bracketed else host.split(":", 1)[0]
    return host.rstrip(".")[:255].lower() or None


_json_str = json.encoder.encode_basestring_ascii


_KEPT_MEMO: dict[tuple[Any, ...], str | None] = {}
_KEPT_MEMO_MAX = 4096


def _kept_headers(headers: dict[str, str], kept: Sequence[str]) -> str | None:
    """The kept headers as compact JSON (what json.dumps gives, without its per-call cost);
    remembered by their values, which a botnet's requests repeat."""
    values = (kept, *map(headers.get, kept))
    text = _KEPT_MEMO.get(values, "")
    if text != "":
        return text
    parts = [f"{_json_str(k)}:{_json_str(headers[k])}" for k in kept if k in headers]
    text = "{" + ",".join(parts) + "}" if parts else None
    if len(_KEPT_MEMO) >= _KEPT_MEMO_MAX:
        _KEPT_MEMO.clear()
    _KEPT_MEMO[values] = text
    return text


def http_base(*, peer: tuple[str, int], local: tuple[str, int], sensor: Sensor) -> list[Any]:
    """The fields every HTTP row of one connection shares (``http_row`` copies them)."""
    row: list[Any] = list(_EMPTY)
    row[_I_SRC_IP], row[_I_SRC_PORT] = peer[0], peer[1]
    row[_I_DST_IP], row[_I_DST_PORT] = local[0], local[1]
    row[_I_TRANSPORT] = "tcp"
    row[_I_APP] = "http"
    row[_I_FEED] = "takedown-sinkhole"
    row[_I_PROVIDER] = sensor.provider
    row[_I_SENSOR] = sensor.name
    return row


_HeadFields = tuple[dict[str, str], Sequence[str], str | None, str | None, str | None]
_HEAD_FIELDS: dict[int, _HeadFields] = {}


def _head_fields(headers: dict[str, str], kept: Sequence[str]) -> _HeadFields:
    """(headers, kept, host name, user agent, kept-header JSON), remembered by the identity of
    the headers dict: the fast reader returns the same dict for a repeated head. The entry
    holds the dict, so its id cannot be reused while the entry lives."""
    got = _HEAD_FIELDS.get(id(headers))
    if got is not None and got[0] is headers and got[1] is kept:
        return got
    got = (
        headers,
        kept,
        _host_name(headers.get("host", "")),
        headers.get("user-agent"),
        _kept_headers(headers, kept),
    )
    if len(_HEAD_FIELDS) >= _KEPT_MEMO_MAX:
        _HEAD_FIELDS.clear()
    _HEAD_FIELDS[id(headers)] = got
    return got


def http_row(
    req: ParsedRequest,
    match: Match | None,
    *,
    now_us: int,
    peer: tuple[str, int],
    local: tuple[str, int],
    sensor: Sensor,
    status: int,
    base: list[Any] | None = None,
) -> tuple[Any, ...]:
    """The spool row of one HTTP request (``base``: ``http_base`` of the same local address
    and sensor, made once; its peer fields are set here)."""
    if base is None:
        base = http_base(peer=peer, local=local, sensor=sensor)
    return http_row_of(
        *req.fields(), req.error, match, now_us, peer, base, sensor.headers_kept, status
    )


def http_row_of(
    method: str,
    target: str,
    version: str,
    headers: dict[str, str],
    body_size: int,
    body_sha256: str,
    body_prefix: bytes,
    error: str | None,
    match: Match | None,
    now_us: int,
    peer: tuple[str, int],
    base: list[Any],
    kept: Sequence[str],
    status: int,
) -> tuple[Any, ...]:
    """``http_row`` from a request's fields (the sinkhole's fast path has no ParsedRequest)."""
    row = base.copy()
    row[_I_SRC_IP], row[_I_SRC_PORT] = peer
    _, _, row[_I_FQDN], row[_I_UA], row[_I_HEADERS] = _head_fields(headers, kept)
    row[_I_TS] = row[_I_OBS] = now_us
    row[_I_METHOD] = method or None
    row[_I_TARGET] = target[:8192] or None
    row[_I_VERSION] = version or None
    row[_I_STATUS] = status
    row[_I_BODY_SIZE] = body_size
    row[_I_SHA] = bytes.fromhex(body_sha256) if body_sha256 else None
    row[_I_ERROR] = error
    row[_I_RAW] = body_prefix
    if match is not None:
        row[_I_MALWARE] = match.malware
        row[_I_TAXONOMY] = match.taxonomy
        row[_I_TYPE] = match.type
        row[_I_RULE] = match.rule or None
        row[_I_BOT_ID] = match.bot_id
    return tuple(row)


def classify(rules: RuleSet, req: ParsedRequest) -> Match:
    return classify_fields(
        rules, req.method, req.target, req.headers, req.body_size, req.body_prefix
    )


def classify_fields(
    rules: RuleSet,
    method: str,
    target: str,
    headers: dict[str, str],
    body_size: int,
    body_prefix: bytes,
) -> Match:
    """``classify`` from a request's fields (the sinkhole's fast path has no ParsedRequest)."""
    return rules.classify_request(
        method,
        target,
        headers.get("host", ""),
        headers.get("user-agent", ""),
        headers,
        body_size,
        body_prefix,
    )


def dns_row(
    qname: str | None,
    qtype: str | None,
    rcode: str,
    match: Match | None,
    packet: bytes,
    *,
    now_us: int,
    peer: tuple[str, int],
    local: tuple[str, int],
    transport: str,
    sensor: Sensor,
    error: str | None = None,
) -> tuple[Any, ...]:
    """The spool row of one DNS query."""
    row = dict(_EMPTY_ROW)
    row.update(
        {
            "time.source": now_us,
            "time.observation": now_us,
            "source.ip": peer[0],
            "source.port": peer[1],
            "destination.ip": local[0],
            "destination.port": local[1],
            "destination.fqdn": qname,
            "protocol.transport": transport,
            "protocol.application": "dns",
            "feed.name": "takedown-sinkhole",
            "feed.provider": sensor.provider,
            "extra.dns.qtype": qtype,
            "extra.dns.rcode": rcode,
            "extra.sensor": sensor.name,
            "extra.error": error,
            "raw": packet[:512],
        }
    )
    if match is not None:
        row["malware.name"] = match.malware
        row["classification.taxonomy"] = match.taxonomy
        row["classification.type"] = match.type
        row["extra.rule"] = match.rule or None
    return _to_row(row)  # type: ignore[no-any-return]
