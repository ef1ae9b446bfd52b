"""Numbered schema migrations. `PRAGMA user_version` records the last one applied;
append new steps at the end, never edit a released one."""

from .event_sql import MIGRATION_2
from .recipients_sql import MIGRATION_3

ROLES_CHECK = "IN ('admin', 'contributor', 'guest')"

MIGRATIONS = [
    # 1: the data model of SPEC section 1.
    f"""
    CREATE TABLE "user" (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL CHECK (length(trim(name)) > 0),
        email TEXT UNIQUE,
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL
    );
    CREATE TABLE access (
        id TEXT PRIMARY KEY,
        public TEXT CHECK (public IS NULL OR public {ROLES_CHECK}),
        webhook TEXT,
        adminToken TEXT NOT NULL UNIQUE,
        contributorToken TEXT NOT NULL UNIQUE,
        guestToken TEXT NOT NULL UNIQUE,
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL
    );
    CREATE TABLE organization (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE CHECK (length(trim(name)) > 0),
        ownerId TEXT REFERENCES "user"(id) ON DELETE SET NULL,
        accessId TEXT NOT NULL UNIQUE REFERENCES access(id),
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL
    );
    CREATE INDEX organization_owner ON organization(ownerId);
    CREATE TABLE team (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL CHECK (length(trim(name)) > 0),
        organizationId TEXT NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
        accessId TEXT NOT NULL UNIQUE REFERENCES access(id),
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL,
        UNIQUE (organizationId, name)
    );
    CREATE TABLE team_member (
        teamId TEXT NOT NULL REFERENCES team(id) ON DELETE CASCADE,
        userId TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL,
        PRIMARY KEY (teamId, userId)
    ) WITHOUT ROWID;
    CREATE INDEX team_member_user ON team_member(userId);
    CREATE TABLE membership (
        id TEXT PRIMARY KEY,
        accessId TEXT NOT NULL REFERENCES access(id) ON DELETE CASCADE,
        userId TEXT REFERENCES "user"(id) ON DELETE CASCADE,
        teamId TEXT REFERENCES team(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role {ROLES_CHECK}),
        webhook TEXT,
        follow INTEGER NOT NULL DEFAULT 0 CHECK (follow IN (0, 1)),
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL,
        CHECK ((userId IS NULL) <> (teamId IS NULL))
    );
    CREATE UNIQUE INDEX membership_user ON membership(accessId, userId) WHERE userId IS NOT NULL;
    CREATE UNIQUE INDEX membership_team ON membership(accessId, teamId) WHERE teamId IS NOT NULL;
    CREATE INDEX membership_by_user ON membership(userId);
    CREATE INDEX membership_by_team ON membership(teamId);
    CREATE TABLE dataframe (
        id TEXT PRIMARY KEY,
        size INTEGER NOT NULL DEFAULT 0,
        dim INTEGER NOT NULL DEFAULT 0,
        rows INTEGER NOT NULL DEFAULT 0,
        columns TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{{}}',
        compression TEXT CHECK (compression IS NULL OR compression IN ('lz4', 'zstd')),
        arrowSchema BLOB,
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL
    );
    CREATE TABLE chunk (
        id TEXT PRIMARY KEY,
        dataframeId TEXT NOT NULL REFERENCES dataframe(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        size INTEGER NOT NULL,
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL,
        data BLOB NOT NULL,
        UNIQUE (dataframeId, position)
    );
    CREATE TABLE dataset (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL CHECK (length(trim(name)) > 0),
        organizationId TEXT NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
        ownerId TEXT REFERENCES "user"(id) ON DELETE SET NULL,
        dataframeId TEXT UNIQUE REFERENCES dataframe(id) ON DELETE SET NULL,
        accessId TEXT NOT NULL UNIQUE REFERENCES access(id),
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL,
        UNIQUE (organizationId, name)
    );
    CREATE INDEX dataset_owner ON dataset(ownerId);
    CREATE TABLE task (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL CHECK (length(trim(name)) > 0),
        organizationId TEXT NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
        ownerId TEXT REFERENCES "user"(id) ON DELETE SET NULL,
        datasetId TEXT REFERENCES dataset(id) ON DELETE SET NULL,
        algorithm TEXT NOT NULL DEFAULT '{{}}',
        identifier TEXT,
        variables TEXT,
        predictions TEXT,
        centroidsId TEXT UNIQUE REFERENCES dataframe(id) ON DELETE SET NULL,
        labelsId TEXT UNIQUE REFERENCES dataframe(id) ON DELETE SET NULL,
        accessId TEXT NOT NULL UNIQUE REFERENCES access(id),
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL
    );
    CREATE INDEX task_organization ON task(organizationId);
    CREATE INDEX task_owner ON task(ownerId);
    CREATE INDEX task_dataset ON task(datasetId);
    CREATE TABLE tracking (
        id TEXT PRIMARY KEY,
        userId TEXT REFERENCES "user"(id) ON DELETE SET NULL,
        organizationId TEXT REFERENCES organization(id) ON DELETE CASCADE,
        resource TEXT,
        resourceId TEXT,
        kind TEXT NOT NULL CHECK (length(trim(kind)) > 0),
        payload TEXT,
        createdAt TEXT NOT NULL,
        updatedAt TEXT NOT NULL
    );
    CREATE INDEX tracking_user ON tracking(userId);
    CREATE INDEX tracking_organization ON tracking(organizationId);

    -- An entity owns its access and its dataframes: they go when it goes.
    CREATE TRIGGER organization_owns AFTER DELETE ON organization BEGIN
        DELETE FROM access WHERE id = OLD.accessId;
    END;
    CREATE TRIGGER team_owns AFTER DELETE ON team BEGIN
        DELETE FROM access WHERE id = OLD.accessId;
    END;
    CREATE TRIGGER dataset_owns AFTER DELETE ON dataset BEGIN
        DELETE FROM access WHERE id = OLD.accessId;
        DELETE FROM dataframe WHERE id = OLD.dataframeId;
    END;
    CREATE TRIGGER task_owns AFTER DELETE ON task BEGIN
        DELETE FROM access WHERE id = OLD.accessId;
        DELETE FROM dataframe WHERE id IN (OLD.centroidsId, OLD.labelsId);
    END;
    """,
    # 2: the event log and its deliveries (SPEC section 5), written by triggers.
    MIGRATION_2,
    # 3: deliveries remember which following memberships asked for them (issue 12).
    MIGRATION_3,
    # 4: whether a user's email was proved (set by the store admin, or carried by a JWT's
    # email claim). Emails of older files were accepted unchecked: trust only those that
    # nobody changed since the user was created (by the store admin or a JWT's first
    # sight); a self-set one may be squatted and must be proved again.
    """
    ALTER TABLE "user" ADD COLUMN emailVerified INTEGER NOT NULL DEFAULT 0
        CHECK (emailVerified IN (0, 1));
    UPDATE "user" SET emailVerified = 1 WHERE email IS NOT NULL AND updatedAt = createdAt;
    """,
    # 5: a checksum of each chunk's bytes (arrow/checksum.py), taken as they are
    # written. In a table beside chunk, not a column of it: a column added to chunk
    # comes after `data`, and a zeroblob that is not the last value of its row is
    # written out as zeros before the IPC bytes overwrite them (measured: ingest 1.8x
    # slower); a row inserted after the BLOB costs next to nothing. Not in the catalog:
    # a storage detail, neither served nor mirrored. Chunks of older files have none:
    # they are validated in full when read, as before, until `clustore-lite check
    # --repair-checksums` sums them; summing here would read every chunk under the
    # write lock on open, and bless bytes that may already have rotted.
    """
    CREATE TABLE chunk_checksum (
        chunkId TEXT PRIMARY KEY REFERENCES chunk(id) ON DELETE CASCADE,
        checksum INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 6: imports in flight into a served store (db/staging.py): their chunks are
    # written in short transactions before their dataframe exists, and listed here
    # until the final commit adopts them, so that a killed import's can be swept.
    """
    CREATE TABLE chunk_import (
        dataframeId TEXT PRIMARY KEY,
        startedAt TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
]

LATEST = len(MIGRATIONS)
