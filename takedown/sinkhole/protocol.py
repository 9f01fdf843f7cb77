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
from takedown.sinkhole.rules import HttpFacts, Match, RuleSet

__all__ = [
    "SPOOL_FIELDS",
    "SPOOL_SCHEMA",
    "HttpRequestReader",
    "ParsedRequest",
    "Sensor",
    "dns_row",
    "http_row",
]

# Enrichment fields are filled later, from the lake; the sinkhole spools the rest.
_ENRICHED = {"source.asn", "source.as_name", "source.network", "source.geolocation.cc"}
SPOOL_FIELDS = tuple(f for f in FIELDS if f.name not in _ENRICHED)
SPOOL_SCHEMA = flat_schema(SPOOL_FIELDS)
_SPOOL_NAMES = tuple(f.name for f in SPOOL_FIELDS)
_to_row = itemgetter(*_SPOOL_NAMES)
_EMPTY_ROW: dict[str, Any] = dict.fromkeys(_SPOOL_NAMES)


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


class HttpRequestReader:
    """Incremental HTTP/1.x request parser for one connection.

    ``feed(data)`` returns the requests completed by ``data``. After a request with ``error``
    set, the connection must be answered and closed: ``broken`` is True and later data is
    ignored.
    """

    def __init__(self, *, raw_bytes: int = 512, max_header_bytes: int = 32768,
                 max_body_bytes: int = 64 << 20) -> None:
        self.raw_bytes = raw_bytes
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._parser = httptools.HttpRequestParser(self)
        self._done: list[ParsedRequest] = []
        self._cur: ParsedRequest | None = None
        self._url = b""
        self._header_bytes = 0
        self._sha: Any = None
        self._prefix = bytearray()
        self._hashed = 0
        self.broken = False
        self.in_request = False  # bytes of an unfinished request have arrived

    # httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._cur = ParsedRequest()
        self._url = b""
        self._header_bytes = 0
        self._sha = hashlib.sha256()
        self._prefix = bytearray()
        self._hashed = 0
        self.in_request = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._cur is not None and self._header_bytes <= self.max_header_bytes:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            old = self._cur.headers.get(key)
            self._cur.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        cur = self._cur
        if cur is None:
            return
        cur.method = self._parser.get_method().decode("latin-1")
        cur.target = self._url.decode("latin-1")
        cur.version = self._parser.get_http_version()
        cur.keep_alive = bool(self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        cur = self._cur
        if cur is None:
            return
        cur.body_size += len(body)
        room = self.max_body_bytes - self._hashed
        if room > 0:
            chunk = body if len(body) <= room else body[:room]
            self._sha.update(chunk)
            self._hashed += len(chunk)
        need = self.raw_bytes - len(self._prefix)
        if need > 0:
            self._prefix += body[:need]

    def on_message_complete(self) -> None:
        cur = self._cur
        if cur is None:
            return
        self._finish(cur)
        self._done.append(cur)
        self._cur = None
        self.in_request = False

    # -----------------------------------------------------------------------------------------
    def _finish(self, cur: ParsedRequest) -> None:
        cur.body_sha256 = self._sha.hexdigest()
        cur.body_prefix = bytes(self._prefix)

    def _fail(self, error: str, status: int) -> None:
        cur = self._cur or ParsedRequest()
        if not cur.target:
            cur.target = self._url.decode("latin-1")
        if self._sha is not None:
            self._finish(cur)
        cur.error = error
        cur.status = status
        cur.keep_alive = False
        self._done.append(cur)
        self._cur = None
        self.broken = True
        self.in_request = False

    def feed(self, data: bytes) -> list[ParsedRequest]:
        if self.broken:
            return []
        self._done = []
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
            self._fail(f"malformed HTTP: {exc}", 400)
        else:
            if self._header_bytes > self.max_header_bytes and self._cur is not None:
                self._fail(f"request head over {self.max_header_bytes} bytes", 431)
            elif self._cur is not None and self._hashed >= self.max_body_bytes and (
                self._cur.body_size > self.max_body_bytes
            ):
                self._fail(f"body over {self.max_body_bytes} bytes (hashed that much)", 413)
        return self._done


@dataclass(frozen=True, slots=True)
class Sensor:
    """Who is recording: fixed per worker, stamped on every row."""

    name: str
    provider: str
    headers_kept: Sequence[str]


def _kept_headers(headers: dict[str, str], kept: Sequence[str]) -> str | None:
    picked = {k: headers[k] for k in kept if k in headers}
    return json.dumps(picked, separators=(",", ":")) if picked else None


def http_row(req: ParsedRequest, match: Match | None, *, now_us: int, peer: tuple[str, int],
             local: tuple[str, int], sensor: Sensor, status: int) -> tuple[Any, ...]:
    """The spool row of one HTTP request."""
    row = dict(_EMPTY_ROW)
    row.update({
        "time.source": now_us,
        "time.observation": now_us,
        "source.ip": peer[0],
        "source.port": peer[1],
        "destination.ip": local[0],
        "destination.port": local[1],
        "destination.fqdn": req.host.split(":", 1)[0][:255].lower() or None,
        "protocol.transport": "tcp",
        "protocol.application": "http",
        "feed.name": "takedown-sinkhole",
        "feed.provider": sensor.provider,
        "extra.http.method": req.method or None,
        "extra.http.target": req.target[:8192] or None,
        "extra.http.version": req.version or None,
        "extra.http.user_agent": req.headers.get("user-agent"),
        "extra.http.headers": _kept_headers(req.headers, sensor.headers_kept),
        "extra.http.status": status,
        "extra.body.size": req.body_size,
        "extra.body.sha256": req.body_sha256 or None,
        "extra.sensor": sensor.name,
        "extra.error": req.error,
        "raw": req.body_prefix,
    })
    if match is not None:
        row["malware.name"] = match.malware
        row["classification.taxonomy"] = match.taxonomy
        row["classification.type"] = match.type
        row["extra.rule"] = match.rule or None
        row["extra.bot_id"] = match.bot_id
    return _to_row(row)  # type: ignore[no-any-return]


def classify(rules: RuleSet, req: ParsedRequest) -> Match:
    facts = HttpFacts(
        method=req.method,
        path=req.path,
        query=req.query,
        host=req.host,
        user_agent=req.headers.get("user-agent", ""),
        headers=req.headers,
        body_size=req.body_size,
        body_prefix=req.body_prefix,
    )
    return rules.classify_http(facts)


def dns_row(qname: str | None, qtype: str | None, rcode: str, match: Match | None, packet: bytes,
            *, now_us: int, peer: tuple[str, int], local: tuple[str, int], transport: str,
            sensor: Sensor, error: str | None = None) -> tuple[Any, ...]:
    """The spool row of one DNS query."""
    row = dict(_EMPTY_ROW)
    row.update({
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
    })
    if match is not None:
        row["malware.name"] = match.malware
        row["classification.taxonomy"] = match.taxonomy
        row["classification.type"] = match.type
        row["extra.rule"] = match.rule or None
    return _to_row(row)  # type: ignore[no-any-return]
