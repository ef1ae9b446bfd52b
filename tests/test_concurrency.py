"""Several processes and threads on one file: no "database is locked" surfaces, the
result equals a serial run, and readers do not wait for a long writer in WAL."""

import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import clustore_lite
from clustore_lite import TransactionError

import load_worker

SCALE = float(os.environ.get("CLUSTORE_CAMPAIGN_SCALE", "1"))
HERE = Path(__file__).parent


def python(code: str, *args, stdin=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(process: subprocess.Popen) -> queue.Queue:
    """The lines the process prints, as they come (None at its end), for waits with a
    deadline."""
    out: queue.Queue = queue.Queue()

    def read():
        for line in process.stdout:
            out.put(line.split())
        out.put(None)

    threading.Thread(target=read, daemon=True).start()
    return out


def test_opening_the_file_during_a_bulk_write_waits_for_it(db_path):
    """A process alone on the file writes in the rollback journal; another process
    opening the file meanwhile used to fail at once with "database is locked"
    (SQLite does not call the busy handler for the journal-mode switch).

    No timing: the writer holds its lock until told to commit, and is told only once
    the opener has tried to switch the file to WAL and gone on (retrying, or blocked).
    The opener must then finish, after the writer's commit, seeing what it wrote."""
    clustore_lite.open(db_path).close()
    writer = python("""
        import sys, time, clustore_lite
        store = clustore_lite.open(sys.argv[1])
        with store.db.bulk():
            store.users.create("bulk")
            print(store.db.execute("PRAGMA journal_mode").fetchone()[0], flush=True)
            sys.stdin.readline()  # hold the lock until told
            print("releasing", time.monotonic_ns(), flush=True)
        print("committed", flush=True)
        """, db_path, stdin=subprocess.PIPE)
    opener = None
    try:
        assert writer.stdout.readline().strip() == "delete"  # the bulk path, lock held
        opener = python("""
            import sys, time, apsw, clustore_lite

            def trace(cursor, sql, bindings):  # every statement the opening runs
                print("sql", "".join(sql.split()).lower(), flush=True)
                return True

            apsw.connection_hooks.append(lambda conn: setattr(conn, "exec_trace", trace))
            print("opening", time.monotonic_ns(), flush=True)
            with clustore_lite.open(sys.argv[1]) as store:  # raised apsw.BusyError before the fix
                names = [u["name"] for u in store.users.list()]
                mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
            print("opened", time.monotonic_ns(), mode, *names, flush=True)
            """, db_path)
        said = lines(opener)
        opening = said.get(timeout=120)
        assert opening is not None, opener.stderr.read()
        assert opening[0] == "opening", opening
        # until the opener has tried to switch to WAL (under the writer's lock) and run
        # another statement since (its retry); if it blocks in the switch instead, give
        # it a moment there (only the test's power depends on it, not its outcome)
        tried = False
        while True:
            try:
                line = said.get(timeout=120 if not tried else 2)
            except queue.Empty:
                assert tried, "the opener printed nothing"
                break
            assert line and line[0] == "sql", (line, opener.stderr.read())  # not done yet
            if tried:
                break
            tried = "journal_mode=wal" in line[1]
        assert writer.poll() is None  # it still holds its lock
        writer.stdin.write("go\n")
        writer.stdin.flush()
        releasing = writer.stdout.readline().split()
        assert releasing[:1] == ["releasing"], writer.stderr.read()
        assert writer.stdout.readline().strip() == "committed", writer.stderr.read()
        while (line := said.get(timeout=120)) is not None and line[0] == "sql":
            pass
        assert line is not None, opener.stderr.read()
        assert line[0] == "opened" and line[2:] == ["wal", "bulk"], line
        # started opening before the writer let go, finished after it
        assert int(opening[1]) < int(releasing[1]) < int(line[1])
        assert opener.wait(timeout=120) == 0, opener.stderr.read()
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    finally:
        for process in (writer, opener):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_reading_batches_while_appending_in_the_same_thread(store, org):
    """A transform loop: iterate one dataset's batches, append to another. It failed
    with "cannot change out of wal mode from within a transaction", and, with another
    writer on the file, "database is locked" (the open cursor's snapshot was upgraded)."""
    source = store.datasets.create(org["id"], "source", {"x": list(range(10))}, chunk_rows=2)
    target = store.datasets.create(org["id"], "target", {"x": [-1]})
    for batch in store.datasets.iter_batches(source["id"]):
        store.datasets.append(target["id"], batch)
    with clustore_lite.open(store.path) as other:
        for batch in store.datasets.iter_batches(source["id"]):
            other.users.create("meanwhile")  # a commit by another connection
            store.datasets.append(target["id"], batch)
    assert store.datasets.read(target["id"]).column("x").to_pylist() == [-1, *range(10), *range(10)]


def test_a_write_inside_a_read_transaction_is_refused_up_front(store):
    with clustore_lite.open(store.path) as other:
        with pytest.raises(TransactionError, match="read_transaction"):
            with store.read_transaction():
                store.users.count()
                other.users.create("meanwhile")
                store.users.create("inside")  # was apsw.BusyError: database is locked
    assert [u["name"] for u in store.users.list()] == ["meanwhile"]
    store.users.create("after")  # the connection is usable again


def test_readers_are_not_blocked_by_a_long_writer_in_wal(store, org):
    """A reader process opens the file and reads while another connection holds a
    write transaction open: the writer holds it until the reader has finished, so the
    reader cannot have waited for it."""
    store.datasets.create(org["id"], "before", {"x": [1, 2, 3]})
    holding, release = threading.Event(), threading.Event()

    def long_writer():
        with clustore_lite.open(store.path) as writer, writer.transaction():
            writer.datasets.create(org["id"], "during", {"x": list(range(100_000))},
                                   chunk_rows=1000)
            holding.set()
            release.wait(300)

    thread = threading.Thread(target=long_writer)
    thread.start()
    try:
        assert holding.wait(120)
        reader = python("""
            import sys, clustore_lite
            with clustore_lite.open(sys.argv[1]) as store:
                names = sorted(d["name"] for d in store.datasets.list())
                rows = store.datasets.read(store.datasets.list(name="before")[0]["id"]).num_rows
            print(names, rows)
            """, store.path)
        try:
            out, err = reader.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            reader.kill()
            raise AssertionError("the reader waited for the writer") from None
        assert thread.is_alive() and not release.is_set()  # the write was open throughout
        names, rows = out.rsplit(" ", 1)
        assert names == "['before']" and rows.strip() == "3", err
    finally:
        release.set()
        thread.join()
    assert store.datasets.count() == 2


def test_processes_and_threads_writing_at_once_match_a_serial_run(tmp_path):
    workers, ops = 3, max(4, int(12 * SCALE))
    threads = [1 + w % 2 for w in range(workers)]  # some processes alone on the file at times
    concurrent, serial = tmp_path / "concurrent.sqlite", tmp_path / "serial.sqlite"
    load_worker.setup(str(concurrent))
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, str(HERE / "load_worker.py"), str(concurrent),
                               str(w), str(threads[w]), str(ops)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    while any(p.poll() is None for p in procs):  # a reader in this process meanwhile
        with clustore_lite.open(concurrent) as reader:
            load_worker.check_log(reader)
        time.sleep(0.02)
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err
        assert "locked" not in err
    elapsed = time.monotonic() - started
    load_worker.setup(str(serial))
    with clustore_lite.open(serial) as store:
        for w in range(workers):
            for t in range(threads[w]):
                load_worker.run(str(serial), w, t, ops, store=store)
    assert load_worker.canonical(str(concurrent)) == load_worker.canonical(str(serial))
    print(f"{workers} processes, {sum(threads)} threads x {ops} ops in {elapsed:.1f} s")


def test_many_processes_creating_one_new_file_at_once(tmp_path):
    db = tmp_path / "new.sqlite"
    procs = [python("""
        import sys, clustore_lite
        with clustore_lite.open(sys.argv[1]) as store:
            org = store.organizations.create("o" + sys.argv[2])
            store.datasets.create(org["id"], "d", {"x": list(range(1000))}, chunk_rows=100)
        """, db, n) for n in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with clustore_lite.open(db) as store:
        assert store.organizations.count() == 4 and store.datasets.count() == 4
        assert store.db.execute("PRAGMA page_size").fetchone()[0] == 65536
