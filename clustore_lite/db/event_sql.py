"""The SQL of the event log (migration 2): the `event` and `event_delivery` tables and
one trigger per watched table and operation, so that every write, whatever API made
it, logs its event and picks its recipients in the same transaction.

The text below is part of a released migration: never change what it generates.
A later schema change (a new column to show in events, ...) drops and recreates the
triggers in a new migration.

Why the triggers look the way they do:
- DELETE events are written BEFORE DELETE, while the row, its access and its
  organization still exist, so recipients are known. SQLite runs foreign-key cascades
  after the parent row is gone, so an organization deletes its teams, datasets, tasks
  and trackings itself, top-down, in that trigger; an access deletes its memberships
  the same way. The cascades of migration 1 then find nothing left to do.
- An access that goes with its resource (migration 1 deletes it after the resource
  row) finds its organization through the resource's DELETE event, just logged.
- Rows are rendered with json_object: booleans as true/false, JSON columns as JSON
  values, tokens and chunk bytes never.
"""

from __future__ import annotations

T, B, J = "text", "bool", "json"
STAMP = {"createdAt": T, "updatedAt": T}

# The columns an event shows, per watched table (frozen for migration 2).
EVENT_COLUMNS: dict[str, dict[str, str]] = {
    "organization": {"id": T, "name": T, "ownerId": T, "accessId": T, **STAMP},
    "team": {"id": T, "name": T, "organizationId": T, "accessId": T, **STAMP},
    "access": {"id": T, "public": T, "webhook": T, **STAMP},  # never the tokens
    "membership": {"id": T, "accessId": T, "userId": T, "teamId": T, "role": T,
                   "webhook": T, "follow": B, **STAMP},
    "dataset": {"id": T, "name": T, "organizationId": T, "ownerId": T, "dataframeId": T,
                "accessId": T, **STAMP},
    "task": {"id": T, "name": T, "organizationId": T, "ownerId": T, "datasetId": T,
             "algorithm": J, "identifier": T, "variables": J, "predictions": J,
             "centroidsId": T, "labelsId": T, "accessId": T, **STAMP},
    "tracking": {"id": T, "userId": T, "organizationId": T, "resource": T,
                 "resourceId": T, "kind": T, "payload": J, **STAMP},
}
OWNERS = ("organization", "team", "dataset", "task")  # the tables that own an access

UUID_SQL = ("lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || "
            "substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)"
            " || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))")
NOW_SQL = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"


def row_json(table: str, row: str) -> str:
    """json_object(...) of the watched columns of `row` (NEW, OLD or an alias)."""
    parts = []
    for column, kind in EVENT_COLUMNS[table].items():
        ref = f'{row}."{column}"'
        if kind == B:
            ref = f"json(CASE WHEN {ref} IS NULL THEN NULL WHEN {ref} THEN 'true' ELSE 'false' END)"
        elif kind == J:
            ref = f"json({ref})"
        parts.append(f"'{column}', {ref}")
    return f"json_object({', '.join(parts)})"


def org_access_of_org(org_id: str) -> str:
    return f"(SELECT accessId FROM organization WHERE id = {org_id})"


def org_access_of_access(access_id: str) -> str:
    """The access of the organization that the resource owning `access_id` is in."""
    live = [f"(SELECT accessId FROM organization WHERE accessId = {access_id})"]
    live += [f"(SELECT o.accessId FROM {t} x JOIN organization o ON o.id = x.organizationId "
             f"WHERE x.accessId = {access_id})" for t in OWNERS[1:]]
    owners = ", ".join(f"'{t}'" for t in OWNERS)
    logged = (f"(SELECT orgAccessId FROM event WHERE accessId = {access_id} "
              f"AND tableName IN ({owners}) AND op = 'DELETE' ORDER BY seq DESC LIMIT 1)")
    return f"COALESCE({', '.join(live)}, {logged})"


def tracked_access(row: str) -> str:
    """The access of the resource a tracking is about, when it is an owner type."""
    cases = " ".join(f"WHEN '{t}' THEN (SELECT accessId FROM \"{t}\" WHERE id = {row}.resourceId)"
                     for t in OWNERS)
    return f"(CASE {row}.resource {cases} END)"


def recipients(table: str, row: str) -> tuple[str, str]:
    """SQL for (the row's access id, its organization's access id)."""
    if table == "organization":
        return f"{row}.accessId", f"{row}.accessId"
    if table == "access":
        return f"{row}.id", org_access_of_access(f"{row}.id")
    if table == "membership":
        return f"{row}.accessId", org_access_of_access(f"{row}.accessId")
    if table == "tracking":
        access = tracked_access(row)
        return access, f"COALESCE({org_access_of_org(f'{row}.organizationId')}, " \
                       f"{org_access_of_access(access)})"
    return f"{row}.accessId", org_access_of_org(f"{row}.organizationId")


EVENT_INSERT = ("INSERT INTO event (id, tableName, op, resourceId, accessId, orgAccessId, old, "
                "new, sessionVariables, createdAt) ")


def event_values(table: str, op: str, old: str | None, new: str | None) -> str:
    """The values of one event row, from the trigger rows `old` and `new` (NEW, OLD,
    a table alias, or None)."""
    row = new or old
    access, org_access = recipients(table, row)
    return (f"{UUID_SQL}, '{table}', '{op}', {row}.id, {access}, {org_access}, "
            f"{row_json(table, old) if old else 'NULL'}, {row_json(table, new) if new else 'NULL'}, "
            f"clustore_session(), {NOW_SQL}")


def insert_event(table: str, op: str, old: str | None, new: str | None) -> str:
    """The INSERT INTO event statement of a trigger."""
    return f"{EVENT_INSERT}VALUES ({event_values(table, op, old, new)})"


def manual_event(table: str) -> str:
    """An INSERT of a MANUAL event carrying the row `?` of `table` as it is now."""
    return (f"{EVENT_INSERT}SELECT {event_values(table, 'MANUAL', None, 'r')} "
            f'FROM "{table}" r WHERE r.id = ?')


# Deletes done top-down, before the row goes (see the module docstring).
DELETE_FIRST = {
    "organization": ["DELETE FROM tracking WHERE organizationId = OLD.id",
                     "DELETE FROM task WHERE organizationId = OLD.id",
                     "DELETE FROM dataset WHERE organizationId = OLD.id",
                     "DELETE FROM team WHERE organizationId = OLD.id"],
    "access": ["DELETE FROM membership WHERE accessId = OLD.id"],
}


def _triggers() -> str:
    out = []
    for table in EVENT_COLUMNS:
        name = f'"{table}"'
        out.append(f"CREATE TRIGGER event_{table}_insert AFTER INSERT ON {name} BEGIN\n"
                   f"    {insert_event(table, 'INSERT', None, 'NEW')};\nEND;")
        out.append(f"CREATE TRIGGER event_{table}_update AFTER UPDATE ON {name} BEGIN\n"
                   f"    {insert_event(table, 'UPDATE', 'OLD', 'NEW')};\nEND;")
        body = [insert_event(table, "DELETE", "OLD", None), *DELETE_FIRST.get(table, [])]
        out.append(f"CREATE TRIGGER event_{table}_delete BEFORE DELETE ON {name} BEGIN\n"
                   + "".join(f"    {s};\n" for s in body) + "END;")
    return "\n".join(out)


TABLES_SQL = """
CREATE TABLE event (
    seq INTEGER PRIMARY KEY,  -- write order
    id TEXT NOT NULL UNIQUE,
    tableName TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE', 'MANUAL')),
    resourceId TEXT NOT NULL,
    accessId TEXT,      -- recipients, resolved at write time
    orgAccessId TEXT,
    old TEXT,           -- JSON object or NULL
    new TEXT,
    sessionVariables TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'logged'
        CHECK (status IN ('logged', 'pending', 'delivered', 'dead')),
    createdAt TEXT NOT NULL
);
CREATE INDEX event_status ON event(status, seq);
-- finds the organization of an access whose resource was just deleted (see above)
CREATE INDEX event_deleted_owner ON event(accessId, seq)
    WHERE tableName IN ('organization', 'team', 'dataset', 'task') AND op = 'DELETE';

CREATE TABLE event_delivery (
    id INTEGER PRIMARY KEY,
    eventId TEXT NOT NULL REFERENCES event(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,           -- the event's, for ordering
    tableName TEXT NOT NULL,
    resourceId TEXT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    tries INTEGER NOT NULL DEFAULT 0,   -- attempts started
    nextTryAt REAL NOT NULL,            -- unix seconds
    leaseUntil REAL,                    -- unix seconds; a worker holds the attempt until then
    leaseOwner TEXT,
    lastStatus INTEGER,                 -- HTTP status of the last answer
    lastError TEXT,
    deliveredAt TEXT,
    createdAt TEXT NOT NULL,
    updatedAt TEXT NOT NULL,
    UNIQUE (eventId, url)
);
CREATE INDEX event_delivery_due ON event_delivery(nextTryAt, seq) WHERE status = 'pending';
CREATE INDEX event_delivery_queue ON event_delivery(url, tableName, resourceId, seq)
    WHERE status = 'pending';
CREATE INDEX membership_follow ON membership(accessId) WHERE follow = 1;

-- One delivery per distinct webhook: the resource's access and its organization's
-- access, and every membership with follow on either.
CREATE TRIGGER event_recipients AFTER INSERT ON event BEGIN
    INSERT OR IGNORE INTO event_delivery
        (eventId, seq, tableName, resourceId, url, nextTryAt, createdAt, updatedAt)
    SELECT NEW.id, NEW.seq, NEW.tableName, NEW.resourceId, url, unixepoch('subsec'),
           NEW.createdAt, NEW.createdAt
    FROM (SELECT webhook AS url FROM access WHERE id IN (NEW.accessId, NEW.orgAccessId)
          UNION SELECT webhook FROM membership
                WHERE follow = 1 AND accessId IN (NEW.accessId, NEW.orgAccessId))
    WHERE url IS NOT NULL ORDER BY url;
    UPDATE event SET status = 'pending'
    WHERE seq = NEW.seq AND EXISTS (SELECT 1 FROM event_delivery WHERE eventId = NEW.id);
END;

-- An event is pending while a delivery is, dead when one died, else delivered.
CREATE TRIGGER event_delivery_status AFTER UPDATE OF status ON event_delivery BEGIN
    UPDATE event SET status = CASE
        WHEN EXISTS (SELECT 1 FROM event_delivery
                     WHERE eventId = NEW.eventId AND status = 'pending') THEN 'pending'
        WHEN EXISTS (SELECT 1 FROM event_delivery
                     WHERE eventId = NEW.eventId AND status = 'dead') THEN 'dead'
        ELSE 'delivered' END
    WHERE id = NEW.eventId;
END;
"""

MIGRATION_2 = TABLES_SQL + _triggers()
