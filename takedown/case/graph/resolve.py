"""Probabilistic entity resolution of people and registrant records (splink on DuckDB).

Nothing is merged: each match above the threshold becomes a ``same-as`` link whose confidence
is the match probability, with the match weight as its score and the model version named.
The model is a Fellegi-Sunter model whose m and u probabilities are stated here rather than
trained: a case holds tens of records, far too few to estimate them. The model (as splink
settings) is added to the vault and cited by every link it makes, beside the records' files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from takedown.case.graph.evidence import EvidenceDoor
from takedown.case.graph.model import LinkSpec
from takedown.case.graph.normalize import NormalizeError, email, phone
from takedown.case.graph.store import GraphStore
from takedown.errors import GraphError

__all__ = ["MODELS", "ResolveReport", "model_version", "resolve"]

log = logging.getLogger(__name__)


def _level(sql: str, m: float, u: float, label: str) -> dict[str, Any]:
    return {"sql_condition": sql, "m_probability": m, "u_probability": u, "label_for_charts": label}


def _null(col: str) -> dict[str, Any]:
    return {
        "sql_condition": f'"{col}_l" IS NULL OR "{col}_r" IS NULL',
        "is_null_level": True,
        "label_for_charts": "null",
    }


def _exact_else(col: str, m: float, u: float) -> dict[str, Any]:
    return {
        "output_column_name": col,
        "comparison_levels": [
            _null(col),
            _level(f'"{col}_l" = "{col}_r"', m, u, "exact"),
            _level("ELSE", 1 - m, 1 - u, "different"),
        ],
    }


def _name(col: str, exact: tuple[float, float], close: tuple[float, float]) -> dict[str, Any]:
    m_else = 1 - exact[0] - close[0] - 0.05
    u_else = 1 - exact[1] - close[1] - 0.05
    return {
        "output_column_name": col,
        "comparison_levels": [
            _null(col),
            _level(f'"{col}_l" = "{col}_r"', *exact, "exact"),
            _level(f'jaro_winkler_similarity("{col}_l", "{col}_r") >= 0.9', *close, "JW >= 0.9"),
            _level(f'left("{col}_l", 1) = left("{col}_r", 1)', 0.05, 0.05, "same initial"),
            _level("ELSE", m_else, u_else, "different"),
        ],
    }


# The stated priors. u: how often two *different* people agree by chance (a surname is shared
# by about one pair in a hundred in a mixed population; an e-mail address or phone number
# almost never); m: how often records of the *same* person agree (people give the same
# e-mail address less reliably than the same name, because operators use several).
_PEOPLE: dict[str, Any] = {
    "link_type": "dedupe_only",
    "unique_id_column_name": "unique_id",
    "probability_two_random_records_match": 0.05,
    "blocking_rules_to_generate_predictions": [
        {"blocking_rule": "l.surname = r.surname"},
        {"blocking_rule": "l.email = r.email"},
        {"blocking_rule": "l.phone = r.phone"},
        {"blocking_rule": "l.first_name = r.first_name AND l.country = r.country"},
    ],
    "comparisons": [
        _name("surname", (0.70, 0.01), (0.15, 0.01)),
        _name("first_name", (0.60, 0.02), (0.15, 0.02)),
        _exact_else("email", 0.50, 0.0005),
        _exact_else("phone", 0.50, 0.0005),
        _exact_else("city", 0.70, 0.05),
        _exact_else("country", 0.90, 0.30),
        _exact_else("dob", 0.90, 0.002),
    ],
    "retain_matching_columns": False,
    "retain_intermediate_calculation_columns": False,
}
_REGISTRANTS: dict[str, Any] = {
    **_PEOPLE,
    "blocking_rules_to_generate_predictions": [
        *_PEOPLE["blocking_rules_to_generate_predictions"],
        {"blocking_rule": "l.organisation = r.organisation"},
        {"blocking_rule": "l.street = r.street"},
    ],
    "comparisons": [
        *_PEOPLE["comparisons"],
        _exact_else("organisation", 0.60, 0.01),
        _exact_else("street", 0.60, 0.001),
    ],
}
MODELS = {
    "person": ("takedown-people-v1", _PEOPLE),
    "registrant": ("takedown-registrants-v1", _REGISTRANTS),
}
_COLUMNS = (
    "first_name",
    "surname",
    "email",
    "phone",
    "city",
    "country",
    "dob",
    "organisation",
    "street",
)


def model_version(kind: str) -> str:
    import splink

    name, settings = MODELS[kind]
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return f"{name} (splink {splink.__version__}, settings {digest})"


def _fold(text: Any) -> str | None:
    if text is None:
        return None
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"[^\w\s'-]", " ", text)
    return " ".join(text.split()) or None


def _split_name(name: str | None) -> tuple[str | None, str | None]:
    if not name:
        return None, None
    if "," in name:
        last, _, first = name.partition(",")
        return _fold(first.split()[0]) if first.split() else None, _fold(last)
    parts = (_fold(name) or "").split()
    if not parts:
        return None, None
    return (parts[0] if len(parts) > 1 else None), parts[-1]


def _row(entity_id: int, label: str, attrs: dict[str, Any]) -> dict[str, Any]:
    first, last = _split_name(attrs.get("name") or label)
    em = attrs.get("email")
    ph = attrs.get("phone")
    try:
        em = email(em) if em else None
    except NormalizeError:
        em = _fold(em)
    try:
        ph = phone(ph) if ph else None
    except NormalizeError:
        ph = None
    return {
        "unique_id": str(entity_id),
        "first_name": first,
        "surname": last,
        "email": em,
        "phone": ph,
        "city": _fold(attrs.get("city")),
        "country": _fold(attrs.get("country")),
        "dob": _fold(attrs.get("dob")),
        "organisation": _fold(attrs.get("organisation")),
        "street": _fold(attrs.get("street")),
    }


@dataclass
class ResolveReport:
    kind: str
    records: int
    pairs: int
    links: int
    model: str
    model_item: str

    def summary(self) -> str:
        return (
            f"resolve {self.kind}: {self.records} records, {self.pairs} scored pairs, "
            f"{self.links} new same-as links; model {self.model} (vault {self.model_item[:12]}…)"
        )


def _predict(rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, Any]]:
    from splink import DuckDBAPI, Linker

    table = pa.Table.from_pylist(
        rows, schema=pa.schema([(c, pa.string()) for c in ("unique_id", *_COLUMNS)])
    )
    api = DuckDBAPI()
    frame = api.register(table)
    linker = Linker(frame, json.loads(json.dumps(settings)), log_level=logging.ERROR)
    result = linker.inference.predict(threshold_match_probability=0.0)
    out = result.as_pyarrow_table().select(  # type: ignore[no-untyped-call]
        ["unique_id_l", "unique_id_r", "match_weight", "match_probability"]
    )
    api.duckdb_con.close()
    return list(out.to_pylist())


def resolve(
    store: GraphStore,
    door: EvidenceDoor,
    *,
    handler: str,
    kind: str = "person",
    threshold: float = 0.5,
) -> ResolveReport:
    """Score every pair of ``kind`` records that share a blocking key; link the likely ones."""
    if kind not in MODELS:
        raise GraphError(f"resolve: kind {kind!r} is not one of {', '.join(MODELS)}")
    if not 0.0 < threshold <= 1.0:
        raise GraphError(f"--threshold {threshold}: give a probability in (0, 1]")
    name, settings = MODELS[kind]
    version = model_version(kind)
    card = json.dumps(
        {
            "model": version,
            "kind": kind,
            "splink_settings": settings,
            "note": "Fellegi-Sunter model with stated (untrained) m/u probabilities.",
        },
        indent=1,
        sort_keys=True,
    ).encode()
    rows_db = store.con.execute(
        "SELECT id, label, attrs FROM entities WHERE kind = ? ORDER BY id", [kind]
    ).fetchall()
    rows = [_row(i, label, json.loads(attrs) if attrs else {}) for i, label, attrs in rows_db]
    model_item = door.add_bytes(card, f"{name}.json", handler=handler, source="graph resolve")
    report = ResolveReport(kind, len(rows), 0, 0, version, model_item.sha256)
    if len(rows) < 2:
        return report
    scored = _predict(rows, settings)
    report.pairs = len(scored)
    done = {
        (min(a, b), max(a, b))
        for a, b in store.con.execute(
            "SELECT src, dst FROM links WHERE kind = 'same-as' AND model = ?", [version]
        ).fetchall()
    }
    keys = {str(i): label for i, label, _ in rows_db}
    ids = [int(r["unique_id_l"]) for r in scored] + [int(r["unique_id_r"]) for r in scored]
    ents = store.entities(sorted(set(ids)))
    evidence = _record_evidence(store, sorted(set(ids)))
    specs = []
    for r in scored:
        a, b = int(r["unique_id_l"]), int(r["unique_id_r"])
        prob = float(r["match_probability"])
        if prob < threshold or (min(a, b), max(a, b)) in done:
            continue
        cites = [(model_item.sha256, f"model {version}")]
        cites += evidence.get(a, [])[:4] + evidence.get(b, [])[:4]
        specs.append(
            LinkSpec(
                kind,
                ents[a].key,
                "same-as",
                kind,
                ents[b].key,
                round(prob * 100),
                cites,
                note=f"{keys[str(a)]} ~ {keys[str(b)]}: match probability {prob:.4f}",
                score=float(r["match_weight"]),
                model=version,
            )
        )
    result = store.add_links(specs, door=door, asserted_by=handler, method=f"resolve {name}")
    report.links = result.links
    return report


def _record_evidence(store: GraphStore, ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """The items (and records in them) each entity was imported from."""
    rows = store.con.execute(
        """
        SELECT DISTINCT CASE WHEN l.src IN (SELECT unnest(?)) THEN l.src ELSE l.dst END AS ent,
               le.sha256, le.locator
        FROM links l JOIN link_evidence le ON le.link_id = l.id
        WHERE (l.src IN (SELECT unnest(?)) OR l.dst IN (SELECT unnest(?)))
          AND l.kind <> 'same-as'
        ORDER BY ent, le.sha256, le.locator
        """,
        [ids, ids, ids],
    ).fetchall()
    out: dict[int, list[tuple[str, str]]] = {}
    for ent, sha, locator in rows:
        pairs = out.setdefault(ent, [])
        if all(s != sha for s, _ in pairs):
            pairs.append((sha, locator or ""))
    return out
