"""The case file: one TOML file describing a lawsuit, read into typed, validated data.

Any text that is printed may be one string (the same in every language: names, numbers,
addresses) or a table of languages (``court.en = "…"``, ``court.ru = "…"``). A missing
language, an unknown key, a wrong type: each is a :class:`LegalError` naming the file and the
field, e.g. ``case.toml: hearing.date: expected a date such as 2011-04-18``.
See docs/legal.md for every field, and ``examples/example-case.toml`` (fictional).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takedown.errors import LegalError

__all__ = [
    "EXAMPLE_CASE",
    "CaseFile",
    "Defendant",
    "Document",
    "Text",
    "load_case",
]

EXAMPLE_CASE = Path(__file__).parent / "examples" / "example-case.toml"
IDENTIFIER_KINDS = ("emails", "nicknames", "payment_accounts", "domains", "addresses", "other")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
_LANG = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")


@dataclass(frozen=True, slots=True)
class Text:
    """Printed text in one or more languages; ``text["ru"]`` or the language-neutral value."""

    values: dict[str, str]
    neutral: str | None = None
    where: str = ""

    def __getitem__(self, lang: str) -> str:
        if lang in self.values:
            return self.values[lang]
        if self.neutral is not None:
            return self.neutral
        raise LegalError(f'{self.where}: no text for language {lang!r} (add {lang} = "...")')

    def __bool__(self) -> bool:
        return bool(self.values) or bool(self.neutral)


@dataclass(frozen=True, slots=True)
class Defendant:
    number: int
    emails: tuple[str, ...] = ()
    nicknames: tuple[str, ...] = ()
    payment_accounts: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    other: tuple[str, ...] = ()

    def identifiers(self) -> dict[str, tuple[str, ...]]:
        return {kind: getattr(self, kind) for kind in IDENTIFIER_KINDS if getattr(self, kind)}


@dataclass(frozen=True, slots=True)
class Document:
    """A pleading to publish on the site: a file beside the case file, and its title."""

    path: Path
    title: Text


@dataclass(frozen=True, slots=True)
class CaseFile:
    path: Path
    id: str
    fictional: bool
    languages: tuple[str, ...]
    number: str
    caption: Text
    court: Text
    plaintiff: Text
    counsel: Text
    counsel_email: str
    summary: Text
    hearing_date: dt.date
    hearing_time: str
    hearing_timezone: Text
    hearing_place: Text
    pleadings_url: str
    respond_by: dt.date | None
    filed: dt.date | None
    defendants: tuple[Defendant, ...]
    documents: tuple[Document, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def known_emails(self) -> list[tuple[int, str]]:
        """(defendant number, address) for every e-mail address a defendant is known by."""
        return [(d.number, e) for d in self.defendants for e in d.emails]


class _Reader:
    """Typed access to one TOML table, with errors that name the file and dotted field."""

    def __init__(self, data: dict[str, Any], source: str, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix
        self.used: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.source}: {self.prefix}{key}"

    def fail(self, key: str, message: str) -> LegalError:
        return LegalError(f"{self.where(key)}: {message}")

    def get(self, key: str, required: bool = True) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.fail(key, "missing (see docs/legal.md or the example case file)")
            return None
        return self.data[key]

    def string(self, key: str, required: bool = True) -> str:
        value = self.get(key, required)
        if value is None:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected non-empty text, got {value!r}")
        return value.strip()

    def text(self, key: str, required: bool = True) -> Text:
        value = self.get(key, required)
        where = self.where(key)
        if value is None:
            return Text({}, None, where)
        if isinstance(value, str):
            if not value.strip():
                raise self.fail(key, "must not be empty")
            return Text({}, value.strip(), where)
        if isinstance(value, dict):
            out: dict[str, str] = {}
            for lang, text in value.items():
                if not _LANG.match(lang):
                    raise self.fail(f"{key}.{lang}", "is not a language code such as en or ru")
                if not isinstance(text, str) or not text.strip():
                    raise self.fail(f"{key}.{lang}", f"expected non-empty text, got {text!r}")
                out[lang] = text.strip()
            return Text(out, None, where)
        raise self.fail(key, f"expected text or a table of languages, got {value!r}")

    def date(self, key: str, required: bool = True) -> dt.date | None:
        value = self.get(key, required)
        if value is None:
            return None
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            if isinstance(value, str):
                try:
                    return dt.date.fromisoformat(value)
                except ValueError:
                    pass
            raise self.fail(key, f"expected a date such as 2011-04-18, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, False)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(key, "expected a list of non-empty strings")
        return tuple(v.strip() for v in value)

    def table(self, key: str, required: bool = True) -> _Reader:
        value = self.get(key, required)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, "expected a table")
        return _Reader(value, self.source, f"{self.prefix}{key}.")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown field (a typo?)")


def _time(reader: _Reader, key: str) -> str:
    value = reader.get(key)
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value.strip()):
        return value.strip()
    raise reader.fail(key, f"expected a time such as 10:00 (24-hour), got {value!r}")


def load_case(path: Path) -> CaseFile:
    """Read and check a case file; every problem is one LegalError naming file and field."""
    source = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LegalError(f"{path}: cannot read the case file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise LegalError(f"{path}: the case file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise LegalError(f"{source}: not valid TOML ({exc})") from None
    top = _Reader(data, source)
    fictional = top.get("fictional", False)
    if fictional is None:
        fictional = False
    if not isinstance(fictional, bool):
        raise top.fail("fictional", "expected true or false")
    languages = top.strings("languages") or ("en",)
    for i, lang in enumerate(languages):
        if not _LANG.match(lang):
            raise top.fail(f"languages[{i}]", f"{lang!r} is not a language code such as en or ru")

    case = top.table("case")
    case_id = case.string("id")
    if not _ID.match(case_id):
        raise case.fail("id", "use lower-case letters, digits, '.', '_' and '-' (it names folders)")
    number = case.string("number")
    caption = case.text("caption")
    court = case.text("court")
    filed = case.date("filed", required=False)
    case.done()

    plaintiff = top.table("plaintiff")
    plaintiff_name = plaintiff.text("name")
    counsel = plaintiff.text("counsel", required=False)
    counsel_email = plaintiff.string("email", required=False)
    if counsel_email and not _EMAIL.match(counsel_email):
        raise plaintiff.fail("email", f"{counsel_email!r} is not an e-mail address")
    plaintiff.done()

    action = top.table("action")
    summary = action.text("summary")
    action.done()

    hearing = top.table("hearing")
    hearing_date = hearing.date("date")
    assert hearing_date is not None
    hearing_time = _time(hearing, "time")
    timezone = hearing.text("timezone")
    place = hearing.text("place")
    hearing.done()

    pleadings = top.table("pleadings")
    url = pleadings.string("url")
    if not re.match(r"https?://[^\s/]+", url):
        raise pleadings.fail("url", f"{url!r} is not an http(s) URL")
    respond_by = pleadings.date("respond_by", required=False)
    documents: list[Document] = []
    raw_docs = pleadings.get("documents", False) or []
    if not isinstance(raw_docs, list):
        raise pleadings.fail("documents", "expected [[pleadings.documents]] entries")
    for i, raw in enumerate(raw_docs):
        if not isinstance(raw, dict):
            raise pleadings.fail(f"documents[{i}]", "expected a table with file and title")
        doc = _Reader(raw, source, f"pleadings.documents[{i}].")
        file = doc.string("file")
        doc_path = (path.parent / file).resolve()
        if not doc_path.is_file():
            raise doc.fail("file", f"{file!r} not found beside the case file")
        documents.append(Document(doc_path, doc.text("title")))
        doc.done()
    pleadings.done()

    defendants: list[Defendant] = []
    raw_defs = top.get("defendants")
    if not isinstance(raw_defs, list) or not raw_defs:
        raise top.fail("defendants", "expected one or more [[defendants]] entries")
    for i, raw in enumerate(raw_defs):
        if not isinstance(raw, dict):
            raise top.fail(f"defendants[{i}]", "expected a table")
        reader = _Reader(raw, source, f"defendants[{i}].")
        number_value = reader.get("number", False)
        if number_value is None:
            number_value = i + 1
        if not isinstance(number_value, int) or isinstance(number_value, bool) or number_value < 1:
            raise reader.fail("number", "expected a whole number from 1")
        ids = {kind: reader.strings(kind) for kind in IDENTIFIER_KINDS}
        for j, email in enumerate(ids["emails"]):
            if not _EMAIL.match(email):
                raise reader.fail(f"emails[{j}]", f"{email!r} is not an e-mail address")
        reader.done()
        defendants.append(Defendant(number_value, **ids))
    numbers = [d.number for d in defendants]
    if len(set(numbers)) != len(numbers):
        raise top.fail("defendants", "two defendants have the same number")
    top.get("extra", False)
    extra = data.get("extra") or {}
    top.done()

    loaded = CaseFile(
        path=path,
        id=case_id,
        fictional=fictional,
        languages=tuple(languages),
        number=number,
        caption=caption,
        court=court,
        plaintiff=plaintiff_name,
        counsel=counsel,
        counsel_email=counsel_email,
        summary=summary,
        hearing_date=hearing_date,
        hearing_time=hearing_time,
        hearing_timezone=timezone,
        hearing_place=place,
        pleadings_url=url,
        respond_by=respond_by,
        filed=filed,
        defendants=tuple(sorted(defendants, key=lambda d: d.number)),
        documents=tuple(documents),
        extra=extra if isinstance(extra, dict) else {},
    )
    for lang in loaded.languages:  # every printed text must exist in every language
        for text in (caption, court, plaintiff_name, summary, timezone, place):
            text[lang]
        if counsel:
            counsel[lang]
        for doc_entry in documents:
            doc_entry.title[lang]
    return loaded
