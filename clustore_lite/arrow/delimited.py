"""CSV and TSV files in, streamed, with the options a data person expects: the
delimiter (sniffed from the header when not given), null values, column types, rows to
skip, how many rows types are guessed from. Values round-trip with what `export`
writes: an empty field is null, a quoted empty field `""` an empty string, and
strings may hold delimiters, quotes and newlines. A bad row or a value that does not
fit its column is an error naming its line; an unterminated quote is an error too,
not a field that swallows the rest of the file."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InvalidValue

# pyarrow's streaming CSV reader reads many blocks ahead: memory grows with the block
# size (measured: 16 MiB blocks peaked at 440 MB on a 460 MB file, 1 MiB at 118 MB, at
# the same speed; later, reading alone held ~36 blocks: 37 MB of Arrow memory with
# 1 MiB blocks, 9 MB with 256 KiB; a 200 MB CSV import peaked at 183 MB with 1 MiB
# blocks, 152 MB with 256 KiB, at 0.95x the speed). Types are guessed from a larger
# sample so that small blocks do not make the guess worse. A CSV row must fit in one
# block: _block_size picks larger blocks when the sample has long lines.
CSV_BLOCK_BYTES = 1 << 18
CSV_SAMPLE_BYTES = 8 << 20
SNIFFED = (";", "\t", "|")
QUOTE = b'"'

_TYPES = {"int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
          "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(),
          "uint64": pa.uint64(), "float32": pa.float32(), "float64": pa.float64(),
          "float": pa.float64(), "double": pa.float64(), "string": pa.string(),
          "str": pa.string(), "text": pa.string(), "large_string": pa.large_string(),
          "bool": pa.bool_(), "boolean": pa.bool_(), "date": pa.date32(),
          "date32": pa.date32(), "date64": pa.date64(), "binary": pa.binary(),
          "timestamp": pa.timestamp("us")}
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:,\s*tz=([^\]]+))?\]")


def parse_type(text: str) -> pa.DataType:
    """An Arrow type from its name: int64, float64, string, bool, date32,
    timestamp[us], timestamp[s, tz=UTC], ..."""
    name = text.strip().lower()
    if name in _TYPES:
        return _TYPES[name]
    if match := _TIMESTAMP.fullmatch(text.strip()):
        return pa.timestamp(match[1], tz=match[2])
    raise InvalidValue(f"unknown column type {text!r}: use one of {', '.join(_TYPES)}, "
                       "timestamp[s|ms|us|ns] or timestamp[us, tz=UTC]")


def parse_column_types(items: list[str]) -> dict[str, pa.DataType]:
    """NAME=TYPE pairs (repeated, or comma-separated) as a dict."""
    types = {}
    for item in items:
        for pair in filter(None, re.split(r",(?![^\[]*\])", item)):
            name, sep, kind = pair.partition("=")
            if not sep or not name.strip():
                raise InvalidValue(f"a column type is NAME=TYPE (x=float64), not {pair!r}")
            types[name.strip()] = parse_type(kind)
    return types


@dataclass(frozen=True)
class CsvOptions:
    """How to read a CSV or TSV file. `delimiter` None: tab for .tsv, else a comma,
    unless the header holds none of it but holds ; or | or a tab (sniffed)."""

    delimiter: str | None = None
    null_values: tuple[str, ...] = ("",)
    column_types: dict[str, pa.DataType] = field(default_factory=dict)
    skip_rows: int = 0
    infer_rows: int | None = None

    def check(self) -> "CsvOptions":
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'):
            raise InvalidValue(f"a delimiter is one character (not a quote or a line end), "
                               f"not {self.delimiter!r}")
        for name, number in (("skip_rows", self.skip_rows), ("infer_rows", self.infer_rows)):
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)
                                       or number < (0 if name == "skip_rows" else 1)):
                raise InvalidValue(f"{name} must be a whole number of at least "
                                   f"{0 if name == 'skip_rows' else 1}, not {number!r}")
        return self


Note = Callable[[str], None]


def open_csv(path: str, tab: bool, options: CsvOptions, on_progress=None,
             note: Note | None = None) -> pa.RecordBatchReader:
    """The record batches of a CSV (TSV when `tab`) file, streamed."""
    options.check()
    delimiter = options.delimiter or _sniff(path, "\t" if tab else ",", options.skip_rows, note)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    rows = options.skip_rows + 1 + options.infer_rows if options.infer_rows else None
    sample, more = _read_sample(path, rows)
    cut = _sample_end(sample, more, rows)
    read = pacsv.ReadOptions(block_size=_block_size(sample, cut), skip_rows=options.skip_rows)
    convert = _convert(options, options.column_types)
    try:
        guessed = pacsv.read_csv(pa.BufferReader(pa.py_buffer(sample).slice(0, cut)),
                                 read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as error:
        raise InvalidValue(_explain(path, error, delimiter, options, {})) from None
    unknown = set(options.column_types) - set(guessed.schema.names)
    if unknown:
        raise InvalidValue(f"--column-types names no column of {path}: {', '.join(sorted(unknown))} "
                           f"(its columns: {', '.join(guessed.schema.names)})")
    schema = guessed.schema
    if len(schema) == 1:  # a null of a one-column file is written as an empty line
        parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                   ignore_empty_lines=False)
    stream = _QuoteCounter(path)
    try:  # reads the first block
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=
                                _convert(options, dict(zip(schema.names, schema.types))))
    except pa.ArrowInvalid as error:
        stream.close()
        raise InvalidValue(_explain(path, error, delimiter, options, _guessed(schema, options))) from None
    return pa.RecordBatchReader.from_batches(
        schema, _batches(reader, stream, path, delimiter, options, schema, on_progress))


def _guessed(schema: pa.Schema, options: CsvOptions) -> dict:
    return {n: t for n, t in zip(schema.names, schema.types) if n not in options.column_types}


def _convert(options: CsvOptions, types: dict) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(column_types=types, null_values=list(options.null_values),
                                strings_can_be_null=True, quoted_strings_can_be_null=False)


def _batches(reader, stream, path, delimiter, options, schema, on_progress) -> Iterator[pa.RecordBatch]:
    try:
        for batch in reader:
            if on_progress:
                on_progress(stream.tell())
            yield batch
    except pa.ArrowInvalid as error:
        raise InvalidValue(_explain(path, error, delimiter, options, _guessed(schema, options))) from None
    finally:
        stream.close()
    if stream.quotes % 2:
        line = _unterminated(path, delimiter, options.skip_rows)
        if line is not None:
            raise InvalidValue(f"{path}, line {line}: a quoted field is never closed (an "
                               "unterminated quote would swallow the rest of the file)")


class _QuoteCounter(io.RawIOBase):
    """The file, read as pyarrow asks, counting quote characters: an odd count at the
    end means a quoted field was never closed (pyarrow takes the rest of the file
    into it without a word)."""

    def __init__(self, path: str):
        self.file = open(path, "rb")
        self.quotes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.quotes += data.count(QUOTE)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        self.file.close()
        super().close()


def _sniff(path: str, default: str, skip_rows: int, note: Note | None) -> str:
    """The default delimiter, unless the header line holds none of it but holds
    another usual one (then the most frequent, with a note)."""
    with open(path, "rb") as file:
        for _ in range(skip_rows):
            file.readline(1 << 16)
        header = file.readline(1 << 16).decode("utf-8", "replace")
    if default in header:
        return default
    counts = {d: header.count(d) for d in SNIFFED if d != default}
    best = max(counts, key=counts.get, default=None)
    if best is None or counts[best] == 0:
        return default
    if note:
        note(f"note: {Path(path).name} has no {default!r} in its header but {counts[best]} "
             f"{best!r}: reading it as {best!r}-separated (choose with --delimiter)")
    return best


def _record_ends(data: bytes) -> Iterator[int]:
    """Offsets just past each line end that ends a record (outside quotes)."""
    quotes, start = 0, 0
    while (end := data.find(b"\n", start)) != -1:
        quotes += data.count(QUOTE, start, end)
        start = end + 1
        if quotes % 2 == 0:
            yield start


def _read_sample(path: str, rows: int | None) -> tuple[bytes, bool]:
    """The bytes types are guessed from: CSV_SAMPLE_BYTES, or as many as `rows`
    records take; and whether the file goes on after them."""
    with open(path, "rb") as file:
        sample = file.read(CSV_SAMPLE_BYTES)
        while rows is not None and _count_records(sample) < rows and (more := file.read(CSV_SAMPLE_BYTES)):
            sample += more
        return sample, bool(file.read(1))


def _count_records(data: bytes) -> int:
    return sum(1 for _ in _record_ends(data))


def _sample_end(sample: bytes, more: bool, rows: int | None) -> int:
    """Where the sample used to guess types ends: after `rows` records, or at the
    last record end of the sample (the whole sample when it is the whole file)."""
    if rows is not None:
        for number, end in enumerate(_record_ends(sample), start=1):
            if number >= rows:
                return end
    if not more:
        return len(sample)
    total, end = sample.count(QUOTE), len(sample)
    while (newline := sample.rfind(b"\n", 0, end)) != -1:
        if (total - sample.count(QUOTE, newline)) % 2 == 0:  # not inside quotes
            return newline + 1
        end = newline
    return len(sample)


def _block_size(sample: bytes, size: int) -> int:
    """CSV_BLOCK_BYTES, or more if the sample has lines so long that a row might not
    fit in one block: every `window` bytes of the sample hold a line end, so no line
    is longer than 2 x window; blocks of 8 x window hold 4 of the longest lines."""
    window = CSV_BLOCK_BYTES // 8
    while window < size and any(sample.find(b"\n", start, start + window) == -1
                                for start in range(0, size - window + 1, window)):
        window *= 2
    return max(CSV_BLOCK_BYTES, 8 * window)


_CONVERSION = re.compile(r"In CSV column #(\d+): .*?conversion error to ([^:]+): invalid value '(.*)'",
                         re.S)
_COLUMNS = re.compile(r"Expected (\d+) columns, got (\d+)")


def _explain(path: str, error: Exception, delimiter: str, options: CsvOptions,
             guessed: dict) -> str:
    """pyarrow's error, with the line it is about (found again with Python's csv
    module, on this error path only) and the way out."""
    text = str(error)
    if match := _CONVERSION.search(text):
        index, kind, value = int(match[1]), match[2], match[3]
        names, line = _find(path, delimiter, options.skip_rows,
                            lambda row: len(row) > index and row[index] == value)
        name = names[index] if index < len(names) else f"#{index + 1}"
        how = (f"guessed from the first {options.infer_rows} rows" if options.infer_rows
               else "guessed from the first 8 MiB") if name in guessed else "given"
        where = f", line {line}" if line else ""
        return (f"{path}{where}: column {name!r} holds {value!r}, which is not {kind} (the "
                f"column's type, {how}); pass --column-types {name}=TYPE (string keeps "
                "anything), --null-values if it means null, or --infer-rows to guess from "
                "more rows")
    if match := _COLUMNS.search(text):
        expected = int(match[1])
        _, line = _find(path, delimiter, options.skip_rows, lambda row: len(row) != expected)
        where = f", line {line}" if line else ""
        return (f"{path}{where}: a row has {match[2]} fields where the header has {expected} "
                f"(delimiter {delimiter!r}; choose another with --delimiter)")
    return f"cannot read {path} as CSV: {text}"


def _rows(path: str, delimiter: str, skip_rows: int) -> Iterator[tuple[int, list[str] | None]]:
    """(line where the record starts, fields) of each record, header first; fields
    None for a record Python's csv module cannot read (then nothing more)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as file:
        reader = csv.reader(file, delimiter=delimiter, strict=True)
        start, number = 1, 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                yield start, None
                return
            if number >= skip_rows:
                yield start, row
            number, start = number + 1, reader.line_num + 1


def _find(path: str, delimiter: str, skip_rows: int, bad) -> tuple[list[str], int | None]:
    """The header and the line of the first record after it that is `bad`."""
    rows = _rows(path, delimiter, skip_rows)
    _, header = next(rows, (1, []))
    for line, row in rows:
        if row is None or bad(row):
            return header or [], line
    return header or [], None


def _unterminated(path: str, delimiter: str, skip_rows: int) -> int | None:
    """The line where a quoted field opens and never closes, or None when the odd
    count of quotes came from quotes inside unquoted fields."""
    for line, row in _rows(path, delimiter, skip_rows):
        if row is None:
            return line
    return None
