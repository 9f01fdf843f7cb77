"""Case files: the fictional example loads; every mistake is one line naming file and field."""

import pytest

from takedown.case.legal.casefile import EXAMPLE_CASE, load_case
from takedown.errors import LegalError


def test_example_case_is_fictional_and_complete():
    case = load_case(EXAMPLE_CASE)
    assert case.fictional and case.languages == ("en", "ru")
    assert [d.number for d in case.defendants] == list(range(1, 12))
    assert case.caption["ru"].startswith("«Экзампл Банк»")
    assert case.hearing_time == "10:00" and case.hearing_date.isoformat() == "2011-04-18"
    assert "cosmo.demo@mail.example" in dict((a, n) for n, a in case.known_emails())
    assert case.documents[0].path.is_file()
    text = EXAMPLE_CASE.read_text()
    assert "FICTIONAL" in text and "invented" in text
    for defendant in case.defendants:  # no real-looking identifiers: reserved names only
        for address in defendant.emails:
            assert address.rsplit(".", 1)[-1] == "example"
        for domain in defendant.domains:
            assert domain.endswith(".example")


BASE = EXAMPLE_CASE.read_text(encoding="utf-8")


def broken(tmp_path, old, new):
    text = BASE.replace(old, new, 1)
    assert text != BASE, old
    path = tmp_path / "case.toml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "pleadings").mkdir(exist_ok=True)
    (tmp_path / "pleadings" / "complaint-FICTIONAL.txt").write_text("x")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "date = 2011-04-18",
            'date = "18/04/2011"',
            "case.toml: hearing.date: expected a date such as 2011-04-18, got '18/04/2011'",
        ),
        ('time = "10:00"', 'time = "10am"', "case.toml: hearing.time: expected a time"),
        ('place.ru = "зал', 'plaice.ru = "зал', "case.toml: hearing.plaice: unknown field"),
        (
            'place.en = "Courtroom 14, Example Federal Courthouse, 700 Example Avenue, Exampleton, '
            'Exampleland"\n',
            "",
            "case.toml: hearing.place: no text for language 'en'",
        ),
        (
            'timezone.ru = "по тихоокеанскому времени"\n',
            "",
            "case.toml: hearing.timezone: no text for language 'ru'",
        ),
        ('id = "example-bank-v-does"', 'id = "Example Bank"', "case.toml: case.id: use lower-case"),
        (
            'emails = ["ghost.writer@mail.example"]',
            'emails = ["not-an-address"]',
            "case.toml: defendants[1].emails[0]: 'not-an-address' is not an e-mail address",
        ),
        (
            'url = "https://pleadings.example/example-bank-v-does/"',
            'url = "ftp://x"',
            "case.toml: pleadings.url: 'ftp://x' is not an http(s) URL",
        ),
        (
            'file = "pleadings/complaint-FICTIONAL.txt"',
            'file = "missing.pdf"',
            "case.toml: pleadings.documents[0].file: 'missing.pdf' not found",
        ),
        (
            "fictional = true",
            "fictional = true\nfictitious = 1",
            "case.toml: fictitious: unknown field",
        ),
        (
            'nicknames = ["Demo4"]',
            'nicknames = ["Demo4"]\nnumber = 1',
            "case.toml: defendants: two defendants have the same number",
        ),
        ("[action]", "[action", "case.toml: not valid TOML"),
    ],
)
def test_errors_name_file_and_field(tmp_path, old, new, message):
    with pytest.raises(LegalError) as info:
        load_case(broken(tmp_path, old, new))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable(tmp_path):
    with pytest.raises(LegalError, match="cannot read the case file"):
        load_case(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(LegalError, match="not UTF-8"):
        load_case(bad)
