"""Helpers shared by the test_legal_* modules (no tests here): a small lake, a real SMTP server."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from takedown import schema
from takedown.home import Home

T0 = dt.datetime(2011, 3, 16, 12, 0, tzinfo=dt.UTC)


def write_lake(home: Home, rows: Iterable[dict[str, Any]], day: str = "2011-03-16") -> Path:
    """Write flat event dicts (dotted names) as one lake Parquet file of ``day``."""
    home.ensure()
    table = schema.nest(pa.Table.from_pylist(list(rows), schema=schema.flat_schema()))
    folder = home.events / f"day={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{len(list(folder.iterdir()))}.parquet"
    pq.write_table(table, path)
    return path


def event(i: int, fqdn: str | None, dst: str | None, family: str = "rustock") -> dict[str, Any]:
    return {
        "time.source": T0 + dt.timedelta(minutes=i),
        "source.ip": f"198.51.100.{i % 250}",
        "destination.ip": dst,
        "destination.fqdn": fqdn,
        "malware.name": family,
        "protocol.application": "http",
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class MailSink:
    """aiosmtpd handler keeping every message; refuses recipients in ``refuse``."""

    messages: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable (test)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return f"250 2.0.0 Ok: queued as TEST{len(self.messages)}"
