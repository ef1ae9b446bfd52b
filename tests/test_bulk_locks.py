"""A store held by a long write in the rollback journal (a bulk import alone on the
file): a process that opens it waits, and past the busy timeout gets StoreBusy, a
typed error that says to try again (issue 17 item 2), not SQLite's bare BusyError."""

import apsw
import pytest

import clustore_lite
from clustore_lite.db import connection


def test_opening_past_the_busy_timeout_raises_store_busy(tmp_path, monkeypatch):
    path = str(tmp_path / "held.sqlite")
    clustore_lite.open(path).close()
    holder = apsw.Connection(path)  # what a bulk write alone on the file does
    holder.execute("PRAGMA journal_mode = DELETE").fetchall()
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 50)  # the real one is 30 s
    try:
        with pytest.raises(clustore_lite.StoreBusy, match="try again"):
            clustore_lite.open(path)
    finally:
        holder.execute("ROLLBACK")
        holder.execute("PRAGMA journal_mode = WAL").fetchall()
        holder.close()
    with clustore_lite.open(path) as store:  # and once the write ends, it opens
        store.organizations.create("after")
