import os
import time

import pytest

from takedown.errors import RuleError
from takedown.sinkhole.rules import BUILTIN_RULES, HttpFacts, RuleSet, load_rules, parse_rules


def facts(**kw):
    base = dict(
        method="GET",
        path="/",
        query="",
        host="",
        user_agent="",
        headers={},
        body_size=0,
        body_prefix=b"",
    )
    base.update(kw)
    return HttpFacts(**base)


def test_builtin_rules_load_and_state_their_basis():
    rules = load_rules([BUILTIN_RULES])
    ids = [r.id for r in rules]
    assert "rustock.c2-login" in ids
    assert any(r.malware == "generic-http-bot" for r in rules)
    for r in rules:
        assert r.basis and 0 <= r.confidence <= 100


def test_rustock_rule_needs_post_login_php_and_96_bytes():
    rs = RuleSet([BUILTIN_RULES])
    hit = rs.classify_http(facts(method="POST", path="/login.php", body_size=96))
    assert (hit.malware, hit.rule) == ("rustock", "rustock.c2-login")
    assert rs.classify_http(facts(method="POST", path="/login.php", body_size=95)).malware == (
        "unknown"
    )
    assert rs.classify_http(facts(method="GET", path="/login.php", body_size=96)).malware == (
        "unknown"
    )
    assert rs.classify_http(facts(method="POST", path="/xlogin.php", body_size=96)).malware == (
        "unknown"
    )


def test_bot_id_from_query_header_path_and_body(tmp_path):
    (tmp_path / "fam.toml").write_text("""
[[rule]]
id = "q"
malware = "famq"
basis = "test"
confidence = 50
path = '^/q$'
bot_id = { query = ["bid", "id"] }

[[rule]]
id = "h"
malware = "famh"
basis = "test"
confidence = 50
path = '^/h$'
bot_id = { header = "X-Bot" }

[[rule]]
id = "p"
malware = "famp"
basis = "test"
confidence = 50
bot_id = { path = '^/bots/(?P<id>[0-9a-f]+)/ping$' }
path = '^/bots/'

[[rule]]
id = "b"
malware = "famb"
basis = "test"
confidence = 50
method = "POST"
body_prefix = "cafe"
bot_id = { body = [2, 4] }
""")
    rs = RuleSet([tmp_path])
    assert rs.classify_http(facts(path="/q", query="x=1&id=abc")).bot_id == "abc"
    assert rs.classify_http(facts(path="/q", query="bid=zz&id=abc")).bot_id == "zz"
    assert rs.classify_http(facts(path="/h", headers={"x-bot": "B1"})).bot_id == "B1"
    assert rs.classify_http(facts(path="/bots/00ff/ping")).bot_id == "00ff"
    body = bytes.fromhex("cafe0102030405")
    m = rs.classify_http(facts(method="POST", body_prefix=body, body_size=len(body)))
    assert (m.malware, m.bot_id) == ("famb", "01020304")


def test_dns_rules(tmp_path):
    (tmp_path / "d.toml").write_text("""
[[rule]]
id = "d"
malware = "rustock"
basis = "test"
confidence = 80
qname = '(^|\\.)onlinescannow\\.example$'
""")
    rs = RuleSet([tmp_path])
    assert rs.classify_dns("cc.onlinescannow.example", "A").malware == "rustock"
    assert rs.classify_dns("onlinescannow.example.evil", "A").malware == "unknown"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nmalware='x'\nbasis='b'\nconfidence=1\n", "'id' is missing"),
        ("[[rule]]\nid='a'\nbasis='b'\nconfidence=1\n", "'malware' is missing"),
        ("[[rule]]\nid='a'\nmalware='x'\nbasis='b'\nconfidence=101\n", "confidence"),
        ("[[rule]]\nid='a'\nmalware='x'\nbasis='b'\nconfidence=1\npath='('\n", "not a valid regex"),
        ("[[rule]]\nid='a'\nmalware='x'\nbasis='b'\nconfidence=1\ncolour='red'\n", "unknown field"),
        ("[[rule]]\nid='a'\nmalware='x'\nbasis='b'\nconfidence=1\nbody_size=[5,1]\n", "body_size"),
        ("[[rule]]\nid='a'\nmalware='x'\nbasis='b'\nconfidence=1\nbody_prefix='zz'\n", "hex"),
        (
            "[[rule]]\nid='a'\nmalware='x'\nbasis='b'\nconfidence=1\nqname='a'\nmethod='GET'\n",
            "does not apply",
        ),
        (
            "[[rule]]\nid='a'\nmalware='x'\nbasis='b'\nconfidence=1\nbot_id={path='x'}\n",
            "named group",
        ),
        ("rule = [", "not valid TOML"),
    ],
)
def test_errors_name_the_file_rule_and_field(text, message):
    with pytest.raises(RuleError, match=message) as info:
        parse_rules(text, "rules/x.toml")
    assert str(info.value).startswith("rules/x.toml")


def test_user_rules_come_first_and_override_builtin_ids(tmp_path):
    (tmp_path / "mine.toml").write_text("""
[[rule]]
id = "rustock.c2-login"
malware = "rustock-variant"
basis = "local analysis"
confidence = 90
method = "POST"
path = 'login\\.php$'
""")
    rs = RuleSet([tmp_path, BUILTIN_RULES])
    assert [r.id for r in rs.rules].count("rustock.c2-login") == 1
    m = rs.classify_http(facts(method="POST", path="/login.php", body_size=96))
    assert m.malware == "rustock-variant"


def test_reload_when_files_change_and_keep_old_set_on_error(tmp_path):
    rule = "[[rule]]\nid='a'\nmalware='{m}'\nbasis='b'\nconfidence=1\npath='^/a$'\n"
    path = tmp_path / "r.toml"
    path.write_text(rule.format(m="one"))
    rs = RuleSet([tmp_path])
    assert rs.classify_http(facts(path="/a")).malware == "one"
    assert rs.reload_if_changed() is False
    path.write_text(rule.format(m="two"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert rs.reload_if_changed() is True
    assert rs.classify_http(facts(path="/a")).malware == "two"
    path.write_text("broken = [")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 20_000_000))
    assert rs.reload_if_changed() is False
    assert rs.classify_http(facts(path="/a")).malware == "two"
