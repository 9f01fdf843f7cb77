"""Vectorised parsing of IP address text (IPv4 and IPv6) from Arrow string arrays.

Accepts exactly what Python's ``ipaddress.ip_address`` accepts for a string: dotted-quad IPv4
without leading zeros; IPv6 in any RFC 4291 text form, with an embedded IPv4 tail and an
optional ``%zone`` (the zone is validated, then ignored). Everything else is invalid; nothing
raises.

How, in three passes, none with a Python loop per address:

1. Strict IPv4 (a regular expression that is exactly ``ipaddress``'s rule) is split on '.'
   and cast, with Arrow's C++ kernels.
2. Plain IPv6 (only hex digits and ':') has its '::' expanded (rows grouped by how many zero
   groups they need, one Arrow replace per group); rows that then have exactly eight groups
   of one to four digits (which is exactly ``ipaddress``'s rule for such text) are decoded
   from the fixed layout with numpy, two aligned reads and SWAR arithmetic per group.
3. Anything else that contains ':' goes to an exact numpy parser: each row's first 48 bytes
   as six uint64 words; byte classes found with SWAR tricks and packed into 48-bit masks per
   row; separator positions from the masks; each field read as the 4 bytes that end it. It is
   the reference for zones, IPv4 tails and malformed text, and is fuzzed against
   ``ipaddress``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from takedown.enrich.ipexact import ParsedIPs, parse_exact

__all__ = ["ParsedIPs", "as_string_array", "parse_ips"]

_ONE_NULL = pa.array([None], pa.string())


def as_string_array(values: pa.Array | pa.ChunkedArray | Sequence[object]) -> pa.Array:
    """One contiguous Arrow string (or large_string / dictionary) array from the input.

    Python sequences may hold ``None`` and non-strings; non-strings and strings that cannot be
    encoded as UTF-8 become nulls (callers mark them with :func:`non_string_mask`).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        t = values.type
        if pa.types.is_dictionary(t):
            return values
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return values
        if pa.types.is_null(t):
            return pa.nulls(len(values), pa.string())
        return values.cast(pa.string())
    items = list(values)
    try:
        return pa.array(items, type=pa.string())
    except (pa.ArrowException, TypeError, UnicodeEncodeError):
        return pa.array([_clean(x) for x in items], type=pa.string())


def non_string_mask(values: Sequence[object]) -> NDArray[np.bool_]:
    """Entries of a Python sequence that are neither ``None`` nor an encodable string."""
    return np.array([x is not None and _clean(x) is None for x in values], dtype=bool)


def _clean(x: object) -> str | None:
    if not isinstance(x, str):
        return None
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return x


def parse_ips(values: pa.Array | pa.ChunkedArray | Sequence[object]) -> ParsedIPs:
    """Parse IP address text, vectorised. Invalid text gives version 0; it never raises."""
    arr = as_string_array(values)
    if pa.types.is_dictionary(arr.type):
        # Parse each distinct value once (sinkhole logs repeat the same bots many times).
        isnull = arr.is_null().to_numpy(zero_copy_only=False).astype(bool)
        distinct = parse_ips(pa.concat_arrays([arr.dictionary.cast(pa.string()), _ONE_NULL]))
        idx = arr.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.intp)
        idx[isnull] = len(distinct) - 1
        return distinct.take(idx)
    return _parse_fast(arr)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_RE = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"


def _np_bool(arr: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _parse_fast(arr: pa.Array) -> ParsedIPs:
    n = len(arr)
    version = np.zeros(n, np.int8)
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    null = arr.is_null().to_numpy(zero_copy_only=False).astype(bool)
    if n == 0:
        return ParsedIPs(version, hi, lo, null)
    # Only text with a ':' can be IPv6; only text without one can be IPv4.
    colon = _np_bool(pc.match_substring(arr, ":"))
    cand4 = np.flatnonzero(~colon & ~null)
    if cand4.size:
        sub = arr if cand4.size == n else arr.take(pa.array(cand4))
        is4 = _np_bool(pc.match_substring_regex(sub, _V4_RE))
        r4 = cand4[is4]
        if r4.size:
            version[r4] = 4
            lo[r4] = _fast_v4(sub if r4.size == len(sub) else sub.filter(pa.array(is4)))
    cand6 = np.flatnonzero(colon)
    if cand6.size:
        others = arr if cand6.size == n else arr.take(pa.array(cand6))
        is6 = _hex_colon_only(others)
        r6 = cand6[is6]
        if r6.size:
            plain = others if r6.size == len(others) else others.filter(pa.array(is6))
            h, lw, done = _fast_v6(plain)  # rows it cannot vouch for go to the exact parser
            version[r6[done]] = 6
            hi[r6[done]] = h[done]
            lo[r6[done]] = lw[done]
            is6[np.flatnonzero(is6)[~done]] = False
        slow = cand6[~is6]
        if slow.size:
            exact = parse_exact(arr.take(pa.array(slow)))
            version[slow] = exact.version
            hi[slow] = exact.hi
            lo[slow] = exact.lo
    return ParsedIPs(version, hi, lo, null)


def _hex_colon_only(strings: pa.Array) -> NDArray[np.bool_]:
    """Rows made only of hex digits and ':' (the plain IPv6 spellings), by a scan of the bytes."""
    offsets, data = _buffers(strings)
    body = data[4 : 4 + int(offsets[-1])]
    ok_byte = ((body - np.uint8(48)) < 10) | (((body | np.uint8(0x20)) - np.uint8(97)) < 6)
    bad = np.flatnonzero(~(ok_byte | (body == ord(":"))))
    out: NDArray[np.bool_] = np.diff(np.searchsorted(bad, offsets)) == 0
    if strings.null_count:
        out &= ~np.asarray(strings.is_null().to_numpy(zero_copy_only=False), bool)
    return out


def _fast_v4(strings: pa.Array) -> NDArray[np.uint64]:
    """Values of strict dotted quads (validated by ``_V4_RE``): split on '.', cast."""
    octets = pc.cast(pc.split_pattern(strings, ".").flatten(), pa.uint8())
    o = np.asarray(octets.to_numpy(zero_copy_only=False), np.uint64).reshape(-1, 4)
    out: NDArray[np.uint64] = (o[:, 0] << _U(24)) | (o[:, 1] << _U(16)) | (o[:, 2] << _U(8))
    return out | o[:, 3]


def _read4(data: NDArray[np.uint8], ends: NDArray[np.integer]) -> NDArray[np.uint32]:
    """The 4 bytes before each ``end`` (offsets in the unpadded body) as little-endian uint32:
    in ``data`` (4 padding bytes first) they start at ``end`` itself. One take from an
    unaligned uint32 view with a 1-byte stride; bytes before a row's start are garbage the
    caller masks."""
    view: NDArray[np.uint32] = np.ndarray(
        shape=(data.shape[0] - 3,), dtype="<u4", buffer=data, strides=(1,)
    )
    return view.take(ends)


def _buffers(strings: pa.Array) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """Row offsets (rebased to 0) and the data bytes of a string array, with 4 bytes of
    zero padding before and at least 8 after (total length a multiple of 4)."""
    n = len(strings)
    bufs = strings.buffers()
    off_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    raw_off = np.frombuffer(bufs[1], off_type, count=strings.offset + n + 1)
    offsets: NDArray[np.int64] = raw_off[strings.offset :].astype(np.int64)
    base, top = int(offsets[0]), int(offsets[-1])
    data = np.zeros((4 + (top - base) + 8 + 3) // 4 * 4, np.uint8)
    if bufs[2] is not None and top > base:
        data[4 : 4 + top - base] = np.frombuffer(bufs[2], np.uint8, count=top)[base:]
    return offsets - base, data


def _fast_v6(
    strings: pa.Array,
) -> tuple[NDArray[np.uint64], NDArray[np.uint64], NDArray[np.bool_]]:
    """IPv6 texts made of hex digits and ':' only: expand '::' into zero groups (rows grouped
    by how many they need, one Arrow replace per group), then check that every row has seven
    colons and eight groups of 1-4 digits, and read the groups (two aligned uint32 reads per
    group, SWAR hex decode). ``done`` marks rows that passed; the others (not addresses, or
    spellings this path does not take) are for the exact parser to judge."""
    k = len(strings)
    hi = np.zeros(k, np.uint64)
    lo = np.zeros(k, np.uint64)
    done = np.zeros(k, bool)
    offsets, data = _buffers(strings)
    body = data[4 : 4 + int(offsets[-1])]
    starts, ends = offsets[:-1], offsets[1:]
    is_colon = body == ord(":")
    colons = np.diff(np.searchsorted(np.flatnonzero(is_colon), offsets))
    # First two and last two bytes of each row (``data`` is padded on both sides). A row too
    # short for these to be its own bytes is not an address; the checks below reject it.
    lead = (data[4 + starts] == ord(":")) & (data[5 + starts] == ord(":"))
    trail = (data[3 + ends] == ord(":")) & (data[2 + ends] == ord(":"))
    double = np.flatnonzero(is_colon[:-1] & is_colon[1:])
    row_of = np.searchsorted(starts, double, side="right") - 1
    has = np.zeros(k, bool)
    has[row_of[double + 1 < ends[row_of]]] = True
    groups = np.where(has, colons - lead - trail, colons + 1)
    zeros = np.clip(np.where(has, 8 - groups, 0), 0, 8)
    kind = np.where(lead & trail, 3, np.where(lead, 2, np.where(trail, 1, 0)))
    key = (kind * 9 + zeros).astype(np.uint8)
    order = np.argsort(key, kind="stable")
    skey = key[order]
    grouped = strings.take(pa.array(order))
    cuts = np.flatnonzero(np.diff(skey)) + 1
    pieces = []
    for first, stop in zip(np.r_[0, cuts], np.r_[cuts, k], strict=True):
        kd, g = divmod(int(skey[first]), 9)
        piece = grouped.slice(int(first), int(stop - first))
        if g:
            fill = {0: ":" + "0:" * g, 1: ":0" * g, 2: "0:" * g, 3: "0" + ":0" * 7}[kd]
            piece = pc.replace_substring(piece, "::", fill, max_replacements=1)
        pieces.append(piece)
    full = pa.concat_arrays(pieces)
    f_off, f_data = _buffers(full)
    f_colons = np.flatnonzero(f_data[4 : 4 + int(f_off[-1])] == ord(":"))
    first_colon = np.searchsorted(f_colons, f_off)
    rows = np.flatnonzero(np.diff(first_colon) == 7)
    if rows.size == 0:
        return hi, lo, done
    m = rows.size
    ends8 = np.empty((m, 8), np.int32)
    ends8[:, :7] = f_colons[first_colon[rows][:, None] + np.arange(7)]
    ends8[:, 7] = f_off[rows + 1]
    glen = np.empty((m, 8), np.int32)
    glen[:, 0] = ends8[:, 0] - f_off[rows]
    glen[:, 1:] = ends8[:, 1:] - ends8[:, :7] - 1
    good = ((glen >= 1) & (glen <= 4)).all(axis=1)
    # The 4 bytes before each group end, SWAR hex-decoded as a whole; the nibbles of bytes
    # before the group start (':' or a previous group) are masked off afterwards.
    w = _read4(f_data, ends8)
    nib = (w & np.uint32(0x0F0F_0F0F)) + np.uint32(9) * ((w >> 6) & np.uint32(0x0101_0101))
    val = (
        ((nib & np.uint32(0xF)) << 12)
        | (nib & np.uint32(0xF00))
        | ((nib >> 12) & np.uint32(0xF0))
        | (nib >> 24)
    )
    width = np.minimum(glen, 4).astype(np.uint32) * np.uint32(4)
    val = (val & ((np.uint32(1) << width) - np.uint32(1))).astype(np.uint16)
    # Groups 3,2,1,0 and 7,6,5,4 side by side read as two little-endian uint64: (hi, lo).
    both = np.ascontiguousarray(val[:, [3, 2, 1, 0, 7, 6, 5, 4]]).view(np.uint64)
    src = order[rows]
    hi[src] = both[:, 0]
    lo[src] = both[:, 1]
    done[src] = good
    return hi, lo, done


_U = np.uint64
