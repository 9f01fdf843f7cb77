"""Language templates: the words of every notice, one TOML file per language.

``templates/<code>/notice.toml`` holds each sentence with ``$placeholders``; the code decides
what goes where, the template how it is said. A template folder of the user's (``--templates``
or ``HOME/legal/templates``) is searched first, so a new language, or a reworded one, is a file
away. Every key the English file has is required (a missing one is named on loading).
"""

from __future__ import annotations

import datetime as dt
import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from takedown.errors import LegalError

__all__ = ["BUILTIN_TEMPLATES", "LanguageTemplate", "available_languages", "load_template"]

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_FILE = "notice.toml"


@cache
def _reference_keys() -> frozenset[str]:
    with open(BUILTIN_TEMPLATES / "en" / TEMPLATE_FILE, "rb") as fh:
        return frozenset(_flatten(tomllib.load(fh)))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass(frozen=True)
class LanguageTemplate:
    lang: str
    path: Path
    values: dict[str, Any]

    @property
    def name(self) -> str:
        """The language's own name for itself (English, Русский)."""
        return str(self.values["language"])

    def text(self, key: str, **values: Any) -> str:
        raw = self.values.get(key)
        if not isinstance(raw, str):
            raise LegalError(f"{self.path}: {key}: missing or not text")
        try:
            return string.Template(raw).substitute({k: str(v) for k, v in values.items()})
        except KeyError as exc:
            raise LegalError(
                f"{self.path}: {key}: unknown placeholder ${exc.args[0]} "
                f"(this key may use: {', '.join('$' + k for k in sorted(values)) or 'none'})"
            ) from None
        except ValueError as exc:
            raise LegalError(f"{self.path}: {key}: bad placeholder ({exc})") from None

    def date(self, day: dt.date) -> str:
        months = self.values["months"]
        return self.text("date", day=day.day, month=months[day.month - 1], year=day.year)


def _check(lang: str, path: Path, values: dict[str, Any]) -> LanguageTemplate:
    missing = sorted(_reference_keys() - set(values))
    if missing:
        raise LegalError(
            f"{path}: missing key {missing[0]!r}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + f" (see {BUILTIN_TEMPLATES / 'en' / TEMPLATE_FILE})"
        )
    months = values["months"]
    if not (
        isinstance(months, list) and len(months) == 12 and all(isinstance(m, str) for m in months)
    ):
        raise LegalError(f"{path}: months: expected the twelve month names, January first")
    for key, value in values.items():
        if key != "months" and not isinstance(value, str):
            raise LegalError(f"{path}: {key}: expected text")
    return LanguageTemplate(lang, path, values)


def load_template(lang: str, dirs: Sequence[Path] = ()) -> LanguageTemplate:
    """The template of ``lang``: the first ``<dir>/<lang>/notice.toml`` in ``dirs``, or the
    built-in one."""
    for folder in [*dirs, BUILTIN_TEMPLATES]:
        path = folder / lang / TEMPLATE_FILE
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise LegalError(f"{path}: cannot read ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise LegalError(f"{path}: not valid TOML ({exc})") from None
        return _check(lang, path, _flatten(data))
    raise LegalError(
        f"no template for language {lang!r}: add {lang}/{TEMPLATE_FILE} to a template folder "
        f"(--templates DIR); built in: {', '.join(available_languages())}"
    )


def available_languages(dirs: Sequence[Path] = ()) -> list[str]:
    found: set[str] = set()
    for folder in [*dirs, BUILTIN_TEMPLATES]:
        if folder.is_dir():
            found.update(p.parent.name for p in folder.glob(f"*/{TEMPLATE_FILE}"))
    return sorted(found)
