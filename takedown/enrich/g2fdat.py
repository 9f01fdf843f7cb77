"""Read geoip2fast's ``.dat.gz`` files (format version 120) into layers.

The file is a gzip'd pickle of ``(version, source_info, total_networks, database)`` where
``database`` holds lists chunked by 5,000: the first address of each range (IPv4 as integers
below 2**32, IPv6 as 128-bit integers), its prefix length, and an index into a name list
(country ``"CC:Country name"`` entries; ASN names). Files "-asn" carry both. geoip2fast
looks an address up by bisecting the starts and checking the hit's prefix covers it, so
ranges are read "last start wins"; we do the same.

The pickle is read with an unpickler that refuses every class: only lists, tuples, dicts,
strings, numbers and booleans can come out, so a hostile file cannot run code.

geoip2fast keeps no AS numbers (only ``autonomous_system_organization`` names), so the ``asn``
column of a layer read from it is all null.
"""

from __future__ import annotations

import gzip
import io
import itertools
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from takedown.enrich.ipformat import format_networks
from takedown.enrich.layers import ASN_SCHEMA, GEO_SCHEMA, Layer
from takedown.enrich.ranges import Partition, prefix_last, truncate_at_next_start

__all__ = ["G2FData", "default_path", "layers_from_dat", "read_dat"]

log = logging.getLogger(__name__)

DEFAULT_FILE = "geoip2fast-asn-ipv6.dat.gz"
_MAX_BYTES = 512 * 1024 * 1024  # refuse absurd decompressed sizes


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


class G2FData:
    """The decoded content of one geoip2fast data file, as flat numpy arrays."""

    def __init__(self, obj: object, name: str) -> None:
        if not isinstance(obj, list | tuple) or len(obj) != 4:
            raise ValueError(f"{name}: not a geoip2fast data file")
        version, info, _total, db = obj
        if version not in (120,):
            raise ValueError(f"{name}: geoip2fast data version {version!r} is not supported")
        if not isinstance(info, dict) or not isinstance(db, list | tuple):
            raise ValueError(f"{name}: not a geoip2fast data file")
        self.info = str(info.get("info", ""))
        self.has_asn = bool(info.get("asn"))
        if not info.get("country") or info.get("city"):
            raise ValueError(f"{name}: only geoip2fast country (and ASN) files are supported")
        if self.has_asn:
            (_, _, names_cc, names_asn, first, first_asn, id_cc, id_asn, nl, nl_asn) = db
        else:
            (_, names_cc, first, id_cc, nl) = db
            names_asn, first_asn, id_asn, nl_asn = [], [], [], []
        self.country_names: list[str] = [str(x) for x in names_cc]
        self.asn_names: list[str] = [str(x) for x in names_asn]
        self.geo = _flat(first, nl, id_cc)
        self.asn = _flat(first_asn, nl_asn, id_asn)


def _flat(
    first_chunks: list[list[int]], len_chunks: list[list[int]], id_chunks: list[list[int]]
) -> tuple[NDArray[np.uint64], NDArray[np.uint64], NDArray[np.int16], NDArray[np.int32]]:
    starts = list(itertools.chain.from_iterable(first_chunks))
    plen = np.fromiter(itertools.chain.from_iterable(len_chunks), np.int16)
    ids = np.fromiter(itertools.chain.from_iterable(id_chunks), np.int32)
    if not (len(starts) == plen.shape[0] == ids.shape[0]):
        raise ValueError("geoip2fast data: list lengths disagree")
    obj = np.array(starts, dtype=object)
    hi = (obj >> 64).astype(np.uint64) if obj.size else np.zeros(0, np.uint64)
    lo = (obj & 0xFFFF_FFFF_FFFF_FFFF).astype(np.uint64) if obj.size else np.zeros(0, np.uint64)
    return hi, lo, plen, ids


def default_path() -> Path:
    """The combined country + ASN, IPv4 + IPv6 file that the geoip2fast package ships."""
    import geoip2fast

    return Path(geoip2fast.__file__).with_name(DEFAULT_FILE)


def read_dat(path: Path) -> G2FData:
    """Decode a geoip2fast ``.dat.gz`` (or plain ``.dat``) file, safely."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            raw = gz.read(_MAX_BYTES + 1)
        if len(raw) > _MAX_BYTES:
            raise ValueError(f"{path}: decompressed data too large")
    try:
        obj = _SafeUnpickler(io.BytesIO(raw)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a geoip2fast data file ({exc})") from exc
    return G2FData(obj, str(path))


def _is_v6(hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> NDArray[np.bool_]:
    # geoip2fast keeps both families in one integer space: below 2**32 is IPv4.
    out: NDArray[np.bool_] = (hi != 0) | (lo > np.uint64(0xFFFF_FFFF))
    return out


def _partitions(
    hi: NDArray[np.uint64], lo: NDArray[np.uint64], plen: NDArray[np.int16], rows: NDArray[np.int32]
) -> tuple[Partition, Partition, int]:
    v6 = _is_v6(hi, lo)
    parts = []
    cut_total = 0
    for sel, bits in ((~v6, 32), (v6, 128)):
        h, lw, pl, r = hi[sel], lo[sel], plen[sel], rows[sel]
        order = np.lexsort((lw, h))
        h, lw, pl, r = h[order], lw[order], pl[order], r[order]
        last_hi, last_lo = prefix_last(h, lw, pl, bits)
        last_hi, last_lo, cut = truncate_at_next_start(h, lw, last_hi, last_lo)
        cut_total += cut
        parts.append(Partition.from_disjoint(bits, h, lw, last_hi, last_lo, r))
    return parts[0], parts[1], cut_total


def _country_codes(names: list[str]) -> tuple[list[str | None], list[bool]]:
    codes: list[str | None] = []
    reserved: list[bool] = []
    for entry in names:
        code = entry.split(":", 1)[0]
        # "01".."15" are geoip2fast's reserved/private networks, "99" = no country known.
        is_reserved = code.isdigit()
        codes.append(None if is_reserved else code)
        reserved.append(is_reserved)
    return codes, reserved


def layers_from_dat(data: G2FData, source: str) -> tuple[Layer | None, Layer]:
    """The (asn, geo) layers of one decoded file; asn is ``None`` for country-only files."""
    hi, lo, plen, ids = data.geo
    codes, _ = _country_codes(data.country_names)
    cc_dict = pa.array(sorted({c for c in codes if c is not None}), pa.string())
    lookup = {c: i for i, c in enumerate(cc_dict.to_pylist())}
    cc_of_name = np.array([lookup.get(c, -1) if c else -1 for c in codes] + [-1], np.int32)
    if ids.size and (ids.min() < 0 or ids.max() >= len(codes)):
        raise ValueError(f"{source}: country index out of range")
    # One payload row per distinct country index: geo rows are country entries.
    v4, v6, cut = _partitions(hi, lo, plen, ids)
    cc_idx = cc_of_name[: len(codes)]
    cc = pa.DictionaryArray.from_arrays(pa.array(cc_idx, pa.int32(), mask=cc_idx < 0), cc_dict)
    geo = Layer("geo", v4, v6, pa.Table.from_arrays([cc], schema=GEO_SCHEMA), source)
    log.debug("%s: %d country ranges (%d cut by the next start)", source, hi.shape[0], cut)
    if not data.has_asn:
        return None, geo

    a_hi, a_lo, a_plen, a_ids = data.asn
    if a_ids.size and (a_ids.min() < 0 or a_ids.max() >= len(data.asn_names)):
        raise ValueError(f"{source}: ASN name index out of range")
    n = a_hi.shape[0]
    rows = np.arange(n, dtype=np.int32)
    v4a, v6a, cut = _partitions(a_hi, a_lo, a_plen, rows)
    names = pa.DictionaryArray.from_arrays(
        pa.array(a_ids, pa.int32()), pa.array(data.asn_names, pa.string())
    )
    network = format_networks(a_hi, a_lo, a_plen, _is_v6(a_hi, a_lo))
    payload = pa.Table.from_arrays([pa.nulls(n, pa.int64()), names, network], schema=ASN_SCHEMA)
    log.debug("%s: %d ASN ranges (%d cut by the next start)", source, n, cut)
    return Layer("asn", v4a, v6a, payload, source), geo
