"""The victim of the crash tests: `python crash_writer.py DB LOG SEED alone|shared`.

Writes forever, one call at a time: creates datasets with multi-chunk data, appends
(as tables or as Arrow IPC bytes), deletes datasets. Before each call it logs the
intent, after the call returns it logs the acknowledgement, each line fsynced, so
that after a SIGKILL the log says what must be in the file (acknowledged) and what
may be (the one call in flight); the test also reads it to kill the writer after a
number of acknowledgements (progress, not time). Every row carries the number of the
call that wrote it (`op`) and its index in that call (`i`), so a partial write is visible.

`shared` keeps a second connection open, so bulk writes stay in WAL; `alone` lets
them switch to the rollback journal. Each acknowledgement records which it was."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

import clustore_lite
from clustore_lite.db import connection as storage

ORG = "crash"
MAX_DATASETS = 6
MAX_ROWS = 600_000  # a dataset this big is deleted next, to keep the file small

journal_modes: list[str] = []
_try_rollback_journal = storage._try_rollback_journal


def _recording(conn):
    switched = _try_rollback_journal(conn)
    journal_modes.append("delete" if switched else "wal")
    return switched


storage._try_rollback_journal = _recording
storage.BULK_BYTES = 0  # every create and append is a bulk write, however small


def rows_of(op: int, rows: int) -> pa.Table:
    i = pa.array(range(rows), pa.int64())
    return pa.table({"op": pa.array([op] * rows, pa.int64()), "i": i,
                     "v": pc.multiply(i, 0.5)})


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=7_000)
    return sink.getvalue().to_pybytes()


class Log:
    def __init__(self, path: Path):
        self.path = path
        text = path.read_text() if path.exists() else ""
        self.next_op = 1 + max((json.loads(line)["op"] for line in text.splitlines()
                                if line.endswith("}")), default=0)
        self.file = open(path, "a")
        if text and not text.endswith("\n"):  # a line cut by the kill
            self.file.write("\n")

    def write(self, **entry) -> None:
        self.file.write(json.dumps(entry) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())


def main(db: str, log_path: str, seed: int, mode: str) -> None:
    rng = random.Random(seed)
    log = Log(Path(log_path))
    store = clustore_lite.open(db)
    holder = None
    if mode == "shared":
        holder = clustore_lite.open(db)
        holder.users.count()
    found = store.organizations.list(name=ORG)
    org = found[0] if found else store.organizations.create(ORG)
    frames = {d["name"]: d for d in store.datasets.list(organizationId=org["id"])}
    sizes = {name: store.dataframes.get(d["dataframeId"])["rows"] for name, d in frames.items()}
    print("ready", flush=True)
    while True:
        op = log.next_op
        log.next_op += 1
        big = [n for n, rows in sizes.items() if rows > MAX_ROWS]
        roll = rng.random()
        if big or len(frames) > MAX_DATASETS or (frames and roll < 0.15):
            name = big[0] if big else rng.choice(sorted(frames))
            log.write(op=op, kind="delete", name=name)
            store.datasets.delete(frames.pop(name)["id"])
            sizes.pop(name)
        elif len(frames) < 2 or roll < 0.5:
            name, rows = f"d{op}", rng.randint(1, 150_000)
            chunk_rows = rng.choice([500, 2_000, 10_000, 65_536])
            log.write(op=op, kind="create", name=name, rows=rows)
            frames[name] = store.datasets.create(
                org["id"], name, rows_of(op, rows), chunk_rows=chunk_rows,
                compression=rng.choice([None, None, "lz4", "zstd"]))
            sizes[name] = rows
        else:
            name, rows = rng.choice(sorted(frames)), rng.randint(1, 100_000)
            as_bytes = rng.random() < 0.5
            log.write(op=op, kind="append", name=name, rows=rows)
            if as_bytes:
                store.dataframes.append_ipc(frames[name]["dataframeId"],
                                            ipc_bytes(rows_of(op, rows)), chunk_rows=3_000)
            else:
                store.datasets.append(frames[name]["id"], rows_of(op, rows), chunk_rows=3_000)
            sizes[name] += rows
        # the journal the call's transaction used ("wal" for deletes: never a bulk write)
        log.write(op=op, ack=True, journal=journal_modes[0] if journal_modes else "wal")
        journal_modes.clear()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
