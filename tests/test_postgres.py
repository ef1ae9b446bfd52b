"""`push` against a real PostgreSQL: first copy, incremental pushes, pushes cut short,
several stores in one database, and the mirror's schema against the store's."""

import json
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite.catalog import TABLES

from pg_server import cluster, unavailable, url  # noqa: F401 - fixtures

try:
    import psycopg
    from psycopg.rows import dict_row

    from clustore_lite.mirror import postgres
    from clustore_lite.catalog import pg_type
    from clustore_lite.mirror.pg_schema import ORDER
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")

CLI = [sys.executable, "-m", "clustore_lite"]


def fill(store, org_name="lumen", mb=8, tag="a"):
    """A store with one of everything, and dataframes of `mb` megabytes in ~1 MB chunks."""
    ana = store.users.create("ana", f"ana@{tag}.example.org")
    bob = store.users.create("bob")
    org = store.organizations.create(org_name, owner_id=ana.id, public="guest",
                                     webhook="http://127.0.0.1:9/hook")
    team = store.teams.create(org.id, "core", members=[ana.id, bob.id])
    store.memberships.create(org.access_id, "contributor", user_id=bob.id, follow=True,
                             webhook="http://127.0.0.1:9/bob")
    store.memberships.create(org.access_id, "guest", team_id=team.id)
    rows = mb * 2**20 // 16
    rng = np.random.default_rng(7)
    big = store.datasets.create(org.id, "points", pa.table({"x": rng.random(rows), "y": rng.random(rows)}),
                                owner_id=ana.id, chunk_rows=65_536, metadata={"source": "test"})
    small = store.datasets.create(org.id, "names", {"name": ["a", "b", "c"], "n": [1, 2, 3]},
                                  compression="zstd")
    store.tasks.create(org.id, "kmeans-2", dataset_id=big.id, owner_id=bob.id,
                       algorithm={"name": "kmeans", "k": 2, "init": "kmeans_pp", "mu": 0.5},
                       variables={"x": 1}, predictions=[0, 1], identifier="run-1",
                       centroids={"x": [0.25, 0.75], "y": [0.25, 0.75]},
                       labels={"label": pa.array(np.arange(100) % 2)})
    store.trackings.create("view", user_id=ana.id, organization_id=org.id, resource="dataset",
                           resource_id=small.id, payload={"page": 1})
    return {"ana": ana, "bob": bob, "org": org, "team": team, "big": big, "small": small}


@pytest.fixture
def store(tmp_path):
    with clustore_lite.open(tmp_path / "edge.sqlite") as opened:
        yield opened


def normal(table, column, value, local):
    if value is None:
        return None
    kind = pg_type(table, column)
    if kind == "uuid":
        return str(value)
    if kind == "timestamptz":
        return datetime.fromisoformat(value) if local else value
    if kind == "jsonb":
        return json.loads(value) if local else value
    if kind == "boolean":
        return bool(value)
    if kind == "bytea":
        return bytes(value)
    return value


def key_of(table, row):
    return " ".join(str(row[c]) for c in TABLES[table].key)


def local_rows(store):
    out = {}
    for table in ORDER:
        rows = store.db.query(f"SELECT * FROM {TABLES[table].quoted}")
        out[table] = {key_of(table, r): {c: normal(table, c, r[c], True) for c in r} for r in rows}
    return out


def pg_rows(url):
    out = {}
    with psycopg.connect(url, row_factory=dict_row) as conn:
        for table in ORDER:
            rows = conn.execute(f"SELECT * FROM public.{TABLES[table].quoted}").fetchall()
            out[table] = {key_of(table, r): {c: normal(table, c, r[c], False) for c in r}
                          for r in rows}
    return out


def claimed(url, origin):
    with psycopg.connect(url) as conn:
        rows = conn.execute('SELECT "table", key FROM clustore_lite.pushed WHERE origin = %s',
                            (origin,)).fetchall()
    out = {t: set() for t in ORDER}
    for table, key in rows:
        out[table].add(key)
    return out


def assert_mirrors(store, url, alone=True):
    """Every row of the store is in PostgreSQL, equal column for column (chunk bytes
    included); the store's claims are exactly its rows; alone: nothing else is there."""
    local, remote = local_rows(store), pg_rows(url)
    claims = claimed(url, postgres.store_origin(store))
    for table in ORDER:
        for key, row in local[table].items():
            assert remote[table].get(key) == row, (table, key)
        assert claims[table] == set(local[table]), table
        if alone:
            assert set(remote[table]) == set(local[table]), table


def test_first_push_copies_everything(store, url):
    made = fill(store)
    report = postgres.push(store, url, batch_bytes=4 * 2**20)
    assert not report.conflicts and report.deleted_rows == 0
    assert report.sent_bytes == store.db.execute("SELECT sum(size) FROM chunk").fetchone()[0] > 8e6
    assert_mirrors(store, url)
    with psycopg.connect(url) as conn:
        # relationships hold in PostgreSQL: the dataset's chunks, in order, are its rows
        blobs = [bytes(b) for (b,) in conn.execute(
            "SELECT c.data FROM dataset d JOIN chunk c ON c.\"dataframeId\" = d.\"dataframeId\" "
            "WHERE d.id = %s ORDER BY c.position", (made["big"].id,))]
        teams = conn.execute("SELECT name FROM clustore_user_teams("
                             "(SELECT u FROM \"user\" u WHERE id = %s))", (made["bob"].id,)).fetchall()
    read = pa.Table.from_batches([b for blob in blobs for b in pa.ipc.open_stream(blob)])
    assert read.equals(store.datasets.read(made["big"].id))
    assert teams == [("core",)]
    again = postgres.push(store, url)
    assert (again.sent_rows, again.deleted_rows) == (0, 0)


def test_next_push_sends_changes_only(store, url):
    made = fill(store)
    postgres.push(store, url)
    carl = store.users.create("carl", "carl@example.org")
    store.organizations.update(made["org"].id, name="lumen-2")
    store.teams.remove_member(made["team"].id, made["ana"].id)
    store.teams.add_member(made["team"].id, carl.id)
    store.datasets.append(made["big"].id, {"x": [1.0, 2.0], "y": [3.0, 4.0]})
    store.datasets.delete(made["small"].id)
    task = store.tasks.list()[0]
    store.tasks.update(task.id, centroids={"x": [0.1, 0.9], "y": [0.2, 0.8]})
    store.users.delete(made["bob"].id)  # ownerId and userId set to NULL, updatedAt kept
    store.accesses.regenerate_token(made["org"].access_id, "admin")
    report = postgres.push(store, url)
    assert report.sent["chunk"] == 2  # the appended chunk and the new centroids
    assert report.sent["dataframe"] == 2 and report.sent["organization"] == 1
    assert report.deleted["user"] == 1 and report.deleted["dataset"] == 1
    assert_mirrors(store, url)
    store.organizations.delete(made["org"].id)
    report = postgres.push(store, url)
    assert_mirrors(store, url)
    assert pg_rows(url)["chunk"] == {} and report.deleted["chunk"] > 8


def test_push_cut_short_inside_a_batch_is_finished_by_the_next(store, url, monkeypatch):
    fill(store)
    original, calls = postgres.Pusher._copy_new, []

    def failing(self, table, batch):
        original(self, table, batch)
        calls.append(table)
        if len(calls) == 3:  # the chunks of this batch are written, not yet committed
            raise KeyboardInterrupt

    monkeypatch.setattr(postgres.Pusher, "_copy_new", failing)
    with pytest.raises(KeyboardInterrupt):
        postgres.push(store, url, batch_bytes=2**20)
    monkeypatch.undo()
    partial = pg_rows(url)
    claims = claimed(url, postgres.store_origin(store))
    assert 0 < len(partial["chunk"]) < store.chunks.count()
    assert {t: set(rows) for t, rows in partial.items()} == claims  # whole batches only
    postgres.push(store, url)
    assert_mirrors(store, url)


def test_push_killed_by_sigkill_resumes_without_loss_or_duplicates(store, url, tmp_path):
    fill(store, mb=16)
    store.close()
    db = str(tmp_path / "edge.sqlite")
    slowed = ("import time\nfrom clustore_lite.mirror import postgres\n"
              "session = postgres.Pusher._session\n"
              "def slow(self):\n    session(self)\n    time.sleep(0.15)\n"
              "postgres.Pusher._session = slow\n"
              "from clustore_lite.cli import main\n"
              f"main(['push', {db!r}, {url!r}, '--batch-mb', '1', '-q'])\n")
    child = subprocess.Popen([sys.executable, "-c", slowed], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with psycopg.connect(url) as conn:
                n = conn.execute("SELECT count(*) FROM clustore_lite.pushed "
                                 "WHERE \"table\" = 'chunk'").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            n = 0
        if n >= 3:
            break
        time.sleep(0.02)
    assert child.poll() is None, child.stderr.read()
    child.send_signal(signal.SIGKILL)
    child.wait()
    with clustore_lite.open(db) as reopened:
        partial = pg_rows(url)
        assert 3 <= len(partial["chunk"]) < reopened.chunks.count()
        result = subprocess.run([*CLI, "push", db, url, "-q"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "rows sent" in result.stdout
        assert_mirrors(reopened, url)


def test_two_stores_share_a_database_and_name_clashes_are_reported(tmp_path, url):
    first, second = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    with clustore_lite.open(first) as a, clustore_lite.open(second) as b:
        fill(a, "lumen", mb=1)
        clash = fill(b, "lumen", mb=1, tag="b")["org"]
        b.organizations.create("other")
    ok = subprocess.run([*CLI, "push", str(first), url, "-q"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    clashed = subprocess.run([*CLI, "push", str(second), url, "-q"], capture_output=True, text=True)
    assert clashed.returncode == 3
    assert f"organization 'lumen' ({clash.id}) was not pushed: name 'lumen' is taken" in clashed.stderr
    assert "1 name conflict" in clashed.stderr
    with clustore_lite.open(first) as a, clustore_lite.open(second) as b:
        assert_mirrors(a, url, alone=False)
        remote = pg_rows(url)
        assert clash.id not in remote["organization"] and clash.access_id not in remote["access"]
        assert not any(r["organizationId"] == clash.id for r in remote["dataset"].values())
        assert "other" in {r["name"] for r in remote["organization"].values()}
        b.organizations.update(clash.id, name="lumen-b")
    renamed = subprocess.run([*CLI, "push", str(second), url, "-q"], capture_output=True, text=True)
    assert renamed.returncode == 0, renamed.stderr
    with clustore_lite.open(first) as a, clustore_lite.open(second) as b:
        assert_mirrors(a, url, alone=False)
        assert_mirrors(b, url, alone=False)
        for org in a.organizations.list():
            a.organizations.delete(org.id)
        postgres.push(a, url)
        assert_mirrors(a, url, alone=False)
        assert_mirrors(b, url, alone=False)  # b's rows untouched by a's deletes
        remote = pg_rows(url)
        for table in ("organization", "team", "dataset", "task", "access", "chunk"):
            assert set(remote[table]) == set(local_rows(b)[table]), table


def test_a_user_shared_by_two_stores_stays_while_one_claims_it(tmp_path, url):
    shared = "6f1c0a6e-3f7b-4c55-9d8e-1f2a3b4c5d6e"  # e.g. the `sub` of one JWT
    with clustore_lite.open(tmp_path / "a.sqlite") as a, clustore_lite.open(tmp_path / "b.sqlite") as b:
        for edge in (a, b):
            edge.users.create("ana", "ana@example.org", id=shared)
            postgres.push(edge, url)
        a.users.delete(shared)
        postgres.push(a, url)
        assert shared in pg_rows(url)["user"]
        b.users.delete(shared)
        postgres.push(b, url)
        assert shared not in pg_rows(url)["user"]


def test_the_mirror_has_the_store_columns_keys_and_constraints(store, url):
    postgres.push(store, url)
    with psycopg.connect(url) as conn:
        for table in ORDER:
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "'public' AND table_name = %s ORDER BY ordinal_position", (table,))]
            assert columns == [r[1] for r in store.db.execute(f'PRAGMA table_info("{table}")')]
            pg_fks = set(conn.execute(
                "SELECT a.attname, c.confrelid::regclass::text, c.confdeltype FROM pg_constraint c "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                "WHERE c.contype = 'f' AND c.conrelid = %s::regclass", (f'public."{table}"',)))
            actions = {"CASCADE": "c", "SET NULL": "n", "NO ACTION": "a"}
            sqlite_fks = {(r[3], r[2] if r[2] != "user" else '"user"', actions[r[6]])
                          for r in store.db.execute(f'PRAGMA foreign_key_list("{table}")')}
            assert pg_fks == sqlite_fks, table
            pg_unique = {tuple(r[0]) for r in conn.execute(
                "SELECT array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
                "FROM pg_index i "
                "WHERE i.indisunique AND i.indrelid = %s::regclass", (f'public."{table}"',))}
            sqlite_unique = {tuple(r[2] for r in store.db.execute(f'PRAGMA index_info("{i[1]}")'))
                             for i in store.db.execute(f'PRAGMA index_list("{table}")') if i[2]}
            if TABLES[table].key != ("id",):  # WITHOUT ROWID: the key is the primary key
                sqlite_unique.add(TABLES[table].key)
            assert pg_unique == sqlite_unique, table


def test_full_push_repairs_rows_changed_in_postgresql(store, url):
    made = fill(store, mb=1)
    postgres.push(store, url)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM tracking")
        conn.execute("DELETE FROM chunk WHERE position = 1")
        conn.execute("UPDATE organization SET name = 'renamed' WHERE id = %s", (made["org"].id,))
    assert postgres.push(store, url).sent_rows == 0  # recorded digests are trusted...
    report = postgres.push(store, url, full=True)  # ...unless asked to compare everything
    assert report.sent_rows == sum(len(rows) for rows in local_rows(store).values())
    assert_mirrors(store, url)


def test_staged_chunks_of_an_import_in_flight_are_not_pushed(store, url):
    """Chunks a served import staged (their dataframe does not exist yet, db/staging.py)
    are no rows yet: a push sends none of them, and deletes none it sent before."""
    fill(store)
    staged = "5e7c0000-0000-4000-8000-000000000001"
    conn = store.db.conn
    conn.execute("PRAGMA foreign_keys = OFF")
    frame = "5e7c0000-0000-4000-8000-000000000002"
    conn.execute("INSERT INTO chunk_import (dataframeId, startedAt) VALUES (?, 't')", (frame,))
    conn.execute("INSERT INTO chunk (id, dataframeId, position, rows, size, createdAt, "
                 "updatedAt, data) VALUES (?, ?, 1, 1, 1, '2026-11-27T00:00:00Z', "
                 "'2026-11-27T00:00:00Z', x'00')", (staged, frame))
    conn.execute("PRAGMA foreign_keys = ON")
    report = postgres.push(store, url)
    assert report.refused == [] and report.held_back == 0  # not even considered
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT count(*) FROM public.chunk WHERE id = %s",
                          (staged,)).fetchone()[0] == 0
    store.db.execute("DELETE FROM chunk WHERE id = ?", (staged,))
    assert_mirrors(store, url)
