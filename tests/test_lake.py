import datetime as dt

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from takedown import lake, schema
from takedown.errors import IngestError
from takedown.home import Home
from takedown.sinkhole.protocol import SPOOL_SCHEMA, ParsedRequest, Sensor, http_row
from takedown.sinkhole.rules import Match
from takedown.sinkhole.spool import SpoolWriter

SENSOR = Sensor("test-w0", "tests", ("host", "user-agent"))
DAY1 = int(dt.datetime(2011, 3, 16, 23, 59, tzinfo=dt.UTC).timestamp() * 1e6)
DAY2 = int(dt.datetime(2011, 3, 17, 0, 1, tzinfo=dt.UTC).timestamp() * 1e6)


def row(i, when, family="rustock", ip=None):
    req = ParsedRequest(
        method="POST",
        target=f"/login.php?lg={i}",
        version="1.1",
        headers={"host": "c2.example", "user-agent": "ua"},
        body_size=96,
        body_sha256="00" * 32,
        body_prefix=b"\x01" * 96,
        keep_alive=True,
    )
    match = Match(family, f"{family}.rule", None, "malicious-code", "infected-system")
    return http_row(
        req,
        match,
        now_us=when,
        peer=(ip or f"198.51.100.{i % 250}", 1000 + i),
        local=("127.0.0.1", 80),
        sensor=SENSOR,
        status=200,
    )


def fill(home, sensor, batches):
    w = SpoolWriter(home.spool / sensor, sensor, SPOOL_SCHEMA, preallocate=0)
    w.open()
    for b in batches:
        w.write(b)
    w.close()


def lake_ids(home):
    con = duckdb.connect()
    got = con.sql(f"SELECT extra.http.target FROM {lake.events_sql(home)}").fetchall()
    return sorted(int(t.split("lg=")[1]) for (t,) in got)


def test_ingest_partitions_by_day_and_is_idempotent(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    fill(home, "a-w0", [[row(i, DAY1) for i in range(5)], [row(i, DAY2) for i in range(5, 9)]])
    fill(home, "b-w0", [[row(i, DAY2, "gozi") for i in range(9, 12)]])
    report = lake.ingest(home)
    assert (report.segments, report.events) == (2, 12)
    assert sorted(p.name for p in home.events.iterdir()) == ["day=2011-03-16", "day=2011-03-17"]
    assert lake_ids(home) == list(range(12))
    # Nothing left to do; running again changes nothing.
    again = lake.ingest(home)
    assert (again.segments, again.events) == (0, 0)
    assert lake_ids(home) == list(range(12))
    assert len(list(home.ingested.glob("*/*.seg"))) == 2
    days = {d["day"]: d["events"] for d in lake.lake_summary(home)}
    assert days == {"2011-03-16": 5, "2011-03-17": 7}


def test_a_segment_ingested_but_not_moved_is_not_duplicated(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    fill(home, "a-w0", [[row(i, DAY1) for i in range(4)]])
    (seg,) = list(home.spool.glob("*/*.seg"))
    saved = seg.read_bytes()
    lake.ingest(home)
    # A crash after the catalog commit but before the move: the segment is back in the spool.
    seg.write_bytes(saved)
    report = lake.ingest(home)
    assert report.skipped_already == 1 and report.events == 0
    assert lake_ids(home) == [0, 1, 2, 3]


def test_a_segment_written_to_the_lake_but_not_cataloged_is_rewritten_not_doubled(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    fill(home, "a-w0", [[row(i, DAY1) for i in range(4)]])
    (seg,) = list(home.spool.glob("*/*.seg"))
    saved = seg.read_bytes()
    lake.ingest(home)
    # A crash after the Parquet rename but before the catalog row: forget the catalog.
    home.catalog.unlink()
    seg.write_bytes(saved)
    report = lake.ingest(home)
    assert report.events == 4
    assert lake_ids(home) == [0, 1, 2, 3]


def test_query_filters(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    fill(home, "a-w0", [[row(i, DAY1 + i) for i in range(3)] + [row(3, DAY2, "gozi")]])
    lake.ingest(home)
    assert lake.query_events(home, family="gozi").num_rows == 1
    since = dt.datetime(2011, 3, 17, tzinfo=dt.UTC)
    assert lake.query_events(home, since=since).num_rows == 1
    assert lake.query_events(home, until=since).num_rows == 3
    assert lake.query_events(home, ip="198.51.100.2").num_rows == 1
    assert lake.query_events(home, application="dns").num_rows == 0
    newest = lake.query_events(home, limit=2)
    assert newest.column("extra.http.target").to_pylist() == ["/login.php?lg=2", "/login.php?lg=3"]
    assert "source.ip" in newest.schema.names
    # The body hash is kept as 32 bytes and shown as 64 hex digits.
    assert newest.column("extra.body.sha256").to_pylist() == ["00" * 32] * 2
    blob = duckdb.sql(f"SELECT DISTINCT extra.body.sha256 FROM {lake.events_sql(home)}").fetchall()
    assert blob == [(b"\x00" * 32,)]


def test_empty_home_queries_cleanly(tmp_path):
    home = Home(tmp_path)
    assert lake.query_events(home).num_rows == 0
    assert lake.lake_summary(home) == []
    assert lake.spool_summary(home) == []


def test_orphaned_open_segment_is_recovered_by_ingest(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    w = SpoolWriter(home.spool / "dead-w0", "dead-w0", SPOOL_SCHEMA, preallocate=1 << 16)
    w.open()
    w.write([row(i, DAY1) for i in range(3)])
    import os

    os.close(w._lock_fd)  # the writer "dies": lock released, segment left open
    summary = lake.spool_summary(home)
    assert summary[0]["open_segments"] == 1 and summary[0]["waiting_events"] == 3
    report = lake.ingest(home)
    assert report.events == 3 and report.recovered


def test_second_ingest_at_once_is_refused(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    with lake._ingest_lock(home), pytest.raises(IngestError, match="another"):
        lake.ingest(home)


def test_ingest_with_an_enricher_fills_network_as_and_country(tmp_path):
    from takedown.enrich import Enricher

    home = Home(tmp_path)
    home.ensure()
    addresses = ["8.8.8.8", "77.88.55.60", "2a02:6b8::2:242", "198.51.100.7", "1.1.1.1"]
    enricher = Enricher.default()
    # Enough repeats that each address is looked up once (the de-duplicating path).
    batch = [row(i, DAY1, ip=addresses[i % 5]) for i in range(5000)]
    fill(home, "a-w0", [batch])
    lake.ingest(home, enricher=enricher)
    got = (
        duckdb.connect()
        .sql(
            f"SELECT source.ip, any_value(source.asn), any_value(source.as_name), "
            f"any_value(source.network), any_value(source.geolocation.cc), count(*), "
            f"count(DISTINCT (source.as_name, source.network, source.geolocation.cc)) "
            f"FROM {lake.events_sql(home)} GROUP BY 1 ORDER BY 1"
        )
        .fetchall()
    )
    want = {d["ip"]: d for d in enricher.lookup(addresses)}
    assert len(got) == 5
    for ip, asn, as_name, network, cc, n, variants in got:
        assert n == 1000 and variants == 1
        assert (asn, as_name, network, cc) == tuple(
            want[ip][k] for k in ("asn", "as_name", "network", "cc")
        )
    assert want["8.8.8.8"]["cc"] and want["8.8.8.8"]["network"]  # public addresses are known
    assert want["198.51.100.7"]["network"] is None  # documentation range: nothing invented


def test_a_spool_with_hex_hashes_from_an_older_sinkhole_is_ingested_as_bytes(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    i = SPOOL_SCHEMA.get_field_index("extra.body.sha256")
    old_schema = SPOOL_SCHEMA.set(i, pa.field("extra.body.sha256", pa.string()))
    rows = []
    for k, text in enumerate(["ab" * 32, "not hex", None]):
        r = list(row(k, DAY1 + k))
        r[i] = text
        rows.append(tuple(r))
    w = SpoolWriter(home.spool / "old-w0", "old-w0", old_schema, preallocate=0)
    w.open()
    w.write(rows)
    w.close()
    report = lake.ingest(home)
    assert report.events == 3
    got = duckdb.sql(
        f"SELECT extra.body.sha256 FROM {lake.events_sql(home)} ORDER BY extra.http.target"
    ).fetchall()
    assert got == [(b"\xab" * 32,), (None,), (None,)]


# -- columns that hold one value throughout ---------------------------------------------------
def naive_constant(values):
    if not values or any(v is None for v in values) or len(set(values)) != 1:
        return None
    return values[0].encode()


@pytest.mark.parametrize(
    "values",
    [
        ["feed", "feed", "feed"],
        ["feed"],
        ["", "", ""],
        [],
        ["feed", None, "feed"],
        ["feed", "feed", "feeD"],
        # Same bytes and the same total length, cut differently: only the offsets tell.
        ["a", "", "aa"],
        ["ab", "", "abab"],
        ["ab", "abab", ""],
        ["é", "é"],
    ],
)
def test_constant_text_agrees_with_comparing_every_value(values):
    got = lake._constant_text(pa.array(values, pa.string()))
    assert (None if got is None else got.to_pybytes()) == naive_constant(values)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "aa", "ab", "ba", "aba"]))),
    st.integers(0, 5),
    st.integers(0, 5),
)
def test_constant_text_of_any_slice(values, cut_front, cut_back):
    arr = pa.array(values, pa.string())
    part = arr.slice(cut_front, max(0, len(values) - cut_front - cut_back))
    got = lake._constant_text(part)
    assert (None if got is None else got.to_pybytes()) == naive_constant(part.to_pylist())


def test_constant_columns_reach_the_writer_as_dictionaries_and_read_back_as_text(tmp_path):
    home = Home(tmp_path)
    home.ensure()
    fill(home, "a-w0", [[row(i, DAY1, "rustock" if i % 2 else "gozi") for i in range(50)]])
    header, scan, _ = lake._map_segment(next((home.spool / "a-w0").glob("*.seg")))
    batch = lake.decode_block(header.schema, scan.blocks[0])
    nested = lake._nest_blocks([batch])
    feed = nested.schema.field("feed").type
    assert pa.types.is_dictionary(feed.field("name").type)  # one sensor: one value
    malware = nested.schema.field("malware").type
    assert pa.types.is_string(malware.field("name").type)  # two families
    source = nested.schema.field("source").type
    assert all(not pa.types.is_dictionary(f.type) for f in source)  # the enricher's
    lake.ingest(home)
    (path,) = home.events.glob("*/*.parquet")
    back = pq.read_table(path)
    assert back.schema == schema.lake_schema()  # the lake's types, not the dictionaries
    assert set(back.column("feed").combine_chunks().field("name").to_pylist()) == {
        "takedown-sinkhole"
    }
    meta = pq.ParquetFile(path).metadata.row_group(0)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.column(names.index("feed.name"))
    assert chunk.has_dictionary_page and chunk.statistics is None


def test_a_column_constant_in_each_block_but_not_across_them_stays_text():
    big = lake._COPY_BELOW_ROWS  # blocks this large are nested one by one, not copied
    one = pa.RecordBatch.from_pylist(
        [{"feed.name": "a", "feed.provider": "p"}] * big, schema=FLAT_FEED
    )
    two = pa.RecordBatch.from_pylist(
        [{"feed.name": "b", "feed.provider": "p"}] * big, schema=FLAT_FEED
    )
    out = lake._constants_as_dictionaries([one, two])
    assert pa.types.is_string(out[0].schema.field("feed.name").type)
    assert pa.types.is_dictionary(out[0].schema.field("feed.provider").type)
    assert out[0].schema == out[1].schema
    table = pa.Table.from_batches(out)
    assert table.column("feed.provider").to_pylist() == ["p"] * (2 * big)
    assert table.column("feed.name").to_pylist() == ["a"] * big + ["b"] * big


FLAT_FEED = pa.schema([("feed.name", pa.string()), ("feed.provider", pa.string())])


def test_nest_checks_the_types_with_or_without_dictionaries():
    wrong = pa.RecordBatch.from_pydict({"feed.name": pa.array([1, 2], pa.int32())})
    with pytest.raises(TypeError, match="column feed"):
        schema.nest(wrong, dictionaries=True)
    with pytest.raises(TypeError, match="column feed"):
        schema.nest(wrong)  # pyarrow alone would build it with the struct's type wrong


def test_a_constant_column_keeps_its_bytes_even_if_they_are_not_utf8():
    # Arrow does not check the UTF-8 of what the spool decodes; ingest writes it as it is.
    n = 3
    ends = pa.py_buffer(np.arange(n + 1, dtype=np.int32).tobytes())
    bad = pa.Array.from_buffers(pa.string(), n, [None, ends, pa.py_buffer(b"\xff" * n)])
    batch = pa.RecordBatch.from_arrays([bad, bad], schema=FLAT_FEED)
    (out,) = lake._constants_as_dictionaries([batch])
    col = out.column("feed.name")
    assert pa.types.is_dictionary(col.type) and len(col) == n
    assert col.dictionary.buffers()[2].to_pybytes() == b"\xff"
