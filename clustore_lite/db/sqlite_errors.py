"""SQLite's errors that are not bugs, as the store's own errors: a damaged file
(DataCorrupted, code data-corrupted) and a statement over one of SQLite's limits
(InvalidValue, code validation-failed). query.py's limits keep each filter within
SQLite's; this is for what only the whole statement can exceed (a deep selection
with filters at every level)."""

from __future__ import annotations

import contextlib

import apsw

from ..errors import ClustoreError, DataCorrupted, InvalidValue

CORRUPTION = (apsw.CorruptError, apsw.NotADBError)
# SQLite's limits a statement can pass (prepare-time errors), by the start of SQLite's message
SQLITE_LIMITS = ("Expression tree is too large", "too many SQL variables",
                 "LIKE or GLOB pattern too complex", "parser stack overflow",
                 "too many terms in ORDER BY clause", "too many FROM clause terms",
                 "at most 64 tables in a join", "too many columns")


def translated(error: apsw.Error) -> ClustoreError | None:
    """The store's error for one of SQLite's, or None when it is unexpected."""
    if isinstance(error, CORRUPTION):
        return DataCorrupted(f"the store file is damaged ({error}); `clustore-lite check` "
                             "tells what is damaged, restore a backup to repair it")
    if isinstance(error, apsw.SQLError) and str(error).startswith(SQLITE_LIMITS):
        return InvalidValue(f"the query is too large for SQLite ({error}); ask for fewer "
                            "nested levels, filters or values at once")
    return None


@contextlib.contextmanager
def reported():
    """Raise the store's error for SQLite's errors that have one."""
    try:
        yield
    except apsw.Error as error:
        ours = translated(error)
        if ours is None:
            raise
        raise ours from error
