"""Importers: golden inputs (the demo case) → expected links; bad records kept; fuzzed parsers."""

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from takedown.case.graph.demo import DEMO_CASE
from takedown.case.graph.evidence import open_vault
from takedown.case.graph.importers import IMPORTERS, get_importer, run_import
from takedown.case.graph.importers.base import parse_time, read_records
from takedown.case.graph.importers.c2 import c2_summary, parse_c2
from takedown.case.graph.importers.mail import parse_mail, split_mbox
from takedown.case.graph.importers.records import (
    parse_hosting,
    parse_links,
    parse_payments,
    parse_whois,
)
from takedown.case.graph.importers.strings import parse_strings
from takedown.case.graph.model import ENTITY_KINDS, LINK_KINDS
from takedown.case.graph.normalize import key_for
from takedown.case.graph.store import GraphStore
from takedown.errors import GraphError
from takedown.home import Home

SHA = "ab" * 32
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def triples(parsed):
    return sorted(
        f"{s.src_kind}:{s.src_key} {s.kind} {s.dst_kind}:{s.dst_key} "
        f"{'?' if s.confidence is None else s.confidence}"
        for s in parsed.links
    )


def well_formed(parsed):
    """Every link of a parser: known kinds, normalised keys, cites the item with a locator."""
    for s in parsed.links:
        assert s.kind in LINK_KINDS and s.src_kind in ENTITY_KINDS and s.dst_kind in ENTITY_KINDS
        for kind, key in ((s.src_kind, s.src_key), (s.dst_kind, s.dst_key)):
            if kind not in ("person", "registrant"):
                assert key_for(kind, key) == key
        assert s.evidence and all(sha == SHA and loc for sha, loc in s.evidence)
        assert s.confidence is None or 0 <= s.confidence <= 100
    assert parsed.records >= parsed.rejected


def test_hosting_export_golden():
    parsed = parse_hosting((DEMO_CASE / "hosting-export.csv").read_bytes(), SHA)
    well_formed(parsed)
    assert parsed.records == 5 and parsed.rejected == 1 and parsed.dropped_fields == 1
    got = triples(parsed)
    for expected in [
        "hosting-account:examplehost ltd/4471 rented server:examplehost ltd/srv-0142 95",
        "hosting-account:examplehost ltd/4471 uses-alias alias:vesper2k 90",
        "hosting-account:examplehost ltd/4471 logged-in-from ip:192.0.2.77 90",
        "payment:webmoney:Z100000000001 paid-for hosting-account:examplehost ltd/4471 95",
        "server:examplehost ltd/srv-0142 has-address ip:203.0.113.10 95",
        "hosting-account:examplehost ltd/4471 contact phone:+447700900123 60",
    ]:
        assert expected in got
    assert len(got) == 35
    bad = [r for r in parsed.rejects if r.whole]
    assert bad[0].locator == "line 8" and "account_id" in bad[0].error
    dropped = [r for r in parsed.rejects if not r.whole]
    assert dropped[0].locator == "line 9, field signup_ip" and "203.0.113.999" in dropped[0].error


def test_whois_golden():
    parsed = parse_whois((DEMO_CASE / "whois-registrations.csv").read_bytes(), SHA)
    well_formed(parsed)
    assert (parsed.records, parsed.rejected, len(parsed.links)) == (4, 0, 27)
    reg = [s for s in parsed.links if s.kind == "registered"]
    assert [s.dst_key for s in reg] == [
        "onlinescannow.example",
        "guardandprotector.example",
        "piecefordesktop.example",
        "bakery-shop.example",
    ]
    assert reg[0].valid_from.isoformat() == "2010-04-20T00:00:00+00:00"
    named = [s for s in parsed.links if s.kind == "named" and s.dst_kind == "person"]
    assert [s.dst_label for s in named] == [
        "Kirill Nightjar",
        "K. Nightjar",
        "Kiril Naitdzhar",
        "Jane Placeholder",
    ]
    assert named[0].dst_attrs["phone"] == "+44 7700 900123"
    # The e-mail address reused across registrations is one entity.
    emails = {s.dst_key for s in parsed.links if s.dst_kind == "email"}
    assert emails == {"k.nightjar@mail.example", "vesper2k@mail.example", "jane@shop.example"}


def test_payments_and_links_golden():
    pay = parse_payments((DEMO_CASE / "payments.csv").read_bytes(), SHA)
    well_formed(pay)
    assert pay.records == 3 and not pay.rejects
    assert sum(s.kind == "paid-for" for s in pay.links) == 3
    notes = [s.note for s in pay.links if s.kind == "paid-for"]
    assert notes[0] == "120.00 WMZ server srv-0142 May 2010"
    links = parse_links((DEMO_CASE / "analyst-notes.csv").read_bytes(), SHA)
    well_formed(links)
    stolen = next(s for s in links.links if s.kind == "reported-stolen")
    assert stolen.src_label == "Dmitri Ivanovich Fictional"
    assert stolen.src_attrs["phone"] == "+44 7700 900456"


def test_links_importer_names_the_bad_field():
    data = (
        b"src,kind,dst,confidence\n"
        b"ip:192.0.2.1,hosted-on,ip:192.0.2.2,high\n"
        b"ip:192.0.2.1,owns,ip:192.0.2.2,5\n"
        b"nokind,related-to,ip:192.0.2.2,5\n"
        b"ip:192.0.2.1,related-to,ip:192.0.2.2,unknown\n"
    )
    parsed = parse_links(data, SHA)
    errors = [(r.locator, r.error) for r in parsed.rejects]
    assert errors[0][0] == "line 2" and "confidence 'high'" in errors[0][1]
    assert errors[1][0] == "line 3" and "'owns' is not a link kind" in errors[1][1]
    assert errors[2][0] == "line 4" and "not KIND:VALUE" in errors[2][1]
    assert len(parsed.links) == 1 and parsed.links[0].confidence is None


def test_mail_headers_golden():
    parsed = parse_mail((DEMO_CASE / "mail" / "support-ticket.eml").read_bytes(), SHA)
    well_formed(parsed)
    assert triples(parsed) == [
        "email:k.nightjar@mail.example related-to ip:192.0.2.25 ?",
        "email:k.nightjar@mail.example reply-to email:vesper2k@mail.example 70",
        "email:k.nightjar@mail.example sent-from ip:198.51.100.23 60",
        "email:k.nightjar@mail.example sent-via domain:mail.example 60",
        "email:k.nightjar@mail.example uses-alias alias:vesper2k 40",
    ]
    # The bottom hop is the origin; the relay above it is kept, with unknown confidence.
    internal = b"From: <a@mail.example>\nReceived: from x ([10.1.2.3]) by y\n\n"
    assert not [s for s in parse_mail(internal, SHA).links if s.dst_kind == "ip"]
    mbox = b"From a@x Mon\nFrom: <a@mail.example>\nMessage-ID: <1@relay.example>\n\nbody\n"
    mbox += b"From b@x Mon\nSubject: no sender\n\nbody\n"
    two = parse_mail(mbox, SHA)
    assert two.records == 2 and two.rejected == 1
    assert triples(two) == ["email:a@mail.example sent-via domain:relay.example 60"]
    assert [line for line, _ in split_mbox(mbox)] == [2, 7]


def test_strings_golden_with_watch_list():
    parsed = parse_strings(
        (DEMO_CASE / "bot-sample-strings.txt").read_bytes(),
        SHA,
        "strings.txt",
        container=("sample", "b2" * 32),
        watch=["vesper2k", "bakerjane"],
    )
    well_formed(parsed)
    got = triples(parsed)
    box = "sample:" + "b2" * 32
    assert got == sorted(
        [
            f"domain:onlinescannow.example appears-in {box} 90",
            f"domain:guardandprotector.example appears-in {box} 90",
            f"domain:piecefordesktop.example appears-in {box} 60",
            f"alias:vesper appears-in {box} 70",
            f"alias:vesper2k appears-in {box} 35",
        ]
    )
    assert "ntoskrnl.exe" not in " ".join(got) and "kernel32.dll" not in " ".join(got)


def test_c2_from_a_real_lake(tmp_path):
    import datetime as dt

    from test_lake import fill, row  # the lake tests' real spool writer

    from takedown import lake

    home = Home(tmp_path)
    home.ensure()
    when = int(dt.datetime(2011, 3, 16, 12, tzinfo=dt.UTC).timestamp() * 1e6)
    fill(home, "s-w0", [[row(i, when + i) for i in range(6)] + [row(9, when, "gozi")]])
    lake.ingest(home)
    path = c2_summary(home)
    parsed = parse_c2(path.read_bytes(), SHA, path.name)
    well_formed(parsed)
    assert triples(parsed) == [
        "botnet:gozi beacons-to domain:c2.example 99",
        "botnet:rustock beacons-to domain:c2.example 99",
    ]
    rustock = next(s for s in parsed.links if s.src_key == "rustock")
    assert rustock.note.startswith("6 check-ins from 6 addresses over http")
    assert rustock.valid_from.isoformat() == "2011-03-16T12:00:00+00:00"
    assert c2_summary(home).read_bytes() == path.read_bytes()  # same lake, same evidence


def test_run_import_is_once_and_keeps_rejects(tmp_path):
    home = Home(tmp_path)
    with open_vault(home) as door, GraphStore.open(home) as store:
        path = DEMO_CASE / "hosting-export.csv"
        first = run_import(store, door, "hosting", path, handler="tester")
        assert first.links == 35 and first.rejected == 1 and first.dropped_fields == 1
        assert "1 records rejected, 1 fields dropped →" in first.summary()
        rejects = [json.loads(x) for x in first.rejects_file.read_text().splitlines()]
        assert [r["whole_record"] for r in rejects] == [True, False]
        second = run_import(store, door, "hosting", path, handler="tester")
        assert second.skipped.startswith("already imported (import #1")
        assert store.counts()["links"] == 35
        third = run_import(store, door, "hosting", path, handler="tester", again=True)
        assert third.links == 35 and store.counts()["imports"] == 2
        with pytest.raises(GraphError, match="unknown importer"):
            get_importer("pdf")
        with pytest.raises(GraphError, match="no such file"):
            run_import(store, door, "whois", tmp_path / "nope.csv", handler="tester")


def test_read_records_formats():
    csv_rows = list(read_records(b"# comment\n\nA Col,b-col\n1,2\n\n3,4,5\n"))
    assert csv_rows[0][:2] == ("line 4", {"a_col": "1", "b_col": "2"})
    assert csv_rows[1][0] == "line 6" and "3 fields" in csv_rows[1][1].error
    json_rows = list(read_records(b'{"records": [{"Domain": "x.example"}, 5]}', "w.json"))
    assert json_rows[0][1] == {"domain": "x.example"}
    assert json_rows[1][1].error == "not a JSON object"
    lines = list(read_records(b'{"a": 1}\nnot json\n', "w.jsonl"))
    assert lines[0][1] == {"a": 1} and lines[1][1].error.startswith("JSON")
    assert parse_time("Tue, 15 Mar 2011 22:14:27 +0100", "t").isoformat() == (
        "2011-03-15T21:14:27+00:00"
    )
    assert parse_time(1300000000, "t").year == 2011


cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "203.0.113.7",
            "k@mail.example",
            "+44 7700 900123",
            "Z100000000001",
            "2011-03-16",
            "x.example",
            "unknown",
            "",
            "\x00",
            '"',
            "\n",
        ]
    ),
)


@st.composite
def table_bytes(draw):
    header = draw(
        st.lists(
            st.sampled_from(
                [
                    "domain",
                    "registrant_name",
                    "registrant_email",
                    "registrant_phone",
                    "created",
                    "provider",
                    "account_id",
                    "username",
                    "signup_ip",
                    "server_id",
                    "server_ip",
                    "account",
                    "holder_name",
                    "merchant",
                    "reference",
                    "src",
                    "kind",
                    "dst",
                    "confidence",
                    "botnet",
                    "c2",
                    "first_seen",
                    "name_servers",
                    "card",
                    "payment_account",
                ]
            ),
            min_size=1,
            max_size=10,
        )
    )
    rows = draw(st.lists(st.lists(cell, min_size=0, max_size=len(header) + 2), max_size=6))
    if draw(st.booleans()):
        doc = [dict(zip(header, r, strict=False)) for r in rows]
        return json.dumps(doc).encode()
    lines = [",".join(header)] + [",".join(r) for r in rows]
    return "\n".join(lines).encode(draw(st.sampled_from(["utf-8", "latin-1", "utf-16"])), "replace")


@pytest.mark.parametrize("name", ["whois", "hosting", "payments", "links", "c2"])
@FUZZ
@given(data=st.one_of(table_bytes(), st.binary(max_size=300)))
@example(  # a provider-made key ("0:0") must read back as itself
    data=b"domain,holder_name,provider,payment_account\n,0,0,0"
)
def test_tabular_parsers_never_stop(name, data):
    well_formed(get_importer(name).parse(data, SHA, "fuzz.csv"))


@FUZZ
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "From",
                    "Reply-To",
                    "Received",
                    "Message-ID",
                    "Date",
                    "X-Originating-IP",
                    "Sender",
                    "Subject",
                ]
            ),
            st.one_of(cell, st.text(max_size=80)),
        ),
        max_size=8,
    ),
    junk=st.binary(max_size=120),
)
def test_mail_parser_never_stops(headers, junk):
    text = "".join(f"{k}: {v}\n" for k, v in headers).encode("utf-8", "replace") + b"\n" + junk
    well_formed(parse_mail(text, SHA))
    well_formed(parse_mail(junk, SHA))


@FUZZ
@given(
    text=st.lists(
        st.one_of(
            cell,
            st.text(max_size=60),
            st.sampled_from(
                [
                    "http://a.example/x",
                    "nick=vesper",
                    "@op_42",
                    "C:\\Users\\x\\a.pdb",
                    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
                    "fe80::1",
                ]
            ),
        ),
        max_size=10,
    ),
    watch=st.lists(st.text(max_size=12), max_size=3),
)
def test_strings_parser_never_stops(text, watch):
    data = " ".join(text).encode("utf-8", "replace")
    well_formed(parse_strings(data, SHA, watch=watch))


def test_every_importer_is_documented():
    assert set(IMPORTERS) == {
        "whois",
        "hosting",
        "payments",
        "eml",
        "strings",
        "c2",
        "links",
        "stix",
    }
    for importer in IMPORTERS.values():
        assert callable(importer.parse)
