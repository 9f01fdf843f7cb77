"""The exact IP text parser: numpy over each row's first 48 bytes, SWAR byte classes.

It accepts exactly what ``ipaddress.ip_address`` accepts for a string (and is fuzzed against
it). :mod:`takedown.enrich.ipparse` sends it only what its fast paths do not take: zones,
IPv4 tails, and text that is not an address.

Each row's first 48 bytes are copied into a (rows, 48) matrix and viewed as six uint64 words.
Byte classes (':', '.', digit, hex letter, '%', '0', anything else) are found with SWAR tricks
and packed into one 48-bit mask per row and class; separator positions come from the masks
(lowest set bit, repeatedly); each field is read as the 4 bytes that end it. Rows are taken a
block at a time to keep the working set in cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

__all__ = ["ParsedIPs", "parse_exact"]

_BLOCK = 1 << 15  # rows per block


@dataclass(frozen=True)
class ParsedIPs:
    """Parsed addresses: ``version`` 4 or 6 (0 = invalid or null), value as (hi, lo) halves.

    IPv4 addresses have ``hi = 0`` and the 32-bit value in ``lo``.
    """

    version: NDArray[np.int8]
    hi: NDArray[np.uint64]
    lo: NDArray[np.uint64]
    null: NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.version.shape[0])

    @property
    def invalid(self) -> NDArray[np.bool_]:
        """Non-null entries that are not IP addresses."""
        out: NDArray[np.bool_] = (self.version == 0) & ~self.null
        return out

    def take(self, indices: NDArray[np.intp]) -> ParsedIPs:
        """Rows at ``indices``."""
        return ParsedIPs(
            self.version[indices], self.hi[indices], self.lo[indices], self.null[indices]
        )


_W = 48  # bytes per row window: the longest IPv6 text is 45, then maybe '%'
_V4MAX, _V6MAX = 15, 45
_HB = np.uint64(0x8080_8080_8080_8080)
_LOW7 = np.uint64(0x7F7F_7F7F_7F7F_7F7F)
_GATHER = np.uint64(0x0102_0408_1020_4080)  # moves bit 0 of each byte into the top byte
_U = np.uint64


def _splat(byte: int) -> np.uint64:
    return np.uint64(byte * 0x0101_0101_0101_0101)


def _eq(words: NDArray[np.uint64], byte: int) -> NDArray[np.uint64]:
    """High bit set in each byte equal to ``byte`` (exact, no false positives)."""
    x = words ^ _splat(byte)
    return ~(((x & _LOW7) + _LOW7) | x) & _HB


def _ge(w7: NDArray[np.uint64], byte: int) -> NDArray[np.uint64]:
    """High bit set in each 7-bit byte >= ``byte`` (bytes must have the high bit clear)."""
    return (w7 + _splat(0x80 - byte)) & _HB


def _pack(flags: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """(rows, 6) high-bit byte flags → one 48-bit mask per row (bit i = byte i)."""
    b = ((flags >> _U(7)) * _GATHER) >> _U(56)
    out = b[:, 0].copy()
    for c in range(1, flags.shape[1]):
        out |= b[:, c] << _U(8 * c)
    return out


def _ctz(x: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Index of the lowest set bit (64 when x == 0)."""
    low: NDArray[np.uint64] = x & (~x + _U(1))
    below: NDArray[np.uint64] = low - _U(1)
    return np.bitwise_count(below).astype(np.int64)


def _below(n: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Masks with the low ``n`` bits set (0 <= n <= 63)."""
    return (_U(1) << n.astype(np.uint64)) - _U(1)


def _words_at(
    flat32: NDArray[np.uint32], base: NDArray[np.int64], end: NDArray[np.int64]
) -> NDArray[np.uint64]:
    """The 4 bytes before ``end`` in each row, as little-endian uint32 (zeros in front).

    ``flat32`` is the block's bytes (4 padding bytes first) viewed as aligned uint32 words;
    an unaligned 4-byte read is two aligned takes and a shift.
    """
    # Byte offset of the first of the 4 bytes (+4 padding); ends of missing fields (64 from
    # _ctz of an empty mask) are clipped to the row, their rows are invalid anyway.
    pos = base + np.clip(end, 0, _W)
    word = pos >> 2
    sh = ((pos & 3) * 8).astype(np.uint64)
    lo = flat32.take(word).astype(np.uint64)
    hi = flat32.take(word + 1).astype(np.uint64)
    return ((lo | (hi << _U(32))) >> sh) & _U(0xFFFF_FFFF)


def _keep_bytes(word: NDArray[np.uint64], length: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Replace the bytes before a field's start by '0' (fields are 0..4 bytes long)."""
    pad = np.clip(4 - length, 0, 4).astype(np.uint64)
    keep = (_U(0xFFFF_FFFF) << (_U(8) * pad)) & _U(0xFFFF_FFFF)
    out: NDArray[np.uint64] = (word & keep) | (_U(0x3030_3030) & ~keep)
    return out


def _dec_value(word: NDArray[np.uint64], length: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Decimal value of a field of 0..4 digits (``word`` = its last 4 bytes)."""
    d = (_keep_bytes(word, length) - _U(0x3030_3030)) & _U(0x0F0F_0F0F)
    out: NDArray[np.uint64] = (
        (d & _U(0xFF)) * _U(1000)
        + ((d >> _U(8)) & _U(0xFF)) * _U(100)
        + ((d >> _U(16)) & _U(0xFF)) * _U(10)
        + (d >> _U(24))
    )
    return out


def _hex_value(word: NDArray[np.uint64], length: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Hex value of a field of 0..4 hex digits (``word`` = its last 4 bytes)."""
    w7 = _keep_bytes(word, length) & _U(0x7F7F_7F7F)
    nib = (w7 & _U(0x0F0F_0F0F)) + _U(9) * ((w7 >> _U(6)) & _U(0x0101_0101))
    out: NDArray[np.uint64] = (
        ((nib & _U(0xF)) << _U(12))
        | (((nib >> _U(8)) & _U(0xF)) << _U(8))
        | (((nib >> _U(16)) & _U(0xF)) << _U(4))
        | (nib >> _U(24))
    )
    return out


def parse_exact(arr: pa.Array) -> ParsedIPs:
    """Parse a (non-dictionary) Arrow string array exactly like ``ipaddress``."""
    n = len(arr)
    version = np.zeros(n, np.int8)
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    null = arr.is_null().to_numpy(zero_copy_only=False).astype(bool)
    if n == 0:
        return ParsedIPs(version, hi, lo, null)
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    bufs = arr.buffers()
    raw_offsets = np.frombuffer(bufs[1], dtype=off_type, count=arr.offset + n + 1)
    offsets: NDArray[np.int64] = raw_offsets[arr.offset :].astype(np.int64)
    base, top = int(offsets[0]), int(offsets[-1])
    padded = np.zeros(top - base + _W, np.uint8)
    if bufs[2] is not None and top > base:
        padded[: top - base] = np.frombuffer(bufs[2], dtype=np.uint8, count=top)[base:top]
    windows = sliding_window_view(padded, _W)
    starts = offsets[:-1] - base
    lengths = np.where(null, 0, offsets[1:] - offsets[:-1])
    zone_rows: list[NDArray[np.intp]] = []
    for b in range(0, n, _BLOCK):
        sl = slice(b, min(n, b + _BLOCK))
        v, h, lw, zones = _parse_rows(windows[starts[sl]], lengths[sl])
        version[sl], hi[sl], lo[sl] = v, h, lw
        zone_rows.append(zones + b)
    zrows = np.concatenate(zone_rows)
    if zrows.size:
        bad = zrows[~_zones_ok(arr.take(pa.array(zrows)))]
        version[bad] = 0
        hi[bad] = 0
        lo[bad] = 0
    return ParsedIPs(version, hi, lo, null)


def _parse_rows(
    mat: NDArray[np.uint8], length: NDArray[np.int64]
) -> tuple[NDArray[np.int8], NDArray[np.uint64], NDArray[np.uint64], NDArray[np.intp]]:
    """Parse a block: ``mat`` holds each row's first 48 bytes (beyond the row: anything)."""
    m = mat.shape[0]
    col = np.arange(_W, dtype=np.uint8)[None, :]
    mat &= (col < np.minimum(length, _W).astype(np.uint8)[:, None]).view(np.uint8) * np.uint8(0xFF)
    words = mat.view(np.uint64)  # (m, 6)
    pct = _pack(_eq(words, ord("%")))
    has_pct = pct != 0
    addr_len = np.where(has_pct, _ctz(pct), length)
    if has_pct.any():
        mat &= (col < np.minimum(addr_len, _W).astype(np.uint8)[:, None]).view(np.uint8) * np.uint8(
            0xFF
        )
    inside = _below(np.minimum(addr_len, 48))
    colon_f = _eq(words, ord(":"))
    dot_f = _eq(words, ord("."))
    w7 = words & _LOW7
    ascii_f = ~words & _HB
    digit_f = _ge(w7, 0x30) & ~_ge(w7, 0x3A) & ascii_f
    low = w7 | _splat(0x20)
    alpha_f = _ge(low, 0x61) & ~_ge(low, 0x67) & ascii_f
    colon = _pack(colon_f)
    dot = _pack(dot_f)
    digit = _pack(digit_f)
    good = _pack(colon_f | dot_f | digit_f | alpha_f)
    zero = _pack(_eq(words, ord("0")))
    clean = (inside & ~good) == 0
    nc = np.bitwise_count(colon).astype(np.int64)
    nd = np.bitwise_count(dot).astype(np.int64)

    version = np.zeros(m, np.int8)
    hi = np.zeros(m, np.uint64)
    lo = np.zeros(m, np.uint64)
    flat = np.zeros(4 + mat.size + 8, np.uint8)
    flat[4 : 4 + mat.size] = mat.reshape(-1)
    flat32 = flat.view(np.uint32)
    row_base = np.arange(m, dtype=np.int64) * _W

    r4 = np.flatnonzero(clean & ~has_pct & (nc == 0) & (nd == 3) & (length <= _V4MAX))
    if r4.size:
        ok, val = _dotted(
            flat32,
            row_base[r4],
            dot[r4],
            digit[r4],
            zero[r4],
            np.zeros(r4.size, np.int64),
            length[r4],
        )
        version[r4[ok]] = 4
        lo[r4[ok]] = val[ok]

    cand = clean & (nc >= 2) & (nc <= 8) & (addr_len <= _V6MAX) & (nd <= 3)
    cand &= ~has_pct | (addr_len < length - 1)
    r6 = np.flatnonzero(cand)
    if r6.size:
        ok, h, lw = _ipv6(
            flat32,
            row_base[r6],
            colon[r6],
            dot[r6],
            digit[r6],
            zero[r6],
            nc[r6],
            nd[r6],
            addr_len[r6],
        )
        version[r6[ok]] = 6
        hi[r6[ok]] = h[ok]
        lo[r6[ok]] = lw[ok]
    zones = np.flatnonzero((version == 6) & has_pct)
    return version, hi, lo, zones


def _dotted(
    flat32: NDArray[np.uint32],
    base: NDArray[np.int64],
    dot: NDArray[np.uint64],
    digit: NDArray[np.uint64],
    zero: NDArray[np.uint64],
    first: NDArray[np.int64],
    end: NDArray[np.int64],
) -> tuple[NDArray[np.bool_], NDArray[np.uint64]]:
    """Dotted quads at ``[first, end)`` of each row; ``dot`` holds only that span's dots."""
    span = _below(end) & ~_below(first)
    ok = (span & ~dot & ~digit) == 0
    ok &= np.bitwise_count(dot) == 3
    d1 = _ctz(dot)
    rest = dot & (dot - _U(1))
    d2 = _ctz(rest)
    d3 = _ctz(rest & (rest - _U(1)))
    val = np.zeros(base.shape[0], np.uint64)
    for k, (s, e) in enumerate(((first, d1), (d1 + 1, d2), (d2 + 1, d3), (d3 + 1, end))):
        flen = e - s
        dec = _dec_value(_words_at(flat32, base, e), flen)
        lead_zero = ((zero >> np.clip(s, 0, 63).astype(np.uint64)) & _U(1)) == 1
        ok &= (flen >= 1) & (flen <= 3) & (dec <= 255) & ((flen == 1) | ~lead_zero)
        val |= np.where(ok, dec, _U(0)) << _U(8 * (3 - k))
    return ok, val


def _ipv6(
    flat32: NDArray[np.uint32],
    base: NDArray[np.int64],
    colon: NDArray[np.uint64],
    dot: NDArray[np.uint64],
    digit: NDArray[np.uint64],
    zero: NDArray[np.uint64],
    nc: NDArray[np.int64],
    nd: NDArray[np.int64],
    addr_len: NDArray[np.int64],
) -> tuple[NDArray[np.bool_], NDArray[np.uint64], NDArray[np.uint64]]:
    """IPv6 text in ``[0, addr_len)`` of each row (2..8 colons, only hex, ':' and '.')."""
    m = base.shape[0]
    # Colon positions, padded with the address length: parts are the text between them.
    cpos = np.empty((m, 9), np.int64)
    rest = colon.copy()
    for k in range(8):
        pos = _ctz(rest)
        cpos[:, k] = np.where(k < nc, pos, addr_len)
        rest &= rest - _U(1)
    cpos[:, 8] = addr_len
    last_colon = cpos[np.arange(m), nc - 1]
    tail = nd > 0
    ok = np.ones(m, bool)
    tail_val = np.zeros(m, np.uint64)
    t = np.flatnonzero(tail)
    if t.size:
        # An IPv4 tail must be the last part: no dot before the last colon.
        lc = last_colon[t]
        after = (dot[t] & _below(lc + 1)) == 0
        t_ok, t_val = _dotted(flat32, base[t], dot[t], digit[t], zero[t], lc + 1, addr_len[t])
        ok[t] = after & t_ok
        tail_val[t] = t_val
    col = np.arange(9)[None, :]
    part_first = np.concatenate([np.zeros((m, 1), np.int64), cpos[:, :8] + 1], axis=1)
    plen = cpos - part_first
    exists = col <= nc[:, None]
    hextet = exists & ~(tail[:, None] & (col == nc[:, None]))
    ok &= ~(hextet & (plen > 4)).any(axis=1)
    value = np.zeros((m, 9), np.uint64)
    for j in range(9):
        value[:, j] = _hex_value(_words_at(flat32, base, cpos[:, j]), plen[:, j])

    # '::' rules, as ipaddress applies them to the colon-split parts (a tail counts as two).
    parts = nc + 1 + tail
    empty = hextet & (plen == 0)
    interior = (col >= 1) & (col <= (parts - 2)[:, None])
    int_empty = empty & interior
    n_skip = int_empty.sum(axis=1)
    has_skip = n_skip == 1
    skip = int_empty.argmax(axis=1)
    first_empty = empty[:, 0]
    last_empty = ~tail & empty[np.arange(m), nc]
    parts_hi = skip - first_empty.astype(np.int64)
    parts_lo = parts - skip - 1 - last_empty.astype(np.int64)
    with_skip = (
        (~first_empty | (skip == 1))
        & (~last_empty | (skip == parts - 2))
        & (8 - (parts_hi + parts_lo) >= 1)
    )
    without_skip = (parts == 8) & ~first_empty & ~last_empty
    ok &= (parts <= 9) & (n_skip <= 1) & np.where(has_skip, with_skip, without_skip)

    pos = np.where(has_skip[:, None] & (col > skip[:, None]), col + 8 - parts[:, None], col)
    place = hextet & ~empty & (pos >= 0) & (pos <= 7)
    shift = (_U(16) * (_U(3) - (np.clip(pos, 0, 7).astype(np.uint64) & _U(3)))).astype(np.uint64)
    bits = value << shift
    hi = np.zeros(m, np.uint64)
    lo = np.zeros(m, np.uint64)
    for j in range(9):
        hi |= np.where(place[:, j] & (pos[:, j] < 4), bits[:, j], _U(0))
        lo |= np.where(place[:, j] & (pos[:, j] >= 4), bits[:, j], _U(0))
    lo |= np.where(tail, tail_val, _U(0))
    return ok, hi, lo


def _zones_ok(strings: pa.Array) -> NDArray[np.bool_]:
    """``ipaddress`` rules for the text after '%': one '%' only, and no '/' anywhere."""
    one_pct = pc.equal(pc.count_substring(strings, "%"), 1)
    no_slash = pc.invert(pc.match_substring(strings, "/"))
    ok = pc.and_(one_pct, no_slash).fill_null(False)
    return np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
