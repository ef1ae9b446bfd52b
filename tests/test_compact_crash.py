"""Compaction is whole or absent after a SIGKILL (issue 17 item 4, the crash campaign
for the new write path): a child process compacts a fragmented dataframe and is killed
at a seeded moment; the file then passes the store's checks, the dataframe reads as
before, its chunks are either all the old ones or all the new ones, and no chunk or
checksum is left over. Both journals: alone on the file (rollback journal), and in WAL
with a reader connected that keeps reading through the kill."""

import random
import signal
import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest

import clustore_lite

SEED = 1717
CHILD = """
import sys, clustore_lite
with clustore_lite.open(sys.argv[1]) as store:
    print("compacting", flush=True)
    store.dataframes.compact(sys.argv[2], chunk_rows=20_000)
    print("done", flush=True)
"""


def fragmented(path, pieces: int = 120, rows: int = 2000):
    rng = np.random.default_rng(SEED)
    table = pa.table({f"x{i}": rng.random(pieces * rows) for i in range(16)})
    with clustore_lite.open(path, durability="normal") as store:
        frame = store.dataframes.create()
        for batch in table.to_batches(max_chunksize=rows):
            store.dataframes.append(frame["id"], batch)
    return frame["id"], table


def reader_loop(path, frame_id, table, stop, seen):
    with clustore_lite.open(path) as store:
        while not stop.is_set():
            read = store.dataframes.read(frame_id)
            assert read.equals(table), "a reader saw a mix of old and new chunks"
            seen.append(len(store.dataframes.chunks(frame_id)))


@pytest.mark.parametrize("with_reader", [False, True], ids=["alone", "reader connected"])
def test_sigkill_mid_compaction_leaves_old_or_new(tmp_path, with_reader):
    rng = random.Random(SEED + with_reader)
    print("seed", SEED + with_reader)
    outcomes = set()
    for kill in range(3):
        path = str(tmp_path / f"crash{kill}.sqlite")
        frame_id, table = fragmented(path)
        stop, seen, errors = threading.Event(), [], []
        thread = None
        if with_reader:
            def run():
                try:
                    reader_loop(path, frame_id, table, stop, seen)
                except BaseException as error:  # reported below, in the test's thread
                    errors.append(error)
            thread = threading.Thread(target=run)
            thread.start()
        child = subprocess.Popen([sys.executable, "-c", CHILD, path, frame_id],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "compacting"
        threading.Event().wait(rng.uniform(0.0, 0.25))  # a seeded point in the compaction
        child.send_signal(signal.SIGKILL)
        child.wait(60)
        if thread is not None:
            stop.set()
            thread.join(120)
            assert not errors, errors
        with clustore_lite.open(path) as store:
            assert store.check().ok, store.check().text()
            assert store.dataframes.read(frame_id).equals(table)
            counts = [c["rows"] for c in store.dataframes.chunks(frame_id)]
            assert counts in ([2000] * 120, [20_000] * 12), counts
            outcomes.add(len(counts))
            leftover = store.db.execute(
                "SELECT (SELECT count(*) FROM chunk), (SELECT count(*) FROM chunk_checksum)"
            ).fetchone()
            assert leftover == (len(counts), len(counts))
            assert store.dataframes.get(frame_id)["rows"] == 240_000
    print("outcomes (chunk counts after the kills):", sorted(outcomes))
