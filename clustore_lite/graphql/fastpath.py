"""Queries answered straight from SQLite's JSON.

A query's root fields are each compiled to one SQL statement that builds the JSON of
the answer (select.py); graphql-core's executor would then walk that JSON again,
field by field, to complete it. For plain queries the walk adds nothing, so the
server splices SQLite's JSON text into the response instead (measured: most of the
time of a 50-row list went to that walk). Anything else (mutations, subscriptions,
introspection, documents or variables that do not validate) takes the ordinary path
through Ariadne; an error of the store in a root field is answered here, in Ariadne's shape.

Documents are checked (parsed, validated, cached) by documents.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graphql import (FieldNode, GraphQLError, GraphQLNonNull, GraphQLSchema,
                     OperationDefinitionNode, OperationType, get_named_type)
from graphql.execution.values import get_variable_values

from ..catalog import TABLES
from ..errors import ClustoreError
from ..query import Compiler
from .documents import Checked, Documents
from .errors import LOGGER, format_error
from .schema import root_fields
from .select import Selection, json_text

# root query field -> (table, list | aggregate | pk)
ROOTS = {field: (table, kind) for table in TABLES for field, kind in root_fields(table).items()}


@dataclass
class Info:
    """The parts of graphql-core's ResolveInfo that the SQL compiler reads."""

    fragments: dict
    variable_values: dict
    field_nodes: list
    return_type: Any
    context: dict = field(default_factory=dict)


def plan(documents: Documents, data: Any, checked: Checked | None = None):
    """For a plain query over the store's root fields: (operation, fragments,
    variables); None when the ordinary path must answer. `checked` is the document
    already checked for this request, if it was."""
    if not isinstance(data, dict) or not isinstance(data.get("query"), str):
        return None
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        return None
    if checked is None or checked.text != data["query"]:
        checked = documents.check(data["query"])
    document = checked.document
    if document is None or checked.errors:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    name = data.get("operationName")
    chosen = [op for op in operations if name is None or (op.name and op.name.value == name)]
    if len(chosen) != 1 or chosen[0].operation != OperationType.QUERY:
        return None
    operation = chosen[0]
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.name.value not in ROOTS \
                or selection.directives:
            return None
    coerced = get_variable_values(documents.schema, operation.variable_definitions or [], variables)
    if isinstance(coerced, list):  # variable errors: the ordinary path reports them
        return None
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    return operation, fragments, coerced


@dataclass
class Answer:
    body: str  # the response's JSON text
    status: int  # as Ariadne answers: 400 when data is null (a non-null field failed)


def answer(schema: GraphQLSchema, store, operation, fragments: dict, variables: dict) -> Answer:
    """The response, `{"data": {...}}` built from SQLite's JSON text. A root field that
    fails is answered the way graphql-core and Ariadne would (null, its error located
    and formatted the same), so a failing query runs once, not again on the slow path."""
    root = schema.query_type
    parts, errors, data_is_null = [], [], False
    with store.read_transaction():
        for selection in operation.selection_set.selections:
            key = selection.alias.value if selection.alias else selection.name.value
            gql_field = root.fields[selection.name.value]
            try:
                value = _root_field(store, root, gql_field, selection, fragments, variables)
            except ClustoreError as error:
                located = GraphQLError(str(error), [selection], path=[key], original_error=error,
                                       extensions={"code": error.code})
                LOGGER.error(located, exc_info=located)
                errors.append(format_error(located))
                data_is_null = data_is_null or isinstance(gql_field.type, GraphQLNonNull)
                value = None
            parts.append(f"{json.dumps(key)}:{'null' if value is None else value}")
    data = "null" if data_is_null else "{" + ",".join(parts) + "}"
    if not errors:
        return Answer('{"data":' + data + "}", 200)
    return Answer('{"data":' + data + ',"errors":' + json.dumps(errors) + "}",
                  400 if data_is_null else 200)


def _root_field(store, root, gql_field, selection, fragments, variables) -> str | None:
    """One root field's JSON text, from one SQL statement."""
    table_name, kind = ROOTS[selection.name.value]
    info = Info(fragments, variables, [selection], gql_field.type)
    select = Selection(info, Compiler(store.visibility, store.column_sql))
    sql = select.root_json(TABLES[table_name], kind, select.arguments(root, selection),
                           get_named_type(gql_field.type), [selection])
    return json_text(store.db, sql, select.compiler.params)
