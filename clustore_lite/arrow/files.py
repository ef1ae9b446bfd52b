"""Dataframe files in and out (CSV, Parquet, Arrow IPC), streamed batch by batch so
memory stays bounded by a chunk, not by the file."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import ClustoreError, InvalidValue
from . import conform
from .delimited import CsvOptions, Note, open_csv

FORMATS = ("csv", "tsv", "parquet", "arrow")
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
            ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow"}
# Parquet: pyarrow pre-buffers whole column chunks (row groups hold up to 1Mi rows by
# default) and reads ahead; reading pages through a small buffer bounds memory by the
# pages and the batch instead (measured on a 105 MB file of 10 chunk-sized row groups:
# peak RSS 279 MB pre-buffered, 163 MB with 1 MiB buffers, 154 MB with 64 KiB).
PARQUET_BUFFER_BYTES = 1 << 16


def guess_format(path: str | Path, given: str | None = None) -> str:
    if given:
        if given not in FORMATS:
            raise InvalidValue(f"format must be one of {', '.join(FORMATS)}, not {given!r}")
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidValue(f"cannot tell the format of {path} from its name: "
                           f"pass --format {'|'.join(FORMATS)}")
    return SUFFIXES[suffix]


@dataclass
class Source:
    """Batches of a file, and how to show progress through it: `total` in `unit`s
    (bytes for CSV, rows otherwise; None when unknown)."""

    reader: pa.RecordBatchReader
    total: int | None
    unit: str


Progress = Callable[[int], None]


def read_batches(path: str | Path, format: str | None = None, batch_rows: int = 65_536,
                 on_progress: Progress | None = None, csv: CsvOptions | None = None,
                 note: Note | None = None) -> Source:
    """The record batches of a file, streamed. `on_progress(done)` is told how far
    reading has got, in the Source's unit; `csv` says how to read a CSV or TSV file
    and `note` hears what was guessed about it."""
    kind = guess_format(path, format)
    path = str(path)
    try:
        if kind in ("csv", "tsv"):
            reader = open_csv(path, kind == "tsv", csv or CsvOptions(), on_progress, note)
            return Source(reader, os.path.getsize(path), "B")
        if kind == "parquet":
            return _parquet(path, batch_rows, on_progress)
        return _arrow(path, on_progress)
    except (pa.ArrowInvalid, OSError) as error:
        raise InvalidValue(f"cannot read {path} as {kind}: {error}") from None


def _parquet(path: str, batch_rows: int, on_progress) -> Source:
    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
    schema = parquet.schema_arrow
    batches = parquet.iter_batches(batch_size=batch_rows)
    written = _written_schema(parquet)
    if written is not None and (target := conform.plan(written, schema)) is not None:
        schema = target
        batches = (conform.cast_batch(target, batch) for batch in batches)
    reader = pa.RecordBatchReader.from_batches(schema, _report(batches, on_progress))
    return Source(reader, parquet.metadata.num_rows, "rows")


def _written_schema(parquet: pq.ParquetFile) -> pa.Schema | None:
    """The Arrow schema the writer kept in the file's metadata: Parquet has no
    timestamp[s], so pyarrow reads such a column back as [ms]; cast back (values
    unchanged), the round trip is exact."""
    stored = (parquet.metadata.metadata or {}).get(b"ARROW:schema")
    if stored is None:
        return None
    try:
        written = ipc.read_schema(pa.py_buffer(base64.b64decode(stored)))
        conform.plan(written, parquet.schema_arrow)
    except (pa.ArrowException, ValueError, ClustoreError):
        return None  # another tool's metadata, not one to trust
    return written


def _arrow(path: str, on_progress) -> Source:
    source = pa.memory_map(path)
    try:
        file_reader = ipc.open_file(source)
    except pa.ArrowInvalid:
        source.seek(0)
        stream_reader = ipc.open_stream(source)
        reader = pa.RecordBatchReader.from_batches(
            stream_reader.schema, _report(stream_reader, on_progress))
        return Source(reader, None, "rows")
    batches = (file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
    reader = pa.RecordBatchReader.from_batches(file_reader.schema, _report(batches, on_progress))
    return Source(reader, file_reader.count_rows(), "rows")


def _report(batches, on_progress) -> Iterator[pa.RecordBatch]:
    done = 0
    for batch in batches:
        done += batch.num_rows
        if on_progress:
            on_progress(done)
        yield batch


def write_batches(batches: Iterator[pa.RecordBatch], schema: pa.Schema,
                  path: str | Path, format: str | None = None) -> int:
    """Write batches to a file; answer the number of rows written. When reading the
    batches fails (a corrupt chunk), the file goes: closed, it would look whole."""
    kind = guess_format(path, format)
    rows = 0
    path = str(path)
    try:
        with _writer(kind, path, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
    except BaseException as error:
        if os.path.isfile(path):
            os.remove(path)
        if isinstance(error, (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError)):
            raise InvalidValue(f"cannot write {path} as {kind}: {error}") from None
        raise
    return rows


def _writer(kind: str, path: str, schema: pa.Schema):
    if kind == "parquet":
        return pq.ParquetWriter(path, schema)
    if kind in ("csv", "tsv"):  # CSV has no nested types: pyarrow refuses lists and structs
        options = pacsv.WriteOptions(delimiter="\t" if kind == "tsv" else ",")
        return pacsv.CSVWriter(path, schema, write_options=options)
    return ipc.new_file(path, schema)
