"""A GraphQL selection compiled to ONE SQL statement that builds the JSON answer
(as Hasura does over PostgreSQL): relationships become correlated subqueries with
json_object/json_group_array, so a query costs a bounded number of statements
however many rows and levels it has (no N+1).

JSON keys are the response keys (aliases), and the schema's default resolver reads
values by response key (see schema.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from graphql import (FieldNode, FragmentSpreadNode, GraphQLIncludeDirective,
                     GraphQLObjectType, GraphQLSkipDirective, InlineFragmentNode,
                     SelectionSetNode, get_named_type)
from graphql.execution.values import get_argument_values, get_directive_values

from .. import aggregation
from ..arrow import checksum
from ..arrow.codec import chunk_name, rows_json
from ..catalog import BOOL, JSON, TABLES, Table, q
from ..db.sqlite_errors import reported
from ..errors import InvalidValue
from ..jsonb import sqlite_path
from ..query import Compiler

Fields = dict[str, list[FieldNode]]  # response key -> the field nodes merged under it


class Selection:
    """Compiles the selections of one operation (fragments and variables of `info`)."""

    def __init__(self, info, compiler: Compiler):
        self.info = info
        self.compiler = compiler  # the caller's visibility and column masks

    # -- collecting fields ----------------------------------------------------------

    def fields(self, nodes: Iterable[FieldNode]) -> Fields:
        """The sub-fields selected under `nodes`, merged by response key, with
        fragments expanded and @skip/@include applied."""
        collected: Fields = {}
        for node in nodes:
            if node.selection_set:
                self._collect(node.selection_set, collected)
        return collected

    def _collect(self, selection_set: SelectionSetNode, into: Fields) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                into.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                self._collect(selection.selection_set, into)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.info.fragments[selection.name.value]
                self._collect(fragment.selection_set, into)

    def _included(self, node) -> bool:
        variables = self.info.variable_values
        skip = get_directive_values(GraphQLSkipDirective, node, variables)
        if skip and skip.get("if"):
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, variables)
        return not (include and not include.get("if"))

    def arguments(self, parent: GraphQLObjectType, node: FieldNode) -> dict:
        definition = parent.fields[node.name.value]
        return get_argument_values(definition, node, self.info.variable_values)

    # -- building JSON --------------------------------------------------------------

    def object_json(self, table: Table, alias: str, gql_type: GraphQLObjectType,
                    nodes: list[FieldNode]) -> str:
        """SQL for the JSON object of one row of `table` named `alias`."""
        parts = []
        for key, field_nodes in self.fields(nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                parts.append(f"'{_key(key)}', '{gql_type.name}'")
                continue
            value = self.field_json(table, alias, gql_type, name, field_nodes)
            parts.append(f"'{_key(key)}', {value}")
        return f"json_object({', '.join(parts)})"

    def field_json(self, table: Table, alias: str, gql_type: GraphQLObjectType, name: str,
                   nodes: list[FieldNode]) -> str:
        if name in table.objects:
            rel = table.objects[name]
            target = TABLES[rel.table]
            related = self.compiler.rows(target, via=(rel, alias))
            value = self.object_json(target, related.alias, self._type_of(gql_type, name), nodes)
            return f"json(({related.select(value)}))"
        array_name = name[: -len("_aggregate")] if name.endswith("_aggregate") else name
        if array_name in table.arrays:
            rel = table.arrays[array_name]
            args = self.arguments(gql_type, nodes[0])
            child_type = self._type_of(gql_type, name)
            if name.endswith("_aggregate"):
                return self.aggregate_json(TABLES[rel.table], args, child_type, nodes, (rel, alias))
            return self.list_json(TABLES[rel.table], args, child_type, nodes, (rel, alias))
        value = self.column_json(table, alias, name, nodes)
        path = self.arguments(gql_type, nodes[0]).get("path") if nodes[0].arguments else None
        if path is None:
            return value
        return f"json({value} -> {self.compiler.bind(sqlite_path(path))})"  # Hasura's path:

    def column_json(self, table: Table, alias: str, column: str, nodes) -> str:
        if column not in table.columns:
            raise InvalidValue(f"{table.name} has no field {column!r}")
        ref = self.compiler.column(table, alias, column)
        if (table.name, column) == ("chunk", "data"):
            # as a BLOB: another tool may have stored TEXT, not valid UTF-8
            named = ", ".join([f"(SELECT checksum FROM chunk_checksum WHERE chunkId = {alias}.id)",
                               *(f"{alias}.{q(c)}" for c in ("dataframeId", "position", "id"))])
            return f"json(clustore_chunk_rows(CAST({ref} AS BLOB), {named}))"
        if table.columns[column] == BOOL:
            return f"(CASE {ref} WHEN 1 THEN json('true') WHEN 0 THEN json('false') END)"
        if table.columns[column] == JSON:
            if nodes[0].selection_set:  # an object type kept as JSON, e.g. task.algorithm
                parts = [f"'{_key(k)}', " + (f"({ref} -> '$.{n[0].name.value}')"
                                             if n[0].name.value != "__typename" else "'algorithm'")
                         for k, n in self.fields(nodes).items()]
                return f"(CASE WHEN {ref} IS NOT NULL THEN json_object({', '.join(parts)}) END)"
            return f"json({ref})"
        return ref

    def _rows(self, table: Table, args: dict, correlation) -> tuple[str, str, str]:
        """(alias, a subquery of the rows a list field selects, its order terms)."""
        rows = self.compiler.rows(table, where=args.get("where"), via=correlation,
                                  order_by=args.get("order_by"), ordered=True,
                                  limit=args.get("limit"), offset=args.get("offset"),
                                  distinct_on=args.get("distinct_on"))
        return rows.alias, f"({rows.select(f'{rows.alias}.*')}) {rows.alias}", rows.order

    def list_json(self, table: Table, args: dict, gql_type, nodes, correlation=None) -> str:
        """SQL for the JSON array of the rows a list field selects."""
        inner, rows, order = self._rows(table, args, correlation)
        value = self.object_json(table, inner, gql_type, nodes)
        return f"json((SELECT json_group_array({value} ORDER BY {order}) FROM {rows}))"

    def aggregate_json(self, table: Table, args: dict, aggregate_type, nodes,
                       correlation=None) -> str:
        """SQL for `<list>_aggregate { aggregate { count } nodes { ... } }`."""
        parts = []
        for key, field_nodes in self.fields(nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                parts.append(f"'{_key(key)}', '{aggregate_type.name}'")
            elif name == "nodes":
                node_type = self._type_of(aggregate_type, "nodes")
                parts.append(f"'{_key(key)}', "
                             f"{self.list_json(table, args, node_type, field_nodes, correlation)}")
            elif name == "aggregate":
                fields_type = self._type_of(aggregate_type, "aggregate")
                value = self.functions_json(table, args, fields_type, field_nodes, correlation)
                parts.append(f"'{_key(key)}', {value}")
        return f"json_object({', '.join(parts)})"

    def functions_json(self, table: Table, args: dict, fields_type, nodes,
                       correlation=None) -> str:
        """SQL for `aggregate { count sum { ... } max { ... } ... }` (T_aggregate_fields)
        over the rows the aggregate field selects (compiled once for all the functions)."""
        parts, rows = [], None
        for key, field_nodes in self.fields(nodes).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                parts.append(f"'{_key(key)}', '{fields_type.name}'")
                continue
            if rows is None:
                inner, rows, _ = self._rows(table, args, correlation)
            if name == "count":
                count_args = self.arguments(fields_type, field_nodes[0])
                value = aggregation.count_sql(self.compiler, table, inner, rows,
                                              count_args.get("columns"), count_args.get("distinct"))
            else:
                columns_type = self._type_of(fields_type, name)
                columns = self.columns_json(table, inner, name, columns_type, field_nodes)
                value = f"json((SELECT {columns} FROM {rows}))"
            parts.append(f"'{_key(key)}', {value}")
        return f"json_object({', '.join(parts)})"

    def columns_json(self, table: Table, alias: str, function: str, columns_type,
                     nodes) -> str:
        """SQL for T_<function>_fields: the function of each selected column."""
        parts = []
        for key, field_nodes in self.fields(nodes).items():
            column = field_nodes[0].name.value
            if column == "__typename":
                parts.append(f"'{_key(key)}', '{columns_type.name}'")
                continue
            value = aggregation.function_sql(self.compiler, table, alias, function, column)
            parts.append(f"'{_key(key)}', {value}")
        return f"json_object({', '.join(parts)})"

    def root_json(self, table: Table, kind: str, args: dict, gql_type, nodes) -> str:
        """SQL for a root field: kind is list, aggregate or pk (one row by its key)."""
        if kind == "list":
            return self.list_json(table, args, gql_type, nodes)
        if kind == "aggregate":
            return self.aggregate_json(table, args, gql_type, nodes)
        return self.by_key_json(table, args, gql_type, nodes)

    def by_key_json(self, table: Table, keys: dict, gql_type, nodes) -> str:
        rows = self.compiler.rows(table, keys=keys)
        return f"({rows.select(self.object_json(table, rows.alias, gql_type, nodes))})"

    @staticmethod
    def _type_of(parent: GraphQLObjectType, field: str):
        return get_named_type(parent.fields[field].type)



def _key(key: str) -> str:
    return key.replace("'", "''")


def selection(info) -> Selection:
    """A Selection for a resolver: the caller's visibility and column masks."""
    store = info.context["store"]
    return Selection(info, Compiler(store.visibility, store.column_sql))


def json_text(db, sql: str, params: dict) -> str | None:
    """Run a statement that selects one JSON value; answer its text."""
    conn = db.use_function("clustore_chunk_rows", _chunk_rows, 5)  # chunk.data as rows
    with reported():
        row = conn.execute(f"SELECT {sql}", params).fetchone()
    return None if row is None else row[0]


def _chunk_rows(data: bytes, expected: int | None, dataframe_id: str, position: int,
                chunk_id: str) -> str:
    name = chunk_name(dataframe_id, position, chunk_id)
    return rows_json(data, name, checked=checksum.verify(data, expected, name))


def run(db, sql: str, params: dict) -> Any:
    """Run a statement that selects one JSON value; answer it as Python."""
    text = json_text(db, sql, params)
    return None if text is None else json.loads(text)
