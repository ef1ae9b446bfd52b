"""The SQLite file: opening it with the settings chosen by measurement, upgrading
its schema, and transactions.

Settings (see benchmarks/ and README "Storage choices", "Reliability and backups"):
- WAL, so readers never wait on a writer, with synchronous=FULL by default: a commit
  returns only after the WAL is fsync'ed, so an acknowledged write survives a power cut
  (durability="normal" skips that fsync: a power cut may then lose the last commits,
  never consistency; a process crash loses nothing either way). Bulk writes in the
  rollback journal always use FULL (NORMAL is not proof against a power cut there).
- The WAL is bounded in bytes, not pages (WAL_BYTES): SQLite's default checkpoint
  threshold of 1,000 pages meant a 64 MB WAL with 64 KiB pages. Beyond 64 MB (after an
  import into a served store) it is copied and cut back in the background, never in a
  commit (db/checkpoints.py).
- 64 KiB pages: chunk BLOBs are large; with 4 KiB pages WAL writes ran 2-3x slower.
- Bulk writes (ingest, append) switch the file to a rollback journal when this process
  is the only one using it: measured 1.5-2x faster than WAL for large BLOBs, because
  new pages are written once instead of to the WAL and again at checkpoint.
  A process that opens the file meanwhile waits for that transaction (up to the busy
  timeout): it switches the file back to WAL first, which needs the write lock. When
  others use the file, a new dataframe's chunks are staged instead (db/staging.py).
- During a bulk write, a helper thread fdatasync()s the file every WRITEBACK_BYTES
  written, so the disk writes overlap the copying instead of all waiting for the
  commit's fsync (see db/writeback.py).
- Locks are polled every millisecond at first (wait_for_locks), and a writer in line
  says so (file_locks.WAITING), so that an import's short transactions let it in.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Callable

import apsw

from ..errors import InvalidValue, StoreBusy, StoreReadOnly, StoreReplaced, TransactionError
from . import checkpoints, file_locks, statistics
from .checkpoints import WAL_BYTES
from .migrations import LATEST, MIGRATIONS
from .opening import (check_kind, check_readable, mark, readonly_connection, refuse_unwritable,
                      side_files, temp_files_beside, tidy)
from .sqlite_errors import reported
from .session import ADMIN_SESSION, Session, check_session
from .sql_functions import SQL_FUNCTIONS
from .writeback import Writeback, database_fd

PAGE_SIZE = 65536
BULK_BYTES = 16 << 20  # smaller writes are not worth a journal switch
BUSY_TIMEOUT_MS = 30_000
EMPTY_WAL_TIMEOUT_MS = 200  # a replaced file's WAL: how long to wait for readers, per try
CACHE_KIB = 16384  # page cache per connection; bounds memory during big transactions
MMAP_BYTES = 1 << 30  # reads map the file (measured 4-6% less CPU than pread for chunks)
# durability -> PRAGMA synchronous in WAL: "full" fsyncs the WAL at every commit
DURABILITY = {"full": "FULL", "normal": "NORMAL"}


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
    wait_for_locks(conn, BUSY_TIMEOUT_MS)
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


def wait_for_locks(conn: apsw.Connection, timeout_ms: int) -> None:
    """Wait up to `timeout_ms` for a lock another connection holds, looking again
    every millisecond for the first quarter second, then every 20 ms.

    SQLite's own busy timeout sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms
    between looks: behind a bulk import that hands the write lock over between its
    short transactions (db/staging.py), a writer would sleep through its turn."""
    state = {"deadline": 0.0}

    def busy(tries: int) -> bool:
        now = time.monotonic()
        if tries == 0:
            state["deadline"], state["fast"] = now + timeout_ms / 1000, now + 0.25
        if now >= state["deadline"]:
            return False
        time.sleep(0.001 if now < state["fast"] else 0.02)
        return True

    conn.set_busy_handler(busy if timeout_ms > 0 else None)


def bound_wal(conn: apsw.Connection, budget: int = WAL_BYTES) -> None:
    """Checkpoint when the WAL holds `budget` bytes, whatever the page size. A
    Database's connections then hand checkpoints to db/checkpoints.py, which also
    cuts a WAL file grown large back to the budget, in steps; a commit never cuts it
    (SQLite's journal_size_limit would, all at once)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {max(1, budget // page_size)}")
    conn.execute("PRAGMA journal_size_limit = -1")


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


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if there is none: a file deleted
    or replaced (renamed over) while open keeps its inode, the path gets another."""
    try:
        found = os.stat(path)
    except OSError:  # gone, or out of reach: either way not known to be the same
        return None
    return found.st_dev, found.st_ino


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
        self.checkpointer = checkpoints.Checkpointer(
            self.path, lambda: connect(self.path, durability=self.durability), database_fd)
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
            self._local.staging = False  # see staging()
            self._local.left_wal = False  # see would_share()
            self._local.fd = database_fd(conn)
            self._local.wal_pages = 0
            self._local.page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            if not self.readonly:
                self._watch_wal(conn)
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
        self.checkpointer.close()
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
        # a writer in line for the write lock says so: an import hands it over (an
        # import's own short transactions do not: two imports would wait on each other)
        waiting = depth == 0 and write and not self._local.staging \
            and file_locks.share(self._local.fd, file_locks.WAITING)
        try:
            yield from self._nest(conn, depth, write)
        finally:
            if waiting:
                file_locks.release(self._local.fd, file_locks.WAITING)
        if depth == 0 and write:
            self._after_commit(conn)

    def _nest(self, conn: apsw.Connection, depth: int, write: bool):
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

    def _watch_wal(self, conn: apsw.Connection) -> None:
        """Take over SQLite's automatic checkpoint (see db/checkpoints.py): the wal
        hook only notes the WAL's size; `_after_commit` decides."""
        local = self._local

        def noted(_conn, _name: str, pages: int) -> int:
            local.wal_pages = pages
            return apsw.SQLITE_OK

        conn.set_wal_hook(noted)

    def _after_commit(self, conn: apsw.Connection) -> None:
        pages, self._local.wal_pages = self._local.wal_pages, 0
        if pages and not self._local.staging:
            checkpoints.after_commit(conn, self._local.fd, pages, self._local.page_size,
                                     self.checkpointer.request)

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
            wait_for_locks(conn, BUSY_TIMEOUT_MS)

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
        try:
            with self.writing_back(fd), self.transaction() as conn:
                yield conn
        finally:
            if switched:
                self._restore_wal(conn)
            if large:
                conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")

    def would_share(self, size: int | None) -> bool:
        """Whether a bulk write of `size` bytes, about to start outside any transaction,
        would share the file with other connections (then it is staged in short
        transactions, db/staging.py). Alone, the file is left in the rollback
        journal for the `bulk()` that follows (which puts it back in WAL)."""
        if self.readonly or self.in_transaction or (size is not None and size < BULK_BYTES):
            return False
        self._local.left_wal = _try_rollback_journal(self.conn)
        return not self._local.left_wal

    def restore_wal(self) -> None:
        """Back to WAL if `would_share` left the file in the rollback journal and no
        `bulk()` followed (the write failed before it began). Inside a transaction,
        nothing: the `bulk()` under way puts it back when it ends."""
        if self._local.left_wal and not self.in_transaction:
            self._restore_wal(self.conn)

    @property
    def fd(self) -> int | None:
        """SQLite's descriptor of the file for this thread's connection (file_locks)."""
        self.conn
        return self._local.fd

    @contextlib.contextmanager
    def writing_back(self, fd: int | None, every: int | None = None):
        """While the block runs, `wrote()` pushes the pages written through `fd` to
        disk in the background, `every` bytes (see Writeback); a None `fd` does
        nothing."""
        if fd is None:
            yield
            return
        self._local.writeback = Writeback(fd, every)
        try:
            yield
        finally:
            self._local.writeback.finish()
            self._local.writeback = None

    @contextlib.contextmanager
    def staging(self):
        """This thread writes rows nobody sees yet: its commits leave the WAL to be
        checkpointed after the import (db/checkpoints.py)."""
        self.conn
        self._local.staging = True
        try:
            yield
        finally:
            self._local.staging = False

    def _restore_wal(self, conn: apsw.Connection) -> None:
        self._local.left_wal = False
        # never raise here: the write has committed (or the caller's error is on its
        # way). If another process keeps the lock, it switches the file back itself:
        # every connection puts the file in WAL when it opens.
        conn.execute(f"PRAGMA synchronous = {DURABILITY[self.durability]}")
        with contextlib.suppress(StoreBusy):
            ensure_wal(conn)
