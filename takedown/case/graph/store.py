"""The graph's tables in DuckDB (``HOME/case/graph.duckdb``) and the one bulk write path.

The graph has a DuckDB file of its own rather than tables in ``HOME/takedown.duckdb``:
DuckDB allows one read-write process per file and ``takedown ingest`` holds the catalog for
its whole run, so an analyst could not import into the graph while the sinkhole's data is
being ingested. Links are only ever added (nothing is merged or overwritten); every write
bumps ``version``, which keys the adjacency cache (``adjacency.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from takedown.case.graph.evidence import EvidenceDoor, ItemInfo, require
from takedown.case.graph.model import ENTITY_KINDS, LINK_KINDS, Entity, EntityRef, LinkSpec
from takedown.case.graph.normalize import NormalizeError, key_for
from takedown.errors import GraphError
from takedown.home import Home

__all__ = ["LINK_SCHEMA", "AddResult", "GraphStore", "graph_path", "specs_to_table"]

log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS meta (k VARCHAR PRIMARY KEY, v VARCHAR);
CREATE TABLE IF NOT EXISTS entities (
    id BIGINT NOT NULL, kind VARCHAR NOT NULL, key VARCHAR NOT NULL, label VARCHAR NOT NULL,
    attrs JSON, added_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS links (
    id BIGINT NOT NULL, src BIGINT NOT NULL, dst BIGINT NOT NULL, kind VARCHAR NOT NULL,
    confidence SMALLINT, valid_from TIMESTAMPTZ, valid_to TIMESTAMPTZ,
    asserted_by VARCHAR NOT NULL, asserted_at TIMESTAMPTZ NOT NULL, method VARCHAR NOT NULL,
    import_id BIGINT, note VARCHAR, score DOUBLE, model VARCHAR
);
CREATE TABLE IF NOT EXISTS link_evidence (
    link_id BIGINT NOT NULL, sha256 VARCHAR NOT NULL, locator VARCHAR
);
CREATE TABLE IF NOT EXISTS evidence (
    sha256 VARCHAR PRIMARY KEY, name VARCHAR, size BIGINT, source VARCHAR
);
CREATE TABLE IF NOT EXISTS imports (
    id BIGINT PRIMARY KEY, importer VARCHAR, sha256 VARCHAR, name VARCHAR, handler VARCHAR,
    imported_at TIMESTAMPTZ, accepted BIGINT, rejected BIGINT, links BIGINT, summary VARCHAR
);
INSERT OR IGNORE INTO meta VALUES ('version', '0'), ('schema', '1');
"""

_TS = pa.timestamp("us", tz="UTC")
_EVIDENCE = pa.list_(pa.struct([("sha256", pa.string()), ("locator", pa.string())]))
LINK_SCHEMA = pa.schema(
    [
        ("src_kind", pa.string()),
        ("src_key", pa.string()),
        ("src_label", pa.string()),
        ("src_attrs", pa.string()),
        ("kind", pa.string()),
        ("dst_kind", pa.string()),
        ("dst_key", pa.string()),
        ("dst_label", pa.string()),
        ("dst_attrs", pa.string()),
        ("confidence", pa.int16()),
        ("valid_from", _TS),
        ("valid_to", _TS),
        ("note", pa.string()),
        ("score", pa.float64()),
        ("model", pa.string()),
        ("evidence", _EVIDENCE),
    ]
)
_REQUIRED = ("src_kind", "src_key", "kind", "dst_kind", "dst_key", "evidence")


def graph_path(home: Home) -> Path:
    return home.root / "case" / "graph.duckdb"


@dataclass
class AddResult:
    links: int = 0
    entities: int = 0


def specs_to_table(specs: Sequence[LinkSpec]) -> pa.Table:
    """LinkSpecs (importers' rows) → the bulk-insert table."""

    def attrs(a: dict[str, Any] | None) -> str | None:
        return None if a is None else json.dumps(a, ensure_ascii=False, default=str)

    cols: dict[str, list[Any]] = {name: [] for name in LINK_SCHEMA.names}
    for s in specs:
        cols["src_kind"].append(s.src_kind)
        cols["src_key"].append(s.src_key)
        cols["src_label"].append(s.src_label)
        cols["src_attrs"].append(attrs(s.src_attrs))
        cols["kind"].append(s.kind)
        cols["dst_kind"].append(s.dst_kind)
        cols["dst_key"].append(s.dst_key)
        cols["dst_label"].append(s.dst_label)
        cols["dst_attrs"].append(attrs(s.dst_attrs))
        cols["confidence"].append(s.confidence)
        cols["valid_from"].append(s.valid_from)
        cols["valid_to"].append(s.valid_to)
        cols["note"].append(s.note or None)
        cols["score"].append(s.score)
        cols["model"].append(s.model)
        cols["evidence"].append([{"sha256": sha, "locator": loc} for sha, loc in s.evidence])
    return pa.table(cols, schema=LINK_SCHEMA)


def _conform(table: pa.Table) -> pa.Table:
    missing = [c for c in _REQUIRED if c not in table.schema.names]
    if missing:
        raise GraphError(f"link table: missing column(s) {', '.join(missing)}")
    arrays = []
    for f in LINK_SCHEMA:
        if f.name in table.schema.names:
            col = table.column(f.name)
            arrays.append(col if col.type == f.type else col.cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.table(arrays, schema=LINK_SCHEMA)


def _check(table: pa.Table) -> list[str]:
    """Vectorised checks of a link table; returns the distinct evidence SHA-256s it cites."""
    for col, allowed, what in (
        ("src_kind", ENTITY_KINDS, "entity kind"),
        ("dst_kind", ENTITY_KINDS, "entity kind"),
        ("kind", LINK_KINDS, "link kind"),
    ):
        for value in pc.unique(table.column(col)).to_pylist():
            if value not in allowed:
                raise GraphError(f"link table: {col} {value!r} is not a known {what}")
    for col in ("src_key", "dst_key"):
        if table.column(col).null_count:
            raise GraphError(f"link table: {col} is empty in some rows")
    conf = table.column("confidence")
    if len(conf) and conf.null_count < len(conf):
        bounds = pc.min_max(conf)
        if bounds["min"].as_py() < 0 or bounds["max"].as_py() > 100:
            raise GraphError("link table: confidence outside 0-100 (use null for unknown)")
    ev = table.column("evidence")
    lengths = pc.fill_null(pc.list_value_length(ev), 0)
    if len(lengths) and pc.min(lengths).as_py() < 1:
        row = pc.index(pc.less(lengths, 1), True).as_py()
        raise GraphError(f"link table row {row}: a link must cite at least one evidence item")
    flat = pc.list_flatten(ev)
    shas = pc.unique(pc.struct_field(flat, "sha256"))
    return [s for s in shas.to_pylist() if s is not None]


class GraphStore:
    """One open graph file. Open it with ``GraphStore.open(home)`` (a context manager)."""

    def __init__(self, home: Home, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.home = home
        self.con = con
        self.read_only = read_only

    @classmethod
    @contextmanager
    def open(cls, home: Home, *, read_only: bool = False) -> Iterator[GraphStore]:
        path = graph_path(home)
        if read_only and not path.exists():
            raise GraphError(
                f"{path}: no graph yet; import something first (takedown graph import …)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise GraphError(
                    f"{path} is open for writing by another takedown process; "
                    "wait for it to finish (one writer at a time)"
                ) from None
            raise GraphError(f"{path}: {str(exc).splitlines()[0]}") from None
        try:
            if not read_only:
                con.execute(_DDL)
            yield cls(home, con, read_only)
        finally:
            con.close()

    # -- bookkeeping ------------------------------------------------------------------------
    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first value of a query (fetched whole: DuckDB 2 keeps half-read results open)."""
        rows = self.con.execute(sql, params).fetchall()
        return rows[0][0] if rows else None

    @property
    def version(self) -> int:
        return int(self.scalar("SELECT v FROM meta WHERE k = 'version'") or 0)

    def _bump(self) -> None:
        self.con.execute(
            "UPDATE meta SET v = CAST(CAST(v AS BIGINT) + 1 AS VARCHAR) WHERE k = 'version'"
        )

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("entities", "links", "link_evidence", "evidence", "imports"):
            out[table] = int(self.scalar(f"SELECT count(*) FROM {table}"))
        return out

    def previous_import(self, importer: str, sha256: str) -> dict[str, Any] | None:
        rows = self.con.execute(
            "SELECT id, imported_at, summary FROM imports WHERE importer = ? AND sha256 = ? "
            "ORDER BY id LIMIT 1",
            [importer, sha256],
        ).fetchall()
        return None if not rows else {"id": rows[0][0], "at": rows[0][1], "summary": rows[0][2]}

    def next_import_id(self) -> int:
        return int(self.scalar("SELECT coalesce(max(id) + 1, 1) FROM imports"))

    def record_import(
        self,
        import_id: int,
        importer: str,
        item: ItemInfo,
        handler: str,
        accepted: int,
        rejected: int,
        links: int,
        summary: str,
    ) -> None:
        self.con.execute(
            "INSERT INTO imports VALUES (?, ?, ?, ?, ?, now(), ?, ?, ?, ?)",
            [
                import_id,
                importer,
                item.sha256,
                item.name,
                handler,
                accepted,
                rejected,
                links,
                summary,
            ],
        )

    def remember_evidence(self, items: Sequence[ItemInfo]) -> None:
        for item in items:
            self.con.execute(
                "INSERT OR REPLACE INTO evidence VALUES (?, ?, ?, ?)",
                [item.sha256, item.name, item.size, item.source],
            )

    # -- the write path ---------------------------------------------------------------------
    def add_links(
        self,
        table: pa.Table | Sequence[LinkSpec],
        *,
        door: EvidenceDoor,
        asserted_by: str,
        method: str,
        import_id: int | None = None,
        record_custody: bool = True,
        on_commit: Callable[[AddResult], None] | None = None,
    ) -> AddResult:
        """Add links (and any entity not yet known) in one transaction.

        Keys must already be normalised (importers do it; ``normalize.key_for``). Every link
        must cite at least one vault item; the first one not in the vault is named.
        ``on_commit`` runs inside the transaction, just before it commits (import records).
        """
        if self.read_only:
            raise GraphError("the graph is open read-only")
        if not isinstance(table, pa.Table):
            table = specs_to_table(list(table))
        if table.num_rows == 0:
            return AddResult()
        if not asserted_by.strip():
            raise GraphError(
                "who asserts these links? set the handler (TAKEDOWN_HANDLER or "
                "`handler` in HOME/config.toml)"
            )
        table = _conform(table)
        shas = _check(table)
        require(door, shas, f"{method}")
        self.remember_evidence([door.info(s) for s in shas])
        now = dt.datetime.now(dt.UTC)
        con = self.con
        # Row numbers ride along from Arrow (no window over the input); entity ids are given in
        # order of first appearance, which keeps an import's entities together.
        rn = pa.array(np.arange(table.num_rows, dtype=np.int64))
        con.register("inc", table.append_column("rn", rn))
        try:
            con.execute("BEGIN TRANSACTION")
            base_entity = int(self.scalar("SELECT coalesce(max(id) + 1, 0) FROM entities"))
            con.execute(
                """
                INSERT INTO entities
                SELECT ? + row_number() OVER (ORDER BY first) - 1, kind, key,
                       coalesce(label, key), attrs, ?
                FROM (
                    SELECT kind, key, arg_min(label, rn) AS label, arg_min(attrs, rn) AS attrs,
                           min(rn) AS first
                    FROM (
                        SELECT rn, src_kind AS kind, src_key AS key, src_label AS label,
                               src_attrs AS attrs FROM inc
                        UNION ALL
                        SELECT rn, dst_kind, dst_key, dst_label, dst_attrs FROM inc
                    ) u
                    ANTI JOIN entities e USING (kind, key)
                    GROUP BY kind, key
                )
                """,
                [base_entity, now],
            )
            new_entities = (
                int(self.scalar("SELECT coalesce(max(id) + 1, 0) FROM entities")) - base_entity
            )
            base_link = int(self.scalar("SELECT coalesce(max(id) + 1, 0) FROM links"))
            result_base = base_link
            con.execute(
                """
                INSERT INTO links
                SELECT ? + inc.rn, s.id, d.id, inc.kind, inc.confidence, inc.valid_from,
                       inc.valid_to, ?, ?, ?, ?, inc.note, inc.score, inc.model
                FROM inc
                JOIN entities s ON s.kind = inc.src_kind AND s.key = inc.src_key
                JOIN entities d ON d.kind = inc.dst_kind AND d.key = inc.dst_key
                """,
                [base_link, asserted_by, now, method, import_id],
            )
            con.execute(
                """
                INSERT INTO link_evidence
                SELECT ? + rn, ev.sha256, ev.locator
                FROM (SELECT rn, unnest(evidence) AS ev FROM inc)
                """,
                [base_link],
            )
            self._bump()
            result = AddResult(table.num_rows, new_entities)
            if on_commit is not None:
                on_commit(result)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("inc")
        if record_custody:
            counts = pc.value_counts(pc.struct_field(pc.list_flatten(table["evidence"]), "sha256"))
            door.cited(
                [
                    (
                        entry["values"],
                        {
                            "graph": str(graph_path(self.home)),
                            "method": method,
                            "import": import_id,
                            "links": entry["counts"],
                            "first_link": result_base,
                        },
                    )
                    for entry in counts.to_pylist()
                ],
                handler=asserted_by,
            )
        return result

    # -- reading ----------------------------------------------------------------------------
    def _entity_rows(
        self, where: str, params: Sequence[Any], limit: int | None = None
    ) -> list[Entity]:
        sql = f"SELECT id, kind, key, label, attrs FROM entities WHERE {where} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self.con.execute(sql, params).fetchall()
        return [Entity(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else {}) for r in rows]

    def entity(self, entity_id: int) -> Entity:
        found = self._entity_rows("id = ?", [entity_id])
        if not found:
            raise GraphError(f"#{entity_id}: no such entity")
        return found[0]

    def entities(self, ids: Sequence[int]) -> dict[int, Entity]:
        if not ids:
            return {}
        return {e.id: e for e in self._entity_rows("id IN (SELECT unnest(?))", [list(ids)])}

    def find(self, kind: str, key: str) -> Entity | None:
        found = self._entity_rows("kind = ? AND key = ?", [kind, key])
        return found[0] if found else None

    def resolve(self, ref: EntityRef | str) -> Entity:
        """A user's reference → one entity, or a GraphError listing what it could mean."""
        from takedown.case.graph.model import parse_ref

        if isinstance(ref, str):
            ref = parse_ref(ref)
        if ref.id is not None:
            return self.entity(ref.id)
        kinds = [ref.kind] if ref.kind else list(ENTITY_KINDS)
        hits: dict[int, Entity] = {}
        for kind in kinds:
            try:
                key = key_for(kind, ref.value)
            except NormalizeError:
                continue
            found = self.find(kind, key)
            if found is not None:
                hits[found.id] = found
        if not hits:
            where = "label = ?" if ref.kind is None else "label = ? AND kind = ?"
            params = [ref.value] if ref.kind is None else [ref.value, ref.kind]
            for e in self._entity_rows(where, params, 20):
                hits[e.id] = e
        if len(hits) == 1:
            return next(iter(hits.values()))
        shown = ref.value if ref.kind is None else f"{ref.kind}:{ref.value}"
        if not hits:
            raise GraphError(f"{shown!r}: no entity has this key or label (try `graph find`)")
        options = ", ".join(f"#{e.id} {e.ref}" for e in list(hits.values())[:6])
        raise GraphError(f"{shown!r} could be {len(hits)} entities: {options}; name one by #ID")

    def search(self, text: str, limit: int = 50) -> list[Entity]:
        pattern = "%" + text.replace("%", r"\%").replace("_", r"\_") + "%"
        return self._entity_rows(
            "(key ILIKE ? ESCAPE '\\' OR label ILIKE ? ESCAPE '\\')", [pattern, pattern], limit
        )

    def links_of(self, entity_id: int) -> list[dict[str, Any]]:
        """Every link touching the entity, with the other end and its evidence."""
        rows = self.con.execute(
            """
            SELECT l.id, l.src, l.dst, l.kind, l.confidence, l.valid_from, l.valid_to,
                   l.asserted_by, l.asserted_at, l.method, l.note, l.score, l.model
            FROM links l WHERE l.src = ? OR l.dst = ? ORDER BY l.id
            """,
            [entity_id, entity_id],
        ).fetchall()
        return self._link_dicts(rows)

    def links(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        rows = self.con.execute(
            """
            SELECT l.id, l.src, l.dst, l.kind, l.confidence, l.valid_from, l.valid_to,
                   l.asserted_by, l.asserted_at, l.method, l.note, l.score, l.model
            FROM links l WHERE l.id IN (SELECT unnest(?)) ORDER BY l.id
            """,
            [list(ids)],
        ).fetchall()
        return self._link_dicts(rows)

    def links_between(self, a: int, b: int) -> list[dict[str, Any]]:
        rows = self.con.execute(
            """
            SELECT l.id, l.src, l.dst, l.kind, l.confidence, l.valid_from, l.valid_to,
                   l.asserted_by, l.asserted_at, l.method, l.note, l.score, l.model
            FROM links l WHERE (l.src = ? AND l.dst = ?) OR (l.src = ? AND l.dst = ?)
            ORDER BY coalesce(l.confidence, -1) DESC, l.id
            """,
            [a, b, b, a],
        ).fetchall()
        return self._link_dicts(rows)

    def evidence_between(self, pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], set[str]]:
        """Per entity pair (either order): the items cited by the usable links between them."""
        if not pairs:
            return {}
        lo = [min(a, b) for a, b in pairs]
        hi = [max(a, b) for a, b in pairs]
        self.con.register("wanted_pairs", pa.table({"a": lo, "b": hi}))
        try:
            rows = self.con.execute(
                """
                SELECT DISTINCT w.a, w.b, le.sha256
                FROM links l
                JOIN wanted_pairs w ON least(l.src, l.dst) = w.a AND greatest(l.src, l.dst) = w.b
                JOIN link_evidence le ON le.link_id = l.id
                WHERE l.confidence IS NULL OR l.confidence > 0
                """
            ).fetchall()
        finally:
            self.con.unregister("wanted_pairs")
        out: dict[tuple[int, int], set[str]] = {}
        for a, b, sha in rows:
            out.setdefault((a, b), set()).add(sha)
        return out

    def _link_dicts(self, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        names = (
            "id",
            "src",
            "dst",
            "kind",
            "confidence",
            "valid_from",
            "valid_to",
            "asserted_by",
            "asserted_at",
            "method",
            "note",
            "score",
            "model",
        )
        out = [dict(zip(names, r, strict=True)) for r in rows]
        evidence = self.evidence_for([r["id"] for r in out])
        for r in out:
            r["evidence"] = evidence.get(r["id"], [])
        return out

    def evidence_for(self, link_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        if not link_ids:
            return {}
        rows = self.con.execute(
            """
            SELECT le.link_id, le.sha256, le.locator, e.name, e.size, e.source
            FROM link_evidence le LEFT JOIN evidence e USING (sha256)
            WHERE le.link_id IN (SELECT unnest(?)) ORDER BY le.link_id, le.sha256
            """,
            [list(link_ids)],
        ).fetchall()
        out: dict[int, list[dict[str, Any]]] = {}
        for link_id, sha, locator, name, size, source in rows:
            out.setdefault(link_id, []).append(
                {"sha256": sha, "locator": locator, "name": name, "size": size, "source": source}
            )
        return out
