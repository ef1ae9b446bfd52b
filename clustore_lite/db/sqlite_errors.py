"""SQLite's errors that are not bugs, as the store's own errors, each with a message
that says what to do: a damaged file (DataCorrupted), a file that is not SQLite
(NotAStore), a full disk (StoreFull), a read-only file (StoreReadOnly), a file SQLite
cannot open (CannotOpen), an I/O error (StoreIOError), a value over SQLite's 1 GB
limit (TooBig) and a statement over one of SQLite's limits (InvalidValue).
query.py's limits keep each filter within SQLite's; the last is for what only the
whole statement can exceed (a deep selection with filters at every level)."""

from __future__ import annotations

import contextlib
import os
import shutil

import apsw

from ..errors import (CannotOpen, ClustoreError, DataCorrupted, InvalidValue, NotAStore,
                      StoreBusy, StoreFull, StoreIOError, StoreReadOnly, TooBig)

CORRUPTION = (apsw.CorruptError, apsw.NotADBError)
# every SQLite error that translated() turns into a store error whatever its message
KNOWN = (*CORRUPTION, apsw.FullError, apsw.ReadOnlyError, apsw.CantOpenError,
         apsw.IOError, apsw.TooBigError, apsw.BusyError)
LOW_SPACE = 1 << 20  # an I/O error with less free space than this is taken for a full disk
# SQLite's limits a statement can pass (prepare-time errors), by the start of SQLite's message
SQLITE_LIMITS = ("Expression tree is too large", "too many SQL variables",
                 "LIKE or GLOB pattern too complex", "parser stack overflow",
                 "too many terms in ORDER BY clause", "too many FROM clause terms",
                 "at most 64 tables in a join", "too many columns")


def translated(error: apsw.Error, path: str | None = None) -> ClustoreError | None:
    """The store's error for one of SQLite's, or None when it is unexpected. `path`,
    the store file, makes the message name it."""
    where = f"the store file {path}" if path else "the store file"
    if isinstance(error, apsw.NotADBError):
        return NotAStore(f"{path or 'the file'} is not a clustore-lite store: it is not a "
                         "SQLite file at all (or its first page is damaged); check the "
                         "file name and the order of the arguments")
    if isinstance(error, apsw.CorruptError):
        return DataCorrupted(f"the store file is damaged ({error}); `clustore-lite check "
                             f"{path or 'FILE'}` tells what is damaged, restore a backup "
                             "to repair it")
    for kind, make in _BY_KIND:
        if isinstance(error, kind):
            return make(error, path, where)
    if isinstance(error, apsw.SQLError) and str(error).startswith(SQLITE_LIMITS):
        return InvalidValue(f"the query is too large for SQLite ({error}); ask for fewer "
                            "nested levels, filters or values at once")
    return None


def _full(error, path, where) -> ClustoreError:
    return StoreFull(f"the disk holding {where} is full: the change was undone; free "
                     "some space (or move the store to a larger disk) and try again")


def _read_only(error, path, where) -> ClustoreError:
    return StoreReadOnly(f"{where} cannot be written ({error}): it was opened read-only, or "
                         "the file, its directory or its disk is read-only; make them "
                         "writable, or only read (readonly=True, serve --read-only)")


def _cannot_open(error, path, where) -> ClustoreError:
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    if folder and not os.path.isdir(folder):
        return CannotOpen(f"cannot open {where}: the directory {folder} does not exist; "
                          "create it first or give another path")
    return CannotOpen(f"cannot open {where} ({error}): check that it is a file this user "
                      "may read (and its directory, for the -wal and -shm files SQLite "
                      "keeps beside it)")


def _io(error, path, where) -> ClustoreError:
    if path and _disk_free(path) < LOW_SPACE:  # a write past a full disk (the -shm file's
        return _full(error, path, where)       # mapping, a truncate) comes back as I/O
    return StoreIOError(f"the disk reported an I/O error on {where} ({error}); the change "
                        "was undone. Check the disk (dmesg), then run `clustore-lite check`")


def _too_big(error, path, where) -> ClustoreError:
    return TooBig("a value is over SQLite's limit of 1 GB for one value (a chunk, a "
                  "string): import with a smaller --chunk-rows (chunk_rows=...)")


def _busy(error, path, where) -> ClustoreError:
    # past the busy timeout: another process holds the lock, e.g. a bulk import alone
    # on the file (rollback journal) locks out openers until its commit
    return StoreBusy(f"{where} stayed locked by another connection for longer than the "
                     "busy timeout (a long write, such as a bulk import, holds it); "
                     "try again")


def _disk_free(path: str) -> int:
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    except OSError:
        return LOW_SPACE


_BY_KIND = ((apsw.FullError, _full), (apsw.ReadOnlyError, _read_only),
            (apsw.CantOpenError, _cannot_open), (apsw.IOError, _io),
            (apsw.TooBigError, _too_big), (apsw.BusyError, _busy))


@contextlib.contextmanager
def reported(path: str | None = None):
    """Raise the store's error for SQLite's errors that have one."""
    try:
        yield
    except apsw.Error as error:
        ours = translated(error, path)
        if ours is None:
            raise
        raise ours from error
