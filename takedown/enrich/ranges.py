"""Sorted range tables over the IPv4 and IPv6 address spaces, searched with numpy.

A table is a *partition* of one address space: sorted interval starts (the first is 0) and, per
interval, a row of int32 values (``-1`` = nothing known). Looking an address up is one
``numpy.searchsorted``; no interval ends are stored because gaps are intervals too.

IPv4 keys are ``uint32``. IPv6 keys are 128-bit, held as two ``uint64`` halves (``hi``, ``lo``):
the search runs ``searchsorted`` on ``hi`` and settles ties on ``lo`` with a short vectorised
binary search over only the addresses whose ``hi`` equals an interval start's ``hi``.

Build-time helpers (prefix ends, last-start-wins truncation, longest-prefix-match flattening,
overlaying two tables) work on the same (hi, lo) pairs for both families; IPv4 uses ``hi = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "U64",
    "Partition",
    "prefix_last",
    "search_u32",
    "search_u128",
    "truncate_at_next_start",
    "u128_add1",
    "u128_le",
    "u128_lt",
]

U64 = NDArray[np.uint64]
I32 = NDArray[np.int32]
IntP = NDArray[np.intp]

_ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def u128_lt(a_hi: U64, a_lo: U64, b_hi: U64, b_lo: U64) -> NDArray[np.bool_]:
    """Element-wise ``a < b`` for 128-bit values held as (hi, lo) halves."""
    out: NDArray[np.bool_] = (a_hi < b_hi) | ((a_hi == b_hi) & (a_lo < b_lo))
    return out


def u128_le(a_hi: U64, a_lo: U64, b_hi: U64, b_lo: U64) -> NDArray[np.bool_]:
    """Element-wise ``a <= b`` for 128-bit values held as (hi, lo) halves."""
    out: NDArray[np.bool_] = (a_hi < b_hi) | ((a_hi == b_hi) & (a_lo <= b_lo))
    return out


def u128_add1(hi: U64, lo: U64) -> tuple[U64, U64, NDArray[np.bool_]]:
    """``x + 1`` with carry; the third result flags a wrap past 2**128 - 1."""
    lo1 = lo + np.uint64(1)
    carry = lo1 == 0
    hi1 = hi + carry.astype(np.uint64)
    overflow = carry & (hi1 == 0)
    return hi1, lo1, overflow


def u128_sub1(hi: U64, lo: U64) -> tuple[U64, U64]:
    """``x - 1`` with borrow (callers guarantee ``x > 0``)."""
    borrow = lo == 0
    return hi - borrow.astype(np.uint64), lo - np.uint64(1)


def prefix_last(hi: U64, lo: U64, plen: NDArray[np.integer], bits: int) -> tuple[U64, U64]:
    """Last address of each prefix ``(hi, lo)/plen`` in a space of ``bits`` (32 or 128) bits.

    IPv4 prefixes sit in ``lo`` with ``hi = 0``.
    """
    host = bits - plen.astype(np.int64)  # host bits, 0..bits
    if bits == 32:
        mask = (np.uint64(1) << host.astype(np.uint64)) - np.uint64(1)
        return hi.copy(), lo | mask
    host_lo = np.clip(host, 0, 64).astype(np.uint64)
    host_hi = np.clip(host - 64, 0, 64).astype(np.uint64)
    # (1 << 64) - 1 cannot be shifted out in uint64: handle the full half separately.
    mask_lo = np.where(
        host_lo >= 64, _ALL_ONES, (np.uint64(1) << np.minimum(host_lo, 63)) - np.uint64(1)
    )
    mask_hi = np.where(
        host_hi >= 64, _ALL_ONES, (np.uint64(1) << np.minimum(host_hi, 63)) - np.uint64(1)
    )
    return hi | mask_hi.astype(np.uint64), lo | mask_lo.astype(np.uint64)


_SORT_FIRST = 4096  # from this many queries on, sort them first (cache-friendly search)


def search_u32(starts: NDArray[np.uint32], q: NDArray[np.uint32]) -> IntP:
    """Index of the last start ``<= q`` (``-1`` when ``q`` is below every start).

    Large batches are sorted first (value and position packed in one uint64, one ``np.sort``):
    a search over sorted keys walks the table in order instead of missing cache each time.
    """
    if q.shape[0] < _SORT_FIRST:
        return np.searchsorted(starts, q, side="right").astype(np.intp) - 1
    packed = (q.astype(np.uint64) << np.uint64(32)) | np.arange(q.shape[0], dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64(0xFFFF_FFFF)).astype(np.intp)
    found = np.searchsorted(starts, (packed >> np.uint64(32)).astype(np.uint32), side="right")
    out = np.empty(q.shape[0], np.intp)
    out[order] = found - 1
    return out


def search_u128(s_hi: U64, s_lo: U64, q_hi: U64, q_lo: U64) -> IntP:
    """Index of the last (s_hi, s_lo) ``<=`` (q_hi, q_lo); starts sorted ascending.

    One ``searchsorted`` on the high halves; queries whose high half equals a start's high half
    are settled by a vectorised binary search on the low halves within that tie block.
    """
    n = s_hi.shape[0]
    idx = np.searchsorted(s_hi, q_hi, side="right").astype(np.intp) - 1
    if n == 0 or q_hi.shape[0] == 0:
        return idx
    safe = np.maximum(idx, 0)
    need = (idx >= 0) & (s_hi[safe] == q_hi) & (s_lo[safe] > q_lo)
    if not need.any():
        return idx
    qi = np.flatnonzero(need)
    lo_b = np.searchsorted(s_hi, q_hi[qi], side="left").astype(np.intp)
    hi_b = idx[qi] + 1
    ql = q_lo[qi]
    while True:
        active = lo_b < hi_b
        if not active.any():
            break
        mid = (lo_b + hi_b) // 2
        go = active & (s_lo[np.minimum(mid, n - 1)] <= ql)
        lo_b = np.where(go, mid + 1, lo_b)
        hi_b = np.where(active & ~go, mid, hi_b)
    idx[qi] = lo_b - 1
    return idx


def truncate_at_next_start(hi: U64, lo: U64, last_hi: U64, last_lo: U64) -> tuple[U64, U64, int]:
    """Cut each range so it ends before the next one starts (starts sorted, distinct).

    This is the "last start wins" reading of a sorted range list (what a bisect-on-starts
    lookup does). Returns the new last addresses and how many ranges were cut.
    """
    if hi.shape[0] < 2:
        return last_hi.copy(), last_lo.copy(), 0
    nxt_hi, nxt_lo = hi[1:], lo[1:]
    cut = u128_le(nxt_hi, nxt_lo, last_hi[:-1], last_lo[:-1])
    before_hi, before_lo = u128_sub1(nxt_hi, nxt_lo)
    new_hi = last_hi.copy()
    new_lo = last_lo.copy()
    new_hi[:-1] = np.where(cut, before_hi, last_hi[:-1])
    new_lo[:-1] = np.where(cut, before_lo, last_lo[:-1])
    return new_hi, new_lo, int(cut.sum())


def _sort_unique(hi: U64, lo: U64) -> tuple[U64, U64]:
    order = np.lexsort((lo, hi))
    hi, lo = hi[order], lo[order]
    if hi.shape[0] == 0:
        return hi, lo
    keep = np.ones(hi.shape[0], dtype=bool)
    keep[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    return hi[keep], lo[keep]


def _boundaries(
    hi: U64, lo: U64, last_hi: U64, last_lo: U64, bits: int
) -> tuple[U64, U64, U64, U64, NDArray[np.bool_]]:
    """All interval starts of the partition induced by ranges, plus each range's end+1."""
    end_hi, end_lo, overflow = u128_add1(last_hi, last_lo)
    if bits == 32:
        overflow = overflow | (end_lo > np.uint64(0xFFFF_FFFF))
    b_hi = np.concatenate([np.zeros(1, np.uint64), hi, end_hi[~overflow]])
    b_lo = np.concatenate([np.zeros(1, np.uint64), lo, end_lo[~overflow]])
    b_hi, b_lo = _sort_unique(b_hi, b_lo)
    return b_hi, b_lo, end_hi, end_lo, overflow


@dataclass(frozen=True)
class Partition:
    """Interval starts (sorted, first = 0) and a (n, k) int32 value matrix, for one family."""

    bits: int  # 32 or 128
    hi: U64
    lo: U64
    values: I32

    def __len__(self) -> int:
        return int(self.hi.shape[0])

    @property
    def width(self) -> int:
        """Number of value columns."""
        return int(self.values.shape[1])

    @classmethod
    def empty(cls, bits: int, width: int = 1) -> Partition:
        """The whole space as one interval with nothing known."""
        z = np.zeros(1, np.uint64)
        return cls(bits, z, z.copy(), np.full((1, width), -1, np.int32))

    @classmethod
    def from_disjoint(
        cls, bits: int, hi: U64, lo: U64, last_hi: U64, last_lo: U64, rows: I32
    ) -> Partition:
        """Partition from disjoint ranges ``[start, last]`` carrying ``rows`` (one column)."""
        b_hi, b_lo, _, _, _ = _boundaries(hi, lo, last_hi, last_lo, bits)
        values = np.full((b_hi.shape[0], 1), -1, np.int32)
        if hi.shape[0]:
            at = search_u128(b_hi, b_lo, hi, lo)
            values[at, 0] = rows
        return cls(bits, b_hi, b_lo, values).compact()

    @classmethod
    def from_prefixes(
        cls, bits: int, hi: U64, lo: U64, plen: NDArray[np.integer], rows: I32
    ) -> Partition:
        """Longest-prefix-match partition of possibly nested prefixes (later duplicates win)."""
        plen = plen.astype(np.int16)
        last_hi, last_lo = prefix_last(hi, lo, plen, bits)
        b_hi, b_lo, end_hi, end_lo, overflow = _boundaries(hi, lo, last_hi, last_lo, bits)
        m = b_hi.shape[0]
        values = np.full(m, -1, np.int32)
        if hi.shape[0] == 0:
            return cls(bits, b_hi, b_lo, values[:, None])
        first_idx = search_u128(b_hi, b_lo, hi, lo)
        end_idx = np.where(overflow, m, search_u128(b_hi, b_lo, end_hi, end_lo)).astype(np.intp)
        # Shortest prefixes first, so longer (more specific) ones paint over them.
        for length in np.unique(plen):
            sel = np.flatnonzero(plen == length)
            # Same-length prefixes are disjoint unless duplicated: keep the last of duplicates.
            _, last_of = np.unique(first_idx[sel][::-1], return_index=True)
            sel = sel[::-1][last_of]
            diff = np.zeros(m + 1, np.int64)
            np.add.at(diff, first_idx[sel], rows[sel].astype(np.int64) + 1)
            np.add.at(diff, end_idx[sel], -(rows[sel].astype(np.int64) + 1))
            paint = np.cumsum(diff[:m])
            values = np.where(paint != 0, (paint - 1).astype(np.int32), values)
        return cls(bits, b_hi, b_lo, values[:, None]).compact()

    def overlay(self, other: Partition) -> Partition:
        """Common refinement of two partitions: value columns side by side."""
        if self.bits != other.bits:
            raise ValueError("cannot overlay IPv4 and IPv6 partitions")
        hi, lo = _sort_unique(
            np.concatenate([self.hi, other.hi]), np.concatenate([self.lo, other.lo])
        )
        a = self.values[search_u128(self.hi, self.lo, hi, lo)]
        b = other.values[search_u128(other.hi, other.lo, hi, lo)]
        return Partition(self.bits, hi, lo, np.hstack([a, b])).compact()

    def compact(self) -> Partition:
        """Merge neighbouring intervals that carry the same values."""
        if len(self) < 2:
            return self
        keep = np.ones(len(self), dtype=bool)
        keep[1:] = (self.values[1:] != self.values[:-1]).any(axis=1)
        if keep.all():
            return self
        return Partition(self.bits, self.hi[keep], self.lo[keep], self.values[keep])

    def sizes(self) -> NDArray[np.float64]:
        """Number of addresses in each interval (float64: IPv6 sizes exceed 2**64)."""
        two64 = float(2**64)
        start = self.hi.astype(np.float64) * two64 + self.lo.astype(np.float64)
        space = float(2**self.bits)
        end = np.append(start[1:], space)
        return end - start

    def lookup(self, hi: U64, lo: U64) -> I32:
        """Value rows for addresses ``(hi, lo)`` (IPv4: ``hi`` ignored, ``lo`` < 2**32)."""
        if self.bits == 32:
            idx = search_u32(self.lo.astype(np.uint32), lo.astype(np.uint32))
        else:
            idx = search_u128(self.hi, self.lo, hi, lo)
        return self.values[idx]


@dataclass(frozen=True)
class FamilyTable:
    """A frozen partition ready for the hot path.

    IPv4 starts are pre-cast to uint32; a two-column value matrix is also viewed as one int64
    per interval, so fetching both values is a single 1-D ``take``.
    """

    partition: Partition
    starts32: NDArray[np.uint32]
    packed: NDArray[np.int64]

    @classmethod
    def of(cls, partition: Partition) -> FamilyTable:
        """Wrap a partition (of one or two value columns)."""
        starts32 = (
            partition.lo.astype(np.uint32) if partition.bits == 32 else np.zeros(0, np.uint32)
        )
        values = np.ascontiguousarray(partition.values, dtype=np.int32)
        if values.shape[1] == 1:
            values = np.hstack([values, np.full_like(values, -1)])
        if values.shape[1] != 2:
            raise ValueError("FamilyTable holds one or two value columns")
        packed = values.view(np.int64)[:, 0]
        return cls(partition, np.ascontiguousarray(starts32), packed)

    def lookup_packed(self, hi: U64, lo: U64) -> NDArray[np.int64]:
        """Both values of each address's interval as one int64 (view as int32 pairs)."""
        p = self.partition
        n = lo.shape[0]
        if n < _SORT_FIRST:
            if p.bits == 128:
                return self.packed.take(search_u128(p.hi, p.lo, hi, lo))
            return self.packed.take(search_u32(self.starts32, lo.astype(np.uint32)))
        # Sort the queries first: the search then walks the table in order and the value
        # fetch reads it sequentially; the results are put back in query order at the end.
        got = np.empty(n, np.int64)
        if p.bits == 128:
            if n < 1 << 20:  # sort on the top 44 bits, the position in the low 20: one np.sort
                key = (hi & ~np.uint64(0xF_FFFF)) | np.arange(n, dtype=np.uint64)
                key.sort()
                order = (key & np.uint64(0xF_FFFF)).astype(np.intp)
            else:
                order = np.argsort(hi, kind="stable")
            got[order] = self.packed.take(search_u128(p.hi, p.lo, hi[order], lo[order]))
            return got
        key = (lo << np.uint64(32)) | np.arange(n, dtype=np.uint64)
        key.sort()
        found = np.searchsorted(self.starts32, (key >> np.uint64(32)).astype(np.uint32), "right")
        got[(key & np.uint64(0xFFFF_FFFF)).astype(np.intp)] = self.packed.take(found - 1)
        return got

    def lookup(self, hi: U64, lo: U64) -> I32:
        """Value rows (n, 2) for addresses of this family."""
        out: I32 = self.lookup_packed(hi, lo).view(np.int32).reshape(lo.shape[0], 2)
        return out
