"""The compiled searches on random graphs: exact against scipy, and they leave their scratch
arrays as they found them (the next search depends on it)."""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, shortest_path

from takedown.case.graph.adjacency import Adjacency, strongest_path
from takedown.case.graph.adjacency import shortest_path as bfs_route
from takedown.case.graph.kernels import bidirectional_bfs, renumber


def adjacency(n, pairs, weights, bfs_csr=None):
    rows = np.array([a for a, b in pairs] + [b for a, b in pairs], np.int64)
    cols = np.array([b for a, b in pairs] + [a for a, b in pairs], np.int64)
    w = np.array(list(weights) * 2, np.float64)
    keep = rows != cols
    m = csr_matrix((w[keep], (rows[keep], cols[keep])), shape=(n, n))
    m.sum_duplicates()  # pairs are unique: nothing is summed
    indptr = m.indptr.astype(np.int64)
    indices = m.indices.astype(np.int32)
    data = m.data.astype(np.float64)
    adj = Adjacency(
        indptr,
        indices,
        data,
        np.arange(len(data), dtype=np.int64),
        np.zeros(len(data), np.int8),
        np.zeros(n, np.int8),
        0,
        bfs_csr=bfs_csr,
    )
    return adj, m


def identity(adj):
    """The BFS's CSR left in entity order: the search as it ran before renumbering."""
    order = np.arange(adj.n, dtype=np.int64)
    return (adj.indptr, adj.indices, order, order)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 40),
    data=st.data(),
)
def test_searches_are_exact_and_tidy(n, data):
    pairs = data.draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n, unique=True
        )
    )
    pairs = [(a, b) for a, b in pairs if a != b]
    pairs = list({(min(a, b), max(a, b)) for a, b in pairs})
    weights = data.draw(st.lists(st.floats(1e-6, 5.0), min_size=len(pairs), max_size=len(pairs)))
    adj, m = adjacency(n, pairs, weights)
    hops = shortest_path(m, unweighted=True, directed=False)
    cost = dijkstra(m, directed=False)
    for _ in range(5):
        s, t = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
        short, strong = bfs_route(adj, s, t), strongest_path(adj, s, t)
        if np.isinf(hops[s, t]):
            assert short is None and strong is None
            continue
        assert len(short.nodes) - 1 == hops[s, t]
        assert abs(strong.cost - cost[s, t]) < 1e-9
        assert short.nodes[0] == s and short.nodes[-1] == t
        # (here a link's id is its CSR position, so each direction of a step has its own)
        steps = list(zip(short.nodes, short.nodes[1:], short.links, strict=False))
        assert all(link in (adj.edge(a, b)[1], adj.edge(b, a)[1]) for a, b, link in steps)
        assert abs(short.cost - sum(adj.edge(a, b)[0] for a, b, _ in steps)) < 1e-9
        with adj.scratch() as w:
            assert (w.ints == -1).all() and np.isinf(w.dist).all() and not w.bits.any()
            assert not w.bfs_seen.any()


def test_shortest_path_skips_numba_dispatch():
    """The BFS is called through its compiled entry point (the dispatcher is the fallback):
    if a numba upgrade hides it, this says so instead of queries quietly getting slower."""
    adj, _ = adjacency(3, [(0, 1), (1, 2)], [0.5, 0.25])
    route = bfs_route(adj, 0, 2)
    assert route is not None and route.nodes == [0, 1, 2] and route.links == [0, 2]
    assert route.cost == 0.75
    assert adj._bfs[0] is not bidirectional_bfs
    assert bfs_route(adj, 2, 2).nodes == [2] and bfs_route(adj, 2, 2).links == []
    for s, t in ((-1, 0), (0, 3), (3, 3)):
        with pytest.raises(IndexError):
            bfs_route(adj, s, t)


def star_and_chains(seed):
    """Hubs with many leaves, chains between them, a few stray links: where renumbering moves
    entities around the most."""
    rng = np.random.default_rng(seed)
    n = 400
    hubs = rng.choice(n, 6, replace=False)
    pairs = set()
    for h in hubs:
        for v in rng.choice(n, int(rng.integers(20, 120)), replace=False):
            if v != h:
                pairs.add((min(h, v), max(h, v)))
    for _ in range(150):
        a, b = rng.integers(0, n, 2)
        if a != b:
            pairs.add((min(a, b), max(a, b)))
    pairs = sorted((int(a), int(b)) for a, b in pairs)
    return n, pairs, rng.uniform(1e-6, 3.0, len(pairs))


def test_renumbering_round_trip():
    """rank and entity are inverse permutations, each row keeps its neighbours in order (mapped),
    and hubs come first."""
    n, pairs, weights = star_and_chains(1)
    adj, _ = adjacency(n, pairs, weights)
    new_indptr, new_indices, rank, entity = renumber(adj.indptr, adj.indices)
    assert np.array_equal(np.sort(rank), np.arange(n))
    assert np.array_equal(rank[entity], np.arange(n)) and np.array_equal(entity[rank], np.arange(n))
    for u in range(n):
        row = adj.indices[adj.indptr[u] : adj.indptr[u + 1]]
        r = rank[u]
        assert np.array_equal(new_indices[new_indptr[r] : new_indptr[r + 1]], rank[row])
    degree = np.diff(adj.indptr)
    assert degree[entity[0]] == degree.max()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_renumbered_paths_are_the_paths_of_before(seed):
    """Ids in are ids out, and the route is the very one the search in entity order finds:
    same entities, same links, same cost, for every pair."""
    n, pairs, weights = star_and_chains(seed)
    renumbered, _ = adjacency(n, pairs, weights)
    plain, _ = adjacency(n, pairs, weights)
    plain.bfs_csr = identity(plain)
    rng = np.random.default_rng(seed)
    for s, t in rng.integers(0, n, (300, 2)).tolist():
        a, b = bfs_route(renumbered, s, t), bfs_route(plain, s, t)
        assert a == b, (s, t)
    assert not np.array_equal(renumbered.bfs_csr[2], identity(renumbered)[2])


def test_long_paths_and_threads():
    """A path of any length comes back whole; searches from several threads at once on one
    adjacency (the BFS takes no lock: it holds the GIL) each get their own answer."""
    n = 3000
    pairs = [(i, i + 1) for i in range(n - 1)] + [(0, 2000)]
    adj, m = adjacency(n, pairs, [1.0] * len(pairs))
    route = bfs_route(adj, 100, 2999)
    assert route.nodes == [*range(100, -1, -1), *range(2000, 3000)]
    assert len(route.links) == len(route.nodes) - 1 == 1100 and route.cost == 1100.0
    hops = shortest_path(m, unweighted=True, directed=False, indices=list(range(0, n, 97)))
    wrong = []

    def ask(seed):
        rng = np.random.default_rng(seed)
        for _ in range(300):
            i, t = int(rng.integers(0, len(hops))), int(rng.integers(0, n))
            got = bfs_route(adj, i * 97, t)
            if len(got.nodes) - 1 != hops[i, t] or got.nodes[0] != i * 97 or got.nodes[-1] != t:
                wrong.append((i * 97, t))
            strongest_path(adj, i * 97, t)

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not wrong
    with adj.scratch() as w:
        assert not w.bfs_seen.any()
