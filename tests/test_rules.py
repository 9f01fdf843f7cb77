import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# -- the memo of classify_request --------------------------------------------------------------
MEMO_RULES = """
[[rule]]
id = "t.prefix"
malware = "prefixed"
confidence = 50
basis = "test"
body_prefix = "cafe"

[[rule]]
id = "t.query-id"
malware = "queried"
confidence = 50
basis = "test"
path = '\\.php$'
query = '(^|&)id=[0-9a-f]{4,}'
bot_id = { query = "id" }

[[rule]]
id = "t.header-id"
malware = "headed"
confidence = 50
basis = "test"
user_agent = '^Bot/'
bot_id = { header = "x-bot" }
"""


def _memo_set(tmp_path):
    (tmp_path / "t.toml").write_text(MEMO_RULES)
    return RuleSet([tmp_path, BUILTIN_RULES])


def _both(rs, method, target, host, ua, headers, size, prefix):
    path, _, query = target.partition("?")
    expect = rs.classify_http(HttpFacts(method, path, query, host, ua, headers, size, prefix))
    return rs.classify_request(method, target, host, ua, headers, size, prefix), expect


def test_memo_answers_as_the_rules_do_and_reads_bot_ids_anew(tmp_path):
    rs = _memo_set(tmp_path)
    for _ in range(3):  # the first round fills the memo, the next ones read it
        for bot in ("b1", "b2"):
            got, expect = _both(rs, "GET", "/", "", "Bot/1", {"x-bot": bot}, 0, b"")
            assert got == expect and got.bot_id == bot
        got, expect = _both(rs, "GET", "/g.php?id=abcd1", "", "", {}, 0, b"")
        assert got == expect and (got.malware, got.bot_id) == ("queried", "abcd1")
        got, expect = _both(rs, "POST", "/x", "", "", {}, 9, b"\xca\xfe\x01")
        assert got == expect and got.malware == "prefixed"
        got, expect = _both(rs, "POST", "/x", "", "", {}, 9, b"\xca\xfd\x01")
        assert got == expect and got.malware == "unknown"
        got, expect = _both(rs, "POST", "/login.php", "", "", {}, 96, b"\x00" * 96)
        assert got == expect and got.malware == "rustock"


def test_memo_is_bounded_and_forgotten_on_reload(tmp_path, monkeypatch):
    import takedown.sinkhole.rules as rules_mod

    monkeypatch.setattr(rules_mod, "MEMO_MAX", 8)
    rs = _memo_set(tmp_path)
    for i in range(50):
        rs.classify_request("GET", f"/{i}", "", "", {}, 0, b"")
        assert len(rs._memo) <= 8
    assert rs.classify_request("POST", "/x", "", "", {}, 9, b"\xca\xfe").malware == "prefixed"
    time.sleep(0.01)
    (tmp_path / "t.toml").write_text(MEMO_RULES.replace('"prefixed"', '"renamed"'))
    os.utime(tmp_path / "t.toml", ns=(time.time_ns() + 10**9,) * 2)
    assert rs.reload_if_changed()
    assert rs.classify_request("POST", "/x", "", "", {}, 9, b"\xca\xfe").malware == "renamed"


_SHAPES = st.tuples(
    st.sampled_from(["GET", "POST", "HEAD"]),
    st.sampled_from(["/", "/login.php", "/gate.php", "/a.php?id=00ff00ff", "/a.php?x=1", "/q"]),
    st.sampled_from(["", "c2.example", "C2.example:80"]),
    st.sampled_from(["", "Bot/2", "Mozilla/4.0"]),
    st.sampled_from([{}, {"x-bot": "b9"}]),
    st.sampled_from([0, 95, 96, 97]),
    st.sampled_from([b"", b"\xca", b"\xca\xfe", b"\xca\xfe\x00" * 40]),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shapes=st.lists(_SHAPES, min_size=1, max_size=30))
def test_fuzz_memo_never_changes_an_answer(tmp_path, shapes):
    rs = _memo_set(tmp_path)
    for shape in shapes + shapes:
        got, expect = _both(rs, *shape)
        assert got == expect
