"""Hasura's `where` and `order_by` compiled to SQL, so filtering and sorting run in
SQLite, not in Python. Shared by the Python API and the GraphQL layer.

A `Compiler` made with a caller's visibility applies it in `Compiler.rows`, the one
builder of "the rows of a table that the caller sees" (join + visibility + where +
order + paging). Every path of a request goes through it: root lists, relationships,
filters and ordering through relationships, aggregates, rows by key.

Made with the caller's column masks, it reads every column through `Compiler.column`,
for selecting, filtering, ordering and counting alike: a column masked on a row is
NULL there, whatever the caller does with it.

The limits below bound what one where/order_by may ask, for the Python API and the
GraphQL API alike: past them a request gets an InvalidValue that names the limit
instead of one of SQLite's errors (its defaults: 32766 parameters, LIKE patterns of
50000 bytes, expressions 1000 levels deep) or Python's RecursionError."""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Callable

from . import aggregation
from .catalog import BLOB, BOOL, JSON, TABLES, TEXT, ArrayRel, ObjectRel, Table, q
from .errors import InvalidValue
from .filter_operators import (OPERATORS, compile_operator, jsonb_key, jsonb_order, jsonb_text,
                        jsonb_value, new_budget)

# visibility(compiler, table, alias) -> SQL predicate on the rows of `table` named
# `alias` (values bound with compiler.bind), or None for "no restriction"
Visibility = Callable[["Compiler", Table, str], "str | None"]
# columns(compiler, table, alias, column) -> SQL for the column as the caller reads it
Columns = Callable[["Compiler", Table, str, str], str]
Via = tuple[ObjectRel | ArrayRel, str]  # a relationship, and the alias of its outer row

COMPARISONS = {"_eq": "=", "_neq": "<>", "_gt": ">", "_gte": ">=", "_lt": "<", "_lte": "<="}
ORDER = {
    "asc": "ASC NULLS LAST", "asc_nulls_last": "ASC NULLS LAST",
    "asc_nulls_first": "ASC NULLS FIRST", "desc": "DESC NULLS FIRST",
    "desc_nulls_first": "DESC NULLS FIRST", "desc_nulls_last": "DESC NULLS LAST",
}

# -- limits (see the module's docstring; README "As a server" lists them) ------------
MAX_IN_VALUES = 10_000  # values of one _in / _nin
MAX_TERMS = 1_000  # items of one _and / _or (joined as a balanced tree: ~10 levels)
MAX_CONDITIONS = 10_000  # terms in all the filters of one statement
MAX_WHERE_DEPTH = 16  # _and, _or, _not and relationships nested in one where
MAX_WHERE_HOPS = 4  # relationships one filter goes through (see _deeper)
MAX_ORDER_BY = 100  # order_by terms
MAX_PATTERN = 10_000  # characters of a _like / _ilike pattern (at most 40000 bytes)
MAX_PARAMETERS = 30_000  # values bound in one statement
LIKES = ("_like", "_nlike", "_ilike", "_nilike")
DISTINCT_RANK = q("clustore distinct rank")  # the window's column, named unlike any column


@dataclass
class Rows:
    """Rows chosen by `Compiler.rows`; `select(expression)` makes the statement."""

    alias: str
    source: str  # what follows FROM: the table, or a join table and the table
    condition: str
    order: str | None = None  # ORDER BY terms, when the rows are ordered
    paging: str = ""

    def select(self, expression: str) -> str:
        sql = f"SELECT {expression} FROM {self.source} WHERE {self.condition}"
        if self.order is not None:
            sql += f" ORDER BY {self.order}{self.paging}"
        return sql


class Compiler:
    """Compiles for one statement; numbers its table aliases so nested EXISTS
    subqueries never clash."""

    def __init__(self, visibility: Visibility | None = None, columns: Columns | None = None):
        self.visibility = visibility
        self.columns = columns
        self.params: dict[str, Any] = {}  # named, so SQL pieces can be built in any order
        self._aliases = itertools.count()
        self._nesting = {"where": 0, "hops": 0}  # where's current depth, relationships
        self._conditions = 0
        self.budget = new_budget()  # the matching time of its patterns, all together

    def alias(self) -> str:
        return f"t{next(self._aliases)}"

    def bind(self, value: Any) -> str:
        """A named parameter holding `value`."""
        if len(self.params) >= MAX_PARAMETERS:
            raise InvalidValue(f"the query needs more than {MAX_PARAMETERS} values; at most "
                               f"{MAX_PARAMETERS} are allowed in one statement")
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def column(self, table: Table, alias: str, column: str) -> str:
        """SQL for `column` of row `alias` as the caller reads it (NULL where masked):
        the one way this compiler reads a column, so a masked value cannot be filtered,
        ordered or counted on either."""
        if self.columns is None:
            return f"{alias}.{q(column)}"
        return self.columns(self, table, alias, column)

    # -- the rows a caller sees ------------------------------------------------------

    def rows(self, table: Table, *, where: dict | None = None, via: Via | None = None,
             keys: dict | None = None, order_by: Any = None, ordered: bool = False,
             limit: int | None = None, offset: int | None = None,
             image: str | None = None, distinct_on: Any = None) -> Rows:
        """The rows of `table` that the caller sees and that match `where`; with `via`,
        only those related to the outer row; with `keys`, those with these column
        values; `ordered` adds order_by (ending with the key) and paging. With `image`
        (a row as JSON text, such as an event's `old` or `new`), that one row in place
        of the stored ones: an event is judged by the table's own visibility. With
        `distinct_on` (and `ordered`), the first row of each group of equal values of
        those columns, in order_by's order (PostgreSQL's DISTINCT ON)."""
        alias = self.alias()
        source, conditions = f"{table.quoted} {alias}", []
        if image is not None:
            source = f"({_image_select(table, self.bind(image))}) {alias}"
        if via is not None:
            rel, outer = via
            source = _source(rel, alias)
            conditions.append(_join_condition(rel, outer, alias))
        conditions += [f"{self.column(table, alias, k)} = {self.bind(v)}"
                       for k, v in (keys or {}).items()]
        if image is None and (exists := table.exists_sql(alias)):
            conditions.append(exists)
        if self.visibility is not None:
            visible = self.visibility(self, table, alias)
            if visible:
                conditions.append(visible)
        if where:
            conditions.append(self.where(table, alias, where))
        rows = Rows(alias, source, " AND ".join(conditions) or "1")
        if ordered:
            if distinct_on:
                self._distinct(rows, table, distinct_on, order_by)
            else:
                rows.order = self.order_by(table, alias, order_by)
            rows.paging = self.paging(limit, offset)
        return rows

    def _distinct(self, rows: Rows, table: Table, distinct_on: Any, order_by: Any) -> None:
        """Keep the first row of each group of `distinct_on` values, in the order of
        order_by (by those columns when silent): numbered in their group by a window,
        since SQLite has no DISTINCT ON. Columns are read as the caller reads them, so
        a masked value is NULL: one group, as PostgreSQL groups nulls."""
        columns = _listed(distinct_on)
        for column in columns:
            if column not in table.columns or column in table.hidden:
                raise InvalidValue(f"{table.name} has no column {column!r} for distinct_on")
        if order_by:
            _check_distinct_leads(table, columns, order_by)
        else:
            order_by = [{column: "asc"} for column in dict.fromkeys(columns)]
        alias = rows.alias
        rows.order = self.order_by(table, alias, order_by)
        groups = ", ".join(jsonb_key(self.column(table, alias, c)) if table.columns[c] == JSON
                           else self.column(table, alias, c) for c in columns)  # jsonb's equality
        rows.source = (f"(SELECT {alias}.*, row_number() OVER (PARTITION BY {groups} ORDER BY "
                       f"{rows.order}) AS {DISTINCT_RANK} FROM {rows.source} "
                       f"WHERE {rows.condition}) {alias}")
        rows.condition = f"{alias}.{DISTINCT_RANK} = 1"

    def paging(self, limit: int | None, offset: int | None) -> str:
        if limit is None and not offset:
            return ""
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise InvalidValue(f"{name} must be a non-negative integer, not {value!r}")
        return f" LIMIT {self.bind(-1 if limit is None else limit)} OFFSET {self.bind(offset or 0)}"

    # -- where ---------------------------------------------------------------------

    def where(self, table: Table, alias: str, where: dict | None) -> str:
        """SQL for `where` on rows of `table` named `alias` (empty means true)."""
        if not where:
            return "1"
        if not isinstance(where, dict):
            raise InvalidValue(f"a where expression must be an object, not {where!r}")
        with self._deeper("where", MAX_WHERE_DEPTH,
                          "where nests _and, _or, _not and relationships"):
            parts = [self._term(table, alias, key, value) for key, value in where.items()]
        return " AND ".join(f"({p})" for p in parts)

    def _term(self, table: Table, alias: str, key: str, value: Any) -> str:
        self._conditions += 1
        if self._conditions > MAX_CONDITIONS:
            raise InvalidValue(f"the filters have more than {MAX_CONDITIONS} conditions; at "
                               f"most {MAX_CONDITIONS} are allowed in one statement")
        if key in ("_and", "_or"):
            terms = _listed(value)
            _at_most(len(terms), MAX_TERMS, f"{key} has {len(terms)} terms")
            parts = [self.where(table, alias, w) for w in terms]
            return _balanced(parts, key[1:].upper()) if parts else "1" if key == "_and" else "0"
        if key == "_not":
            return f"NOT ({self.where(table, alias, value)})"
        if aggregation.array_of(table, key):
            return aggregation.filter_sql(self, table, alias, key, value)
        if key in table.objects or key in table.arrays:
            rel = table.objects.get(key) or table.arrays[key]
            with self.hop():
                related = self.rows(TABLES[rel.table], where=value, via=(rel, alias))
            return f"EXISTS ({related.select('1')})"
        if key in table.columns and key not in table.hidden:
            _check_operands(f"{table.name}.{key}", value)
            return self._column(table, alias, key, value)
        raise InvalidValue(f"{table.name} has no field {key!r} to filter on")

    def _column(self, table: Table, alias: str, column: str, ops: Any) -> str:
        ref = self.column(table, alias, column)
        return self.compare(ref, table.columns[column], ops, f"{table.name}.{column}")

    def compare(self, ref: str, kind: str, ops: Any, what: str) -> str:
        """SQL for the comparison operators `ops` applied to the SQL value `ref` of
        catalog `kind` (a column, or an aggregate); `what` names it in errors."""
        if not isinstance(ops, dict) or not ops:
            raise InvalidValue(
                f"filter on {what} must be an object of operators such as "
                f"{{_eq: ...}}, not {ops!r}")
        parts = []
        for op, value in ops.items():
            if op == "_is_null":
                parts.append(f"{ref} IS {'' if value else 'NOT '}NULL")
                continue
            if value is None:
                raise InvalidValue(f"{op} on {what} needs a value; "
                                   "use _is_null to test for null")
            if kind == JSON and op in ("_eq", "_neq", "_in", "_nin"):
                ref_key = jsonb_key(ref)  # jsonb compares values, not their texts
                values = [value] if op in ("_eq", "_neq") else _listed(value)
                listed = ", ".join(jsonb_value(self.bind, v) for v in values)
                negate = "NOT " if op in ("_neq", "_nin") else ""
                parts.append(f"{ref_key} {negate}IN ({listed})" if values else
                             "0" if op == "_in" else "1")
            elif kind == JSON and op in COMPARISONS:
                parts.append(jsonb_order(self.bind, ref, COMPARISONS[op], value))
            elif op in COMPARISONS:
                parts.append(f"{ref} {COMPARISONS[op]} {self._param(kind, value)}")
            elif op in ("_in", "_nin"):
                values = _listed(value)
                listed = ", ".join(self._param(kind, v) for v in values)
                if not values:
                    parts.append("0" if op == "_in" else "1")
                else:
                    parts.append(f"{ref} {'NOT ' if op == '_nin' else ''}IN ({listed})")
            elif op in ("_like", "_nlike"):
                parts.append(f"{ref} {'NOT ' if op == '_nlike' else ''}LIKE {self._param(kind, value)}")
            elif op in ("_ilike", "_nilike"):
                negate = "NOT " if op == "_nilike" else ""
                parts.append(f"lower({ref}) {negate}LIKE lower({self._param(kind, value)})")
            elif op == "_cast" and kind == JSON:
                parts.append(self._cast(ref, value, what))
            elif op in OPERATORS:
                parts.append(compile_operator(self.bind, kind, ref, op, value, what, self.budget))
            else:
                raise InvalidValue(f"unknown operator {op!r} on {what}")
        return " AND ".join(parts)

    def _cast(self, ref: str, casts: Any, what: str) -> str:
        """Hasura's `_cast: {String: {...}}` on jsonb: String operators on its text."""
        if not isinstance(casts, dict) or set(casts) - {"String"} or not casts:
            raise InvalidValue(f"_cast on {what} takes {{String: {{...}}}}, not {casts!r}")
        _check_operands(f"{what} as String", casts["String"])
        return self.compare(jsonb_text(ref), TEXT, casts["String"], f"{what} as String")

    def _param(self, kind: str, value: Any) -> str:
        if kind == BOOL:
            if not isinstance(value, bool):
                raise InvalidValue(f"expected true or false, not {value!r}")
            value = int(value)
        elif kind == JSON:
            return f"json({self.bind(json.dumps(value))})"
        elif kind == BLOB:
            raise InvalidValue("binary columns cannot be compared")
        elif isinstance(value, (dict, list)):
            raise InvalidValue(f"expected a scalar value, not {value!r}")
        return self.bind(value)

    # -- order_by ------------------------------------------------------------------

    def order_by(self, table: Table, alias: str, order_by: Any) -> str:
        """SQL ORDER BY terms (without the keywords), always ending with the key so
        that paging with limit/offset is stable."""
        terms = []
        items = _listed(order_by) if order_by else []
        count = sum(len(item) if isinstance(item, dict) else 1 for item in items)
        _at_most(count, MAX_ORDER_BY, f"order_by has {count} terms")
        for item in items:
            if not isinstance(item, dict):
                raise InvalidValue(f"order_by items must be objects, not {item!r}")
            for key, direction in item.items():
                terms.extend(" ".join(t) for t in self._order_terms(table, alias, key, direction))
        terms.extend(f"{self.column(table, alias, k)} ASC" for k in (*table.default_order, *table.key))
        return ", ".join(terms)

    def _order_terms(self, table: Table, alias: str, key: str,
                     direction: Any) -> list[tuple[str, str]]:
        """(expression, ordering) for each term of one order_by entry: object
        relationships order by a correlated subquery on the related row, an array's
        `<array>_aggregate` by aggregates of the related rows."""
        if aggregation.array_of(table, key):
            return [(expression, _ordering(value)) for expression, value
                    in aggregation.order_terms(self, table, alias, key, direction)]
        if key in table.objects:
            if not isinstance(direction, dict) or not direction:
                raise InvalidValue(f"order_by on {key} takes fields of {key}")
            rel = table.objects[key]
            target = TABLES[rel.table]
            related = self.rows(target, via=(rel, alias))
            return [(f"({related.select(expression)})", order)
                    for field, sub_direction in direction.items()
                    for expression, order in self._order_terms(target, related.alias, field,
                                                                sub_direction)]
        if key not in table.columns or key in table.hidden:
            raise InvalidValue(f"{table.name} has no field {key!r} to order by")
        return [(self.column(table, alias, key), _ordering(direction))]

    def hop(self):
        """A filter goes through one more relationship (InvalidValue past the limit)."""
        return self._deeper("hops", MAX_WHERE_HOPS, "a filter goes through relationships")


    @contextlib.contextmanager
    def _deeper(self, counter: str, limit: int, what: str):
        """One level deeper in `counter`; InvalidValue past `limit` levels."""
        self._nesting[counter] += 1
        try:
            if self._nesting[counter] > limit:
                raise InvalidValue(f"{what} more than {limit} levels deep; at most {limit} "
                                   "are allowed")
            yield
        finally:
            self._nesting[counter] -= 1


def _check_distinct_leads(table: Table, columns: list, order_by: Any) -> None:
    """Hasura's rule (PostgreSQL's for DISTINCT ON): the first order_by terms are
    columns, as many as distinct_on names, and the same ones."""
    terms = [key for item in _listed(order_by) if isinstance(item, dict) for key in item]
    leading = [key for key in terms[:len(columns)] if key in table.columns]
    if len(leading) != len(columns) or not set(columns) <= set(leading):
        raise InvalidValue('"distinct_on" columns must match initial "order_by" columns')


def _image_select(table: Table, image: str) -> str:
    """SELECT of the columns of `table` read from the JSON object `image` (absent
    ones, such as tokens, are NULL)."""
    columns = ", ".join(f"json_extract({image}, '$.{c}') AS {q(c)}" for c in table.columns)
    return f"SELECT {columns}"


def _ordering(direction: Any) -> str:
    if not isinstance(direction, str) or direction not in ORDER:
        raise InvalidValue(f"order direction must be one of {', '.join(ORDER)}, not {direction!r}")
    return ORDER[direction]


def _at_most(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise InvalidValue(f"{what}; at most {limit} are allowed")


def _check_operands(what: str, ops: Any) -> None:
    """The sizes of a column's operands: values of _in/_nin, patterns of _like & co."""
    if not isinstance(ops, dict):
        return  # _column explains what a filter on a column looks like
    for op, value in ops.items():
        if op in ("_in", "_nin") and isinstance(value, list):
            _at_most(len(value), MAX_IN_VALUES,
                     f"{op} on {what} has {len(value)} values")
        elif op in LIKES and isinstance(value, str):
            _at_most(len(value), MAX_PATTERN,
                     f"the {op} pattern on {what} has {len(value)} characters")


def _balanced(parts: list[str], operator: str) -> str:
    """`parts` joined by AND or OR as a balanced tree: SQLite nests `a OR b OR c...`
    one level per term, and refuses expressions over 1000 levels deep."""
    if len(parts) == 1:
        return f"({parts[0]})"
    middle = len(parts) // 2
    return f"({_balanced(parts[:middle], operator)} {operator} {_balanced(parts[middle:], operator)})"


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _source(rel: ObjectRel | ArrayRel, inner: str) -> str:
    target = TABLES[rel.table]
    if isinstance(rel, ArrayRel) and rel.through:
        join_table, _, to_col = rel.through
        return (f"{q(join_table)} {inner}_j JOIN {target.quoted} {inner} "
                f"ON {inner}.id = {inner}_j.{q(to_col)}")
    return f"{target.quoted} {inner}"


def _join_condition(rel: ObjectRel | ArrayRel, outer: str, inner: str) -> str:
    if isinstance(rel, ArrayRel) and rel.through:
        _, from_col, _ = rel.through
        return f"{inner}_j.{q(from_col)} = {outer}.{q(rel.column)}"
    return f"{inner}.{q(rel.remote)} = {outer}.{q(rel.column)}"


def select_sql(table: Table, compiler: Compiler, where: dict | None = None, order_by: Any = None,
               limit: int | None = None, offset: int | None = None, distinct_on: Any = None):
    """A SELECT of the visible columns of the rows of `table` that the compiler's
    caller sees, as it reads them, and its parameters."""
    rows = compiler.rows(table, where=where, order_by=order_by, ordered=True,
                         limit=limit, offset=offset, distinct_on=distinct_on)
    columns = ", ".join(f"{compiler.column(table, rows.alias, c)} AS {q(c)}"
                        for c in table.visible_columns)
    return rows.select(columns), compiler.params


def count_sql(table: Table, compiler: Compiler, where: dict | None = None):
    """A SELECT count(*) of the rows of `table` the compiler's caller sees, and its
    parameters."""
    return compiler.rows(table, where=where).select("count(*)"), compiler.params
