"""The executable GraphQL schema: schema.graphql (kept by hand) bound to resolvers.

Queries and subscriptions compile their whole selection to one SQL statement per root
field (gql_select.py). Mutations go through the Python API, so the same checks, events
and access rules apply whatever the door."""

from __future__ import annotations

import asyncio
import json
import logging
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
from .resolving import graphql_error, in_thread
from .tables import TABLES

PLURALS = {"user": "users", "organization": "organizations", "team": "teams",
           "team_member": "team_members", "access": "accesses", "membership": "memberships",
           "dataframe": "dataframes", "chunk": "chunks", "dataset": "datasets",
           "task": "tasks", "tracking": "trackings",
           "event": "events", "event_delivery": "event_deliveries"}


def schema_text() -> str:
    """schema.graphql: beside the package in a checkout, inside it once installed."""
    checkout = Path(__file__).resolve().parent.parent / "schema.graphql"
    if checkout.exists():
        return checkout.read_text()
    return resources.files(__package__).joinpath("schema.graphql").read_text()


def selection(info) -> Selection:
    store = info.context["store"]
    return Selection(info, Compiler(store.visibility), getattr(store, "column_sql", None))


def answer_root_field(info, table_name: str, kind: str, args: dict) -> Any:
    """The JSON answer of one root query field: kind is list, aggregate or pk."""
    select = selection(info)
    sql = select.root_json(TABLES[table_name], kind, args, get_named_type(info.return_type),
                           list(info.field_nodes))
    return run(info.context["store"].db, sql, select.compiler.params)


def _root_resolver(table_name: str, kind: str):
    async def resolve(_, info, **args):
        return await in_thread(answer_root_field, info, table_name, kind, args)
    return resolve


def _subscription_source(table_name: str, kind: str):
    async def source(_, info, **args):
        """Answer now, then again each time a commit changes the answer. Identical
        subscriptions (same document, variables and caller) share one computation."""
        changes = info.context["changes"]
        key = _live_key(info)
        last = object()
        changes.subscribers[key] = changes.subscribers.get(key, 0) + 1
        try:
            while True:
                seen = changes.version
                try:
                    answer = await changes.answer(key, seen, lambda: answer_root_field(
                        info, table_name, kind, args))
                except ClustoreError as error:
                    raise graphql_error(error) from None
                if answer != last:
                    last = answer
                    yield answer
                await changes.wait(seen)
        finally:
            changes.release(key)
    return source


def _live_key(info) -> tuple:
    source = info.field_nodes[0].loc.source.body if info.field_nodes[0].loc else id(info)
    store = info.context["store"]
    return (source, info.operation.name.value if info.operation.name else None,
            info.path.key, json.dumps(info.variable_values, sort_keys=True, default=str),
            store.caller)


def _by_response_key(obj: Any, info, **_) -> Any:
    """Default resolver: answers are dicts keyed by response key (alias or name)."""
    if isinstance(obj, dict):
        return obj.get(info.path.key)
    return getattr(obj, info.field_name, None)


def _identity(value: Any) -> Any:
    return value


def _parse_uuid(value: Any) -> str:
    from .values import check_id

    try:
        return check_id(value)
    except ClustoreError as error:
        raise ValueError(str(error)) from None


def _parse_timestamp(value: Any) -> str:
    from datetime import datetime

    if not isinstance(value, str):
        raise ValueError(f"a timestamptz is an ISO-8601 string, not {value!r}")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    return value


def _parse_bigint(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise ValueError(f"a bigint is a 64-bit integer, not {value!r}")
    return value


def _literal(parse):
    def parse_literal(node, variables=None):
        return parse(_parse_literal(node, variables))
    return parse_literal


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
        if table_name not in mutations.READ_ONLY:
            mutations.bind(mutation, table_name)
    mutation.set_field("redeliver_event", mutations.redeliver_event)
    mutation.set_field("regenerate_access_token", mutations.regenerate_access_token)
    scalars = [ScalarType("jsonb", serializer=_identity, value_parser=_identity,
                          literal_parser=_parse_literal)]
    for name, parse in (("uuid", _parse_uuid), ("timestamptz", _parse_timestamp),
                        ("bigint", _parse_bigint)):
        scalars.append(ScalarType(name, serializer=_identity, value_parser=parse,
                                  literal_parser=_literal(parse)))
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
        self.subscribers: dict[tuple, int] = {}
        self._answers: dict[tuple, tuple[int, asyncio.Future]] = {}

    async def answer(self, key: tuple, version: int, compute) -> Any:
        """`compute()` (run in a thread) for this key at this version, once for all
        the subscriptions that share the key."""
        found = self._answers.get(key)
        if found is None or found[0] != version:
            found = (version, asyncio.ensure_future(run_in_threadpool(compute)))
            self._answers[key] = found
        return await asyncio.shield(found[1])

    def release(self, key: tuple) -> None:
        self.subscribers[key] -= 1
        if not self.subscribers[key]:
            del self.subscribers[key]
            self._answers.pop(key, None)

    def bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int) -> None:
        if self.version == seen:
            await self._event.wait()


def error_code(error: GraphQLError) -> str:
    """Hasura's code for an error: the store's own, validation-failed for anything
    wrong with the request itself (parse, validation, variables: no path), else
    unexpected."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, ClustoreError):
        return original.code
    if error.path is None:
        return "validation-failed"
    return "unexpected"


def format_error(error: GraphQLError, debug: bool = False) -> dict:
    """Every error carries a code (Hasura's where one fits); never a stack trace."""
    formatted = error.formatted
    extensions = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", error_code(error))
    if extensions["code"] == "unexpected":
        formatted["message"] = f"unexpected error: {error.message}"
    formatted["extensions"] = extensions
    return formatted


class ExpectedErrors(logging.Filter):
    """Log only unexpected errors: a bad request or a refused write is the caller's
    business, answered in the response, not a server fault worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, GraphQLError) and error_code(error) != "unexpected")


LOGGER = logging.getLogger("clustore_lite.graphql")
LOGGER.addFilter(ExpectedErrors())
