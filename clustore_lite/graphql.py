"""The executable GraphQL schema: schema.graphql (kept by hand) bound to resolvers.

Queries and subscriptions compile their whole selection to one SQL statement per root
field (gql_select.py). Mutations go through the Python API, so the same checks, events
and access rules apply whatever the door."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ariadne import ObjectType, ScalarType, SubscriptionType, make_executable_schema
from graphql import GraphQLError, GraphQLObjectType, get_named_type
from starlette.concurrency import run_in_threadpool

from . import mutations
from .errors import ClustoreError
from .gql_select import Selection, run
from .query import Compiler
from .tables import TABLES

PLURALS = {"user": "users", "organization": "organizations", "team": "teams",
           "team_member": "team_members", "access": "accesses", "membership": "memberships",
           "dataframe": "dataframes", "chunk": "chunks", "dataset": "datasets",
           "task": "tasks", "tracking": "trackings"}


def schema_text() -> str:
    """schema.graphql: beside the package in a checkout, inside it once installed."""
    checkout = Path(__file__).resolve().parent.parent / "schema.graphql"
    if checkout.exists():
        return checkout.read_text()
    return resources.files(__package__).joinpath("schema.graphql").read_text()


def graphql_error(error: ClustoreError) -> GraphQLError:
    return GraphQLError(str(error), extensions={"code": error.code}, original_error=error)


def selection(info) -> Selection:
    store = info.context["store"]
    return Selection(info, Compiler(store.visibility), getattr(store, "column_sql", None))


def answer_root_field(info, table_name: str, kind: str, args: dict) -> Any:
    """The JSON answer of one root query field: kind is list, aggregate or pk."""
    table = TABLES[table_name]
    select = selection(info)
    gql_type = get_named_type(info.return_type)
    nodes = list(info.field_nodes)
    if kind == "list":
        sql = select.list_json(table, args, gql_type, nodes)
    elif kind == "aggregate":
        sql = select.aggregate_json(table, args, gql_type, nodes)
    else:
        sql = select.by_key_json(table, args, gql_type, nodes)
    try:
        return run(info.context["store"].db, sql, select.compiler.params)
    except ClustoreError as error:
        raise graphql_error(error) from None


def _root_resolver(table_name: str, kind: str):
    async def resolve(_, info, **args):
        try:
            return await run_in_threadpool(answer_root_field, info, table_name, kind, args)
        except ClustoreError as error:
            raise graphql_error(error) from None
    return resolve


def _subscription_source(table_name: str, kind: str):
    async def source(_, info, **args):
        """Answer now, then again each time a commit changes the answer."""
        changes = info.context["changes"]
        last = object()
        while True:
            seen = changes.version
            try:
                answer = await run_in_threadpool(answer_root_field, info, table_name, kind, args)
            except ClustoreError as error:
                raise graphql_error(error) from None
            if answer != last:
                last = answer
                yield answer
            await changes.wait(seen)
    return source


def _by_response_key(obj: Any, info, **_) -> Any:
    """Default resolver: answers are dicts keyed by response key (alias or name)."""
    if isinstance(obj, dict):
        return obj.get(info.path.key)
    return getattr(obj, info.field_name, None)


def _identity(value: Any) -> Any:
    return value


def _parse_literal(node, variables=None) -> Any:
    from graphql import value_from_ast_untyped

    return value_from_ast_untyped(node, variables)


class _SubscriptionRoot(SubscriptionType):
    """Ariadne's SubscriptionType, bound to Hasura's root type name."""

    def __init__(self) -> None:
        ObjectType.__init__(self, "subscription_root")
        self._subscribers = {}


def build_schema():
    query, mutation = ObjectType("query_root"), ObjectType("mutation_root")
    subscription = _SubscriptionRoot()
    for table_name, plural in PLURALS.items():
        for field, kind in ((plural, "list"), (f"{plural}_aggregate", "aggregate"),
                            (table_name, "pk")):
            query.set_field(field, _root_resolver(table_name, kind))
            subscription.set_source(field, _subscription_source(table_name, kind))
            subscription.set_field(field, lambda answer, *_, **__: answer)
        mutations.bind(mutation, table_name)
    scalars = []
    for name in ("uuid", "timestamptz", "jsonb", "bigint"):
        scalar = ScalarType(name, serializer=_identity, value_parser=_identity)
        if name == "jsonb":
            scalar.set_literal_parser(_parse_literal)
        scalars.append(scalar)
    schema = make_executable_schema(schema_text(), query, subscription, mutation, *scalars)
    for gql_type in schema.type_map.values():
        if isinstance(gql_type, GraphQLObjectType) and not gql_type.name.startswith("__"):
            for field in gql_type.fields.values():
                if field.resolve is None:
                    field.resolve = _by_response_key
    return schema


class Changes:
    """Tells subscriptions that the file changed: `version` goes up on each commit
    seen (in this process or another), and `wait(seen)` returns once it has."""

    def __init__(self):
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int) -> None:
        if self.version == seen:
            await self._event.wait()


def format_error(error: GraphQLError, debug: bool = False) -> dict:
    """Every error carries a code (Hasura's where one fits); never a stack trace."""
    formatted = error.formatted
    extensions = dict(formatted.get("extensions") or {})
    original = error.original_error
    if "code" not in extensions:
        if isinstance(original, ClustoreError):
            extensions["code"] = original.code
        elif original is None:
            extensions["code"] = "validation-failed"
        else:
            extensions["code"] = "unexpected"
            formatted["message"] = f"unexpected error: {type(original).__name__}: {original}"
    formatted["extensions"] = extensions
    return formatted


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
