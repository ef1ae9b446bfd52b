"""Arrow in and out: what the store accepts as a dataframe, and the chunk format.

A chunk is one Arrow IPC *stream* (schema + record batches + end marker) kept as a
BLOB. Reading wraps the BLOB bytes in a pyarrow buffer without copying, so a table
read back is built straight from the bytes SQLite returned: no Python row loop."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ..errors import DataCorrupted, InvalidValue, SchemaMismatch
from . import ipc_size

COMPRESSIONS = (None, "lz4", "zstd")
DEFAULT_CHUNK_ROWS = 65_536
END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # closes every IPC stream


def to_table(data: Any) -> pa.Table:
    """Accept what ACCEPTED lists (but streams, see iter_batches); answer a pyarrow Table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, dict):
        try:
            return pa.table(data)
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise InvalidValue(f"cannot make Arrow columns of this dict: {error}") from None
    if hasattr(data, "__arrow_c_stream__") and not hasattr(data, "to_pandas"):
        return pa.table(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        # a LazyFrame is collected first (its plan runs here)
        return (data.collect() if hasattr(data, "collect") else data).to_arrow()
    if module == "numpy" and getattr(getattr(data, "dtype", None), "names", None):
        return _structured(data)
    raise InvalidValue(ACCEPTED + f", not {type(data).__name__}")


ACCEPTED = ("a dataframe must be a pyarrow Table, RecordBatch or RecordBatchReader, an "
            "iterable of RecordBatches, a pandas DataFrame, a polars DataFrame or LazyFrame, "
            "a numpy structured array or a dict of columns")


def _structured(data: Any) -> pa.Table:
    """A numpy structured array (one field per column) as a table."""
    if data.ndim != 1:
        raise InvalidValue(f"a numpy structured array must be one-dimensional, not {data.ndim}-dimensional")
    try:
        return pa.table({name: data[name] for name in data.dtype.names})
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise InvalidValue(f"cannot make Arrow columns of this numpy array: {error}") from None


def size_hint(data: Any) -> int | None:
    """Bytes of `data` when known without reading it (None for streams)."""
    if data is None:
        return 0
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data.nbytes
    if isinstance(data, dict):
        return 0  # columns given as Python lists: small by nature
    if type(data).__module__.split(".")[0] == "pandas":
        return int(data.memory_usage(deep=False).sum())
    return None


def iter_batches(data: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema and the record batches of `data`, which may also be a
    RecordBatchReader or an iterable of RecordBatches (streamed, never loaded whole)."""
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    if isinstance(data, (list, tuple)) or _is_batch_iterator(data):
        batches = iter(data)
        first = next(batches, None)
        if first is None:
            raise InvalidValue("an iterable of record batches must hold at least one batch")
        if not isinstance(first, pa.RecordBatch):
            raise InvalidValue(f"expected pyarrow RecordBatches, got {type(first).__name__}")
        return first.schema, _chain(first, batches)
    table = to_table(data)
    return table.schema, iter(table.to_batches())


def _is_batch_iterator(data: Any) -> bool:
    return isinstance(data, Iterator) or (
        isinstance(data, Iterable) and not isinstance(data, (dict, str, bytes))
        and type(data).__module__.split(".")[0] not in ("pandas", "polars", "pyarrow", "numpy")
    )


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def check_chunk_rows(rows: Any) -> int:
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InvalidValue(f"chunk_rows must be a whole number of at least 1, not {rows!r}")
    return rows


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Cut or join batches into slices of exactly `rows` rows (the last one shorter).
    Slicing is zero-copy; joining copies only the pieces of one chunk."""
    check_chunk_rows(rows)
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(rows - pending_rows, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            pending_rows += take
            offset += take
            if pending_rows == rows:
                yield _concat(pending)
                pending, pending_rows = [], 0
    if pending_rows:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _options(compression: str | None) -> ipc.IpcWriteOptions:
    return ipc.IpcWriteOptions(compression=compression)


def write_stream(sink: Any, batch: pa.RecordBatch, compression: str | None = None) -> None:
    """Write one record batch as an Arrow IPC stream to `sink` (a pyarrow stream or a
    Python file-like object, such as an apsw Blob: pyarrow hands each buffer of the
    batch to its `write` without copying it)."""
    with ipc.new_stream(sink, batch.schema, options=_options(compression)) as writer:
        writer.write_batch(batch)


def stream_size(batch: pa.RecordBatch, compression: str | None = None) -> int:
    """The exact size of `write_stream`'s output, found without writing any bytes
    (with compression the batch is compressed to learn it: use `encode_buffer` then)."""
    sink = pa.MockOutputStream()
    write_stream(sink, batch, compression)
    return sink.size()


def encode_buffer(batch: pa.RecordBatch, compression: str | None = None) -> pa.Buffer:
    """One record batch as Arrow IPC stream bytes, in a pyarrow Buffer (no copy to
    Python bytes). Uncompressed, the buffer is sized exactly up front, so the
    bytes are written once (a growing BufferOutputStream reallocates and copies)."""
    if compression is None:
        buffer = pa.allocate_buffer(stream_size(batch))
        write_stream(pa.FixedSizeBufferWriter(buffer), batch)
        return buffer
    sink = pa.BufferOutputStream()
    write_stream(sink, batch, compression)
    return sink.getvalue()


def chunk_name(dataframe_id: str, position: int, chunk_id: str) -> str:
    """How messages name a stored chunk (as `clustore-lite check` does)."""
    return f"chunk {chunk_id} (dataframe {dataframe_id}, position {position})"


def decode(data: Any, name: str = "a chunk", checked: bool = False) -> list[pa.RecordBatch]:
    """The record batches of one stored chunk (bytes or any buffer), sharing its
    memory, validated before any compute or JSON code touches them: offsets out of
    range (bytes another tool changed) make pyarrow's kernels read out of bounds,
    which kills the process (SIGSEGV) instead of raising. Full validation costs a
    pass over variable-width columns (offsets, UTF-8) and next to nothing over
    fixed-width ones. `checked` says the bytes matched the checksum taken when they
    were written (arrow/checksum.py): the cheap structural validation is then enough."""
    try:
        buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
        batches = list(ipc.open_stream(buffer))
        for batch in batches:
            batch.validate(full=not checked)
    except (pa.ArrowException, OSError, TypeError) as error:  # TypeError: not bytes
        raise DataCorrupted(f"{name} is corrupted: its bytes are not valid Arrow IPC data "
                            f"({error}); restore it from a backup or delete its "
                            "dataframe") from None
    return batches


def read_stream(data: Any, max_batch_bytes: int | None = None,
                max_bytes: int | None = None) -> pa.Table:
    """A whole Arrow IPC stream received as bytes (an HTTP body), checked to the end
    before anything is written: it must parse, every batch must pass pyarrow's full
    validation (offsets, UTF-8, ...), and it must end with the end-of-stream marker
    and nothing after it, so that a stream cut short between two batches is refused
    instead of being stored as a shorter dataframe. With limits, the size of each batch
    and of the whole, once decompressed, is checked before anything is decompressed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidValue(f"an Arrow IPC stream must be bytes, not {type(data).__name__}")
    data = pa.py_buffer(data)  # no copy: a body may be hundreds of MB
    if max_batch_bytes is not None or max_bytes is not None:
        check_decoded_size(data, max_batch_bytes, max_bytes)
    source = pa.BufferReader(data)
    try:
        reader = ipc.open_stream(source)
        batches = list(reader)
        for batch in batches:
            batch.validate(full=True)
    except (pa.ArrowException, OSError) as error:
        raise InvalidValue(f"the bytes are not a valid Arrow IPC stream: {error}") from None
    end = source.tell()
    if data.slice(max(0, end - len(END_OF_STREAM)), len(END_OF_STREAM)).to_pybytes() != END_OF_STREAM:
        raise InvalidValue("the Arrow IPC stream has no end-of-stream marker: it was cut "
                           "short (a stream writer writes the marker when it is closed)")
    if end != data.size:
        raise InvalidValue(f"the Arrow IPC stream is followed by {data.size - end} bytes "
                           "that are not part of it")
    return pa.Table.from_batches(batches, schema=reader.schema)


def check_decoded_size(data, max_batch_bytes: int | None, max_bytes: int | None) -> None:
    """Refuse a stream whose batches, once decompressed, pass the limits (a
    decompression bomb), telling it from the messages' metadata alone."""
    total = 0
    try:
        for number, size in enumerate(ipc_size.batch_sizes(data), start=1):
            if max_batch_bytes is not None and size.bytes > max_batch_bytes:
                raise InvalidValue(f"record batch {number} of the Arrow IPC stream holds "
                                   f"{size.bytes} bytes once decompressed; at most "
                                   f"{max_batch_bytes} are allowed in one batch")
            total += size.bytes
            if max_bytes is not None and total > max_bytes:
                raise InvalidValue(f"the Arrow IPC stream holds more than {max_bytes} bytes "
                                   "once decompressed, the most one request may append")
    except (pa.ArrowException, OSError, ValueError, struct.error) as error:
        if isinstance(error, InvalidValue):
            raise
        raise InvalidValue(f"the bytes are not a valid Arrow IPC stream: {error}") from None


def check_compression(compression: str | None) -> str | None:
    if compression not in COMPRESSIONS:
        raise InvalidValue(f"compression must be one of lz4, zstd or None, not {compression!r}")
    return compression


def schema_bytes(schema: pa.Schema) -> bytes:
    return schema.serialize().to_pybytes()


def schema_from_bytes(data: bytes) -> pa.Schema:
    return ipc.read_schema(pa.py_buffer(data))


def check_same_schema(expected: pa.Schema, given: pa.Schema) -> None:
    if not expected.remove_metadata().equals(given.remove_metadata()):
        raise SchemaMismatch(
            "the rows to append do not have this dataframe's schema:\n"
            f"  dataframe: {describe(expected)}\n  given:     {describe(given)}"
        )


def describe(schema: pa.Schema) -> str:
    """'x: double, y: string': a schema in one line, for messages."""
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def rows_json(data: bytes, name: str = "a chunk", checked: bool = False) -> str:
    """A chunk's rows as a JSON array of arrays in column order (GraphQL `chunk.data`).
    NaN and infinities, which JSON cannot hold, become null; timestamps ISO-8601.
    `checked` as for `decode`."""
    table = pa.Table.from_batches(decode(data, name, checked))
    columns = []
    for column in table.columns:
        if pa.types.is_floating(column.type):
            column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, column.type))
        columns.append(column.to_pylist())
    return json.dumps([list(row) for row in zip(*columns)], default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def table_from_rows(rows: Any, columns: list[str] | None, schema: pa.Schema | None) -> pa.Table:
    """Rows given as JSON arrays (GraphQL chunk `data`) as a table; with `schema`
    (a dataframe's), values take its types so appends line up."""
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise InvalidValue("chunk data must be a list of rows, each a list of values")
    names = list(schema.names) if schema is not None else columns
    if names is None:
        raise InvalidValue("give the dataframe's columns before its first chunk of rows")
    for number, row in enumerate(rows):
        if len(row) != len(names):
            raise SchemaMismatch(f"row {number} has {len(row)} values; the dataframe has "
                                 f"{len(names)} columns ({', '.join(names)})")
    arrays = {}
    for index, name in enumerate(names):
        values = [row[index] for row in rows]
        arrow_type = schema.field(index).type if schema is not None else None
        try:
            arrays[name] = pa.array(values, type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as error:
            expected = f" of type {arrow_type}" if arrow_type else ""
            raise SchemaMismatch(f"column {name!r}{expected} cannot hold these values: {error}") from None
    return pa.table(arrays)


def stream_parts(data: bytes) -> tuple[memoryview, memoryview]:
    """(schema message, the other messages) of one chunk's IPC stream, without its
    end-of-stream marker: chunks of one dataframe concatenate into one stream by
    sending the first schema and then each chunk's messages, with no decoding."""
    view = memoryview(data)
    if len(view) < 8 or bytes(view[:4]) != b"\xff\xff\xff\xff":
        raise InvalidValue("chunk bytes are not an Arrow IPC stream")
    schema_end = 8 + int.from_bytes(view[4:8], "little")
    end = len(view) - 8 if bytes(view[-8:]) == END_OF_STREAM else len(view)
    return view[:schema_end], view[schema_end:end]


def schema_message(schema: pa.Schema) -> memoryview:
    """The schema message that starts an IPC stream of `schema` (for a dataframe with
    no chunks, whose stream is this and the end-of-stream marker)."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema):
        pass
    head, _ = stream_parts(sink.getvalue().to_pybytes())
    return head
