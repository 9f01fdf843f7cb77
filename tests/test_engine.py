"""The same measurement on DuckDB and on Spark (local mode) gives the same answers."""

import datetime as dt
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from takedown import schema
from takedown.errors import TakedownError
from takedown.home import Home
from takedown.measure import counts
from takedown.measure.engine import DuckDBEngine, SparkEngine, open_engine, to_spark
from takedown.measure.estimate import estimate

START = dt.datetime(2011, 3, 14, tzinfo=dt.UTC)


def make_lake(root, events=6000, seed=3):
    rng = random.Random(seed)
    home = Home(root)
    home.ensure()
    rows = []
    for _i in range(events):
        fam = rng.choice(["rustock", "rustock", "gozi"])
        machine = rng.randrange(400)
        when = START + dt.timedelta(minutes=rng.randrange(4 * 24 * 60))
        rows.append(
            {
                "time.source": when,
                "time.observation": when,
                "source.ip": f"198.51.{machine % 7}.{(machine * 7 + when.day) % 250}",
                "source.asn": 64500 + machine % 7,
                "source.as_name": f"NET{machine % 7}",
                "source.network": f"198.51.{machine % 7}.0/24",
                "source.geolocation.cc": ["RU", "US", "DE"][machine % 3],
                "malware.name": fam,
                "extra.bot_id": f"{machine:08x}" if fam == "gozi" else None,
            }
        )
    flat = pa.Table.from_pylist(
        rows, schema=schema.flat_schema([f for f in schema.FIELDS if f.name in rows[0]])
    )
    nested = schema.nest(flat)
    days = pa.compute.cast(pa.compute.struct_field(nested.column("time"), "source"), pa.date32())
    for day in sorted(set(days.to_pylist())):
        part = nested.filter(pa.compute.equal(days, day))
        out = home.events / f"day={day.isoformat()}"
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, out / "test.parquet")
    return home


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    home = make_lake(tmp_path_factory.mktemp("lake"))
    duck = DuckDBEngine(home)
    spark = SparkEngine(home)
    yield duck, spark
    duck.close()
    spark.close()


def _rows(table, drop=()):
    rows = table.to_pylist()
    for r in rows:
        for k in drop:
            r.pop(k, None)
        for k, v in list(r.items()):
            if isinstance(v, dt.datetime):
                r[k] = v.astimezone(dt.UTC).replace(tzinfo=None)
    return rows


@pytest.mark.slow
def test_exact_counts_identical_and_hll_within_error(engines):
    duck, spark = engines
    w = counts.Window(since=dt.date(2011, 3, 15))
    for period in ("day", "hour"):
        d = counts.timeline(duck, w, period)
        s = counts.timeline(spark, w, period)
        assert _rows(d, ["unique_ips_hll"]) == _rows(s, ["unique_ips_hll"])
        for a, b, exact in zip(
            d.column("unique_ips_hll").to_pylist(),
            s.column("unique_ips_hll").to_pylist(),
            d.column("unique_ips").to_pylist(),
            strict=True,
        ):
            # Spark's HLL++ states 5% relative standard deviation; allow two of them.
            assert abs(a - exact) <= max(3, 0.1 * exact)
            assert abs(b - exact) <= max(3, 0.1 * exact)
    for group in counts.GROUPS:
        assert _rows(counts.by_group(duck, w, group)) == _rows(counts.by_group(spark, w, group))
    fam = counts.Window(family="gozi")
    assert _rows(counts.addresses(duck, fam, 30)) == _rows(counts.addresses(spark, fam, 30))


@pytest.mark.slow
def test_estimates_identical_on_both_engines(engines):
    duck, spark = engines
    w = counts.Window()
    a, b = estimate(duck, w), estimate(spark, w)
    assert a.models == b.models
    ta, tb = a.total_window(), b.total_window()
    for k in ta:
        assert ta[k] == pytest.approx(tb[k], rel=1e-9)
    da, db = _rows(a.total_daily()), _rows(b.total_daily())
    assert [r["day"] for r in da] == [r["day"] for r in db]
    for x, y in zip(da, db, strict=True):
        for k in ("ips", "machines", "low", "high"):
            assert x[k] == pytest.approx(y[k], rel=1e-9)


def test_spark_sql_transpiles_the_constructs_used():
    sql = to_spark(
        "SELECT date_trunc('day', \"time\".source), approx_count_distinct(source.ip)"
        " FROM events GROUP BY ALL"
    )
    assert "`time`.source" in sql and "APPROX_COUNT_DISTINCT" in sql


def test_unknown_engine_and_empty_lake(tmp_path):
    with pytest.raises(TakedownError, match="no events"):
        DuckDBEngine(Home(tmp_path))
    with pytest.raises(TakedownError, match="choose one of"):
        open_engine("oracle", Home(tmp_path))
