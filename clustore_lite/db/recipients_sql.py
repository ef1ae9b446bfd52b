"""Migration 3: a delivery remembers who asked for it, so that an event reaches a
following member only if that member may read the row (issue 12).

Migration 2 picked a delivery's URL from the webhooks of the row's access and of its
organization's access (set by an admin of the resource) and from every following
membership, and sent the event to all of them. Whether a member may read a row is
the visibility of access/roles.py, which lives in code and changes with it; copying it
into a trigger would freeze a second definition into every file. So the trigger only
records, per delivery, the following memberships (user or team) that set its URL
(`followers`, NULL for an access's own webhook), and the delivery worker asks the one
visibility, when it claims the delivery, whether one of them may read the row.

`event_delivery` is rebuilt (SQLite cannot change a CHECK) to accept the status
`withheld`: a delivery no follower may read, kept with the reason in `lastError`.
Deliveries written before this migration get their followers from the accesses and
memberships as they are now (a dead one may be redelivered); one whose URL neither an
access nor a following membership sets any more is judged to have no follower who may
read, and is withheld when sent.

Released with schema version 3: never change what this module generates."""

from __future__ import annotations

COLUMNS = ("id, eventId, seq, tableName, resourceId, url, status, tries, nextTryAt, leaseUntil, "
           "leaseOwner, lastStatus, lastError, deliveredAt, createdAt, updatedAt")

MIGRATION_3 = f"""
DROP TRIGGER event_recipients;
DROP TRIGGER event_delivery_status;

CREATE TABLE event_delivery_new (
    id INTEGER PRIMARY KEY,
    eventId TEXT NOT NULL REFERENCES event(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    tableName TEXT NOT NULL,
    resourceId TEXT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead', 'withheld')),
    tries INTEGER NOT NULL DEFAULT 0,
    nextTryAt REAL NOT NULL,
    leaseUntil REAL,
    leaseOwner TEXT,
    lastStatus INTEGER,
    lastError TEXT,
    deliveredAt TEXT,
    createdAt TEXT NOT NULL,
    updatedAt TEXT NOT NULL,
    -- NULL: the URL is the webhook of the row's access or of its organization's access;
    -- else a JSON array of [userId, teamId] of the following memberships that set it
    followers TEXT,
    UNIQUE (eventId, url)
);
INSERT INTO event_delivery_new ({COLUMNS}, followers)
SELECT {", ".join(f"d.{c.strip()}" for c in COLUMNS.split(","))},
       CASE WHEN EXISTS (
                SELECT 1 FROM event e JOIN access a ON a.id IN (e.accessId, e.orgAccessId)
                WHERE e.id = d.eventId AND a.webhook = d.url)
            THEN NULL
            ELSE (SELECT json_group_array(json_array(m.userId, m.teamId))
                  FROM event e JOIN membership m ON m.accessId IN (e.accessId, e.orgAccessId)
                  WHERE e.id = d.eventId AND m.follow = 1 AND m.webhook = d.url) END
FROM event_delivery d;
DROP TABLE event_delivery;
ALTER TABLE event_delivery_new RENAME TO event_delivery;
CREATE INDEX event_delivery_due ON event_delivery(nextTryAt, seq) WHERE status = 'pending';
CREATE INDEX event_delivery_queue ON event_delivery(url, tableName, resourceId, seq)
    WHERE status = 'pending';

-- One delivery per distinct webhook: the resource's access and its organization's
-- access (followers NULL), and every membership with follow on either (followers: who).
CREATE TRIGGER event_recipients AFTER INSERT ON event BEGIN
    INSERT OR IGNORE INTO event_delivery
        (eventId, seq, tableName, resourceId, url, nextTryAt, createdAt, updatedAt, followers)
    SELECT NEW.id, NEW.seq, NEW.tableName, NEW.resourceId, url, unixepoch('subsec'),
           NEW.createdAt, NEW.createdAt,
           CASE WHEN max(own) = 1 THEN NULL
                ELSE json_group_array(json_array(userId, teamId)) END
    FROM (SELECT webhook AS url, 1 AS own, NULL AS userId, NULL AS teamId FROM access
          WHERE id IN (NEW.accessId, NEW.orgAccessId)
          UNION ALL SELECT webhook, 0, userId, teamId FROM membership
                WHERE follow = 1 AND accessId IN (NEW.accessId, NEW.orgAccessId))
    WHERE url IS NOT NULL GROUP BY url ORDER BY url;
    UPDATE event SET status = 'pending'
    WHERE seq = NEW.seq AND EXISTS (SELECT 1 FROM event_delivery WHERE eventId = NEW.id);
END;

-- An event is pending while a delivery is, dead when one died, delivered when one
-- was, else (every delivery withheld) logged, as an event with no recipient.
CREATE TRIGGER event_delivery_status AFTER UPDATE OF status ON event_delivery BEGIN
    UPDATE event SET status = CASE
        WHEN EXISTS (SELECT 1 FROM event_delivery
                     WHERE eventId = NEW.eventId AND status = 'pending') THEN 'pending'
        WHEN EXISTS (SELECT 1 FROM event_delivery
                     WHERE eventId = NEW.eventId AND status = 'dead') THEN 'dead'
        WHEN EXISTS (SELECT 1 FROM event_delivery
                     WHERE eventId = NEW.eventId AND status = 'delivered') THEN 'delivered'
        ELSE 'logged' END
    WHERE id = NEW.eventId;
END;
"""
