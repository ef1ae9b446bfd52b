"""The store: one file, every collection of the data model, and transactions."""

from __future__ import annotations

import contextlib
import os

from . import maintenance
from .dataframes import Chunks, Dataframes
from .datasets import Datasets, Tasks, Trackings
from .model import Accesses, Memberships, Organizations, TeamMembers, Teams, Users
from .storage import Database

COLLECTIONS = {
    "user": ("users", Users), "organization": ("organizations", Organizations),
    "team": ("teams", Teams), "team_member": ("team_members", TeamMembers),
    "access": ("accesses", Accesses), "membership": ("memberships", Memberships),
    "dataframe": ("dataframes", Dataframes), "chunk": ("chunks", Chunks),
    "dataset": ("datasets", Datasets), "task": ("tasks", Tasks),
    "tracking": ("trackings", Trackings),
}


class Store:
    """A clustore-lite store file. The plain store acts as the store admin.

    >>> store = clustore_lite.open("team.sqlite")
    >>> org = store.organizations.create("lumen")
    """

    visibility = None  # the store admin sees every row

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

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.db = Database(self.path)
        for attribute, cls in COLLECTIONS.values():
            setattr(self, attribute, cls(self))

    def collection(self, table: str):
        return getattr(self, COLLECTIONS[table][0])

    def transaction(self):
        """Group writes: `with store.transaction(): ...` commits them all or none."""
        return self.db.transaction()

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

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<clustore_lite.Store {self.path!r}>"


def open(path: str | os.PathLike) -> Store:  # noqa: A001 - mirrors sqlite3.connect/open
    """Open (creating or upgrading) a store file."""
    return Store(path)
