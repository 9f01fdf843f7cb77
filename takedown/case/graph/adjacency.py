"""The graph as a CSR adjacency (numpy), cached per graph version, and the path searches.

Paths ignore direction: evidence links a domain to its registrant whichever way the link was
written. Parallel links between two entities collapse to the strongest one for the search
(``link`` names it); ``explain`` lists all of them. Links with confidence 0 are not usable
steps (someone asserted they are false); unknown confidence counts as ``UNKNOWN_PRIOR``.

* shortest: bidirectional breadth-first search (``kernels.py``), a level at a time from the
  side with the smaller frontier, stopping at the first entity both sides have seen; it runs
  on a copy of the CSR with the entities renumbered hubs first (``kernels.renumber``: ids are
  mapped in and out inside the kernel, the path found is the same);
* strongest: the path with the largest product of confidences, i.e. the least sum of
  ``-log(p)``: bidirectional Dijkstra (``kernels.py``).

Both are compiled and touch only what they explore, so a query costs what it explores, not
the size of the graph. The CSR is built once per graph version from DuckDB and kept as
``.npy`` files that every later process memory-maps.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix

from takedown.case.graph import kernels
from takedown.case.graph.kernels import (
    BIT_ROWS,
    FIELDS,
    QUEUE_ROWS,
    bidirectional_bfs,
    bidirectional_dijkstra,
    renumber,
)
from takedown.case.graph.model import ENTITY_KINDS, LINK_KINDS, UNKNOWN_PRIOR
from takedown.case.graph.store import GraphStore

__all__ = ["KIND_CODES", "Adjacency", "Route", "load_adjacency", "shortest_path", "strongest_path"]

log = logging.getLogger(__name__)

KIND_CODES = {kind: i for i, kind in enumerate(ENTITY_KINDS)}
LINK_CODES = {kind: i for i, kind in enumerate(LINK_KINDS)}
# Links that put two things in the same context without saying one controls the other.
CONTEXT_KINDS = ("customer-of", "delegated-to")
_EPS = 1e-6  # per-step cost on top of -log(p): among equally strong paths, the shorter wins

IntArray = npt.NDArray[np.int64]


class _Scratch:
    """Per-entity arrays the kernels use and leave as they found them. The BFS has its own
    (so the two searches do not evict each other's from the processor's caches)."""

    def __init__(self, n: int) -> None:
        n = max(n, 2)
        # Written now (not calloc'd zeros), so no search pays for first touches of pages.
        self.ints = np.full((n, FIELDS), -1, np.int64)
        self.queues = np.full((QUEUE_ROWS, n), -1, np.int64)
        self.dist = np.full((n, 2), np.inf)
        self.bits = np.zeros((BIT_ROWS, n // 8 + 1), np.uint8)
        # The BFS's 'seen' bytes and queue, in one block on 2 MiB pages where the system gives
        # them: the bytes a query reads are scattered over the whole 'seen' array, and with
        # 4 KiB pages each of its pages costs the first search to touch it an address
        # translation miss (about a tenth of a typical query's time, measured).
        seen_len = n // 4 + 1
        at = -(-seen_len // 4096) * 4096
        block = _huge_block(at + (n + 1) * 32)
        self.bfs_seen = block[:seen_len]
        self.bfs_queue = block[at:].view(np.int64).reshape(2, n + 1, 2)
        self.bfs_queue.fill(-1)
        self.bfs_seen[:] = 0


_HUGE = 2 << 20  # bytes in a transparent huge page (x86-64, arm64 with 4 KiB base pages)


def _huge_block(size: int) -> npt.NDArray[np.uint8]:
    """``size`` zero bytes starting on a 2 MiB boundary of anonymous memory the kernel is asked
    (``MADV_HUGEPAGE``) to back with huge pages; plain numpy memory when small or unsupported."""
    if size < _HUGE or not hasattr(mmap, "MADV_HUGEPAGE") or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros(size, np.uint8)
    # Private: shared anonymous memory is shmem, which has its own (usually off) huge pages.
    region = mmap.mmap(-1, size + _HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(OSError):  # huge pages compiled out: 4 KiB pages it is
        region.madvise(mmap.MADV_HUGEPAGE)
    whole = np.frombuffer(region, np.uint8)
    start = -whole.ctypes.data % _HUGE
    return whole[start : start + size]


@dataclass
class Adjacency:
    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int32]
    weight: npt.NDArray[np.float64]
    link: npt.NDArray[np.int64]
    link_kind: npt.NDArray[np.int8]
    kind: npt.NDArray[np.int8]
    version: int
    # The CSR renumbered for the BFS (``kernels.renumber``): indptr, indices, rank, entity.
    # Built with the others and cached; computed on first use when not given.
    bfs_csr: tuple[npt.NDArray[np.int64], ...] | None = field(default=None, repr=False)
    _evidence_csr: Any = field(default=None, repr=False)
    _scratch: _Scratch | None = field(default=None, repr=False)
    _bfs: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def scratch(self) -> Iterator[_Scratch]:
        """The search kernels' working arrays (one set per adjacency, one search at a time)."""
        with self._lock:
            yield self._working()

    def _working(self) -> _Scratch:
        if self._scratch is None:
            self._scratch = _Scratch(self.n)
        return self._scratch

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def evidence_csr(self) -> Any:
        """The CSR without context links (a shared provider, registrar or name server says
        nothing about who controls what); candidates are searched on this one."""
        if self._evidence_csr is None:
            context = np.array([LINK_CODES[k] for k in CONTEXT_KINDS], np.int8)
            keep = ~np.isin(self.link_kind, context)
            kept_before = np.zeros(len(keep) + 1, np.int64)
            np.cumsum(keep, out=kept_before[1:])
            indptr = kept_before[self.indptr]
            self._evidence_csr = csr_matrix(
                (
                    np.ascontiguousarray(self.weight[keep], np.float64),
                    np.ascontiguousarray(self.indices[keep], np.int32),
                    indptr.astype(np.int32),
                ),
                shape=(self.n, self.n),
            )
        return self._evidence_csr

    def degree(self, node: int) -> int:
        return int(self.indptr[node + 1] - self.indptr[node])

    def edge(self, u: int, v: int) -> tuple[float, int]:
        """(weight, link id) of the collapsed edge u–v."""
        lo, hi = int(self.indptr[u]), int(self.indptr[u + 1])
        hit = np.flatnonzero(self.indices[lo:hi] == v)
        if not len(hit):
            raise KeyError((u, v))
        pos = lo + int(hit[0])
        return float(self.weight[pos]), int(self.link[pos])


@dataclass
class Route:
    nodes: list[int]
    links: list[int]  # the strongest link of each step
    cost: float  # sum of -log(p) of those links (plus a tiny per-step term)

    @property
    def probability(self) -> float:
        return math.exp(-(self.cost - _EPS * len(self.links)))


_ARRAYS = ("indptr", "indices", "weight", "link", "link_kind", "kind")
_BFS_ARRAYS = ("bfs_indptr", "bfs_indices", "bfs_rank", "bfs_entity")


def _cache_root(store: GraphStore) -> Path:
    return store.home.root / "case" / "graph-cache"


def _build(store: GraphStore) -> dict[str, np.ndarray[Any, Any]]:
    con = store.con
    n = int(store.scalar("SELECT coalesce(max(id) + 1, 0) FROM entities"))
    prior = UNKNOWN_PRIOR / 100.0
    kinds_sql = "[" + ", ".join(f"'{k}'" for k in LINK_KINDS) + "]"
    pairs = con.sql(
        f"""
        SELECT a, b, min(struct_pack(w := w, id := id, k := k)) AS best FROM (
            SELECT least(src, dst) AS a, greatest(src, dst) AS b, id,
                   list_position({kinds_sql}, kind) - 1 AS k,
                   -ln(CASE WHEN confidence IS NULL THEN {prior}
                            ELSE least(confidence, 100) / 100.0 END) + {_EPS} AS w
            FROM links WHERE src <> dst AND (confidence IS NULL OR confidence > 0)
        ) GROUP BY a, b
        """
    ).to_arrow_table()
    a = pairs.column("a").to_numpy().astype(np.int64)
    b = pairs.column("b").to_numpy().astype(np.int64)
    best = pairs.column("best").combine_chunks()
    w = best.field("w").to_numpy(zero_copy_only=False).astype(np.float64)
    lid = best.field("id").to_numpy(zero_copy_only=False).astype(np.int64)
    lk = best.field("k").to_numpy(zero_copy_only=False).astype(np.int8)
    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=n) if n else np.zeros(0, np.int64)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    kinds = np.full(n, -1, np.int8)
    ent = con.sql("SELECT id, kind FROM entities").to_arrow_table()
    ids = ent.column("id").to_numpy()
    names = ent.column("kind").to_pylist()
    codes = np.fromiter((KIND_CODES.get(k, -1) for k in names), np.int8, count=len(names))
    kinds[ids] = codes
    indices = cols[order].astype(np.int32)
    return {
        "indptr": indptr,
        "indices": indices,
        "weight": np.concatenate([w, w])[order],
        "link": np.concatenate([lid, lid])[order],
        "link_kind": np.concatenate([lk, lk])[order],
        "kind": kinds,
        **dict(zip(_BFS_ARRAYS, renumber(indptr, indices), strict=True)),
    }


def load_adjacency(store: GraphStore, *, mmap: bool = True) -> Adjacency:
    """The adjacency of the store's current version: from the cache, or built and cached.

    ``mmap``: map the cached arrays (a one-off question reads only the pages it touches);
    ``False`` reads them whole, for a process that will ask many (no page faults later).
    """
    version = store.version
    root = _cache_root(store)
    folder = root / f"v{version}"
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    if all((folder / f"{name}.npy").exists() for name in _ARRAYS + _BFS_ARRAYS):
        try:
            mode: Any = "r" if mmap else None
            names = _ARRAYS + _BFS_ARRAYS
            arrays = {n: np.load(folder / f"{n}.npy", mmap_mode=mode) for n in names}
        except (OSError, ValueError) as exc:
            log.warning("adjacency cache %s unreadable (%s); rebuilding", folder, exc)
            arrays = {}
    if not arrays:
        arrays = _build(store)
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", arr)
            try:
                os.replace(tmp, folder)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # another process cached it first
            for old in root.glob("v*"):
                if old.name != folder.name:
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            log.warning("cannot cache the adjacency in %s: %s", root, exc)
    for arr in arrays.values():
        arr.flags.writeable = False  # built or mapped, the kernels see one (read-only) type
    return Adjacency(
        indptr=np.asarray(arrays["indptr"]),
        indices=np.asarray(arrays["indices"]),
        weight=np.asarray(arrays["weight"]),
        link=np.asarray(arrays["link"]),
        link_kind=np.asarray(arrays["link_kind"]),
        kind=np.asarray(arrays["kind"]),
        version=version,
        bfs_csr=tuple(np.asarray(arrays[name]) for name in _BFS_ARRAYS),
    )


def neighbours(adj: Adjacency, frontier: IntArray) -> tuple[IntArray, IntArray]:
    """All (neighbour, from) pairs of the frontier's nodes, gathered without a Python loop."""
    starts = adj.indptr[frontier]
    lens = adj.indptr[frontier + 1] - starts
    total = int(lens.sum())
    if total == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    ends = np.cumsum(lens)
    offsets = np.repeat(starts - (ends - lens), lens) + np.arange(total, dtype=np.int64)
    return adj.indices[offsets].astype(np.int64), np.repeat(frontier, lens)


def _route(adj: Adjacency, nodes: npt.NDArray[np.int64], edges: IntArray) -> Route | None:
    if not len(nodes):
        return None
    return Route(nodes.tolist(), adj.link[edges].tolist(), float(adj.weight[edges].sum()))


def _bind_bfs(adj: Adjacency) -> tuple[Any, int, Any]:
    """The compiled BFS bound to this adjacency: (``bidirectional_bfs``'s entry point, the
    address of its context, what keeps the arrays the context points into alive). Called
    through numba's compiled entry point, without its dispatch (which types every argument on
    every call); the dispatcher is the fallback should numba ever stop exposing it."""
    with adj._lock:
        if adj._bfs is not None:
            return adj._bfs  # type: ignore[no-any-return]  # bound by another thread
        w = adj._working()
        indptr = np.ascontiguousarray(adj.indptr, np.int64)
        indices = np.ascontiguousarray(adj.indices, np.int32)
        if adj.bfs_csr is None:
            adj.bfs_csr = renumber(indptr, indices)
        new_indptr, new_indices, rank, entity = adj.bfs_csr
        words: dict[int, npt.NDArray[Any]] = {
            kernels.CTX_INDPTR: np.ascontiguousarray(new_indptr, np.int64),
            kernels.CTX_INDICES: np.ascontiguousarray(new_indices, np.int32),
            kernels.CTX_RANK: np.ascontiguousarray(rank, np.int64),
            kernels.CTX_ENTITY: np.ascontiguousarray(entity, np.int64),
            kernels.CTX_ROWS: indptr,
            kernels.CTX_LINK: np.ascontiguousarray(adj.link, np.int64),
            kernels.CTX_WEIGHT: np.ascontiguousarray(adj.weight, np.float64),
            kernels.CTX_QUEUE: w.bfs_queue,
            kernels.CTX_SEEN: w.bfs_seen,
        }
        ctx = np.zeros(kernels.CTX_WORDS + 8, np.int64)
        ctx = ctx[-ctx.ctypes.data % 64 // 8 :][: kernels.CTX_WORDS]  # from a cache line's start
        ctx[kernels.CTX_N], ctx[kernels.CTX_M] = adj.n, len(indices)
        for word, arr in words.items():
            ctx[word] = arr.ctypes.data
        address = int(ctx.ctypes.data)
        bidirectional_bfs(address, 0, 0)  # compiles (or loads) the kernel
        sig = (bidirectional_bfs.typeof_pyval(address),) * 3
        overload = bidirectional_bfs.overloads.get(sig)
        entry = getattr(overload, "entry_point", None) or bidirectional_bfs
        bound = (entry, address, (ctx, words))
        adj._bfs = bound
        return bound


def shortest_path(adj: Adjacency, s: int, t: int) -> Route | None:
    """Fewest steps from s to t (bidirectional BFS), or None when they are not connected."""
    # Kept lean: a query between nearby entities takes tens of microseconds, and each extra
    # Python step costs microseconds when its code and data are out of the processor's caches.
    # No lock: the kernel holds the GIL, and the path comes back in lists of its own.
    bfs = adj._bfs or _bind_bfs(adj)
    found = bfs[0](bfs[1], s, t)
    if found[0]:
        return Route(*found)
    if found[2] < 0:
        raise IndexError(f"no entity {s if not 0 <= s < adj.n else t} in this graph")
    return None


def strongest_path(adj: Adjacency, s: int, t: int) -> Route | None:
    """Largest product of confidences from s to t (least sum of -log p, bidirectional
    Dijkstra), or None when they are not connected."""
    with adj._lock:
        w = adj._working()
        nodes, edges = bidirectional_dijkstra(
            adj.indptr, adj.indices, adj.weight, s, t, w.ints, w.queues, w.dist, w.bits
        )
    return _route(adj, nodes, edges)
