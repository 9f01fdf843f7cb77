"""Read pyasn-style IP-to-ASN tables (``prefix<TAB>asn`` lines) into an ASN layer.

This is the format of pyasn's ``ipasn_*.dat`` files (converted from a BGP RIB dump): comment
lines start with ``;``, blank lines are skipped, the file may be gzip'd. Prefixes may nest;
an address takes the AS of its longest matching prefix, as a router would. Lines that do not
parse are counted and logged, not fatal. AS names come from an optional side file: pyasn's
``asnames.json`` (``{"15169": "GOOGLE - Google LLC, US", ...}``) or ``asn<TAB>name`` lines.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from takedown.enrich.ipformat import format_networks
from takedown.enrich.ipparse import parse_ips
from takedown.enrich.layers import ASN_SCHEMA, Layer
from takedown.enrich.ranges import Partition

__all__ = ["layer_from_ipasn", "read_as_names"]

log = logging.getLogger(__name__)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def read_as_names(path: Path) -> dict[int, str]:
    """AS number → name, from pyasn's JSON or from ``asn<TAB>name`` lines."""
    text = _read_text(path)
    names: dict[int, str] = {}
    stripped = text.lstrip()
    if stripped.startswith("{"):
        data = json.loads(stripped)
        for key, value in data.items():
            k = str(key).strip().upper().removeprefix("AS")
            if k.isdigit() and isinstance(value, str):
                names[int(k)] = value
        return names
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        key, _, value = line.partition("\t")
        k = key.strip().upper().removeprefix("AS")
        if k.isdigit() and value.strip():
            names[int(k)] = value.strip()
    return names


def _mask_host_bits(
    hi: np.ndarray, lo: np.ndarray, plen: np.ndarray, v6: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    bits = np.where(v6, 128, 32)
    host = (bits - plen).astype(np.int64)
    host_lo = np.clip(host, 0, 64).astype(np.uint64)
    host_hi = np.clip(host - 64, 0, 64).astype(np.uint64)
    all_ones = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
    keep_lo = np.where(
        host_lo >= 64, np.uint64(0), ~((np.uint64(1) << np.minimum(host_lo, 63)) - np.uint64(1))
    )
    keep_hi = np.where(
        host_hi >= 64, np.uint64(0), ~((np.uint64(1) << np.minimum(host_hi, 63)) - np.uint64(1))
    )
    return hi & keep_hi.astype(np.uint64) & all_ones, lo & keep_lo.astype(np.uint64)


def layer_from_ipasn(path: Path, source: str, names: dict[int, str] | None = None) -> Layer:
    """The ASN layer of a pyasn table (names filled from ``names`` where known)."""
    lines = pa.array(_read_text(path).splitlines(), pa.string())
    trimmed = pc.utf8_trim_whitespace(lines)
    keep = pc.and_(
        pc.invert(pc.starts_with(trimmed, ";")),
        pc.and_(pc.invert(pc.starts_with(trimmed, "#")), pc.greater(pc.utf8_length(trimmed), 0)),
    )
    body = trimmed.filter(keep)
    # prefix/len, whitespace, AS number; an AS set ("{64512,64513}") keeps its first AS.
    fields = pc.extract_regex(
        body, r"^(?P<addr>[^/\s]+)/(?P<len>[0-9]{1,3})\s+\{?(?:AS)?(?P<asn>[0-9]{1,10})\b"
    )
    matched = np.asarray(pc.is_valid(fields).to_numpy(zero_copy_only=False), bool)
    fields = fields.fill_null({"addr": "", "len": "0", "asn": "0"})
    parsed = parse_ips(pc.struct_field(fields, [0]))
    plen = np.asarray(pc.cast(pc.struct_field(fields, [1]), pa.int16()).to_numpy(), np.int16)
    asn_num = np.asarray(pc.cast(pc.struct_field(fields, [2]), pa.int64()).to_numpy(), np.int64)
    asn_num = np.where(matched, asn_num, -1)
    v6 = parsed.version == 6
    bits = np.where(v6, 128, 32)
    ok = (parsed.version != 0) & (plen >= 0) & (plen <= bits) & (asn_num >= 0)
    ok &= asn_num < 2**32
    rejected = int((~ok).sum())
    if rejected:
        log.warning("%s: %d of %d lines rejected (not prefix<TAB>asn)", path, rejected, len(ok))
    idx = np.flatnonzero(ok)
    hi, lo = _mask_host_bits(parsed.hi[idx], parsed.lo[idx], plen[idx], v6[idx])
    plen, v6, asn_num = plen[idx], v6[idx], asn_num[idx]
    networks = format_networks(hi, lo, plen, v6)
    rows = np.arange(idx.shape[0], dtype=np.int32)
    parts = []
    for sel, nbits in ((~v6, 32), (v6, 128)):
        s = np.flatnonzero(sel)
        parts.append(Partition.from_prefixes(nbits, hi[s], lo[s], plen[s], rows[s]))
    name_list = [names.get(int(a)) if names else None for a in asn_num.tolist()]
    payload = pa.Table.from_arrays(
        [
            pa.array(asn_num, pa.int64()),
            pa.array(name_list, pa.string()).dictionary_encode(),
            networks,
        ],
        schema=ASN_SCHEMA,
    )
    return Layer("asn", parts[0], parts[1], payload, source)
