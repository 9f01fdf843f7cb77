"""Addresses and prefixes back to text, vectorised (IPv6 in RFC 5952 form, as ``ipaddress``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

__all__ = ["format_networks", "format_v4", "format_v6"]

_HEXCHARS = np.frombuffer(b"0123456789abcdef", np.uint8)
_COLON = ord(":")


def format_v4(value: NDArray[np.uint64]) -> pa.Array:
    """Dotted quads for 32-bit values, with Arrow string kernels."""
    v = value.astype(np.uint64)
    octets = [
        pa.array(((v >> np.uint64(s)) & np.uint64(0xFF)).astype(np.uint8)).cast(pa.string())
        for s in (24, 16, 8, 0)
    ]
    return pc.binary_join_element_wise(*octets, ".").cast(pa.string())


def format_v6(hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> pa.Array:
    """RFC 5952 text for 128-bit values: lower case, no leading zeros, longest zero run '::'."""
    n = hi.shape[0]
    if n == 0:
        return pa.array([], pa.string())
    words = np.empty((n, 8), np.uint16)
    for i in range(4):
        words[:, i] = (hi >> np.uint64(48 - 16 * i)) & np.uint64(0xFFFF)
        words[:, 4 + i] = (lo >> np.uint64(48 - 16 * i)) & np.uint64(0xFFFF)

    # Longest run of zero words (first one wins a tie); only runs of two or more compress.
    zero = words == 0
    run = np.zeros((n, 8), np.int8)  # length of the zero run ending at each word
    acc = np.zeros(n, np.int8)
    for i in range(8):
        acc = np.where(zero[:, i], acc + 1, 0).astype(np.int8)
        run[:, i] = acc
    best_len = run.max(axis=1)
    best_end = run.argmax(axis=1)  # first position reaching the maximum
    best_start = best_end - best_len + 1
    compress = best_len >= 2
    col = np.arange(8)[None, :]
    in_run = compress[:, None] & (col >= best_start[:, None]) & (col <= best_end[:, None])
    run_head = compress[:, None] & (col == best_start[:, None])

    # Layout per row: 8 word slots of 4 chars, each followed by a 1-char separator slot.
    nib = np.stack([(words >> (12 - 4 * k)) & 0xF for k in range(4)], axis=2)  # (n, 8, 4)
    chars = _HEXCHARS[nib]
    first_nz = np.where(nib.any(axis=2), (nib != 0).argmax(axis=2), 3)
    keep = np.arange(4)[None, None, :] >= first_nz[:, :, None]
    keep &= ~in_run[:, :, None]
    chars[run_head] = np.frombuffer(b"::00", np.uint8)
    keep[run_head] = np.array([True, True, False, False])
    sep = np.full((n, 8, 1), _COLON, np.uint8)
    sep_keep = (col < 7) & ~in_run & ~np.roll(in_run, -1, axis=1)
    sep_keep[:, 7] = False
    mat = np.concatenate([chars, sep], axis=2).reshape(n, 40)
    kmask = np.concatenate([keep, sep_keep[:, :, None]], axis=2).reshape(n, 40)
    data = mat[kmask]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(kmask.sum(axis=1), out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def format_networks(
    hi: NDArray[np.uint64],
    lo: NDArray[np.uint64],
    plen: NDArray[np.integer],
    is_v6: NDArray[np.bool_],
) -> pa.Array:
    """``address/len`` text per row (IPv4 rows have the address in ``lo``)."""
    v4 = np.flatnonzero(~is_v6)
    v6 = np.flatnonzero(is_v6)
    addr = pa.concat_arrays([format_v4(lo[v4]), format_v6(hi[v6], lo[v6])])
    lens = pa.array(np.concatenate([plen[v4], plen[v6]]).astype(np.int16)).cast(pa.string())
    text = pc.binary_join_element_wise(addr, lens, "/").cast(pa.string())
    order = np.empty(hi.shape[0], np.int64)
    order[np.concatenate([v4, v6])] = np.arange(hi.shape[0])
    return text.take(pa.array(order))
