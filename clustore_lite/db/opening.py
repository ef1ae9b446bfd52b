"""Which files may be opened as a store, and how to open one only to read it.

A store is marked in its header with PRAGMA application_id (APPLICATION_ID, "clst"):
new stores get it, and so do older stores (recognised by their schema version and
tables) the first time they are opened for writing. A SQLite file that holds tables
and carries no marker is another program's file: it is refused, unless the caller
asks to add a store's tables to it (`initialise=True`); one marked by another program
is always refused.

Reading alone opens the file with SQLITE_OPEN_READONLY: no WAL switch, no migration,
no marker written. SQLite still needs the -shm and -wal files of a WAL file; where it
cannot create them (a read-only directory or mount) and none exist, the file is opened
as immutable (nothing else can be writing it in WAL without them); -wal and -shm files
created only for a read are removed again by SQLite itself (see tidy)."""

from __future__ import annotations

import os

import apsw

from ..errors import NotAStore, StoreReadOnly, StoreVersionError
from .migrations import LATEST

APPLICATION_ID = 0x636C7374  # "clst" in the file header (offset 68)
# tables that every store has had since schema version 1: how unmarked stores are known
STORE_TABLES = {"user", "access", "organization", "dataframe", "chunk", "dataset"}
SIDE_FILES = ("-wal", "-shm")
RECOVERY_BUSY_MS = 30_000


def check_kind(conn: apsw.Connection, path: str, initialise: bool = False) -> bool:
    """Refuse a file that is not a store; True when it still needs the store's
    marker (an empty file, an unmarked store, or one the caller asked to initialise)."""
    marker = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > LATEST and marker in (0, APPLICATION_ID):
        raise StoreVersionError(
            f"this store file has schema version {version}, but this clustore-lite only "
            f"knows versions up to {LATEST}: upgrade clustore-lite to open it")
    if marker == APPLICATION_ID:
        return False
    if marker != 0:
        raise NotAStore(f"{path} is another program's SQLite file (application_id "
                        f"{marker:#x}), not a clustore-lite store: it was left unchanged")
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    if not tables or initialise or (version >= 1 and STORE_TABLES <= tables):
        return True
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise NotAStore(f"{path} is a SQLite file with other tables ({shown}), not a "
                    "clustore-lite store: it was left unchanged. Give a new file name, or "
                    "open it with clustore_lite.open(path, initialise=True) to add a "
                    "store's tables beside its own")


def check_readable(conn: apsw.Connection, path: str) -> None:
    """A read-only connection reads only a store of this clustore-lite's schema: it
    can neither create one nor upgrade an older one."""
    empty = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0
    if check_kind(conn, path) and empty:
        raise NotAStore(f"{path} is empty, not a clustore-lite store yet: there is "
                        "nothing to read")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < LATEST:
        raise StoreVersionError(
            f"the store file {path} has schema version {version}, older than this "
            f"clustore-lite's {LATEST}: open it once for writing to upgrade it, then read")


def refuse_unwritable(conn: apsw.Connection, path: str) -> None:
    """SQLite opens a file it may not write read-only without a word; every write
    would then fail. Say so at open instead."""
    if conn.readonly("main"):
        raise StoreReadOnly(
            f"the store file {path} cannot be written (a read-only file, directory or "
            "disk): open it read-only (clustore_lite.open(path, readonly=True), serve "
            "--read-only), or make it writable")


def mark(conn: apsw.Connection) -> None:
    """Mark the file as a store (a header write: call it inside a write transaction)."""
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def writable(path: str) -> bool:
    """Whether this process may write the store at `path`: the file (or, for a new
    one, its directory) and the directory for the -wal and -shm files SQLite adds."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return False
    if _read_only_mount(folder):
        return False
    needs_dir = not os.path.exists(path) or not all(
        os.path.exists(path + suffix) for suffix in SIDE_FILES)
    return not needs_dir or os.access(folder, os.W_OK)


def _read_only_mount(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def readonly_connection(path: str) -> apsw.Connection:
    """A connection that can only read `path` (see the module's docstring). A file
    left by a crash (a hot rollback journal) must be repaired before anyone reads it,
    which needs a write: done by a plain connection first, as any opener of the file
    would (it puts back the last committed state), then read-only again."""
    try:
        return _probed(_readonly(path))
    except apsw.ReadOnlyError:
        if not writable(path):
            raise
    recover = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
    try:
        recover.set_busy_timeout(RECOVERY_BUSY_MS)
        recover.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    finally:
        recover.close()
    return _probed(_readonly(path))


def _readonly(path: str) -> apsw.Connection:
    flags = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    if _needs_immutable(path):
        return apsw.Connection(f"file:{_quoted(path)}?immutable=1", flags=flags)
    return apsw.Connection(f"file:{_quoted(path)}?mode=ro", flags=flags)


def _probed(conn: apsw.Connection) -> apsw.Connection:
    """Read the schema now, so that a file needing repair fails here."""
    try:
        conn.set_busy_timeout(RECOVERY_BUSY_MS)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    except BaseException:
        conn.close()
        raise
    return conn


def _needs_immutable(path: str) -> bool:
    """True when SQLite could not create the -shm/-wal files a WAL file needs and
    none exist: then no process has the file open in WAL, and none can start writing
    it from here. A leftover -wal with content holds committed writes that immutable
    would skip: refused instead."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.access(folder, os.W_OK) and not _read_only_mount(folder):
        return False
    wal = path + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0 and not os.path.exists(path + "-shm"):
        raise StoreReadOnly(
            f"{path} has committed changes in {wal} that SQLite cannot read from a read-only "
            "directory without its -shm file: open it once where it can be written")
    return not any(os.path.exists(path + suffix) for suffix in SIDE_FILES)


def _quoted(path: str) -> str:
    """A path as the path part of a SQLite file: URI."""
    return os.path.abspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def side_files(path: str) -> dict[str, bool]:
    """Which of the -wal and -shm files exist now (to tidy after a read)."""
    return {suffix: os.path.exists(path + suffix) for suffix in SIDE_FILES}


def tidy(path: str, before: dict[str, bool]) -> None:
    """After a read, remove the -wal and -shm files that the read made, if no other
    process uses the file: a read-write connection that closes as the last one makes
    SQLite delete them itself (it checks, under its locks, that it is the last; the
    WAL is empty, so nothing is written to the file). Left alone when they existed
    before, when the file cannot be written, or when anything fails."""
    created = [s for s, existed in before.items() if not existed and os.path.exists(path + s)]
    if not created or not writable(path):
        return
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)
        try:
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchall()
        finally:
            conn.close()
    except apsw.Error:
        pass  # busy, or gone: the files stay, as SQLite leaves them


def temp_files_beside(path: str) -> None:
    """Make SQLite put its temporary files (big sorts, temporary indexes, statement
    journals of large changes) in the store's directory, not the system's temporary
    one: they can grow to the size of the data, which the store's disk was sized for,
    and a full /var/tmp or /tmp then failed writes while the store's disk had room.
    SQLite reads SQLITE_TMPDIR from the environment (older versions only before the
    first connection of the process), so the first store opened sets it, for the
    whole process; a value the user set is kept. temp_store=MEMORY was rejected:
    nothing bounds it, and those files can be as large as the store."""
    if TMPDIR_ENV in os.environ or path in ("", ":memory:") or path.startswith("file:"):
        return
    os.environ[TMPDIR_ENV] = os.path.dirname(os.path.abspath(path))


TMPDIR_ENV = "SQLITE_TMPDIR"
