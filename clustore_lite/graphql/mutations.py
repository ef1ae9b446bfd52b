"""Hasura's mutations (insert_T, insert_T_one, update_T, update_T_by_pk, delete_T,
delete_T_by_pk) over the Python API, with nested inserts and on_conflict.

Each mutation field runs in one transaction (a savepoint of the operation's, see
atomic.py); `returning` is compiled like a query (for deletes, before the rows go)."""

from __future__ import annotations

from typing import Any

from graphql import get_named_type

from ..arrow import codec
from ..catalog import TABLES, root_field_names, snake
from ..errors import InvalidValue, PermissionDenied
from ..model import update_operators
from ..query import MAX_IN_VALUES, MAX_TERMS
from . import sdl
from .errors import in_transaction
from .select import run, selection
CONSTRAINTS = {
    "user_email_key": ["email"], "organization_name_key": ["name"],
    "team_organizationId_name_key": ["organizationId", "name"],
    "membership_accessId_userId_key": ["accessId", "userId"],
    "membership_accessId_teamId_key": ["accessId", "teamId"],
    "dataset_organizationId_name_key": ["organizationId", "name"],
} | {f"{name}_pkey": list(table.key) for name, table in TABLES.items()}  # Hasura's names


class Inserter:
    """Inserts one input object (and what it nests) through the store's collections."""

    def __init__(self, store):
        self.store = store
        self.count = 0

    def insert(self, table: str, obj: dict, on_conflict: dict | None = None) -> str | None:
        """Insert `obj`; answer the row's key, or None when on_conflict skipped it."""
        values = self._through_objects(table, dict(obj))
        nested_arrays = {k: values.pop(k) for k in list(values) if k in TABLES[table].arrays}
        existing = on_conflict and self._conflicting(table, values, on_conflict)
        if existing:
            key = self._resolve_conflict(table, existing, values, on_conflict)
            if key is None:
                return None  # skipped: so are the rows it nests, as in Hasura
        elif table == "dataframe":
            key = self._dataframe(values, nested_arrays.pop("chunks", None))
        elif table == "chunk":
            key = self._chunk(values)
        else:
            key = self._create(table, values)
        self.count += 0 if existing else 1  # an update on conflict counts itself
        for field, wrapper in nested_arrays.items():
            child, column = sdl.nested_arrays(TABLES[table]).get(field, (None, None))
            if column is None:
                raise InvalidValue(f"{table}.{field} cannot be inserted from here")
            for item in wrapper["data"]:
                self.insert(child, {**item, column: key}, wrapper.get("on_conflict"))
        return key

    def _through_objects(self, table: str, values: dict) -> dict:
        """Insert the rows of object relationships first (`owner: {data, on_conflict}`),
        each exactly as a top-level insert of its table (same rules, events and
        on_conflict), and point our column at it, as Hasura does."""
        for field, target in sdl.nested_objects(TABLES[table]).items():
            wrapper = values.pop(field, None)
            if wrapper is None:
                continue
            column = TABLES[table].objects[field].column
            if values.get(column) is not None:
                raise InvalidValue(f'cannot insert object relationship "{field}" as "{column}" '
                                   "column values are already determined")
            key = self.insert(target, wrapper["data"], wrapper.get("on_conflict"))
            if key is None:
                raise InvalidValue("cannot proceed to insert object relation since insert to "
                                   f'table "{target}" affects zero rows')
            values[column] = key
        return values

    def _create(self, table: str, values: dict) -> str:
        kwargs = {}
        access = values.pop("access", None)
        if access is not None:
            if not TABLES[table].owns_access:
                raise InvalidValue(f"{table}.access cannot be inserted")
            if "id" in access["data"]:
                raise InvalidValue(f"the access of a new {table} takes a new id: leave out "
                                   "access.data.id")
            values = {**access["data"], **values}
        for field in ("dataframe", "centroids", "labels"):
            if field in values:
                kwargs.update(self._frame_kwargs(table, field, values.pop(field)))
        for key, value in values.items():
            kwargs[snake(key)] = value
        collection = self.store.collection(table)
        if table == "team_member":
            row = collection.create(kwargs.pop("team_id", None), kwargs.pop("user_id", None))
            return row["teamId"], row["userId"]
        try:
            row = collection.create(**kwargs)
        except TypeError as error:
            raise InvalidValue(f"cannot insert {table}: {error}") from None
        return row["id"]

    def _frame_kwargs(self, table: str, field: str, wrapper: dict) -> dict:
        """A nested dataframe (`{data: {columns, metadata, chunks: {data: [...]}}}`) as
        the keyword arguments of its owner's create; each given chunk stays a chunk."""
        data = wrapper["data"]
        chunks = (data.get("chunks") or {}).get("data") or []
        rows = [row for chunk in chunks for row in (chunk.get("data") or [])]
        columns = data.get("columns")
        frame = codec.table_from_rows(rows, columns if rows else (columns or []), None)
        if table == "dataset":
            first = len(chunks[0].get("data") or []) if chunks else 0
            return {"data": frame if chunks else None, "metadata": data.get("metadata"),
                    "compression": data.get("compression"), "chunk_rows": max(1, first)}
        if table == "task":
            return {field: frame}
        raise InvalidValue(f"{table}.{field} cannot be inserted")

    def _dataframe(self, values: dict, chunks: dict | None) -> str:
        frame = self.store.dataframes.create(
            metadata=values.get("metadata"), compression=values.get("compression"),
            id=values.get("id"))
        columns = values.get("columns")
        for chunk in (chunks or {}).get("data", []):
            self._append_rows(frame["id"], chunk.get("data"), columns)
        return frame["id"]

    def _chunk(self, values: dict) -> str:
        frame_id = values.get("dataframeId")
        if frame_id is None:
            raise InvalidValue("a chunk needs its dataframeId")
        self._append_rows(frame_id, values.get("data"), None)
        return self.store.dataframes.chunks(frame_id)[-1]["id"]

    def _append_rows(self, frame_id: str, rows: Any, columns: list[str] | None) -> None:
        schema = self.store.dataframes.schema(frame_id)
        table = codec.table_from_rows(rows, columns, schema)
        self.store.dataframes.append(frame_id, table, chunk_rows=max(1, table.num_rows))

    def _conflicting(self, table: str, obj: dict, on_conflict: dict) -> Any:
        columns = CONSTRAINTS.get(on_conflict["constraint"])
        if columns is None or any(obj.get(c) is None for c in columns):
            return None
        rows = self.store.collection(table).list(**{c: obj[c] for c in columns})
        return rows[0] if rows else None

    def _resolve_conflict(self, table: str, existing: dict, obj: dict, on_conflict: dict):
        update_columns = on_conflict.get("update_columns") or []
        where = on_conflict.get("where")
        collection = self.store.collection(table)
        if not update_columns or (where and not collection.count(
                where={"_and": [where, {"id": {"_eq": existing["id"]}}]})):
            return None
        changes = {c: obj[c] for c in update_columns if c in obj}
        collection.update(existing["id"], **changes)
        self.count += 1
        return existing["id"]


def key_where(table: str, keys: list) -> dict:
    """A where for the rows with these keys, cut in pieces within query.py's limits
    (a mutation may touch more rows than one _in or _or may hold)."""
    if table == "team_member":
        pairs = [{"teamId": {"_eq": t}, "userId": {"_eq": u}} for t, u in keys]
        return {"_or": [{"_or": pairs[i:i + MAX_TERMS]} for i in range(0, len(pairs), MAX_TERMS)]}
    keys = list(keys)
    return {"_or": [{"id": {"_in": keys[i:i + MAX_IN_VALUES]}}
                    for i in range(0, len(keys), MAX_IN_VALUES)]}


def _returning(info, table: str, keys: list, one: bool) -> Any:
    """The mutation's answer for the rows with these keys, compiled like a query."""
    select = selection(info)
    gql_type = get_named_type(info.return_type)
    nodes = list(info.field_nodes)
    store = info.context["store"]
    if one:
        if not keys:
            return None
        sql = select.list_json(TABLES[table], {"where": key_where(table, keys)}, gql_type, nodes)
        rows = run(store.db, sql, select.compiler.params)
        return rows[0] if rows else None
    answer = {}
    for key, field_nodes in select.fields(nodes).items():
        name = field_nodes[0].name.value
        if name == "affected_rows":
            answer[key] = None  # filled in by the caller
        elif name == "returning":
            row_type = get_named_type(gql_type.fields["returning"].type)
            sql = select.list_json(TABLES[table], {"where": key_where(table, keys)}, row_type,
                                   field_nodes)
            answer[key] = run(store.db, sql, select.compiler.params)
    return answer


def _with_count(answer: dict, count: int) -> dict:
    return {k: count if v is None else v for k, v in answer.items()}


def _matching_keys(store, table: str, where: dict) -> list:
    rows = store.collection(table).list(where=where)
    return [tuple(row[k] for k in TABLES[table].key) if len(TABLES[table].key) > 1 else row["id"]
            for row in rows]


def _delete(store, table: str, key) -> None:
    collection = store.collection(table)
    if isinstance(key, tuple):
        collection.delete(*key)
    else:
        collection.delete(key)


def _update_where(info, table: str, args: dict, where: dict) -> dict:
    """One update_T (or one entry of update_T_many): its mutation response."""
    keys = _updated(info, table, args, where)
    return _with_count(_returning(info, table, keys, one=False), len(keys))


def _updated(info, table: str, args: dict, where: dict) -> list:
    """Apply the update operators to each row the caller sees matching `where`, through
    the collection (model/update_operators.py: PostgreSQL's semantics); answer their keys."""
    ops = _operators(args)
    if not update_operators.given(ops):
        raise InvalidValue(_no_operator(info))
    update_operators.check(TABLES[table], ops)
    store = info.context["store"]
    keys = _matching_keys(store, table, where)
    for key in keys:
        if isinstance(key, tuple):
            raise InvalidValue(f"a {table} has nothing to update: delete and insert it")
        store.collection(table).change(key, **ops)
    return keys


def _operators(args: dict) -> dict:
    ops = {op: dict(args.get(op) or {}) for op in update_operators.OPERATORS}
    ops["_set"].pop("_nothing", None)
    return ops


def _run(info, table: str, op: str, args: dict) -> Any:
    store = info.context["store"]
    with store.transaction():
        if op in ("insert", "insert_one"):
            inserter = Inserter(store)
            objects = args["objects"] if op == "insert" else [args["object"]]
            keys = [inserter.insert(table, obj, args.get("on_conflict")) for obj in objects]
            keys = [k for k in keys if k is not None]
            if op == "insert_one":
                return _returning(info, table, keys, one=True)
            return _with_count(_returning(info, table, keys, one=False), inserter.count)
        if op == "update_many":
            return [_update_where(info, table, updates, updates["where"])
                    for updates in args["updates"]]
        if op == "update":
            return _update_where(info, table, args, args["where"])
        if op == "update_by_pk":
            keys = _updated(info, table, args, _pk_where(table, args["pk_columns"]))
            return _returning(info, table, keys, one=True)
        where = args["where"] if op == "delete" else _pk_where(table, args)
        keys = _matching_keys(store, table, where)
        answer = _returning(info, table, keys, one=op == "delete_by_pk")
        for key in keys:
            _delete(store, table, key)
        return answer if op == "delete_by_pk" else _with_count(answer, len(keys))


def _no_operator(info) -> str:
    """Hasura's refusal of an update that names no change, listing the operators this
    field takes (a no-op update would still touch updatedAt and log an event)."""
    field_args = info.parent_type.fields[info.field_name].args
    if "updates" in field_args:  # update_T_many: the operators of T_updates
        field_args = get_named_type(field_args["updates"].type).fields
    operators = [name for name in field_args if name.startswith("_")]
    return f"at least any one of {', '.join(operators)} is expected"


def _pk_where(table: str, pk: dict) -> dict:
    return {k: {"_eq": pk[k]} for k in TABLES[table].key}


def bind(mutation, table: str) -> None:
    names = root_field_names(table)
    for op in ("insert", "insert_one", "update", "update_by_pk", "update_many", "delete",
               "delete_by_pk"):
        mutation.set_field(names[op], _resolver(table, op))


def _resolver(table: str, op: str):
    async def resolve(_, info, **args):
        return await in_transaction(info.context["store"], _run, info, table, op, args)
    return resolve


async def redeliver_event(_, info, id: str):
    """Send an event again; the store admin's (the event log shows every change)."""
    def run():
        store = info.context["store"]
        if store.caller is not None:
            raise PermissionDenied("only the store admin may redeliver events")
        store.events.redeliver(id)
        return _returning(info, "event", [id], one=True)

    return await in_transaction(info.context["store"], run)


async def regenerate_access_token(_, info, id: str, role: str):
    """A new token for `role` on this access (the caller must be admin of its resource)."""
    def run():
        store = info.context["store"]
        with store.transaction():
            store.accesses.regenerate_token(id, role)
            return _returning(info, "access", [id], one=True)

    return await in_transaction(info.context["store"], run)
