"""The SDL of Hasura's update operators, `update_T_many`, client-chosen ids and nested
object-relationship inserts, derived from the catalog with Hasura's type names
(`T_inc_input`, `T_append_input`, `T_updates`, `T_obj_rel_insert_input`, ...).

`scalar(table, column)` names a column's GraphQL scalar (the schema's own choice), so
that `_inc`'s input types agree with the fields they change."""

from __future__ import annotations

from typing import Callable

from ..catalog import INT, JSON, REAL, TABLES, Table

Scalar = Callable[[str, str], str]
JSON_OPERATORS = {"_append": "append", "_prepend": "prepend", "_delete_key": "delete_key",
                  "_delete_elem": "delete_elem", "_delete_at_path": "delete_at_path"}
JSON_ARGUMENT = {"_append": "jsonb", "_prepend": "jsonb", "_delete_key": "String",
                 "_delete_elem": "Int", "_delete_at_path": "[String!]"}
FRAME_FIELDS = ("dataframe", "centroids", "labels")  # nested as dataframes (mutations.py)


def writable_tables() -> list[Table]:
    return [t for t in TABLES.values() if not t.store_written]


def extensions(scalar: Scalar, insert_fields: Callable[[str], set[str]]) -> str:
    """All of this module's SDL, for a schema whose T_insert_input types have
    `insert_fields(T)` already."""
    return "\n".join([updates_sdl(t, scalar) for t in writable_tables()]
                     + [insert_input_sdl(t, insert_fields(t.name)) for t in writable_tables()])


def _columns(table: Table, kinds: tuple[str, ...]) -> list[str]:
    return [c for c in table.visible_columns if table.columns[c] in kinds and c not in table.key]


def operator_inputs(table: Table, scalar: Scalar) -> tuple[dict[str, str], str]:
    """update operator -> the name of its input type, for the operators that apply to
    some column of the table (Hasura generates none for a table without such columns);
    and the SDL of those types."""
    names, sdl = {}, []
    numeric = _columns(table, (INT, REAL))
    if numeric:
        names["_inc"] = f"{table.name}_inc_input"
        sdl.append(_input(names["_inc"], {c: scalar(table.name, c) for c in numeric}))
    jsonb = _columns(table, (JSON,))
    for op, suffix in JSON_OPERATORS.items() if jsonb else ():
        names[op] = f"{table.name}_{suffix}_input"
        sdl.append(_input(names[op], {c: JSON_ARGUMENT[op] for c in jsonb}))
    return names, "\n".join(sdl)


def _input(name: str, fields: dict[str, str]) -> str:
    body = "\n".join(f"  {field}: {kind}" for field, kind in fields.items())
    return f"input {name} {{\n{body}\n}}\n"


def update_arguments(table: Table, scalar: Scalar) -> str:
    """The operator arguments of update_T and update_T_by_pk, in Hasura's order."""
    names, _ = operator_inputs(table, scalar)
    names["_set"] = f"{table.name}_set_input"
    return ", ".join(f"{op}: {names[op]}" for op in sorted(names))


def updates_sdl(table: Table, scalar: Scalar) -> str:
    """The operator input types, `T_updates` and `update_T_many` of one table."""
    names, sdl = operator_inputs(table, scalar)
    names["_set"] = f"{table.name}_set_input"
    fields = {op: names[op] for op in sorted(names)} | {"where": f"{table.name}_bool_exp!"}
    many = (f"extend type mutation_root {{\n  update_{table.name}_many(updates: "
            f"[{table.name}_updates!]!): [{table.name}_mutation_response]\n}}\n")
    return "\n".join([sdl, _input(f"{table.name}_updates", fields), many])


def client_id(table: Table) -> bool:
    """Whether inserts take the row's id from the client: every table keyed by one id,
    but chunks (the store cuts a dataframe's rows into chunks itself)."""
    return table.key == ("id",) and table.name != "chunk"


def nested_objects(table: Table) -> dict[str, str]:
    """object relationship -> the table inserted through it: every one but the access
    of a resource that owns one and nested dataframes, which have fields of their own."""
    return {field: rel.table for field, rel in table.objects.items()
            if not (field == "access" and table.owns_access) and field not in FRAME_FIELDS}


def nested_arrays(table: Table) -> dict[str, tuple[str, str]]:
    """array relationship -> (the table inserted through it, its column naming us):
    every one that is not through a join table, to a table callers write."""
    return {field: (rel.table, rel.remote) for field, rel in table.arrays.items()
            if rel.through is None and rel.column == "id"
            and not TABLES[rel.table].store_written}


def insert_input_sdl(table: Table, existing: set[str]) -> str:
    """`id` and the relationships missing from T_insert_input."""
    fields = {"id": "uuid"} if client_id(table) else {}
    fields |= {field: f"{target}_obj_rel_insert_input"
               for field, target in nested_objects(table).items()}
    fields |= {field: f"{target}_arr_rel_insert_input"
               for field, (target, _) in nested_arrays(table).items()}
    fields = {k: kind for k, kind in fields.items() if k not in existing}
    if not fields:
        return ""
    body = "\n".join(f"  {field}: {kind}" for field, kind in fields.items())
    return f"extend input {table.name}_insert_input {{\n{body}\n}}\n"
