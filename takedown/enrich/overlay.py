"""One ASN layer and one geo layer overlaid into the table the enricher searches.

Each family's partition has two value columns (ASN payload row, geo payload row), so one
``searchsorted`` per address answers every field. The tables round-trip through a single
uncompressed ``.npz`` file (numeric arrays plus the payloads as Arrow IPC bytes).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from takedown.enrich.layers import ASN_SCHEMA, GEO_SCHEMA, Layer
from takedown.enrich.ranges import FamilyTable, Partition

__all__ = ["FORMAT", "Tables"]

FORMAT = 2  # bump when the cached layout or a loader's output changes


@dataclass(frozen=True)
class Tables:
    """Searchable partitions plus payloads; ``asn_cc`` is each ASN row's main country."""

    v4: FamilyTable
    v6: FamilyTable
    asn: pa.Table  # ASN_SCHEMA
    geo: pa.Table  # GEO_SCHEMA
    asn_cc: pa.Array  # dictionary<int32, string>, one per asn row
    sources: dict[str, str]

    @classmethod
    def build(cls, asn: Layer, geo: Layer) -> Tables:
        """Overlay the layers and work out each announced network's main country."""
        if asn.role != "asn" or geo.role != "geo":
            raise ValueError("Tables.build needs an asn layer and a geo layer")
        v4 = asn.v4.overlay(geo.v4)
        v6 = asn.v6.overlay(geo.v6)
        asn_cc = _main_country(asn.payload.num_rows, geo.payload, (v4, v6))
        return cls(
            FamilyTable.of(v4),
            FamilyTable.of(v6),
            asn.payload,
            geo.payload,
            asn_cc,
            {"asn": asn.source, "geo": geo.source},
        )

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename) so readers never see half a file."""
        arrays: dict[str, NDArray[np.generic]] = {}
        arrays["v4_start"] = self.v4.starts32
        arrays["v4_values"] = self.v4.partition.values
        arrays["v6_hi"] = self.v6.partition.hi
        arrays["v6_lo"] = self.v6.partition.lo
        arrays["v6_values"] = self.v6.partition.values
        asn = self.asn.append_column("cc", self.asn_cc)
        arrays["asn_ipc"] = _ipc_bytes(asn)
        arrays["geo_ipc"] = _ipc_bytes(self.geo)
        meta = {"format": FORMAT, "sources": self.sources}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Tables:
        """Read a file written by :meth:`save` (raises ValueError if it is not one)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("format") != FORMAT:
                    raise ValueError(f"{path}: cache format {meta.get('format')} != {FORMAT}")
                start = z["v4_start"]
                v4 = Partition(
                    32, np.zeros(start.shape[0], np.uint64), start.astype(np.uint64), z["v4_values"]
                )
                v6 = Partition(128, z["v6_hi"], z["v6_lo"], z["v6_values"])
                asn = _read_ipc(z["asn_ipc"])
                geo = _read_ipc(z["geo_ipc"])
        except (OSError, KeyError, json.JSONDecodeError, pa.ArrowException) as exc:
            raise ValueError(f"{path}: unreadable enrichment cache ({exc})") from exc
        asn_cc = asn.column("cc").combine_chunks()
        asn = asn.drop_columns(["cc"]).cast(ASN_SCHEMA)
        return cls(
            FamilyTable.of(v4),
            FamilyTable.of(v6),
            asn,
            geo.cast(GEO_SCHEMA),
            asn_cc,
            dict(meta["sources"]),
        )


def _ipc_bytes(table: pa.Table) -> NDArray[np.uint8]:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return np.frombuffer(sink.getvalue(), np.uint8)


def _read_ipc(data: NDArray[np.uint8]) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()


def _main_country(n_asn: int, geo: pa.Table, partitions: tuple[Partition, Partition]) -> pa.Array:
    """For each ASN row, the country covering most of its addresses (null if none)."""
    cc_col = geo.column("cc").combine_chunks()
    if isinstance(cc_col, pa.ChunkedArray):  # empty tables stay chunked
        cc_col = pa.array([], cc_col.type)
    cc_dict = cc_col.dictionary
    cc_of_geo = np.asarray(cc_col.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
    rows, ccs, sizes = [], [], []
    for part in partitions:
        a = part.values[:, 0].astype(np.int64)
        g = part.values[:, 1].astype(np.int64)
        ok = (a >= 0) & (g >= 0)
        if not ok.any():
            continue
        c = cc_of_geo[g[ok]]
        good = c >= 0
        rows.append(a[ok][good])
        ccs.append(c[good])
        sizes.append(part.sizes()[ok][good])
    best = np.full(n_asn, -1, np.int64)
    if rows:
        r, c, s = np.concatenate(rows), np.concatenate(ccs), np.concatenate(sizes)
        n_cc = max(len(cc_dict), 1)
        key = r * n_cc + c
        uniq, inverse = np.unique(key, return_inverse=True)
        total = np.bincount(inverse, weights=s)
        ur, uc = uniq // n_cc, uniq % n_cc
        order = np.lexsort((-total, ur))
        first = np.ones(order.shape[0], bool)
        first[1:] = ur[order][1:] != ur[order][:-1]
        best[ur[order][first]] = uc[order][first]
    idx = pa.array(best.astype(np.int32), pa.int32(), mask=best < 0)
    return pa.DictionaryArray.from_arrays(idx, cc_dict)
