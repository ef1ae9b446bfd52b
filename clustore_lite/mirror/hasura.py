"""`clustore-lite hasura-metadata`: Hasura metadata (v3 directory format) for a PostgreSQL
mirror made by `push`, so that Hasura serves the API of SPEC section 3 over it.

Encodes: root field names of SPEC 3; relationships of the catalog (many-to-many ones as
computed fields over the SQL functions of pg_schema.py); SPEC 4's access rules as
row permissions for the roles `user` (X-Hasura-User-Id) and `anonymous`; SPEC 5's event
triggers. What Hasura cannot express is listed in LIMITS and in the README."""

from __future__ import annotations

import os

import yaml

from ..access.roles import MASKED_COLUMNS
from ..catalog import ACCESS_OWNERS, ROLES, TABLES, root_field_names
from ..db.event_sql import EVENT_COLUMNS
from .pg_schema import ORDER

ME = "X-Hasura-User-Id"
EVENT_TABLES = tuple(EVENT_COLUMNS)  # the tables whose writes are events
THROUGH_FUNCTIONS = {("user", "teams"): "clustore_user_teams",
                     ("team", "members"): "clustore_team_members"}
# Relationships Hasura needs to express the rules, beyond those of the catalog:
# table -> name -> (remote table, {our column: remote column}, object?)
EXTRA = {
    "user": {"team_members": ("team_member", {"id": "userId"}, False),
             "ownedDatasets": ("dataset", {"id": "ownerId"}, False),
             "ownedTasks": ("task", {"id": "ownerId"}, False)},
    "team": {"team_members": ("team_member", {"id": "teamId"}, False)},
    "access": {r: (r, {"id": "accessId"}, True) for r in ACCESS_OWNERS},
    "dataframe": {"dataset": ("dataset", {"id": "dataframeId"}, True),
                  "centroidsOf": ("task", {"id": "centroidsId"}, True),
                  "labelsOf": ("task", {"id": "labelsId"}, True)},
}
LIMITS = """\
Setting up: Hasura reads the mirror's URL from HASURA_GRAPHQL_DATABASE_URL and the event
webhook (a relay that routes each event to the access and membership webhooks of SPEC 5)
from CLUSTORE_WEBHOOK_URL; set HASURA_GRAPHQL_UNAUTHORIZED_ROLE=anonymous so callers
without a token get the anonymous rules, and have the auth webhook or JWT set
X-Hasura-Role=user and X-Hasura-User-Id for a signed-in user.

Rows written by `clustore-lite push` fire the event triggers too; their
session_variables are {"x-hasura-role": "clustore-push", "x-clustore-origin": <store>},
so a relay can drop them when the edge store has delivered its own events.

Not encoded (Hasura permissions are per role and row, not per row and column):
- resource tokens (X-Clusauth-Token holding an access token) are not a role here: map them
  in an auth webhook, or serve them from clustore-lite;
- token columns of access are readable by the admin secret only (SPEC shows a guest its
  guestToken, an admin all three); so are users' emails and webhook URLs (clustore-lite
  shows an email to its user, a webhook to the admins of its access and to its member);
- moving a dataset, task or team to another organization, or giving it to another owner
  (admin rights in clustore-lite), is left to the admin secret;
- updatedAt is set to now() by update permissions (preset), not by a trigger;
- a tracking's organization is checked (guest at least), not the resource it names
  (resource/resourceId point to any table): check it in an auth webhook;
- changing another member's webhook or follow needs the access's admin in clustore-lite;
  here whoever may change the membership's role may change them: leave those columns to
  the relay or an auth webhook if that matters;
- the relay must send a following membership's webhook only the events whose rows that
  member may read, and call only allowed destinations (clustore-lite's own delivery
  does both; Hasura sends every event to the one relay);
- a user changes only its name: which email a sign-in proved is not known here, so emails
  are the admin secret's (clustore-lite lets a user set the one its JWT carries);
- chunk.data is the Arrow IPC bytes (bytea), not rows as JSON; algorithm is jsonb.
"""


def _at_least(role: str) -> list[str]:
    return list(ROLES[ROLES.index(role):])


# Hasura checks an insert after the row is written: a new membership or team member
# must not count towards the rights that allow writing it (else anyone could invite
# themselves). `root` names the table of the row being written, to leave it out.
NOT_ROOT = {
    "membership": {"id": {"_cne": ["$", "id"]}},
    "team_member": {"_not": {"_and": [{"teamId": {"_ceq": ["$", "teamId"]}},
                                      {"userId": {"_ceq": ["$", "userId"]}}]}},
}


def grants(role: str, anonymous: bool = False, root: str | None = None,
           public: bool = True) -> dict:
    """On an access row: it gives `role` (or more) to the caller (`public`: counting
    the access's public role, which grants reading but not inviting)."""
    everyone = {"public": {"_in": _at_least(role)}}
    if anonymous:
        return everyone
    in_team = {"userId": {"_eq": ME}}
    if root == "team_member":
        in_team = {"_and": [in_team, NOT_ROOT[root]]}
    member = [{"role": {"_in": _at_least(role)}},
              {"_or": [{"userId": {"_eq": ME}}, {"team": {"team_members": in_team}}]}]
    if root == "membership":
        member.append(NOT_ROOT[root])
    mine = {"memberships": {"_and": member}}
    return {"_or": [everyone, mine]} if public else mine


def role_on(table: str, role: str, anonymous: bool = False, root: str | None = None,
            public: bool = True) -> dict:
    """On a row of a resource table: the caller has `role` (or more) on it, by ownership,
    `public`, its memberships, its teams' memberships, or the same on its organization."""
    rules = [{"access": grants(role, anonymous, root, public)}]
    if not anonymous and "ownerId" in TABLES[table].columns:
        rules.append({"ownerId": {"_eq": ME}})
    if table != "organization":
        rules.append({"organization": role_on("organization", role, anonymous, root, public)})
    return {"_or": rules}


def access_rule(role: str, anonymous: bool = False, root: str | None = None,
                public: bool = True) -> dict:
    """On an access row: the caller has `role` on the resource it belongs to."""
    return {"_or": [{r: role_on(r, role, anonymous, root, public)} for r in ACCESS_OWNERS]}


def frame_rule(role: str, anonymous: bool = False) -> dict:
    """On a dataframe row: the caller has `role` on the dataset or task holding it."""
    return {"_or": [{"dataset": role_on("dataset", role, anonymous)},
                    {"centroidsOf": role_on("task", role, anonymous)},
                    {"labelsOf": role_on("task", role, anonymous)}]}


def _orphan_frame() -> dict:
    """A dataframe held by nothing yet (a nested insert writes it before its dataset)."""
    return {"_not": {"_or": [{rel: {"id": {"_is_null": False}}}
                             for rel in ("dataset", "centroidsOf", "labelsOf")]}}


def _invite(root: str | None = "membership") -> dict:
    """Guests invite guests, contributors invite contributors, admins anyone (and the
    same to change a membership), with a role of their own (not `public`); a membership
    being written does not count."""
    return {"_or": [{"_and": [{"role": {"_in": list(ROLES[:i + 1])}},
                              {"access": access_rule(r, root=root, public=False)}]}
                    for i, r in enumerate(ROLES)]}


def _feed(root: str | None = "membership") -> dict:
    """A membership's webhook and follow are set by its user or an admin of the access
    (they send what that user may read)."""
    return {"_or": [{"_and": [{"webhook": {"_is_null": True}}, {"follow": {"_eq": False}}]},
                    {"userId": {"_eq": ME}},
                    {"access": access_rule("admin", root=root, public=False)}]}


def user_rule() -> dict:
    """On a user row: oneself, or the owner of a resource or member of a team the
    caller sees (as clustore-lite's access/roles.py says; anonymous callers see no one)."""
    return {"_or": [{"id": {"_eq": ME}},
                    {"organizations": role_on("organization", "guest")},
                    {"ownedDatasets": role_on("dataset", "guest")},
                    {"ownedTasks": role_on("task", "guest")},
                    {"team_members": {"team": role_on("team", "guest")}}]}


# Bookkeeping no role reads: whether a user's email was proved (the store admin's).
PRIVATE = {"user": ("emailVerified",)}


def _columns(table: str, *leave_out: str) -> list[str]:
    leave_out = (*leave_out, *PRIVATE.get(table, ()))
    return [c for c in TABLES[table].columns if c not in leave_out]


def _readable(table: str) -> list[str]:
    """The columns the roles read: masked ones are left to the admin secret (Hasura's
    column permissions are per role, clustore-lite's masks per row)."""
    return _columns(table, *MASKED_COLUMNS.get(table, ()))


NOW = {"updatedAt": "now"}  # PostgreSQL reads the text 'now' as the current time
OWNED_BY_ME = {"ownerId": ME}


def permissions(table: str) -> dict:
    """select/insert/update/delete permissions of `table` for the roles user and anonymous.
    Each rule is (filter or check, columns, extra keys)."""
    select = {
        "user": (user_rule(), _readable("user"), None),
        "organization": (role_on("organization", "guest"), _readable("organization"), None),
        "team": (role_on("team", "guest"), _readable("team"), None),
        "team_member": ({"team": role_on("team", "guest")}, _readable("team_member"), None),
        "access": (access_rule("guest"), _readable("access"), None),
        "membership": ({"_or": [{"userId": {"_eq": ME}}, {"access": access_rule("guest")}]},
                       _readable("membership"), None),
        "dataframe": (frame_rule("guest"), _readable("dataframe"), None),
        "chunk": ({"dataframe": frame_rule("guest")}, _readable("chunk"), None),
        "dataset": (role_on("dataset", "guest"), _readable("dataset"), None),
        "task": (role_on("task", "guest"), _readable("task"), None),
        "tracking": ({"_or": [{"userId": {"_eq": ME}},
                              {"organization": role_on("organization", "admin")}]},
                     _readable("tracking"), None),
    }[table]
    anonymous = {
        "organization": (role_on("organization", "guest", True), _readable("organization")),
        "team": (role_on("team", "guest", True), _readable("team")),
        "team_member": ({"team": role_on("team", "guest", True)}, _readable("team_member")),
        "access": (access_rule("guest", True), _readable("access")),
        "membership": ({"access": access_rule("guest", True)}, _readable("membership")),
        "dataframe": (frame_rule("guest", True), _readable("dataframe")),
        "chunk": ({"dataframe": frame_rule("guest", True)}, _readable("chunk")),
        "dataset": (role_on("dataset", "guest", True), _readable("dataset")),
        "task": (role_on("task", "guest", True), _readable("task")),
    }.get(table)
    stamps = ("createdAt", "updatedAt")
    insert = {
        "organization": ({"ownerId": {"_eq": ME}}, ["id", "name", "accessId"], OWNED_BY_ME),
        "team": ({"organization": role_on("organization", "contributor")},
                 ["id", "name", "organizationId", "accessId"], None),
        "team_member": ({"team": role_on("team", "admin", root="team_member")},
                        ["teamId", "userId"], None),
        "access": ({}, ["id", "public", "webhook"], None),
        "membership": ({"_and": [_invite(), _feed()]}, _columns("membership", *stamps), None),
        "dataframe": ({}, _columns("dataframe", *stamps), None),
        "chunk": ({"dataframe": {"_or": [frame_rule("contributor"), _orphan_frame()]}},
                  _columns("chunk", *stamps), None),
        "dataset": ({"organization": role_on("organization", "contributor")},
                    _columns("dataset", "ownerId", *stamps), OWNED_BY_ME),
        "task": ({"organization": role_on("organization", "contributor")},
                 _columns("task", "ownerId", *stamps), OWNED_BY_ME),
        "tracking": ({"_or": [{"organizationId": {"_is_null": True}},
                              {"organization": role_on("organization", "guest")}]},
                     _columns("tracking", "userId", *stamps), {"userId": ME}),
    }.get(table)
    update = {
        "user": ({"id": {"_eq": ME}}, ["name"]),  # an email only as proved (README: Identities)
        "organization": (role_on("organization", "admin"), ["name", "ownerId"]),
        "team": (role_on("team", "admin"), ["name"]),
        "access": (access_rule("admin"), ["public", "webhook"]),
        "membership": (_invite(root=None), ["role", "webhook", "follow"]),
        "dataframe": (frame_rule("contributor"),
                      ["size", "dim", "rows", "columns", "metadata", "compression", "arrowSchema"]),
        "dataset": (role_on("dataset", "contributor"), ["name", "dataframeId"]),
        "task": (role_on("task", "contributor"),
                 ["name", "datasetId", "algorithm", "identifier", "variables", "predictions",
                  "centroidsId", "labelsId"]),
    }.get(table)
    delete = {
        "user": {"id": {"_eq": ME}},
        "organization": role_on("organization", "admin"),
        "team": role_on("team", "admin"),
        "team_member": {"_or": [{"userId": {"_eq": ME}}, {"team": role_on("team", "admin")}]},
        "membership": {"_or": [{"userId": {"_eq": ME}}, {"access": access_rule("admin")}]},
        "dataframe": frame_rule("admin"),
        "chunk": {"dataframe": frame_rule("admin")},
        "dataset": role_on("dataset", "admin"),
        "task": role_on("task", "admin"),
    }.get(table)

    computed = [name for (t, name) in THROUGH_FUNCTIONS if t == table]
    out: dict = {}
    rows = [("user", select[0], select[1])]
    if anonymous:
        rows.append(("anonymous", *anonymous))
    out["select_permissions"] = [
        {"role": role, "permission": {"columns": columns, "filter": rule,
                                      "allow_aggregations": True,
                                      **({"computed_fields": computed} if computed else {})}}
        for role, rule, columns in rows]
    if insert:
        check, columns, preset = insert
        out["insert_permissions"] = [{"role": "user", "permission": {
            "check": check, "columns": columns, **({"set": preset} if preset else {})}}]
    if update:
        rule, columns = update
        # a membership's new role must be one the caller may give (checked after the write)
        check = _invite() if table == "membership" else {}
        out["update_permissions"] = [{"role": "user", "permission": {
            "columns": columns, "filter": rule, "check": check, "set": NOW}}]
    if delete:
        out["delete_permissions"] = [{"role": "user", "permission": {"filter": delete}}]
    return out


def _ref(table: str) -> dict:
    return {"name": table, "schema": "public"}


def table_metadata(table: str, webhook_env: str) -> dict:
    spec = TABLES[table]
    meta: dict = {"table": _ref(table), "configuration": {
        "custom_name": table,
        "custom_root_fields": root_field_names(table),
        "column_config": {}}}
    objects = [{"name": name, "using": {"foreign_key_constraint_on": rel.column}}
               for name, rel in spec.objects.items()]
    arrays = [{"name": name, "using": {"foreign_key_constraint_on": {
        "column": rel.remote, "table": _ref(rel.table)}}}
        for name, rel in spec.arrays.items() if rel.through is None]
    for name, (remote, mapping, is_object) in EXTRA.get(table, {}).items():
        entry = {"name": name, "using": {"manual_configuration": {
            "remote_table": _ref(remote), "column_mapping": mapping}}}
        (objects if is_object else arrays).append(entry)
    if objects:
        meta["object_relationships"] = objects
    if arrays:
        meta["array_relationships"] = arrays
    computed = [{"name": name, "definition": {"function": {"name": fn, "schema": "public"}},
                 "comment": f"{table}.{name} through team_member (many-to-many)"}
                for (t, name), fn in THROUGH_FUNCTIONS.items() if t == table]
    if computed:
        meta["computed_fields"] = computed
    meta.update(permissions(table))
    if table in EVENT_TABLES:
        meta["event_triggers"] = [{
            "name": f"clustore_{table}",
            "definition": {"enable_manual": True, "insert": {"columns": "*"},
                           "update": {"columns": "*"}, "delete": {"columns": "*"}},
            "retry_conf": {"num_retries": 5, "interval_sec": 10, "timeout_sec": 60},
            "webhook_from_env": webhook_env}]
    return meta


def metadata_files(webhook_env: str = "CLUSTORE_WEBHOOK_URL",
                   database_url_env: str = "HASURA_GRAPHQL_DATABASE_URL") -> dict[str, object]:
    """Relative path -> YAML document of a Hasura v3 metadata directory."""
    files: dict[str, object] = {
        "version.yaml": {"version": 3},
        "databases/databases.yaml": [{
            "name": "default", "kind": "postgres",
            "configuration": {"connection_info": {
                "database_url": {"from_env": database_url_env},
                "isolation_level": "read-committed", "use_prepared_statements": True}},
            "tables": "!include default/tables/tables.yaml",
            "functions": "!include default/functions/functions.yaml"}],
        "databases/default/tables/tables.yaml": [f"!include public_{t}.yaml" for t in ORDER],
        "databases/default/functions/functions.yaml": [],
        "actions.yaml": {"actions": [], "custom_types": {
            "enums": [], "input_objects": [], "objects": [], "scalars": []}},
        "allow_list.yaml": [], "cron_triggers.yaml": [], "query_collections.yaml": [],
        "remote_schemas.yaml": [], "rest_endpoints.yaml": [], "inherited_roles.yaml": [],
    }
    for table in ORDER:
        files[f"databases/default/tables/public_{table}.yaml"] = table_metadata(table, webhook_env)
    return files


class _Dumper(yaml.SafeDumper):
    """Repeated rules written out in full: no &anchors, each file reads on its own."""

    def ignore_aliases(self, data) -> bool:
        return True


def write_metadata(out_dir: str, **options) -> list[str]:
    """Write the metadata directory; answer the files written."""
    written = []
    for relative, document in metadata_files(**options).items():
        path = os.path.join(out_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            yaml.dump(document, out, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        written.append(path)
    with open(os.path.join(out_dir, "actions.graphql"), "w") as out:
        out.write("")
    with open(os.path.join(out_dir, "LIMITS.md"), "w") as out:
        out.write("# What this metadata does not encode\n\n" + LIMITS)
    return written
