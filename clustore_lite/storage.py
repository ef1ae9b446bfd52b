"""The SQLite file: opening it with the settings chosen by measurement, upgrading
its schema, and transactions.

Settings (see benchmarks/ and README "Storage choices"):
- WAL with synchronous=NORMAL, so readers never wait on a writer and a commit costs no
  fsync (a crash of the process loses nothing committed; a power cut may lose the last
  commits, never consistency).
- 64 KiB pages: chunk BLOBs are large; with 4 KiB pages WAL writes ran 2-3x slower.
- Bulk writes (ingest, append) switch the file to a rollback journal when this process
  is the only one using it: measured 1.5-2x faster than WAL for large BLOBs, because
  new pages are written once instead of to the WAL and again at checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import threading

import apsw

from .errors import StoreVersionError
from .migrations import LATEST, MIGRATIONS

PAGE_SIZE = 65536
BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 16384  # page cache per connection; bounds memory during big transactions
MMAP_BYTES = 1 << 30  # reads map the file (measured ~6% less CPU than pread for chunks)


def connect(path: str) -> apsw.Connection:
    """Open one connection with the store's pragmas; creates and upgrades the file."""
    conn = apsw.Connection(os.fspath(path))
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA recursive_triggers = ON")
    conn.execute("PRAGMA case_sensitive_like = ON")  # _like is case-sensitive, _ilike is not
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    _initialise(conn)
    # after _initialise: SQLite turns a size in KiB into pages with the page size in
    # force, and a new file only gets its 64 KiB pages there (else 16x the memory)
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _initialise(conn: apsw.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST:
        raise StoreVersionError(
            f"this store file has schema version {version}, but this clustore-lite only "
            f"knows versions up to {LATEST}: upgrade clustore-lite to open it"
        )
    if version == LATEST:
        _ensure_wal(conn)
        return
    if version == 0 and _is_empty(conn):
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    _ensure_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # re-read under the write lock: another process may have migrated meanwhile
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, LATEST):
            conn.execute(MIGRATIONS[number])
            conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _is_empty(conn: apsw.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0


def _ensure_wal(conn: apsw.Connection) -> None:
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")


class Database:
    """One store file, one apsw connection per thread, and nested transactions.

    The outermost transaction of a thread is `BEGIN IMMEDIATE`, so a writer takes the
    write lock up front and waits on the busy timeout, instead of failing half-way with
    "database is locked"; nested ones are savepoints that roll back on their own."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._local = threading.local()
        self._all: list[apsw.Connection] = []
        self._lock = threading.Lock()
        self.conn  # open now, so that a bad file fails at open time

    @property
    def conn(self) -> apsw.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def execute(self, sql: str, params=()) -> apsw.Cursor:
        return self.conn.execute(sql, params)

    def query(self, sql: str, params=()) -> list[dict]:
        cursor = self.conn.execute(sql, params)
        try:
            names = [d[0] for d in cursor.get_description()]
        except apsw.ExecutionCompleteError:
            return []
        return [dict(zip(names, row)) for row in cursor]

    @contextlib.contextmanager
    def transaction(self, write: bool = True):
        conn = self.conn
        depth = self._local.depth
        if depth == 0:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        else:
            conn.execute(f"SAVEPOINT s{depth}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            self._local.depth = depth
            if depth == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute(f"ROLLBACK TO s{depth}; RELEASE s{depth}")
            raise
        self._local.depth = depth
        if depth == 0:
            conn.execute("COMMIT")
        else:
            conn.execute(f"RELEASE s{depth}")

    @property
    def in_transaction(self) -> bool:
        self.conn
        return self._local.depth > 0

    @contextlib.contextmanager
    def bulk(self):
        """A transaction for large writes: in rollback-journal mode when no other
        connection has the file open (faster for big BLOBs), in WAL otherwise.

        Memory-mapping is off meanwhile: a chunk larger than the page cache spills
        pages that its BLOB write reads back, and read through the map they stayed in
        the process's RSS (an import of 42 MB chunks peaked at 288 MB with the map,
        240 MB without, at the same speed)."""
        conn = self.conn
        switched = outermost = False
        if not self.in_transaction:
            outermost = True
            conn.execute("PRAGMA mmap_size = 0")
            try:
                switched = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
            except apsw.BusyError:
                switched = False
        try:
            with self.transaction() as conn:
                yield conn
        finally:
            if switched:
                _ensure_wal(conn)
            if outermost:
                conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
