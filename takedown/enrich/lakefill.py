"""Enrich events already in the lake (simulated or imported before enrichment was set up)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from takedown.enrich.enricher import Enricher
from takedown.home import Home

__all__ = ["enrich_lake", "enricher_from_settings"]


def enricher_from_settings(settings: object) -> Enricher:
    """The embedded default, or the files the settings name (MMDB, pyasn, ...)."""
    paths = {
        "mmdb": getattr(settings, "enrich_mmdb", ""),
        "pyasn": getattr(settings, "enrich_pyasn", ""),
    }
    given = {k: Path(v) for k, v in paths.items() if v}
    if not given:
        return Enricher.default()
    return Enricher.from_files(**given, fill_default=True)


def enrich_lake(
    home: Home,
    enricher: Enricher,
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> tuple[int, int]:
    """Fill source.asn/as_name/network/cc in every lake file; (files, events). Atomic per file."""
    files = sorted(home.events.glob("*/*.parquet"))
    events = 0
    for i, path in enumerate(files, 1):
        table = pq.read_table(path)
        enriched = enricher.enrich_table(table, overwrite=overwrite)
        tmp = path.with_name(f".{path.name}.enrich")
        pq.write_table(enriched, tmp, compression="zstd", compression_level=1)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
        events += table.num_rows
        if progress:
            progress(i, len(files))
    return len(files), events
