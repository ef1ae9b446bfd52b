"""One API, two engines: every root field that `hasura-metadata` declares for the
PostgreSQL mirror behind Hasura is served by `clustore-lite serve`, in the root type
Hasura puts it in, with Hasura's arguments and input and output type names. A client
written against either engine works against the other."""

import pytest
import yaml

from graphql import build_client_schema, get_introspection_query

from clustore_lite.catalog import TABLES
from clustore_lite.mirror.pg_schema import ORDER
from serving import Client, running_server


def hasura_arguments(table: str, kind: str, types) -> dict[str, str]:
    """The arguments Hasura generates for one kind of root field (v2, PostgreSQL)."""
    t = TABLES[table]
    keys = {c: f"{'bigint' if t.columns[c] == 'int' else 'uuid'}!" for c in t.pk}
    listing = {"distinct_on": f"[{table}_select_column!]", "limit": "Int", "offset": "Int",
               "order_by": f"[{table}_order_by!]", "where": f"{table}_bool_exp"}
    operators = {"_set": f"{table}_set_input"}
    for operator, suffix in (("_inc", "inc_input"), ("_append", "append_input"),
                             ("_prepend", "prepend_input"), ("_delete_key", "delete_key_input"),
                             ("_delete_elem", "delete_elem_input"),
                             ("_delete_at_path", "delete_at_path_input")):
        if f"{table}_{suffix}" in types:  # Hasura only makes them for tables with such columns
            operators[operator] = f"{table}_{suffix}"
    return {
        "select": listing, "select_aggregate": listing, "select_by_pk": keys,
        "select_stream": {"batch_size": "Int!", "cursor": f"[{table}_stream_cursor_input]!",
                          "where": f"{table}_bool_exp"},
        "insert": {"objects": f"[{table}_insert_input!]!", "on_conflict": f"{table}_on_conflict"},
        "insert_one": {"object": f"{table}_insert_input!", "on_conflict": f"{table}_on_conflict"},
        "update": {"where": f"{table}_bool_exp!", **operators},
        "update_by_pk": {"pk_columns": f"{table}_pk_columns_input!", **operators},
        "update_many": {"updates": f"[{table}_updates!]!"},
        "delete": {"where": f"{table}_bool_exp!"},
        "delete_by_pk": keys,
    }[kind]


def hasura_answer(table: str, kind: str) -> str:
    return {"select": f"[{table}!]!", "select_aggregate": f"{table}_aggregate!",
            "select_by_pk": table, "select_stream": f"[{table}!]!",
            "insert": f"{table}_mutation_response", "insert_one": table,
            "update": f"{table}_mutation_response", "update_by_pk": table,
            "update_many": f"[{table}_mutation_response]",
            "delete": f"{table}_mutation_response", "delete_by_pk": table}[kind]


def roots_of(kind: str) -> list[str]:
    if kind == "select_stream":
        return ["subscription_root"]
    if kind.startswith("select"):
        return ["query_root", "subscription_root"]
    return ["mutation_root"]


@pytest.fixture(scope="module")
def served_and_declared(hasura_metadata):
    store, out, _ = hasura_metadata
    declared = {table: yaml.safe_load(
        (out / f"databases/default/tables/public_{table}.yaml").read_text())
        for table in ORDER}
    with running_server(store) as url:
        schema = build_client_schema(Client(url)(get_introspection_query()))
    return schema, declared


def test_every_declared_root_field_is_served_alike(served_and_declared):
    schema, declared = served_and_declared
    checked = 0
    for table, meta in declared.items():
        assert meta["configuration"]["custom_name"] == table
        for kind, name in meta["configuration"]["custom_root_fields"].items():
            for root in roots_of(kind):
                fields = schema.type_map[root].fields
                assert name in fields, f"{root}.{name} ({kind} of {table}) is not served"
                field = fields[name]
                served = {arg: str(value.type) for arg, value in field.args.items()}
                assert served == hasura_arguments(table, kind, schema.type_map), \
                    f"{root}.{name}: {served}"
                assert str(field.type) == hasura_answer(table, kind), f"{root}.{name}"
                checked += 1
    assert checked >= len(ORDER) * 12


def test_the_input_and_output_types_hasura_names(served_and_declared):
    schema, declared = served_and_declared
    for table in declared:
        for suffix in ("bool_exp", "order_by", "select_column", "insert_input", "set_input",
                       "pk_columns_input", "on_conflict", "constraint", "update_column",
                       "mutation_response", "aggregate", "aggregate_fields",
                       "obj_rel_insert_input", "arr_rel_insert_input", "stream_cursor_input",
                       "stream_cursor_value_input", "updates"):
            assert f"{table}_{suffix}" in schema.type_map, f"{table}_{suffix}"
    assert list(schema.type_map["cursor_ordering"].values) == ["ASC", "DESC"]
