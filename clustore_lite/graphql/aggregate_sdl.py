"""The SDL of Hasura's aggregates, derived from the catalog (and aggregation.py's list
of functions), for sdl.py's generator: T_sum_fields, T_avg_fields, T_max_fields, ... on
T_aggregate_fields; T_aggregate_order_by with T_sum_order_by, ... on array
relationships' order_by; and T_aggregate_bool_exp (count, bool_and, bool_or) on array
relationships' filters.

Names are Hasura's, so code generated against Hasura works here. `scalar(table,
column)` answers a column's GraphQL scalar (sum, max and min keep it; avg and the
statistics answer Float, as in Hasura)."""

from __future__ import annotations

from typing import Callable

from ..aggregation import BOOL_FUNCTIONS, FUNCTIONS, columns_for
from ..catalog import TABLES, Table

Scalar = Callable[[Table, str], str]
PREDICATES = ("Int", "Boolean")  # T_aggregate_bool_exp's predicates compare these


def _block(kind: str, name: str, lines: list[str]) -> str:
    body = "\n".join(f"  {line}" for line in lines)
    return f"{kind} {name} {{\n{body}\n}}"


def _functions(table: Table) -> list[str]:
    """The functions (besides count) that have columns to apply to in `table`."""
    return [f for f in FUNCTIONS if columns_for(table, f)]


def function_fields(table: Table) -> list[str]:
    """The fields of T_aggregate_fields beside count: `sum: T_sum_fields`, ..."""
    return [f"{function}: {table.name}_{function}_fields" for function in _functions(table)]


def function_types(table: Table, scalar: Scalar) -> list[str]:
    """T_<function>_fields for each function: the column's scalar, or Float."""
    types = []
    for function in _functions(table):
        as_float = FUNCTIONS[function][2]
        lines = [f"{c}: {'Float' if as_float else scalar(table, c)}"
                 for c in columns_for(table, function)]
        types.append(_block("type", f"{table.name}_{function}_fields", lines))
    return types


def order_by_fields(table: Table) -> list[str]:
    """T_order_by's `<array>_aggregate` fields, one per array relationship."""
    return [f"{a}_aggregate: {rel.table}_aggregate_order_by" for a, rel in table.arrays.items()]


def bool_exp_fields(table: Table) -> list[str]:
    """T_bool_exp's `<array>_aggregate` fields, one per array relationship."""
    return [f"{a}_aggregate: {rel.table}_aggregate_bool_exp" for a, rel in table.arrays.items()]


def order_by_inputs(table: Table) -> list[str]:
    """T_aggregate_order_by (count, and each function's T_<function>_order_by)."""
    name, inputs = table.name, []
    fields = ["count: order_by"]
    for function in _functions(table):
        lines = [f"{c}: order_by" for c in columns_for(table, function)]
        inputs.append(_block("input", f"{name}_{function}_order_by", lines))
        fields.append(f"{function}: {name}_{function}_order_by")
    return inputs + [_block("input", f"{name}_aggregate_order_by", sorted(fields))]


def bool_exp_inputs(table: Table) -> list[str]:
    """T_aggregate_bool_exp: count over any columns, bool_and/bool_or over a boolean one."""
    name = table.name
    common = ["distinct: Boolean", f"filter: {name}_bool_exp"]
    inputs = [_block("input", f"{name}_aggregate_bool_exp_count",
                     [f"arguments: [{name}_select_column!]", *common,
                      "predicate: Int_comparison_exp!"])]
    fields = [f"count: {name}_aggregate_bool_exp_count"]
    for function in BOOL_FUNCTIONS:
        columns = columns_for(table, function)
        if not columns:
            continue
        exp = f"{name}_aggregate_bool_exp_{function}"
        enum = f"{name}_select_column_{exp}_arguments_columns"
        inputs.append(_block("enum", enum, columns))
        inputs.append(_block("input", exp, [f"arguments: {enum}!", *common,
                                            "predicate: Boolean_comparison_exp!"]))
        fields.append(f"{function}: {exp}")
    return inputs + [_block("input", f"{name}_aggregate_bool_exp", sorted(fields))]


def related_inputs(table: Table) -> list[str]:
    """The inputs an array relationship to `table` orders and filters by (none when no
    array relationship leads to it, as in Hasura)."""
    if not any(rel.table == table.name for t in TABLES.values() for rel in t.arrays.values()):
        return []
    return order_by_inputs(table) + bool_exp_inputs(table)
