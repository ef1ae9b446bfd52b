"""A bulk import into a store another process uses is staged (issue 17, db/staging.py):
written in short transactions as chunks nobody sees, made visible by one final commit,
with the write lock handed to waiting writers between slices; a failed import leaves
nothing, a killed one leaves nothing visible and is swept at the next open."""

import contextlib
import random
import signal
import subprocess
import sys
import threading
import time

import apsw
import numpy as np
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite.db import staging
from serving import Client, running_server

SEED = 4242
ROWS, COLUMNS = 200_000, 8  # 12.8 MB of float64


def table(seed: int = SEED) -> pa.Table:
    print("seed", seed)
    rng = np.random.default_rng(seed)
    return pa.table({f"x{i}": rng.random(ROWS) for i in range(COLUMNS)})


@contextlib.contextmanager
def reading(path, look):
    """Another connection calls `look(store)` in a loop while the block runs; yields
    the list of what it saw. Its errors fail the test."""
    stop, seen, errors = threading.Event(), [], []

    def reader():
        try:
            with clustore_lite.open(path) as store:
                while not stop.is_set():
                    seen.append(look(store))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert seen, "the reader saw nothing"


def rows_seen(store) -> int:
    frames = store.dataframes.list()
    return frames[0]["rows"] if frames else 0


def counts(store) -> tuple[int, int, int]:
    """(datasets, chunks an admin sees, chunk rows in the file)."""
    raw = store.db.execute("SELECT count(*) FROM chunk").fetchone()[0]
    return len(store.datasets.list()), len(store.chunks.list()), raw


@pytest.fixture
def small_slices(monkeypatch):
    monkeypatch.setattr(staging, "SLICE_BYTES", 1 << 20)
    monkeypatch.setattr(clustore_lite.db.connection, "BULK_BYTES", 1 << 20)


def test_an_import_beside_another_connection_is_staged_then_adopted(db_path, small_slices,
                                                                      monkeypatch):
    data = table()
    seen, slices = [], []
    original = staging.Slices.next

    def observed(self):
        original(self)
        slices.append(self.frame_id)
        seen.append(counts(server))

    monkeypatch.setattr(staging.Slices, "next", observed)
    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as importer:
        org = importer.organizations.create("lumen")
        made = importer.datasets.create(org["id"], "big", data, chunk_rows=10_000)
        assert len(slices) >= 5, "the import was not cut into short transactions"
        # meanwhile the chunks were in the file, and nobody saw them
        assert all(datasets == 0 and chunks == 0 for datasets, chunks, _ in seen), seen
        assert seen[-1][2] > 0
        assert server.datasets.read(made["id"]).equals(data)
        assert counts(server) == (1, 20, 20)
        frame = server.dataframes.get(made["dataframeId"])
        assert frame["id"] == slices[0] and frame["rows"] == ROWS
        assert server.db.execute("SELECT count(*) FROM chunk_import").fetchone()[0] == 0
        assert server.check().ok


def test_the_served_api_never_shows_staged_chunks(db_path, small_slices, monkeypatch):
    """`clustore-lite serve` runs on the file; at every slice boundary the store
    admin's GraphQL sees no chunk, no dataframe and a chunk count of 0 (every reader
    goes through catalog.Table.exists_sql); after the import, all of them."""
    answers = []
    original = staging.Slices.next
    query = ("{ chunks { id } chunks_aggregate { aggregate { count } } dataframes { id } "
             "datasets { name } }")

    def observed(self):
        original(self)
        answers.append(client(query))

    monkeypatch.setattr(staging.Slices, "next", observed)
    with running_server(db_path) as url:
        client = Client(url)
        with clustore_lite.open(db_path) as importer:
            org = importer.organizations.create("lumen")
            importer.datasets.create(org["id"], "big", table(), chunk_rows=10_000)
        assert answers
        for answer in answers:
            assert answer == {"chunks": [], "chunks_aggregate": {"aggregate": {"count": 0}},
                              "dataframes": [], "datasets": []}, answer
        after = client(query)
        assert len(after["chunks"]) == 20 and after["datasets"] == [{"name": "big"}]


def test_a_failed_staged_import_leaves_nothing(db_path, small_slices):
    data = table()

    def batches():
        yield from data.to_batches(max_chunksize=10_000)[:12]
        raise OSError("the sensor's disk went away")

    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as importer:
        org = importer.organizations.create("lumen")
        reader = pa.RecordBatchReader.from_batches(data.schema, batches())
        with pytest.raises(OSError, match="went away"):
            importer.datasets.create(org["id"], "big", reader, chunk_rows=10_000)
        assert counts(server) == (0, 0, 0)
        assert server.db.execute("SELECT count(*) FROM chunk_import").fetchone()[0] == 0
        # and the importer's connection writes as before (foreign keys back on)
        with pytest.raises(apsw.ConstraintError, match="FOREIGN KEY"):
            importer.db.execute("INSERT INTO chunk (id, dataframeId, position, rows, size, "
                                "createdAt, updatedAt, data) VALUES ('c', 'nope', 1, 0, 0, "
                                "'t', 't', x'')")


def test_a_waiting_writer_gets_the_lock_between_slices(db_path, small_slices, monkeypatch):
    """A writer that asks for the lock while an import runs commits before the import
    ends: the importer hands the lock over at its next slice boundary."""
    asked, written = threading.Event(), threading.Event()
    during = []
    original = staging.Slices.next

    def observed(self):
        if not asked.is_set():
            asked.set()  # the writer starts now, while the import holds the lock
        original(self)
        during.append(written.is_set())

    monkeypatch.setattr(staging.Slices, "next", observed)

    def small_writer():
        asked.wait(60)
        with clustore_lite.open(db_path) as other:
            other.organizations.create("small")
        written.set()

    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as importer:
        org = importer.organizations.create("lumen")
        thread = threading.Thread(target=small_writer)
        thread.start()
        importer.datasets.create(org["id"], "big", table(), chunk_rows=5_000)
        thread.join(60)
        assert written.is_set()
        assert any(during), f"the small write waited for the whole import: {during}"
        assert {o["name"] for o in server.organizations.list()} == {"lumen", "small"}


CHILD = """
import os, signal, sys
import numpy as np, pyarrow as pa
import clustore_lite
from clustore_lite.db import staging, connection
staging.SLICE_BYTES = 1 << 20
connection.BULK_BYTES = 1 << 20
kill_at = int(sys.argv[2])
slices = []
original = staging.Slices.next
def next_slice(self):
    original(self)
    slices.append(1)
    if len(slices) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
staging.Slices.next = next_slice
rng = np.random.default_rng(int(sys.argv[3]))
data = pa.table({f"x{i}": rng.random(200_000) for i in range(8)})
with clustore_lite.open(sys.argv[1]) as store:
    org = store.organizations.list()[0]
    store.datasets.create(org["id"], "big", data, chunk_rows=10_000)
"""


@pytest.mark.parametrize("kill_at", [1, 5, 9])
def test_sigkill_mid_staged_import_leaves_nothing_visible_and_is_swept(db_path, kill_at):
    """The crash campaign for the staged path: a child imports while this process
    keeps the store open and reading; SIGKILL at a slice boundary. Readers never see
    a partial dataset; the next open sweeps the chunks (no importer holds IMPORTING)."""
    with clustore_lite.open(db_path) as server:
        server.organizations.create("lumen")
        with reading(db_path, lambda store: counts(store)[:2]) as seen:
            child = subprocess.run([sys.executable, "-c", CHILD, str(db_path), str(kill_at),
                                    str(SEED)], capture_output=True, text=True, timeout=120)
        assert child.returncode == -signal.SIGKILL, child.stderr
        assert seen and set(seen) == {(0, 0)}, "a reader saw a partial import"
        datasets, chunks, raw = counts(server)
        assert (datasets, chunks) == (0, 0)
        assert raw > 0  # staged chunks the kill left behind, unseen
        assert server.db.execute("SELECT count(*) FROM chunk_import").fetchone()[0] == 1
        report = server.check()  # they are no damage: the check says what they are
        assert report.ok, report.problems
        assert report.steps["staged chunks"].startswith(f"{raw} of an import in flight")
    with clustore_lite.open(db_path) as reopened:
        assert counts(reopened) == (0, 0, 0)
        assert reopened.db.execute("SELECT count(*) FROM chunk_import").fetchone()[0] == 0
        assert reopened.check().ok
        # and the store imports as usual afterwards
        org = reopened.organizations.list()[0]
        made = reopened.datasets.create(org["id"], "again", table())
        assert reopened.datasets.read(made["id"]).num_rows == ROWS


def test_an_import_in_flight_is_not_swept(db_path, small_slices, monkeypatch):
    """A store opened while another process's import is staged leaves its chunks be."""
    opened = []
    original = staging.Slices.next

    def observed(self):
        original(self)
        if not opened:
            with clustore_lite.open(db_path) as late:
                opened.append(late.db.execute("SELECT count(*) FROM chunk").fetchone()[0])

    monkeypatch.setattr(staging.Slices, "next", observed)
    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as importer:
        org = importer.organizations.create("lumen")
        made = importer.datasets.create(org["id"], "big", table(), chunk_rows=10_000)
        assert opened and opened[0] > 0
        assert server.datasets.read(made["id"]).num_rows == ROWS


def test_a_caller_without_rights_is_refused_before_anything_is_written(db_path, small_slices,
                                                                        monkeypatch):
    entered = []
    enter = staging.Slices.__enter__
    monkeypatch.setattr(staging.Slices, "__enter__", lambda self: entered.append(1) or enter(self))
    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as store:
        stranger = store.users.create("stranger")
        org = store.organizations.create("lumen")
        with pytest.raises(clustore_lite.PermissionDenied):
            store.as_user(stranger["id"]).datasets.create(org["id"], "big", table())
        assert not entered  # refused before the first chunk, not after the last
        assert counts(server) == (0, 0, 0)


def test_the_cli_imports_into_a_served_store(tmp_path, db_path):
    """`clustore-lite import` beside `clustore-lite serve`: staged (its size is not
    known ahead, the file is shared), visible whole at once, nothing left staged."""
    import pyarrow.parquet as pq
    source = tmp_path / "points.parquet"
    data = table()
    pq.write_table(data, source, row_group_size=20_000)
    with running_server(db_path) as url:
        client = Client(url)
        done = subprocess.run([sys.executable, "-m", "clustore_lite", "import", str(db_path),
                               str(source), "--org", "lumen", "--dataset", "points", "--quiet"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        answer = client("{ datasets { name dataframe { rows chunks_aggregate "
                        "{ aggregate { count } } } } }")
        assert answer["datasets"] == [{"name": "points", "dataframe": {
            "rows": ROWS, "chunks_aggregate": {"aggregate": {"count": 4}}}}]
    with clustore_lite.open(db_path) as store:
        assert store.db.execute("SELECT count(*) FROM chunk_import").fetchone()[0] == 0
        assert store.datasets.read(store.datasets.list()[0]["id"]).equals(data)


RANDOM_KILL_CHILD = """
import sys
import numpy as np, pyarrow as pa
import clustore_lite
from clustore_lite.db import staging, connection
staging.SLICE_BYTES = 1 << 20
connection.BULK_BYTES = 1 << 20
rng = np.random.default_rng(int(sys.argv[2]))
data = pa.table({f"x{i}": rng.random(400_000) for i in range(8)})
with clustore_lite.open(sys.argv[1]) as store:
    org = store.organizations.list()[0]
    print("began", flush=True)
    store.datasets.create(org["id"], "big", data, chunk_rows=10_000)
    print("done", flush=True)
"""


def test_sigkill_at_a_random_moment_of_a_staged_import(db_path):
    """SIGKILL at seeded random moments (mid-chunk, mid-commit, after): a reader sees
    no dataset or the whole one, and after the sweep the file holds exactly that."""
    rng = random.Random(SEED)
    print("seed", SEED)
    outcomes = set()
    for attempt in range(4):
        path = db_path.with_name(f"kill{attempt}.sqlite")
        with clustore_lite.open(path) as server:
            server.organizations.create("lumen")
            with reading(path, rows_seen) as seen:
                child = subprocess.Popen([sys.executable, "-c", RANDOM_KILL_CHILD, str(path),
                                          str(SEED)], stdout=subprocess.PIPE, text=True)
                assert child.stdout.readline().startswith("began")
                time.sleep(rng.uniform(0.0, 0.6))  # the seeded moment of the kill
                child.send_signal(signal.SIGKILL)
                child.wait(60)
            assert set(seen) <= {0, 400_000}, "a reader saw a partial import"
        with clustore_lite.open(path) as reopened:
            datasets, chunks, raw = counts(reopened)
            assert reopened.check().ok
            if datasets:
                outcomes.add("whole")
                assert chunks == raw == 40
                frame = reopened.dataframes.list()[0]
                assert reopened.dataframes.read(frame["id"]).num_rows == 400_000
            else:
                outcomes.add("absent")
                assert (chunks, raw) == (0, 0)
    print("outcomes", outcomes)
