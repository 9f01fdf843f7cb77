"""Which registry can seize a domain: the public-suffix-correct registered domain and its TLD's
registry operator. Offline: the Public Suffix List is the snapshot the pinned
``publicsuffixlist`` package ships (its date is in :data:`PSL_VERSION`), never fetched.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from publicsuffixlist import PSLFILE, PublicSuffixList

from takedown.errors import LegalError

__all__ = [
    "BUILTIN_REGISTRIES",
    "PSL_VERSION",
    "UNKNOWN_REGISTRY",
    "DomainClassifier",
    "DomainInfo",
    "Registry",
    "load_registries",
]

BUILTIN_REGISTRIES = Path(__file__).parent / "data" / "tld-registries.csv"
UNKNOWN_REGISTRY = "unknown registry"
_KINDS = {
    "generic",
    "generic-restricted",
    "sponsored",
    "country-code",
    "infrastructure",
    "special-use",
    "test",
}


def _psl_version() -> str:
    with open(PSLFILE, encoding="utf-8") as fh:
        for _, line in zip(range(40), fh, strict=False):
            if line.startswith("// VERSION:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


PSL_VERSION = _psl_version()


@dataclass(frozen=True, slots=True)
class Registry:
    """A TLD and the organisation IANA lists as its manager."""

    tld: str  # A-label, lower case
    kind: str
    operator: str


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """A name, its registered domain (what a registry can act on) and that registry."""

    name: str  # A-label form
    unicode: str
    registered: str  # A-label form of the public-suffix-correct registered domain
    registered_unicode: str
    suffix: str  # the ICANN public suffix, e.g. co.uk
    tld: str
    registry: Registry
    platform: str = ""  # a private PSL suffix (a hosting service) the name sits under, if any
    seizable: str = ""  # what to act on: the registered domain, or the name under the platform
    seizable_unicode: str = ""


def _read_registries(text: str, source: str) -> dict[str, Registry]:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    missing = {"tld", "type", "manager"} - set(reader.fieldnames or ())
    if missing:
        raise LegalError(f"{source}: the header needs the columns tld,type,manager")
    out: dict[str, Registry] = {}
    for number, row in enumerate(reader, 2):
        tld = (row.get("tld") or "").strip().lower().lstrip(".")
        kind = (row.get("type") or "").strip()
        operator = (row.get("manager") or "").strip()
        if not tld or not operator:
            raise LegalError(f"{source}: data row {number}: tld and manager must not be empty")
        if kind not in _KINDS:
            raise LegalError(
                f"{source}: data row {number}: type {kind!r} is not one of "
                + ", ".join(sorted(_KINDS))
            )
        if not tld.isascii():
            tld = tld.encode("idna").decode("ascii")
        out[tld] = Registry(tld, kind, operator)
    return out


def load_registries(extra: Path | None = None) -> dict[str, Registry]:
    """The shipped TLD table, with the rows of ``extra`` (same CSV columns) taking precedence."""
    table = _read_registries(
        BUILTIN_REGISTRIES.read_text(encoding="utf-8"), BUILTIN_REGISTRIES.name
    )
    if extra is not None:
        try:
            text = extra.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LegalError(f"{extra}: cannot read the registry table ({exc})") from None
        table.update(_read_registries(text, str(extra)))
    return table


@cache
def _psl(only_icann: bool) -> PublicSuffixList:
    return PublicSuffixList(only_icann=only_icann)


def _to_unicode(name: str) -> str:
    return ".".join(
        label.encode("ascii").decode("idna") if label.startswith("xn--") else label
        for label in name.split(".")
    )


class DomainClassifier:
    """Domain name → :class:`DomainInfo`, with the registry table given."""

    def __init__(self, registries: dict[str, Registry] | None = None) -> None:
        self.registries = registries if registries is not None else load_registries()
        self._icann = _psl(True)
        self._full = _psl(False)

    def registry(self, tld: str) -> Registry:
        return self.registries.get(tld) or Registry(tld, "", UNKNOWN_REGISTRY)

    def classify(self, name: str) -> DomainInfo:
        """``name`` must be an A-label domain (as :func:`lists.check_domain` gives).

        ValueError if the name is itself a public suffix (``co.uk``: nothing to seize there).
        """
        registered = self._icann.privatesuffix(name)
        suffix = self._icann.publicsuffix(name) or name.rsplit(".", 1)[-1]
        if registered is None:
            raise ValueError(f"is a public suffix ({suffix}), not a registrable domain")
        tld = name.rsplit(".", 1)[-1]
        platform = ""
        seizable = registered
        private_suffix = self._full.publicsuffix(name)
        if private_suffix and private_suffix not in (suffix, name):
            platform = private_suffix
            seizable = self._full.privatesuffix(name) or name
        return DomainInfo(
            name=name,
            unicode=_to_unicode(name),
            registered=registered,
            registered_unicode=_to_unicode(registered),
            suffix=suffix,
            tld=tld,
            registry=self.registry(tld),
            platform=platform,
            seizable=seizable,
            seizable_unicode=_to_unicode(seizable),
        )
