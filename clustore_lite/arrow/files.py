"""Dataframe files in and out (CSV, Parquet, Arrow IPC), streamed batch by batch so
memory stays bounded by a chunk, not by the file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ..errors import InvalidValue

FORMATS = ("csv", "parquet", "arrow")
SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
            ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow"}
# pyarrow's streaming CSV reader reads many blocks ahead: memory grows with the block
# size (measured: 16 MiB blocks peaked at 440 MB on a 460 MB file, 1 MiB at 118 MB, at
# the same speed; later, reading alone held ~36 blocks: 37 MB of Arrow memory with
# 1 MiB blocks, 9 MB with 256 KiB; a 200 MB CSV import peaked at 183 MB with 1 MiB
# blocks, 152 MB with 256 KiB, at 0.95x the speed). Types are guessed from a larger
# sample so that small blocks do not make the guess worse. A CSV row must fit in one
# block: _csv_sample picks larger blocks when the sample has long lines.
CSV_BLOCK_BYTES = 1 << 18
CSV_SAMPLE_BYTES = 8 << 20
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
                 on_progress: Progress | None = None) -> Source:
    """The record batches of a file, streamed. `on_progress(done)` is told how far
    reading has got, in the Source's unit."""
    kind = guess_format(path, format)
    path = str(path)
    try:
        if kind == "csv":
            return Source(_csv(path, on_progress), os.path.getsize(path), "B")
        if kind == "parquet":
            parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
            batches = parquet.iter_batches(batch_size=batch_rows)
            reader = pa.RecordBatchReader.from_batches(
                parquet.schema_arrow, _report(batches, on_progress))
            return Source(reader, parquet.metadata.num_rows, "rows")
        return _arrow(path, on_progress)
    except (pa.ArrowInvalid, OSError) as error:
        raise InvalidValue(f"cannot read {path} as {kind}: {error}") from None


def _csv(path: str, on_progress) -> pa.RecordBatchReader:
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    parse = pacsv.ParseOptions(delimiter=delimiter)
    schema, block = _csv_sample(path, parse)
    convert = pacsv.ConvertOptions(column_types=schema)
    stream = pa.input_stream(path)
    reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=block),
                            parse_options=parse, convert_options=convert)

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                if on_progress:
                    on_progress(stream.tell())
                yield batch
        except pa.ArrowInvalid as error:
            raise InvalidValue(
                f"cannot read {path}: {error} (a column's type is guessed from the first "
                "block; a later value that does not fit stops the import)") from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _csv_sample(path: str, parse: pacsv.ParseOptions) -> tuple[pa.Schema, int]:
    """Column types guessed from the first CSV_SAMPLE_BYTES (cut at a line end), and
    the block size to read with: CSV_BLOCK_BYTES, or more if the sample has lines so
    long that a row might not fit in one block."""
    with open(path, "rb") as file:
        sample = file.read(CSV_SAMPLE_BYTES)
        more = bool(file.read(1))
    size = len(sample)
    if more and (end := sample.rfind(b"\n") + 1):
        size = end
    view = pa.py_buffer(sample).slice(0, size)  # no copy
    schema = pacsv.read_csv(pa.BufferReader(view), parse_options=parse).schema
    # every `window` bytes of the sample hold a line end, so no line is longer than
    # 2 x window; blocks of 8 x window hold 4 of the longest lines
    window = CSV_BLOCK_BYTES // 8
    while window < size and any(sample.find(b"\n", start, start + window) == -1
                                for start in range(0, size - window + 1, window)):
        window *= 2
    return schema, max(CSV_BLOCK_BYTES, 8 * window)


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
    if kind == "parquet":
        writer = pq.ParquetWriter(path, schema)
    elif kind == "csv":
        writer = pacsv.CSVWriter(path, schema)
    else:
        writer = ipc.new_file(path, schema)
    try:
        with writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
    except BaseException:
        if os.path.isfile(path):
            os.remove(path)
        raise
    return rows
