"""The file: migrations, pragmas, and readability by the SQLite ecosystem."""

import os
import subprocess
import sys

import apsw
import numpy as np
import pyarrow as pa
import pytest
import sqlite_utils

import clustore_lite
from clustore_lite import StoreVersionError
from clustore_lite.db import migrations
from clustore_lite.db import connection as storage, writeback

ENTITY_TABLES = {"user", "organization", "team", "team_member", "access", "membership",
                 "dataframe", "chunk", "dataset", "task", "tracking"}


def test_new_file_settings(store):
    pragma = lambda name: store.db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("page_size") == storage.PAGE_SIZE
    assert pragma("foreign_keys") == 1
    assert pragma("user_version") == migrations.LATEST


def test_newer_file_is_refused(db_path):
    clustore_lite.open(db_path).close()
    conn = apsw.Connection(str(db_path))
    conn.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    conn.close()
    with pytest.raises(StoreVersionError, match="upgrade clustore-lite"):
        clustore_lite.open(db_path)


def test_older_file_is_upgraded_keeping_its_data(db_path, monkeypatch):
    with clustore_lite.open(db_path) as store:
        store.organizations.create("kept")
    extra = "ALTER TABLE organization ADD COLUMN motto TEXT; UPDATE organization SET motto = 'hi'"
    monkeypatch.setattr(storage, "MIGRATIONS", [*migrations.MIGRATIONS, extra])
    monkeypatch.setattr(storage, "LATEST", migrations.LATEST + 1)
    with clustore_lite.open(db_path) as store:
        assert store.db.query("SELECT name, motto FROM organization") == [{"name": "kept", "motto": "hi"}]
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == migrations.LATEST + 1


def test_a_failing_migration_leaves_the_file_as_it_was(db_path, monkeypatch):
    clustore_lite.open(db_path).close()
    broken = "CREATE TABLE fine (x); THIS IS NOT SQL"
    monkeypatch.setattr(storage, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    monkeypatch.setattr(storage, "LATEST", migrations.LATEST + 1)
    with pytest.raises(apsw.SQLError):
        clustore_lite.open(db_path)
    conn = apsw.Connection(str(db_path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.LATEST
    assert not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'fine'").fetchall()


def test_sqlite_utils_reads_the_file(db_path):
    with clustore_lite.open(db_path) as store:
        org = store.organizations.create("lumen")
        store.datasets.create(org["id"], "iris", {"x": [1.0]})
    db = sqlite_utils.Database(str(db_path))
    assert ENTITY_TABLES <= set(db.table_names())
    assert [r["name"] for r in db["organization"].rows] == ["lumen"]
    out = subprocess.run([sys.executable, "-m", "sqlite_utils", "tables", str(db_path), "--counts"],
                         capture_output=True, text=True, check=True).stdout
    assert '"table": "dataset", "count": 1' in out


def test_bulk_write_falls_back_to_wal_when_the_file_is_shared(db_path):
    with clustore_lite.open(db_path) as writer, clustore_lite.open(db_path) as reader:
        org = writer.organizations.create("lumen")
        assert reader.organizations.get(org["id"])  # reader holds the file open in WAL
        writer.datasets.create(org["id"], "d", {"x": [1, 2, 3]})
        assert writer.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reader.datasets.list()[0]["name"] == "d"


def test_small_writes_stay_in_wal(db_path):
    with clustore_lite.open(db_path) as store:
        switches = []
        original = storage._try_rollback_journal
        storage._try_rollback_journal = lambda conn: switches.append(conn) or original(conn)
        try:
            store.dataframes.create({"x": [1]})
            store.dataframes.create(pa.table({"x": pa.array(range(1000))}))
        finally:
            storage._try_rollback_journal = original
        assert switches == []


def test_bulk_write_alone_uses_the_rollback_journal_and_returns_to_wal(db_path):
    big = pa.table({"x": pa.array(np.zeros(storage.BULK_BYTES // 8 + 1))})
    with clustore_lite.open(db_path) as store:
        seen = []
        original = store.db.transaction

        def spy(*args, **kwargs):
            seen.append(store.db.conn.execute("PRAGMA journal_mode").fetchone()[0])
            seen.append(store.db.conn.execute("PRAGMA mmap_size").fetchone()[0])
            return original(*args, **kwargs)

        store.db.transaction = spy
        store.dataframes.create(big)
        assert seen[:2] == ["delete", 0]  # no memory map while writing big BLOBs
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA mmap_size").fetchone()[0] == storage.MMAP_BYTES


def test_bulk_write_flushes_to_disk_in_the_background(db_path, monkeypatch):
    synced = []
    monkeypatch.setattr(writeback, "WRITEBACK_BYTES", 1)
    monkeypatch.setattr(storage, "BULK_BYTES", 0)  # small data, taken as a bulk write
    monkeypatch.setattr(writeback, "sync", lambda fd: synced.append(os.fstat(fd).st_ino))
    with clustore_lite.open(db_path) as store:
        frame = store.dataframes.create({"x": list(range(100))}, chunk_rows=10)
        assert store.dataframes.read(frame["id"]).num_rows == 100
        assert store.db._local.writeback is None  # joined and dropped after the commit
    assert synced and set(synced) == {os.stat(db_path).st_ino}  # SQLite's own descriptor
