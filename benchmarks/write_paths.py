"""Write paths for a bulk import, measured at the SQLite level (issue 17 item 3): the
same chunk bytes (Arrow IPC streams of 16 x float64, `--chunk-mb` each) written as BLOBs
into a fresh 64 KiB-page file, and pyarrow's IPC file write + fsync of the same table as
the baseline, in rotating rounds. While each runs, a second connection in a helper thread
commits one small row every 5 ms: the longest of those commits is the wait a small
write sees during the import (the thread shares the GIL: apsw releases it in SQLite).

Candidates:
- rollback journal, one transaction (today, alone on the file; fdatasync helper);
- the same with SQLITE_FCNTL_CHUNK_SIZE (the file grown 64 MB at a time);
- WAL, one transaction (today, served), its checkpoint after the commit timed;
- WAL, short transactions of `--step-mb` (synchronous NORMAL, the last FULL) with the
  checkpoint held off until the end, then run;
- WAL, short transactions with a checkpoint after each (incremental);
- rollback journal, short transactions of `--step-mb`;
- WAL, short transactions, checkpoint held off, the writer pausing 2 ms after each and
  the small writer retrying every 1 ms: whether a handoff bounds the wait.

    .venv/bin/python benchmarks/write_paths.py [--mb 512] [--rounds 3]
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

import apsw
import pyarrow as pa

import _common as c
from clustore_lite.arrow import codec
from clustore_lite.db.writeback import Writeback, database_fd

PAGE = 65536


def chunks(table: pa.Table, chunk_mb: int) -> list[pa.Buffer]:
    rows = chunk_mb * 1_000_000 // 128
    return [_stream(batch) for batch in table.to_batches(max_chunksize=rows)]


def _stream(batch: pa.RecordBatch) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    codec.write_stream(sink, batch)
    return sink.getvalue()


def fresh(path, journal: str) -> apsw.Connection:
    c.remove_store(path)
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA page_size = {PAGE}")
    conn.execute(f"PRAGMA journal_mode = {journal}").fetchall()
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -16384")
    conn.execute("CREATE TABLE chunk (id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
                 "CREATE TABLE small (id INTEGER PRIMARY KEY, note TEXT)")
    conn.set_busy_timeout(30_000)
    return conn


def put(conn, data: pa.Buffer) -> None:
    conn.execute("INSERT INTO chunk (data) VALUES (zeroblob(?))", (data.size,))
    blob = conn.blob_open("main", "chunk", "data", conn.last_insert_rowid(), True)
    blob.write(data)
    blob.close()


class Prober:
    """Commits one small row every 5 ms from another connection; keeps the longest."""

    def __init__(self, path, poll: bool = False):
        self.conn = apsw.Connection(str(path))
        if poll:  # retry every 1 ms instead of SQLite's growing sleeps (up to 100 ms)
            self.conn.set_busy_handler(lambda tries: time.sleep(0.001) or tries < 60_000)
        else:
            self.conn.set_busy_timeout(60_000)
        self.stop, self.longest, self.count = threading.Event(), 0.0, 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            started = time.perf_counter()
            with self.conn:
                self.conn.execute("INSERT INTO small (note) VALUES ('probe')")
            self.longest = max(self.longest, time.perf_counter() - started)
            self.count += 1
            time.sleep(0.005)

    def finish(self) -> float:
        self.stop.set()
        self.thread.join()
        self.conn.close()
        return self.longest


def one_transaction(journal: str, chunk_size: bool = False):
    def write(conn, data, step):
        if chunk_size:
            size = ctypes.c_int(64 << 20)  # file_control takes a pointer to the int
            conn.file_control("main", apsw.SQLITE_FCNTL_CHUNK_SIZE, ctypes.addressof(size))
        fd = database_fd(conn) if journal == "delete" else None
        back = Writeback(fd) if fd is not None else None
        with conn:
            for piece in data:
                put(conn, piece)
                if back:
                    back.wrote(piece.size)
        if back:
            back.finish()
        if journal == "wal":
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return journal, write


def short_transactions(journal: str, held_off: bool, pause: float = 0.0):
    """`pause`: seconds the writer lets go of the lock after each short transaction."""
    def write(conn, data, step):
        if journal == "wal":
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {0 if held_off else 256}")
        pending = 0
        conn.execute("BEGIN IMMEDIATE")
        for piece in data:
            put(conn, piece)
            pending += piece.size
            if pending >= step:
                conn.execute("COMMIT")
                if pause:
                    time.sleep(pause)
                conn.execute("BEGIN IMMEDIATE")
                pending = 0
        conn.execute("COMMIT")
        conn.execute("PRAGMA synchronous = FULL")  # the final small commit makes it visible
        with conn:                                 # and puts everything before on disk
            conn.execute("INSERT INTO small (note) VALUES ('visible')")
        if journal == "wal":
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.execute("PRAGMA wal_autocheckpoint = 256")
    return journal, write


CANDIDATES = {
    "rollback journal, one transaction (today alone)": one_transaction("delete"),
    "rollback journal, one transaction, CHUNK_SIZE 64 MB": one_transaction("delete", True),
    "WAL, one transaction (today served)": one_transaction("wal"),
    "WAL, short transactions, checkpoint held off": short_transactions("wal", True),
    "WAL, short transactions, checkpoint after each": short_transactions("wal", False),
    "rollback journal, short transactions": short_transactions("delete", False),
    "WAL, short transactions, held off, 2 ms pause; prober polls every 1 ms":
        short_transactions("wal", True, 0.002),
}
POLLING = {name for name in CANDIDATES if "polls" in name}


def cases(table, data, folder, args, waits):
    def baseline() -> float:
        path = folder / "table.arrow"
        seconds = c.timed(lambda: c.write_ipc(table, path, data[0].size // 128))
        os.remove(path)
        return seconds

    def case(name, journal, write):
        def run() -> float:
            path = folder / "store.sqlite"
            conn = fresh(path, journal)
            probe = Prober(path, poll=name in POLLING)
            time.sleep(0.02)
            seconds = c.timed(lambda: write(conn, data, args.step_mb << 20))
            waits.setdefault(name, []).append(probe.finish())
            conn.close()
            c.remove_store(path)
            return seconds
        return run

    return {"pyarrow IPC file write + fsync of the same table": baseline,
            **{name: case(name, *spec) for name, spec in CANDIDATES.items()}}


def main(argv=None) -> None:
    p = c.arguments(__doc__.split("\n\n")[0])
    p.set_defaults(rounds=3)
    p.add_argument("--mb", type=int, default=512)
    p.add_argument("--chunk-mb", type=int, default=8)
    p.add_argument("--step-mb", type=int, default=32, help="bytes per short transaction")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    table = c.numeric_table(args.mb * 1_000_000 // 128)
    data = chunks(table, args.chunk_mb)
    waits: dict = {}
    with c.work_dir(args.dir) as folder:
        timings = c.interleave(cases(table, data, folder, args, waits), args.rounds, args.warmup,
                               c.logger(args.quiet))
    base = timings.names[0]
    rows = [[name, f"{args.mb / timings.median(name):,.0f}", f"{timings.ratio(name, base):.2f}×",
             c.spread(timings.ratios(name, base)),
             f"{max(waits[name]) * 1000:,.0f}" if name in waits else ""]
            for name in timings.names]
    c.emit("### Write paths (SQLite level)\n\n" + c.markdown(
        ["path", "MB/s (median)", "vs IPC write + fsync", "range",
         "longest small commit meanwhile (ms)"], rows, text_columns=1)
        + f"\n\n- {args.mb} MB in {len(data)} chunks, short transactions of {args.step_mb} MB; "
          f"load average (1 min) {load:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"{args.rounds} round(s)", args.output)


if __name__ == "__main__":
    sys.exit(main())
