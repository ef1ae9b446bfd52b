"""The store: one file, every collection of the data model, and transactions."""

from __future__ import annotations

import contextlib
import os

from .access.destinations import WebhookPolicy
from .access.roles import Caller
from .access.rules import Rules
from .catalog import TABLES, TOKEN_COLUMNS
from .db import chunk_sums, maintenance
from .db import vacuum as vacuuming
from .db import staging
from .db.connection import Database
from .errors import PermissionDenied
from .model.dataframes import Chunks, Dataframes
from .model.entities import Accesses, Memberships, Organizations, TeamMembers, Teams, Users
from .model.eventlog import EventDeliveries, Events
from .model.work import Datasets, Tasks, Trackings
from .values import check_email, check_id

# The Python collection of each table of the catalog: `store.<plural>`.
COLLECTIONS = {cls.table_name: cls for cls in (
    Users, Accesses, Organizations, Teams, TeamMembers, Memberships, Dataframes, Chunks,
    Datasets, Tasks, Trackings, Events, EventDeliveries)}


class Store:
    """A clustore-lite store file. The plain store acts as the store admin.

    >>> store = clustore_lite.open("team.sqlite")
    >>> org = store.organizations.create("lumen")
    """

    visibility = None  # the store admin sees every row ...
    column_sql = None  # ... and every column
    caller = None

    users: Users
    organizations: Organizations
    teams: Teams
    team_members: TeamMembers
    accesses: Accesses
    memberships: Memberships
    dataframes: Dataframes
    chunks: Chunks
    datasets: Datasets
    tasks: Tasks
    trackings: Trackings
    events: Events  # the event log, written by the store itself
    event_deliveries: EventDeliveries

    def __init__(self, path: str | os.PathLike,
                 webhook_allow: str | list[str] | WebhookPolicy | None = None,
                 readonly: bool = False, initialise: bool = False,
                 durability: str = "full"):
        """`webhook_allow`: webhook destinations callers other than the store admin
        may write besides public addresses (see access/destinations.py). `readonly`:
        only read (nothing in the file changes; writes raise StoreReadOnly).
        `initialise`: add a store's tables to another program's SQLite file (refused
        otherwise, with NotAStore). `durability`: "full" (a write returns once it is on
        disk) or "normal" (faster small writes; a power cut may lose the last ones); see
        README "Reliability"."""
        self.path = os.fspath(path)
        self.webhooks = WebhookPolicy.parse(webhook_allow)
        self.db = Database(self.path, readonly=readonly, initialise=initialise,
                           durability=durability)
        try:
            staging.sweep(self.db)  # an import killed half-way left its chunks
        except BaseException:
            self.db.close()
            raise
        self._collections()

    @property
    def readonly(self) -> bool:
        """True when the store was opened only to read."""
        return self.db.readonly

    def _collections(self) -> None:
        for table, cls in COLLECTIONS.items():
            setattr(self, TABLES[table].plural, cls(self))

    def authorize(self, action: str, table: str, row: dict, changes: dict | None = None) -> dict:
        """The store admin may do anything; views of a caller check (see permissions)."""
        return row

    def as_user(self, user_id: str, proved_email: str | None = None) -> "Store":
        """The store as an authenticated user sees and may change it. `proved_email`:
        an address the caller's sign-in proved (a JWT's email claim), which that user
        may then give itself; the embedding application vouches for it."""
        self.users.get(check_id(user_id, "user id"))
        return CallerStore(self, Caller(user_id=check_id(user_id),
                                        proved_email=check_email(proved_email)))

    def with_token(self, token: str, user_id: str | None = None) -> "Store":
        """The store as the holder of a resource token (an access's admin, contributor
        or guest token) sees it, alone or on top of a user's own rights. The view's
        rights end when the token is regenerated or its access deleted."""
        found = self.token_holder(token)
        if found is None:
            raise PermissionDenied("this token is not (or no longer) a token of any access")
        return CallerStore(self, Caller(user_id=user_id, token_access=found[0],
                                        token_role=found[1], token=token))

    def token_holder(self, token: str) -> tuple[str, str] | None:
        """(access id, role) that a resource token gives today, or None."""
        cases = " ".join(f"WHEN {column} THEN '{role}'"
                         for role, column in reversed(TOKEN_COLUMNS.items()))
        found = self.db.execute(
            f"SELECT id, CASE :token {cases} END FROM access "
            f"WHERE :token IN ({', '.join(TOKEN_COLUMNS.values())})", {"token": token}).fetchone()
        return None if found is None else (found[0], found[1])

    def anonymous(self) -> "Store":
        """The store as an anonymous caller sees it: public resources only."""
        return CallerStore(self, Caller())

    def collection(self, table: str):
        return getattr(self, TABLES[table].plural)

    def transaction(self):
        """Group writes: `with store.transaction(): ...` commits them all or none."""
        return self.db.transaction()

    def as_session(self, role: str, user_id: str | None = None, **variables: str):
        """Writes in this block (this thread) are logged in events as made by `role`
        and `user_id` (Hasura session variables); see Database.as_session."""
        return self.db.as_session(role, user_id, **variables)

    @contextlib.contextmanager
    def read_transaction(self):
        """Several reads from one snapshot of the file."""
        with self.db.transaction(write=False):
            yield

    def backup(self, dest: str | os.PathLike, overwrite: bool = False) -> maintenance.BackupResult:
        """A consistent copy of the file at `dest`, taken while others keep writing."""
        return maintenance.backup(self.path, dest, overwrite=overwrite)

    def check(self) -> maintenance.CheckReport:
        """Verify the file (SQLite integrity, foreign keys, every chunk); `.ok`, `.text()`."""
        return maintenance.check(self.path)

    def vacuum(self, full: bool = False, compact: bool = True) -> vacuuming.VacuumResult:
        """Give the space of deleted rows back to the disk: incrementally when the file
        allows it; a file created before schema version 5 is rebuilt, once (README
        "Reliability and backups"). First, with `compact`, the fragmented dataframes
        (many small appends) are compacted (`dataframes.compact`), one transaction each."""
        compacted = [self.dataframes.compact(id)["id"]
                     for id in (self.dataframes.fragmented() if compact else [])]
        result = vacuuming.vacuum(self.db, full)
        result.compacted = len(compacted)
        return result

    def repair_checksums(self) -> chunk_sums.RepairResult:
        """Add checksums to chunks written before they existed (those that validate)."""
        return chunk_sums.repair(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<clustore_lite.Store {self.path!r}>"


class CallerStore(Store):
    """A view of a store for one caller: same file and connections, but every read
    filtered and every write checked by the Clusauth rules."""

    def __init__(self, admin: Store, caller: Caller):
        self.path = admin.path
        self.db = admin.db
        self.webhooks = admin.webhooks
        self.caller = caller
        self.rules = Rules(caller, admin.db, admin.webhooks)
        self.visibility = caller.visibility
        self.column_sql = caller.column_sql
        self._collections()

    def authorize(self, action: str, table: str, row: dict, changes: dict | None = None) -> dict:
        return self.rules.authorize(action, table, row, changes)

    @contextlib.contextmanager
    def transaction(self):
        """The caller's writes, recorded in events with its session variables."""
        role = "user" if self.caller.user_id else "anonymous"
        extra = {"x_hasura_clusauth_role": self.caller.token_role} if self.caller.token_role else {}
        with self.db.as_session(role, self.caller.user_id, **extra), self.db.transaction():
            yield

    def close(self) -> None:
        """A view does not own the file; closing the admin store closes it."""

    def __repr__(self) -> str:
        return f"<clustore_lite.Store {self.path!r} as {self.caller}>"


def open(path: str | os.PathLike,  # noqa: A001 - mirrors sqlite3.connect/open
         webhook_allow: str | list[str] | WebhookPolicy | None = None,
         readonly: bool = False, initialise: bool = False,
         durability: str = "full") -> Store:
    """Open (creating or upgrading) a store file, or only read it (`readonly=True`);
    `webhook_allow`, `initialise` and `durability` as for Store."""
    return Store(path, webhook_allow, readonly=readonly, initialise=initialise,
                 durability=durability)
