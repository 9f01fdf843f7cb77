"""The `takedown` command as a user runs it."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from takedown.cli import app

runner = CliRunner()


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "takedown", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["sinkhole"],
        ["sinkhole", "serve"],
        ["ingest"],
        ["events"],
        ["status"],
        ["schema"],
        ["settings"],
        ["loadgen"],
        ["demo"],
        ["sinkhole", "rules"],
    ],
)
def test_every_command_has_help(cmd):
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_help_teaches_with_examples():
    out = runner.invoke(app, ["sinkhole", "serve", "--help"]).output
    assert "Example" in out and "SIGTERM" in out


def test_empty_home_status_and_events(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path), "status"])
    assert result.exit_code == 0
    assert "spool: empty" in result.output and "lake: empty" in result.output
    result = runner.invoke(app, ["--home", str(tmp_path), "events", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_rules_listing_formats(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path), "sinkhole", "rules", "-f", "ndjson"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert any(r["id"] == "rustock.c2-login" and r["confidence"] == 70 for r in rows)
    csv_out = runner.invoke(app, ["--home", str(tmp_path), "sinkhole", "rules", "-f", "csv"])
    assert csv_out.output.splitlines()[0].startswith("id,malware,protocol")


def test_schema_forms():
    assert "CREATE TABLE events" in runner.invoke(app, ["schema", "--as", "duckdb"]).output
    assert "STRUCT<" in runner.invoke(app, ["schema", "--as", "spark"]).output


def test_user_errors_are_one_line_exit_2(tmp_path):
    import os

    env = {**os.environ, "TAKEDOWN_WORKERS": "many"}
    r = run("--home", str(tmp_path), "status", env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: environment TAKEDOWN_WORKERS: setting 'workers' wants int, got 'many'"
    ]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.toml").write_text("[[rule]]\nid='x'\n")
    r = run("--home", str(tmp_path), "sinkhole", "rules")
    assert r.returncode == 2 and "bad.toml: rule 'x': field 'malware' is missing" in r.stderr
    (tmp_path / "rules" / "bad.toml").unlink()
    r = run("--home", str(tmp_path), "events", "--since", "yesterday")
    assert r.returncode == 2 and "--since: 'yesterday' is not an ISO date" in r.stderr
    r = run("--home", str(tmp_path), "sinkhole", "serve", "--http", "nonsense")
    assert r.returncode == 2 and "is not HOST:PORT" in r.stderr
    r = run("--home", str(tmp_path), "sinkhole", "serve", "--dns", "127.0.0.1:0")
    assert r.returncode == 2 and "--zone" in r.stderr
    r = run("--home", str(tmp_path), "loadgen", "--target", "192.0.2.1:80", "--requests", "1")
    assert r.returncode == 2 and "not a loopback address" in r.stderr


def test_settings_shows_values_in_force(tmp_path):
    (tmp_path / "config.toml").write_text("raw_bytes = 64\n")
    out = runner.invoke(app, ["--home", str(tmp_path), "settings", "-f", "json"]).output
    rows = {r["setting"]: r for r in json.loads(out)}
    assert rows["raw_bytes"]["value"] == 64 and rows["raw_bytes"]["default"] == 512


def test_demo_end_to_end(tmp_path):
    r = run("--home", str(tmp_path), "demo", "--requests", "400")
    assert r.returncode == 0, r.stderr
    assert "By family" in r.stdout and "rustock" in r.stdout
    assert "ingested" in r.stdout
    summary = (tmp_path / "demo-summary.md").read_text()
    assert "| rustock |" in summary
    events = run(
        "--home", str(tmp_path), "events", "--family", "rustock", "--limit", "0", "-f", "ndjson"
    )
    rows = [json.loads(line) for line in events.stdout.splitlines()]
    assert rows and all(r["malware.name"] == "rustock" for r in rows)
    assert all(r["source.ip"].startswith("127.") for r in rows)
