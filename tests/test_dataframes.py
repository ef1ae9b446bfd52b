"""Dataframes: Arrow in, Arrow out, bit for bit, in chunks."""

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustore_lite import SchemaMismatch

TYPES = {
    "int8": (pa.int8(), st.integers(-128, 127)),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "uint32": (pa.uint32(), st.integers(0, 2**32 - 1)),
    "float32": (pa.float32(), st.floats(width=32, allow_nan=True)),
    "float64": (pa.float64(), st.floats(allow_nan=True, allow_infinity=True)),
    "string": (pa.string(), st.text(max_size=20)),
    "large_string": (pa.large_string(), st.text(max_size=5)),
    "binary": (pa.binary(), st.binary(max_size=10)),
    "bool": (pa.bool_(), st.booleans()),
    "ts_us_utc": (pa.timestamp("us", tz="UTC"),
                  st.datetimes(timezones=st.just(dt.timezone.utc),
                               min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1))),
    "ts_ns": (pa.timestamp("ns"), st.datetimes(min_value=dt.datetime(1700, 1, 1),
                                               max_value=dt.datetime(2200, 1, 1))),
    "date": (pa.date32(), st.dates()),
    "null": (pa.null(), st.none()),
}


@st.composite
def tables(draw):
    # any column name but one with a NUL, which PostgreSQL cannot store (refused), or a
    # lone surrogate, which is no UTF-8 (Arrow cannot name a column with it)
    name = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)
    names = draw(st.lists(name, min_size=1, max_size=5, unique=True))
    kinds = [draw(st.sampled_from(sorted(TYPES))) for _ in names]
    rows = draw(st.integers(0, 40))
    columns = []
    for kind in kinds:
        arrow_type, values = TYPES[kind]
        column = draw(st.lists(st.one_of(st.none(), values), min_size=rows, max_size=rows))
        columns.append(pa.array(column, type=arrow_type))
    return pa.table(dict(zip(names, columns)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables(), chunk_rows=st.integers(1, 17), compression=st.sampled_from([None, "lz4", "zstd"]))
def test_any_table_round_trips_bit_for_bit(store, table, chunk_rows, compression):
    frame = store.dataframes.create(table, chunk_rows=chunk_rows, compression=compression)
    back = store.dataframes.read(frame["id"])
    assert back.schema.equals(table.schema, check_metadata=True)
    # compare the bits (Table.equals says NaN != NaN)
    for original, read in zip(table.columns, back.columns):
        assert _bits(original) == _bits(read)
    assert frame["rows"] == table.num_rows and frame["dim"] == table.num_columns
    assert frame["columns"] == table.column_names
    chunks = store.dataframes.chunks(frame["id"])
    assert [c["rows"] for c in chunks] == _expected_chunks(table.num_rows, chunk_rows)
    assert frame["size"] == sum(c["size"] for c in chunks)


def _bits(column: pa.ChunkedArray) -> bytes:
    """The column's values as IPC bytes: equal bits, NaN payloads included."""
    batch = pa.record_batch([column.combine_chunks()], names=["c"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _expected_chunks(rows: int, chunk_rows: int) -> list[int]:
    full, rest = divmod(rows, chunk_rows)
    return [chunk_rows] * full + ([rest] if rest else [])


def test_inputs_accepted(store):
    expected = {"x": [1, 2], "y": ["a", "b"]}
    for data in (pa.table(expected), pa.table(expected).to_batches()[0],
                 pd.DataFrame(expected), expected, pa.table(expected).to_batches(),
                 pa.RecordBatchReader.from_batches(pa.table(expected).schema,
                                                   pa.table(expected).to_batches())):
        frame = store.dataframes.create(data)
        assert store.dataframes.read(frame["id"]).to_pydict() == expected, type(data)


def test_empty_dataframe_then_first_append_sets_schema(store):
    frame = store.dataframes.create()
    assert store.dataframes.read(frame["id"]).num_columns == 0
    store.dataframes.append(frame["id"], {"x": [1]})
    with pytest.raises(SchemaMismatch, match="x: int64"):
        store.dataframes.append(frame["id"], {"x": ["one"]})
    with pytest.raises(SchemaMismatch):
        store.dataframes.append(frame["id"], {"x": [1], "y": [2]})
    after = store.dataframes.get(frame["id"])
    assert after.rows == 1 and store.dataframes.read(frame["id"]).to_pydict() == {"x": [1]}


def test_empty_table_keeps_its_schema(store):
    table = pa.table({"x": pa.array([], pa.int32()), "t": pa.array([], pa.timestamp("ms"))})
    frame = store.dataframes.create(table)
    assert store.dataframes.read(frame["id"]).schema == table.schema
    assert frame["rows"] == 0 and frame["dim"] == 2


def test_append_keeps_sizes_and_order(store):
    frame = store.dataframes.create({"x": list(range(5))}, chunk_rows=2, metadata={"iter": 1})
    store.dataframes.append(frame["id"], {"x": list(range(5, 12))}, chunk_rows=4)
    after = store.dataframes.get(frame["id"])
    assert after.rows == 12 and after.metadata == {"iter": 1}
    assert store.dataframes.read(frame["id"]).column("x").to_pylist() == list(range(12))
    assert [c["position"] for c in store.dataframes.chunks(frame["id"])] == [1, 2, 3, 4, 5]
    assert after.size == sum(c["size"] for c in store.dataframes.chunks(frame["id"]))


def test_iterating_batches_one_chunk_at_a_time(store):
    frame = store.dataframes.create({"x": list(range(100))}, chunk_rows=30)
    batches = list(store.dataframes.iter_batches(frame["id"]))
    assert [b.num_rows for b in batches] == [30, 30, 30, 10]
    first = store.dataframes.chunks(frame["id"])[0]
    assert store.dataframes.read_chunk(first["id"]).column("x").to_pylist() == list(range(30))


def test_read_is_built_from_the_stored_buffers(store):
    frame = store.dataframes.create({"x": list(range(1000))}, chunk_rows=250)
    table = store.dataframes.read(frame["id"])
    assert table.column("x").num_chunks == 4  # one record batch per chunk, no re-copy


def test_read_selected_columns(store):
    frame = store.dataframes.create({"x": [1], "y": [2], "z": [3]})
    assert store.dataframes.read(frame["id"], columns=["z", "x"]).column_names == ["z", "x"]


def test_metadata_update(store):
    frame = store.dataframes.create({"x": [1]})
    assert store.dataframes.update(frame["id"], metadata={"duration": 1.5}).metadata == {"duration": 1.5}
