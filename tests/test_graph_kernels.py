"""The compiled searches on random graphs: exact against scipy, and they leave their scratch
arrays as they found them (the next search depends on it)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, shortest_path

from takedown.case.graph.adjacency import Adjacency, strongest_path
from takedown.case.graph.adjacency import shortest_path as bfs_route
from takedown.case.graph.kernels import bidirectional_bfs


def adjacency(n, pairs, weights):
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
    )
    return adj, m


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
    assert adj._bfs is not bidirectional_bfs
    assert bfs_route(adj, 2, 2).nodes == [2] and bfs_route(adj, 2, 2).links == []
