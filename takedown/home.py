"""The layout of a takedown home folder (``--home``): one place for all state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Home"]


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def spool(self) -> Path:
        """One folder per sinkhole worker (sensor) holding open and closed segments."""
        return self.root / "spool"

    @property
    def ingested(self) -> Path:
        """Closed segments already in the lake, kept as the original evidence."""
        return self.root / "spool-ingested"

    @property
    def quarantine(self) -> Path:
        """What ingest could not read, with a note of why, for replay."""
        return self.root / "quarantine"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def events(self) -> Path:
        """The event table: Parquet files partitioned by day (Hive style, day=YYYY-MM-DD)."""
        return self.lake / "events"

    @property
    def catalog(self) -> Path:
        return self.root / "takedown.duckdb"

    @property
    def rules(self) -> Path:
        """User signature rules, tried before the built-in ones."""
        return self.root / "rules"

    @property
    def run(self) -> Path:
        """Running sinkholes' pid and port files."""
        return self.root / "run"

    def ensure(self) -> None:
        for folder in (self.root, self.spool, self.lake, self.events, self.rules, self.run):
            folder.mkdir(parents=True, exist_ok=True)
