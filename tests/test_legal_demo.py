"""`make demo`'s legal part: the fictional case's documents from whatever the lake holds."""

import io
import json

from rich.console import Console
from test_legal_support import event, write_lake
from typer.testing import CliRunner

from takedown.case.legal.demo import demo_legal
from takedown.cli import app
from takedown.home import Home


def test_demo_legal(tmp_path):
    home = Home(tmp_path / "demo")
    write_lake(home, [event(i, "cc.onlinescannow.example", "127.0.0.1") for i in range(20)])
    out = io.StringIO()
    paths = demo_legal(home, Console(file=out, width=200))
    names = {p.name for p in paths}
    assert names == {
        "seizure-list.csv",
        "seizure-list.pdf",
        "notice-en.pdf",
        "notice-ad-en.pdf",
        "notice-ru.pdf",
        "notice-ad-ru.pdf",
        "index.html",
    }
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    text = out.getvalue()
    assert "FICTIONAL" in text and "custody entry" in text
    csv_text = next(p for p in paths if p.name == "seizure-list.csv").read_text()
    assert "onlinescannow.example" in csv_text and "192.0.2.10" in csv_text
    log = json.loads(
        CliRunner()
        .invoke(app, ["--home", str(home.root), "legal", "service-log", "--format", "json"])
        .stdout
    )
    assert [r["recipient"] for r in log] == ["The Example Gazette (fictional newspaper)"]
