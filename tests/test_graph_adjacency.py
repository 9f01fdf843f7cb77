"""Paths over the cached CSR agree with networkx on random graphs."""

import itertools
import math
import random

import networkx as nx
import numpy as np
import pyarrow as pa
import pytest

from takedown.case.graph.adjacency import load_adjacency, shortest_path, strongest_path
from takedown.case.graph.evidence import open_vault
from takedown.case.graph.kernels import renumber
from takedown.case.graph.model import UNKNOWN_PRIOR
from takedown.case.graph.store import GraphStore
from takedown.home import Home


def random_links(rng, n_nodes, n_links, sha):
    rows = []
    for _ in range(n_links):
        a, b = rng.randrange(n_nodes), rng.randrange(n_nodes)
        conf = rng.choice([None, 0, 10, 35, 50, 60, 80, 90, 95, 99, 100])
        rows.append((a, b, conf))
    table = pa.table(
        {
            "src_kind": ["ip"] * n_links,
            "src_key": [f"10.0.{a // 256}.{a % 256}" for a, _, _ in rows],
            "kind": ["related-to"] * n_links,
            "dst_kind": ["ip"] * n_links,
            "dst_key": [f"10.0.{b // 256}.{b % 256}" for _, b, _ in rows],
            "confidence": pa.array([c for _, _, c in rows], pa.int16()),
            "evidence": [[{"sha256": sha, "locator": f"row {i}"}] for i in range(n_links)],
        }
    )
    return rows, table


def reference_graph(store, rows):
    """The same graph in networkx: parallel links collapse to the strongest; 0 is no edge."""
    ids = {}
    for key, eid in store.con.execute("SELECT key, id FROM entities").fetchall():
        ids[key] = eid
    g = nx.Graph()
    g.add_nodes_from(ids.values())
    for a, b, conf in rows:
        u, v = ids[f"10.0.{a // 256}.{a % 256}"], ids[f"10.0.{b // 256}.{b % 256}"]
        if u == v or conf == 0:
            continue
        p = (UNKNOWN_PRIOR if conf is None else conf) / 100
        w = -math.log(p) + 1e-6
        if not g.has_edge(u, v) or g[u][v]["weight"] > w:
            g.add_edge(u, v, weight=w)
    return g


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paths_match_networkx(tmp_path, seed):
    rng = random.Random(seed)
    home = Home(tmp_path)
    with open_vault(home) as door, GraphStore.open(home) as store:
        sha = door.add_bytes(f"links {seed}".encode(), "links.csv", handler="t", source="t").sha256
        rows, table = random_links(rng, 300, 900, sha)
        store.add_links(table, door=door, asserted_by="t", method="test")
        adj = load_adjacency(store)
        ref = reference_graph(store, rows)
        checked = 0
        steps = []
        for _ in range(40):
            s, t = rng.randrange(adj.n), rng.randrange(adj.n)
            short = shortest_path(adj, s, t)
            if not nx.has_path(ref, s, t):
                assert short is None
                continue
            assert short is not None and short.nodes[0] == s and short.nodes[-1] == t
            assert len(short.nodes) - 1 == nx.shortest_path_length(ref, s, t)
            strong = strongest_path(adj, s, t)
            expected = nx.dijkstra_path_length(ref, s, t)
            assert strong is not None
            assert strong.cost == pytest.approx(expected, abs=1e-9)
            steps.extend(zip(itertools.pairwise(strong.nodes), strong.links, strict=True))
            checked += 1
        # Each step is a real link, cited, between the path's entities.
        links = {lk["id"]: lk for lk in store.links([lid for _, lid in steps])}
        for (u, v), lid in steps:
            assert {links[lid]["src"], links[lid]["dst"]} == {u, v} and links[lid]["evidence"]
        assert checked > 10


def test_cache_follows_the_version(tmp_path):
    home = Home(tmp_path)
    with open_vault(home) as door, GraphStore.open(home) as store:
        sha = door.add_bytes(b"x", "x.csv", handler="t", source="t").sha256
        _, table = random_links(random.Random(9), 20, 30, sha)
        store.add_links(table, door=door, asserted_by="t", method="test")
        first = load_adjacency(store)
        cache = home.root / "case" / "graph-cache"
        assert [p.name for p in cache.iterdir()] == [f"v{store.version}"]
        again = load_adjacency(store)
        assert np.array_equal(first.indices, again.indices)
        # The BFS's renumbered CSR is cached with the rest (a CLI call does not rebuild it).
        assert (cache / f"v{store.version}" / "bfs_indices.npy").exists()
        assert again.bfs_csr is not None
        for cached, built in zip(again.bfs_csr, renumber(again.indptr, again.indices), strict=True):
            assert np.array_equal(cached, built)
        store.add_links(table.slice(0, 3), door=door, asserted_by="t", method="test")
        newer = load_adjacency(store)
        assert newer.version == first.version + 1
        assert [p.name for p in cache.iterdir()] == [f"v{newer.version}"]


def test_refuted_links_are_not_steps(tmp_path):
    home = Home(tmp_path)
    with open_vault(home) as door, GraphStore.open(home) as store:
        sha = door.add_bytes(b"y", "y.csv", handler="t", source="t").sha256
        table = pa.table(
            {
                "src_kind": ["ip", "ip"],
                "src_key": ["192.0.2.1", "192.0.2.2"],
                "kind": ["related-to", "related-to"],
                "dst_kind": ["ip", "ip"],
                "dst_key": ["192.0.2.2", "192.0.2.3"],
                "confidence": pa.array([0, None], pa.int16()),
                "evidence": [[{"sha256": sha, "locator": "1"}], [{"sha256": sha, "locator": "2"}]],
            }
        )
        store.add_links(table, door=door, asserted_by="t", method="test")
        adj = load_adjacency(store)
        a, b, c = (store.resolve(f"ip:192.0.2.{i}").id for i in (1, 2, 3))
        assert shortest_path(adj, a, b) is None
        route = strongest_path(adj, b, c)
        assert route is not None and route.probability == pytest.approx(UNKNOWN_PRIOR / 100)
