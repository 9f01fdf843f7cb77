"""What one data source knows, as range partitions plus a per-row payload table.

A :class:`Layer` plays one role:

- ``asn``: the network an address is announced in, with ``asn`` (int64, may be null),
  ``as_name`` (string) and ``network`` (CIDR text) per row;
- ``geo``: the country of an address, ``cc`` (ISO 3166-1 alpha-2) per row.

Loaders (geoip2fast ``.dat.gz``, MaxMind MMDB, pyasn tables) all produce layers; the enricher
overlays one ``asn`` layer and one ``geo`` layer into a single searchable table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from takedown.enrich.ranges import U64, Partition

__all__ = ["ASN_SCHEMA", "GEO_SCHEMA", "Layer", "Role", "split_families"]

Role = Literal["asn", "geo"]

ASN_SCHEMA = pa.schema(
    [
        pa.field("asn", pa.int64()),
        pa.field("as_name", pa.dictionary(pa.int32(), pa.string())),
        pa.field("network", pa.string()),
    ]
)
GEO_SCHEMA = pa.schema([pa.field("cc", pa.dictionary(pa.int32(), pa.string()))])

_V4_MAX = np.uint64(0xFFFF_FFFF)


@dataclass(frozen=True)
class Layer:
    """Partitions of both address families whose values are rows of ``payload``."""

    role: Role
    v4: Partition
    v6: Partition
    payload: pa.Table
    source: str  # human-readable description of where the data came from

    def __post_init__(self) -> None:
        expected = ASN_SCHEMA if self.role == "asn" else GEO_SCHEMA
        if not self.payload.schema.equals(expected):
            raise ValueError(f"{self.role} payload schema must be {expected}")

    @classmethod
    def empty(cls, role: Role, source: str = "none") -> Layer:
        """A layer that knows nothing."""
        schema = ASN_SCHEMA if role == "asn" else GEO_SCHEMA
        return cls(role, Partition.empty(32), Partition.empty(128), schema.empty_table(), source)


def split_families(
    hi: U64, lo: U64, is_v6: NDArray[np.bool_]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Indices of IPv4 rows and IPv6 rows (IPv4 must have ``hi == 0`` and ``lo < 2**32``)."""
    v4 = np.flatnonzero(~is_v6)
    if v4.size and ((hi[v4] != 0).any() or (lo[v4] > _V4_MAX).any()):
        raise ValueError("IPv4 row out of the 32-bit space")
    return v4, np.flatnonzero(is_v6)
