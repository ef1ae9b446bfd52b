"""Hasura's aggregates (count, sum, avg, max, min, stddev, variance, ...) over the rows
a caller sees: in aggregate selections, in `order_by` on an array relationship's
`<array>_aggregate`, and in `where` as T_aggregate_bool_exp.

Every function reads the rows through the compiler's `rows` (the caller's visibility)
and every column through `compiler.column` (NULL where masked, so a masked value is
neither counted nor summed nor the max). The compiler is passed in, not imported:
query.py calls these functions from its own where and order_by."""

from __future__ import annotations

from typing import Any

from .catalog import BOOL, INT, REAL, TABLES, TEXT, ArrayRel, Table
from .db.statistics import FUNCTIONS as STATISTICS
from .errors import InvalidValue

NUMERIC = (INT, REAL)
ORDERED = (INT, REAL, TEXT)  # Hasura: max/min on any type but json and boolean
_stat = {name.removeprefix("clustore_"): name for name in STATISTICS}

# Hasura's aggregate function -> (SQL aggregate, the column kinds it takes, answers a
# float rather than the column's own type)
FUNCTIONS = {
    "avg": ("avg", NUMERIC, True),
    "max": ("max", ORDERED, False),
    "min": ("min", ORDERED, False),
    "stddev": (_stat["stddev_samp"], NUMERIC, True),  # PostgreSQL's stddev is the sample's
    "stddev_pop": (_stat["stddev_pop"], NUMERIC, True),
    "stddev_samp": (_stat["stddev_samp"], NUMERIC, True),
    "sum": ("sum", NUMERIC, False),
    "var_pop": (_stat["var_pop"], NUMERIC, True),
    "var_samp": (_stat["var_samp"], NUMERIC, True),
    "variance": (_stat["var_samp"], NUMERIC, True),  # so is its variance
}
# T_aggregate_bool_exp's functions on boolean columns (stored 0/1): PG's bool_and/bool_or
BOOL_FUNCTIONS = {"bool_and": "min", "bool_or": "max"}
SUFFIX = "_aggregate"


def columns_for(table: Table, function: str) -> list[str]:
    """The visible columns of `table` that Hasura's `function` applies to."""
    kinds = (BOOL,) if function in BOOL_FUNCTIONS else FUNCTIONS[function][1]
    return [c for c in table.visible_columns if table.columns[c] in kinds]


def array_of(table: Table, key: str) -> ArrayRel | None:
    """The array relationship that `<array>_aggregate` names, if `key` is one."""
    if key.endswith(SUFFIX):
        return table.arrays.get(key[: -len(SUFFIX)])
    return None


def function_sql(compiler, table: Table, alias: str, function: str, column: str) -> str:
    """SQL for `function(column)` over the rows named `alias`, as the caller reads them."""
    if function not in FUNCTIONS:
        raise InvalidValue(f"unknown aggregate {function!r}; use count or one of "
                           f"{', '.join(FUNCTIONS)}")
    if column not in columns_for(table, function):
        raise InvalidValue(f"{function} does not apply to {table.name}.{column!r}")
    return f"{FUNCTIONS[function][0]}({compiler.column(table, alias, column)})"


def count_sql(compiler, table: Table, alias: str, source: str, columns: Any,
              distinct: Any) -> str:
    """A scalar subquery: Hasura's `count(columns:, distinct:)` over the rows FROM
    `source` named `alias`. Hasura emits PostgreSQL's COUNT((a, b)): one column counts
    its non-null values; several count every row (a row of values is never null), or
    their distinct combinations."""
    names = _column_names(table, columns or [], "count")
    if distinct and not names:
        names = list(table.key)  # team_member has no id
    refs = [compiler.column(table, alias, name) for name in names]
    if len(refs) > 1 and not distinct:
        return f"(SELECT count(*) FROM {source})"
    if len(refs) > 1:
        return f"(SELECT count(*) FROM (SELECT DISTINCT {', '.join(refs)} FROM {source}))"
    counted = refs[0] if refs else "*"
    return f"(SELECT count({'DISTINCT ' if distinct else ''}{counted}) FROM {source})"


def _column_names(table: Table, columns: Any, doing: str) -> list[str]:
    names = columns if isinstance(columns, list) else [columns]
    for name in names:
        if not isinstance(name, str) or name not in table.visible_columns:
            raise InvalidValue(f"{doing}: {table.name} has no column {name!r}")
    return names


def _related(compiler, table: Table, alias: str, key: str, where: Any = None):
    """(target table, alias, FROM source) of the related rows the caller sees."""
    rel = array_of(table, key)
    target = TABLES[rel.table]
    rows = compiler.rows(target, where=where, via=(rel, alias))
    return target, rows.alias, f"({rows.select(f'{rows.alias}.*')}) {rows.alias}"


# -- order_by: {datasets_aggregate: {count: desc, max: {name: asc}}} -------------------

def order_terms(compiler, table: Table, alias: str, key: str, spec: Any) -> list[tuple[str, Any]]:
    """(expression, direction) for each entry of T_aggregate_order_by `spec`."""
    if not isinstance(spec, dict) or not spec:
        raise InvalidValue(f"order_by on {key} takes an object such as {{count: desc}}, "
                           f"not {spec!r}")
    terms = []
    for function, value in spec.items():
        target, inner, source = _related(compiler, table, alias, key)
        if function == "count":
            terms.append((count_sql(compiler, target, inner, source, [], False), value))
            continue
        if not isinstance(value, dict) or not value:
            raise InvalidValue(f"order_by on {key}.{function} takes columns and directions, "
                               f"such as {{{function}: {{createdAt: desc}}}}")
        for column, direction in value.items():
            expression = function_sql(compiler, target, inner, function, column)
            terms.append((f"(SELECT {expression} FROM {source})", direction))
    return terms


# -- where: {datasets_aggregate: {count: {predicate: {_gt: 1}, filter: ...}}} ---------

def filter_sql(compiler, table: Table, alias: str, key: str, spec: Any) -> str:
    """SQL for T_aggregate_bool_exp `spec`: each function's value over the related rows
    (those matching its `filter`) satisfies its `predicate`."""
    if not isinstance(spec, dict) or not spec:
        raise InvalidValue(f"{key} takes an object such as {{count: {{predicate: {{_gt: 0}}}}}}"
                           f", not {spec!r}")
    parts = []
    for function, args in spec.items():
        if function != "count" and function not in BOOL_FUNCTIONS:
            raise InvalidValue(f"{key} takes count, bool_and or bool_or, not {function!r}")
        if not isinstance(args, dict) or not isinstance(args.get("predicate"), dict):
            raise InvalidValue(f"{key}.{function} needs a predicate, such as "
                               "{predicate: {_gt: 0}}")
        with compiler.hop():
            target, inner, source = _related(compiler, table, alias, key, args.get("filter"))
        value, kind = _aggregated(compiler, target, inner, source, function, args)
        parts.append(compiler.compare(value, kind, args["predicate"], f"{key}.{function}"))
    return " AND ".join(f"({p})" for p in parts)


def _aggregated(compiler, table: Table, alias: str, source: str, function: str,
                args: dict) -> tuple[str, str]:
    """(scalar subquery, kind of its value) of one T_aggregate_bool_exp function."""
    if function == "count":
        return count_sql(compiler, table, alias, source, args.get("arguments"),
                         args.get("distinct")), INT
    column = args.get("arguments")
    if column not in columns_for(table, function):
        raise InvalidValue(f"{function} takes one boolean column of {table.name} as "
                           f"arguments, not {column!r}")
    distinct = "DISTINCT " if args.get("distinct") else ""
    ref = compiler.column(table, alias, column)
    return f"(SELECT {BOOL_FUNCTIONS[function]}({distinct}{ref}) FROM {source})", BOOL
