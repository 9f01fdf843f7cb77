"""The C block encoder (``_ipc.encode``) against pyarrow, batch for batch.

``spool.encode_rows`` gives the C encoder every block and pyarrow (``rows_to_batch``) any block
the encoder does not take. Here both are asked about random blocks of every column kind, with
nulls, boundaries, non-ASCII text and values of the wrong type, and the messages must decode to
equal, valid batches (or both refuse the rows).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_protocol import FUZZ

from takedown.sinkhole import spool
from takedown.sinkhole._ipc import UnsupportedError, encode
from takedown.sinkhole.protocol import SPOOL_SCHEMA

SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("us", tz="UTC")),
        ("port", pa.int32()),
        ("size", pa.int64()),
        ("name", pa.string()),
        ("raw", pa.binary()),
        ("sha", pa.binary(32)),
        ("odd", pa.binary(3)),
    ]
)
KINDS, WIDTHS = "qiqsbff", (0, 0, 0, 0, 0, 32, 3)

I32, I64 = 2**31, 2**63
# Cells the encoder takes, and a few it must hand to pyarrow (which may take them, or refuse).
T = 2**55  # microseconds (about 1,100 years) either side of 1970: Python can show them
_TAKEN = [
    st.integers(-T, T),
    st.integers(-I32, I32 - 1),
    st.integers(-I64, I64 - 1),
    st.text(max_size=12),
    st.binary(max_size=40),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=3, max_size=3),
]
_ODD = st.sampled_from(
    [
        I32,
        -I32 - 1,
        I64,
        1.5,
        True,
        "text",
        b"bytes",
        b"\x00" * 31,
        "\ud800",
        bytearray(b"abc"),
    ]
)


def _cells(odd: bool) -> st.SearchStrategy[tuple[object, ...]]:
    return st.tuples(*(st.none() | c | (_ODD if odd else st.nothing()) for c in _TAKEN))


def _decoded(message: bytes | pa.Buffer, schema: pa.Schema) -> pa.RecordBatch:
    batch = pa.ipc.read_record_batch(pa.py_buffer(message), schema)
    batch.validate(full=True)
    return batch


def _pyarrow(rows: list[tuple[object, ...]], schema: pa.Schema) -> pa.RecordBatch | None:
    try:
        return spool.rows_to_batch(rows, schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError, UnicodeError):
        return None


def test_a_block_of_every_kind_decodes_to_what_pyarrow_makes():
    rows = [
        (1, 2, 3, "ab", b"x", b"s" * 32, b"abc"),
        (None, None, None, None, None, None, None),
        (-T, -(2**31), 2**63 - 1, "é€😀", b"", b"\x00" * 32, b"\xff\xfe\xfd"),
    ]
    got = _decoded(encode(rows, KINDS, WIDTHS), SCHEMA)
    assert got.equals(spool.rows_to_batch(rows, SCHEMA))
    assert got.to_pylist()[2]["name"] == "é€😀"
    assert got.column("size").to_pylist() == [3, None, 2**63 - 1]
    # The same layout as pyarrow's: the message is read by the stream reader too.
    message = pa.ipc.read_message(pa.py_buffer(encode(rows, KINDS, WIDTHS)))
    assert message.type == "record batch"


def test_empty_and_all_null_blocks():
    assert _decoded(encode([], KINDS, WIDTHS), SCHEMA).num_rows == 0
    nulls = [(None,) * 7] * 9  # a validity bitmap of two bytes, all clear
    got = _decoded(encode(nulls, KINDS, WIDTHS), SCHEMA)
    assert got.num_rows == 9
    assert all(column.null_count == 9 for column in got.columns)


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ((1.5, 0, 0, "", b"", None, None), "row 1, column 0: not an int"),
        ((0, 2**31, 0, "", b"", None, None), "column 1: int out of range"),
        ((0, 0, 2**63, "", b"", None, None), "column 2: int out of range"),
        ((0, True, 0, "", b"", None, None), "column 1: not an int"),
        ((0, 0, 0, b"", b"", None, None), "column 3: not a str"),
        ((0, 0, 0, "\ud800", b"", None, None), "column 3: not valid Unicode"),
        ((0, 0, 0, "", "", None, None), "column 4: not bytes"),
        ((0, 0, 0, "", b"", b"short", None), "column 5: not bytes of the column's width"),
        ((0, 0, 0), "row 1, column -1: not a tuple of the schema's width"),
    ],
)
def test_values_it_does_not_take_are_refused_with_where(row, why):
    with pytest.raises(UnsupportedError, match=why):
        encode([(0, 0, 0, "", b"", None, None), row], KINDS, WIDTHS)
    assert issubclass(UnsupportedError, TypeError)


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="unknown column kind 'x'"):
        encode([], "qx", (0, 0))
    with pytest.raises(ValueError, match="kinds and widths"):
        encode([], "qq", (0,))
    with pytest.raises(ValueError, match="width of 1 to 1 MiB"):
        encode([], "f", (0,))
    with pytest.raises(TypeError):
        encode((), "q", (0,))  # rows must be a list


@FUZZ
@given(st.lists(_cells(odd=False), max_size=70))
@example([(None,) * 7] * 8)
@example([(0, 0, 0, "x" * 1000, b"y" * 1000, b"z" * 32, b"abc")] * 65)
def test_fuzz_encoder_equals_pyarrow(rows):
    got = _decoded(encode(rows, KINDS, WIDTHS), SCHEMA)
    want = spool.rows_to_batch(rows, SCHEMA)
    assert got.equals(want)
    assert got.to_pylist() == want.to_pylist()


@FUZZ
@given(st.lists(_cells(odd=True), min_size=1, max_size=20))
def test_fuzz_encode_rows_falls_back_to_pyarrow(rows):
    """Whatever the values, ``encode_rows`` decodes to pyarrow's batch or raises as it does."""
    want = _pyarrow(rows, SCHEMA)
    if want is None:
        with pytest.raises((pa.ArrowException, TypeError, ValueError, OverflowError, UnicodeError)):
            spool.encode_rows(rows, SCHEMA)
        return
    assert _decoded(spool.encode_rows(rows, SCHEMA), SCHEMA).equals(want)


def test_the_spool_schema_has_a_native_layout():
    """Every column of the sinkhole's rows has a kind, so its blocks never need pyarrow."""
    assert spool.NATIVE
    plan = spool._plan(SPOOL_SCHEMA)
    assert plan.kinds is not None
    assert len(plan.kinds) == len(SPOOL_SCHEMA)
    # A schema with a type the encoder lacks goes to pyarrow whole.
    assert spool._plan(pa.schema([("flag", pa.bool_())])).kinds is None
    assert _decoded(
        spool.encode_rows([(True,)], pa.schema([("flag", pa.bool_())])),
        pa.schema([("flag", pa.bool_())]),
    ).to_pylist() == [{"flag": True}]
