"""The executable GraphQL schema: schema.graphql (kept by hand) and the SDL generated
from the catalog (sdl.py), bound to resolvers.

Queries and subscriptions compile their whole selection to one SQL statement per root
field (select.py). Mutations go through the Python API, so the same checks, events
and access rules apply whatever the door."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Any

from ariadne import ObjectType, ScalarType, SubscriptionType, make_executable_schema
from graphql import GraphQLObjectType, get_named_type, value_from_ast_untyped

from ..catalog import TABLES, root_field_names
from ..errors import ClustoreError
from ..values import check_id
from . import mutations
from .errors import in_thread
from .live import subscription_source
from .sdl import generated_sdl, stream_name, with_json_paths
from .select import run, selection
from .stream import stream_source

def root_fields(table_name: str) -> dict[str, str]:
    """The root query fields of a table (Hasura's names) -> what each answers."""
    names = root_field_names(table_name)
    return {names["select"]: "list", names["select_aggregate"]: "aggregate",
            names["select_by_pk"]: "pk"}


def schema_text() -> str:
    """The whole SDL served: schema.graphql (kept by hand; a link to the one at the top of
    a checkout, a copy once installed) and what sdl.py generates from the catalog."""
    hand = resources.files(__package__).joinpath("schema.graphql").read_text()
    return with_json_paths(hand) + "\n" + generated_sdl()


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


def _by_response_key(obj: Any, info, **_) -> Any:
    """Default resolver: answers are dicts keyed by response key (alias or name)."""
    if isinstance(obj, dict):
        return obj.get(info.path.key)
    return getattr(obj, info.field_name, None)


def _identity(value: Any) -> Any:
    return value


def _parse_uuid(value: Any) -> str:
    try:
        return check_id(value)
    except ClustoreError as error:
        raise ValueError(str(error)) from None


def _parse_timestamp(value: Any) -> str:
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


def _parse_float8(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a float8 is a number, not {value!r}")
    return float(value)


def _literal(parse):
    def parse_literal(node, variables=None):
        return parse(value_from_ast_untyped(node, variables))
    return parse_literal


class _SubscriptionRoot(SubscriptionType):
    """Ariadne's SubscriptionType, bound to Hasura's root type name."""

    def __init__(self) -> None:
        ObjectType.__init__(self, "subscription_root")
        self._subscribers = {}


def build_schema():
    query, mutation = ObjectType("query_root"), ObjectType("mutation_root")
    subscription = _SubscriptionRoot()
    for table_name, table in TABLES.items():
        subscription.set_source(stream_name(table), stream_source(table))
        subscription.set_field(stream_name(table), lambda answer, *_, **__: answer)
        for field, kind in root_fields(table_name).items():
            query.set_field(field, _root_resolver(table_name, kind))
            subscription.set_source(field, subscription_source(
                lambda info, _t=table_name, _k=kind, **args: answer_root_field(info, _t, _k, args)))
            subscription.set_field(field, lambda answer, *_, **__: answer)
        if not table.store_written:
            mutations.bind(mutation, table_name)
    mutation.set_field("redeliver_event", mutations.redeliver_event)
    mutation.set_field("regenerate_access_token", mutations.regenerate_access_token)
    scalars = [ScalarType("jsonb", serializer=_identity, value_parser=_identity,
                          literal_parser=value_from_ast_untyped)]
    for name, parse in (("uuid", _parse_uuid), ("timestamptz", _parse_timestamp),
                        ("bigint", _parse_bigint), ("float8", _parse_float8)):
        scalars.append(ScalarType(name, serializer=_identity, value_parser=parse,
                                  literal_parser=_literal(parse)))
    schema = make_executable_schema(schema_text(), query, subscription, mutation, *scalars)
    for gql_type in schema.type_map.values():
        if isinstance(gql_type, GraphQLObjectType) and not gql_type.name.startswith("__"):
            for field in gql_type.fields.values():
                if field.resolve is None:
                    field.resolve = _by_response_key
    return schema
