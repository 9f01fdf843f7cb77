"""`takedown legal …` as a user runs it: a lake, lists with mistakes, the outputs on disk."""

import csv
import io
import json
import subprocess
import sys

import pytest
from test_legal_support import event, write_lake
from typer.testing import CliRunner

from takedown.case.legal.casefile import EXAMPLE_CASE
from takedown.cli import app
from takedown.errors import LegalError
from takedown.home import Home

runner = CliRunner()


def legal(home, *args):
    return runner.invoke(app, ["--home", str(home.root), "legal", *args])


@pytest.fixture
def home(tmp_path):
    home = Home(tmp_path / "home")
    names = ["cc.onlinescannow.example", "x.guardandprotector.example", "c2.example.ru"]
    write_lake(home, [event(i, names[i % 3], ["127.0.0.1", "8.8.8.8"][i % 2]) for i in range(30)])
    return home


def test_seizure_list(home, tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text("fallback.example.com  # from the complaint\nпример.рф\n")
    ips = tmp_path / "ips.txt"
    ips.write_text("192.0.2.10\n")
    result = legal(
        home,
        "seizure-list",
        "--case",
        str(EXAMPLE_CASE),
        "--domains",
        str(domains),
        "--ips",
        str(ips),
        "--date",
        "2011-03-16",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["target_unicode"] for r in rows if r["kind"] == "domain"] == [
        "example.ru",
        "пример.рф",
        "guardandprotector.example",
        "onlinescannow.example",
        "example.com",
    ]
    assert {r["target"] for r in rows if r["kind"] == "ip"} == {"8.8.8.8", "192.0.2.10"}
    google = next(r for r in rows if r["target"] == "8.8.8.8")
    assert google["as_name"] == "GOOGLE" and google["country"] == "US"  # real, offline data
    folder = home.root / "legal" / "example-bank-v-does"
    with open(folder / "seizure-list.csv", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    assert (folder / "seizure-list.pdf").read_bytes().startswith(b"%PDF-")
    assert "skipped 15 events to non-public destination 127.0.0.1" in result.stderr
    for fmt in ("csv", "ndjson", "table"):
        again = legal(
            home,
            "seizure-list",
            "--no-lake",
            "--domains",
            str(domains),
            "--out",
            str(tmp_path / fmt),
            "--format",
            fmt,
        )
        assert again.exit_code == 0, again.output
        assert ("Seizure list: 2 domains" if fmt == "table" else "example.com") in again.stdout


def test_bad_lines_stop_unless_skipped(home, tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text("good.example.com\nhttp://bad.example/x\nco.uk\n")
    result = legal(home, "seizure-list", "--no-lake", "--domains", str(domains))
    assert isinstance(result.exception, LegalError)
    assert str(result.exception) == (
        f"{domains}:2: 'http://bad.example/x' looks like a URL: give the host name only "
        "(fix it, or --skip-bad)"
    )
    domains.write_text("good.example.com\nco.uk\n")
    result = legal(home, "seizure-list", "--no-lake", "--domains", str(domains))
    assert "is a public suffix (co.uk)" in str(result.exception)
    result = legal(
        home,
        "seizure-list",
        "--no-lake",
        "--domains",
        str(domains),
        "--skip-bad",
        "--format",
        "csv",
    )
    assert result.exit_code == 0 and f"skipped {domains}:2:" in result.stderr
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 1


def test_errors_exit_2_with_one_line(home, tmp_path):
    bad = tmp_path / "case.toml"
    bad.write_text("fictional = true\n[case]\nid = 'x'\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "takedown",
            "--home",
            str(home.root),
            "legal",
            "notice",
            "--case",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert (
        done.stderr == "error: case.toml: case.number: missing (see docs/legal.md or the "
        "example case file)\n"
    )


def test_example_case_copy(tmp_path):
    out = tmp_path / "mine"
    result = runner.invoke(app, ["legal", "example-case", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "example-case.toml").read_text().startswith("# FICTIONAL CASE")
    assert (out / "pleadings" / "complaint-FICTIONAL.txt").is_file()
    result = runner.invoke(app, ["legal", "example-case", "--out", str(out)])
    assert "exists and is not empty" in str(result.exception)


def test_every_listing_command_takes_format():
    for command in (
        ["seizure-list"],
        ["notice"],
        ["service-log"],
        ["serve", "email"],
        ["serve", "mail"],
        ["serve", "publication"],
    ):
        result = runner.invoke(app, ["legal", *command, "--help"])
        assert result.exit_code == 0 and "--format" in result.output, command
