"""GraphML and GEXF (for Gephi) through networkx: entities as nodes, links as edges, with
kind, confidence (absent when unknown, with ``confidence_known`` false), time range and the
evidence items cited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx  # type: ignore[import-untyped]

__all__ = ["to_networkx", "write_gephi"]


def to_networkx(snap: Any) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    for eid, ent in snap.entities.items():
        g.add_node(str(eid), kind=ent.kind, key=ent.key, label=ent.label)
    for lk in snap.links:
        attrs: dict[str, Any] = {
            "kind": lk["kind"],
            "link": int(lk["id"]),
            "confidence_known": lk["confidence"] is not None,
            "asserted_by": lk["asserted_by"],
            "evidence": "; ".join(
                f"{e['sha256']} {e['name']} ({e['locator'] or ''})" for e in lk["evidence"]
            ),
        }
        if lk["confidence"] is not None:
            attrs["confidence"] = int(lk["confidence"])
        for name in ("valid_from", "valid_to"):
            if lk[name] is not None:
                attrs[name] = lk[name].isoformat()
        g.add_edge(str(lk["src"]), str(lk["dst"]), key=str(lk["id"]), **attrs)
    return g


def write_gephi(snap: Any, out: Path, kind: str) -> int:
    g = to_networkx(snap)
    if kind == "graphml":
        nx.write_graphml(g, out)
    else:
        nx.write_gexf(g, out)
    return int(g.number_of_nodes() + g.number_of_edges())
