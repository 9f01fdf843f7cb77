"""The questions the graph answers: paths, candidates, everything known, a timeline, and an
explanation of a path fit for an affidavit.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, diags
from scipy.sparse.csgraph import dijkstra

from takedown.case.graph.adjacency import (
    KIND_CODES,
    Adjacency,
    Route,
    neighbours,
    shortest_path,
    strongest_path,
)
from takedown.case.graph.model import LINK_KINDS, UNKNOWN_PRIOR, Entity
from takedown.case.graph.store import GraphStore

__all__ = [
    "Candidate",
    "ball",
    "candidates",
    "explain_text",
    "paths",
    "route_steps",
    "show_rows",
    "timeline_rows",
]


def _conf(value: int | None) -> str:
    return "unknown" if value is None else f"{value}"


def _day(value: Any) -> str:
    if isinstance(value, dt.datetime):
        when: dt.datetime = value.astimezone(dt.UTC)
        return (
            when.strftime("%Y-%m-%d %H:%M")
            if (when.hour or when.minute)
            else when.strftime("%Y-%m-%d")
        )
    return "" if value is None else str(value)


def _span(link: dict[str, Any]) -> str:
    a, b = _day(link["valid_from"]), _day(link["valid_to"])
    if not a and not b:
        return ""
    return a if a == b else f"{a or '…'} → {b or '…'}"


def paths(store: GraphStore, adj: Adjacency, a: Entity, b: Entity) -> dict[str, Route | None]:
    """The shortest (fewest links) and the strongest (highest product of confidences) paths."""
    short = shortest_path(adj, a.id, b.id)
    strong = strongest_path(adj, a.id, b.id) if short is not None else None
    return {"shortest": short, "strongest": strong}


@dataclass
class Step:
    number: int
    src: Entity
    dst: Entity
    links: list[dict[str, Any]]  # every link between the two, the one the path used first


def route_steps(store: GraphStore, route: Route) -> list[Step]:
    ents = store.entities(route.nodes)
    steps = []
    for i, (u, v, used) in enumerate(
        zip(route.nodes, route.nodes[1:], route.links, strict=False), 1
    ):
        between = [
            link
            for link in store.links_between(u, v)
            if link["confidence"] is None or link["confidence"] > 0
        ]
        between.sort(key=lambda link: (link["id"] != used,))
        steps.append(Step(i, ents[u], ents[v], between))
    return steps


def _arrow(link: dict[str, Any], u: Entity) -> str:
    return f"—{link['kind']}→" if link["src"] == u.id else f"←{link['kind']}—"


def step_rows(steps: list[Step]) -> list[dict[str, Any]]:
    rows = []
    for step in steps:
        best = step.links[0]
        rows.append(
            {
                "step": step.number,
                "from": step.src.display(),
                "link": _arrow(best, step.src),
                "to": step.dst.display(),
                "confidence": _conf(best["confidence"]),
                "when": _span(best),
                "asserted_by": best["asserted_by"],
                "evidence": "; ".join(
                    f"{e['name']} ({e['locator']}) sha256:{e['sha256']}" for e in best["evidence"]
                ),
                "more_links": len(step.links) - 1,
            }
        )
    return rows


def explain_text(store: GraphStore, route: Route, title: str) -> str:
    """Each step of a path with what asserts it and the evidence item's name and SHA-256."""
    steps = route_steps(store, route)
    ents = store.entities([route.nodes[0], route.nodes[-1]])
    first, last = ents[route.nodes[0]], ents[route.nodes[-1]]
    lines = [
        title,
        "",
        f"From {first.display()} to {last.display()}: {len(steps)} step(s); the product of the "
        f"stated confidences is {route.probability:.1%} (a link of unknown confidence counts as "
        f"{UNKNOWN_PRIOR}%).",
        "",
    ]
    for step in steps:
        best = step.links[0]
        meaning = LINK_KINDS.get(best["kind"], "")
        src, dst = (step.src, step.dst) if best["src"] == step.src.id else (step.dst, step.src)
        lines.append(
            f"{step.number}. {src.display()} {best['kind']} {dst.display()}"
            + (
                f"  [{meaning.replace('SRC', 'source').replace('DST', 'target')}]"
                if meaning
                else ""
            )
        )
        detail = [f"confidence {_conf(best['confidence'])}"]
        if _span(best):
            detail.append(f"valid {_span(best)}")
        detail.append(f"asserted by {best['asserted_by']} ({best['method']})")
        if best.get("model"):
            detail.append(f"model {best['model']}, score {best['score']:.3f}")
        lines.append("   " + "; ".join(detail))
        if best.get("note"):
            lines.append(f"   note: {best['note']}")
        for ev in best["evidence"]:
            lines.append(
                f"   evidence: {ev['name']} ({ev['locator'] or 'whole item'}), "
                f"SHA-256 {ev['sha256']}"
            )
        for other in step.links[1:]:
            names = ", ".join(f"{e['name']} sha256:{e['sha256'][:16]}…" for e in other["evidence"])
            lines.append(
                f"   also: {other['kind']} (confidence {_conf(other['confidence'])}) from {names}"
            )
    return "\n".join(lines) + "\n"


# -- everything known, and a timeline ---------------------------------------------------------
def show_rows(store: GraphStore, entity: Entity) -> list[dict[str, Any]]:
    links = store.links_of(entity.id)
    others = store.entities([lk["dst"] if lk["src"] == entity.id else lk["src"] for lk in links])
    rows = []
    for lk in links:
        out = lk["src"] == entity.id
        other = others[lk["dst"] if out else lk["src"]]
        rows.append(
            {
                "link": lk["id"],
                "direction": "→" if out else "←",
                "kind": lk["kind"],
                "other": other.display(),
                "confidence": _conf(lk["confidence"]),
                "when": _span(lk),
                "asserted_by": lk["asserted_by"],
                "method": lk["method"],
                "evidence": "; ".join(f"{e['name']} ({e['locator']})" for e in lk["evidence"]),
                "note": lk["note"] or "",
            }
        )
    return rows


def timeline_rows(store: GraphStore, entity: Entity, depth: int = 1) -> list[dict[str, Any]]:
    """Links with a time, of the entity (and, with depth 2, of its neighbours), oldest first."""
    ids = {entity.id}
    if depth > 1:
        for lk in store.links_of(entity.id):
            ids.update((lk["src"], lk["dst"]))
    seen: dict[int, dict[str, Any]] = {}
    for node in ids:
        for lk in store.links_of(node):
            seen[lk["id"]] = lk
    dated = [lk for lk in seen.values() if lk["valid_from"] or lk["valid_to"]]
    ents = store.entities(sorted({n for lk in dated for n in (lk["src"], lk["dst"])}))
    rows = []
    for lk in dated:
        for when, what in ((lk["valid_from"], "from"), (lk["valid_to"], "until")):
            if when is None or (what == "until" and when == lk["valid_from"]):
                continue
            rows.append(
                {
                    "when": _day(when),
                    "_t": when,
                    "edge": what if lk["valid_from"] != lk["valid_to"] else "at",
                    "what": f"{ents[lk['src']].display()} {lk['kind']} {ents[lk['dst']].display()}",
                    "confidence": _conf(lk["confidence"]),
                    "evidence": "; ".join(f"{e['name']} ({e['locator']})" for e in lk["evidence"]),
                }
            )
    rows.sort(key=lambda r: (r["_t"], r["what"]))
    for r in rows:
        del r["_t"]
    return rows


# -- candidate operators ------------------------------------------------------------------------
SAME_AS_GROUPING = 50  # same-as links at least this confident group records into one candidate
# Links between two of these establish the infrastructure (the sinkhole's observations, passive
# DNS, a server's address), not who runs it: their evidence does not count for independence.
INFRASTRUCTURE_KINDS = ("botnet", "sample", "domain", "ip", "network", "server")


@dataclass
class Candidate:
    person: Entity  # the member the strongest path reaches
    members: list[Entity]  # every person record grouped with it by same-as links
    routes: list[Route]
    independent: int
    evidence: set[str]
    caveats: list[str] = field(default_factory=list)

    @property
    def strongest(self) -> float:
        return self.routes[0].probability if self.routes else 0.0

    def explanation(self) -> str:
        shared = len(self.routes) - self.independent
        text = (
            f"{self.independent} independent line(s) of evidence: {len(self.routes)} paths "
            "sharing no entity"
            + (f", {shared} of them citing an item an earlier path cites" if shared else "")
            + f"; {len(self.evidence)} distinct evidence items; strongest path "
            f"{self.strongest:.0%} over {len(self.routes[0].links)} links"
        )
        if len(self.members) > 1:
            text += f"; {len(self.members)} person records joined by same-as"
        if self.caveats:
            text += "; CAVEAT: " + "; ".join(self.caveats)
        return text


def ball(adj: Adjacency, seed: int, hops: int, max_nodes: int) -> np.ndarray[Any, Any]:
    """The seed and the entities within ``hops`` links of it, nearest first (at most
    ``max_nodes``)."""
    seen = np.zeros(adj.n, bool)
    seen[seed] = True
    frontier = np.array([seed], np.int64)
    order = [frontier]
    total = 1
    for _ in range(hops):
        nbrs, _from = neighbours(adj, frontier)
        nbrs = np.unique(nbrs[~seen[nbrs]])
        if not len(nbrs):
            break
        if total + len(nbrs) > max_nodes:
            nbrs = nbrs[: max_nodes - total]
        seen[nbrs] = True
        order.append(nbrs)
        total += len(nbrs)
        frontier = nbrs
        if total >= max_nodes:
            break
    return np.concatenate(order)


def _groups(store: GraphStore, people: list[int]) -> list[list[int]]:
    """People joined by confident same-as links (union-find), each group sorted."""
    parent = {p: p for p in people}

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rows = store.con.execute(
        "SELECT src, dst FROM links WHERE kind = 'same-as' AND confidence >= ? "
        "AND src IN (SELECT unnest(?)) AND dst IN (SELECT unnest(?))",
        [SAME_AS_GROUPING, people, people],
    ).fetchall()
    for a, b in rows:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for p in people:
        groups.setdefault(root(p), []).append(p)
    return [sorted(g) for g in groups.values()]


def _disjoint_routes(
    adj: Adjacency, sub: Any, nodes_in: np.ndarray[Any, Any], members: list[int], max_paths: int
) -> list[Route]:
    """Paths from ball[0] to any member sharing no entity, each the strongest left.

    The members are joined to one extra node by free edges, so a path ends at whichever
    member it reaches first; a direct seed–member link can be used once.
    """
    n = sub.shape[0]
    pos = {int(v): i for i, v in enumerate(nodes_in)}
    targets = [pos[m] for m in members]
    rows = np.array(targets, np.int64)
    sink = n
    extra = csr_matrix(
        (np.full(len(rows), 1e-9), (rows, np.full(len(rows), sink))), shape=(n + 1, n + 1)
    )
    graph = (_pad(sub, n + 1) + extra + extra.T).tocsr()
    alive = np.ones(n + 1)
    routes: list[Route] = []
    for _ in range(max_paths):
        # Removed entities are masked out (rows and columns scaled by 0), not deleted one by
        # one: two sparse products, whatever the size of the ball.
        mask = diags(alive)
        live = (mask @ graph @ mask).tocsr()
        live.eliminate_zeros()
        dist, pred = dijkstra(live, directed=True, indices=0, return_predecessors=True)
        if not math.isfinite(dist[sink]):
            break
        hops = [sink]
        while hops[-1] != 0:
            hops.append(int(pred[hops[-1]]))
        hops.reverse()
        nodes = [int(nodes_in[i]) for i in hops[:-1]]
        links, cost = [], 0.0
        for u, v in itertools.pairwise(nodes):
            w, lid = adj.edge(u, v)
            links.append(lid)
            cost += w
        routes.append(Route(nodes, links, cost))
        inner = hops[1:-2]
        if inner:
            alive[inner] = 0.0
        else:  # a direct link from the seed: it cannot be removed by entity, so drop the edge
            graph = graph.tolil()
            graph[0, hops[1]] = 0
            graph[hops[1], 0] = 0
            graph = graph.tocsr()
            graph.eliminate_zeros()
    return routes


def _pad(matrix: Any, size: int) -> Any:
    coo = matrix.tocoo()
    return csr_matrix((coo.data, (coo.row, coo.col)), shape=(size, size))


def candidates(
    store: GraphStore,
    adj: Adjacency,
    seed: Entity,
    *,
    hops: int = 6,
    limit: int = 10,
    max_paths: int = 5,
    max_nodes: int = 50_000,
) -> list[Candidate]:
    """Persons near ``seed``, ranked by independent corroborating evidence.

    Links of the context kinds (``CONTEXT_KINDS``: customer-of, delegated-to) are not
    followed. Person records joined by same-as links (confidence ≥ 50) are one candidate. Each:
    up to ``max_paths`` paths from the seed that share no entity but the seed (each the
    strongest left once the previous paths' entities are removed). A path is an independent
    line of evidence if the items it cites for its attributing steps (those not between two
    infrastructure entities, ``INFRASTRUCTURE_KINDS``) are none that an earlier counted path
    cites. Ranked by independent lines, then distinct evidence items, then the strongest path.
    """
    ball_ids = ball(adj, seed.id, hops, max_nodes)
    sub = adj.evidence_csr()[ball_ids][:, ball_ids].tocsr()
    person_code = KIND_CODES["person"]
    dist = dijkstra(sub, directed=True, indices=0)
    order = np.argsort(dist, kind="stable")
    people = [
        int(ball_ids[i])
        for i in order
        if adj.kind[ball_ids[i]] == person_code and i != 0 and math.isfinite(dist[i])
    ]
    if not people:
        return []
    groups = _groups(store, people)
    rank = {p: i for i, p in enumerate(people)}
    groups.sort(key=lambda g: min(rank[p] for p in g))
    searched = [
        (group, routes)
        for group in groups[: max(limit * 3, limit)]
        if (routes := _disjoint_routes(adj, sub, ball_ids, group, max_paths))
    ]
    pairs = {
        (min(u, v), max(u, v))
        for _, routes in searched
        for r in routes
        for u, v in itertools.pairwise(r.nodes)
    }
    cited = store.evidence_between(sorted(pairs))
    infra = np.array([KIND_CODES[k] for k in INFRASTRUCTURE_KINDS], np.int8)
    found: list[Candidate] = []
    for group, routes in searched:
        evidence_sets, attribution_sets = [], []
        for r in routes:
            every: set[str] = set()
            attributing: set[str] = set()
            for u, v in itertools.pairwise(r.nodes):
                items = cited.get((min(u, v), max(u, v)), set())
                every |= items
                if not (np.isin(adj.kind[u], infra) and np.isin(adj.kind[v], infra)):
                    attributing |= items
            evidence_sets.append(every)
            attribution_sets.append(attributing)
        counted: set[str] = set()
        independent = 0
        for ev in attribution_sets:
            if ev and not (ev & counted):
                independent += 1
            counted |= ev
        members = store.entities(group)
        found.append(
            Candidate(
                members[routes[0].nodes[-1]],
                [members[g] for g in group],
                routes,
                independent,
                set().union(*evidence_sets),
            )
        )
    for cand in found:
        for member in cand.members:
            for lk in store.links_of(member.id):
                if lk["kind"] == "reported-stolen" and lk["src"] == member.id:
                    names = ", ".join(e["name"] for e in lk["evidence"])
                    cand.caveats.append(
                        f"#{member.id} ({member.label}) reported an account opened in their "
                        f"name without consent (link #{lk['id']}, {names})"
                    )
    found.sort(key=lambda c: (-c.independent, -len(c.evidence), -c.strongest, c.person.id))
    return found[:limit]
