"""The Clusauth model (SPEC section 4), in one place for every door: the Python API,
GraphQL (queries, relationships, aggregates, subscriptions, mutations) and the Arrow
endpoints all read through `Caller.visibility` and write through `Caller` checks.

A caller's role on a resource is computed in SQL, as the highest of: ownership (admin),
the access's `public` role, the caller's memberships, its teams' memberships, and a
presented resource token; a role on an organization holds for what is in it."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import (ACCESS_OWNERS, FRAME_OWNERS, LEVELS, OWNED, ROLES, TABLES,
                       TOKEN_COLUMNS, Table, q)
from ..errors import PermissionDenied
from ..query import Compiler


@dataclass(frozen=True)
class Readers:
    """Who may read a masked column of a row: callers with at least `role` on the
    resource the row belongs to, and the user the row's `own` column names."""

    role: str | None = None
    own: str | None = None


# Columns a caller reads only on the rows where it is one of their readers; on other
# rows they are NULL for it, for reading, filtering, ordering, counting and aggregating
# alike. A token shows to the roles it grants; a webhook URL (often a secret in itself)
# to the admins who may change it and to the member it calls; an email to its user.
MASKED_COLUMNS: dict[str, dict[str, Readers]] = {
    "access": {**{column: Readers(role) for role, column in TOKEN_COLUMNS.items()},
               "webhook": Readers("admin")},
    "membership": {"webhook": Readers("admin", own="userId")},
    "user": {"email": Readers(own="id")},
}


def _level(expression: str) -> str:
    """SQL: the level of the role named by `expression` (0 for none)."""
    cases = " ".join(f"WHEN '{role}' THEN {LEVELS[role]}" for role in reversed(ROLES))
    return f"(CASE {expression} {cases} ELSE 0 END)"


@dataclass(frozen=True)
class Caller:
    """Who is asking: an authenticated user (`user_id`), the holder of one resource
    token (`token` of access `token_access`, giving `token_role`), both, or neither
    (anonymous). `proved_email` is the address the caller's credentials prove (a JWT's
    email claim): the only one a user may give itself (access/rules.py)."""

    user_id: str | None = None
    token_access: str | None = None
    token_role: str | None = None
    public: bool = True  # False: only roles the caller holds itself count (inviting)
    token: str | None = None
    proved_email: str | None = None

    # -- roles, as SQL ------------------------------------------------------------

    def own_role(self, c: Compiler, table: str, alias: str) -> str:
        """The caller's level on the resource row `alias` itself (not inherited)."""
        me = c.bind(self.user_id)
        parts = [
            f"coalesce((SELECT {_level('a.public')} FROM access a WHERE a.id = {alias}.accessId), 0)"
            if self.public else "0",
            f"coalesce((SELECT max({_level('m.role')}) FROM membership m "
            f"WHERE m.accessId = {alias}.accessId AND (m.userId = {me} OR m.teamId IN "
            f"(SELECT tm.teamId FROM team_member tm WHERE tm.userId = {me}))), 0)",
        ]
        if table in OWNED:
            parts.append(f"(CASE WHEN {alias}.ownerId = {me} THEN 3 ELSE 0 END)")
        if self.token_access:  # while the token is still the access's (not regenerated)
            access = c.bind(self.token_access)
            holds = (f"EXISTS (SELECT 1 FROM access WHERE id = {access} AND "
                     f"{q(TOKEN_COLUMNS[self.token_role])} = {c.bind(self.token)})")
            parts.append(f"(CASE WHEN {alias}.accessId = {access} AND {holds} "
                         f"THEN {LEVELS[self.token_role]} ELSE 0 END)")
        return f"max({', '.join(parts)})"

    def role(self, c: Compiler, table: str, alias: str) -> str:
        """The caller's level on resource row `alias`, organization's included."""
        own = self.own_role(c, table, alias)
        if table == "organization":
            return own
        org = c.alias()
        inherited = (f"coalesce((SELECT {self.own_role(c, 'organization', org)} FROM organization "
                     f"{org} WHERE {org}.id = {alias}.organizationId), 0)")
        return f"max({own}, {inherited})"

    def access_role(self, c: Compiler, alias: str) -> str:
        """The caller's level on the resource that owns access row `alias`."""
        levels = []
        for table in ACCESS_OWNERS:
            inner = c.alias()
            levels.append(f"(SELECT {self.role(c, table, inner)} FROM {q(table)} {inner} "
                          f"WHERE {inner}.accessId = {alias}.id)")
        return f"coalesce({', '.join(levels)}, 0)"

    # -- reading --------------------------------------------------------------------

    def visibility(self, c: Compiler, table: Table, alias: str) -> str:
        """SQL true for the rows of `table` the caller may see."""
        name = table.name
        me = c.bind(self.user_id)
        if name in ACCESS_OWNERS:
            return f"{self.role(c, name, alias)} >= 1"
        if name == "access":
            return f"{self.access_role(c, alias)} >= 1"
        if name == "membership":
            inner = c.alias()
            return (f"({alias}.userId = {me} OR (SELECT {self.access_role(c, inner)} FROM access "
                    f"{inner} WHERE {inner}.id = {alias}.accessId) >= 1)")
        if name == "team_member":
            return self._exists(c, "team", f"{{t}}.id = {alias}.teamId")
        if name == "dataframe":  # rights on a dataframe are rights on its owner
            owners = [self._exists(c, owner, "(" + " OR ".join(
                          f"{{t}}.{q(column)} = {alias}.id" for column in columns) + ")")
                      for owner, columns in FRAME_OWNERS.items()]
            return f"({' OR '.join(owners)})"
        if name == "chunk":
            inner = c.alias()
            return (f"EXISTS (SELECT 1 FROM dataframe {inner} WHERE {inner}.id = {alias}.dataframeId "
                    f"AND {self.visibility(c, TABLES['dataframe'], inner)})")
        if name == "user":  # people are shown to people: not to anonymous or token callers
            if not self.user_id:
                return "0"
            related = [self._exists(c, t, f"{{t}}.ownerId = {alias}.id") for t in OWNED]
            inner = c.alias()
            related.append(f"EXISTS (SELECT 1 FROM team_member {inner} WHERE {inner}.userId = "
                           f"{alias}.id AND {self._exists(c, 'team', f'{{t}}.id = {inner}.teamId')})")
            return f"({alias}.id = {me} OR {' OR '.join(related)})"
        if name == "tracking":
            inner = c.alias()
            org_admin = (f"coalesce((SELECT {self.own_role(c, 'organization', inner)} FROM "
                         f"organization {inner} WHERE {inner}.id = {alias}.organizationId), 0) >= 3")
            return f"({alias}.userId = {me} OR {org_admin})"
        return "0"  # anything else (the event log, ...) is the store admin's

    def _exists(self, c: Compiler, table: str, condition: str) -> str:
        inner = c.alias()
        return (f"EXISTS (SELECT 1 FROM {q(table)} {inner} WHERE {condition.format(t=inner)} "
                f"AND {self.role(c, table, inner)} >= 1)")

    def column_sql(self, c: Compiler, table: Table, alias: str, column: str) -> str:
        """The column as the caller reads it: a masked column is NULL on the rows where
        the caller is none of its readers (see MASKED_COLUMNS)."""
        ref = f"{alias}.{q(column)}"
        readers = MASKED_COLUMNS.get(table.name, {}).get(column)
        if readers is None:
            return ref
        allowed = []
        if readers.own and self.user_id:
            allowed.append(f"{alias}.{q(readers.own)} = {c.bind(self.user_id)}")
        if readers.role:
            allowed.append(f"{self._row_level(c, table.name, alias)} >= {LEVELS[readers.role]}")
        return f"(CASE WHEN {' OR '.join(allowed) or '0'} THEN {ref} END)"

    def _row_level(self, c: Compiler, table: str, alias: str) -> str:
        """The caller's level on the resource that row `alias` of `table` belongs to."""
        if table == "access":
            return self.access_role(c, alias)
        if table in ACCESS_OWNERS:
            return self.role(c, table, alias)
        if "accessId" in TABLES[table].columns:  # a membership: its access's resource
            inner = c.alias()
            return (f"coalesce((SELECT {self.access_role(c, inner)} FROM access {inner} "
                    f"WHERE {inner}.id = {alias}.accessId), 0)")
        raise ValueError(f"{table} rows belong to no resource")

    # -- writing --------------------------------------------------------------------

    def level(self, db, table: str, id: str) -> int:
        """The caller's level on one resource (or on the resource owning an access)."""
        c = Compiler()
        alias = c.alias()
        expression = self.access_role(c, alias) if table == "access" else self.role(c, table, alias)
        row = db.execute(f"SELECT {expression} FROM {q(table)} {alias} WHERE {alias}.id = "
                         f"{c.bind(id)}", c.params).fetchone()
        return row[0] if row else 0

    def require(self, db, table: str, id: str, role: str, doing: str) -> None:
        if self.level(db, table, id) < LEVELS[role]:
            raise PermissionDenied(f"{doing} needs the {role} role on this {table}")

    def require_user(self, doing: str) -> str:
        if not self.user_id:
            raise PermissionDenied(f"{doing} needs an authenticated user")
        return self.user_id
