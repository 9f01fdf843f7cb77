"""The two path searches, compiled (numba): bidirectional BFS and bidirectional Dijkstra.

Both touch only what they explore: their scratch arrays (one per entity, allocated once per
adjacency) are reset entry by entry afterwards, so a query between two nearby entities of a
graph of millions costs microseconds, not a pass over every entity. Compiled code is cached
on disk (``$TAKEDOWN_CACHE_DIR``/``~/.cache/takedown``/numba) after the first use.
"""

from __future__ import annotations

import os

from takedown.enrich.tablecache import cache_root

_root = cache_root()
if _root is not None and "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = str(_root / "numba")

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from llvmlite import ir  # type: ignore[import-untyped]  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.core import cgutils as _cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402
from numba.np.numpy_support import carray  # noqa: E402

__all__ = ["bidirectional_bfs", "bidirectional_dijkstra", "renumber"]

_INF = np.inf
Arr = npt.NDArray[Any]


# Columns of the per-entity int64 scratch array (-1 when not in use): one entity's fields
# share a cache line.
PRED_S, PRED_T, EDGE_S, EDGE_T = range(4)
FIELDS = 4
# Rows of the bit array (one bit per entity): seen from s, from t; settled from s, from t.
SEEN_S, SEEN_T, DONE_S, DONE_T = range(4)
BIT_ROWS = 4
# Rows of the Dijkstra's queue array (as long as there are entities): the entities it touched.
QUEUE_S = 0
QUEUE_ROWS = 1


@njit(cache=True, nogil=True)
def _path(ints: Arr, s: int, t: int, meet: int) -> tuple[Arr, Arr]:  # pragma: no cover
    """Entities s…meet…t and the CSR positions of the edges between them."""
    head = 0
    node = meet
    while node != s:
        node = ints[node, PRED_S]
        head += 1
    tail = 0
    node = meet
    while node != t:
        node = ints[node, PRED_T]
        tail += 1
    nodes = np.empty(head + tail + 1, np.int64)
    edges = np.empty(head + tail, np.int64)
    node = meet
    k = head
    nodes[k] = node
    while node != s:
        edges[k - 1] = ints[node, EDGE_S]
        node = ints[node, PRED_S]
        k -= 1
        nodes[k] = node
    node = meet
    k = head
    while node != t:
        edges[k] = ints[node, EDGE_T]
        node = ints[node, PRED_T]
        k += 1
        nodes[k] = node
    return nodes, edges


@njit(cache=True, nogil=True, inline="always")
def _has(bits: Arr, row: int, v: int) -> bool:  # pragma: no cover - compiled
    return bool((bits[row, v >> 3] >> (v & 7)) & 1)


@njit(cache=True, nogil=True, inline="always")
def _mark(bits: Arr, row: int, v: int) -> None:  # pragma: no cover - compiled
    bits[row, v >> 3] |= np.uint8(1 << (v & 7))


@njit(cache=True, nogil=True, inline="always")
def _unmark(bits: Arr, row: int, v: int) -> None:  # pragma: no cover - compiled
    bits[row, v >> 3] &= np.uint8(~(1 << (v & 7)) & 0xFF)


cgutils: Any = _cgutils  # untyped


def _prefetch_intrinsic(typingctx: Any, arr: Any, idx: Any) -> Any:  # pragma: no cover
    """Asks the processor to fetch ``arr[idx]`` into its caches (never faults, even out of
    bounds): the next frontier entities' CSR rows are read while this one's are scanned."""
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read, keep in all cache levels, data
        flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
        return context.get_dummy_value()

    return sig, codegen


_prefetch: Any = intrinsic(_prefetch_intrinsic)


def _address_intrinsic(typingctx: Any, addr: Any) -> Any:  # pragma: no cover - compiled
    """An int64 address as a pointer, for ``numba.carray`` (see ``bidirectional_bfs``)."""
    sig = types.voidptr(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return sig, codegen


_address: Any = intrinsic(_address_intrinsic)
_LOW = 0xFFFFFFFF  # a BFS queue entry's first word: (parent's queue position << 32) | entity
# The words of the BFS context: an int64 array holding the sizes and the addresses of the arrays
# ``bidirectional_bfs`` searches (see there), written by ``adjacency._bind_bfs``.
# What the search needs fills the first cache line; what the path's last steps need, the second.
CTX_N, CTX_M, CTX_INDPTR, CTX_INDICES, CTX_RANK, CTX_QUEUE, CTX_SEEN, CTX_ENTITY = range(8)
CTX_ROWS, CTX_LINK, CTX_WEIGHT = range(8, 11)
CTX_WORDS = 11


@njit(cache=True)
def renumber(indptr: Arr, indices: Arr) -> tuple[Arr, Arr, Arr, Arr]:  # pragma: no cover
    """The CSR with its entities renumbered for the BFS's caches: (indptr, indices, rank: new
    number of each entity, entity: the entity of each new number). Each row keeps its order,
    so a search visits the same entities in the same order as on the original CSR.

    Hubs first (most links first), each followed by its neighbours not yet numbered: a hub's
    row then names a few runs of numbers, and the 'seen' bits its scan tests share cache lines
    (a typical query touches a third as many of them). Build time: a pass over the links.
    """
    n = len(indptr) - 1
    rank = np.full(n, -1, np.int64)
    k = 0
    for h in np.argsort(indptr[:-1] - indptr[1:], kind="mergesort"):  # most links first
        if rank[h] < 0:
            rank[h] = k
            k += 1
        for e in range(indptr[h], indptr[h + 1]):
            v = indices[e]
            if rank[v] < 0:
                rank[v] = k
                k += 1
    entity = np.empty(n, np.int64)
    entity[rank] = np.arange(n)
    new_indptr = np.empty(n + 1, np.int64)
    new_indptr[0] = 0
    for r in range(n):
        u = entity[r]
        new_indptr[r + 1] = new_indptr[r] + indptr[u + 1] - indptr[u]
    new_indices = np.empty(len(indices), np.int32)
    for r in range(n):
        u = entity[r]
        p = new_indptr[r]
        for e in range(indptr[u], indptr[u + 1]):
            new_indices[p] = rank[indices[e]]
            p += 1
    return new_indptr, new_indices, rank, entity


@njit(cache=True, nogil=True, inline="always")
def _u(i: int) -> int:  # pragma: no cover - compiled
    """An index known not to be negative, as numba's unsigned type: indexing with it skips the
    test for Python's negative indices (three instructions per access in the hot loop)."""
    return np.uint64(i)  # type: ignore[return-value]


@njit(cache=True, nogil=True, inline="always")
def _ahead(indptr: Arr, indices: Arr, seen: Arr, u: int) -> None:  # pragma: no cover
    """Prefetches the 'seen' bytes of u's first 16 neighbours (the scan of a row prefetches
    16 places ahead within it, so a short row would otherwise get none)."""
    p = indptr[_u(u)]
    for e in range(p, min(p + 16, indptr[_u(u + 1)])):
        _prefetch(seen, indices[_u(e)] >> 2)


@njit(cache=True, nogil=True, inline="always")
def _search(
    indptr: Arr, indices: Arr, s: int, t: int, qs: Arr, qt: Arr, seen: Arr
) -> tuple[int, int, int, int]:  # pragma: no cover - compiled
    """Meet-in-the-middle BFS: (place of the meeting entity in s's queue, in t's queue, lengths
    of the two queues); places -1 when s and t are not connected. ``seen`` is left dirty."""
    # Both ends' rows at once (the first two levels would otherwise wait for them in turn).
    _prefetch(indptr, s)
    _prefetch(indptr, t)
    _prefetch(indices, indptr[_u(s)])
    _prefetch(indices, indptr[_u(t)])
    seen[s >> 2] |= np.uint8(1 << ((s & 3) * 2))
    seen[t >> 2] |= np.uint8(2 << ((t & 3) * 2))
    qs[0, 0] = s
    qt[0, 0] = t
    head_s, tail_s, head_t, tail_t = 0, 1, 0, 1
    meet_side, meet_pos = -1, 0
    if s == t:
        meet_side = 0
    # Before each level is expanded, the two searched sets are disjoint (a common entity is
    # caught the moment the later search reaches it), so d(s, t) > depth_s + depth_t; the first
    # entity the expansion finds in the other set is therefore on a shortest path, and the
    # search stops there, without finishing the level (a hub's links are seldom all read).
    while meet_side < 0 and head_s < tail_s and head_t < tail_t:
        # Expand one level of the side with the smaller frontier (as networkx does: counting
        # links instead reads fewer on average but far more when a hub ends a frontier).
        if tail_s - head_s <= tail_t - head_t:
            side, q, head, tail = 0, qs, head_s, tail_s
        else:
            side, q, head, tail = 1, qt, head_t, tail_t
        mine, theirs = 1 << side, 2 >> side
        end = tail
        # Each entity's row is three cache misses away (indptr, then indices, then the 'seen'
        # bytes of its neighbours): the entities a few places ahead get each step early.
        for j in range(head, min(head + 4, end)):
            _prefetch(indices, indptr[_u(q[_u(j), 0] & _LOW)])
        for i in range(head, end):
            if i + 8 < end:
                _prefetch(indptr, q[_u(i + 8), 0] & _LOW)
            if i + 4 < end:
                _prefetch(indices, indptr[_u(q[_u(i + 4), 0] & _LOW)])
            if i + 2 < end:
                _ahead(indptr, indices, seen, q[_u(i + 2), 0] & _LOW)
            u = q[_u(i), 0] & _LOW
            lim = indptr[_u(u + 1)]
            for e in range(indptr[_u(u)], lim):
                if e + 16 < lim:
                    _prefetch(seen, indices[_u(e + 16)] >> 2)
                v = indices[_u(e)]
                byte, shift = _u(v >> 2), (v & 3) * 2
                bits = seen[byte] >> shift
                if bits & mine:
                    continue
                seen[byte] |= np.uint8(mine << shift)
                q[_u(tail), 0] = (i << 32) | v
                q[_u(tail), 1] = e
                if tail - end < 8:  # the next level starts small: fetch its first rows now
                    _prefetch(indptr, v)
                tail += 1
                if bits & theirs:
                    meet_side, meet_pos = side, tail - 1
                    break
            if meet_side >= 0:
                break
        if side == 0:
            head_s, tail_s = end, tail
        else:
            head_t, tail_t = end, tail
    if meet_side < 0:
        return -1, -1, tail_s, tail_t
    # The meeting entity's place in the other side's queue: one scan, once per search.
    q, other = (qt, tail_t) if meet_side == 0 else (qs, tail_s)
    meet = (qs if meet_side == 0 else qt)[meet_pos, 0] & _LOW
    other_pos = 0
    for i in range(other):
        if q[i, 0] & _LOW == meet:
            other_pos = i
            break
    if meet_side == 0:
        return meet_pos, other_pos, tail_s, tail_t
    return other_pos, meet_pos, tail_s, tail_t


@njit(cache=True, nogil=True, inline="always")
def _hops(q: Arr, pos: int) -> int:  # pragma: no cover - compiled
    k = 0
    while pos != 0:
        pos = q[pos, 0] >> 32
        k += 1
    return k


@njit(cache=True, nogil=True, inline="always")
def _route(
    qs: Arr, qt: Arr, seen: Arr, found: tuple[int, int, int, int]
) -> tuple[list[int], list[int], int]:  # pragma: no cover - compiled
    """(entities s…t, CSR positions of the steps, how many steps the search from s made) of
    the path the search found, empty lists without one; clears ``seen``. Step k's position
    is in the row of entity k when k < that count, of entity k + 1 otherwise."""
    pos_s, pos_t, tail_s, tail_t = found
    head = _hops(qs, pos_s) if pos_s >= 0 else -1
    hops = head + _hops(qt, pos_t) if pos_s >= 0 else -1
    nodes = [0] * (hops + 1)
    edges = [0] * max(hops, 0)
    if hops >= 0:
        i, k = pos_s, head
        nodes[k] = qs[i, 0] & _LOW
        while i != 0:
            edges[k - 1] = qs[i, 1]
            i = qs[i, 0] >> 32
            k -= 1
            nodes[k] = qs[i, 0] & _LOW
        i, k = pos_t, head
        while i != 0:
            edges[k] = qt[i, 1]
            i = qt[i, 0] >> 32
            k += 1
            nodes[k] = qt[i, 0] & _LOW
    for i in range(tail_s):
        seen[(qs[i, 0] & _LOW) >> 2] = 0  # a byte's other marks are queued too
    for i in range(tail_t):
        seen[(qt[i, 0] & _LOW) >> 2] = 0
    return nodes, edges, head


@njit(cache=True)
def bidirectional_bfs(
    ctx: int, s: int, t: int
) -> tuple[list[int], list[int], float]:  # pragma: no cover
    """Meet-in-the-middle BFS for a fewest-links s–t path: (entities s…t, link ids of the
    steps, sum of the steps' weights), or empty lists when s and t are not connected; the sum
    is -1.0 (and the lists empty) when s or t is not an entity of the graph.

    ``ctx`` is the address of an int64 array (``CTX_*`` words, written by
    ``adjacency._bind_bfs``, which keeps the arrays alive) naming the CSR renumbered by
    ``renumber`` (indptr, indices, rank, entity), the original CSR's indptr ("rows"), link
    ids and weights, and the scratch arrays: ``seen`` (uint8, two bits per entity: seen from
    s, from t; 0 on entry and again on return; both bits of an entity share a byte, so a test
    for either reads one cache line) and ``queue`` (int64, 2 × (entities + 1) × 2: per side,
    in order of discovery, ``(parent's queue position << 32) | entity`` and the CSR position
    of the link taken).

    Called from Python, it costs about what it touches: its arguments are three ints (numba
    wraps each array argument in a reference-counted structure, both ways, cache misses
    apiece when cold) and the path comes back as new Python lists. It holds the GIL, which
    makes the scratch arrays this call's alone without a lock.
    """
    c = carray(_address(ctx), CTX_WORDS, np.int64)
    _prefetch(c, CTX_ROWS)
    n, m = c[CTX_N], c[CTX_M]
    if s < 0 or s >= n or t < 0 or t >= n:
        return [0] * 0, [0] * 0, -1.0
    rank = carray(_address(c[CTX_RANK]), n, np.int64)
    indptr = carray(_address(c[CTX_INDPTR]), n + 1, np.int64)
    indices = carray(_address(c[CTX_INDICES]), m, np.int32)
    queue = carray(_address(c[CTX_QUEUE]), (2, n + 1, 2), np.int64)
    seen = carray(_address(c[CTX_SEEN]), n // 4 + 1, np.uint8)
    found = _search(indptr, indices, rank[s], rank[t], queue[0], queue[1], seen)
    nodes, links, head = _route(queue[0], queue[1], seen, found)
    entity = carray(_address(c[CTX_ENTITY]), n, np.int64)
    rows = carray(_address(c[CTX_ROWS]), n + 1, np.int64)
    link = carray(_address(c[CTX_LINK]), m, np.int64)
    weight = carray(_address(c[CTX_WEIGHT]), m, np.float64)
    cost = 0.0
    for k in range(len(links)):  # a renumbered row keeps its order: same offset in the row
        r = nodes[k] if k < head else nodes[k + 1]
        e = rows[entity[r]] + links[k] - indptr[r]
        cost += weight[e]  # summed in path order
        links[k] = link[e]
    for k in range(len(nodes)):
        nodes[k] = entity[nodes[k]]
    return nodes, links, cost


@njit(cache=True, nogil=True, inline="always")
def _push(
    keys: Arr, nodes: Arr, size: int, key: float, node: int
) -> None:  # pragma: no cover - compiled
    i = size
    keys[i] = key
    nodes[i] = node
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        nodes[parent], nodes[i] = nodes[i], nodes[parent]
        i = parent


@njit(cache=True, nogil=True, inline="always")
def _pop(keys: Arr, nodes: Arr, size: int) -> None:  # pragma: no cover - compiled
    """Removes the top (the caller has read it); ``size`` is the size before the pop."""
    last = size - 1
    keys[0] = keys[last]
    nodes[0] = nodes[last]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= last:
            break
        child = left
        if left + 1 < last and keys[left + 1] < keys[left]:
            child = left + 1
        if keys[i] <= keys[child]:
            break
        keys[child], keys[i] = keys[i], keys[child]
        nodes[child], nodes[i] = nodes[i], nodes[child]
        i = child


@njit(cache=True, nogil=True)
def _grow(keys: Arr, nodes: Arr) -> tuple[Arr, Arr]:  # pragma: no cover - compiled
    k2 = np.empty(len(keys) * 2, keys.dtype)
    n2 = np.empty(len(nodes) * 2, nodes.dtype)
    k2[: len(keys)] = keys
    n2[: len(nodes)] = nodes
    return k2, n2


@njit(cache=True, nogil=True)
def bidirectional_dijkstra(
    indptr: Arr,
    indices: Arr,
    weight: Arr,
    s: int,
    t: int,
    ints: Arr,
    queues: Arr,
    dist: Arr,
    bits: Arr,
) -> tuple[Arr, Arr]:  # pragma: no cover - compiled
    """Least-cost s–t path over non-negative weights: (entities, edge positions), or empties.

    ``dist`` (entities × 2) holds inf, ``ints`` -1 and ``bits`` 0 on entry and again on return.
    Stops when the two heaps' tops add up to at least the best path found (the classic rule,
    exact whichever side grows). Once a path is known, an entity is not queued when its
    distance plus the other side's top already reaches it: it could not be on a better path.
    """
    hk_s = np.empty(64, np.float64)
    hn_s = np.empty(64, np.int64)
    hk_t = np.empty(64, np.float64)
    hn_t = np.empty(64, np.int64)
    dist[s, 0] = 0.0
    dist[t, 1] = 0.0
    ints[s, PRED_S] = s
    ints[t, PRED_T] = t
    _mark(bits, SEEN_S, s)
    _mark(bits, SEEN_T, t)
    queues[QUEUE_S, 0] = s
    n_touched = 1
    if t != s:
        queues[QUEUE_S, 1] = t
        n_touched = 2
    _push(hk_s, hn_s, 0, 0.0, s)
    _push(hk_t, hn_t, 0, 0.0, t)
    size_s, size_t = 1, 1
    best = _INF
    meet = -1
    if s == t:
        best, meet = 0.0, s
    while size_s > 0 and size_t > 0:
        if hk_s[0] + hk_t[0] >= best:
            break
        # Grow the side with the smaller heap: where one end sits by a hub, the other end
        # does most of the settling (any order is exact under the stopping rule).
        if size_s <= size_t:
            side, pred, edge, seen, seen_other, done = (
                0,
                PRED_S,
                EDGE_S,
                SEEN_S,
                SEEN_T,
                DONE_S,
            )
            d, u = hk_s[0], hn_s[0]
            _pop(hk_s, hn_s, size_s)
            size_s -= 1
            bound = hk_t[0]
        else:
            side, pred, edge, seen, seen_other, done = (
                1,
                PRED_T,
                EDGE_T,
                SEEN_T,
                SEEN_S,
                DONE_T,
            )
            d, u = hk_t[0], hn_t[0]
            _pop(hk_t, hn_t, size_t)
            size_t -= 1
            bound = hk_s[0]
        if _has(bits, done, u) or d > dist[u, side]:
            continue
        _mark(bits, done, u)
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            nd = d + weight[e]
            reached = _has(bits, seen, v)
            if (not reached or nd < dist[v, side]) and nd + bound < best:
                if not reached:
                    _mark(bits, seen, v)
                    if not _has(bits, seen_other, v):
                        queues[QUEUE_S, n_touched] = v
                        n_touched += 1
                dist[v, side] = nd
                ints[v, pred] = u
                ints[v, edge] = e
                if side == 0:
                    if size_s == len(hk_s):
                        hk_s, hn_s = _grow(hk_s, hn_s)
                    _push(hk_s, hn_s, size_s, nd, v)
                    size_s += 1
                else:
                    if size_t == len(hk_t):
                        hk_t, hn_t = _grow(hk_t, hn_t)
                    _push(hk_t, hn_t, size_t, nd, v)
                    size_t += 1
            if _has(bits, seen_other, v) and _has(bits, seen, v):
                total = dist[v, 0] + dist[v, 1]
                if total < best:
                    best, meet = total, v
    if meet >= 0:
        nodes, edges = _path(ints, s, t, meet)
    else:
        nodes, edges = np.empty(0, np.int64), np.empty(0, np.int64)
    for i in range(n_touched):
        v = queues[QUEUE_S, i]
        dist[v, 0] = _INF
        dist[v, 1] = _INF
        ints[v, PRED_S] = -1
        ints[v, PRED_T] = -1
        ints[v, EDGE_S] = -1
        ints[v, EDGE_T] = -1
        for row in range(BIT_ROWS):
            _unmark(bits, row, v)
    return nodes, edges
