"""The SQLite file: opening it with the settings chosen by measurement, upgrading
its schema, and transactions.

Settings (see benchmarks/ and README "Storage choices", "Reliability and backups"):
- WAL, so readers never wait on a writer, with synchronous=FULL by default: a commit
  returns only after the WAL is fsync'ed, so an acknowledged write survives a power cut
  (durability="normal" skips that fsync: a power cut may then lose the last commits,
  never consistency; a process crash loses nothing either way). Bulk writes in the
  rollback journal always use FULL (NORMAL is not proof against a power cut there).
- The WAL is bounded in bytes, not pages (WAL_BYTES): SQLite's default checkpoint
  threshold of 1,000 pages meant a 64 MB WAL with 64 KiB pages.
- 64 KiB pages: chunk BLOBs are large; with 4 KiB pages WAL writes ran 2-3x slower.
- Bulk writes (ingest, append) switch the file to a rollback journal when this process
  is the only one using it: measured 1.5-2x faster than WAL for large BLOBs, because
  new pages are written once instead of to the WAL and again at checkpoint.
  A process that opens the file meanwhile waits for that transaction (up to the busy
  timeout): it switches the file back to WAL first, which needs the write lock.
- During a bulk write, a helper thread fdatasync()s the file every WRITEBACK_BYTES
  written, so the disk writes overlap the copying instead of all waiting for the
  commit's fsync (see Writeback).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import threading
import time
from typing import Callable

import apsw

from ..errors import InvalidValue, StoreBusy, StoreReadOnly, StoreReplaced, TransactionError
from . import statistics
from .migrations import LATEST, MIGRATIONS
from .opening import (check_kind, check_readable, mark, readonly_connection, refuse_unwritable,
                      side_files, temp_files_beside, tidy)
from .sqlite_errors import reported
from .sql_functions import SQL_FUNCTIONS

PAGE_SIZE = 65536
BULK_BYTES = 16 << 20  # smaller writes are not worth a journal switch
BUSY_TIMEOUT_MS = 30_000
EMPTY_WAL_TIMEOUT_MS = 200  # a replaced file's WAL: how long to wait for readers, per try
CACHE_KIB = 16384  # page cache per connection; bounds memory during big transactions
MMAP_BYTES = 1 << 30  # reads map the file (measured 4-6% less CPU than pread for chunks)
WRITEBACK_BYTES = 16 << 20  # bulk writes: flush to disk in the background this often
WAL_BYTES = 16 << 20  # checkpoint once the WAL holds this much; truncate it back to it
# durability -> PRAGMA synchronous in WAL: "full" fsyncs the WAL at every commit
DURABILITY = {"full": "FULL", "normal": "NORMAL"}


ADMIN_SESSION = {"x-hasura-role": "admin"}


class Session:
    """The Hasura session variables of one connection, as JSON text.

    The event triggers call the SQL function `clustore_session()`, which returns
    this JSON text, so every event records who made the change (SPEC section 5)."""

    def __init__(self, variables: dict | None = None):
        self.json = json.dumps(variables or ADMIN_SESSION)

    @property
    def variables(self) -> dict:
        return json.loads(self.json)


def check_session(variables: dict) -> dict:
    """Session variables as Hasura names them: lower-case `x-hasura-*` keys, string
    values, and a role."""
    if not isinstance(variables, dict):
        raise InvalidValue(f"session variables must be a dict, not {variables!r}")
    out = {}
    for key, value in variables.items():
        name = str(key).lower()
        if not name.startswith("x-hasura-") or not isinstance(value, str):
            raise InvalidValue(f"session variable {key!r} must be named x-hasura-... and "
                               f"hold a string, not {value!r}")
        out[name] = value
    if not out.get("x-hasura-role"):
        raise InvalidValue("session variables need an x-hasura-role")
    return out


def check_durability(durability: str) -> str:
    if durability not in DURABILITY:
        raise InvalidValue(f"durability must be {' or '.join(map(repr, DURABILITY))}, "
                           f"not {durability!r}")
    return durability


def connect(path: str, session: Session | None = None,
            functions: dict[str, tuple[Callable, int]] | None = None,
            readonly: bool = False, initialise: bool = False,
            durability: str = "full") -> apsw.Connection:
    """Open one connection with the store's pragmas; creates and upgrades the file
    (unless `readonly`: then it only reads, see opening.py). A SQLite file of another
    program is refused unless `initialise`. `session` is what this connection's
    `clustore_session()` answers (admin if None); `functions` adds SQL functions
    (name -> (function, number of arguments)); `durability` as in DURABILITY.
    SQLite's errors become the store's."""
    path = os.fspath(path)
    durability = check_durability(durability)
    temp_files_beside(path)
    with reported(path):
        if not readonly:
            create_private(path)
        conn = readonly_connection(path) if readonly else apsw.Connection(path)
        try:
            _configure(conn, path, session, functions, readonly, initialise, durability)
        except BaseException:
            conn.close()
            raise
    return conn


def _configure(conn: apsw.Connection, path: str, session: Session | None,
               functions: dict | None, readonly: bool, initialise: bool,
               durability: str) -> None:
    for name, (function, arity) in {**SQL_FUNCTIONS, **(functions or {})}.items():
        conn.create_scalar_function(name, function, arity, deterministic=True)
    statistics.register(conn)  # stddev and variance, which SQLite lacks
    session = session or Session()
    conn.create_scalar_function("clustore_session", lambda: session.json, 0)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA recursive_triggers = ON")
    conn.execute("PRAGMA case_sensitive_like = ON")  # _like is case-sensitive, _ilike is not
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    if readonly:
        check_readable(conn, path)
    else:
        _initialise(conn, path, initialise)
    # after _initialise: SQLite turns a size in KiB into pages with the page size in
    # force, and a new file only gets its 64 KiB pages there (else 16x the memory)
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    bound_wal(conn)
    conn.execute(f"PRAGMA synchronous = {DURABILITY[durability]}")


def bound_wal(conn: apsw.Connection, budget: int = WAL_BYTES) -> None:
    """Checkpoint when the WAL holds `budget` bytes, whatever the page size, and cut it
    back to that size after a checkpoint (it is reused, not shrunk, otherwise)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {max(1, budget // page_size)}")
    conn.execute(f"PRAGMA journal_size_limit = {budget}")


def create_private(path: str) -> None:
    """Create a missing store file readable by its owner only (0600): it holds every
    access token. SQLite gives its -wal, -shm and -journal files the main file's mode.
    An existing file keeps its mode; names that are not files (":memory:", "",
    "file:" URIs) are left to SQLite."""
    if path in ("", ":memory:") or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass  # it exists, or SQLite will say why it cannot be opened (no such directory, ...)


def _initialise(conn: apsw.Connection, path: str, initialise: bool) -> None:
    refuse_unwritable(conn, path)
    unmarked = check_kind(conn, path, initialise)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == LATEST and not unmarked:
        ensure_wal(conn)
        return
    if version == 0 and _is_empty(conn):
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        # only a file with no table yet can take it without a VACUUM (db/vacuum.py)
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    ensure_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # re-read under the write lock: another process may have migrated meanwhile
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, LATEST):
            conn.execute(MIGRATIONS[number])
            conn.execute(f"PRAGMA user_version = {number + 1}")
        mark(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # else SQLite rolled back itself (disk full): keep its error
            conn.execute("ROLLBACK")
        raise


def _is_empty(conn: apsw.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0


def ensure_wal(conn: apsw.Connection, timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """Put the file in WAL mode, waiting while another connection holds the write lock.

    SQLite answers a journal-mode change with SQLITE_BUSY at once, without calling the
    busy handler, when another connection holds the write lock (a bulk write running
    in the rollback journal): a process opening the file then failed with "database is
    locked". So wait here, with backoff, as long as the busy timeout would."""
    deadline = time.monotonic() + timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                return
        except apsw.BusyError:
            pass
        if time.monotonic() >= deadline:
            raise StoreBusy(
                f"could not put the store file in WAL mode: another process held its write "
                f"lock for more than {timeout_ms / 1000:g} s (a long bulk write?); try again")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _try_rollback_journal(conn: apsw.Connection) -> bool:
    """Leave WAL for the rollback journal if no other connection has the file open.
    SQLite refuses (BusyError) when one has, and (SQLError) while a statement of this
    connection is still reading; both mean: stay in WAL."""
    try:
        switched = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    except (apsw.BusyError, apsw.SQLError):
        return False
    if switched:
        conn.execute("PRAGMA synchronous = FULL")
    return switched


def _sync(fd: int) -> None:
    try:
        (getattr(os, "fdatasync", None) or os.fsync)(fd)
    except OSError:
        pass  # only a head start: the commit syncs (and reports failures) anyway


def database_fd(conn: apsw.Connection) -> int | None:
    """SQLite's own file descriptor of the main database file, or None when it cannot
    be told for sure (a VFS other than SQLite's unix ones, another platform).

    Opening a second descriptor instead is not safe: closing it would drop the POSIX
    locks SQLite holds on the file (sqlite.org/howtocorrupt.html, 2.2)."""
    vfs = getattr(conn, "open_vfs", None) or apsw.vfs_names()[0]
    if not vfs.startswith("unix"):
        return None
    try:
        pointer = ctypes.c_void_p()
        if not conn.file_control("main", apsw.SQLITE_FCNTL_FILE_POINTER,
                                 ctypes.addressof(pointer)) or not pointer.value:
            return None
        # struct unixFile { sqlite3_io_methods *pMethod; sqlite3_vfs *pVfs;
        #                   unixInodeInfo *pInode; int h; ... }
        fd = ctypes.c_int.from_address(pointer.value + 3 * ctypes.sizeof(ctypes.c_void_p)).value
        found, expected = os.fstat(fd), os.stat(conn.filename)
    except (OSError, ValueError, apsw.Error):
        return None
    if (found.st_dev, found.st_ino) != (expected.st_dev, expected.st_ino):
        return None
    return fd


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if there is none: a file deleted
    or replaced (renamed over) while open keeps its inode, the path gets another."""
    try:
        found = os.stat(path)
    except OSError:  # gone, or out of reach: either way not known to be the same
        return None
    return found.st_dev, found.st_ino


class Writeback:
    """Pushes the pages of a bulk write to disk while it goes on.

    A rollback-journal commit ends with an fsync of everything written; left alone, the
    kernel holds the pages (up to its dirty limits, gigabytes) and the disk idles while
    SQLite copies. A helper thread calling fdatasync on SQLite's descriptor every
    WRITEBACK_BYTES keeps the disk busy meanwhile. It is safe: the file then holds only
    what SQLite itself wrote, which the kernel may write back at any moment anyway.
    Measured on 512 MB: 0.79x of pyarrow's IPC write + fsync without, 1.12-1.15x with
    every 8-16 MB, 1.12x every 32 MB, 0.98x every 128 MB."""

    def __init__(self, fd: int):
        self.fd = fd
        self.pending = 0
        self.thread: threading.Thread | None = None

    def wrote(self, size: int) -> None:
        self.pending += size
        if self.pending >= WRITEBACK_BYTES and not (self.thread and self.thread.is_alive()):
            self.pending = 0
            self.thread = threading.Thread(target=_sync, args=(self.fd,), daemon=True,
                                           name="clustore-writeback")
            self.thread.start()

    def finish(self) -> None:
        if self.thread:
            self.thread.join()


class Database:
    """One store file, one apsw connection per thread, and nested transactions.

    The outermost transaction of a thread is `BEGIN IMMEDIATE`, so a writer takes the
    write lock up front and waits on the busy timeout, instead of failing half-way with
    "database is locked"; nested ones are savepoints that roll back on their own.

    Each thread's connection also has a session (Hasura session variables, admin by
    default) that the events of its writes record: set it with `db.session = {...}`
    or, for a block, `with db.as_session("user", user_id): ...`.

    `readonly`: every connection only reads (writes raise StoreReadOnly), and the
    -wal/-shm files the reads made are removed on close when nobody else uses them.
    `initialise`: add a store's tables to a SQLite file of another program.
    `durability="full"` (the default) answers a commit once it is on disk;
    `"normal"` answers before the WAL's fsync (see DURABILITY)."""

    def __init__(self, path: str, readonly: bool = False, initialise: bool = False,
                 durability: str = "full"):
        self.path = os.fspath(path)
        self.readonly = readonly
        self._initialise = initialise
        self._side_files = side_files(self.path) if readonly else None
        self.durability = check_durability(durability)
        self._local = threading.local()
        self._all: list[apsw.Connection] = []
        self._lock = threading.Lock()
        self._functions: dict[str, tuple[Callable, int]] = {}
        self._identity = None
        self._wal_emptied = False
        self.conn  # open now, so that a bad file fails at open time
        self._identity = file_identity(self.path)

    @property
    def conn(self) -> apsw.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.check_same_file()  # else a new connection opens another file, or creates one
            self._local.session = Session()
            functions = dict(self._functions)
            conn = connect(self.path, self._local.session, functions, self.readonly,
                           self._initialise, self.durability)
            self._local.conn = conn
            self._local.functions = set(functions)
            self._local.depth = 0
            self._local.read_only = False
            with self._lock:
                self._all.append(conn)
        return conn

    def use_function(self, name: str, function: Callable, arity: int) -> apsw.Connection:
        """This thread's connection, with the SQL function `name` defined on it (and
        on every connection opened later): upper layers bring their own functions."""
        self._functions.setdefault(name, (function, arity))
        conn = self.conn
        if name not in self._local.functions:
            conn.create_scalar_function(name, function, arity, deterministic=True)
            self._local.functions.add(name)
        return conn

    @property
    def session(self) -> dict:
        """The session variables of this thread's writes, e.g.
        `{"x-hasura-role": "user", "x-hasura-user-id": "..."}`."""
        self.conn
        return self._local.session.variables

    @session.setter
    def session(self, variables: dict | None) -> None:
        self.conn
        self._local.session.json = json.dumps(
            ADMIN_SESSION if variables is None else check_session(variables))

    @contextlib.contextmanager
    def as_session(self, role: str, user_id: str | None = None, **variables: str):
        """Writes in this block (this thread) are recorded as made by `role` and
        `user_id`; extra `x_hasura_name=value` keywords add session variables."""
        given = {"x-hasura-role": role}
        if user_id is not None:
            given["x-hasura-user-id"] = user_id
        given.update({k.replace("_", "-"): v for k, v in variables.items()})
        previous = self.session
        self.session = given
        try:
            yield self.session
        finally:
            self.session = previous

    @contextlib.contextmanager
    def snapshot(self):
        """A connection of its own in one read transaction, closed at the end: for
        reads that go on across threads (a streamed HTTP answer is read piece by
        piece, each piece in any thread of a pool) and must see one state of the file."""
        self.check_same_file()
        conn = connect(self.path, readonly=self.readonly)
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self._all and self._identity is not None \
                    and file_identity(self.path) != self._identity:
                self._empty_wal(self._all[0])
            for conn in self._all:
                try:
                    conn.close()
                except apsw.ThreadingViolationError:
                    pass  # a thread still finishes a statement of a cancelled request: it
                    # holds the last reference, and the connection closes when it is freed
            self._all.clear()
        self._local = threading.local()
        if self._side_files is not None:
            tidy(self.path, self._side_files)

    def execute(self, sql: str, params=()) -> apsw.Cursor:
        with reported(self.path):
            return self.conn.execute(sql, params)

    def query(self, sql: str, params=()) -> list[dict]:
        with reported(self.path):
            cursor = self.conn.execute(sql, params)
            try:
                names = [d[0] for d in cursor.get_description()]
            except apsw.ExecutionCompleteError:
                return []
            return [dict(zip(names, row)) for row in cursor]

    @contextlib.contextmanager
    def transaction(self, write: bool = True):
        """A transaction (outermost) or a savepoint (nested). SQLite's errors inside
        become the store's (a full disk: StoreFull, ...)."""
        with reported(self.path), self._transaction(write) as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self, write: bool):
        if write and self.readonly:
            raise StoreReadOnly(f"the store {self.path} was opened read-only: writes are "
                                "refused; open it without readonly=True to change it")
        conn = self.conn
        depth = self._local.depth
        if depth == 0:
            self._begin(conn, write)
        elif write and self._local.read_only:
            # upgrading a read snapshot to a write fails at once with "database is
            # locked" whenever another connection wrote since: refuse it up front
            raise TransactionError(
                "cannot write inside store.read_transaction(): it reads one snapshot and "
                "cannot become a write; use store.transaction() for reads and writes")
        else:
            conn.execute(f"SAVEPOINT s{depth}")
        self._local.depth = depth + 1
        try:
            yield conn
        except BaseException:
            self._local.depth = depth
            self._undo(conn, depth)
            raise
        self._local.depth = depth
        try:
            conn.execute("COMMIT" if depth == 0 else f"RELEASE s{depth}")
        except BaseException:
            self._undo(conn, depth)
            raise

    @staticmethod
    def _undo(conn: apsw.Connection, depth: int) -> None:
        """Roll back what a failed block wrote. When SQLite already rolled the whole
        transaction back itself (a full disk, an I/O error), there is nothing left to
        undo: a ROLLBACK then would fail and replace the real error."""
        if not conn.in_transaction:
            return
        if depth == 0:
            conn.execute("ROLLBACK")
        else:
            conn.execute(f"ROLLBACK TO s{depth}; RELEASE s{depth}")

    def _begin(self, conn: apsw.Connection, write: bool) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except apsw.BusyError:
            raise StoreBusy(f"another connection held the store's write lock for more than "
                            f"{BUSY_TIMEOUT_MS / 1000:g} s; try again") from None
        if write:  # one os.stat per write transaction (README "Reliability")
            try:
                self.check_same_file()
            except StoreReplaced:
                conn.execute("ROLLBACK")
                self._empty_wal(conn)
                raise
        self._local.read_only = not write

    def check_same_file(self) -> None:
        """Raise StoreReplaced when the path no longer names the file opened: writes
        would go into a deleted file (lost when the process ends) or beside the file
        that replaced it."""
        if self._identity is not None and file_identity(self.path) != self._identity:
            raise StoreReplaced(
                f"the store file {self.path} was deleted or replaced while open: writes are "
                "refused, since they would be lost with the old file; restart on the new file")

    def _empty_wal(self, conn: apsw.Connection) -> None:
        """Once the file was replaced, move the WAL's pages into the old file and
        truncate the WAL: it is named after the path, so the next process to open the
        new file would replay it onto that file (SQLite skips its checkpoint on close
        once the file has moved). Readers of the old file may delay it: tried again
        at the next refused write, and on close."""
        if self._wal_emptied:
            return
        conn.set_busy_timeout(EMPTY_WAL_TIMEOUT_MS)
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            self._wal_emptied = not busy
        except apsw.Error:
            pass  # tried again later
        finally:
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)

    @property
    def in_transaction(self) -> bool:
        self.conn
        return self._local.depth > 0

    def wrote(self, size: int) -> None:
        """Tell a bulk write in progress that `size` more bytes went to the file."""
        writeback = getattr(self._local, "writeback", None)
        if writeback is not None:
            writeback.wrote(size)

    @contextlib.contextmanager
    def bulk(self, size: int | None = None):
        """A transaction for large writes: in rollback-journal mode when no other
        connection has the file open (faster for big BLOBs), in WAL otherwise.
        Writes known to be smaller than BULK_BYTES stay in WAL: switching costs a
        checkpoint and fsyncs (measured 50x slower for 1,000-row appends).

        Memory-mapping is off meanwhile: a chunk larger than the page cache spills
        pages that its BLOB write reads back, and read through the map they stayed in
        the process's RSS (an import of 42 MB chunks peaked at 288 MB with the map,
        240 MB without, at the same speed)."""
        conn = self.conn
        large = (size is None or size >= BULK_BYTES) and not self.in_transaction \
            and not self.readonly
        switched = False
        if large:
            conn.execute("PRAGMA mmap_size = 0")
            switched = _try_rollback_journal(conn)
        fd = database_fd(conn) if switched else None
        if fd is not None:
            self._local.writeback = Writeback(fd)
        try:
            with self.transaction() as conn:
                yield conn
        finally:
            if fd is not None:
                self._local.writeback.finish()
                self._local.writeback = None
            if switched:
                self._restore_wal(conn)
            if large:
                conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")

    def _restore_wal(self, conn: apsw.Connection) -> None:
        # never raise here: the write has committed (or the caller's error is on its
        # way). If another process keeps the lock, it switches the file back itself:
        # every connection puts the file in WAL when it opens.
        conn.execute(f"PRAGMA synchronous = {DURABILITY[self.durability]}")
        with contextlib.suppress(StoreBusy):
            ensure_wal(conn)
