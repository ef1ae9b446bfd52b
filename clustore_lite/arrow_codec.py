"""Arrow in and out: what the store accepts as a dataframe, and the chunk format.

A chunk is one Arrow IPC *stream* (schema + record batches + end marker) kept as a
BLOB. Reading wraps the BLOB bytes in a pyarrow buffer without copying, so a table
read back is built straight from the bytes SQLite returned: no Python row loop."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from .errors import InvalidValue, SchemaMismatch

COMPRESSIONS = (None, "lz4", "zstd")
DEFAULT_CHUNK_ROWS = 65_536


def to_table(data: Any) -> pa.Table:
    """Accept a pyarrow Table or RecordBatch, a pandas/polars DataFrame, or a dict of
    columns; answer a pyarrow Table."""
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
        return data.to_arrow()
    raise InvalidValue(
        f"a dataframe must be a pyarrow Table or RecordBatch, a pandas or polars DataFrame "
        f"or a dict of columns, not {type(data).__name__}"
    )


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
        and type(data).__module__.split(".")[0] not in ("pandas", "polars", "pyarrow")
    )


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Cut or join batches into slices of exactly `rows` rows (the last one shorter).
    Slicing is zero-copy; joining copies only the pieces of one chunk."""
    if rows < 1:
        raise InvalidValue(f"chunk_rows must be at least 1, not {rows}")
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


def encode(batch: pa.RecordBatch, compression: str | None = None) -> bytes:
    """One record batch as Arrow IPC stream bytes (a copy into Python bytes: the
    store's own write path streams into the BLOB instead, see dataframes.py)."""
    return encode_buffer(batch, compression).to_pybytes()


def decode(data: Any) -> list[pa.RecordBatch]:
    """The record batches of one chunk (bytes or any buffer), sharing its memory."""
    try:
        buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
        return list(ipc.open_stream(buffer))
    except (pa.ArrowInvalid, OSError) as error:
        raise InvalidValue(f"chunk bytes are not a valid Arrow IPC stream: {error}") from None


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
            f"  dataframe: {_describe(expected)}\n  given:     {_describe(given)}"
        )


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)
