"""Opening a file (issue 15, items 1, 5, 6, 7): another program's SQLite file is
refused unless asked to initialise it; reading changes nothing; SQLite's errors
arrive as the store's typed errors, never masked by a ROLLBACK; read-only access
works in a read-only place; SQLite's temporary files go beside the store."""

import os
import subprocess
import sys

import apsw
import numpy as np
import pyarrow as pa
import pytest

import clustore_lite
from faults import file_state, fill, immutable, read_only_mount, small_disk


APPLICATION_ID = 0x636C7374  # "clst": the store's marker in the SQLite header


def _foreign(path):
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                 "INSERT INTO notes (body) VALUES ('keep me')")
    conn.close()
    return path


def _header(path, pragma):
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute(f"PRAGMA {pragma}").fetchone()[0]
    finally:
        conn.close()


def _table(rows=1000, seed=1):
    return pa.table({"x": np.random.default_rng(seed).random(rows)})


@pytest.mark.parametrize("readonly", [False, True])
def test_another_programs_file_is_refused_and_left_unchanged(tmp_path, readonly):
    other = _foreign(tmp_path / "other.sqlite")
    before = file_state(other)
    with pytest.raises(clustore_lite.NotAStore, match="notes.*initialise=True"):
        clustore_lite.open(other, readonly=readonly)
    assert file_state(other) == before
    assert _header(other, "journal_mode") == "delete"


def test_initialise_adds_a_store_beside_the_files_own_tables(tmp_path):
    other = _foreign(tmp_path / "other.sqlite")
    with clustore_lite.open(other, initialise=True) as store:
        store.organizations.create("lumen")
    assert _header(other, "application_id") == APPLICATION_ID
    with clustore_lite.open(other) as store:  # marked now: no need to ask again
        assert store.organizations.count() == 1
        assert store.db.execute("SELECT body FROM notes").fetchone()[0] == "keep me"


def test_a_file_marked_by_another_program_is_refused(tmp_path):
    path = tmp_path / "theirs.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA application_id = 1234")
    conn.close()
    with pytest.raises(clustore_lite.NotAStore, match="another program"):
        clustore_lite.open(path, initialise=True)


def test_new_stores_are_marked_and_older_ones_on_their_first_write_open(db_path):
    clustore_lite.open(db_path).close()
    assert _header(db_path, "application_id") == APPLICATION_ID
    conn = apsw.Connection(str(db_path))  # an older store: no marker yet
    conn.execute("PRAGMA application_id = 0")
    conn.close()
    with clustore_lite.open(db_path, readonly=True) as store:  # recognised, not changed
        assert store.organizations.count() == 0
    assert _header(db_path, "application_id") == 0
    clustore_lite.open(db_path).close()
    assert _header(db_path, "application_id") == APPLICATION_ID


def test_reading_changes_nothing_and_refuses_writes(db_path):
    with clustore_lite.open(db_path) as store:
        org = store.organizations.create("lumen")
        store.datasets.create(org["id"], "d", _table())
    before = file_state(db_path)
    with clustore_lite.open(db_path, readonly=True) as store:
        assert store.readonly
        assert store.organizations.get(org["id"])["name"] == "lumen"
        assert store.datasets.read(store.datasets.list()[0]["id"]).num_rows == 1000
        with pytest.raises(clustore_lite.StoreReadOnly, match="read-only"):
            store.organizations.create("other")
        with pytest.raises(clustore_lite.StoreReadOnly):
            store.organizations.update(org["id"], name="renamed")
    assert file_state(db_path) == before  # same bytes, no -wal or -shm left behind


def test_a_store_on_a_read_only_mount_is_read_without_side_files(tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    with clustore_lite.open(source / "s.sqlite") as store:
        store.organizations.create("lumen")
    with read_only_mount(source, tmp_path / "ro") as mounted:
        path = mounted / "s.sqlite"
        with pytest.raises(clustore_lite.StoreReadOnly, match="readonly=True"):
            clustore_lite.open(path)
        with clustore_lite.open(path, readonly=True) as store:
            assert [o["name"] for o in store.organizations.list()] == ["lumen"]
        assert sorted(os.listdir(mounted)) == ["s.sqlite"]


def test_a_file_nobody_may_write_is_refused_for_writing_and_read_read_only(db_path):
    with clustore_lite.open(db_path) as store:
        store.organizations.create("lumen")
    with immutable(db_path):
        with pytest.raises(clustore_lite.StoreReadOnly, match="cannot be written"):
            clustore_lite.open(db_path)
        with clustore_lite.open(db_path, readonly=True) as store:
            assert store.organizations.count() == 1


def test_raw_sqlite_errors_become_typed_errors(tmp_path):
    text = tmp_path / "data.csv"
    text.write_text("a,b\n" * 2000)
    with pytest.raises(clustore_lite.NotAStore, match="not a SQLite file"):
        clustore_lite.open(text)
    assert text.read_text() == "a,b\n" * 2000
    with pytest.raises(clustore_lite.CannotOpen, match="does not exist"):
        clustore_lite.open(tmp_path / "missing" / "s.sqlite")
    truncated = tmp_path / "cut.sqlite"
    with clustore_lite.open(truncated) as store:
        org = store.organizations.create("lumen")
        store.datasets.create(org["id"], "d", _table(200_000))
    os.truncate(truncated, os.path.getsize(truncated) // 2)
    with pytest.raises(clustore_lite.DataCorrupted, match="check"):
        with clustore_lite.open(truncated, readonly=True) as store:
            store.datasets.read(store.datasets.list()[0]["id"])


def test_a_value_over_sqlites_limit_is_too_big(store, org):
    store.db.conn.limit(apsw.SQLITE_LIMIT_LENGTH, 100_000)  # SQLite's 1 GB, scaled down
    with pytest.raises(clustore_lite.TooBig, match="chunk-rows"):
        store.datasets.create(org["id"], "d", _table(50_000), chunk_rows=50_000)
    assert store.datasets.count() == 0


def test_a_full_disk_is_reported_as_full_not_masked_by_rollback(tmp_path):
    with small_disk(tmp_path / "disk", "16m") as disk:
        with clustore_lite.open(disk / "s.sqlite") as store:
            org = store.organizations.create("lumen")
            store.datasets.create(org["id"], "d", _table(200_000))
            fill(disk)
            with pytest.raises(clustore_lite.StoreFull, match="disk .* is full"):
                store.datasets.create(org["id"], "e", _table(200_000))
            with pytest.raises(clustore_lite.StoreFull):
                with store.transaction():  # SQLite rolls back on its own, below a savepoint
                    store.organizations.create("other")
                    # one 20 MB chunk: more than the page cache, so SQLite spills it to
                    # the full disk and rolls the whole transaction back itself
                    store.datasets.create(org["id"], "f", _table(2_500_000))
            os.remove(disk / "filler")
            assert store.organizations.count() == 1  # nothing half-written, and usable
            store.organizations.update(org["id"], name="renamed")
            assert store.datasets.count() == 1


def test_a_backup_onto_a_full_disk_says_the_disk_is_full(store, org, tmp_path):
    store.datasets.create(org["id"], "d", _table(400_000))
    with small_disk(tmp_path / "disk") as disk:
        with pytest.raises(clustore_lite.StoreFull, match="disk holding .* is full"):
            store.backup(disk / "copy.sqlite")
        assert os.listdir(disk) == []  # no partial copy left


TEMP_SPILL = """
import sys, clustore_lite
store = clustore_lite.open(sys.argv[1])
conn = store.db.conn
conn.execute("CREATE TEMP TABLE t (x); PRAGMA temp.cache_size = 10")
conn.execute("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 40000) "
             "INSERT INTO t SELECT randomblob(100) FROM r")
print("ok")
"""


def test_sqlites_temporary_files_go_beside_the_store(tmp_path):
    """The system's temporary directory is full; the store's disk has room."""
    with small_disk(tmp_path / "tmp", "256k") as tmp:
        fill(tmp)
        env = {k: v for k, v in os.environ.items() if k != "SQLITE_TMPDIR"}
        env["TMPDIR"] = str(tmp)
        done = subprocess.run([sys.executable, "-c", TEMP_SPILL, str(tmp_path / "s.sqlite")],
                              capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
