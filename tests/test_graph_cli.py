"""`takedown graph …` as an analyst runs it."""

import csv
import io
import json
import subprocess
import sys

import pytest
from test_graph_demo import demo_built, demo_home  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from takedown.case.graph.demo import DEMO_CASE
from takedown.cli import app

runner = CliRunner()
ENV = {"TAKEDOWN_HANDLER": "Jane Analyst, CERT (test)", "COLUMNS": "200"}


def graph(home, *args, env=ENV):
    return runner.invoke(app, ["--home", str(home.root), "graph", *args], env=env)


@pytest.mark.parametrize(
    "cmd",
    [
        "import",
        "resolve",
        "link",
        "find",
        "show",
        "timeline",
        "path",
        "explain",
        "candidates",
        "export",
        "picture",
        "status",
        "kinds",
        "demo",
    ],
)
def test_every_graph_command_has_help(cmd):
    result = runner.invoke(app, ["graph", cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_import_and_ask(tmp_path):
    from takedown.home import Home

    home = Home(tmp_path)
    result = graph(home, "import", "whois", str(DEMO_CASE / "whois-registrations.csv"))
    assert result.exit_code == 0, result.output
    result = graph(home, "import", "hosting", str(DEMO_CASE / "hosting-export.csv"))
    assert result.exit_code == 0, result.output
    result = graph(home, "find", "nightjar", "--format", "json")
    rows = json.loads(result.output)
    assert {r["kind"] for r in rows} >= {"email", "person"}
    result = graph(home, "show", "k.nightjar@mail.example", "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert {r["evidence"].split(" ")[0] for r in table} == {
        "whois-registrations.csv",
        "hosting-export.csv",
    }
    result = graph(home, "status", "--format", "ndjson")
    counts = [json.loads(line) for line in result.output.splitlines()]
    assert any(r["kind"] == "registered" and r["count"] == 4 for r in counts)


def test_questions_on_the_demo_case(demo_home):  # noqa: F811
    result = graph(demo_home, "candidates", "botnet:rustock", "--format", "json")
    assert result.exit_code == 0, result.output
    ranked = json.loads(result.output)
    assert ranked[0]["person"].endswith("Kirill Nightjar") and ranked[0]["independent"] == 2
    assert "CAVEAT" in ranked[1]["why"]
    result = graph(demo_home, "path", "ip:203.0.113.10", "alias:vesper2k", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert {r["path"] for r in rows} == {"shortest", "strongest"}
    result = graph(demo_home, "explain", "domain:onlinescannow.example", "alias:vesper2k")
    assert result.exit_code == 0 and "SHA-256" in result.output
    assert result.output.startswith("Strongest evidence path (graph version")
    result = graph(demo_home, "timeline", "alias:vesper2k", "--depth", "2", "-f", "json")
    assert json.loads(result.output)
    out = demo_home.root / "p.svg"
    result = graph(demo_home, "picture", "botnet:rustock", "alias:vesper2k", "--out", str(out))
    assert result.exit_code == 0 and out.read_text().lstrip().startswith("<?xml")
    result = graph(demo_home, "kinds", "-f", "json")
    assert any(r["kind"] == "same-as" for r in json.loads(result.output))


def test_manual_link_cites_a_vault_item(demo_home):  # noqa: F811
    from takedown.case.evidence.vault import Vault

    with Vault.open(demo_home) as vault:
        item = vault.add_bytes(b"FICTIONAL analyst memo", "memo.txt", handler="Jane", source="t")
    args = [
        "link",
        "alias:vesper",
        "same-as",
        "alias:vesper2k",
        "-e",
        item.sha256[:12],
        "--confidence",
        "unknown",
        "--note",
        "same builder nickname",
    ]
    result = graph(demo_home, *args)
    assert result.exit_code == 0, result.output
    result = graph(demo_home, "show", "alias:vesper", "-f", "json")
    rows = json.loads(result.output)
    manual = [r for r in rows if r["method"] == "manual"]
    assert manual[0]["confidence"] == "unknown" and manual[0]["evidence"].startswith("memo.txt")
    result = graph(demo_home, "link", "alias:a", "same-as", "alias:b", "-e", "ab" * 32)
    assert isinstance(result.exception, Exception) and "not in the vault" in str(result.exception)


def test_errors_are_one_line(demo_home, tmp_path):  # noqa: F811
    def run(*args, env):
        return subprocess.run(
            [sys.executable, "-m", "takedown", "--home", str(demo_home.root), "graph", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env=env,
        )

    import os

    bare = {k: v for k, v in os.environ.items() if k != "TAKEDOWN_HANDLER"}
    result = run("import", "whois", str(DEMO_CASE / "whois-registrations.csv"), env=bare)
    assert result.returncode == 2
    assert result.stderr.startswith("error: who asserts this? set the handler")
    assert result.stderr.count("\n") == 1
    result = run("show", "ip:192.0.2.250", env={**bare, **ENV})
    assert result.returncode == 2 and "no entity has this key or label" in result.stderr
    result = run("export", "stix", "--out", str(tmp_path / "b.json"), env={**bare, **ENV})
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "b.json").read_text())["type"] == "bundle"
