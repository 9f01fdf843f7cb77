"""Importers: a file goes into the evidence vault, its records become links that cite it.

``run_import`` is the one way in: the file is added to the vault first (so what is cited is
exactly what was read), parsed by a pure parser, and its links written in one transaction.
Rejected records and dropped fields are kept in ``HOME/case/rejects/`` with their errors.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from takedown.case.graph.evidence import EvidenceDoor, ItemInfo
from takedown.case.graph.importers.base import Parsed, Ref
from takedown.case.graph.store import AddResult, GraphStore
from takedown.errors import GraphError

__all__ = ["IMPORTERS", "ImportReport", "Importer", "run_import"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Importer:
    name: str
    help: str
    target: str  # "module:function" of the parser, imported when first used
    options: tuple[str, ...] = ()

    @property
    def parse(self) -> Callable[..., Parsed]:
        module, _, func = self.target.partition(":")
        parser: Callable[..., Parsed] = getattr(importlib.import_module(module), func)
        return parser


_P = "takedown.case.graph.importers."
IMPORTERS: dict[str, Importer] = {
    i.name: i
    for i in (
        Importer(
            "whois",
            "WHOIS/RDAP registrant records (CSV, JSON)",
            _P + "records:parse_whois",
            ("region",),
        ),
        Importer(
            "hosting",
            "Hosting-provider account exports (CSV, JSON)",
            _P + "records:parse_hosting",
            ("provider", "region"),
        ),
        Importer(
            "payments",
            "Payment records (CSV, JSON)",
            _P + "records:parse_payments",
            ("provider", "region"),
        ),
        Importer("eml", "E-mail headers (.eml, mbox)", _P + "mail:parse_mail"),
        Importer(
            "strings",
            "Strings dumps and configs from seized servers and samples (text)",
            _P + "strings:parse_strings",
            ("container", "container_label", "watch"),
        ),
        Importer(
            "c2", "The sinkhole's C2 summary (CSV; from the lake by default)", _P + "c2:parse_c2"
        ),
        Importer(
            "links",
            "Plain link lists: src, kind, dst, confidence, … (CSV)",
            _P + "records:parse_links",
        ),
        Importer(
            "stix",
            "STIX 2.1 bundles from partners (JSON)",
            "takedown.case.graph.share.stix:parse_stix",
        ),
    )
}


def get_importer(name: str) -> Importer:
    try:
        return IMPORTERS[name]
    except KeyError:
        raise GraphError(
            f"unknown importer {name!r}: choose one of {', '.join(IMPORTERS)}"
        ) from None


@dataclass
class ImportReport:
    importer: str
    item: ItemInfo
    records: int = 0
    links: int = 0
    entities: int = 0
    rejected: int = 0
    dropped_fields: int = 0
    rejects_file: Path | None = None
    skipped: str = ""

    def summary(self) -> str:
        head = f"{self.importer} {self.item.name} (sha256 {self.item.sha256[:12]}…)"
        if self.skipped:
            return f"{head}: {self.skipped}"
        line = (
            f"{head}: {self.records:,} records → {self.links:,} links, "
            f"{self.entities:,} new entities"
        )
        if self.rejected or self.dropped_fields:
            line += (
                f"; {self.rejected:,} records rejected, {self.dropped_fields:,} fields dropped "
                f"→ {self.rejects_file}"
            )
        return line


def _options(importer: Importer, store: GraphStore, given: dict[str, Any]) -> dict[str, Any]:
    opts = {k: v for k, v in given.items() if k in importer.options and v is not None}
    if "watch" in importer.options and "watch" not in opts:
        rows = store.con.execute("SELECT key FROM entities WHERE kind = 'alias'").fetchall()
        opts["watch"] = [r[0] for r in rows]
    return opts


def run_import(
    store: GraphStore,
    door: EvidenceDoor,
    importer_name: str,
    path: Path,
    *,
    handler: str,
    again: bool = False,
    options: dict[str, Any] | None = None,
) -> ImportReport:
    """Add ``path`` to the vault, parse it, write its links; a bad record never stops it."""
    importer = get_importer(importer_name)
    if not path.is_file():
        raise GraphError(f"{path}: no such file")
    if not handler.strip():
        raise GraphError(
            "who is importing? set the handler (TAKEDOWN_HANDLER or `handler` in HOME/config.toml)"
        )
    item = door.add_file(path, handler=handler, source=f"graph import {importer.name}")
    report = ImportReport(importer.name, item)
    previous = store.previous_import(importer.name, item.sha256)
    if previous is not None and not again:
        report.skipped = (
            f"already imported (import #{previous['id']}, {previous['at']:%Y-%m-%d %H:%M}); "
            "pass --again to import it once more"
        )
        return report
    data = path.read_bytes()
    opts = _options(importer, store, options or {})
    parsed = importer.parse(data, item.sha256, path.name, **opts)
    import_id = store.next_import_id()
    report.records = parsed.records
    report.rejected = parsed.rejected
    report.dropped_fields = parsed.dropped_fields
    if parsed.rejects:
        folder = store.home.root / "case" / "rejects"
        folder.mkdir(parents=True, exist_ok=True)
        report.rejects_file = folder / f"import-{import_id}-{path.name}.jsonl"
        with open(report.rejects_file, "w", encoding="utf-8") as fh:
            for r in parsed.rejects:
                row = {"locator": r.locator, "error": r.error, "whole_record": r.whole}
                fh.write(json.dumps({**row, "record": r.record}, ensure_ascii=False) + "\n")

    def record(result: AddResult) -> None:
        report.links, report.entities = result.links, result.entities
        store.record_import(
            import_id,
            importer.name,
            item,
            handler,
            parsed.records,
            parsed.rejected,
            result.links,
            report.summary(),
        )

    # The import's own row commits with its links: a crash leaves both or neither.
    added = store.add_links(
        parsed.links,
        door=door,
        asserted_by=handler,
        method=f"import {importer.name}",
        import_id=import_id,
        on_commit=record,
    )
    if added.links == 0:
        record(added)
    return report


def container_ref(text: str) -> Ref:
    """``--from KIND:VALUE`` for the strings importer."""
    from takedown.case.graph.model import parse_ref
    from takedown.case.graph.normalize import key_for

    ref = parse_ref(text)
    if ref.kind is None:
        raise GraphError(f"--from {text!r}: give KIND:VALUE, e.g. server:hoster/srv-1")
    return (ref.kind, key_for(ref.kind, ref.value))
