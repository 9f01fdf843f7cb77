"""Sharing the graph: STIX 2.1 bundles, MISP events, GraphML/GEXF for Gephi.

Every export starts from the same snapshot: the entities (all, or those within ``hops`` of a
seed) and the links between them, each with its evidence items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from takedown.case.graph.model import Entity
from takedown.case.graph.store import GraphStore
from takedown.errors import GraphError

__all__ = ["Snapshot", "export", "snapshot"]


@dataclass
class Snapshot:
    entities: dict[int, Entity]
    links: list[dict[str, Any]]
    version: int
    home_name: str


def snapshot(store: GraphStore, seed: Entity | None = None, hops: int = 4) -> Snapshot:
    if seed is None:
        ids = [int(r[0]) for r in store.con.execute("SELECT id FROM entities").fetchall()]
    else:
        from takedown.case.graph.adjacency import load_adjacency
        from takedown.case.graph.questions import ball

        ids = [int(i) for i in ball(load_adjacency(store), seed.id, hops, 200_000)]
    link_ids = [
        int(r[0])
        for r in store.con.execute(
            "SELECT id FROM links WHERE src IN (SELECT unnest(?)) AND dst IN (SELECT unnest(?))",
            [ids, ids],
        ).fetchall()
    ]
    return Snapshot(
        store.entities(ids), store.links(link_ids), store.version, store.home.root.resolve().name
    )


def export(
    store: GraphStore, kind: str, out: Path, *, seed: Entity | None = None, hops: int = 4
) -> int:
    """Write the graph (or the part around ``seed``) as ``kind``; returns the objects written."""
    snap = snapshot(store, seed, hops)
    if not snap.links:
        raise GraphError("nothing to export: the graph (or the part around --seed) has no links")
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "stix":
        from takedown.case.graph.share.stix import stix_bundle, validate

        bundle = stix_bundle(store, snap)
        # stix2's own pretty printer sorts properties very slowly: indent the compact form.
        text = json.dumps(json.loads(bundle.serialize()), indent=1, ensure_ascii=False)
        validate(text)
        out.write_text(text, encoding="utf-8")
        return len(bundle.objects)
    if kind == "misp":
        from takedown.case.graph.share.misp import misp_event

        event = misp_event(snap)
        out.write_text(event.to_json(indent=1), encoding="utf-8")
        return len(event.objects) + len(event.attributes)
    if kind in ("graphml", "gexf"):
        from takedown.case.graph.share.gephi import write_gephi

        return write_gephi(snap, out, kind)
    raise GraphError(f"export {kind!r}: choose stix, misp, graphml or gexf")
