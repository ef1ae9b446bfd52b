"""Hasura's streaming subscriptions: `<plural>_stream(batch_size:, cursor:, where:)` on
every table, derived from the catalog.

A stream keeps a cursor (one column, its last value sent). Its first answer is the first
`batch_size` rows past the initial value in cursor order; each commit wakes it and it
reads the next rows past the cursor; a batch with rows is pushed and moves the cursor,
an empty one is not sent (Hasura's rules). A full batch is followed at once by the next,
without waiting for a commit, so a backlog drains. The rows come from `Compiler.rows`
with the caller's visibility, and the cursor is read through the caller's column masks
(a masked value is NULL, never past any cursor): a stream shows what a query would.

Streams share live.py's caps (per connection, per caller) and its LIVE_THREADS; identical
streams at the same cursor share one computation, as Hasura's cohorts do."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from graphql import GraphQLError, get_named_type, parse

from ..catalog import JSON, TABLES, Table
from ..errors import ClustoreError, InvalidValue
from ..values import to_sql
from .errors import graphql_error
from .live import Changes, live_key
from .select import run, selection

ORDERINGS = {"ASC": (">", "asc", "max"), "DESC": ("<", "desc", "min")}  # compare, order, last
CURSOR_ORDERING_SDL = '''
"ordering argument of a cursor"
enum cursor_ordering {
  "ascending ordering of the cursor"
  ASC
  "descending ordering of the cursor"
  DESC
}
'''


def root_field(table: Table) -> str:
    """Hasura's name of a table's stream (the metadata's select_stream)."""
    return f"{table.plural}_stream"


# -- the schema ----------------------------------------------------------------------


def column_scalars(base_sdl: str) -> dict[str, dict[str, str]]:
    """table -> column -> its GraphQL scalar, read from each `<table>_bool_exp` of the
    schema (`uuid_comparison_exp` -> uuid): the scalar Hasura's filters use."""
    wanted = {f"{name}_bool_exp": name for name in TABLES}
    found: dict[str, dict[str, str]] = {}
    for node in parse(base_sdl).definitions:
        table = wanted.get(getattr(getattr(node, "name", None), "value", None))
        if table is None or node.kind != "input_object_type_definition":
            continue
        columns = TABLES[table].columns
        found[table] = {f.name.value: f.type.name.value.removesuffix("_comparison_exp")
                        for f in node.fields if f.name.value in columns}
    return found


def stream_sdl(base_sdl: str) -> str:
    """The SDL of every table's stream, Hasura's types and descriptions, to add to
    `base_sdl` (which holds the tables' object and bool_exp types)."""
    scalars = column_scalars(base_sdl)
    parts, fields = [CURSOR_ORDERING_SDL], []
    for table in TABLES.values():
        name = table.name
        columns = "\n".join(f"  {c}: {_scalar(table, c, scalars)}" for c in table.visible_columns)
        parts.append(
            f'"Streaming cursor of the table \\"{name}\\""\n'
            f"input {name}_stream_cursor_input {{\n"
            f'  "Stream column input with initial value"\n'
            f"  initial_value: {name}_stream_cursor_value_input!\n"
            f'  "cursor ordering"\n  ordering: cursor_ordering\n}}\n\n'
            f'"Initial value of the column from where the streaming should start"\n'
            f"input {name}_stream_cursor_value_input {{\n{columns}\n}}\n")
        fields.append(
            f'  "fetch data from the table in a streaming manner: \\"{name}\\""\n'
            f"  {root_field(table)}(batch_size: Int!, cursor: [{name}_stream_cursor_input]!, "
            f"where: {name}_bool_exp): [{name}!]!")
    parts.append("extend type subscription_root {\n" + "\n".join(fields) + "\n}\n")
    return "\n".join(parts)


def _scalar(table: Table, column: str, scalars: dict) -> str:
    if table.columns[column] == JSON:
        return "jsonb"  # task.algorithm is shown as an object type; its values are jsonb
    return scalars[table.name][column]


# -- the cursor ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    column: str
    ordering: str  # ASC or DESC
    value: Any  # as SQLite stores it (JSON as text, booleans as 0/1)
    batch_size: int


def cursor_of(table: Table, scalars: dict[str, str], args: dict) -> Cursor:
    """The stream's cursor from its arguments, refused as Hasura refuses it."""
    batch_size = args["batch_size"]
    if batch_size < 0:
        raise CursorRefused("batch_size", f"expected a non-negative integer for batch_size, "
                            f"not {batch_size}")
    pairs = [(item.get("ordering") or "ASC", column, value)
             for item in args["cursor"] if item is not None
             for column, value in item["initial_value"].items()]
    if not pairs:
        raise CursorRefused("cursor", "one streaming column field is expected")
    if len(pairs) > 1:
        raise CursorRefused("cursor", "multiple column cursors are not supported yet")
    [(ordering, column, value)] = pairs
    if value is None:
        raise CursorRefused("cursor", f"the initial value of the cursor on {column} is null; "
                            "no value comes after null: give one")
    if scalars.get(column) == "timestamptz":
        value = _stored_timestamp(value)
    return Cursor(column, ordering, to_sql(table, {column: value})[column], batch_size)


def _stored_timestamp(value: str) -> str:
    """A timestamptz as the store writes them (UTC, microseconds), so that comparing
    the text compares the instants; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


class CursorRefused(InvalidValue):
    """A stream's arguments refused, naming the argument at fault (Hasura's path)."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


# -- a batch -------------------------------------------------------------------------


def read_batch(info, table: Table, cursor: Cursor, where: dict | None) -> tuple[list, Any]:
    """(the next rows past the cursor as JSON answers, the cursor's new value or None),
    from ONE statement over `Compiler.rows`."""
    select = selection(info)
    compiler = select.compiler
    compare, direction, last = ORDERINGS[cursor.ordering]
    rows = compiler.rows(table, where=where, order_by=[{cursor.column: direction}],
                         ordered=True, limit=cursor.batch_size)
    past = f"{compiler.column(table, rows.alias, cursor.column)} {compare} {compiler.bind(cursor.value)}"
    rows.condition = f"({rows.condition}) AND {past}"
    source = f"({rows.select(f'{rows.alias}.*')}) {rows.alias}"
    value = select.object_json(table, rows.alias, get_named_type(info.return_type),
                               list(info.field_nodes))
    position = compiler.column(table, rows.alias, cursor.column)
    sql = (f"(SELECT json_array(json_group_array({value} ORDER BY {rows.order}), "
           f"{last}({position})) FROM {source})")
    batch, moved = run(info.context["store"].db, sql, compiler.params)
    return batch, moved


# -- the subscription ----------------------------------------------------------------


def stream_source(table: Table, scalars: dict[str, str]):
    """The subscription source of a table's stream: the cursor is checked when the
    subscription starts (a refusal is the start's error), then batches follow."""
    async def source(_, info, **args):
        try:
            cursor = cursor_of(table, scalars, args)
        except CursorRefused as error:
            raise GraphQLError(str(error), original_error=error, extensions={
                "code": error.code,
                "path": f"$.selectionSet.{info.path.key}.args.{error.argument}"}) from None
        return _batches(info, table, cursor, args.get("where"))
    return source


async def _batches(info, table: Table, cursor: Cursor, where: dict | None):
    changes: Changes = info.context["changes"]
    counted = changes.admit(id(info.context.get("request")), info.context["store"].caller)
    shared = live_key(info)
    try:
        while True:
            seen = changes.version
            batch = await _shared_batch(changes, (*shared, cursor.value), seen,
                                        lambda at=cursor: read_batch(info, table, at, where))
            rows, moved = batch
            if rows:
                yield rows
                cursor = replace(cursor, value=moved)
            if not rows or len(rows) < cursor.batch_size:
                await changes.wait(seen)
    finally:
        changes.leave(counted)


async def _shared_batch(changes: Changes, key: tuple, version: int, compute) -> tuple[list, Any]:
    """One computation for the streams at the same cursor and version (a cohort)."""
    changes.subscribers[key] = changes.subscribers.get(key, 0) + 1
    try:
        return await changes.answer(key, version, compute)
    except ClustoreError as error:
        raise graphql_error(error) from None
    finally:
        changes.release(key)
