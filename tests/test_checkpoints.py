"""Checkpoints stay off the commit path once the WAL is large (db/checkpoints.py): after
a served import left megabytes in the WAL, the next small commit of any process
answers without copying them; a background thread copies them, flushing as it goes;
nothing is copied while an import is in flight."""

import os
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite.db import checkpoints, connection, staging

SEED = 77


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(staging, "SLICE_BYTES", 1 << 20)
    monkeypatch.setattr(connection, "BULK_BYTES", 1 << 20)
    monkeypatch.setattr(checkpoints, "WAL_BYTES", 256 << 10)
    monkeypatch.setattr(checkpoints, "INLINE_BYTES", 1 << 20)


def data() -> pa.Table:
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    return pa.table({f"x{i}": rng.random(100_000) for i in range(8)})  # 6.4 MB


def test_a_small_commit_after_an_import_leaves_the_copy_to_a_background_thread(
        db_path, small_limits, monkeypatch):
    ran, copied, original = [], threading.Event(), checkpoints.checkpoint

    def spied(conn):
        ran.append(threading.current_thread().name)
        whole = original(conn)
        copied.set()
        return whole

    monkeypatch.setattr(checkpoints, "checkpoint", spied)
    flushed = []
    monkeypatch.setattr(checkpoints, "sync", lambda fd: flushed.append(fd))
    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as importer:
        org = importer.organizations.create("lumen")
        importer.datasets.create(org["id"], "big", data())
        assert os.path.getsize(f"{db_path}-wal") > checkpoints.INLINE_BYTES
        server.organizations.create("small")  # a small commit beside the large WAL
        assert copied.wait(60), "no background checkpoint"
        assert "MainThread" not in ran, ran  # not in the import's commit, nor the small one
        assert set(ran) == {"clustore-checkpoint"}
        # then the WAL file is cut back to its budget, in steps, by that thread alone
        deadline = time.monotonic() + 60
        while checkpoints.wal_size(str(db_path)) > checkpoints.WAL_BYTES \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoints.wal_size(str(db_path)) <= checkpoints.WAL_BYTES
        assert server.organizations.list(where={"name": {"_eq": "small"}})
    with clustore_lite.open(db_path) as store:  # and the file is whole
        assert len(store.datasets.list()) == 1 and store.check().ok


def test_nothing_is_checkpointed_while_an_import_is_in_flight(db_path, small_limits,
                                                               monkeypatch):
    in_flight, during, commits = threading.Event(), [], []
    monkeypatch.setattr(checkpoints, "checkpoint",
                        lambda conn: during.append(in_flight.is_set()) or True)
    enter, leave, commit = staging.Slices.__enter__, staging.Slices.__exit__, staging.Slices._commit
    monkeypatch.setattr(staging.Slices, "__enter__",
                        lambda self: (in_flight.set(), enter(self))[1])
    monkeypatch.setattr(staging.Slices, "__exit__",
                        lambda self, *error: (leave(self, *error), in_flight.clear())[0])

    def committed(self):
        commit(self)  # a slice committed: the write lock is free until the next
        # another connection commits while the WAL is over the threshold: copying it
        # now would write the disk twice at once
        server.organizations.create(f"during-{len(commits)}")
        commits.append(1)

    monkeypatch.setattr(staging.Slices, "_commit", committed)
    with clustore_lite.open(db_path) as store:  # (its background checkpoint ends with it)
        org = store.organizations.create("lumen")
    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as importer:
        importer.datasets.create(org["id"], "big", data())
        server.db.checkpointer.request()  # and now the copy may happen
        deadline = time.monotonic() + 60
        while not during and time.monotonic() < deadline:
            time.sleep(0.01)
    assert commits and during, (commits, during)
    assert True not in during, during


def test_a_wal_cut_back_a_step_at_a_time_is_cut_back_whole(db_path, small_limits, monkeypatch):
    """Readers stop a step of the cut now and then (the WAL cannot restart under them):
    while steps get somewhere, the thread goes on. Here every call makes one step and
    stops, as a reader would make it; before, the thread gave up after RETRIES such
    calls and left the WAL large."""
    monkeypatch.setattr(checkpoints, "RETRIES", 2)
    monkeypatch.setattr(checkpoints, "SHRINK_BYTES", 1 << 20)
    real = checkpoints.shrink

    class OneStep:
        """A stop event that is set once the cut has made one step."""

        def __init__(self, stop):
            self.stop, self.looks = stop, 0

        def is_set(self):
            self.looks += 1
            return self.looks > 1 or self.stop.is_set()

    def one_step(conn, writer, path, stop, *rest):
        return real(conn, writer, path, OneStep(stop), *rest)

    monkeypatch.setattr(checkpoints, "shrink", one_step)
    with clustore_lite.open(db_path) as server, clustore_lite.open(db_path) as importer:
        org = importer.organizations.create("lumen")
        importer.datasets.create(org["id"], "big", data())
        server.organizations.create("small")
        deadline = time.monotonic() + 60
        while checkpoints.wal_size(str(db_path)) > checkpoints.WAL_BYTES \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoints.wal_size(str(db_path)) <= checkpoints.WAL_BYTES
