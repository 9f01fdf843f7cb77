"""`make demo`, the legal part: a seizure list and the notices for the FICTIONAL example case.

Everything here is invented and says so: the case (Example Bank v. John Does 1-11), its court,
parties, identifiers, newspaper. The domains are .example names (RFC 2606), the addresses
documentation ranges (RFC 5737/3849), plus whatever the demo's sinkhole saw on loopback.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from rich.console import Console

from takedown.case.legal.appendix import Caption, write_seizure
from takedown.case.legal.casefile import EXAMPLE_CASE, load_case
from takedown.case.legal.lists import parse_domain_list, parse_ip_list
from takedown.case.legal.notice import ad_pdf, build_notice, print_pdf
from takedown.case.legal.pdfdoc import PAPER, write_atomic
from takedown.case.legal.registries import DomainClassifier
from takedown.case.legal.seizure import build_seizure, scan_lake
from takedown.case.legal.site import SiteDocument, build_site
from takedown.case.legal.templates import load_template
from takedown.errors import TakedownError
from takedown.home import Home

__all__ = ["DEMO_HANDLER", "demo_legal"]

DEMO_HANDLER = "takedown demo (fictional handler)"
EXAMPLES = EXAMPLE_CASE.parent


def demo_legal(home: Home, console: Console, *, serve: bool = True) -> list[Path]:
    """Seizure list (CSV + appendix PDF), notices, ads and the pleadings site, from the lake
    of ``home`` and the example lists; with ``serve``, a fictional publication is recorded in
    the vault as a custody entry. Returns the files written."""
    from takedown.enrich import Enricher

    console.rule("[bold]legal: seizure list and notice by publication (FICTIONAL case)")
    case = load_case(EXAMPLE_CASE)
    folder = Path(home.root) / "legal" / case.id
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0)
    domains = parse_domain_list(
        (EXAMPLES / "example-domains.txt").read_bytes(), "example-domains.txt"
    )
    ips = parse_ip_list((EXAMPLES / "example-ips.txt").read_bytes(), "example-ips.txt")
    scan = scan_lake(home)
    enricher = Enricher.default()
    seizure = build_seizure(
        domain_lists=[domains],
        ip_lists=[ips],
        scan=scan,
        classifier=DomainClassifier(),
        enricher=enricher,
    )
    templates = {lang: load_template(lang) for lang in case.languages}
    en = templates.get("en") or next(iter(templates.values()))
    files = write_seizure(
        seizure,
        folder,
        caption=Caption(
            court=case.court[en.lang],
            caption=case.caption[en.lang],
            number=case.number,
            fictional=en.text("fictional"),
        ),
        generated=generated,
        network_source=", ".join(f"{k}: {v}" for k, v in enricher.sources.items()),
    )
    console.print(
        f"8. seizure list: {len(seizure.domains)} domains by registry, "
        f"{len(seizure.addresses)} addresses by network ({scan.summary()})"
    )
    console.print(f"   {files.csv}\n   {files.pdf} (footer: the CSV's SHA-256 {files.csv_sha256})")
    written = [files.csv, files.pdf]
    notices = {
        lang: build_notice(case, tpl, [o for o in templates.values() if o is not tpl])
        for lang, tpl in templates.items()
    }
    docs: list[SiteDocument] = []
    for lang, notice in notices.items():
        paths = (folder / f"notice-{lang}.pdf", folder / f"notice-ad-{lang}.pdf")
        write_atomic(paths[0], print_pdf(notice, paper=PAPER["letter"], generated=generated))
        write_atomic(paths[1], ad_pdf(notice, generated=generated))
        written += paths
        docs.append(
            SiteDocument(
                paths[0],
                {
                    o: f"{t.text('site.notice')} — {templates[lang].name}"
                    for o, t in templates.items()
                },
            )
        )
    docs += [
        SiteDocument(d.path, {lang: d.title[lang] for lang in notices}) for d in case.documents
    ]
    docs.append(SiteDocument(files.pdf, {lang: "Appendix A (seizure list)" for lang in notices}))
    build_site(notices, docs, folder / "site")
    written.append(folder / "site" / "index.html")
    console.print(
        f"9. notices in {', '.join(t.name for t in templates.values())}: print PDFs, "
        f"quarter-page newspaper ads, and the pleadings site {folder / 'site' / 'index.html'}"
    )
    if serve:
        try:
            from takedown.case.legal.service import record_service

            record = record_service(
                home,
                handler=DEMO_HANDLER,
                case=case,
                method="publication",
                details={
                    "newspaper": "The Example Gazette (fictional newspaper)",
                    "dates": [generated.date().isoformat()],
                    "languages": list(case.languages),
                    "note": "fictional publication recorded by `make demo`",
                },
                documents=[folder / f"notice-ad-{lang}.pdf" for lang in notices],
            )
            console.print(
                f"10. a (fictional) publication recorded in the evidence vault: custody entry "
                f"{record.index}; see `takedown --home {home.root} legal service-log`"
            )
        except TakedownError as exc:
            console.print(f"10. service not recorded: {exc}")
    return written
