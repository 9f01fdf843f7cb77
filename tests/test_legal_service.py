"""Service by e-mail through a real SMTP server (aiosmtpd on loopback), publication and mail;
every act a custody entry in the real evidence vault."""

import datetime as dt
import email
import email.policy
import hashlib
import json
import shutil

import pytest
from aiosmtpd.controller import Controller
from test_legal_support import MailSink, free_port
from typer.testing import CliRunner

from takedown.case.evidence.vault import Vault
from takedown.case.legal.casefile import EXAMPLE_CASE
from takedown.case.legal.service import SMTPSettings, service_log
from takedown.cli import app
from takedown.errors import LegalError
from takedown.home import Home

runner = CliRunner()
CASE = str(EXAMPLE_CASE)
HANDLER = "Test Handler (fictional)"


def legal(home, *args):
    return runner.invoke(app, ["--home", str(home.root), "legal", *args])


@pytest.fixture(scope="module")
def with_notices(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("notices") / "home")
    result = legal(home, "notice", "--case", CASE, "--date", "2011-03-20", "--format", "json")
    assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def home(with_notices, tmp_path):
    """A fresh home (no vault yet) holding the notices generated once for this module."""
    shutil.copytree(with_notices.root, tmp_path / "home")
    return Home(tmp_path / "home")


@pytest.fixture
def smtp():
    sink = MailSink(refuse={"alias3@post.example"})
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


def test_email_service_over_real_smtp(home, smtp):
    sink, port = smtp
    result = legal(
        home,
        "serve",
        "email",
        "--case",
        CASE,
        "--all",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        str(port),
        "--tls",
        "none",
        "--handler",
        HANDLER,
        "--format",
        "json",
    )
    assert isinstance(result.exception, LegalError)
    assert "1 of 4 e-mails were not accepted" in str(result.exception)
    assert len(sink.messages) == 3
    folder = home.root / "legal" / "example-bank-v-does"
    pdfs = {name: (folder / name).read_bytes() for name in ("notice-en.pdf", "notice-ru.pdf")}
    with Vault.open(home) as vault:
        entries = [e for e in vault.custody() if e.details.get("service") == "email"]
        assert all(vault.has(hashlib.sha256(d).hexdigest()) for d in pdfs.values())
    served = [e for e in entries if e.action == "served"]
    failed = [e for e in entries if e.action == "note"]
    assert len(served) == 3 and len(failed) == 1
    assert failed[0].details["recipient"] == "alias3@post.example"
    assert failed[0].details["status"] == "failed"
    assert failed[0].details["error"].startswith("recipient refused: 550")
    by_recipient = {e.details["recipient"]: e for e in served}
    for received in sink.messages:
        (rcpt,) = received.rcpt_tos
        entry = by_recipient[rcpt]
        assert entry.handler == HANDLER and entry.details["defendant"] in (1, 2)
        assert entry.item == hashlib.sha256(received.data).hexdigest()  # exactly what was sent
        assert entry.details["smtp_response"].startswith("250 2.0.0 Ok: queued as TEST")
        assert {d["name"] for d in entry.details["documents"]} == set(pdfs)
        assert received.mail_from == "counsel@example-partners.example"
        raw_headers = received.data.split(b"\r\n\r\n", 1)[0]
        assert raw_headers.isascii() and b"=?utf-8?" in raw_headers.lower()  # RFC 2047
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        assert msg["Subject"] == (
            "Notice of lawsuit: Example Bank, N.A. v. John Does 1-11, case no. 2:11-cv-00042-XMPL"
            " / Уведомление об иске: «Экзампл Банк» против ответчиков «Джон Доу» 1–11, "
            "дело № 2:11-cv-00042-XMPL"
        )
        assert msg["Message-ID"] == entry.details["message_id"] and msg["To"] == rcpt
        body = msg.get_body(("plain",))
        assert body.get_content_charset() == "utf-8"
        text = body.get_content()
        assert "Судебное заседание состоится 18 апреля 2011 г. в 10:00" in text
        assert "A hearing will be held on April 18, 2011 at 10:00" in text
        attached = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
        assert attached == pdfs
        assert all(p.get_content_type() == "application/pdf" for p in msg.iter_attachments())
    log = json.loads(legal(home, "service-log", "--format", "json").output)
    assert [r["status"] for r in log].count("served") == 3 and len(log) == 4
    assert {r["method"] for r in log} == {"email"}


def test_email_refusals(home, smtp):
    _sink, port = smtp
    base = ["serve", "email", "--case", CASE, "--smtp-port", str(port), "--handler", HANDLER]
    result = legal(
        home,
        *base,
        "--smtp-host",
        "127.0.0.1",
        "--tls",
        "none",
        "--to",
        "stranger@elsewhere.example",
    )
    assert "not an address the case file knows" in str(result.exception)
    result = legal(home, *base, "--smtp-host", "smtp.example.org", "--tls", "none", "--all")
    assert "refusing to send without TLS to smtp.example.org" in str(result.exception)
    result = legal(home, *base, "--all")
    assert result.exit_code == 2 and "--smtp-host" in result.output  # no default host
    with pytest.raises(LegalError, match="--smtp-host is required"):
        SMTPSettings("", 25, "a@b.example").check()
    assert service_log(home) == []


def test_publication_and_mail(home):
    result = legal(
        home,
        "serve",
        "publication",
        "--case",
        CASE,
        "--newspaper",
        "The Example Gazette (fictional)",
        "--date",
        "2011-03-21",
        "--date",
        "2011-03-28",
        "--language",
        "ru",
        "--handler",
        HANDLER,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["documents"] == "notice-ad-ru.pdf" and row["action"] == "served"
    address = "12 Example Street, Exampleton, Nowhereland 000001"
    result = legal(
        home,
        "serve",
        "mail",
        "--case",
        CASE,
        "--to",
        address,
        "--date",
        "2011-03-22",
        "--carrier",
        "Example Post, registered",
        "--tracking",
        "EX1",
        "--handler",
        HANDLER,
    )
    assert result.exit_code == 0, result.output
    result = legal(
        home,
        "serve",
        "mail",
        "--case",
        CASE,
        "--to",
        "1 Nowhere Lane",
        "--date",
        "2011-03-22",
        "--handler",
        HANDLER,
    )
    assert "not a postal address the case file lists" in str(result.exception)
    result = legal(home, "serve", "mail", "--case", CASE, "--to", address, "--date", "2011-03-22")
    assert "who is serving?" in str(result.exception)
    log = service_log(home, "example-bank-v-does")
    assert [(r["method"], r["recipient"], r["dates"]) for r in log] == [
        ("publication", "The Example Gazette (fictional)", "2011-03-21, 2011-03-28"),
        ("mail", address, "2011-03-22"),
    ]
    with Vault.open(home) as vault:
        entry = vault.entry(log[1]["index"])
    assert entry.action == "served" and entry.details["tracking"] == "EX1"
    assert entry.details["defendant"] == 1 and entry.details["fictional"] is True
    table = legal(home, "service-log", "--format", "csv").output.splitlines()
    assert table[0].startswith("index,time,handler,case,method,status") and len(table) == 3


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_starttls_with_a_trusted_certificate(tmp_path):
    """STARTTLS to a real TLS-speaking server; its self-signed certificate trusted by --cafile."""
    import ssl
    import subprocess

    from takedown.case.legal.service import build_email, send_email

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = MailSink()
    controller = Controller(
        sink, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        mail = build_email(
            sender="counsel@example-partners.example",
            recipient="cosmo.demo@mail.example",
            subject="Уведомление",
            body="Текст",
            attachments=[],
            when=dt.datetime(2011, 3, 20, tzinfo=dt.UTC),
        )
        settings = SMTPSettings(
            "127.0.0.1",
            controller.port,
            "counsel@example-partners.example",
            tls="starttls",
            cafile=cert,
        )
        sent = send_email(settings, mail)
        assert sent.ok and sent.response.startswith("250"), sent.error
        untrusted = send_email(
            SMTPSettings("127.0.0.1", controller.port, "counsel@example-partners.example"), mail
        )
        assert not untrusted.ok and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
        plain = send_email(
            SMTPSettings(
                "127.0.0.1", controller.port, "counsel@example-partners.example", tls="none"
            ),
            mail,
        )
        assert not plain.ok  # the server requires STARTTLS
    finally:
        controller.stop()
    assert len(sink.messages) == 1 and sink.messages[0].data == mail.raw
