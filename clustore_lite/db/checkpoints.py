"""When the WAL is copied into the file (a checkpoint), and by whom.

SQLite's own rule runs the checkpoint inside the commit that crosses the WAL's
threshold, with the writer waiting. That is cheap while the WAL is small, but after
a served bulk import (db/staging.py) the WAL holds gigabytes, and the next small
commit of any process would copy them all before answering (seconds). So the store
replaces the rule on each connection of a Database (SQLite's wal hook):

- below WAL_BYTES, nothing;
- while an import is in flight (file_locks.IMPORTING), nothing: copying its pages
  while it writes them would write the disk twice at once;
- up to INLINE_BYTES, in the commit, as SQLite would (a 16-64 MB copy);
- beyond, in a background thread of the process (`Checkpointer`), which the server
  also wakes when another process's commit left the WAL large.

A checkpoint never blocks readers or writers (PASSIVE); one killed half-way leaves
the WAL whole, and the next one starts over."""

from __future__ import annotations

import os
import threading
from typing import Callable

import apsw

from . import file_locks
from .writeback import sync

WAL_BYTES = 16 << 20  # checkpoint once the WAL holds this much; truncate it back to it
INLINE_BYTES = 64 << 20  # larger WALs are copied in the background, not in a commit
RETRY_SECONDS = 0.2  # while an import is in flight, look again this often
RETRIES = 50  # an incomplete checkpoint is tried again this often, then left to the next ask
PACE_SECONDS = 0.005  # during a background checkpoint, flush the file this often
SHRINK_BYTES = 32 << 20  # a large WAL file is cut back by this much per step


def wal_full(pages: int, page_size: int) -> bool:
    return pages * page_size >= WAL_BYTES


def wal_size(path: str) -> int:
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0


def wal_is_large(path: str) -> bool:
    """Whether the WAL file of the store at `path` outgrew what commits copy
    themselves (its size is a high-water mark: cut back only by `shrink`)."""
    return wal_size(path) > INLINE_BYTES


def shrink(conn: apsw.Connection, writer: apsw.Connection, path: str,
           stop: threading.Event, writer_fd: int | None = None) -> bool:
    """Cut the WAL file back to WAL_BYTES, SHRINK_BYTES at a time; whether it is.

    SQLite cuts it (to journal_size_limit) in the commit that restarts the WAL from
    its beginning: at once, truncating 512 MB took that commit 100-150 ms, and a small
    write waited for it. So connections have no limit (connection.bound_wal), and
    this thread makes the restarting commits itself, one step lower each: `writer`
    takes the write lock (no other commit can restart the WAL first), `conn` copies
    what the WAL holds, and the writer's commit (of the file's user_version, as it
    was: a write that changes nothing) restarts the WAL and cuts it: ~7 ms a step
    (with 64 MB steps a small commit waited up to 80 ms, with 32 MB up to 47 ms).
    Before each step, writers waiting for the lock (file_locks.WAITING) go first:
    steps back to back kept a small commit waiting 170-200 ms."""
    while not stop.is_set():
        size = wal_size(path)
        if size <= WAL_BYTES:
            return True
        file_locks.let_waiting_writers_in(writer_fd)
        writer.execute(f"PRAGMA journal_size_limit = {max(WAL_BYTES, size - SHRINK_BYTES)}")
        writer.execute("BEGIN IMMEDIATE")
        try:
            whole = checkpoint(conn)
            version = writer.execute("PRAGMA user_version").fetchone()[0]
            writer.execute(f"PRAGMA user_version = {version}")
            writer.execute("COMMIT")
        finally:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
        if not whole or wal_size(path) >= size:
            return False  # a reader still needs the WAL: next time
    return False


def checkpoint(conn: apsw.Connection) -> bool:
    """Copy what the WAL holds into the file, as far as readers allow; whether all
    of it was copied."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return not busy and copied >= frames


def after_commit(conn: apsw.Connection, fd: int | None, pages: int, page_size: int,
                 background: Callable[[], None]) -> None:
    """Decide, after a commit left `pages` pages in the WAL, where they are copied."""
    if not wal_full(pages, page_size) or file_locks.held(fd, file_locks.IMPORTING,
                                                         unknown=False):
        return
    if pages * page_size <= INLINE_BYTES:
        try:
            checkpoint(conn)
        except apsw.BusyError:
            pass  # another checkpoint runs: it copies these pages too
    else:
        background()


class paced:
    """While a large checkpoint copies the WAL into the file, flush the file every
    PACE_SECONDS: left to the end, gigabytes of dirty pages made every other
    process's fsync wait behind them (a small commit during the checkpoint of a
    512 MB import waited 225 ms). A flush only writes what SQLite wrote."""

    def __init__(self, fd: int | None):
        self.fd = fd
        self.done = threading.Event()
        self.thread = None

    def __enter__(self) -> "paced":
        if self.fd is not None:
            self.thread = threading.Thread(target=self._run, daemon=True,
                                           name="clustore-checkpoint-flush")
            self.thread.start()
        return self

    def _run(self) -> None:
        while not self.done.wait(PACE_SECONDS):
            sync(self.fd)

    def __exit__(self, *_) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()


class Checkpointer:
    """One thread, with a connection of its own, that checkpoints when asked, and
    asks itself again while the copy is incomplete (another checkpoint or a reader
    was in the way). Stopped by `close`, which interrupts a checkpoint under way: the
    rest is copied by whoever checkpoints next."""

    def __init__(self, path: str, open_connection: Callable[[], apsw.Connection],
                 fd_of: Callable[[apsw.Connection], int | None]):
        self._path = path
        self._open = open_connection
        self._fd_of = fd_of
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: apsw.Connection | None = None
        self._lock = threading.Lock()

    def request(self) -> None:
        """Checkpoint soon, in the background."""
        with self._lock:
            if self._stop.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="clustore-checkpoint")
                self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        try:
            conn = self._open()
        except apsw.Error:
            return  # the file went away or is unreadable: the next commit will say so
        with self._lock:
            self._conn = conn
        fd = self._fd_of(conn)
        writer, failures = None, 0
        try:
            while self._wanted.wait() and not self._stop.is_set():
                if file_locks.held(fd, file_locks.IMPORTING, unknown=False):
                    self._stop.wait(RETRY_SECONDS)
                    continue
                self._wanted.clear()
                before = wal_size(self._path)
                try:
                    with paced(fd):
                        whole = checkpoint(conn)
                    if whole and wal_size(self._path) > WAL_BYTES:
                        writer = writer or self._open()
                        whole = shrink(conn, writer, self._path, self._stop,
                                       self._fd_of(writer))
                except apsw.Error:
                    whole = False  # interrupted, busy, or a failing disk
                # a reader in the way stops a step, not the work: only attempts that
                # got nowhere count against RETRIES
                progressed = wal_size(self._path) < before
                failures = 0 if whole or progressed else failures + 1
                if not whole and failures < RETRIES and wal_size(self._path) > WAL_BYTES \
                        and not self._stop.wait(0.001 if progressed else RETRY_SECONDS):
                    self._wanted.set()
        finally:
            with self._lock:
                self._conn = None
            conn.close()
            if writer is not None:
                writer.close()

    def close(self) -> None:
        with self._lock:
            self._stop.set()
            thread, conn = self._thread, self._conn
            if conn is not None:
                conn.interrupt()
        self._wanted.set()
        if thread is not None:
            thread.join(30)
