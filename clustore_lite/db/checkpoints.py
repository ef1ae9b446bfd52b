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
  also runs every few seconds, so a WAL another process left big is copied too.

A checkpoint never blocks readers or writers (PASSIVE); one killed half-way leaves
the WAL whole, and the next one starts over."""

from __future__ import annotations

import threading
from typing import Callable

import apsw

from . import file_locks

WAL_BYTES = 16 << 20  # checkpoint once the WAL holds this much; truncate it back to it
INLINE_BYTES = 64 << 20  # larger WALs are copied in the background, not in a commit
RETRY_SECONDS = 0.2  # while an import is in flight, look again this often


def wal_full(pages: int, page_size: int) -> bool:
    return pages * page_size >= WAL_BYTES


def checkpoint(conn: apsw.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


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


class Checkpointer:
    """One thread, with a connection of its own, that checkpoints when asked (and,
    with `every`, on a period). Stopped by `close`, which interrupts a checkpoint
    under way: the rest is copied by whoever checkpoints next."""

    def __init__(self, open_connection: Callable[[], apsw.Connection],
                 fd_of: Callable[[apsw.Connection], int | None]):
        self._open = open_connection
        self._fd_of = fd_of
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._every: float | None = None
        self._thread: threading.Thread | None = None
        self._conn: apsw.Connection | None = None
        self._lock = threading.Lock()

    def request(self, every: float | None = None) -> None:
        """Checkpoint soon (and from now on every `every` seconds, if given)."""
        with self._lock:
            if self._stop.is_set():
                return
            if every is not None:
                self._every = every
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="clustore-checkpoint")
                self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        try:
            self._conn = conn = self._open()
        except apsw.Error:
            return  # the file went away or is unreadable: the next commit will say so
        fd = self._fd_of(conn)
        try:
            while not self._stop.is_set():
                if not self._wanted.wait(self._every):
                    pass  # the period is up
                if self._stop.is_set():
                    break
                if file_locks.held(fd, file_locks.IMPORTING, unknown=False):
                    self._stop.wait(RETRY_SECONDS)
                    continue
                self._wanted.clear()
                try:
                    checkpoint(conn)
                except apsw.Error:
                    pass  # interrupted, busy, or a failing disk: tried again next time
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._stop.set()
            thread, conn = self._thread, self._conn
        self._wanted.set()
        if thread is None:
            return
        if conn is not None:
            conn.interrupt()
        thread.join(30)
