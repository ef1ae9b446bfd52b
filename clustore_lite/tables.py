"""The catalog: every table of the data model, its columns and relationships.
The Python API, the where/order_by compiler and the GraphQL layer all read this one
description, so a column or relationship is declared once."""

from __future__ import annotations

from dataclasses import dataclass, field

TEXT, INT, BOOL, JSON, BLOB = "text", "int", "bool", "json", "blob"
TIMESTAMPS = {"createdAt": TEXT, "updatedAt": TEXT}


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
    columns: dict[str, str]
    objects: dict[str, ObjectRel] = field(default_factory=dict)
    arrays: dict[str, ArrayRel] = field(default_factory=dict)
    key: tuple[str, ...] = ("id",)
    default_order: tuple[str, ...] = ("createdAt",)  # before the key, when order_by is silent
    hidden: frozenset[str] = frozenset()  # columns never shown as fields

    @property
    def quoted(self) -> str:
        return f'"{self.name}"'

    @property
    def visible_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.hidden]


def _t(name, columns, objects=None, arrays=None, **kw) -> Table:
    return Table(name, {**columns, **TIMESTAMPS}, objects or {}, arrays or {}, **kw)


ACCESS_OBJ = {"access": ObjectRel("access", "accessId")}
OWNER_OBJ = {"owner": ObjectRel("user", "ownerId")}
ORG_OBJ = {"organization": ObjectRel("organization", "organizationId")}

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t("user", {"id": TEXT, "name": TEXT, "email": TEXT},
           arrays={"teams": ArrayRel("team", "userId", through=("team_member", "userId", "teamId")),
                   "memberships": ArrayRel("membership", "userId"),
                   "organizations": ArrayRel("organization", "ownerId")}),
        _t("access", {"id": TEXT, "public": TEXT, "webhook": TEXT, "adminToken": TEXT,
                      "contributorToken": TEXT, "guestToken": TEXT},
           arrays={"memberships": ArrayRel("membership", "accessId")}),
        _t("organization", {"id": TEXT, "name": TEXT, "ownerId": TEXT, "accessId": TEXT},
           objects={**OWNER_OBJ, **ACCESS_OBJ},
           arrays={"datasets": ArrayRel("dataset", "organizationId"),
                   "tasks": ArrayRel("task", "organizationId"),
                   "teams": ArrayRel("team", "organizationId")}),
        _t("team", {"id": TEXT, "name": TEXT, "organizationId": TEXT, "accessId": TEXT},
           objects={**ORG_OBJ, **ACCESS_OBJ},
           arrays={"members": ArrayRel("user", "teamId", through=("team_member", "teamId", "userId"))}),
        _t("team_member", {"teamId": TEXT, "userId": TEXT},
           objects={"team": ObjectRel("team", "teamId"), "user": ObjectRel("user", "userId")},
           key=("teamId", "userId")),
        _t("membership", {"id": TEXT, "accessId": TEXT, "userId": TEXT, "teamId": TEXT,
                          "role": TEXT, "webhook": TEXT, "follow": BOOL},
           objects={**ACCESS_OBJ, "user": ObjectRel("user", "userId"),
                    "team": ObjectRel("team", "teamId")}),
        _t("dataframe", {"id": TEXT, "size": INT, "dim": INT, "rows": INT, "columns": JSON,
                         "metadata": JSON, "compression": TEXT, "arrowSchema": BLOB},
           arrays={"chunks": ArrayRel("chunk", "dataframeId")},
           hidden=frozenset({"arrowSchema"})),
        _t("chunk", {"id": TEXT, "dataframeId": TEXT, "position": INT, "rows": INT,
                     "size": INT, "data": BLOB},
           objects={"dataframe": ObjectRel("dataframe", "dataframeId")},
           default_order=("dataframeId", "position"), hidden=frozenset({"data"})),
        _t("dataset", {"id": TEXT, "name": TEXT, "organizationId": TEXT, "ownerId": TEXT,
                       "dataframeId": TEXT, "accessId": TEXT},
           objects={**ORG_OBJ, **OWNER_OBJ, **ACCESS_OBJ,
                    "dataframe": ObjectRel("dataframe", "dataframeId")},
           arrays={"tasks": ArrayRel("task", "datasetId")}),
        _t("task", {"id": TEXT, "name": TEXT, "organizationId": TEXT, "ownerId": TEXT,
                    "datasetId": TEXT, "algorithm": JSON, "identifier": TEXT,
                    "variables": JSON, "predictions": JSON, "centroidsId": TEXT,
                    "labelsId": TEXT, "accessId": TEXT},
           objects={**ORG_OBJ, **OWNER_OBJ, **ACCESS_OBJ,
                    "dataset": ObjectRel("dataset", "datasetId"),
                    "centroids": ObjectRel("dataframe", "centroidsId"),
                    "labels": ObjectRel("dataframe", "labelsId")}),
        _t("tracking", {"id": TEXT, "userId": TEXT, "organizationId": TEXT, "resource": TEXT,
                        "resourceId": TEXT, "kind": TEXT, "payload": JSON},
           objects={"user": ObjectRel("user", "userId"), **ORG_OBJ}),
    ]
}
