"""The court appendix: CSV and PDF agree, tables numbered, the CSV's hash on every page."""

import csv
import datetime as dt
import hashlib
import io
import re
import subprocess

from takedown.case.legal.appendix import Caption, seizure_csv, write_seizure
from takedown.case.legal.lists import parse_domain_list, parse_ip_list
from takedown.case.legal.pdfdoc import PAPER
from takedown.case.legal.registries import DomainClassifier
from takedown.case.legal.seizure import CSV_COLUMNS, build_seizure

GENERATED = dt.datetime(2011, 3, 16, 9, 30, tzinfo=dt.UTC)


def seizure(n=80):
    names = "".join(f"c2-{i}.example.com\n" for i in range(n))
    names += "example.ru\nпример.рф\nevil.example.su\nx.example.org\n"
    return build_seizure(
        domain_lists=[parse_domain_list(names, "d.txt")],
        ip_lists=[parse_ip_list("192.0.2.10\n2001:db8::c2\n", "i.txt")],
        classifier=DomainClassifier(),
        enricher=None,
    )


def pdftext(path, *args):
    return subprocess.run(
        ["pdftotext", *args, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_csv_and_pdf(tmp_path):
    s = seizure()
    caption = Caption(
        "Example Court (fictional)",
        "Example Bank v. John Does 1-11",
        "2:11-cv-00042",
        "FICTIONAL CASE FOR DEMONSTRATION",
    )
    files = write_seizure(s, tmp_path, caption=caption, generated=GENERATED, paper=PAPER["a4"])
    data = files.csv.read_bytes()
    assert hashlib.sha256(data).hexdigest() == files.csv_sha256
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == len(s.targets) == 7
    assert {r["target"] for r in rows} >= {"example.com", "xn--e1afmkfd.xn--p1ai", "192.0.2.10"}
    text = pdftext(files.pdf)
    pages = int(
        re.search(
            r"Pages:\s+(\d+)",
            subprocess.run(
                ["pdfinfo", str(files.pdf)], capture_output=True, text=True, check=True
            ).stdout,
        )[1]
    )
    flat = " ".join(text.split())
    assert flat.count(f"SHA-256 of the accompanying CSV: {files.csv_sha256}") == pages
    assert all(f"Page {p} of {pages}" in flat for p in range(1, pages + 1))
    assert "generated 2011-03-16 09:30 UTC" in flat and "FICTIONAL CASE FOR DEMONSTRATION" in flat
    tables = re.findall(r"Table (\d+)\. (Registry|Network): ([^—]+)—", flat)
    assert [int(n) for n, _, _ in tables] == list(range(1, len(tables) + 1))
    assert {kind for _, kind, _ in tables} == {"Registry", "Network"}
    assert any("Coordination Center for TLD RU" in name for _, _, name in tables)
    assert "пример.рф" in flat and "(xn--e1afmkfd.xn--p1ai" in flat
    assert "c2-13.example.com" in flat and "(+74 more in the CSV)" in flat


def test_reproducible_and_empty(tmp_path):
    s = seizure(3)
    first = write_seizure(s, tmp_path / "a", caption=Caption(), generated=GENERATED)
    again = write_seizure(s, tmp_path / "b", caption=Caption(), generated=GENERATED)
    assert first.pdf.read_bytes() == again.pdf.read_bytes()
    empty = build_seizure(classifier=DomainClassifier(), enricher=None)
    assert seizure_csv(empty).decode() == ",".join(CSV_COLUMNS) + "\n"
    files = write_seizure(empty, tmp_path / "c", caption=Caption(), generated=GENERATED)
    assert "No domain names." in pdftext(files.pdf)
