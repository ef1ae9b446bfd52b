"""Appends in another representation of the same values: `string` vs `large_string`,
`timestamp[s]` vs `timestamp[us]`, int32 vs int64, columns in another order. Each
batch is cast to the stored schema when no value changes (checked by casting back),
and refused with a message naming the column when one would."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaMismatch
from .codec import describe


def _family(kind: pa.DataType) -> str:
    """Types whose values can stand for each other; a cast never crosses families (a
    string is never parsed as a number on the way in)."""
    t = pa.types
    if t.is_dictionary(kind):
        return _family(kind.value_type)
    checks = [("number", lambda k: t.is_integer(k) or t.is_floating(k)),
              ("string", lambda k: t.is_string(k) or t.is_large_string(k) or t.is_string_view(k)),
              ("binary", lambda k: t.is_binary(k) or t.is_large_binary(k) or t.is_binary_view(k)
               or t.is_fixed_size_binary(k)),
              ("date", t.is_date), ("time", t.is_time), ("duration", t.is_duration),
              ("decimal", t.is_decimal), ("bool", t.is_boolean)]
    for name, check in checks:
        if check(kind):
            return name
    if t.is_timestamp(kind):
        return "timestamp with zone" if kind.tz else "timestamp without zone"
    return str(kind)  # anything else only as itself


def plan(stored: pa.Schema, given: pa.Schema) -> pa.Schema | None:
    """None when `given` is `stored` already; else `stored`, once every column of
    `given` is known to be castable to it (same names, same type families)."""
    if stored.remove_metadata().equals(given.remove_metadata()):
        return None
    missing = [name for name in stored.names if name not in given.names]
    extra = [name for name in given.names if name not in stored.names]
    if missing or extra or len(given.names) != len(set(given.names)):
        parts = [f"missing {', '.join(map(repr, missing))}" if missing else "",
                 f"not in the dataframe {', '.join(map(repr, extra))}" if extra else ""]
        raise SchemaMismatch(_mismatch(stored, given, "; ".join(p for p in parts if p)
                                       or "a column name is repeated"))
    for field in stored:
        kind = given.field(field.name).type
        if not (pa.types.is_null(kind) or _family(kind) == _family(field.type)):
            raise SchemaMismatch(_mismatch(
                stored, given, f"column {field.name!r} is {kind}, the dataframe's is {field.type}"))
    return stored


def cast_batches(stored: pa.Schema, given: pa.Schema,
                 batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`batches` in the stored schema (unchanged when they already are)."""
    target = plan(stored, given)
    if target is None:
        yield from batches
        return
    for batch in batches:
        yield cast_batch(target, batch)


def cast_batch(target: pa.Schema, batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = []
    for field in target:
        column = batch.column(field.name)
        arrays.append(column if column.type == field.type else _cast(column, field))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _cast(column: pa.Array, field: pa.Field) -> pa.Array:
    """The column in the field's type, or SchemaMismatch naming the column and the first
    value that would change (a safe cast refuses overflow and truncation; casting back
    and comparing catches an integer too large for a float's precision)."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    try:
        cast = column.cast(field.type, safe=True)
        same = pa.types.is_null(column.type) or _same(cast.cast(column.type, safe=False), column)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SchemaMismatch(f"column {field.name!r} cannot be stored as {field.type} (the "
                             f"dataframe's type) without changing its values: {error}") from None
    if not same:
        raise SchemaMismatch(f"column {field.name!r} cannot be stored as {field.type} (the "
                             "dataframe's type) without changing its values")
    return cast


def _same(back: pa.Array, column: pa.Array) -> bool:
    if not pa.types.is_floating(column.type):
        return back.equals(column)
    equal = pc.or_kleene(pc.equal(back, column), pc.and_(pc.is_nan(back), pc.is_nan(column)))
    return pc.all(equal).as_py() is not False


def _mismatch(stored: pa.Schema, given: pa.Schema, why: str) -> str:
    return ("the rows to append do not have this dataframe's schema "
            f"({why}):\n  dataframe: {describe(stored)}\n  given:     {describe(given)}")
