"""One measurement, two engines: DuckDB (embedded default) and Apache Spark (scale-out).

Queries are written once in DuckDB's SQL over a view ``events`` (the lake, nested columns) and
run as they are on DuckDB, or transpiled by sqlglot to Spark SQL. Results come back as Arrow
tables either way, so everything after the query is shared.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import sqlglot

from takedown.errors import TakedownError
from takedown.home import Home
from takedown.lake import events_sql, has_events

__all__ = ["ENGINES", "DuckDBEngine", "Engine", "SparkEngine", "open_engine"]

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")


class Engine(Protocol):
    name: str

    def query(self, sql: str, views: dict[str, pa.Table] | None = None) -> pa.Table:
        """Run one DuckDB-dialect query over ``events`` (and small Arrow ``views``)."""
        ...

    def materialize(self, name: str, sql: str) -> None:
        """Compute a query once and keep it as a table ``name`` for the following queries."""
        ...

    def close(self) -> None: ...


class DuckDBEngine:
    """The embedded default: DuckDB over the Parquet lake, no server."""

    name = "duckdb"

    def __init__(self, home: Home, threads: int | None = None) -> None:
        if not has_events(home):
            raise TakedownError(
                f"no events in {home.events}: run `takedown ingest` or `takedown simulate` first"
            )
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(f"CREATE VIEW events AS SELECT * FROM {events_sql(home)}")

    def query(self, sql: str, views: dict[str, pa.Table] | None = None) -> pa.Table:
        for name, table in (views or {}).items():
            self.con.register(name, table)
        try:
            return self.con.sql(sql).to_arrow_table()
        finally:
            for name in views or {}:
                self.con.unregister(name)

    def materialize(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def close(self) -> None:
        self.con.close()


class SparkEngine:
    """Apache Spark over the same Parquet lake (``local[*]`` unless told otherwise).

    Point it at a cluster with ``TAKEDOWN_SPARK_MASTER`` (e.g. ``spark://host:7077`` or
    ``yarn``) and put the lake on storage every executor reads (HDFS, S3, a shared mount).
    """

    name = "spark"

    def __init__(self, home: Home, master: str | None = None) -> None:
        if not has_events(home):
            raise TakedownError(
                f"no events in {home.events}: run `takedown ingest` or `takedown simulate` first"
            )
        try:
            from pyspark.sql import SparkSession
        except ImportError:  # pragma: no cover - pyspark is a pinned dependency
            raise TakedownError("--engine spark needs pyspark (pip install pyspark)") from None
        master = master or os.environ.get("TAKEDOWN_SPARK_MASTER", "local[2]")
        builder = (
            SparkSession.builder.master(master)
            .appName("takedown-measure")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config(
                "spark.sql.shuffle.partitions", os.environ.get("TAKEDOWN_SPARK_PARTITIONS", "8")
            )
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            # `day=YYYY-MM-DD` stays a string, as DuckDB reads it.
            .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        )
        if master.startswith("local"):
            builder = builder.config("spark.driver.host", "127.0.0.1").config(
                "spark.driver.bindAddress", "127.0.0.1"
            )
        self.spark: Any = builder.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")
        files = sorted(str(p) for p in Path(home.events).glob("*/*.parquet"))
        df = (
            self.spark.read.option("basePath", str(home.events))
            .option("mergeSchema", "true")
            .parquet(*files)
        )
        df.createOrReplaceTempView("events")

    def query(self, sql: str, views: dict[str, pa.Table] | None = None) -> pa.Table:
        for name, table in (views or {}).items():
            self.spark.createDataFrame(table).createOrReplaceTempView(name)
        spark_sql = to_spark(sql)
        log.debug("spark sql: %s", spark_sql)
        result: pa.Table = self.spark.sql(spark_sql).toArrow()
        return result

    def materialize(self, name: str, sql: str) -> None:
        self.spark.sql(to_spark(sql)).cache().createOrReplaceTempView(name)

    def close(self) -> None:
        self.spark.stop()


def to_spark(sql: str) -> str:
    """DuckDB SQL → Spark SQL (sqlglot), for the constructs the measurement uses."""
    return str(sqlglot.transpile(sql, read="duckdb", write="spark")[0])


def open_engine(name: str, home: Home) -> Engine:
    if name == "duckdb":
        return DuckDBEngine(home)
    if name == "spark":
        return SparkEngine(home)
    raise TakedownError(f"--engine {name!r}: choose one of {', '.join(ENGINES)}")
