"""`takedown legal …`: seizure lists, notice by publication, the service log."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from takedown.errors import LegalError
from takedown.output import Format, render

app = typer.Typer(
    help="Court documents: seizure lists, notice by publication, the service log.",
    no_args_is_help=True,
)
serve_app = typer.Typer(
    help="Serve the notice (publication, mail, e-mail) and record each act in the vault.",
    no_args_is_help=True,
)
app.add_typer(serve_app, name="serve")

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
CaseOpt = Annotated[Path, typer.Option("--case", help="The case file (TOML); see docs/legal.md.")]
DateOpt = Annotated[
    str | None,
    typer.Option("--date", help="Generation date printed on the documents (default: today, UTC)."),
]
HandlerOpt = Annotated[
    str | None,
    typer.Option(help="Who serves (default: the handler setting, TAKEDOWN_HANDLER)."),
]


def _ctx() -> tuple[Any, Any]:
    from takedown import cli as _cli

    return _cli.current_home(), _cli.current_settings()


def _emit(data: Any, fmt: Format, title: str, columns: list[str] | None = None) -> None:
    from takedown import cli as _cli

    text = render(data, fmt, title=title or None, columns=columns, console=_cli.out)
    if text is not None:
        sys.stdout.write(text)


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")  # plain: one line however narrow the terminal


def _generated(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise LegalError(f"--date {value!r}: give a date such as 2011-03-16") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _time(value: str | None, what: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise LegalError(f"{what} {value!r}: give an ISO date or time (2011-03-16)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _day(value: str, what: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise LegalError(f"{what} {value!r}: give a date such as 2011-03-20") from None


def case_folder(home: Any, case_id: str) -> Path:
    """Where a case's documents go by default: HOME/legal/<case id>/."""
    return Path(home.root) / "legal" / case_id


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LegalError(f"{what} {path}: cannot read ({exc.strerror})") from None


def _handler(given: str | None, settings: Any) -> str:
    handler = (given or getattr(settings, "handler", "") or "").strip()
    if not handler:
        raise LegalError(
            "who is serving? every custody entry names its handler: give --handler or set "
            "TAKEDOWN_HANDLER (or handler = ... in HOME/config.toml)"
        )
    return handler


@app.command("seizure-list")
def seizure_list_cmd(
    case: Annotated[
        Path | None, typer.Option("--case", help="Case file: caption, banner, output folder.")
    ] = None,
    domains: Annotated[
        list[Path] | None, typer.Option("--domains", help="Domain list, one a line, # comments.")
    ] = None,
    ips: Annotated[
        list[Path] | None, typer.Option("--ips", help="IP address/network list, one a line.")
    ] = None,
    no_lake: Annotated[bool, typer.Option("--no-lake", help="Only the lists given.")] = False,
    lake_ips: Annotated[
        str, typer.Option(help="Destination addresses from the lake: public, all or none.")
    ] = "public",
    family: Annotated[str | None, typer.Option(help="Only events of this malware.name.")] = None,
    since: Annotated[str | None, typer.Option(help="Events from this UTC time (ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="Events before this UTC time (ISO).")] = None,
    min_events: Annotated[int, typer.Option(help="Lake values seen fewer times are left out.")] = 1,
    registries: Annotated[
        Path | None, typer.Option(help="Your TLD,type,manager CSV (its rows win).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    paper: Annotated[str, typer.Option(help="letter, a4, legal or WxH in mm.")] = "letter",
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Leave bad list lines out instead of stopping.")
    ] = False,
    date: DateOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Domains and IP addresses to seize or redirect, by registry and by network: a CSV and a
    court appendix PDF (the CSV's SHA-256 in every page footer).

    From the sinkhole's lake (host names and destination addresses the bots used) and the
    lists given. Domains become their registered domain (Public Suffix List, offline) with the
    TLD's registry operator; addresses get their network and AS (offline enrichment).

    Example: takedown legal seizure-list --case case.toml --domains c2.txt --ips c2-ips.txt
    """
    from takedown.case.legal.appendix import Caption, write_seizure
    from takedown.case.legal.casefile import load_case
    from takedown.case.legal.lists import parse_domain_list, parse_ip_list
    from takedown.case.legal.pdfdoc import parse_size
    from takedown.case.legal.registries import DomainClassifier, load_registries
    from takedown.case.legal.seizure import LAKE_IP_MODES, build_seizure, scan_lake
    from takedown.enrich.lakefill import enricher_from_settings

    home, settings = _ctx()
    if lake_ips not in LAKE_IP_MODES:
        raise LegalError(f"--lake-ips {lake_ips!r}: choose one of {', '.join(LAKE_IP_MODES)}")
    size = parse_size(paper, "--paper")
    loaded = load_case(case) if case is not None else None
    parsed_domains = [parse_domain_list(_read(p, "--domains"), str(p)) for p in domains or []]
    parsed_ips = [parse_ip_list(_read(p, "--ips"), str(p)) for p in ips or []]
    for parsed in [*parsed_domains, *parsed_ips]:
        if parsed.errors:
            if not skip_bad:
                raise LegalError(parsed.first_error() + " (fix it, or --skip-bad)")
            for error in parsed.errors:
                _note(f"skipped {error.where(parsed.source)}")
    scan = None
    if not no_lake:
        scan = scan_lake(
            home,
            since=_time(since, "--since"),
            until=_time(until, "--until"),
            family=family,
            min_events=min_events,
            ips=lake_ips,
        )
    enricher = enricher_from_settings(settings)
    seizure = build_seizure(
        domain_lists=parsed_domains,
        ip_lists=parsed_ips,
        scan=scan,
        classifier=DomainClassifier(load_registries(registries)),
        enricher=enricher,
    )
    if seizure.problems:
        if not skip_bad:
            raise LegalError(seizure.problems[0] + " (fix it, or --skip-bad)")
        for problem in seizure.problems:
            _note(f"skipped {problem}")
    caption = Caption()
    if loaded is not None:
        lang = "en" if "en" in loaded.languages else loaded.languages[0]
        from takedown.case.legal.templates import load_template

        caption = Caption(
            court=loaded.court[lang],
            caption=loaded.caption[lang],
            number=loaded.number,
            fictional=load_template(lang).text("fictional") if loaded.fictional else "",
        )
    folder = out or case_folder(home, loaded.id if loaded else "seizure")
    sources = ", ".join(f"{k}: {v}" for k, v in enricher.sources.items())
    files = write_seizure(
        seizure,
        folder,
        caption=caption,
        generated=_generated(date),
        paper=size,
        network_source=sources,
    )
    _emit(
        seizure.rows(),
        fmt,
        f"Seizure list: {len(seizure.domains)} domains, {len(seizure.addresses)} addresses",
        [
            "no",
            "kind",
            "target_unicode",
            "registry",
            "as_name",
            "network",
            "country",
            "events",
            "sources",
            "note",
        ]
        if fmt is Format.table
        else None,
    )
    if scan is not None:
        _note(scan.summary())
    _note(f"wrote {files.csv} (SHA-256 {files.csv_sha256})")
    _note(f"wrote {files.pdf} (SHA-256 {files.pdf_sha256})")


@app.command("notice")
def notice_cmd(
    case: CaseOpt,
    lang: Annotated[
        list[str] | None, typer.Option("--lang", help="Only these languages (default: the case's).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    paper: Annotated[str, typer.Option(help="letter, a4, legal or WxH in mm.")] = "letter",
    ad_size: Annotated[
        str, typer.Option(help="Advertisement size, WxH in mm (148x210: quarter of an A3 page).")
    ] = "148x210",
    document: Annotated[
        list[Path] | None,
        typer.Option("--document", help="Another file for the pleadings site (repeatable)."),
    ] = None,
    templates: Annotated[
        Path | None, typer.Option(help="Template folder searched first (<lang>/notice.toml).")
    ] = None,
    date: DateOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Notice of pleadings by publication, in every language of the case: a print PDF, a
    newspaper advertisement PDF, and a static web site of the pleadings with SHA-256 hashes.

    Example: takedown legal notice --case case.toml --document seizure-list.pdf
    """
    from takedown.case.legal.casefile import load_case
    from takedown.case.legal.notice import ad_pdf, build_notice, print_pdf
    from takedown.case.legal.pdfdoc import parse_size, sha256_file, write_atomic
    from takedown.case.legal.site import SiteDocument, build_site
    from takedown.case.legal.templates import load_template

    home, _settings = _ctx()
    loaded = load_case(case)
    langs = list(lang or loaded.languages)
    dirs = [p for p in (templates, Path(home.root) / "legal" / "templates") if p is not None]
    tpls = {code: load_template(code, dirs) for code in langs}
    size, ad = parse_size(paper, "--paper"), parse_size(ad_size, "--ad-size")
    generated = _generated(date)
    folder = out or case_folder(home, loaded.id)
    notices = {
        code: build_notice(loaded, tpl, [o for o in tpls.values() if o is not tpl])
        for code, tpl in tpls.items()
    }
    written: list[Path] = []
    site_docs: list[SiteDocument] = []
    for code, notice in notices.items():
        paths = (folder / f"notice-{code}.pdf", folder / f"notice-ad-{code}.pdf")
        write_atomic(paths[0], print_pdf(notice, paper=size, generated=generated))
        write_atomic(paths[1], ad_pdf(notice, size=ad, generated=generated))
        written += paths
        site_docs.append(
            SiteDocument(
                paths[0],
                {o: f"{t.text('site.notice')} — {tpls[code].name}" for o, t in tpls.items()},
            )
        )
    for doc in loaded.documents:
        site_docs.append(SiteDocument(doc.path, {code: doc.title[code] for code in langs}))
    for extra in document or []:
        if not extra.is_file():
            raise LegalError(f"--document {extra}: not a file")
        site_docs.append(SiteDocument(extra, {code: extra.name for code in langs}))
    pages = build_site(notices, site_docs, folder / "site")
    rows = [
        {"file": str(p), "size": p.stat().st_size, "sha256": sha256_file(p)} for p in written
    ] + [
        {"file": str(folder / "site" / page.name), "size": page.size, "sha256": page.sha256}
        for page in pages
    ]
    _emit(rows, fmt, f"Notice of {loaded.caption[langs[0]]} ({', '.join(langs)})")


def _case_and_docs(case: Path, notices: Path | None, names: list[str]) -> tuple[Any, list[Path]]:
    from takedown.case.legal.casefile import load_case

    home, _settings = _ctx()
    loaded = load_case(case)
    folder = notices or case_folder(home, loaded.id)
    paths = [folder / name for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise LegalError(
            f"{missing[0]}: not found; run `takedown legal notice --case {case}` first "
            "(or give --notices FOLDER)"
        )
    return loaded, paths


def _langs(loaded: Any, language: list[str] | None) -> list[str]:
    langs = list(language or loaded.languages)
    unknown = [code for code in langs if code not in loaded.languages]
    if unknown:
        raise LegalError(f"--language {unknown[0]}: the case's languages are {loaded.languages}")
    return langs


NoticesOpt = Annotated[
    Path | None,
    typer.Option("--notices", help="Folder of the notice PDFs (default HOME/legal/<case id>)."),
]
LanguageOpt = Annotated[
    list[str] | None, typer.Option("--language", help="Language(s) served (default: all).")
]
ProofOpt = Annotated[
    list[Path] | None,
    typer.Option("--proof", help="Proof to keep with the record: tear sheet, receipt (repeat)."),
]


@serve_app.command("publication")
def serve_publication(
    case: CaseOpt,
    newspaper: Annotated[str, typer.Option(help="The newspaper (or site) that published it.")],
    date: Annotated[list[str], typer.Option("--date", help="A day it appeared (repeat).")],
    language: LanguageOpt = None,
    proof: ProofOpt = None,
    note: Annotated[str, typer.Option(help="Anything else worth recording.")] = "",
    notices: NoticesOpt = None,
    handler: HandlerOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Record a publication of the notice (newspaper, days) as a custody entry, with the
    advertisement as published and any proof (tear sheets) added to the vault."""
    from takedown.case.legal.casefile import load_case
    from takedown.case.legal.service import record_service

    home, settings = _ctx()
    who = _handler(handler, settings)
    langs = _langs(load_case(case), language)
    loaded, docs = _case_and_docs(case, notices, [f"notice-ad-{code}.pdf" for code in langs])
    days = [_day(d, "--date") for d in date]
    record = record_service(
        home,
        handler=who,
        case=loaded,
        method="publication",
        details={"newspaper": newspaper, "dates": days, "languages": langs, "note": note},
        documents=[*docs, *(proof or [])],
    )
    _emit([_row(record, "publication", newspaper, days)], fmt, "Recorded")


@serve_app.command("mail")
def serve_mail(
    case: CaseOpt,
    to: Annotated[str, typer.Option("--to", help="Postal address, as the case file gives it.")],
    date: Annotated[str, typer.Option("--date", help="Day it was posted.")],
    carrier: Annotated[str, typer.Option(help="Post or courier, and the service used.")] = "",
    tracking: Annotated[str, typer.Option(help="Tracking or receipt number.")] = "",
    language: LanguageOpt = None,
    proof: ProofOpt = None,
    note: Annotated[str, typer.Option(help="Anything else worth recording.")] = "",
    notices: NoticesOpt = None,
    handler: HandlerOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Record a mailing of the notice to a postal address a defendant is known by."""
    from takedown.case.legal.casefile import load_case
    from takedown.case.legal.service import record_service

    home, settings = _ctx()
    who = _handler(handler, settings)
    probe = load_case(case)
    known = {a: d.number for d in probe.defendants for a in d.addresses}
    if to not in known:
        raise LegalError(
            f"--to {to!r}: not a postal address the case file lists for a defendant "
            "(add it to the defendant's addresses first)"
        )
    langs = _langs(probe, language)
    loaded, docs = _case_and_docs(case, notices, [f"notice-{code}.pdf" for code in langs])
    day = _day(date, "--date")
    record = record_service(
        home,
        handler=who,
        case=loaded,
        method="mail",
        details={
            "recipient": to,
            "defendant": known[to],
            "dates": [day],
            "carrier": carrier,
            "tracking": tracking,
            "languages": langs,
            "note": note,
        },
        documents=[*docs, *(proof or [])],
    )
    _emit([_row(record, "mail", to, [day])], fmt, "Recorded")


def _row(record: Any, method: str, recipient: str, dates: list[str]) -> dict[str, Any]:
    return {
        "custody_index": record.index,
        "action": record.action,
        "method": method,
        "recipient": recipient,
        "dates": ", ".join(dates),
        "item": record.item or "",
        "documents": ", ".join(d["name"] for d in record.documents),
    }


@serve_app.command("email")
def serve_email(
    case: CaseOpt,
    smtp_host: Annotated[
        str, typer.Option(help="SMTP server to hand the mail to (required: no default).")
    ],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="A defendant's known address (repeat).")
    ] = None,
    all_known: Annotated[
        bool, typer.Option("--all", help="Every e-mail address in the case file.")
    ] = False,
    smtp_port: Annotated[int, typer.Option(help="SMTP port.")] = 587,
    sender: Annotated[
        str | None, typer.Option("--from", help="From address (default: plaintiff's e-mail).")
    ] = None,
    tls: Annotated[str, typer.Option(help="starttls, ssl, or none (loopback only).")] = "starttls",
    smtp_user: Annotated[str, typer.Option(help="SMTP login name, if the server wants one.")] = "",
    password_env: Annotated[
        str, typer.Option(help="Environment variable holding the SMTP password.")
    ] = "TAKEDOWN_SMTP_PASSWORD",
    cafile: Annotated[Path | None, typer.Option(help="CA certificates to trust (PEM).")] = None,
    notices: NoticesOpt = None,
    handler: HandlerOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """E-mail the notice (every language in the body, the PDFs attached) to addresses the
    defendants are known by, one message each; each delivery, or failure, goes in the vault.

    Example: takedown legal serve email --case case.toml --all --smtp-host smtp.example.org
    """
    from takedown.case.legal.casefile import load_case
    from takedown.case.legal.notice import build_notice, notice_text
    from takedown.case.legal.service import SMTPSettings, build_email, record_service, send_email
    from takedown.case.legal.templates import load_template

    home, settings = _ctx()
    who = _handler(handler, settings)
    probe = load_case(case)
    known = dict((addr, n) for n, addr in probe.known_emails())
    recipients = list(known) if all_known else list(to or [])
    if not recipients:
        raise LegalError("give --to ADDRESS (repeat) or --all")
    for address in recipients:
        if address not in known:
            raise LegalError(
                f"--to {address!r}: not an address the case file knows a defendant by "
                "(add it to the defendant's emails first)"
            )
    from_address = sender or probe.counsel_email
    if not from_address:
        raise LegalError("--from is required (the case file gives no plaintiff e-mail)")
    smtp = SMTPSettings(
        host=smtp_host,
        port=smtp_port,
        sender=from_address,
        tls=tls,
        username=smtp_user,
        password=os.environ.get(password_env, "") if smtp_user else "",
        cafile=cafile,
    )
    smtp.check()
    loaded, docs = _case_and_docs(case, notices, [f"notice-{c}.pdf" for c in probe.languages])
    dirs = [Path(home.root) / "legal" / "templates"]
    tpls = [load_template(code, dirs) for code in loaded.languages]
    texts = [notice_text(build_notice(loaded, t, [o for o in tpls if o is not t])) for t in tpls]
    subject = " / ".join(
        t.text("email.subject", caption=loaded.caption[t.lang], number=loaded.number) for t in tpls
    )
    body = ("\n" + "=" * 72 + "\n\n").join(
        f"{t.text('email.attached', url=loaded.pleadings_url)}\n\n{text}"
        for t, text in zip(tpls, texts, strict=True)
    )
    rows = []
    failures = 0
    for address in recipients:
        mail = build_email(
            sender=from_address,
            recipient=address,
            subject=subject,
            body=body,
            attachments=docs,
            when=dt.datetime.now(dt.UTC),
            reply_to=loaded.counsel_email,
        )
        sent = send_email(smtp, mail)
        failures += not sent.ok
        today = dt.datetime.now(dt.UTC).date().isoformat()
        details: dict[str, Any] = {
            "recipient": address,
            "defendant": known[address],
            "dates": [today],
            "message_id": sent.message_id,
            "smtp_host": f"{smtp.host}:{smtp.port}",
            "smtp_tls": smtp.tls,
            "smtp_response": sent.response,
            **({"error": sent.error} if sent.error else {}),
        }
        record = record_service(
            home,
            handler=who,
            case=loaded,
            method="email",
            details=details,
            documents=docs,
            message=(sent.raw, f"notice-email-{known[address]}-{address}.eml"),
            failed=not sent.ok,
        )
        row = _row(record, "email", address, [today])
        row["smtp_response"] = sent.response or sent.error
        row["message_id"] = sent.message_id
        rows.append(row)
    _emit(rows, fmt, "E-mail service")
    if failures:
        raise LegalError(f"{failures} of {len(recipients)} e-mails were not accepted (see above)")


@app.command("service-log")
def service_log_cmd(
    case: Annotated[str | None, typer.Option("--case", help="Only this case id.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Every act of service (and failed attempt) recorded in the vault's custody log."""
    from takedown.case.legal.service import service_log

    home, _settings = _ctx()
    rows = service_log(home, case)
    columns = None
    if fmt is Format.table:
        columns = [
            "index",
            "time",
            "method",
            "status",
            "recipient",
            "dates",
            "smtp_response",
            "handler",
        ]
    _emit(rows, fmt, f"Service log ({len(rows)} entries)", columns)


@app.command("example-case")
def example_case_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to copy the example into.")] = Path(
        "example-case"
    ),
) -> None:
    """Copy the shipped FICTIONAL example case (case file and pleadings) to start from."""
    from takedown.case.legal.casefile import EXAMPLE_CASE

    if out.exists() and any(out.iterdir()):
        raise LegalError(f"--out {out}: exists and is not empty")
    shutil.copytree(EXAMPLE_CASE.parent, out, dirs_exist_ok=True)
    _note(f"copied the fictional example case to {out / EXAMPLE_CASE.name}")
