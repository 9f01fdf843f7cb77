"""The enricher: IP address text → ASN, AS name, announced network, country. Offline.

One ``Enricher`` holds a searchable table built from one ASN source and one country source:
the geoip2fast data by default, or MaxMind MMDB / pyasn files the user points at. Lookups are
vectorised end to end (parse, search, gather); :meth:`Enricher.lookup` is the convenience
form for a list of strings, :meth:`Enricher.enrich_arrow` and :meth:`Enricher.enrich_table`
the columnar forms for the lake.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from takedown.enrich import tablecache
from takedown.enrich.ipparse import ParsedIPs, as_string_array, non_string_mask, parse_ips
from takedown.enrich.layers import Layer
from takedown.enrich.overlay import Tables

__all__ = ["INVALID_IP", "NOT_A_STRING", "RESULT_TYPE", "Enricher"]

log = logging.getLogger(__name__)

INVALID_IP = "invalid IP address"
NOT_A_STRING = "not a string"

RESULT_TYPE = pa.struct(
    [
        pa.field("asn", pa.int64()),
        pa.field("as_name", pa.string()),
        pa.field("network", pa.string()),
        pa.field("cc", pa.string()),
        pa.field("error", pa.string()),
    ]
)

_RESULT_NAMES = ("asn", "as_name", "network", "cc", "error")
_CHUNK = 1 << 18  # addresses per piece in enrich_arrow
_DEDUPE_FROM = 4096  # addresses from which enrich_table looks up each distinct one once

_FLAT = {
    "asn": "source.asn",
    "as_name": "source.as_name",
    "network": "source.network",
    "cc": "source.geolocation.cc",
}

PathLike = str | os.PathLike[str]


class Enricher:
    """IP → ASN, AS name, announced network (CIDR) and country (ISO alpha-2), vectorised."""

    def __init__(self, tables: Tables) -> None:
        self._t = tables
        asn = tables.asn
        names = _one(asn.column("as_name"))
        self._name_idx = _indices(names)
        self._names = names.dictionary if len(names) else pa.array([], pa.string())
        self._networks = _one(asn.column("network"))
        asn_col = _one(asn.column("asn"))
        self._asn_all_null = asn_col.null_count == len(asn_col)
        self._asn = asn_col
        cc = _one(tables.geo.column("cc"))
        self._cc_idx = _indices(cc)
        self._ccs = cc.dictionary if len(cc) else pa.array([], pa.string())

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def default(cls, *, cache_dir: PathLike | None = None) -> Enricher:
        """The embedded data: geoip2fast's combined country + ASN, IPv4 + IPv6 file."""
        from takedown.enrich import g2fdat
        from takedown.enrich.datafiles import EnrichError

        path = g2fdat.default_path()
        key = tablecache.table_key([("both", "geoip2fast", tablecache.file_digest(path))])

        def build() -> Tables:
            asn, geo = g2fdat.layers_from_dat(g2fdat.read_dat(path), _g2f_source(path))
            if asn is None:
                raise EnrichError(f"{path}: the embedded geoip2fast file has no ASN data")
            return Tables.build(asn, geo)

        return cls(tablecache.get_or_build(key, build, cache_dir))

    @classmethod
    def from_files(
        cls,
        asn: PathLike | None = None,
        country: PathLike | None = None,
        mmdb: PathLike | None = None,
        pyasn: PathLike | None = None,
        *,
        as_names: PathLike | None = None,
        fill_default: bool = False,
        cache_dir: PathLike | None = None,
    ) -> Enricher:
        """Build from data files; each role comes from the first source given that has it.

        ASN fields (asn, as_name, network): ``pyasn`` (a pyasn ipasn table, with names from
        ``as_names`` if given), else ``asn`` (a GeoLite2-ASN-style MMDB or a geoip2fast
        ``-asn`` file), else ``mmdb`` (a combined MMDB). Country: ``country`` (a
        GeoLite2-Country/City-style MMDB or a geoip2fast file), else ``mmdb``. A role no file
        covers stays empty, unless ``fill_default`` takes it from the embedded data.
        """
        from takedown.enrich import datafiles

        inputs = datafiles.plan(asn, country, mmdb, pyasn, as_names, fill_default)
        key = tablecache.table_key([(i.role, i.kind, i.digest) for i in inputs])

        def build() -> Tables:
            layers = datafiles.load(inputs)
            return Tables.build(layers["asn"], layers["geo"])

        return cls(tablecache.get_or_build(key, build, cache_dir))

    @classmethod
    def from_layers(cls, asn: Layer, geo: Layer) -> Enricher:
        """Build from layers already in memory (no caching)."""
        return cls(Tables.build(asn, geo))

    @property
    def sources(self) -> dict[str, str]:
        """Where the ASN and country data came from."""
        return dict(self._t.sources)

    # -- lookups -------------------------------------------------------------------------------

    def lookup(self, ips: Sequence[str]) -> list[dict[str, Any]]:
        """One dict per input, in order: ip, asn, as_name, network, cc, error."""
        items = list(ips)
        result = self.enrich_arrow(as_string_array(items))
        columns = {name: result.field(name).to_pylist() for name in _RESULT_NAMES}
        columns["ip"] = items
        if items:
            for i in np.flatnonzero(non_string_mask(items)).tolist():
                columns["error"][i] = NOT_A_STRING
        keys = ("ip", *_RESULT_NAMES)
        rows = zip(*(columns[k] for k in keys), strict=True)
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def enrich_arrow(
        self, ips: pa.Array | pa.ChunkedArray, *, dictionary: bool = False
    ) -> pa.StructArray:
        """Struct of asn, as_name, network, cc, error for an Arrow array of IP text.

        Nulls in give null fields and no error; text that is not an IP address gives
        ``error = "invalid IP address"``. With ``dictionary=True`` the string fields stay
        dictionary-encoded (cheaper when the caller groups or writes Parquet anyway).
        """
        if isinstance(ips, pa.ChunkedArray):
            ips = ips.combine_chunks() if ips.num_chunks != 1 else ips.chunk(0)
        if len(ips) > _CHUNK:
            # Cache-sized pieces: every step's working set then stays in cache (about 1.5x
            # faster than one pass over a million addresses).
            parts = [
                self._enrich(ips.slice(i, _CHUNK), dictionary) for i in range(0, len(ips), _CHUNK)
            ]
            return pa.concat_arrays(parts)
        return self._enrich(ips, dictionary)

    def _enrich(self, ips: pa.Array, dictionary: bool) -> pa.StructArray:
        parsed = parse_ips(ips)
        asn_row, geo_row = self._rows(parsed)
        n = len(parsed)
        no_asn = asn_row < 0
        rows = pa.array(asn_row, pa.int32(), mask=no_asn)
        asn = pa.nulls(n, pa.int64()) if self._asn_all_null else self._asn.take(rows)
        name_idx = _gather(self._name_idx, asn_row)
        as_name = pa.DictionaryArray.from_arrays(
            pa.array(name_idx, pa.int32(), mask=name_idx < 0), self._names
        )
        cc_idx = _gather(self._cc_idx, geo_row)
        cc = pa.DictionaryArray.from_arrays(
            pa.array(cc_idx, pa.int32(), mask=cc_idx < 0), self._ccs
        )
        if dictionary:
            network: pa.Array = pa.DictionaryArray.from_arrays(rows, self._networks)
        else:
            network = self._networks.take(rows)
            as_name = as_name.dictionary_decode()
            cc = cc.dictionary_decode()
        error = pc.if_else(
            pa.array(parsed.invalid), pa.scalar(INVALID_IP), pa.scalar(None, pa.string())
        )
        return pa.StructArray.from_arrays(
            [asn, as_name, network, cc, error], names=list(_RESULT_NAMES)
        )

    def enrich_table(
        self, table: pa.Table, *, column: str = "source.ip", overwrite: bool = False
    ) -> pa.Table:
        """Fill source.asn / as_name / network / geolocation.cc of an event table.

        Works on the flat (dotted column names) and the nested (``source`` struct) layouts.
        Values already present are kept unless ``overwrite``; the types follow
        ``takedown.schema`` (asn int64, the others string).
        """
        if column in table.column_names:
            return self._enrich_flat(table, column, overwrite)
        top, _, leaf = column.partition(".")
        if top in table.column_names and pa.types.is_struct(table.schema.field(top).type):
            return self._enrich_nested(table, top, leaf, overwrite)
        raise ValueError(f"table has no {column!r} column (flat or nested)")

    def prefixes(self, asn: int | str) -> list[str]:
        """Announced networks of an AS, by number, or by exact AS name if a string is given."""
        t = self._t.asn
        if isinstance(asn, str):
            mask = pc.equal(_decode(t.column("as_name").combine_chunks()), asn)
        else:
            mask = pc.equal(t.column("asn"), pa.scalar(int(asn), pa.int64()))
        nets: list[str] = t.column("network").filter(mask.fill_null(False)).to_pylist()
        return nets

    def asn_table(self) -> pa.Table:
        """One row per announced network: network, asn, as_name, cc (its main country)."""
        t = self._t.asn
        return pa.table(
            {
                "network": t.column("network"),
                "asn": t.column("asn"),
                "as_name": _decode(t.column("as_name").combine_chunks()),
                "cc": _decode(self._t.asn_cc),
            }
        )

    # -- internals -----------------------------------------------------------------------------

    def _rows(self, parsed: ParsedIPs) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        n = len(parsed)
        # IPv4-mapped IPv6 (::ffff:a.b.c.d, as dual-stack sockets report IPv4 peers) is IPv4.
        mapped = (
            (parsed.version == 6)
            & (parsed.hi == 0)
            & ((parsed.lo >> np.uint64(32)) == np.uint64(0xFFFF))
        )
        is4 = (parsed.version == 4) | mapped
        lo32 = parsed.lo & np.uint64(0xFFFF_FFFF)
        if is4.all():
            packed = self._t.v4.lookup_packed(parsed.hi, lo32)
        else:
            packed = np.full(n, -1, np.int64)  # both halves -1: nothing known
            v4 = np.flatnonzero(is4)
            v6 = np.flatnonzero((parsed.version == 6) & ~mapped)
            if v4.size:
                packed[v4] = self._t.v4.lookup_packed(parsed.hi[v4], lo32[v4])
            if v6.size:
                packed[v6] = self._t.v6.lookup_packed(parsed.hi[v6], parsed.lo[v6])
        rows = packed.view(np.int32).reshape(n, 2)
        return rows[:, 0], rows[:, 1]

    def _fields(self, ips: pa.Array | pa.ChunkedArray) -> dict[str, pa.Array]:
        ips = _one(ips)
        if len(ips) >= _DEDUPE_FROM:
            # Bots call in again and again from the same address: look each address up once
            # when that at least halves the work (hashing is cheaper than a lookup).
            encoded = pc.dictionary_encode(ips)
            if 2 * len(encoded.dictionary) <= len(ips):
                unique = self.enrich_arrow(encoded.dictionary)
                return {k: unique.field(k).take(encoded.indices) for k in _FLAT}
        result = self.enrich_arrow(ips)
        return {k: result.field(k) for k in _FLAT}

    def _enrich_flat(self, table: pa.Table, column: str, overwrite: bool) -> pa.Table:
        values = self._fields(table.column(column))
        for key, name in _FLAT.items():
            table = _set_column(table, name, values[key], overwrite)
        return table

    def _enrich_nested(self, table: pa.Table, top: str, leaf: str, overwrite: bool) -> pa.Table:
        struct = _one(table.column(top))
        children = {f.name: struct.field(f.name) for f in struct.type}
        if leaf not in children:
            raise ValueError(f"{top!r} struct has no {leaf!r} field")
        values = self._fields(children[leaf])
        for key in ("asn", "as_name", "network"):
            children[key] = _merge(children.get(key), values[key], overwrite)
        geo = children.get("geolocation")
        if geo is not None and pa.types.is_struct(geo.type):
            geo_children = {f.name: geo.field(f.name) for f in geo.type}
            geo_children["cc"] = _merge(geo_children.get("cc"), values["cc"], overwrite)
            children["geolocation"] = pa.StructArray.from_arrays(
                list(geo_children.values()),
                names=list(geo_children),
                mask=_null_mask(geo),
            )
        else:
            children["geolocation"] = pa.StructArray.from_arrays([values["cc"]], names=["cc"])
        rebuilt = pa.StructArray.from_arrays(
            list(children.values()), names=list(children), mask=_null_mask(struct)
        )
        idx = table.column_names.index(top)
        return table.set_column(idx, top, rebuilt)


def _g2f_source(path: Path) -> str:
    import geoip2fast

    return f"geoip2fast {geoip2fast.__version__} {path.name}"


def _indices(col: pa.Array) -> NDArray[np.int32]:
    """Dictionary indices of a dictionary column as int32 (nulls -1), plus a final -1."""
    if len(col) == 0:
        return np.full(1, -1, np.int32)
    idx = np.asarray(col.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int32)
    return np.append(idx, np.int32(-1))


def _gather(indices: NDArray[np.int32], rows: NDArray[np.int32]) -> NDArray[np.int32]:
    """``indices[rows]``, with -1 for rows < 0 (they pick the final -1)."""
    sentinel = indices.shape[0] - 1
    return indices.take(np.where(rows < 0, sentinel, rows))


def _one(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _decode(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    col = _one(col)
    if pa.types.is_dictionary(col.type):
        return col.dictionary_decode()
    return col


def _null_mask(arr: pa.Array) -> pa.Array | None:
    if arr.null_count == 0:
        return None
    return arr.is_null()


def _merge(existing: pa.Array | None, new: pa.Array, overwrite: bool) -> pa.Array:
    """``new`` cast to the existing column's type; existing non-null values win unless told."""
    if existing is None:
        return new
    new = new.cast(existing.type)
    if overwrite:
        return new
    return pc.coalesce(existing, new)


def _set_column(table: pa.Table, name: str, values: pa.Array, overwrite: bool) -> pa.Table:
    if name in table.column_names:
        idx = table.column_names.index(name)
        merged = _merge(_one(table.column(name)), values, overwrite)
        return table.set_column(idx, name, merged)
    return table.append_column(name, values)
