"""`takedown evidence …` as an analyst runs it."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from takedown.case.evidence import merkle
from takedown.cli import app

runner = CliRunner()
ENV = {
    "TAKEDOWN_HANDLER": "Jane Analyst, CERT-Test",
    "TAKEDOWN_KEY_PASSPHRASE": "correct horse battery",
}


def td(home, *args, env=ENV):
    """In-process; a TakedownError is left in ``result.exception`` (``main`` would print it as
    one line and exit 2, see ``td_process``)."""
    return runner.invoke(app, ["--home", str(home), "evidence", *args], env=env)


def ok(result):
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def error(result):
    assert result.exit_code != 0
    return str(result.exception)


def td_process(home, *args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("TAKEDOWN_")}
    return subprocess.run(
        [sys.executable, "-m", "takedown", "--home", str(home), "evidence", *args],
        capture_output=True,
        text=True,
        env={**full, "COLUMNS": "200", **env},
        timeout=120,
        check=False,
    )


def test_without_a_handler_the_cli_says_how_to_set_one(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    done = td_process(tmp_path / "h", "add", str(tmp_path / "f"), env={})
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("error: no handler set")
    for how in ("TAKEDOWN_HANDLER", "config.toml", "--handler"):
        assert how in line
    # The --handler option of the group, or the setting in config.toml, is enough.
    ok(
        runner.invoke(
            app,
            [
                "--home",
                str(tmp_path / "h"),
                "evidence",
                "--handler",
                "Det. Doe",
                "add",
                str(tmp_path / "f"),
            ],
            env={"TAKEDOWN_HANDLER": ""},
        )
    )
    (tmp_path / "h" / "config.toml").write_text('handler = "From Config"\n')
    ok(td(tmp_path / "h", "record", "-", "note", env={"TAKEDOWN_HANDLER": None}))
    log = json.loads(ok(td(tmp_path / "h", "log", "-f", "json", env={})).stdout)
    assert [r["handler"] for r in log] == ["Det. Doe", "From Config"]


def test_the_analyst_workflow(tmp_path):
    home = tmp_path / "h"
    (tmp_path / "disk.img").write_bytes(os.urandom(200_000))
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "1.eml").write_bytes(b"From: a@example\n\nhi")
    (tmp_path / "mail" / "2.eml").write_bytes(b"From: b@example\n\nho")
    result = ok(td(home, "keygen"))
    assert "+" in result.stdout and "mode 0600" in result.output
    result = td(
        home,
        "add",
        str(tmp_path / "disk.img"),
        str(tmp_path / "mail"),
        "--source",
        "C2 server",
        "--tool",
        "dc3dd",
        "--tool-version",
        "7.3.1",
        "-f",
        "json",
    )
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    assert [a["name"] for a in added] == ["disk.img", "mail"]
    disk = added[0]["sha256"]
    items = json.loads(td(home, "list", "-f", "json").stdout)
    assert len(items) == 4 and {i["tool"] for i in items} == {"dc3dd"}
    assert td(home, "list", "-f", "csv").stdout.startswith("sha256,name,kind,size")
    ok(td(home, "record", disk[:10], "analysed", "-d", "tool=strings"))
    assert "KEY=VALUE" in error(td(home, "record", disk[:10], "analysed", "-d", "nonsense"))
    shown = json.loads(td(home, "show", disk[:10], "-f", "json").stdout)
    assert [e["action"] for e in shown["custody"]] == ["received", "analysed"]
    assert shown["custody"][1]["details"] == '{"tool": "strings"}'
    out = tmp_path / "copy.img"
    assert td(home, "get", disk[:12], str(out), "--purpose", "report").exit_code == 0
    assert out.read_bytes() == (tmp_path / "disk.img").read_bytes()
    ndjson = td(home, "log", "-f", "ndjson").stdout.splitlines()
    assert [json.loads(x)["action"] for x in ndjson][-2:] == ["analysed", "accessed"]
    result = td(home, "checkpoint")
    assert result.exit_code == 0 and result.stdout.count("\n") == 5
    size = int(result.stdout.split("\n")[1])
    proof = json.loads(td(home, "prove", disk[:10]).stdout)
    assert proof["tree_size"] == size and len(proof["inclusion"]) == 3
    for p in proof["inclusion"]:
        assert merkle.verify_inclusion(
            bytes.fromhex(p["leaf_hash"]),
            p["entry"],
            size,
            [bytes.fromhex(h) for h in p["proof"]],
            bytes.fromhex(proof["root"]),
        )
    cons = json.loads(td(home, "prove", "0", "--consistency", "2").stdout)
    assert merkle.verify_consistency(
        2,
        size,
        bytes.fromhex(cons["old_root"]),
        bytes.fromhex(cons["root"]),
        [bytes.fromhex(h) for h in cons["consistency"]],
    )
    result = td(home, "verify")
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output
    result = td(home, "export", str(tmp_path / "case.zip"))
    assert result.exit_code == 0, result.output
    result = td(home, "verify", str(tmp_path / "case.zip"))
    assert result.exit_code == 0 and "VERIFIED" in result.output
    # Tampering in the live vault: named, exit 1.
    obj = home / "vault" / "objects" / disk[:2] / disk
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as fh:
        fh.write(b"\0")
    result = td(home, "verify")
    assert result.exit_code == 1
    assert f"item {disk} (disk.img) has changed" in result.stdout


def test_passphrase_problems_are_named(tmp_path):
    home = tmp_path / "h"
    # No terminal (the runner's stdin is not one) and no environment variable.
    no_pass = {**ENV, "TAKEDOWN_KEY_PASSPHRASE": None}
    assert "TAKEDOWN_KEY_PASSPHRASE" in error(td(home, "keygen", env=no_pass))
    assert "at least 8" in error(
        td(home, "keygen", env={**ENV, "TAKEDOWN_KEY_PASSPHRASE": "short"})
    )
    ok(td(home, "keygen"))
    assert "already there" in error(td(home, "keygen"))
    wrong = {**ENV, "TAKEDOWN_KEY_PASSPHRASE": "wrong one!"}
    assert "wrong passphrase" in error(td(home, "checkpoint", env=wrong))
    assert "no signing key" in error(td(tmp_path / "other", "checkpoint"))


def test_unknown_item_is_named(tmp_path):
    assert "item 0123456789abcdef: not in the vault" in error(
        td(tmp_path / "h", "show", "0123456789abcdef")
    )
    assert "choose one of" in error(td(tmp_path / "h", "record", "-", "shredded"))


@pytest.mark.parametrize("cmd", [["verify"], ["list"], ["log"]])
def test_read_only_commands_need_no_handler(tmp_path, cmd):
    ok(td(tmp_path / "h", *cmd, env={}))
