"""Hasura's generated API as SDL, derived from the catalog.

schema.graphql keeps by hand what only a person can say about a table: its columns'
nullability and descriptions, what an insert or an update may set, its unique
constraints, and the custom fields (regenerate_access_token, redeliver_event). Everything
Hasura derives mechanically from a table is written here from catalog.TABLES, so the
served API and the Hasura metadata of `hasura-metadata` name the same root fields,
arguments and types: root fields, relationship fields, list arguments, aggregates,
select-column enums, bool_exp, order_by, comparison expressions, on_conflict,
mutation responses, streams. A feature of the generated API is one function below."""

from __future__ import annotations

from ..catalog import INT, JSON, REAL, TABLES, Table, pg_type, root_field_names
from ..filter_operators import JSONB_OPERATORS, PATTERN_OPERATORS
from . import aggregate_sdl

# Hasura's GraphQL scalar for each PostgreSQL type (its built-in ones are capitalised).
GRAPHQL_SCALARS = {"uuid": "uuid", "timestamptz": "timestamptz", "jsonb": "jsonb",
                   "bigint": "bigint", "boolean": "Boolean", "text": "String",
                   "float8": "float8", "integer": "Int"}
CUSTOM_SCALARS = {
    "uuid": "A UUID (RFC 4122), as text.",
    "timestamptz": "An ISO-8601 timestamp with time zone.",
    "jsonb": "Any JSON value.",
    "bigint": "A 64-bit integer.",
    "float8": "A double-precision floating-point number.",
}
# Columns whose GraphQL type is not their PostgreSQL type's scalar (kept by hand).
TYPE_OVERRIDES = {("task", "algorithm"): "algorithm", ("chunk", "data"): "jsonb"}
COMPARISONS = ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte")
TEXT_OPERATORS = ("_like", "_nlike", "_ilike", "_nilike", *PATTERN_OPERATORS)
JSONB_OPERATOR_TYPES = {"_contains": "jsonb", "_contained_in": "jsonb", "_has_key": "String",
                        "_has_keys_any": "[String!]", "_has_keys_all": "[String!]"}
assert set(JSONB_OPERATOR_TYPES) == set(JSONB_OPERATORS)


def graphql_scalar(table: str, column: str) -> str:
    """The scalar Hasura would give this column from its PostgreSQL type."""
    return GRAPHQL_SCALARS[pg_type(table, column)]


def column_type(table: str, column: str) -> str:
    """The GraphQL type of a column's field (its scalar, or a hand-kept override)."""
    return TYPE_OVERRIDES.get((table, column)) or graphql_scalar(table, column)


def scalars_in_use() -> list[str]:
    seen: dict[str, None] = {}
    for name, table in TABLES.items():
        for column in table.visible_columns:
            seen[graphql_scalar(name, column)] = None
    return list(seen)


def block(kind: str, name: str, lines: list[str]) -> str:
    body = "\n".join(f"  {line}" for line in lines)
    return f"{kind} {name} {{\n{body}\n}}"


def arguments(args: dict[str, str]) -> str:
    return "(" + ", ".join(f"{name}: {kind}" for name, kind in args.items()) + ")" if args else ""


# -- scalars and comparison expressions --------------------------------------------------

def scalar_definitions() -> list[str]:
    return [f'"{doc}"\nscalar {name}' for name, doc in CUSTOM_SCALARS.items()]


def comparison_operators(scalar: str) -> dict[str, str]:
    """The operators of `<scalar>_comparison_exp`: name -> argument type."""
    ops = {op: scalar for op in COMPARISONS}
    ops.update({"_in": f"[{scalar}!]", "_nin": f"[{scalar}!]", "_is_null": "Boolean"})
    if scalar == "String":
        ops.update({op: "String" for op in TEXT_OPERATORS})
    if scalar == "jsonb":
        ops.update({**JSONB_OPERATOR_TYPES, "_cast": "jsonb_cast_exp"})
    return ops


def cast_expressions() -> list[str]:
    """`_cast` on jsonb compares its text with String's operators (Hasura's)."""
    if "jsonb" not in scalars_in_use():
        return []
    return [block("input", "jsonb_cast_exp", ["String: String_comparison_exp"])]


ORDER_BY = block("enum", "order_by", ["asc", "asc_nulls_first", "asc_nulls_last", "desc",
                                      "desc_nulls_first", "desc_nulls_last"])


def comparison_expressions() -> list[str]:
    return [block("input", f"{scalar}_comparison_exp",
                  [f"{op}: {kind}" for op, kind in comparison_operators(scalar).items()])
            for scalar in dict.fromkeys([*scalars_in_use(), *aggregate_sdl.PREDICATES])]


# -- per table ---------------------------------------------------------------------------

def list_arguments(table: Table) -> dict[str, str]:
    """The arguments of every list and _aggregate field of a table, root or relationship."""
    return {"distinct_on": f"[{table.name}_select_column!]", "where": f"{table.name}_bool_exp",
            "order_by": f"[{table.name}_order_by!]", "limit": "Int", "offset": "Int"}


def list_fields(field: str, table: Table) -> list[str]:
    """`field` (a list of rows) and `field_aggregate`, with their arguments."""
    args = arguments(list_arguments(table))
    return [f"{field}{args}: [{table.name}!]!",
            f"{field}_aggregate{args}: {table.name}_aggregate!"]


def relationship_fields(table: Table) -> list[str]:
    lines = [f"{field}: {rel.table}" for field, rel in table.objects.items()]
    for field, rel in table.arrays.items():
        lines += list_fields(field, TABLES[rel.table])
    return lines


def orderable(table: Table) -> list[str]:
    """Columns a caller may sort on (JSON values have no order)."""
    return [c for c in table.visible_columns if table.columns[c] != JSON]


def aggregate_fields(table: Table) -> list[str]:
    """The fields of `T_aggregate_fields`."""
    return [f"count(columns: [{table.name}_select_column!], distinct: Boolean): Int!",
            *aggregate_sdl.function_fields(table)]


def aggregate_types(table: Table) -> list[str]:
    """T_sum_fields, T_max_fields, ...; and, when an array relationship leads to the
    table, T_aggregate_order_by and T_aggregate_bool_exp (aggregate_sdl.py)."""
    scalar = lambda t, column: graphql_scalar(t.name, column)  # noqa: E731
    return aggregate_sdl.function_types(table, scalar) + aggregate_sdl.related_inputs(table)


def table_types(table: Table) -> list[str]:
    name = table.name
    out = []
    if relationship_fields(table):
        out.append(block("extend type", name, relationship_fields(table)))
    out.append(block("type", f"{name}_aggregate",
                     [f"aggregate: {name}_aggregate_fields", f"nodes: [{name}!]!"]))
    out.append(block("type", f"{name}_aggregate_fields", aggregate_fields(table)))
    out += aggregate_types(table)
    out.append(block("enum", f"{name}_select_column", table.visible_columns))
    boolean = [f"_and: [{name}_bool_exp!]", f"_or: [{name}_bool_exp!]", f"_not: {name}_bool_exp"]
    boolean += [f"{c}: {graphql_scalar(name, c)}_comparison_exp" for c in table.visible_columns]
    boolean += [f"{field}: {rel.table}_bool_exp" for field, rel in table.objects.items()]
    boolean += [f"{field}: {rel.table}_bool_exp" for field, rel in table.arrays.items()]
    boolean += aggregate_sdl.bool_exp_fields(table)
    out.append(block("input", f"{name}_bool_exp", boolean))
    order = [f"{c}: order_by" for c in orderable(table)]
    order += [f"{field}: {rel.table}_order_by" for field, rel in table.objects.items()]
    order += aggregate_sdl.order_by_fields(table)
    out.append(block("input", f"{name}_order_by", order))
    if not table.store_written:
        out += mutation_types(table)
    return out


def key_arguments(table: Table) -> dict[str, str]:
    return {c: f"{graphql_scalar(table.name, c)}!" for c in table.pk}


def mutation_types(table: Table) -> list[str]:
    name = table.name
    return update_types(table) + insert_extensions(table) + [
        block("input", f"{name}_obj_rel_insert_input",
              [f"data: {name}_insert_input!", f"on_conflict: {name}_on_conflict"]),
        block("input", f"{name}_arr_rel_insert_input",
              [f"data: [{name}_insert_input!]!", f"on_conflict: {name}_on_conflict"]),
        block("input", f"{name}_pk_columns_input",
              [f"{c}: {kind}" for c, kind in key_arguments(table).items()]),
        block("input", f"{name}_on_conflict",
              [f"constraint: {name}_constraint!",
               f"update_columns: [{name}_update_column!]! = []", f"where: {name}_bool_exp"]),
        block("type", f"{name}_mutation_response",
              ["affected_rows: Int!", f"returning: [{name}!]!"]),
    ]


# -- update operators and update_T_many (issue 14, item 8) ------------------------------

OPERATOR_INPUTS = {"_append": "append", "_delete_at_path": "delete_at_path",
                   "_delete_elem": "delete_elem", "_delete_key": "delete_key", "_inc": "inc",
                   "_prepend": "prepend"}  # operator -> T_<suffix>_input, in Hasura's order
OPERATOR_KINDS = {"_inc": (INT, REAL)}  # the others take jsonb columns
JSON_ARGUMENTS = {"_append": "jsonb", "_prepend": "jsonb", "_delete_key": "String",
                  "_delete_elem": "Int", "_delete_at_path": "[String!]"}


def operator_columns(table: Table, operator: str) -> list[str]:
    """The columns an update operator takes (Hasura offers none on a key)."""
    kinds = OPERATOR_KINDS.get(operator, (JSON,))
    return [c for c in table.visible_columns if table.columns[c] in kinds and c not in table.key]


def update_operators(table: Table) -> dict[str, str]:
    """update operator -> its input type, for those that apply to some column."""
    found = {op: f"{table.name}_{suffix}_input" for op, suffix in OPERATOR_INPUTS.items()
             if operator_columns(table, op)}
    return dict(sorted({**found, "_set": f"{table.name}_set_input"}.items()))


def operator_argument(table: Table, operator: str, column: str) -> str:
    return graphql_scalar(table.name, column) if operator == "_inc" else JSON_ARGUMENTS[operator]


def update_types(table: Table) -> list[str]:
    """T_inc_input, T_append_input, ... and T_updates (an entry of update_T_many)."""
    out = [block("input", kind, [f"{c}: {operator_argument(table, op, c)}"
                                 for c in operator_columns(table, op)])
           for op, kind in update_operators(table).items() if op != "_set"]
    entry = [f"{op}: {kind}" for op, kind in update_operators(table).items()]
    return out + [block("input", f"{table.name}_updates",
                        entry + [f"where: {table.name}_bool_exp!"])]


# -- an insert's id and nested rows (issue 14, item 10) ---------------------------------

def client_id(table: Table) -> bool:
    """Inserts take the row's id from the client on every table keyed by one id but
    chunks (the store cuts a dataframe's rows into chunks itself)."""
    return table.key == ("id",) and table.name != "chunk"


def nested_objects(table: Table) -> dict[str, str]:
    """object relationship -> the table inserted through it, as a top-level insert of
    that table; a resource's own access and its dataframes are made with it instead."""
    return {field: rel.table for field, rel in table.objects.items()
            if not (field == "access" and table.owns_access) and rel.column not in table.frames}


def nested_arrays(table: Table) -> dict[str, tuple[str, str]]:
    """array relationship -> (the table inserted through it, its column naming us):
    every one not through a join table, to a table callers write."""
    return {field: (rel.table, rel.remote) for field, rel in table.arrays.items()
            if rel.through is None and rel.column == "id"
            and not TABLES[rel.table].store_written}


def insert_extensions(table: Table) -> list[str]:
    """`id` and the relationships of T_insert_input (its columns are kept by hand)."""
    lines = ["id: uuid"] if client_id(table) else []
    lines += [f"{field}: {rel.table}_obj_rel_insert_input"
              for field, rel in table.objects.items()]
    lines += [f"{field}: {target}_arr_rel_insert_input"
              for field, (target, _) in nested_arrays(table).items()]
    return [block("extend input", f"{table.name}_insert_input", lines)] if lines else []


# -- root fields -------------------------------------------------------------------------

def query_fields(table: Table) -> list[str]:
    """The root query (and subscription) fields of a table, in Hasura's names."""
    names = root_field_names(table.name)
    return list_fields(names["select"], table) + [
        f"{names['select_by_pk']}{arguments(key_arguments(table))}: {table.name}"]


def mutation_fields(table: Table) -> list[str]:
    name, names = table.name, root_field_names(table.name)
    insert, conflict = f"{name}_insert_input!", f"on_conflict: {name}_on_conflict"
    update = arguments(update_operators(table))[1:-1]
    return [
        f"{names['insert']}(objects: [{insert}]!, {conflict}): {name}_mutation_response",
        f"{names['insert_one']}(object: {insert}, {conflict}): {name}",
        f"{names['update']}({update}, where: {name}_bool_exp!): {name}_mutation_response",
        f"{names['update_by_pk']}({update}, pk_columns: {name}_pk_columns_input!): {name}",
        f"{names['update_many']}(updates: [{name}_updates!]!): [{name}_mutation_response]",
        f"{names['delete']}(where: {name}_bool_exp!): {name}_mutation_response",
        f"{names['delete_by_pk']}{arguments(key_arguments(table))}: {name}",
    ]


def root_types() -> list[str]:
    tables = list(TABLES.values())
    query = [line for t in tables for line in query_fields(t)]
    streams = [line for t in tables for line in stream_field(t)]
    mutation = [line for t in tables if not t.store_written for line in mutation_fields(t)]
    return ["schema {\n  query: query_root\n  mutation: mutation_root\n"
            "  subscription: subscription_root\n}",
            block("type", "query_root", query),
            block("type", "subscription_root", query + streams),
            block("type", "mutation_root", mutation)]


# -- streaming subscriptions (Hasura's names and descriptions) ------------------------------

CURSOR_ORDERING = ('"ordering argument of a cursor"\n'
                   + block("enum", "cursor_ordering", [
                       '"ascending ordering of the cursor"', "ASC",
                       '"descending ordering of the cursor"', "DESC"]))


def stream_name(table: Table) -> str:
    """The root field of a table's stream (the metadata's select_stream)."""
    return root_field_names(table.name)["select_stream"]


def cursor_columns(table: Table) -> list[str]:
    """The columns a stream's cursor may be on: those a caller may sort on."""
    return orderable(table)


def stream_field(table: Table) -> list[str]:
    name = table.name
    return [f'"fetch data from the table in a streaming manner: \\"{name}\\""',
            f'{stream_name(table)}("maximum number of rows returned in a single batch" '
            f'batch_size: Int!, "cursor to stream the results returned by the query" '
            f"cursor: [{name}_stream_cursor_input]!, "
            f'"filter the rows returned" where: {name}_bool_exp): [{name}!]!']


def stream_types(table: Table) -> list[str]:
    """`T_stream_cursor_input` and `T_stream_cursor_value_input` (every cursor column,
    each optional: one is given)."""
    name = table.name
    return [
        f'"Streaming cursor of the table \\"{name}\\""\n' + block(
            "input", f"{name}_stream_cursor_input", [
                '"Stream column input with initial value"',
                f"initial_value: {name}_stream_cursor_value_input!",
                '"cursor ordering"', "ordering: cursor_ordering"]),
        '"Initial value of the column from where the streaming should start"\n' + block(
            "input", f"{name}_stream_cursor_value_input",
            [f"{c}: {graphql_scalar(name, c)}" for c in cursor_columns(table)]),
    ]


def with_json_paths(hand: str) -> str:
    """The hand-kept SDL with Hasura's `path:` argument on every jsonb column field."""
    for name, table in TABLES.items():
        start = hand.find(f"\ntype {name} {{\n")
        if start < 0:
            continue
        end = hand.index("\n}", start)
        fields = hand[start:end]
        for column in table.visible_columns:
            if column_type(name, column) == "jsonb":
                fields = fields.replace(f"\n  {column}: jsonb", f"\n  {column}{JSON_PATH}: jsonb")
        hand = hand[:start] + fields + hand[end:]
    return hand


JSON_PATH = '("JSON select path" path: String)'


def generated_sdl() -> str:
    """The SDL generated from the catalog (to be read together with schema.graphql)."""
    parts = (scalar_definitions() + [ORDER_BY, CURSOR_ORDERING] + comparison_expressions()
             + cast_expressions() + root_types())
    for table in TABLES.values():
        parts += table_types(table) + stream_types(table)
    return "\n\n".join(parts) + "\n"
