"""Service of the notice: publications, mailings and e-mails, each a custody entry in the vault.

The evidence vault is the service log: every act of service is a ``served`` entry in its Merkle
custody log (method, recipient or newspaper, dates, message-id, the SMTP server's answer), about
the document that was served, which is added to the vault first. For an e-mail that document is
the exact message sent (its RFC 5322 bytes), with the notice PDFs it carried added too. A failed
e-mail is a ``note`` entry with the error, so attempts are on the record as well.

E-mail goes out over SMTP only to a host named explicitly (there is no default host), only to an
address the case file knows a defendant by, and in clear text only to a loopback host.
"""

from __future__ import annotations

import datetime as dt
import email.charset
import email.header
import email.policy
import email.utils
import ipaddress
import smtplib
import socket
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from takedown.case.legal.casefile import CaseFile
from takedown.case.legal.pdfdoc import sha256_file
from takedown.errors import LegalError
from takedown.home import Home

__all__ = [
    "METHODS",
    "OutgoingMail",
    "SMTPSettings",
    "SentMail",
    "ServiceRecord",
    "build_email",
    "record_service",
    "send_email",
    "service_log",
]

METHODS = ("publication", "mail", "email")
TLS_MODES = ("starttls", "ssl", "none")
SOURCE = "takedown legal"


@dataclass(frozen=True, slots=True)
class SMTPSettings:
    host: str
    port: int
    sender: str
    tls: str = "starttls"
    username: str = ""
    password: str = ""
    cafile: Path | None = None
    timeout: float = 30.0

    def check(self) -> None:
        if not self.host:
            raise LegalError("--smtp-host is required: e-mail is only sent to a host you name")
        if self.tls not in TLS_MODES:
            raise LegalError(f"--tls {self.tls!r}: choose one of {', '.join(TLS_MODES)}")
        if self.tls == "none" and not _is_loopback(self.host):
            raise LegalError(
                f"--tls none: refusing to send without TLS to {self.host}, which is not a "
                "loopback address (use starttls or ssl)"
            )
        if "@" not in self.sender:
            raise LegalError(f"--from {self.sender!r} is not an e-mail address")
        if not 0 < self.port < 65536:
            raise LegalError(f"--smtp-port {self.port}: not a TCP port")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SentMail:
    recipient: str
    message_id: str
    raw: bytes
    ok: bool
    response: str  # the server's final answer, e.g. "250 2.0.0 Ok: queued as …"
    error: str = ""


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    index: int  # custody leaf index
    action: str
    item: str | None
    documents: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    recipient: str
    message_id: str
    raw: bytes  # the exact RFC 5322 bytes handed to the server (CRLF line ends)


_WIRE = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)


def build_email(
    *,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    attachments: Sequence[Path],
    when: dt.datetime,
    reply_to: str = "",
) -> OutgoingMail:
    """The notice e-mail: a UTF-8 quoted-printable text body and the PDFs attached.

    Built with the classic ``email.mime`` classes: their RFC 2047 encoder keeps the spaces
    between encoded words of a folded non-ASCII Subject, which the newer header folding of
    Python 3.11 can drop ("1–11, дело" arriving as "1–11,дело").
    """
    for address in (sender, recipient, reply_to):
        if address and not address.isascii():
            raise LegalError(
                f"{address!r}: non-ASCII e-mail addresses are not supported (give the domain "
                "in its xn-- form)"
            )
    utf8 = email.charset.Charset("utf-8")
    utf8.header_encoding = email.charset.BASE64
    utf8.body_encoding = email.charset.QP
    msg = MIMEMultipart()
    msg["From"] = sender
    msg["To"] = recipient
    if reply_to:
        msg["Reply-To"] = reply_to
    if subject.isascii():
        msg["Subject"] = subject
    else:
        msg["Subject"] = email.header.Header(subject, utf8)  # type: ignore[assignment]
    msg["Date"] = email.utils.format_datetime(when.astimezone(dt.UTC))
    # Short enough to stay on one header line: folded, some readers keep the leading space.
    message_id = f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2] or 'localhost'}>"
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.attach(MIMEText(body, "plain", utf8))  # type: ignore[arg-type]
    for path in attachments:
        part = MIMEApplication(path.read_bytes(), "pdf")
        part.add_header("Content-Disposition", "attachment", filename=path.name)
        msg.attach(part)
    return OutgoingMail(recipient, message_id, msg.as_bytes(policy=_WIRE))


def send_email(settings: SMTPSettings, mail: OutgoingMail) -> SentMail:
    """Deliver one message to the server; the server's answer is kept, errors are returned."""
    settings.check()
    recipient, message_id, raw = mail.recipient, mail.message_id, mail.raw
    try:
        context = ssl.create_default_context(
            cafile=str(settings.cafile) if settings.cafile else None
        )
        server: smtplib.SMTP
        if settings.tls == "ssl":
            server = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with server:
            server.ehlo()
            if settings.tls == "starttls":
                server.starttls(context=context)
                server.ehlo()
            if settings.username:
                server.login(settings.username, settings.password)
            code, answer = server.mail(settings.sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, answer, settings.sender)
            code, answer = server.rcpt(recipient)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({recipient: (code, answer)})
            code, answer = server.data(raw)
            return SentMail(recipient, message_id, raw, True, f"{code} {_text(answer)}")
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return SentMail(recipient, message_id, raw, False, "", _error(exc))


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def _error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        (code, answer), *_ = exc.recipients.values()
        return f"recipient refused: {code} {_text(answer)}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, socket.timeout):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def record_service(
    home: Home,
    *,
    handler: str,
    case: CaseFile,
    method: str,
    details: dict[str, Any],
    documents: Sequence[Path] = (),
    message: tuple[bytes, str] | None = None,
    failed: bool = False,
) -> ServiceRecord:
    """Add the served documents (and the sent message) to the vault; append the custody entry.

    The entry is about the message when there is one, else the first document; its details
    name every document by SHA-256. A failed attempt is recorded as a ``note``.
    """
    from takedown.case.evidence.vault import Vault

    if method not in METHODS:
        raise LegalError(f"unknown service method {method!r}: one of {', '.join(METHODS)}")
    source = f"{SOURCE} ({case.id})"
    with Vault.open(home) as vault:
        docs: list[dict[str, str]] = []
        new = []
        for path in documents:
            digest = sha256_file(path)
            docs.append({"name": path.name, "sha256": digest})
            if not vault.has(digest):
                new.append(path)
        if new:
            vault.add_many(new, handler=handler, source=source, note="served notice document")
        item = docs[0]["sha256"] if docs else None
        if message is not None:
            data, name = message
            item = vault.add_bytes(
                data, name, handler=handler, source=source, note=f"{method} as sent"
            ).sha256
        entry = {
            "service": method,
            "case": case.id,
            "case_number": case.number,
            "fictional": case.fictional,
            "status": "failed" if failed else "served",
            "documents": docs,
            **details,
        }
        action = "note" if failed else "served"
        index = vault.record(item, action, handler=handler, details=entry)
    return ServiceRecord(index, action, item, docs)


def service_log(home: Home, case_id: str | None = None) -> list[dict[str, Any]]:
    """Every act (and failed attempt) of service in the vault's custody log, oldest first."""
    from takedown.case.evidence.vault import Vault, vault_folder

    if not vault_folder(home).is_dir():
        return []
    with Vault.open(home) as vault:
        entries = vault.custody()
    rows = []
    for e in entries:
        d = e.details
        if not isinstance(d, dict) or d.get("service") not in METHODS:
            continue
        if e.action not in ("served", "note"):
            continue
        if case_id is not None and d.get("case") != case_id:
            continue
        rows.append(
            {
                "index": e.index,
                "time": e.time,
                "handler": e.handler,
                "case": d.get("case", ""),
                "method": d.get("service", ""),
                "status": d.get("status", ""),
                "recipient": d.get("recipient") or d.get("newspaper") or "",
                "defendant": d.get("defendant"),
                "dates": ", ".join(d.get("dates") or []),
                "message_id": d.get("message_id", ""),
                "smtp_response": d.get("smtp_response") or d.get("error", ""),
                "documents": ", ".join(x.get("name", "") for x in d.get("documents") or []),
                "item": e.item or "",
            }
        )
    return rows
