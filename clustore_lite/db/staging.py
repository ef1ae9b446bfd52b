"""A bulk import into a file that other processes use (a store being served): its
chunks are written in short transactions as rows nobody sees yet, and made visible by
one small final commit (the caller's).

Why (issue 17, measured in benchmarks/served_ingest.py and write_paths.py): with
other connections open the file must stay in WAL, and one transaction holding
SQLite's write lock for a whole import kept every other writer waiting for seconds.
Here the write lock is held for one slice (SLICE_BYTES) at a time and handed over
between slices to the writers that wait for it (file_locks.WAITING). The slices'
commits are not synced (the final commit's fsync covers them all); a helper thread
flushes the WAL as it grows so that the disk works while SQLite copies, and the
WAL is checkpointed after the import, not during it (db/checkpoints.py).

What nobody sees: chunk rows of a dataframe whose row does not exist yet (foreign
keys are off for the slices; catalog.Table.exists_under keeps such rows out of every
read), listed in `chunk_import` (migration 6). The final commit inserts the
dataframe and deletes its `chunk_import` row. An import that fails removes its chunks;
one killed leaves them, and `sweep` (run when a Store opens) removes them once no
process holds file_locks.IMPORTING: nothing partial is ever visible."""

from __future__ import annotations

import contextlib
import os

from . import file_locks
from .connection import DURABILITY, Database
from .writeback import reserve

SLICE_BYTES = 16 << 20  # chunk bytes per short transaction (a whole chunk at least)
# the WAL is flushed this often: a small writer's commit syncs the WAL, and with it
# whatever of the import is not on disk yet
WRITEBACK_BYTES = 4 << 20


class Slices:
    """The short transactions of one staged import of dataframe `frame_id`, on this
    thread's connection.

    Use as a context manager: the first slice begins on entry (and notes the import
    in `chunk_import`); call `wrote` after each chunk, `next` when `full` (with no
    BLOB handle open), `finish` after the last chunk. The caller's final commit
    inserts the dataframe and calls `adopted`; the context's exit then lets go of
    IMPORTING, after removing the chunks if that commit did not happen."""

    def __init__(self, db: Database, frame_id: str, stamp: str):
        self.db = db
        self.frame_id = frame_id
        self.stamp = stamp
        self.slice_bytes = SLICE_BYTES
        self.pending = 0
        self._settings = contextlib.ExitStack()
        self._transaction = None

    def __enter__(self) -> "Slices":
        db = self.db
        conn = db.conn
        self._fd = db.fd
        file_locks.share(self._fd, file_locks.IMPORTING)  # before the first commit
        try:
            settings = self._settings
            conn.execute("PRAGMA foreign_keys = OFF")  # the dataframe comes last
            settings.callback(conn.execute, "PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # the final commit syncs all
            settings.callback(conn.execute,
                              f"PRAGMA synchronous = {DURABILITY[db.durability]}")
            settings.enter_context(db.staging())
            self._wal = wal = os.open(db.path + "-wal", os.O_RDWR)  # no lock on it: safe
            settings.callback(os.close, wal)
            settings.enter_context(db.writing_back(wal, WRITEBACK_BYTES))
            self._begin()
            conn.execute("INSERT INTO chunk_import (dataframeId, startedAt) VALUES (?, ?)",
                         (self.frame_id, self.stamp))
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _begin(self) -> None:
        # the WAL's next slice gets its disk blocks ahead (its size stays SQLite's)
        reserve(self._wal, os.fstat(self._wal).st_size, self.slice_bytes + (self.slice_bytes >> 3))
        self._transaction = self.db.transaction()
        self._transaction.__enter__()
        self.pending = 0

    def _commit(self) -> None:
        transaction, self._transaction = self._transaction, None
        transaction.__exit__(None, None, None)

    def wrote(self, size: int) -> None:
        self.pending += size
        self.db.wrote(size)

    @property
    def full(self) -> bool:
        return self.pending >= self.slice_bytes

    def next(self) -> None:
        """Commit this slice, let the writers waiting for the lock have it, begin the
        next one."""
        self._commit()
        file_locks.let_waiting_writers_in(self._fd)
        self._begin()

    def finish(self) -> None:
        """Commit the last slice and put the connection's settings back."""
        self._commit()
        self._settings.close()

    def __exit__(self, kind, error, trace) -> None:
        try:
            if self._transaction is not None:  # failed mid-slice: that slice goes
                transaction, self._transaction = self._transaction, None
                with contextlib.suppress(Exception):
                    transaction.__exit__(kind or RuntimeError, error or RuntimeError(), trace)
            self._settings.close()
            with contextlib.suppress(Exception):  # else swept at the next open
                if self.db.execute("SELECT 1 FROM chunk_import WHERE dataframeId = ?",
                                   (self.frame_id,)).fetchone():
                    discard(self.db, self.frame_id)
        finally:
            file_locks.release(self._fd, file_locks.IMPORTING)


def adopted(conn, frame_id: str) -> None:
    """In the final commit, after the dataframe row is inserted: no longer staged."""
    conn.execute("DELETE FROM chunk_import WHERE dataframeId = ?", (frame_id,))


def discard(db: Database, frame_id: str) -> None:
    """Remove the chunks of an import that will not be adopted."""
    with db.transaction() as conn:
        _remove(conn, "= ?", (frame_id,))


def _remove(conn, which: str, params: tuple) -> int:
    staged = f"SELECT dataframeId FROM chunk_import WHERE dataframeId {which}"
    conn.execute(
        f"DELETE FROM chunk WHERE dataframeId IN ({staged}) AND NOT EXISTS "
        "(SELECT 1 FROM dataframe WHERE dataframe.id = chunk.dataframeId)", params)
    count = conn.changes()
    conn.execute(f"DELETE FROM chunk_import WHERE dataframeId {which}", params)
    return count


def sweep(db: Database) -> int:
    """Remove the chunks of imports that were killed or failed half-way (none in
    flight: nobody holds IMPORTING); answer how many chunks went."""
    if db.readonly or not file_locks.supported():
        return 0
    if db.execute("SELECT 1 FROM chunk_import LIMIT 1").fetchone() is None:
        return 0
    if file_locks.held(db.fd, file_locks.IMPORTING):
        return 0
    with db.transaction() as conn:
        # under the write lock: an import takes IMPORTING before its first commit
        if file_locks.held(db.fd, file_locks.IMPORTING):
            return 0
        return _remove(conn, "IS NOT NULL", ())
