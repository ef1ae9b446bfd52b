"""The event log (SPEC section 5) as collections: `store.events` and
`store.event_deliveries`, and Hasura's payload for one event.

SQLite triggers write the log (db/event_sql.py) in the transaction of each write;
the worker that POSTs events lives in delivery.py (it needs httpx, which this module
keeps out of every process that only reads or writes the store)."""

from __future__ import annotations

import json
import time

from .. import values as v
from ..db.event_sql import EVENT_COLUMNS, manual_event
from ..errors import EventError, InvalidValue, NotFound, PermissionDenied
from .base import Collection

DEFAULT_MAX_RETRIES = 5
STATUSES = ("logged", "pending", "delivered", "dead")


def payload(event: dict, max_retries: int, current_retry: int, hidden=()) -> dict:
    """Hasura's event trigger payload for one event row (JSON columns as text or
    already decoded); the `hidden` columns (masked for its recipient) left out."""
    decode = lambda value: json.loads(value) if isinstance(value, str) else value  # noqa: E731

    def row(value):
        value = decode(value)
        return {k: v for k, v in value.items() if k not in hidden} if value else value

    return {
        "id": event["id"],
        "created_at": event["createdAt"],
        "trigger": {"name": f"clustore_{event['tableName']}"},
        "table": {"schema": "public", "name": event["tableName"]},
        "event": {
            "op": event["op"],
            "data": {"old": row(event["old"]), "new": row(event["new"])},
            "session_variables": decode(event["sessionVariables"]),
        },
        "delivery_info": {"max_retries": max_retries, "current_retry": current_retry},
    }


class StoreAdminOnly(Collection):
    """The event log shows every change of every row: the store admin's alone."""

    def list(self, *args, **kwargs) -> list[v.Record]:
        if self.store.caller is not None:
            raise PermissionDenied(f"only the store admin may read {self.table.plural}")
        return super().list(*args, **kwargs)

    def count(self, *args, **kwargs) -> int:
        if self.store.caller is not None:
            raise PermissionDenied(f"only the store admin may read {self.table.plural}")
        return super().count(*args, **kwargs)


class Events(StoreAdminOnly):
    """`store.events`: the event log, read with Hasura's where/order_by like any
    collection (`store.events.list(where={"status": {"_eq": "dead"}})`), ordered by
    write order (`seq`) by default. Only the store's triggers write it."""

    table_name = "event"

    def deliveries(self, event_id: str) -> list[v.Record]:
        """The deliveries of one event, one per recipient URL."""
        self.get(event_id)
        return self.store.event_deliveries.list(eventId=v.check_id(event_id),
                                                order_by={"url": "asc"})

    def redeliver(self, event_id: str) -> int:
        """Deliver an event again: its dead, withheld and waiting deliveries become due
        now with a fresh retry count (a withheld one is judged again when sent); if all
        were delivered, every one is sent again. One in flight right now is left to its
        worker. Answers how many were reset."""
        now = time.time()
        with self.store.transaction():
            event = self.get(event_id)
            rows = self.store.event_deliveries.list(eventId=event["id"])
            if not rows:
                raise EventError(f"event {event_id} has no recipient: when it was written, "
                                 "no webhook was set on its access, its organization's "
                                 "access or a following membership")
            idle = [d for d in rows if d["leaseUntil"] is None or d["leaseUntil"] <= now]
            reset = [d for d in idle if d["status"] != "delivered"]
            if not reset and len(idle) == len(rows):
                reset = rows
            for delivery in reset:
                self.db.execute(
                    "UPDATE event_delivery SET status = 'pending', tries = 0, nextTryAt = ?, "
                    "leaseUntil = NULL, leaseOwner = NULL, updatedAt = ? WHERE id = ?",
                    (now, v.now(), delivery["id"]))
            return len(reset)

    def redeliver_dead(self) -> int:
        """Make every dead delivery pending again with a fresh retry count (after a
        long outage, say). Answers how many."""
        self.count()  # refuses anyone but the store admin
        with self.store.transaction():
            self.db.execute(
                "UPDATE event_delivery SET status = 'pending', tries = 0, nextTryAt = ?, "
                "leaseUntil = NULL, leaseOwner = NULL, updatedAt = ? WHERE status = 'dead'",
                (time.time(), v.now()))
            return self.db.conn.changes()

    def trigger(self, table: str, id: str) -> v.Record:
        """Log a MANUAL event carrying the row as it is now (Hasura's manual trigger),
        for the row's current recipients."""
        if table not in EVENT_COLUMNS:
            raise InvalidValue(f"events are kept for {', '.join(EVENT_COLUMNS)}, not {table!r}")
        with self.store.transaction():
            self.store.collection(table).require(id)
            self.db.execute(manual_event(table), (v.check_id(id),))
            seq = self.db.conn.last_insert_rowid()
            return self.list(where={"seq": {"_eq": seq}})[0]

    def insert(self, values: dict):
        raise InvalidValue("the event log is written by the store itself")

    def update(self, *args, **kwargs):
        raise InvalidValue("events cannot be changed; use redeliver to send one again")

    def delete(self, *args, **kwargs):
        raise InvalidValue("events cannot be deleted one by one")


class EventDeliveries(StoreAdminOnly):
    """`store.event_deliveries`: one row per (event, recipient URL), with its status,
    retry count, next attempt time and last error."""

    table_name = "event_delivery"

    def get(self, id: int) -> v.Record:
        rows = self.list(where={"id": {"_eq": id}})
        if not rows:
            raise NotFound(f"no event delivery with id {id}")
        return rows[0]

    def insert(self, values: dict):
        raise InvalidValue("deliveries are written by the store itself")

    def update(self, *args, **kwargs):
        raise InvalidValue("deliveries change only by delivery; use store.events.redeliver")

    delete = update
