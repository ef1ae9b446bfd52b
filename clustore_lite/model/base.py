"""A collection of the Python API: get, list, count, insert, update and delete over
one table of the catalog, through the caller's visibility and write rules.

Every public write runs in one transaction (nested in the caller's
`store.transaction()` when there is one)."""

from __future__ import annotations

import re
from typing import Any

import apsw

from .. import values as v
from ..catalog import TABLES, Table, camel, q
from ..errors import ConstraintViolation, InvalidValue, NameTaken, NotFound, a
from ..query import Compiler, count_sql, select_sql
from . import update_operators


class Collection:
    """Generic access to one table. Subclasses say which columns callers may set
    (`settable`) and how to check each (`check`)."""

    table_name = ""
    settable: dict[str, Any] = {}  # column -> checker(value) -> value
    references: dict[str, str] = {}  # column -> table it refers to

    def __init__(self, store):
        self.store = store
        self.db = store.db
        self.table: Table = TABLES[self.table_name]

    # -- reading ---------------------------------------------------------------------

    def get(self, id: str) -> v.Record:
        rows = self.list(where={"id": {"_eq": v.check_id(id)}})
        if not rows:
            raise NotFound(f"no {self.table.name} with id {id}")
        return rows[0]

    def find(self, id: str) -> v.Record | None:
        try:
            return self.get(id)
        except NotFound:
            return None

    def list(self, where: dict | None = None, order_by: Any = None, limit: int | None = None,
             offset: int | None = None, distinct_on: Any = None, **equals) -> list[v.Record]:
        """Rows matching Hasura's `where` (and `column=value` shortcuts); with
        `distinct_on`, the first of each group of equal values (Hasura's distinct_on)."""
        sql, params = select_sql(self.table, self._compiler(), self._where(where, equals),
                                 order_by, limit, offset, distinct_on)
        return [v.from_sql(self.table, row) for row in self.db.query(sql, params)]

    def count(self, where: dict | None = None, **equals) -> int:
        sql, params = count_sql(self.table, self._compiler(), self._where(where, equals))
        return self.db.execute(sql, params).fetchone()[0]

    def _compiler(self) -> Compiler:
        """A compiler with the caller's visibility and column masks."""
        return Compiler(self.store.visibility, self.store.column_sql)

    def _where(self, where: dict | None, equals: dict) -> dict | None:
        shortcuts = {camel(k): {"_eq": value} if value is not None else {"_is_null": True}
                     for k, value in equals.items()}
        if where and shortcuts:
            return {"_and": [where, shortcuts]}
        return where or shortcuts or None

    # -- writing ---------------------------------------------------------------------

    def checked(self, values: dict) -> dict:
        """Values named in snake_case or camelCase, checked and converted."""
        out = {}
        for key, value in values.items():
            column = camel(key)
            if column not in self.settable:
                allowed = ", ".join(sorted(self.settable))
                raise InvalidValue(f"{self.table.name} has no settable field {key!r} "
                                   f"(settable: {allowed})")
            out[column] = self.settable[column](value)
        for column, target in self.references.items():
            if out.get(column) is not None:
                self.store.collection(target).require(out[column])
        return out

    @staticmethod
    def with_id(values: dict, id: str | None) -> dict:
        """`values` with the row's id when the caller chose it (clients make UUIDs for
        optimistic UI); a taken id is a constraint violation on insert."""
        if id is not None:
            values["id"] = v.check_id(id)
        return values

    def require(self, id: str) -> None:
        """Raise NotFound unless a row with this id exists (whoever may see it)."""
        found = self.db.execute(f"SELECT 1 FROM {self.table.quoted} WHERE id = ?",
                                (v.check_id(id),)).fetchone()
        if not found:
            raise NotFound(f"no {self.table.name} with id {id}")

    def insert(self, values: dict, authorize: bool = True) -> v.Record:
        """Insert a row; `authorize=False` only for rows made as part of another
        write that was itself authorized (an organization's access, ...)."""
        if authorize:
            values = self.store.authorize("insert", self.table.name, values)
        stamp = v.now()
        row = {"id": v.new_id(), **values, "createdAt": stamp, "updatedAt": stamp}
        row = v.to_sql(self.table, row)
        names = ", ".join(q(c) for c in row)
        marks = ", ".join("?" for _ in row)
        with self.store.transaction():
            self._run(f"INSERT INTO {self.table.quoted} ({names}) VALUES ({marks})",
                      list(row.values()), values)
            return self.get(row["id"]) if authorize else self.get_unfiltered(row["id"])

    def get_unfiltered(self, id: str) -> v.Record:
        """A row whoever may see it: for rows made on behalf of another row, which
        the caller may not see before that row exists."""
        raw = self.db.query(f"SELECT * FROM {self.table.quoted} WHERE id = ?", [id])
        if not raw:
            raise NotFound(f"no {self.table.name} with id {id}")
        return v.from_sql(self.table, raw[0])

    def update(self, id: str, **changes) -> v.Record:
        values = self.checked(changes)
        with self.store.transaction():
            self.store.authorize("update", self.table.name, self.get(id), values)
            self.write_update(id, values)
            return self.get(id)

    def change(self, id: str, **operators) -> v.Record:
        """Hasura's update operators on one row (`_inc={"rows": 1}`,
        `_append={"metadata": {...}}`, ...; model/update_operators.py), computed from the row
        as the caller sees it and written by `update`, with its checks and rules."""
        with self.store.transaction():
            values = update_operators.changes(self.table, self.get(id), operators)
            return self.update(id, **values)

    def write_update(self, id: str, values: dict) -> None:
        if not values:
            return
        row = v.to_sql(self.table, {**values, "updatedAt": v.now()})
        assignments = ", ".join(f"{q(c)} = ?" for c in row)
        self._run(f"UPDATE {self.table.quoted} SET {assignments} WHERE id = ?",
                  [*row.values(), v.check_id(id)], values)

    def delete(self, id: str) -> v.Record:
        """Delete one row (and what it owns); answer the row as it was."""
        with self.store.transaction():
            row = self.get(id)
            self.store.authorize("delete", self.table.name, row)
            self._run(f"DELETE FROM {self.table.quoted} WHERE id = ?", [row["id"]], {})
            return row

    def _run(self, sql: str, params: list, values: dict) -> None:
        try:
            self.db.execute(sql, params)
        except apsw.ConstraintError as error:
            raise self._explain(str(error), values) from None

    def _explain(self, message: str, values: dict) -> Exception:
        unique = re.search(r"UNIQUE constraint failed: (.+)", message)
        if unique:
            columns = [c.split(".")[-1] for c in unique.group(1).split(", ")]
            shown = ", ".join(f"{c} {values.get(c)!r}" for c in columns if c != "organizationId")
            where = " in this organization" if "organizationId" in columns else ""
            return NameTaken(f"{a(self.table.name)} with {shown} already exists{where}")
        if "FOREIGN KEY" in message:
            return ConstraintViolation(
                f"this change to {self.table.name} would leave a reference to a row that "
                "does not exist")
        return ConstraintViolation(f"{self.table.name}: {message}")


def nullable(check):
    return lambda value: None if value is None else check(value)


def reference(what):
    """Checks an optional id column."""
    return nullable(lambda value: v.check_id(value, what))


class OwnsAccess(Collection):
    """Entities created together with their own access (SPEC: one access each)."""

    def insert_with_access(self, values: dict, public=None, webhook=None) -> v.Record:
        with self.store.transaction():
            values = self.store.authorize("insert", self.table.name,
                                          {**values, "public": public, "webhook": webhook})
            public, webhook = values.pop("public"), values.pop("webhook")
            access = self.store.accesses.create(public=public, webhook=webhook, authorize=False)
            return self.insert({**values, "accessId": access["id"]}, authorize=False)
