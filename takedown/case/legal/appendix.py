"""The seizure list as files: a CSV, and a court appendix PDF whose every page footer carries the
CSV's SHA-256, so the paper and the data can be matched."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from takedown.case.legal.pdfdoc import PAPER, CourtPDF, sha256_bytes, table, write_atomic
from takedown.case.legal.registries import PSL_VERSION
from takedown.case.legal.seizure import CSV_COLUMNS, Seizure, Target
from takedown.output import Format, render

__all__ = ["Caption", "SeizureFiles", "appendix_pdf", "seizure_csv", "write_seizure"]


@dataclass(frozen=True, slots=True)
class Caption:
    """The case a document belongs to, as printed on it."""

    court: str = ""
    caption: str = ""
    number: str = ""
    fictional: str = ""  # the fictional-case banner; empty for a real case

    @property
    def short(self) -> str:
        parts = [p for p in (self.caption, f"No. {self.number}" if self.number else "") if p]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class SeizureFiles:
    csv: Path
    pdf: Path
    csv_sha256: str
    pdf_sha256: str


def seizure_csv(seizure: Seizure) -> bytes:
    text = render(seizure.rows(), Format.csv, columns=CSV_COLUMNS)
    assert text is not None
    if not seizure.targets:
        text = ",".join(CSV_COLUMNS) + "\n"
    return text.encode("utf-8")


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _sources(target: Target) -> str:
    text = target.source_text("\n")
    return text if len(text) <= 300 else text[:297] + "..."


def _hostnames(target: Target, limit: int = 6) -> str:
    names = sorted(target.hostnames)
    shown = names[:limit]
    if len(names) > limit:
        shown.append(f"(+{len(names) - limit} more in the CSV)")
    return "\n".join(shown)


def _widths(pdf: CourtPDF, shares: Sequence[float]) -> list[float]:
    usable = pdf.w - pdf.l_margin - pdf.r_margin
    total = sum(shares)
    return [usable * s / total for s in shares]


def appendix_pdf(
    seizure: Seizure,
    csv_sha256: str,
    *,
    caption: Caption,
    generated: dt.datetime,
    label: str = "Appendix A",
    paper: tuple[float, float] = PAPER["letter"],
    network_source: str = "",
) -> bytes:
    """The court appendix: numbered tables per registry, then per network."""
    stamp = generated.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = " — ".join(p for p in (caption.short, label) if p)
    pdf = CourtPDF(
        size=paper,
        running_head=head,
        footer_lines=[
            *([caption.fictional] if caption.fictional else []),
            f"{head} · generated {stamp} by takedown",
            f"SHA-256 of the accompanying CSV: {csv_sha256}",
        ],
        generated=generated,
        title=f"{label}: domains and IP addresses to be seized or redirected",
    )
    pdf.add_page()
    if caption.court:
        pdf.set_font("serif", "B", 11)
        pdf.multi_cell(0, 5.5, caption.court.upper(), align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    if caption.caption or caption.number:
        pdf.set_font("serif", "", 10.5)
        line = "   ·   ".join(p for p in (caption.caption, f"No. {caption.number}") if p)
        pdf.multi_cell(0, 5, line, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    if caption.fictional:
        pdf.banner(caption.fictional)
    pdf.set_font("serif", "B", 14)
    pdf.multi_cell(0, 7, label.upper(), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", "B", 12)
    pdf.multi_cell(
        0,
        6,
        "Domain names and IP addresses to be seized or redirected",
        align="C",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    registries = seizure.by_registry()
    networks = seizure.by_network()
    pdf.para(
        f"This appendix lists {len(seizure.domains)} domain name(s) under "
        f"{len(registries)} registry operator(s) and {len(seizure.addresses)} IP address(es) "
        f"or network(s) in {len(networks)} network(s), numbered 1 to {len(seizure.targets)}. "
        "Each domain is given as the registered domain under the Public Suffix List "
        f"(snapshot {PSL_VERSION}), which is what its registry can act on; the host names seen "
        "under it are listed beside it. Registry operators are the TLD managers listed in the "
        "IANA Root Zone Database. Networks and autonomous systems are those announcing each "
        f"address{f' ({network_source})' if network_source else ''}. Events, first and last "
        "seen are the sinkhole's observations (UTC); entries without them come from lists "
        "supplied to the court. The same list, machine-readable, is the CSV file whose SHA-256 "
        f"is {csv_sha256}.",
        size=9.5,
    )
    number = 0
    pdf.heading("Part 1. Domain names, by registry", size=11.5)
    if not registries:
        pdf.para("No domain names.", size=9.5)
    for registry, targets in registries:
        number += 1
        tlds = ", ".join(sorted({"." + t.display.rsplit(".", 1)[-1] for t in targets}))
        table(
            pdf,
            ["No.", "Domain", "Host names observed", "Events", "First seen", "Last seen", "Source"],
            [
                (
                    t.no,
                    t.display + (f"\n({t.value})" if t.display != t.value else ""),
                    _hostnames(t),
                    "" if t.events is None else f"{t.events:,}",
                    _when(t.first_seen),
                    _when(t.last_seen),
                    _sources(t) + (f"\nNote: {'; '.join(t.notes)}" if t.notes else ""),
                )
                for t in targets
            ],
            _widths(pdf, [7, 28, 32, 10, 14, 14, 30]),
            caption=f"Table {number}. Registry: {registry} — {tlds} ({len(targets)})",
        )
    pdf.heading("Part 2. IP addresses and networks, by network", size=11.5)
    if not networks:
        pdf.para("No IP addresses.", size=9.5)
    for network, targets in networks:
        number += 1
        countries = ", ".join(sorted({t.cc for t in targets if t.cc})) or "country unknown"
        table(
            pdf,
            [
                "No.",
                "Address",
                "Announced network",
                "Country",
                "Events",
                "First seen",
                "Last seen",
                "Source",
            ],
            [
                (
                    t.no,
                    t.value,
                    t.network,
                    t.cc,
                    "" if t.events is None else f"{t.events:,}",
                    _when(t.first_seen),
                    _when(t.last_seen),
                    _sources(t) + (f"\nNote: {'; '.join(t.notes)}" if t.notes else ""),
                )
                for t in targets
            ],
            _widths(pdf, [7, 24, 24, 13, 10, 14, 14, 25]),
            caption=f"Table {number}. Network: {network} — {countries} ({len(targets)})",
        )
    return pdf.output_bytes()


def write_seizure(
    seizure: Seizure,
    out_dir: Path,
    *,
    caption: Caption,
    generated: dt.datetime,
    stem: str = "seizure-list",
    **pdf_options: Any,
) -> SeizureFiles:
    """Write ``<stem>.csv`` and ``<stem>.pdf`` (the appendix) into ``out_dir``."""
    data = seizure_csv(seizure)
    digest = sha256_bytes(data)
    pdf = appendix_pdf(seizure, digest, caption=caption, generated=generated, **pdf_options)
    csv_path, pdf_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.pdf"
    write_atomic(csv_path, data)
    write_atomic(pdf_path, pdf)
    return SeizureFiles(csv_path, pdf_path, digest, sha256_bytes(pdf))
