"""The catalog: every fact of the data model in one list. Tables, their columns,
plurals and relationships; which tables own an access or have an owner; the roles.
The Python API, the query compiler, the access rules, the GraphQL schema check and
fast path, the PostgreSQL DDL and the Hasura metadata all derive from it."""

from __future__ import annotations

from dataclasses import dataclass, field

TEXT, INT, REAL, BOOL, JSON, BLOB = "text", "int", "real", "bool", "json", "blob"
TIMESTAMPS = {"createdAt": TEXT, "updatedAt": TEXT}

ROLES = ("guest", "contributor", "admin")  # lowest first: a role includes those before it
LEVELS = {role: number for number, role in enumerate(ROLES, start=1)}  # guest 1 .. admin 3
TOKEN_COLUMNS = {role: f"{role}Token" for role in ROLES}  # role -> its access token column


def q(name: str) -> str:
    """A quoted SQL identifier (SQLite and PostgreSQL quote alike)."""
    return '"' + name.replace('"', '""') + '"'


def camel(name: str) -> str:
    """owner_id -> ownerId; camelCase names pass unchanged."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    """ownerId -> owner_id."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def column_pg_type(kind: str, column: str) -> str:
    """The PostgreSQL type of a column (the mirror's DDL; Hasura's scalars derive from it)."""
    if kind == TEXT and column.endswith("At"):
        return "timestamptz"
    if kind == TEXT and (column == "id" or column.endswith("Id")):
        return "uuid"
    return {INT: "bigint", REAL: "float8", BOOL: "boolean", JSON: "jsonb", BLOB: "bytea",
            TEXT: "text"}[kind]


@dataclass(frozen=True)
class ObjectRel:
    """`field` holds the row of `table` whose `remote` column equals our `column`."""

    table: str
    column: str
    remote: str = "id"


@dataclass(frozen=True)
class ArrayRel:
    """`field` holds the rows of `table` whose `remote` column equals our `column`;
    with `through`, the rows reached by a join table (through, from_col, to_col)."""

    table: str
    remote: str
    column: str = "id"
    through: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Table:
    name: str
    plural: str  # the collection's name: store.<plural>, GraphQL's root list field
    columns: dict[str, str]
    objects: dict[str, ObjectRel] = field(default_factory=dict)
    arrays: dict[str, ArrayRel] = field(default_factory=dict)
    key: tuple[str, ...] = ("id",)
    default_order: tuple[str, ...] = ("createdAt",)  # before the key, when order_by is silent
    hidden: frozenset[str] = frozenset()  # columns never shown as fields
    owns_access: bool = False  # created with an access of its own (SPEC: one access each)
    frames: tuple[str, ...] = ()  # columns naming the dataframes it owns (gone with it)
    store_written: bool = False  # written by the store itself (the event log), never by callers
    # the object relationship whose row must exist for a row to exist for readers: a
    # served import writes a dataframe's chunks before the dataframe (db/staging.py)
    exists_under: str | None = None

    @property
    def quoted(self) -> str:
        return q(self.name)

    @property
    def has_owner(self) -> bool:
        return "owner" in self.objects

    @property
    def pk(self) -> tuple[str, ...]:
        """The columns that name one row: the arguments of the by-pk field."""
        return ("id",) if "id" in self.columns else self.key

    def exists_sql(self, alias: str) -> str | None:
        """SQL true for the rows of this table named `alias` that exist for readers
        (None: all do), for every caller, the store admin included."""
        if self.exists_under is None:
            return None
        rel = self.objects[self.exists_under]
        return (f"EXISTS (SELECT 1 FROM {q(rel.table)} WHERE {q(rel.table)}.{q(rel.remote)} "
                f"= {alias}.{q(rel.column)})")

    @property
    def visible_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.hidden]


def _t(name, plural, columns, objects=None, arrays=None, **kw) -> Table:
    return Table(name, plural, {**columns, **TIMESTAMPS}, objects or {}, arrays or {}, **kw)


ACCESS_OBJ = {"access": ObjectRel("access", "accessId")}
OWNER_OBJ = {"owner": ObjectRel("user", "ownerId")}
ORG_OBJ = {"organization": ObjectRel("organization", "organizationId")}

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        # emailVerified (migration 4): the email was proved (set by the store admin or
        # carried by a JWT's email claim); only a proved email identifies its holder
        _t("user", "users", {"id": TEXT, "name": TEXT, "email": TEXT, "emailVerified": BOOL},
           arrays={"teams": ArrayRel("team", "userId",
                                     through=("team_member", "userId", "teamId")),
                   "memberships": ArrayRel("membership", "userId"),
                   "organizations": ArrayRel("organization", "ownerId")},
           hidden=frozenset({"emailVerified"})),
        _t("access", "accesses",
           {"id": TEXT, "public": TEXT, "webhook": TEXT, "adminToken": TEXT,
            "contributorToken": TEXT, "guestToken": TEXT},
           arrays={"memberships": ArrayRel("membership", "accessId")}),
        _t("organization", "organizations",
           {"id": TEXT, "name": TEXT, "ownerId": TEXT, "accessId": TEXT},
           objects={**OWNER_OBJ, **ACCESS_OBJ},
           arrays={"datasets": ArrayRel("dataset", "organizationId"),
                   "tasks": ArrayRel("task", "organizationId"),
                   "teams": ArrayRel("team", "organizationId")},
           owns_access=True),
        _t("team", "teams", {"id": TEXT, "name": TEXT, "organizationId": TEXT, "accessId": TEXT},
           objects={**ORG_OBJ, **ACCESS_OBJ},
           arrays={"members": ArrayRel("user", "teamId",
                                       through=("team_member", "teamId", "userId"))},
           owns_access=True),
        _t("team_member", "team_members", {"teamId": TEXT, "userId": TEXT},
           objects={"team": ObjectRel("team", "teamId"), "user": ObjectRel("user", "userId")},
           key=("teamId", "userId")),
        _t("membership", "memberships",
           {"id": TEXT, "accessId": TEXT, "userId": TEXT, "teamId": TEXT, "role": TEXT,
            "webhook": TEXT, "follow": BOOL},
           objects={**ACCESS_OBJ, "user": ObjectRel("user", "userId"),
                    "team": ObjectRel("team", "teamId")}),
        _t("dataframe", "dataframes",
           {"id": TEXT, "size": INT, "dim": INT, "rows": INT, "columns": JSON,
            "metadata": JSON, "compression": TEXT, "arrowSchema": BLOB},
           arrays={"chunks": ArrayRel("chunk", "dataframeId")},
           hidden=frozenset({"arrowSchema"})),
        _t("chunk", "chunks",
           {"id": TEXT, "dataframeId": TEXT, "position": INT, "rows": INT, "size": INT,
            "data": BLOB},
           objects={"dataframe": ObjectRel("dataframe", "dataframeId")},
           default_order=("dataframeId", "position"), hidden=frozenset({"data"}),
           exists_under="dataframe"),
        _t("dataset", "datasets",
           {"id": TEXT, "name": TEXT, "organizationId": TEXT, "ownerId": TEXT,
            "dataframeId": TEXT, "accessId": TEXT},
           objects={**ORG_OBJ, **OWNER_OBJ, **ACCESS_OBJ,
                    "dataframe": ObjectRel("dataframe", "dataframeId")},
           arrays={"tasks": ArrayRel("task", "datasetId")},
           owns_access=True, frames=("dataframeId",)),
        _t("task", "tasks",
           {"id": TEXT, "name": TEXT, "organizationId": TEXT, "ownerId": TEXT,
            "datasetId": TEXT, "algorithm": JSON, "identifier": TEXT, "variables": JSON,
            "predictions": JSON, "centroidsId": TEXT, "labelsId": TEXT, "accessId": TEXT},
           objects={**ORG_OBJ, **OWNER_OBJ, **ACCESS_OBJ,
                    "dataset": ObjectRel("dataset", "datasetId"),
                    "centroids": ObjectRel("dataframe", "centroidsId"),
                    "labels": ObjectRel("dataframe", "labelsId")},
           owns_access=True, frames=("centroidsId", "labelsId")),
        _t("tracking", "trackings",
           {"id": TEXT, "userId": TEXT, "organizationId": TEXT, "resource": TEXT,
            "resourceId": TEXT, "kind": TEXT, "payload": JSON},
           objects={"user": ObjectRel("user", "userId"), **ORG_OBJ}),
        # the event log (migration 2): written by triggers, read by store.events
        Table("event", "events",
              {"id": TEXT, "seq": INT, "tableName": TEXT, "op": TEXT, "resourceId": TEXT,
               "accessId": TEXT, "orgAccessId": TEXT, "old": JSON, "new": JSON,
               "sessionVariables": JSON, "status": TEXT, "createdAt": TEXT},
              arrays={"deliveries": ArrayRel("event_delivery", "eventId")},
              key=("seq",), store_written=True),
        Table("event_delivery", "event_deliveries",
              {"id": INT, "eventId": TEXT, "seq": INT, "tableName": TEXT, "resourceId": TEXT,
               "url": TEXT, "status": TEXT, "tries": INT, "nextTryAt": REAL,
               "leaseUntil": REAL, "leaseOwner": TEXT, "lastStatus": INT, "lastError": TEXT,
               "deliveredAt": TEXT, "createdAt": TEXT, "updatedAt": TEXT, "followers": JSON},
              objects={"event": ObjectRel("event", "eventId")}, store_written=True),
    ]
}

# Derived lists, in catalog order.
DATA_MODEL = tuple(name for name, t in TABLES.items() if not t.store_written)  # SPEC section 1
ACCESS_OWNERS = tuple(name for name, t in TABLES.items() if t.owns_access)
OWNED = tuple(name for name, t in TABLES.items() if t.has_owner)  # have an owner (admin)
FRAME_OWNERS = {name: t.frames for name, t in TABLES.items() if t.frames}  # a dataframe's rights
BY_PLURAL = {t.plural: t for t in TABLES.values()}


def pg_type(table: str, column: str) -> str:
    """The PostgreSQL type of TABLES[table].columns[column]."""
    return column_pg_type(TABLES[table].columns[column], column)


def root_field_names(table: str) -> dict[str, str]:
    """Hasura's root fields of a table, kind -> name: the served API (graphql/sdl.py) and
    the Hasura metadata's custom_root_fields (mirror/hasura.py) both name them from here."""
    one, many = table, TABLES[table].plural
    return {"select": many, "select_by_pk": one, "select_aggregate": f"{many}_aggregate",
            "select_stream": f"{many}_stream", "insert": f"insert_{one}",
            "insert_one": f"insert_{one}_one", "update": f"update_{one}",
            "update_by_pk": f"update_{one}_by_pk", "update_many": f"update_{one}_many",
            "delete": f"delete_{one}", "delete_by_pk": f"delete_{one}_by_pk"}
