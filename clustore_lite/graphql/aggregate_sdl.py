"""The SDL of Hasura's aggregates, derived from the catalog (and aggregation.py's list
of functions): T_sum_fields, T_avg_fields, T_max_fields, ... on T_aggregate_fields;
T_aggregate_order_by with T_sum_order_by, ... on array relationships' order_by; and
T_aggregate_bool_exp (count, bool_and, bool_or) on array relationships' filters.

Names are Hasura's, so code generated against Hasura works here. `scalar(table,
column)` answers a column's GraphQL scalar (sum, max and min keep it; the statistics
answer Float, as Hasura's float8 results do)."""

from __future__ import annotations

from typing import Callable

from ..aggregation import BOOL_FUNCTIONS, FUNCTIONS, columns_for
from ..catalog import TABLES, Table

Scalar = Callable[[Table, str], str]


def _block(kind: str, name: str, lines: list[str]) -> str:
    body = "\n".join(f"  {line}" for line in lines)
    return f"{kind} {name} {{\n{body}\n}}\n"


def _functions(table: Table) -> list[str]:
    """The functions (besides count) that have columns to apply to in `table`."""
    return [f for f in FUNCTIONS if columns_for(table, f)]


def function_types(table: Table, scalar: Scalar) -> str:
    """T_<function>_fields for each function, and their fields on T_aggregate_fields."""
    name, parts, fields = table.name, [], []
    for function in _functions(table):
        as_float = FUNCTIONS[function][2]
        lines = [f"{c}: {'Float' if as_float else scalar(table, c)}"
                 for c in columns_for(table, function)]
        parts.append(_block("type", f"{name}_{function}_fields", lines))
        fields.append(f"{function}: {name}_{function}_fields")
    if fields:
        parts.append(_block("extend type", f"{name}_aggregate_fields", fields))
    return "".join(parts)


def order_by_inputs(table: Table) -> str:
    """T_aggregate_order_by (count, and each function's T_<function>_order_by)."""
    name, parts = table.name, []
    fields = ["count: order_by"]
    for function in _functions(table):
        lines = [f"{c}: order_by" for c in columns_for(table, function)]
        parts.append(_block("input", f"{name}_{function}_order_by", lines))
        fields.append(f"{function}: {name}_{function}_order_by")
    parts.append(_block("input", f"{name}_aggregate_order_by", sorted(fields)))
    return "".join(parts)


def bool_exp_inputs(table: Table) -> str:
    """T_aggregate_bool_exp: count over any columns, bool_and/bool_or over a boolean one."""
    name = table.name
    common = ["distinct: Boolean", f"filter: {name}_bool_exp"]
    parts = [_block("input", f"{name}_aggregate_bool_exp_count",
                    [f"arguments: [{name}_select_column!]", *common,
                     "predicate: Int_comparison_exp!"])]
    fields = [f"count: {name}_aggregate_bool_exp_count"]
    for function in BOOL_FUNCTIONS:
        columns = columns_for(table, function)
        if not columns:
            continue
        exp = f"{name}_aggregate_bool_exp_{function}"
        enum = f"{name}_select_column_{exp}_arguments_columns"
        parts.append(_block("enum", enum, columns))
        parts.append(_block("input", exp, [f"arguments: {enum}!", *common,
                                           "predicate: Boolean_comparison_exp!"]))
        fields.append(f"{function}: {exp}")
    parts.append(_block("input", f"{name}_aggregate_bool_exp", sorted(fields)))
    return "".join(parts)


def relationship_inputs(table: Table) -> str:
    """`<array>_aggregate` on T_order_by and T_bool_exp, for each array relationship."""
    if not table.arrays:
        return ""
    order = [f"{a}_aggregate: {rel.table}_aggregate_order_by" for a, rel in table.arrays.items()]
    where = [f"{a}_aggregate: {rel.table}_aggregate_bool_exp" for a, rel in table.arrays.items()]
    return (_block("extend input", f"{table.name}_order_by", order)
            + _block("extend input", f"{table.name}_bool_exp", where))


def aggregate_sdl(scalar: Scalar) -> str:
    """All of the above, for every table of the catalog."""
    targets = {rel.table for table in TABLES.values() for rel in table.arrays.values()}
    parts = []
    for table in TABLES.values():
        parts.append(function_types(table, scalar))
        if table.name in targets:
            parts.append(order_by_inputs(table) + bool_exp_inputs(table))
        parts.append(relationship_inputs(table))
    return "\n".join(p for p in parts if p)
