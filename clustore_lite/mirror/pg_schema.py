"""The PostgreSQL mirror of a store: the same tables, camelCase columns, keys and
constraints as migration 1, in Hasura-friendly types (uuid, timestamptz, jsonb, boolean,
bytea), plus the bookkeeping schema `clustore_lite` that `push` uses.

Written out by hand (not generated) so the DDL reads like the SQLite schema it mirrors;
tests/test_postgres.py checks both stay column for column and key for key alike."""

from __future__ import annotations

from ..db.migrations import ROLES_CHECK

MIRROR_VERSION = 2  # bump with a new step in MIRROR_UPGRADES when the DDL changes
BOOKKEEPING = "clustore_lite"

# Parents before children: upserts go in this order, deletes in the reverse one.
ORDER = ["user", "access", "dataframe", "chunk", "organization", "team", "team_member",
         "membership", "dataset", "task", "tracking"]

# Columns whose values must be unique besides the key, checked before a push so that
# a collision between two stores is reported instead of failing half-way.
NATURAL_KEYS = {
    "user": [("email",)],
    "organization": [("name",)],
    "team": [("organizationId", "name")],
    "dataset": [("organizationId", "name")],
}


_DEFAULTS = "\n".join(
    f'ALTER TABLE public."{t}" '
    + ("" if t == "team_member" else 'ALTER "id" SET DEFAULT gen_random_uuid(), ')
    + 'ALTER "createdAt" SET DEFAULT now(), ALTER "updatedAt" SET DEFAULT now();'
    for t in ORDER)

MIRROR_DDL = f"""
CREATE TABLE public."user" (
    "id" uuid PRIMARY KEY,
    "name" text NOT NULL CHECK (length(trim("name")) > 0),
    "email" text UNIQUE,
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL
);
CREATE TABLE public.access (
    "id" uuid PRIMARY KEY,
    "public" text CHECK ("public" IS NULL OR "public" {ROLES_CHECK}),
    "webhook" text,
    "adminToken" text NOT NULL UNIQUE,
    "contributorToken" text NOT NULL UNIQUE,
    "guestToken" text NOT NULL UNIQUE,
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL
);
CREATE TABLE public.organization (
    "id" uuid PRIMARY KEY,
    "name" text NOT NULL UNIQUE CHECK (length(trim("name")) > 0),
    "ownerId" uuid REFERENCES public."user"("id") ON DELETE SET NULL,
    "accessId" uuid NOT NULL UNIQUE REFERENCES public.access("id"),
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL
);
CREATE INDEX organization_owner ON public.organization("ownerId");
CREATE TABLE public.team (
    "id" uuid PRIMARY KEY,
    "name" text NOT NULL CHECK (length(trim("name")) > 0),
    "organizationId" uuid NOT NULL REFERENCES public.organization("id") ON DELETE CASCADE,
    "accessId" uuid NOT NULL UNIQUE REFERENCES public.access("id"),
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL,
    UNIQUE ("organizationId", "name")
);
CREATE TABLE public.team_member (
    "teamId" uuid NOT NULL REFERENCES public.team("id") ON DELETE CASCADE,
    "userId" uuid NOT NULL REFERENCES public."user"("id") ON DELETE CASCADE,
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL,
    PRIMARY KEY ("teamId", "userId")
);
CREATE INDEX team_member_user ON public.team_member("userId");
CREATE TABLE public.membership (
    "id" uuid PRIMARY KEY,
    "accessId" uuid NOT NULL REFERENCES public.access("id") ON DELETE CASCADE,
    "userId" uuid REFERENCES public."user"("id") ON DELETE CASCADE,
    "teamId" uuid REFERENCES public.team("id") ON DELETE CASCADE,
    "role" text NOT NULL CHECK ("role" {ROLES_CHECK}),
    "webhook" text,
    "follow" boolean NOT NULL DEFAULT false,
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL,
    CHECK (("userId" IS NULL) <> ("teamId" IS NULL))
);
CREATE UNIQUE INDEX membership_user ON public.membership("accessId", "userId")
    WHERE "userId" IS NOT NULL;
CREATE UNIQUE INDEX membership_team ON public.membership("accessId", "teamId")
    WHERE "teamId" IS NOT NULL;
CREATE INDEX membership_by_user ON public.membership("userId");
CREATE INDEX membership_by_team ON public.membership("teamId");
CREATE TABLE public.dataframe (
    "id" uuid PRIMARY KEY,
    "size" bigint NOT NULL DEFAULT 0,
    "dim" bigint NOT NULL DEFAULT 0,
    "rows" bigint NOT NULL DEFAULT 0,
    "columns" jsonb NOT NULL DEFAULT '[]',
    "metadata" jsonb NOT NULL DEFAULT '{{}}',
    "compression" text CHECK ("compression" IS NULL OR "compression" IN ('lz4', 'zstd')),
    "arrowSchema" bytea,
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL
);
CREATE TABLE public.chunk (
    "id" uuid PRIMARY KEY,
    "dataframeId" uuid NOT NULL REFERENCES public.dataframe("id") ON DELETE CASCADE,
    "position" bigint NOT NULL,
    "rows" bigint NOT NULL,
    "size" bigint NOT NULL,
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL,
    "data" bytea NOT NULL,
    UNIQUE ("dataframeId", "position")
);
ALTER TABLE public.chunk ALTER COLUMN "data" SET STORAGE EXTERNAL;  -- Arrow IPC: no recompression
CREATE TABLE public.dataset (
    "id" uuid PRIMARY KEY,
    "name" text NOT NULL CHECK (length(trim("name")) > 0),
    "organizationId" uuid NOT NULL REFERENCES public.organization("id") ON DELETE CASCADE,
    "ownerId" uuid REFERENCES public."user"("id") ON DELETE SET NULL,
    "dataframeId" uuid UNIQUE REFERENCES public.dataframe("id") ON DELETE SET NULL,
    "accessId" uuid NOT NULL UNIQUE REFERENCES public.access("id"),
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL,
    UNIQUE ("organizationId", "name")
);
CREATE INDEX dataset_owner ON public.dataset("ownerId");
CREATE TABLE public.task (
    "id" uuid PRIMARY KEY,
    "name" text NOT NULL CHECK (length(trim("name")) > 0),
    "organizationId" uuid NOT NULL REFERENCES public.organization("id") ON DELETE CASCADE,
    "ownerId" uuid REFERENCES public."user"("id") ON DELETE SET NULL,
    "datasetId" uuid REFERENCES public.dataset("id") ON DELETE SET NULL,
    "algorithm" jsonb NOT NULL DEFAULT '{{}}',
    "identifier" text,
    "variables" jsonb,
    "predictions" jsonb,
    "centroidsId" uuid UNIQUE REFERENCES public.dataframe("id") ON DELETE SET NULL,
    "labelsId" uuid UNIQUE REFERENCES public.dataframe("id") ON DELETE SET NULL,
    "accessId" uuid NOT NULL UNIQUE REFERENCES public.access("id"),
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL
);
CREATE INDEX task_organization ON public.task("organizationId");
CREATE INDEX task_owner ON public.task("ownerId");
CREATE INDEX task_dataset ON public.task("datasetId");
CREATE TABLE public.tracking (
    "id" uuid PRIMARY KEY,
    "userId" uuid REFERENCES public."user"("id") ON DELETE SET NULL,
    "organizationId" uuid REFERENCES public.organization("id") ON DELETE CASCADE,
    "resource" text,
    "resourceId" uuid,
    "kind" text NOT NULL CHECK (length(trim("kind")) > 0),
    "payload" jsonb,
    "createdAt" timestamptz NOT NULL,
    "updatedAt" timestamptz NOT NULL
);
CREATE INDEX tracking_user ON public.tracking("userId");
CREATE INDEX tracking_organization ON public.tracking("organizationId");

-- Defaults for rows written through Hasura (push always sends every column).
ALTER TABLE public.access
    ALTER "adminToken" SET DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
    ALTER "contributorToken" SET DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
    ALTER "guestToken" SET DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
{_DEFAULTS}

-- An entity owns its access and its dataframes: they go when it goes (as in SQLite).
CREATE FUNCTION {BOOKKEEPING}.delete_owned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM public.access WHERE "id" = OLD."accessId";
    IF TG_TABLE_NAME = 'dataset' THEN
        DELETE FROM public.dataframe WHERE "id" = OLD."dataframeId";
    ELSIF TG_TABLE_NAME = 'task' THEN
        DELETE FROM public.dataframe WHERE "id" IN (OLD."centroidsId", OLD."labelsId");
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER organization_owns AFTER DELETE ON public.organization
    FOR EACH ROW EXECUTE FUNCTION {BOOKKEEPING}.delete_owned();
CREATE TRIGGER team_owns AFTER DELETE ON public.team
    FOR EACH ROW EXECUTE FUNCTION {BOOKKEEPING}.delete_owned();
CREATE TRIGGER dataset_owns AFTER DELETE ON public.dataset
    FOR EACH ROW EXECUTE FUNCTION {BOOKKEEPING}.delete_owned();
CREATE TRIGGER task_owns AFTER DELETE ON public.task
    FOR EACH ROW EXECUTE FUNCTION {BOOKKEEPING}.delete_owned();

-- Hasura has no many-to-many relationship: user.teams and team.members are computed
-- fields backed by these functions (see hasura.py).
CREATE FUNCTION public.clustore_user_teams(u public."user") RETURNS SETOF public.team
    LANGUAGE sql STABLE AS $$
    SELECT t.* FROM public.team t JOIN public.team_member m ON m."teamId" = t."id"
    WHERE m."userId" = u."id" $$;
CREATE FUNCTION public.clustore_team_members(t public.team) RETURNS SETOF public."user"
    LANGUAGE sql STABLE AS $$
    SELECT u.* FROM public."user" u JOIN public.team_member m ON m."userId" = u."id"
    WHERE m."teamId" = t."id" $$;
"""

# Which rows each store pushed, and a digest of each row as last pushed: a row of
# `pushed` is one store's claim on one mirrored row (a row claimed by no store any
# more is deleted). `store` says who pushed what, from where, and when.
BOOKKEEPING_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {BOOKKEEPING};
CREATE TABLE IF NOT EXISTS {BOOKKEEPING}.mirror (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS {BOOKKEEPING}.store (
    "id" uuid PRIMARY KEY,
    "host" text,
    "path" text,
    "firstPushAt" timestamptz NOT NULL DEFAULT now(),
    "lastPushStartedAt" timestamptz,
    "lastPushEndedAt" timestamptz
);
CREATE TABLE IF NOT EXISTS {BOOKKEEPING}.pushed (
    "origin" uuid NOT NULL REFERENCES {BOOKKEEPING}.store("id") ON DELETE CASCADE,
    "table" text NOT NULL,
    "key" text NOT NULL,
    "digest" bytea NOT NULL,
    PRIMARY KEY ("origin", "table", "key")
);
CREATE INDEX IF NOT EXISTS pushed_by_row ON {BOOKKEEPING}.pushed("table", "key");
"""

# 2: whether a user's email was proved (the store's migration 4), appended as SQLite does
EMAIL_VERIFIED = 'ALTER TABLE public."user" ADD COLUMN "emailVerified" boolean NOT NULL DEFAULT false;'

MIRROR_UPGRADES: list[str] = [MIRROR_DDL, EMAIL_VERIFIED]  # step n: version n to n+1
