"""The served schema (schema.graphql kept by hand + sdl.py's generated part) agrees
with the store's catalog, in Hasura's type names."""

from graphql import build_schema, get_named_type

from clustore_lite.catalog import TABLES
from clustore_lite.graphql.schema import root_fields, schema_text
from clustore_lite.graphql.sdl import column_type

SCHEMA = build_schema(schema_text())


def test_every_column_and_relationship_is_a_field():
    for name, table in TABLES.items():
        fields = SCHEMA.type_map[name].fields
        for column in table.visible_columns:
            assert column in fields, f"{name}.{column}"
        for relation in table.objects:
            assert get_named_type(fields[relation].type).name == table.objects[relation].table
        for relation in table.arrays:
            assert {"where", "order_by", "limit", "offset"} <= set(fields[relation].args)
            assert f"{relation}_aggregate" in fields


def test_every_type_has_hasuras_root_fields_and_inputs():
    query, mutation, subscription = SCHEMA.query_type.fields, SCHEMA.mutation_type.fields, \
        SCHEMA.subscription_type.fields
    for name, table in TABLES.items():
        for field in root_fields(name):
            assert field in query and field in subscription
        if table.store_written:
            assert "redeliver_event" in mutation
            continue
        for field in (f"insert_{name}", f"insert_{name}_one", f"update_{name}",
                      f"update_{name}_by_pk", f"delete_{name}", f"delete_{name}_by_pk"):
            assert field in mutation, field
        for suffix in ("bool_exp", "order_by", "insert_input", "set_input", "pk_columns_input",
                       "on_conflict", "mutation_response", "aggregate"):
            assert f"{name}_{suffix}" in SCHEMA.type_map, f"{name}_{suffix}"


def test_hasura_scalars():
    for scalar in ("uuid", "timestamptz", "jsonb", "bigint", "float8"):
        assert scalar in SCHEMA.type_map


def test_every_column_has_the_scalar_its_postgresql_type_gives():
    """Item 12 of issue 14: INT columns are bigint (as in the mirror), REAL float8, ..."""
    for name, table in TABLES.items():
        fields = SCHEMA.type_map[name].fields
        for column in table.visible_columns:
            assert get_named_type(fields[column].type).name == column_type(name, column), \
                f"{name}.{column}"
    assert SCHEMA.type_map["chunk"].fields["position"].type.of_type.name == "bigint"
    assert SCHEMA.type_map["event_delivery"].fields["nextTryAt"].type.name == "float8"
